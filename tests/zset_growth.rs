//! The worst single insert while a sorted set grows to 1M members, in CPU
//! time of the inserting thread (`common::timing`). Before the member table
//! grew incrementally (`types/open_table.rs`) one insert rehashed the whole
//! table at each doubling.
//!
//! `cargo test --release --test zset_growth -- --ignored --nocapture`

mod common;

use common::timing::worst_of;
use ringkv::types::zset_tree::SortedSet;

// The server's allocator: a big `Vec`'s growth costs what it costs there
// (glibc would move it with mremap).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[test]
#[ignore = "a release-build measurement: cargo test --release --test zset_growth -- --ignored --nocapture"]
fn worst_insert_growing_to_1m() {
    let n = 1_000_000u64;
    let mut z = SortedSet::new();
    let mut state = 0x2545F4914F6CDD1Du64;
    let mut member = String::new();
    worst_of("zset insert", n, |i| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        member.clear();
        std::fmt::Write::write_fmt(&mut member, format_args!("member:{}", i)).expect("a String takes it");
        let score = (state >> 11) as f64 / (1u64 << 53) as f64 * 1e6;
        z.insert(member.as_bytes(), score);
    });
    assert_eq!(z.len(), n as usize);
}
