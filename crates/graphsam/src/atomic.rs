//! The one way graphsam writes a file: to a temporary file next to it,
//! synced, then renamed over it, so a reader or a crash sees either the old
//! file or the whole new one.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically, creating its folder if needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
