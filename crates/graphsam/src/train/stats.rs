//! Summary statistics over repeated runs: mean and standard deviation, and
//! paired differences with Student-t confidence intervals.

use serde::{Deserialize, Serialize};

/// Mean and sample standard deviation (0 for one value, NaN for none).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// The median (the mean of the middle two for an even count); `None` for no
/// values. NaNs sort last.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

/// Two-sided 95 % quantile of Student's t, t₀.₉₇₅(df), for `df` ≥ 1.
///
/// Up to 30 degrees of freedom the standard table values (4 decimals); above,
/// the Cornish–Fisher expansion around the normal quantile (Abramowitz &
/// Stegun 26.7.5), within 2·10⁻⁴ of the exact value there.
pub fn student_t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, 2.2010,
        2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, 2.0796, 2.0739,
        2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
    ];
    assert!(df >= 1, "Student's t needs at least one degree of freedom");
    if df <= TABLE.len() {
        return TABLE[df - 1];
    }
    let z: f64 = 1.959_963_984_540_054;
    let v = df as f64;
    let g1 = (z.powi(3) + z) / 4.0;
    let g2 = (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / 96.0;
    let g3 = (3.0 * z.powi(7) + 19.0 * z.powi(5) + 17.0 * z.powi(3) - 15.0 * z) / 384.0;
    z + g1 / v + g2 / v.powi(2) + g3 / v.powi(3)
}

/// The paired differences `a − b` of matched runs: their mean, its 95 %
/// confidence interval, and how often `a` came out better.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedDifference {
    /// Number of pairs.
    pub pairs: usize,
    /// Mean of a − b.
    pub mean: f64,
    /// 95 % confidence interval of the mean (Student t over the pairs);
    /// `None` with fewer than two pairs.
    pub ci95: Option<(f64, f64)>,
    /// Pairs where `a` was better.
    pub wins: usize,
    /// Pairs where `a` was worse.
    pub losses: usize,
    /// Pairs with equal values.
    pub ties: usize,
}

impl PairedDifference {
    /// Statistics of `pairs` (a, b); "better" means larger when
    /// `higher_is_better`, smaller otherwise. `None` for no pairs.
    pub fn of(pairs: &[(f64, f64)], higher_is_better: bool) -> Option<Self> {
        if pairs.is_empty() {
            return None;
        }
        let deltas: Vec<f64> = pairs.iter().map(|(a, b)| a - b).collect();
        let (mean, std) = mean_std(&deltas);
        let n = deltas.len();
        let ci95 = (n >= 2).then(|| {
            let half = student_t_975(n - 1) * std / (n as f64).sqrt();
            (mean - half, mean + half)
        });
        let sign = if higher_is_better { 1.0 } else { -1.0 };
        let count = |keep: fn(f64) -> bool| deltas.iter().filter(|&&d| keep(sign * d)).count();
        Some(PairedDifference {
            pairs: n,
            mean,
            ci95,
            wins: count(|d| d > 0.0),
            losses: count(|d| d < 0.0),
            ties: count(|d| d == 0.0),
        })
    }

    /// Whether the interval excludes 0 (so the sign of the mean is supported
    /// at the 5 % level); false without an interval.
    pub fn significant(&self) -> bool {
        self.ci95.is_some_and(|(lo, hi)| lo > 0.0 || hi < 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, -1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn t_quantiles_match_the_tables() {
        // Exact values from any t table (e.g. NIST/SEMATECH e-Handbook 1.3.6.7.2).
        for (df, want) in [
            (1, 12.706),
            (2, 4.303),
            (4, 2.776),
            (30, 2.042),
            (40, 2.021),
            (60, 2.000),
            (120, 1.980),
        ] {
            assert!(
                (student_t_975(df) - want).abs() < 6e-4,
                "df {df}: {}",
                student_t_975(df)
            );
        }
        assert!((student_t_975(100_000) - 1.95996).abs() < 1e-4);
        // Decreasing in df, through the table's end.
        assert!((1..200).all(|df| student_t_975(df + 1) < student_t_975(df)));
    }

    #[test]
    fn paired_differences_with_known_numbers() {
        // Deltas 0.02, 0.04, 0.00: mean 0.02, s = 0.02, half-width 4.3027·0.02/√3.
        let pairs = [(0.92, 0.90), (0.85, 0.81), (0.70, 0.70)];
        let d = PairedDifference::of(&pairs, true).unwrap();
        let half = 4.3027 * 0.02 / 3f64.sqrt();
        assert_eq!(d.pairs, 3);
        assert!((d.mean - 0.02).abs() < 1e-12);
        let (lo, hi) = d.ci95.unwrap();
        assert!((lo - (0.02 - half)).abs() < 1e-9 && (hi - (0.02 + half)).abs() < 1e-9);
        assert_eq!((d.wins, d.losses, d.ties), (2, 0, 1));
        assert!(!d.significant(), "the interval straddles 0");
        // For an error metric the same deltas are losses.
        let e = PairedDifference::of(&pairs, false).unwrap();
        assert_eq!((e.wins, e.losses, e.ties), (0, 2, 1));
        // A consistent improvement is significant.
        let s = PairedDifference::of(&[(1.0, 0.5), (1.1, 0.5), (0.9, 0.5)], true).unwrap();
        assert!(s.significant());
        // One pair: a mean, no interval.
        let one = PairedDifference::of(&[(0.8, 0.7)], true).unwrap();
        assert_eq!(one.ci95, None);
        assert!((one.mean - 0.1).abs() < 1e-12);
        assert!(PairedDifference::of(&[], true).is_none());
    }
}
