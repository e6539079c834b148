//! Hops (`network::hop`): a multi-shard command still pending on a shard
//! holds up no single-shard command on that shard's other keys, and one on
//! its own keys waits for it and sees all of it. The pending state is held
//! with the hidden `hop-part-delay` config (ringkv's own, like Redis's
//! `key-load-delay`): a part from another shard waits that long before it
//! runs. Against redis-server (no such config, nothing pending) the same
//! steps check the replies alone.

mod common;

use std::io::ErrorKind;

use common::*;

/// Microseconds each remote part waits: far longer than a GET takes.
const DELAY_US: &str = "3000000";

/// Two keys of each of the two shards: (operation's, unrelated).
fn keys() -> [(String, String); 2] {
    let mut out: [(Option<String>, Option<String>); 2] = Default::default();
    for i in 0.. {
        let k = format!("hk{i}");
        let s = key_shard(k.as_bytes(), 2);
        match &mut out[s] {
            (None, _) => out[s].0 = Some(k),
            (Some(_), None) => out[s].1 = Some(k),
            _ => {}
        }
        if out.iter().all(|(a, b)| a.is_some() && b.is_some()) {
            break;
        }
    }
    out.map(|(a, b)| (a.unwrap(), b.unwrap()))
}

/// Whether `c` has no reply to read yet.
fn no_reply_yet(c: &mut Conn) -> bool {
    c.stream.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    let r = c.stream.peek(&mut b);
    c.stream.set_nonblocking(false).unwrap();
    matches!(r, Err(e) if e.kind() == ErrorKind::WouldBlock) && c.pending_len() == 0
}

fn check_pending_hop(extra: &[&str]) {
    let mut args = vec!["--shards", "2"];
    args.extend_from_slice(extra);
    let rk = Server::ringkv(&args);
    let ringkv = rk.name() == "ringkv";
    let mut setup = rk.conn();
    if ringkv {
        assert_eq!(setup.cmd(&["CONFIG", "SET", "hop-part-delay", DELAY_US]), Resp::ok());
    }
    let [(a0, u0), (a1, u1)] = keys();
    setup.cmd(&["SET", &u0, "x0"]);
    setup.cmd(&["SET", &u1, "x1"]);
    let mut op = rk.conn();
    let mut other = rk.conn();
    // (what the operation sends first, what it sends last, its reply, the
    // value it leaves); the WATCHed EXEC and MSETNX run in two rounds.
    type Step<'a> = (Vec<Vec<&'a str>>, Vec<&'a str>, &'a [u8], Option<&'a str>);
    let exec = |v| vec![vec!["MULTI"], vec!["SET", a0.as_str(), v], vec!["SET", a1.as_str(), v]];
    let steps: [Step<'_>; 6] = [
        (vec![], vec!["MSET", &a0, "1", &a1, "1"], b"+OK\r\n", Some("1")),
        (exec("2"), vec!["EXEC"], b"*2\r\n+OK\r\n+OK\r\n", Some("2")),
        (vec![], vec!["DEL", &a0, &a1], b":2\r\n", None),
        (vec![], vec!["MSETNX", &a0, "3", &a1, "3"], b":1\r\n", Some("3")),
        ([vec![vec!["WATCH", &a0, &a1]], exec("4")].concat(), vec!["EXEC"], b"*2\r\n+OK\r\n+OK\r\n", Some("4")),
        // RENAME across the two shards: the source's shard takes the value
        // in round 1, the destination's writes it in round 2.
        (vec![], vec!["RENAME", &a0, &a1], b"+OK\r\n", None),
    ];
    for (before, cmd, reply, value) in steps {
        for c in &before {
            op.cmd(c);
        }
        op.send(&cmd);
        // The other keys of both shards are answered at once...
        assert_eq!(other.cmd(&["GET", &u0]).opt_bytes(), Some(b"x0".to_vec()));
        assert_eq!(other.cmd(&["GET", &u1]).opt_bytes(), Some(b"x1".to_vec()));
        assert_eq!(other.cmd(&["SET", &u1, "x1"]), Resp::ok());
        // ...while the operation is still pending (its remote part waits).
        if ringkv {
            assert!(no_reply_yet(&mut op), "{cmd:?} answered before its delayed part ran");
        }
        // Its own keys wait for it, and then show all of it.
        for k in [&a1, &a0] {
            let want = if cmd[0] == "RENAME" && k == &a1 { Some("4") } else { value };
            assert_eq!(other.cmd(&["GET", k]).opt_bytes(), want.map(|v| v.as_bytes().to_vec()), "{cmd:?}");
        }
        assert_eq!(op.read_frame().unwrap(), reply, "{cmd:?}");
    }
}

#[test]
fn pending_hop_serves_other_keys() {
    check_pending_hop(&[]);
}

/// With the AOF on the operation's coordinator carries its replay unit and
/// runs its own part last: still nothing else waits.
#[test]
fn pending_hop_serves_other_keys_with_aof() {
    check_pending_hop(&["--appendonly", "yes"]);
}
