//! ringkv driven by a real client library (the `redis` crate, sync API):
//! pipelines, many connections, RESP3, multi-key commands across shards,
//! binary-safe values.

mod common;

use common::Server;
use redis::{Commands, Value};

fn server() -> Server {
    Server::ringkv(&["--shards", "3"])
}

#[test]
fn pipeline_of_1000_sets_then_gets() {
    let s = server();
    let mut con = s.redis_client();
    let mut p = redis::pipe();
    for i in 0..1000 {
        p.set(format!("pipe:{}", i), i).ignore();
    }
    for i in 0..1000 {
        p.get(format!("pipe:{}", i));
    }
    let got: Vec<i64> = p.query(&mut con).unwrap();
    assert_eq!(got, (0..1000).collect::<Vec<i64>>());
    // Mixed SET/GET in one pipeline: every GET sees the SET just before it.
    let mut p = redis::pipe();
    for i in 0..1000 {
        p.set(format!("mix:{}", i % 37), i).ignore().get(format!("mix:{}", i % 37));
    }
    let got: Vec<i64> = p.query(&mut con).unwrap();
    assert_eq!(got, (0..1000).collect::<Vec<i64>>());
    let n: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, 1037);
}

#[test]
fn fifty_connections_from_threads() {
    let s = server();
    std::thread::scope(|scope| {
        for t in 0..50 {
            let s = &s;
            scope.spawn(move || {
                let mut con = s.redis_client();
                for i in 0..40 {
                    let key = format!("t{}:{}", t, i);
                    let () = con.set(&key, format!("{}-{}", t, i)).unwrap();
                    let v: String = con.get(&key).unwrap();
                    assert_eq!(v, format!("{}-{}", t, i));
                }
                let pong: String = redis::cmd("PING").query(&mut con).unwrap();
                assert_eq!(pong, "PONG");
            });
        }
    });
    let mut con = s.redis_client();
    let n: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, 50 * 40);
}

#[test]
fn resp3_connection() {
    let s = server();
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/?protocol=resp3", s.port)).unwrap();
    let mut con = client.get_connection_with_timeout(common::IO_TIMEOUT).expect("RESP3 connection (HELLO 3)");
    con.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
    let () = con.set("r3", "v").unwrap();
    let v: String = con.get("r3").unwrap();
    assert_eq!(v, "v");
    // A missing key is RESP3's null (`_`), which the crate reports as Nil.
    let missing: Value = redis::cmd("GET").arg("nope").query(&mut con).unwrap();
    assert_eq!(missing, Value::Nil);
    let n: i64 = con.exists("r3").unwrap();
    assert_eq!(n, 1);
    // HELLO's reply is a map in RESP3.
    let hello: Value = redis::cmd("HELLO").arg(3).query(&mut con).unwrap();
    let Value::Map(fields) = hello else { panic!("HELLO 3 did not reply a map: {:?}", hello) };
    let proto = fields.iter().find(|(k, _)| *k == Value::BulkString(b"proto".to_vec()) || *k == Value::SimpleString("proto".into()));
    assert_eq!(proto.map(|(_, v)| v.clone()), Some(Value::Int(3)));
}

/// Keys that live on every shard of a 3-shard server.
fn keys_on_all_shards(prefix: &str, shards: usize) -> Vec<String> {
    let mut found: Vec<Option<String>> = vec![None; shards];
    let mut i = 0;
    while found.iter().any(|k| k.is_none()) {
        let k = format!("{}{}", prefix, i);
        let sh = common::key_shard(k.as_bytes(), shards);
        found[sh].get_or_insert(k);
        i += 1;
    }
    found.into_iter().map(|k| k.unwrap()).collect()
}

#[test]
fn mget_mset_across_shards() {
    let s = server();
    let mut con = s.redis_client();
    let keys = keys_on_all_shards("mk", 3);
    let mut all: Vec<String> = keys.clone();
    all.extend((0..30).map(|i| format!("spread:{}", i)));
    let pairs: Vec<(String, String)> = all.iter().map(|k| (k.clone(), format!("val-{}", k))).collect();
    let () = con.mset(&pairs).unwrap();
    let got: Vec<Option<String>> = con.mget(&all).unwrap();
    assert_eq!(got, all.iter().map(|k| Some(format!("val-{}", k))).collect::<Vec<_>>());
    // Missing keys interleaved keep their positions.
    let mut mixed = vec![];
    for k in &keys {
        mixed.push(k.clone());
        mixed.push(format!("{}-missing", k));
    }
    let got: Vec<Option<String>> = con.mget(&mixed).unwrap();
    for (i, v) in got.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(v.as_deref(), Some(format!("val-{}", mixed[i]).as_str()));
        } else {
            assert_eq!(*v, None);
        }
    }
    // Duplicate keys in MSET: the last value wins.
    let () = redis::cmd("MSET").arg(&keys[0]).arg("first").arg(&keys[1]).arg("x").arg(&keys[0]).arg("last").query(&mut con).unwrap();
    let v: String = con.get(&keys[0]).unwrap();
    assert_eq!(v, "last");
    let n: i64 = redis::cmd("DEL").arg(&keys).query(&mut con).unwrap();
    assert_eq!(n, 3);
    let n: i64 = redis::cmd("EXISTS").arg(&keys).query(&mut con).unwrap();
    assert_eq!(n, 0);
}

#[test]
fn binary_safe_values() {
    let s = server();
    let mut con = s.redis_client();
    let all: Vec<u8> = (0..=255u8).collect();
    let () = con.set("bin", &all).unwrap();
    let got: Vec<u8> = con.get("bin").unwrap();
    assert_eq!(got, all);
    // Every byte value as a one-byte value and inside keys.
    let mut p = redis::pipe();
    for b in 0..=255u8 {
        p.set(vec![b'k', b, b'\r', b'\n'], vec![b]).ignore();
    }
    for b in 0..=255u8 {
        p.get(vec![b'k', b, b'\r', b'\n']);
    }
    let got: Vec<Vec<u8>> = p.query(&mut con).unwrap();
    assert_eq!(got, (0..=255u8).map(|b| vec![b]).collect::<Vec<_>>());
    // 1 MiB of pseudo-random bytes.
    let mut big = vec![0u8; 1 << 20];
    common::Rng::new(42).fill(&mut big);
    let () = con.set("big", &big).unwrap();
    let got: Vec<u8> = con.get("big").unwrap();
    assert!(got == big, "1 MiB value came back different ({} bytes)", got.len());
    let n: i64 = con.del("big").unwrap();
    assert_eq!(n, 1);
}

/// ringkv's own configs (`shards`, `cpu-affinity`, fixed at start) answer
/// when asked by name but stay out of CONFIG GET patterns, so a tool that
/// sets back every config `CONFIG GET *` lists works as on Redis.
#[test]
fn ringkv_own_configs_answer_by_name_only() {
    let s = Server::ringkv(&[]);
    let mut c = s.conn();
    let all = c.cmd(&["CONFIG", "GET", "*"]);
    let names: Vec<Vec<u8>> = all.array().chunks(2).map(|kv| kv[0].opt_bytes().unwrap()).collect();
    assert!(names.len() > 100, "{names:?}");
    for own in ["shards", "cpu-affinity", "shard-sched-batch"] {
        assert!(!names.iter().any(|n| n == own.as_bytes()), "{own} listed by CONFIG GET *");
        assert!(c.cmd(&["CONFIG", "GET", "s*"]).array().chunks(2).all(|kv| kv[0].opt_bytes().unwrap() != b"shards"));
        let by_name = c.cmd(&["CONFIG", "GET", own]);
        if s.name() == "ringkv" {
            assert_eq!(by_name.array().len(), 2, "{own}");
            let v = String::from_utf8(by_name.array()[1].opt_bytes().unwrap()).unwrap();
            let err = c.cmd_raw(&["CONFIG", "SET", own, &v]);
            assert!(String::from_utf8_lossy(&err).contains("can't set immutable config"), "{}", String::from_utf8_lossy(&err));
        } else {
            assert!(by_name.array().is_empty());
        }
    }
}

/// `shard-sched-batch` (hidden, fixed at start): `yes` runs every shard
/// thread under SCHED_BATCH (policy 3 in /proc's stat, field 41), `no` under
/// SCHED_OTHER (0); `auto` (the default) chooses batch only when shards
/// must share cores (src/lib.rs, `shard_sched_batch`).
#[test]
fn shard_sched_batch_sets_the_shard_threads_policy() {
    let policies = |s: &Server| -> Vec<(String, String)> {
        let mut out = vec![];
        for t in std::fs::read_dir(format!("/proc/{}/task", s.pid())).unwrap().flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default().trim().to_string();
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            // Fields after the command name's closing parenthesis; policy is field 41.
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            let policy = rest.split(' ').nth(41 - 3).unwrap_or("?").to_string();
            if comm.starts_with("ringkv-shard-") {
                out.push((comm, policy));
            }
        }
        out
    };
    for (setting, want) in [("yes", "3"), ("no", "0")] {
        let s = Server::ringkv(&["--shards", "2", "--shard-sched-batch", setting]);
        if s.name() != "ringkv" {
            return;
        }
        s.conn().cmd(&["PING"]);
        let p = policies(&s);
        assert_eq!(p.len(), 2, "{setting}: {p:?}");
        assert!(p.iter().all(|(_, pol)| pol == want), "{setting}: {p:?}");
        let mut c = s.conn();
        assert_eq!(c.cmd(&["CONFIG", "GET", "shard-sched-batch"]).array()[1].opt_bytes().unwrap(), setting.as_bytes());
    }
}

/// While CLIENT INFO / CLIENT LIST run, `qbuf=` counts the command's own
/// bytes, as Redis's query buffer still holds them (26 for
/// `*2\r\n$6\r\nclient\r\n$4\r\ninfo\r\n`).
#[test]
fn client_info_qbuf_holds_the_running_command() {
    let s = Server::ringkv(&["--shards", "3"]);
    let mut c = s.conn();
    for sub in ["info", "list"] {
        let line = String::from_utf8(c.cmd(&["CLIENT", sub]).opt_bytes().unwrap()).unwrap();
        assert!(line.contains(" qbuf=26 "), "{}: {line}", s.name());
    }
}

/// CLIENT LIST ID lists the clients in the order the IDs were given, once
/// per ID given (Redis looks each ID up in turn), whatever shards the
/// clients live on; unknown IDs are skipped.
#[test]
fn client_list_id_keeps_the_order_of_the_ids_given() {
    let s = Server::ringkv(&["--shards", "7"]);
    let mut conns: Vec<_> = (0..8).map(|_| s.conn()).collect();
    let mut ids = Vec::new();
    for (i, c) in conns.iter_mut().enumerate() {
        assert_eq!(c.cmd(&["CLIENT", "SETNAME", &format!("n{i}")]), common::Resp::ok());
        ids.push(c.cmd(&["CLIENT", "ID"]).int());
    }
    let order = [5usize, 0, 7, 3, 3, 1];
    let mut args: Vec<String> = vec!["CLIENT".into(), "LIST".into(), "ID".into()];
    args.extend(order.iter().map(|&i| ids[i].to_string()));
    args.insert(4, "999999".into());
    let list = conns[2].cmd(&args).opt_bytes().unwrap();
    let names: Vec<String> =
        String::from_utf8(list).unwrap().lines().map(|l| l.split(" name=").nth(1).unwrap().split(' ').next().unwrap().to_string()).collect();
    let want: Vec<String> = order.iter().map(|i| format!("n{i}")).collect();
    assert_eq!(names, want);
}

/// The `timeout` config closes a client idle for more than that many whole
/// seconds (Redis's clientsCron: `unixtime - lastinteraction > maxidletime`)
/// and spares one that keeps sending; CLIENT LIST's `idle=` counts whole
/// seconds since the client's last command, and `cmd=` names that command.
#[test]
fn idle_clients_time_out_and_client_list_shows_idle_seconds() {
    let s = server();
    let mut admin = s.redis_client();
    let mut idle = s.redis_client();
    let mut busy = s.redis_client();
    let idle_id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut idle).unwrap();
    let _: String = redis::cmd("ECHO").arg("x").query(&mut idle).unwrap();
    let line = |admin: &mut redis::Connection| -> String {
        let list: String = redis::cmd("CLIENT").arg("LIST").arg("ID").arg(idle_id).query(admin).unwrap();
        list.trim_end().to_string()
    };
    let first = line(&mut admin);
    assert!(first.contains(" idle=0 ") && first.contains(" cmd=echo "), "{first}");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let later = line(&mut admin);
    let seconds: i64 = later.split(" idle=").nth(1).and_then(|r| r.split(' ').next()).and_then(|v| v.parse().ok()).unwrap();
    assert!((2..=3).contains(&seconds), "{later}");
    let _: String = redis::cmd("PING").query(&mut busy).unwrap();
    let () = redis::cmd("CONFIG").arg("SET").arg("timeout").arg(1).query(&mut admin).unwrap();
    // Closed once more than a whole second passed since its last command,
    // by the next cron pass.
    for _ in 0..8 {
        std::thread::sleep(std::time::Duration::from_millis(400));
        let pong: String = redis::cmd("PING").query(&mut busy).unwrap();
        assert_eq!(pong, "PONG");
        let _: String = redis::cmd("PING").query(&mut admin).unwrap();
    }
    let gone: redis::RedisResult<String> = redis::cmd("PING").query(&mut idle);
    assert!(gone.is_err(), "the idle client was not closed: {gone:?}");
    let () = redis::cmd("CONFIG").arg("SET").arg("timeout").arg(0).query(&mut admin).unwrap();
}
