//! ACL behaviour that needs several connections, a config or a file (the
//! single-connection replies are in tests/corpus/acl.txt): users deleted or
//! changed under live connections, requirepass as the default user's
//! password, the ACL file, `user` directives, scripts, MULTI, CLIENT LIST
//! and KILL by user. Passes against redis-server too
//! (`RINGKV_TEST_TARGET=redis cargo test --test acl`).

mod common;

use std::time::Duration;

use common::{Conn, End, Server};

fn start(extra: &[&str]) -> Server {
    let mut args = vec!["--shards", "3"];
    args.extend_from_slice(extra);
    Server::ringkv(&args)
}

fn raw(c: &mut Conn, args: &[&str]) -> Vec<u8> {
    c.cmd_raw(args)
}

fn text(c: &mut Conn, args: &[&str]) -> String {
    String::from_utf8_lossy(&raw(c, args)).into_owned()
}

fn bulk(s: &str) -> String {
    format!("${}\r\n{}\r\n", s.len(), s)
}

/// Waits (up to 3 s) for the server to close `c`.
fn closed(c: &mut Conn) -> bool {
    let (_, end) = c.read_until_close(Duration::from_secs(3));
    end == End::Closed
}

#[test]
fn named_users_authenticate_and_are_checked() {
    let s = start(&[]);
    let mut admin = s.conn();
    assert_eq!(text(&mut admin, &["ACL", "SETUSER", "alice", "on", ">pw", "~k:*", "+get", "+set"]), "+OK\r\n");
    let mut a = s.conn();
    assert_eq!(text(&mut a, &["AUTH", "alice", "bad"]), "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    assert_eq!(text(&mut a, &["AUTH", "alice", "pw"]), "+OK\r\n");
    assert_eq!(text(&mut a, &["SET", "k:1", "v"]), "+OK\r\n");
    // Keys on every shard: the check runs before routing.
    for k in ["a", "b", "c", "d", "e"] {
        assert_eq!(text(&mut a, &["GET", k]), "-NOPERM this user has no permissions to access one of the keys used as arguments\r\n");
    }
    assert_eq!(text(&mut a, &["DEL", "k:1"]), "-NOPERM this user has no permissions to run the 'del' command\r\n");
    // A change reaches the live connection at once.
    assert_eq!(text(&mut admin, &["ACL", "SETUSER", "alice", "+del"]), "+OK\r\n");
    assert_eq!(text(&mut a, &["DEL", "k:1"]), ":1\r\n");
    assert_eq!(text(&mut admin, &["ACL", "SETUSER", "alice", "-get"]), "+OK\r\n");
    assert_eq!(text(&mut a, &["GET", "k:1"]), "-NOPERM this user has no permissions to run the 'get' command\r\n");
    // HELLO AUTH.
    let mut h = s.conn();
    let r = text(&mut h, &["HELLO", "2", "AUTH", "alice", "pw"]);
    assert!(r.starts_with("*14\r\n"), "{r}");
    assert_eq!(text(&mut h, &["ACL", "WHOAMI"]), "-NOPERM this user has no permissions to run the 'acl|whoami' command\r\n");
    // The log: newest first, the failed AUTH counted as reason auth.
    let log = text(&mut admin, &["ACL", "LOG"]);
    assert!(log.contains("$6\r\nreason\r\n$7\r\ncommand\r\n"), "{log}");
    assert!(log.contains("$6\r\nreason\r\n$3\r\nkey\r\n"), "{log}");
    assert!(log.contains("$6\r\nreason\r\n$4\r\nauth\r\n"), "{log}");
    assert!(log.contains("user=alice"), "{log}");
}

#[test]
fn deleted_user_connections_are_closed() {
    let s = start(&[]);
    let mut admin = s.conn();
    assert_eq!(text(&mut admin, &["ACL", "SETUSER", "bob", "on", "nopass", "+@all", "~*"]), "+OK\r\n");
    let mut idle = s.conn();
    assert_eq!(text(&mut idle, &["AUTH", "bob", "x"]), "+OK\r\n");
    let mut other = s.conn();
    assert_eq!(text(&mut other, &["PING"]), "+PONG\r\n");
    assert_eq!(text(&mut admin, &["ACL", "DELUSER", "bob"]), ":1\r\n");
    // An idle connection of the deleted user goes without a command of its own.
    assert!(closed(&mut idle), "bob's connection survived ACL DELUSER");
    assert_eq!(text(&mut other, &["PING"]), "+PONG\r\n");
    // A user deleting itself gets its reply, then the connection closes.
    assert_eq!(text(&mut admin, &["ACL", "SETUSER", "bob", "on", "nopass", "+@all", "~*"]), "+OK\r\n");
    let mut me = s.conn();
    assert_eq!(text(&mut me, &["AUTH", "bob", "x"]), "+OK\r\n");
    assert_eq!(text(&mut me, &["ACL", "DELUSER", "bob"]), ":1\r\n");
    assert!(closed(&mut me));
    // CLIENT KILL USER.
    assert_eq!(text(&mut admin, &["ACL", "SETUSER", "carl", "on", "nopass", "+@all", "~*"]), "+OK\r\n");
    let mut c = s.conn();
    assert_eq!(text(&mut c, &["AUTH", "carl", "x"]), "+OK\r\n");
    assert!(text(&mut admin, &["CLIENT", "LIST"]).contains(" user=carl "));
    assert_eq!(text(&mut admin, &["CLIENT", "KILL", "USER", "carl"]), ":1\r\n");
    assert!(closed(&mut c));
    assert_eq!(text(&mut admin, &["CLIENT", "KILL", "USER", "nosuch"]), "-ERR No such user 'nosuch'\r\n");
}

#[test]
fn subscriber_losing_its_channel_is_closed() {
    let s = start(&[]);
    let mut admin = s.conn();
    assert_eq!(text(&mut admin, &["ACL", "SETUSER", "sub", "on", "nopass", "+@all", "~*", "resetchannels", "&news:*", "&sport"]), "+OK\r\n");
    let mut c = s.conn();
    assert_eq!(text(&mut c, &["AUTH", "sub", "x"]), "+OK\r\n");
    assert_eq!(text(&mut c, &["SUBSCRIBE", "other"]), "-NOPERM this user has no permissions to access one of the channels used as arguments\r\n");
    assert_eq!(text(&mut c, &["SUBSCRIBE", "news:1"]), "*3\r\n$9\r\nsubscribe\r\n$6\r\nnews:1\r\n:1\r\n");
    // Adding a channel keeps it; removing the one it is subscribed to closes it.
    assert_eq!(text(&mut admin, &["ACL", "SETUSER", "sub", "&more"]), "+OK\r\n");
    assert_eq!(text(&mut c, &["PING"]), "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    assert_eq!(text(&mut admin, &["ACL", "SETUSER", "sub", "resetchannels", "&sport"]), "+OK\r\n");
    assert!(closed(&mut c), "the subscriber survived losing its channel");
    // (ringkv unregisters a closed subscriber on the channel's owner shard
    // by message: a moment after the close.)
    let t = std::time::Instant::now();
    while text(&mut admin, &["PUBLISH", "news:1", "x"]) != ":0\r\n" {
        assert!(t.elapsed() < Duration::from_secs(2), "the killed subscriber still receives");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn requirepass_is_the_default_users_password() {
    let s = start(&[]);
    let mut admin = s.conn();
    assert_eq!(text(&mut admin, &["CONFIG", "SET", "requirepass", "s3cret"]), "+OK\r\n");
    let r = text(&mut admin, &["ACL", "GETUSER", "default"]);
    assert!(r.contains("$9\r\npasswords\r\n*1\r\n$64\r\n"), "{r}");
    let mut c = s.conn();
    assert_eq!(text(&mut c, &["GET", "x"]), "-NOAUTH Authentication required.\r\n");
    assert_eq!(text(&mut c, &["AUTH", "nope"]), "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    assert_eq!(text(&mut c, &["AUTH", "s3cret"]), "+OK\r\n");
    assert_eq!(text(&mut c, &["ACL", "WHOAMI"]), "$7\r\ndefault\r\n");
    // ACL SETUSER default nopass lets unauthenticated connections in.
    let mut d = s.conn();
    assert_eq!(text(&mut d, &["PING"]), "-NOAUTH Authentication required.\r\n");
    assert_eq!(text(&mut c, &["ACL", "SETUSER", "default", "nopass"]), "+OK\r\n");
    assert_eq!(text(&mut d, &["PING"]), "+PONG\r\n");
    assert_eq!(text(&mut c, &["CONFIG", "SET", "requirepass", ""]), "+OK\r\n");
    assert_eq!(
        text(&mut c, &["AUTH", "x"]),
        "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n"
    );
}

#[test]
fn acl_file_load_and_save() {
    let path = std::env::temp_dir().join(format!("ringkv-acl-{}-{}.acl", std::process::id(), common::free_port()));
    std::fs::write(&path, "user default on nopass ~* &* +@all\nuser ann on #5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8 ~a:* +get\n")
        .unwrap();
    let p = path.to_str().unwrap().to_string();
    let s = start(&["--aclfile", &p]);
    let mut admin = s.conn();
    assert_eq!(text(&mut admin, &["ACL", "USERS"]), "*2\r\n$3\r\nann\r\n$7\r\ndefault\r\n");
    let mut a = s.conn();
    assert_eq!(text(&mut a, &["AUTH", "ann", "password"]), "+OK\r\n");
    assert_eq!(text(&mut a, &["GET", "a:1"]), "$-1\r\n");
    // SAVE writes what LIST shows; LOAD of a broken file changes nothing.
    assert_eq!(text(&mut admin, &["ACL", "SETUSER", "zed", "on", "nopass", "+ping"]), "+OK\r\n");
    assert_eq!(text(&mut admin, &["ACL", "SAVE"]), "+OK\r\n");
    let saved = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        saved,
        "user ann on #5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8 ~a:* resetchannels -@all +get\nuser default on nopass ~* &* +@all\nuser zed on nopass resetchannels -@all +ping\n"
    );
    std::fs::write(&path, "user ann on +nosuch\nfoo bar\n").unwrap();
    let err = text(&mut admin, &["ACL", "LOAD"]);
    assert_eq!(
        err,
        format!("-ERR {p}:1: Error in applying operation '+nosuch': Unknown command or category name in ACL. {p}:2 should start with user keyword followed by the username. WARNING: ACL errors detected, no change to the previously active ACL rules was performed\r\n")
    );
    assert_eq!(text(&mut a, &["GET", "a:1"]), "$-1\r\n");
    // A good LOAD replaces every user: connections of the old ones close.
    std::fs::write(&path, "user ann on nopass ~* +@all\n").unwrap();
    assert_eq!(text(&mut admin, &["ACL", "LOAD"]), "+OK\r\n");
    assert!(closed(&mut a), "a connection of a user replaced by ACL LOAD survived");
    assert_eq!(
        text(&mut admin, &["ACL", "LIST"]),
        format!("*2\r\n{}{}", bulk("user ann on nopass ~* resetchannels +@all"), bulk("user default on nopass ~* &* +@all"))
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn user_directives_in_the_config() {
    let s = start(&["--user", "cfg", "on", ">pw", "~c:*", "+get", "--acllog-max-len", "2"]);
    let mut c = s.conn();
    let cfg = "user cfg on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 ~c:* resetchannels -@all +get";
    assert_eq!(text(&mut c, &["ACL", "LIST"]), format!("*2\r\n{}{}", bulk(cfg), bulk("user default on nopass ~* &* +@all")));
    for u in ["u1", "u2", "u1", "u2", "u3"] {
        assert!(text(&mut c, &["AUTH", u, "x"]).starts_with("-WRONGPASS"));
    }
    // acllog-max-len 2: the two newest entries (u1's went), u2's counted twice.
    let log = text(&mut c, &["ACL", "LOG"]);
    assert!(log.starts_with("*2\r\n*14\r\n$5\r\ncount\r\n:1\r\n"), "{log}");
    assert!(log.contains("$5\r\ncount\r\n:2\r\n"), "{log}");
    assert!(log.contains("$2\r\nu3\r\n") && log.contains("$2\r\nu2\r\n") && !log.contains("$2\r\nu1\r\n"), "{log}");
}

#[test]
fn scripts_and_transactions_are_checked() {
    let s = start(&[]);
    let mut admin = s.conn();
    assert_eq!(text(&mut admin, &["ACL", "SETUSER", "lua", "on", "nopass", "~a*", "+eval", "+get", "+multi", "+exec"]), "+OK\r\n");
    let mut c = s.conn();
    assert_eq!(text(&mut c, &["AUTH", "lua", "x"]), "+OK\r\n");
    let r = text(&mut c, &["EVAL", "return redis.call('set','a','1')", "0"]);
    assert!(r.starts_with("-ERR The user executing the script can't run this command or subcommand script: "), "{r}");
    let r = text(&mut c, &["EVAL", "return redis.pcall('get','b')", "0"]);
    assert_eq!(r, "-ERR The user executing the script can't access at least one of the keys mentioned in the command arguments\r\n");
    assert_eq!(text(&mut c, &["EVAL", "return redis.call('get','a')", "0"]), "$-1\r\n");
    let log = text(&mut admin, &["ACL", "LOG", "1"]);
    assert!(log.contains("$7\r\ncontext\r\n$3\r\nlua\r\n"), "{log}");
    // In MULTI a refused command aborts the transaction.
    assert_eq!(text(&mut c, &["MULTI"]), "+OK\r\n");
    assert_eq!(text(&mut c, &["SET", "a", "1"]), "-NOPERM this user has no permissions to run the 'set' command\r\n");
    assert_eq!(text(&mut c, &["EXEC"]), "-EXECABORT Transaction discarded because of previous errors.\r\n");
    let log = text(&mut admin, &["ACL", "LOG", "1"]);
    assert!(log.contains("$7\r\ncontext\r\n$5\r\nmulti\r\n"), "{log}");
}

/// Redis's `execCommand` text for a queued command the rules changed under.
fn exec_denied(reason: &str) -> String {
    format!("-NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: {reason}\r\n")
}

#[test]
fn exec_rechecks_queued_commands() {
    let s = start(&[]);
    let mut admin = s.conn();
    let all = ["ACL", "SETUSER", "q", "reset", "on", "nopass", "~*", "&*", "+@all"];
    assert_eq!(text(&mut admin, &all), "+OK\r\n");
    let mut c = s.conn();
    assert_eq!(text(&mut c, &["AUTH", "q", "x"]), "+OK\r\n");
    // Commands of every kind, keys on every shard, then the rules narrowed.
    assert_eq!(text(&mut c, &["MULTI"]), "+OK\r\n");
    let queued =
        [vec!["SET", "k:1", "v"], vec!["GET", "k:1"], vec!["SET", "a", "1"], vec!["SET", "k:2", "w"], vec!["SET", "b", "2"], vec!["PUBLISH", "ch", "m"]];
    for q in &queued {
        assert_eq!(text(&mut c, q), "+QUEUED\r\n");
    }
    assert_eq!(text(&mut admin, &["ACL", "LOG", "RESET"]), "+OK\r\n");
    assert_eq!(text(&mut admin, &["ACL", "SETUSER", "q", "resetkeys", "~k:*", "-get", "resetchannels"]), "+OK\r\n");
    let keys = exec_denied("no permission to touch the specified keys");
    let expected = format!(
        "*6\r\n+OK\r\n{}{}+OK\r\n{}{}",
        exec_denied("no permission to execute the command or subcommand"),
        keys,
        keys,
        exec_denied("no permission to access one of the channels used as arguments")
    );
    assert_eq!(text(&mut c, &["EXEC"]), expected);
    // The skipped commands did not run; the others did.
    assert_eq!(text(&mut admin, &["MGET", "k:1", "k:2", "a", "b"]), format!("*4\r\n{}{}$-1\r\n$-1\r\n", bulk("v"), bulk("w")));
    let log = text(&mut admin, &["ACL", "LOG"]);
    assert!(log.starts_with("*4\r\n"), "{log}");
    assert!(log.contains("$7\r\ncontext\r\n$5\r\nmulti\r\n$6\r\nobject\r\n$2\r\nch\r\n"), "{log}");
    assert!(log.contains("$7\r\ncontext\r\n$5\r\nmulti\r\n$6\r\nobject\r\n$1\r\nb\r\n"), "{log}");
    assert!(log.contains("$7\r\ncontext\r\n$5\r\nmulti\r\n$6\r\nobject\r\n$3\r\nget\r\n"), "{log}");
    assert!(log.contains("cmd=exec user=q"), "{log}");
    let stats = text(&mut admin, &["INFO", "errorstats"]);
    assert!(stats.contains("errorstat_NOPERM:count=4\r\n"), "{stats}");

    // Writes only, one key per shard (EXEC by hops when nothing is denied).
    assert_eq!(text(&mut admin, &all), "+OK\r\n");
    let keys = ["k:a", "x", "y", "z", "k:b", "w"];
    assert_eq!(text(&mut c, &["MULTI"]), "+OK\r\n");
    for k in keys {
        assert_eq!(text(&mut c, &["SET", k, "1"]), "+QUEUED\r\n");
    }
    assert_eq!(text(&mut admin, &["ACL", "SETUSER", "q", "resetkeys", "~k:*"]), "+OK\r\n");
    let denied = exec_denied("no permission to touch the specified keys");
    let expected = format!("*6\r\n+OK\r\n{denied}{denied}{denied}+OK\r\n{denied}");
    assert_eq!(text(&mut c, &["EXEC"]), expected);
    assert_eq!(text(&mut admin, &["EXISTS", "k:a", "x", "y", "z", "k:b", "w"]), ":2\r\n");

    // With WATCH over several shards (EXEC in two rounds when nothing is denied).
    assert_eq!(text(&mut admin, &all), "+OK\r\n");
    assert_eq!(text(&mut c, &["WATCH", "k:a", "x", "y"]), "+OK\r\n");
    assert_eq!(text(&mut c, &["MULTI"]), "+OK\r\n");
    for k in ["k:a", "x", "y"] {
        assert_eq!(text(&mut c, &["INCR", k]), "+QUEUED\r\n");
    }
    assert_eq!(text(&mut admin, &["ACL", "SETUSER", "q", "-incr"]), "+OK\r\n");
    let denied = exec_denied("no permission to execute the command or subcommand");
    assert_eq!(text(&mut c, &["EXEC"]), format!("*3\r\n{denied}{denied}{denied}"));
    assert_eq!(text(&mut admin, &["MGET", "k:a", "x", "y"]), format!("*3\r\n{}$-1\r\n$-1\r\n", bulk("1")));
}
