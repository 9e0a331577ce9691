//! Inference with a trained run folder: its checked model card, its weights,
//! and the model's outputs for molecules of a dataset.

use std::path::{Path, PathBuf};

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
        let features = self.model.feature_set();
        let widths = (features.atom_dim(), features.bond_dim());
        if self.model.input_dims() != widths {
            bail!(
                "the {} model takes atom/bond features of width {:?}, but its {} features have {:?}",
                self.model.name(),
                self.model.input_dims(),
                features.name(),
                widths
            );
        }
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

/// Several trained runs of one task, predicting together: the mean of their
/// predictions with the spread between them as an uncertainty.
#[derive(Debug, Clone)]
pub struct Ensemble {
    /// Each member's run folder and checked model card, in the order given.
    pub members: Vec<(PathBuf, ModelCard)>,
}

/// An ensemble's predictions, row-major `molecules × tasks`, in the units a
/// user reads: probabilities for classification, target units for regression.
#[derive(Debug, Clone, PartialEq)]
pub struct EnsemblePrediction {
    /// Mean over the members.
    pub mean: Vec<f64>,
    /// Sample standard deviation over the members (`None` for one member).
    pub std: Option<Vec<f64>>,
    /// Each member's own predictions, in the same units.
    pub members: Vec<Vec<f64>>,
}

impl Ensemble {
    /// The runs under `paths`: a run folder (with `model.json`) is one
    /// member; a training output folder contributes each of its `seed-*`
    /// runs. Every member must predict the same tasks the same way (task
    /// names, task type, feature set, atom limit).
    pub fn load(paths: &[PathBuf]) -> Result<Self> {
        let mut members = Vec::new();
        for path in paths {
            if path.join(files::MODEL_CARD).exists() {
                members.push((path.clone(), load_card(path)?));
                continue;
            }
            let mut seeds: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
                        && p.join(files::MODEL_CARD).exists()
                })
                .collect();
            if seeds.is_empty() {
                bail!(
                    "{} holds neither {} nor seed-*/{}: pass a run folder or a training output folder",
                    path.display(),
                    files::MODEL_CARD,
                    files::MODEL_CARD
                );
            }
            seeds.sort();
            for seed in seeds {
                let card = load_card(&seed)?;
                members.push((seed, card));
            }
        }
        let Some((first_dir, first)) = members.first() else {
            bail!("no model given");
        };
        for (dir, card) in &members[1..] {
            let same = card.task_names == first.task_names
                && card.task_type == first.task_type
                && card.model.feature_set() == first.model.feature_set()
                && card.atom_limit == first.atom_limit;
            if !same {
                bail!(
                    "{} and {} do not predict the same tasks the same way (task names, task type, \
                     feature set and atom limit must agree)",
                    first_dir.display(),
                    dir.display()
                );
            }
        }
        Ok(Ensemble { members })
    }

    /// The card every member shares the tasks and featurization of.
    pub fn card(&self) -> &ModelCard {
        &self.members[0].1
    }

    /// Every member's predictions for the molecules `indices`, their mean
    /// and (with two or more members) their standard deviation.
    pub fn predict(
        &self,
        dataset: &crate::data::MoleculeDataset,
        indices: &[usize],
        device: &Device,
    ) -> Result<EnsemblePrediction> {
        let mut members = Vec::with_capacity(self.members.len());
        for (dir, card) in &self.members {
            let outputs = predict_with_card(dir, card, dataset, indices, device)?;
            members.push(user_units(&outputs, card.task_type));
        }
        Ok(EnsemblePrediction::from_members(members))
    }
}

impl EnsemblePrediction {
    /// The mean and (with two or more members) the sample standard deviation
    /// of the members' predictions, cell by cell.
    pub fn from_members(members: Vec<Vec<f64>>) -> Self {
        let cells = members.first().map_or(0, Vec::len);
        let mut column = vec![0.0; members.len()];
        let (mut mean, mut std) = (Vec::with_capacity(cells), Vec::with_capacity(cells));
        for k in 0..cells {
            for (c, m) in column.iter_mut().zip(&members) {
                *c = m[k];
            }
            let (m, s) = super::stats::mean_std(&column);
            mean.push(m);
            std.push(s);
        }
        EnsemblePrediction {
            mean,
            std: (members.len() > 1).then_some(std),
            members,
        }
    }
}

/// A member's outputs in user units: probabilities from log-odds for
/// classification, target units as they are for regression.
pub(crate) fn user_units(outputs: &[f32], task: TaskType) -> Vec<f64> {
    outputs
        .iter()
        .map(|&v| match task {
            TaskType::Classification => super::trainer::probability(v),
            TaskType::Regression => f64::from(v),
        })
        .collect()
}

/// Predictions in user units (probabilities or target units) as the scores
/// [`crate::data::evaluate`] takes: a probability becomes its log-odds,
/// computed in f64, so that ranking metrics do not see ties at f32's 1.0.
/// Probabilities that round to 0 or 1 in f64 get the largest finite log-odds
/// (about ±36.7) rather than an infinity the metrics would refuse.
pub fn as_scores(values: &[f64], task: TaskType) -> Vec<f32> {
    // The largest f64 below 1 and its mirror.
    let (lo, hi) = (f64::EPSILON / 2.0, 1.0 - f64::EPSILON / 2.0);
    values
        .iter()
        .map(|&v| match task {
            TaskType::Classification => {
                let p = v.clamp(lo, hi);
                (p.ln() - (1.0 - p).ln()) as f32
            }
            TaskType::Regression => v as f32,
        })
        .collect()
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
            model: ModelSpec::Dmpnn(DmpnnConfig::tiny(2).with_atom_dim(133).with_bond_dim(14)),
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
    fn probabilities_become_finite_log_odds() {
        let scores = as_scores(&[0.5, 0.9, 1.0, 0.0, 1.0 - 1e-12], TaskType::Classification);
        assert_eq!(scores[0], 0.0);
        assert!((scores[1] - 9f32.ln()).abs() < 1e-6);
        assert!(scores.iter().all(|s| s.is_finite()), "{scores:?}");
        assert!(
            scores[2] > scores[4] && scores[4] > scores[1],
            "order kept: {scores:?}"
        );
        assert_eq!(scores[3], -scores[2]);
        assert_eq!(as_scores(&[2.5], TaskType::Regression), [2.5]);
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
        if let ModelSpec::Dmpnn(d) = &mut c.model {
            d.atom_dim = 115;
        }
        assert!(
            error_of(&c).contains(
                "atom/bond features of width (115, 14), but its chemprop features have (133, 14)"
            ),
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
