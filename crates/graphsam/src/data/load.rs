//! Reading a dataset CSV into molecules, multi-task targets with missing
//! labels, Murcko scaffolds and (optionally) featurized graphs.

use std::path::Path;

use rayon::prelude::*;

use crate::chem::parse_smiles;
use crate::features::{FeatureSet, MolGraph, featurize};

use super::error::{DataError, Result};
use super::registry::{DatasetSpec, TaskType};
use super::resolve::DatasetResolver;
use super::stream::{LineCounter, csv_with_lines};

/// The CoMPT reference drops molecules with this many atoms or more
/// (graphsam-chem's [`FeatureSet::default_atom_limit`]; evaluated at compile
/// time, so a CoMPT feature set without a limit fails the build).
pub const COMPT_ATOM_LIMIT: usize = FeatureSet::Compt
    .default_atom_limit()
    .expect("CoMPT features have an atom limit");

/// What to compute while loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Feature set to featurize every molecule with; `None` loads SMILES,
    /// targets and scaffolds only (enough for splitting).
    pub features: Option<FeatureSet>,
    /// Molecules with at least this many (heavy) atoms are skipped and
    /// reported; `None` keeps every size.
    pub atom_limit: Option<usize>,
    /// Compute each molecule's Bemis–Murcko scaffold (needed by scaffold splits).
    pub scaffolds: bool,
}

impl LoadOptions {
    /// Featurize with `features`; atom limit 100 for CoMPT (as the reference),
    /// none otherwise; scaffolds computed.
    pub fn for_features(features: FeatureSet) -> Self {
        LoadOptions {
            features: Some(features),
            atom_limit: features.default_atom_limit(),
            scaffolds: true,
        }
    }

    /// Only SMILES, targets and scaffolds (no features, no atom limit).
    pub fn scaffolds_only() -> Self {
        LoadOptions {
            features: None,
            atom_limit: None,
            scaffolds: true,
        }
    }

    /// The same options without featurization: the same molecules survive,
    /// so splits computed on this dataset index the featurized one.
    pub fn without_features(self) -> Self {
        LoadOptions {
            features: None,
            ..self
        }
    }
}

/// Why a CSV row was not turned into a molecule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SkipReason {
    /// The SMILES cell is empty.
    EmptySmiles,
    /// The SMILES does not parse (the parser's message).
    InvalidSmiles {
        /// The parser's message.
        message: String,
    },
    /// The molecule parsed but has no atoms.
    NoAtoms,
    /// The molecule has at least the configured number of atoms.
    TooManyAtoms {
        /// Its atom count.
        atoms: usize,
        /// The configured limit.
        limit: usize,
    },
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::EmptySmiles => write!(f, "empty SMILES"),
            SkipReason::InvalidSmiles { message } => write!(f, "invalid SMILES: {message}"),
            SkipReason::NoAtoms => write!(f, "molecule has no atoms"),
            SkipReason::TooManyAtoms { atoms, limit } => {
                write!(
                    f,
                    "{atoms} atoms (molecules with {limit} or more are dropped)"
                )
            }
        }
    }
}

/// A CSV row that was skipped, with its file line (header = line 1).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SkippedRow {
    /// File line number where the row starts (header = line 1).
    pub line: u64,
    /// The SMILES cell as written.
    pub smiles: String,
    /// Why it was skipped.
    pub reason: SkipReason,
}

/// A loaded dataset: molecules that parsed, their targets (NaN = missing),
/// scaffolds and graphs, plus the rows that were skipped.
#[derive(Debug, Clone)]
pub struct MoleculeDataset {
    /// Dataset name (from the spec).
    pub name: String,
    /// Classification or regression.
    pub task_type: TaskType,
    /// SMILES of each kept molecule, as written (trimmed).
    pub smiles: Vec<String>,
    /// Heavy-atom count of each kept molecule.
    pub atom_counts: Vec<usize>,
    /// Murcko scaffold SMILES per molecule ("" for acyclic); empty if not loaded.
    pub scaffolds: Vec<String>,
    /// The feature set of `graphs`, if featurized.
    pub feature_set: Option<FeatureSet>,
    /// One graph per molecule; empty if loaded without features.
    pub graphs: Vec<MolGraph>,
    /// Row-major `len() × n_tasks`; NaN marks a missing label.
    pub targets: Vec<f32>,
    /// Number of tasks (target columns).
    pub n_tasks: usize,
    /// Target column names, in task order.
    pub task_names: Vec<String>,
    /// CSV line of each kept molecule (header = line 1).
    pub source_lines: Vec<u64>,
    /// Rows that were skipped, in file order.
    pub skipped: Vec<SkippedRow>,
}

/// One CSV row after the sequential pass (targets already checked).
struct RawRow {
    line: u64,
    smiles: String,
    targets: Vec<f32>,
}

/// What the parallel pass computes for a row that survives.
pub(crate) struct ParsedRow {
    pub(crate) atoms: usize,
    pub(crate) scaffold: Option<String>,
    pub(crate) graph: Option<MolGraph>,
}

fn parse_target(
    cell: &str,
    task_type: TaskType,
    path: &Path,
    line: u64,
    column: &str,
) -> Result<f32> {
    let cell = cell.trim();
    if cell.is_empty() || cell.eq_ignore_ascii_case("nan") {
        return Ok(f32::NAN);
    }
    let value: f64 = match cell.parse() {
        Ok(v) if f64::is_finite(v) => v,
        _ => {
            return Err(DataError::NonNumericTarget {
                path: path.to_path_buf(),
                line,
                column: column.to_string(),
                value: cell.to_string(),
            });
        }
    };
    if task_type == TaskType::Classification && value != 0.0 && value != 1.0 {
        return Err(DataError::InvalidLabel {
            path: path.to_path_buf(),
            line,
            column: column.to_string(),
            value,
        });
    }
    Ok(value as f32)
}

/// Reads the header and rows, checking columns and targets; SMILES are not
/// parsed yet.
fn read_rows(path: &Path, spec: &DatasetSpec) -> Result<Vec<RawRow>> {
    let bytes = std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::FileNotFound {
                path: path.to_path_buf(),
            }
        } else {
            DataError::Io {
                action: "read",
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    let (mut reader, mut lines) = csv_with_lines(bytes.as_slice(), b',', false);
    let malformed = |e: csv::Error, lines: &mut LineCounter| {
        let line = e.position().map_or(0, |p| lines.line_at(p.byte()));
        match e.kind() {
            csv::ErrorKind::Io(_) => DataError::Io {
                action: "read",
                path: path.to_path_buf(),
                source: std::io::Error::other(e.to_string()),
            },
            _ => DataError::MalformedRow {
                path: path.to_path_buf(),
                line,
                reason: e.to_string(),
            },
        }
    };
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| malformed(e, &mut lines))?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
        .collect();
    if header.iter().all(|h| h.is_empty()) {
        return Err(DataError::EmptyCsv {
            path: path.to_path_buf(),
            what: "header",
        });
    }
    let find = |column: &str| {
        header
            .iter()
            .position(|h| h == column.trim())
            .ok_or_else(|| DataError::MissingColumn {
                path: path.to_path_buf(),
                column: column.to_string(),
                available: header.join(", "),
            })
    };
    let smiles_col = find(&spec.smiles_column)?;
    let target_cols = spec
        .target_columns
        .iter()
        .map(|c| find(c))
        .collect::<Result<Vec<_>>>()?;

    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(malformed(e, &mut lines)),
        }
        let line = record.position().map_or(0, |p| lines.line_at(p.byte()));
        // A blank line inside the file is not a molecule.
        if record.len() == 1 && record[0].trim().is_empty() && header.len() > 1 {
            continue;
        }
        let smiles = record.get(smiles_col).unwrap_or("").trim().to_string();
        let targets = target_cols
            .iter()
            .zip(&spec.target_columns)
            .map(|(&c, name)| {
                parse_target(
                    record.get(c).unwrap_or(""),
                    spec.task_type,
                    path,
                    line,
                    name,
                )
            })
            .collect::<Result<Vec<f32>>>()?;
        rows.push(RawRow {
            line,
            smiles,
            targets,
        });
    }
    if rows.is_empty() {
        return Err(DataError::EmptyCsv {
            path: path.to_path_buf(),
            what: "data rows",
        });
    }
    Ok(rows)
}

/// Parses one SMILES and computes what the options ask for. The chemistry
/// toolkit runs behind `catch_unwind` so a toolkit bug on one odd SMILES
/// becomes a skipped row, not a crash of the whole load.
pub(crate) fn parse_row(
    smiles: &str,
    options: &LoadOptions,
) -> std::result::Result<ParsedRow, SkipReason> {
    if smiles.is_empty() {
        return Err(SkipReason::EmptySmiles);
    }
    let work = || {
        let mol = parse_smiles(smiles).map_err(|e| SkipReason::InvalidSmiles {
            message: e.to_string(),
        })?;
        let atoms = mol.num_atoms();
        if atoms == 0 {
            return Err(SkipReason::NoAtoms);
        }
        if let Some(limit) = options.atom_limit
            && atoms >= limit
        {
            return Err(SkipReason::TooManyAtoms { atoms, limit });
        }
        let scaffold = options.scaffolds.then(|| mol.murcko_scaffold());
        let graph = options.features.map(|fs| featurize(&mol, fs));
        Ok(ParsedRow {
            atoms,
            scaffold,
            graph,
        })
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|_| {
        Err(SkipReason::InvalidSmiles {
            message: "the chemistry toolkit failed on this SMILES".to_string(),
        })
    })
}

impl MoleculeDataset {
    /// Loads the CSV at `path` with the columns and task type of `spec`.
    /// Parsing and featurization run in parallel; the result is in file
    /// order whatever the thread count.
    pub fn load(path: &Path, spec: &DatasetSpec, options: &LoadOptions) -> Result<Self> {
        let rows = read_rows(path, spec)?;
        let parsed: Vec<_> = rows
            .par_iter()
            .map(|r| parse_row(&r.smiles, options))
            .collect();

        let n_tasks = spec.n_tasks();
        let mut ds = MoleculeDataset {
            name: spec.name.clone(),
            task_type: spec.task_type,
            smiles: Vec::with_capacity(rows.len()),
            atom_counts: Vec::with_capacity(rows.len()),
            scaffolds: Vec::new(),
            feature_set: options.features,
            graphs: Vec::new(),
            targets: Vec::with_capacity(rows.len() * n_tasks),
            n_tasks,
            task_names: spec.target_columns.clone(),
            source_lines: Vec::with_capacity(rows.len()),
            skipped: Vec::new(),
        };
        for (row, result) in rows.into_iter().zip(parsed) {
            match result {
                Ok(p) => {
                    ds.smiles.push(row.smiles);
                    ds.atom_counts.push(p.atoms);
                    ds.targets.extend_from_slice(&row.targets);
                    ds.source_lines.push(row.line);
                    if let Some(s) = p.scaffold {
                        ds.scaffolds.push(s);
                    }
                    if let Some(g) = p.graph {
                        ds.graphs.push(g);
                    }
                }
                Err(reason) => ds.skipped.push(SkippedRow {
                    line: row.line,
                    smiles: row.smiles,
                    reason,
                }),
            }
        }
        if ds.smiles.is_empty() {
            let first = &ds.skipped[0];
            return Err(DataError::NoValidMolecules {
                path: path.to_path_buf(),
                skipped: ds.skipped.len(),
                first_line: first.line,
                first_reason: first.reason.to_string(),
            });
        }
        Ok(ds)
    }

    /// Resolves `spec` (explicit path, data dir, cache, download) and loads it.
    pub fn resolve_and_load(
        resolver: &DatasetResolver,
        spec: &DatasetSpec,
        explicit: Option<&Path>,
        options: &LoadOptions,
    ) -> Result<Self> {
        let file = resolver.resolve(spec, explicit)?;
        Self::load(&file.path, spec, options)
    }

    /// Number of molecules kept.
    pub fn len(&self) -> usize {
        self.smiles.len()
    }

    /// Whether no molecule was kept (never true for a loaded dataset).
    pub fn is_empty(&self) -> bool {
        self.smiles.is_empty()
    }

    /// Refuses a classification dataset with a task whose labels are all one
    /// class or absent (naming its column), before any training is spent on it.
    pub fn check_classes(&self) -> Result<()> {
        if self.task_type != TaskType::Classification || self.n_tasks == 0 {
            return Ok(());
        }
        for (task, column) in self.task_names.iter().enumerate() {
            let labels = self.targets.iter().skip(task).step_by(self.n_tasks);
            let (mut positives, mut negatives) = (0, 0);
            for &y in labels.filter(|y| !y.is_nan()) {
                if y >= 0.5 {
                    positives += 1;
                } else {
                    negatives += 1;
                }
            }
            if positives == 0 || negatives == 0 {
                return Err(DataError::SingleClassTask {
                    file: self.name.clone(),
                    column: column.clone(),
                    positives,
                    negatives,
                });
            }
        }
        Ok(())
    }

    /// Whether some classification task has both classes among the molecules
    /// `indices` (so ROC-AUC and PRC-AUC can score them); always true for
    /// regression with at least one label.
    pub fn can_score(&self, indices: &[usize]) -> bool {
        (0..self.n_tasks).any(|task| {
            let mut labels = indices
                .iter()
                .map(|&i| self.targets[i * self.n_tasks + task])
                .filter(|y| !y.is_nan());
            match self.task_type {
                TaskType::Regression => labels.next().is_some(),
                TaskType::Classification => {
                    let (mut pos, mut neg) = (false, false);
                    for y in labels {
                        if y >= 0.5 {
                            pos = true;
                        } else {
                            neg = true;
                        }
                    }
                    pos && neg
                }
            }
        })
    }

    /// The targets of molecule `i` (NaN = missing).
    pub fn targets_of(&self, i: usize) -> &[f32] {
        &self.targets[i * self.n_tasks..(i + 1) * self.n_tasks]
    }

    /// Whether scaffolds were computed.
    pub fn has_scaffolds(&self) -> bool {
        self.scaffolds.len() == self.smiles.len()
    }

    /// Whether every molecule has a graph.
    pub fn has_graphs(&self) -> bool {
        self.graphs.len() == self.smiles.len()
    }

    /// Number of labels present (not missing) per task.
    pub fn label_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.n_tasks];
        for row in self.targets.chunks(self.n_tasks.max(1)) {
            for (c, v) in counts.iter_mut().zip(row) {
                if !v.is_nan() {
                    *c += 1;
                }
            }
        }
        counts
    }
}
