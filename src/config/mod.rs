//! Configuration, the way Redis users write it: `ringkv [file] [--name value ...]`,
//! redis.conf syntax in the file, and CONFIG GET/SET over the same table.
//!
//! Values that ringkv acts on are typed fields; every other Redis 7.0 name is
//! accepted, stored as text, and returned by CONFIG GET (see `table.rs`).

pub mod oom_score_adj;
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

/// The thresholds at which small collections leave their compact encoding
/// (Redis 7.0's names; converting at the same points keeps OBJECT ENCODING
/// and the order of small collections equal to Redis's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodingLimits {
    pub hash_max_listpack_entries: usize,
    pub hash_max_listpack_value: usize,
    pub set_max_intset_entries: usize,
    pub zset_max_listpack_entries: usize,
    pub zset_max_listpack_value: usize,
    /// `list-max-listpack-size`: > 0 elements per node, -1..-5 node bytes
    /// of 4, 8, 16, 32, 64 KiB.
    pub list_max_listpack_size: i32,
    pub list_compress_depth: usize,
    /// `hll-sparse-max-bytes`: the longest sparse HyperLogLog string.
    pub hll_sparse_max_bytes: usize,
    /// `stream-node-max-bytes` (0: no limit but the 1 GiB listpack one).
    pub stream_node_max_bytes: usize,
    /// `stream-node-max-entries` (0: no limit).
    pub stream_node_max_entries: i64,
}

impl Default for EncodingLimits {
    /// redis-server 7.0.15's compiled defaults (as CONFIG GET shows them).
    fn default() -> Self {
        EncodingLimits {
            hash_max_listpack_entries: 512,
            hash_max_listpack_value: 64,
            set_max_intset_entries: 512,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            list_max_listpack_size: -2,
            list_compress_depth: 0,
            hll_sparse_max_bytes: 3000,
            stream_node_max_bytes: 4096,
            stream_node_max_entries: 100,
        }
    }
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
    /// `user` directives: the name, then its ACL rules (`crate::acl`).
    pub users: Vec<Vec<String>>,
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
    /// Keys of all shards' client-tracking tables together (0: no limit).
    pub tracking_table_max_keys: u64,
    pub loglevel: LogLevel,
    pub logfile: String,
    pub hz: u64,
    pub rdbcompression: bool,
    /// `protected-mode`: without a password, refuse clients from outside
    /// the loopback interface (see `network::listener::protected_mode_denies`).
    pub protected_mode: bool,
    /// Redis's `activerehashing`: the cron moves an index doubling along.
    pub activerehashing: bool,
    /// Redis's `latency-tracking`: per-command latency histograms (INFO
    /// latencystats). Off, none is allocated or updated, as in Redis: the
    /// TCL unit maxmemory turns it off so that a command's first call does
    /// not add its histogram (~12 KB here) to used_memory.
    pub latency_tracking: bool,
    pub rdbchecksum: bool,
    pub stop_writes_on_bgsave_error: bool,
    pub encodings: EncodingLimits,
    /// `notify-keyspace-events` as flags (`messaging::notify`); 0: off.
    pub notify_keyspace_events: u32,
    /// ringkv's own: shard threads (0 = one per available core).
    pub shards: usize,
    /// ringkv's own: pin shard i to core i.
    pub cpu_affinity: bool,
    /// ringkv's own `batch-wait-usec`: how long a saturated shard loop waits
    /// for its next batch (`network::event_loop`, `EventLoop::wait`; 0: off).
    pub batch_wait_usec: u32,
    /// Every other accepted name, as text, keyed by its primary name.
    pub others: BTreeMap<String, String>,
    /// The config file given on the command line, as an absolute path (INFO shows it).
    pub config_file: Option<String>,
    /// Set once a `save` line was read from the file: later lines add save points.
    pub save_seen_in_file: bool,
    /// `rename-command old new` lines of the file, checked against the command table.
    pub renamed_commands: Vec<(String, String)>,
    /// Things to log once logging is up (ignored `loadmodule`, `user` lines...).
    pub startup_warnings: Vec<String>,
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
            users: Vec::new(),
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
            tracking_table_max_keys: 1_000_000,
            loglevel: LogLevel::Notice,
            logfile: String::new(),
            hz: 10,
            rdbcompression: true,
            protected_mode: true,
            activerehashing: true,
            latency_tracking: true,
            rdbchecksum: true,
            stop_writes_on_bgsave_error: true,
            encodings: EncodingLimits::default(),
            notify_keyspace_events: 0,
            shards: 0,
            cpu_affinity: false,
            batch_wait_usec: 0,
            others: BTreeMap::new(),
            config_file: None,
            save_seen_in_file: false,
            renamed_commands: vec![],
            startup_warnings: vec![],
        };
        table::install_defaults(&mut c);
        c
    }
}

impl Config {
    /// Parses `ringkv [configfile] [--name value ...]` as redis-server does:
    /// the options become config lines appended to the file's text, so an
    /// error in either names its line the same way.
    pub fn from_args(args: &[String]) -> Result<Config, String> {
        let mut config = Config::default();
        let mut rest = args;
        let mut text = String::new();
        if let Some(first) = rest.first() {
            if !first.starts_with('-') {
                let body = std::fs::read_to_string(first).map_err(|e| format!("Fatal error, can't open config file '{}': {}", first, table_strerror(&e)))?;
                let absolute = std::fs::canonicalize(first).map(|p| p.display().to_string()).unwrap_or_else(|_| first.clone());
                config.config_file = Some(absolute);
                text.push_str(&body);
                rest = &rest[1..];
            }
        }
        let options = options_text(rest);
        if !options.is_empty() {
            text.push('\n');
            text.push_str(&options);
        }
        config.load_text(&text)?;
        Ok(config)
    }

    /// Applies redis.conf-syntax text. Errors name the line, as Redis's
    /// "*** FATAL CONFIG FILE ERROR ***" report does.
    pub fn load_text(&mut self, text: &str) -> Result<(), String> {
        self.load_text_at_depth(text, 0)?;
        if !self.logfile.is_empty() {
            if let Err(e) = std::fs::OpenOptions::new().create(true).append(true).open(&self.logfile) {
                return Err(format!("{}Can't open the log file: {}", fatal_header(), table_strerror(&e)));
            }
        }
        Ok(())
    }

    fn load_text_at_depth(&mut self, text: &str, depth: usize) -> Result<(), String> {
        for (lineno, raw) in text.split('\n').enumerate() {
            let line = raw.trim_matches([' ', '\t', '\r', '\n']);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fail = |reason: &str| fatal(lineno + 1, line, reason);
            let words = split_config_line(line).ok_or_else(|| fail("Unbalanced quotes in configuration line"))?;
            if words.is_empty() {
                continue;
            }
            let name = words[0].to_ascii_lowercase();
            let values: Vec<&str> = words[1..].iter().map(|s| s.as_str()).collect();
            let argc = words.len();
            if let Some((def, _)) = table::lookup(&name) {
                if def.flags & table::MULTI_ARG == 0 && argc != 2 {
                    return Err(fail("wrong number of arguments"));
                }
                // As Redis 7.0: a multi-argument config given as one quoted
                // argument ("normal 1mb 0 0") is split on spaces.
                let split: Vec<&str>;
                let values: &[&str] = if def.flags & table::MULTI_ARG != 0 && values.len() == 1 && !values[0].is_empty() {
                    split = values[0].split(' ').filter(|w| !w.is_empty()).collect();
                    &split
                } else {
                    &values
                };
                table::set(self, def, values, true).map_err(|e| fail(&e))?;
                continue;
            }
            match name.as_str() {
                // Deprecated names Redis 7.0 still reads and ignores.
                "list-max-ziplist-entries" | "list-max-ziplist-value" | "lua-replicate-commands" if argc == 2 => {}
                "include" if argc == 2 => {
                    if depth >= 16 {
                        return Err(fail("Too many nested includes"));
                    }
                    for path in include_paths(values[0]).map_err(|e| fail(&e))? {
                        let body =
                            std::fs::read_to_string(&path).map_err(|e| format!("Fatal error, can't open config file '{}': {}", path, table_strerror(&e)))?;
                        self.load_text_at_depth(&body, depth + 1)?;
                    }
                }
                "rename-command" if argc == 3 => {
                    if crate::commands::CommandTable::get().lookup(values[0].as_bytes()).is_none() {
                        return Err(fail("No such command in rename-command"));
                    }
                    if !values[1].is_empty() && crate::commands::CommandTable::get().lookup(values[1].as_bytes()).is_some() {
                        return Err(fail("Target command name already exists"));
                    }
                    self.renamed_commands.push((values[0].to_ascii_lowercase(), values[1].to_string()));
                    self.startup_warnings.push(format!("rename-command {} is accepted but not applied: ringkv does not rename commands yet", values[0]));
                }
                "user" if argc >= 2 => {
                    // As ACLAppendUserForLoading: a user defined twice is an
                    // error; the rules are applied (and checked) at start-up.
                    if self.users.iter().any(|u| u[0] == values[0]) {
                        return Err(fail("Error in user declaration 'user': Duplicate user found. A user can only be defined once in config files"));
                    }
                    self.users.push(values.iter().map(|v| v.to_string()).collect());
                }
                "loadmodule" if argc >= 2 => {
                    self.startup_warnings.push(format!("Module {} not loaded: ringkv does not support modules", values[0]));
                }
                n if n.contains('.') => {
                    if argc != 2 {
                        return Err(fail("Module config specified without value"));
                    }
                    self.startup_warnings.push(format!("Module config {} ignored: ringkv does not support modules", words[0]));
                }
                "sentinel" => {
                    if argc != 1 {
                        return Err(fail("sentinel directive while not in sentinel mode"));
                    }
                }
                _ => return Err(fail("Bad directive or wrong number of arguments")),
            }
        }
        Ok(())
    }

    /// Sets one option from its words (ringkv's API; CONFIG SET goes through `table::set`).
    pub fn apply(&mut self, name: &str, values: &[&str], from_file: bool) -> Result<(), String> {
        table::apply(self, name, values, from_file)
    }

    /// CONFIG GET: every (name, value) whose name matches the glob `pattern`.
    pub fn get_matching(&self, pattern: &[u8]) -> Vec<(String, String)> {
        table::get_matching(self, pattern)
    }
}

/// The files an `include` line names: the path itself, or every match of a
/// glob in its last component (none is fine, as with Redis's glob includes).
fn include_paths(path: &str) -> Result<Vec<String>, String> {
    if !path.contains(['*', '?', '[']) {
        return Ok(vec![path.to_string()]);
    }
    let (dir, pattern) = match path.rfind('/') {
        Some(i) => (&path[..i.max(1)], &path[i + 1..]),
        None => (".", path),
    };
    let mut found = vec![];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if glob_match(pattern.as_bytes(), name.as_bytes(), false) {
                found.push(if path.contains('/') { format!("{}/{}", dir.trim_end_matches('/'), name) } else { name });
            }
        }
    }
    found.sort();
    Ok(found)
}

pub(crate) fn table_strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn fatal_header() -> String {
    format!("\n*** FATAL CONFIG FILE ERROR (ringkv {}) ***\n", env!("CARGO_PKG_VERSION"))
}

fn fatal(lineno: usize, line: &str, reason: &str) -> String {
    format!("{}Reading the configuration file, at line {}\n>>> '{}'\n{}", fatal_header(), lineno, line, reason)
}

/// Turns command-line options into config lines the way redis-server's main()
/// does: `--name` starts a line, each value is appended quoted (sdscatrepr),
/// and a bare `--save` before another option (or last) means `save ""`.
fn options_text(args: &[String]) -> String {
    let mut options = String::new();
    let mut handled_last_arg = true;
    for (j, a) in args.iter().enumerate() {
        let next_is_option = args.get(j + 1).is_some_and(|n| n.starts_with("--"));
        let last = j + 1 == args.len();
        if handled_last_arg && a.starts_with("--") {
            if !options.is_empty() {
                options.push('\n');
            }
            options.push_str(&a[2..]);
            options.push(' ');
            let words = split_config_line(a).map(|w| w.len()).unwrap_or(1);
            if words == 1 {
                // Only the name: its value follows, even if it starts with "--".
                handled_last_arg = false;
                if a.eq_ignore_ascii_case("--save") && (next_is_option || last) {
                    options.push_str("\"\"");
                    handled_last_arg = true;
                }
            } else {
                // "--port 6380" as one argument.
                handled_last_arg = true;
            }
        } else {
            options.push_str(&repr(a));
            options.push(' ');
            handled_last_arg = true;
        }
    }
    options
}

/// Redis's sdscatrepr: a double-quoted string with C escapes.
fn repr(a: &str) -> String {
    let mut s = String::from("\"");
    for &c in a.as_bytes() {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            7 => s.push_str("\\a"),
            8 => s.push_str("\\b"),
            c if c.is_ascii_graphic() || c == b' ' => s.push(c as char),
            c => s.push_str(&format!("\\x{:02x}", c)),
        }
    }
    s.push('"');
    s
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
// The nested ifs fall through to the mismatch path; folding them into guards would not.
#[allow(clippy::collapsible_match)]
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
    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_line() {
        let c = Config::from_args(&args(&["--port", "6380", "--save", "", "--shards", "3"])).unwrap();
        assert_eq!(c.port, 6380);
        assert!(c.save.is_empty());
        assert_eq!(c.shards, 3);
        // A bare --save before another option, or last, is `save ""`.
        let c = Config::from_args(&args(&["--save", "--port", "7000"])).unwrap();
        assert!(c.save.is_empty());
        assert_eq!(c.port, 7000);
        let c = Config::from_args(&args(&["--port", "7001", "--save"])).unwrap();
        assert!(c.save.is_empty());
        // A bare flags option is refused (unit/introspection's command line
        // error cases), in the middle or last.
        for bare in [&["--shutdown-on-sigint"][..], &["--shutdown-on-sigint", "now force", "--shutdown-on-sigterm"]] {
            let e = Config::from_args(&args(bare)).unwrap_err();
            assert!(e.ends_with("argument(s) must be one of the following: default, save, nosave, now, force"), "{}", e);
        }
        // Several values for one option, and "--name value" in one argument.
        let c = Config::from_args(&args(&["--save", "10", "1", "20", "2", "--maxmemory 1mb"])).unwrap();
        assert_eq!(c.save, vec![(10, 1), (20, 2)]);
        assert_eq!(c.others["maxmemory"], "1048576");
        let c = Config::from_args(&args(&["--slaveof", "127.0.0.1", "6379", "--hz", "1000"])).unwrap();
        assert_eq!(c.others["replicaof"], "127.0.0.1 6379");
        assert_eq!(c.hz, 500);
    }

    /// `save ""` empties the list wherever it comes, after a file's `save`
    /// lines too (unit/introspection's "CONFIG save params special case":
    /// `--save ""` after default.conf's `save 900 1`); other `save` lines
    /// after a file's first add to it.
    #[test]
    fn empty_save_after_file_lines_resets() {
        let d = temp_dir("save");
        let p = d.join("s.conf");
        std::fs::write(&p, "save 900 1\n").unwrap();
        let file = p.to_str().unwrap();
        assert!(Config::from_args(&args(&[file, "--save", ""])).unwrap().save.is_empty());
        assert_eq!(Config::from_args(&args(&[file, "--save", "100", "100"])).unwrap().save, vec![(900, 1), (100, 100)]);
        std::fs::write(&p, "save 900 1\nsave \"\"\nsave 100 10\n").unwrap();
        assert_eq!(Config::from_args(&args(&[p.to_str().unwrap()])).unwrap().save, vec![(100, 10)]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn command_line_errors_name_the_line() {
        // As redis-server: options follow the (empty) file after a newline, so the first is line 2.
        let e = Config::from_args(&args(&["--port", "7812", "--nosuch", "x"])).unwrap_err();
        assert!(e.ends_with("Reading the configuration file, at line 3\n>>> 'nosuch \"x\"'\nBad directive or wrong number of arguments"), "{}", e);
        assert!(e.contains("*** FATAL CONFIG FILE ERROR (ringkv "));
        let e = Config::from_args(&args(&["--port", "abc"])).unwrap_err();
        assert!(e.ends_with("at line 2\n>>> 'port \"abc\"'\nargument couldn't be parsed into an integer"), "{}", e);
        let e = Config::from_args(&args(&["--port", "1", "2"])).unwrap_err();
        assert!(e.ends_with("wrong number of arguments"), "{}", e);
    }

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ringkv-config-test-{}-{}", tag, std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn file_with_quotes_include_and_options() {
        let d = temp_dir("file");
        let inc = d.join("extra.conf");
        std::fs::write(&inc, "maxmemory-policy allkeys-lru\nsave 100 10\n").unwrap();
        let main = d.join("ringkv.conf");
        std::fs::write(
            &main,
            format!(
                "# comment\n\n  port 7100  \r\nrequirepass \"a b\\\"c\"\nlogfile ''\nsave 900 1\ninclude {}\nloadmodule /x/y.so arg\nlist-max-ziplist-entries 10\n",
                inc.display()
            ),
        )
        .unwrap();
        let c = Config::from_args(&args(&[main.to_str().unwrap(), "--port", "1"])).unwrap();
        // Command-line options come after the file, so they win.
        assert_eq!(c.port, 1);
        assert_eq!(c.requirepass.as_deref(), Some(&b"a b\"c"[..]));
        assert_eq!(c.others["maxmemory-policy"], "allkeys-lru");
        // The first save line replaces the defaults, later ones (even from includes) add.
        assert_eq!(c.save, vec![(900, 1), (100, 10)]);
        assert!(c.config_file.as_deref().unwrap().ends_with("ringkv.conf"));
        assert!(c.startup_warnings.iter().any(|w| w.contains("/x/y.so")));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn file_errors_name_the_line() {
        let d = temp_dir("bad");
        let p = d.join("bad.conf");
        std::fs::write(&p, "port 7813\n# c\nhz \"abc\n").unwrap();
        let e = Config::from_args(&args(&[p.to_str().unwrap()])).unwrap_err();
        assert!(e.ends_with("at line 3\n>>> 'hz \"abc'\nUnbalanced quotes in configuration line"), "{}", e);
        std::fs::write(&p, "port 7813\nnosuch-directive 1\n").unwrap();
        let e = Config::from_args(&args(&[p.to_str().unwrap(), "--port", "1"])).unwrap_err();
        assert!(e.ends_with("at line 2\n>>> 'nosuch-directive 1'\nBad directive or wrong number of arguments"), "{}", e);
        std::fs::write(&p, "maxmemory-policy foo\n").unwrap();
        let e = Config::from_args(&args(&[p.to_str().unwrap()])).unwrap_err();
        assert!(e.ends_with("argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction"), "{}", e);
        let e = Config::from_args(&args(&[d.join("missing.conf").to_str().unwrap()])).unwrap_err();
        assert!(e.starts_with("Fatal error, can't open config file"), "{}", e);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
