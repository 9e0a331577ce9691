//! Sharpness-aware optimizers for any burn module: SAM/ASAM, GraphSAM, SAM-k
//! and LookSAM over a base Adam, with the NoamLR schedule.
