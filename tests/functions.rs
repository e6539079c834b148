//! Redis 7.0 functions that outlive the process: libraries saved in the
//! RDB and loaded back (before the keys), carried by the AOF (its RDB
//! preamble or FUNCTION LOAD commands in an AOF base, and FUNCTION
//! LOAD/DELETE in the incremental file), and FUNCTION DUMP / RESTORE with
//! Redis's payload and errors. Files and payloads move between ringkv and
//! redis-server both ways.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const LIB1: &str = "#!lua name=lib1\nredis.register_function('f1', function(keys, args) return redis.call('get', keys[1]) end)\n\
redis.register_function{function_name='f1ro', callback=function() return 'ro' end, flags={'no-writes'}}";
const LIB2: &str = "#!lua name=lib2\nredis.register_function('f2', function(keys, args) return 2 end)";
const LIB3: &str = "#!lua name=lib3\nredis.register_function('f3', function(keys, args) return 3 end)";

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringkv-functions-{}-{}", std::process::id(), name));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn dir_arg(d: &Path) -> String {
    d.to_string_lossy().into_owned()
}

/// FUNCTION LIST WITHCODE, libraries and each one's functions in name
/// order (Redis lists both in its dicts' order, which varies).
fn libraries(c: &mut Conn) -> Vec<Resp> {
    let Resp::Array(mut libs) = c.cmd(&["FUNCTION", "LIST", "WITHCODE"]) else { panic!("FUNCTION LIST is an array") };
    for lib in libs.iter_mut() {
        let Resp::Array(fields) = lib else { panic!("a library is a map") };
        if let Resp::Array(funcs) = &mut fields[5] {
            funcs.sort_by_key(|f| format!("{:?}", f.array()[1]));
        }
    }
    libs.sort_by_key(|l| format!("{:?}", l.array()[1]));
    libs
}

fn err(r: Resp) -> String {
    match r {
        Resp::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn load(c: &mut Conn, code: &str) {
    let name = code[11..].split('\n').next().unwrap().to_string();
    assert_eq!(c.cmd(&["FUNCTION", "LOAD", code]), Resp::bulk(name));
}

/// Starts ringkv (3 shards) or redis-server on `dir`.
fn start(kind: Kind, dir: &Path, extra: &[&str]) -> Server {
    let d = dir_arg(dir);
    let mut args = vec!["--dir", &d, "--enable-debug-command", "yes"];
    args.extend_from_slice(extra);
    match kind {
        Kind::Ringkv => {
            args.extend_from_slice(&["--shards", "3"]);
            Server::ringkv(&args)
        }
        Kind::Redis => Server::redis(&args),
    }
}

#[test]
fn libraries_survive_a_restart_through_the_rdb_both_ways() {
    for (writer, reader) in [(Kind::Ringkv, Kind::Ringkv), (Kind::Ringkv, Kind::Redis), (Kind::Redis, Kind::Ringkv)] {
        let dir = tempdir(&format!("rdb-{}-{}", writer.name(), reader.name()));
        let expected = {
            let s = start(writer, &dir, &[]);
            let mut c = s.conn();
            load(&mut c, LIB1);
            load(&mut c, LIB2);
            assert_eq!(c.cmd(&["SET", "k", "v"]), Resp::ok());
            assert_eq!(c.cmd(&["SAVE"]), Resp::ok());
            libraries(&mut c)
        };
        let s = start(reader, &dir, &[]);
        let mut c = s.conn();
        assert_eq!(libraries(&mut c), expected, "{} -> {}", writer.name(), reader.name());
        assert_eq!(c.cmd(&["FCALL", "f1", "1", "k"]), Resp::bulk("v"));
        assert_eq!(c.cmd(&["FCALL_RO", "f1ro", "0"]), Resp::bulk("ro"));
        // DEBUG RELOAD empties the libraries with the keys and loads them back.
        assert_eq!(c.cmd(&["FUNCTION", "DELETE", "lib2"]), Resp::ok());
        assert_eq!(c.cmd(&["DEBUG", "RELOAD"]), Resp::ok());
        assert_eq!(c.cmd(&["FUNCTION", "LIST"]).array().len(), 1);
        assert_eq!(c.cmd(&["FUNCTION", "FLUSH"]), Resp::ok());
        assert_eq!(c.cmd(&["DEBUG", "RELOAD", "NOSAVE"]), Resp::ok());
        assert_eq!(c.cmd(&["FUNCTION", "LIST"]).array().len(), 1);
        drop(c);
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn libraries_survive_a_restart_through_the_aof_both_ways() {
    for preamble in ["yes", "no"] {
        for (writer, reader) in [(Kind::Ringkv, Kind::Ringkv), (Kind::Ringkv, Kind::Redis), (Kind::Redis, Kind::Ringkv)] {
            let dir = tempdir(&format!("aof-{}-{}-{}", preamble, writer.name(), reader.name()));
            let opts = ["--appendonly", "yes", "--appendfsync", "always", "--aof-use-rdb-preamble", preamble];
            let expected = {
                let s = start(writer, &dir, &opts);
                let mut c = s.conn();
                load(&mut c, LIB1);
                assert_eq!(c.cmd(&["SET", "k", "v"]), Resp::ok());
                // The base carries lib1 (in its preamble, or as FUNCTION LOAD).
                c.cmd(&["BGREWRITEAOF"]);
                for _ in 0..200 {
                    if info_field(&mut c, "aof_rewrite_in_progress") == "0" && info_field(&mut c, "aof_rewrite_scheduled") == "0" {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                // The incremental file carries what follows.
                load(&mut c, LIB2);
                load(&mut c, LIB3);
                assert_eq!(c.cmd(&["FUNCTION", "DELETE", "lib3"]), Resp::ok());
                libraries(&mut c)
            };
            assert_eq!(expected.len(), 2);
            let s = start(reader, &dir, &opts);
            let mut c = s.conn();
            assert_eq!(libraries(&mut c), expected, "preamble {} {} -> {}", preamble, writer.name(), reader.name());
            assert_eq!(c.cmd(&["FCALL", "f1", "1", "k"]), Resp::bulk("v"));
            assert_eq!(c.cmd(&["FCALL", "f2", "0"]), Resp::Int(2));
            drop(c);
            drop(s);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

fn info_field(c: &mut Conn, field: &str) -> String {
    let Resp::Bulk(info) = c.cmd(&["INFO", "persistence"]) else { panic!("INFO is a bulk") };
    let info = String::from_utf8_lossy(&info).into_owned();
    info.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).unwrap_or_default().trim().to_string()
}

fn dump(c: &mut Conn) -> Vec<u8> {
    match c.cmd(&["FUNCTION", "DUMP"]) {
        Resp::Bulk(p) => p,
        other => panic!("FUNCTION DUMP: {other:?}"),
    }
}

#[test]
fn dump_and_restore_policies_and_errors() {
    let s = Server::ringkv(&["--shards", "3"]);
    let mut c = s.conn();
    load(&mut c, LIB1);
    let payload = dump(&mut c);
    // APPEND (the default) refuses a library that exists.
    assert_eq!(err(c.cmd(&[&b"FUNCTION"[..], b"RESTORE", &payload])), "ERR Library lib1 already exists");
    assert_eq!(err(c.cmd(&[&b"FUNCTION"[..], b"RESTORE", &payload, b"APPEND"])), "ERR Library lib1 already exists");
    assert_eq!(c.cmd(&[&b"FUNCTION"[..], b"RESTORE", &payload, b"replace"]), Resp::ok());
    load(&mut c, LIB2);
    assert_eq!(c.cmd(&[&b"FUNCTION"[..], b"RESTORE", &payload, b"FLUSH"]), Resp::ok());
    assert_eq!(c.cmd(&["FUNCTION", "LIST"]).array().len(), 1);
    assert_eq!(c.cmd(&["FUNCTION", "FLUSH"]), Resp::ok());
    assert_eq!(c.cmd(&[&b"FUNCTION"[..], b"RESTORE", &payload]), Resp::ok());
    assert_eq!(c.cmd(&["FCALL_RO", "f1ro", "0"]), Resp::bulk("ro"));
    // A replaced library whose function another library has: nothing changes.
    assert_eq!(c.cmd(&["FUNCTION", "FLUSH"]), Resp::ok());
    load(&mut c, "#!lua name=lib1\nredis.register_function('f6', function() return 6 end)");
    load(&mut c, "#!lua name=other\nredis.register_function('f1', function() return 'other' end)");
    assert_eq!(err(c.cmd(&[&b"FUNCTION"[..], b"RESTORE", &payload, b"REPLACE"])), "ERR Function f1 already exists");
    assert_eq!(c.cmd(&["FCALL", "f6", "0"]), Resp::Int(6));
    assert_eq!(c.cmd(&["FCALL", "f1", "0"]), Resp::bulk("other"));
    // Errors, in Redis's order and words.
    assert_eq!(err(c.cmd(&["FUNCTION", "RESTORE", "bad_payload"])), "ERR DUMP payload version or checksum are wrong");
    assert_eq!(err(c.cmd(&["FUNCTION", "RESTORE", "bad_payload", "nope"])), "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.");
    assert_eq!(err(c.cmd(&["FUNCTION", "RESTORE", "a", "b", "c"])), "ERR unknown subcommand or wrong number of arguments for 'RESTORE'. Try FUNCTION HELP.");
    assert_eq!(c.cmd(&["SET", "key", "value"]), Resp::ok());
    let Resp::Bulk(key_payload) = c.cmd(&["DUMP", "key"]) else { panic!("DUMP is a bulk") };
    assert_eq!(err(c.cmd(&[&b"FUNCTION"[..], b"RESTORE", &key_payload])), "ERR given type is not a function");
    assert_eq!(c.cmd(&["FUNCTION", "LIST"]).array().len(), 2);
    // An empty dump restores nothing; with FLUSH it empties.
    assert_eq!(c.cmd(&["FUNCTION", "FLUSH"]), Resp::ok());
    let empty = dump(&mut c);
    load(&mut c, LIB2);
    assert_eq!(c.cmd(&[&b"FUNCTION"[..], b"RESTORE", &empty]), Resp::ok());
    assert_eq!(c.cmd(&["FUNCTION", "LIST"]).array().len(), 1);
    assert_eq!(c.cmd(&[&b"FUNCTION"[..], b"RESTORE", &empty, b"FLUSH"]), Resp::ok());
    assert_eq!(c.cmd(&["FUNCTION", "LIST"]).array().len(), 0);
    assert_eq!(err(c.cmd(&["FUNCTION", "LIST", "LIBRARYNAME"])), "ERR library name argument was not given");
    assert_eq!(err(c.cmd(&["FUNCTION", "FLUSH", "SYNC", "x"])), "ERR unknown subcommand or wrong number of arguments for 'FLUSH'. Try FUNCTION HELP.");
}

#[test]
fn payloads_move_between_ringkv_and_redis_both_ways() {
    let (ringkv, redis) = Server::pair(&[], &["--shards", "3"]);
    let (mut a, mut b) = (ringkv.conn(), redis.conn());
    load(&mut a, LIB1);
    load(&mut b, LIB2);
    let (pa, pb) = (dump(&mut a), dump(&mut b));
    assert_eq!(a.cmd(&[&b"FUNCTION"[..], b"RESTORE", &pb]), Resp::ok());
    assert_eq!(b.cmd(&[&b"FUNCTION"[..], b"RESTORE", &pa]), Resp::ok());
    assert_eq!(libraries(&mut a), libraries(&mut b));
    assert_eq!(a.cmd(&["FCALL", "f2", "0"]), Resp::Int(2));
    assert_eq!(b.cmd(&["FCALL_RO", "f1ro", "0"]), Resp::bulk("ro"));
}
