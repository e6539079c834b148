//! Keyspace notifications of every command family, compared with what
//! redis-server 7.0.15 published for the same commands (`notify_cases.rs`):
//! the commands run through `exec::call` on shard states held by the test,
//! and the (channel, message) pairs they leave in `pending_publish` must be
//! Redis's, in Redis's order. The scripts are `notify_scripts/*.txt`;
//! `gen_notify_cases.py` records Redis's messages for them.

use super::notify;
use super::notify_cases::{self as cases, Script};
use crate::commands::{CommandTable, Ctx};
use crate::exec::Clock;
use crate::protocol::Reply;
use crate::server::Server;
use crate::shard::hold::ShardSet;
use crate::shard::ShardState;

const NOW: i64 = 1_700_000_000_000;

struct Harness {
    server: Server,
    shards: Vec<ShardState>,
    clock: Clock,
    /// Milliseconds since NOW (`SLEEP` moves it on).
    elapsed_ms: i64,
    db: usize,
}

impl Harness {
    fn new(n: usize, flags: &str) -> Harness {
        // No save points: FLUSHALL would save a dump in the working directory.
        let mut config = crate::config::Config { save: Vec::new(), notify_keyspace_events: notify::parse(flags.as_bytes()).unwrap(), ..Default::default() };
        config.others.insert("enable-debug-command".into(), "yes".into());
        let shards = (0..n).map(|i| ShardState::new(i, n, config.clone())).collect();
        Harness { server: Server::new(n, 100, 0), shards, clock: Clock::new(), elapsed_ms: 0, db: 0 }
    }

    /// Runs one command holding every shard, as a held multi-shard command
    /// runs; returns its reply (RESP2).
    fn run(&mut self, args: &[&[u8]]) -> Vec<u8> {
        let n = self.shards.len();
        let mut set = ShardSet::new(n);
        for (i, s) in self.shards.iter_mut().enumerate() {
            // SAFETY: the shard lives in `self.shards`, which is not resized,
            // for the whole call, and nothing else touches it meanwhile.
            unsafe { set.set(i, s as *mut ShardState) };
        }
        let table = CommandTable::get();
        let mut id = table.lookup(args[0]).unwrap_or_else(|| panic!("no command {:?}", String::from_utf8_lossy(args[0])));
        if table.is_container(id) {
            id = table.lookup_sub(table.specs[id].name, args[1]).expect("a subcommand");
        }
        let mut out = Vec::new();
        let mut r = Reply::new(&mut out, 2);
        let mut ctx = Ctx::new(&mut set, &self.server, 0, self.db, 2, NOW + self.elapsed_ms, None);
        crate::exec::call(&mut ctx, &mut self.clock, id, args, &mut r, &crate::exec::Caller::LOCAL, &mut Vec::new());
        out
    }

    /// Runs a script line: a command, `SLEEP ms`, `select db` (no client
    /// here), or `RESTORE_OF dst src ttl [options]` (DUMP src, RESTORE dst).
    fn line(&mut self, line: &str) {
        let words = split(line);
        let args: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
        match words[0].as_str() {
            "SLEEP" => self.elapsed_ms += words[1].parse::<i64>().unwrap(),
            "select" => self.db = words[1].parse().unwrap(),
            "RESTORE_OF" => {
                let dump = self.run(&[b"dump", args[2]]);
                let payload = bulk_payload(&dump);
                let mut restore: Vec<&[u8]> = vec![b"restore", args[1], args[3], &payload];
                restore.extend(&args[4..]);
                self.run(&restore);
            }
            _ => {
                self.run(&args);
            }
        }
    }

    /// The messages left on every shard, shard by shard, as `channel message`.
    fn take(&mut self) -> Vec<String> {
        let mut out = vec![];
        for s in &mut self.shards {
            for (c, m) in s.pending_publish.drain(..) {
                out.push(format!("{} {}", String::from_utf8_lossy(&c), String::from_utf8_lossy(&m)));
            }
        }
        out
    }

    /// Runs `script` (starting from an empty server), checking after each
    /// line the messages it left against Redis's: all of them in order on
    /// one shard; with several shards the order per key (messages about
    /// different keys may sit on different shards).
    fn check(&mut self, name: &str, script: &[(&str, &[&str])]) {
        let one_shard = self.shards.len() == 1;
        for (line, expected) in script {
            self.line(line);
            let got = self.take();
            let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
            if one_shard {
                assert_eq!(got, expected, "{}: {:?}", name, line);
            } else {
                assert_eq!(per_key(&got), per_key(&expected), "{}: {:?} on {} shards", name, line, self.shards.len());
            }
        }
    }
}

/// Words split on spaces, `""` being an empty word.
fn split(line: &str) -> Vec<String> {
    line.split(' ').map(|w| if w == "\"\"" { String::new() } else { w.to_string() }).collect()
}

/// The bytes of a RESP bulk reply.
fn bulk_payload(reply: &[u8]) -> Vec<u8> {
    let crlf = reply.windows(2).position(|w| w == b"\r\n").unwrap();
    let len: usize = std::str::from_utf8(&reply[1..crlf]).unwrap().parse().unwrap();
    reply[crlf + 2..crlf + 2 + len].to_vec()
}

/// Messages grouped by the key they are about (the channel's end for a
/// keyspace message, the message for a keyevent one), each group in order.
fn per_key(messages: &[String]) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for m in messages {
        let (channel, message) = m.split_once(' ').unwrap();
        let (kind, name) = channel.split_once("__:").unwrap();
        let key = if kind.starts_with("__keyspace@") { name } else { message };
        out.entry(key.to_string()).or_default().push(m.clone());
    }
    out
}

const FAMILIES: &[(&str, Script)] = &[
    ("strings", cases::STRINGS),
    ("hash", cases::HASH),
    ("list", cases::LIST),
    ("set", cases::SET),
    ("zset", cases::ZSET),
    ("stream", cases::STREAM),
    ("keys", cases::KEYS),
    ("misc", cases::MISC),
    ("edges", cases::EDGES),
];

#[test]
fn every_family_notifies_as_redis() {
    for (name, script) in FAMILIES {
        Harness::new(1, "AKEmn").check(name, script);
    }
}

#[test]
fn every_family_notifies_as_redis_across_shards() {
    for (name, script) in FAMILIES {
        let mut h = Harness::new(3, "AKEmn");
        h.check(name, script);
    }
}

#[test]
fn only_the_enabled_classes_and_channels() {
    for (flags, expected) in cases::BY_FLAGS {
        let script: Vec<(&str, &[&str])> = cases::FLAGS_SCRIPT.iter().copied().zip(expected.iter().copied()).collect();
        Harness::new(1, flags).check(&format!("flags {:?}", flags), &script);
    }
}

/// Every message lands on the shard that owns its key.
#[test]
fn messages_wait_on_the_owning_shard() {
    let mut h = Harness::new(3, "KEA");
    let keys: Vec<String> = (0..30).map(|i| format!("k{}", i)).collect();
    for k in &keys {
        h.run(&[b"set", k.as_bytes(), b"v"]);
        h.run(&[b"rename", k.as_bytes(), format!("{}:renamed", k).as_bytes()]);
    }
    for (i, s) in h.shards.iter().enumerate() {
        for (c, m) in &s.pending_publish {
            let key = if c.starts_with(b"__keyspace@") { &c[b"__keyspace@0__:".len()..] } else { &m[..] };
            assert_eq!(crate::shard::slot::key_shard(key, 3), i, "{:?} on shard {}", String::from_utf8_lossy(key), i);
        }
    }
    assert_eq!(h.take().len(), 30 * (2 + 4));
}

/// The active expiry cycle notifies what it deletes.
#[test]
fn active_expiry_notifies() {
    let mut h = Harness::new(1, "Ex");
    h.run(&[b"set", b"a", b"1", b"px", b"10"]);
    h.db = 3;
    h.run(&[b"set", b"b", b"1", b"px", b"10"]);
    assert!(h.take().is_empty());
    h.shards[0].active_expire_cycle(NOW + 5, 1_000_000, |_| false);
    assert!(h.take().is_empty());
    h.shards[0].active_expire_cycle(NOW + 20, 1_000_000, |_| false);
    assert_eq!(h.take(), vec!["__keyevent@0__:expired a", "__keyevent@3__:expired b"]);
    assert_eq!(h.shards[0].stats.expired_keys, 2);
}

/// Off (the default), nothing is queued.
#[test]
fn off_queues_nothing() {
    let mut h = Harness::new(1, "");
    for (_, script) in FAMILIES {
        for (line, _) in *script {
            h.line(line);
        }
    }
    assert!(h.take().is_empty());
}

/// CONFIG SET reaches the shards: events start and stop with it.
#[test]
fn config_set_turns_them_on_and_off() {
    let mut h = Harness::new(2, "");
    h.run(&[b"set", b"a", b"1"]);
    assert!(h.take().is_empty());
    assert_eq!(
        h.run(&[b"config", b"set", b"notify-keyspace-events", b"KEq"]),
        b"-ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'.\r\n".to_vec()
    );
    assert_eq!(h.run(&[b"config", b"set", b"notify-keyspace-events", b"E$"]), b"+OK\r\n".to_vec());
    assert_eq!(h.run(&[b"config", b"get", b"notify-keyspace-events"]), b"*2\r\n$22\r\nnotify-keyspace-events\r\n$2\r\n$E\r\n".to_vec());
    assert!(h.shards.iter().all(|s| s.config.notify_keyspace_events == notify::STRING | notify::KEYEVENT));
    h.run(&[b"set", b"a", b"1"]);
    assert_eq!(h.take(), vec!["__keyevent@0__:set a"]);
    h.run(&[b"config", b"set", b"notify-keyspace-events", b""]);
    h.run(&[b"set", b"a", b"1"]);
    assert!(h.take().is_empty());
}

/// Every command that names keys is in the scripts above, so a command
/// added later without its notifications fails here until its Redis
/// messages are captured into `notify_cases.rs`.
#[test]
fn every_keyed_command_is_covered() {
    let mut covered = std::collections::HashSet::new();
    let flags_script = cases::FLAGS_SCRIPT.iter().copied();
    for line in FAMILIES.iter().flat_map(|(_, s)| s.iter().map(|(l, _)| *l)).chain(flags_script) {
        let first = line.split(' ').next().unwrap().to_ascii_lowercase();
        covered.insert(if first == "restore_of" { "restore".to_string() } else { first });
    }
    let table = CommandTable::get();
    // SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH name shard channels, not keys.
    let names_keys = |s: &&crate::commands::CommandSpec| s.keys.first > 0 && s.flags & crate::commands::flags::PUBSUB == 0;
    let missing: Vec<&str> = table.specs.iter().filter(names_keys).filter(|s| !s.name.contains('|') && !covered.contains(s.name)).map(|s| s.name).collect();
    assert!(missing.is_empty(), "keyed commands without notification cases: {:?}", missing);
}

/// SCAN and RANDOMKEY delete the expired keys they meet as Redis's
/// expireIfNeeded does: each is notified `expired` once (which keys they
/// meet depends on the table's order, so this is checked as a set).
#[test]
fn scan_and_randomkey_notify_the_expired_keys_they_delete() {
    for command in [&[&b"scan"[..], b"0", b"count", b"1000"][..], &[b"randomkey"]] {
        let mut h = Harness::new(1, "Ex");
        for i in 0..50 {
            let key = format!("k{}", i);
            h.run(&[b"set", key.as_bytes(), b"v", b"px", b"10"]);
        }
        h.run(&[b"set", b"live", b"v"]);
        h.elapsed_ms += 20;
        h.run(command);
        let got = h.take();
        let unique: std::collections::HashSet<&String> = got.iter().collect();
        assert_eq!(unique.len(), got.len(), "{:?}", got);
        assert!(!got.is_empty());
        assert!(got.iter().all(|m| m.starts_with("__keyevent@0__:expired k")), "{:?}", got);
        assert_eq!(h.shards[0].stats.expired_keys, got.len() as u64);
        assert_eq!(h.shards[0].dbs[0].len(), 51 - got.len());
    }
}
