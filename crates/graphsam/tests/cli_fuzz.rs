//! The binary on malformed input files and flag values: every run must end
//! with an exit status and a message, never with a panic. Inputs are
//! generated from a fixed seed, so a failure names a reproducible case.

use std::path::{Path, PathBuf};
use std::process::Command;

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const GOOD: [&str; 12] = [
    "CCO", "CCN", "c1ccccc1", "CC(=O)O", "c1ccncc1", "OCCO", "NCCN", "C1CCCCC1", "CC#N", "c1ccoc1",
    "CCCCO", "CC(C)N",
];
const BAD_SMILES: [&str; 10] = [
    "",
    "C1CC",
    "((((",
    "[Xx]",
    "c1cccc1",
    "C=",
    "N(C)(C)(C)(C)(C)",
    "[C@@H",
    "%%",
    "C\u{0}C",
];
const BAD_LABELS: [&str; 9] = ["", "abc", "nan", "inf", "-inf", "1e999", "2", "-", "0x1"];

/// One generated CSV: mostly valid rows with some broken ones, and now and
/// then a broken file shape (BOM, CRLF, ragged rows, bad quoting, bytes
/// that are not UTF-8).
fn generated_csv(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut text = String::new();
    if rng.random_bool(0.2) {
        text.push('\u{feff}');
    }
    let newline = if rng.random_bool(0.3) { "\r\n" } else { "\n" };
    let header = *[
        "smiles,y",
        "smiles,y,extra",
        "y,smiles",
        "SMILES,y",
        "smiles",
        "smiles,smiles,y",
    ]
    .choose(rng)
    .unwrap();
    text.push_str(header);
    text.push_str(newline);
    for i in 0..rng.random_range(0..30) {
        let smiles = if rng.random_bool(0.8) {
            GOOD[i % GOOD.len()].to_string()
        } else if rng.random_bool(0.2) {
            "C".repeat(rng.random_range(100..400))
        } else {
            BAD_SMILES.choose(rng).unwrap().to_string()
        };
        let label = if rng.random_bool(0.85) {
            (i % 2).to_string()
        } else {
            BAD_LABELS.choose(rng).unwrap().to_string()
        };
        let row = match rng.random_range(0..12) {
            0 => format!("\"{smiles}"),
            1 => format!("{smiles},{label},{label},{label}"),
            2 => smiles.clone(),
            3 => format!("\"{smiles}\",\"{label}\""),
            _ => format!("{smiles},{label}"),
        };
        text.push_str(&row);
        text.push_str(newline);
    }
    let mut bytes = text.into_bytes();
    if rng.random_bool(0.1) {
        let at = rng.random_range(0..=bytes.len());
        bytes.splice(at..at, [0xff, 0xfe, 0x80]);
    }
    if rng.random_bool(0.1) {
        bytes.truncate(rng.random_range(0..=bytes.len()));
    }
    bytes
}

/// Runs the binary and fails the test if it panicked.
fn run_no_panic(case: &str, args: &[&str], dir: &Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_graphsam"))
        .args(args)
        .env("GRAPHSAM_CACHE_DIR", dir.join("cache"))
        .env("GRAPHSAM_DATA_DIR", dir.join("no-data"))
        .env("RAYON_NUM_THREADS", "1")
        .env("RUST_BACKTRACE", "0")
        .current_dir(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code() != Some(101) && !stderr.contains("panicked"),
        "{case}: graphsam {} panicked:\n{stderr}",
        args.join(" ")
    );
    if !output.status.success() {
        assert!(
            stderr.contains("rror"),
            "{case}: graphsam {} failed without an error message:\n{stderr}",
            args.join(" ")
        );
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn generated_malformed_csvs_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(20261204);
    for case in 0..24 {
        let csv = write(
            dir.path(),
            &format!("case{case}.csv"),
            &generated_csv(&mut rng),
        );
        let csv = csv.to_str().unwrap();
        let name = format!("case {case}");
        run_no_panic(&name, &["featurize", csv, "--quiet"], dir.path());
        run_no_panic(
            &name,
            &[
                "split",
                csv,
                "--targets",
                "y",
                "--task",
                "classification",
                "--split",
                "scaffold",
            ],
            dir.path(),
        );
        let out = dir.path().join(format!("run{case}"));
        let model = if case % 2 == 0 { "dmpnn" } else { "compt" };
        run_no_panic(
            &name,
            &[
                "train",
                csv,
                "--targets",
                "y",
                "--task",
                "classification",
                "--model",
                model,
                "--hidden",
                "8",
                "--layers",
                "1",
                "--epochs",
                "1",
                "--batch-size",
                "4",
                "--quiet",
                "--out",
                out.to_str().unwrap(),
            ],
            dir.path(),
        );
        if out.join("seed-0").join("model.json").exists() {
            let seed = out.join("seed-0");
            run_no_panic(
                &name,
                &["predict", "--model", seed.to_str().unwrap(), csv],
                dir.path(),
            );
        }
    }
}

#[test]
fn malformed_flag_values_and_model_folders_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("smiles,y\n");
    for (i, s) in GOOD.iter().chain(&GOOD).enumerate() {
        csv.push_str(&format!("{s},{}\n", i % 2));
    }
    // Two molecules over CoMPT's default atom limit and position table.
    csv.push_str(&format!("{},1\n{},0\n", "C".repeat(150), "C".repeat(120)));
    let csv = write(dir.path(), "ok.csv", csv.as_bytes());
    let csv = csv.to_str().unwrap();
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            csv,
            "--targets",
            "y",
            "--task",
            "classification",
            "--quiet",
            "--out",
            "flagrun",
        ];
        // The case's own backbone and width, else a tiny D-MPNN (clap refuses repeated flags).
        for (flag, default) in [
            ("--model", "dmpnn"),
            ("--hidden", "8"),
            ("--layers", "1"),
            ("--epochs", "1"),
        ] {
            if !extra.contains(&flag) {
                args.extend([flag, default]);
            }
        }
        args.extend_from_slice(extra);
        run_no_panic(&format!("train {}", extra.join(" ")), &args, dir.path());
        let _ = std::fs::remove_dir_all(dir.path().join("flagrun"));
    };
    for extra in [
        &["--batch-size", "0"][..],
        &["--epochs", "0"],
        &["--sizes", "0.5,0.6,0.1"],
        &["--sizes", "1,0,0"],
        &["--sizes", "0.98,0.01,0.01"],
        &["--sizes", "nan,0.5,0.5"],
        &["--rho", "-1"],
        &["--rho", "nan"],
        &["--rho", "inf"],
        &["--hidden", "0"],
        &["--layers", "0"],
        &["--model", "grover", "--hidden", "8"],
        &["--atom-limit", "0"],
        &["--atom-limit", "2"],
        &["--seeds", "0"],
        &["--split", "file:/nonexistent/split.json"],
        &["--split", "scaffold-deterministic", "--split-seed", "3"],
        &["--optimizer", "graphsam", "--beta", "2"],
        &["--optimizer", "graphsam", "--gamma", "-1"],
        &["--optimizer", "sam-k", "--k", "0"],
        &["--optimizer", "looksam", "--alpha", "nan"],
        &["--optimizer", "rst", "--sam-prob", "1.5"],
        &["--optimizer", "ae-sam", "--delta", "1"],
        &["--optimizer", "nope"],
        &["--max-lr", "-1"],
        &["--warmup-epochs", "nan"],
        &["--patience", "0", "--epochs", "2"],
        &["--model", "compt", "--hidden", "6"],
        &["--model", "compt", "--hidden", "8", "--atom-limit", "400"],
        &["--model", "grover", "--hidden", "10"],
    ] {
        train(extra);
    }
    // Model folders that are missing, empty or hold an edited card.
    let card_dir = dir.path().join("card");
    std::fs::create_dir_all(&card_dir).unwrap();
    for (what, card) in [
        ("not json", "{"),
        ("empty object", "{}"),
        ("wrong types", r#"{"model": 3, "task_names": "y"}"#),
    ] {
        write(&card_dir, "model.json", card.as_bytes());
        run_no_panic(
            what,
            &["predict", "--model", card_dir.to_str().unwrap(), csv],
            dir.path(),
        );
    }
    run_no_panic(
        "missing folder",
        &["predict", "--model", "/nonexistent", csv],
        dir.path(),
    );
    run_no_panic(
        "no card",
        &["evaluate", "--model", dir.path().to_str().unwrap(), csv],
        dir.path(),
    );
    for args in [
        &["compare", "--datasets", "nope", "--out", "cmp"][..],
        &[
            "compare",
            "--datasets",
            "esol",
            "--jobs",
            "0",
            "--out",
            "cmp",
        ],
        &[
            "compare",
            "--datasets",
            "esol",
            "--shard",
            "3/2",
            "--out",
            "cmp",
        ],
        &["compare", "--merge", "/nonexistent"],
        &[
            "bench",
            csv,
            "--targets",
            "y",
            "--task",
            "classification",
            "--steps",
            "0",
        ],
        &[
            "split",
            csv,
            "--targets",
            "nope",
            "--task",
            "classification",
        ],
        &["featurize", "/nonexistent.csv"],
    ] {
        run_no_panic(&args.join(" "), args, dir.path());
    }
}

#[test]
fn a_dataset_outside_the_papers_table_says_which_compt_settings_it_gets() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("smiles,y\n");
    for i in 0..60 {
        csv.push_str(&format!("{},{}\n", GOOD[i % GOOD.len()], (i / 2) % 2));
    }
    let csv = write(dir.path(), "mine.csv", csv.as_bytes());
    let output = Command::new(env!("CARGO_BIN_EXE_graphsam"))
        .args([
            "train",
            csv.to_str().unwrap(),
            "--targets",
            "y",
            "--task",
            "classification",
        ])
        .args([
            "--hidden", "8", "--layers", "1", "--epochs", "1", "--quiet", "--out", "run",
        ])
        .current_dir(dir.path())
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr
            .contains("`mine` is not in the paper's per-dataset table; CoMPT uses BBBP's settings"),
        "{stderr}"
    );
}
