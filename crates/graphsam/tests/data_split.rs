//! Splits: sizes, determinism, scaffold semantics on hand-worked examples,
//! split files, and scaffold splits of the six MoleculeNet datasets.

mod shared_data;

use std::path::PathBuf;

use graphsam::data::split::{deterministic_scaffold_split, random_split, scaffold_balanced_split};
use graphsam::data::{
    DataError, DatasetResolver, DatasetSpec, LoadOptions, MoleculeDataset, Registry, Split,
    SplitKind, SplitSizes, TaskType, make_split, read_split_file, repeated_splits, summarize_split,
};
use graphsam::features::FeatureSet;

fn sorted(mut v: Vec<usize>) -> Vec<usize> {
    v.sort_unstable();
    v
}

fn covers_exactly(split: &Split, n: usize) {
    let all = sorted([split.train.clone(), split.valid.clone(), split.test.clone()].concat());
    assert_eq!(all, (0..n).collect::<Vec<_>>());
}

fn scaffolds(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

#[test]
fn random_split_cuts_at_chemprop_boundaries_and_is_seeded() {
    let sizes = SplitSizes::default();
    for (n, expected) in [
        (10, [8, 1, 1]),
        (2039, [1631, 204, 204]),
        (1, [0, 0, 1]),
        (0, [0, 0, 0]),
    ] {
        let s = random_split(n, sizes, 0).unwrap();
        assert_eq!(s.sizes(), expected, "n = {n}");
        covers_exactly(&s, n);
    }
    let a = random_split(100, sizes, 3).unwrap();
    assert_eq!(a, random_split(100, sizes, 3).unwrap());
    assert_ne!(a, random_split(100, sizes, 4).unwrap());
    let custom = random_split(100, SplitSizes::new(0.5, 0.3, 0.2).unwrap(), 0).unwrap();
    assert_eq!(custom.sizes(), [50, 30, 20]);
}

#[test]
fn invalid_split_sizes_are_rejected() {
    for (a, b, c) in [(0.8, 0.1, 0.2), (1.2, -0.1, -0.1), (f64::NAN, 0.5, 0.5)] {
        let err = SplitSizes::new(a, b, c).unwrap_err();
        assert!(matches!(err, DataError::InvalidSplitSizes { .. }), "{err}");
    }
    let bad = SplitSizes {
        train: 0.9,
        valid: 0.9,
        test: 0.1,
    };
    assert!(matches!(
        random_split(10, bad, 0),
        Err(DataError::InvalidSplitSizes { .. })
    ));
}

/// 20 molecules: scaffold A (8), B (6) and six singletons. With 80/10/10 the
/// validation and test sizes are 2, so A and B are "big" (> 1) and go first:
/// both fit in train (14 ≤ 16); then two singletons fill train, two go to
/// validation, two to test — whatever the shuffle.
#[test]
fn balanced_scaffold_puts_big_groups_first_and_never_splits_a_group() {
    let mut s = Vec::new();
    s.extend(std::iter::repeat_n("A", 8));
    s.extend(std::iter::repeat_n("B", 6));
    s.extend(["c", "d", "e", "f", "g", "h"]);
    // Interleave so group members are not contiguous.
    let order = [
        0, 8, 14, 1, 9, 15, 2, 10, 16, 3, 11, 17, 4, 12, 18, 5, 13, 19, 6, 7,
    ];
    let s: Vec<String> = order.iter().map(|&i| s[i].to_string()).collect();
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..10 {
        let split = scaffold_balanced_split(&s, SplitSizes::default(), seed).unwrap();
        assert_eq!(split.sizes(), [16, 2, 2]);
        covers_exactly(&split, 20);
        let train_scaffolds: Vec<&str> = split.train.iter().map(|&i| s[i].as_str()).collect();
        assert_eq!(train_scaffolds.iter().filter(|&&x| x == "A").count(), 8);
        assert_eq!(train_scaffolds.iter().filter(|&&x| x == "B").count(), 6);
        assert_eq!(
            split,
            scaffold_balanced_split(&s, SplitSizes::default(), seed).unwrap()
        );
        seen.insert(sorted(split.test.clone()));
    }
    assert!(seen.len() > 1, "different seeds must give different splits");
}

/// Train 5, validation/test 2.5: the big group (4 > 1.25) goes to train
/// first, one singleton fills train, two go to validation (≤ 2.5), the
/// last three to test.
#[test]
fn balanced_scaffold_greedy_fill_uses_fractional_sizes() {
    let s = scaffolds(&["x", "A", "y", "A", "z", "A", "u", "A", "v", "w"]);
    let sizes = SplitSizes::new(0.5, 0.25, 0.25).unwrap();
    for seed in 0..5 {
        let split = scaffold_balanced_split(&s, sizes, seed).unwrap();
        assert_eq!(split.sizes(), [5, 2, 3]);
        assert!([1, 3, 5, 7].iter().all(|i| split.train.contains(i)));
    }
}

/// Groups a[0,2,6] b[1,4] c[3,8] d[5] e[7] f[9] sorted by (size, first
/// index) descending: a, c, b, f, e, d. Train cutoff 8, train+valid 9.
#[test]
fn deterministic_scaffold_split_matches_deepchem_order() {
    let s = scaffolds(&["a", "b", "a", "c", "b", "d", "a", "e", "c", "f"]);
    let split = deterministic_scaffold_split(&s, SplitSizes::default()).unwrap();
    assert_eq!(split.train, vec![0, 2, 6, 3, 8, 1, 4, 9]);
    assert_eq!(split.valid, vec![7]);
    assert_eq!(split.test, vec![5]);
}

#[test]
fn split_files_round_trip_and_bad_files_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let split = Split {
        train: vec![3, 0, 4],
        valid: vec![1],
        test: vec![2],
    };
    let p = dir.path().join("split.json");
    std::fs::write(&p, split.to_json()).unwrap();
    assert_eq!(read_split_file(&p, 5).unwrap(), split);

    // chemprop's list-of-lists form and the `val` spelling.
    let lists = dir.path().join("lists.json");
    std::fs::write(&lists, "[[3,0,4],[1],[2]]").unwrap();
    assert_eq!(read_split_file(&lists, 5).unwrap(), split);
    let val = dir.path().join("val.json");
    std::fs::write(&val, r#"{"train":[3,0,4],"val":[1],"test":[2]}"#).unwrap();
    assert_eq!(read_split_file(&val, 5).unwrap(), split);

    let err = read_split_file(&p, 4).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::SplitIndexOutOfRange {
                part: "train",
                index: 4,
                len: 4
            }
        ),
        "{err}"
    );
    let dup = dir.path().join("dup.json");
    std::fs::write(&dup, r#"{"train":[0,1],"valid":[1],"test":[]}"#).unwrap();
    let err = read_split_file(&dup, 5).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::SplitIndexDuplicated {
                index: 1,
                first: "train",
                second: "valid"
            }
        ),
        "{err}"
    );
    let two = dir.path().join("two.json");
    std::fs::write(&two, "[[0],[1]]").unwrap();
    assert!(matches!(
        read_split_file(&two, 5),
        Err(DataError::InvalidSplitFile { .. })
    ));
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, r#"{"train": "all"}"#).unwrap();
    assert!(matches!(
        read_split_file(&junk, 5),
        Err(DataError::InvalidSplitFile { .. })
    ));
    assert!(matches!(
        read_split_file(&dir.path().join("none.json"), 5),
        Err(DataError::Io { .. })
    ));
}

#[test]
fn split_kinds_parse_and_serialize() {
    assert_eq!("random".parse::<SplitKind>().unwrap(), SplitKind::Random);
    assert_eq!(
        "scaffold".parse::<SplitKind>().unwrap(),
        SplitKind::ScaffoldBalanced
    );
    assert_eq!(
        "scaffold_balanced".parse::<SplitKind>().unwrap(),
        SplitKind::ScaffoldBalanced
    );
    assert_eq!(
        "deepchem-scaffold".parse::<SplitKind>().unwrap(),
        SplitKind::ScaffoldDeterministic
    );
    assert_eq!(
        "file:/tmp/s.json".parse::<SplitKind>().unwrap(),
        SplitKind::File {
            path: PathBuf::from("/tmp/s.json")
        }
    );
    assert!("stratified".parse::<SplitKind>().is_err());
    for kind in [
        SplitKind::Random,
        SplitKind::ScaffoldBalanced,
        SplitKind::File {
            path: "x.json".into(),
        },
    ] {
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(serde_json::from_str::<SplitKind>(&json).unwrap(), kind);
    }
    assert_eq!(
        serde_json::to_string(&SplitKind::ScaffoldBalanced).unwrap(),
        r#"{"kind":"scaffold-balanced"}"#
    );
}

fn small_dataset(scaffolds: bool) -> MoleculeDataset {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.csv");
    std::fs::write(
        &p,
        "smiles,y\nc1ccccc1O,1\nc1ccccc1N,2\nC1CCCCC1C,3\nCCO,4\nCCN,5\n",
    )
    .unwrap();
    let spec = DatasetSpec::custom("t.csv", "smiles", vec!["y".into()], TaskType::Regression);
    let opts = LoadOptions {
        features: None,
        atom_limit: None,
        scaffolds,
    };
    MoleculeDataset::load(&p, &spec, &opts).unwrap()
}

#[test]
fn scaffold_split_needs_scaffolds_and_summary_counts_groups() {
    let no = small_dataset(false);
    let err = make_split(&no, &SplitKind::ScaffoldBalanced, SplitSizes::default(), 0).unwrap_err();
    assert!(matches!(err, DataError::ScaffoldsNotLoaded), "{err}");
    assert!(make_split(&no, &SplitKind::Random, SplitSizes::default(), 0).is_ok());

    let ds = small_dataset(true);
    assert_eq!(
        ds.scaffolds,
        vec!["c1ccccc1", "c1ccccc1", "C1CCCCC1", "", ""]
    );
    // Everything in train except one benzene and the cyclohexane.
    let split = Split {
        train: vec![0, 3, 4],
        valid: vec![1],
        test: vec![2],
    };
    let summary = summarize_split(&ds, &split);
    assert_eq!(summary.sizes, [3, 1, 1]);
    assert_eq!(summary.scaffold_groups, Some([2, 1, 1]));
    assert_eq!(summary.shared_scaffolds, Some(1));
    assert_eq!(summary.total, 5);
    assert_eq!(summarize_split(&no, &split).scaffold_groups, None);

    let runs = repeated_splits(
        &ds,
        &SplitKind::Random,
        SplitSizes::new(0.6, 0.2, 0.2).unwrap(),
        3,
    )
    .unwrap();
    assert_eq!(runs.len(), 3);
    for (seed, s) in runs.iter().enumerate() {
        assert_eq!(
            s,
            &make_split(
                &ds,
                &SplitKind::Random,
                SplitSizes::new(0.6, 0.2, 0.2).unwrap(),
                seed as u64
            )
            .unwrap()
        );
    }
}

/// Every paper dataset, resolved through a data dir like GRAPHSAM_DATA_DIR:
/// both scaffold splits keep each scaffold in one part and cover every
/// valid molecule once. Loads without features (splitting needs scaffolds
/// only) but with the CoMPT atom limit, so indices match a CoMPT training run.
#[test]
fn moleculenet_scaffold_splits_share_no_scaffold() {
    let Some(dir) = shared_data::moleculenet_dir("moleculenet scaffold splits") else {
        return;
    };
    let resolver = DatasetResolver {
        data_dir: Some(dir),
        ..DatasetResolver::default()
    };
    let options = LoadOptions::for_features(FeatureSet::Compt).without_features();
    for spec in Registry::moleculenet().specs() {
        let t0 = std::time::Instant::now();
        let ds = MoleculeDataset::resolve_and_load(&resolver, spec, None, &options).unwrap();
        let load_s = t0.elapsed().as_secs_f64();
        assert!(ds.len() > 1000, "{}: {} molecules", spec.name, ds.len());
        for kind in [
            SplitKind::ScaffoldBalanced,
            SplitKind::ScaffoldDeterministic,
        ] {
            let split = make_split(&ds, &kind, SplitSizes::default(), 0).unwrap();
            covers_exactly(&split, ds.len());
            let summary = summarize_split(&ds, &split);
            assert_eq!(summary.shared_scaffolds, Some(0), "{} {kind}", spec.name);
            assert_eq!(summary.sizes.iter().sum::<usize>(), ds.len());
            // Balanced greedy fill never overfills train.
            assert!(summary.sizes[0] as f64 <= 0.8 * ds.len() as f64);
        }
        let random = make_split(&ds, &SplitKind::Random, SplitSizes::default(), 0).unwrap();
        let scaffold =
            make_split(&ds, &SplitKind::ScaffoldBalanced, SplitSizes::default(), 0).unwrap();
        println!(
            "{:14} valid {:5} skipped {:3} random {:?} scaffold {:?} parse+scaffold {:.2}s",
            spec.name,
            ds.len(),
            ds.skipped.len(),
            random.sizes(),
            scaffold.sizes(),
            load_s
        );
    }
}
