//! A small fixed log-linear latency histogram, one per command id, so that
//! INFO latencystats reports real percentiles the way Redis 7.0 does.
//!
//! Values (microseconds) below 16 have a bucket each; above, every power of
//! two is cut into 16 linear sub-buckets, so a reported percentile is within
//! 1/16 (~6%) of the true value. 16 + 16 * 44 buckets of u32 is 2.8 KiB, and
//! it is allocated only for commands that were called on the shard.

const SUB_BUCKET_BITS: u32 = 4;
const SUB_BUCKETS: usize = 1 << SUB_BUCKET_BITS;
/// Powers of two covered above the linear range: up to 2^48 usec (~9 years).
const MAGNITUDES: usize = 44;
pub const BUCKETS: usize = SUB_BUCKETS + SUB_BUCKETS * MAGNITUDES;

#[derive(Clone)]
pub struct LatencyHistogram {
    pub counts: Box<[u32; BUCKETS]>,
    pub total: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram { counts: Box::new([0; BUCKETS]), total: 0 }
    }
}

#[inline]
fn bucket_of(usec: u64) -> usize {
    if usec < SUB_BUCKETS as u64 {
        return usec as usize;
    }
    let magnitude = 63 - usec.leading_zeros(); // >= SUB_BUCKET_BITS
    let shift = magnitude - SUB_BUCKET_BITS;
    let sub = ((usec >> shift) as usize) & (SUB_BUCKETS - 1);
    let index = SUB_BUCKETS + (shift as usize) * SUB_BUCKETS + sub;
    index.min(BUCKETS - 1)
}

/// The highest value that falls in bucket `index` (what a percentile reports,
/// as HdrHistogram's highest-equivalent value).
fn bucket_high(index: usize) -> u64 {
    if index < SUB_BUCKETS {
        return index as u64;
    }
    let shift = ((index - SUB_BUCKETS) / SUB_BUCKETS) as u32;
    let sub = ((index - SUB_BUCKETS) % SUB_BUCKETS) as u64;
    (((SUB_BUCKETS as u64 + sub) + 1) << shift) - 1
}

impl LatencyHistogram {
    #[inline]
    pub fn record(&mut self, usec: u64) {
        let b = bucket_of(usec);
        self.counts[b] = self.counts[b].saturating_add(1);
        self.total += 1;
    }

    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
        self.total += other.total;
    }

    /// The value at percentile `p` (0..=100), in microseconds.
    pub fn value_at_percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let target = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c as u64;
            if seen >= target {
                return bucket_high(i);
            }
        }
        bucket_high(BUCKETS - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn buckets_are_ordered_and_tight() {
        let mut last = 0;
        for v in [0u64, 1, 15, 16, 17, 31, 32, 33, 100, 1000, 123_456, 10_000_000] {
            let b = bucket_of(v);
            assert!(b >= last);
            last = b;
            let high = bucket_high(b);
            assert!(high >= v && (high - v) as f64 <= v as f64 / 16.0 + 1.0, "{} -> {}", v, high);
        }
    }
    #[test]
    fn percentiles() {
        let mut h = LatencyHistogram::default();
        for v in 1..=100u64 {
            h.record(v);
        }
        assert_eq!(h.value_at_percentile(50.0), 51);
        assert!(h.value_at_percentile(99.0) >= 99);
        assert!(h.value_at_percentile(100.0) >= 100);
        let mut m = LatencyHistogram::default();
        m.merge(&h);
        assert_eq!(m.total, 100);
    }
}
