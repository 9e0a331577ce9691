//! The registry of the six MoleculeNet datasets the GraphSAM paper uses, and
//! the description ([`DatasetSpec`]) that any other CSV can be given.

use serde::{Deserialize, Serialize};

use super::error::{DataError, Result};

/// Whether targets are binary labels or real values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskType {
    /// Binary labels (0/1) per task; models emit logits.
    Classification,
    /// Real-valued targets, standardised for training.
    Regression,
}

impl TaskType {
    /// The metric MoleculeNet reports for this kind of task.
    pub fn default_metric(self) -> Metric {
        match self {
            TaskType::Classification => Metric::RocAuc,
            TaskType::Regression => Metric::Rmse,
        }
    }
}

impl std::fmt::Display for TaskType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TaskType::Classification => "classification",
            TaskType::Regression => "regression",
        })
    }
}

impl std::str::FromStr for TaskType {
    type Err = crate::ParseError;
    fn from_str(s: &str) -> std::result::Result<Self, crate::ParseError> {
        match s.to_ascii_lowercase().as_str() {
            "classification" | "class" => Ok(TaskType::Classification),
            "regression" | "reg" => Ok(TaskType::Regression),
            _ => Err(crate::ParseError::new(
                "unknown task type",
                s,
                "classification or regression",
            )),
        }
    }
}

/// An evaluation metric over multi-task predictions (see [`super::metrics`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Area under the ROC curve (higher is better).
    RocAuc,
    /// Area under the precision-recall curve, chemprop v1 style (higher is better).
    PrcAuc,
    /// Root mean squared error (lower is better).
    Rmse,
    /// Mean absolute error (lower is better).
    Mae,
}

impl Metric {
    /// Whether a larger value is a better model.
    pub fn higher_is_better(self) -> bool {
        matches!(self, Metric::RocAuc | Metric::PrcAuc)
    }

    /// The metric's short name as written on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Metric::RocAuc => "roc-auc",
            Metric::PrcAuc => "prc-auc",
            Metric::Rmse => "rmse",
            Metric::Mae => "mae",
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Metric {
    type Err = crate::ParseError;
    fn from_str(s: &str) -> std::result::Result<Self, crate::ParseError> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "roc-auc" | "auc" | "rocauc" => Ok(Metric::RocAuc),
            "prc-auc" | "prcauc" => Ok(Metric::PrcAuc),
            "rmse" => Ok(Metric::Rmse),
            "mae" => Ok(Metric::Mae),
            _ => Err(crate::ParseError::new(
                "unknown metric",
                s,
                "roc-auc, prc-auc, rmse or mae",
            )),
        }
    }
}

/// Everything needed to find and read one dataset: where it is published,
/// what its content must hash to, and which columns hold SMILES and targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetSpec {
    /// Short name (registry key, lower case for registry datasets).
    pub name: String,
    /// File name of the CSV (as stored in a data directory or the cache).
    pub file_name: String,
    /// Header of the SMILES column.
    pub smiles_column: String,
    /// Headers of the target columns, one per task, in task order.
    pub target_columns: Vec<String>,
    /// Classification or regression.
    pub task_type: TaskType,
    /// The metric reported for this dataset.
    pub metric: Metric,
    /// Public download URL (may point to a `.csv.gz`); `None` for local CSVs.
    pub url: Option<String>,
    /// SHA-256 (hex) of the uncompressed CSV content; `None` for local CSVs.
    pub sha256: Option<String>,
}

impl DatasetSpec {
    /// A spec for any CSV: its SMILES column, target columns and task type.
    /// The file name is only used to look the file up in a data directory;
    /// there is no URL or checksum.
    pub fn custom(
        file_name: impl Into<String>,
        smiles_column: impl Into<String>,
        target_columns: Vec<String>,
        task_type: TaskType,
    ) -> Self {
        let file_name = file_name.into();
        let name = file_name
            .strip_suffix(".csv")
            .unwrap_or(&file_name)
            .to_string();
        DatasetSpec {
            name,
            file_name,
            smiles_column: smiles_column.into(),
            target_columns,
            task_type,
            metric: task_type.default_metric(),
            url: None,
            sha256: None,
        }
    }

    /// Number of prediction tasks (target columns).
    pub fn n_tasks(&self) -> usize {
        self.target_columns.len()
    }

    /// The last path segment of the URL (e.g. `clintox.csv.gz`), the name of
    /// the file as published.
    pub fn remote_file_name(&self) -> Option<&str> {
        self.url.as_deref().and_then(|u| u.rsplit('/').next())
    }
}

/// Where MoleculeNet publishes its CSVs.
pub const MOLECULENET_BASE_URL: &str = "https://deepchemdata.s3-us-west-1.amazonaws.com/datasets";

fn moleculenet(
    name: &str,
    file_name: &str,
    remote: &str,
    smiles: &str,
    targets: &[&str],
    task_type: TaskType,
    sha256: &str,
) -> DatasetSpec {
    DatasetSpec {
        name: name.to_string(),
        file_name: file_name.to_string(),
        smiles_column: smiles.to_string(),
        target_columns: targets.iter().map(|t| t.to_string()).collect(),
        task_type,
        metric: task_type.default_metric(),
        url: Some(format!("{MOLECULENET_BASE_URL}/{remote}")),
        sha256: Some(sha256.to_string()),
    }
}

const SIDER_TASKS: [&str; 27] = [
    "Hepatobiliary disorders",
    "Metabolism and nutrition disorders",
    "Product issues",
    "Eye disorders",
    "Investigations",
    "Musculoskeletal and connective tissue disorders",
    "Gastrointestinal disorders",
    "Social circumstances",
    "Immune system disorders",
    "Reproductive system and breast disorders",
    "Neoplasms benign, malignant and unspecified (incl cysts and polyps)",
    "General disorders and administration site conditions",
    "Endocrine disorders",
    "Surgical and medical procedures",
    "Vascular disorders",
    "Blood and lymphatic system disorders",
    "Skin and subcutaneous tissue disorders",
    "Congenital, familial and genetic disorders",
    "Infections and infestations",
    "Respiratory, thoracic and mediastinal disorders",
    "Psychiatric disorders",
    "Renal and urinary disorders",
    "Pregnancy, puerperium and perinatal conditions",
    "Ear and labyrinth disorders",
    "Cardiac disorders",
    "Nervous system disorders",
    "Injury, poisoning and procedural complications",
];

const TOX21_TASKS: [&str; 12] = [
    "NR-AR",
    "NR-AR-LBD",
    "NR-AhR",
    "NR-Aromatase",
    "NR-ER",
    "NR-ER-LBD",
    "NR-PPAR-gamma",
    "SR-ARE",
    "SR-ATAD5",
    "SR-HSE",
    "SR-MMP",
    "SR-p53",
];

/// The datasets graphsam knows by name.
#[derive(Debug, Clone)]
pub struct Registry {
    specs: Vec<DatasetSpec>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::moleculenet()
    }
}

impl Registry {
    /// The six MoleculeNet datasets of the GraphSAM paper. Checksums are of
    /// the uncompressed CSVs as MoleculeNet publishes them.
    pub fn moleculenet() -> Self {
        use TaskType::*;
        let specs = vec![
            moleculenet(
                "bbbp",
                "BBBP.csv",
                "BBBP.csv",
                "smiles",
                &["p_np"],
                Classification,
                "d07a38487aeac5cee5508413e468043ef3097451d2a112701c2d60be9ec6b662",
            ),
            moleculenet(
                "clintox",
                "clintox.csv",
                "clintox.csv.gz",
                "smiles",
                &["FDA_APPROVED", "CT_TOX"],
                Classification,
                "9999816e760dd838358b5d88e81cea2fc062be4458ffa412ceecdba4f88a67b6",
            ),
            moleculenet(
                "sider",
                "sider.csv",
                "sider.csv.gz",
                "smiles",
                &SIDER_TASKS,
                Classification,
                "71efc6ac4ca82d6545bc512509863281be0f17234afd7adaf71a71899988302e",
            ),
            moleculenet(
                "tox21",
                "tox21.csv",
                "tox21.csv.gz",
                "smiles",
                &TOX21_TASKS,
                Classification,
                "7d7e7facd853a63e79ddce4e9c3fcb7a0d83a1c300b603031c0f2c64fbe77761",
            ),
            moleculenet(
                "esol",
                "delaney-processed.csv",
                "delaney-processed.csv",
                "smiles",
                &["measured log solubility in mols per litre"],
                Regression,
                "8c06a76f0c6487d29ab0f903e6a7a7139f189ab3c1178f159c8be8964602f189",
            ),
            moleculenet(
                "lipophilicity",
                "Lipophilicity.csv",
                "Lipophilicity.csv",
                "smiles",
                &["exp"],
                Regression,
                "aed41590cb30609d51d8e08ad3ff06495a76e80e211358801f596b10da69bacd",
            ),
        ];
        Registry { specs }
    }

    /// All registered datasets, in registry order.
    pub fn specs(&self) -> &[DatasetSpec] {
        &self.specs
    }

    /// Looks a dataset up by name, case-insensitively; also accepts the file
    /// name and the common aliases `delaney` (ESOL) and `lipo`.
    pub fn get(&self, name: &str) -> Result<&DatasetSpec> {
        let key = name.to_ascii_lowercase();
        let key = match key.as_str() {
            "delaney" | "delaney-processed" => "esol",
            "lipo" => "lipophilicity",
            k => k,
        };
        self.specs
            .iter()
            .find(|s| s.name == key || s.file_name.eq_ignore_ascii_case(name))
            .ok_or_else(|| DataError::UnknownDataset {
                name: name.to_string(),
                known: self
                    .specs
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}
