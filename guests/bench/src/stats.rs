//! Sample statistics: min, average, 99th percentile and max of a set of counts.

/// What the guest reports for one benchmark. Values are counter ticks (or instructions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub count: usize,
    pub min: u64,
    /// The mean, rounded down.
    pub avg: u64,
    /// The nearest-rank 99th percentile: the smallest sample with at least 99 % of the
    /// samples at or below it.
    pub p99: u64,
    pub max: u64,
}

impl Summary {
    /// Sorts `samples` in place and summarises them; all zero for no samples.
    pub fn of(samples: &mut [u64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let count = samples.len();
        let sum: u128 = samples.iter().map(|&s| u128::from(s)).sum();
        // Nearest rank: ceil(0.99 * n), 1-based.
        let rank = (count * 99).div_ceil(100).max(1);
        Self {
            count,
            min: samples[0],
            avg: (sum / count as u128) as u64,
            p99: samples[rank - 1],
            max: samples[count - 1],
        }
    }
}

impl core::fmt::Display for Summary {
    /// `n=<count> min=<min> avg=<avg> p99=<p99> max=<max>`, as the report lines carry it.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "n={} min={} avg={} p99={} max={}", self.count, self.min, self.avg, self.p99, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_zero() {
        assert_eq!(Summary::of(&mut []), Summary::default());
    }

    #[test]
    fn one_sample() {
        let s = Summary::of(&mut [7]);
        assert_eq!(s, Summary { count: 1, min: 7, avg: 7, p99: 7, max: 7 });
    }

    #[test]
    fn hundred_samples_p99_is_the_99th() {
        let mut samples: Vec<u64> = (1..=100).rev().collect();
        let s = Summary::of(&mut samples);
        assert_eq!((s.min, s.avg, s.p99, s.max), (1, 50, 99, 100));
    }

    #[test]
    fn thousand_samples_with_outliers() {
        let mut samples = vec![10u64; 1000];
        for sample in samples.iter_mut().take(11) {
            *sample = 1000;
        }
        let s = Summary::of(&mut samples);
        assert_eq!((s.min, s.p99, s.max), (10, 1000, 1000));
        // Sorting happened in place; ten outliers in a thousand stay above the 99th percentile.
        let mut samples = vec![10u64; 1000];
        samples[..10].fill(1000);
        assert_eq!(Summary::of(&mut samples).p99, 10);
    }

    #[test]
    fn display_is_the_report_format() {
        let s = Summary { count: 2, min: 1, avg: 2, p99: 3, max: 4 };
        assert_eq!(s.to_string(), "n=2 min=1 avg=2 p99=3 max=4");
    }
}
