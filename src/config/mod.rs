//! Configuration, the way Redis users write it: `ringkv [file] [--name value ...]`,
//! redis.conf syntax in the file, and CONFIG GET/SET over the same table.
//!
//! Values that ringkv acts on are typed fields; every other Redis 7.0 name is
//! accepted, stored as text, and returned by CONFIG GET (see `table.rs`).

pub mod table;

use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Verbose,
    Notice,
    Warning,
    Nothing,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutputBufferLimit {
    pub hard_bytes: u64,
    pub soft_bytes: u64,
    pub soft_seconds: u64,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub port: u16,
    pub bind: Vec<String>,
    pub dir: String,
    pub dbfilename: String,
    /// Save points: (seconds, changes).
    pub save: Vec<(u64, u64)>,
    pub requirepass: Option<Vec<u8>>,
    pub maxclients: usize,
    pub timeout_seconds: u64,
    pub databases: usize,
    pub proto_max_bulk_len: i64,
    pub client_query_buffer_limit: u64,
    pub client_output_buffer_limit_normal: OutputBufferLimit,
    pub client_output_buffer_limit_replica: OutputBufferLimit,
    pub client_output_buffer_limit_pubsub: OutputBufferLimit,
    pub latency_monitor_threshold_ms: u64,
    pub slowlog_log_slower_than_usec: i64,
    pub slowlog_max_len: usize,
    pub loglevel: LogLevel,
    pub logfile: String,
    pub hz: u64,
    pub rdbcompression: bool,
    pub rdbchecksum: bool,
    pub stop_writes_on_bgsave_error: bool,
    /// ringkv's own: shard threads (0 = one per available core).
    pub shards: usize,
    /// ringkv's own: pin shard i to core i.
    pub cpu_affinity: bool,
    /// Every other accepted name, as text.
    pub others: BTreeMap<String, String>,
    /// The config file given on the command line, if any (CONFIG GET does not show it; INFO does).
    pub config_file: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        let mut c = Config {
            port: 6379,
            bind: vec!["127.0.0.1".into()],
            dir: ".".into(),
            dbfilename: "dump.rdb".into(),
            save: vec![(3600, 1), (300, 100), (60, 10000)],
            requirepass: None,
            maxclients: 10000,
            timeout_seconds: 0,
            databases: 16,
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            client_output_buffer_limit_normal: OutputBufferLimit::default(),
            client_output_buffer_limit_replica: OutputBufferLimit { hard_bytes: 256 << 20, soft_bytes: 64 << 20, soft_seconds: 60 },
            client_output_buffer_limit_pubsub: OutputBufferLimit { hard_bytes: 32 << 20, soft_bytes: 8 << 20, soft_seconds: 60 },
            latency_monitor_threshold_ms: 0,
            slowlog_log_slower_than_usec: 10000,
            slowlog_max_len: 128,
            loglevel: LogLevel::Notice,
            logfile: String::new(),
            hz: 10,
            rdbcompression: true,
            rdbchecksum: true,
            stop_writes_on_bgsave_error: true,
            shards: 0,
            cpu_affinity: false,
            others: BTreeMap::new(),
            config_file: None,
        };
        table::install_defaults(&mut c);
        c
    }
}

impl Config {
    /// Parses `ringkv [configfile] [--name value ...]` as redis-server does:
    /// the file first, then the command-line options appended to it.
    pub fn from_args(args: &[String]) -> Result<Config, String> {
        let mut config = Config::default();
        let mut rest = args;
        let mut text = String::new();
        if let Some(first) = rest.first() {
            if !first.starts_with("--") {
                let body = std::fs::read_to_string(first).map_err(|e| format!("Fatal error, can't open config file '{}': {}", first, e))?;
                config.config_file = Some(first.clone());
                text.push_str(&body);
                text.push('\n');
                rest = &rest[1..];
            }
        }
        // Command-line options become config lines: "--port 6380 --save ''" -> "port 6380\nsave ''".
        let mut line = String::new();
        for a in rest {
            if let Some(name) = a.strip_prefix("--") {
                if !line.is_empty() {
                    text.push_str(&line);
                    text.push('\n');
                }
                line = name.to_string();
            } else {
                if line.is_empty() {
                    return Err(format!("Invalid argument '{}': options start with --", a));
                }
                line.push(' ');
                line.push_str(&quote_arg(a));
            }
        }
        if !line.is_empty() {
            text.push_str(&line);
            text.push('\n');
        }
        config.load_text(&text)?;
        Ok(config)
    }

    /// Applies redis.conf-syntax text. Errors name the line, as Redis's
    /// "*** FATAL CONFIG FILE ERROR ***" report does.
    pub fn load_text(&mut self, text: &str) -> Result<(), String> {
        for (lineno, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words = split_config_line(line).ok_or_else(|| fatal(lineno + 1, raw, "Unbalanced quotes in configuration line"))?;
            if words.is_empty() {
                continue;
            }
            let name = words[0].to_ascii_lowercase();
            let values: Vec<&str> = words[1..].iter().map(|s| s.as_str()).collect();
            self.apply(&name, &values, true).map_err(|e| fatal(lineno + 1, raw, &e))?;
        }
        Ok(())
    }

    /// Sets one option from its words (CONFIG SET passes one value; the file
    /// passes all the line's words).
    pub fn apply(&mut self, name: &str, values: &[&str], from_file: bool) -> Result<(), String> {
        table::apply(self, name, values, from_file)
    }

    /// CONFIG GET: every (name, value) whose name matches the glob `pattern`.
    pub fn get_matching(&self, pattern: &[u8]) -> Vec<(String, String)> {
        table::get_matching(self, pattern)
    }
}

fn fatal(lineno: usize, line: &str, reason: &str) -> String {
    format!("\n*** FATAL CONFIG FILE ERROR (ringkv) ***\nReading the configuration file, at line {}\n>>> '{}'\n{}", lineno, line.trim(), reason)
}

fn quote_arg(a: &str) -> String {
    if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
        let mut s = String::from("\"");
        for c in a.chars() {
            if c == '"' || c == '\\' {
                s.push('\\');
            }
            s.push(c);
        }
        s.push('"');
        s
    } else {
        a.to_string()
    }
}

/// redis.conf line splitting (sdssplitargs).
pub fn split_config_line(line: &str) -> Option<Vec<String>> {
    let mut args = crate::protocol::Args::new();
    if !crate::protocol::parser::split_args(line.as_bytes(), &mut args) {
        return None;
    }
    Some((0..args.len()).map(|i| String::from_utf8_lossy(args.get(line.as_bytes(), i)).into_owned()).collect())
}

/// Redis's `stringmatchlen`: glob with `*`, `?`, `[...]` (with `^` and ranges), `\` escapes.
pub fn glob_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    fn lower(c: u8, nocase: bool) -> u8 {
        if nocase {
            c.to_ascii_lowercase()
        } else {
            c
        }
    }
    let (mut p, mut s) = (0usize, 0usize);
    // Iterative with backtracking on the last '*'.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p + 1 < pattern.len() && pattern[p + 1] == b'*' {
                        p += 1;
                    }
                    star = Some((p, s));
                    p += 1;
                    continue;
                }
                b'?' if s < string.len() => {
                    p += 1;
                    s += 1;
                    continue;
                }
                b'[' if s < string.len() => {
                    let mut q = p + 1;
                    let not = q < pattern.len() && pattern[q] == b'^';
                    if not {
                        q += 1;
                    }
                    let mut matched = false;
                    loop {
                        if q >= pattern.len() {
                            q -= 1;
                            break;
                        }
                        if pattern[q] == b'\\' && q + 2 < pattern.len() {
                            q += 1;
                            if pattern[q] == string[s] {
                                matched = true;
                            }
                        } else if pattern[q] == b']' {
                            break;
                        } else if q + 2 < pattern.len() && pattern[q + 1] == b'-' {
                            let (mut a, mut b) = (lower(pattern[q], nocase), lower(pattern[q + 2], nocase));
                            if a > b {
                                std::mem::swap(&mut a, &mut b);
                            }
                            let c = lower(string[s], nocase);
                            if c >= a && c <= b {
                                matched = true;
                            }
                            q += 2;
                        } else if lower(pattern[q], nocase) == lower(string[s], nocase) {
                            matched = true;
                        }
                        q += 1;
                    }
                    if not {
                        matched = !matched;
                    }
                    if matched {
                        p = q + 1;
                        s += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() && s < string.len() => {
                    if pattern[p + 1] == string[s] {
                        p += 2;
                        s += 1;
                        continue;
                    }
                }
                c if s < string.len() && c != b'*' && c != b'?' && c != b'[' => {
                    if lower(c, nocase) == lower(string[s], nocase) {
                        p += 1;
                        s += 1;
                        continue;
                    }
                }
                _ => {}
            }
        } else if s == string.len() {
            return true;
        }
        // Mismatch: backtrack to the last star, letting it eat one more byte.
        match star {
            Some((sp, ss)) if ss < string.len() => {
                star = Some((sp, ss + 1));
                p = sp + 1;
                s = ss + 1;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn globs() {
        assert!(glob_match(b"*", b"anything", false));
        assert!(glob_match(b"h?llo", b"hello", false));
        assert!(glob_match(b"h*llo", b"heeeello", false));
        assert!(glob_match(b"h[ae]llo", b"hallo", false));
        assert!(!glob_match(b"h[^e]llo", b"hello", false));
        assert!(glob_match(b"h[a-b]llo", b"hbllo", false));
        assert!(glob_match(b"max*", b"maxclients", false));
        assert!(!glob_match(b"max*", b"xmaxclients", false));
        assert!(glob_match(b"*-max-*", b"hash-max-listpack-entries", false));
        assert!(glob_match(b"a\\*b", b"a*b", false));
        assert!(glob_match(b"", b"", false));
        assert!(!glob_match(b"", b"a", false));
    }
    #[test]
    fn command_line() {
        let c = Config::from_args(&["--port".into(), "6380".into(), "--save".into(), "".into(), "--shards".into(), "3".into()]).unwrap();
        assert_eq!(c.port, 6380);
        assert!(c.save.is_empty());
        assert_eq!(c.shards, 3);
        assert!(Config::from_args(&["--no-such-option".into(), "1".into()]).is_err());
    }
}
