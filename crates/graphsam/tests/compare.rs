//! `graphsam compare` end to end through the binary on a tiny ESOL-shaped
//! fixture (found through GRAPHSAM_DATA_DIR): every cell and the tables,
//! resume after losing a cell, shards, and merging partial results.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use graphsam::train::RunSummary;
use graphsam::train::compare::{Cell, Grid, Shard};
use graphsam::train::record::read_json;

mod common;

use common::MOLECULES;

/// A data folder holding a 20-molecule `delaney-processed.csv` (the ESOL file name).
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("Compound ID,smiles,measured log solubility in mols per litre\n");
    for (i, s) in MOLECULES.iter().enumerate() {
        csv.push_str(&format!("m{i},{s},{}\n", 1.0 - s.len() as f64 * 0.25));
    }
    std::fs::write(dir.path().join("delaney-processed.csv"), csv).unwrap();
    dir
}

/// Runs `graphsam compare` on the fixture with a tiny model and one epoch.
fn compare(data: &Path, extra: &[&str]) -> Output {
    let cache = data.join("cache");

    Command::new(env!("CARGO_BIN_EXE_graphsam"))
        .arg("compare")
        .args([
            "--datasets",
            "esol",
            "--optimizers",
            "adam,graphsam",
            "--seeds",
            "2",
        ])
        .args([
            "--hidden",
            "16",
            "--layers",
            "1",
            "--epochs",
            "1",
            "--batch-size",
            "8",
        ])
        .args(["--sizes", "0.6,0.2,0.2", "--quiet"])
        .args(extra)
        .env("GRAPHSAM_DATA_DIR", data)
        .env("GRAPHSAM_CACHE_DIR", &cache)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn cell_dir(out: &Path, optimizer: &str, seed: u64) -> PathBuf {
    Cell {
        dataset: "esol".into(),
        optimizer: optimizer.into(),
        seed,
    }
    .dir(out)
}

fn csv_rows(out: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(out.join("results.csv")).unwrap();
    text.lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn tiny_grid_runs_every_cell_in_parallel_and_writes_the_tables() {
    let data = data_dir();
    let out = data.path().join("cmp");
    let o = compare(
        data.path(),
        &["--jobs", "2", "--out", out.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    let mut adam_seconds = Vec::new();
    for optimizer in ["adam", "graphsam"] {
        for seed in 0..2 {
            let s: RunSummary =
                read_json(&cell_dir(&out, optimizer, seed).join("summary.json")).unwrap();
            assert_eq!(
                (s.optimizer.as_str(), s.seed, s.epochs_run),
                (optimizer, seed, 1)
            );
            // Same split for every optimizer of a seed: 12/4/4 of 20 molecules.
            assert_eq!(s.split_sizes, [12, 4, 4]);
            if optimizer == "adam" {
                adam_seconds.push(s.seconds_per_epoch);
            }
        }
    }
    let rows = csv_rows(&out);
    assert_eq!(rows.len(), 3, "header + adam + graphsam");
    assert_eq!(
        rows[0][0..4],
        ["dataset", "optimizer", "metric", "test_mean"]
    );
    assert_eq!(rows[1][0..3], ["esol", "adam", "rmse"]);
    assert_eq!(rows[2][0..3], ["esol", "graphsam", "rmse"]);
    assert_eq!(rows[1][8], "1", "Adam's time ratio to itself");
    assert!(rows[2][8].parse::<f64>().unwrap() > 0.0);
    assert_eq!(rows[1][9..11], ["2", "2"]);
    assert_eq!(rows[2][9..11], ["2", "2"]);
    // Adam: one forward+backward per step; GraphSAM adds the exact perturbation gradient at the epoch start.
    let adam_passes: f64 = rows[1][7].parse().unwrap();
    let graphsam_passes: f64 = rows[2][7].parse().unwrap();
    assert_eq!(adam_passes, 2.0, "12 training molecules in batches of 8");
    assert!(graphsam_passes > adam_passes);
    let seconds: f64 = rows[1][6].parse().unwrap();
    assert!((seconds - (adam_seconds[0] + adam_seconds[1]) / 2.0).abs() < 1e-9);
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(
        md.contains("| esol | graphsam | rmse ↓ |") && !md.contains("Missing"),
        "{md}"
    );
    // GraphSAM against Adam, seed by seed, from the two cells' own test metrics.
    let test = |optimizer: &str, seed: u64| {
        read_json::<RunSummary>(&cell_dir(&out, optimizer, seed).join("summary.json"))
            .unwrap()
            .test
            .value
    };
    let deltas = [
        test("graphsam", 0) - test("adam", 0),
        test("graphsam", 1) - test("adam", 1),
    ];
    let json: serde_json::Value = read_json(&out.join("results.json")).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), 2);
    assert!(json["missing"].as_array().unwrap().is_empty());
    let pairs = json["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 1, "graphsam − adam only (no SAM in this grid)");
    let mean = pairs[0]["difference"]["mean"].as_f64().unwrap();
    assert!((mean - (deltas[0] + deltas[1]) / 2.0).abs() < 1e-12);
    let paired = std::fs::read_to_string(out.join("paired.csv")).unwrap();
    assert!(
        paired
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("esol,graphsam,adam,rmse,"),
        "{paired}"
    );
    assert!(md.contains("| esol | graphsam − adam | rmse ↓ |"), "{md}");
    let svg = std::fs::read_to_string(out.join("results.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("graphsam") && svg.contains("seconds per epoch")
    );
    assert!(
        svg.contains("paired Δ test rmse"),
        "the plot shows the paired differences"
    );
    assert!(text(&o).contains("all 4 cells finished"), "{}", text(&o));
    assert!(
        !out.join("similarity-esol.svg").exists(),
        "nothing tracked, nothing drawn"
    );
}

#[test]
fn a_tracked_grid_draws_every_optimizers_gradient_similarity() {
    let data = data_dir();
    let out = data.path().join("cmp");
    let o = compare(
        data.path(),
        &["--track-similarity", "1", "--out", out.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    for optimizer in ["adam", "graphsam"] {
        let csv =
            std::fs::read_to_string(cell_dir(&out, optimizer, 1).join("similarity.csv")).unwrap();
        // 12 training molecules in batches of 8: two tracked steps.
        assert_eq!(csv.lines().count(), 3, "{csv}");
    }
    let svg = std::fs::read_to_string(out.join("similarity-esol.svg")).unwrap();
    assert!(
        svg.contains("adam (seed 0)") && svg.contains("graphsam (seed 0)"),
        "{svg}"
    );
}

#[test]
fn a_split_seed_gives_every_cell_the_same_split() {
    let data = data_dir();
    let out = data.path().join("cmp");
    let o = compare(
        data.path(),
        &["--split-seed", "5", "--out", out.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    let split = |seed: u64| {
        std::fs::read_to_string(cell_dir(&out, "adam", seed).join("split.json")).unwrap()
    };
    assert_eq!(split(0), split(1), "seeds 0 and 1 share the split");
    let weights = |seed: u64| {
        std::fs::read(cell_dir(&out, "adam", seed).join("best_model.safetensors")).unwrap()
    };
    assert_ne!(weights(0), weights(1), "but not the weights");
    let s: RunSummary = read_json(&cell_dir(&out, "adam", 1).join("summary.json")).unwrap();
    assert_eq!(s.split_seed, Some(5));
    // Finished cells are not reused under another split protocol.
    let again = compare(data.path(), &["--out", out.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(text(&again).contains("other settings"), "{}", text(&again));
    // A split that draws nothing refuses the flag.
    let bad = compare(
        data.path(),
        &[
            "--split",
            "scaffold-deterministic",
            "--split-seed",
            "1",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(!bad.status.success());
    assert!(
        text(&bad)
            .contains("--split-seed: a scaffold-deterministic split does not depend on a seed"),
        "{}",
        text(&bad)
    );
}

#[test]
fn resume_reruns_only_the_lost_cell() {
    let data = data_dir();
    let out = data.path().join("cmp");
    let o = compare(data.path(), &["--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let kept: Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> =
        [("adam", 0), ("adam", 1), ("graphsam", 0)]
            .iter()
            .map(|&(opt, seed)| {
                let p = cell_dir(&out, opt, seed).join("summary.json");
                let meta = std::fs::metadata(&p).unwrap();
                (
                    p.clone(),
                    std::fs::read(&p).unwrap(),
                    meta.modified().unwrap(),
                )
            })
            .collect();
    let lost = cell_dir(&out, "graphsam", 1);
    let before: RunSummary = read_json(&lost.join("summary.json")).unwrap();
    std::fs::remove_dir_all(&lost).unwrap();

    let o = compare(data.path(), &["--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let log = text(&o);
    assert!(log.contains("3 already finished, 1 to run"), "{log}");
    assert!(
        log.contains("cell esol/graphsam/1:") && !log.contains("cell esol/adam/0:"),
        "{log}"
    );
    for (path, bytes, modified) in kept {
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{} changed",
            path.display()
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            modified
        );
    }
    // The redone cell reproduces the lost result (same seed, same data order).
    let after: RunSummary = read_json(&lost.join("summary.json")).unwrap();
    assert_eq!(after.test.value, before.test.value);
    let rows = csv_rows(&out);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2][9], "2", "graphsam has both seeds again");
}

#[test]
fn shards_cover_the_grid_exactly_once() {
    let grid = Grid {
        datasets: vec!["bbbp".into(), "esol".into()],
        optimizers: vec!["adam".into(), "sam".into(), "graphsam".into()],
        seeds: 3,
    };
    let cells = grid.cells();
    assert_eq!(cells.len(), 18);
    let mut dealt = Vec::new();
    for index in 0..3 {
        let shard: Shard = format!("{index}/3").parse().unwrap();
        let slice = shard.select(&cells);
        assert_eq!(slice.len(), 6);
        // Round-robin: cell k goes to slice k mod 3.
        assert_eq!(slice[0], cells[index]);
        assert_eq!(slice[1], cells[index + 3]);
        dealt.extend(slice);
    }
    dealt.sort();
    let mut all = cells.clone();
    all.sort();
    assert_eq!(dealt, all);
    // More slices than cells: the extra slices are empty, nothing is dealt twice.
    let small = Grid {
        datasets: vec!["esol".into()],
        optimizers: vec!["adam".into()],
        seeds: 2,
    };
    let sizes: Vec<usize> = (0..3)
        .map(|i| Shard { index: i, count: 3 }.select(&small.cells()).len())
        .collect();
    assert_eq!(sizes, [1, 1, 0]);
}

#[test]
fn bad_flags_are_refused_before_any_training() {
    let data = data_dir();
    let out = data.path().join("cmp");
    let o = compare(
        data.path(),
        &["--shard", "2/2", "--out", out.to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("0-based"), "{}", text(&o));
    let o = compare(
        data.path(),
        &["--alpha", "0.5", "--out", out.to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("--alpha applies to none of adam, graphsam"),
        "{}",
        text(&o)
    );
    let o = compare(
        data.path(),
        &["--device", "tpu", "--out", out.to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("unknown --device `tpu`"), "{}", text(&o));
    // A GPU the machine lacks is found out once, before the children start.
    let o = compare(
        data.path(),
        &[
            "--device",
            "gpu:99",
            "--jobs",
            "2",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(!o.status.success());
    let expected = if cfg!(feature = "gpu") {
        "no GPU for discrete GPU 99"
    } else {
        "built without GPU support"
    };
    assert!(text(&o).contains(expected), "{}", text(&o));
    assert!(!out.exists(), "nothing written");
}

#[test]
fn shards_run_their_slice_and_merge_names_the_missing_cells() {
    let data = data_dir();
    let a = data.path().join("a");
    let b = data.path().join("b");
    // Grid order: adam/0, adam/1, graphsam/0, graphsam/1; slice 1/2 is the seed-1 cells.
    let o = compare(
        data.path(),
        &[
            "--shard",
            "1/2",
            "--beta",
            "0.9",
            "--out",
            a.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(cell_dir(&a, "adam", 1).join("summary.json").exists());
    assert!(cell_dir(&a, "graphsam", 1).join("summary.json").exists());
    assert!(!cell_dir(&a, "adam", 0).exists() && !cell_dir(&a, "graphsam", 0).exists());

    let o = Command::new(env!("CARGO_BIN_EXE_graphsam"))
        .args(["compare", "--merge", a.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let log = text(&o);
    assert!(
        log.contains("Missing cells (2): esol/adam/0, esol/graphsam/0"),
        "{log}"
    );
    let json: serde_json::Value = read_json(&a.join("results.json")).unwrap();
    let missing: Vec<String> = json["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{}/{}", c["optimizer"], c["seed"]))
        .collect();
    assert_eq!(missing, ["\"adam\"/0", "\"graphsam\"/0"]);

    // The other slice elsewhere; merging both folders completes the table.
    let o = compare(
        data.path(),
        &[
            "--shard",
            "0/2",
            "--beta",
            "0.9",
            "--out",
            b.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let merged = data.path().join("merged");
    let o = Command::new(env!("CARGO_BIN_EXE_graphsam"))
        .args([
            "compare",
            "--merge",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--out",
            merged.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("all 4 cells finished"), "{}", text(&o));
    let rows = csv_rows(&merged);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1][9], "2");
    assert_eq!(rows[2][9], "2");
    // GraphSAM's β reached its cells; Adam's config has no GraphSAM flags.
    let config: serde_json::Value =
        read_json(&cell_dir(&b, "graphsam", 0).join("config.json")).unwrap();
    assert!(config.to_string().contains("\"beta\":0.9"), "{config}");
}

#[test]
fn a_failed_cell_is_reported_with_its_log_and_the_others_finish() {
    let data = data_dir();
    let out = data.path().join("cmp");
    let broken = cell_dir(&out, "adam", 0);
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("config.json"), "{ not json").unwrap();
    let o = compare(
        data.path(),
        &["--jobs", "2", "--out", out.to_str().unwrap()],
    );
    assert!(!o.status.success());
    let log = text(&o);
    assert!(
        log.contains("cell esol/adam/0 failed; last lines of"),
        "{log}"
    );
    assert!(
        log.contains("parsing") && log.contains("1 cell(s) failed: esol/adam/0"),
        "{log}"
    );
    for (opt, seed) in [("adam", 1), ("graphsam", 0), ("graphsam", 1)] {
        assert!(
            cell_dir(&out, opt, seed).join("summary.json").exists(),
            "{opt}/{seed}"
        );
    }
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("Missing cells (1): esol/adam/0"), "{md}");
}

#[test]
fn finished_cells_trained_with_other_settings_are_refused() {
    let data = data_dir();
    let out = data.path().join("cmp");
    let o = compare(data.path(), &["--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let summary = cell_dir(&out, "adam", 0).join("summary.json");
    let before = std::fs::read(&summary).unwrap();
    // Same folder, different epoch budget: mixing would compare unlike runs.
    let o = compare(
        data.path(),
        &["--patience", "3", "--out", out.to_str().unwrap()],
    );
    assert!(!o.status.success());
    let log = text(&o);
    assert!(
        log.contains("4 finished cell(s) were trained with other settings"),
        "{log}"
    );
    assert!(log.contains("esol/graphsam/1:"), "{log}");
    assert_eq!(std::fs::read(&summary).unwrap(), before);
    // The original flags are still accepted, with nothing to run.
    let o = compare(data.path(), &["--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("4 already finished, 0 to run"),
        "{}",
        text(&o)
    );
}
