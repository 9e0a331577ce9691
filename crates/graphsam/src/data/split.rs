//! Train/validation/test splits: random, balanced Bemis–Murcko scaffold
//! (chemprop v1 `scaffold_balanced`), deepchem's deterministic scaffold split
//! (MoleculeNet's own) and splits read from a JSON file. All are functions of
//! (data, sizes, seed) only, and serialize so a run record can store them.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::error::{DataError, Result};
use super::load::MoleculeDataset;

/// Fractions of the data in train, validation and test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitSizes {
    /// Training fraction.
    pub train: f64,
    /// Validation fraction.
    pub valid: f64,
    /// Test fraction.
    pub test: f64,
}

impl Default for SplitSizes {
    /// 80/10/10, as in the paper.
    fn default() -> Self {
        SplitSizes {
            train: 0.8,
            valid: 0.1,
            test: 0.1,
        }
    }
}

impl SplitSizes {
    /// Checked constructor: each fraction in [0, 1], summing to 1 (±1e-6).
    pub fn new(train: f64, valid: f64, test: f64) -> Result<Self> {
        let s = SplitSizes { train, valid, test };
        s.validate()?;
        Ok(s)
    }

    /// Errors unless each fraction is in [0, 1] and they sum to 1 (±1e-6).
    pub fn validate(&self) -> Result<()> {
        let parts = [self.train, self.valid, self.test];
        let ok = parts
            .iter()
            .all(|p| p.is_finite() && (0.0..=1.0).contains(p))
            && (parts.iter().sum::<f64>() - 1.0).abs() < 1e-6;
        if ok {
            Ok(())
        } else {
            Err(DataError::InvalidSplitSizes {
                train: self.train,
                valid: self.valid,
                test: self.test,
            })
        }
    }
}

/// How to split a dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SplitKind {
    /// Seeded shuffle, then cut at the size boundaries.
    Random,
    /// chemprop v1 `scaffold_balanced`: scaffold groups bigger than half the
    /// validation or test size first (shuffled), then the rest (shuffled),
    /// greedily filling train, then validation, then test.
    ScaffoldBalanced,
    /// deepchem `ScaffoldSplitter` (MoleculeNet's own): groups by size,
    /// largest first; ignores the seed.
    ScaffoldDeterministic,
    /// Indices read from a JSON file (see [`read_split_file`]).
    File {
        /// The JSON file.
        path: PathBuf,
    },
}

impl std::str::FromStr for SplitKind {
    type Err = crate::ParseError;
    /// `random`, `scaffold` (= `scaffold-balanced`), `scaffold-deterministic`
    /// (= `deepchem-scaffold`), or `file:<path>`.
    fn from_str(s: &str) -> std::result::Result<Self, crate::ParseError> {
        if let Some(p) = s.strip_prefix("file:") {
            return Ok(SplitKind::File {
                path: PathBuf::from(p),
            });
        }
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "random" => Ok(SplitKind::Random),
            "scaffold" | "scaffold-balanced" => Ok(SplitKind::ScaffoldBalanced),
            "scaffold-deterministic" | "deepchem-scaffold" | "deepchem" => {
                Ok(SplitKind::ScaffoldDeterministic)
            }
            _ => Err(crate::ParseError::new(
                "unknown split",
                s,
                "random, scaffold, scaffold-deterministic or file:<path>",
            )),
        }
    }
}

impl std::fmt::Display for SplitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SplitKind::Random => f.write_str("random"),
            SplitKind::ScaffoldBalanced => f.write_str("scaffold"),
            SplitKind::ScaffoldDeterministic => f.write_str("scaffold-deterministic"),
            SplitKind::File { path } => write!(f, "file:{}", path.display()),
        }
    }
}

/// Molecule indices (into a [`MoleculeDataset`]) of each part.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Split {
    /// Training molecules.
    pub train: Vec<usize>,
    /// Validation molecules.
    pub valid: Vec<usize>,
    /// Test molecules.
    pub test: Vec<usize>,
}

/// The accepted shapes of a split file: `{"train": [..], "valid": [..],
/// "test": [..]}` (also `"val"`), or chemprop's `[[train], [valid], [test]]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum SplitFile {
    Named {
        train: Vec<usize>,
        #[serde(alias = "val", alias = "validation")]
        valid: Vec<usize>,
        test: Vec<usize>,
    },
    Lists(Vec<Vec<usize>>),
}

impl Split {
    /// Sizes of (train, valid, test).
    pub fn sizes(&self) -> [usize; 3] {
        [self.train.len(), self.valid.len(), self.test.len()]
    }

    /// The three parts with their names.
    pub fn parts(&self) -> [(&'static str, &[usize]); 3] {
        [
            ("train", &self.train),
            ("valid", &self.valid),
            ("test", &self.test),
        ]
    }

    /// Errors if an index is out of range for `n` molecules or appears twice.
    /// (A split need not cover every molecule.)
    pub fn validate(&self, n: usize) -> Result<()> {
        let mut seen: Vec<Option<&'static str>> = vec![None; n];
        for (part, indices) in self.parts() {
            for &i in indices {
                if i >= n {
                    return Err(DataError::SplitIndexOutOfRange {
                        part,
                        index: i,
                        len: n,
                    });
                }
                if let Some(first) = seen[i] {
                    return Err(DataError::SplitIndexDuplicated {
                        index: i,
                        first,
                        second: part,
                    });
                }
                seen[i] = Some(part);
            }
        }
        Ok(())
    }

    /// The split as pretty JSON (the format [`read_split_file`] reads).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a split of integers always serializes")
    }
}

/// Reads a split from JSON and checks it against a dataset of `n` molecules.
pub fn read_split_file(path: &Path, n: usize) -> Result<Split> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |reason: String| DataError::InvalidSplitFile {
        path: path.to_path_buf(),
        reason,
    };
    let parsed: SplitFile = serde_json::from_str(&text).map_err(|_| {
        invalid(
            "expected JSON {\"train\": [..], \"valid\": [..], \"test\": [..]} or [[train], [valid], [test]] of molecule indices"
                .to_string(),
        )
    })?;
    let split = match parsed {
        SplitFile::Named { train, valid, test } => Split { train, valid, test },
        SplitFile::Lists(mut lists) => {
            if lists.len() != 3 {
                return Err(invalid(format!(
                    "expected 3 index lists, found {}",
                    lists.len()
                )));
            }
            let test = lists.pop().unwrap_or_default();
            let valid = lists.pop().unwrap_or_default();
            let train = lists.pop().unwrap_or_default();
            Split { train, valid, test }
        }
    };
    split.validate(n)?;
    Ok(split)
}

/// Fisher–Yates with our own index draw, so a seed gives the same order
/// whatever `rand`'s shuffle algorithm does in later versions (ChaCha's
/// stream itself is fixed by its specification).
pub(crate) fn shuffle<T>(items: &mut [T], rng: &mut ChaCha8Rng) {
    for i in (1..items.len()).rev() {
        // Modulo bias is below 2^-40 for any realistic length.
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// Random split of `n` molecules: shuffle with `seed`, then the first
/// ⌊train·n⌋ are train, up to ⌊(train+valid)·n⌋ validation, the rest test
/// (chemprop's cut points).
pub fn random_split(n: usize, sizes: SplitSizes, seed: u64) -> Result<Split> {
    sizes.validate()?;
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(&mut order, &mut ChaCha8Rng::seed_from_u64(seed));
    let train_end = ((sizes.train * n as f64) as usize).min(n);
    let valid_end = (((sizes.train + sizes.valid) * n as f64) as usize).clamp(train_end, n);
    Ok(Split {
        train: order[..train_end].to_vec(),
        valid: order[train_end..valid_end].to_vec(),
        test: order[valid_end..].to_vec(),
    })
}

/// Groups molecule indices by scaffold, groups in order of first
/// appearance, indices ascending within a group.
pub fn scaffold_groups(scaffolds: &[String]) -> Vec<Vec<usize>> {
    let mut index_of: HashMap<&str, usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, s) in scaffolds.iter().enumerate() {
        let g = *index_of.entry(s.as_str()).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
    }
    groups
}

/// chemprop v1 `scaffold_split(balanced=True)`: scaffold groups larger than
/// half the validation or the test size go first in shuffled order, then
/// the remaining groups shuffled; each group goes whole to train if it fits
/// (≤ train·n), else to validation if it fits, else to test.
pub fn scaffold_balanced_split(
    scaffolds: &[String],
    sizes: SplitSizes,
    seed: u64,
) -> Result<Split> {
    sizes.validate()?;
    let n = scaffolds.len() as f64;
    let (train_size, valid_size, test_size) = (sizes.train * n, sizes.valid * n, sizes.test * n);
    let (mut big, mut small): (Vec<_>, Vec<_>) = scaffold_groups(scaffolds)
        .into_iter()
        .partition(|g| g.len() as f64 > valid_size / 2.0 || g.len() as f64 > test_size / 2.0);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    shuffle(&mut big, &mut rng);
    shuffle(&mut small, &mut rng);
    let mut split = Split::default();
    for group in big.into_iter().chain(small) {
        if (split.train.len() + group.len()) as f64 <= train_size {
            split.train.extend(group);
        } else if (split.valid.len() + group.len()) as f64 <= valid_size {
            split.valid.extend(group);
        } else {
            split.test.extend(group);
        }
    }
    Ok(split)
}

/// deepchem `ScaffoldSplitter` (MoleculeNet's split): groups sorted by
/// (size, first index) descending — the largest first, and among equal
/// sizes the one that appears later first, as deepchem's `reverse=True`
/// sort does; a group goes to train unless that would exceed train·n, else
/// to validation unless train+valid would exceed (train+valid)·n, else test.
pub fn deterministic_scaffold_split(scaffolds: &[String], sizes: SplitSizes) -> Result<Split> {
    sizes.validate()?;
    let n = scaffolds.len() as f64;
    let mut groups = scaffold_groups(scaffolds);
    groups.sort_by(|a, b| (b.len(), b[0]).cmp(&(a.len(), a[0])));
    let train_cutoff = sizes.train * n;
    let valid_cutoff = (sizes.train + sizes.valid) * n;
    let mut split = Split::default();
    for group in groups {
        if (split.train.len() + group.len()) as f64 > train_cutoff {
            if (split.train.len() + split.valid.len() + group.len()) as f64 > valid_cutoff {
                split.test.extend(group);
            } else {
                split.valid.extend(group);
            }
        } else {
            split.train.extend(group);
        }
    }
    Ok(split)
}

/// Splits `dataset` as `kind` says. Scaffold kinds need the dataset loaded
/// with scaffolds; a file split is checked against the dataset's size.
pub fn make_split(
    dataset: &MoleculeDataset,
    kind: &SplitKind,
    sizes: SplitSizes,
    seed: u64,
) -> Result<Split> {
    let scaffolds = || {
        if dataset.has_scaffolds() {
            Ok(dataset.scaffolds.as_slice())
        } else {
            Err(DataError::ScaffoldsNotLoaded)
        }
    };
    match kind {
        SplitKind::Random => random_split(dataset.len(), sizes, seed),
        SplitKind::ScaffoldBalanced => scaffold_balanced_split(scaffolds()?, sizes, seed),
        SplitKind::ScaffoldDeterministic => deterministic_scaffold_split(scaffolds()?, sizes),
        SplitKind::File { path } => read_split_file(path, dataset.len()),
    }
}

/// One split per repeated run: run `r` uses seed `r` (0..runs-1).
pub fn repeated_splits(
    dataset: &MoleculeDataset,
    kind: &SplitKind,
    sizes: SplitSizes,
    runs: usize,
) -> Result<Vec<Split>> {
    (0..runs as u64)
        .map(|seed| make_split(dataset, kind, sizes, seed))
        .collect()
}

/// Sizes and scaffold-group counts of a split, for `graphsam split`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitSummary {
    /// Molecules in (train, valid, test).
    pub sizes: [usize; 3],
    /// Distinct scaffolds in (train, valid, test); `None` without scaffolds.
    pub scaffold_groups: Option<[usize; 3]>,
    /// Scaffolds that occur in more than one part (0 for scaffold splits).
    pub shared_scaffolds: Option<usize>,
    /// Molecules in the dataset.
    pub total: usize,
}

/// Summarises `split` over `dataset` (scaffold counts if scaffolds were loaded).
pub fn summarize_split(dataset: &MoleculeDataset, split: &Split) -> SplitSummary {
    let (scaffold_groups, shared_scaffolds) = if dataset.has_scaffolds() {
        let sets: Vec<BTreeSet<&str>> = split
            .parts()
            .iter()
            .map(|(_, idx)| idx.iter().map(|&i| dataset.scaffolds[i].as_str()).collect())
            .collect();
        let union: BTreeSet<&str> = sets.iter().flatten().copied().collect();
        let shared = union
            .iter()
            .filter(|s| sets.iter().filter(|p| p.contains(*s)).count() > 1)
            .count();
        (
            Some([sets[0].len(), sets[1].len(), sets[2].len()]),
            Some(shared),
        )
    } else {
        (None, None)
    };
    SplitSummary {
        sizes: split.sizes(),
        scaffold_groups,
        shared_scaffolds,
        total: dataset.len(),
    }
}
