//! The table of configuration names: the ones ringkv acts on (typed fields
//! of `Config`) and every other name Redis 7.0 accepts (stored as text).

use super::{Config, LogLevel, OutputBufferLimit};

/// Redis 7.0 names that ringkv accepts and stores without acting on them,
/// with Redis's default value. (Grown to the full Redis 7.0 list.)
pub const STORED_ONLY: &[(&str, &str)] = &[
    ("appendonly", "no"),
    ("appendfilename", "appendonly.aof"),
    ("appendfsync", "everysec"),
    ("maxmemory", "0"),
    ("maxmemory-policy", "noeviction"),
    ("tcp-backlog", "511"),
    ("tcp-keepalive", "300"),
    ("protected-mode", "yes"),
    ("daemonize", "no"),
    ("pidfile", ""),
    ("io-threads", "1"),
    ("cluster-enabled", "no"),
    ("lazyfree-lazy-user-flush", "no"),
];

pub fn install_defaults(c: &mut Config) {
    for (k, v) in STORED_ONLY {
        c.others.insert(k.to_string(), v.to_string());
    }
}

fn yes_no(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err("argument must be 'yes' or 'no'".into()),
    }
}

/// Redis's memtoll: "1gb", "100mb", "10k"...
pub fn parse_memory(v: &str) -> Result<u64, String> {
    let lower = v.to_ascii_lowercase();
    let (num, mul) = if let Some(n) = lower.strip_suffix("gb") {
        (n, 1u64 << 30)
    } else if let Some(n) = lower.strip_suffix("mb") {
        (n, 1 << 20)
    } else if let Some(n) = lower.strip_suffix("kb") {
        (n, 1 << 10)
    } else if let Some(n) = lower.strip_suffix('g') {
        (n, 1_000_000_000)
    } else if let Some(n) = lower.strip_suffix('m') {
        (n, 1_000_000)
    } else if let Some(n) = lower.strip_suffix('k') {
        (n, 1_000)
    } else if let Some(n) = lower.strip_suffix('b') {
        (n, 1)
    } else {
        (lower.as_str(), 1)
    };
    let n: u64 = num.parse().map_err(|_| "argument must be a memory value".to_string())?;
    n.checked_mul(mul).ok_or_else(|| "argument must be a memory value".to_string())
}

fn parse_num<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.parse::<T>().map_err(|_| "argument couldn't be parsed into an integer".to_string())
}

pub fn apply(c: &mut Config, name: &str, values: &[&str], _from_file: bool) -> Result<(), String> {
    let one = || -> Result<&str, String> {
        if values.len() == 1 {
            Ok(values[0])
        } else {
            Err("wrong number of arguments".into())
        }
    };
    match name {
        "port" => c.port = parse_num(one()?)?,
        "bind" => c.bind = values.iter().map(|s| s.to_string()).collect(),
        "dir" => c.dir = one()?.to_string(),
        "dbfilename" => c.dbfilename = one()?.to_string(),
        "save" => {
            let words: Vec<&str> = values.iter().flat_map(|v| v.split_whitespace()).collect();
            if words.len() % 2 != 0 {
                return Err("Invalid save parameters".into());
            }
            let mut points = vec![];
            for pair in words.chunks(2) {
                points.push((parse_num(pair[0]).map_err(|_| "Invalid save parameters")?, parse_num(pair[1]).map_err(|_| "Invalid save parameters")?));
            }
            c.save = points;
        }
        "requirepass" => {
            let v = one()?;
            c.requirepass = if v.is_empty() { None } else { Some(v.as_bytes().to_vec()) };
        }
        "maxclients" => c.maxclients = parse_num(one()?)?,
        "timeout" => c.timeout_seconds = parse_num(one()?)?,
        "databases" => c.databases = parse_num(one()?)?,
        "proto-max-bulk-len" => c.proto_max_bulk_len = parse_memory(one()?)? as i64,
        "client-query-buffer-limit" => c.client_query_buffer_limit = parse_memory(one()?)?,
        "client-output-buffer-limit" => {
            let words: Vec<&str> = values.iter().flat_map(|v| v.split_whitespace()).collect();
            if words.len() % 4 != 0 || words.is_empty() {
                return Err("Wrong number of arguments in buffer limit configuration.".into());
            }
            for w in words.chunks(4) {
                let limit = OutputBufferLimit { hard_bytes: parse_memory(w[1])?, soft_bytes: parse_memory(w[2])?, soft_seconds: parse_num(w[3])? };
                match w[0].to_ascii_lowercase().as_str() {
                    "normal" => c.client_output_buffer_limit_normal = limit,
                    "replica" | "slave" => c.client_output_buffer_limit_replica = limit,
                    "pubsub" => c.client_output_buffer_limit_pubsub = limit,
                    _ => return Err("Invalid client class specified in buffer limit configuration.".into()),
                }
            }
        }
        "latency-monitor-threshold" => c.latency_monitor_threshold_ms = parse_num(one()?)?,
        "slowlog-log-slower-than" => c.slowlog_log_slower_than_usec = parse_num(one()?)?,
        "slowlog-max-len" => c.slowlog_max_len = parse_num(one()?)?,
        "loglevel" => {
            c.loglevel = match one()?.to_ascii_lowercase().as_str() {
                "debug" => LogLevel::Debug,
                "verbose" => LogLevel::Verbose,
                "notice" => LogLevel::Notice,
                "warning" => LogLevel::Warning,
                "nothing" => LogLevel::Nothing,
                _ => return Err("argument(s) must be one of the following: debug, verbose, notice, warning, nothing".into()),
            }
        }
        "logfile" => c.logfile = one()?.to_string(),
        "hz" => c.hz = parse_num::<u64>(one()?)?.clamp(1, 500),
        "rdbcompression" => c.rdbcompression = yes_no(one()?)?,
        "rdbchecksum" => c.rdbchecksum = yes_no(one()?)?,
        "stop-writes-on-bgsave-error" => c.stop_writes_on_bgsave_error = yes_no(one()?)?,
        "shards" => c.shards = parse_num(one()?)?,
        "cpu-affinity" => c.cpu_affinity = if values.is_empty() { true } else { yes_no(values[0])? },
        other => {
            if c.others.contains_key(other) {
                c.others.insert(other.to_string(), values.join(" "));
            } else {
                return Err("Bad directive or wrong number of arguments".into());
            }
        }
    }
    Ok(())
}

fn fmt_limit(class: &str, l: &OutputBufferLimit) -> String {
    format!("{} {} {} {}", class, l.hard_bytes, l.soft_bytes, l.soft_seconds)
}

/// Every (name, value) pair as CONFIG GET shows it.
pub fn all_pairs(c: &Config) -> Vec<(String, String)> {
    let yn = |b: bool| {
        if b {
            "yes".to_string()
        } else {
            "no".to_string()
        }
    };
    let mut v: Vec<(String, String)> = vec![
        ("port".into(), c.port.to_string()),
        ("bind".into(), c.bind.join(" ")),
        ("dir".into(), std::fs::canonicalize(&c.dir).map(|p| p.display().to_string()).unwrap_or_else(|_| c.dir.clone())),
        ("dbfilename".into(), c.dbfilename.clone()),
        ("save".into(), c.save.iter().map(|(s, n)| format!("{} {}", s, n)).collect::<Vec<_>>().join(" ")),
        ("requirepass".into(), c.requirepass.as_ref().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default()),
        ("maxclients".into(), c.maxclients.to_string()),
        ("timeout".into(), c.timeout_seconds.to_string()),
        ("databases".into(), c.databases.to_string()),
        ("proto-max-bulk-len".into(), c.proto_max_bulk_len.to_string()),
        ("client-query-buffer-limit".into(), c.client_query_buffer_limit.to_string()),
        (
            "client-output-buffer-limit".into(),
            format!(
                "{} {} {}",
                fmt_limit("normal", &c.client_output_buffer_limit_normal),
                fmt_limit("slave", &c.client_output_buffer_limit_replica),
                fmt_limit("pubsub", &c.client_output_buffer_limit_pubsub)
            ),
        ),
        ("latency-monitor-threshold".into(), c.latency_monitor_threshold_ms.to_string()),
        ("slowlog-log-slower-than".into(), c.slowlog_log_slower_than_usec.to_string()),
        ("slowlog-max-len".into(), c.slowlog_max_len.to_string()),
        (
            "loglevel".into(),
            match c.loglevel {
                LogLevel::Debug => "debug",
                LogLevel::Verbose => "verbose",
                LogLevel::Notice => "notice",
                LogLevel::Warning => "warning",
                LogLevel::Nothing => "nothing",
            }
            .into(),
        ),
        ("logfile".into(), c.logfile.clone()),
        ("hz".into(), c.hz.to_string()),
        ("rdbcompression".into(), yn(c.rdbcompression)),
        ("rdbchecksum".into(), yn(c.rdbchecksum)),
        ("stop-writes-on-bgsave-error".into(), yn(c.stop_writes_on_bgsave_error)),
        ("shards".into(), c.shards.to_string()),
        ("cpu-affinity".into(), yn(c.cpu_affinity)),
    ];
    for (k, val) in &c.others {
        v.push((k.clone(), val.clone()));
    }
    v
}

pub fn get_matching(c: &Config, pattern: &[u8]) -> Vec<(String, String)> {
    all_pairs(c).into_iter().filter(|(k, _)| super::glob_match(pattern, k.as_bytes(), true)).collect()
}
