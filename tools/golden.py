#!/usr/bin/env python3
"""Write the RDKit golden data that graphsam-chem's Rust tests compare against.

Run by hand (never in CI), from the repository root, with pip `rdkit` 2026.09:

    python -m venv /tmp/rdk && /tmp/rdk/bin/pip install "rdkit==2026.9.*"
    /tmp/rdk/bin/python tools/golden.py golden \
        --data ../shared/data/moleculenet \
        --out crates/graphsam-chem/tests/data/rdkit_golden.jsonl
    /tmp/rdk/bin/python tools/golden.py periodic-table \
        > crates/graphsam-chem/src/chem/periodic_table.rs

`golden` writes JSON lines:
  * one `{"kind": "meta", ...}` line (RDKit version, record layouts);
  * one `{"kind": "dataset", ...}` line per MoleculeNet CSV with the 1-based
    file line numbers (header = line 1) of every row RDKit rejects;
  * one `{"kind": "molecule", ...}` line per golden molecule: a seeded sample
    of each CSV plus hand-written edge cases. Per-atom and per-bond records are
    integer arrays whose layouts are given in the meta line; masses and
    Gasteiger charges are floats (non-finite values as the strings "nan",
    "inf", "-inf"); `features` (for a subset) holds the reference feature
    vectors of the three feature sets, computed here with the published
    featurizers' rules, as one list per atom (or bond) holding `j` for a one at column j and `[j, v]` for any other value.

`periodic-table` prints the Rust source of RDKit's atomic weights and isotope
masses (the facts `Atom::GetMass` uses), which cosmolkit does not expose.
"""

import argparse
import csv
import json
import math
import random
import sys

from rdkit import Chem, RDLogger, rdBase
from rdkit.Chem import AllChem
from rdkit.Chem.Scaffolds import MurckoScaffold

RDLogger.DisableLog("rdApp.*")

DATASETS = [
    ("BBBP.csv", "smiles"),
    ("clintox.csv", "smiles"),
    ("tox21.csv", "smiles"),
    ("sider.csv", "smiles"),
    ("delaney-processed.csv", "smiles"),
    ("Lipophilicity.csv", "smiles"),
]
SAMPLE_PER_DATASET = 28
# Most samples are drug-sized (keeps the file small); a few per file may be any size.
SMALL_ATOMS = 40
ANY_SIZE_PER_DATASET = 2
FEATURES_PER_DATASET = 1
SEED = 2026

EDGE_CASES = [
    # charges
    "[NH4+]", "C[N+](C)(C)C", "CC(=O)[O-]", "O=[N+]([O-])c1ccccc1", "C[N-]C",
    "[CH2-]C", "NC(N)=[NH2+]", "CC(N)=[NH2+]", "[O-][n+]1ccccc1", "C[n+]1ccccc1",
    "[Fe+3]", "[S-2]", "[N-]=[N+]=[N-]", "C[N+]#[C-]", "[O-]S(=O)(=O)[O-]",
    "[cH-]1cccc1", "OC(=O)C[N+](C)(C)C", "[NH3+]CC(=O)[O-]",
    # isotopes
    "[2H]C([2H])([2H])O", "[13CH3]C", "[18F]c1ccccc1", "[3H]O", "[14C]", "[235U]",
    "[1C]", "[300C]", "[15nH]1cccc1", "[2H][2H]",
    # stereo, / and backslash
    "C/C=C/C", "C/C=C\\C", "F/C=C/F", "F/C=C\\Cl", "C/C=C/C=C/C", "OC(=O)/C=C\\C(=O)O",
    "C[C@H](O)C(=O)O", "C[C@@H](N)C(=O)O", "F[C@](Cl)(Br)I", "C[S@](=O)c1ccccc1",
    "C[C@H]1CC[C@@H](C)CC1", "C/C(F)=C(/Cl)Br", "CC=CC", "C/C=N/O",
    # %nn ring closures
    "C%10CCCCC%10", "C%10CC%11CCCCC%11CC%10", "c1ccc%12ccccc%12c1", "C%99CC%99",
    # aromatic heterocycles
    "c1ccncc1", "c1cc[nH]c1", "c1ccoc1", "c1ccsc1", "c1cnc[nH]1", "c1ncncn1",
    "c1ccc2[nH]ccc2c1", "Cn1cnc2c1c(=O)n(C)c(=O)n2C", "c1ccc2ncccc2c1", "Nc1nccs1",
    "O=c1cc[nH]cc1", "c1cc[se]c1", "c1cn[nH]c1", "c1nnn[nH]1", "c1ccc2c(c1)oc1ccccc12",
    "b1ccccc1", "c1cc2cccc3cccc(c1)c23",
    # metals, organometallics, main-group oddities
    "[Fe]", "Cl[Pt](Cl)([NH3])[NH3]", "[Mg+2]", "[Li]C", "C[Hg]C", "[Zn+2]", "[Co]",
    "O=[Mn](=O)(=O)[O-]", "[Gd+3]", "C[Si](C)(C)C", "OB(O)c1ccccc1", "[Al+3]", "[AsH3]",
    "[Se]", "F[P-](F)(F)(F)(F)F", "FS(F)(F)(F)(F)F", "CS(=O)(=O)C", "CS(C)=O",
    "OS(=O)(=O)O", "OP(=O)(O)O", "N->[Pt]", "C[Sn](C)(C)Cl", "[Ti](Cl)(Cl)(Cl)Cl",
    "[Cu+2].[O-]C(=O)C.[O-]C(=O)C", "II", "[I-]", "C[Te]C", "[Xe]",
    # salts and multiple fragments
    "[Na+].[Cl-]", "CC(=O)O.[Na]", "Cl.CN", "[K+].[Br-]", "O.O.O", "c1ccccc1.Cl",
    "CC(=O)[O-].[Na+]", "[Ca+2].[O-]C(=O)C.[O-]C(=O)C",
    # explicit hydrogens
    "[H]C([H])([H])[H]", "[H][H]", "[H]O[H]", "[CH4]", "[OH2]", "[H]c1ccccc1",
    "[H]N([H])C", "[H+]", "[H-]", "C[H]", "[H]/C=C/[H]", "[H][C@](F)(Cl)Br",
    # radicals, dummies, unusual bonds and rings
    "*", "*C", "[*]CC", "[CH3]", "[CH2]", "[O]", "C=C=C", "C#N", "C#C", "N#N", "O=C=O",
    "C1CC1", "C1CCC1", "C1CCCCCCC1", "C1CCCCCCCC1", "C12C3C4C1C5C2C3C45", "c1ccc2ccccc2c1",
    "C1CC2CCC1CC2", "C1CCC2(CC1)CCCC2", "C1=CC=CC=C1", "O=C1C=CC(=O)C=C1", "NC(=O)N",
    "C1CC2CC1C=C2", "C1=CC2=CC=CC2=C1", "c1ccc2c(c1)ccc1ccccc12",
    "CC(C)(C)c1ccc(O)cc1", "C=CC=CC=C", "CC(=O)OC1=CC=CC=C1C(=O)O",
    # rejected by RDKit
    "CC(", "c1cccc1", "C1CC", "[Xx]", "C(C)(C)(C)(C)C", "N(C)(C)(C)C", "C==C", "[NH4]",
    "Cl(Cl)Cl", "c1ccccc1C(", "C)C", "[C@@H", "C1CCCCC1)", "n1cccc1", "O=C=O=C",
]

# Per-atom record layout (integers).
ATOM_LAYOUT = [
    "atomic_number", "total_degree", "degree", "formal_charge", "chiral_tag", "total_hs",
    "total_hs_with_neighbors", "implicit_valence", "total_valence", "hybridization",
    "is_aromatic", "in_ring", "ring_size_bits_3_to_8", "isotope", "smarts_bits",
]
# smarts_bits: 1 = H-acceptor, 2 = H-donor, 4 = acidic, 8 = basic (GROVER's patterns).
BOND_LAYOUT = ["begin", "end", "bond_type", "is_conjugated", "is_aromatic", "in_ring", "stereo"]

# GROVER's four SMARTS (grover/data/molgraph.py).
GROVER_SMARTS = {
    "acceptor": "[$([O,S;H1;v2;!$(*-*=[O,N,P,S])]),$([O,S;H0;v2]),$([O,S;-]),$([N;v3;!$(N-*=[O,N,P,S])]),"
    "n&H0&+0,$([o,s;+0;!$([o,s]:n);!$([o,s]:c:n)])]",
    "donor": "[$([N;!H0;v3,v4&+1]),$([O,S;H1;+0]),n&H1&+0]",
    "acidic": "[$([C,S](=[O,S,P])-[O;H1,-1])]",
    "basic": "[#7;+,$([N;H2&+0][$([C,a]);!$([C,a](=O))]),$([N;H1&+0]([$([C,a]);!$([C,a](=O))])[$([C,a]);"
    "!$([C,a](=O))]),$([N;H0&+0]([C;!$(C(=O))])([C;!$(C(=O))])[C;!$(C(=O))])]",
}
SMARTS_BIT = {"acceptor": 1, "donor": 2, "acidic": 4, "basic": 8}
PATTERNS = {name: Chem.MolFromSmarts(text) for name, text in GROVER_SMARTS.items()}

# RDKit enum codes used by the reference featurizers.
HYB_CHOICES = [2, 3, 4, 6, 7]  # SP, SP2, SP3, SP3D, SP3D2
COMPT_STEREO_ORDER = [1, 4, 3, 0, 5, 2]  # ANY, CIS, E, NONE, TRANS, Z
COMPT_BOND_ORDER = [1, 2, 3, 12]  # SINGLE, DOUBLE, TRIPLE, AROMATIC


def num(x):
    """JSON-safe float: non-finite values become strings."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return float(f"{x:.8g}")


def onehot(value, choices, unknown=True):
    width = len(choices) + (1 if unknown else 0)
    vec = [0] * width
    vec[choices.index(value) if value in choices else -1] = 1
    return vec


def grover_charge_onehot(charge):
    # GROVER indexes the 6-slot vector by the charge itself (Python negative indexing).
    vec = [0] * 6
    vec[charge] = 1  # IndexError for |charge| >= 7 / charge == 6, as in GROVER
    return vec


def matches(mol):
    bits = [0] * mol.GetNumAtoms()
    for name, patt in PATTERNS.items():
        for match in mol.GetSubstructMatches(patt):
            for idx in match:
                bits[idx] |= SMARTS_BIT[name]
    return bits


def compt_atom(atom):
    f = onehot(atom.GetAtomicNum(), list(range(1, 101)))
    f += onehot(int(atom.GetHybridization()), HYB_CHOICES)

    def clean(x):
        return 0.0 if math.isnan(x) or math.isinf(x) else x

    f += [
        atom.GetTotalNumHs(includeNeighbors=True) / 8,
        atom.GetDegree() / 4,
        atom.GetFormalCharge() / 8,
        atom.GetTotalValence() / 8,
        clean(atom.GetDoubleProp("_GasteigerCharge")),
        clean(atom.GetDoubleProp("_GasteigerHCharge")),
        int(atom.GetIsAromatic()),
        int(atom.IsInRing()),
    ]
    return f


def compt_bond(bond):
    f = onehot(int(bond.GetBondType()), COMPT_BOND_ORDER, unknown=False)
    f += onehot(int(bond.GetStereo()), COMPT_STEREO_ORDER, unknown=False)
    f += [int(bond.GetIsConjugated()), int(bond.GetIsAromatic()), int(bond.IsInRing())]
    return f


def chemprop_atom(atom):
    f = onehot(atom.GetAtomicNum() - 1, list(range(100)))
    f += onehot(atom.GetTotalDegree(), [0, 1, 2, 3, 4, 5])
    f += onehot(atom.GetFormalCharge(), [-1, -2, 1, 2, 0])
    f += onehot(int(atom.GetChiralTag()), [0, 1, 2, 3])
    f += onehot(int(atom.GetTotalNumHs()), [0, 1, 2, 3, 4])
    f += onehot(int(atom.GetHybridization()), HYB_CHOICES)
    f += [1 if atom.GetIsAromatic() else 0, atom.GetMass() * 0.01]
    return f


def grover_atom(atom, ring_info, smarts_bits):
    f = onehot(atom.GetAtomicNum() - 1, list(range(100)))
    f += onehot(atom.GetTotalDegree(), [0, 1, 2, 3, 4, 5])
    f += grover_charge_onehot(atom.GetFormalCharge())
    f += onehot(int(atom.GetChiralTag()), [0, 1, 2, 3])
    f += onehot(int(atom.GetTotalNumHs()), [0, 1, 2, 3, 4])
    f += onehot(int(atom.GetHybridization()), HYB_CHOICES)
    f += [1 if atom.GetIsAromatic() else 0, atom.GetMass() * 0.01]
    f += onehot(atom.GetImplicitValence(), [0, 1, 2, 3, 4, 5, 6])
    bits = smarts_bits[atom.GetIdx()]
    f += [int(bits & 1 != 0), int(bits & 2 != 0), int(bits & 4 != 0), int(bits & 8 != 0)]
    f += [int(ring_info.IsAtomInRingOfSize(atom.GetIdx(), size)) for size in range(3, 9)]
    return f


def chemprop_bond(bond):
    bt = int(bond.GetBondType())
    f = [0, int(bt == 1), int(bt == 2), int(bt == 3), int(bt == 12),
         int(bond.GetIsConjugated()), int(bond.IsInRing())]
    f += onehot(int(bond.GetStereo()), list(range(6)))
    return f


def sparse(rows):
    """Per row, its nonzero entries: `j` for a one at column j, `[j, v]` otherwise."""
    out = []
    for row in rows:
        entries = []
        for j, v in enumerate(row):
            if v == 1:
                entries.append(j)
            elif v != 0:
                entries.append([j, v if float(v).is_integer() else num(float(v))])
        out.append(entries)
    return out


def dist_digest(mol):
    """Order-sensitive digest of the topological distance matrix (-1 = disconnected)."""
    n = mol.GetNumAtoms()
    dm = Chem.GetDistanceMatrix(mol) if n else []
    total, weighted = 0, 0
    for i in range(n):
        for j in range(i + 1, n):
            d = int(dm[i][j])
            d = -1 if d >= 1e7 else d
            total += d
            weighted += d * ((i * 31 + j * 17) % 101 + 1)
    return [total, weighted]


def record(smiles, source, with_features):
    mol = Chem.MolFromSmiles(smiles)
    rec = {"kind": "molecule", "source": source, "smiles": smiles, "ok": mol is not None}
    if mol is None:
        return rec
    rec["canonical"] = Chem.MolToSmiles(mol)
    rec["scaffold"] = MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)
    ring_info = mol.GetRingInfo()
    bits = matches(mol)
    atoms, masses = [], []
    for atom in mol.GetAtoms():
        idx = atom.GetIdx()
        ring_bits = sum(1 << (size - 3) for size in range(3, 9)
                        if ring_info.IsAtomInRingOfSize(idx, size))
        atoms.append([
            atom.GetAtomicNum(), atom.GetTotalDegree(), atom.GetDegree(), atom.GetFormalCharge(),
            int(atom.GetChiralTag()), atom.GetTotalNumHs(), atom.GetTotalNumHs(includeNeighbors=True),
            atom.GetImplicitValence(), atom.GetTotalValence(), int(atom.GetHybridization()),
            int(atom.GetIsAromatic()), int(atom.IsInRing()), ring_bits, atom.GetIsotope(), bits[idx],
        ])
        masses.append(num(atom.GetMass()))
    bonds = [[b.GetBeginAtomIdx(), b.GetEndAtomIdx(), int(b.GetBondType()), int(b.GetIsConjugated()),
              int(b.GetIsAromatic()), int(b.IsInRing()), int(b.GetStereo())] for b in mol.GetBonds()]
    AllChem.ComputeGasteigerCharges(mol)
    charges = [[num(a.GetDoubleProp("_GasteigerCharge")), num(a.GetDoubleProp("_GasteigerHCharge"))]
               for a in mol.GetAtoms()]
    rec.update(atoms=atoms, bonds=bonds, mass=masses, gasteiger=charges, dist=dist_digest(mol))
    if with_features:
        try:
            grover = [grover_atom(a, ring_info, bits) for a in mol.GetAtoms()]
        except IndexError:
            grover = None  # GROVER itself crashes on |charge| >= 6
        rec["features"] = {
            "compt_atom": sparse([compt_atom(a) for a in mol.GetAtoms()]),
            "compt_bond": sparse([compt_bond(b) for b in mol.GetBonds()]),
            "chemprop_atom": sparse([chemprop_atom(a) for a in mol.GetAtoms()]),
            "chemprop_bond": sparse([chemprop_bond(b) for b in mol.GetBonds()]),
            "grover_atom": None if grover is None else sparse(grover),
        }
    return rec


def read_column(path, column):
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        col = header.index(column)
        # csv.reader's line_num is the physical line after the record; rows here are one line each.
        return [(reader.line_num, row[col]) for row in reader]


def golden(args):
    out = open(args.out, "w")

    def emit(obj):
        out.write(json.dumps(obj, separators=(",", ":")) + "\n")

    emit({"kind": "meta", "rdkit_version": rdBase.rdkitVersion, "atom_layout": ATOM_LAYOUT,
          "bond_layout": BOND_LAYOUT, "smarts_bits": SMARTS_BIT, "seed": SEED})
    rng = random.Random(SEED)
    samples = []
    for file_name, column in DATASETS:
        rows = read_column(f"{args.data}/{file_name}", column)
        rejected = [line for line, smi in rows if Chem.MolFromSmiles(smi) is None]
        emit({"kind": "dataset", "file": file_name, "column": column, "rows": len(rows),
              "rejected_lines": rejected})
        shuffled = rows[:]
        rng.shuffle(shuffled)
        picked = shuffled[:ANY_SIZE_PER_DATASET]
        for line, smi in shuffled[ANY_SIZE_PER_DATASET:]:
            if len(picked) == SAMPLE_PER_DATASET:
                break
            mol = Chem.MolFromSmiles(smi)
            if mol is None or mol.GetNumAtoms() <= SMALL_ATOMS:
                picked.append((line, smi))
        for k, (line, smi) in enumerate(picked):
            samples.append((smi, f"{file_name}:{line}", k < FEATURES_PER_DATASET))
    for smi in EDGE_CASES:
        samples.append((smi, "edge", True))
    for smi, source, with_features in samples:
        emit(record(smi, source, with_features))
    out.close()


def periodic_table(_args):
    pt = Chem.GetPeriodicTable()
    lines = [
        "//! RDKit 2026.09's periodic-table masses (`PeriodicTable::getAtomicWeight` and",
        "//! `getMassForIsotope`): facts that cosmolkit does not expose.",
        "//! Generated by `tools/golden.py periodic-table`; do not edit by hand.",
        "",
        "/// Standard atomic weight per atomic number 0..=118 (0 = dummy atom).",
        "pub(super) const ATOMIC_WEIGHTS: [f64; 119] = [",
    ]
    for z in range(119):
        lines.append(f"    {pt.GetAtomicWeight(z)!r},")
    lines += [
        "];",
        "",
        "/// Per atomic number: the first tabulated isotope (mass number) and the exact",
        "/// masses of the contiguous run of isotopes starting there.",
        "pub(super) const ISOTOPE_MASSES: [(u16, &[f64]); 119] = [",
    ]
    for z in range(119):
        isos = [iso for iso in range(0, 400) if pt.GetMassForIsotope(z, iso) != 0.0]
        if not isos:
            lines.append("    (0, &[]),")
            continue
        assert isos == list(range(isos[0], isos[-1] + 1)), z
        masses = ", ".join(repr(pt.GetMassForIsotope(z, iso)) for iso in isos)
        lines.append(f"    ({isos[0]}, &[{masses}]),")
    lines.append("];")
    sys.stdout.write("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("golden", help="write the golden JSON-lines file")
    g.add_argument("--data", default="../shared/data/moleculenet")
    g.add_argument("--out", default="crates/graphsam-chem/tests/data/rdkit_golden.jsonl")
    g.set_defaults(func=golden)
    p = sub.add_parser("periodic-table", help="print the Rust periodic-table source")
    p.set_defaults(func=periodic_table)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
