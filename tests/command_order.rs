//! Commands and their keyspace events in command order across shards.
//!
//! One connection's commands apply and notify in its order, whatever path
//! its multi-shard commands take ("Passing" in `shard::hold`, "Order per
//! connection" in `network::hop`): writers pipeline a two-round RENAME
//! across two shards, then an MSET over both shards (disjoint keys: it
//! could pass the RENAME), then a single-key SET, while a reader checks
//! that it never sees a later command's effect without an earlier one's,
//! and a keyspace subscriber checks that each writer's events come in
//! command order; also while a client is blocked (`blocking::anyone_waits`:
//! multi-shard writes then take the held path). A held command's events
//! keep their order when a channel's owner is none of its shards (four
//! shards). Runs against redis-server too (`RINGKV_TEST_TARGET=redis`).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;

const WRITERS: usize = 6;

/// Per writer: a key on shard 0 and one on shard 1 for the renamed value
/// (`{tag}:n` with the tag of `n`'s parity), two more for the MSET, and
/// one for the single-key SET.
struct Group {
    tags: [String; 2],
    mset: [String; 2],
    single: String,
}

impl Group {
    /// The renamed value's key after `n` renames.
    fn renamed(&self, n: u64) -> String {
        format!("{{{}}}:{n}", self.tags[(n % 2) as usize])
    }
}

fn groups(shards: usize) -> Vec<Group> {
    let on = |shard: usize, prefix: &str| -> Vec<String> {
        (0..).map(|i| format!("{prefix}{i}")).filter(|k| key_shard(k.as_bytes(), shards) == shard).take(WRITERS).collect()
    };
    let (t0, t1, m0, m1, s) = (on(0, "ta"), on(1, "tb"), on(0, "ma"), on(1, "mb"), on(shards - 1, "sx"));
    (0..WRITERS).map(|w| Group { tags: [t0[w].clone(), t1[w].clone()], mset: [m0[w].clone(), m1[w].clone()], single: s[w].clone() }).collect()
}

fn text(r: &Resp) -> String {
    String::from_utf8(r.opt_bytes().unwrap()).unwrap()
}

#[test]
fn one_connections_hops_apply_and_notify_in_its_order_over_two_shards() {
    check_order(2, false);
}

#[test]
fn one_connections_hops_apply_and_notify_in_its_order_over_three_shards() {
    check_order(3, false);
}

/// The same while a client is blocked on another key
/// (`blocking::anyone_waits`: a hop's parts would publish from their shards).
#[test]
fn one_connections_commands_notify_in_its_order_while_a_client_blocks() {
    check_order(2, true);
    check_order(3, true);
}

fn check_order(shards: usize, blocked: bool) {
    let rk = Server::ringkv(&["--shards", &shards.to_string()]);
    let groups = groups(shards);
    let mut setup = rk.conn();
    if rk.name() == "ringkv" {
        // Every multi-shard command by hops, each remote part a little
        // late: a RENAME's rounds leave room for the MSET to pass it.
        assert_eq!(setup.cmd(&["CONFIG", "SET", "hop-part-delay", "200"]), Resp::ok());
    }
    assert_eq!(setup.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KA"]), Resp::ok());
    for g in &groups {
        assert_eq!(setup.cmd(&["SET", &g.renamed(0), "v"]), Resp::ok());
    }
    let mut sub = rk.conn();
    sub.cmd(&["PSUBSCRIBE", "__keyspace@0__:*"]);
    let mut waiter = rk.conn();
    if blocked {
        waiter.send(&["BLPOP", "nothing-comes", "0"]);
        assert!(wait_until(Duration::from_secs(5), || clients_info_field(&mut setup, "blocked_clients") == 1));
    }
    std::thread::sleep(Duration::from_millis(150));
    let deadline = Instant::now() + Duration::from_millis(2000);
    let stop = AtomicBool::new(false);
    let rounds: Vec<u64> = std::thread::scope(|s| {
        let writers: Vec<_> = groups
            .iter()
            .map(|g| {
                let mut c = rk.conn();
                s.spawn(move || {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        n += 1;
                        let v = n.to_string();
                        // Pipelined: the three go out before any reply.
                        c.send(&["RENAME", &g.renamed(n - 1), &g.renamed(n)]);
                        c.send(&["MSET", &g.mset[0], &v, &g.mset[1], &v]);
                        c.send(&["SET", &g.single, &v]);
                        assert_eq!(c.read(), Resp::ok(), "RENAME {n}");
                        assert_eq!(c.read(), Resp::ok(), "MSET {n}");
                        assert_eq!(c.read(), Resp::ok(), "SET {n}");
                    }
                    n
                })
            })
            .collect();
        for t in 0..2 {
            let mut c = rk.conn();
            let (groups, stop) = (&groups, &stop);
            s.spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let g = &groups[i % WRITERS];
                    // A later command's effect, then an earlier one's.
                    let later = if i % 2 == 0 { &g.single } else { &g.mset[i / 2 % 2] };
                    let Some(n) = c.cmd(&["GET", later]).opt_bytes() else { continue };
                    let n: u64 = std::str::from_utf8(&n).unwrap().parse().unwrap();
                    let gone = c.cmd(&["EXISTS", &g.renamed(n - 1)]).int();
                    assert_eq!(gone, 0, "{later} was {n}, but RENAME {n} had not run yet");
                    if later == &g.single {
                        let m: u64 = text(&c.cmd(&["GET", &g.mset[i / 2 % 2]])).parse().unwrap();
                        assert!(m >= n, "{later} was {n}, but {} still {m}", g.mset[i / 2 % 2]);
                    }
                }
            });
        }
        let rounds = writers.into_iter().map(|w| w.join().unwrap()).collect();
        stop.store(true, Ordering::Relaxed);
        rounds
    });
    assert!(rounds.iter().sum::<u64>() >= 20, "too few writes to tell: {rounds:?}");
    // Each writer's events, in its command order: RENAME's two, MSET's
    // two in argument order, SET's.
    let owner: HashMap<String, usize> =
        groups.iter().enumerate().flat_map(|(w, g)| [&g.tags[0], &g.tags[1], &g.mset[0], &g.mset[1], &g.single].map(|k| (k.clone(), w))).collect();
    let total: u64 = rounds.iter().map(|n| n * 5).sum();
    let mut seen: Vec<Vec<(String, String)>> = vec![Vec::new(); WRITERS];
    for _ in 0..total {
        let m = sub.read();
        let key = text(&m.array()[2]).split_once("__:").unwrap().1.to_string();
        let tag = key.strip_prefix('{').and_then(|k| k.split_once('}')).map_or(key.clone(), |(t, _)| t.to_string());
        let w = owner[&tag];
        seen[w].push((text(&m.array()[3]), key));
    }
    for (w, g) in groups.iter().enumerate() {
        let mut want = Vec::new();
        for n in 1..=rounds[w] {
            want.push(("rename_from".to_string(), g.renamed(n - 1)));
            want.push(("rename_to".to_string(), g.renamed(n)));
            want.push(("set".to_string(), g.mset[0].clone()));
            want.push(("set".to_string(), g.mset[1].clone()));
            want.push(("set".to_string(), g.single.clone()));
        }
        let first_bad = seen[w].iter().zip(&want).position(|(a, b)| a != b);
        assert!(
            first_bad.is_none() && seen[w].len() == want.len(),
            "writer {w}: events out of command order at {first_bad:?}: got {:?}, want {:?}",
            &seen[w][first_bad.unwrap_or(0).saturating_sub(2)..(first_bad.unwrap_or(0) + 6).min(seen[w].len())],
            &want[first_bad.unwrap_or(0).saturating_sub(2)..(first_bad.unwrap_or(0) + 6).min(want.len())]
        );
    }
}

/// A held command's events reach a channel's subscriber in the command's
/// order also when a channel's owner is none of the command's shards (four
/// shards; the holding shard serves every subscriber): RENAME both
/// ways between two shards, from connections on every shard, the source's
/// channel owned by a third shard and the destination's by the destination's.
#[test]
fn a_held_commands_events_keep_their_order_over_four_shards() {
    let rk = Server::ringkv(&["--shards", "4"]);
    let mut setup = rk.conn();
    if rk.name() == "ringkv" {
        assert_eq!(setup.cmd(&["CONFIG", "SET", "cross-shard-route", "held"]), Resp::ok());
        std::thread::sleep(Duration::from_millis(150));
    }
    assert_eq!(setup.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KA"]), Resp::ok());
    let channel = |k: &str| format!("__keyspace@0__:{k}");
    let pick = |shard: usize, owner: usize, prefix: &str| {
        (0..).map(|i| format!("{prefix}{i}")).find(|k| key_shard(k.as_bytes(), 4) == shard && key_shard(channel(k).as_bytes(), 4) == owner).unwrap()
    };
    let (x, y) = (pick(0, 3, "x"), pick(1, 1, "y"));
    let mut sub = rk.conn();
    sub.cmd(&["SUBSCRIBE", &channel(&x)]);
    sub.cmd(&["SUBSCRIBE", &channel(&y)]);
    let mut next = || {
        let m = sub.read();
        (text(&m.array()[1]).split_once("__:").unwrap().1.to_string(), text(&m.array()[2]))
    };
    let ev = |list: &[(&str, &str)]| list.iter().map(|(k, e)| (k.to_string(), e.to_string())).collect::<Vec<_>>();
    for round in 0..40 {
        // A fresh connection each round: they land on every shard.
        let mut c = rk.conn();
        assert_eq!(c.cmd(&["SET", &x, "v"]), Resp::ok());
        assert_eq!(next(), (x.clone(), "set".to_string()));
        assert_eq!(c.cmd(&["RENAME", &x, &y]), Resp::ok());
        let got = vec![next(), next()];
        assert_eq!(got, ev(&[(&x, "rename_from"), (&y, "rename_to")]), "round {round}");
        assert_eq!(c.cmd(&["RENAME", &y, &x]), Resp::ok());
        let got = vec![next(), next()];
        assert_eq!(got, ev(&[(&y, "rename_from"), (&x, "rename_to")]), "round {round}");
        assert_eq!(c.cmd(&["DEL", &x]).int(), 1);
        assert_eq!(next(), (x.clone(), "del".to_string()));
    }
}

/// An LMOVE between two shards by hops while a client is blocked on an
/// unrelated key: a subscriber of both keys' channels reads Redis's order
/// (the destination's push, the source's pop, its deletion).
#[test]
fn a_move_notifies_in_order_while_a_client_blocks_elsewhere() {
    let rk = Server::ringkv(&["--shards", "2"]);
    let mut setup = rk.conn();
    if rk.name() == "ringkv" {
        assert_eq!(setup.cmd(&["CONFIG", "SET", "hop-part-delay", "1000"]), Resp::ok());
    }
    assert_eq!(setup.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KA"]), Resp::ok());
    let on = |shard: usize, prefix: &str| (0..).map(|i| format!("{prefix}{i}")).find(|k| key_shard(k.as_bytes(), 2) == shard).unwrap();
    let (src, dst) = (on(0, "src"), on(1, "dst"));
    let mut sub = rk.conn();
    sub.cmd(&["SUBSCRIBE", &format!("__keyspace@0__:{src}")]);
    sub.cmd(&["SUBSCRIBE", &format!("__keyspace@0__:{dst}")]);
    let mut waiter = rk.conn();
    waiter.send(&["BLPOP", "nothing-comes", "0"]);
    assert!(wait_until(Duration::from_secs(5), || clients_info_field(&mut setup, "blocked_clients") == 1));
    std::thread::sleep(Duration::from_millis(150));
    let mut next = || {
        let m = sub.read();
        (text(&m.array()[1]).split_once("__:").unwrap().1.to_string(), text(&m.array()[2]))
    };
    let ev = |list: &[(&str, &str)]| list.iter().map(|(k, e)| (k.to_string(), e.to_string())).collect::<Vec<_>>();
    for round in 0..30 {
        let mut c = rk.conn();
        assert_eq!(c.cmd(&["RPUSH", &src, "e"]).int(), 1);
        assert_eq!(next(), (src.clone(), "rpush".to_string()));
        let (from, to) = if round % 2 == 0 { (&src, &dst) } else { (&dst, &src) };
        if round % 2 == 1 {
            assert_eq!(c.cmd(&["RENAME", &src, &dst]), Resp::ok());
            assert_eq!(vec![next(), next()], ev(&[(&src, "rename_from"), (&dst, "rename_to")]), "round {round}");
        }
        assert_eq!(c.cmd(&["LMOVE", from, to, "LEFT", "RIGHT"]).opt_bytes(), Some(b"e".to_vec()));
        let got = vec![next(), next(), next()];
        assert_eq!(got, ev(&[(to, "rpush"), (from, "lpop"), (from, "del")]), "round {round}");
        assert_eq!(c.cmd(&["DEL", to]).int(), 1);
        assert_eq!(next(), (to.clone(), "del".to_string()));
    }
}

/// One connection's single-key commands reach a subscriber of their exact
/// channels in command order, whichever shard owns each channel: a SET of
/// a key whose `__keyspace` channel hashes to another shard than the key,
/// then (pipelined with it) a SET of a key on the same shard whose channel
/// is its own, then one on another shard, and their DELs; the
/// `__keyevent` channels too. Each notification channel's subscribers are on every shard
/// (`messaging::pubsub`, "Notification channels"), so the emitting shard
/// serves them, as it does pattern subscribers. Before that a SET's events
/// went to the channel's owner by a message, and the next SET's direct
/// delivery overtook them (2 shards: within the first rounds).
#[test]
fn single_key_events_reach_exact_channel_subscribers_in_command_order() {
    for shards in [2usize, 3] {
        let rk = Server::ringkv(&["--shards", &shards.to_string()]);
        let mut setup = rk.conn();
        assert_eq!(setup.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]), Resp::ok());
        let channel = |k: &str| format!("__keyspace@0__:{k}");
        let pick = |shard: usize, owner: usize, prefix: &str| {
            (0..)
                .map(|i| format!("{prefix}{i}"))
                .find(|k| key_shard(k.as_bytes(), shards) == shard && key_shard(channel(k).as_bytes(), shards) == owner)
                .unwrap()
        };
        // x: its channel elsewhere; y: its channel on its own shard; z: on
        // the last shard.
        let (x, y, z) = (pick(0, 1, "x"), pick(0, 0, "y"), pick(shards - 1, 0, "z"));
        let mut sub = rk.conn();
        let channels = [channel(&x), channel(&y), channel(&z), "__keyevent@0__:set".into(), "__keyevent@0__:del".into()];
        for c in &channels {
            sub.cmd(&["SUBSCRIBE", c]);
        }
        // Kept on every shard, counted and listed once.
        let stats = String::from_utf8(setup.cmd(&["INFO", "stats"]).opt_bytes().unwrap()).unwrap();
        assert!(stats.lines().any(|l| l.trim() == "pubsub_channels:5"), "{stats}");
        assert_eq!(setup.cmd(&["PUBSUB", "CHANNELS"]).array().len(), 5);
        let numsub = setup.cmd(&["PUBSUB", "NUMSUB", &channels[0], &channels[3]]);
        assert_eq!(numsub.array().iter().skip(1).step_by(2).map(Resp::int).collect::<Vec<_>>(), [1, 1]);
        let mut want = Vec::new();
        for (event, k) in [("set", &x), ("set", &y), ("set", &z), ("del", &x), ("del", &y), ("del", &z)] {
            want.push((channel(k), event.to_string()));
            want.push((format!("__keyevent@0__:{event}"), k.clone()));
        }
        for round in 0..150 {
            // A fresh connection each round: they land on every shard.
            // x and y pipelined (one shard runs them in turn), z after
            // their replies (pipelined commands of different shards:
            // tests/pipeline_order.rs).
            let mut c = rk.conn();
            for (cmd, ok) in [(vec!["SET", "", "v"], Resp::ok()), (vec!["DEL", ""], Resp::Int(1))] {
                let with = |k: &str| cmd.iter().map(|a| if a.is_empty() { k.to_string() } else { a.to_string() }).collect::<Vec<_>>();
                c.send(&with(&x));
                c.send(&with(&y));
                assert_eq!(c.read(), ok, "round {round}");
                assert_eq!(c.read(), ok, "round {round}");
                assert_eq!(c.cmd(&with(&z)), ok, "round {round}");
            }
            let got: Vec<(String, String)> = (0..want.len())
                .map(|_| {
                    let m = sub.read();
                    (text(&m.array()[1]), text(&m.array()[2]))
                })
                .collect();
            assert_eq!(got, want, "{shards} shards, round {round}");
        }
    }
}
