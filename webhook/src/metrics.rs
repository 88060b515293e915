//! Prometheus metrics of the whole service, rendered as text at `/metrics`:
//! webhook deliveries by outcome, rejections by reason, queue depth,
//! reconcile durations and actions by kind. Lock-free counters on the hot
//! path; label maps (small, bounded by the reasons and kinds that exist)
//! behind a mutex.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Upper bounds (seconds) of the reconcile duration histogram.
const BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Default)]
pub struct Metrics {
    events: Mutex<BTreeMap<&'static str, u64>>,
    rejected: Mutex<BTreeMap<String, u64>>,
    actions: Mutex<BTreeMap<String, u64>>,
    queue_depth: AtomicI64,
    reconciles: AtomicU64,
    duration_buckets: [AtomicU64; BUCKETS.len()],
    duration_sum_micros: AtomicU64,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K, by: u64) {
    *map.lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key)
        .or_default() += by;
}

impl Metrics {
    /// A delivery answered with `outcome` (`queued`, `duplicate`, `ignored`,
    /// `unauthorized`, `malformed`, `too_large`).
    pub fn event(&self, outcome: &'static str) {
        bump(&self.events, outcome, 1);
    }

    /// A revision or delivery refused for `reason` (a short, bounded label).
    pub fn rejected(&self, reason: &str) {
        bump(&self.rejected, reason.to_string(), 1);
    }

    pub fn action(&self, kind: &str) {
        bump(&self.actions, kind.to_string(), 1);
    }

    pub fn set_queue_depth(&self, depth: usize) {
        self.queue_depth.store(depth as i64, Ordering::Relaxed);
    }

    pub fn reconciled(&self, seconds: f64) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        self.duration_sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.duration_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Count of deliveries with `outcome` (for tests and benchmarks).
    pub fn events_with(&self, outcome: &str) -> u64 {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(outcome)
            .copied()
            .unwrap_or(0)
    }

    pub fn reconcile_count(&self) -> u64 {
        self.reconciles.load(Ordering::Relaxed)
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let labelled =
            |out: &mut String, name: &str, help: &str, label: &str, map: &BTreeMap<String, u64>| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                for (k, v) in map {
                    let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {v}", escape(k));
                }
            };
        let events: BTreeMap<String, u64> = self
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        labelled(
            &mut out,
            "berth_webhook_events_total",
            "Webhook deliveries by outcome.",
            "outcome",
            &events,
        );
        labelled(
            &mut out,
            "berth_rejected_total",
            "Deliveries and revisions refused, by reason.",
            "reason",
            &self.rejected.lock().unwrap_or_else(|p| p.into_inner()),
        );
        labelled(
            &mut out,
            "berth_actions_total",
            "Backend actions applied, by kind.",
            "kind",
            &self.actions.lock().unwrap_or_else(|p| p.into_inner()),
        );
        let _ = writeln!(
            out,
            "# HELP berth_queue_depth Accounts waiting for a reconcile.\n# TYPE berth_queue_depth gauge\nberth_queue_depth {}",
            self.queue_depth.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP berth_reconcile_duration_seconds Time per account reconcile.\n# TYPE berth_reconcile_duration_seconds histogram"
        );
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "berth_reconcile_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                self.duration_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.reconciles.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "berth_reconcile_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "berth_reconcile_duration_seconds_sum {}",
            self.duration_sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "berth_reconcile_duration_seconds_count {count}");
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_histogram() {
        let m = Metrics::default();
        m.event("queued");
        m.event("queued");
        m.rejected("pusher \"x\"");
        m.action("create");
        m.set_queue_depth(3);
        m.reconciled(0.2);
        let text = m.render();
        assert!(
            text.contains("berth_webhook_events_total{outcome=\"queued\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("berth_rejected_total{reason=\"pusher \\\"x\\\"\"} 1"),
            "{text}"
        );
        assert!(text.contains("berth_actions_total{kind=\"create\"} 1"));
        assert!(text.contains("berth_queue_depth 3"));
        assert!(text.contains("berth_reconcile_duration_seconds_bucket{le=\"0.1\"} 0"));
        assert!(text.contains("berth_reconcile_duration_seconds_bucket{le=\"0.25\"} 1"));
        assert!(text.contains("berth_reconcile_duration_seconds_count 1"));
    }
}
