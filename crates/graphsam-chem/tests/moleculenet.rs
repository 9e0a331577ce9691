//! Parse every SMILES of the MoleculeNet CSVs in ../shared/data/moleculenet and
//! check that exactly the rows RDKit 2026.09 rejects are rejected (file line
//! numbers, header = line 1), as recorded in the golden file.

use std::path::PathBuf;

use graphsam_chem::chem::parse_smiles;
use serde_json::Value;

const GOLDEN: &str = include_str!("data/rdkit_golden.jsonl");

/// `GRAPHSAM_DATA_DIR`, else `../shared/data/moleculenet`, if it holds the
/// CSVs; otherwise `None` after a message on stderr (or a failure when
/// `GRAPHSAM_REQUIRE_DATA` is set, as CI sets it).
fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("GRAPHSAM_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/moleculenet")
        });
    if dir.join("BBBP.csv").is_file() {
        return Some(dir);
    }
    let message = format!(
        "the MoleculeNet CSVs are not in {} (set GRAPHSAM_DATA_DIR)",
        dir.display()
    );
    assert!(
        std::env::var_os("GRAPHSAM_REQUIRE_DATA").is_none(),
        "{message}; GRAPHSAM_REQUIRE_DATA is set"
    );
    eprintln!("skipped: {message}");
    None
}

/// (file line, error message) of every row whose SMILES we reject, and the row count.
fn rejected_lines(
    dir: &std::path::Path,
    file: &str,
    column: &str,
) -> (Vec<u64>, usize, Vec<String>) {
    let path = dir.join(file);
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("MoleculeNet copy missing at {}: {e}", path.display()));
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let col = reader
        .headers()
        .expect("header")
        .iter()
        .position(|h| h == column)
        .unwrap_or_else(|| panic!("{file} has no {column} column"));
    let (mut rejected, mut messages, mut rows) = (Vec::new(), Vec::new(), 0);
    for record in reader.records() {
        let record = record.expect("CSV row");
        rows += 1;
        // Physical line of the record's first character, counted from its byte
        // offset: on CRLF files (BBBP.csv) csv positions a record at the `\n` of
        // the previous line ending, so skip line-ending bytes first.
        let mut start = record.position().expect("position").byte() as usize;
        while matches!(bytes.get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        let line = 1 + bytes[..start].iter().filter(|&&b| b == b'\n').count() as u64;
        if let Err(error) = parse_smiles(&record[col]) {
            rejected.push(line);
            messages.push(error.to_string());
        }
    }
    (rejected, rows, messages)
}

fn golden_rejections(file: &str) -> (Vec<u64>, usize, String) {
    for line in GOLDEN.lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        if record["kind"] == "dataset" && record["file"] == file {
            let lines = record["rejected_lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            let rows = record["rows"].as_u64().unwrap() as usize;
            return (lines, rows, record["column"].as_str().unwrap().to_owned());
        }
    }
    panic!("{file} missing from the golden file");
}

/// Our rejected lines of `file`, checked against RDKit's; `None` when the
/// CSVs are absent (the test is skipped).
fn check(file: &str, expected_rejections: usize) -> Option<Vec<u64>> {
    let dir = data_dir()?;
    let (golden, golden_rows, column) = golden_rejections(file);
    let (ours, rows, messages) = rejected_lines(&dir, file, &column);
    assert_eq!(rows, golden_rows, "{file}: row count");
    assert_eq!(
        ours, golden,
        "{file}: rejected lines differ from RDKit; ours: {messages:#?}"
    );
    assert_eq!(ours.len(), expected_rejections, "{file}");
    assert!(messages.iter().all(|m| !m.is_empty()));
    Some(ours)
}

#[test]
fn bbbp_rejects_exactly_rdkits_eleven_rows() {
    let Some(rejected) = check("BBBP.csv", 11) else {
        return;
    };
    assert_eq!(
        rejected,
        vec![61, 63, 393, 616, 644, 647, 648, 649, 650, 651, 687]
    );
    let (_, rows, _) = golden_rejections("BBBP.csv");
    assert_eq!(rows - rejected.len(), 2039);
}

#[test]
fn clintox_rejects_four_rows() {
    check("clintox.csv", 4);
}

#[test]
fn tox21_rejects_eight_rows() {
    check("tox21.csv", 8);
}

#[test]
fn sider_esol_lipophilicity_reject_nothing() {
    check("sider.csv", 0);
    check("delaney-processed.csv", 0);
    check("Lipophilicity.csv", 0);
}
