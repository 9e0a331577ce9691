//! Loading CSVs: missing labels, skipped rows with their line numbers, and
//! every bad-input case with its exact error kind.

use std::path::PathBuf;

use graphsam::data::{
    DataError, DatasetSpec, LoadOptions, MoleculeDataset, Registry, SkipReason, TaskType,
};
use graphsam::features::FeatureSet;

fn write_csv(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn two_task_spec() -> DatasetSpec {
    DatasetSpec::custom(
        "t.csv",
        "smiles",
        vec!["a".into(), "b".into()],
        TaskType::Classification,
    )
}

fn load(path: &std::path::Path, spec: &DatasetSpec) -> Result<MoleculeDataset, DataError> {
    MoleculeDataset::load(path, spec, &LoadOptions::scaffolds_only())
}

#[test]
fn missing_labels_become_nan_and_invalid_smiles_are_skipped_with_lines() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "id,smiles,a,b\n\
               1,CCO,1,0\n\
               2,not_a_smiles,0,1\n\
               3,c1ccccc1,,NaN\n\
               4,,1,1\n\
               5, CC(=O)O ,0,nan\n\
               6,C1CC,1,0\n";
    let path = write_csv(&dir, "t.csv", csv);
    let ds = load(&path, &two_task_spec()).unwrap();
    assert_eq!(ds.smiles, vec!["CCO", "c1ccccc1", "CC(=O)O"]);
    assert_eq!(ds.source_lines, vec![2, 4, 6]);
    assert_eq!(ds.n_tasks, 2);
    assert_eq!(ds.task_names, vec!["a", "b"]);
    assert_eq!(ds.targets_of(0), &[1.0, 0.0]);
    assert!(ds.targets_of(1).iter().all(|v| v.is_nan()));
    assert_eq!(ds.targets_of(2)[0], 0.0);
    assert!(ds.targets_of(2)[1].is_nan());
    assert_eq!(ds.label_counts(), vec![2, 1]);
    let lines: Vec<u64> = ds.skipped.iter().map(|s| s.line).collect();
    assert_eq!(lines, vec![3, 5, 7]);
    assert!(matches!(
        ds.skipped[0].reason,
        SkipReason::InvalidSmiles { .. }
    ));
    assert_eq!(ds.skipped[0].smiles, "not_a_smiles");
    assert_eq!(ds.skipped[1].reason, SkipReason::EmptySmiles);
    // Unclosed ring.
    assert!(matches!(
        ds.skipped[2].reason,
        SkipReason::InvalidSmiles { .. }
    ));
    // Scaffolds: ethanol and acetic acid are acyclic, benzene is its own.
    assert_eq!(ds.scaffolds, vec!["", "c1ccccc1", ""]);
    assert!(ds.graphs.is_empty());
}

#[test]
fn line_numbers_count_quoted_multiline_cells_and_crlf() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "name,smiles,a,b\r\n\"two\nline name\",CC,1,0\r\nx,Xx,0,0\r\n";
    let path = write_csv(&dir, "t.csv", csv);
    let ds = load(&path, &two_task_spec()).unwrap();
    assert_eq!(ds.source_lines, vec![2]);
    // The bad row starts on file line 4 because the quoted name spans two lines.
    assert_eq!(ds.skipped.len(), 1);
    assert_eq!(ds.skipped[0].line, 4);
}

#[test]
fn missing_smiles_column_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_csv(&dir, "t.csv", "SMILES_X,a,b\nCC,1,0\n");
    let err = load(&path, &two_task_spec()).unwrap_err();
    match &err {
        DataError::MissingColumn {
            column, available, ..
        } => {
            assert_eq!(column, "smiles");
            assert_eq!(available, "SMILES_X, a, b");
        }
        other => panic!("wrong error: {other}"),
    }
    assert!(err.to_string().contains("`smiles`"));
}

#[test]
fn missing_target_column_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_csv(&dir, "t.csv", "smiles,a\nCC,1\n");
    let err = load(&path, &two_task_spec()).unwrap_err();
    assert!(
        matches!(&err, DataError::MissingColumn { column, .. } if column == "b"),
        "{err}"
    );
}

#[test]
fn non_numeric_target_names_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_csv(&dir, "t.csv", "smiles,a,b\nCC,1,0\nCCC,0,yes\n");
    let err = load(&path, &two_task_spec()).unwrap_err();
    match &err {
        DataError::NonNumericTarget {
            line,
            column,
            value,
            ..
        } => {
            assert_eq!((*line, column.as_str(), value.as_str()), (3, "b", "yes"));
        }
        other => panic!("wrong error: {other}"),
    }
    assert!(err.to_string().contains("line 3"));
    // Infinity is not a usable target either.
    let path = write_csv(&dir, "inf.csv", "smiles,a,b\nCC,inf,0\n");
    assert!(matches!(
        load(&path, &two_task_spec()),
        Err(DataError::NonNumericTarget { line: 2, .. })
    ));
}

#[test]
fn classification_label_must_be_binary() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_csv(&dir, "t.csv", "smiles,a,b\nCC,2,0\n");
    let err = load(&path, &two_task_spec()).unwrap_err();
    assert!(
        matches!(&err, DataError::InvalidLabel { line: 2, column, value, .. } if column == "a" && *value == 2.0),
        "{err}"
    );
    // The same value is fine for regression.
    let reg = DatasetSpec::custom("t.csv", "smiles", vec!["a".into()], TaskType::Regression);
    let ds = load(&path, &reg).unwrap();
    assert_eq!(ds.targets, vec![2.0]);
}

#[test]
fn empty_file_header_only_and_ragged_rows_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write_csv(&dir, "empty.csv", "");
    assert!(matches!(
        load(&empty, &two_task_spec()),
        Err(DataError::EmptyCsv { what: "header", .. })
    ));
    let header_only = write_csv(&dir, "h.csv", "smiles,a,b\n");
    assert!(matches!(
        load(&header_only, &two_task_spec()),
        Err(DataError::EmptyCsv {
            what: "data rows",
            ..
        })
    ));
    let ragged = write_csv(&dir, "r.csv", "smiles,a,b\nCC,1,0\nCCC,1\n");
    let err = load(&ragged, &two_task_spec()).unwrap_err();
    assert!(
        matches!(err, DataError::MalformedRow { line: 3, .. }),
        "{err}"
    );
}

#[test]
fn all_rows_invalid_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_csv(&dir, "t.csv", "smiles,a,b\nfoo,1,0\n,0,0\n");
    let err = load(&path, &two_task_spec()).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::NoValidMolecules {
                skipped: 2,
                first_line: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn missing_file_is_file_not_found() {
    let err = load(std::path::Path::new("/nonexistent/x.csv"), &two_task_spec()).unwrap_err();
    assert!(matches!(err, DataError::FileNotFound { .. }), "{err}");
}

#[test]
fn unknown_dataset_lists_known_names() {
    let reg = Registry::moleculenet();
    let err = reg.get("qm9").unwrap_err();
    assert!(
        matches!(&err, DataError::UnknownDataset { name, known } if name == "qm9" && known.contains("bbbp")),
        "{err}"
    );
    assert_eq!(reg.get("BBBP").unwrap().file_name, "BBBP.csv");
    assert_eq!(reg.get("delaney").unwrap().name, "esol");
    assert_eq!(reg.get("Lipophilicity.csv").unwrap().name, "lipophilicity");
}

#[test]
fn registry_has_the_paper_datasets() {
    let reg = Registry::moleculenet();
    let tasks: Vec<(&str, usize)> = reg
        .specs()
        .iter()
        .map(|s| (s.name.as_str(), s.n_tasks()))
        .collect();
    assert_eq!(
        tasks,
        vec![
            ("bbbp", 1),
            ("clintox", 2),
            ("sider", 27),
            ("tox21", 12),
            ("esol", 1),
            ("lipophilicity", 1)
        ]
    );
    let clintox = reg.get("clintox").unwrap();
    assert_eq!(clintox.remote_file_name(), Some("clintox.csv.gz"));
    assert_eq!(clintox.target_columns, vec!["FDA_APPROVED", "CT_TOX"]);
    assert_eq!(reg.get("esol").unwrap().task_type, TaskType::Regression);
}

/// 100 carbons in a chain vs 99: the CoMPT limit drops molecules with 100
/// or more atoms and reports them.
#[test]
fn atom_limit_drops_and_reports_large_molecules() {
    let dir = tempfile::tempdir().unwrap();
    let big = "C".repeat(100);
    let ok = "C".repeat(99);
    let csv = format!("smiles,y\n{big},1.0\n{ok},2.0\nCCO,3.0\n");
    let path = write_csv(&dir, "t.csv", &csv);
    let spec = DatasetSpec::custom("t.csv", "smiles", vec!["y".into()], TaskType::Regression);
    let opts = LoadOptions::for_features(FeatureSet::Compt);
    assert_eq!(opts.atom_limit, Some(100));
    let ds = MoleculeDataset::load(&path, &spec, &opts).unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(ds.atom_counts, vec![99, 3]);
    assert_eq!(ds.skipped.len(), 1);
    assert_eq!(ds.skipped[0].line, 2);
    assert_eq!(
        ds.skipped[0].reason,
        SkipReason::TooManyAtoms {
            atoms: 100,
            limit: 100
        }
    );
    assert_eq!(ds.graphs.len(), 2);
    assert_eq!(ds.graphs[0].n_atoms, 99);
    assert_eq!(
        ds.graphs[0].atom_features.len(),
        99 * FeatureSet::Compt.atom_dim()
    );
    // Without a limit (chemprop features) the big one is kept.
    let ds = MoleculeDataset::load(
        &path,
        &spec,
        &LoadOptions::for_features(FeatureSet::Chemprop),
    )
    .unwrap();
    assert_eq!(ds.len(), 3);
    assert!(ds.skipped.is_empty());
}

#[test]
fn featurization_keeps_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("smiles,y\n");
    let mut expected = Vec::new();
    for i in 1..60 {
        let s = "C".repeat(i);
        csv.push_str(&format!("{s},{i}\n"));
        expected.push(i);
    }
    let path = write_csv(&dir, "t.csv", &csv);
    let spec = DatasetSpec::custom("t.csv", "smiles", vec!["y".into()], TaskType::Regression);
    let ds =
        MoleculeDataset::load(&path, &spec, &LoadOptions::for_features(FeatureSet::Compt)).unwrap();
    let sizes: Vec<usize> = ds.graphs.iter().map(|g| g.n_atoms).collect();
    assert_eq!(sizes, expected);
    assert_eq!(
        ds.targets,
        expected.iter().map(|&i| i as f32).collect::<Vec<_>>()
    );
}

#[test]
fn a_classification_task_with_one_class_is_refused_with_its_column() {
    let dir = tempfile::tempdir().unwrap();
    // Task `a` has both classes; task `b` only positives (and a missing label).
    let csv = "smiles,a,b\nCCO,1,1\nCCN,0,\nc1ccccc1,1,1\n";
    let data = load(&write_csv(&dir, "t.csv", csv), &two_task_spec()).unwrap();
    let err = data.check_classes().unwrap_err();
    assert!(
        matches!(&err, DataError::SingleClassTask { column, positives: 2, negatives: 0, .. } if column == "b"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("`b` has 2 positive and 0 negative labels"),
        "{err}"
    );
    // Both classes in every task: accepted.
    let csv = "smiles,a,b\nCCO,1,1\nCCN,0,0\n";
    load(&write_csv(&dir, "u.csv", csv), &two_task_spec())
        .unwrap()
        .check_classes()
        .unwrap();
}
