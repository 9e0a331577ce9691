//! Screening: embeddings are what each head reads; streamed `predict` and
//! `embed` give the whole-file answers for CSV and gzip .smi input, report
//! bad rows by line, and keep what was written when the input breaks off.

mod common;

use common::graphsam;

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};

use graphsam::data::BatchLayout;
use graphsam::data::{
    DatasetSpec, LoadOptions, Metric, MoleculeDataset, TargetScaler, TaskType, sequential_batches,
};
use graphsam::features::FeatureSet;
use graphsam::model::compt::ComptConfig;
use graphsam::model::dmpnn::DmpnnConfig;
use graphsam::model::grover::GroverConfig;
use graphsam::model::{ForwardMode, ModelSpec, PropertyModel};
use graphsam::train::ModelCard;
use graphsam::train::checkpoint::save_model;
use graphsam::train::inference::{load_card, predict_with_card};
use graphsam::train::record::{files, write_json};

fn cpu() -> Device {
    graphsam::device::ComputeBackend::default_cpu().device()
}

fn host(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
            "{what} [{k}]: {g} vs {w}"
        );
    }
}

/// The head applied to `embed`'s vectors must give `predict`'s outputs.
fn check_head_reads_embedding<M: PropertyModel>(
    model: &M,
    dataset: &MoleculeDataset,
    head: impl Fn(&M, Tensor<2>) -> Tensor<2>,
    width: usize,
) {
    let all: Vec<usize> = (0..dataset.len()).collect();
    for molecules in sequential_batches(&all, 5) {
        let batch = M::Batch::assemble(dataset, &molecules, None).unwrap();
        let input = M::input(&batch, &cpu()).unwrap();
        let embedded = model.embed(&input);
        assert_eq!(embedded.dims(), [molecules.len(), width]);
        let predicted = host(model.predict(&input, TaskType::Regression));
        assert_close(&host(head(model, embedded)), &predicted, "head(embed)");
    }
}

#[test]
fn embeddings_are_the_vectors_each_head_reads() {
    let d = cpu();
    let compt = ComptConfig::tiny(1).init(&d);
    let data = common::tiny_classification(FeatureSet::Compt);
    let width = compt.d_model;
    check_head_reads_embedding(&compt, &data, |m, e| m.predict(e), width);

    let dmpnn = DmpnnConfig::tiny(1)
        .with_atom_dim(133)
        .with_bond_dim(14)
        .init(&d, 3);
    let data = common::tiny_classification(FeatureSet::Chemprop);
    let width = dmpnn.w_hidden.weight.dims()[0];
    check_head_reads_embedding(
        &dmpnn,
        &data,
        |m, e| m.head.forward(e, &mut ForwardMode::Eval),
        width,
    );

    let config = GroverConfig::tiny(1).with_atom_dim(151).with_bond_dim(14);
    let grover = config.init(&d, 5);
    let data = common::tiny_classification(FeatureSet::Grover);
    let half = config.hidden_size;
    // GROVER's regression output is the mean of its two heads, each reading
    // its own half of the embedding.
    check_head_reads_embedding(
        &grover,
        &data,
        |m, e| {
            let n = e.dims()[0];
            let a = e.clone().slice([0..n, 0..half]);
            let b = e.slice([0..n, half..2 * half]);
            (m.head_atom_from_atom.forward(a, &mut ForwardMode::Eval)
                + m.head_atom_from_bond.forward(b, &mut ForwardMode::Eval))
                / 2.0
        },
        2 * half,
    );
}

/// A run folder holding an untrained tiny D-MPNN regression model (its
/// outputs are fixed by its seed), as `train` would leave it.
fn saved_dmpnn(dir: &Path, seed: u64) -> PathBuf {
    let config = DmpnnConfig::tiny(2).with_atom_dim(133).with_bond_dim(14);
    let model = config.init(&cpu(), seed);
    let run = dir.join(format!("seed-{seed}"));
    std::fs::create_dir_all(&run).unwrap();
    save_model(&model, &run.join(files::BEST_MODEL)).unwrap();
    let card = ModelCard {
        model: ModelSpec::Dmpnn(config),
        task_names: vec!["a".into(), "b".into()],
        task_type: TaskType::Regression,
        metric: Metric::Rmse,
        scaler: Some(TargetScaler {
            means: vec![1.0, -2.0],
            stds: vec![0.5, 3.0],
        }),
        atom_limit: None,
        dataset: "t".into(),
    };
    write_json(&run.join(files::MODEL_CARD), &card).unwrap();
    run
}

fn gzip(text: &str) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

/// The whole-file answer: the model's predictions for `smiles`, loaded at once.
fn whole_file_predictions(run: &Path, smiles: &[&str], dir: &Path) -> Vec<f32> {
    let csv = dir.join("whole.csv");
    std::fs::write(&csv, format!("smiles\n{}\n", smiles.join("\n"))).unwrap();
    let card = load_card(run).unwrap();
    let spec = DatasetSpec::custom("whole", "smiles", vec![], TaskType::Regression);
    let mut data = MoleculeDataset::load(
        &csv,
        &spec,
        &LoadOptions::for_features(FeatureSet::Chemprop),
    )
    .unwrap();
    data.n_tasks = 2;
    data.targets = vec![f32::NAN; data.len() * 2];
    let all: Vec<usize> = (0..data.len()).collect();
    predict_with_card(run, &card, &data, &all, &cpu()).unwrap()
}

const LIBRARY: &str = "smiles name\r\nCCO ethanol\r\nnot_a_smiles broken\r\n\r\nc1ccncc1 pyridine\r\nCC(=O)O\r\nC1CC open-ring\r\nOCCO glycol\r\n";
const VALID: [&str; 4] = ["CCO", "c1ccncc1", "CC(=O)O", "OCCO"];

#[test]
fn streamed_predictions_match_the_whole_file_and_report_bad_rows_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = saved_dmpnn(dir.path(), 4);
    let input = dir.path().join("library.smi.gz");
    std::fs::write(&input, gzip(LIBRARY)).unwrap();
    let (out, errors) = (dir.path().join("out.csv"), dir.path().join("errors.csv"));
    let output = graphsam(&[
        "predict",
        "--model",
        run.to_str().unwrap(),
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--errors",
        errors.to_str().unwrap(),
        "--chunk-size",
        "2",
        "--batch-size",
        "3",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("line 3: \"not_a_smiles\" skipped"),
        "{stderr}"
    );
    assert!(
        stderr.contains("for 4 molecules (3 rows skipped)"),
        "{stderr}"
    );

    let mut reader = csv::Reader::from_path(&out).unwrap();
    assert_eq!(
        reader.headers().unwrap(),
        vec!["line", "smiles", "name", "a", "b"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let labels: Vec<(&str, &str, &str)> = rows.iter().map(|r| (&r[0], &r[1], &r[2])).collect();
    assert_eq!(
        labels,
        [
            ("2", "CCO", "ethanol"),
            ("5", "c1ccncc1", "pyridine"),
            ("6", "CC(=O)O", ""),
            ("8", "OCCO", "glycol")
        ]
    );
    let streamed: Vec<f32> = rows
        .iter()
        .flat_map(|r| [r[3].parse::<f32>().unwrap(), r[4].parse::<f32>().unwrap()])
        .collect();
    let whole = whole_file_predictions(&run, &VALID, dir.path());
    for (k, (s, w)) in streamed.iter().zip(&whole).enumerate() {
        assert!(
            (s - w).abs() < 2e-6 * (1.0 + w.abs()),
            "value {k}: {s} vs {w}"
        );
    }

    let mut errors = csv::Reader::from_path(&errors).unwrap();
    assert_eq!(errors.headers().unwrap(), vec!["line", "smiles", "reason"]);
    let skipped: Vec<(String, String, String)> = errors
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_string(), r[1].to_string(), r[2].to_string())
        })
        .collect();
    assert_eq!(skipped.len(), 3);
    assert_eq!(
        (skipped[0].0.as_str(), skipped[0].1.as_str()),
        ("3", "not_a_smiles")
    );
    assert!(skipped[0].2.starts_with("invalid SMILES"), "{skipped:?}");
    assert_eq!(skipped[1], ("4".into(), "".into(), "empty SMILES".into()));
    assert_eq!(
        (skipped[2].0.as_str(), skipped[2].1.as_str()),
        ("7", "C1CC")
    );
    assert!(skipped[2].2.contains("unclosed ring"), "{skipped:?}");
}

#[test]
fn a_truncated_gzip_keeps_what_was_predicted_and_names_the_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = saved_dmpnn(dir.path(), 1);
    let text: String = (0..3000)
        .map(|i| format!("{}O\n", "C".repeat(i % 9 + 1)))
        .collect();
    let mut bytes = gzip(&text);
    bytes.truncate(bytes.len() / 2);
    let input = dir.path().join("cut.smi.gz");
    std::fs::write(&input, bytes).unwrap();
    let out = dir.path().join("out.csv");
    let output = graphsam(&[
        "predict",
        "--model",
        run.to_str().unwrap(),
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--chunk-size",
        "100",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a truncated input is an error");
    let written = std::fs::read_to_string(&out).unwrap();
    let last_line: u64 = written
        .lines()
        .last()
        .and_then(|l| l.split(',').next())
        .and_then(|n| n.parse().ok())
        .expect("rows were written before the error");
    assert!(last_line > 100 && last_line < 3000, "{last_line}");
    assert!(
        stderr.contains(&format!("reading stopped after line {last_line}")),
        "{stderr}"
    );
    assert_eq!(
        written.lines().count() as u64,
        last_line + 1,
        "header and every row up to it"
    );
}

#[test]
fn embed_writes_one_vector_per_valid_molecule_as_npy_or_csv() {
    let dir = tempfile::tempdir().unwrap();
    let run = saved_dmpnn(dir.path(), 2);
    let input = dir.path().join("library.smi");
    std::fs::write(&input, LIBRARY).unwrap();
    let npy = dir.path().join("vectors.npy");
    let output = graphsam(&[
        "embed",
        "--model",
        run.to_str().unwrap(),
        input.to_str().unwrap(),
        "--out",
        npy.to_str().unwrap(),
        "--chunk-size",
        "3",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bytes = std::fs::read(&npy).unwrap();
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    let width = DmpnnConfig::tiny(2).hidden_size;
    assert!(
        header.contains(&format!("'shape': (4, {width})")),
        "{header}"
    );
    let vectors: Vec<f32> = bytes[10 + header_len..]
        .chunks(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    // The vectors the model computes for the same molecules in one batch.
    let config = DmpnnConfig::tiny(2).with_atom_dim(133).with_bond_dim(14);
    let model = graphsam::train::checkpoint::load_model(
        config.init(&cpu(), 0),
        &run.join(files::BEST_MODEL),
    )
    .unwrap();
    let csv = dir.path().join("valid.csv");
    std::fs::write(&csv, format!("smiles\n{}\n", VALID.join("\n"))).unwrap();
    let spec = DatasetSpec::custom("valid", "smiles", vec![], TaskType::Regression);
    let data = MoleculeDataset::load(
        &csv,
        &spec,
        &LoadOptions::for_features(FeatureSet::Chemprop),
    )
    .unwrap();
    let (want, w) =
        graphsam::train::embed_indices(&model, &data, &[0, 1, 2, 3], &cpu(), 64).unwrap();
    assert_eq!(w, width);
    assert_close(&vectors, &want, "npy vectors");
    let rows = std::fs::read_to_string(dir.path().join("vectors.rows.csv")).unwrap();
    assert_eq!(
        rows.lines().collect::<Vec<_>>(),
        [
            "line,smiles,name",
            "2,CCO,ethanol",
            "5,c1ccncc1,pyridine",
            "6,CC(=O)O,",
            "8,OCCO,glycol"
        ]
    );

    // CSV on standard output: the same vectors after the row labels.
    let output = graphsam(&[
        "embed",
        "--model",
        run.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5);
    assert!(
        lines[0].starts_with("line,smiles,name,e0,e1"),
        "{}",
        lines[0]
    );
    let first: Vec<f32> = lines[1]
        .split(',')
        .skip(3)
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(first.len(), width);
    for (g, w) in first.iter().zip(&want[..width]) {
        assert!((g - w).abs() < 1e-5, "{g} vs {w}");
    }

    // An ensemble folder cannot embed.
    saved_dmpnn(dir.path(), 3);
    let output = graphsam(&[
        "embed",
        "--model",
        dir.path().to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("embeddings come from one model"),
        "{stderr}"
    );
}

#[test]
fn smiles_in_memory_get_one_row_each_with_nan_rows_and_reasons_for_bad_ones() {
    use graphsam::train::inference::Ensemble;
    use graphsam::train::screen::{ScreenOptions, ScreenOutput, screen_smiles};

    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (saved_dmpnn(dir.path(), 1), saved_dmpnn(dir.path(), 2));
    let inputs = [
        "CCO",
        "not_a_smiles",
        "",
        " c1ccncc1 ",
        "CC(=O)O",
        "C1CC",
        "OCCO",
    ];
    let options = ScreenOptions {
        batch_size: 2,
        // Chunks smaller than the list: rows must still land at their index.
        chunk_size: 3,
    };
    let ensemble = Ensemble::load(&[dir.path().to_path_buf()]).unwrap();
    let list = screen_smiles(
        &ensemble,
        &inputs,
        ScreenOutput::Predictions,
        &cpu(),
        options,
    )
    .unwrap();
    assert_eq!(list.width, 2);
    assert_eq!(list.mean.len(), inputs.len() * 2);
    let skipped: Vec<usize> = list.skipped.iter().map(|(i, _)| *i).collect();
    assert_eq!(skipped, [1, 2, 5], "{:?}", list.skipped);
    assert!(list.skipped[1].1.contains("empty"), "{:?}", list.skipped);
    // Valid rows hold the members' mean and spread, in input order.
    let (pa, pb) = (
        whole_file_predictions(&a, &VALID, dir.path()),
        whole_file_predictions(&b, &VALID, dir.path()),
    );
    let std = list.std.as_ref().expect("two members give a spread");
    for (k, i) in [0usize, 3, 4, 6].into_iter().enumerate() {
        for t in 0..2 {
            let (x, y) = (f64::from(pa[k * 2 + t]), f64::from(pb[k * 2 + t]));
            let got = list.mean[i * 2 + t];
            assert!(
                (got - (x + y) / 2.0).abs() < 1e-5,
                "row {i} task {t}: {got}"
            );
            let spread = (x - y).abs() / 2f64.sqrt();
            assert!((std[i * 2 + t] - spread).abs() < 1e-5, "row {i} task {t}");
        }
    }
    for i in skipped {
        assert!(list.mean[i * 2..i * 2 + 2].iter().all(|v| v.is_nan()));
    }

    // Embeddings of one member: its readout width, NaN rows for bad input.
    let one = Ensemble::load(&[a]).unwrap();
    let vectors = screen_smiles(&one, &inputs, ScreenOutput::Embeddings, &cpu(), options).unwrap();
    assert!(vectors.width > 0 && vectors.std.is_none());
    assert!(vectors.mean[..vectors.width].iter().all(|v| v.is_finite()));
    assert!(
        vectors.mean[vectors.width..2 * vectors.width]
            .iter()
            .all(|v| v.is_nan())
    );
}
