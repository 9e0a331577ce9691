//! Throw 12,000 random and mutated SMILES strings (seeded, reproducible) at the
//! parser and every featurizer: each must return a value or an error, never panic.

use std::panic::{AssertUnwindSafe, catch_unwind};

use graphsam_chem::chem::parse_smiles;
use graphsam_chem::features::{FeatureSet, featurize};

/// xorshift64*: tiny, seeded, good enough to vary inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const TOKENS: &[&str] = &[
    "C", "C", "C", "c", "c", "N", "n", "O", "o", "S", "s", "P", "F", "Cl", "Br", "I", "B", "b",
    "[nH]", "[NH4+]", "[O-]", "[N+]", "[Na+]", "[2H]", "[C@@H]", "[C@H]", "[Fe+3]", "[Pt]", "*",
    "[se]", "[Si]", "[H]", "[CH2]", "[13C]", "[n+]", "[S@]", "[Cu+2]", "[Xe]", "[U]", "(", "(",
    ")", ")", "=", "#", "$", ":", "-", "/", "\\", ".", "->", "<-", "1", "1", "2", "2", "3", "4",
    "9", "%10", "%11", "%99", "@", "@@", "[", "]", "+", "-2", "H", "0", " ", "~", "?", "é",
    "\u{0}",
];

const SEEDS: &[&str] = &[
    "CC(C)NCC(O)COc1cccc2ccccc12",
    "Cc1onc(-c2ccccc2Cl)c1C(=O)N[C@@H]1C(=O)N2[C@@H](C(=O)O)C(C)(C)S[C@H]12",
    "CN1CCN(C2=c3ccccc3=Nc3ccc(Cl)cc3N2)CC1",
    "O=[N+]([O-])C1=CC=NC1NCCSCc1ccccn1",
    "CO/N=C(\\C(=O)N[C@H]1C(=O)N2C(C(=O)[O-])=C(COC(C)=O)CS[C@@H]12)c1csc(N)n1.[Na+]",
    "NC(N)=Nc1nc(-c2ccccc2)cs1",
    "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
    "C1CC2CCC1CC2",
    "Cl[Pt](Cl)([NH3])[NH3]",
    "[2H]C([2H])([2H])O",
    "F/C=C/F",
    "C%10CC%11CCCCC%11CC%10",
    "c1ccc2c(c1)oc1ccccc12",
    "OC(=O)C[N+](C)(C)C",
    "C12C3C4C1C5C2C3C45",
];

fn random_smiles(rng: &mut Rng) -> String {
    let length = 1 + rng.below(40);
    (0..length).map(|_| rng.pick(TOKENS)).collect()
}

fn mutate(rng: &mut Rng, seed: &str) -> String {
    let mut chars: Vec<char> = seed.chars().collect();
    for _ in 0..1 + rng.below(2) {
        let at = rng.below(chars.len() + 1);
        match rng.below(6) {
            0 if at < chars.len() => {
                chars.remove(at);
            }
            1 => {
                let token: Vec<char> = rng.pick(TOKENS).chars().collect();
                chars.splice(at..at, token);
            }
            2 if at + 1 < chars.len() => chars.swap(at, at + 1),
            3 => chars.truncate(at),
            4 if at < chars.len() => {
                let c = chars[at];
                chars[at] = if c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                };
            }
            _ => {
                let end = (at + rng.below(8)).min(chars.len());
                let piece: Vec<char> = chars[at..end].to_vec();
                chars.splice(at..at, piece);
            }
        }
    }
    chars.into_iter().collect()
}

/// Everything a caller can do with a string; returns whether it parsed.
fn exercise(smiles: &str) -> bool {
    let Ok(mol) = parse_smiles(smiles) else {
        return false;
    };
    let _ = mol.canonical_smiles();
    let _ = mol.murcko_scaffold();
    let _ = mol.distance_matrix();
    let _ = mol.gasteiger_charges();
    for set in FeatureSet::ALL {
        let graph = featurize(&mol, set);
        assert_eq!(graph.atom_features.len(), graph.n_atoms * set.atom_dim());
    }
    true
}

#[test]
fn twelve_thousand_random_and_mutated_smiles_never_panic() {
    let mut rng = Rng(0x5EED_2026_0000_0001);
    let mut inputs: Vec<String> = (0..6000).map(|_| random_smiles(&mut rng)).collect();
    for k in 0..6000 {
        let seed = SEEDS[k % SEEDS.len()];
        inputs.push(mutate(&mut rng, seed));
    }
    // Keep the panic hook quiet while probing; report offenders ourselves.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut panicked = Vec::new();
    let mut accepted = 0;
    for input in &inputs {
        match catch_unwind(AssertUnwindSafe(|| exercise(input))) {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(_) => panicked.push(input.clone()),
        }
    }
    std::panic::set_hook(hook);
    eprintln!(
        "{} inputs, {accepted} parsed, {} panicked",
        inputs.len(),
        panicked.len()
    );
    assert!(panicked.is_empty(), "panicked on: {panicked:#?}");
    // Both outcomes must be exercised for the test to mean anything.
    assert!(
        accepted > 1000 && accepted < inputs.len() - 1000,
        "accepted {accepted}"
    );
}
