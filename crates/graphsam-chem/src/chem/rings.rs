//! Ring membership with RDKit's symmetrized-SSSR semantics, cheaply where possible.
//!
//! A bond lies on a ring exactly when it is not a bridge, so ring membership
//! needs no ring search. Ring sizes do; but where every ring system (connected
//! set of ring bonds) has cyclomatic number 1, it is a single cycle and the
//! symmetrized SSSR is exactly those cycles. Only molecules with fused,
//! bridged or spiro systems pay for the toolkit's full ring search.

/// Per-atom and per-bond ring facts.
pub(super) struct RingFacts {
    pub atom_in_ring: Vec<bool>,
    pub atom_ring_sizes: Vec<[bool; 6]>,
    pub bond_in_ring: Vec<bool>,
}

/// The molecular graph in compressed adjacency form: neighbours of atom `i`
/// are `neighbors[offsets[i]..offsets[i + 1]]` as (atom, bond) pairs.
pub(super) struct Graph<'a> {
    pub offsets: &'a [u32],
    pub neighbors: &'a [(u32, u32)],
    pub bond_ends: &'a [(u32, u32)],
}

impl Graph<'_> {
    fn n_atoms(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    fn adjacent(&self, atom: usize) -> &[(u32, u32)] {
        &self.neighbors[self.offsets[atom] as usize..self.offsets[atom + 1] as usize]
    }
}

/// Bonds that lie on a cycle (non-bridges), by an iterative lowlink DFS
/// (no recursion, so long chains cannot overflow the stack).
fn cyclic_bonds(graph: &Graph) -> Vec<bool> {
    let n = graph.n_atoms();
    let mut cyclic = vec![true; graph.bond_ends.len()];
    let mut order = vec![u32::MAX; n];
    let mut low = vec![0u32; n];
    let mut counter = 0u32;
    // Stack frames: (atom, bond it was entered by, next neighbour position).
    let mut stack: Vec<(usize, u32, usize)> = Vec::new();
    for root in 0..n {
        if order[root] != u32::MAX {
            continue;
        }
        order[root] = counter;
        low[root] = counter;
        counter += 1;
        stack.push((root, u32::MAX, 0));
        while let Some(frame) = stack.last_mut() {
            let (atom, via, position) = *frame;
            if let Some(&(next, bond)) = graph.adjacent(atom).get(position) {
                frame.2 += 1;
                if bond == via {
                    continue;
                }
                let next = next as usize;
                if order[next] == u32::MAX {
                    order[next] = counter;
                    low[next] = counter;
                    counter += 1;
                    stack.push((next, bond, 0));
                } else {
                    low[atom] = low[atom].min(order[next]);
                }
            } else {
                stack.pop();
                if let Some(&(parent, _, _)) = stack.last() {
                    low[parent] = low[parent].min(low[atom]);
                    if low[atom] > order[parent] {
                        cyclic[via as usize] = false;
                    }
                }
            }
        }
    }
    cyclic
}

fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let up = parent[parent[x as usize] as usize];
        parent[x as usize] = up;
        x = up;
    }
    x
}

/// Ring facts from the graph alone, or `None` when some ring system is not a
/// single cycle and the full symmetrized SSSR is needed.
pub(super) fn simple_rings(graph: &Graph) -> Option<RingFacts> {
    let n = graph.n_atoms();
    let bond_in_ring = cyclic_bonds(graph);
    let mut parent: Vec<u32> = (0..n as u32).collect();
    for (bond, &(a, b)) in graph.bond_ends.iter().enumerate() {
        if bond_in_ring[bond] {
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            parent[ra as usize] = rb;
        }
    }
    // Atoms and ring bonds per ring system, keyed by the system's root atom.
    let mut atoms_in_system = vec![0u32; n];
    let mut bonds_in_system = vec![0u32; n];
    let mut atom_in_ring = vec![false; n];
    for (bond, &(a, b)) in graph.bond_ends.iter().enumerate() {
        if bond_in_ring[bond] {
            atom_in_ring[a as usize] = true;
            atom_in_ring[b as usize] = true;
            let root = find(&mut parent, a);
            bonds_in_system[root as usize] += 1;
        }
    }
    for (atom, _) in atom_in_ring
        .iter()
        .enumerate()
        .filter(|(_, in_ring)| **in_ring)
    {
        let root = find(&mut parent, atom as u32);
        atoms_in_system[root as usize] += 1;
    }
    if (0..n).any(|root| bonds_in_system[root] != atoms_in_system[root]) {
        return None; // cyclomatic number bonds − atoms + 1 ≠ 1 somewhere
    }
    let mut atom_ring_sizes = vec![[false; 6]; n];
    for atom in 0..n {
        if atom_in_ring[atom] {
            let size = atoms_in_system[find(&mut parent, atom as u32) as usize] as usize;
            if (3..=8).contains(&size) {
                atom_ring_sizes[atom][size - 3] = true;
            }
        }
    }
    Some(RingFacts {
        atom_in_ring,
        atom_ring_sizes,
        bond_in_ring,
    })
}

#[cfg(test)]
mod tests {
    use crate::chem::parse_smiles;

    #[test]
    fn separate_rings_are_found_without_a_ring_search() {
        let mol = parse_smiles("C1CC1CCC1CCCCCCC1").unwrap();
        let atoms = mol.atoms();
        assert!(atoms[0].ring_sizes[0] && atoms[0].in_ring);
        assert!(!atoms[3].in_ring && !atoms[4].in_ring);
        assert!(atoms[6].ring_sizes[5], "cyclooctyl atoms are in an 8-ring");
        let in_ring: Vec<bool> = mol.bonds().iter().map(|b| b.in_ring).collect();
        assert_eq!(in_ring.iter().filter(|&&r| r).count(), 3 + 8);
    }

    #[test]
    fn fused_and_spiro_systems_match_the_full_search() {
        // Naphthalene atoms 4 and 9 (fusion atoms) are in two 6-rings; the
        // 10-cycle around the outside is not an SSSR ring.
        let mol = parse_smiles("c1ccc2ccccc2c1").unwrap();
        assert!(
            mol.atoms()
                .iter()
                .all(|a| a.ring_sizes == [false, false, false, true, false, false])
        );
        let spiro = parse_smiles("C1CC12CCCC2").unwrap();
        assert!(spiro.atoms()[2].ring_sizes[0] && spiro.atoms()[2].ring_sizes[2]);
        // Cubane: six 4-rings, and its 6-cycles are not SSSR rings.
        let cubane = parse_smiles("C12C3C4C1C5C2C3C45").unwrap();
        assert!(
            cubane
                .atoms()
                .iter()
                .all(|a| a.ring_sizes == [false, true, false, false, false, false])
        );
    }

    #[test]
    fn long_chains_do_not_overflow_the_stack() {
        let chain = "C".repeat(3000);
        let mol = parse_smiles(&format!("C1{chain}1")).unwrap();
        assert!(
            mol.atoms()
                .iter()
                .all(|a| a.in_ring && a.ring_sizes == [false; 6])
        );
    }
}
