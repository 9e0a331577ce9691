//! `graphsam._native`: the native half of the `graphsam` Python package.
//!
//! Thin by design: the command line ([`graphsam::cli::run_from`]) and
//! in-memory featurization and prediction over the library. Arrays cross as
//! little-endian bytes with their shapes; the Python half (python/graphsam)
//! turns them into numpy arrays, so this crate needs no numpy bindings.
//! Work runs with the GIL released.

use std::path::PathBuf;
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use rayon::prelude::*;

use graphsam::cli::Failure;
use graphsam::data::TaskType;
use graphsam::features::{FeatureSet, featurize_smiles};
use graphsam::train::inference::Ensemble;
use graphsam::train::screen::{ScreenOptions, ScreenOutput, screen_smiles};

create_exception!(
    _native,
    GraphsamError,
    PyException,
    "graphsam refused or failed: bad input, a missing run folder, a failed training, ..."
);

fn error(e: anyhow::Error) -> PyErr {
    GraphsamError::new_err(format!("{e:#}"))
}

/// The values as little-endian bytes (numpy's `frombuffer` with `<f4`,
/// `<f8`, `<u4` reads them back), `to_le` being e.g. `f32::to_le_bytes`.
fn le_bytes<'py, T, const N: usize>(
    py: Python<'py>,
    values: impl IntoIterator<Item = T>,
    to_le: fn(T) -> [u8; N],
) -> Bound<'py, PyBytes> {
    let raw: Vec<u8> = values.into_iter().flat_map(to_le).collect();
    PyBytes::new(py, &raw)
}

/// How a command line ended: its exit status, or the error message with
/// `raise_errors`.
enum Ended {
    Status(i32),
    Failed(String),
}

/// Parses and runs `argv` as `graphsam` does.
fn run_command(argv: Vec<String>, raise_errors: bool) -> Ended {
    if !raise_errors {
        return Ended::Status(graphsam::cli::run_from(argv));
    }
    match graphsam::cli::try_run_from(argv) {
        Ok(()) => Ended::Status(0),
        Err(Failure::Usage(e)) if e.exit_code() == 0 => {
            // --help or --version: print it, as the command does.
            let _ = e.print();
            Ended::Status(0)
        }
        Err(Failure::Usage(e)) => Ended::Failed(e.render().to_string()),
        Err(Failure::Command(e)) => Ended::Failed(format!("{e:#}")),
    }
}

/// Runs the `graphsam` command line with `argv` (program name first) and
/// returns its exit status, or with `raise_errors` raises GraphsamError with
/// the message a failure would print. Ctrl-C stops a training after its
/// current epoch's checkpoint (the run stays resumable) and raises
/// KeyboardInterrupt; other commands finish first.
#[pyfunction]
#[pyo3(signature = (argv, raise_errors = false))]
fn run_cli(py: Python<'_>, argv: Vec<String>, raise_errors: bool) -> PyResult<i32> {
    graphsam::train::clear_stop_request();
    let worker = std::thread::spawn(move || run_command(argv, raise_errors));
    let mut interrupted = None;
    loop {
        // Signals reach Python only while it holds the GIL: wake up to look
        // for them every 100 ms.
        let finished = py.detach(|| {
            for _ in 0..10 {
                if worker.is_finished() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            false
        });
        if finished {
            break;
        }
        if interrupted.is_none()
            && let Err(e) = py.check_signals()
        {
            if e.is_instance_of::<PyKeyboardInterrupt>(py) {
                eprintln!("graphsam: stopping after the current epoch's checkpoint ...");
                graphsam::train::request_stop();
            }
            interrupted = Some(e);
        }
    }
    let ended = py
        .detach(|| worker.join())
        .map_err(|_| GraphsamError::new_err("the graphsam command panicked"))?;
    if let Some(e) = interrupted {
        return Err(e);
    }
    match ended {
        Ended::Status(status) => Ok(status),
        Ended::Failed(message) => Err(GraphsamError::new_err(message)),
    }
}

/// Featurizes `smiles` for `features` (compt, chemprop or grover). Returns
/// (molecules, invalid): one tuple per valid input — (index, atoms, atom
/// width, atom bytes f32, bonds, bond bytes u32 pairs, bond width, bond
/// bytes f32, distance bytes f32 or None) — and (index, reason) per invalid
/// one.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn featurize<'py>(
    py: Python<'py>,
    smiles: Vec<String>,
    features: &str,
) -> PyResult<(Vec<Bound<'py, PyAny>>, Vec<(usize, String)>)> {
    let set: FeatureSet = features
        .parse()
        .map_err(|e| GraphsamError::new_err(format!("{e}")))?;
    let graphs: Vec<_> = py.detach(|| {
        smiles
            .par_iter()
            .map(|s| featurize_smiles(s.trim(), set))
            .collect()
    });
    let (mut molecules, mut invalid) = (Vec::new(), Vec::new());
    for (i, graph) in graphs.into_iter().enumerate() {
        match graph {
            Ok(g) => {
                let atom_dim = g.atom_features.len() / g.n_atoms.max(1);
                let bond_dim = g.bond_features.len() / g.bonds.len().max(1);
                let f32_bytes = |v: &[f32]| le_bytes(py, v.iter().copied(), f32::to_le_bytes);
                let distances = g.distances.as_deref().map(f32_bytes);
                let item = (
                    i,
                    g.n_atoms,
                    atom_dim,
                    f32_bytes(&g.atom_features),
                    g.bonds.len(),
                    le_bytes(py, g.bonds.iter().flatten().copied(), u32::to_le_bytes),
                    bond_dim,
                    f32_bytes(&g.bond_features),
                    distances,
                );
                molecules.push(item.into_pyobject(py)?.into_any());
            }
            Err(e) => invalid.push((i, e.to_string())),
        }
    }
    Ok((molecules, invalid))
}

/// A trained model or an ensemble of them, loaded from run folders.
#[pyclass(module = "graphsam._native", frozen)]
struct NativeModel {
    ensemble: Ensemble,
}

/// Mean bytes (f64), spread bytes (f64) or None, width, and (index, reason)
/// for each input that could not be used.
type Screened<'py> = (
    Bound<'py, PyBytes>,
    Option<Bound<'py, PyBytes>>,
    usize,
    Vec<(usize, String)>,
);

impl NativeModel {
    fn screen<'py>(
        &self,
        py: Python<'py>,
        smiles: Vec<String>,
        output: ScreenOutput,
        batch_size: usize,
    ) -> PyResult<Screened<'py>> {
        let options = ScreenOptions {
            batch_size: batch_size.max(1),
            ..ScreenOptions::default()
        };
        let device = graphsam::device::ComputeBackend::default_cpu().device();
        let list = py
            .detach(|| screen_smiles(&self.ensemble, &smiles, output, &device, options))
            .map_err(error)?;
        Ok((
            le_bytes(py, list.mean, f64::to_le_bytes),
            list.std.map(|s| le_bytes(py, s, f64::to_le_bytes)),
            list.width,
            list.skipped,
        ))
    }
}

#[pymethods]
impl NativeModel {
    /// Loads run folders (each with model.json) or training output folders
    /// (every seed-* run inside); two or more runs form an ensemble.
    #[staticmethod]
    fn load(py: Python<'_>, paths: Vec<PathBuf>) -> PyResult<Self> {
        let ensemble = py.detach(|| Ensemble::load(&paths)).map_err(error)?;
        Ok(NativeModel { ensemble })
    }

    /// The task names, in output column order.
    #[getter]
    fn tasks(&self) -> Vec<String> {
        self.ensemble.card().task_names.clone()
    }

    /// "classification" or "regression".
    #[getter]
    fn task_type(&self) -> &'static str {
        match self.ensemble.card().task_type {
            TaskType::Classification => "classification",
            TaskType::Regression => "regression",
        }
    }

    /// The backbone: compt, grover or dmpnn.
    #[getter]
    fn backbone(&self) -> String {
        self.ensemble.card().model.name().to_string()
    }

    /// The member run folders, in order.
    #[getter]
    fn members(&self) -> Vec<PathBuf> {
        self.ensemble
            .members
            .iter()
            .map(|(d, _)| d.clone())
            .collect()
    }

    /// Predictions (probabilities or target units) for `smiles`.
    #[pyo3(signature = (smiles, batch_size = 32))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        smiles: Vec<String>,
        batch_size: usize,
    ) -> PyResult<Screened<'py>> {
        self.screen(py, smiles, ScreenOutput::Predictions, batch_size)
    }

    /// The molecule vectors the task head reads (one member only).
    #[pyo3(signature = (smiles, batch_size = 32))]
    fn embed<'py>(
        &self,
        py: Python<'py>,
        smiles: Vec<String>,
        batch_size: usize,
    ) -> PyResult<Screened<'py>> {
        self.screen(py, smiles, ScreenOutput::Embeddings, batch_size)
    }
}

/// Makes `compare --jobs` and `screen-bench` start their child processes as
/// `<program...> <arguments>` (this interpreter with `-m graphsam._cli`):
/// this process is Python, not the graphsam executable.
#[pyfunction]
fn set_self_program(program: Vec<String>) {
    graphsam::cli::set_self_program(program.into_iter().map(Into::into).collect());
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The CLI binary's allocator setting: a D-MPNN step 1.8× faster.
    graphsam::memory::retain_freed_memory();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("GraphsamError", m.py().get_type::<GraphsamError>())?;
    m.add_function(wrap_pyfunction!(run_cli, m)?)?;
    m.add_function(wrap_pyfunction!(set_self_program, m)?)?;
    m.add_function(wrap_pyfunction!(featurize, m)?)?;
    m.add_class::<NativeModel>()?;
    Ok(())
}
