//! Errors and warnings a user of the optimizers can meet, in one place.

use std::fmt;

/// An invalid optimizer or schedule setting: which optimizer, which field, what is wrong.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("invalid {optimizer} setting `{field}`: {problem}")]
pub struct ConfigError {
    /// The optimizer or schedule the setting belongs to (`"graphsam"`, `"noam"`, ...).
    pub optimizer: &'static str,
    /// The field name as written in the config.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    pub(crate) fn new(
        optimizer: &'static str,
        field: &'static str,
        problem: impl Into<String>,
    ) -> Self {
        Self {
            optimizer,
            field,
            problem: problem.into(),
        }
    }
}

/// Where in parameter space the loss and gradient were evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EvalPoint {
    /// At the current weights w.
    Weights,
    /// At the perturbed weights w + ε.
    Perturbed,
}

impl fmt::Display for EvalPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EvalPoint::Weights => "the weights w",
            EvalPoint::Perturbed => "the perturbed weights w+ε",
        })
    }
}

/// Why a step failed. The optimizer state is left as it was before the step
/// (pass counters excepted), so a checkpoint taken before it is still
/// consistent; [`StepFailure`] hands the unchanged model back with it.
#[derive(Debug)]
pub enum StepError<E> {
    /// The trainer's loss-and-gradient closure failed.
    Closure(E),
    /// The closure returned a NaN or infinite loss.
    NonFiniteLoss {
        /// Global step number (0-based, counting all steps taken by this optimizer).
        step: u64,
        /// The loss value returned.
        loss: f32,
        /// Where it was evaluated.
        point: EvalPoint,
    },
    /// The optimizer was used without a call it needs; nothing was evaluated.
    MissingCall {
        /// The optimizer's CLI name.
        optimizer: &'static str,
        /// The call to make, e.g. `start_epoch(epoch)`.
        call: &'static str,
        /// Why the optimizer needs it.
        why: &'static str,
    },
}

impl<E: fmt::Display> fmt::Display for StepError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepError::Closure(e) => write!(f, "computing loss and gradients failed: {e}"),
            StepError::NonFiniteLoss { step, loss, point } => write!(
                f,
                "non-finite training loss {loss} at step {step} (evaluated at {point}); \
                 lower the learning rate or check the data for extreme targets"
            ),
            StepError::MissingCall {
                optimizer,
                call,
                why,
            } => {
                write!(f, "{optimizer}: call `{call}` before stepping ({why})")
            }
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for StepError<E> {}

/// A failed step: the error, and the model the step was given, unchanged, so
/// the caller can save it, lower the learning rate or skip the batch.
pub struct StepFailure<M, E> {
    /// The model as it was passed to the step.
    pub model: M,
    /// Why the step failed.
    pub error: StepError<E>,
}

impl<M, E> StepFailure<M, E> {
    /// The model and the error, apart.
    pub fn into_parts(self) -> (M, StepError<E>) {
        (self.model, self.error)
    }

    /// The error alone (the model is dropped).
    pub fn into_error(self) -> StepError<E> {
        self.error
    }
}

impl<M, E: fmt::Debug> fmt::Debug for StepFailure<M, E> {
    // The model is left out: modules print every tensor.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepFailure")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<M, E: fmt::Display> fmt::Display for StepFailure<M, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl<M, E: fmt::Debug + fmt::Display> std::error::Error for StepFailure<M, E> {}

/// A recoverable problem met during a step; the step still completed.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum StepWarning {
    /// The perturbation direction had a zero (below 1e-12) or non-finite norm,
    /// so no perturbation was applied (ε = 0) and the gradient at w was used.
    NoPerturbation {
        /// Global step number.
        step: u64,
        /// The direction's norm (0, NaN or ∞).
        norm: f64,
    },
    /// The updating gradient contained NaN or ∞; the weights were left
    /// unchanged and the base optimizer's state was not advanced.
    UpdateSkipped {
        /// Global step number.
        step: u64,
    },
}

impl fmt::Display for StepWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepWarning::NoPerturbation { step, norm } => write!(
                f,
                "step {step}: perturbation direction has norm {norm}; no perturbation applied"
            ),
            StepWarning::UpdateSkipped { step } => write!(
                f,
                "step {step}: non-finite gradient; update skipped, weights unchanged"
            ),
        }
    }
}

/// Saving or restoring optimizer state failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing the state file failed.
    #[error("optimizer state file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not an optimizer state of this format.
    #[error("optimizer state is not readable: {0}")]
    Decode(String),
    /// Encoding the state failed.
    #[error("optimizer state could not be written: {0}")]
    Encode(String),
    /// The state belongs to another optimizer than the one loading it.
    #[error("optimizer state was saved by `{saved}` but is being loaded into `{loading}`")]
    WrongOptimizer {
        /// Name of the optimizer that saved the state.
        saved: String,
        /// Name of the optimizer loading it.
        loading: String,
    },
    /// The base optimizer's (Adam's) own record could not be read.
    #[error("base optimizer state: {0}")]
    Base(String),
    /// The state refers to parameters the model does not have, or has with
    /// another shape: it was saved with another model.
    #[error(
        "optimizer state does not belong to this model: {problem}; load the model \
         from the checkpoint saved together with this state before loading it"
    )]
    ForeignParameters {
        /// What does not match (first offending parameter and a count).
        problem: String,
    },
}
