//! Model stage: backbones (CoMPT, GROVER, D-MPNN) and their losses.
pub mod loss;
