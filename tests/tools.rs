//! ringkv driven by Redis's own tools: redis-cli (one-shot commands and
//! `--pipe` mass insertion) and redis-benchmark.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{require_tool, run_with_timeout, Server};

fn cli(server: &Server, args: &[&str]) -> String {
    let mut cmd = Command::new(require_tool("redis-cli"));
    cmd.arg("-p").arg(server.port.to_string()).args(args);
    let out = run_with_timeout(&mut cmd, None, Duration::from_secs(20));
    assert!(out.status.success(), "redis-cli {:?} against {} failed: {}", args, server.name(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn redis_cli_one_shot_commands_match_redis() {
    let (ringkv, redis) = Server::pair(&[], &["--shards", "3"]);
    let script: &[&[&str]] = &[
        &["PING"],
        &["PING", "hello world"],
        &["SET", "a", "b"],
        &["GET", "a"],
        &["GET", "missing"],
        &["SET", "n", "42"],
        &["GET", "n"],
        &["EXISTS", "a", "n", "missing"],
        &["DBSIZE"],
        &["ECHO", "line1\nline2"],
        &["DEL", "a", "missing"],
        &["GET"],
        &["NOSUCHCOMMAND", "x"],
        &["SELECT", "99"],
        &["--no-raw", "GET", "n"],
        &["--no-raw", "GET", "missing"],
        &["--no-raw", "DBSIZE"],
        &["--no-raw", "NOSUCHCOMMAND"],
        &["-n", "2", "SET", "indb2", "v"],
        &["-n", "2", "DBSIZE"],
        &["DBSIZE"],
        &["FLUSHALL"],
        &["-n", "2", "DBSIZE"],
    ];
    let mut diffs = String::new();
    for args in script {
        let a = cli(&ringkv, args);
        let b = cli(&redis, args);
        if a != b {
            diffs.push_str(&format!("redis-cli {:?}\n    ringkv: {:?}\n    redis:  {:?}\n", args, a, b));
        }
    }
    assert!(diffs.is_empty(), "redis-cli output differs:\n{}", diffs);
}

/// redis-cli 7.0 builds its help and its typing hints from COMMAND DOCS: with
/// no `arguments` there it shows none. `redis-cli help <command>` prints the
/// same text (syntax line included) for ringkv as for redis-server.
#[test]
fn redis_cli_help_and_hints_match_redis() {
    let (ringkv, redis) = Server::pair(&[], &[]);
    let commands = [
        "get",
        "set",
        "getex",
        "mset",
        "incrbyfloat",
        "lcs",
        "expire",
        "scan",
        "copy",
        "object",
        "hello",
        "client",
        "config",
        "command",
        "slowlog",
        "latency",
        "bgsave",
        "shutdown",
        "cluster",
        "flushall",
        "debug",
        "info",
    ];
    for c in commands {
        let ours = cli(&ringkv, &["help", c]);
        let theirs = cli(&redis, &["help", c]);
        if c == "client" || c == "cluster" || c == "command" || c == "config" || c == "object" || c == "latency" {
            // Containers: ringkv lists the subcommands it implements; each of those reads as Redis's.
            let syntax_lines: Vec<&str> = ours.lines().filter(|l| l.contains("\u{1b}[1m")).collect();
            assert!(syntax_lines.len() >= 2, "help {c}: {ours:?}");
            for line in syntax_lines {
                assert!(theirs.contains(line), "help {c}: {line:?} not in redis-cli's help against redis-server");
            }
        } else {
            assert_eq!(ours, theirs, "help {c}");
        }
    }
}

#[test]
fn redis_cli_pipe_mass_insertion() {
    let s = Server::ringkv(&["--shards", "3"]);
    let mut input = Vec::new();
    for i in 0..10000 {
        common::encode_into(&mut input, &["SET", &format!("mass:{}", i), &format!("value-{}", i)]);
    }
    let mut cmd = Command::new(require_tool("redis-cli"));
    cmd.arg("-p").arg(s.port.to_string()).arg("--pipe");
    let out = run_with_timeout(&mut cmd, Some(input), Duration::from_secs(60));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "redis-cli --pipe failed:\n{}", text);
    assert!(text.contains("errors: 0, replies: 10000"), "redis-cli --pipe reported:\n{}", text);
    assert_eq!(cli(&s, &["DBSIZE"]).trim(), "10000");
    assert_eq!(cli(&s, &["GET", "mass:9999"]).trim(), "value-9999");
}

#[test]
fn redis_benchmark_runs_clean() {
    let s = Server::ringkv(&["--shards", "3"]);
    let mut cmd = Command::new(require_tool("redis-benchmark"));
    cmd.args(["-p", &s.port.to_string(), "-t", "set,get,incr,mset,ping", "-q", "-n", "20000"]);
    let out = run_with_timeout(&mut cmd, None, Duration::from_secs(120));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "redis-benchmark exited with {}:\n{}", out.status, text);
    assert!(!text.contains("ERR") && !text.contains("WARNING"), "redis-benchmark reported problems:\n{}", text);
    // SET, GET, INCR, MSET and the two PING variants each print one result line.
    let results = text.matches("requests per second").count();
    assert!(results >= 6, "expected 6 result lines from redis-benchmark, got {}:\n{}", results, text);
}
