//! LFU counters and access times as Redis 7.0 keeps them: a new key's
//! counter is LFU_INIT_VAL (5), an access below it always counts, RESTORE
//! FREQ sets it under an `*-lfu` policy, RESTORE IDLETIME sets the access
//! time back under any other, and each answers the other's OBJECT
//! subcommand with Redis's error.

mod common;

use common::*;

fn freq(c: &mut Conn, key: &str) -> Resp {
    c.cmd(&["OBJECT", "FREQ", key])
}

#[test]
fn restore_freq_and_idletime_and_object_counters() {
    let s = Server::ringkv(&["--shards", "3"]);
    let mut c = s.conn();
    assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"]), Resp::ok());
    assert_eq!(c.cmd(&["SET", "k", "v"]), Resp::ok());
    assert_eq!(freq(&mut c, "k"), Resp::Int(5));
    // From 5, the first access always counts (probability 1 / (0 * 10 + 1)).
    assert_eq!(c.cmd(&["GET", "k"]), Resp::bulk("v"));
    assert_eq!(freq(&mut c, "k"), Resp::Int(6));
    let Resp::Bulk(payload) = c.cmd(&["DUMP", "k"]) else { panic!("DUMP is a bulk") };
    assert_eq!(c.cmd(&[&b"RESTORE"[..], b"r", b"0", &payload, b"FREQ", b"100"]), Resp::ok());
    assert_eq!(freq(&mut c, "r"), Resp::Int(100));
    // Reads at 100 rarely count (1 in ~951): a few leave it at 100 or 101.
    for _ in 0..3 {
        c.cmd(&["GET", "r"]);
    }
    assert!(matches!(freq(&mut c, "r"), Resp::Int(100 | 101)));
    // IDLETIME is accepted and has nothing to set under LFU.
    assert_eq!(c.cmd(&[&b"RESTORE"[..], b"i", b"0", &payload, b"IDLETIME", b"1000"]), Resp::ok());
    assert_eq!(freq(&mut c, "i"), Resp::Int(5));
    let idle = c.cmd(&["OBJECT", "IDLETIME", "i"]);
    assert!(matches!(&idle, Resp::Error(e) if e.starts_with("ERR An LFU maxmemory policy is selected")), "{idle:?}");

    assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]), Resp::ok());
    assert_eq!(c.cmd(&[&b"RESTORE"[..], b"j", b"0", &payload, b"IDLETIME", b"1000"]), Resp::ok());
    let Resp::Int(idle) = c.cmd(&["OBJECT", "IDLETIME", "j"]) else { panic!("OBJECT IDLETIME is an integer") };
    assert!((1000..1010).contains(&idle), "{idle}");
    assert_eq!(c.cmd(&[&b"RESTORE"[..], b"f", b"0", &payload, b"FREQ", b"100"]), Resp::ok());
    let Resp::Int(idle) = c.cmd(&["OBJECT", "IDLETIME", "f"]) else { panic!("OBJECT IDLETIME is an integer") };
    assert!(idle < 10, "{idle}");
    let f = freq(&mut c, "f");
    assert!(matches!(&f, Resp::Error(e) if e.starts_with("ERR An LFU maxmemory policy is not selected")), "{f:?}");
}

/// The RDB keeps them as Redis's rdbSaveKeyValuePair writes them (`IDLE`
/// under an LRU policy, `FREQ` under an LFU one): a DEBUG RELOAD gives back
/// the counter and the idle time.
#[test]
fn counters_and_idle_times_survive_a_reload() {
    let s = Server::ringkv(&["--shards", "3", "--enable-debug-command", "yes"]);
    let mut c = s.conn();
    assert_eq!(c.cmd(&["SET", "k", "v"]), Resp::ok());
    let Resp::Bulk(payload) = c.cmd(&["DUMP", "k"]) else { panic!("DUMP is a bulk") };
    assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"]), Resp::ok());
    assert_eq!(c.cmd(&[&b"RESTORE"[..], b"f", b"0", &payload, b"FREQ", b"100"]), Resp::ok());
    assert_eq!(c.cmd(&["DEBUG", "RELOAD"]), Resp::ok());
    assert_eq!(freq(&mut c, "f"), Resp::Int(100));

    assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]), Resp::ok());
    assert_eq!(c.cmd(&[&b"RESTORE"[..], b"i", b"0", &payload, b"IDLETIME", b"1000"]), Resp::ok());
    assert_eq!(c.cmd(&["DEBUG", "RELOAD"]), Resp::ok());
    let Resp::Int(idle) = c.cmd(&["OBJECT", "IDLETIME", "i"]) else { panic!("OBJECT IDLETIME is an integer") };
    assert!((1000..1010).contains(&idle), "{idle}");
    assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]), Resp::ok());
}
