//! SMILES parsing and molecular perception behind a small project-owned interface.
