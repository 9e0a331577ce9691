//! Compare the chem and features stages with RDKit 2026.09 on the committed
//! golden file (written by `tools/golden.py golden`): integer facts and
//! strings exactly, masses and Gasteiger charges within 1e-6, and the three
//! reference featurizers' vectors.

use std::collections::BTreeMap;

use graphsam_chem::chem::{Molecule, parse_smiles};
use graphsam_chem::features::{FeatureSet, featurize};
use serde_json::Value;

const GOLDEN: &str = include_str!("data/rdkit_golden.jsonl");
const TOLERANCE: f64 = 1e-6;

/// Agreement counts per compared field, printed as a table and asserted total.
#[derive(Default)]
struct Tally {
    fields: BTreeMap<String, (usize, usize)>,
    failures: Vec<String>,
}

impl Tally {
    fn check(&mut self, field: &str, ok: bool, context: impl FnOnce() -> String) {
        let entry = self.fields.entry(field.to_owned()).or_default();
        entry.1 += 1;
        if ok {
            entry.0 += 1;
        } else if self.failures.len() < 40 {
            self.failures.push(format!("{field}: {}", context()));
        }
    }

    fn finish(self) {
        eprintln!("{:<28} {:>8} {:>8}", "field", "agree", "total");
        for (field, (agree, total)) in &self.fields {
            eprintln!("{field:<28} {agree:>8} {total:>8}");
        }
        assert!(
            self.failures.is_empty(),
            "mismatches:\n{}",
            self.failures.join("\n")
        );
    }
}

fn float(value: &Value) -> f64 {
    match value {
        Value::String(text) => match text.as_str() {
            "nan" => f64::NAN,
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            other => panic!("bad float {other:?}"),
        },
        other => other.as_f64().expect("number"),
    }
}

fn close(ours: f64, theirs: f64) -> bool {
    if theirs.is_nan() {
        return ours.is_nan();
    }
    if theirs.is_infinite() {
        return ours == theirs;
    }
    (ours - theirs).abs() <= TOLERANCE
}

fn ints(value: &Value) -> Vec<i64> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_i64().expect("integer"))
        .collect()
}

fn molecules() -> Vec<Value> {
    GOLDEN
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("golden line is JSON"))
        .filter(|record| record["kind"] == "molecule")
        .collect()
}

fn meta() -> Value {
    let line = GOLDEN.lines().next().expect("meta line");
    serde_json::from_str(line).expect("meta JSON")
}

/// Same digest as `tools/golden.py::dist_digest`.
fn distance_digest(mol: &Molecule) -> [i64; 2] {
    let n = mol.num_atoms();
    let d = mol.distance_matrix();
    let (mut total, mut weighted) = (0i64, 0i64);
    for i in 0..n {
        for j in i + 1..n {
            let value = d[i * n + j];
            let value = if value == u32::MAX {
                -1
            } else {
                i64::from(value)
            };
            total += value;
            weighted += value * (((i * 31 + j * 17) % 101 + 1) as i64);
        }
    }
    [total, weighted]
}

fn atom_record(mol: &Molecule, i: usize, smarts_bits: i64) -> Vec<i64> {
    let a = &mol.atoms()[i];
    let ring_bits: i64 = a
        .ring_sizes
        .iter()
        .enumerate()
        .map(|(k, &r)| if r { 1 << k } else { 0 })
        .sum();
    vec![
        i64::from(a.atomic_number),
        i64::from(a.total_degree),
        i64::from(a.degree),
        i64::from(a.formal_charge),
        i64::from(a.chiral_tag),
        i64::from(a.total_hs),
        i64::from(a.total_hs) + i64::from(a.hydrogen_neighbors),
        i64::from(a.implicit_valence),
        i64::from(a.total_valence),
        i64::from(a.hybridization.rdkit_code()),
        i64::from(a.is_aromatic),
        i64::from(a.in_ring),
        ring_bits,
        i64::from(a.isotope),
        smarts_bits,
    ]
}

/// GROVER's SMARTS flags, read back from our GROVER rows (columns 141..145).
fn smarts_bits(mol: &Molecule) -> Vec<i64> {
    let graph = featurize(mol, FeatureSet::Grover);
    (0..mol.num_atoms())
        .map(|i| {
            let row = graph.atom_row(i);
            (0..4)
                .map(|k| if row[141 + k] == 1.0 { 1i64 << k } else { 0 })
                .sum()
        })
        .collect()
}

fn dense(sparse: &Value, rows: usize, width: usize) -> Vec<f64> {
    let mut out = vec![0.0; rows * width];
    for (i, entries) in sparse.as_array().expect("rows").iter().enumerate() {
        for entry in entries.as_array().expect("entries") {
            match entry {
                Value::Array(pair) => {
                    out[i * width + pair[0].as_u64().unwrap() as usize] = float(&pair[1])
                }
                index => out[i * width + index.as_u64().unwrap() as usize] = 1.0,
            }
        }
    }
    out
}

fn compare_features(tally: &mut Tally, smiles: &str, mol: &Molecule, features: &Value) {
    let checks = [
        ("compt_atom", FeatureSet::Compt, true),
        ("compt_bond", FeatureSet::Compt, false),
        ("chemprop_atom", FeatureSet::Chemprop, true),
        ("chemprop_bond", FeatureSet::Chemprop, false),
        ("grover_atom", FeatureSet::Grover, true),
    ];
    for (name, set, atoms) in checks {
        let reference = &features[name];
        if reference.is_null() {
            continue; // GROVER itself fails on this molecule (|charge| ≥ 6)
        }
        let graph = featurize(mol, set);
        let (ours, rows, width) = if atoms {
            (&graph.atom_features, graph.n_atoms, set.atom_dim())
        } else {
            (&graph.bond_features, graph.bonds.len(), set.bond_dim())
        };
        let theirs = dense(reference, rows, width);
        let bad = ours
            .iter()
            .zip(&theirs)
            .position(|(a, b)| !close(f64::from(*a), *b));
        tally.check(
            &format!("features.{name}"),
            bad.is_none() && ours.len() == theirs.len(),
            || {
                let k = bad.unwrap_or(0);
                format!(
                    "{smiles}: row {} col {}: ours {} rdkit {}",
                    k / width,
                    k % width,
                    ours[k],
                    theirs[k]
                )
            },
        );
    }
}

#[test]
fn golden_file_is_rdkit_2026_09() {
    let meta = meta();
    assert!(
        meta["rdkit_version"]
            .as_str()
            .unwrap()
            .starts_with("2026.09"),
        "{meta}"
    );
    assert!(molecules().len() >= 300);
}

#[test]
fn chem_and_features_match_rdkit() {
    let atom_layout: Vec<String> = meta()["atom_layout"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let bond_layout = [
        "begin",
        "end",
        "bond_type",
        "is_conjugated",
        "is_aromatic",
        "in_ring",
        "stereo",
    ];
    let mut tally = Tally::default();
    for record in molecules() {
        let smiles = record["smiles"].as_str().unwrap();
        let parsed = parse_smiles(smiles);
        let expected_ok = record["ok"].as_bool().unwrap();
        tally.check("accepted", parsed.is_ok() == expected_ok, || {
            format!(
                "{smiles}: rdkit ok={expected_ok}, ours {:?}",
                parsed.as_ref().err()
            )
        });
        let Ok(mol) = parsed else { continue };
        if !expected_ok {
            continue;
        }
        let canonical = record["canonical"].as_str().unwrap();
        tally.check(
            "canonical_smiles",
            mol.canonical_smiles() == canonical,
            || {
                format!(
                    "{smiles}: ours {} rdkit {canonical}",
                    mol.canonical_smiles()
                )
            },
        );
        let scaffold = record["scaffold"].as_str().unwrap();
        tally.check("murcko_scaffold", mol.murcko_scaffold() == scaffold, || {
            format!("{smiles}: ours {} rdkit {scaffold}", mol.murcko_scaffold())
        });
        let atoms = record["atoms"].as_array().unwrap();
        tally.check("num_atoms", atoms.len() == mol.num_atoms(), || {
            format!("{smiles}: ours {} rdkit {}", mol.num_atoms(), atoms.len())
        });
        let bonds = record["bonds"].as_array().unwrap();
        tally.check("num_bonds", bonds.len() == mol.num_bonds(), || {
            format!("{smiles}: ours {} rdkit {}", mol.num_bonds(), bonds.len())
        });
        if atoms.len() != mol.num_atoms() || bonds.len() != mol.num_bonds() {
            continue;
        }
        let bits = smarts_bits(&mol);
        for (i, atom) in atoms.iter().enumerate() {
            let theirs = ints(atom);
            let ours = atom_record(&mol, i, bits[i]);
            for (k, field) in atom_layout.iter().enumerate() {
                tally.check(&format!("atom.{field}"), ours[k] == theirs[k], || {
                    format!("{smiles} atom {i}: ours {} rdkit {}", ours[k], theirs[k])
                });
            }
            let mass = float(&record["mass"][i]);
            tally.check("atom.mass", close(mol.atoms()[i].mass, mass), || {
                format!(
                    "{smiles} atom {i}: ours {} rdkit {mass}",
                    mol.atoms()[i].mass
                )
            });
        }
        let charges = mol.gasteiger_charges();
        for (i, pair) in record["gasteiger"].as_array().unwrap().iter().enumerate() {
            let (q, qh) = (float(&pair[0]), float(&pair[1]));
            tally.check("gasteiger.charge", close(charges[i].0, q), || {
                format!("{smiles} atom {i}: ours {} rdkit {q}", charges[i].0)
            });
            tally.check("gasteiger.h_charge", close(charges[i].1, qh), || {
                format!("{smiles} atom {i}: ours {} rdkit {qh}", charges[i].1)
            });
        }
        for (b, bond) in bonds.iter().enumerate() {
            let theirs = ints(bond);
            let info = &mol.bonds()[b];
            let ours = [
                i64::from(info.begin),
                i64::from(info.end),
                i64::from(info.bond_type.rdkit_code()),
                i64::from(info.is_conjugated),
                i64::from(info.is_aromatic),
                i64::from(info.in_ring),
                i64::from(info.stereo.rdkit_code()),
            ];
            for (k, field) in bond_layout.iter().enumerate() {
                tally.check(&format!("bond.{field}"), ours[k] == theirs[k], || {
                    format!("{smiles} bond {b}: ours {} rdkit {}", ours[k], theirs[k])
                });
            }
        }
        let digest = ints(&record["dist"]);
        let ours = distance_digest(&mol);
        tally.check("distance_matrix", ours[..] == digest[..], || {
            format!("{smiles}: ours {ours:?} rdkit {digest:?}")
        });
        if let Some(features) = record.get("features") {
            compare_features(&mut tally, smiles, &mol, features);
        }
    }
    tally.finish();
}
