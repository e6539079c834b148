//! Two-round hops over disjoint keys pass each other ("Passing" in
//! `shard::hold`): many connections each moving their own values between
//! two shards (watched and plain MULTI/EXEC, MSET, RENAME, SMOVE), two of
//! them over the same keys, while readers look at every group's two keys at
//! once (MGET, a plain EXEC of GETs, a held EXEC) and one after the other. No reader may see half of an operation,
//! whatever ran ahead of whom. Runs against redis-server too
//! (`RINGKV_TEST_TARGET=redis`), where every command is atomic.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;

const GROUPS: usize = 8;

/// One key of each of `shards` shards per group, in shard order.
fn groups(shards: usize) -> Vec<Vec<String>> {
    let mut by_shard = vec![Vec::new(); shards];
    for i in 0.. {
        let k = format!("pass{i}");
        let list: &mut Vec<String> = &mut by_shard[key_shard(k.as_bytes(), shards)];
        if list.len() < GROUPS {
            list.push(k);
        }
        if by_shard.iter().all(|l| l.len() == GROUPS) {
            break;
        }
    }
    (0..GROUPS).map(|g| by_shard.iter().map(|l| l[g].clone()).collect()).collect()
}

fn int_of(r: &Resp) -> i64 {
    std::str::from_utf8(&r.opt_bytes().expect("a value")).unwrap().parse().unwrap()
}

/// Writers: one per group, a second one on group 0 (whose operations then
/// conflict and wait for each other); each sets its group's keys (one per
/// shard) to one increasing number by a plain EXEC, a watched EXEC or MSET,
/// renames a value between the first two shards and moves a set member.
/// Readers check that the keys always agree (MGET, EXEC), that a value seen
/// on one key is never followed by an older one on another (single-writer
/// groups), and that the renamed value and the member are on exactly one
/// side. Over two shards the two-round hops chain; over three the watched
/// EXEC keeps both rounds on every shard.
#[test]
fn disjoint_two_round_hops_pass_and_no_reader_sees_half() {
    check_passing(2);
}

#[test]
fn disjoint_two_round_hops_over_three_shards_pass_and_no_reader_sees_half() {
    check_passing(3);
}

fn check_passing(shards: usize) {
    let rk = Server::ringkv(&["--shards", &shards.to_string()]);
    let ringkv = rk.name() == "ringkv";
    let groups = groups(shards);
    let mut setup = rk.conn();
    if ringkv {
        // Every multi-shard command goes by hops, each remote part a little
        // late: parts of many operations are pending at once.
        assert_eq!(setup.cmd(&["CONFIG", "SET", "hop-part-delay", "200"]), Resp::ok());
    }
    for keys in &groups {
        let (x, mut mset) = (&keys[0], vec!["MSET"]);
        keys.iter().for_each(|k| mset.extend([k.as_str(), "0"]));
        assert_eq!(setup.cmd(&mset), Resp::ok());
        assert_eq!(setup.cmd(&["SET", &format!("{{{x}}}:r"), "v"]), Resp::ok());
        assert_eq!(setup.cmd(&["SADD", &format!("{{{x}}}:s"), "m"]).int(), 1);
    }
    let running = AtomicUsize::new(GROUPS + 1);
    let writes = AtomicUsize::new(0);
    let reads = AtomicUsize::new(0);
    let deadline = Instant::now() + Duration::from_millis(2500);
    std::thread::scope(|s| {
        for w in 0..=GROUPS {
            let g = w % GROUPS;
            let keys = &groups[g];
            let (x, y) = (&keys[0], &keys[1]);
            let (rx, ry) = (format!("{{{x}}}:r"), format!("{{{y}}}:r"));
            let (sx, sy) = (format!("{{{x}}}:s"), format!("{{{y}}}:s"));
            let mut c = rk.conn();
            let (running, writes) = (&running, &writes);
            s.spawn(move || {
                let shared = g == 0;
                let mut i: i64 = if w == GROUPS { 1_000_000_000 } else { 0 };
                while Instant::now() < deadline {
                    i += 1;
                    let v = i.to_string();
                    let all_ok = format!("*{}\r\n{}", keys.len(), "+OK\r\n".repeat(keys.len())).into_bytes();
                    match i % 3 {
                        0 => {
                            assert_eq!(c.cmd(&["MULTI"]), Resp::ok());
                            keys.iter().for_each(|k| assert_eq!(c.cmd_raw(&["SET", k, &v]), b"+QUEUED\r\n"));
                            assert_eq!(c.cmd_raw(&["EXEC"]), all_ok);
                        }
                        1 => {
                            let mut watch = vec!["WATCH"];
                            watch.extend(keys.iter().map(|k| k.as_str()));
                            assert_eq!(c.cmd(&watch), Resp::ok());
                            assert_eq!(c.cmd(&["MULTI"]), Resp::ok());
                            keys.iter().for_each(|k| assert_eq!(c.cmd_raw(&["SET", k, &v]), b"+QUEUED\r\n"));
                            let r = c.cmd_raw(&["EXEC"]);
                            // Only group 0's two writers can touch a watched key.
                            assert!(r == all_ok || (shared && r == b"*-1\r\n"), "{}", escape(&r, 100));
                        }
                        _ => {
                            let mut mset = vec!["MSET"];
                            keys.iter().for_each(|k| mset.extend([k.as_str(), v.as_str()]));
                            assert_eq!(c.cmd(&mset), Resp::ok());
                        }
                    }
                    let (from, to) = if i % 2 == 1 { (&rx, &ry) } else { (&ry, &rx) };
                    let r = c.cmd_raw(&["RENAME", from, to]);
                    assert!(r == b"+OK\r\n" || r == b"-ERR no such key\r\n", "{}", escape(&r, 100));
                    assert!(shared || r == b"+OK\r\n", "RENAME of its own value: {}", escape(&r, 100));
                    let (from, to) = if i % 2 == 1 { (&sx, &sy) } else { (&sy, &sx) };
                    let r = c.cmd_raw(&["SMOVE", from, to, "m"]);
                    assert!(r == b":1\r\n" || (shared && r == b":0\r\n"), "SMOVE: {}", escape(&r, 100));
                    writes.fetch_add(1, Ordering::Relaxed);
                }
                running.fetch_sub(1, Ordering::Relaxed);
            });
        }
        for t in 0..3 {
            let mut c = rk.conn();
            let (groups, running, reads) = (&groups, &running, &reads);
            s.spawn(move || {
                let mut n = t;
                // Until the deadline and then until every writer is done.
                while Instant::now() < deadline || running.load(Ordering::Relaxed) > 0 {
                    n += 1;
                    let g = n % GROUPS;
                    let keys = &groups[g];
                    let (x, y, last) = (&keys[0], &keys[1], keys.len() - 1);
                    let mut mget = vec!["MGET"];
                    mget.extend(keys.iter().map(|k| k.as_str()));
                    let r = c.cmd(&mget);
                    assert!(r.array().iter().all(|v| *v == r.array()[0]), "MGET saw half of a write of group {g}: {r:?}");
                    // A plain EXEC of single-key reads (by a one-round hop,
                    // which passes others as the writers' plain EXECs do).
                    assert_eq!(c.cmd(&["MULTI"]), Resp::ok());
                    keys.iter().for_each(|k| assert_eq!(c.cmd_raw(&["GET", k]), b"+QUEUED\r\n"));
                    let r = c.cmd(&["EXEC"]);
                    assert!(r.array().iter().all(|v| *v == r.array()[0]), "a plain EXEC saw half of a write of group {g}: {r:?}");
                    assert_eq!(c.cmd(&["MULTI"]), Resp::ok());
                    keys.iter().for_each(|k| assert_eq!(c.cmd_raw(&["GET", k]), b"+QUEUED\r\n"));
                    c.cmd(&["EXISTS", &format!("{{{x}}}:r"), &format!("{{{y}}}:r")]);
                    c.cmd(&["SISMEMBER", &format!("{{{x}}}:s"), "m"]);
                    c.cmd(&["SISMEMBER", &format!("{{{y}}}:s"), "m"]);
                    let r = c.cmd(&["EXEC"]);
                    let (values, a) = r.array().split_at(keys.len());
                    assert!(values.iter().all(|v| *v == values[0]), "EXEC saw half of a write of group {g}: {r:?}");
                    assert_eq!(a[0].int(), 1, "EXEC saw a RENAME of group {g} half done: {r:?}");
                    assert_eq!(a[1].int() + a[2].int(), 1, "EXEC saw an SMOVE of group {g} half done: {r:?}");
                    if g != 0 {
                        // One writer: its numbers only grow, so the second
                        // key read is never older than the first.
                        let (first, second) = if n % 2 == 0 { (x, &keys[last]) } else { (&keys[last], x) };
                        let seen = int_of(&c.cmd(&["GET", first]));
                        let then = int_of(&c.cmd(&["GET", second]));
                        assert!(then >= seen, "group {g}: {first} was {seen}, then {second} still {then}");
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    assert!(writes.into_inner() >= 40, "too few writes to tell");
    assert!(reads.into_inner() >= 20, "too few reads to tell");
    // Each group ends whole.
    for keys in &groups {
        let (x, y) = (&keys[0], &keys[1]);
        let mut mget = vec!["MGET"];
        mget.extend(keys.iter().map(|k| k.as_str()));
        let r = setup.cmd(&mget);
        assert!(r.array().iter().all(|v| *v == r.array()[0]));
        assert_eq!(setup.cmd(&["EXISTS", &format!("{{{x}}}:r"), &format!("{{{y}}}:r")]).int(), 1);
    }
}
