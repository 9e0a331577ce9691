//! The run record: everything a training run leaves in its output folder.
//!
//! Every file is written atomically (temporary file in the same folder, then a
//! rename), so an interrupted run never leaves a half-written record behind.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Names of the files in a run folder, in one place so readers and writers agree.
pub mod files {
    /// Full configuration of the run (JSON).
    pub const CONFIG: &str = "config.json";
    /// The split used (indices into the loaded dataset, JSON).
    pub const SPLIT: &str = "split.json";
    /// Per-epoch metrics, one JSON object per line.
    pub const METRICS_JSONL: &str = "metrics.jsonl";
    /// Per-epoch metrics as CSV.
    pub const METRICS_CSV: &str = "metrics.csv";
    /// Learning curve (train loss and validation metric per epoch).
    pub const CURVE_SVG: &str = "learning_curve.svg";
    /// Best-validation model weights.
    pub const BEST_MODEL: &str = "best_model.safetensors";
    /// What a later `predict` needs besides the weights (JSON).
    pub const MODEL_CARD: &str = "model.json";
    /// Final summary with test metric and timings (JSON); its presence marks a finished run.
    pub const SUMMARY: &str = "summary.json";
    /// Last-epoch checkpoint (trainer state, weights and optimizer state in one file) for resuming.
    pub const CHECKPOINT: &str = "checkpoint.bin";
    /// `--track-similarity` records: per tracked step, the cosines (CSV).
    pub const SIMILARITY_CSV: &str = "similarity.csv";
    /// Those cosines drawn against the step (SVG).
    pub const SIMILARITY_SVG: &str = "similarity.svg";
}

/// Writes `bytes` to `path` atomically: a crash leaves either the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::atomic::write_atomic(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    write_atomic(path, text.as_bytes())
}

/// Reads a JSON file written by [`write_json`].
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// What one epoch of training measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch number, starting at 0.
    pub epoch: usize,
    /// Mean training loss at the weights, L(w), over the steps that
    /// evaluated it (every step of Adam and SAM; GraphSAM only at anchors).
    #[serde(default)]
    pub clean_loss: Option<f64>,
    /// Mean training loss at the perturbed weights, L(w+ε), over the steps
    /// that evaluated it (every SAM and GraphSAM step; never for Adam).
    #[serde(default)]
    pub perturbed_loss: Option<f64>,
    /// Steps that evaluated L(w).
    #[serde(default)]
    pub clean_loss_steps: u64,
    /// Steps that evaluated L(w+ε).
    #[serde(default)]
    pub perturbed_loss_steps: u64,
    /// Validation metric after the epoch (`None` when it could not be computed,
    /// e.g. a validation split with a single class).
    pub valid_metric: Option<f64>,
    /// Learning rate at the last step of the epoch.
    pub learning_rate: f64,
    /// Perturbation radius in force during the epoch (0 for Adam).
    pub rho: f64,
    /// Wall time of the training steps of the epoch, in seconds.
    pub train_seconds: f64,
    /// Wall time of the validation pass, in seconds.
    pub valid_seconds: f64,
    /// Forward passes the optimizer ran during the epoch.
    pub forward_passes: u64,
    /// Backward passes the optimizer ran during the epoch.
    pub backward_passes: u64,
    /// Whether this epoch produced the best validation metric so far.
    pub is_best: bool,
    /// Extra passes of `--track-similarity` (not the optimizer's, not in
    /// `train_seconds`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub tracking_passes: u64,
    /// Wall time of those extra passes, in seconds.
    #[serde(default, skip_serializing_if = "is_default")]
    pub tracking_seconds: f64,
}

/// Whether a field holds its default (zero), so the record leaves it out.
fn is_default<T: Default + PartialEq>(x: &T) -> bool {
    *x == T::default()
}

/// One `--track-similarity` measurement: how the exact gradient at the
/// weights, ∇L(w), on a step's batch lines up with the directions the
/// optimizer had at hand before the step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimilarityRecord {
    /// Global step (0-based).
    pub step: u64,
    /// Epoch (0-based).
    pub epoch: usize,
    /// cos(∇L(w), g_h): GraphSAM's perturbation direction against the exact
    /// one (`None` where the optimizer keeps no g_h: Adam, SAM, and
    /// GraphSAM's first step).
    pub cos_perturbation: Option<f64>,
    /// cos(∇L(w), previous updating gradient): the paper's observation that
    /// one step's gradient predicts the next (`None` at the first step).
    pub cos_previous_update: Option<f64>,
    /// ‖∇L(w)‖.
    pub gradient_norm: f64,
    /// Whether the step took its perturbation from the exact gradient
    /// (every SAM step, GraphSAM's anchors): there the estimate was not used.
    pub exact_perturbation: bool,
    /// The median over parameter tensors of cos(∇L(w)ₖ, g_hₖ): the same
    /// comparison tensor by tensor, so a few large tensors cannot decide it.
    #[serde(default)]
    pub tensor_cos_perturbation: Option<f64>,
    /// The median over parameter tensors of cos(∇L(w)ₖ, previous updateₖ).
    #[serde(default)]
    pub tensor_cos_previous_update: Option<f64>,
}

/// Writes the similarity records as CSV and draws them (SVG).
pub fn write_similarity(dir: &Path, records: &[SimilarityRecord], optimizer: &str) -> Result<()> {
    let mut csv = csv::Writer::from_writer(Vec::new());
    for record in records {
        csv.serialize(record)?;
    }
    let bytes = csv.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    write_atomic(&dir.join(files::SIMILARITY_CSV), &bytes)?;
    plot_similarity(&dir.join(files::SIMILARITY_SVG), &[(optimizer, records)])
}

/// Reads similarity records back from a run folder (empty when it has none).
pub fn read_similarity(dir: &Path) -> Result<Vec<SimilarityRecord>> {
    let path = dir.join(files::SIMILARITY_CSV);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut reader =
        csv::Reader::from_path(&path).with_context(|| format!("reading {}", path.display()))?;
    reader
        .deserialize()
        .enumerate()
        .map(|(i, row)| {
            row.with_context(|| {
                format!("{} row {}: not a similarity record", path.display(), i + 1)
            })
        })
        .collect()
}

/// Colours of the runs in one plot, in order (blue, orange, green, red,
/// purple, grey: told apart in print and by most colour-blind readers).
pub(crate) const RUN_COLOURS: [plotters::style::RGBColor; 6] = [
    plotters::style::RGBColor(31, 119, 180),
    plotters::style::RGBColor(230, 120, 0),
    plotters::style::RGBColor(44, 160, 44),
    plotters::style::RGBColor(214, 39, 40),
    plotters::style::RGBColor(148, 103, 189),
    plotters::style::RGBColor(120, 120, 120),
];

/// Draws cosine similarities against the step, one panel per quantity, one
/// line per labelled run.
pub fn plot_similarity(path: &Path, runs: &[(&str, &[SimilarityRecord])]) -> Result<()> {
    use plotters::prelude::*;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 380)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (left, right) = root.split_horizontally(450);
        let last_step = runs
            .iter()
            .flat_map(|(_, r)| r.iter().map(|x| x.step))
            .max()
            .unwrap_or(0)
            .max(1) as f64;
        type Pick = fn(&SimilarityRecord) -> Option<f64>;
        let panels: [(_, Pick, &str); 2] = [
            (
                &left,
                |r| r.cos_previous_update,
                "cos(∇L(w), previous update)",
            ),
            (
                &right,
                |r| r.cos_perturbation.filter(|_| !r.exact_perturbation),
                "cos(∇L(w), g_h) (GraphSAM's estimate)",
            ),
        ];
        for (area, pick, title) in panels {
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 16))
                .margin(12)
                .x_label_area_size(32)
                .y_label_area_size(48)
                .build_cartesian_2d(0f64..last_step, -1f64..1f64)
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .x_desc("step")
                .draw()
                .map_err(plot_err)?;
            let mut labelled = 0;
            for (i, (label, records)) in runs.iter().enumerate() {
                let colour = RUN_COLOURS[i % RUN_COLOURS.len()];
                let points: Vec<(f64, f64)> = records
                    .iter()
                    .filter_map(|r| {
                        pick(r)
                            .filter(|c| c.is_finite())
                            .map(|c| (r.step as f64, c))
                    })
                    .collect();
                if points.is_empty() {
                    continue;
                }
                labelled += 1;
                chart
                    .draw_series(LineSeries::new(points.iter().copied(), colour))
                    .map_err(plot_err)?
                    .label(label.to_string())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour));
            }
            if labelled > 0 {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::LowerRight)
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()
                    .map_err(plot_err)?;
            }
        }
        root.present().map_err(plot_err)?;
    }
    fs::write(path, svg).with_context(|| format!("writing {}", path.display()))
}

/// Writes the whole epoch history as JSON lines and CSV (both atomically).
pub fn write_epoch_history(dir: &Path, history: &[EpochRecord]) -> Result<()> {
    let mut jsonl = String::new();
    for record in history {
        jsonl.push_str(&serde_json::to_string(record)?);
        jsonl.push('\n');
    }
    write_atomic(&dir.join(files::METRICS_JSONL), jsonl.as_bytes())?;

    let mut csv = csv::Writer::from_writer(Vec::new());
    for record in history {
        csv.serialize(record)?;
    }
    let bytes = csv.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    write_atomic(&dir.join(files::METRICS_CSV), &bytes)
}

/// Reads the epoch history back from its JSON-lines file.
pub fn read_epoch_history(dir: &Path) -> Result<Vec<EpochRecord>> {
    let path = dir.join(files::METRICS_JSONL);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("{} line {}: not an epoch record", path.display(), i + 1))
        })
        .collect()
}

/// Median training wall seconds per epoch (0 for no epochs). The median,
/// not the mean, so an epoch stretched by the machine being suspended or
/// shared for a while does not move a run's cost figure.
pub fn median_train_seconds(history: &[EpochRecord]) -> f64 {
    let seconds: Vec<f64> = history.iter().map(|r| r.train_seconds).collect();
    super::stats::median(&seconds).unwrap_or(0.0)
}

/// Mean of the losses one kind of evaluation produced over an epoch.
#[derive(Debug, Clone, Copy, Default)]
pub struct LossMean {
    sum: f64,
    steps: u64,
}

impl LossMean {
    /// Adds one step's loss, if the step evaluated it.
    pub fn add(&mut self, loss: Option<f32>) {
        if let Some(l) = loss {
            self.sum += f64::from(l);
            self.steps += 1;
        }
    }

    /// The mean (`None` when no step evaluated it) and the number of steps.
    pub fn finish(self) -> (Option<f64>, u64) {
        (
            (self.steps > 0).then(|| self.sum / self.steps as f64),
            self.steps,
        )
    }
}

/// Draws the learning curve (train losses and validation metric per epoch) as SVG:
/// L(w) and L(w+ε) as separate series, each where it was evaluated.
pub fn plot_learning_curve(path: &Path, history: &[EpochRecord], metric_name: &str) -> Result<()> {
    use plotters::prelude::*;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 380)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (left, right) = root.split_horizontally(450);
        let epochs = history.len().max(1) as f64;
        let series = |pick: fn(&EpochRecord) -> Option<f64>| -> Vec<(f64, f64)> {
            history
                .iter()
                .filter_map(|r| {
                    pick(r)
                        .filter(|l| l.is_finite())
                        .map(|l| (r.epoch as f64, l))
                })
                .collect()
        };
        let clean = series(|r| r.clean_loss);
        let perturbed = series(|r| r.perturbed_loss);
        let metric: Vec<(f64, f64)> = history
            .iter()
            .filter_map(|r| {
                r.valid_metric
                    .filter(|m| m.is_finite())
                    .map(|m| (r.epoch as f64, m))
            })
            .collect();
        let orange = RGBColor(230, 120, 0);
        // Per panel: its area, its (points, legend label, colour) lines and its title.
        type Line<'a> = (&'a Vec<(f64, f64)>, &'a str, RGBColor);
        let panels: [(_, Vec<Line>, String); 2] = [
            (
                &left,
                vec![(&clean, "L(w)", BLUE), (&perturbed, "L(w+ε)", orange)],
                "train loss".to_string(),
            ),
            (
                &right,
                vec![(&metric, "", RED)],
                format!("validation {metric_name}"),
            ),
        ];
        for (area, lines, title) in panels {
            let all: Vec<(f64, f64)> = lines.iter().flat_map(|l| l.0.iter().copied()).collect();
            let (lo, hi) = value_range(&all);
            let mut chart = ChartBuilder::on(area)
                .caption(&title, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(32)
                .y_label_area_size(56)
                .build_cartesian_2d(0f64..epochs, lo..hi)
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .draw()
                .map_err(plot_err)?;
            let labelled = lines.iter().filter(|l| !l.0.is_empty()).count() > 1;
            for (points, label, colour) in lines {
                if points.is_empty() {
                    continue;
                }
                let drawn = chart
                    .draw_series(LineSeries::new(points.iter().copied(), colour))
                    .map_err(plot_err)?;
                if labelled {
                    drawn
                        .label(label)
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour));
                }
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 2, colour.filled())))
                    .map_err(plot_err)?;
            }
            if labelled {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()
                    .map_err(plot_err)?;
            }
        }
        root.present().map_err(plot_err)?;
    }
    write_atomic(path, svg.as_bytes())
}

/// A y-range with a little margin that never collapses to a point.
pub(crate) fn value_range(series: &[(f64, f64)]) -> (f64, f64) {
    let lo = series.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = series.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    (lo - pad, hi + pad)
}

pub(crate) fn plot_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing a plot: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_files_from_before_the_per_tensor_columns_still_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(files::SIMILARITY_CSV),
            "step,epoch,cos_perturbation,cos_previous_update,gradient_norm,exact_perturbation\n\
             0,0,,,55.2,false\n1,0,0.5,-0.25,40.0,false\n",
        )
        .unwrap();
        let records = read_similarity(dir.path()).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].cos_perturbation, Some(0.5));
        assert_eq!(records[1].tensor_cos_perturbation, None);
        assert_eq!(records[1].tensor_cos_previous_update, None);
    }

    fn record(epoch: usize, loss: f64, metric: Option<f64>) -> EpochRecord {
        EpochRecord {
            epoch,
            clean_loss: Some(loss),
            perturbed_loss: None,
            clean_loss_steps: 4,
            perturbed_loss_steps: 0,
            valid_metric: metric,
            learning_rate: 1e-3,
            rho: 0.05,
            train_seconds: 1.5,
            valid_seconds: 0.25,
            forward_passes: 10,
            backward_passes: 10,
            is_best: epoch == 1,
            tracking_passes: 0,
            tracking_seconds: 0.0,
        }
    }

    #[test]
    fn epoch_history_round_trips_through_jsonl_and_csv() {
        let dir = tempfile::tempdir().unwrap();
        let history = vec![
            record(0, 0.7, Some(0.6)),
            record(1, 0.5, Some(0.8)),
            record(2, 0.4, None),
        ];
        write_epoch_history(dir.path(), &history).unwrap();
        let back = read_epoch_history(dir.path()).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back, history);
        let csv = fs::read_to_string(dir.path().join(files::METRICS_CSV)).unwrap();
        let mut lines = csv.lines();
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("epoch,clean_loss,perturbed_loss,clean_loss_steps,perturbed_loss_steps,valid_metric,learning_rate,rho")
        );
        assert_eq!(lines.clone().count(), 3);
        // A missing metric is an empty CSV cell, not a made-up number.
        assert!(lines.last().unwrap().starts_with("2,0.4,,4,0,,"));
    }

    #[test]
    fn median_train_seconds_ignores_one_stretched_epoch() {
        let timed = |seconds: &[f64]| -> Vec<EpochRecord> {
            seconds
                .iter()
                .enumerate()
                .map(|(i, &s)| EpochRecord {
                    train_seconds: s,
                    ..record(i, 0.5, None)
                })
                .collect()
        };
        // A machine suspended for an hour during epoch 1 does not count.
        assert_eq!(median_train_seconds(&timed(&[2.0, 3600.0, 3.0])), 3.0);
        assert_eq!(median_train_seconds(&[]), 0.0);
    }

    #[test]
    fn atomic_write_replaces_whole_file_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"first version, longer").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "second");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn learning_curve_is_an_svg_with_both_panels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(files::CURVE_SVG);
        let history = vec![record(0, 0.7, Some(0.6)), record(1, 0.5, Some(0.8))];
        plot_learning_curve(&path, &history, "ROC-AUC").unwrap();
        let svg = fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("train loss") && svg.contains("validation ROC-AUC"));
    }
}
