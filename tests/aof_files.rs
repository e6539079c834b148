//! Redis 7.0's multi-part AOF directory against the real thing: ringkv's
//! manifest and reader on the directories redis-server writes (with and
//! without the RDB preamble, with timestamp annotations), redis-check-aof and
//! redis-server on a directory ringkv's manifest writer and command
//! formatter wrote, the verdict on a truncated incr file compared with what
//! redis-server does with it, and the upgrade of a pre-7.0 appendonly.aof.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use ringkv::persistence::aof::manifest::{self, upgraded_manifest};
use ringkv::persistence::aof::{
    load_dir, load_manifest, needs_upgrade, persist_manifest, upgrade_old_style, AppendState, DirStatus, Item, Manifest, ReadOptions, Refusal,
};

const NAME: &str = "appendonly.aof";
const AOF_DIR: &str = "appendonlydir";

/// (db, key) -> (value, absolute expiry in ms)
type Model = BTreeMap<(usize, Vec<u8>), (Vec<u8>, Option<i64>)>;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn opts(load_truncated: bool) -> ReadOptions {
    ReadOptions { load_truncated, databases: 16, now_ms: now_ms(), appendfilename: NAME.into(), encodings: Default::default() }
}

/// A fresh directory of this test process.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringkv-aof-files-{}-{}", std::process::id(), name));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A scratch directory with a copy of `dir`'s AOF directory: ringkv works
/// on the copy while redis-server works on the original.
fn copy_of(dir: &Path, name: &str) -> PathBuf {
    let copy = scratch(name);
    std::fs::create_dir_all(copy.join(AOF_DIR)).unwrap();
    for f in std::fs::read_dir(dir.join(AOF_DIR)).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), copy.join(AOF_DIR).join(f.file_name())).unwrap();
    }
    copy
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs the string commands these tests write, as Redis would, on a model.
fn apply(model: &mut Model, db: usize, argv: &[&[u8]]) -> Result<(), Refusal> {
    let name = text(argv[0]).to_ascii_lowercase();
    let key = (db, argv.get(1).map(|k| k.to_vec()).unwrap_or_default());
    let number = |i: usize| -> i64 { text(argv[i]).parse().unwrap() };
    match name.as_str() {
        "set" => {
            let mut expire = None;
            let mut i = 3;
            while i < argv.len() {
                let unit_ms = match text(argv[i]).to_ascii_lowercase().as_str() {
                    "ex" | "exat" => 1000,
                    "px" | "pxat" => 1,
                    _ => {
                        i += 1;
                        continue;
                    }
                };
                let relative = argv[i].len() == 2;
                let t = number(i + 1) * unit_ms;
                expire = Some(if relative { now_ms() + t } else { t });
                i += 2;
            }
            model.insert(key, (argv[2].to_vec(), expire));
        }
        "incr" => {
            let entry = model.entry(key).or_insert((b"0".to_vec(), None));
            entry.0 = (text(&entry.0).parse::<i64>().unwrap() + 1).to_string().into_bytes();
        }
        "del" => {
            model.remove(&key);
        }
        "pexpireat" => {
            let t = number(2);
            model.get_mut(&key).unwrap().1 = Some(t);
        }
        _ => return Err(Refusal::UnknownCommand(argv[0].to_vec())),
    }
    Ok(())
}

/// Everything ringkv's manifest parser and reader find in `dir/appendonlydir`,
/// run on a model, and the commands seen (as text, with their db).
fn read_back(dir: &Path, load_truncated: bool) -> (Result<DirStatus, String>, Model, Vec<String>) {
    let aof_dir = dir.join(AOF_DIR);
    let manifest = load_manifest(&aof_dir, NAME).unwrap().expect("no manifest");
    let mut model = Model::new();
    let mut seen = Vec::new();
    let run = |db: usize, argv: &[&[u8]], model: &mut Model, seen: &mut Vec<String>| {
        seen.push(format!("{}:{}", db, argv.iter().map(|a| text(a)).collect::<Vec<_>>().join(" ")));
        apply(model, db, argv)
    };
    let status = load_dir(&aof_dir, &manifest, &opts(load_truncated), |item| match item {
        Item::Key { db, key, entry } => {
            let exp = (entry.expire_at_ms >= 0).then_some(entry.expire_at_ms);
            model.insert((db, key), (entry.value.to_vec(), exp));
            Ok(())
        }
        Item::Command(c) => run(c.db, &c.argv, &mut model, &mut seen),
        Item::Library(code) => {
            seen.push(format!("library {}", text(&code)));
            Ok(())
        }
        Item::Transaction(cs) => {
            seen.push("MULTI".into());
            for c in cs {
                run(c.db, &c.argv, &mut model, &mut seen)?;
            }
            seen.push("EXEC".into());
            Ok(())
        }
    })
    .map_err(|e| e.redis_log_lines().join("\n"));
    (status, model, seen)
}

/// The server's keys, values and expiry (absolute, from PTTL) in dbs 0..16.
fn server_state(server: &Server) -> Model {
    let mut c = server.conn();
    let mut model = Model::new();
    for db in 0..16usize {
        assert_eq!(c.cmd(&["SELECT", &db.to_string()]), Resp::ok());
        for key in c.cmd(&["KEYS", "*"]).array().to_vec() {
            let key = key.opt_bytes().unwrap();
            let value = c.cmd(&[&b"GET"[..], &key]).opt_bytes().unwrap();
            let pttl = c.cmd(&[&b"PTTL"[..], &key]).int();
            model.insert((db, key), (value, (pttl >= 0).then(|| now_ms() + pttl)));
        }
    }
    model
}

/// Same keys and values; expiries present on the same keys and within 10 s
/// of each other (PTTL is read later than the model's clock).
fn assert_same(ours: &Model, redis: &Model, context: &str) {
    let strip = |m: &Model| m.iter().map(|(k, v)| (k.clone(), v.0.clone(), v.1.is_some())).collect::<Vec<_>>();
    assert_eq!(strip(ours), strip(redis), "{}: keys, values or which keys expire differ", context);
    for (k, (_, exp)) in ours {
        if let (Some(a), Some(b)) = (exp, redis[k].1) {
            assert!((a - b).abs() < 10_000, "{}: expiry of {:?} differs: {} vs {}", context, k, a, b);
        }
    }
}

/// The workload: strings in two dbs, a transaction, expiries set three ways.
fn write_workload(c: &mut Conn, phase: u32) {
    let p = phase.to_string();
    assert_eq!(c.cmd(&["SET", &format!("a{}", p), "1"]), Resp::ok());
    assert_eq!(c.cmd(&["SELECT", "2"]), Resp::ok());
    assert_eq!(c.cmd(&["SET", &format!("b{}", p), "two words"]), Resp::ok());
    assert_eq!(c.cmd(&["MULTI"]), Resp::ok());
    assert_eq!(c.cmd(&["SET", &format!("c{}", p), "3"]), Resp::Simple("QUEUED".into()));
    assert_eq!(c.cmd(&["INCR", &format!("c{}", p)]), Resp::Simple("QUEUED".into()));
    assert_eq!(c.cmd(&["EXEC"]).array().len(), 2);
    assert_eq!(c.cmd(&["SET", &format!("e{}", p), "5", "EX", "1000"]), Resp::ok());
    assert_eq!(c.cmd(&["SET", &format!("f{}", p), "6"]), Resp::ok());
    assert_eq!(c.cmd(&["EXPIRE", &format!("f{}", p), "2000"]).int(), 1);
    assert_eq!(c.cmd(&["SELECT", "0"]), Resp::ok());
    assert_eq!(c.cmd(&["SET", &format!("gone{}", p), "x"]), Resp::ok());
    assert_eq!(c.cmd(&["DEL", &format!("gone{}", p)]).int(), 1);
}

/// redis-server with AOF on writes a base and an incr file; BGREWRITEAOF
/// makes a new base of both and a new incr file. ringkv reads the
/// directory back to exactly the server's keys, values and expiries.
fn redis_directory_reads_back(extra: &[&str]) -> Vec<String> {
    // `always`: the command is in the file before its reply. With
    // `everysec` Redis may hold writes back up to 2 s while a background
    // fsync runs (right after a rewrite, the old incr file's), replying all
    // the same: a read right after the replies then misses them.
    let mut args = vec!["--appendonly", "yes", "--appendfsync", "always"];
    args.extend_from_slice(extra);
    let server = Server::redis(&args);
    let mut c = server.conn();
    write_workload(&mut c, 1);
    assert_eq!(c.cmd(&["BGREWRITEAOF"]), Resp::Simple("Background append only file rewriting started".into()));
    let aof_dir = server.dir.join(AOF_DIR);
    // Done when the manifest names base 2 and the history files are gone.
    let rewritten = wait_until(Duration::from_secs(20), || {
        load_manifest(&aof_dir, NAME).ok().flatten().is_some_and(|m| m.base.as_ref().is_some_and(|b| b.seq == 2) && m.history.is_empty())
    });
    assert!(rewritten, "BGREWRITEAOF did not finish; log:\n{}", server.logs());
    if extra.contains(&"--aof-timestamp-enabled") {
        // Redis annotates when the second changes; the rewrite's second was
        // annotated in the incr file it made history.
        std::thread::sleep(Duration::from_millis(1100));
    }
    write_workload(&mut c, 2);
    let manifest = load_manifest(&aof_dir, NAME).unwrap().unwrap();
    let rdb = !extra.contains(&"no");
    let base = if rdb { "appendonly.aof.2.base.rdb" } else { "appendonly.aof.2.base.aof" };
    assert_eq!(text(&manifest.to_bytes()), format!("file {} seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n", base));
    assert_eq!(manifest.to_bytes(), std::fs::read(aof_dir.join("appendonly.aof.manifest")).unwrap(), "not written back byte for byte");
    if extra.contains(&"--aof-timestamp-enabled") {
        let incr = std::fs::read(aof_dir.join("appendonly.aof.2.incr.aof")).unwrap();
        assert!(incr.starts_with(b"#TS:"), "no annotation to skip: {}", escape(&incr, 100));
    }
    let (status, ours, seen) = read_back(&server.dir, false);
    let Ok(DirStatus::Loaded(load)) = status else { panic!("{:?}", status.err()) };
    assert!(!load.truncated);
    let first = if rdb { "Reading RDB base file on AOF loading..." } else { "DB loaded from base file appendonly.aof.2.base.aof: " };
    assert!(load.log_lines[0].text.starts_with(first), "{:?}", load.log_lines);
    assert_same(&ours, &server_state(&server), &format!("redis-server {:?}", extra));
    seen
}

#[test]
fn redis_directory_with_rdb_preamble() {
    let seen = redis_directory_reads_back(&[]);
    // The base is RDB: only the incr file's commands are commands.
    assert_eq!(seen.first().map(String::as_str), Some("0:SET a2 1"));
    assert!(seen.contains(&"MULTI".to_string()) && seen.contains(&"2:SET c2 3".to_string()), "{:?}", seen);
}

#[test]
fn redis_directory_without_rdb_preamble() {
    let seen = redis_directory_reads_back(&["--aof-use-rdb-preamble", "no"]);
    // The base is commands: Redis's rewrite of phase 1, then the incr file.
    assert!(seen.iter().any(|s| s.starts_with("2:SET c1 4")), "{:?}", seen);
    assert!(seen.iter().any(|s| s.starts_with("2:PEXPIREAT e1 ")), "{:?}", seen);
    assert!(seen.contains(&"0:SET a2 1".to_string()), "{:?}", seen);
}

#[test]
fn redis_directory_with_timestamp_annotations() {
    let seen = redis_directory_reads_back(&["--aof-timestamp-enabled", "yes"]);
    assert!(seen.contains(&"0:SET a2 1".to_string()), "{:?}", seen);
}

/// A directory as ringkv's AOF will write it: a `.base.aof` of plain
/// commands and an incr file, each formatted by `AppendState`, listed by a
/// persisted manifest.
fn write_ringkv_directory(dir: &Path, expire_at_ms: i64) -> Manifest {
    let aof_dir = dir.join(AOF_DIR);
    std::fs::create_dir_all(&aof_dir).unwrap();
    let mut m = Manifest::default();
    let base = m.new_base(NAME, false).path_in(&aof_dir);
    let mut bytes = Vec::new();
    let mut s = AppendState::new();
    s.feed(&mut bytes, 0, &["SET", "base0", "zero"], None);
    s.feed(&mut bytes, 1, &["SET", "base1", "one"], None);
    s.feed(&mut bytes, 1, &["PEXPIREAT", "base1", &expire_at_ms.to_string()], None);
    std::fs::write(&base, &bytes).unwrap();
    let incr = m.new_incr(NAME).path_in(&aof_dir);
    let mut bytes = Vec::new();
    let mut s = AppendState::new();
    let now = (now_ms() / 1000) - 5;
    s.feed(&mut bytes, 0, &["SET", "incr0", "a b\r\nc"], Some(now));
    s.feed(&mut bytes, 3, &["SET", "incr3", "3", "PXAT", &expire_at_ms.to_string()], Some(now));
    s.feed(&mut bytes, 3, &["MULTI"], Some(now + 1));
    s.feed(&mut bytes, 3, &["SET", "n", "41"], Some(now + 1));
    s.feed(&mut bytes, 3, &["INCR", "n"], Some(now + 1));
    s.feed(&mut bytes, 3, &["EXEC"], Some(now + 1));
    s.feed(&mut bytes, 0, &["DEL", "base0"], Some(now + 1));
    std::fs::write(&incr, &bytes).unwrap();
    persist_manifest(&aof_dir, NAME, &m).unwrap();
    m
}

fn check_aof(manifest_path: &Path) -> (bool, String) {
    require_tool("redis-check-aof");
    let out = run_with_timeout(Process::new("redis-check-aof").arg(manifest_path), None, Duration::from_secs(20));
    (out.status.success(), format!("{}{}", text(&out.stdout), text(&out.stderr)))
}

#[test]
fn ringkv_directory_is_accepted_by_redis_check_aof_and_loaded_by_redis_server() {
    let dir = scratch("written");
    let expire = now_ms() + 3_600_000;
    let written = write_ringkv_directory(&dir, expire).to_bytes();
    let (ok, out) = check_aof(&dir.join(AOF_DIR).join("appendonly.aof.manifest"));
    assert!(ok && out.contains("All AOF files and manifest are valid"), "redis-check-aof refused it:\n{}", out);
    assert!(out.contains("Start to check BASE AOF (RESP format).") && out.contains("INCR AOF appendonly.aof.1.incr.aof is valid"), "{}", out);
    let (status, ours, _) = read_back(&dir, false);
    assert!(matches!(status, Ok(DirStatus::Loaded(_))), "{:?}", status.err());
    let expect: Vec<_> = ours.keys().map(|(db, k)| format!("{}:{}", db, text(k))).collect();
    assert_eq!(expect, vec!["0:incr0", "1:base1", "3:incr3", "3:n"]);
    let server = Server::redis(&["--appendonly", "yes", "--dir", &path_str(&dir)]);
    assert_same(&ours, &server_state(&server), "redis-server on ringkv's directory");
    // Redis found nothing to change: it appends to ringkv's last incr file.
    assert_eq!(text(&std::fs::read(dir.join(AOF_DIR).join("appendonly.aof.manifest")).unwrap()), text(&written));
    assert!(server.logs().contains("Opening AOF incr file appendonly.aof.1.incr.aof on server start"), "{}", server.logs());
    assert_eq!(ours[&(3, b"n".to_vec())].0, b"42");
    assert_eq!(ours[&(1, b"base1".to_vec())].1, Some(expire));
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// redis-server on `dir` that is expected to refuse it: its exit status and log.
fn redis_refuses(dir: &Path, extra: &[&str]) -> String {
    require_tool("redis-server");
    let log = dir.join("refused.log");
    let port = free_port().to_string();
    let mut p = Process::new("redis-server");
    p.args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--daemonize", "no", "--appendonly", "yes"]);
    p.arg("--dir").arg(dir).arg("--logfile").arg(&log).args(extra);
    let out = run_with_timeout(&mut p, None, Duration::from_secs(20));
    assert!(!out.status.success(), "redis-server accepted it");
    std::fs::read_to_string(&log).unwrap()
}

/// An incr file cut inside its last command, and one cut inside an open
/// MULTI: ringkv's verdict, its log lines and its truncation offset are
/// redis-server 7.0's, with aof-load-truncated off (refuses to start) and on
/// (cuts the file there and loads the rest).
#[test]
fn truncated_incr_file_verdict_matches_redis_server() {
    let expire = now_ms() + 3_600_000;
    // The incr file's bytes end: "...EXEC ... DEL base0". Cut 5 bytes off
    // its end (inside DEL), and cut just after "SET n 41" (inside MULTI).
    for (case, cut) in [("in-command", Cut::FromEnd(5)), ("in-multi", Cut::AfterText("$1\r\nn\r\n$2\r\n41\r\n"))] {
        let dir = scratch(&format!("trunc-{}", case));
        write_ringkv_directory(&dir, expire);
        let incr = dir.join(AOF_DIR).join("appendonly.aof.1.incr.aof");
        let mut bytes = std::fs::read(&incr).unwrap();
        let len = match cut {
            Cut::FromEnd(n) => bytes.len() - n,
            Cut::AfterText(t) => bytes.windows(t.len()).position(|w| w == t.as_bytes()).unwrap() + t.len(),
        };
        bytes.truncate(len);
        std::fs::write(&incr, &bytes).unwrap();

        // Off (Redis defaults to on): an error, with Redis's lines.
        let (status, _, _) = read_back(&dir, false);
        let ours = status.expect_err("read a short file without complaint");
        let log = redis_refuses(&dir, &["--aof-load-truncated", "no"]);
        for line in ours.lines() {
            assert!(log.contains(line), "{}: redis-server did not log {:?}; log:\n{}", case, line, log);
        }
        assert!(ours.contains("Unexpected end of file reading the append only file appendonly.aof.1.incr.aof."), "{}", ours);
        assert_eq!(std::fs::read(&incr).unwrap(), bytes, "a failed load changed the file");

        // On: ringkv cuts a copy, redis-server the original; same bytes,
        // same lines, same keys.
        let copy = copy_of(&dir, &format!("trunc-{}-copy", case));
        let (status, ours, _) = read_back(&copy, true);
        let Ok(DirStatus::Loaded(load)) = status else { panic!("{}: {:?}", case, status.err()) };
        assert!(load.truncated);
        let server = Server::redis(&["--appendonly", "yes", "--aof-load-truncated", "yes", "--dir", &path_str(&dir)]);
        let log = server.logs();
        for line in load.log_lines.iter().filter(|l| l.text.contains("!!!") || l.text.contains("Revert") || l.text.contains("loaded anyway")) {
            // At Redis's level: `#` a warning, `*` a notice.
            let logged = format!("{} {}", if line.warning { "#" } else { "*" }, line.text);
            assert!(log.contains(&logged), "{}: redis-server did not log {:?}; log:\n{}", case, logged, log);
        }
        let cut_ours = std::fs::read(copy.join(AOF_DIR).join("appendonly.aof.1.incr.aof")).unwrap();
        let cut_redis = std::fs::read(&incr).unwrap();
        assert_eq!(cut_ours.len(), cut_redis.len(), "{}: cut at a different offset", case);
        assert_same(&ours, &server_state(&server), case);
        drop(server);
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&copy).unwrap();
    }
}

enum Cut {
    FromEnd(usize),
    AfterText(&'static str),
}

/// A pre-7.0 `appendonly.aof` in `dir`: ringkv's upgrade and redis-server's
/// give the same manifest and files, and the same keys.
#[test]
fn pre_7_0_appendonly_aof_is_upgraded_as_redis_does() {
    let ours_dir = scratch("upgrade-ours");
    let redis_dir = scratch("upgrade-redis");
    let mut old = Vec::new();
    let mut s = AppendState::new();
    s.feed(&mut old, 0, &["SET", "old", "style"], None);
    s.feed(&mut old, 4, &["SET", "four", "4"], None);
    std::fs::write(ours_dir.join(NAME), &old).unwrap();
    std::fs::write(redis_dir.join(NAME), &old).unwrap();

    assert!(needs_upgrade(&ours_dir, AOF_DIR, NAME, &Manifest::default()));
    let (mut m, line) = upgrade_old_style(&ours_dir, AOF_DIR, NAME).unwrap();
    assert_eq!(m, upgraded_manifest(NAME));
    assert!(!ours_dir.join(NAME).exists() && ours_dir.join(AOF_DIR).join(NAME).is_file());
    assert!(!needs_upgrade(&ours_dir, AOF_DIR, NAME, &m), "the upgrade would run twice");
    // Then the start-up opens the incr file appends go to.
    let incr = m.last_incr_or_new(NAME).path_in(&ours_dir.join(AOF_DIR));
    std::fs::write(incr, b"").unwrap();
    persist_manifest(&ours_dir.join(AOF_DIR), NAME, &m).unwrap();

    let server = Server::redis(&["--appendonly", "yes", "--dir", &path_str(&redis_dir)]);
    assert!(server.logs().contains(&line), "redis-server did not log {:?}; log:\n{}", line, server.logs());
    let manifest_name = manifest::manifest_name(NAME);
    let redis_manifest = std::fs::read(redis_dir.join(AOF_DIR).join(&manifest_name)).unwrap();
    assert_eq!(text(&m.to_bytes()), text(&redis_manifest));
    assert_eq!(text(&redis_manifest), "file appendonly.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n");
    let list = |d: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(d.join(AOF_DIR)).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    };
    assert_eq!(list(&ours_dir), list(&redis_dir));
    let (status, ours, _) = read_back(&ours_dir, false);
    let Ok(DirStatus::Loaded(load)) = status else { panic!("{:?}", status.err()) };
    assert!(load.log_lines[0].text.starts_with("DB loaded from base file appendonly.aof: "), "{:?}", load.log_lines);
    assert_same(&ours, &server_state(&server), "upgraded directory");
    assert_eq!(ours.len(), 2);
    drop(server);
    std::fs::remove_dir_all(&ours_dir).unwrap();
    std::fs::remove_dir_all(&redis_dir).unwrap();
}

/// A short base before an incr file, and an incr file the manifest lists
/// but the directory lacks: ringkv refuses both with redis-server's lines,
/// and cuts the short base where redis-server cuts it.
#[test]
fn short_base_and_missing_incr_are_refused_as_redis_does() {
    let expire = now_ms() + 3_600_000;
    let dir = scratch("short-base");
    write_ringkv_directory(&dir, expire);
    let base = dir.join(AOF_DIR).join("appendonly.aof.1.base.aof");
    let bytes = std::fs::read(&base).unwrap();
    std::fs::write(&base, &bytes[..bytes.len() - 3]).unwrap();
    let copy = copy_of(&dir, "short-base-copy");
    let (status, _, _) = read_back(&copy, true);
    let ours = status.expect_err("a short base before an incr file was accepted");
    // aof-load-truncated is on by default.
    let log = redis_refuses(&dir, &[]);
    for line in ours.lines() {
        assert!(log.contains(line), "redis-server did not log {:?}; log:\n{}", line, log);
    }
    assert!(ours.ends_with("Fatal error: the truncated file is not the last file"), "{}", ours);
    let cut = |d: &Path| std::fs::metadata(d.join(AOF_DIR).join("appendonly.aof.1.base.aof")).unwrap().len();
    assert_eq!(cut(&copy), cut(&dir));
    assert!(cut(&dir) < bytes.len() as u64 - 3);

    std::fs::remove_file(dir.join(AOF_DIR).join("appendonly.aof.1.incr.aof")).unwrap();
    std::fs::remove_file(copy.join(AOF_DIR).join("appendonly.aof.1.incr.aof")).unwrap();
    let (status, _, _) = read_back(&copy, true);
    let ours = status.expect_err("a missing incr file was accepted");
    assert_eq!(ours, "Unable to obtain the AOF file appendonly.aof.1.incr.aof length. stat: No such file or directory");
    let log = redis_refuses(&dir, &[]);
    assert!(log.contains(&ours), "redis-server did not log {:?}; log:\n{}", ours, log);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&copy).unwrap();
}
