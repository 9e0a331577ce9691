//! Inference with a trained run folder: its checked model card, its weights,
//! and the model's outputs for molecules of a dataset.

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;

use super::checkpoint::load_model;
use super::record::{files, read_json};
use super::run::ModelCard;
use super::trainer::predict_indices;
use crate::data::TaskType;
use crate::model::ModelSpec;

/// Reads and checks the model card (`model.json`) of a run folder, so an
/// edited or foreign card fails here with its field named, not in the model.
pub fn load_card(dir: &Path) -> Result<ModelCard> {
    let card_path = dir.join(files::MODEL_CARD);
    if !card_path.exists() {
        bail!(
            "{} has no {} — pass the folder of one seed of a training run (e.g. runs/NAME/seed-0)",
            dir.display(),
            files::MODEL_CARD
        );
    }
    let card: ModelCard = read_json(&card_path)?;
    card.validate()
        .with_context(|| format!("{} is not a usable model card", card_path.display()))?;
    Ok(card)
}

impl ModelCard {
    /// Why this card cannot drive its model, if it cannot: an invalid
    /// backbone configuration, outputs that do not match the task names, a
    /// regression model without its target scaling, or an atom limit beyond
    /// what CoMPT's position table holds.
    pub fn validate(&self) -> Result<()> {
        self.model.validate().map_err(anyhow::Error::msg)?;
        let outputs = self.model.n_tasks();
        if self.task_names.is_empty() {
            bail!("task_names is empty");
        }
        if outputs != self.task_names.len() {
            bail!(
                "the model has {outputs} outputs but task_names names {}",
                self.task_names.len()
            );
        }
        match (&self.scaler, self.task_type) {
            (None, TaskType::Regression) => bail!("a regression model needs its scaler"),
            (Some(s), _) if s.means.len() != outputs || s.stds.len() != outputs => bail!(
                "scaler: {} means and {} stds for {outputs} tasks",
                s.means.len(),
                s.stds.len()
            ),
            (Some(s), _) if s.stds.iter().chain(&s.means).any(|v| !v.is_finite()) => {
                bail!("scaler: a mean or standard deviation is not a finite number")
            }
            _ => {}
        }
        if let (ModelSpec::Compt(c), Some(limit)) = (&self.model, self.atom_limit)
            && limit > c.max_atoms
        {
            bail!(
                "atom_limit {limit} exceeds CoMPT's position table of {} atoms",
                c.max_atoms
            );
        }
        Ok(())
    }
}

/// The outputs of the model in run folder `dir` for the molecules `indices`
/// of `dataset`: log-odds (classification) or target units (regression).
pub fn predict_with_card(
    dir: &Path,
    card: &ModelCard,
    dataset: &crate::data::MoleculeDataset,
    indices: &[usize],
    device: &Device,
) -> Result<Vec<f32>> {
    let weights = dir.join(files::BEST_MODEL);
    crate::with_model!(&card.model, device, 0, |model| {
        let model = load_model(model, &weights)?;
        predict_indices(&model, dataset, indices, card.scaler.as_ref(), device, 64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Metric, TargetScaler};
    use crate::model::compt::ComptConfig;
    use crate::model::dmpnn::DmpnnConfig;
    use crate::train::record::write_json;

    fn card() -> ModelCard {
        ModelCard {
            model: ModelSpec::Dmpnn(DmpnnConfig::tiny(2)),
            task_names: vec!["a".into(), "b".into()],
            task_type: TaskType::Regression,
            metric: Metric::Rmse,
            scaler: Some(TargetScaler {
                means: vec![0.0, 1.0],
                stds: vec![1.0, 2.0],
            }),
            atom_limit: None,
            dataset: "t".into(),
        }
    }

    fn error_of(card: &ModelCard) -> String {
        let dir = tempfile::tempdir().unwrap();
        write_json(&dir.path().join(files::MODEL_CARD), card).unwrap();
        format!("{:#}", load_card(dir.path()).unwrap_err())
    }

    #[test]
    fn an_edited_model_card_is_refused_with_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        write_json(&dir.path().join(files::MODEL_CARD), &card()).unwrap();
        assert_eq!(load_card(dir.path()).unwrap(), card());

        let mut c = card();
        c.task_names.pop();
        assert!(
            error_of(&c).contains("2 outputs but task_names names 1"),
            "{}",
            error_of(&c)
        );
        let mut c = card();
        c.scaler = None;
        assert!(error_of(&c).contains("needs its scaler"));
        let mut c = card();
        c.scaler.as_mut().unwrap().stds = vec![1.0];
        assert!(
            error_of(&c).contains("scaler: 2 means and 1 stds for 2 tasks"),
            "{}",
            error_of(&c)
        );
        let mut c = card();
        if let ModelSpec::Dmpnn(d) = &mut c.model {
            d.hidden_size = 0;
        }
        assert!(
            error_of(&c).contains("not a usable model card"),
            "{}",
            error_of(&c)
        );
        let mut c = card();
        c.model = ModelSpec::Compt(ComptConfig::tiny(2));
        c.atom_limit = Some(500);
        assert!(
            error_of(&c).contains("atom_limit 500 exceeds CoMPT's position table of 101"),
            "{}",
            error_of(&c)
        );

        std::fs::write(dir.path().join(files::MODEL_CARD), "{\"model\": 1}").unwrap();
        let err = format!("{:#}", load_card(dir.path()).unwrap_err());
        assert!(
            err.contains("parsing") && err.contains("model.json"),
            "{err}"
        );
        let empty = tempfile::tempdir().unwrap();
        let err = load_card(empty.path()).unwrap_err().to_string();
        assert!(err.contains("has no model.json"), "{err}");
    }
}
