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
