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

#[test]
fn bench_prints_an_epoch_table_whose_columns_line_up() {
    let dir = tempfile::tempdir().unwrap();
    let (_, csv) = common::fixture(dir.path(), TaskType::Regression, FeatureSet::Compt);
    let csv = csv.to_str().unwrap();
    let output = common::graphsam(&[
        "bench",
        csv,
        "--targets",
        "y",
        "--task",
        "regression",
        "--hidden",
        "16",
        "--layers",
        "1",
        "--batch-size",
        "4",
        "--steps",
        "2",
        "--epochs",
        "2",
        "--optimizers",
        "adam,sam",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("optimizer") && l.contains("s/epoch"))
        .unwrap_or_else(|| panic!("no epoch table in\n{stdout}"));
    // Nine columns; the last label is two words.
    assert!(lines[header].ends_with("warm-up s"), "{}", lines[header]);
    let columns = lines[header].split_whitespace().count() - 1;
    assert_eq!(columns, 9, "{}", lines[header]);
    let rows: Vec<Vec<&str>> = lines[header + 1..header + 3]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    for row in &rows {
        assert_eq!(row.len(), columns, "{}\n{row:?}", lines[header]);
    }
    assert_eq!((rows[0][0], rows[1][0]), ("adam", "sam"));
    let passes = |row: &[&str]| row[6].parse::<f64>().unwrap();
    // 16 training molecules in batches of 4: Adam 4 passes, SAM 8.
    assert_eq!((passes(&rows[0]), passes(&rows[1])), (4.0, 8.0));
    assert_eq!(rows[0][5], "1.00");
    assert_eq!((rows[0][7], rows[1][7]), ("2", "2"));
}
