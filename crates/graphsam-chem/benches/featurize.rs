//! Molecules per second on BBBP (../shared/data/moleculenet/BBBP.csv): parsing
//! alone, and parsing plus each feature set, single-threaded.
//!
//! `cargo bench -p graphsam-chem --bench featurize` reports each benchmark twice:
//! group `bbbp` in wall-clock time, and group `bbbp-cpu` in this thread's CPU
//! time (Linux `/proc/thread-self/schedstat`), which stays meaningful on a
//! machine shared with other jobs. Throughput "elem/s" is molecules per second.

use std::path::PathBuf;
use std::time::Instant;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use graphsam_chem::chem::parse_smiles;
use graphsam_chem::features::{FeatureSet, featurize};

/// BBBP's SMILES that parse (RDKit rejects 11 of 2050 rows; so do we).
fn bbbp_smiles() -> Vec<String> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/moleculenet/BBBP.csv");
    let mut reader = csv::Reader::from_path(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let column = reader
        .headers()
        .expect("header")
        .iter()
        .position(|h| h == "smiles");
    let column = column.expect("BBBP.csv has a smiles column");
    reader
        .records()
        .map(|r| r.expect("CSV row")[column].to_owned())
        .filter(|smiles| parse_smiles(smiles).is_ok())
        .collect()
}

/// CPU time consumed by the calling thread, in nanoseconds; falls back to a
/// monotonic wall clock where the kernel does not report it.
fn thread_cpu_ns() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| START.get_or_init(Instant::now).elapsed().as_nanos() as u64)
}

/// Criterion measurement: CPU time of the benchmarking thread.
struct ThreadCpuTime;

struct NanosFormatter;

impl ValueFormatter for NanosFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = match typical {
            t if t < 1e3 => (1.0, "ns"),
            t if t < 1e6 => (1e-3, "µs"),
            t if t < 1e9 => (1e-6, "ms"),
            _ => (1e-9, "s"),
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(
        &self,
        typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let per_iteration = match throughput {
            Throughput::Elements(n) | Throughput::Bytes(n) | Throughput::BytesDecimal(n) => {
                *n as f64
            }
            Throughput::Bits(n) => *n as f64,
            _ => 1.0,
        };
        let rate = |nanos: f64| per_iteration * 1e9 / nanos;
        let (factor, unit) = if rate(typical) >= 1e3 {
            (1e-3, "Kelem/s")
        } else {
            (1.0, "elem/s")
        };
        values.iter_mut().for_each(|v| *v = rate(*v) * factor);
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }

    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &NanosFormatter
    }
}

fn run<M: Measurement>(c: &mut Criterion<M>, group_name: &str) {
    let smiles = bbbp_smiles();
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(smiles.len() as u64));
    group.sample_size(10);
    group.bench_function("parse", |b| {
        b.iter(|| {
            smiles
                .iter()
                .filter_map(|s| parse_smiles(s).ok())
                .map(|m| m.num_atoms())
                .sum::<usize>()
        })
    });
    for set in FeatureSet::ALL {
        group.bench_function(format!("parse+{}", set.name()), |b| {
            b.iter(|| {
                smiles
                    .iter()
                    .filter_map(|s| parse_smiles(s).ok())
                    .map(|m| featurize(&m, set).atom_features.len())
                    .sum::<usize>()
            })
        });
    }
    group.finish();
}

fn wall_clock(c: &mut Criterion) {
    run(c, "bbbp");
}

fn cpu_time(c: &mut Criterion<ThreadCpuTime>) {
    run(c, "bbbp-cpu");
}

criterion_group!(wall, wall_clock);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = cpu_time
}
criterion_main!(wall, cpu);
