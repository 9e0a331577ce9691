//! Molecules read as a stream, for screening libraries larger than memory:
//! a CSV (or TSV) with a SMILES column, or a `.smi` file (one SMILES per
//! line, an optional name after white space), either one possibly
//! gzip-compressed. Rows come out in chunks, in file order, each with its
//! file line, so `predict`, `embed` and `featurize` hold one chunk at a time
//! whatever the size of the input.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::error::{DataError, Result};
use super::load::{LoadOptions, MoleculeDataset, SkippedRow, parse_row};
use super::registry::TaskType;

/// How the rows of an input file are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// A header row, then delimited records (`,` for CSV, tab for TSV).
    Delimited {
        /// The field delimiter.
        delimiter: u8,
    },
    /// One molecule per line: a SMILES, then optionally white space and a
    /// name. A first line whose SMILES is the word `smiles` is a header.
    Smi,
}

impl InputFormat {
    /// The format a file name implies (a `.gz` ending is looked through):
    /// `.smi`, `.smiles` and `.txt` are SMILES lines, `.tsv` is tab-delimited,
    /// anything else is CSV.
    pub fn from_path(path: &Path) -> Self {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        let extension = name.rsplit_once('.').map_or("", |(_, e)| e);
        match extension {
            "smi" | "smiles" | "txt" => InputFormat::Smi,
            "tsv" => InputFormat::Delimited { delimiter: b'\t' },
            _ => InputFormat::Delimited { delimiter: b',' },
        }
    }
}

/// One input molecule before parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRow {
    /// File line where the row starts (line 1 is the first line, the header
    /// of a CSV).
    pub line: u64,
    /// The SMILES as written (trimmed).
    pub smiles: String,
    /// The molecule's name or identifier, when the input has one.
    pub name: Option<String>,
}

/// Counts the bytes read from the file itself (compressed bytes for a gzip
/// input), for progress and ETA.
struct CountingReader<R> {
    inner: R,
    bytes: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Line-end bytes seen in the (decompressed) text, by offset: `true` for
/// `\n`, `false` for `\r`. Holds only what the CSV reader has buffered ahead.
type Terminators = Arc<Mutex<VecDeque<(u64, bool)>>>;

/// Records where the line ends are as the CSV reader pulls text through.
pub struct TerminatorTap<R> {
    inner: R,
    offset: u64,
    seen: Terminators,
}

impl<R: Read> Read for TerminatorTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for (i, &b) in buf[..n].iter().enumerate() {
            if b == b'\n' || b == b'\r' {
                seen.push_back((self.offset + i as u64, b == b'\n'));
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// File line numbers of records from their byte offsets. The CSV reader's
/// own line count is off by one after CRLF line ends (a record can be
/// reported as starting on the previous line's `\n`), so count newlines
/// before the first byte of the record's content instead. Offsets only grow,
/// so only the line ends not yet passed are kept.
pub struct LineCounter {
    seen: Terminators,
    line: u64,
}

impl LineCounter {
    /// A counter fed by a [`TerminatorTap`] over `reader`.
    fn tap<R: Read>(reader: R) -> (Self, TerminatorTap<R>) {
        let seen = Terminators::default();
        (
            LineCounter {
                seen: seen.clone(),
                line: 1,
            },
            TerminatorTap {
                inner: reader,
                offset: 0,
                seen,
            },
        )
    }

    /// Line of the record starting at `byte`.
    pub(crate) fn line_at(&mut self, byte: u64) -> u64 {
        let mut start = byte;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(&(offset, newline)) = seen.front() {
            if offset > start {
                break;
            }
            if offset == start {
                // A line end where the record "starts" belongs to the line before.
                start += 1;
            }
            self.line += u64::from(newline);
            seen.pop_front();
        }
        self.line
    }
}

/// A CSV reader over `reader` whose records know their file lines.
/// `flexible` accepts records whose field count differs from the header's.
pub(crate) fn csv_with_lines<R: Read>(
    reader: R,
    delimiter: u8,
    flexible: bool,
) -> (csv::Reader<TerminatorTap<R>>, LineCounter) {
    let (lines, tapped) = LineCounter::tap(reader);
    let csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(flexible)
        .delimiter(delimiter)
        .from_reader(tapped);
    (csv, lines)
}

type TextReader = Box<dyn BufRead + Send>;

enum Rows {
    Delimited {
        reader: csv::Reader<TerminatorTap<TextReader>>,
        lines: LineCounter,
        smiles_column: usize,
        name_column: Option<usize>,
        record: csv::ByteRecord,
    },
    Smi {
        reader: TextReader,
        line: u64,
        buffer: Vec<u8>,
    },
}

/// Bytes of an input file read so far (see [`MoleculeSource::bytes_read_counter`]).
#[derive(Debug, Clone)]
pub struct ByteCounter(Arc<AtomicU64>);

impl ByteCounter {
    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A molecule input read chunk by chunk (see the module documentation).
pub struct MoleculeSource {
    path: PathBuf,
    rows: Rows,
    total_bytes: Option<u64>,
    bytes_read: Arc<AtomicU64>,
    last_line: u64,
    /// A read error met after rows that are still to be handed out.
    pending: Option<DataError>,
    done: bool,
}

/// Opens `path` as text: gzip (recognised by its magic bytes, one or more
/// members) is decompressed on the fly.
fn open_text(path: &Path, bytes_read: Arc<AtomicU64>) -> Result<TextReader> {
    let file = File::open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::FileNotFound {
                path: path.to_path_buf(),
            }
        } else {
            DataError::Io {
                action: "open",
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    let mut raw = BufReader::with_capacity(
        1 << 16,
        CountingReader {
            inner: file,
            bytes: bytes_read,
        },
    );
    let head = raw.fill_buf().map_err(|source| DataError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::bufread::MultiGzDecoder::new(raw),
        )))
    } else {
        Ok(Box::new(raw))
    }
}

impl MoleculeSource {
    /// Opens `path` in the format its name implies ([`InputFormat::from_path`]).
    /// For CSV/TSV, `smiles_column` (and `name_column`, if given) must be in
    /// the header; `.smi` files ignore both.
    pub fn open(path: &Path, smiles_column: &str, name_column: Option<&str>) -> Result<Self> {
        Self::open_as(
            path,
            InputFormat::from_path(path),
            smiles_column,
            name_column,
        )
    }

    /// Opens `path` in the given format.
    pub fn open_as(
        path: &Path,
        format: InputFormat,
        smiles_column: &str,
        name_column: Option<&str>,
    ) -> Result<Self> {
        let bytes_read = Arc::new(AtomicU64::new(0));
        let text = open_text(path, bytes_read.clone())?;
        let total_bytes = std::fs::metadata(path).ok().map(|m| m.len());
        let rows = match format {
            InputFormat::Smi => Rows::Smi {
                reader: text,
                line: 0,
                buffer: Vec::new(),
            },
            InputFormat::Delimited { delimiter } => {
                let (mut reader, lines) = csv_with_lines(text, delimiter, true);
                let header: Vec<String> = reader
                    .byte_headers()
                    .map_err(|e| read_error(path, 1, e.to_string()))?
                    .iter()
                    .map(|h| {
                        String::from_utf8_lossy(h)
                            .trim()
                            .trim_start_matches('\u{feff}')
                            .to_string()
                    })
                    .collect();
                if header.iter().all(|h| h.is_empty()) {
                    return Err(DataError::EmptyCsv {
                        path: path.to_path_buf(),
                        what: "header",
                    });
                }
                let find = |column: &str| {
                    header
                        .iter()
                        .position(|h| h == column.trim())
                        .ok_or_else(|| DataError::MissingColumn {
                            path: path.to_path_buf(),
                            column: column.to_string(),
                            available: header.join(", "),
                        })
                };
                Rows::Delimited {
                    smiles_column: find(smiles_column)?,
                    name_column: name_column.map(find).transpose()?,
                    reader,
                    lines,
                    record: csv::ByteRecord::new(),
                }
            }
        };
        Ok(MoleculeSource {
            path: path.to_path_buf(),
            rows,
            total_bytes,
            bytes_read,
            last_line: 1,
            pending: None,
            done: false,
        })
    }

    /// The input file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the file on disk (compressed size for gzip), when known.
    pub fn total_bytes(&self) -> Option<u64> {
        self.total_bytes
    }

    /// Bytes of the file read so far (runs ahead of the rows handed out by
    /// at most the read buffers, 64 KiB each).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    /// A handle on [`Self::bytes_read`] that stays readable while the
    /// source itself is borrowed by a reader.
    pub fn bytes_read_counter(&self) -> ByteCounter {
        ByteCounter(self.bytes_read.clone())
    }

    /// Up to `max` further rows, in file order; empty at the end of the
    /// input. A read error (a truncated or corrupt gzip stream, an I/O
    /// failure) is returned after the rows before it have been handed out,
    /// naming the last line read.
    pub fn next_chunk(&mut self, max: usize) -> Result<Vec<InputRow>> {
        if let Some(error) = self.pending.take() {
            self.done = true;
            return Err(error);
        }
        let mut rows = Vec::with_capacity(max.min(1 << 16));
        while !self.done && rows.len() < max.max(1) {
            match self.next_row() {
                Ok(Some(row)) => {
                    self.last_line = row.line;
                    rows.push(row);
                }
                Ok(None) => self.done = true,
                Err(error) if rows.is_empty() => {
                    self.done = true;
                    return Err(error);
                }
                Err(error) => {
                    self.pending = Some(error);
                    break;
                }
            }
        }
        Ok(rows)
    }

    fn next_row(&mut self) -> Result<Option<InputRow>> {
        let last_line = self.last_line;
        let path = &self.path;
        match &mut self.rows {
            Rows::Delimited {
                reader,
                lines,
                smiles_column,
                name_column,
                record,
            } => {
                match reader.read_byte_record(record) {
                    Ok(false) => return Ok(None),
                    Ok(true) => {}
                    Err(e) => return Err(read_error(path, last_line, e.to_string())),
                }
                let line = record.position().map_or(0, |p| lines.line_at(p.byte()));
                let field = |i: usize| {
                    record
                        .get(i)
                        .map(|f| String::from_utf8_lossy(f).trim().to_string())
                        .unwrap_or_default()
                };
                Ok(Some(InputRow {
                    line,
                    smiles: field(*smiles_column),
                    name: name_column.map(field),
                }))
            }
            Rows::Smi {
                reader,
                line,
                buffer,
            } => loop {
                buffer.clear();
                let n = reader
                    .read_until(b'\n', buffer)
                    .map_err(|e| read_error(path, last_line, e.to_string()))?;
                if n == 0 {
                    return Ok(None);
                }
                *line += 1;
                let mut text = String::from_utf8_lossy(buffer);
                if *line == 1
                    && let Some(rest) = text.strip_prefix('\u{feff}')
                {
                    text = rest.to_string().into();
                }
                let text = text.trim();
                let (smiles, name) = match text.split_once(char::is_whitespace) {
                    Some((s, n)) => (s, Some(n.trim().to_string())),
                    None => (text, None),
                };
                if *line == 1 && smiles.eq_ignore_ascii_case("smiles") {
                    continue;
                }
                return Ok(Some(InputRow {
                    line: *line,
                    smiles: smiles.to_string(),
                    name,
                }));
            },
        }
    }
}

fn read_error(path: &Path, last_line: u64, reason: String) -> DataError {
    DataError::TruncatedInput {
        path: path.to_path_buf(),
        last_line,
        reason,
    }
}

/// A chunk of input rows after parsing and featurization.
#[derive(Debug, Clone)]
pub struct FeaturizedChunk {
    /// The molecules that parsed (in input order, with their lines), and
    /// the rows that did not in `skipped`. Its targets are all missing.
    pub molecules: MoleculeDataset,
    /// Each kept molecule's name, when the input has names.
    pub names: Vec<Option<String>>,
}

/// Parses and featurizes `rows` in parallel with `options`, giving the
/// result `task_names` (all labels missing) so a model can run on it. Rows
/// that fail are kept in the dataset's `skipped` with their reasons; a chunk
/// may hold no molecule at all.
pub fn featurize_rows(
    rows: Vec<InputRow>,
    options: &LoadOptions,
    task_type: TaskType,
    task_names: &[String],
) -> FeaturizedChunk {
    let parsed: Vec<_> = rows
        .par_iter()
        .map(|r| parse_row(&r.smiles, options))
        .collect();
    let n_tasks = task_names.len();
    let kept = parsed.iter().filter(|p| p.is_ok()).count();
    let mut molecules = MoleculeDataset {
        name: String::new(),
        task_type,
        smiles: Vec::with_capacity(kept),
        atom_counts: Vec::with_capacity(kept),
        scaffolds: Vec::new(),
        feature_set: options.features,
        graphs: Vec::with_capacity(kept),
        targets: vec![f32::NAN; kept * n_tasks],
        n_tasks,
        task_names: task_names.to_vec(),
        source_lines: Vec::with_capacity(kept),
        skipped: Vec::new(),
    };
    let mut names = Vec::with_capacity(kept);
    for (row, result) in rows.into_iter().zip(parsed) {
        match result {
            Ok(p) => {
                molecules.smiles.push(row.smiles);
                molecules.atom_counts.push(p.atoms);
                molecules.source_lines.push(row.line);
                if let Some(s) = p.scaffold {
                    molecules.scaffolds.push(s);
                }
                if let Some(g) = p.graph {
                    molecules.graphs.push(g);
                }
                names.push(row.name);
            }
            Err(reason) => molecules.skipped.push(SkippedRow {
                line: row.line,
                smiles: row.smiles,
                reason,
            }),
        }
    }
    FeaturizedChunk { molecules, names }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::data::SkipReason;
    use crate::features::FeatureSet;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn all_rows(source: &mut MoleculeSource, chunk: usize) -> Vec<InputRow> {
        let mut out = Vec::new();
        loop {
            let rows = source.next_chunk(chunk).unwrap();
            if rows.is_empty() {
                return out;
            }
            assert!(rows.len() <= chunk);
            out.extend(rows);
        }
    }

    fn lines_and_smiles(rows: &[InputRow]) -> Vec<(u64, &str)> {
        rows.iter().map(|r| (r.line, r.smiles.as_str())).collect()
    }

    #[test]
    fn formats_follow_the_file_name() {
        let smi = InputFormat::Smi;
        let csv = InputFormat::Delimited { delimiter: b',' };
        assert_eq!(InputFormat::from_path(Path::new("lib.smi")), smi);
        assert_eq!(InputFormat::from_path(Path::new("lib.SMI.gz")), smi);
        assert_eq!(InputFormat::from_path(Path::new("a/lib.txt")), smi);
        assert_eq!(InputFormat::from_path(Path::new("lib.csv.gz")), csv);
        assert_eq!(InputFormat::from_path(Path::new("lib")), csv);
        assert_eq!(
            InputFormat::from_path(Path::new("lib.tsv")),
            InputFormat::Delimited { delimiter: b'\t' }
        );
    }

    #[test]
    fn csv_rows_keep_their_file_lines_through_crlf_bom_and_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let text =
            "\u{feff}id,smiles\r\nm1,CCO\r\nm2,\"c1ccccc1\"\r\n\r\nm3,not_a_smiles\r\nm4,C\r\n";
        let path = write(dir.path(), "in.csv", text.as_bytes());
        let mut source = MoleculeSource::open(&path, "smiles", Some("id")).unwrap();
        let rows = all_rows(&mut source, 2);
        assert_eq!(
            lines_and_smiles(&rows),
            [(2, "CCO"), (3, "c1ccccc1"), (5, "not_a_smiles"), (6, "C")]
        );
        assert_eq!(rows[3].name.as_deref(), Some("m4"));
        // The same text gzip-compressed, as one chunk.
        let path = write(dir.path(), "in.csv.gz", &gzip(text.as_bytes()));
        let mut source = MoleculeSource::open(&path, "smiles", None).unwrap();
        assert_eq!(lines_and_smiles(&all_rows(&mut source, 100)).len(), 4);
        assert_eq!(source.bytes_read(), source.total_bytes().unwrap());
    }

    #[test]
    fn smi_lines_have_optional_names_and_empty_lines_are_rows() {
        let dir = tempfile::tempdir().unwrap();
        let text = "\u{feff}SMILES Name\nCCO ethanol\n\nc1ccccc1\tbenzene ring\r\nC\n";
        let path = write(dir.path(), "lib.smi", text.as_bytes());
        let mut source = MoleculeSource::open(&path, "ignored", None).unwrap();
        let rows = all_rows(&mut source, 3);
        assert_eq!(
            lines_and_smiles(&rows),
            [(2, "CCO"), (3, ""), (4, "c1ccccc1"), (5, "C")]
        );
        assert_eq!(rows[0].name.as_deref(), Some("ethanol"));
        assert_eq!(rows[2].name.as_deref(), Some("benzene ring"));
        assert_eq!(rows[3].name, None);
    }

    #[test]
    fn a_truncated_gzip_stops_after_the_rows_before_it_naming_the_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let text: String = (0..5000)
            .map(|i| format!("{}\n", "C".repeat(i % 7 + 1)))
            .collect();
        let mut bytes = gzip(text.as_bytes());
        bytes.truncate(bytes.len() * 2 / 3);
        let path = write(dir.path(), "lib.smi.gz", &bytes);
        let mut source = MoleculeSource::open(&path, "smiles", None).unwrap();
        let mut read = 0;
        let error = loop {
            match source.next_chunk(1000) {
                Ok(rows) if rows.is_empty() => panic!("a truncated stream ended cleanly"),
                Ok(rows) => {
                    assert_eq!(rows[0].line, read as u64 + 1, "rows in order");
                    read += rows.len();
                }
                Err(e) => break e,
            }
        };
        assert!(read > 1000 && read < 5000, "{read} rows before the error");
        let message = error.to_string();
        assert!(
            message.contains(&format!("after line {read}")) && message.contains("lib.smi.gz"),
            "{message}"
        );
        assert!(
            source.next_chunk(10).unwrap().is_empty(),
            "nothing after the error"
        );
    }

    #[test]
    fn a_missing_smiles_column_is_named_with_the_columns_there_are() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "in.csv", b"id,structure\n1,CCO\n");
        let error = MoleculeSource::open(&path, "smiles", None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("`smiles` not found") && error.contains("id, structure"),
            "{error}"
        );
    }

    #[test]
    fn featurized_chunks_keep_order_names_and_reasons() {
        let rows = ["CCO", "", "C1CC", "c1ccccc1"]
            .iter()
            .enumerate()
            .map(|(i, s)| InputRow {
                line: i as u64 + 2,
                smiles: s.to_string(),
                name: Some(format!("m{i}")),
            })
            .collect();
        let options = LoadOptions {
            features: Some(FeatureSet::Chemprop),
            atom_limit: Some(5),
            scaffolds: false,
        };
        let chunk = featurize_rows(rows, &options, TaskType::Regression, &["y".into()]);
        let m = &chunk.molecules;
        assert_eq!(m.smiles, ["CCO"]);
        assert_eq!(m.source_lines, [2]);
        assert_eq!(chunk.names, [Some("m0".to_string())]);
        assert_eq!(m.graphs.len(), 1);
        assert!(m.targets.iter().all(|t| t.is_nan()) && m.targets.len() == 1);
        let reasons: Vec<_> = m.skipped.iter().map(|s| (s.line, &s.reason)).collect();
        assert_eq!(reasons[0], (3, &SkipReason::EmptySmiles));
        assert!(matches!(reasons[1], (4, SkipReason::InvalidSmiles { .. })));
        assert_eq!(
            reasons[2],
            (5, &SkipReason::TooManyAtoms { atoms: 6, limit: 5 })
        );
    }
}
