//! What `predict`, `embed` and `featurize` share: the streamed input's
//! flags, output files (gzip when named `.gz`), the report of skipped rows
//! and the progress bar.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::data::{InputFormat, MoleculeSource, SkippedRow};

/// The input flags of the streaming commands.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Molecules: a CSV (or .tsv) with a header row and a SMILES column, or a
    /// .smi/.smiles/.txt file with one SMILES per line and an optional name
    /// after it; either may be gzip-compressed (e.g. library.smi.gz).
    pub input: PathBuf,
    /// Header of the SMILES column (CSV/TSV).
    #[arg(long, default_value = "smiles")]
    pub smiles_column: String,
    /// Header of a column to copy into the output as `name` (CSV/TSV;
    /// .smi files use the text after the SMILES).
    #[arg(long)]
    pub name_column: Option<String>,
    /// Write every skipped row (line, smiles, reason) to this CSV file.
    #[arg(long)]
    pub errors: Option<PathBuf>,
    /// Input rows read and featurized at a time; memory grows with it, not
    /// with the input.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk_size: u64,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl InputArgs {
    /// Opens the input as a molecule stream.
    pub fn open(&self) -> Result<MoleculeSource> {
        MoleculeSource::open(
            &self.input,
            &self.smiles_column,
            self.name_column.as_deref(),
        )
        .with_context(|| format!("opening {}", self.input.display()))
    }

    /// Whether output rows carry a `name` column.
    pub fn has_names(&self) -> bool {
        self.name_column.is_some() || InputFormat::from_path(&self.input) == InputFormat::Smi
    }
}

/// A buffered output: a file (gzip-compressed when its name ends in `.gz`)
/// or standard output. [`Output::finish`] completes it; an error there is
/// the write error of the whole file.
pub enum Output {
    /// Standard output.
    Stdout(BufWriter<std::io::StdoutLock<'static>>),
    /// A plain file.
    File(PathBuf, BufWriter<File>),
    /// A gzip-compressed file.
    Gzip(PathBuf, flate2::write::GzEncoder<BufWriter<File>>),
}

impl Output {
    /// Creates the output at `path`, or standard output for `None`.
    pub fn create(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else {
            return Ok(Output::Stdout(BufWriter::new(std::io::stdout().lock())));
        };
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let buffered = BufWriter::with_capacity(1 << 16, file);
        Ok(
            if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
            {
                Output::Gzip(
                    path.to_path_buf(),
                    flate2::write::GzEncoder::new(buffered, flate2::Compression::fast()),
                )
            } else {
                Output::File(path.to_path_buf(), buffered)
            },
        )
    }

    /// Writes what is buffered (and the gzip trailer).
    pub fn finish(self) -> Result<()> {
        match self {
            Output::Stdout(mut w) => w.flush().context("writing to standard output"),
            Output::File(path, mut w) => w
                .flush()
                .with_context(|| format!("writing {}", path.display())),
            Output::Gzip(path, w) => w
                .finish()
                .and_then(|mut inner| inner.flush())
                .with_context(|| format!("writing {}", path.display())),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Stdout(w) => w.write(buf),
            Output::File(_, w) => w.write(buf),
            Output::Gzip(_, w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Output::Stdout(w) => w.write_all(buf),
            Output::File(_, w) => w.write_all(buf),
            Output::Gzip(_, w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Stdout(w) => w.flush(),
            Output::File(_, w) => w.flush(),
            Output::Gzip(_, w) => w.flush(),
        }
    }
}

/// How many skipped rows are printed to stderr before only counting them.
const SHOWN_SKIPS: u64 = 100;

/// Reports skipped rows: the first [`SHOWN_SKIPS`] to stderr, every one to
/// the `--errors` file.
pub struct SkipReport {
    file: Option<(PathBuf, csv::Writer<Output>)>,
    count: u64,
}

impl SkipReport {
    /// A report, with the errors file created if one is asked for.
    pub fn new(errors: Option<&Path>) -> Result<Self> {
        let file = match errors {
            Some(path) => {
                let mut writer = csv::Writer::from_writer(Output::create(Some(path))?);
                writer.write_record(["line", "smiles", "reason"])?;
                Some((path.to_path_buf(), writer))
            }
            None => None,
        };
        Ok(SkipReport { file, count: 0 })
    }

    /// Reports `rows`, printing through `progress` so the bar stays intact.
    pub fn add(&mut self, rows: &[SkippedRow], progress: &ProgressBar) -> Result<()> {
        for row in rows {
            self.count += 1;
            if self.count <= SHOWN_SKIPS {
                progress.suspend(|| {
                    eprintln!(
                        "line {}: {:?} skipped: {}",
                        row.line, row.smiles, row.reason
                    )
                });
            }
            if let Some((path, writer)) = &mut self.file {
                writer
                    .write_record([
                        row.line.to_string(),
                        row.smiles.clone(),
                        row.reason.to_string(),
                    ])
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        Ok(())
    }

    /// Flushes the errors file and says how many rows were skipped.
    pub fn finish(self) -> Result<u64> {
        let listed_in = match self.file {
            Some((path, writer)) => {
                writer
                    .into_inner()
                    .map_err(|e| anyhow::anyhow!("writing {}: {}", path.display(), e.error()))?
                    .finish()?;
                Some(path)
            }
            None => None,
        };
        if self.count > SHOWN_SKIPS {
            match listed_in {
                Some(path) => eprintln!(
                    "... {} skipped rows in all, each listed in {}",
                    self.count,
                    path.display()
                ),
                None => eprintln!(
                    "... {} skipped rows in all (--errors FILE lists each one)",
                    self.count
                ),
            }
        }
        Ok(self.count)
    }
}

/// A progress bar over the input's bytes (ETA from the file size) that
/// counts molecules and their rate.
pub struct StreamProgress {
    /// The bar (hidden with `--quiet` or off a terminal).
    pub bar: ProgressBar,
    started: Instant,
    molecules: u64,
}

impl StreamProgress {
    /// A bar for `source`.
    pub fn new(source: &MoleculeSource, quiet: bool) -> Self {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            match source.total_bytes() {
                Some(total) => ProgressBar::new(total),
                None => ProgressBar::new_spinner(),
            }
        };
        if let Ok(style) =
            ProgressStyle::with_template("[{bar:30}] {percent:>3}% {msg} (ETA {eta})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        StreamProgress {
            bar,
            started: Instant::now(),
            molecules: 0,
        }
    }

    /// Records `molecules` more done, with the input read up to `bytes`.
    pub fn advance(&mut self, molecules: u64, bytes: u64) {
        self.molecules += molecules;
        self.bar.set_position(bytes);
        self.bar.set_message(format!(
            "{} molecules, {:.0}/s",
            self.molecules,
            self.rate()
        ));
    }

    /// Molecules per second so far.
    pub fn rate(&self) -> f64 {
        self.molecules as f64 / self.seconds().max(1e-9)
    }

    /// Seconds since the start.
    pub fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Clears the bar and prints the closing line: `what` was done to how
    /// many molecules, how fast, and the peak memory.
    pub fn finish(&self, what: &str, skipped: u64) {
        self.bar.finish_and_clear();
        let peak = crate::train::bench::peak_rss_mib()
            .map(|m| format!("; peak RSS {m:.0} MiB"))
            .unwrap_or_default();
        eprintln!(
            "{what} {} ({} skipped) in {:.1} s: {:.0} molecules/s{peak}",
            counted(self.molecules, "molecule"),
            counted(skipped, "row"),
            self.seconds(),
            self.rate(),
        );
    }
}

/// `n` with its noun, plural unless `n` is 1: "1 task", "3 rows".
pub fn counted(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod counted_tests {
    #[test]
    fn one_is_singular_and_everything_else_plural() {
        assert_eq!(super::counted(1u64, "task"), "1 task");
        assert_eq!(super::counted(0u64, "row"), "0 rows");
        assert_eq!(super::counted(3u64, "model"), "3 models");
    }
}
