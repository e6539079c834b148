//! RESTORE of hostile payloads: what `tests/tools/restorefuzz.py` found,
//! each a mutated DUMP payload (CRC fixed up) with redis-server 7.0.15's
//! verdict under `sanitize-dump-payload yes` and what the key then reads
//! as. Redis reads the object from the whole payload, its footer included,
//! ignores what follows it, reads text scores with C's strtod/sscanf (a
//! number prefix), takes an LZF string declared 0 bytes long as "" and
//! knows no type past 19.

mod common;

use common::Server;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// (what it is, payload hex, RESTORE's reply, a read command, its reply).
const CASES: &[(&str, &str, &str, &str, &str)] = &[
    ("bytes left before the footer are not looked at", "000000000a005d9b5c400f7fa2da", "+OK\r\n", "GET k", "$0\r\n\r\n"),
    (
        "an object running into the footer takes its bytes",
        "0402016601760167010a00d4b7c71b2bfd8a06",
        "+OK\r\n",
        "HGETALL k",
        "*4\r\n$1\r\nf\r\n$1\r\nv\r\n$1\r\ng\r\n$1\r\n\n\r\n",
    ),
    ("a set listpack (type 20, Redis 7.2) is unknown to 7.0", "140a0a0000000100816102ff0a009e00c2a8647092fd", "-ERR Bad data format\r\n", "EXISTS k", ":0\r\n"),
    (
        "a ziplist score \"2\\x7f5\" reads as strtod reads it: 2",
        "0c1e1e0000001a000000060000016103f20201620303327f3505016303fe64ff0a00c9033f695af75ee0",
        "+OK\r\n",
        "ZRANGE k 0 -1 WITHSCORES",
        "*6\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\nc\r\n$3\r\n100\r\n",
    ),
    (
        "a text score \"1.\\xff\" (type 3) reads as sscanf reads it: 1",
        "0303016103312eff016203696e660163022d330a0053fb0e5f472c5c73",
        "+OK\r\n",
        "ZRANGE k 0 -1 WITHSCORES",
        "*6\r\n$1\r\nc\r\n$2\r\n-3\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$3\r\ninf\r\n",
    ),
    (
        "an LZF string of declared length 0 is empty, whatever its bytes",
        "00c319000000616263646566676861e0ff07e124070167680a00f20626ecca3bef79",
        "+OK\r\n",
        "GET k",
        "$0\r\n\r\n",
    ),
    (
        "a stream whose group's PEL entries no consumer claims, next to a consumer named \"\" (an empty name was taken for \"claimed by no one\")",
        concat!(
            "13041000000000000000010000000000000000c34041404c114c0000001e000301000102018166028168024009000060",
            "010280010560070001801b0801018167028176020820140001200360302004086702827676030801ff10000000000000",
            "00020000000000000001c34048404e084e0000001e0001010220010a8166028168020001030100200108030183767676",
            "040501400002dfff02601f070401816702800108201f00012003601300054013058176020801ff100000000000000004",
            "0000000000000000c34045404e114e0000001e0003010001020181660281680240090000200106060182767603052009",
            "02000101801d0a07018167028376767604086014402a2034000840160480010801ff1000000000000000050000000000",
            "00000122220000000c00010100010201816602816802000102010001000109018176020501ff080501010003000a0202",
            "6731040081ffffffffffffffff04000000000000000100000000000000019965f44ea201000001000000000000000200",
            "000000000000009965f44ea201000001000000000000000300000000000000019965f44ea20100000100000000000000",
            "0400000000000000009965f44ea2010000010205616c6963659901000002000000000000000100000000000000010000",
            "000000000002000000000000000003626f629965f44ea201000002000000000000000300000000000000010000000000",
            "0000040000000000000000026732050181ffffffffffffffff0001056361726f6c9965f44ea2010000000a00927a885f",
            "f61a7c19"
        ),
        "-ERR Bad data format\r\n",
        "EXISTS k",
        ":0\r\n",
    ),
];

#[test]
fn hostile_payloads_get_redis_verdicts() {
    let server = Server::ringkv(&["--shards", "3", "--sanitize-dump-payload", "yes"]);
    let mut c = server.conn();
    let mut wrong = String::new();
    for &(what, hex, restored, read, value) in CASES {
        c.cmd(&["DEL", "k"]);
        let got = c.cmd_raw(&[b"RESTORE".as_slice(), b"k", b"0", &unhex(hex), b"REPLACE"]);
        let read_args: Vec<&str> = read.split(' ').collect();
        let got_value = c.cmd_raw(&read_args);
        if got != restored.as_bytes() || got_value != value.as_bytes() {
            wrong.push_str(&format!(
                "{}: RESTORE {:?} (want {:?}), {} {:?} (want {:?})\n",
                what,
                String::from_utf8_lossy(&got),
                restored,
                read,
                String::from_utf8_lossy(&got_value),
                value
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong);
    server.conn().cmd(&["PING"]);
}

/// A fixed-seed run of restorefuzz.py's idea (a longer one: the tool):
/// DUMP payloads of the non-stream types made by redis-server, mutated,
/// RESTOREd on both servers with the CRC check off (`DEBUG
/// SET-SKIP-CHECKSUM-VALIDATION 1`, so the parser is reached): the same
/// reply, and when both accept, the same value. Streams are left out:
/// ringkv refuses stream nodes Redis 7.0 loads out of order (module doc).
#[test]
fn mutated_payloads_get_the_same_verdict_as_redis() {
    let cases: u64 = std::env::var("RESTORE_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1500);
    let (ringkv, redis) = Server::pair(&["--sanitize-dump-payload", "yes", "--enable-debug-command", "yes"], &["--shards", "3"]);
    let (mut a, mut b) = (ringkv.conn(), redis.conn());
    for c in [&mut a, &mut b] {
        assert_eq!(c.cmd_raw(&["DEBUG", "SET-SKIP-CHECKSUM-VALIDATION", "1"]), b"+OK\r\n");
    }
    let builds: &[&[&str]] = &[
        &["SET", "src", "abcdefgh abcdefgh abcdefgh abcdefgh"],
        &["SET", "src", "-12345"],
        &["RPUSH", "src", "a", "12", "-5", "70000", "5000000000", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", ""],
        &["SADD", "src", "1", "-7", "300", "70000"],
        &["SADD", "src", "a", "b", "c", "12"],
        &["ZADD", "src", "1", "a", "2.5", "b", "-inf", "c", "1e300", "d"],
        &["HSET", "src", "f", "v", "n", "12", "neg", "-1"],
    ];
    let mut payloads = vec![];
    for build in builds {
        b.cmd(&["DEL", "src"]);
        b.cmd(build);
        payloads.push(b.cmd(&["DUMP", "src"]).opt_bytes().unwrap());
    }
    let mut rng = common::Rng::new(0x7e57);
    let mut wrong = String::new();
    for i in 0..cases {
        let p = &payloads[rng.below(payloads.len() as u64) as usize];
        let (mut body, footer) = (p[..p.len() - 10].to_vec(), &p[p.len() - 10..]);
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(body.len() as u64) as usize;
            match rng.below(4) {
                0 => body[at] ^= 1 << rng.below(8),
                1 => body[at] = [0x00, 0xff, 0x7f, 0x80, 0xfe, 0x40, 0xc0, 0xf0][rng.below(8) as usize],
                2 => body.truncate(at.max(1)),
                _ => body.insert(at, rng.below(256) as u8),
            }
        }
        body.extend_from_slice(footer);
        let restore = [b"RESTORE".as_slice(), b"k", b"0", &body, b"REPLACE"];
        let (ra, rb) = (a.cmd_raw(&restore), b.cmd_raw(&restore));
        let same_value = ra != b"+OK\r\n" || a.cmd_raw(&["DEBUG", "DIGEST-VALUE", "k"]) == b.cmd_raw(&["DEBUG", "DIGEST-VALUE", "k"]);
        if ra != rb || !same_value {
            wrong.push_str(&format!(
                "case {}: payload {} ringkv {:?} redis {:?} same value {}\n",
                i,
                body.iter().map(|x| format!("{:02x}", x)).collect::<String>(),
                String::from_utf8_lossy(&ra),
                String::from_utf8_lossy(&rb),
                same_value
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong);
}
