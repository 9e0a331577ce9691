//! Where the MoleculeNet CSVs are for the tests that read them.

use std::path::PathBuf;

/// `GRAPHSAM_DATA_DIR`, else `../shared/data/moleculenet`, if it holds the
/// six CSVs. Otherwise the calling test is skipped with a message on stderr,
/// or fails when `GRAPHSAM_REQUIRE_DATA` is set (as CI sets it).
pub fn moleculenet_dir(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("GRAPHSAM_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/moleculenet")
        });
    if dir.join("BBBP.csv").is_file() {
        return Some(dir);
    }
    let message = format!(
        "{test}: the MoleculeNet CSVs are not in {} (set GRAPHSAM_DATA_DIR)",
        dir.display()
    );
    assert!(
        std::env::var_os("GRAPHSAM_REQUIRE_DATA").is_none(),
        "{message}; GRAPHSAM_REQUIRE_DATA is set"
    );
    eprintln!("skipped {message}");
    None
}
