//! Molecule -> feature arrays for each backbone (CoMPT, chemprop, GROVER).
