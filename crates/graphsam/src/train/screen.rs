//! Screening: trained models over a molecule stream of any length, one chunk
//! at a time, so memory stays flat however many molecules there are. A
//! reader thread reads the next chunk's rows while the current one is
//! featurized and predicted; results come out in input order.

use std::sync::mpsc::sync_channel;

use anyhow::{Result, bail};
use burn::tensor::Device;

use super::checkpoint::load_model;
use super::inference::{Ensemble, EnsemblePrediction, user_units};
use super::record::files;
use super::trainer::{embed_indices, predict_indices};
use crate::data::{FeaturizedChunk, InputRow, LoadOptions, MoleculeSource, featurize_rows};
use crate::model::{ModelSpec, PropertyModel};

/// What a screen computes for each molecule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScreenOutput {
    /// The ensemble's predictions in user units (mean and spread).
    Predictions,
    /// The molecule representation the task head reads
    /// ([`PropertyModel::embed`]); one model only.
    Embeddings,
}

/// Where a screen reads its molecules, a chunk at a time: a file
/// ([`MoleculeSource`]) or a list in memory ([`SmilesRows`]).
pub trait RowSource: Send {
    /// Up to `max` next rows, in order; empty once the input is exhausted.
    fn next_chunk(&mut self, max: usize) -> Result<Vec<InputRow>>;
}

impl RowSource for MoleculeSource {
    fn next_chunk(&mut self, max: usize) -> Result<Vec<InputRow>> {
        Ok(MoleculeSource::next_chunk(self, max)?)
    }
}

/// SMILES held in memory as a row source: the i-th string (from 0) is row
/// `line` i + 1, so a skipped row's line minus one is its index.
#[derive(Debug, Clone)]
pub struct SmilesRows {
    rows: std::vec::IntoIter<InputRow>,
}

impl SmilesRows {
    /// The strings as rows, trimmed as a file's would be.
    pub fn new<S: AsRef<str>>(smiles: &[S]) -> Self {
        let rows: Vec<InputRow> = smiles
            .iter()
            .enumerate()
            .map(|(i, s)| InputRow {
                line: i as u64 + 1,
                smiles: s.as_ref().trim().to_string(),
                name: None,
            })
            .collect();
        SmilesRows {
            rows: rows.into_iter(),
        }
    }
}

impl RowSource for SmilesRows {
    fn next_chunk(&mut self, max: usize) -> Result<Vec<InputRow>> {
        Ok(self.rows.by_ref().take(max).collect())
    }
}

/// Values for a list of SMILES in memory, one row per input string.
#[derive(Debug, Clone, PartialEq)]
pub struct ScreenedList {
    /// Values per molecule (tasks or embedding width).
    pub width: usize,
    /// Row-major `inputs × width`; the rows of unusable inputs are NaN.
    pub mean: Vec<f64>,
    /// The spread over ensemble members, laid out like `mean` (two or more
    /// members only).
    pub std: Option<Vec<f64>>,
    /// Each unusable input's index and why it was skipped, in input order.
    pub skipped: Vec<(usize, String)>,
}

/// Runs `ensemble` over `smiles` held in memory, as [`screen`] runs a file:
/// an invalid SMILES gets a NaN row and a reason, never an error for the
/// whole list.
pub fn screen_smiles<S: AsRef<str>>(
    ensemble: &Ensemble,
    smiles: &[S],
    output: ScreenOutput,
    device: &Device,
    options: ScreenOptions,
) -> Result<ScreenedList> {
    let n = smiles.len();
    let with_std = output == ScreenOutput::Predictions && ensemble.members.len() > 1;
    let mut list = ScreenedList {
        // Embeddings: the width is known from the first molecule.
        width: match output {
            ScreenOutput::Predictions => ensemble.card().task_names.len(),
            ScreenOutput::Embeddings => 0,
        },
        mean: Vec::new(),
        std: None,
        skipped: Vec::new(),
    };
    // Each chunk's values go to their rows as it comes, so the chunk and its
    // featurized graphs are freed before the next.
    screen(
        ensemble,
        &mut SmilesRows::new(smiles),
        output,
        device,
        options,
        &mut |chunk| {
            let molecules = &chunk.input.molecules;
            if list.mean.is_empty() && !molecules.is_empty() {
                list.width = chunk.width;
                list.mean = vec![f64::NAN; n * list.width];
                list.std = with_std.then(|| vec![f64::NAN; n * list.width]);
            }
            let width = list.width;
            for (k, &line) in molecules.source_lines.iter().enumerate() {
                let (to, from) = ((line - 1) as usize * width, k * width);
                list.mean[to..to + width].copy_from_slice(&chunk.values.mean[from..from + width]);
                if let (Some(out), Some(std)) = (list.std.as_mut(), chunk.values.std.as_ref()) {
                    out[to..to + width].copy_from_slice(&std[from..from + width]);
                }
            }
            for skipped in &molecules.skipped {
                list.skipped
                    .push(((skipped.line - 1) as usize, skipped.reason.to_string()));
            }
            Ok(())
        },
    )?;
    if list.mean.is_empty() {
        // No usable molecule: every row is NaN.
        list.mean = vec![f64::NAN; n * list.width];
        list.std = with_std.then(|| vec![f64::NAN; n * list.width]);
    }
    list.skipped.sort_by_key(|(i, _)| *i);
    Ok(list)
}

/// Chunk and batch sizes of a screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScreenOptions {
    /// Molecules per model batch (32 by default: on 2 cores larger batches
    /// were no faster for D-MPNN or CoMPT and CoMPT's peak memory grew).
    pub batch_size: usize,
    /// Input rows read and featurized together (what memory scales with).
    pub chunk_size: usize,
}

impl Default for ScreenOptions {
    fn default() -> Self {
        ScreenOptions {
            batch_size: 32,
            chunk_size: 4096,
        }
    }
}

/// One chunk of screened input.
#[derive(Debug, Clone)]
pub struct ScreenedChunk {
    /// The chunk's molecules (with their lines and SMILES) and its skipped rows.
    pub input: FeaturizedChunk,
    /// Values per molecule: the task count for predictions, the embedding
    /// width for embeddings.
    pub width: usize,
    /// Predictions (mean over members, with their spread) or, for
    /// embeddings, the vectors in `mean` (row-major) with no spread.
    pub values: EnsemblePrediction,
}

/// Counts over a whole screen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScreenTotals {
    /// Molecules given values.
    pub molecules: u64,
    /// Rows skipped (invalid, empty, over the atom limit).
    pub skipped: u64,
}

/// Runs `ensemble` over every row of `source` and hands each chunk's results
/// to `sink` in input order. Rows that cannot be used are reported in the
/// chunk's `skipped` and never stop the screen; a read error of the input
/// (e.g. a truncated gzip) stops it after the chunks before it were handed
/// out. Embeddings take a single model.
pub fn screen(
    ensemble: &Ensemble,
    source: &mut dyn RowSource,
    output: ScreenOutput,
    device: &Device,
    options: ScreenOptions,
    sink: &mut dyn FnMut(ScreenedChunk) -> Result<()>,
) -> Result<ScreenTotals> {
    if output == ScreenOutput::Embeddings && ensemble.members.len() != 1 {
        bail!(
            "embeddings come from one model, but {} were given: pass one run folder (e.g. \
             runs/NAME/seed-0)",
            ensemble.members.len()
        );
    }
    let run = Screen {
        ensemble,
        output,
        device,
        options,
    };
    match &ensemble.card().model {
        ModelSpec::Compt(_) => run.with(source, sink, |spec| match spec {
            ModelSpec::Compt(c) => {
                device.seed(0);
                Some(c.init(device))
            }
            _ => None,
        }),
        ModelSpec::Grover(_) => run.with(source, sink, |spec| match spec {
            ModelSpec::Grover(c) => Some(c.init(device, 0)),
            _ => None,
        }),
        ModelSpec::Dmpnn(_) => run.with(source, sink, |spec| match spec {
            ModelSpec::Dmpnn(c) => Some(c.init(device, 0)),
            _ => None,
        }),
    }
}

struct Screen<'a> {
    ensemble: &'a Ensemble,
    output: ScreenOutput,
    device: &'a Device,
    options: ScreenOptions,
}

impl Screen<'_> {
    /// The screen with every member built by `init` (`None` for a member of
    /// another backbone) and loaded from its weights.
    fn with<M: PropertyModel>(
        &self,
        source: &mut dyn RowSource,
        sink: &mut dyn FnMut(ScreenedChunk) -> Result<()>,
        init: impl Fn(&ModelSpec) -> Option<M>,
    ) -> Result<ScreenTotals> {
        let mut models = Vec::with_capacity(self.ensemble.members.len());
        for (dir, card) in &self.ensemble.members {
            let Some(model) = init(&card.model) else {
                bail!(
                    "{} is a {} model; the members of an ensemble must share one backbone",
                    dir.display(),
                    card.model.name()
                );
            };
            models.push(load_model(model, &dir.join(files::BEST_MODEL))?);
        }
        let card = self.ensemble.card();
        let load = LoadOptions {
            features: Some(card.model.feature_set()),
            atom_limit: card.atom_limit,
            scaffolds: false,
        };
        let (task_type, task_names) = (card.task_type, card.task_names.clone());
        let chunk_size = self.options.chunk_size.max(1);
        let mut totals = ScreenTotals::default();
        std::thread::scope(|scope| {
            // The reader thread only reads and splits rows (cheap, sequential);
            // featurization runs here on every core, between model batches,
            // since a featurizing thread beside the model's kernels only made
            // them wait for each other (measured: 20 % slower on 2 cores).
            let (ready, chunks) = sync_channel(1);
            scope.spawn(move || {
                loop {
                    let item = source.next_chunk(chunk_size);
                    let stop = matches!(&item, Ok(rows) if rows.is_empty()) || item.is_err();
                    if stop && item.as_ref().is_ok() {
                        break;
                    }
                    if ready.send(item).is_err() || stop {
                        break;
                    }
                }
            });
            for rows in chunks {
                let input = featurize_rows(rows?, &load, task_type, &task_names);
                let chunk = self.run_chunk(&models, input)?;
                totals.molecules += chunk.input.molecules.len() as u64;
                totals.skipped += chunk.input.molecules.skipped.len() as u64;
                sink(chunk)?;
            }
            Ok(totals)
        })
    }

    fn run_chunk<M: PropertyModel>(
        &self,
        models: &[M],
        input: FeaturizedChunk,
    ) -> Result<ScreenedChunk> {
        let molecules = &input.molecules;
        // Batches of molecules of similar size: the padded backbone (CoMPT)
        // then pads little; results go back to input order below.
        let mut indices: Vec<usize> = (0..molecules.len()).collect();
        indices.sort_by_key(|&i| molecules.atom_counts[i]);
        let batch = self.options.batch_size.max(1);
        let (width, values) = match self.output {
            ScreenOutput::Embeddings => {
                let (vectors, width) = if indices.is_empty() {
                    (Vec::new(), 0)
                } else {
                    embed_indices(&models[0], molecules, &indices, self.device, batch)?
                };
                let vectors: Vec<f64> = in_input_order(&vectors, &indices, width)
                    .into_iter()
                    .map(f64::from)
                    .collect();
                let values = EnsemblePrediction {
                    mean: vectors,
                    std: None,
                    members: Vec::new(),
                };
                (width, values)
            }
            ScreenOutput::Predictions => {
                let mut members = Vec::with_capacity(models.len());
                for (model, (_, card)) in models.iter().zip(&self.ensemble.members) {
                    let outputs = if indices.is_empty() {
                        Vec::new()
                    } else {
                        predict_indices(
                            model,
                            molecules,
                            &indices,
                            card.scaler.as_ref(),
                            self.device,
                            batch,
                        )?
                    };
                    let outputs = in_input_order(&outputs, &indices, molecules.n_tasks);
                    members.push(user_units(&outputs, card.task_type));
                }
                (molecules.n_tasks, EnsemblePrediction::from_members(members))
            }
        };
        Ok(ScreenedChunk {
            input,
            width,
            values,
        })
    }
}

/// Rows of `width` values computed for the molecules `order` (row k for
/// molecule `order[k]`), put back in molecule order.
fn in_input_order(rows: &[f32], order: &[usize], width: usize) -> Vec<f32> {
    let mut out = vec![0.0; rows.len()];
    for (k, &i) in order.iter().enumerate() {
        out[i * width..(i + 1) * width].copy_from_slice(&rows[k * width..(k + 1) * width]);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn rows_return_to_input_order() {
        let rows = [10.0, 11.0, 20.0, 21.0, 30.0, 31.0];
        assert_eq!(
            super::in_input_order(&rows, &[2, 0, 1], 2),
            [20.0, 21.0, 30.0, 31.0, 10.0, 11.0]
        );
        assert!(super::in_input_order(&[], &[], 0).is_empty());
    }
}
