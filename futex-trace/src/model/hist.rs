//! Log2 histograms of nanoseconds: how the model keeps latencies (the kernel keeps them the same way).

/// A log2 histogram of nanoseconds: bucket i counts values in [2^i, 2^(i+1)) (bucket 0 also holds 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log2Hist {
    pub buckets: [u64; 64],
    pub count: u64,
    pub sum: u64,
    pub max: u64,
}

impl Default for Log2Hist {
    fn default() -> Self {
        Log2Hist {
            buckets: [0; 64],
            count: 0,
            sum: 0,
            max: 0,
        }
    }
}

impl Log2Hist {
    pub fn record(&mut self, v: u64) {
        let i = 63 - (v | 1).leading_zeros() as usize;
        self.buckets[i] += 1;
        self.count += 1;
        self.sum = self.sum.saturating_add(v);
        self.max = self.max.max(v);
    }

    /// Adds `count` values that fell in slot `slot` (kernel sources histogram in the kernel), and the
    /// `sum` and `max` of a batch of them.
    pub fn add_slot(&mut self, slot: u8, count: u64, sum: u64, max: u64) {
        self.buckets[usize::from(slot).min(63)] += count;
        self.count += count;
        self.sum = self.sum.saturating_add(sum);
        self.max = self.max.max(max);
    }

    /// The value below which a fraction `p` (0..=1) of the samples fall, to log2 resolution: the upper
    /// bound of the bucket holding that rank (capped at the maximum seen). 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((p * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let upper = if i >= 63 {
                    u64::MAX
                } else {
                    (1u64 << (i + 1)) - 1
                };
                return upper.min(self.max);
            }
        }
        self.max
    }
}

impl Log2Hist {
    /// The values added since `earlier` (an earlier copy of this histogram): per-slot and count
    /// differences; the sum's difference; the maximum is this one's (a maximum has no difference).
    pub fn merge(&mut self, other: &Log2Hist) {
        for (b, o) in self.buckets.iter_mut().zip(&other.buckets) {
            *b += o;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    /// What was recorded after `earlier` (an older copy of this histogram).
    pub fn since(&self, earlier: &Log2Hist) -> Log2Hist {
        let mut d = Log2Hist {
            count: self.count.saturating_sub(earlier.count),
            sum: self.sum.saturating_sub(earlier.sum),
            max: self.max,
            ..Log2Hist::default()
        };
        for (b, (n, o)) in d
            .buckets
            .iter_mut()
            .zip(self.buckets.iter().zip(&earlier.buckets))
        {
            *b = n.saturating_sub(*o);
        }
        d
    }

    /// As [`Log2Hist::percentile`], but placed within its log2 bucket by rank (linearly, as if the
    /// bucket's values were spread evenly over it) instead of at the bucket's upper bound; capped at the
    /// maximum seen. Reads better than bucket edges (p50 = p90 = 262 µs) and is still an estimate.
    pub fn percentile_interpolated(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = (p * self.count as f64).clamp(1.0, self.count as f64);
        let mut seen = 0.0;
        for (i, &c) in self.buckets.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let c = c as f64;
            if seen + c >= rank {
                let lo = if i == 0 { 0.0 } else { (1u64 << i) as f64 };
                let hi = if i >= 63 {
                    u64::MAX as f64
                } else {
                    (1u64 << (i + 1)) as f64
                };
                let v = lo + (rank - seen) / c * (hi - lo);
                return (v as u64).min(self.max);
            }
            seen += c;
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_since_an_earlier_copy_holds_the_values_added_since() {
        let mut h = Log2Hist::default();
        h.record(100);
        let earlier = h.clone();
        h.record(100);
        h.record(5_000);
        let d = h.since(&earlier);
        assert_eq!((d.count, d.sum, d.max), (2, 5_100, 5_000));
        assert_eq!((d.buckets[6], d.buckets[12]), (1, 1));
        assert_eq!(d.buckets.iter().sum::<u64>(), 2);
    }

    #[test]
    fn interpolated_percentiles_lie_within_their_bucket_by_rank() {
        let mut h = Log2Hist::default();
        assert_eq!(h.percentile_interpolated(0.5), 0);
        // 100 values in [1024, 2048) and one of 10 000.
        for _ in 0..100 {
            h.record(1500);
        }
        h.record(10_000);
        let (p10, p50, p90) = (
            h.percentile_interpolated(0.1),
            h.percentile_interpolated(0.5),
            h.percentile_interpolated(0.9),
        );
        assert!((1024..2048).contains(&p10) && p10 < p50 && p50 < p90 && p90 < 2048);
        // Rank 50.5 of 100 in the bucket: about its middle.
        assert!((1500..1560).contains(&p50), "{p50}");
        assert_eq!(h.percentile_interpolated(1.0), 10_000, "capped at the max");
        assert_eq!(
            h.percentile(0.5),
            2047,
            "the bucket-edge figure is unchanged"
        );
    }

    #[test]
    fn log2_percentiles() {
        let mut h = Log2Hist::default();
        assert_eq!(h.percentile(0.5), 0);
        for v in [1u64, 2, 3, 1000, 1000, 1000, 1000, 1000, 1000, 1_000_000] {
            h.record(v);
        }
        assert_eq!(h.count, 10);
        // 1000 lies in [512, 1024): p50 is that bucket's upper bound.
        assert_eq!(h.percentile(0.5), 1023);
        assert_eq!(h.percentile(0.1), 1);
        assert_eq!(h.percentile(1.0), 1_000_000, "capped at the max");
        assert_eq!(h.max, 1_000_000);
    }
}
