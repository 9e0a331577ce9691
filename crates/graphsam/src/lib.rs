//! graphsam: molecular property prediction with sharpness-aware optimizers.
//!
//! Data flows one way through the stages: [`chem`] and [`features`] (crate
//! `graphsam-chem`) -> [`data`] -> [`model`] -> [`optim`] (crate
//! `graphsam-optim`) -> [`train`] -> [`cli`], the `graphsam` command line
//! (the binary and the Python package both run it); [`device`] picks the
//! burn backend they run on.
#![warn(missing_docs)]

pub use graphsam_chem::{chem, features};
pub use graphsam_optim as optim;

pub use error::ParseError;

pub mod atomic;
pub mod cli;
pub mod data;
pub mod device;
pub mod error;
pub mod memory;
pub mod model;
pub mod train;
