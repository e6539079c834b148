//! Client-tracking invalidations against replies across shards, while a
//! client blocks (`blocking::anyone_waits`: a hop's parts then send their
//! invalidations from their own shards, not from the coordinator) and while
//! none does.
//!
//! Redis's order: a write's invalidation is written to the tracking client
//! (or its REDIRECT target) when the write runs, so a reply that reflects
//! the write, or anything done after it, comes after the invalidation. A
//! tracking client that reads a key whose new value it sees must have been
//! told already that a key written before it changed: else it keeps a
//! stale cached value that nothing will invalidate again.
//!
//! The writes: an MSET over two shards (a hop, or held), a SET of each key
//! in turn, and a BLMOVE served across shards (held). The check: the
//! tracking client (RESP3, or its REDIRECT target by a PING after the
//! client read the new value) has every invalidation before the reply.

mod common;

use std::time::Duration;

use common::{clients_info_field, key_shard, wait_until, Conn, Resp, Server};

fn resp3(s: &Server) -> Conn {
    let mut c = s.conn();
    c.cmd(&["HELLO", "3"]);
    c
}

/// Reads frames until the reply (not a push); returns the keys the pushes
/// before it invalidated, and the reply.
fn pushes_then_reply(c: &mut Conn) -> (Vec<String>, Resp) {
    let mut keys = Vec::new();
    loop {
        match c.read() {
            Resp::Push(items) => {
                assert_eq!(items[0], Resp::bulk("invalidate"), "{items:?}");
                if let Resp::Array(list) = &items[1] {
                    keys.extend(list.iter().map(|k| String::from_utf8(k.opt_bytes().unwrap()).unwrap()));
                }
            }
            reply => return (keys, reply),
        }
    }
}

fn on(shards: usize, shard: usize, prefix: &str) -> String {
    (0..).map(|i| format!("{prefix}{i}")).find(|k| key_shard(k.as_bytes(), shards) == shard).unwrap()
}

fn check(shards: usize, blocked: bool, redirect: bool) {
    let s = Server::ringkv(&["--shards", &shards.to_string()]);
    let mut setup = s.conn();
    let mut waiter = s.conn();
    if blocked {
        waiter.send(&["BLPOP", "nothing-comes", "0"]);
        assert!(wait_until(Duration::from_secs(5), || clients_info_field(&mut setup, "blocked_clients") == 1));
    }
    let (k, j) = (on(shards, 0, "k"), on(shards, shards - 1, "j"));
    let (src, dst) = (on(shards, shards - 1, "src"), on(shards, 0, "dst"));
    let what = format!("{shards} shards, blocked {blocked}, redirect {redirect}");
    for round in 0..60 {
        // Fresh connections each round: they land on every shard.
        let mut target = resp3(&s);
        let mut c = if redirect {
            let id = target.cmd(&["CLIENT", "ID"]).int().to_string();
            let mut c = s.conn();
            assert_eq!(c.cmd(&["CLIENT", "TRACKING", "ON", "REDIRECT", &id]), Resp::ok());
            c
        } else {
            let mut c = resp3(&s);
            assert_eq!(c.cmd(&["CLIENT", "TRACKING", "ON"]), Resp::ok());
            c
        };
        let mut w = s.conn();
        let v = round.to_string();
        // Tracks k, then sees the new value of j written after k: k's
        // invalidation must be in before that reply (the target's: before
        // the PONG of a PING sent after it).
        let read_after = |c: &mut Conn, target: &mut Conn, tracked: &str, later: &str, step: &str| {
            let (before, _reply) = if redirect {
                c.cmd(&["GET", later]);
                target.send(&["PING"]);
                pushes_then_reply(target)
            } else {
                pushes_then_reply(c)
            };
            assert!(before.iter().any(|x| x == tracked), "{what}, round {round}, {step}: {tracked}'s invalidation not before the reply: {before:?}");
        };
        c.cmd(&["GET", &k]);
        assert_eq!(w.cmd(&["MSET", &k, &v, &j, &v]), Resp::ok());
        if !redirect {
            c.send(&["GET", &j]);
        }
        read_after(&mut c, &mut target, &k, &j, "MSET");
        c.cmd(&["GET", &k]);
        assert_eq!(w.cmd(&["SET", &k, "x"]), Resp::ok());
        assert_eq!(w.cmd(&["SET", &j, "x"]), Resp::ok());
        if !redirect {
            c.send(&["GET", &j]);
        }
        read_after(&mut c, &mut target, &k, &j, "SET, SET");
        // A BLMOVE served across shards: src's pop and dst's push; the
        // client tracks dst and reads src's new state.
        c.cmd(&["GET", &dst]);
        let mut b = s.conn();
        b.send(&["BLMOVE", &src, &dst, "LEFT", "RIGHT", "0"]);
        assert!(wait_until(Duration::from_secs(5), || clients_info_field(&mut setup, "blocked_clients") == 1 + blocked as i64));
        assert_eq!(w.cmd(&["RPUSH", &src, "e"]).int(), 1);
        assert_eq!(b.read().opt_bytes(), Some(b"e".to_vec()));
        if !redirect {
            c.send(&["EXISTS", &src]);
        }
        read_after(&mut c, &mut target, &dst, &src, "BLMOVE");
        assert_eq!(w.cmd(&["DEL", &dst]).int(), 1);
    }
}

#[test]
fn invalidations_come_before_later_replies_over_two_shards() {
    for redirect in [false, true] {
        check(2, false, redirect);
    }
}

#[test]
fn invalidations_come_before_later_replies_over_three_shards() {
    for redirect in [false, true] {
        check(3, false, redirect);
    }
}

#[test]
fn invalidations_come_before_later_replies_while_a_client_blocks() {
    for shards in [2, 3] {
        for redirect in [false, true] {
            check(shards, true, redirect);
        }
    }
}
