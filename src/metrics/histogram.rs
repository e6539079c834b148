//! The per-command latency histogram behind INFO latencystats and LATENCY
//! HISTOGRAM, laid out exactly as Redis 7.0's: an HdrHistogram of
//! nanoseconds from 1 to 1e9 with 2 significant digits (`hdr_init(1,
//! 1000000000, 2)` in server.c), fed `usec * 1000` clamped into that range.
//! Being the same layout, it reports the same numbers: a percentile is the
//! highest value equivalent to its bucket (`p50=1.003` for 1 usec) and
//! LATENCY HISTOGRAM's buckets are at the same `1024 * 2^k` ns levels
//! (1, 2, 4, 8, 16, 33, 66, 132 ... usec).
//!
//! 256 sub-buckets (2 significant digits), of which every bucket but the
//! first uses the upper 128; 23 buckets cover 1e9: 3072 counters of u32,
//! 12 KiB, allocated only for commands that ran on the shard (Redis keeps
//! one of 24 KiB per command). Recording is a leading-zero count and two
//! shifts.

/// `LATENCY_HISTOGRAM_MIN_VALUE` / `MAX_VALUE` of Redis's server.h (ns).
pub const VALUE_MIN_NS: u64 = 1;
pub const VALUE_MAX_NS: u64 = 1_000_000_000;
/// log2 of the sub-bucket count (256 for 2 significant digits).
const SUB_BUCKET_BITS: u32 = 8;
const SUB_BUCKET_HALF: usize = 1 << (SUB_BUCKET_BITS - 1);
/// Buckets until `256 << (n - 1)` exceeds 1e9.
const BUCKET_COUNT: usize = 23;
pub const COUNTS_LEN: usize = (BUCKET_COUNT + 1) * SUB_BUCKET_HALF;
/// LATENCY HISTOGRAM's first reporting level and its factor (`hdr_iter_log_init(&iter, h, 1024, 2)`).
const LOG_FIRST_LEVEL_NS: u64 = 1024;

#[derive(Clone)]
pub struct LatencyHistogram {
    pub counts: Box<[u32; COUNTS_LEN]>,
    pub total: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram { counts: Box::new([0; COUNTS_LEN]), total: 0 }
    }
}

/// (bucket, sub-bucket) of a value in ns, as HdrHistogram finds them.
#[inline]
fn bucket_of(ns: u64) -> (u32, u64) {
    let bits = 64 - (ns | ((1 << SUB_BUCKET_BITS) - 1)).leading_zeros();
    let bucket = bits - SUB_BUCKET_BITS;
    (bucket, ns >> bucket)
}

/// The counter of a 0 usec command (`recorded_ns(0)` is `VALUE_MIN_NS`).
const ZERO_USEC_INDEX: usize = 1;

#[inline]
fn index_of(ns: u64) -> usize {
    let (bucket, sub) = bucket_of(ns);
    (((bucket as usize) + 1) << (SUB_BUCKET_BITS - 1)) + sub as usize - SUB_BUCKET_HALF
}

/// The lowest value of counter `index` (HdrHistogram's `hdr_value_at_index`).
fn value_at_index(index: usize) -> u64 {
    let mut bucket = (index >> (SUB_BUCKET_BITS - 1)) as i64 - 1;
    let mut sub = (index & (SUB_BUCKET_HALF - 1)) + SUB_BUCKET_HALF;
    if bucket < 0 {
        sub -= SUB_BUCKET_HALF;
        bucket = 0;
    }
    (sub as u64) << bucket
}

/// The highest value equivalent to `ns` (same counter).
pub fn highest_equivalent(ns: u64) -> u64 {
    let (bucket, sub) = bucket_of(ns);
    (sub << bucket) + (1u64 << bucket) - 1
}

/// A command's duration as Redis records it: microseconds to ns, clamped.
#[inline]
fn recorded_ns(usec: u64) -> u64 {
    usec.saturating_mul(1000).clamp(VALUE_MIN_NS, VALUE_MAX_NS)
}

impl LatencyHistogram {
    #[inline]
    pub fn record(&mut self, usec: u64) {
        // Under a microsecond (most commands of a pipelined batch): 0 usec
        // clamps to 1 ns, whose counter is known without the arithmetic.
        let i = if usec == 0 { ZERO_USEC_INDEX } else { index_of(recorded_ns(usec)) };
        self.counts[i] = self.counts[i].saturating_add(1);
        self.total += 1;
    }

    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
        self.total += other.total;
    }

    /// The value at percentile `p` (0..=100) in ns, as `hdr_value_at_percentile`:
    /// the highest value equivalent to the counter where the running count
    /// reaches `round(p% of total)` (at least 1); for p = 0 the lowest value
    /// of that counter instead. 0 when empty.
    pub fn value_at_percentile_ns(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let p = p.min(100.0);
        let target = (((p / 100.0) * self.total as f64) + 0.5) as u64;
        let target = target.max(1);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c as u64;
            if seen >= target {
                return if p == 0.0 { value_at_index(i) } else { highest_equivalent(value_at_index(i)) };
            }
        }
        0
    }

    /// LATENCY HISTOGRAM's `histogram_usec` pairs (Redis's fillCommandCDF):
    /// at each level `1024 * 2^k` ns, the level's highest equivalent value in
    /// whole usec and the number of calls at or below it; a level is listed
    /// only when that number grew, and the walk stops at the level that
    /// holds the last call. As in Redis, the walk also ends at the first
    /// level past the last counter (2^30 ns): calls of 541 ms and more (the
    /// 1 s clamp included) are counted in `calls` but in no bucket.
    pub fn cumulative_usec(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        if self.total == 0 {
            return out;
        }
        let (mut level, mut next_index, mut cumulative, mut previous) = (LOG_FIRST_LEVEL_NS, 0usize, 0u64, 0u64);
        loop {
            let level_index = index_of(level);
            if level_index >= COUNTS_LEN {
                return out;
            }
            while next_index <= level_index {
                cumulative += self.counts[next_index] as u64;
                next_index += 1;
            }
            if cumulative > previous {
                out.push((highest_equivalent(level) / 1000, cumulative));
            }
            previous = cumulative;
            if cumulative >= self.total {
                return out;
            }
            level *= 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_redis_hdr_init_1_1e9_2() {
        // hdr_init(1, 1e9, 2): sub_bucket_count 256, bucket_count 23, counts_len 3072.
        assert_eq!(COUNTS_LEN, 3072);
        const { assert!(256u64 << (BUCKET_COUNT - 1) > VALUE_MAX_NS) };
        const { assert!(256u64 << (BUCKET_COUNT - 2) <= VALUE_MAX_NS) };
        assert!(index_of(VALUE_MAX_NS) < COUNTS_LEN);
        // `record`'s shortcut for 0 usec is the counter the arithmetic finds.
        assert_eq!(ZERO_USEC_INDEX, index_of(recorded_ns(0)));
        // Counters are ordered and each value lies within its counter's range.
        let mut last = 0;
        for v in [1u64, 255, 256, 511, 512, 1000, 1024, 1031, 1032, 123_456, 999_999_999, VALUE_MAX_NS] {
            let i = index_of(v);
            assert!(i >= last);
            last = i;
            assert!(value_at_index(i) <= v && v <= highest_equivalent(v), "{v}");
            assert_eq!(highest_equivalent(value_at_index(i)), highest_equivalent(v));
        }
    }

    #[test]
    fn percentiles_as_redis_reports_them() {
        // redis-server 7.0.15 reports p50=1.003 for commands of 1 usec and
        // p50=0.001 for those under 1 usec (recorded as 1 ns).
        let mut h = LatencyHistogram::default();
        h.record(1);
        assert_eq!(h.value_at_percentile_ns(50.0), 1003);
        // p0 is the counter's lowest value (7.0.15: p0=6.976,p50=7.007 for 7 usec).
        let mut seven = LatencyHistogram::default();
        seven.record(7);
        assert_eq!((seven.value_at_percentile_ns(0.0), seven.value_at_percentile_ns(50.0)), (6976, 7007));
        let mut z = LatencyHistogram::default();
        z.record(0);
        assert_eq!(z.value_at_percentile_ns(99.9), 1);
        let mut m = LatencyHistogram::default();
        for v in 1..=100u64 {
            m.record(v);
        }
        // count_at_percentile = round(0.5 * 100) = 50 -> 50 usec = 50000 ns,
        // whose counter (bucket 8, 256 ns wide) ends at 50175.
        assert_eq!(m.value_at_percentile_ns(50.0), 50175);
        assert_eq!(m.value_at_percentile_ns(100.0), highest_equivalent(100_000));
        let mut sum = LatencyHistogram::default();
        sum.merge(&m);
        sum.merge(&h);
        assert_eq!(sum.total, 101);
    }

    #[test]
    fn cumulative_levels_are_redis_histogram_usec() {
        let mut h = LatencyHistogram::default();
        assert!(h.cumulative_usec().is_empty());
        for usec in [0u64, 1, 1, 3, 40, 5000, 2_000_000] {
            h.record(usec);
        }
        // Levels 1024*2^k ns -> 1, 2, 4, 8, 16, 33, 66, ... 4227, 8454, ...,
        // 541065 usec; the 2 s call (clamped to 1 s) is past the last counter.
        assert_eq!(h.cumulative_usec(), vec![(1, 3), (4, 4), (66, 5), (8454, 6)]);
        let mut top = LatencyHistogram::default();
        top.record(500_000);
        assert_eq!(top.cumulative_usec(), vec![(541065, 1)]);
    }
}
