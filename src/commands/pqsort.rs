//! Redis's `pqsort` (src/pqsort.c: NetBSD's qsort, Bentley and McIlroy's
//! "Engineering a Sort Function", cut short to the ranges a LIMIT asks
//! for), as SORT ... BY ... LIMIT runs it. Elements that compare equal (an
//! ALPHA BY weight shared, or missing for both) come out in the order this
//! algorithm leaves them, which is not a stable sort's: to answer as Redis
//! does, ringkv runs the same steps. The algorithm is deterministic (no
//! random pivot): the pivot is the median of three (of nine above 40
//! elements), runs under 7 elements and partitions that swapped nothing
//! finish by insertion sort, and only the partitions overlapping the
//! requested range are sorted further.

use std::cmp::Ordering;

/// Sorts `v` far enough that positions `start..=end` hold what a full sort
/// would put there, moving elements as Redis's `pqsort(v, ..., start, end)`
/// does (`end` may be `start - 1`: an empty range).
pub fn pqsort<T>(v: &mut [T], cmp: &impl Fn(&T, &T) -> Ordering, start: i64, end: i64) {
    // pqsort.c compares byte addresses: element i spans bytes
    // [i * es, i * es + es - 1]. Two "bytes" per element keep the
    // comparisons exact, `end`'s last byte included.
    let range = Range { first: 2 * start, last: 2 * (end + 1) - 1 };
    sort_part(v, 0, v.len(), cmp, range);
}

/// The requested range in pqsort.c's byte units (`lrange`, `rrange`).
#[derive(Clone, Copy)]
struct Range {
    first: i64,
    last: i64,
}

impl Range {
    /// Whether the `n` elements from `a` hold some of the range (pqsort.c
    /// sorts a partition further only then).
    fn overlaps(self, a: usize, n: usize) -> bool {
        let (l, r) = (2 * a as i64, 2 * (a + n) as i64 - 1);
        !((self.first < l && self.last < l) || (self.first > r && self.last > r))
    }
}

/// The median of `v[i]`, `v[j]`, `v[k]` as pqsort.c's `med3` picks it.
fn med3<T>(v: &[T], i: usize, j: usize, k: usize, cmp: &impl Fn(&T, &T) -> Ordering) -> usize {
    if cmp(&v[i], &v[j]) == Ordering::Less {
        if cmp(&v[j], &v[k]) == Ordering::Less {
            j
        } else if cmp(&v[i], &v[k]) == Ordering::Less {
            k
        } else {
            i
        }
    } else if cmp(&v[j], &v[k]) == Ordering::Greater {
        j
    } else if cmp(&v[i], &v[k]) == Ordering::Less {
        i
    } else {
        k
    }
}

/// Insertion sort of the `n` elements from `a`, each moved down past the
/// greater ones before it.
fn insertion<T>(v: &mut [T], a: usize, n: usize, cmp: &impl Fn(&T, &T) -> Ordering) {
    for m in a + 1..a + n {
        let mut l = m;
        while l > a && cmp(&v[l - 1], &v[l]) == Ordering::Greater {
            v.swap(l, l - 1);
            l -= 1;
        }
    }
}

/// Swaps the `n` elements from `i` with the `n` from `j`, pairwise in order
/// (`vecswap`; the two runs never overlap).
fn swap_runs<T>(v: &mut [T], i: usize, j: usize, n: usize) {
    for k in 0..n {
        v.swap(i + k, j + k);
    }
}

/// `_pqsort` over the `n` elements from `a`.
fn sort_part<T>(v: &mut [T], mut a: usize, mut n: usize, cmp: &impl Fn(&T, &T) -> Ordering, range: Range) {
    loop {
        if n < 7 {
            return insertion(v, a, n, cmp);
        }
        let mut pm = a + n / 2;
        if n > 7 {
            let mut pl = a;
            let mut pn = a + n - 1;
            if n > 40 {
                let d = n / 8;
                pl = med3(v, pl, pl + d, pl + 2 * d, cmp);
                pm = med3(v, pm - d, pm, pm + d, cmp);
                pn = med3(v, pn - 2 * d, pn - d, pn, cmp);
            }
            pm = med3(v, pl, pm, pn, cmp);
        }
        // The pivot waits at `a`; elements equal to it gather at both ends
        // ([a+1, pa) and (pd, a+n)), the smaller after the first group, the
        // greater before the second.
        v.swap(a, pm);
        let mut swapped = false;
        let (mut pa, mut pb) = (a + 1, a + 1);
        let (mut pc, mut pd) = (a + n - 1, a + n - 1);
        loop {
            while pb <= pc {
                let c = cmp(&v[pb], &v[a]);
                if c == Ordering::Greater {
                    break;
                }
                if c == Ordering::Equal {
                    swapped = true;
                    v.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb <= pc {
                let c = cmp(&v[pc], &v[a]);
                if c == Ordering::Less {
                    break;
                }
                if c == Ordering::Equal {
                    swapped = true;
                    v.swap(pc, pd);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb > pc {
                break;
            }
            v.swap(pb, pc);
            swapped = true;
            pb += 1;
            pc -= 1;
        }
        if !swapped {
            // Nothing moved: pqsort.c takes it as nearly sorted.
            return insertion(v, a, n, cmp);
        }
        // The equal runs move to the middle.
        let pn = a + n;
        let r = (pa - a).min(pb - pa);
        swap_runs(v, a, pb - r, r);
        let r = (pd - pc).min(pn - pd - 1);
        swap_runs(v, pb, pn - r, r);
        // The smaller part recursively, the greater by iteration, each only
        // when it holds some of the range.
        let r = pb - pa;
        if r > 1 && range.overlaps(a, r) {
            sort_part(v, a, r, cmp, range);
        }
        let r = pd - pc;
        if r > 1 && range.overlaps(pn - r, r) {
            a = pn - r;
            n = r;
            continue;
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::keyspace::xorshift;

    /// Whatever the range, it holds what a full sort puts there.
    #[test]
    fn the_range_is_sorted_like_a_full_sort() {
        let mut rng = 0x9e3779b97f4a7c15u64;
        for len in [0usize, 1, 2, 6, 7, 8, 40, 41, 100, 333] {
            for _ in 0..20 {
                let v: Vec<u64> = (0..len).map(|_| xorshift(&mut rng) % (len as u64 / 3 + 1)).collect();
                let mut full = v.clone();
                full.sort();
                let start = if len == 0 { 0 } else { (xorshift(&mut rng) % len as u64) as usize };
                let end = (start + (xorshift(&mut rng) % 10) as usize).min(len.max(1) - 1);
                let mut got = v.clone();
                pqsort(&mut got, &|a: &u64, b: &u64| a.cmp(b), start as i64, end as i64);
                if len > 0 {
                    assert_eq!(got[start..=end], full[start..=end], "{v:?} {start}..={end}");
                }
                let mut all = got.clone();
                all.sort();
                assert_eq!(all, full, "a permutation");
            }
        }
    }

    /// Ties keep pqsort.c's order, not a stable sort's. The case is
    /// tests/corpus/sort.txt's `ties` list: 12 elements by weight (None: the
    /// BY key is missing, first), whose `SORT ties BY tw_* ALPHA LIMIT 0 3`
    /// redis-server 7.0.15 answers `t8 t1 t11` (a stable sort: t8 t0 t1).
    #[test]
    fn ties_come_out_in_pqsort_order() {
        let weights = [Some('a'), Some('a'), Some('c'), Some('b'), Some('b'), Some('b'), Some('a'), Some('a'), None, Some('a'), Some('a'), Some('a')];
        let cmp = |a: &(Option<char>, usize), b: &(Option<char>, usize)| a.0.cmp(&b.0);
        let mut v: Vec<(Option<char>, usize)> = weights.iter().copied().zip(0..).collect();
        pqsort(&mut v, &cmp, 0, 2);
        assert_eq!(v[..3].iter().map(|e| e.1).collect::<Vec<_>>(), [8, 1, 11]);
        let mut v: Vec<(Option<char>, usize)> = weights.iter().copied().zip(0..).collect();
        pqsort(&mut v, &cmp, 2, 6);
        assert_eq!(v[2..7].iter().map(|e| e.1).collect::<Vec<_>>(), [11, 7, 9, 10, 0]);
    }
}
