//! Prometheus metrics, kept by hand: a handful of counters and one histogram do not justify a
//! metrics framework. [`Metrics::encode`] renders the text exposition format (version 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Upper bounds (seconds) of the push latency histogram.
const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[derive(Debug, Default)]
struct Inner {
    pushes: BTreeMap<(String, String), u64>,
    push_seconds: BTreeMap<String, Histogram>,
    rejected: BTreeMap<String, u64>,
    watch_restarts: BTreeMap<String, u64>,
    status_patches: BTreeMap<(String, String), u64>,
    resolutions: u64,
    leader: bool,
    ready: bool,
    xds_connected: i64,
    xds_responses: BTreeMap<String, u64>,
    xds_acks: BTreeMap<String, u64>,
    xds_nacks: BTreeMap<String, u64>,
    module_pulls: BTreeMap<String, u64>,
}

/// Every metric the shim exports. Shared by `Arc`.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One push to a target: `result` is `ok` or the error's `metric_label()`.
    pub fn push(&self, target: &str, result: &str, duration: Duration) {
        let mut inner = self.lock();
        *inner
            .pushes
            .entry((target.to_owned(), result.to_owned()))
            .or_default() += 1;
        inner
            .push_seconds
            .entry(target.to_owned())
            .or_default()
            .observe(duration.as_secs_f64());
    }

    /// A config or manifest that was not used (`reason`: `manifest`, `engine`, …).
    pub fn rejected(&self, reason: &str) {
        *self.lock().rejected.entry(reason.to_owned()).or_default() += 1;
    }

    /// A watch stream of `kind` failed and restarts (after backoff).
    pub fn watch_restart(&self, kind: &str) {
        *self
            .lock()
            .watch_restarts
            .entry(kind.to_owned())
            .or_default() += 1;
    }

    /// A status patch of `kind`: `result` is `ok` or the error's `metric_label()`.
    pub fn status_patch(&self, kind: &str, result: &str) {
        *self
            .lock()
            .status_patches
            .entry((kind.to_owned(), result.to_owned()))
            .or_default() += 1;
    }

    /// An xDS stream opened (`1`) or closed (`-1`).
    pub fn xds_connected(&self, change: i64) {
        self.lock().xds_connected += change;
    }

    /// An xDS response sent (`kind`: `CDS`, `EDS`, `SDS`, `LDS`, `ECDS`).
    pub fn xds_response(&self, kind: &str) {
        *self
            .lock()
            .xds_responses
            .entry(kind.to_owned())
            .or_default() += 1;
    }

    pub fn xds_ack(&self, kind: &str) {
        *self.lock().xds_acks.entry(kind.to_owned()).or_default() += 1;
    }

    /// A NACK: an Envoy rejected an update of `kind`.
    pub fn xds_nack(&self, kind: &str) {
        *self.lock().xds_nacks.entry(kind.to_owned()).or_default() += 1;
    }

    /// A module pull from a registry (`result`: `ok`, `unchanged`, `error`).
    pub fn module_pull(&self, result: &str) {
        *self
            .lock()
            .module_pulls
            .entry(result.to_owned())
            .or_default() += 1;
    }

    /// The value of `gateway_wasm_xds_nacks_total{type}` (tests).
    pub fn xds_nacks(&self, kind: &str) -> u64 {
        self.lock().xds_nacks.get(kind).copied().unwrap_or_default()
    }

    pub fn resolved(&self) {
        self.lock().resolutions += 1;
    }

    pub fn set_leader(&self, leader: bool) {
        self.lock().leader = leader;
    }

    pub fn set_ready(&self) {
        self.lock().ready = true;
    }

    pub fn ready(&self) -> bool {
        self.lock().ready
    }

    /// The value of `gateway_wasm_pushes_total{target, result}` (tests).
    pub fn pushes(&self, target: &str, result: &str) -> u64 {
        self.lock()
            .pushes
            .get(&(target.to_owned(), result.to_owned()))
            .copied()
            .unwrap_or_default()
    }

    /// The value of `gateway_wasm_status_patches_total{kind, result}` (tests).
    pub fn status_patches(&self, kind: &str, result: &str) -> u64 {
        self.lock()
            .status_patches
            .get(&(kind.to_owned(), result.to_owned()))
            .copied()
            .unwrap_or_default()
    }

    /// The value of `gateway_wasm_watch_restarts_total{kind}` (tests).
    pub fn watch_restarts(&self, kind: &str) -> u64 {
        self.lock()
            .watch_restarts
            .get(kind)
            .copied()
            .unwrap_or_default()
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let inner = self.lock();
        let mut out = String::new();
        header(
            &mut out,
            "gateway_wasm_pushes_total",
            "counter",
            "Config pushes by delivery target and result.",
        );
        for ((target, result), n) in &inner.pushes {
            let _ = writeln!(
                out,
                "gateway_wasm_pushes_total{{target=\"{}\",result=\"{}\"}} {n}",
                esc(target),
                esc(result)
            );
        }
        header(
            &mut out,
            "gateway_wasm_push_duration_seconds",
            "histogram",
            "Time to deliver one Gateway's config to one target.",
        );
        for (target, h) in &inner.push_seconds {
            let target = esc(target);
            for (bound, count) in BUCKETS.iter().zip(h.counts.iter()) {
                let _ = writeln!(
                    out,
                    "gateway_wasm_push_duration_seconds_bucket{{target=\"{target}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "gateway_wasm_push_duration_seconds_bucket{{target=\"{target}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "gateway_wasm_push_duration_seconds_sum{{target=\"{target}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "gateway_wasm_push_duration_seconds_count{{target=\"{target}\"}} {}",
                h.count
            );
        }
        header(
            &mut out,
            "gateway_wasm_rejected_configs_total",
            "counter",
            "Manifests or PluginConfigs that were not used, by reason.",
        );
        for (reason, n) in &inner.rejected {
            let _ = writeln!(
                out,
                "gateway_wasm_rejected_configs_total{{reason=\"{}\"}} {n}",
                esc(reason)
            );
        }
        header(
            &mut out,
            "gateway_wasm_watch_restarts_total",
            "counter",
            "Kubernetes watch streams that failed and restarted, by kind.",
        );
        for (kind, n) in &inner.watch_restarts {
            let _ = writeln!(
                out,
                "gateway_wasm_watch_restarts_total{{kind=\"{}\"}} {n}",
                esc(kind)
            );
        }
        header(
            &mut out,
            "gateway_wasm_status_patches_total",
            "counter",
            "Status writes by kind and result.",
        );
        for ((kind, result), n) in &inner.status_patches {
            let _ = writeln!(
                out,
                "gateway_wasm_status_patches_total{{kind=\"{}\",result=\"{}\"}} {n}",
                esc(kind),
                esc(result)
            );
        }
        header(
            &mut out,
            "gateway_wasm_resolutions_total",
            "counter",
            "Snapshots resolved.",
        );
        let _ = writeln!(out, "gateway_wasm_resolutions_total {}", inner.resolutions);
        header(
            &mut out,
            "gateway_wasm_leader",
            "gauge",
            "1 while this replica holds the status Lease (always 1 in directory mode).",
        );
        let _ = writeln!(out, "gateway_wasm_leader {}", u8::from(inner.leader));
        header(
            &mut out,
            "gateway_wasm_ready",
            "gauge",
            "1 once the first delivery round completed.",
        );
        let _ = writeln!(out, "gateway_wasm_ready {}", u8::from(inner.ready));
        encode_xds(&inner, &mut out);
        out
    }
}

/// The xDS server's metrics.
fn encode_xds(inner: &Inner, out: &mut String) {
    header(
        out,
        "gateway_wasm_xds_connected_proxies",
        "gauge",
        "Envoys with an open xDS stream to this replica.",
    );
    let _ = writeln!(
        out,
        "gateway_wasm_xds_connected_proxies {}",
        inner.xds_connected
    );
    for (name, help, counts) in [
        (
            "gateway_wasm_xds_responses_total",
            "xDS responses sent, by resource type.",
            &inner.xds_responses,
        ),
        (
            "gateway_wasm_xds_acks_total",
            "xDS responses Envoys accepted (ACK), by resource type.",
            &inner.xds_acks,
        ),
        (
            "gateway_wasm_xds_nacks_total",
            "xDS responses Envoys rejected (NACK), by resource type; they keep the last version they accepted.",
            &inner.xds_nacks,
        ),
    ] {
        header(out, name, "counter", help);
        for (kind, n) in counts {
            let _ = writeln!(out, "{name}{{type=\"{}\"}} {n}", esc(kind));
        }
    }
    header(
        out,
        "gateway_wasm_module_pulls_total",
        "counter",
        "Filter module resolutions against the OCI registry, by result (ok, unchanged, error).",
    );
    for (result, n) in &inner.module_pulls {
        let _ = writeln!(
            out,
            "gateway_wasm_module_pulls_total{{result=\"{}\"}} {n}",
            esc(result)
        );
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Label value escaping: backslash, quote and newline.
fn esc(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_counters_and_histogram() {
        let metrics = Metrics::default();
        metrics.push("envoy", "ok", Duration::from_millis(3));
        metrics.push("kong", "http", Duration::from_millis(300));
        metrics.watch_restart("HTTPRoute");
        metrics.status_patch("HTTPRoute", "ok");
        let text = metrics.encode();
        assert!(text.contains("gateway_wasm_pushes_total{target=\"envoy\",result=\"ok\"} 1"));
        assert!(text.contains(
            "gateway_wasm_push_duration_seconds_bucket{target=\"envoy\",le=\"0.005\"} 1"
        ));
        assert!(
            text.contains(
                "gateway_wasm_push_duration_seconds_bucket{target=\"kong\",le=\"0.25\"} 0"
            )
        );
        assert!(text.contains("gateway_wasm_push_duration_seconds_count{target=\"kong\"} 1"));
        assert!(text.contains("gateway_wasm_watch_restarts_total{kind=\"HTTPRoute\"} 1"));
        assert!(
            text.contains("gateway_wasm_status_patches_total{kind=\"HTTPRoute\",result=\"ok\"} 1")
        );
    }
}
