//! HyperLogLog and GEO against redis-server: the same random streams sent
//! to ringkv (`--shards 3`, so PFCOUNT of several keys, PFMERGE and the
//! GEO STORE forms cross shards) and to redis-server must give the same
//! replies and leave the same bytes: an HLL is a string in Redis's format,
//! so GET of it is compared byte for byte, sparse and dense, and a DUMP
//! made by either server is RESTOREd by the other.

mod common;

use common::{Conn, Rng, Server};

fn pair() -> (Server, Server) {
    Server::pair(&["--enable-debug-command", "yes"], &["--shards", "3"])
}

/// Sends `args` to both servers, checks the raw replies are equal, returns one.
fn both<A: AsRef<[u8]>>(c: &mut [Conn; 2], args: &[A]) -> Vec<u8> {
    let ringkv = c[0].cmd_raw(args);
    let redis = c[1].cmd_raw(args);
    assert!(
        ringkv == redis,
        "reply to {:?}:\n ringkv {:?}\n redis  {:?}",
        args.iter().map(|a| String::from_utf8_lossy(a.as_ref()).into_owned()).collect::<Vec<_>>(),
        common::escape(&ringkv, 300),
        common::escape(&redis, 300)
    );
    ringkv
}

/// A random element: mostly short text, sometimes binary or long.
fn element(rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        0 => {
            let mut b = vec![0u8; 1 + rng.below(40) as usize];
            rng.fill(&mut b);
            b
        }
        1 => format!("{}", rng.next_u64()).into_bytes(),
        _ => format!("el:{}", rng.below(1_000_000)).into_bytes(),
    }
}

/// PFADD streams of growing size into keys spread over the shards; after
/// each batch every key's bytes, count and encoding must be Redis's.
#[test]
fn hll_bytes_match_redis_for_random_pfadd_streams() {
    let (ringkv, redis) = pair();
    let mut c = [ringkv.conn(), redis.conn()];
    let mut rng = Rng::new(0x4859_4c4c);
    let keys: Vec<String> = (0..6).map(|i| format!("hll:{i}")).collect();
    // Small streams stay sparse, the long ones go dense on the way; the
    // lowered limit makes the size-driven promotion happen early too.
    for (round, &(batches, per_batch)) in [(6usize, 3usize), (10, 40), (12, 400)].iter().enumerate() {
        if round == 1 {
            both(&mut c, &["CONFIG", "SET", "hll-sparse-max-bytes", "600"]);
        } else {
            both(&mut c, &["CONFIG", "SET", "hll-sparse-max-bytes", "3000"]);
        }
        for _ in 0..batches {
            for key in &keys {
                let mut args: Vec<Vec<u8>> = vec![b"PFADD".to_vec(), key.as_bytes().to_vec()];
                for _ in 0..1 + rng.below(per_batch as u64) {
                    args.push(element(&mut rng));
                }
                both(&mut c, &args);
                if rng.below(3) == 0 {
                    both(&mut c, &["PFCOUNT", key.as_str()]);
                }
                both(&mut c, &["GET", key.as_str()]);
                both(&mut c, &["PFDEBUG", "ENCODING", key.as_str()]);
            }
            both(&mut c, &["PFCOUNT", &keys[0], &keys[1], &keys[2], "nokey"]);
            let dest = format!("merged:{}", rng.below(3));
            both(&mut c, &["PFMERGE", &dest, &keys[3], &keys[4], &keys[5]]);
            both(&mut c, &["GET", &dest]);
            both(&mut c, &["PFCOUNT", &dest]);
        }
    }
    let dense = both(&mut c, &["PFDEBUG", "ENCODING", &keys[0]]);
    assert_eq!(dense, b"+dense\r\n", "the long streams reached the dense encoding");
    for key in &keys {
        both(&mut c, &["DEBUG", "DIGEST-VALUE", key.as_str()]);
    }
    both(&mut c, &["CONFIG", "SET", "hll-sparse-max-bytes", "3000"]);
}

/// The DUMP payload of an HLL made by one server RESTOREs in the other and
/// goes on growing the same way.
#[test]
fn hll_dumps_load_in_either_server() {
    let (ringkv, redis) = pair();
    let mut c = [ringkv.conn(), redis.conn()];
    let mut rng = Rng::new(77);
    for (key, n) in [("sparse", 50), ("dense", 5000)] {
        let mut args: Vec<Vec<u8>> = vec![b"PFADD".to_vec(), key.as_bytes().to_vec()];
        args.extend((0..n).map(|_| element(&mut rng)));
        both(&mut c, &args);
        both(&mut c, &["PFCOUNT", key]);
        for (from, to) in [(0, 1), (1, 0)] {
            let payload = match c[from].cmd(&["DUMP", key]).opt_bytes() {
                Some(p) => p,
                None => panic!("DUMP {key} gave no payload"),
            };
            let copy = format!("{key}:from{from}");
            let reply = c[to].cmd_raw(&[b"RESTORE".as_slice(), copy.as_bytes(), b"0", &payload]);
            assert_eq!(reply, b"+OK\r\n", "RESTORE of the other server's {key} DUMP");
            // The same key on the other server too, so both continue alike.
            let reply = c[from].cmd_raw(&[b"RESTORE".as_slice(), copy.as_bytes(), b"0", &payload]);
            assert_eq!(reply, b"+OK\r\n");
            both(&mut c, &["GET", &copy]);
            both(&mut c, &["PFCOUNT", &copy]);
            both(&mut c, &["PFADD", &copy, "one more", "and another"]);
            both(&mut c, &["GET", &copy]);
        }
    }
}

/// Random points and random searches: every reply (members, order,
/// distances, coordinates, hashes) and every stored result is Redis's.
#[test]
fn geo_searches_match_redis_for_random_points() {
    let (ringkv, redis) = pair();
    let mut c = [ringkv.conn(), redis.conn()];
    let mut rng = Rng::new(0x0067_656f);
    let coordinate = |rng: &mut Rng, span: f64| (rng.below(2_000_001) as f64 / 1_000_000.0 - 1.0) * span;
    // A dense cluster (listpack, then skiplist) and points spread worldwide.
    for (key, n, lon_span, lat_span, lon0, lat0) in [("g:local", 100, 0.5, 0.5, 12.5, 41.9), ("g:world", 400, 180.0, 85.0, 0.0, 0.0)] {
        for chunk in 0..n / 50 {
            let mut args: Vec<String> = vec!["GEOADD".into(), key.into()];
            for i in 0..50 {
                let lon = (lon0 + coordinate(&mut rng, lon_span)).clamp(-180.0, 180.0);
                let lat = (lat0 + coordinate(&mut rng, lat_span)).clamp(-85.05112878, 85.05112878);
                args.push(format!("{lon:.6}"));
                args.push(format!("{lat:.6}"));
                args.push(format!("p{}", chunk * 50 + i));
            }
            both(&mut c, &args);
        }
        for _ in 0..60 {
            let lon = format!("{:.5}", (lon0 + coordinate(&mut rng, lon_span)).clamp(-180.0, 180.0));
            let lat = format!("{:.5}", (lat0 + coordinate(&mut rng, lat_span)).clamp(-85.0, 85.0));
            let unit = ["m", "km", "mi", "ft"][rng.below(4) as usize];
            let size = |rng: &mut Rng| match unit {
                "m" => rng.below(2_000_000) + 1,
                "ft" => rng.below(6_000_000) + 1,
                _ => rng.below(2_000) + 1,
            };
            let radius = size(&mut rng).to_string();
            let (width, height) = (size(&mut rng).to_string(), size(&mut rng).to_string());
            let count = (1 + rng.below(20)).to_string();
            let order = ["ASC", "DESC"][rng.below(2) as usize];
            both(&mut c, &["GEORADIUS", key, &lon, &lat, &radius, unit, "WITHDIST", "WITHCOORD", "WITHHASH", order]);
            both(&mut c, &["GEORADIUS", key, &lon, &lat, &radius, unit, "COUNT", &count, "WITHDIST"]);
            both(&mut c, &["GEOSEARCH", key, "FROMLONLAT", &lon, &lat, "BYBOX", &width, &height, unit, "WITHDIST", order]);
            both(&mut c, &["GEOSEARCH", key, "FROMLONLAT", &lon, &lat, "BYRADIUS", &radius, unit, "COUNT", &count, "ANY"]);
            let member = format!("p{}", rng.below(n));
            both(&mut c, &["GEOSEARCH", key, "FROMMEMBER", &member, "BYRADIUS", &radius, unit, "WITHCOORD", order]);
            both(&mut c, &["GEOSEARCHSTORE", "{dst}a", key, "FROMMEMBER", &member, "BYBOX", &width, &height, unit, "STOREDIST"]);
            both(&mut c, &["ZRANGE", "{dst}a", "0", "-1", "WITHSCORES"]);
            both(&mut c, &["GEORADIUSBYMEMBER", key, &member, &radius, unit, "STORE", "{dst}b"]);
            both(&mut c, &["ZRANGE", "{dst}b", "0", "-1", "WITHSCORES"]);
            let other = format!("p{}", rng.below(n));
            both(&mut c, &["GEODIST", key, &member, &other, unit]);
            both(&mut c, &["GEOPOS", key, &member, &other]);
            both(&mut c, &["GEOHASH", key, &member, &other]);
        }
    }
}

/// `rdb_changes_since_last_save` of a server.
fn changes(c: &mut Conn) -> i64 {
    let info = c.cmd(&["INFO", "persistence"]).opt_bytes().expect("INFO text");
    let text = String::from_utf8_lossy(&info).into_owned();
    let line = text.lines().find(|l| l.starts_with("rdb_changes_since_last_save:")).expect("changes field");
    line["rdb_changes_since_last_save:".len()..].trim().parse().expect("a number")
}

/// Each command counts as many writes as in Redis (one per changed
/// register, added member, stored member), which INFO shows and BGSAVE's
/// save points act on.
#[test]
fn writes_are_counted_as_redis_counts_them() {
    let (ringkv, redis) = pair();
    let mut c = [ringkv.conn(), redis.conn()];
    let script: &[&[&str]] = &[
        &["PFADD", "h", "a", "b", "c", "d"],
        &["PFADD", "h", "a"],
        &["PFCOUNT", "h"],
        &["PFCOUNT", "h"],
        &["PFMERGE", "{x}h2", "h", "nokey"],
        &["PFDEBUG", "TODENSE", "h"],
        &["ZADD", "z", "1", "a", "2", "b", "3", "c"],
        &["ZADD", "z", "1", "a", "5", "b", "4", "d"],
        &["GEOADD", "g", "1", "1", "a", "1.01", "1", "b", "1.02", "1", "c"],
        &["GEOADD", "g", "1", "1", "a"],
        &["GEOSEARCHSTORE", "{y}d", "g", "FROMLONLAT", "1", "1", "BYRADIUS", "100", "km"],
        &["GEORADIUS", "g", "1", "1", "100", "km", "STOREDIST", "{z}d"],
        &["GEORADIUS", "g", "50", "50", "1", "km", "STORE", "{z}d"],
    ];
    for args in script {
        let before = [changes(&mut c[0]), changes(&mut c[1])];
        both(&mut c, args);
        let delta = [changes(&mut c[0]) - before[0], changes(&mut c[1]) - before[1]];
        assert_eq!(delta[0], delta[1], "writes counted for {args:?} (ringkv, redis)");
    }
}

/// A sparse HLL body of random opcodes: mostly a valid cover of the 16384
/// registers, sometimes short, long, truncated or with huge values.
fn random_sparse(rng: &mut Rng) -> Vec<u8> {
    let mut v = b"HYLL\x01\x00\x00\x00".to_vec();
    let mut card = [0u8; 8];
    rng.fill(&mut card);
    if rng.below(2) == 0 {
        card[7] |= 0x80;
    }
    v.extend_from_slice(&card);
    let target = match rng.below(6) {
        0 => 16384 - rng.below(100) as usize,
        1 => 16384 + rng.below(100) as usize,
        _ => 16384,
    };
    let mut covered = 0usize;
    while covered < target {
        let left = target - covered;
        match rng.below(3) {
            0 => {
                let run = 1 + rng.below(64.min(left as u64)) as usize;
                v.push((run - 1) as u8);
                covered += run;
            }
            1 => {
                let run = 1 + rng.below(16384.min(left as u64).min(2000)) as usize;
                v.push(0x40 | ((run - 1) >> 8) as u8);
                v.push(((run - 1) & 0xff) as u8);
                covered += run;
            }
            _ => {
                let run = 1 + rng.below(4.min(left as u64)) as usize;
                let top = if rng.below(4) == 0 { 32 } else { 6 };
                let value = 1 + rng.below(top) as u8;
                v.push(0x80 | ((value - 1) << 2) | (run - 1) as u8);
                covered += run;
            }
        }
    }
    match rng.below(8) {
        0 => {
            v.pop();
        }
        1 => v.push(rng.below(256) as u8),
        _ => {}
    }
    v
}

/// Corrupt and odd sparse HLLs SET by a client: every command answers what
/// redis-server answers (counts, INVALIDOBJ, WRONGTYPE) and leaves the same
/// bytes; none crashes or reads past the value.
#[test]
fn corrupt_hlls_behave_as_in_redis() {
    let (ringkv, redis) = pair();
    let mut c = [ringkv.conn(), redis.conn()];
    let mut rng = Rng::new(0xbad_0411);
    both(&mut c, &["PFADD", "{o}good", "a", "b", "c"]);
    for round in 0..300 {
        let value = random_sparse(&mut rng);
        let key = format!("k{}", round % 7);
        both(&mut c, &[b"SET".as_slice(), key.as_bytes(), &value]);
        match rng.below(7) {
            0 => {
                both(&mut c, &["PFCOUNT", key.as_str()]);
            }
            1 => {
                let mut args: Vec<Vec<u8>> = vec![b"PFADD".to_vec(), key.as_bytes().to_vec()];
                for _ in 0..1 + rng.below(30) {
                    args.push(element(&mut rng));
                }
                both(&mut c, &args);
            }
            2 => {
                both(&mut c, &["PFCOUNT", key.as_str(), "{o}good"]);
            }
            3 => {
                both(&mut c, &["PFMERGE", "{o}dst", key.as_str(), "{o}good"]);
                both(&mut c, &["GET", "{o}dst"]);
            }
            4 => {
                both(&mut c, &["PFDEBUG", "DECODE", key.as_str()]);
            }
            5 => {
                both(&mut c, &["PFDEBUG", "TODENSE", key.as_str()]);
            }
            _ => {
                both(&mut c, &["PFMERGE", key.as_str(), "{o}good"]);
            }
        }
        both(&mut c, &["GET", key.as_str()]);
    }
    both(&mut c, &["PING"]);
}
