//! `graphsam embed`: the learned molecule representation (the vector the
//! task head reads) of a trained model for streamed molecules, as CSV or
//! as a NumPy `.npy` matrix.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

use super::device_args::DeviceArgs;
use super::screen_io::{InputArgs, Output, SkipReport, StreamProgress};
use crate::train::inference::Ensemble;
use crate::train::screen::{ScreenOptions, ScreenOutput, screen};

/// Arguments of `graphsam embed`.
#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// Trained model: one run folder (e.g. runs/bbbp-dmpnn-graphsam/seed-0).
    #[arg(long)]
    pub model: PathBuf,
    /// The molecules to read and how.
    #[command(flatten)]
    pub input: InputArgs,
    /// Write the vectors here: a `.npy` file (float32, one row per valid
    /// molecule, with the rows' lines and SMILES in NAME.rows.csv beside it)
    /// or CSV (line, smiles, [name,] e0, e1, …; .gz compresses); default:
    /// CSV on standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Molecules per model batch.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    /// Where the model runs.
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// Runs the command.
pub fn run(args: EmbedArgs) -> Result<()> {
    let ensemble = Ensemble::load(std::slice::from_ref(&args.model))?;
    if ensemble.members.len() > 1 {
        bail!(
            "{} holds {} runs; embeddings come from one model: pass one of its seed-* folders",
            args.model.display(),
            ensemble.members.len()
        );
    }
    let device = args.device.inference_device()?;
    let mut source = args.input.open()?;
    let names = args.input.has_names();
    let npy = args
        .out
        .as_deref()
        .is_some_and(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy")));
    let mut sink = if npy {
        let path = args.out.clone().unwrap_or_default();
        let rows_path = path.with_extension("rows.csv");
        let mut rows = csv::Writer::from_writer(Output::create(Some(&rows_path))?);
        rows.write_record(label_header(names))?;
        Sink::Npy {
            matrix: NpyWriter::create(&path)?,
            rows,
            rows_path,
        }
    } else {
        Sink::Csv {
            writer: csv::Writer::from_writer(Output::create(args.out.as_deref())?),
            header_written: false,
        }
    };
    let mut skips = SkipReport::new(args.input.errors.as_deref())?;
    let mut progress = StreamProgress::new(&source, args.input.quiet);
    let bytes = source.bytes_read_counter();
    let options = ScreenOptions {
        batch_size: args.batch_size as usize,
        chunk_size: args.input.chunk_size as usize,
    };
    let mut width = 0;
    let outcome = screen(
        &ensemble,
        &mut source,
        ScreenOutput::Embeddings,
        &device,
        options,
        &mut |chunk| {
            let molecules = &chunk.input.molecules;
            if !molecules.is_empty() {
                width = chunk.width;
            }
            let label = |i: usize| {
                let mut cells = vec![
                    molecules.source_lines[i].to_string(),
                    molecules.smiles[i].clone(),
                ];
                if names {
                    cells.push(chunk.input.names[i].clone().unwrap_or_default());
                }
                cells
            };
            match &mut sink {
                Sink::Npy { matrix, rows, .. } => {
                    matrix.append(&chunk.values.mean, chunk.width)?;
                    for i in 0..molecules.len() {
                        rows.write_record(label(i))?;
                    }
                }
                Sink::Csv {
                    writer,
                    header_written,
                } => {
                    if !*header_written && !molecules.is_empty() {
                        let mut header = label_header(names);
                        header.extend((0..chunk.width).map(|k| format!("e{k}")));
                        writer.write_record(&header)?;
                        *header_written = true;
                    }
                    for (i, vector) in chunk.values.mean.chunks(chunk.width.max(1)).enumerate() {
                        let mut record = label(i);
                        record.extend(vector.iter().map(|v| format!("{v:.6}")));
                        writer.write_record(&record)?;
                    }
                }
            }
            skips.add(&molecules.skipped, &progress.bar)?;
            progress.advance(molecules.len() as u64, bytes.get());
            Ok(())
        },
    );
    // What was embedded before an input error is kept: finish the files first.
    let written = sink.finish();
    let skipped = skips.finish()?;
    outcome?;
    let note = written?;
    progress.finish(&format!("embedded ({width} values each)"), skipped);
    if let Some(note) = note {
        eprintln!("{note}");
    }
    Ok(())
}

fn label_header(names: bool) -> Vec<String> {
    let mut header = vec!["line".to_string(), "smiles".to_string()];
    if names {
        header.push("name".into());
    }
    header
}

enum Sink {
    Npy {
        matrix: NpyWriter,
        rows: csv::Writer<Output>,
        rows_path: PathBuf,
    },
    Csv {
        writer: csv::Writer<Output>,
        header_written: bool,
    },
}

impl Sink {
    /// Completes the files; says where they are when they are files.
    fn finish(self) -> Result<Option<String>> {
        match self {
            Sink::Npy {
                matrix,
                rows,
                rows_path,
            } => {
                let path = matrix.path.clone();
                let shape = matrix.finish()?;
                rows.into_inner()
                    .map_err(|e| anyhow::anyhow!("writing {}: {}", rows_path.display(), e.error()))?
                    .finish()?;
                Ok(Some(format!(
                    "embeddings written to {} (shape {:?}), their rows to {}",
                    path.display(),
                    shape,
                    rows_path.display()
                )))
            }
            Sink::Csv { writer, .. } => {
                writer
                    .into_inner()
                    .map_err(|e| anyhow::anyhow!("writing embeddings: {}", e.error()))?
                    .finish()?;
                Ok(None)
            }
        }
    }
}

/// Bytes reserved for the `.npy` header, so the row count can be written
/// into it at the end without moving the data (NumPy pads headers to a
/// multiple of 64 bytes with spaces).
const NPY_HEADER_BYTES: usize = 128;

/// A float32 C-order `.npy` matrix written row by row, its shape filled in
/// when it is finished.
pub struct NpyWriter {
    path: PathBuf,
    file: BufWriter<File>,
    rows: u64,
    width: usize,
}

impl NpyWriter {
    /// Creates the file with a header to be completed by [`Self::finish`].
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut writer = NpyWriter {
            path: path.to_path_buf(),
            file: BufWriter::with_capacity(1 << 16, file),
            rows: 0,
            width: 0,
        };
        writer.write_header()?;
        Ok(writer)
    }

    fn write_header(&mut self) -> Result<()> {
        let dict = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
            self.rows, self.width
        );
        // magic (6) + version (2) + header length (2) + dict + padding + '\n'
        let padding = NPY_HEADER_BYTES - 10 - dict.len() - 1;
        let mut header = Vec::with_capacity(NPY_HEADER_BYTES);
        header.extend_from_slice(b"\x93NUMPY\x01\x00");
        header.extend_from_slice(&((NPY_HEADER_BYTES - 10) as u16).to_le_bytes());
        header.extend_from_slice(dict.as_bytes());
        header.extend(std::iter::repeat_n(b' ', padding));
        header.push(b'\n');
        self.file
            .write_all(&header)
            .with_context(|| format!("writing {}", self.path.display()))
    }

    /// Appends rows of `width` values (row-major).
    pub fn append(&mut self, values: &[f64], width: usize) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        if self.rows > 0 && width != self.width {
            bail!("embedding width changed from {} to {width}", self.width);
        }
        self.width = width;
        let mut bytes = Vec::with_capacity(values.len() * 4);
        for &v in values {
            bytes.extend_from_slice(&(v as f32).to_le_bytes());
        }
        self.file
            .write_all(&bytes)
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.rows += (values.len() / width.max(1)) as u64;
        Ok(())
    }

    /// Writes the final shape into the header; returns it.
    pub fn finish(mut self) -> Result<(u64, usize)> {
        self.file
            .seek(SeekFrom::Start(0))
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.write_header()?;
        self.file
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))?;
        Ok((self.rows, self.width))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_files_hold_their_shape_and_little_endian_floats() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.npy");
        let mut npy = NpyWriter::create(&path).unwrap();
        npy.append(&[1.0, 2.0, 3.0], 3).unwrap();
        npy.append(&[], 0).unwrap();
        npy.append(&[4.0, 5.0, 6.5, 7.0, 8.0, 9.0], 3).unwrap();
        assert!(npy.append(&[1.0, 2.0], 2).is_err(), "width must not change");
        assert_eq!(npy.finish().unwrap(), (3, 3));
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0, "aligned data");
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 3), }"));
        assert!(header.ends_with(" \n"));
        let data: Vec<f32> = bytes[10 + header_len..]
            .chunks(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(data, [1.0, 2.0, 3.0, 4.0, 5.0, 6.5, 7.0, 8.0, 9.0]);
    }
}
