//! Protected mode end to end: a client from a non-loopback address gets
//! Redis 7.0's `-DENIED` reply and is closed, by ringkv and redis-server
//! alike, while loopback clients are served.
//!
//! A non-loopback peer needs an address other than 127.x on this machine;
//! the test makes one inside a network namespace of its own (a thread that
//! calls unshare(CLONE_NEWNET), then adds 10.200.0.1 to that namespace's
//! lo), so nothing outside the test sees it. Where that is not permitted
//! (no CAP_SYS_ADMIN, no `ip`), the test says so and checks nothing.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::Server;

const OUTSIDE_IP: &str = "10.200.0.1";

/// Moves the calling thread into a new network namespace with lo up and
/// `OUTSIDE_IP` on it. Err: why it could not.
fn private_network() -> Result<(), String> {
    // SAFETY: unshare with a flag only; it changes this thread's namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!("unshare(CLONE_NEWNET): {}", std::io::Error::last_os_error()));
    }
    for args in [&["link", "set", "lo", "up"][..], &["addr", "add", &format!("{}/32", OUTSIDE_IP), "dev", "lo"]] {
        // Children inherit the namespace of the thread that spawns them.
        let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {}", e))?;
        if !out.status.success() {
            return Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
        }
    }
    Ok(())
}

/// The first line a client connecting to `host` at `server`'s port reads
/// after sending PING, and whether the server then closed the connection.
fn exchange(server: &Server, host: &str) -> (Vec<u8>, bool) {
    let addr: SocketAddr = format!("{}:{}", host, server.port).parse().unwrap();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = s.write_all(b"PING\r\n");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.ends_with(b"\r\n") {
                    break;
                }
            }
        }
    }
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    // A close with our PING unread reaches us as a reset (Redis) or as an
    // end of stream (when the close came before the PING): closed, either way.
    let closed = match s.read(&mut buf) {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    };
    (got, closed)
}

/// (setting, outside client's view of ringkv, of redis-server, loopback client's view of ringkv)
type Seen = (String, (Vec<u8>, bool), (Vec<u8>, bool), (Vec<u8>, bool));

#[test]
fn protected_mode_turns_away_outside_clients_as_redis_does() {
    let result = std::thread::spawn(|| -> Result<Vec<Seen>, String> {
        private_network()?;
        // Servers started from this thread live in its namespace (and die
        // with it: the harness sets PR_SET_PDEATHSIG on the spawning thread).
        let mut seen = vec![];
        for (name, extra) in [
            ("protected", &["--bind", "0.0.0.0"][..]),
            ("password", &["--bind", "0.0.0.0", "--requirepass", "pw"]),
            ("off", &["--bind", "0.0.0.0", "--protected-mode", "no"]),
        ] {
            let (ringkv, redis) = Server::pair(extra, &["--shards", "2"]);
            let outside = exchange(&ringkv, OUTSIDE_IP);
            let outside_redis = exchange(&redis, OUTSIDE_IP);
            let inside = exchange(&ringkv, "127.0.0.1");
            assert_eq!(exchange(&redis, "127.0.0.1"), inside, "{}: loopback replies differ", name);
            seen.push((name.to_string(), outside, outside_redis, inside));
        }
        Ok(seen)
    })
    .join()
    .expect("test thread");
    let seen = match result {
        Ok(s) => s,
        Err(why) => {
            println!("SKIPPED: cannot make a private network namespace here ({}); protected mode is covered by the unit test only", why);
            return;
        }
    };
    for (name, outside, outside_redis, inside) in seen {
        let text = String::from_utf8_lossy(&outside.0).into_owned();
        assert_eq!(outside, outside_redis, "{}: ringkv's reply to an outside client differs from redis-server's", name);
        match name.as_str() {
            "protected" => {
                assert!(text.starts_with("-DENIED Redis is running in protected mode") && text.ends_with("from the outside.\r\n"), "{}", text);
                assert!(outside.1, "the refused client is closed");
                assert_eq!(inside, (b"+PONG\r\n".to_vec(), false));
            }
            "password" => {
                assert_eq!(outside, (b"-NOAUTH Authentication required.\r\n".to_vec(), false));
                assert_eq!(inside, outside);
            }
            _ => {
                assert_eq!(outside, (b"+PONG\r\n".to_vec(), false));
                assert_eq!(inside, outside);
            }
        }
    }
}
