//! The latency monitor (LATENCY LATEST / HISTORY), as Redis's latency.c:
//! per event, up to 160 samples of (unix seconds, max ms in that second).

use std::collections::HashMap;

pub const LATENCY_TS_LEN: usize = 160;

#[derive(Clone, Copy, Debug)]
pub struct LatencySample {
    pub time_sec: i64,
    pub latency_ms: u64,
}

#[derive(Clone, Debug, Default)]
pub struct LatencySeries {
    pub samples: std::collections::VecDeque<LatencySample>,
    pub max_ms: u64,
}

#[derive(Default)]
pub struct LatencyMonitor {
    pub events: HashMap<String, LatencySeries>,
}

impl LatencyMonitor {
    pub fn add_sample(&mut self, event: &str, latency_ms: u64, now_sec: i64) {
        let series = self.events.entry(event.to_string()).or_default();
        series.max_ms = series.max_ms.max(latency_ms);
        if let Some(last) = series.samples.back_mut() {
            if last.time_sec == now_sec {
                last.latency_ms = last.latency_ms.max(latency_ms);
                return;
            }
        }
        series.samples.push_back(LatencySample { time_sec: now_sec, latency_ms });
        while series.samples.len() > LATENCY_TS_LEN {
            series.samples.pop_front();
        }
    }
}

/// What LATENCY DOCTOR says about one event (Redis's `analyzeLatencyForEvent`):
/// samples, their average and mean absolute deviation (integer ms), and the
/// seconds since the oldest sample (at least 1).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EventAnalysis {
    pub samples: u64,
    pub avg_ms: u64,
    pub mad_ms: u64,
    pub period_sec: i64,
}

pub fn analyze(samples: &[LatencySample], now_sec: i64) -> EventAnalysis {
    if samples.is_empty() {
        return EventAnalysis::default();
    }
    let n = samples.len() as u64;
    let avg_ms = samples.iter().map(|s| s.latency_ms).sum::<u64>() / n;
    let mad_ms = samples.iter().map(|s| s.latency_ms.abs_diff(avg_ms)).sum::<u64>() / n;
    let oldest = samples.iter().map(|s| s.time_sec).min().unwrap_or(now_sec);
    let period_sec = (now_sec - oldest).max(0);
    EventAnalysis { samples: n, avg_ms, mad_ms, period_sec: if period_sec == 0 { 1 } else { period_sec } }
}

/// The server facts LATENCY DOCTOR's advice depends on.
pub struct DoctorContext {
    pub threshold_ms: u64,
    pub slowlog_log_slower_than_usec: i64,
    /// GB of used memory forked per second at the last fork (Redis's `stat_fork_rate`).
    pub fork_rate_gb_per_sec: f64,
    pub hz: u64,
    pub appendfsync_always: bool,
    /// AnonHugePages of the process (smaps), bytes.
    pub anon_huge_pages_bytes: u64,
    pub now_sec: i64,
}

/// One event for the report: its name, samples (oldest first) and all-time maximum.
pub struct EventView<'a> {
    pub name: &'a str,
    pub samples: &'a [LatencySample],
    pub max_ms: u64,
}

#[derive(Default)]
struct Advice {
    better_vm: bool,
    slowlog_enabled: bool,
    slowlog_tuning: bool,
    slowlog_inspect: bool,
    disk_contention: bool,
    scheduler: bool,
    data_writeback: bool,
    no_appendfsync: bool,
    local_disk: bool,
    ssd: bool,
    write_load_info: bool,
    hz: bool,
    large_objects: bool,
    mass_eviction: bool,
    relax_fsync_policy: bool,
    disable_thp: bool,
    count: usize,
}

/// LATENCY DOCTOR's report (Redis's `createLatencyReport`, texts as
/// redis-server 7.0.15 prints them).
pub fn doctor_report(events: &[EventView], c: &DoctorContext) -> String {
    use std::fmt::Write;
    let mut report = String::new();
    if events.is_empty() && c.threshold_ms == 0 {
        report.push_str("I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n");
        return report;
    }
    let mut a = Advice::default();
    for (n, e) in events.iter().enumerate() {
        if n == 0 {
            report.push_str("Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n");
        }
        let ls = analyze(e.samples, c.now_sec);
        let period = if ls.samples == 0 { f64::NAN } else { ls.period_sec as f64 / ls.samples as f64 };
        let _ = write!(
            report,
            "{}. {}: {} latency spikes (average {}ms, mean deviation {}ms, period {:.2} sec). Worst all time event {}ms.",
            n + 1,
            e.name,
            ls.samples,
            ls.avg_ms,
            ls.mad_ms,
            period,
            e.max_ms
        );
        let name = e.name.to_ascii_lowercase();
        match name.as_str() {
            "fork" => {
                let rate = c.fork_rate_gb_per_sec;
                let quality = if rate < 10.0 {
                    a.better_vm = true;
                    a.count += 1;
                    "terrible"
                } else if rate < 25.0 {
                    a.better_vm = true;
                    a.count += 1;
                    "poor"
                } else if rate < 100.0 {
                    "good"
                } else {
                    "excellent"
                };
                let _ = write!(report, " Fork rate is {:.2} GB/sec ({}).", rate, quality);
            }
            "command" => {
                if c.slowlog_log_slower_than_usec < 0 {
                    a.slowlog_enabled = true;
                    a.count += 1;
                } else if (c.slowlog_log_slower_than_usec / 1000) as u64 > c.threshold_ms {
                    a.slowlog_tuning = true;
                    a.count += 1;
                }
                a.slowlog_inspect = true;
                a.large_objects = true;
                a.count += 2;
            }
            "fast-command" => {
                a.scheduler = true;
                a.count += 1;
            }
            "aof-write-pending-fsync" => {
                (a.local_disk, a.disk_contention, a.ssd, a.data_writeback) = (true, true, true, true);
                a.count += 4;
            }
            "aof-write-active-child" => {
                (a.no_appendfsync, a.data_writeback, a.ssd) = (true, true, true);
                a.count += 3;
            }
            "aof-write-alone" => {
                (a.local_disk, a.data_writeback, a.ssd) = (true, true, true);
                a.count += 3;
            }
            "aof-fsync-always" => {
                a.relax_fsync_policy = true;
                a.count += 1;
            }
            "aof-fstat" | "rdb-unlink-temp-file" => {
                (a.disk_contention, a.local_disk) = (true, true);
                a.count += 2;
            }
            "aof-rewrite-diff-write" | "aof-rename" => {
                (a.write_load_info, a.data_writeback, a.ssd, a.local_disk) = (true, true, true, true);
                a.count += 4;
            }
            "expire-cycle" => {
                (a.hz, a.large_objects) = (true, true);
                a.count += 2;
            }
            "eviction-del" => {
                a.large_objects = true;
                a.count += 1;
            }
            "eviction-cycle" => {
                a.mass_eviction = true;
                a.count += 1;
            }
            _ => {}
        }
        report.push('\n');
    }
    if c.anon_huge_pages_bytes > 0 {
        a.disable_thp = true;
        a.count += 1;
    }
    if events.is_empty() && a.count == 0 {
        report.push_str("Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n");
        return report;
    }
    if !events.is_empty() && a.count == 0 {
        report.push_str("\nWhile there are latency events logged, I'm not able to suggest any easy fix. Please use the Redis community to get some help, providing this report in your help request.\n");
        return report;
    }
    report.push_str("\nI have a few advices for you:\n\n");
    let mut add = |on: bool, text: &str| {
        if on {
            report.push_str(text);
        }
    };
    add(a.better_vm, "- If you are using a virtual machine, consider upgrading it with a faster one using a hypervisior that provides less latency during fork() calls. Xen is known to have poor fork() performance. Even in the context of the same VM provider, certain kinds of instances can execute fork faster than others.\n");
    let threshold_usec = c.threshold_ms * 1000;
    add(a.slowlog_enabled, &format!("- There are latency issues with potentially slow commands you are using. Try to enable the Slow Log Redis feature using the command 'CONFIG SET slowlog-log-slower-than {}'. If the Slow log is disabled Redis is not able to log slow commands execution for you.\n", threshold_usec));
    add(a.slowlog_tuning, &format!("- Your current Slow Log configuration only logs events that are slower than your configured latency monitor threshold. Please use 'CONFIG SET slowlog-log-slower-than {}'.\n", threshold_usec));
    add(a.slowlog_inspect, "- Check your Slow Log to understand what are the commands you are running which are too slow to execute. Please check https://redis.io/commands/slowlog for more information.\n");
    add(a.scheduler, "- The system is slow to execute Redis code paths not containing system calls. This usually means the system does not provide Redis CPU time to run for long periods. You should try to:\n  1) Lower the system load.\n  2) Use a computer / VM just for Redis if you are running other software in the same system.\n  3) Check if you have a \"noisy neighbour\" problem.\n  4) Check with 'redis-cli --intrinsic-latency 100' what is the intrinsic latency in your system.\n  5) Check if the problem is allocator-related by recompiling Redis with MALLOC=libc, if you are using Jemalloc. However this may create fragmentation problems.\n");
    add(a.local_disk, "- It is strongly advised to use local disks for persistence, especially if you are using AOF. Remote disks provided by platform-as-a-service providers are known to be slow.\n");
    add(a.ssd, "- SSD disks are able to reduce fsync latency, and total time needed for snapshotting and AOF log rewriting (resulting in smaller memory usage and smaller final AOF rewrite buffer flushes). With extremely high write load SSD disks can be a good option. However Redis should perform reasonably with high load using normal disks. Use this advice as a last resort.\n");
    add(a.data_writeback, "- Mounting ext3/4 filesystems with data=writeback can provide a performance boost compared to data=ordered, however this mode of operation provides less guarantees, and sometimes it can happen that after a hard crash the AOF file will have a half-written command at the end and will require to be repaired before Redis restarts.\n");
    add(a.disk_contention, "- Try to lower the disk contention. This is often caused by other disk intensive processes running in the same computer (including other Redis instances).\n");
    add(a.no_appendfsync, "- Assuming from the point of view of data safety this is viable in your environment, you could try to enable the 'no-appendfsync-on-rewrite' option, so that fsync will not be performed while there is a child rewriting the AOF file or producing an RDB file (the moment where there is high disk contention).\n");
    add(a.relax_fsync_policy && c.appendfsync_always, "- Your fsync policy is set to 'always'. It is very hard to get good performances with such a setup, if possible try to relax the fsync policy to 'onesec'.\n");
    add(a.write_load_info, "- Latency during the AOF atomic rename operation or when the final difference is flushed to the AOF file at the end of the rewrite, sometimes is caused by very high write load, causing the AOF buffer to get very large. If possible try to send less commands to accomplish the same work, or use Lua scripts to group multiple operations into a single EVALSHA call.\n");
    add(
        a.hz && c.hz < 100,
        "- In order to make the Redis keys expiring process more incremental, try to set the 'hz' configuration parameter to 100 using 'CONFIG SET hz 100'.\n",
    );
    add(a.large_objects, "- Deleting, expiring or evicting (because of maxmemory policy) large objects is a blocking operation. If you have very large objects that are often deleted, expired, or evicted, try to fragment those objects into multiple smaller objects.\n");
    add(a.mass_eviction, "- Sudden changes to the 'maxmemory' setting via 'CONFIG SET', or allocation of large objects via sets or sorted sets intersections, STORE option of SORT, Redis Cluster large keys migrations (RESTORE command), may create sudden memory pressure forcing the server to block trying to evict keys. \n");
    add(a.disable_thp, "- I detected a non zero amount of anonymous huge pages used by your process. This creates very serious latency events in different conditions, especially when Redis is persisting on disk. To disable THP support use the command 'echo never > /sys/kernel/mm/transparent_hugepage/enabled', make sure to also add it into /etc/rc.local so that the command will be executed again after a reboot. Note that even if you have already disabled THP, you still need to restart the Redis process to get rid of the huge pages already created.\n");
    report
}

/// Columns and rows of LATENCY GRAPH's sparkline.
const GRAPH_COLUMNS: usize = 80;
const GRAPH_ROWS: usize = 4;

/// LATENCY GRAPH's text (Redis's `latencyCommandGenSparkeline` and
/// sparkline.c with SPARKLINE_FILL): a header line, a rule, then the
/// samples as 4 rows of `_o#|` bars, 80 per block, each labelled vertically
/// with its age (`12s`, `3m`, `2h`, `1d`).
pub fn graph(event: &str, samples: &[LatencySample], max_ms: u64, now_sec: i64) -> String {
    let (low, high) = samples
        .iter()
        .fold(None, |acc: Option<(u64, u64)>, s| match acc {
            None => Some((s.latency_ms, s.latency_ms)),
            Some((lo, hi)) => Some((lo.min(s.latency_ms), hi.max(s.latency_ms))),
        })
        .unwrap_or((0, 0));
    let mut out = format!("{} - high {} ms, low {} ms (all time high {} ms)\n", event, high, low, max_ms);
    out.push_str(&"-".repeat(GRAPH_COLUMNS));
    out.push('\n');
    let labels: Vec<String> = samples
        .iter()
        .map(|s| {
            let elapsed = now_sec - s.time_sec;
            if elapsed < 60 {
                format!("{}s", elapsed)
            } else if elapsed < 3600 {
                format!("{}m", elapsed / 60)
            } else if elapsed < 3600 * 24 {
                format!("{}h", elapsed / 3600)
            } else {
                format!("{}d", elapsed / (3600 * 24))
            }
        })
        .collect();
    let values: Vec<f64> = samples.iter().map(|s| s.latency_ms as f64).collect();
    sparkline(&mut out, &values, &labels);
    out
}

/// sparkline.c's `sparklineRender` with SPARKLINE_FILL: blocks of
/// `GRAPH_COLUMNS` samples separated by an empty line.
fn sparkline(out: &mut String, values: &[f64], labels: &[String]) {
    const FILL: &[u8] = b"_o#";
    let (min, max) = values
        .iter()
        .fold(None, |acc: Option<(f64, f64)>, &v| match acc {
            None => Some((v, v)),
            // As sparklineSequenceAddSample: a new minimum is never also a new maximum.
            Some((lo, hi)) => Some(if v < lo {
                (v, hi)
            } else if v > hi {
                (lo, v)
            } else {
                (lo, hi)
            }),
        })
        .unwrap_or((0.0, 0.0));
    let mut relmax = max - min;
    if relmax == 0.0 {
        relmax = 1.0;
    }
    let steps = (FILL.len() * GRAPH_ROWS) as i64;
    let has_labels = labels.iter().any(|l| !l.is_empty());
    let mut start = 0;
    while start < values.len() {
        if start != 0 {
            out.push('\n');
        }
        let len = (values.len() - start).min(GRAPH_COLUMNS);
        let mut row = 0usize;
        loop {
            let mut chars = vec![b' '; len];
            let mut more = false;
            for j in 0..len {
                let relval = values[start + j] - min;
                // `(int)(relval*steps)/relmax`, truncated twice as in C.
                let step = (((relval * steps as f64) as i64) as f64 / relmax) as i64;
                let step = step.clamp(0, steps - 1);
                if row < GRAPH_ROWS {
                    let charidx = step - ((GRAPH_ROWS - row - 1) * FILL.len()) as i64;
                    more = true;
                    if (0..FILL.len() as i64).contains(&charidx) {
                        chars[j] = FILL[charidx as usize];
                    } else if charidx >= FILL.len() as i64 {
                        chars[j] = b'|';
                    }
                } else {
                    // One blank line between the bars and the labels.
                    if has_labels && row - GRAPH_ROWS < 1 {
                        more = true;
                        break;
                    }
                    let label = labels[start + j].as_bytes();
                    let label_char = row - GRAPH_ROWS - 1;
                    if label.len() > label_char {
                        more = true;
                        chars[j] = label[label_char];
                    }
                }
            }
            if !more {
                break;
            }
            row += 1;
            out.push_str(std::str::from_utf8(&chars).unwrap_or(""));
            out.push('\n');
        }
        start += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(time_sec: i64, latency_ms: u64) -> LatencySample {
        LatencySample { time_sec, latency_ms }
    }

    #[test]
    fn graph_of_one_sample_is_redis_text() {
        // redis-server 7.0.15 after DEBUG SLEEP 0.05 with threshold 1, read at once.
        let g = graph("command", &[s(100, 50)], 50, 100);
        let want = format!("command - high 50 ms, low 50 ms (all time high 50 ms)\n{}\n \n \n \n_\n \n0\ns\n", "-".repeat(80));
        assert_eq!(g, want);
    }

    #[test]
    fn graph_scales_bars_between_low_and_high() {
        let g = graph("x", &[s(10, 10), s(20, 40), s(30, 100)], 100, 40);
        let rows: Vec<&str> = g.lines().skip(2).collect();
        // 12 steps over 4 rows: the lowest sample is one '_', the highest a full bar.
        assert_eq!(rows[..4], ["  #", "  |", " o|", "_||"]);
        assert_eq!(rows[4], "   ");
        assert_eq!(rows[5..], ["321", "000", "sss"]);
    }

    #[test]
    fn doctor_texts() {
        let c = DoctorContext {
            threshold_ms: 0,
            slowlog_log_slower_than_usec: 10000,
            fork_rate_gb_per_sec: 0.0,
            hz: 10,
            appendfsync_always: false,
            anon_huge_pages_bytes: 0,
            now_sec: 100,
        };
        assert!(doctor_report(&[], &c).starts_with("I'm sorry, Dave"));
        let c = DoctorContext { threshold_ms: 1, ..c };
        assert!(doctor_report(&[], &c).starts_with("Dave, no latency spike was observed"));
        let samples = [s(100, 50)];
        let r = doctor_report(&[EventView { name: "command", samples: &samples, max_ms: 50 }], &c);
        assert!(r.contains("1. command: 1 latency spikes (average 50ms, mean deviation 0ms, period 1.00 sec). Worst all time event 50ms.\n\nI have a few advices for you:\n\n- Your current Slow Log configuration only logs events that are slower than your configured latency monitor threshold. Please use 'CONFIG SET slowlog-log-slower-than 1000'.\n- Check your Slow Log"), "{r}");
        assert_eq!(analyze(&[s(90, 10), s(95, 30)], 100), EventAnalysis { samples: 2, avg_ms: 20, mad_ms: 10, period_sec: 10 });
    }
}
