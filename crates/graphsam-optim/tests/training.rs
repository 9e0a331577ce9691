//! Whole-run behaviour: every optimizer trains a small MLP, state round-trips
//! bit for bit, configs parse and validate, NoamLR has its shape.

mod common;

use burn::module::{Module, Param};
use common::{Mlp, Regression, device};
use graphsam_optim::{
    GraphSamConfig, NoamLr, NoamLrConfig, OPTIMIZER_NAMES, OptimizerConfig, RhoDecay, RstSchedule,
    SharpnessOptimizer, StateError,
};

const BATCH: usize = 16;
const SAMPLES: usize = 64;
const STEPS_PER_EPOCH: usize = SAMPLES / BATCH;

fn run_epochs(
    opt: &mut SharpnessOptimizer<Mlp>,
    data: &Regression,
    mut model: Mlp,
    epochs: std::ops::Range<usize>,
    lr: f64,
) -> Mlp {
    for epoch in epochs {
        opt.start_epoch(epoch as u64);
        for b in 0..STEPS_PER_EPOCH {
            model = opt
                .step(lr, model, |m: &Mlp| {
                    Ok::<_, std::convert::Infallible>(data.loss_and_grads(m, b, BATCH))
                })
                .unwrap()
                .0;
        }
    }
    model
}

#[test]
fn every_optimizer_reduces_the_training_loss() {
    let device = device();
    let data = Regression::new(SAMPLES, &device);
    for name in OPTIMIZER_NAMES {
        let mut opt = name
            .parse::<OptimizerConfig>()
            .unwrap()
            .init::<Mlp>()
            .unwrap();
        opt.set_total_steps(15 * STEPS_PER_EPOCH as u64);
        let model = Mlp::new(4, 16, 11, &device);
        let before = data.full_loss(&model);
        let model = run_epochs(&mut opt, &data, model, 0..15, 1e-2);
        let after = data.full_loss(&model);
        assert!(
            after < 0.3 * before,
            "{name}: training loss {before} -> {after} did not fall below 30%"
        );
        assert!(model.flat().iter().all(|v| v.is_finite()), "{name}");
    }
}

#[test]
fn save_and_restore_mid_epoch_continues_bit_identically() {
    let device = device();
    let data = Regression::new(SAMPLES, &device);
    for name in OPTIMIZER_NAMES {
        let mut config = name.parse::<OptimizerConfig>().unwrap();
        match &mut config {
            // Exercise every piece of GraphSAM state, options included.
            OptimizerConfig::GraphSam(c) => {
                *c = GraphSamConfig {
                    rho_decay: RhoDecay::Compounding,
                    adaptive: true,
                    ..c.clone()
                }
            }
            // A schedule that depends on T and the step, so the draws differ per step.
            OptimizerConfig::Rst(c) => {
                c.schedule = RstSchedule::Linear {
                    start: 0.2,
                    end: 0.9,
                }
            }
            _ => {}
        }
        let mut opt = config.init::<Mlp>().unwrap();
        opt.set_total_steps(3 * STEPS_PER_EPOCH as u64);
        let model = Mlp::new(4, 8, 3, &device);
        let mut model = run_epochs(&mut opt, &data, model, 0..1, 5e-3);
        // Two steps into epoch 1, then checkpoint.
        opt.start_epoch(1);
        for b in 0..2 {
            model = opt
                .step(5e-3, model, |m: &Mlp| {
                    Ok::<_, std::convert::Infallible>(data.loss_and_grads(m, b, BATCH))
                })
                .unwrap()
                .0;
        }
        let state = opt.save_state().unwrap();
        let record = model.clone().into_record();

        let continue_run = |opt: &mut SharpnessOptimizer<Mlp>, mut model: Mlp| {
            for b in 2..STEPS_PER_EPOCH {
                model = opt
                    .step(5e-3, model, |m: &Mlp| {
                        Ok::<_, std::convert::Infallible>(data.loss_and_grads(m, b, BATCH))
                    })
                    .unwrap()
                    .0;
            }
            run_epochs(opt, &data, model, 2..3, 5e-3)
        };
        let uninterrupted = continue_run(&mut opt, model);

        // A fresh process: new model (new ids) loaded from the record, new optimizer.
        let fresh = Mlp::new(4, 8, 99, &device).load_record(record);
        let mut resumed_opt = config.init::<Mlp>().unwrap();
        resumed_opt.load_state(&state, &fresh).unwrap();
        assert_eq!(resumed_opt.global_step(), STEPS_PER_EPOCH as u64 + 2);
        assert_eq!(
            resumed_opt.total_steps(),
            Some(3 * STEPS_PER_EPOCH as u64),
            "{name}: T restored"
        );
        let resumed = continue_run(&mut resumed_opt, fresh);

        assert_eq!(
            uninterrupted.flat(),
            resumed.flat(),
            "{name}: resumed run differs"
        );
        assert_eq!(opt.counters(), resumed_opt.counters(), "{name}: counters");
        assert_eq!(opt.rho(), resumed_opt.rho(), "{name}: rho");
        assert_eq!(
            opt.grad_norm_statistics(),
            resumed_opt.grad_norm_statistics(),
            "{name}: μ, σ²"
        );
    }
}

#[test]
fn state_files_round_trip_and_refuse_another_optimizer() {
    let device = device();
    let data = Regression::new(SAMPLES, &device);
    let mut opt = GraphSamConfig::default().init::<Mlp>().unwrap();
    let model = run_epochs(&mut opt, &data, Mlp::new(4, 8, 5, &device), 0..1, 1e-3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("optim.state");
    opt.save_state_file(&path).unwrap();

    let mut again = GraphSamConfig::default().init::<Mlp>().unwrap();
    again.load_state_file(&path, &model).unwrap();
    // (burn's Adam record is written in hash-map order, so compare contents, not bytes.)
    assert_eq!(again.counters(), opt.counters());
    assert_eq!(
        (again.global_step(), again.epoch(), again.rho()),
        (opt.global_step(), opt.epoch(), opt.rho())
    );
    let id = opt.perturbation_estimate().unwrap().ids()[0];
    assert_eq!(
        again.perturbation_estimate().unwrap().values(id),
        opt.perturbation_estimate().unwrap().values(id)
    );

    let mut sam = "sam"
        .parse::<OptimizerConfig>()
        .unwrap()
        .init::<Mlp>()
        .unwrap();
    let err = sam.load_state_file(&path, &model).unwrap_err();
    assert!(matches!(err, StateError::WrongOptimizer { .. }), "{err}");
    assert!(err.to_string().contains("graphsam"), "{err}");

    let err = sam.load_state(b"not a state", &model).unwrap_err();
    assert!(matches!(err, StateError::Decode(_)), "{err}");
    let missing = dir.path().join("missing.state");
    let err = sam.load_state_file(&missing, &model).unwrap_err();
    assert!(err.to_string().contains("missing.state"), "{err}");
}

#[test]
fn state_of_another_model_is_refused_and_nothing_is_loaded() {
    let device = device();
    let data = Regression::new(SAMPLES, &device);
    for name in ["adam", "graphsam"] {
        let config = name.parse::<OptimizerConfig>().unwrap();
        let mut opt = config.init::<Mlp>().unwrap();
        let model = run_epochs(&mut opt, &data, Mlp::new(4, 8, 5, &device), 0..1, 1e-3);
        let state = opt.save_state().unwrap();

        // A model built afresh has new parameter ids: the saved moments, g_h
        // and g_s would silently not apply to it.
        let other = Mlp::new(4, 8, 5, &device);
        let mut fresh = config.init::<Mlp>().unwrap();
        let err = fresh.load_state(&state, &other).unwrap_err();
        assert!(
            matches!(err, StateError::ForeignParameters { .. }),
            "{name}: {err}"
        );
        assert!(
            err.to_string().contains("not in the model"),
            "{name}: {err}"
        );
        assert_eq!(fresh.global_step(), 0, "{name}: nothing restored");

        if name == "graphsam" {
            // The same ids with another hidden width: g_h's slots do not fit.
            let wider = Mlp::new(4, 9, 5, &device);
            let wider = Mlp {
                w1: Param::initialized(model.w1.id, wider.w1.val()),
                b1: Param::initialized(model.b1.id, wider.b1.val()),
                w2: Param::initialized(model.w2.id, wider.w2.val()),
                b2: Param::initialized(model.b2.id, wider.b2.val()),
            };
            let err = fresh.load_state(&state, &wider).unwrap_err();
            assert!(err.to_string().contains("shape"), "{err}");
        }
        fresh.load_state(&state, &model).unwrap();
        assert_eq!(fresh.global_step(), STEPS_PER_EPOCH as u64);
    }
}

#[test]
fn optimizer_names_parse_and_configs_round_trip_through_json() {
    for name in OPTIMIZER_NAMES {
        let config: OptimizerConfig = name.parse().unwrap();
        assert_eq!(config.name(), name);
        let json = serde_json::to_string(&config).unwrap();
        assert!(json.contains(&format!("\"name\":\"{name}\"")), "{json}");
        let back: OptimizerConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config);
    }
    assert_eq!(
        "GraphSAM".parse::<OptimizerConfig>().unwrap().name(),
        "graphsam"
    );
    let err = "adamw".parse::<OptimizerConfig>().unwrap_err();
    assert!(err.to_string().contains("adamw") && err.to_string().contains("looksam"));

    // Missing fields take the documented defaults; unknown fields are refused.
    let partial: OptimizerConfig =
        serde_json::from_str(r#"{"name":"graphsam","rho":0.1}"#).unwrap();
    match partial {
        OptimizerConfig::GraphSam(c) => {
            assert_eq!((c.rho, c.beta, c.gamma, c.rho_period), (0.1, 0.99, 0.5, 1));
        }
        other => panic!("{other:?}"),
    }
    assert!(serde_json::from_str::<OptimizerConfig>(r#"{"name":"sam","rhoo":0.1}"#).is_err());
}

#[test]
fn invalid_settings_are_refused_with_the_field_named() {
    let cases = [
        (r#"{"name":"sam","rho":-0.1}"#, "rho"),
        (r#"{"name":"graphsam","beta":1.0}"#, "beta"),
        (r#"{"name":"graphsam","rho_period":0}"#, "rho_period"),
        (
            r#"{"name":"graphsam","anchor":{"every":"steps","steps":0}}"#,
            "anchor.steps",
        ),
        (r#"{"name":"sam-k","k":0}"#, "k"),
        (r#"{"name":"looksam","alpha":-1}"#, "alpha"),
        (r#"{"name":"adam","epsilon":0}"#, "base.epsilon"),
        (
            r#"{"name":"sam","base":{"kind":"adam","beta_1":1.5}}"#,
            "base.beta_1",
        ),
        (r#"{"name":"ae-sam","delta":1.0}"#, "delta"),
        (
            r#"{"name":"rst","schedule":{"kind":"constant","p":1.5}}"#,
            "schedule.p",
        ),
        (
            r#"{"name":"rst","schedule":{"kind":"linear","start":0.2,"end":-0.1}}"#,
            "schedule.end",
        ),
        (r#"{"name":"rst","rho":-1}"#, "rho"),
        (
            r#"{"name":"graphsam","reference_quirks":true}"#,
            "reference_quirks",
        ),
    ];
    for (json, field) in cases {
        let config: OptimizerConfig = serde_json::from_str(json).unwrap();
        let err = config.init::<Mlp>().unwrap_err();
        assert_eq!(err.field, field, "{json}: {err}");
    }
    // JSON has no NaN; code can still pass one.
    let nan = graphsam_optim::AeSamConfig {
        lambda1: f64::NAN,
        ..Default::default()
    };
    assert_eq!(nan.init::<Mlp>().unwrap_err().field, "lambda1");
}

#[test]
fn noam_lr_warms_up_linearly_then_decays_to_final() {
    let config = NoamLrConfig::default();
    let (steps_per_epoch, epochs) = (10, 6);
    let noam = NoamLr::new(config.clone(), steps_per_epoch, epochs).unwrap();
    assert_eq!(noam.warmup_steps(), 20);
    assert_eq!(noam.total_steps(), 60);
    assert_eq!(noam.lr_at(0), 1e-4);
    assert!(
        (noam.lr_at(10) - 5.5e-4).abs() < 1e-15,
        "half-way through warm-up"
    );
    assert!(
        (noam.lr_at(20) - 1e-3).abs() < 1e-15,
        "max at the end of warm-up"
    );
    // Exponential decay: constant ratio per step, final_lr at the last step.
    let ratio = noam.lr_at(31) / noam.lr_at(30);
    assert!((noam.lr_at(41) / noam.lr_at(40) - ratio).abs() < 1e-12);
    assert!((ratio - (0.1f64).powf(1.0 / 40.0)).abs() < 1e-12);
    assert!((noam.lr_at(60) - 1e-4).abs() < 1e-12);
    assert_eq!(noam.lr_at(1000), 1e-4);

    assert!(
        NoamLr::new(config.clone(), 0, 5)
            .unwrap_err()
            .to_string()
            .contains("steps_per_epoch")
    );
    let bad = NoamLrConfig {
        max_lr: f64::NAN,
        ..config.clone()
    };
    assert_eq!(NoamLr::new(bad, 10, 5).unwrap_err().field, "max_lr");
    // No warm-up: the first step already uses max_lr.
    let flat = NoamLr::new(
        NoamLrConfig {
            warmup_epochs: 0.0,
            ..config
        },
        10,
        1,
    )
    .unwrap();
    assert_eq!(flat.lr_at(0), 1e-3);
}
