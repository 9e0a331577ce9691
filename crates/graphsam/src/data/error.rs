//! The errors a user can hit in the data stage, in one place so callers and
//! tests can match on the exact kind.

use std::path::PathBuf;

/// Everything that can go wrong while resolving, loading, splitting,
/// batching or scoring a dataset. Each variant names the file, line, column
/// or index involved and, where there is one, what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A dataset name that is not in the registry.
    #[error(
        "unknown dataset `{name}`; known datasets: {known}. For another CSV give its path, SMILES column, target columns and task type"
    )]
    UnknownDataset {
        /// The name that was asked for.
        name: String,
        /// Comma-separated registry names.
        known: String,
    },

    /// An explicitly named dataset file does not exist.
    #[error("dataset file {path} does not exist")]
    FileNotFound {
        /// The path that was given.
        path: PathBuf,
    },

    /// A dataset without a download URL that is in none of the searched places.
    #[error(
        "dataset file {file} not found (searched: {searched}); pass its path or set GRAPHSAM_DATA_DIR to its folder"
    )]
    NotFound {
        /// The dataset's file name.
        file: String,
        /// The places that were searched, comma-separated.
        searched: String,
    },

    /// Reading or writing a file failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done ("read", "create cache folder", ...).
        action: &'static str,
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Downloading a dataset failed (network, HTTP status, truncated body).
    #[error(
        "downloading {file} from {url} failed: {reason}. Without network access, download the file by hand and set GRAPHSAM_DATA_DIR to its folder (or pass its path)"
    )]
    Download {
        /// The dataset's file name.
        file: String,
        /// The URL that was tried.
        url: String,
        /// What went wrong.
        reason: String,
    },

    /// A downloaded (or cached) file does not have the published content.
    #[error(
        "checksum mismatch for {file} from {url}: expected SHA-256 {expected}, got {actual}. The download is corrupt or the published file changed; retry, or download it by hand and set GRAPHSAM_DATA_DIR to its folder"
    )]
    ChecksumMismatch {
        /// The dataset's file name.
        file: String,
        /// Where the bytes came from.
        url: String,
        /// The registry's SHA-256 (hex).
        expected: String,
        /// The SHA-256 of what was received (hex).
        actual: String,
    },

    /// The CSV has no header or no data rows.
    #[error("{path}: the CSV is empty (no {what})")]
    EmptyCsv {
        /// The CSV file.
        path: PathBuf,
        /// "header" or "data rows".
        what: &'static str,
    },

    /// A column named by the dataset spec is not in the CSV header.
    #[error("{path}: column `{column}` not found in the header; columns are: {available}")]
    MissingColumn {
        /// The CSV file.
        path: PathBuf,
        /// The column that was asked for.
        column: String,
        /// Comma-separated header fields.
        available: String,
    },

    /// A target cell that is neither empty, NaN, nor a number.
    #[error(
        "{path}, line {line}, column `{column}`: target `{value}` is not a number (empty cells and NaN mean missing)"
    )]
    NonNumericTarget {
        /// The CSV file.
        path: PathBuf,
        /// File line number (header = line 1).
        line: u64,
        /// The target column.
        column: String,
        /// The offending cell.
        value: String,
    },

    /// A classification target other than 0 or 1.
    #[error("{path}, line {line}, column `{column}`: classification label {value} is not 0 or 1")]
    InvalidLabel {
        /// The CSV file.
        path: PathBuf,
        /// File line number (header = line 1).
        line: u64,
        /// The target column.
        column: String,
        /// The offending value.
        value: f64,
    },

    /// A row the CSV reader cannot parse (e.g. wrong number of fields).
    #[error("{path}, line {line}: malformed CSV row: {reason}")]
    MalformedRow {
        /// The CSV file.
        path: PathBuf,
        /// File line number (header = line 1).
        line: u64,
        /// The CSV reader's message.
        reason: String,
    },

    /// The input could not be read to its end (a truncated or corrupt gzip
    /// stream, an I/O failure); the rows before it were handed out.
    #[error(
        "{path}: reading stopped after line {last_line}: {reason} (the rows up to that line were processed)"
    )]
    TruncatedInput {
        /// The input file.
        path: PathBuf,
        /// The last line read completely.
        last_line: u64,
        /// What went wrong.
        reason: String,
    },

    /// Every row was skipped (invalid SMILES, too many atoms).
    #[error(
        "{path}: no valid molecules ({skipped} rows skipped; first: line {first_line}: {first_reason})"
    )]
    NoValidMolecules {
        /// The CSV file.
        path: PathBuf,
        /// How many rows were skipped.
        skipped: usize,
        /// Line of the first skipped row.
        first_line: u64,
        /// Why it was skipped.
        first_reason: String,
    },

    /// A split whose fractions are negative, not finite, or do not sum to 1.
    #[error(
        "invalid split sizes {train}/{valid}/{test}: each must be in [0, 1] and they must sum to 1"
    )]
    InvalidSplitSizes {
        /// Train fraction.
        train: f64,
        /// Validation fraction.
        valid: f64,
        /// Test fraction.
        test: f64,
    },

    /// A split file that cannot be read as JSON indices.
    #[error("split file {path}: {reason}")]
    InvalidSplitFile {
        /// The split file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A split that refers to a molecule the dataset does not have.
    #[error("split index {index} in {part} is out of range: the dataset has {len} molecules")]
    SplitIndexOutOfRange {
        /// "train", "valid" or "test".
        part: &'static str,
        /// The index.
        index: usize,
        /// Number of molecules in the dataset.
        len: usize,
    },

    /// A split that puts one molecule in two places.
    #[error("split index {index} appears more than once (in {first} and {second})")]
    SplitIndexDuplicated {
        /// The index.
        index: usize,
        /// Where it was seen first.
        first: &'static str,
        /// Where it was seen again.
        second: &'static str,
    },

    /// A scaffold split on a dataset loaded without scaffolds.
    #[error(
        "the dataset was loaded without scaffolds; load it with scaffolds to make a scaffold split"
    )]
    ScaffoldsNotLoaded,

    /// Batching a dataset that was loaded without features (or with the
    /// wrong ones).
    #[error("the dataset has no {needed}; load it with a feature set that provides them")]
    FeaturesNotLoaded {
        /// What the batch needs ("molecule graphs", "distance matrices").
        needed: &'static str,
    },

    /// A batch of zero molecules or a batch size of zero.
    #[error("empty batch: {0}")]
    EmptyBatch(&'static str),

    /// Predictions and targets of different shapes.
    #[error("shape mismatch: {what}: expected {expected}, got {actual}")]
    ShapeMismatch {
        /// What was compared.
        what: &'static str,
        /// The expected length.
        expected: usize,
        /// The actual length.
        actual: usize,
    },

    /// A prediction that is NaN or infinite where a label is present.
    #[error("prediction {index} (molecule {molecule}, task {task}) is not finite: {value}")]
    NonFinitePrediction {
        /// Flat index into the predictions.
        index: usize,
        /// Row (molecule) of the prediction.
        molecule: usize,
        /// Column (task) of the prediction.
        task: usize,
        /// The value.
        value: f32,
    },

    /// A classification task whose labels, over the whole dataset, are all
    /// one class (or absent): nothing to learn and nothing to score.
    #[error(
        "{file}: target column `{column}` has {positives} positive and {negatives} negative labels; \
         a classification task needs both classes"
    )]
    SingleClassTask {
        /// The dataset (file) name.
        file: String,
        /// The target column.
        column: String,
        /// Labels equal to 1.
        positives: usize,
        /// Labels equal to 0.
        negatives: usize,
    },

    /// No task can be scored (every task has one class or no labels in the
    /// evaluated molecules).
    #[error("{metric} is undefined: no task has {need} among the evaluated molecules")]
    NoScorableTask {
        /// The metric's name.
        metric: &'static str,
        /// What a task needs to be scored.
        need: &'static str,
    },
}

/// Result type of the data stage.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
