//! Dataset resolution: explicit path, data dir, cache, and download from a
//! real HTTP server on 127.0.0.1 started by each test (no client mocks).

mod shared_data;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use graphsam::data::resolve::sha256_hex;
use graphsam::data::{
    DataError, DataSource, DatasetResolver, DatasetSpec, LoadOptions, MoleculeDataset, Registry,
    TaskType,
};

const CSV: &str = "smiles,y\nCCO,1\nc1ccccc1,0\n";

/// Serves `files` (path -> body) over HTTP/1.1 until `max_requests` have
/// been answered; unknown paths get 404. Returns the base URL and a counter
/// of requests served.
fn serve(files: Vec<(&'static str, Vec<u8>)>, max_requests: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max_requests) {
            let Ok(mut stream) = stream else { continue };
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            // Drain headers.
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                line.clear();
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_string();
            match files.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    stream.write_all(head.as_bytes()).ok();
                    stream.write_all(body).ok();
                }
                None => {
                    stream
                        .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .ok();
                }
            }
            stream.flush().ok();
        }
    });
    (base, count)
}

fn spec(remote: &str, content: &[u8]) -> DatasetSpec {
    let mut s = DatasetSpec::custom(
        "mini.csv",
        "smiles",
        vec!["y".into()],
        TaskType::Classification,
    );
    s.url = Some(format!("https://example.invalid/datasets/{remote}"));
    s.sha256 = Some(sha256_hex(content));
    s
}

fn resolver(base: &str, cache: PathBuf) -> DatasetResolver {
    DatasetResolver {
        data_dir: None,
        cache_dir: Some(cache),
        base_url: Some(base.to_string()),
        allow_download: true,
        progress: None,
        timeout: Duration::from_secs(10),
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn downloads_verifies_and_caches_then_reuses_the_cache() {
    let (base, count) = serve(vec![("/mini.csv", CSV.as_bytes().to_vec())], 4);
    let cache = tempfile::tempdir().unwrap();
    let r = resolver(&base, cache.path().join("nested"));
    let spec = spec("mini.csv", CSV.as_bytes());
    assert_eq!(r.download_url(&spec).unwrap(), format!("{base}/mini.csv"));

    let first = r.resolve(&spec, None).unwrap();
    assert_eq!(first.source, DataSource::Downloaded);
    assert_eq!(first.path, cache.path().join("nested/mini.csv"));
    assert_eq!(std::fs::read_to_string(&first.path).unwrap(), CSV);
    // Nothing but the file is left in the cache (the temporary was renamed).
    assert_eq!(
        std::fs::read_dir(cache.path().join("nested"))
            .unwrap()
            .count(),
        1
    );

    let second = r.resolve(&spec, None).unwrap();
    assert_eq!(second.source, DataSource::Cache);
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "second resolve must not download"
    );

    let ds = MoleculeDataset::load(&second.path, &spec, &LoadOptions::scaffolds_only()).unwrap();
    assert_eq!(ds.len(), 2);
}

#[test]
fn gzip_downloads_are_decompressed_and_checked_against_the_csv() {
    let (base, _) = serve(vec![("/mini.csv.gz", gzip(CSV.as_bytes()))], 2);
    let cache = tempfile::tempdir().unwrap();
    let r = resolver(&base, cache.path().to_path_buf());
    let got = r
        .resolve(&spec("mini.csv.gz", CSV.as_bytes()), None)
        .unwrap();
    assert_eq!(got.source, DataSource::Downloaded);
    assert_eq!(got.path.file_name().unwrap(), "mini.csv");
    assert_eq!(std::fs::read_to_string(&got.path).unwrap(), CSV);
}

#[test]
fn download_progress_is_reported_through_the_callback() {
    let (base, _) = serve(vec![("/mini.csv", CSV.as_bytes().to_vec())], 2);
    let cache = tempfile::tempdir().unwrap();
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = calls.clone();
    let r = DatasetResolver {
        progress: Some(graphsam::data::DownloadProgress(Arc::new(
            move |file: &str, received: u64, total: Option<u64>| {
                seen.lock()
                    .unwrap()
                    .push((file.to_string(), received, total));
            },
        ))),
        ..resolver(&base, cache.path().to_path_buf())
    };
    r.resolve(&spec("mini.csv", CSV.as_bytes()), None).unwrap();
    let calls = calls.lock().unwrap();
    let size = CSV.len() as u64;
    assert_eq!(
        calls.first().unwrap(),
        &("mini.csv".to_string(), 0, Some(size))
    );
    assert_eq!(
        calls.last().unwrap(),
        &("mini.csv".to_string(), size, Some(size))
    );
    assert!(calls.windows(2).all(|w| w[0].1 <= w[1].1), "{calls:?}");
}

#[test]
fn checksum_mismatch_names_file_and_url_and_leaves_no_cache_file() {
    let (base, _) = serve(vec![("/mini.csv", b"smiles,y\nCC,1\n".to_vec())], 2);
    let cache = tempfile::tempdir().unwrap();
    let r = resolver(&base, cache.path().to_path_buf());
    let err = r
        .resolve(&spec("mini.csv", CSV.as_bytes()), None)
        .unwrap_err();
    match &err {
        DataError::ChecksumMismatch {
            file,
            url,
            expected,
            actual,
        } => {
            assert_eq!(file, "mini.csv");
            assert_eq!(url, &format!("{base}/mini.csv"));
            assert_eq!(expected, &sha256_hex(CSV.as_bytes()));
            assert_eq!(actual, &sha256_hex(b"smiles,y\nCC,1\n"));
        }
        other => panic!("wrong error: {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("GRAPHSAM_DATA_DIR"), "{msg}");
    assert!(!cache.path().join("mini.csv").exists());
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0);
}

#[test]
fn http_error_is_a_download_error_naming_file_url_and_remedy() {
    let (base, _) = serve(vec![], 2);
    let cache = tempfile::tempdir().unwrap();
    let r = resolver(&base, cache.path().to_path_buf());
    let err = r
        .resolve(&spec("mini.csv", CSV.as_bytes()), None)
        .unwrap_err();
    match &err {
        DataError::Download { file, url, reason } => {
            assert_eq!(file, "mini.csv");
            assert_eq!(url, &format!("{base}/mini.csv"));
            assert!(reason.contains("404"), "{reason}");
        }
        other => panic!("wrong error: {other}"),
    }
    assert!(err.to_string().contains("GRAPHSAM_DATA_DIR"));
}

#[test]
fn unreachable_server_is_a_download_error() {
    // Bind then drop: nothing listens on this port any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cache = tempfile::tempdir().unwrap();
    let r = resolver(
        &format!("http://127.0.0.1:{port}"),
        cache.path().to_path_buf(),
    );
    let err = r
        .resolve(&spec("mini.csv", CSV.as_bytes()), None)
        .unwrap_err();
    assert!(matches!(err, DataError::Download { .. }), "{err}");
}

#[test]
fn corrupt_gzip_is_a_download_error() {
    let (base, _) = serve(vec![("/mini.csv.gz", b"not gzip at all".to_vec())], 2);
    let cache = tempfile::tempdir().unwrap();
    let r = resolver(&base, cache.path().to_path_buf());
    let err = r
        .resolve(&spec("mini.csv.gz", CSV.as_bytes()), None)
        .unwrap_err();
    assert!(
        matches!(&err, DataError::Download { reason, .. } if reason.contains("gzip")),
        "{err}"
    );
}

#[test]
fn corrupt_cache_file_is_replaced_by_a_fresh_download() {
    let (base, count) = serve(vec![("/mini.csv", CSV.as_bytes().to_vec())], 2);
    let cache = tempfile::tempdir().unwrap();
    std::fs::write(cache.path().join("mini.csv"), "truncated").unwrap();
    let r = resolver(&base, cache.path().to_path_buf());
    let got = r.resolve(&spec("mini.csv", CSV.as_bytes()), None).unwrap();
    assert_eq!(got.source, DataSource::Downloaded);
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_eq!(std::fs::read_to_string(got.path).unwrap(), CSV);
}

#[test]
fn explicit_path_then_data_dir_take_precedence_over_cache_and_network() {
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("mini.csv"), CSV).unwrap();
    std::fs::write(cache.path().join("mini.csv"), CSV).unwrap();
    let explicit = data.path().join("other.csv");
    std::fs::write(&explicit, CSV).unwrap();
    let r = DatasetResolver {
        data_dir: Some(data.path().to_path_buf()),
        cache_dir: Some(cache.path().to_path_buf()),
        base_url: Some("http://127.0.0.1:9".into()),
        allow_download: true,
        ..DatasetResolver::default()
    };
    let s = spec("mini.csv", CSV.as_bytes());
    let got = r.resolve(&s, Some(&explicit)).unwrap();
    assert_eq!(
        (got.path, got.source),
        (explicit.clone(), DataSource::Explicit)
    );
    let got = r.resolve(&s, None).unwrap();
    assert_eq!(
        (got.path, got.source),
        (data.path().join("mini.csv"), DataSource::DataDir)
    );
    let no_data_dir = DatasetResolver {
        data_dir: None,
        ..r.clone()
    };
    assert_eq!(
        no_data_dir.resolve(&s, None).unwrap().source,
        DataSource::Cache
    );
    // An explicit path that does not exist is an error, not a fallback.
    let err = r
        .resolve(&s, Some(&data.path().join("nope.csv")))
        .unwrap_err();
    assert!(matches!(err, DataError::FileNotFound { .. }), "{err}");
}

#[test]
fn nothing_found_without_downloads_says_where_it_looked() {
    let data = tempfile::tempdir().unwrap();
    let r = DatasetResolver {
        data_dir: Some(data.path().to_path_buf()),
        ..DatasetResolver::default()
    };
    let err = r
        .resolve(&spec("mini.csv", CSV.as_bytes()), None)
        .unwrap_err();
    match &err {
        DataError::NotFound { file, searched } => {
            assert_eq!(file, "mini.csv");
            assert!(searched.contains("downloads disabled"), "{searched}");
        }
        other => panic!("wrong error: {other}"),
    }
}

#[test]
fn registry_checksums_match_the_shared_copies_and_availability_reports_them() {
    let Some(dir) = shared_data::moleculenet_dir("registry checksums") else {
        return;
    };
    let r = DatasetResolver {
        data_dir: Some(dir.clone()),
        ..DatasetResolver::default()
    };
    let registry = Registry::moleculenet();
    for spec in registry.specs() {
        let path = dir.join(&spec.file_name);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(Some(sha256_hex(&bytes)), spec.sha256, "{}", spec.file_name);
    }
    let avail = r.availability(&registry).unwrap();
    assert_eq!(avail.len(), 6);
    assert!(avail.iter().all(|a| {
        a.local
            .as_ref()
            .is_some_and(|l| l.source == DataSource::DataDir)
    }));
    let empty = DatasetResolver::default().availability(&registry).unwrap();
    assert!(empty.iter().all(|a| a.local.is_none()));
}
