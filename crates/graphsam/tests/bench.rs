//! `graphsam bench` on a tiny dataset: every optimizer is timed on the same
//! batches, and `--epochs` times whole epochs of each optimizer with the
//! forward passes its algorithm makes.

use graphsam::data::TaskType;
use graphsam::features::FeatureSet;
use graphsam::model::ModelSpec;
use graphsam::model::compt::ComptConfig;
use graphsam::optim::OptimizerConfig;
use graphsam::train::bench::{BenchPlan, benchmark};

mod common;

#[test]
fn bench_times_steps_and_whole_epochs_of_every_optimizer() {
    let dir = tempfile::tempdir().unwrap();
    let (dataset, _) = common::fixture(dir.path(), TaskType::Regression, FeatureSet::Compt);
    let optimizers: Vec<OptimizerConfig> = ["adam", "sam", "graphsam"]
        .iter()
        .map(|name| name.parse().unwrap())
        .collect();
    let plan = BenchPlan {
        batch_size: 4,
        steps: 2,
        epochs: 2,
        optimizers,
    };
    let spec = ModelSpec::Compt(ComptConfig::tiny(1));
    let report = benchmark(&spec, &dataset, &plan, &common::autodiff_device()).unwrap();

    let names: Vec<&str> = report.costs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["adam", "sam", "graphsam"]);
    for cost in &report.costs {
        assert_eq!(cost.seconds.len(), 2, "{}", cost.name);
        assert_eq!(cost.molecules, 8, "{}", cost.name);
        assert!(cost.seconds.iter().all(|s| *s > 0.0), "{}", cost.name);
    }
    // SAM takes two passes a step; GraphSAM's anchor is its warm-up step.
    let passes: Vec<u64> = report.costs.iter().map(|c| c.passes).collect();
    assert_eq!(passes, [2, 4, 2]);

    // 20 molecules: a 16-molecule training part, 4 steps of 4 an epoch.
    let names: Vec<&str> = report.epochs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["adam", "sam", "graphsam"]);
    for (timed, passes) in report.epochs.iter().zip([4, 8, 5]) {
        // Two timed epochs after an uncounted warm-up epoch.
        assert_eq!(timed.epochs.len(), 2, "{}", timed.name);
        for epoch in timed.epochs.iter().chain([&timed.warmup]) {
            assert_eq!(epoch.steps, 4, "{}", timed.name);
            // GraphSAM adds one anchor pass at each epoch's start.
            assert_eq!(epoch.passes, passes, "{}", timed.name);
            assert!(epoch.train > 0.0 && epoch.valid > 0.0, "{}", timed.name);
        }
        assert!(timed.mean_seconds() > 0.0);
    }
}

#[test]
fn bench_refuses_a_plan_the_dataset_cannot_fill() {
    let dir = tempfile::tempdir().unwrap();
    let (dataset, _) = common::fixture(dir.path(), TaskType::Regression, FeatureSet::Compt);
    let plan = BenchPlan {
        batch_size: 8,
        steps: 3,
        epochs: 0,
        optimizers: vec!["adam".parse().unwrap()],
    };
    let spec = ModelSpec::Compt(ComptConfig::tiny(1));
    let error = benchmark(&spec, &dataset, &plan, &common::autodiff_device())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("too few molecules for 4 batches of 8"),
        "{error}"
    );
}
