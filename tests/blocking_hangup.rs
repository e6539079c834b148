//! A blocked client that hangs up is never served (`--shards 2`): an
//! element pushed once INFO's `blocked_clients` no longer counts the client
//! stays in the list, or goes to the next live waiter, for every blocking
//! pop (BLPOP, BLMOVE, BRPOPLPUSH, BZPOPMIN, BZMPOP). Redis frees a client
//! that hung up before it serves anyone else; here the client's home thread
//! may read the EOF after the key's owner, on another thread, has run the
//! push, so the owner tells a waiter whose peer hung up apart itself
//! (`network::blocking::serve_one`). Rounds repeat the race; before the fix
//! every run lost elements within a few rounds.
//!
//! A push sent right after the close, without waiting for INFO, is not
//! asserted on: redis-server 7.0.15 pops for the dead client now and then
//! there, and even a server that polls the socket cannot see a FIN the
//! kernel has not processed yet (under load, a packet sent later from
//! another CPU can reach the server first: seen here at load 13 on two
//! cores).
//!
//! Every test also passes against redis-server (`RINGKV_TEST_TARGET=redis`).

mod common;

use common::{wait_blocked, Conn, Resp, Server};

const SHARDS: usize = 2;
/// Waiters that hang up per round, per key.
const DEAD: usize = 4;
const ROUNDS: usize = 25;

fn server() -> Server {
    Server::ringkv(&["--shards", &SHARDS.to_string()])
}

fn keys(prefix: &str) -> Vec<String> {
    common::keys_per_shard(prefix, SHARDS)
}

/// Blocks `DEAD` clients with `cmd(key)` on every key, then drops (closes)
/// them all; returns once INFO counts none blocked.
fn block_and_hang_up(s: &Server, admin: &mut Conn, keys: &[String], cmd: &dyn Fn(&str) -> Vec<String>) {
    let mut dead = Vec::new();
    for key in keys {
        for _ in 0..DEAD {
            let mut c = s.conn();
            c.send(&cmd(key));
            dead.push(c);
        }
    }
    wait_blocked(admin, (keys.len() * DEAD) as i64);
    drop(dead);
    wait_blocked(admin, 0);
}

fn blpop(key: &str) -> Vec<String> {
    vec!["BLPOP".into(), key.into(), "0".into()]
}

#[test]
fn an_element_pushed_after_the_waiters_hung_up_stays() {
    let s = server();
    let mut admin = s.conn();
    for round in 0..ROUNDS {
        let keys = keys(&format!("hang{round}"));
        block_and_hang_up(&s, &mut admin, &keys, &blpop);
        for k in &keys {
            assert_eq!(admin.cmd(&["RPUSH", k, "kept"]).int(), 1);
        }
        wait_blocked(&mut admin, 0);
        for k in &keys {
            assert_eq!(admin.cmd(&["LLEN", k]).int(), 1, "round {round}: popped for a client that hung up");
        }
    }
}

#[test]
fn the_next_live_waiter_gets_the_element() {
    let s = server();
    let mut admin = s.conn();
    for round in 0..ROUNDS {
        let keys = keys(&format!("next{round}"));
        // Dead waiters first on each key, then one live waiter per key.
        let mut dead = Vec::new();
        for k in &keys {
            for _ in 0..DEAD {
                let mut c = s.conn();
                c.send(&blpop(k));
                dead.push(c);
            }
        }
        wait_blocked(&mut admin, (keys.len() * DEAD) as i64);
        let mut live = Vec::new();
        for k in &keys {
            let mut c = s.conn();
            c.send(&blpop(k));
            live.push(c);
        }
        wait_blocked(&mut admin, (keys.len() * (DEAD + 1)) as i64);
        drop(dead);
        wait_blocked(&mut admin, keys.len() as i64);
        for k in &keys {
            assert_eq!(admin.cmd(&["RPUSH", k, "v"]).int(), 1);
        }
        for (c, k) in live.iter_mut().zip(&keys) {
            assert_eq!(c.read(), Resp::Array(vec![Resp::bulk(k), Resp::bulk("v")]), "round {round}");
        }
        wait_blocked(&mut admin, 0);
        for k in &keys {
            assert_eq!(admin.cmd(&["EXISTS", k]).int(), 0);
        }
    }
}

#[test]
fn a_move_or_a_sorted_set_pop_is_not_made_for_a_client_that_hung_up() {
    let s = server();
    let mut admin = s.conn();
    for round in 0..ROUNDS {
        // BLMOVE / BRPOPLPUSH into a key of the other shard: nothing moves.
        let srcs = keys(&format!("src{round}"));
        let dsts = keys(&format!("dst{round}"));
        let to_other = |k: &str| {
            let i = srcs.iter().position(|s| s == k).unwrap();
            dsts[(i + 1) % SHARDS].clone()
        };
        // BLMOVE on even rounds, BRPOPLPUSH on odd ones.
        let mv = |k: &str| match round % 2 {
            0 => vec!["BLMOVE".into(), k.into(), to_other(k), "LEFT".into(), "RIGHT".into(), "0".into()],
            _ => vec!["BRPOPLPUSH".into(), k.into(), to_other(k), "0".into()],
        };
        block_and_hang_up(&s, &mut admin, &srcs, &mv);
        for k in &srcs {
            assert_eq!(admin.cmd(&["RPUSH", k, "m"]).int(), 1);
        }
        wait_blocked(&mut admin, 0);
        for (k, d) in srcs.iter().zip(&dsts) {
            assert_eq!(admin.cmd(&["LLEN", k]).int(), 1, "round {round}: moved for a client that hung up");
            assert_eq!(admin.cmd(&["EXISTS", d]).int(), 0, "round {round}");
        }
        // BZPOPMIN and BZMPOP.
        let zkeys = keys(&format!("z{round}"));
        let bz = |k: &str| vec!["BZPOPMIN".into(), k.into(), "0".into()];
        block_and_hang_up(&s, &mut admin, &zkeys, &bz);
        for k in &zkeys {
            assert_eq!(admin.cmd(&["ZADD", k, "1", "a"]).int(), 1);
        }
        let bzm = |k: &str| vec!["BZMPOP".into(), "0".into(), "1".into(), format!("{k}m"), "MIN".into()];
        block_and_hang_up(&s, &mut admin, &zkeys, &bzm);
        for k in &zkeys {
            assert_eq!(admin.cmd(&["ZADD", &format!("{k}m"), "1", "a"]).int(), 1);
        }
        wait_blocked(&mut admin, 0);
        for k in &zkeys {
            assert_eq!(admin.cmd(&["ZCARD", k]).int(), 1, "round {round}: BZPOPMIN for a client that hung up");
            assert_eq!(admin.cmd(&["ZCARD", &format!("{k}m")]).int(), 1, "round {round}: BZMPOP for a client that hung up");
        }
    }
}

#[test]
fn client_unblock_racing_a_push_resolves_the_waiter_once() {
    let s = server();
    let mut admin = s.conn();
    let (mut unblocker, mut pusher) = (s.conn(), s.conn());
    let mut served = [0usize; 2];
    for round in 0..ROUNDS * 4 {
        for k in keys(&format!("race{round}")) {
            let mut w = s.conn();
            let id = w.cmd(&["CLIENT", "ID"]).int().to_string();
            w.send(&blpop(&k));
            wait_blocked(&mut admin, 1);
            // Sent back to back on two connections (of either shard): the
            // unblock and the pop claim the waiter, one wins.
            unblocker.send(&["CLIENT", "UNBLOCK", &id]);
            pusher.send(&["RPUSH", &k, "v"]);
            let unblocked = unblocker.read().int();
            assert_eq!(pusher.read().int(), 1);
            let reply = w.read();
            let left = admin.cmd(&["LLEN", &k]).int();
            match unblocked {
                1 => assert_eq!((reply, left), (Resp::Nil, 1), "round {round}: unblocked, yet popped"),
                _ => assert_eq!((reply, left), (Resp::Array(vec![Resp::bulk(&k), Resp::bulk("v")]), 0), "round {round}"),
            }
            served[unblocked as usize] += 1;
        }
    }
    eprintln!("served first {} times, unblocked first {} times", served[0], served[1]);
}

/// Open descriptors of the server process (Linux).
fn open_fds(s: &Server) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", s.pid())).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn clients_that_hang_up_while_their_blocking_command_is_out_are_released() {
    // ringkv keeps a connection closed while its forwarded blocking
    // command is out until the key's owner answers (`Conn::block_pending`):
    // every such connection is still released, its socket closed.
    let s = server();
    let mut admin = s.conn();
    assert_eq!(admin.cmd(&["PING"]), Resp::Simple("PONG".into()));
    let before = open_fds(&s);
    let keys = keys("quick");
    for round in 0..ROUNDS * 4 {
        for k in &keys {
            let mut c = s.conn();
            c.send(&blpop(k));
            if round % 2 == 0 {
                // Some find data at once (a reply to a closed connection).
                admin.cmd(&["RPUSH", k, "x"]);
            }
        }
    }
    // Whatever blocked is gone; whatever was pushed stays or was popped
    // for a client before it hung up: nothing waits, nothing is held.
    wait_blocked(&mut admin, 0);
    let ok = common::wait_until(std::time::Duration::from_secs(10), || open_fds(&s) <= before);
    assert!(ok, "descriptors: {before} before, {} after", open_fds(&s));
    for k in &keys {
        admin.cmd(&["DEL", k]);
        assert_eq!(admin.cmd(&["RPUSH", k, "kept"]).int(), 1);
    }
    wait_blocked(&mut admin, 0);
    for k in &keys {
        assert_eq!(admin.cmd(&["LLEN", k]).int(), 1);
    }
}
