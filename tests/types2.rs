//! The big encodings of `ringkv::types` against a real redis-server 7.0:
//! a quicklist must split a list into the same listpack nodes as Redis
//! after the same commands (DUMP writes one listpack per node, so the node
//! layout is part of the payload), and the sorted set's ranks and ranges
//! must be Redis's replies for the same members and scores.

mod common;

use common::dump::dump_list;
use common::{Conn, Resp, Server};
use ringkv::types::listpack::Where;
use ringkv::types::quicklist::Quicklist;

/// A small deterministic generator (xorshift64*): the tests replay the
/// same operations on both sides, so no external randomness is needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Elements of every listpack encoding and size class: small and wide
/// integers (stored as integers), short strings, and long strings that
/// push nodes over their byte limits.
fn element(r: &mut Rng) -> Vec<u8> {
    match r.below(10) {
        0..=2 => r.below(40).to_string().into_bytes(),
        3 => (r.next() as i64).to_string().into_bytes(),
        4..=6 => format!("v{}", r.below(30)).into_bytes(),
        7 | 8 => vec![b'a' + r.below(26) as u8; 20 + r.below(200) as usize],
        _ => vec![b'x'; 500 + r.below(5000) as usize],
    }
}

/// A command of byte-string arguments.
fn cmdv(c: &mut Conn, args: &[&[u8]]) -> Resp {
    c.cmd(args)
}

fn ours_nodes(q: &Quicklist) -> Vec<Vec<u8>> {
    q.nodes().map(|lp| lp.as_bytes().to_vec()).collect()
}

fn check_same(c: &mut Conn, q: &Quicklist, step: usize, op: &str) {
    let redis_nodes = if q.is_empty() {
        assert_eq!(c.cmd(&["EXISTS", "l"]), Resp::Int(0), "step {}: {} emptied ours only", step, op);
        vec![]
    } else {
        dump_list(c, "l")
    };
    let ours = ours_nodes(q);
    if ours != redis_nodes {
        let sizes = |n: &[Vec<u8>]| n.iter().map(|b| b.len()).collect::<Vec<_>>();
        panic!(
            "step {} ({}): node layout differs: redis {} nodes {:?}, ours {} nodes {:?}",
            step,
            op,
            redis_nodes.len(),
            sizes(&redis_nodes),
            ours.len(),
            sizes(&ours)
        );
    }
}

/// Runs `steps` random list commands on redis-server (with the given
/// `list-max-listpack-size`) and on a `Quicklist`, comparing the DUMP
/// node blobs with ours after every command.
fn quicklist_matches_redis(fill: i32, steps: usize, seed: u64) {
    let fill_text = fill.to_string();
    let server = Server::redis(&["--list-max-listpack-size", &fill_text]);
    let mut c = server.conn();
    let mut q = Quicklist::new(fill);
    let mut r = Rng(seed);
    for step in 0..steps {
        let len = q.len() as i64;
        // Grow while short, so the node logic sees long lists too.
        let pick = if len < 50 { r.below(4) } else { r.below(14) };
        let op;
        match pick {
            0 | 1 => {
                let v = element(&mut r);
                let left = r.below(2) == 0;
                op = if left { "LPUSH" } else { "RPUSH" };
                c.cmd(&[op.as_bytes(), b"l", &v]);
                if left {
                    q.push_head(&v)
                } else {
                    q.push_tail(&v)
                }
            }
            2..=4 if len > 0 => {
                let v = element(&mut r);
                let pos = r.below(len as u64) as usize;
                let pivot = q.get(pos as i64).unwrap().to_vec();
                let before = r.below(2) == 0;
                op = "LINSERT";
                let side: &[u8] = if before { b"BEFORE" } else { b"AFTER" };
                let n = cmdv(&mut c, &[b"LINSERT", b"l", side, &pivot, &v]).int();
                let first = q.position(&pivot).unwrap();
                q.insert(first, if before { Where::Before } else { Where::After }, &v);
                assert_eq!(n, q.len() as i64, "step {}: LINSERT length", step);
            }
            5 | 6 if len > 0 => {
                let left = r.below(2) == 0;
                op = if left { "LPOP" } else { "RPOP" };
                let got = c.cmd(&[op, "l"]).opt_bytes();
                let ours = if left { q.pop_head() } else { q.pop_tail() };
                assert_eq!(got, ours, "step {}: {}", step, op);
            }
            7 if len > 0 => {
                let v = if r.below(4) == 0 { vec![b'y'; 300 + r.below(3000) as usize] } else { element(&mut r) };
                let index = r.below(len as u64) as i64 - if r.below(2) == 0 { len } else { 0 };
                op = "LSET";
                assert_eq!(cmdv(&mut c, &[b"LSET", b"l", index.to_string().as_bytes(), &v]), Resp::ok());
                assert!(q.set(index, &v));
            }
            8 if len > 0 => {
                let pos = r.below(len as u64) as i64;
                let v = q.get(pos).unwrap().to_vec();
                let count = r.below(5) as i64 - 2;
                op = "LREM";
                let n = cmdv(&mut c, &[b"LREM", b"l", count.to_string().as_bytes(), &v]).int();
                assert_eq!(n as usize, q.remove(&v, count), "step {}: LREM count", step);
            }
            9 if len > 0 && r.below(4) == 0 => {
                let start = r.below(4) as i64;
                let stop = -1 - r.below(4) as i64;
                op = "LTRIM";
                c.cmd(&["LTRIM", "l", &start.to_string(), &stop.to_string()]);
                q.trim(start, stop);
            }
            _ => {
                let v = element(&mut r);
                op = "RPUSH";
                cmdv(&mut c, &[b"RPUSH", b"l", &v]);
                q.push_tail(&v);
            }
        }
        check_same(&mut c, &q, step, op);
    }
    // Reading back: every element and both directions.
    let all: Vec<Vec<u8>> = q.iter().map(|e| e.to_vec()).collect();
    let redis_all: Vec<Vec<u8>> = c.cmd(&["LRANGE", "l", "0", "-1"]).array().iter().map(|x| x.opt_bytes().unwrap()).collect();
    assert_eq!(all, redis_all);
    let mut back: Vec<Vec<u8>> = q.iter().rev().map(|e| e.to_vec()).collect();
    back.reverse();
    assert_eq!(back, all);
}

#[test]
fn quicklist_nodes_match_redis_at_8k_nodes() {
    quicklist_matches_redis(-2, 3000, 0x9E37_79B9_7F4A_7C15);
}

#[test]
fn quicklist_nodes_match_redis_at_4_per_node() {
    quicklist_matches_redis(4, 3000, 0xD1B5_4A32_D192_ED03);
}

#[test]
fn quicklist_nodes_match_redis_at_4k_and_1_per_node() {
    quicklist_matches_redis(-1, 1500, 7);
    quicklist_matches_redis(1, 800, 11);
}
