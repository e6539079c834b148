//! Redis's `redactClientCommandArgument`: the secrets a command carries are
//! shown as "(redacted)" by MONITOR and the slowlog. Computed only where a
//! line or entry is written, never on the plain command path.

/// What Redis shows instead of a secret.
pub const REDACTED: &[u8] = b"(redacted)";

/// The positions of `args` (a command named `name`, as the table spells it)
/// that Redis 7.0 redacts, as its handlers do while parsing:
/// - AUTH (two or three arguments): every argument after the name;
/// - ACL SETUSER: every argument after the subcommand;
/// - HELLO: the two arguments after each AUTH option met while the options
///   still parse (a bad protocol version redacts nothing; the scan stops at
///   the first option in error, as the handler returns there);
/// - MIGRATE: the password after AUTH, the user and password after AUTH2,
///   while its options parse (from the sixth argument, up to KEYS);
/// - CONFIG SET (name-value pairs complete): the value of each sensitive
///   parameter (`masterauth`, `masteruser`, `requirepass`, Redis's
///   SENSITIVE_CONFIG), whether or not the command then fails on another
///   pair; an odd count is a syntax error first, and redacts nothing.
fn positions(name: &str, args: &[&[u8]]) -> Vec<usize> {
    match name {
        "auth" if args.len() <= 3 => (1..args.len()).collect(),
        // ACL SETUSER: the name and every rule (passwords among them).
        "acl|setuser" => (2..args.len()).collect(),
        "hello" => {
            let mut out = vec![];
            if args.len() >= 2 && !crate::commands::parse_i64(args[1]).is_some_and(|v| (2..=3).contains(&v)) {
                return out;
            }
            let mut j = 2;
            while j < args.len() {
                let more = args.len() - 1 - j;
                if args[j].eq_ignore_ascii_case(b"auth") && more >= 2 {
                    out.extend([j + 1, j + 2]);
                    j += 3;
                } else if args[j].eq_ignore_ascii_case(b"setname") && more >= 1 {
                    j += 2;
                } else {
                    break;
                }
            }
            out
        }
        "migrate" => {
            let mut out = vec![];
            let mut j = 6;
            while j < args.len() {
                let more = args.len() - 1 - j;
                if args[j].eq_ignore_ascii_case(b"auth") && more >= 1 {
                    out.push(j + 1);
                    j += 2;
                } else if args[j].eq_ignore_ascii_case(b"auth2") && more >= 2 {
                    out.extend([j + 1, j + 2]);
                    j += 3;
                } else if args[j].eq_ignore_ascii_case(b"copy") || args[j].eq_ignore_ascii_case(b"replace") {
                    j += 1;
                } else {
                    break;
                }
            }
            out
        }
        "config|set" if args.len() >= 4 && args.len().is_multiple_of(2) => {
            let sensitive = |n: &[u8]| [&b"masterauth"[..], b"masteruser", b"requirepass"].iter().any(|s| n.eq_ignore_ascii_case(s));
            (2..args.len()).step_by(2).filter(|&i| sensitive(args[i])).map(|i| i + 1).collect()
        }
        _ => vec![],
    }
}

/// `args` as MONITOR and the slowlog show them: borrowed as they are, or,
/// for a command with secrets, copied into `shown` with them replaced.
pub fn shown<'a>(name: &str, args: &'a [&'a [u8]], shown: &'a mut Vec<&'a [u8]>) -> &'a [&'a [u8]] {
    if !matches!(name, "auth" | "hello" | "migrate" | "acl|setuser" | "config|set") {
        return args;
    }
    let hide = positions(name, args);
    if hide.is_empty() {
        return args;
    }
    shown.clear();
    shown.extend(args.iter().enumerate().map(|(i, a)| if hide.contains(&i) { REDACTED } else { *a }));
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(name: &str, args: &[&str]) -> Vec<String> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let mut buf = vec![];
        shown(name, &args, &mut buf).iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect()
    }

    #[test]
    fn redacts_as_redis_7_0() {
        assert_eq!(show("auth", &["auth", "pw"]), ["auth", "(redacted)"]);
        assert_eq!(show("acl|setuser", &["acl", "setuser", "u", ">pw"]), ["acl", "setuser", "(redacted)", "(redacted)"]);
        assert_eq!(show("auth", &["auth", "u", "pw"]), ["auth", "(redacted)", "(redacted)"]);
        // A syntax error comes first.
        assert_eq!(show("auth", &["auth", "a", "b", "c"]), ["auth", "a", "b", "c"]);
        assert_eq!(show("hello", &["hello", "2", "AUTH", "u", "p", "bogus"]), ["hello", "2", "AUTH", "(redacted)", "(redacted)", "bogus"]);
        assert_eq!(show("hello", &["hello", "3", "setname", "n", "auth", "u", "p"]), ["hello", "3", "setname", "n", "auth", "(redacted)", "(redacted)"]);
        assert_eq!(show("hello", &["hello", "4", "AUTH", "u", "p"]), ["hello", "4", "AUTH", "u", "p"]);
        assert_eq!(show("hello", &["hello", "x", "AUTH", "u", "p"]), ["hello", "x", "AUTH", "u", "p"]);
        assert_eq!(show("hello", &["hello", "2", "AUTH", "u"]), ["hello", "2", "AUTH", "u"]);
        assert_eq!(show("hello", &["hello", "2", "bad", "AUTH", "u", "p"]), ["hello", "2", "bad", "AUTH", "u", "p"]);
        assert_eq!(show("get", &["get", "k"]), ["get", "k"]);
        assert_eq!(show("config|set", &["config", "set", "masterauth", ""]), ["config", "set", "masterauth", "(redacted)"]);
        assert_eq!(
            show("config|set", &["config", "set", "nosuch", "1", "MasterUser", "u", "requirepass", "p"]),
            ["config", "set", "nosuch", "1", "MasterUser", "(redacted)", "requirepass", "(redacted)"]
        );
        assert_eq!(show("config|set", &["config", "set", "masterauth", "p", "maxmemory"]), ["config", "set", "masterauth", "p", "maxmemory"]);
        assert_eq!(show("config|set", &["config", "set", "maxmemory", "0"]), ["config", "set", "maxmemory", "0"]);
    }
}
