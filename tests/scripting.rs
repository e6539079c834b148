//! Lua scripting against a running server: a busy script answered with
//! -BUSY by every connection and stopped by SCRIPT KILL from another one
//! (or refused as UNKILLABLE once it wrote); a script over keys of every
//! shard is atomic for other clients; a script's effects reach the AOF as
//! one MULTI/EXEC (never the EVAL) and load back.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

const BUSY: &str = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";

fn err(r: Resp) -> String {
    match r {
        Resp::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn busy_script_is_killed_from_another_connection() {
    let s = Server::ringkv(&["--shards", "3"]);
    // Connections made before the script: each lands on some shard, and
    // every shard must answer while the script runs.
    let mut conns: Vec<Conn> = (0..6).map(|_| s.conn()).collect();
    let mut runner = s.conn();
    assert_eq!(conns[0].cmd(&["CONFIG", "SET", "lua-time-limit", "50"]), Resp::ok());
    conns[0].cmd(&["SET", "xx", "1"]);
    runner.send(&["EVAL", "while true do end", "0"]);
    std::thread::sleep(Duration::from_millis(300));
    for c in conns.iter_mut().skip(1) {
        assert_eq!(err(c.cmd(&["INCR", "xx"])), BUSY);
    }
    // MULTI passes, a command inside it is refused and flags it.
    assert_eq!(conns[1].cmd(&["MULTI"]), Resp::ok());
    assert_eq!(err(conns[1].cmd(&["INCR", "xx"])), BUSY);
    assert_eq!(conns[0].cmd(&["SCRIPT", "KILL"]), Resp::ok());
    let killed = err(runner.read());
    assert!(killed.starts_with("ERR Script killed by user with SCRIPT KILL..."), "{killed}");
    assert!(err(conns[1].cmd(&["EXEC"])).starts_with("EXECABORT"));
    assert_eq!(conns[2].cmd(&["GET", "xx"]), Resp::bulk("1"));
    assert_eq!(err(conns[3].cmd(&["SCRIPT", "KILL"])), "NOTBUSY No scripts in execution right now.");

    // A script that wrote cannot be killed; it runs to its end.
    runner.send(&["EVAL", "redis.call('set','w','1') local i = 0 while i < 30000000 do i = i + 1 end return i", "0"]);
    std::thread::sleep(Duration::from_millis(300));
    let unkillable = err(conns[4].cmd(&["SCRIPT", "KILL"]));
    assert!(unkillable.starts_with("UNKILLABLE Sorry the script already executed write commands"), "{unkillable}");
    assert_eq!(runner.read(), Resp::Int(30_000_000));
    assert_eq!(conns[5].cmd(&["GET", "w"]), Resp::bulk("1"));
}

/// As Redis (processEventsWhileBlocked accepts): connections made while a
/// script is busy are served -BUSY, and one of them can kill it; they are
/// counted and listed once the script is over.
#[test]
fn a_connection_made_during_a_busy_script_can_kill_it() {
    let s = Server::ringkv(&["--shards", "3"]);
    let mut admin = s.conn();
    let mut runner = s.conn();
    assert_eq!(admin.cmd(&["CONFIG", "SET", "lua-time-limit", "50"]), Resp::ok());
    runner.send(&["EVAL", "local f = function() while 1 do redis.call('ping') end end while 1 do pcall(f) end", "0"]);
    std::thread::sleep(Duration::from_millis(300));
    // New connections land on every shard; each is answered.
    let mut late: Vec<Conn> = (0..6).map(|_| s.conn()).collect();
    for c in late.iter_mut() {
        assert_eq!(err(c.cmd(&["PING"])), BUSY);
    }
    assert_eq!(late[5].cmd(&["SCRIPT", "KILL"]), Resp::ok());
    let killed = err(runner.read());
    assert!(killed.starts_with("ERR Script killed by user with SCRIPT KILL..."), "{killed}");
    for c in late.iter_mut() {
        assert_eq!(c.cmd(&["PING"]), Resp::Simple("PONG".into()));
    }
    let list = match admin.cmd(&["CLIENT", "LIST"]) {
        Resp::Bulk(b) => String::from_utf8(b).unwrap(),
        other => panic!("CLIENT LIST: {other:?}"),
    };
    assert_eq!(list.lines().count(), 8, "{list}");
}

/// Commands a shard had already read when it parked for a script (the
/// rest of a pipeline, commands forwarded to it from another shard) are
/// answered as Redis answers every command that arrives while a script is
/// busy: -BUSY (or run, when they came first), never held until the
/// script's end. Clients hammer every shard with pipelines when the
/// script starts, so that shards park in the middle of them.
#[test]
fn commands_read_before_a_busy_script_are_answered() {
    let s = Server::ringkv(&["--shards", "3"]);
    let mut admin = s.conn();
    assert_eq!(admin.cmd(&["CONFIG", "SET", "lua-time-limit", "100"]), Resp::ok());
    // b is shard 0's, c shard 1's, a shard 2's (with three shards).
    assert_eq!(admin.cmd(&["MSET", "a", "1", "b", "1", "c", "1"]), Resp::ok());
    let start = Arc::new(std::sync::Barrier::new(13));
    let clients: Vec<_> = (0..12)
        .map(|_| {
            let mut c = s.conn();
            let start = start.clone();
            std::thread::spawn(move || -> Result<(), String> {
                c.stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                let mut pipeline = Vec::new();
                for args in [&["PING"][..], &["GET", "a"], &["GET", "b"], &["GET", "c"], &["PING"]] {
                    pipeline.extend_from_slice(&encode(args));
                }
                start.wait();
                let began = std::time::Instant::now();
                let mut busy_rounds = 0;
                while busy_rounds < 2 {
                    if began.elapsed() > Duration::from_secs(10) {
                        return Err("no -BUSY within 10 s".into());
                    }
                    c.send_raw(&pipeline);
                    let mut busy = false;
                    for i in 0..5 {
                        let frame = c.read_frame().map_err(|e| format!("reply {i} of a pipeline not answered while the script ran: {e}"))?;
                        match decode(&frame) {
                            Resp::Error(e) if e == BUSY => busy = true,
                            Resp::Simple(p) if p == "PONG" => {}
                            Resp::Bulk(v) if v == b"1" => {}
                            other => return Err(format!("unexpected reply {other:?}")),
                        }
                    }
                    busy_rounds += busy as u32;
                }
                Ok(())
            })
        })
        .collect();
    let mut runner = s.conn();
    start.wait();
    std::thread::sleep(Duration::from_millis(20));
    runner.send(&["EVAL", "while true do end", "0"]);
    let outcomes: Vec<Result<(), String>> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(admin.cmd(&["SCRIPT", "KILL"]), Resp::ok());
    let killed = err(runner.read());
    assert!(killed.starts_with("ERR Script killed by user with SCRIPT KILL..."), "{killed}");
    for o in outcomes {
        o.unwrap();
    }
    assert_eq!(admin.cmd(&["GET", "a"]), Resp::bulk("1"));
}

#[test]
fn script_over_every_shard_is_atomic_for_other_clients() {
    let s = Server::ringkv(&["--shards", "3"]);
    // b is shard 0's, c shard 1's, a shard 2's (with three shards).
    let mut c = s.conn();
    c.cmd(&["MSET", "a", "0", "b", "0", "c", "0"]);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let mut r = s.conn();
        std::thread::spawn(move || {
            let mut seen = 0;
            while !stop.load(Ordering::Relaxed) {
                let v = r.cmd(&["MGET", "a", "b", "c"]);
                let vals: Vec<Option<Vec<u8>>> = v.array().iter().map(|x| x.opt_bytes()).collect();
                assert!(vals[0] == vals[1] && vals[1] == vals[2], "a script seen half done: {vals:?}");
                seen += 1;
            }
            seen
        })
    };
    let script = "for i = 1, 200 do for _, k in ipairs(KEYS) do redis.call('incr', k) end end return redis.call('get', KEYS[1])";
    for round in 1..=30 {
        let v = c.cmd(&["EVAL", script, "3", "a", "b", "c"]);
        assert_eq!(v, Resp::bulk((round * 200).to_string()));
    }
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
}

/// db -> sorted (key, value) of the string keys.
fn strings(s: &Server) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut c = s.conn();
    let mut keys: Vec<Vec<u8>> = c.cmd(&["KEYS", "*"]).array().iter().map(|k| k.opt_bytes().unwrap()).collect();
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let v = c.cmd(&[&b"GET"[..], &k]).opt_bytes().unwrap();
            (k, v)
        })
        .collect()
}

#[test]
fn script_effects_reach_the_aof_and_load_back() {
    let s = Server::ringkv(&["--appendonly", "yes", "--appendfsync", "always", "--shards", "3"]);
    let mut c = s.conn();
    c.cmd(&["EVAL", "redis.call('set','a','1') redis.call('set','b','2') redis.call('incrbyfloat','c','1.5')", "0"]);
    c.cmd(&["EVAL", "redis.call('set', KEYS[1], ARGV[1])", "1", "d", "one write"]);
    c.cmd(&["EVAL", "return redis.call('get','a')", "0"]);
    let sha = c.cmd(&["SCRIPT", "LOAD", "redis.call('append', KEYS[1], ARGV[1]) return redis.call('strlen', KEYS[1])"]).opt_bytes().unwrap();
    assert_eq!(c.cmd(&[&b"EVALSHA"[..], &sha, b"1", b"d", b"+more"]), Resp::Int(14));
    // REPL_NONE: run, not propagated.
    c.cmd(&["EVAL", "redis.set_repl(redis.REPL_NONE) redis.call('set','x','not in aof') redis.set_repl(redis.REPL_ALL) redis.call('set','y','in aof')", "0"]);
    let expect = strings(&s);
    std::thread::sleep(Duration::from_millis(300));
    let incr = std::fs::read(s.dir.join("appendonlydir/appendonly.aof.1.incr.aof")).unwrap();
    let text = String::from_utf8_lossy(&incr).to_ascii_lowercase();
    assert!(!text.contains("eval"), "{text}");
    assert!(text.contains("multi") && text.contains("exec"), "{text}");
    assert!(!text.contains("not in aof"), "{text}");
    // INCRBYFLOAT's effect is a SET with the result.
    assert!(text.contains("keepttl"), "{text}");
    // A copy of the directory (the server's own is removed with it).
    let dir = std::env::temp_dir().join(format!("ringkv-scripting-aof-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("appendonlydir")).unwrap();
    for entry in std::fs::read_dir(s.dir.join("appendonlydir")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join("appendonlydir").join(entry.file_name())).unwrap();
    }
    drop(c);
    drop(s);
    let again = Server::ringkv(&["--appendonly", "yes", "--dir", &dir.to_string_lossy(), "--shards", "2"]);
    let mut loaded = expect.clone();
    loaded.retain(|(k, _)| k != b"x");
    assert_eq!(strings(&again), loaded);
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The script cache is not bounded by Lua's stack: Lua 5.1 caps a stack
/// (the one mlua keeps its references on) at 8000 slots, so holding every
/// compiled script there stopped caching at some 7,700 scripts.
#[test]
fn script_cache_holds_more_than_eight_thousand_scripts() {
    let s = Server::ringkv(&["--shards", "2"]);
    let mut c = s.conn();
    let n = 9000;
    for i in 0..n {
        c.send(&["SCRIPT", "LOAD", &format!("return {i}")]);
    }
    let mut shas = Vec::new();
    for _ in 0..n {
        match c.read() {
            Resp::Bulk(sha) => shas.push(String::from_utf8(sha).unwrap()),
            other => panic!("SCRIPT LOAD answered {other:?}"),
        }
    }
    for i in [0, 7999, 8000, n - 1] {
        assert_eq!(c.cmd(&["EVALSHA", &shas[i], "0"]), Resp::Int(i as i64));
    }
    assert_eq!(c.cmd(&["EVAL", "return 'one more'", "0"]), Resp::bulk("one more"));
}

/// The libraries scripts use: a cmsgpack round trip of a nested table
/// through a key, struct and bit, as application scripts combine them.
#[test]
fn scripts_combine_cmsgpack_struct_bit_and_cjson() {
    let s = Server::ringkv(&["--shards", "3"]);
    let mut c = s.conn();
    let store = "local t = cjson.decode(ARGV[1]) redis.call('set', KEYS[1], cmsgpack.pack(t)) return #redis.call('get', KEYS[1])";
    let json = r#"{"id":7,"tags":["a","b"],"score":1.5,"nested":{"deep":[1,2,{"x":-300}]}}"#;
    let Resp::Int(len) = c.cmd(&["EVAL", store, "1", "{doc}1", json]) else { panic!("store") };
    assert!(len > 0);
    let load = "local t = cmsgpack.unpack(redis.call('get', KEYS[1])) return {t.id, t.tags[2], tostring(t.score), t.nested.deep[3].x}";
    assert_eq!(c.cmd(&["EVAL", load, "1", "{doc}1"]), Resp::Array(vec![Resp::Int(7), Resp::bulk("b"), Resp::bulk("1.5"), Resp::Int(-300)]));
    let packed = "return {struct.unpack('>I2 i4 c3', struct.pack('>I2 i4 c3', 513, -2, 'abc'))}";
    assert_eq!(c.cmd(&["EVAL", packed, "0"]), Resp::Array(vec![Resp::Int(513), Resp::Int(-2), Resp::bulk("abc"), Resp::Int(10)]));
    assert_eq!(c.cmd(&["EVAL", "return bit.tohex(bit.bxor(0xff00, bit.lshift(1, 4)), -4)", "0"]), Resp::bulk("FF10"));
    // The libraries are read-only, and a CLUSTER RESET is refused in a script.
    let e = err(c.cmd(&["EVAL", "cmsgpack.pack = nil", "0"]));
    assert!(e.contains("Attempt to modify a readonly table"), "{e}");
    let e = err(c.cmd(&["EVAL", "return redis.call('cluster', 'reset', 'hard')", "0"]));
    assert!(e.contains("This Redis command is not allowed from script"), "{e}");
}
