//! Flags shared by `train`, `bench` and `compare`: model, optimizer, schedule.

use anyhow::{Result, anyhow, bail};
use clap::Args;

use graphsam_optim::{
    AdamConfig, AnchorPolicy, BaseOptimizerConfig, GraphSamConfig, NoamLrConfig, OptimizerConfig,
    RhoDecay, RstSchedule,
};

use crate::data::{SplitKind, SplitSizes};
use crate::model::{ModelKind, ModelSpec};
use crate::train::RunTemplate;

/// Each optimizer flag (without `--`) and the field of the optimizer
/// configuration it sets. Which optimizers a flag applies to is not tabled:
/// it is every optimizer whose configuration has that field ([`flag_scope`]).
pub const FLAG_FIELDS: [(&str, &str); 16] = [
    ("rho", "rho"),
    ("beta", "beta"),
    ("gamma", "gamma"),
    ("lambda", "rho_period"),
    ("anchor-every", "anchor"),
    ("compounding-rho", "rho_decay"),
    ("reference-code", "reference_quirks"),
    ("adaptive", "adaptive"),
    ("k", "k"),
    ("alpha", "alpha"),
    ("delta", "delta"),
    ("lambda1", "lambda1"),
    ("lambda2", "lambda2"),
    ("rst-schedule", "schedule"),
    ("sam-prob", "schedule"),
    ("sam-prob-end", "schedule"),
];

/// The optimizers flag `flag` applies to: those whose default configuration
/// (as graphsam-optim serialises it) has the flag's field; none for an
/// unknown flag.
pub fn flag_scope(flag: &str) -> &'static [&'static str] {
    static SCOPES: std::sync::OnceLock<Vec<(&'static str, Vec<&'static str>)>> =
        std::sync::OnceLock::new();
    let scopes = SCOPES.get_or_init(|| {
        let fields: Vec<(&str, serde_json::Value)> = graphsam_optim::OPTIMIZER_NAMES
            .iter()
            .map(|name| {
                let config: OptimizerConfig = name.parse().expect("every listed name parses");
                (
                    *name,
                    serde_json::to_value(config).expect("configs serialise"),
                )
            })
            .collect();
        FLAG_FIELDS
            .iter()
            .map(|(flag, field)| {
                let scope = fields
                    .iter()
                    .filter(|(_, value)| value.get(field).is_some())
                    .map(|(name, _)| *name)
                    .collect();
                (*flag, scope)
            })
            .collect()
    });
    scopes
        .iter()
        .find(|(f, _)| *f == flag)
        .map_or(&[][..], |(_, names)| names.as_slice())
}

/// How RST's probability of a SAM step moves over the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RstScheduleKind {
    /// p stays at --sam-prob.
    Constant,
    /// p moves linearly from --sam-prob to --sam-prob-end.
    Linear,
    /// p is --sam-prob for the first half of the run, then --sam-prob-end.
    Piecewise,
    /// p follows a half cosine from --sam-prob to --sam-prob-end.
    Cosine,
}

/// Optimizer flags. Unset flags keep each optimizer's documented default
/// (ρ 0.05, β 0.99, γ 0.5, λ 1, k 5, α 0.7, δ 0.9, λ₁ −1, λ₂ 1, p 0.5).
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
    /// GraphSAM: compute what the authors' code computed on a GPU (|w|² weighting,
    /// per-tensor normalisation and radius = ρ, ε on the radius between anchors,
    /// loss-scaled perturbed gradient, compounding ρ decay).
    #[arg(long)]
    pub reference_code: bool,
    /// SAM family: ASAM's scale-invariant perturbation ε = ρT²g/‖Tg‖, T = |w|.
    #[arg(long)]
    pub adaptive: bool,
    /// SAM-k / LookSAM: SAM period k in steps.
    #[arg(long)]
    pub k: Option<u64>,
    /// LookSAM: weight α of the reused orthogonal component (default 0.7, the paper's; on small molecular batches try 0.1)
    #[arg(long)]
    pub alpha: Option<f64>,
    /// AE-SAM: EMA factor δ of the mean and variance of ‖g‖².
    #[arg(long)]
    pub delta: Option<f64>,
    /// AE-SAM: threshold factor λ₁ reached at the last step (SAM when ‖g‖² ≥ μ + c_t σ, c_t from λ₂ to λ₁).
    #[arg(long, allow_hyphen_values = true)]
    pub lambda1: Option<f64>,
    /// AE-SAM: threshold factor λ₂ at the first step.
    #[arg(long, allow_hyphen_values = true)]
    pub lambda2: Option<f64>,
    /// RST: schedule of the probability of a SAM step.
    #[arg(long, value_enum)]
    pub rst_schedule: Option<RstScheduleKind>,
    /// RST: probability of a SAM step (the start value of a non-constant schedule).
    #[arg(long)]
    pub sam_prob: Option<f64>,
    /// RST: probability at the end of the run (linear, piecewise, cosine schedules).
    #[arg(long)]
    pub sam_prob_end: Option<f64>,
    /// Adam weight decay (L2 penalty).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
}

impl OptimizerArgs {
    /// Each flag of [`FLAG_FIELDS`] and whether it was given.
    pub fn given(&self) -> [(&'static str, bool); 16] {
        [
            ("rho", self.rho.is_some()),
            ("beta", self.beta.is_some()),
            ("gamma", self.gamma.is_some()),
            ("lambda", self.rho_period.is_some()),
            ("anchor-every", self.anchor_every.is_some()),
            ("compounding-rho", self.compounding_rho),
            ("reference-code", self.reference_code),
            ("adaptive", self.adaptive),
            ("k", self.k.is_some()),
            ("alpha", self.alpha.is_some()),
            ("delta", self.delta.is_some()),
            ("lambda1", self.lambda1.is_some()),
            ("lambda2", self.lambda2.is_some()),
            ("rst-schedule", self.rst_schedule.is_some()),
            ("sam-prob", self.sam_prob.is_some()),
            ("sam-prob-end", self.sam_prob_end.is_some()),
        ]
    }

    /// These flags with `flag` (a name of [`FLAG_FIELDS`]) unset.
    pub fn without(&self, flag: &str) -> Self {
        let mut f = self.clone();
        match flag {
            "rho" => f.rho = None,
            "beta" => f.beta = None,
            "gamma" => f.gamma = None,
            "lambda" => f.rho_period = None,
            "anchor-every" => f.anchor_every = None,
            "compounding-rho" => f.compounding_rho = false,
            "reference-code" => f.reference_code = false,
            "adaptive" => f.adaptive = false,
            "k" => f.k = None,
            "alpha" => f.alpha = None,
            "delta" => f.delta = None,
            "lambda1" => f.lambda1 = None,
            "lambda2" => f.lambda2 = None,
            "rst-schedule" => f.rst_schedule = None,
            "sam-prob" => f.sam_prob = None,
            "sam-prob-end" => f.sam_prob_end = None,
            _ => {}
        }
        f
    }

    /// The configuration of optimizer `name` with these flags applied.
    pub fn config(&self, name: &str) -> Result<OptimizerConfig> {
        let mut config: OptimizerConfig = name.parse()?;
        let base = BaseOptimizerConfig::Adam(AdamConfig {
            weight_decay: self.weight_decay,
            ..AdamConfig::default()
        });
        for (flag, set) in self.given() {
            let allowed = flag_scope(flag);
            if set && !allowed.contains(&config.name()) {
                bail!(
                    "--{flag} does not apply to {name} (only to {})",
                    allowed.join(", ")
                );
            }
        }
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
                if self.reference_code {
                    let rho = self.rho.unwrap_or(c.rho);
                    // Their radius and ρ are separate settings, both 0.05 by default.
                    *c = GraphSamConfig {
                        rho,
                        radius: Some(rho),
                        ..GraphSamConfig::reference_code()
                    };
                }
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
                c.adaptive = c.adaptive || self.adaptive;
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
            OptimizerConfig::AeSam(c) => {
                c.rho = self.rho.unwrap_or(c.rho);
                c.delta = self.delta.unwrap_or(c.delta);
                c.lambda1 = self.lambda1.unwrap_or(c.lambda1);
                c.lambda2 = self.lambda2.unwrap_or(c.lambda2);
                c.base = base;
            }
            OptimizerConfig::Rst(c) => {
                c.rho = self.rho.unwrap_or(c.rho);
                c.schedule = self.rst_schedule()?;
                c.base = base;
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// RST's schedule from --rst-schedule, --sam-prob and --sam-prob-end.
    fn rst_schedule(&self) -> Result<RstSchedule> {
        let start = self.sam_prob.unwrap_or(0.5);
        let kind = self.rst_schedule.unwrap_or(RstScheduleKind::Constant);
        let end = || {
            self.sam_prob_end.ok_or_else(|| {
                anyhow!(
                    "--rst-schedule {} needs --sam-prob-end (the probability at the end of the run)",
                    format!("{kind:?}").to_lowercase()
                )
            })
        };
        Ok(match kind {
            RstScheduleKind::Constant => {
                if self.sam_prob_end.is_some() {
                    bail!("--sam-prob-end needs --rst-schedule linear, piecewise or cosine");
                }
                RstSchedule::Constant { p: start }
            }
            RstScheduleKind::Linear => RstSchedule::Linear { start, end: end()? },
            RstScheduleKind::Piecewise => RstSchedule::Piecewise {
                start,
                end: end()?,
                switch_at: 0.5,
            },
            RstScheduleKind::Cosine => RstSchedule::Cosine { start, end: end()? },
        })
    }
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
    /// Fix the split by seed N for every run (the paper's authors' protocol: one
    /// split, runs differ in initial weights and batch order only). Default: run k
    /// splits with seed k.
    #[arg(long)]
    pub split_seed: Option<u64>,
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
    /// Every K steps, one extra pass records cos(∇L(w), g_h) and cos(∇L(w),
    /// previous update) to similarity.csv/svg (off by default: no extra pass).
    #[arg(long, value_name = "K")]
    pub track_similarity: Option<u64>,
}

impl LoopArgs {
    /// The validated split fractions.
    pub fn split_sizes(&self) -> Result<SplitSizes> {
        super::split::parse_sizes(&self.sizes)
    }

    /// The `--split-seed`, refused for splits that draw nothing.
    pub fn split_seed(&self) -> Result<Option<u64>> {
        if self.split_seed.is_some()
            && matches!(
                self.split,
                SplitKind::ScaffoldDeterministic | SplitKind::File { .. }
            )
        {
            bail!(
                "--split-seed: a {} split does not depend on a seed",
                self.split
            );
        }
        Ok(self.split_seed)
    }

    /// The settings every run of the command shares, with the model flags,
    /// the schedule, the effective atom limit and the backend's name.
    pub fn template(
        &self,
        model: &ModelArgs,
        schedule: &ScheduleArgs,
        atom_limit: Option<usize>,
        backend: String,
    ) -> Result<RunTemplate> {
        Ok(RunTemplate {
            model: model.model,
            hidden: model.hidden,
            layers: model.layers,
            split: self.split.clone(),
            split_sizes: self.split_sizes()?,
            split_seed: self.split_seed()?,
            epochs: self.epochs,
            patience: self.patience,
            batch_size: self.batch_size,
            atom_limit,
            schedule: schedule.config(),
            backend,
            track_similarity: match self.track_similarity {
                Some(0) => bail!("--track-similarity: K must be at least 1 step"),
                k => k,
            },
        })
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
    /// and checked. CoMPT's position table grows to hold molecules up to
    /// `atom_limit` atoms when the limit exceeds its default size.
    pub fn spec(
        &self,
        dataset: &str,
        n_tasks: usize,
        atom_limit: Option<usize>,
    ) -> Result<ModelSpec> {
        self.model
            .spec(dataset, n_tasks, self.hidden, self.layers, atom_limit)
            .map_err(|e| {
                let given: Vec<String> = [("hidden", self.hidden), ("layers", self.layers)]
                    .into_iter()
                    .filter_map(|(flag, value)| value.map(|v| format!("--{flag} {v}")))
                    .collect();
                anyhow!("--hidden/--layers ({}): {e}", given.join(" "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_scopes_follow_the_optimizer_configurations() {
        let sam_family = ["sam", "graphsam", "sam-k", "looksam", "ae-sam", "rst"];
        assert_eq!(flag_scope("rho"), sam_family);
        for flag in [
            "beta",
            "gamma",
            "lambda",
            "anchor-every",
            "compounding-rho",
            "reference-code",
        ] {
            assert_eq!(flag_scope(flag), ["graphsam"], "--{flag}");
        }
        assert_eq!(flag_scope("adaptive"), ["sam", "graphsam", "sam-k"]);
        assert_eq!(flag_scope("k"), ["sam-k", "looksam"]);
        assert_eq!(flag_scope("alpha"), ["looksam"]);
        for flag in ["delta", "lambda1", "lambda2"] {
            assert_eq!(flag_scope(flag), ["ae-sam"], "--{flag}");
        }
        for flag in ["rst-schedule", "sam-prob", "sam-prob-end"] {
            assert_eq!(flag_scope(flag), ["rst"], "--{flag}");
        }
        assert!(flag_scope("nope").is_empty());
    }

    fn flags() -> OptimizerArgs {
        OptimizerArgs {
            rho: None,
            beta: None,
            gamma: None,
            rho_period: None,
            anchor_every: None,
            compounding_rho: false,
            reference_code: false,
            adaptive: false,
            k: None,
            alpha: None,
            delta: None,
            lambda1: None,
            lambda2: None,
            rst_schedule: None,
            sam_prob: None,
            sam_prob_end: None,
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

    #[test]
    fn ae_sam_and_rst_flags_reach_their_configs() {
        let args = OptimizerArgs {
            rho: Some(0.1),
            delta: Some(0.8),
            lambda1: Some(-2.0),
            lambda2: Some(0.5),
            ..flags()
        };
        let OptimizerConfig::AeSam(c) = args.config("ae-sam").unwrap() else {
            panic!("not ae-sam")
        };
        assert_eq!(
            (c.rho, c.delta, c.lambda1, c.lambda2),
            (0.1, 0.8, -2.0, 0.5)
        );

        let OptimizerConfig::Rst(c) = flags().config("rst").unwrap() else {
            panic!("not rst")
        };
        assert_eq!(c.schedule, RstSchedule::Constant { p: 0.5 });
        let args = OptimizerArgs {
            rst_schedule: Some(RstScheduleKind::Linear),
            sam_prob: Some(0.2),
            sam_prob_end: Some(0.9),
            ..flags()
        };
        let OptimizerConfig::Rst(c) = args.config("rst").unwrap() else {
            panic!("not rst")
        };
        assert_eq!(
            c.schedule,
            RstSchedule::Linear {
                start: 0.2,
                end: 0.9
            }
        );
    }

    #[test]
    fn ae_sam_and_rst_flag_mistakes_are_explained() {
        let err = |args: OptimizerArgs, name: &str| args.config(name).unwrap_err().to_string();
        let linear = OptimizerArgs {
            rst_schedule: Some(RstScheduleKind::Linear),
            ..flags()
        };
        assert_eq!(
            err(linear, "rst"),
            "--rst-schedule linear needs --sam-prob-end (the probability at the end of the run)"
        );
        let end_only = OptimizerArgs {
            sam_prob_end: Some(0.5),
            ..flags()
        };
        assert!(err(end_only, "rst").contains("needs --rst-schedule"));
        let too_likely = OptimizerArgs {
            sam_prob: Some(1.5),
            ..flags()
        };
        assert!(err(too_likely, "rst").contains("schedule.p"));
        let delta = OptimizerArgs {
            delta: Some(0.5),
            ..flags()
        };
        assert_eq!(
            err(delta, "rst"),
            "--delta does not apply to rst (only to ae-sam)"
        );
        let bad_delta = OptimizerArgs {
            delta: Some(1.0),
            ..flags()
        };
        assert!(err(bad_delta, "ae-sam").contains("delta"));
    }

    #[test]
    fn negative_lambdas_parse_from_the_command_line() {
        #[derive(clap::Parser)]
        struct Line {
            #[command(flatten)]
            optimizer: OptimizerArgs,
        }
        use clap::Parser;
        let line =
            Line::try_parse_from(["graphsam", "--lambda1", "-1.5", "--lambda2", "0.5"]).unwrap();
        assert_eq!(
            (line.optimizer.lambda1, line.optimizer.lambda2),
            (Some(-1.5), Some(0.5))
        );
        let line = Line::try_parse_from([
            "graphsam",
            "--rst-schedule",
            "cosine",
            "--sam-prob-end",
            "1",
        ])
        .unwrap();
        assert_eq!(line.optimizer.rst_schedule, Some(RstScheduleKind::Cosine));
    }

    #[test]
    fn reference_code_flag_builds_the_authors_configuration() {
        let args = OptimizerArgs {
            reference_code: true,
            ..flags()
        };
        let OptimizerConfig::GraphSam(c) = args.config("graphsam").unwrap() else {
            panic!("not graphsam")
        };
        assert_eq!(c, GraphSamConfig::reference_code());
        let args = OptimizerArgs {
            reference_code: true,
            rho: Some(0.1),
            ..flags()
        };
        let OptimizerConfig::GraphSam(c) = args.config("graphsam").unwrap() else {
            panic!("not graphsam")
        };
        assert_eq!(
            (c.rho, c.radius, c.reference_quirks),
            (0.1, Some(0.1), true)
        );
    }

    #[test]
    fn every_flag_of_the_scope_table_can_be_unset() {
        let all = OptimizerArgs {
            rho: Some(0.1),
            beta: Some(0.9),
            gamma: Some(0.5),
            rho_period: Some(2),
            anchor_every: Some(3),
            compounding_rho: true,
            reference_code: true,
            adaptive: true,
            k: Some(2),
            alpha: Some(0.5),
            delta: Some(0.8),
            lambda1: Some(-1.0),
            lambda2: Some(1.0),
            rst_schedule: Some(RstScheduleKind::Linear),
            sam_prob: Some(0.3),
            sam_prob_end: Some(0.6),
            weight_decay: 0.0,
        };
        assert!(all.given().iter().all(|(_, set)| *set));
        for (flag, _) in FLAG_FIELDS {
            let unset = all.without(flag);
            let still: Vec<&str> = unset
                .given()
                .iter()
                .filter(|(_, set)| *set)
                .map(|(f, _)| *f)
                .collect();
            assert_eq!(still.len(), FLAG_FIELDS.len() - 1, "{flag}");
            assert!(!still.contains(&flag), "{flag}");
        }
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
            .spec("bbbp", 1, Some(100))
            .unwrap()
        else {
            panic!("not compt")
        };
        assert_eq!((c.d_model, c.layers, c.max_atoms), (64, 2, 101));
        // An atom limit beyond the position table grows the table to hold it.
        let ModelSpec::Compt(c) = model(ModelKind::Compt, None, None)
            .spec("bbbp", 1, Some(180))
            .unwrap()
        else {
            panic!("not compt")
        };
        assert_eq!(c.max_atoms, 180);
        let ModelSpec::Grover(g) = model(ModelKind::Grover, Some(48), Some(2))
            .spec("bbbp", 1, Some(100))
            .unwrap()
        else {
            panic!("not grover")
        };
        assert_eq!((g.hidden_size, g.num_mt_block, g.num_attn_head), (48, 2, 4));
        let ModelSpec::Dmpnn(d) = model(ModelKind::Dmpnn, Some(128), Some(5))
            .spec("esol", 1, Some(100))
            .unwrap()
        else {
            panic!("not dmpnn")
        };
        assert_eq!((d.hidden_size, d.ffn_hidden_size, d.depth), (128, 128, 5));
        // No flags: the defaults stated in --help.
        let ModelSpec::Grover(g) = model(ModelKind::Grover, None, None)
            .spec("bbbp", 1, Some(100))
            .unwrap()
        else {
            panic!("not grover")
        };
        assert_eq!((g.hidden_size, g.num_mt_block), (100, 1));
    }

    #[test]
    fn impossible_sizes_are_refused_with_the_flag_named() {
        let err = model(ModelKind::Grover, Some(50), None)
            .spec("bbbp", 1, Some(100))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--hidden 50") && err.contains("multiple of its 4"),
            "{err}"
        );
        let err = model(ModelKind::Dmpnn, None, Some(0))
            .spec("bbbp", 1, Some(100))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--layers 0"), "{err}");
        let err = model(ModelKind::Compt, Some(0), None)
            .spec("bbbp", 1, Some(100))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--hidden/--layers"), "{err}");
    }
}
