//! Finding a dataset's CSV on disk, or downloading it once into a cache.
//!
//! Order: an explicit path; `$GRAPHSAM_DATA_DIR/<file>`; the user cache
//! folder (`$GRAPHSAM_CACHE_DIR`, else the platform cache dir + `graphsam/datasets`);
//! otherwise the registry URL, with the checksum verified before the file is
//! moved into the cache in one rename (so a half-written file is never seen).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::error::{DataError, Result};
use super::registry::{DatasetSpec, Registry};

/// Environment variable naming a folder that holds dataset CSVs.
pub const DATA_DIR_ENV: &str = "GRAPHSAM_DATA_DIR";
/// Environment variable naming the download cache folder.
pub const CACHE_DIR_ENV: &str = "GRAPHSAM_CACHE_DIR";
/// Environment variable replacing the registry's base URL (a mirror).
pub const BASE_URL_ENV: &str = "GRAPHSAM_BASE_URL";

/// Where a resolved dataset file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataSource {
    /// A path the user gave.
    Explicit,
    /// Found in the data directory (`GRAPHSAM_DATA_DIR`).
    DataDir,
    /// Found in the cache, checksum verified.
    Cache,
    /// Downloaded just now into the cache.
    Downloaded,
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DataSource::Explicit => "path",
            DataSource::DataDir => "data dir",
            DataSource::Cache => "cache",
            DataSource::Downloaded => "downloaded",
        })
    }
}

/// A dataset file on disk and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedFile {
    /// The CSV (uncompressed).
    pub path: PathBuf,
    /// How it was found.
    pub source: DataSource,
}

/// Told how a download proceeds: the file's name, the bytes received so far,
/// and the total when the server announced it. Called after every chunk and
/// once more at the end; the library never draws anything itself.
#[derive(Clone)]
pub struct DownloadProgress(pub Arc<ProgressFn>);

/// The callback of [`DownloadProgress`]: (file name, bytes received, total bytes).
pub type ProgressFn = dyn Fn(&str, u64, Option<u64>) + Send + Sync;

impl std::fmt::Debug for DownloadProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DownloadProgress(..)")
    }
}

/// Resolves dataset specs to local files. Every field can be set directly
/// so tests and embedding programs never touch the real cache or network.
#[derive(Debug, Clone)]
pub struct DatasetResolver {
    /// Folder searched for `<file_name>` before the cache.
    pub data_dir: Option<PathBuf>,
    /// Download cache; `None` disables caching and downloading.
    pub cache_dir: Option<PathBuf>,
    /// Replaces the registry URL's folder: the file is fetched from
    /// `<base_url>/<published file name>`.
    pub base_url: Option<String>,
    /// Whether a missing dataset may be downloaded.
    pub allow_download: bool,
    /// Told how a download proceeds (e.g. to draw a progress bar).
    pub progress: Option<DownloadProgress>,
    /// Connect and read timeout for downloads.
    pub timeout: Duration,
}

impl Default for DatasetResolver {
    /// No data dir, no cache, no downloads: only explicit paths resolve.
    fn default() -> Self {
        DatasetResolver {
            data_dir: None,
            cache_dir: None,
            base_url: None,
            allow_download: false,
            progress: None,
            timeout: Duration::from_secs(60),
        }
    }
}

/// The platform's user cache folder for graphsam's datasets.
pub fn default_cache_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("graphsam").join("datasets"))
}

/// SHA-256 of a byte string, as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(sha256_hex(&bytes))
}

/// One registry dataset and where (if anywhere) it is available locally.
#[derive(Debug, Clone)]
pub struct DatasetAvailability {
    /// The registry entry.
    pub spec: DatasetSpec,
    /// The local file, if present (data dir or verified cache).
    pub local: Option<ResolvedFile>,
}

impl DatasetResolver {
    /// Settings from the environment: `GRAPHSAM_DATA_DIR`, `GRAPHSAM_CACHE_DIR`
    /// (default: the platform cache folder), `GRAPHSAM_BASE_URL`; downloads
    /// allowed, no progress reports (set [`Self::progress`] for those).
    pub fn from_env() -> Self {
        let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        DatasetResolver {
            data_dir: nonempty(DATA_DIR_ENV).map(PathBuf::from),
            cache_dir: nonempty(CACHE_DIR_ENV)
                .map(PathBuf::from)
                .or_else(default_cache_dir),
            base_url: nonempty(BASE_URL_ENV).map(|v| v.to_string_lossy().into_owned()),
            allow_download: true,
            progress: None,
            timeout: Duration::from_secs(60),
        }
    }

    /// The URL a spec is downloaded from, honouring `base_url`.
    pub fn download_url(&self, spec: &DatasetSpec) -> Option<String> {
        let url = spec.url.as_deref()?;
        match (&self.base_url, spec.remote_file_name()) {
            (Some(base), Some(remote)) => Some(format!("{}/{remote}", base.trim_end_matches('/'))),
            _ => Some(url.to_string()),
        }
    }

    /// Finds a spec's file without downloading: data dir, then cache (a cached
    /// file counts only if its checksum matches).
    pub fn locate(&self, spec: &DatasetSpec) -> Result<Option<ResolvedFile>> {
        if let Some(dir) = &self.data_dir {
            let p = dir.join(&spec.file_name);
            if p.is_file() {
                return Ok(Some(ResolvedFile {
                    path: p,
                    source: DataSource::DataDir,
                }));
            }
        }
        if let Some(dir) = &self.cache_dir {
            let p = dir.join(&spec.file_name);
            if p.is_file() {
                let ok = match &spec.sha256 {
                    Some(expected) => sha256_file(&p)?.eq_ignore_ascii_case(expected),
                    None => true,
                };
                if ok {
                    return Ok(Some(ResolvedFile {
                        path: p,
                        source: DataSource::Cache,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Resolves a spec in order: `explicit` path, data dir, cache, download.
    pub fn resolve(&self, spec: &DatasetSpec, explicit: Option<&Path>) -> Result<ResolvedFile> {
        if let Some(p) = explicit {
            if p.is_file() {
                return Ok(ResolvedFile {
                    path: p.to_path_buf(),
                    source: DataSource::Explicit,
                });
            }
            return Err(DataError::FileNotFound {
                path: p.to_path_buf(),
            });
        }
        if let Some(found) = self.locate(spec)? {
            return Ok(found);
        }
        match (
            self.download_url(spec),
            &self.cache_dir,
            self.allow_download,
        ) {
            (Some(url), Some(cache), true) => {
                let path = self.download_into(spec, &url, cache)?;
                Ok(ResolvedFile {
                    path,
                    source: DataSource::Downloaded,
                })
            }
            _ => Err(DataError::NotFound {
                file: spec.file_name.clone(),
                searched: self.searched_places(),
            }),
        }
    }

    fn searched_places(&self) -> String {
        let mut places = Vec::new();
        match &self.data_dir {
            Some(d) => places.push(format!("data dir {}", d.display())),
            None => places.push(format!("no data dir ({DATA_DIR_ENV} unset)")),
        }
        if let Some(c) = &self.cache_dir {
            places.push(format!("cache {}", c.display()));
        }
        if !self.allow_download {
            places.push("downloads disabled".to_string());
        }
        places.join(", ")
    }

    /// Downloads `url`, un-gzips a `.gz`, verifies the checksum and stores
    /// the CSV atomically as `<cache>/<file_name>`.
    fn download_into(&self, spec: &DatasetSpec, url: &str, cache: &Path) -> Result<PathBuf> {
        let fail = |reason: String| DataError::Download {
            file: spec.file_name.clone(),
            url: url.to_string(),
            reason,
        };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(self.timeout)
            .timeout_read(self.timeout)
            .build();
        let response = agent.get(url).call().map_err(|e| match e {
            ureq::Error::Status(code, r) => fail(format!("HTTP status {code} {}", r.status_text())),
            ureq::Error::Transport(t) => fail(t.to_string()),
        })?;
        let expected_len = response
            .header("Content-Length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut body = Vec::with_capacity(expected_len.unwrap_or(0).min(1 << 30) as usize);
        let mut reader = response.into_reader();
        let mut chunk = vec![0u8; 64 * 1024];
        let report = |received: usize| {
            if let Some(progress) = &self.progress {
                (progress.0)(&spec.file_name, received as u64, expected_len);
            }
        };
        report(0);
        loop {
            let n = match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(fail(format!("reading the response failed: {e}"))),
            };
            body.extend_from_slice(&chunk[..n]);
            report(body.len());
        }
        if let Some(n) = expected_len
            && body.len() as u64 != n
        {
            return Err(fail(format!(
                "truncated response: got {} of {n} bytes",
                body.len()
            )));
        }
        let csv = if url.ends_with(".gz") {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body.as_slice())
                .read_to_end(&mut out)
                .map_err(|e| fail(format!("the response is not valid gzip: {e}")))?;
            out
        } else {
            body
        };
        if let Some(expected) = &spec.sha256 {
            let actual = sha256_hex(&csv);
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(DataError::ChecksumMismatch {
                    file: spec.file_name.clone(),
                    url: url.to_string(),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        // Readers see either no file or the whole verified file.
        let target = cache.join(&spec.file_name);
        crate::atomic::write_atomic(&target, &csv).map_err(|source| DataError::Io {
            action: "write",
            path: target.clone(),
            source,
        })?;
        Ok(target)
    }

    /// Each registry dataset with its local file, if any (no downloads).
    pub fn availability(&self, registry: &Registry) -> Result<Vec<DatasetAvailability>> {
        registry
            .specs()
            .iter()
            .map(|spec| {
                Ok(DatasetAvailability {
                    spec: spec.clone(),
                    local: self.locate(spec)?,
                })
            })
            .collect()
    }
}
