//! DEBUG HTSTATS-KEY's figures for the open-addressing tables of big sets,
//! hashes and sorted sets (`member_index`, `id_table`), in the terms of
//! Redis's chained dict (`dictGetStatsHt`): a member's *chain* is its home
//! bucket, the bucket its hash names and its probe starts from. A chained
//! table of the same size and hash would hold exactly those members in that
//! slot, so "different slots" and "max chain length" mean what they mean in
//! Redis; where the member actually sits (a few buckets on) is not shown.

/// Chain lengths of one table: `chains[b]` members have home bucket `b`.
pub struct TableStats {
    chains: Vec<u32>,
    used: usize,
}

/// Redis's `DICT_STATS_VECTLEN`: chains of this length or more share the
/// distribution's last line.
const CHAIN_LENGTHS_SHOWN: usize = 50;

impl TableStats {
    /// A table of `size` buckets (a power of two) holding members whose
    /// hashes give the home buckets `homes` (already masked).
    pub fn from_homes(size: usize, homes: impl Iterator<Item = usize>) -> TableStats {
        let mut chains = vec![0u32; size];
        let mut used = 0;
        for h in homes {
            chains[h] += 1;
            used += 1;
        }
        TableStats { chains, used }
    }

    /// Appends `dictGetStatsHt`'s text for table `index` (0: the main
    /// table, 1: the rehashing target).
    pub fn write(&self, index: usize, out: &mut String) {
        use std::fmt::Write;
        let name = if index == 0 { "main hash table" } else { "rehashing target" };
        if self.used == 0 {
            // Redis 7.0.15 names the empty table too (a resize that has
            // moved nothing yet shows its target so: unit/type/set's
            // "long chain" test waits for it).
            let _ = write!(out, "Hash table {} stats ({}):\nNo stats available for empty dictionaries\n", index, name);
            return;
        }
        let mut lengths = [0usize; CHAIN_LENGTHS_SHOWN];
        let (mut slots, mut max_chain) = (0usize, 0usize);
        for &c in &self.chains {
            let c = c as usize;
            lengths[c.min(CHAIN_LENGTHS_SHOWN - 1)] += 1;
            if c > 0 {
                slots += 1;
                max_chain = max_chain.max(c);
            }
        }
        let size = self.chains.len();
        let avg = self.used as f32 / slots as f32;
        let _ = write!(
            out,
            "Hash table {} stats ({}):\n table size: {}\n number of elements: {}\n different slots: {}\n max chain length: {}\n avg chain length (counted): {:.2}\n avg chain length (computed): {:.2}\n Chain length distribution:\n",
            index,
            name,
            size,
            self.used,
            slots,
            max_chain,
            avg,
            avg
        );
        for (len, &n) in lengths.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let at_least = if len == CHAIN_LENGTHS_SHOWN - 1 { ">= " } else { "" };
            let _ = writeln!(out, "   {}{}: {} ({:.2}%)", at_least, len, n, n as f32 / size as f32 * 100.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_counted_by_home_bucket() {
        let s = TableStats::from_homes(8, [1, 1, 1, 4].into_iter());
        let mut out = String::new();
        s.write(0, &mut out);
        assert_eq!(
            out,
            "Hash table 0 stats (main hash table):\n table size: 8\n number of elements: 4\n different slots: 2\n max chain length: 3\n \
             avg chain length (counted): 2.00\n avg chain length (computed): 2.00\n Chain length distribution:\n   \
             0: 6 (75.00%)\n   1: 1 (12.50%)\n   3: 1 (12.50%)\n"
        );
        let mut empty = String::new();
        TableStats::from_homes(0, std::iter::empty()).write(0, &mut empty);
        assert_eq!(empty, "Hash table 0 stats (main hash table):\nNo stats available for empty dictionaries\n");
        let mut target = String::new();
        TableStats::from_homes(8, std::iter::empty()).write(1, &mut target);
        assert_eq!(target, "Hash table 1 stats (rehashing target):\nNo stats available for empty dictionaries\n");
    }
}
