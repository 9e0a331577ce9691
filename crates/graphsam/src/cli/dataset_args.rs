//! How every command names its data: a registry dataset or any CSV.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Args;

use crate::data::{DatasetResolver, DatasetSpec, LoadOptions, MoleculeDataset, Registry, TaskType};

/// A dataset name from the registry (bbbp, clintox, sider, tox21, esol,
/// lipophilicity) or a path to a CSV, with the columns to use.
#[derive(Debug, Clone, Args)]
pub struct DatasetArgs {
    /// Registry dataset name or path to a CSV file.
    pub dataset: String,
    /// SMILES column (CSV files; registry datasets know theirs).
    #[arg(long)]
    pub smiles_column: Option<String>,
    /// Target columns, comma-separated (CSV files; default for registry datasets).
    #[arg(long, value_delimiter = ',')]
    pub targets: Vec<String>,
    /// Task type of a CSV file: classification or regression.
    #[arg(long)]
    pub task: Option<TaskType>,
}

impl DatasetArgs {
    /// The dataset's spec and, for a CSV given by path, that path.
    pub fn spec(&self) -> Result<(DatasetSpec, Option<PathBuf>)> {
        let registry = Registry::moleculenet();
        let path = Path::new(&self.dataset);
        let looks_like_file = path.is_file() || self.dataset.ends_with(".csv");
        if !looks_like_file {
            let mut spec = registry.get(&self.dataset)?.clone();
            if let Some(column) = &self.smiles_column {
                spec.smiles_column = column.clone();
            }
            if !self.targets.is_empty() {
                spec.target_columns = self.targets.clone();
            }
            if let Some(task) = self.task {
                spec.task_type = task;
                spec.metric = task.default_metric();
            }
            return Ok((spec, None));
        }
        if self.targets.is_empty() {
            bail!(
                "{}: name the target columns with --targets col1,col2",
                self.dataset
            );
        }
        let Some(task) = self.task else {
            bail!(
                "{}: say the task type with --task classification|regression",
                self.dataset
            );
        };
        let file_name = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.dataset.clone());
        let spec = DatasetSpec::custom(
            file_name,
            self.smiles_column
                .clone()
                .unwrap_or_else(|| "smiles".to_string()),
            self.targets.clone(),
            task,
        );
        Ok((spec, Some(path.to_path_buf())))
    }

    /// Resolves (possibly downloading) and loads the dataset.
    pub fn load(&self, options: &LoadOptions) -> Result<MoleculeDataset> {
        let (spec, path) = self.spec()?;
        let resolver = DatasetResolver {
            progress: Some(super::progress::download_bar()),
            ..DatasetResolver::from_env()
        };
        let file = resolver.resolve(&spec, path.as_deref())?;
        Ok(MoleculeDataset::load(&file.path, &spec, options)?)
    }
}
