//! Counters the server keeps, rendered in Prometheus text format at
//! `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds of the run-latency histogram buckets, in seconds.
pub const LATENCY_BUCKETS_S: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The server's counters. Cheap to update from any thread.
#[derive(Debug, Default)]
pub struct Metrics {
    runs: Mutex<BTreeMap<(String, String), u64>>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_S.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    /// Host calls made by runs (`quire` module and `fetch`).
    pub host_calls: AtomicU64,
    /// WebSocket clients connected now.
    pub ws_clients: AtomicU64,
    /// WebSocket connections closed because the client did not read.
    pub ws_slow_closes: AtomicU64,
    /// Runs refused before starting (shutdown, quotas, limits on
    /// following).
    pub runs_rejected: AtomicU64,
    /// Runs waiting in admission now (their workspace at
    /// `max_concurrent_runs`, or the server at `max_active_runs`).
    pub admission_queued: AtomicU64,
}

impl Metrics {
    /// Count a finished run: `status` is `ok` or `error`, `kind` the error
    /// kind (empty for ok); `latency_s` from acceptance to `finished`.
    pub fn run_finished(&self, status: &str, kind: &str, latency_s: f64) {
        *self
            .runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((status.to_string(), kind.to_string()))
            .or_default() += 1;
        for (i, b) in LATENCY_BUCKETS_S.iter().enumerate() {
            if latency_s <= *b {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add((latency_s * 1e6) as u64, Ordering::Relaxed);
    }

    /// Prometheus text, with the gauges passed in.
    pub fn render(&self, g: &Gauges) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "# HELP quire_runs_total Runs finished, by status and error kind.\n# TYPE quire_runs_total counter");
        for ((status, kind), n) in self.runs.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                o,
                "quire_runs_total{{status=\"{status}\",kind=\"{kind}\"}} {n}"
            );
        }
        let _ = writeln!(o, "# HELP quire_run_latency_seconds Time from acceptance to the finished event.\n# TYPE quire_run_latency_seconds histogram");
        for (i, b) in LATENCY_BUCKETS_S.iter().enumerate() {
            let n = self.latency_buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(o, "quire_run_latency_seconds_bucket{{le=\"{b}\"}} {n}");
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(o, "quire_run_latency_seconds_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            o,
            "quire_run_latency_seconds_sum {sum}\nquire_run_latency_seconds_count {count}"
        );
        let counters = [
            (
                "quire_host_calls_total",
                "Host calls made by runs.",
                self.host_calls.load(Ordering::Relaxed),
            ),
            (
                "quire_runs_rejected_total",
                "Runs refused before they started.",
                self.runs_rejected.load(Ordering::Relaxed),
            ),
            (
                "quire_websocket_slow_closes_total",
                "WebSocket clients closed for not reading.",
                self.ws_slow_closes.load(Ordering::Relaxed),
            ),
            (
                "quire_runners_lost_total",
                "Runner processes that died holding runs.",
                g.runners_lost,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        let gauges = [
            (
                "quire_active_runs",
                "Runs accepted and not yet finished.",
                g.active_runs,
            ),
            (
                "quire_queued_runs",
                "Runs waiting for an engine worker or runner.",
                g.queued_runs,
            ),
            (
                "quire_admission_queued_runs",
                "Runs waiting for their workspace's turn in admission.",
                self.admission_queued.load(Ordering::Relaxed),
            ),
            (
                "quire_websocket_clients",
                "WebSocket clients connected.",
                self.ws_clients.load(Ordering::Relaxed),
            ),
            ("quire_runners", "Runner processes alive.", g.runners),
            (
                "quire_storage_bytes",
                "Bytes the store takes.",
                g.storage_bytes,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        o
    }
}

/// Point-in-time values read when `/metrics` is scraped.
#[derive(Debug, Default, Clone, Copy)]
pub struct Gauges {
    /// Runs accepted and not finished.
    pub active_runs: u64,
    /// Runs waiting for a worker or runner.
    pub queued_runs: u64,
    /// Runner processes alive.
    pub runners: u64,
    /// Runner processes lost so far.
    pub runners_lost: u64,
    /// Bytes the store takes.
    pub storage_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_has_every_family_and_cumulative_buckets() {
        let m = Metrics::default();
        m.run_finished("ok", "", 0.003);
        m.run_finished("error", "cpu_limit", 1.2);
        let t = m.render(&Gauges {
            active_runs: 2,
            ..Gauges::default()
        });
        assert!(t.contains("quire_runs_total{status=\"error\",kind=\"cpu_limit\"} 1"));
        assert!(t.contains("quire_run_latency_seconds_bucket{le=\"0.005\"} 1"));
        assert!(t.contains("quire_run_latency_seconds_bucket{le=\"2.5\"} 2"));
        assert!(t.contains("quire_run_latency_seconds_count 2"));
        assert!(t.contains("quire_active_runs 2"));
        for line in t.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap_or("");
            assert!(value.parse::<f64>().is_ok(), "bad sample line {line:?}");
        }
    }
}
