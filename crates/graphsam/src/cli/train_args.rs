//! Flags shared by `train`, `bench` and `compare`: model, optimizer, schedule.

use anyhow::{Result, anyhow, bail};
use clap::Args;

use graphsam_optim::{
    AdamConfig, AnchorPolicy, BaseOptimizerConfig, NoamLrConfig, OptimizerConfig, RhoDecay,
};

use crate::data::{Metric, SplitKind, SplitSizes};
use crate::model::{ModelKind, ModelSpec};
use crate::train::TrainSettings;

/// Optimizer flags. Unset flags keep each optimizer's documented default
/// (ρ 0.05, β 0.99, γ 0.5, λ 1, k 5, α 0.7).
#[derive(Debug, Clone, Args)]
pub struct OptimizerArgs {
    /// Perturbation radius ρ (SAM family; GraphSAM: ρ₀).
    #[arg(long)]
    pub rho: Option<f64>,
    /// GraphSAM: EMA factor β of the perturbation-gradient estimate.
    #[arg(long)]
    pub beta: Option<f64>,
    /// GraphSAM: ρ decay factor γ.
    #[arg(long)]
    pub gamma: Option<f64>,
    /// GraphSAM: ρ decay period λ in epochs.
    #[arg(long = "lambda")]
    pub rho_period: Option<u64>,
    /// GraphSAM: recompute g_h exactly every N steps instead of at each epoch start.
    #[arg(long)]
    pub anchor_every: Option<u64>,
    /// GraphSAM: the authors' compounding ρ decay instead of the paper's StepLR.
    #[arg(long)]
    pub compounding_rho: bool,
    /// SAM family: ASAM's scale-invariant perturbation ε = ρT²g/‖Tg‖, T = |w|.
    #[arg(long)]
    pub adaptive: bool,
    /// SAM-k / LookSAM: SAM period k in steps.
    #[arg(long)]
    pub k: Option<u64>,
    /// LookSAM: weight α of the reused orthogonal component.
    #[arg(long)]
    pub alpha: Option<f64>,
    /// Adam weight decay (L2 penalty).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
}

impl OptimizerArgs {
    /// The configuration of optimizer `name` with these flags applied.
    pub fn config(&self, name: &str) -> Result<OptimizerConfig> {
        let mut config: OptimizerConfig = name.parse()?;
        let base = BaseOptimizerConfig::Adam(AdamConfig {
            weight_decay: self.weight_decay,
            ..AdamConfig::default()
        });
        let only = |flag: &str, set: bool, allowed: &[&str]| -> Result<()> {
            if set && !allowed.contains(&config_name(name)) {
                bail!(
                    "--{flag} does not apply to {name} (only to {})",
                    allowed.join(", ")
                );
            }
            Ok(())
        };
        only(
            "rho",
            self.rho.is_some(),
            &["sam", "graphsam", "sam-k", "looksam"],
        )?;
        only("beta", self.beta.is_some(), &["graphsam"])?;
        only("gamma", self.gamma.is_some(), &["graphsam"])?;
        only("lambda", self.rho_period.is_some(), &["graphsam"])?;
        only("anchor-every", self.anchor_every.is_some(), &["graphsam"])?;
        only("compounding-rho", self.compounding_rho, &["graphsam"])?;
        only("adaptive", self.adaptive, &["sam", "graphsam", "sam-k"])?;
        only("k", self.k.is_some(), &["sam-k", "looksam"])?;
        only("alpha", self.alpha.is_some(), &["looksam"])?;
        match &mut config {
            OptimizerConfig::Adam(c) => {
                *c = AdamConfig {
                    weight_decay: self.weight_decay,
                    ..c.clone()
                }
            }
            OptimizerConfig::Sam(c) => {
                c.rho = self.rho.unwrap_or(c.rho);
                c.adaptive = self.adaptive;
                c.base = base;
            }
            OptimizerConfig::GraphSam(c) => {
                c.rho = self.rho.unwrap_or(c.rho);
                c.beta = self.beta.unwrap_or(c.beta);
                c.gamma = self.gamma.unwrap_or(c.gamma);
                c.rho_period = self.rho_period.unwrap_or(c.rho_period);
                if let Some(steps) = self.anchor_every {
                    c.anchor = AnchorPolicy::Steps { steps };
                }
                if self.compounding_rho {
                    c.rho_decay = RhoDecay::Compounding;
                }
                c.adaptive = self.adaptive;
                c.base = base;
            }
            OptimizerConfig::SamK(c) => {
                c.rho = self.rho.unwrap_or(c.rho);
                c.k = self.k.unwrap_or(c.k);
                c.adaptive = self.adaptive;
                c.base = base;
            }
            OptimizerConfig::LookSam(c) => {
                c.rho = self.rho.unwrap_or(c.rho);
                c.k = self.k.unwrap_or(c.k);
                c.alpha = self.alpha.unwrap_or(c.alpha);
                c.base = base;
            }
        }
        config.validate()?;
        Ok(config)
    }
}

fn config_name(name: &str) -> &'static str {
    name.parse::<OptimizerConfig>()
        .map(|c| c.name())
        .unwrap_or("")
}

/// Learning-rate schedule flags (NoamLR, the same for every optimizer).
#[derive(Debug, Clone, Args)]
pub struct ScheduleArgs {
    /// NoamLR: learning rate of the first step.
    #[arg(long, default_value_t = 1e-4)]
    pub init_lr: f64,
    /// NoamLR: learning rate at the end of warm-up.
    #[arg(long, default_value_t = 1e-3)]
    pub max_lr: f64,
    /// NoamLR: learning rate at the last step.
    #[arg(long, default_value_t = 1e-4)]
    pub final_lr: f64,
    /// NoamLR: warm-up epochs.
    #[arg(long, default_value_t = 2.0)]
    pub warmup_epochs: f64,
}

impl ScheduleArgs {
    /// The schedule configuration.
    pub fn config(&self) -> NoamLrConfig {
        NoamLrConfig {
            init_lr: self.init_lr,
            max_lr: self.max_lr,
            final_lr: self.final_lr,
            warmup_epochs: self.warmup_epochs,
        }
    }
}

/// Split and training-loop flags shared by `train` and `compare`.
#[derive(Debug, Clone, Args)]
pub struct LoopArgs {
    /// random, scaffold, scaffold-deterministic or file:<path>.
    #[arg(long, default_value = "random")]
    pub split: SplitKind,
    /// Split fractions train,valid,test.
    #[arg(long, value_delimiter = ',', default_values_t = [0.8, 0.1, 0.1])]
    pub sizes: Vec<f64>,
    /// Maximum epochs.
    #[arg(long, default_value_t = 150)]
    pub epochs: usize,
    /// Early stopping: epochs without validation improvement (0 = off).
    #[arg(long, default_value_t = 20)]
    pub patience: usize,
    /// Molecules per step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Skip molecules with at least this many atoms (default: 100 for CoMPT, none otherwise).
    #[arg(long)]
    pub atom_limit: Option<usize>,
}

impl LoopArgs {
    /// The validated split fractions.
    pub fn split_sizes(&self) -> Result<SplitSizes> {
        super::split::parse_sizes(&self.sizes)
    }

    /// Training settings for one seed with `optimizer`.
    pub fn settings(
        &self,
        seed: u64,
        optimizer: OptimizerConfig,
        schedule: &ScheduleArgs,
        metric: Metric,
    ) -> TrainSettings {
        TrainSettings {
            epochs: self.epochs,
            patience: self.patience,
            batch_size: self.batch_size,
            seed,
            optimizer,
            schedule: schedule.config(),
            metric,
        }
    }
}

/// Model flags.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Backbone: compt, grover or dmpnn.
    #[arg(long, default_value = "compt")]
    pub model: ModelKind,
    /// Override the width: CoMPT's d (default from the per-dataset table), GROVER's hidden
    /// size (default 100; a multiple of its 4 heads), D-MPNN's message and FFN width (default 300).
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Override the depth: CoMPT's encoder layers, GROVER's attention blocks (default 1),
    /// D-MPNN's message-passing steps (default 3).
    #[arg(long)]
    pub layers: Option<usize>,
}

impl ModelArgs {
    /// The backbone configuration for a dataset, with the overrides applied
    /// and checked.
    pub fn spec(&self, dataset: &str, n_tasks: usize) -> Result<ModelSpec> {
        let mut spec = self.model.default_spec(dataset, n_tasks);
        match &mut spec {
            ModelSpec::Compt(c) => {
                c.d_model = self.hidden.unwrap_or(c.d_model);
                c.layers = self.layers.unwrap_or(c.layers);
            }
            ModelSpec::Grover(c) => {
                c.hidden_size = self.hidden.unwrap_or(c.hidden_size);
                c.num_mt_block = self.layers.unwrap_or(c.num_mt_block);
            }
            ModelSpec::Dmpnn(c) => {
                // chemprop sizes the FFN head like the messages unless told otherwise.
                if let Some(d) = self.hidden {
                    c.hidden_size = d;
                    c.ffn_hidden_size = d;
                }
                c.depth = self.layers.unwrap_or(c.depth);
            }
        }
        spec.validate().map_err(|e| {
            let given: Vec<String> = [("hidden", self.hidden), ("layers", self.layers)]
                .into_iter()
                .filter_map(|(flag, value)| value.map(|v| format!("--{flag} {v}")))
                .collect();
            anyhow!("--hidden/--layers ({}): {e}", given.join(" "))
        })?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> OptimizerArgs {
        OptimizerArgs {
            rho: None,
            beta: None,
            gamma: None,
            rho_period: None,
            anchor_every: None,
            compounding_rho: false,
            adaptive: false,
            k: None,
            alpha: None,
            weight_decay: 0.0,
        }
    }

    #[test]
    fn graphsam_flags_reach_the_config() {
        let args = OptimizerArgs {
            rho: Some(0.1),
            beta: Some(0.9),
            anchor_every: Some(7),
            compounding_rho: true,
            ..flags()
        };
        let OptimizerConfig::GraphSam(c) = args.config("graphsam").unwrap() else {
            panic!("not graphsam")
        };
        assert_eq!((c.rho, c.beta, c.gamma), (0.1, 0.9, 0.5));
        assert_eq!(c.anchor, AnchorPolicy::Steps { steps: 7 });
        assert_eq!(c.rho_decay, RhoDecay::Compounding);
    }

    #[test]
    fn flags_of_another_optimizer_are_refused_by_name() {
        let err = OptimizerArgs {
            beta: Some(0.9),
            ..flags()
        }
        .config("adam")
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "--beta does not apply to adam (only to graphsam)"
        );
        let err = OptimizerArgs {
            rho: Some(-1.0),
            ..flags()
        }
        .config("sam")
        .unwrap_err();
        assert!(err.to_string().contains("rho"), "{err}");
        assert!(
            flags()
                .config("adamw")
                .unwrap_err()
                .to_string()
                .contains("unknown optimizer")
        );
    }

    fn model(kind: ModelKind, hidden: Option<usize>, layers: Option<usize>) -> ModelArgs {
        ModelArgs {
            model: kind,
            hidden,
            layers,
        }
    }

    #[test]
    fn width_and_depth_overrides_reach_every_backbone() {
        let ModelSpec::Compt(c) = model(ModelKind::Compt, Some(64), Some(2))
            .spec("bbbp", 1)
            .unwrap()
        else {
            panic!("not compt")
        };
        assert_eq!((c.d_model, c.layers), (64, 2));
        let ModelSpec::Grover(g) = model(ModelKind::Grover, Some(48), Some(2))
            .spec("bbbp", 1)
            .unwrap()
        else {
            panic!("not grover")
        };
        assert_eq!((g.hidden_size, g.num_mt_block, g.num_attn_head), (48, 2, 4));
        let ModelSpec::Dmpnn(d) = model(ModelKind::Dmpnn, Some(128), Some(5))
            .spec("esol", 1)
            .unwrap()
        else {
            panic!("not dmpnn")
        };
        assert_eq!((d.hidden_size, d.ffn_hidden_size, d.depth), (128, 128, 5));
        // No flags: the defaults stated in --help.
        let ModelSpec::Grover(g) = model(ModelKind::Grover, None, None)
            .spec("bbbp", 1)
            .unwrap()
        else {
            panic!("not grover")
        };
        assert_eq!((g.hidden_size, g.num_mt_block), (100, 1));
    }

    #[test]
    fn impossible_sizes_are_refused_with_the_flag_named() {
        let err = model(ModelKind::Grover, Some(50), None)
            .spec("bbbp", 1)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--hidden 50") && err.contains("multiple of its 4"),
            "{err}"
        );
        let err = model(ModelKind::Dmpnn, None, Some(0))
            .spec("bbbp", 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--layers 0"), "{err}");
        let err = model(ModelKind::Compt, Some(0), None)
            .spec("bbbp", 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--hidden/--layers"), "{err}");
    }
}
