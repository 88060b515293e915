//! The service's Prometheus metrics (the Prometheus project's
//! `prometheus-client`), exposed at `GET /metrics` in the OpenMetrics text
//! format: webhook deliveries by outcome, revisions refused by reason,
//! backend actions by kind and those that failed, reconciles that could not
//! run, queue depth, reconcile durations, whether the state store takes
//! writes and whether each backend endpoint answers — what the alert rules
//! in `ops/prometheus/` watch. Every label is a typed outcome's bounded
//! label or an endpoint the site names, never a message.

use berth_webhook::{Observer, Outcome};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the reconcile duration histogram.
const BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

type Labelled = Family<Vec<(&'static str, &'static str)>, Counter>;
type PerEndpoint = Family<Vec<(&'static str, String)>, Gauge>;
type PerEndpointF = Family<Vec<(&'static str, String)>, Gauge<f64, std::sync::atomic::AtomicU64>>;
type PerAccount = Family<Vec<(&'static str, String)>, Counter<f64, std::sync::atomic::AtomicU64>>;

pub struct Metrics {
    registry: Registry,
    events: Labelled,
    rejected: Labelled,
    actions: Labelled,
    queue_depth: Gauge,
    durations: Histogram,
    failed_actions: Counter,
    failed_reconciles: Counter,
    failed_archives: Counter,
    store_writable: Gauge,
    endpoint_up: PerEndpoint,
    volume_bytes: PerEndpoint,
    volume_measure: PerEndpointF,
    cpu_used: PerAccount,
    cpu_reserved: PerAccount,
    gpu_reserved: PerAccount,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let events = Labelled::default();
        let rejected = Labelled::default();
        let actions = Labelled::default();
        let queue_depth = Gauge::default();
        let durations = Histogram::new(BUCKETS);
        let failed_actions = Counter::default();
        let failed_reconciles = Counter::default();
        let failed_archives = Counter::default();
        let store_writable = Gauge::default();
        store_writable.set(1);
        let endpoint_up = PerEndpoint::default();
        let volume_bytes = PerEndpoint::default();
        let volume_measure = PerEndpointF::default();
        let (cpu_used, cpu_reserved, gpu_reserved) = (
            PerAccount::default(),
            PerAccount::default(),
            PerAccount::default(),
        );
        registry.register(
            "berth_webhook_events",
            "Webhook deliveries by outcome",
            events.clone(),
        );
        registry.register(
            "berth_rejected",
            "Revisions refused, by reason",
            rejected.clone(),
        );
        registry.register(
            "berth_actions",
            "Backend actions applied, by kind",
            actions.clone(),
        );
        registry.register(
            "berth_queue_depth",
            "Accounts waiting for a reconcile",
            queue_depth.clone(),
        );
        registry.register(
            "berth_reconcile_duration_seconds",
            "Time per account reconcile",
            durations.clone(),
        );
        registry.register(
            "berth_action_failures",
            "Backend actions that failed (the audit log says why)",
            failed_actions.clone(),
        );
        registry.register(
            "berth_reconcile_errors",
            "Reconciles that could not run (directory, git, a backend or the store did not answer)",
            failed_reconciles.clone(),
        );
        registry.register(
            "berth_archive_failures",
            "Dormant workspaces' archives that failed, the volume kept (disk below dormancy.keep_free, a host down; `reconciler audit` says why)",
            failed_archives.clone(),
        );
        registry.register(
            "berth_store_writable",
            "1 while the state store takes writes, 0 from a failed write until one succeeds",
            store_writable.clone(),
        );
        registry.register(
            "berth_endpoint_up",
            "1 when the backend endpoint answered its last observation, else 0",
            endpoint_up.clone(),
        );
        registry.register(
            "berth_volume_bytes",
            "Bytes the accounts' volumes held on a Docker host at its last measurement",
            volume_bytes.clone(),
        );
        registry.register(
            "berth_volume_measure_seconds",
            "How long the last measurement of a Docker host's volumes took",
            volume_measure.clone(),
        );
        // One series per account that ever ran a container (three
        // families: about 3 000 series for 1 000 accounts).
        registry.register(
            "berth_cpu_used_seconds",
            "CPU-seconds an account's containers used (Docker's counters)",
            cpu_used.clone(),
        );
        registry.register(
            "berth_cpu_reserved_seconds",
            "CPU-seconds an account's containers held (declared CPUs x time running)",
            cpu_reserved.clone(),
        );
        registry.register(
            "berth_gpu_reserved_seconds",
            "GPU-seconds an account's containers held",
            gpu_reserved.clone(),
        );
        Metrics {
            registry,
            events,
            rejected,
            actions,
            queue_depth,
            durations,
            failed_actions,
            failed_reconciles,
            failed_archives,
            store_writable,
            endpoint_up,
            volume_bytes,
            volume_measure,
            cpu_used,
            cpu_reserved,
            gpu_reserved,
        }
    }
}

impl Metrics {
    /// A revision refused for `reason` (a [`RejectReason`] label).
    ///
    /// [`RejectReason`]: crate::engine::reconcile::RejectReason
    pub fn rejected(&self, reason: &'static str) {
        self.rejected.get_or_create(&vec![("reason", reason)]).inc();
    }

    /// `n` actions of `kind` applied.
    pub fn actions(&self, kind: &'static str, n: u64) {
        self.actions.get_or_create(&vec![("kind", kind)]).inc_by(n);
    }

    /// `n` backend actions failed.
    pub fn action_failures(&self, n: u64) {
        self.failed_actions.inc_by(n);
    }

    /// A reconcile could not run (and is retried with backoff).
    pub fn reconcile_error(&self) {
        self.failed_reconciles.inc();
    }

    /// `n` archives of dormant workspaces failed (each kept its volume).
    pub fn archive_failures(&self, n: u64) {
        self.failed_archives.inc_by(n);
    }

    pub fn set_store_writable(&self, writable: bool) {
        self.store_writable.set(i64::from(writable));
    }

    /// Whether `endpoint` (a Docker endpoint's name, or `kubernetes`)
    /// answered.
    pub fn set_endpoint_up(&self, endpoint: &str, up: bool) {
        self.endpoint_up
            .get_or_create(&vec![("endpoint", endpoint.to_string())])
            .set(i64::from(up));
    }

    /// What measuring `endpoint`'s volumes found, and what it cost.
    pub fn measured_volumes(&self, endpoint: &str, bytes: u64, seconds: f64) {
        let label = vec![("endpoint", endpoint.to_string())];
        self.volume_bytes
            .get_or_create(&label)
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.volume_measure.get_or_create(&label).set(seconds);
    }

    /// What a sampling round counted for `account`.
    pub fn used(&self, account: &str, a: &berth_core::usage::Amounts) {
        let label = vec![("account", account.to_string())];
        self.cpu_used.get_or_create(&label).inc_by(a.cpu_used);
        self.cpu_reserved
            .get_or_create(&label)
            .inc_by(a.cpu_reserved);
        self.gpu_reserved
            .get_or_create(&label)
            .inc_by(a.gpu_reserved);
    }

    pub fn set_queue_depth(&self, depth: usize) {
        self.queue_depth.set(depth as i64);
    }

    pub fn reconciled(&self, seconds: f64) {
        self.durations.observe(seconds);
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::warn!(cause = %e, "encoding metrics");
        }
        out
    }
}

impl Observer for Metrics {
    fn delivery(&self, outcome: Outcome) {
        self.events
            .get_or_create(&vec![("outcome", outcome.label())])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_histogram() {
        let m = Metrics::default();
        m.delivery(Outcome::Queued);
        m.delivery(Outcome::Queued);
        m.rejected("pusher");
        m.actions("create", 1);
        m.set_queue_depth(3);
        m.reconciled(0.2);
        m.action_failures(2);
        m.reconcile_error();
        m.set_store_writable(false);
        m.set_endpoint_up("h2", false);
        m.measured_volumes("h2", 2048, 0.5);
        m.used(
            "alice",
            &berth_core::usage::Amounts {
                cpu_used: 1.5,
                cpu_reserved: 4.0,
                ..Default::default()
            },
        );
        let text = m.render();
        for line in [
            "berth_webhook_events_total{outcome=\"queued\"} 2",
            "berth_rejected_total{reason=\"pusher\"} 1",
            "berth_actions_total{kind=\"create\"} 1",
            "berth_queue_depth 3",
            "berth_reconcile_duration_seconds_bucket{le=\"0.1\"} 0",
            "berth_reconcile_duration_seconds_bucket{le=\"0.25\"} 1",
            "berth_reconcile_duration_seconds_count 1",
            "berth_action_failures_total 2",
            "berth_reconcile_errors_total 1",
            "berth_store_writable 0",
            "berth_endpoint_up{endpoint=\"h2\"} 0",
            "berth_volume_bytes{endpoint=\"h2\"} 2048",
            "berth_volume_measure_seconds{endpoint=\"h2\"} 0.5",
            "berth_cpu_used_seconds_total{account=\"alice\"} 1.5",
            "berth_cpu_reserved_seconds_total{account=\"alice\"} 4.0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
