//! DEBUG LOADAOF (Redis 7.0's debug.c): the AOF is flushed, the dataset
//! emptied and the AOF loaded back, as redis-server does it; with no AOF
//! in the directory the server exits with status 1, as redis-server does.

mod common;

use std::time::Duration;

use common::*;

fn incr_size(s: &Server) -> u64 {
    std::fs::metadata(s.dir.join("appendonlydir/appendonly.aof.1.incr.aof")).map(|m| m.len()).unwrap_or(0)
}

fn write_some(c: &mut Conn, round: usize) {
    for i in 0..60 {
        c.cmd(&["SET", &format!("k{round}:{i}"), &i.to_string()]);
    }
    c.cmd(&["RPUSH", &format!("l{round}"), "a", "b", "c"]);
    c.cmd(&["HSET", &format!("h{round}"), "f", "v", "g", "w"]);
    c.cmd(&["ZADD", &format!("z{round}"), "1", "a", "2.5", "b"]);
    c.cmd(&["SET", &format!("ttl{round}"), "v", "EX", "1000"]);
    c.cmd(&["MSET", &format!("m{round}:a"), "1", &format!("m{round}:b"), "2", &format!("m{round}:c"), "3"]);
    c.cmd(&["DEL", &format!("k{round}:1"), &format!("k{round}:2")]);
    c.cmd(&["MULTI"]);
    c.cmd(&["INCR", &format!("ctr{round}")]);
    c.cmd(&["SADD", &format!("s{round}"), "x", "y"]);
    c.cmd(&["EXEC"]);
    c.cmd(&["SELECT", "2"]);
    c.cmd(&["SET", &format!("db2:{round}"), "x"]);
    c.cmd(&["SELECT", "0"]);
}

fn reloads(shards: &str, fsync: &str) {
    let rk = Server::ringkv(&["--appendonly", "yes", "--appendfsync", fsync, "--enable-debug-command", "yes", "--shards", shards]);
    let mut c = rk.conn();
    c.cmd(&["FUNCTION", "LOAD", "#!lua name=lib\nredis.register_function('f', function() return 1 end)"]);
    for round in 0..2 {
        write_some(&mut c, round);
        let digest = c.cmd(&["DEBUG", "DIGEST"]);
        let keys = c.cmd(&["DBSIZE"]).int();
        assert_eq!(c.cmd(&["DEBUG", "LOADAOF"]), Resp::ok(), "{}", rk.logs());
        assert_eq!(c.cmd(&["DEBUG", "DIGEST"]), digest, "round {round} ({shards} shards, {fsync})");
        assert_eq!(c.cmd(&["DBSIZE"]).int(), keys);
        assert!(c.cmd(&["TTL", &format!("ttl{round}")]).int() > 900);
        assert_eq!(c.cmd(&["FCALL", "f", "0"]).int(), 1, "the library is loaded back");
        // Nothing the load ran was appended again, nor DEBUG LOADAOF itself:
        // the AOF (flushed by the first) is the same after a second one.
        let size = incr_size(&rk);
        assert!(size > 0);
        assert_eq!(c.cmd(&["DEBUG", "LOADAOF"]), Resp::ok());
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(incr_size(&rk), size, "the AOF grew with the reload");
        assert_eq!(c.cmd(&["DEBUG", "DIGEST"]), digest);
        let info = String::from_utf8(c.cmd(&["INFO", "persistence"]).opt_bytes().unwrap()).unwrap();
        assert!(info.contains("rdb_changes_since_last_save:0\r\n"), "{info}");
    }
    let log = rk.logs();
    assert_eq!(log.matches("Append Only File loaded by DEBUG LOADAOF").count(), 4, "{log}");
}

#[test]
fn debug_loadaof_reloads_what_the_aof_holds() {
    reloads("3", "everysec");
    reloads("3", "always");
}

/// One shard: its loop is the AOF writer, so what is not written yet is
/// written by DEBUG LOADAOF itself.
#[test]
fn debug_loadaof_reloads_one_shard() {
    reloads("1", "everysec");
    reloads("1", "always");
}

/// Writes pipelined by other clients up to the DEBUG LOADAOF are all in
/// the reloaded dataset: the AOF is flushed before it is read.
#[test]
fn debug_loadaof_sees_every_acknowledged_write() {
    for shards in ["1", "2"] {
        let rk = Server::ringkv(&["--appendonly", "yes", "--enable-debug-command", "yes", "--shards", shards]);
        let mut writers: Vec<Conn> = (0..4).map(|_| rk.conn()).collect();
        for (w, c) in writers.iter_mut().enumerate() {
            for i in 0..500 {
                c.send(&["SET", &format!("w{w}:{i}"), "v"]);
            }
        }
        for c in writers.iter_mut() {
            for _ in 0..500 {
                c.read_frame().unwrap();
            }
        }
        let mut admin = rk.conn();
        assert_eq!(admin.cmd(&["DEBUG", "LOADAOF"]), Resp::ok());
        assert_eq!(admin.cmd(&["DBSIZE"]).int(), 2000, "{shards} shards");
    }
}

/// With no AOF in the directory (appendonly never on), redis-server's
/// DEBUG LOADAOF exits with status 1 (`loadAppendOnlyFiles` answers
/// AOF_NOT_EXIST); ringkv does the same.
#[test]
fn debug_loadaof_without_an_aof_exits() {
    let mut rk = Server::ringkv(&["--enable-debug-command", "yes"]);
    let mut c = rk.conn();
    c.cmd(&["SET", "k", "v"]);
    c.send(&["DEBUG", "LOADAOF"]);
    assert!(c.read_frame().is_err(), "the connection is closed");
    assert!(wait_until(Duration::from_secs(10), || !rk.alive()));
    assert_eq!(rk.exit_code(), Some(1));
}

fn resp_command(args: &[&str]) -> String {
    let mut s = format!("*{}\r\n", args.len());
    for a in args {
        s.push_str(&format!("${}\r\n{}\r\n", a.len(), a));
    }
    s
}

/// A key the AOF gives a time already past is not deleted in the middle
/// of the load, nor does a later command of the AOF find it expired
/// (Redis's checkAlreadyExpired and keyIsExpired while loading): RPUSH,
/// PEXPIREAT 1000, RPUSH is one list of two with the past TTL, which then
/// expires. (integration/aof's "AOF+EXPIRE: List should be empty".)
#[test]
fn aof_load_expires_nothing_until_it_ends() {
    let dir = std::env::temp_dir().join(format!("ringkv-loadexpire-{}", std::process::id()));
    let aofdir = dir.join("appendonlydir");
    std::fs::create_dir_all(&aofdir).unwrap();
    std::fs::write(aofdir.join("appendonly.aof.manifest"), "file appendonly.aof.1.incr.aof seq 1 type i\n").unwrap();
    let mut aof = resp_command(&["SELECT", "0"]);
    for cmd in [
        &["RPUSH", "list", "foo"][..],
        &["PEXPIREAT", "list", "1000"],
        &["RPUSH", "list", "bar"],
        &["SET", "s", "v"],
        &["PEXPIREAT", "s", "1000"],
        &["APPEND", "s", "w"],
        // Commands that look their keys up again after the typed lookup
        // (a panic, "looked up above", while only the typed lookups spared
        // a past TTL): their moves land in keys without a TTL, which stay.
        &["SADD", "set1", "a", "b"],
        &["PEXPIREAT", "set1", "1000"],
        &["SMOVE", "set1", "set2", "a"],
        &["RPUSH", "l1", "x", "y"],
        &["PEXPIREAT", "l1", "1000"],
        &["LMOVE", "l1", "l2", "LEFT", "RIGHT"],
    ] {
        aof.push_str(&resp_command(cmd));
    }
    std::fs::write(aofdir.join("appendonly.aof.1.incr.aof"), aof).unwrap();
    let dir_arg = dir.to_string_lossy().into_owned();
    let rk = Server::ringkv(&["--appendonly", "yes", "--dir", &dir_arg, "--enable-debug-command", "yes", "--shards", "2"]);
    let mut c = rk.conn();
    // The keys were built whole with the past TTL, then expired: nothing
    // of them is left (a mid-load expiry would leave `list` = [bar] and
    // `s` = "w" without a TTL).
    for round in 0..2 {
        assert_eq!(c.cmd(&["LLEN", "list"]).int(), 0);
        assert_eq!(c.cmd(&["EXISTS", "s", "set1", "l1"]).int(), 0, "round {round}");
        assert_eq!(c.cmd(&["SMEMBERS", "set2"]), Resp::Array(vec![Resp::bulk("a")]), "round {round}");
        assert_eq!(c.cmd(&["LRANGE", "l2", "0", "-1"]), Resp::Array(vec![Resp::bulk("x")]), "round {round}");
        if round == 0 {
            assert_eq!(c.cmd(&["DEBUG", "LOADAOF"]), Resp::ok());
        }
    }
    drop(c);
    drop(rk);
    let _ = std::fs::remove_dir_all(&dir);
}

fn is_loading_error(r: &Resp) -> bool {
    *r == Resp::Error("LOADING Redis is loading the dataset in memory".into())
}

/// While DEBUG LOADAOF replays the AOF (slowed by `key-load-delay`, which
/// Redis 7.0's AOF loader honours after each command), other clients are
/// answered -LOADING, reads and writes alike, and INFO shows `loading:1`
/// (redis-server serves them every 1024 commands it loads, so the AOF holds
/// 8000 and each check waits at most one such step there);
/// the DEBUG client gets +OK once the data is back, then the reply of what
/// it pipelined behind it, on the loaded data. A write acknowledged after
/// the reload is in the AOF: a second reload keeps it.
#[test]
fn debug_loadaof_answers_others_loading_meanwhile() {
    for shards in ["1", "3"] {
        let rk = Server::ringkv(&["--appendonly", "yes", "--enable-debug-command", "yes", "--shards", shards]);
        let mut admin = rk.conn();
        for i in 0..8000 {
            admin.send(&["SET", &format!("k{i}"), &format!("v{i}")]);
        }
        for _ in 0..8000 {
            admin.read_frame().unwrap();
        }
        assert_eq!(admin.cmd(&["CONFIG", "SET", "key-load-delay", "200"]), Resp::ok());
        let mut d = rk.conn();
        d.send(&["DEBUG", "LOADAOF"]);
        d.send(&["GET", "k7"]);
        let mut other = rk.conn();
        assert!(wait_until(Duration::from_secs(10), || is_loading_error(&other.cmd(&["PING"]))), "never -LOADING ({shards} shards)");
        assert!(is_loading_error(&other.cmd(&["SET", "x", "y"])));
        assert!(is_loading_error(&other.cmd(&["GET", "k1"])));
        let info = String::from_utf8(other.cmd(&["INFO", "persistence"]).opt_bytes().unwrap()).unwrap();
        assert!(info.contains("loading:1\r\n"), "{info}");
        assert!(info.contains("loading_total_bytes:"), "{info}");
        assert_eq!(admin.cmd(&["CONFIG", "SET", "key-load-delay", "0"]), Resp::ok());
        assert_eq!(d.read(), Resp::ok(), "{}", rk.logs());
        assert_eq!(d.read(), Resp::bulk("v7"));
        assert_eq!(other.cmd(&["GET", "k1"]), Resp::bulk("v1"));
        assert_eq!(other.cmd(&["DBSIZE"]).int(), 8000);
        assert!(!is_loading_error(&other.cmd(&["PING"])));
        let info = String::from_utf8(other.cmd(&["INFO", "persistence"]).opt_bytes().unwrap()).unwrap();
        assert!(info.contains("loading:0\r\n"), "{info}");
        // Acknowledged after the reload: in the AOF for the next one.
        assert_eq!(other.cmd(&["SET", "after", "1"]), Resp::ok());
        assert_eq!(d.cmd(&["DEBUG", "LOADAOF"]), Resp::ok());
        assert_eq!(other.cmd(&["GET", "after"]), Resp::bulk("1"));
        assert_eq!(other.cmd(&["DBSIZE"]).int(), 8001);
    }
}

/// `calls=N` of `cmdstat_<name>` in INFO commandstats (0 when absent).
fn command_calls(c: &mut Conn, name: &str) -> i64 {
    let info = String::from_utf8(c.cmd(&["INFO", "commandstats"]).opt_bytes().unwrap()).unwrap();
    let prefix = format!("cmdstat_{name}:calls=");
    info.lines().find_map(|l| l.strip_prefix(prefix.as_str())).map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

/// A command deferred for its reply and run again to give it (DEBUG
/// LOADAOF until its load is over, WAIT until replicas acknowledge or the
/// timeout) counts once, as in Redis, where it runs once (WAIT blocks):
/// once in commandstats, one MONITOR line, one slowlog entry for DEBUG
/// (none for a WAIT that blocked).
#[test]
fn a_command_run_again_for_its_reply_counts_once() {
    let rk = Server::ringkv(&["--appendonly", "yes", "--enable-debug-command", "yes", "--shards", "3"]);
    let mut c = rk.conn();
    write_some(&mut c, 0);
    let mut monitor = rk.conn();
    assert_eq!(monitor.cmd(&["MONITOR"]), Resp::ok());
    assert_eq!(c.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]), Resp::ok());
    assert_eq!(c.cmd(&["SLOWLOG", "RESET"]), Resp::ok());
    assert_eq!(c.cmd(&["CONFIG", "RESETSTAT"]), Resp::ok());
    assert_eq!(c.cmd(&["DEBUG", "LOADAOF"]), Resp::ok());
    assert_eq!(c.cmd(&["DEBUG", "LOADAOF"]), Resp::ok());
    // No replica: it waits out its 200 ms.
    assert_eq!(c.cmd(&["WAIT", "1", "200"]), Resp::Int(0));
    assert_eq!(c.cmd(&["ECHO", "end"]), Resp::bulk("end"));
    assert_eq!(command_calls(&mut c, "debug"), 2);
    assert_eq!(command_calls(&mut c, "wait"), 1);
    let Resp::Array(entries) = c.cmd(&["SLOWLOG", "GET", "100"]) else { panic!("SLOWLOG GET is an array") };
    let logged = |name: &str| entries.iter().filter(|e| e.array()[3].array()[0].opt_bytes().unwrap().eq_ignore_ascii_case(name.as_bytes())).count();
    // A WAIT that blocked is in no slowlog (Redis 7.0's call() skips a
    // client it left blocked, and its timeout adds none).
    assert_eq!((logged("debug"), logged("wait")), (2, 0));
    let mut lines = Vec::new();
    loop {
        let Resp::Simple(line) = monitor.read() else { panic!("a MONITOR line") };
        if line.contains("\"end\"") {
            break;
        }
        lines.push(line);
    }
    assert_eq!(lines.iter().filter(|l| l.contains("\"WAIT\"")).count(), 1, "{lines:?}");
}
