//! Optimizer comparisons: the grid of (dataset, optimizer, seed) cells, its
//! deterministic shards, and the table assembled from the cells' run
//! summaries (Markdown, CSV, JSON and an SVG plot), with paired differences:
//! cells that share dataset and seed share split, batches and initial
//! weights, so each optimizer is compared with Adam (and GraphSAM with SAM)
//! seed by seed.
//!
//! Every cell is an ordinary run folder `<out>/<dataset>/<optimizer>/seed-<k>/`
//! written by [`super::run_seed`], so a comparison can be resumed, sharded
//! over machines and merged again from whatever summaries exist.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::record::{
    SimilarityRecord, files, median_train_seconds, plot_similarity, read_epoch_history, read_json,
    read_similarity, write_atomic, write_json,
};
use super::run::RunConfig;
use super::run::RunSummary;
use super::stats::{PairedDifference, mean_std};

/// File at the top of a comparison folder that names its grid.
pub const GRID_FILE: &str = "compare.json";
/// Result table as Markdown.
pub const RESULTS_MD: &str = "results.md";
/// Result table as CSV.
pub const RESULTS_CSV: &str = "results.csv";
/// Paired differences as CSV.
pub const PAIRED_CSV: &str = "paired.csv";
/// Result table (and missing cells) as JSON.
pub const RESULTS_JSON: &str = "results.json";
/// Test metric against seconds per epoch, one panel per dataset.
pub const RESULTS_SVG: &str = "results.svg";

/// One training run of a comparison.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cell {
    /// Dataset name.
    pub dataset: String,
    /// Optimizer name.
    pub optimizer: String,
    /// Seed of split, batch order and weights.
    pub seed: u64,
}

impl Cell {
    /// The cell's run folder under a comparison folder.
    pub fn dir(&self, out: &Path) -> PathBuf {
        out.join(&self.dataset)
            .join(&self.optimizer)
            .join(format!("seed-{}", self.seed))
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.dataset, self.optimizer, self.seed)
    }
}

impl FromStr for Cell {
    type Err = anyhow::Error;
    /// Parses `dataset/optimizer/seed`.
    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        let [dataset, optimizer, seed] = parts.as_slice() else {
            bail!("cell `{s}`: expected dataset/optimizer/seed");
        };
        let seed = seed
            .parse()
            .with_context(|| format!("cell `{s}`: seed `{seed}` is not a number"))?;
        if dataset.is_empty() || optimizer.is_empty() {
            bail!("cell `{s}`: empty dataset or optimizer name");
        }
        Ok(Cell {
            dataset: dataset.to_string(),
            optimizer: optimizer.to_string(),
            seed,
        })
    }
}

/// The datasets × optimizers × seeds of a comparison (written as `compare.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grid {
    /// Dataset names, in the order asked for.
    pub datasets: Vec<String>,
    /// Optimizer names, in the order asked for.
    pub optimizers: Vec<String>,
    /// Seeds 0..seeds.
    pub seeds: u64,
}

impl Grid {
    /// All cells in the fixed order dataset, then optimizer, then seed.
    pub fn cells(&self) -> Vec<Cell> {
        let mut cells = Vec::new();
        for dataset in &self.datasets {
            for optimizer in &self.optimizers {
                for seed in 0..self.seeds {
                    cells.push(Cell {
                        dataset: dataset.clone(),
                        optimizer: optimizer.clone(),
                        seed,
                    });
                }
            }
        }
        cells
    }

    /// This grid extended by another (names appended in order, the larger seed count).
    pub fn union(&self, other: &Grid) -> Grid {
        let extend = |a: &[String], b: &[String]| {
            let mut v = a.to_vec();
            for x in b {
                if !v.contains(x) {
                    v.push(x.clone());
                }
            }
            v
        };
        Grid {
            datasets: extend(&self.datasets, &other.datasets),
            optimizers: extend(&self.optimizers, &other.optimizers),
            seeds: self.seeds.max(other.seeds),
        }
    }

    /// The grid implied by existing summaries: every dataset and optimizer
    /// seen, seeds up to the largest seen.
    pub fn inferred(summaries: &[RunSummary]) -> Grid {
        let mut grid = Grid {
            datasets: Vec::new(),
            optimizers: Vec::new(),
            seeds: 0,
        };
        for s in summaries {
            if !grid.datasets.contains(&s.dataset) {
                grid.datasets.push(s.dataset.clone());
            }
            if !grid.optimizers.contains(&s.optimizer) {
                grid.optimizers.push(s.optimizer.clone());
            }
            grid.seeds = grid.seeds.max(s.seed + 1);
        }
        grid
    }
}

/// Slice `index` of `count` (0-based: `0/8` … `7/8`, matching
/// `$SLURM_ARRAY_TASK_ID` of `--array=0-7`): the grid's cells are dealt
/// round-robin, so cell k belongs to slice k mod count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which slice, 0-based.
    pub index: usize,
    /// Number of slices.
    pub count: usize,
}

impl FromStr for Shard {
    type Err = crate::ParseError;
    fn from_str(s: &str) -> std::result::Result<Self, crate::ParseError> {
        let bad = |expected: String| crate::ParseError::new("shard", s, expected);
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| bad("expected INDEX/COUNT, e.g. 0/8 (0-based)".into()))?;
        let index: usize = i
            .trim()
            .parse()
            .map_err(|_| bad(format!("index `{i}` is not a whole number")))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| bad(format!("count `{n}` is not a whole number")))?;
        if count == 0 {
            return Err(bad("the count must be at least 1".into()));
        }
        if index >= count {
            return Err(bad(format!(
                "index {index} is out of range; shards are 0-based, 0..={}",
                count - 1
            )));
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// The cells of this slice, in grid order.
    pub fn select(&self, cells: &[Cell]) -> Vec<Cell> {
        cells
            .iter()
            .skip(self.index)
            .step_by(self.count)
            .cloned()
            .collect()
    }
}

/// Reads every finished cell summary (`seed-*/summary.json`) under `folder`,
/// at any depth, sorted by dataset, optimizer and seed. Each cell's seconds
/// per epoch are the median over its `metrics.jsonl` where that file exists.
pub fn collect_summaries(folder: &Path) -> Result<Vec<RunSummary>> {
    let mut found = Vec::new();
    walk(folder, &mut found)?;
    found.sort_by(|a: &RunSummary, b| {
        (&a.dataset, &a.optimizer, a.seed).cmp(&(&b.dataset, &b.optimizer, b.seed))
    });
    Ok(found)
}

fn walk(dir: &Path, found: &mut Vec<RunSummary>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("reading folder {}", dir.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading folder {}", dir.display()))?
            .path();
        if !path.is_dir() {
            continue;
        }
        let is_seed = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("seed-"));
        let summary = path.join(files::SUMMARY);
        if is_seed && summary.is_file() {
            let mut run: RunSummary = read_json(&summary)?;
            // Cost from the per-epoch record where it is kept, so cells
            // written before summaries held the median read the same way.
            if path.join(files::METRICS_JSONL).is_file() {
                run.seconds_per_epoch = median_train_seconds(&read_epoch_history(&path)?);
            }
            found.push(run);
        } else {
            walk(&path, found)?;
        }
    }
    Ok(())
}

/// One row of the result table: one optimizer on one dataset, over its seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRow {
    /// Dataset name.
    pub dataset: String,
    /// Optimizer name.
    pub optimizer: String,
    /// Metric name.
    pub metric: String,
    /// Whether a larger metric is better.
    pub higher_is_better: bool,
    /// Mean test metric over the finished seeds.
    pub test_mean: f64,
    /// Sample standard deviation of the test metric (0 for one seed).
    pub test_std: f64,
    /// Mean best-validation epoch (0-based).
    pub mean_best_epoch: f64,
    /// Mean over seeds of each run's median training seconds per epoch.
    pub seconds_per_epoch: f64,
    /// Mean forward+backward passes per epoch.
    pub passes_per_epoch: f64,
    /// Seconds per epoch ÷ Adam's on the same dataset (`None` without Adam).
    pub time_ratio_to_adam: Option<f64>,
    /// Seeds finished.
    pub seeds_finished: usize,
    /// Seeds in the grid.
    pub seeds_expected: u64,
}

/// One optimizer against a baseline on one dataset, seed by seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedRow {
    /// Dataset name.
    pub dataset: String,
    /// The optimizer compared.
    pub optimizer: String,
    /// What it is compared with (Adam, or SAM for GraphSAM).
    pub baseline: String,
    /// Metric name.
    pub metric: String,
    /// Whether a larger metric is better.
    pub higher_is_better: bool,
    /// Test metric of `optimizer` minus `baseline`'s over the seeds both finished.
    pub difference: PairedDifference,
    /// Mean seconds per epoch of `optimizer` ÷ `baseline`'s, over the same seeds.
    pub time_ratio: f64,
    /// Seeds in the grid.
    pub seeds_expected: u64,
}

/// Draws `similarity-<dataset>.svg` in `out` for every dataset whose cells
/// ran with `--track-similarity`: one line per optimizer, from its lowest
/// seed with records. Returns the files written (none when nothing tracked).
pub fn plot_grid_similarity(out: &Path, grid: &Grid) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for dataset in &grid.datasets {
        let mut runs: Vec<(String, Vec<SimilarityRecord>)> = Vec::new();
        for optimizer in &grid.optimizers {
            for seed in 0..grid.seeds {
                let cell = Cell {
                    dataset: dataset.clone(),
                    optimizer: optimizer.clone(),
                    seed,
                };
                let records = read_similarity(&cell.dir(out))?;
                if !records.is_empty() {
                    runs.push((format!("{optimizer} (seed {seed})"), records));
                    break;
                }
            }
        }
        if runs.is_empty() {
            continue;
        }
        let path = out.join(format!("similarity-{dataset}.svg"));
        let lines: Vec<(&str, &[SimilarityRecord])> = runs
            .iter()
            .map(|(label, records)| (label.as_str(), records.as_slice()))
            .collect();
        plot_similarity(&path, &lines)?;
        written.push(path);
    }
    Ok(written)
}

/// The assembled comparison: table rows and the grid cells without a summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The grid the table was checked against.
    pub grid: Grid,
    /// One row per (dataset, optimizer) with at least one finished seed, in grid order.
    pub rows: Vec<ComparisonRow>,
    /// Every optimizer against Adam and GraphSAM against SAM, per dataset, in grid order.
    #[serde(default)]
    pub pairs: Vec<PairedRow>,
    /// Cells of the grid with no summary.
    pub missing: Vec<Cell>,
    /// The machines the finished cells were timed on, with their cell
    /// counts (`None`: not recorded), most cells first.
    #[serde(default)]
    pub machines: Vec<(Option<String>, usize)>,
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.collect();
    mean_std(&v).0
}

/// Builds the table from summaries; `grid` (else the one the summaries
/// imply) decides the row order and which cells are missing. Summaries
/// outside the grid extend it.
pub fn compare(summaries: &[RunSummary], grid: Option<&Grid>) -> Comparison {
    let inferred = Grid::inferred(summaries);
    let grid = match grid {
        Some(g) => g.union(&inferred),
        None => inferred,
    };
    let mut by_pair: BTreeMap<(&str, &str), Vec<&RunSummary>> = BTreeMap::new();
    let mut done: BTreeSet<Cell> = BTreeSet::new();
    for s in summaries {
        // Two folders holding the same cell: count it once.
        let cell = Cell {
            dataset: s.dataset.clone(),
            optimizer: s.optimizer.clone(),
            seed: s.seed,
        };
        if done.insert(cell) {
            by_pair
                .entry((s.dataset.as_str(), s.optimizer.as_str()))
                .or_default()
                .push(s);
        }
    }
    let mut rows = Vec::new();
    for dataset in &grid.datasets {
        let adam = by_pair
            .get(&(dataset.as_str(), "adam"))
            .map(|runs| mean(runs.iter().map(|s| s.seconds_per_epoch)));
        for optimizer in &grid.optimizers {
            let Some(runs) = by_pair.get(&(dataset.as_str(), optimizer.as_str())) else {
                continue;
            };
            let tests: Vec<f64> = runs.iter().map(|s| s.test.value).collect();
            let (test_mean, test_std) = mean_std(&tests);
            let seconds = mean(runs.iter().map(|s| s.seconds_per_epoch));
            let metric = runs[0].metric;
            rows.push(ComparisonRow {
                dataset: dataset.clone(),
                optimizer: optimizer.clone(),
                metric: metric.name().to_string(),
                higher_is_better: metric.higher_is_better(),
                test_mean,
                test_std,
                mean_best_epoch: mean(runs.iter().map(|s| s.best_epoch as f64)),
                seconds_per_epoch: seconds,
                passes_per_epoch: mean(runs.iter().map(|s| s.passes_per_epoch)),
                time_ratio_to_adam: adam.filter(|a| *a > 0.0).map(|a| seconds / a),
                seeds_finished: runs.len(),
                seeds_expected: grid.seeds,
            });
        }
    }
    let mut pairs = Vec::new();
    for dataset in &grid.datasets {
        let mut against = |optimizer: &str, baseline: &str| {
            let a = by_pair.get(&(dataset.as_str(), optimizer));
            let b = by_pair.get(&(dataset.as_str(), baseline));
            if let (Some(a), Some(b)) = (a, b)
                && let Some(row) = paired(dataset, optimizer, baseline, a, b, grid.seeds)
            {
                pairs.push(row);
            }
        };
        for optimizer in grid.optimizers.iter().filter(|o| *o != "adam") {
            against(optimizer, "adam");
        }
        against("graphsam", "sam");
    }
    let missing = grid
        .cells()
        .into_iter()
        .filter(|c| !done.contains(c))
        .collect();
    let mut machines: Vec<(Option<String>, usize)> = Vec::new();
    for s in summaries {
        match machines.iter_mut().find(|(m, _)| *m == s.machine) {
            Some((_, n)) => *n += 1,
            None => machines.push((s.machine.clone(), 1)),
        }
    }
    machines.sort_by_key(|m| std::cmp::Reverse(m.1));
    Comparison {
        grid,
        rows,
        pairs,
        missing,
        machines,
    }
}

/// `optimizer` against `baseline` over the seeds both finished on the same
/// split (a cell trained with another `--split-seed` is not its pair).
fn paired(
    dataset: &str,
    optimizer: &str,
    baseline: &str,
    a: &[&RunSummary],
    b: &[&RunSummary],
    seeds_expected: u64,
) -> Option<PairedRow> {
    let matched: Vec<(&RunSummary, &RunSummary)> = a
        .iter()
        .filter_map(|x| {
            b.iter()
                .find(|y| y.seed == x.seed && y.split_seed == x.split_seed)
                .map(|y| (*x, *y))
        })
        .collect();
    let metric = matched.first()?.0.metric;
    let values: Vec<(f64, f64)> = matched
        .iter()
        .map(|(x, y)| (x.test.value, y.test.value))
        .collect();
    let difference = PairedDifference::of(&values, metric.higher_is_better())?;
    let seconds = |pick: fn(&(&RunSummary, &RunSummary)) -> f64| mean(matched.iter().map(pick));
    let base_seconds = seconds(|p| p.1.seconds_per_epoch);
    Some(PairedRow {
        dataset: dataset.to_string(),
        optimizer: optimizer.to_string(),
        baseline: baseline.to_string(),
        metric: metric.name().to_string(),
        higher_is_better: metric.higher_is_better(),
        difference,
        time_ratio: if base_seconds > 0.0 {
            seconds(|p| p.0.seconds_per_epoch) / base_seconds
        } else {
            f64::NAN
        },
        seeds_expected,
    })
}

impl PairedRow {
    /// The confidence interval as text, or why there is none.
    fn interval_text(&self) -> String {
        match self.difference.ci95 {
            Some((lo, hi)) => format!("[{lo:+.4}, {hi:+.4}]"),
            None => format!("no interval ({} seed)", self.difference.pairs),
        }
    }
}

impl Comparison {
    /// The table as Markdown, followed by the missing cells (if any).
    pub fn markdown(&self) -> String {
        let mut md = String::from(
            "| dataset | optimizer | metric | test (mean ± std) | best epoch (0-based) | s/epoch | passes/epoch | time ÷ Adam | seeds |\n\
             |---|---|---|---|---:|---:|---:|---:|---:|\n",
        );
        for r in &self.rows {
            let arrow = if r.higher_is_better { "↑" } else { "↓" };
            md.push_str(&format!(
                "| {} | {} | {} {arrow} | {:.4} ± {:.4} | {:.1} | {:.3} | {:.1} | {} | {}/{} |\n",
                r.dataset,
                r.optimizer,
                r.metric,
                r.test_mean,
                r.test_std,
                r.mean_best_epoch,
                r.seconds_per_epoch,
                r.passes_per_epoch,
                r.time_ratio_to_adam
                    .map_or("-".to_string(), |t| format!("{t:.2}")),
                r.seeds_finished,
                r.seeds_expected,
            ));
        }
        if !self.pairs.is_empty() {
            md.push_str(
                "\nPaired differences, optimizer − baseline on the same dataset and seed \
                 (same split, batches and initial weights); 95 % CI by Student's t over seeds, \
                 `*` where it excludes 0:\n\n\
                 | dataset | optimizer − baseline | metric | Δ test (mean) | 95 % CI | better / worse / tied | time ratio | pairs |\n\
                 |---|---|---|---:|---|---:|---:|---:|\n",
            );
            for p in &self.pairs {
                let arrow = if p.higher_is_better { "↑" } else { "↓" };
                let d = &p.difference;
                md.push_str(&format!(
                    "| {} | {} − {} | {} {arrow} | {:+.4}{} | {} | {} / {} / {} | {:.2} | {}/{} |\n",
                    p.dataset,
                    p.optimizer,
                    p.baseline,
                    p.metric,
                    d.mean,
                    if d.significant() { " *" } else { "" },
                    p.interval_text(),
                    d.wins,
                    d.losses,
                    d.ties,
                    p.time_ratio,
                    d.pairs,
                    p.seeds_expected,
                ));
            }
        }
        let name = |m: &Option<String>| m.clone().unwrap_or_else(|| "not recorded".into());
        match self.machines.as_slice() {
            [] | [(None, _)] => {}
            [(Some(m), _)] => md.push_str(&format!("\nTimed on one machine: {m}.\n")),
            several => {
                let list: Vec<String> = several
                    .iter()
                    .map(|(m, n)| format!("{} ({n} cells)", name(m)))
                    .collect();
                md.push_str(&format!(
                    "\nTimes come from {} machines, so s/epoch and time ratios compare \
                     only cells of one machine (passes/epoch compare everywhere): {}.\n",
                    several.len(),
                    list.join("; ")
                ));
            }
        }
        if !self.missing.is_empty() {
            md.push_str(&format!("\nMissing cells ({}): ", self.missing.len()));
            let names: Vec<String> = self.missing.iter().map(|c| c.to_string()).collect();
            md.push_str(&names.join(", "));
            md.push('\n');
        }
        md
    }

    /// The table as CSV (one row per dataset and optimizer).
    pub fn csv(&self) -> Result<String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "dataset",
            "optimizer",
            "metric",
            "test_mean",
            "test_std",
            "mean_best_epoch",
            "seconds_per_epoch",
            "passes_per_epoch",
            "time_ratio_to_adam",
            "seeds_finished",
            "seeds_expected",
        ])?;
        for r in &self.rows {
            w.write_record([
                r.dataset.clone(),
                r.optimizer.clone(),
                r.metric.clone(),
                r.test_mean.to_string(),
                r.test_std.to_string(),
                r.mean_best_epoch.to_string(),
                r.seconds_per_epoch.to_string(),
                r.passes_per_epoch.to_string(),
                r.time_ratio_to_adam
                    .map_or(String::new(), |t| t.to_string()),
                r.seeds_finished.to_string(),
                r.seeds_expected.to_string(),
            ])?;
        }
        let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(String::from_utf8(bytes)?)
    }

    /// The paired differences as CSV (one row per dataset, optimizer and
    /// baseline; empty interval bounds with fewer than two pairs).
    pub fn paired_csv(&self) -> Result<String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "dataset",
            "optimizer",
            "baseline",
            "metric",
            "delta_mean",
            "ci95_low",
            "ci95_high",
            "wins",
            "losses",
            "ties",
            "time_ratio",
            "pairs",
            "seeds_expected",
        ])?;
        for p in &self.pairs {
            let d = &p.difference;
            let (lo, hi) = d.ci95.map_or((String::new(), String::new()), |(l, h)| {
                (l.to_string(), h.to_string())
            });
            w.write_record([
                p.dataset.clone(),
                p.optimizer.clone(),
                p.baseline.clone(),
                p.metric.clone(),
                d.mean.to_string(),
                lo,
                hi,
                d.wins.to_string(),
                d.losses.to_string(),
                d.ties.to_string(),
                p.time_ratio.to_string(),
                d.pairs.to_string(),
                p.seeds_expected.to_string(),
            ])?;
        }
        let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(String::from_utf8(bytes)?)
    }

    /// Writes `results.md`, `results.csv`, `paired.csv`, `results.json` and
    /// `results.svg` into `out`.
    pub fn write(&self, out: &Path) -> Result<()> {
        write_atomic(&out.join(RESULTS_MD), self.markdown().as_bytes())?;
        write_atomic(&out.join(RESULTS_CSV), self.csv()?.as_bytes())?;
        write_atomic(&out.join(PAIRED_CSV), self.paired_csv()?.as_bytes())?;
        write_json(&out.join(RESULTS_JSON), self)?;
        self.plot(&out.join(RESULTS_SVG))?;
        plot_grid_similarity(out, &self.grid)?;
        Ok(())
    }

    /// Test metric (y) against seconds per epoch (x), one labelled point per
    /// optimizer, one panel per dataset; below it, where pairs exist, each
    /// paired difference with its 95 % interval.
    pub fn plot(&self, path: &Path) -> Result<()> {
        use plotters::prelude::*;

        let datasets: Vec<&String> = self
            .grid
            .datasets
            .iter()
            .filter(|d| self.rows.iter().any(|r| &r.dataset == *d))
            .collect();
        let panels = datasets.len().max(1);
        let rows = if self.pairs.is_empty() { 1 } else { 2 };
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (420 * panels as u32, 360 * rows as u32))
                .into_drawing_area();
            root.fill(&WHITE).map_err(plot_err)?;
            let areas = root.split_evenly((rows, panels));
            for (area, dataset) in areas.iter().skip(panels).zip(&datasets) {
                self.plot_pairs(area, dataset)?;
            }
            for (area, dataset) in areas.iter().zip(&datasets) {
                let rows: Vec<&ComparisonRow> = self
                    .rows
                    .iter()
                    .filter(|r| &r.dataset == *dataset)
                    .collect();
                let points: Vec<(f64, f64, &str)> = rows
                    .iter()
                    .filter(|r| r.test_mean.is_finite() && r.seconds_per_epoch.is_finite())
                    .map(|r| (r.seconds_per_epoch, r.test_mean, r.optimizer.as_str()))
                    .collect();
                let (x0, x1) = padded(points.iter().map(|p| p.0), true);
                let (y0, y1) = padded(points.iter().map(|p| p.1), false);
                let metric = rows.first().map_or("", |r| r.metric.as_str());
                let mut chart = ChartBuilder::on(area)
                    .caption(dataset, ("sans-serif", 18))
                    .margin(14)
                    .x_label_area_size(34)
                    .y_label_area_size(58)
                    .build_cartesian_2d(x0..x1, y0..y1)
                    .map_err(plot_err)?;
                chart
                    .configure_mesh()
                    .x_desc("seconds per epoch")
                    .y_desc(format!("test {metric}"))
                    .draw()
                    .map_err(plot_err)?;
                for (k, &(x, y, name)) in points.iter().enumerate() {
                    let colour = optimizer_colour(name, k);
                    // Label offset from the point so it never hides the marker.
                    let marker = EmptyElement::at((x, y))
                        + Circle::new((0, 0), 5, colour.filled())
                        + Text::new(name.to_string(), (7, -16), ("sans-serif", 14).into_font());
                    chart
                        .draw_series(std::iter::once(marker))
                        .map_err(plot_err)?;
                }
            }
            root.present().map_err(plot_err)?;
        }
        write_atomic(path, svg.as_bytes())
    }
}

impl Comparison {
    /// One dataset's paired differences as points with 95 % error bars
    /// around a line at 0 (a lone pair: the point only).
    fn plot_pairs<DB: plotters::prelude::DrawingBackend>(
        &self,
        area: &plotters::prelude::DrawingArea<DB, plotters::coord::Shift>,
        dataset: &str,
    ) -> Result<()> {
        use plotters::prelude::*;

        let pairs: Vec<&PairedRow> = self
            .pairs
            .iter()
            .filter(|p| p.dataset == dataset && p.difference.mean.is_finite())
            .collect();
        if pairs.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = pairs
            .iter()
            .map(|p| format!("{}−{}", p.optimizer, p.baseline))
            .collect();
        let ends = pairs.iter().flat_map(|p| {
            let d = &p.difference;
            let (lo, hi) = d.ci95.unwrap_or((d.mean, d.mean));
            [lo, hi, 0.0]
        });
        let (y0, y1) = padded(ends, false);
        let metric = pairs[0].metric.as_str();
        let arrow = if pairs[0].higher_is_better {
            "higher is better"
        } else {
            "lower is better"
        };
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{dataset}: paired Δ test {metric}"),
                ("sans-serif", 16),
            )
            .margin(14)
            .x_label_area_size(34)
            .y_label_area_size(58)
            .build_cartesian_2d(-0.5..pairs.len() as f64 - 0.5, y0..y1)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(pairs.len())
            .x_label_formatter(&|x| {
                let k = x.round();
                if (x - k).abs() < 1e-6 && k >= 0.0 {
                    names.get(k as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc(format!("Δ ({arrow}), 95 % CI"))
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(LineSeries::new(
                [(-0.5, 0.0), (pairs.len() as f64 - 0.5, 0.0)],
                BLACK.mix(0.4),
            ))
            .map_err(plot_err)?;
        for (k, p) in pairs.iter().enumerate() {
            let colour = optimizer_colour(&p.optimizer, k);
            let d = &p.difference;
            let x = k as f64;
            if let Some((lo, hi)) = d.ci95 {
                // The interval as a vertical bar with caps.
                let cap = 0.08;
                let bar = [
                    vec![(x, lo), (x, hi)],
                    vec![(x - cap, lo), (x + cap, lo)],
                    vec![(x - cap, hi), (x + cap, hi)],
                ];
                chart
                    .draw_series(
                        bar.into_iter()
                            .map(|p| PathElement::new(p, colour.stroke_width(2))),
                    )
                    .map_err(plot_err)?;
            }
            chart
                .draw_series(std::iter::once(Circle::new(
                    (x, d.mean),
                    5,
                    colour.filled(),
                )))
                .map_err(plot_err)?;
        }
        Ok(())
    }
}

/// A finished cell is only reused if it was trained with `config` (the
/// graphsam version aside); otherwise the table would mix settings silently.
pub fn check_finished_config(dir: &Path, config: &RunConfig) -> Result<()> {
    let config_path = dir.join(files::CONFIG);
    if !dir.join(files::SUMMARY).exists() || !config_path.exists() {
        return Ok(());
    }
    let existing: RunConfig = read_json(&config_path)?;
    let same = RunConfig {
        graphsam_version: config.graphsam_version.clone(),
        ..existing
    } == *config;
    if !same {
        bail!(
            "{} holds a finished run with a different configuration; \
             use another --out folder or delete that cell",
            dir.display()
        );
    }
    Ok(())
}

/// What [`run_in_processes`] reports as it goes.
#[derive(Debug)]
pub enum CellEvent<'a> {
    /// The pool starts: `cells` cells over `jobs` processes of `threads` threads.
    Started {
        /// Cells to run.
        cells: usize,
        /// Child processes at once.
        jobs: usize,
        /// Threads per child (`RAYON_NUM_THREADS`).
        threads: usize,
    },
    /// A cell's process exited successfully.
    Finished {
        /// The cell.
        cell: &'a Cell,
        /// Cells finished or failed so far, this one included.
        done: usize,
        /// Cells in all.
        total: usize,
    },
    /// A cell's process failed or could not start.
    Failed {
        /// The cell.
        cell: &'a Cell,
        /// Its log file, if it got one.
        log: Option<&'a Path>,
        /// The last lines of its log, or why it could not start.
        log_tail: String,
    },
}

/// Runs each cell as `<program...> <args> --cell <cell>` (`program`: the
/// executable and any leading arguments, e.g. `python -m graphsam._cli`) in
/// at most `jobs` child processes at once, each with `RAYON_NUM_THREADS` set to its share of the
/// cores and its output in `<out>/logs/`. A failed cell is reported and the
/// others still run; the error lists every failed cell.
pub fn run_in_processes(
    program: &[std::ffi::OsString],
    args: &[std::ffi::OsString],
    out: &Path,
    cells: &[Cell],
    jobs: usize,
    on_event: &mut (dyn FnMut(CellEvent) + Send),
) -> Result<()> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / jobs.max(1)).max(1);
    let logs = out.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    on_event(CellEvent::Started {
        cells: cells.len(),
        jobs,
        threads,
    });
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failed = Mutex::new(Vec::new());
    let on_event = Mutex::new(on_event);
    let report = |event: CellEvent| (on_event.lock().unwrap_or_else(|e| e.into_inner()))(event);
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(cells.len()) {
            scope.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::SeqCst);
                    let Some(cell) = cells.get(k) else { break };
                    let log = logs.join(format!(
                        "{}-{}-seed-{}.log",
                        cell.dataset, cell.optimizer, cell.seed
                    ));
                    let result = (|| -> Result<bool> {
                        let file = std::fs::File::create(&log)
                            .with_context(|| format!("creating {}", log.display()))?;
                        let (exe, leading) = program
                            .split_first()
                            .context("no program to run the cells with")?;
                        let status = std::process::Command::new(exe)
                            .args(leading)
                            .args(args)
                            .arg("--cell")
                            .arg(cell.to_string())
                            .env("RAYON_NUM_THREADS", threads.to_string())
                            .stdin(std::process::Stdio::null())
                            .stdout(file.try_clone()?)
                            .stderr(file)
                            .status()
                            .with_context(|| format!("starting {}", exe.to_string_lossy()))?;
                        Ok(status.success())
                    })();
                    let done = done.fetch_add(1, Ordering::SeqCst) + 1;
                    match result {
                        Ok(true) => report(CellEvent::Finished {
                            cell,
                            done,
                            total: cells.len(),
                        }),
                        outcome => {
                            let (log, log_tail) = match outcome {
                                Err(e) => (None, format!("{e:#}")),
                                _ => (Some(log.as_path()), tail(&log, 15)),
                            };
                            report(CellEvent::Failed {
                                cell,
                                log,
                                log_tail,
                            });
                            failed
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(cell.to_string());
                        }
                    }
                }
            });
        }
    });
    let failed = failed.into_inner().unwrap_or_else(|e| e.into_inner());
    if !failed.is_empty() {
        bail!("{} cell(s) failed: {}", failed.len(), failed.join(", "));
    }
    Ok(())
}

/// The last `lines` lines of a text file, indented (empty if unreadable).
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Fixed colours for the usual optimizers, so plots of different runs agree.
fn optimizer_colour(name: &str, k: usize) -> plotters::style::RGBAColor {
    use plotters::style::{BLACK, BLUE, Color, Palette, Palette99, RED};
    match name {
        "adam" => BLACK.to_rgba(),
        "sam" => BLUE.to_rgba(),
        "graphsam" => RED.to_rgba(),
        _ => Palette99::pick(k + 3).to_rgba(),
    }
}

/// An axis range around the values with a margin (from 0 for times) that
/// never collapses to a point.
fn padded(values: impl Iterator<Item = f64>, from_zero: bool) -> (f64, f64) {
    let v: Vec<f64> = values.collect();
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.15).max(hi.abs() * 0.05).max(1e-6);
    // Times start at 0 and leave room on the right for the labels.
    if from_zero {
        (0.0, hi + 3.0 * pad)
    } else {
        (lo - pad, hi + 2.0 * pad)
    }
}

fn plot_err<E: fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the comparison plot: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Metric, MetricScore};

    fn summary(dataset: &str, optimizer: &str, seed: u64, test: f64, seconds: f64) -> RunSummary {
        RunSummary {
            dataset: dataset.into(),
            optimizer: optimizer.into(),
            model: "compt".into(),
            seed,
            split_seed: None,
            metric: Metric::Rmse,
            test: MetricScore {
                metric: Metric::Rmse,
                value: test,
                per_task: vec![Some(test)],
            },
            best_valid: Some(1.0),
            best_epoch: seed as usize,
            epochs_run: 3,
            stopped_early: false,
            split_sizes: [8, 1, 1],
            seconds_per_epoch: seconds,
            passes_per_epoch: 4.0,
            wall_seconds: 1.0,
            machine: None,
        }
    }

    #[test]
    fn the_table_names_the_machines_its_times_come_from() {
        let on = |mut s: RunSummary, m: Option<&str>| {
            s.machine = m.map(str::to_string);
            s
        };
        let grid = Grid {
            datasets: vec!["esol".into()],
            optimizers: vec!["adam".into()],
            seeds: 3,
        };
        let one = compare(
            &[
                on(summary("esol", "adam", 0, 1.0, 2.0), Some("CPU A")),
                on(summary("esol", "adam", 1, 1.0, 2.0), Some("CPU A")),
            ],
            Some(&grid),
        );
        assert!(one.markdown().contains("Timed on one machine: CPU A."));
        let mixed = compare(
            &[
                on(summary("esol", "adam", 0, 1.0, 2.0), Some("CPU B")),
                on(summary("esol", "adam", 1, 1.0, 2.0), Some("CPU A")),
                on(summary("esol", "adam", 2, 1.0, 2.0), Some("CPU A")),
                on(summary("esol", "adam", 3, 1.0, 2.0), None),
            ],
            Some(&grid),
        );
        let md = mixed.markdown();
        assert!(
            md.contains("Times come from 3 machines")
                && md.contains("CPU A (2 cells); CPU B (1 cells); not recorded (1 cells)"),
            "{md}"
        );
    }

    #[test]
    fn table_means_stds_and_time_ratios_are_per_dataset() {
        let s = vec![
            summary("esol", "adam", 0, 1.0, 2.0),
            summary("esol", "adam", 1, 3.0, 2.0),
            summary("esol", "sam", 0, 0.5, 4.0),
            summary("bbbp", "sam", 0, 0.7, 1.0),
        ];
        let grid = Grid {
            datasets: vec!["esol".into(), "bbbp".into()],
            optimizers: vec!["adam".into(), "sam".into()],
            seeds: 2,
        };
        let c = compare(&s, Some(&grid));
        assert_eq!(c.rows.len(), 3);
        let adam = &c.rows[0];
        assert_eq!(
            (adam.dataset.as_str(), adam.optimizer.as_str()),
            ("esol", "adam")
        );
        assert_eq!(adam.test_mean, 2.0);
        assert!((adam.test_std - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(adam.mean_best_epoch, 0.5);
        assert_eq!(adam.time_ratio_to_adam, Some(1.0));
        assert_eq!(c.rows[1].time_ratio_to_adam, Some(2.0));
        assert_eq!(c.rows[2].time_ratio_to_adam, None, "no Adam on bbbp");
        let missing: Vec<String> = c.missing.iter().map(|m| m.to_string()).collect();
        assert_eq!(
            missing,
            ["esol/sam/1", "bbbp/adam/0", "bbbp/adam/1", "bbbp/sam/1"]
        );
        let md = c.markdown();
        assert!(
            md.contains("| bbbp | sam | rmse ↓ | 0.7000 ± 0.0000 | 0.0 | 1.000 | 4.0 | - | 1/2 |"),
            "{md}"
        );
        assert!(
            !md.contains("machine"),
            "older records name no machine: {md}"
        );
        let csv = c.csv().unwrap();
        assert_eq!(csv.lines().count(), 4);
        assert!(
            csv.lines()
                .nth(3)
                .unwrap()
                .starts_with("bbbp,sam,rmse,0.7,0,0,1,4,,1,2"),
            "{csv}"
        );
    }

    #[test]
    fn paired_differences_match_seeds_and_count_wins_by_the_metric_direction() {
        // RMSE (lower is better). Seeds 0-2 for adam, sam, graphsam; graphsam misses seed 2.
        let s = vec![
            summary("esol", "adam", 0, 1.00, 2.0),
            summary("esol", "adam", 1, 1.10, 2.0),
            summary("esol", "adam", 2, 0.90, 2.0),
            summary("esol", "sam", 0, 0.90, 4.0),
            summary("esol", "sam", 1, 1.00, 4.0),
            summary("esol", "sam", 2, 0.81, 4.0),
            summary("esol", "graphsam", 0, 0.95, 2.2),
            summary("esol", "graphsam", 1, 0.98, 2.0),
        ];
        let c = compare(&s, None);
        let names: Vec<String> = c
            .pairs
            .iter()
            .map(|p| format!("{}-{}", p.optimizer, p.baseline))
            .collect();
        assert_eq!(names, ["sam-adam", "graphsam-adam", "graphsam-sam"]);
        // sam − adam: −0.10, −0.10, −0.09 → mean −0.29/3, s = 0.01/√3, t₂ = 4.3027.
        let sam = &c.pairs[0].difference;
        assert_eq!((sam.pairs, sam.wins, sam.losses, sam.ties), (3, 3, 0, 0));
        let mean = -0.29 / 3.0;
        assert!((sam.mean - mean).abs() < 1e-12);
        let half = 4.3027 * (0.01 / 3f64.sqrt()) / 3f64.sqrt();
        let (lo, hi) = sam.ci95.unwrap();
        assert!((lo - (mean - half)).abs() < 1e-9 && (hi - (mean + half)).abs() < 1e-9);
        assert!(sam.significant(), "{lo} {hi}");
        // graphsam − sam straddles 0 below: not significant.
        assert!(!c.pairs[2].difference.significant());
        assert!((c.pairs[0].time_ratio - 2.0).abs() < 1e-12);
        // graphsam − adam on seeds 0 and 1 only: −0.05, −0.12; time 2.1 ÷ 2.0.
        let gs = &c.pairs[1];
        assert_eq!(gs.difference.pairs, 2);
        assert!((gs.difference.mean + 0.085).abs() < 1e-12);
        assert!((gs.time_ratio - 1.05).abs() < 1e-12);
        // graphsam − sam: +0.05, −0.02 → one loss (RMSE up), one win.
        let gv = &c.pairs[2].difference;
        assert_eq!((gv.wins, gv.losses), (1, 1));
        let md = c.markdown();
        assert!(
            md.contains("| esol | sam − adam | rmse ↓ | -0.0967 * |"),
            "{md}"
        );
        assert!(md.contains("| 3 / 0 / 0 | 2.00 | 3/3 |"), "{md}");
        let csv = c.paired_csv().unwrap();
        assert_eq!(csv.lines().count(), 4, "{csv}");
        assert!(
            csv.lines()
                .nth(2)
                .unwrap()
                .starts_with("esol,graphsam,adam,rmse,"),
            "{csv}"
        );

        // A single seed has a mean but no interval, and says so.
        let one = compare(
            &s[..1].iter().chain(&s[3..4]).cloned().collect::<Vec<_>>(),
            None,
        );
        assert_eq!(one.pairs[0].difference.ci95, None);
        let md = one.markdown();
        assert!(md.contains("no interval (1 seed)"), "{md}");
        let csv = one.paired_csv().unwrap();
        assert!(
            csv.lines()
                .nth(1)
                .unwrap()
                .contains(",-0.09999999999999998,,,1,0,0,"),
            "{csv}"
        );

        // Cells on different fixed splits are not pairs.
        let mut other = s[3].clone();
        other.split_seed = Some(4);
        let apart = compare(&[s[0].clone(), other], None);
        assert!(apart.pairs.is_empty());
    }

    #[test]
    fn inferred_grid_reports_missing_seeds_relative_to_the_most_seen() {
        let s = vec![
            summary("esol", "adam", 0, 1.0, 2.0),
            summary("esol", "adam", 1, 1.0, 2.0),
            summary("esol", "adam", 2, 1.0, 2.0),
            summary("esol", "graphsam", 1, 1.0, 2.0),
        ];
        let c = compare(&s, None);
        let missing: Vec<String> = c.missing.iter().map(|m| m.to_string()).collect();
        assert_eq!(missing, ["esol/graphsam/0", "esol/graphsam/2"]);
    }

    #[test]
    fn collected_cells_take_their_seconds_per_epoch_from_the_epoch_record() {
        let dir = tempfile::tempdir().unwrap();
        let cell = |optimizer: &str| {
            let path = dir.path().join("esol").join(optimizer).join("seed-0");
            std::fs::create_dir_all(&path).unwrap();
            // The summary holds a mean stretched by a suspended epoch.
            write_json(
                &path.join(files::SUMMARY),
                &summary("esol", optimizer, 0, 1.0, 50.0),
            )
            .unwrap();
            path
        };
        let with_record = cell("adam");
        let epoch = |epoch: usize, train_seconds: f64| {
            serde_json::json!({
                "epoch": epoch, "valid_metric": 1.0, "learning_rate": 1e-3, "rho": 0.0,
                "train_seconds": train_seconds, "valid_seconds": 0.1,
                "forward_passes": 4, "backward_passes": 4, "is_best": false,
            })
            .to_string()
        };
        let lines = [epoch(0, 2.0), epoch(1, 140.0), epoch(2, 3.0)].join("\n");
        std::fs::write(with_record.join(files::METRICS_JSONL), lines).unwrap();
        cell("sam");

        let found = collect_summaries(dir.path()).unwrap();
        let seconds: Vec<(&str, f64)> = found
            .iter()
            .map(|s| (s.optimizer.as_str(), s.seconds_per_epoch))
            .collect();
        // The median of the record; a cell without one keeps its summary's figure.
        assert_eq!(seconds, [("adam", 3.0), ("sam", 50.0)]);

        std::fs::write(with_record.join(files::METRICS_JSONL), "{not json").unwrap();
        let err = format!("{:#}", collect_summaries(dir.path()).unwrap_err());
        assert!(err.contains("metrics.jsonl line 1"), "{err}");
    }

    #[test]
    fn shards_are_parsed_zero_based_and_validated() {
        assert_eq!(
            "2/8".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 8 }
        );
        let err = |s: &str| s.parse::<Shard>().unwrap_err().to_string();
        assert!(err("8/8").contains("0-based"), "{}", err("8/8"));
        assert!(err("0/0").contains("at least 1"));
        assert!(err("a/3").contains("`a`"));
        assert!(err("3").contains("INDEX/COUNT"));
        assert_eq!(
            "9/4".parse::<Shard>().unwrap_err().given,
            "9/4",
            "the error keeps what was given"
        );
        assert!("x/y/z".parse::<Cell>().is_err());
        assert_eq!(
            "esol/sam/2".parse::<Cell>().unwrap().to_string(),
            "esol/sam/2"
        );
    }
}
