//! `graphsam datasets`: the dataset registry and where each file is found.

use anyhow::Result;
use clap::Args;

use crate::data::{DatasetResolver, Registry};

/// Arguments of `graphsam datasets` (none besides the environment:
/// `GRAPHSAM_DATA_DIR`, `GRAPHSAM_CACHE_DIR`).
#[derive(Debug, Args)]
pub struct DatasetsArgs {}

/// Runs the command.
pub fn run(_args: DatasetsArgs) -> Result<()> {
    let registry = Registry::moleculenet();
    let resolver = DatasetResolver::from_env();
    println!(
        "{:<14} {:>5}  {:<14} {:<8} {:<10} location",
        "dataset", "tasks", "task type", "metric", "available"
    );
    for entry in resolver.availability(&registry)? {
        let spec = &entry.spec;
        let (available, location) = match &entry.local {
            Some(found) => (
                format!("yes ({})", found.source),
                found.path.display().to_string(),
            ),
            None => (
                "no".to_string(),
                format!("downloads from {}", spec.url.as_deref().unwrap_or("-")),
            ),
        };
        println!(
            "{:<14} {:>5}  {:<14} {:<8} {:<10} {}",
            spec.name,
            spec.n_tasks(),
            spec.task_type.to_string(),
            spec.metric.name(),
            available,
            location
        );
    }
    Ok(())
}
