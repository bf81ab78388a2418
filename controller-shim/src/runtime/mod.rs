//! The loop that wires sources, the resolver, delivery targets and status together.
//!
//! On every index change it waits for a quiet period ([`RuntimeConfig::debounce`], 100 ms), but for
//! at most [`DEBOUNCE_MAX_PERIODS`] periods (1 s) in all, so sources that never stop changing still
//! get a round every second; then it takes a snapshot, resolves it and, per Gateway:
//! - compiles the PluginConfig with the engine first; a config the engine rejects is never
//!   delivered (counted in `gateway_wasm_rejected_configs_total{reason="engine"}`), the proxy
//!   keeps the last good one;
//! - delivers to each target only when the Gateway's content hash (PluginConfig, backends with
//!   endpoints, TLS material) differs from what that target last accepted;
//! - then writes status (directory mode: the report; Kubernetes mode: patches, leader only).
//!
//! Nothing is resolved before every source kind has been listed once, so a config is never built
//! from half the objects (routes before their Services would read as `BackendNotFound`).
//!
//! Proxy restarts: every [`RuntimeConfig::resync`] (30 s by default) every Gateway is delivered
//! again regardless of the hash. This beats watching the proxy's uptime: every target compares
//! before writing (Envoy's files byte for byte, a database Kong's filter chain read back, a DB-less
//! Kong's configuration hash from `GET /status`), so the same pass repairs a DB-less Kong that
//! restarted empty, entities deleted from a database Kong, a deleted file, or a manual edit, with
//! no proxy-specific restart detection. Envoy itself re-reads the files from disk when it
//! restarts. A failed push is retried after [`RuntimeConfig::retry`] (2 s).

mod health;
pub mod live;
pub mod ui;

pub use health::{serve_health, serve_health_with};
pub use live::LiveView;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

use crate::Snapshot;
use crate::deliver::Target;
use crate::metrics::Metrics;
use crate::resolution::{GatewayResult, ObjectKey, Resolution, Settings};
use crate::source::Shared;
use crate::status::kube::KubeStatus;
use crate::status::report::Report;
use crate::status::{self, FromSnapshot};

/// The most debounce periods a round waits for quiet before it runs anyway.
pub const DEBOUNCE_MAX_PERIODS: u32 = 10;

/// Timing and identity.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub controller_name: String,
    /// Deliver only these Gateways (empty: all Gateways of our classes).
    pub gateways: Vec<ObjectKey>,
    pub debounce: Duration,
    pub resync: Duration,
    pub retry: Duration,
}

impl RuntimeConfig {
    pub fn new(controller_name: &str) -> RuntimeConfig {
        RuntimeConfig {
            controller_name: controller_name.to_owned(),
            gateways: Vec::new(),
            debounce: Duration::from_millis(100),
            resync: Duration::from_secs(30),
            retry: Duration::from_secs(2),
        }
    }
}

/// Where status goes.
pub enum StatusSink {
    /// Directory mode: a JSON report file and readable lines.
    Report(Report),
    /// Kubernetes mode: the status subresource, written only while `leader` is true.
    Kube {
        writer: KubeStatus,
        leader: watch::Receiver<bool>,
    },
    /// No status (tests, `--no-status`).
    None,
}

/// What one round did (for tests and logs).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoundReport {
    /// The snapshot was complete and resolved.
    pub resolved: bool,
    /// (target, gateway) pairs delivered with a change.
    pub pushed: Vec<(String, ObjectKey)>,
    /// (target, gateway, error) of failed pushes.
    pub failed: Vec<(String, ObjectKey, String)>,
    /// Gateways whose config the engine rejected.
    pub rejected: Vec<ObjectKey>,
    /// Status patches planned.
    pub status_patches: usize,
    /// Something should be retried soon.
    pub retry: bool,
}

pub struct Runtime {
    shared: Arc<Shared>,
    targets: Vec<Target>,
    status: StatusSink,
    metrics: Arc<Metrics>,
    config: RuntimeConfig,
    /// (target index, gateway) → content hash last accepted.
    delivered: BTreeMap<(usize, ObjectKey), String>,
    /// Diagnostics already logged (so each is logged once).
    logged: BTreeSet<String>,
    ready: watch::Sender<bool>,
    /// What the proxies run now, for `/ui` (none when the page is off).
    live: Option<Arc<LiveView>>,
    /// Ticks when the report's extra sections changed (the xDS server's ACKs and NACKs): the
    /// report is written again without a new round.
    report_refresh: Option<watch::Receiver<u64>>,
}

/// Waits until `changes` stayed quiet for one `period`, or `max_periods` periods went by (each
/// wait ends at the next change or after one period, whichever is first): a burst is delivered as
/// one round, and a source that never stops changing still gets a round every
/// `max_periods × period`.
async fn quiet(changes: &mut watch::Receiver<u64>, period: Duration, max_periods: u32) {
    for _ in 0..max_periods {
        changes.mark_unchanged();
        match tokio::time::timeout(period, changes.changed()).await {
            Err(_) => return,
            Ok(Err(_)) => return,
            Ok(Ok(())) => continue,
        }
    }
}

/// The content hash of what a Gateway delivers.
pub fn content_hash(gateway: &GatewayResult) -> String {
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(&gateway.config).unwrap_or_default());
    hasher.update(format!("{:?}{:?}", gateway.backends, gateway.tls).as_bytes());
    hex::encode(hasher.finalize())
}

impl Runtime {
    pub fn new(
        shared: Arc<Shared>,
        targets: Vec<Target>,
        status: StatusSink,
        metrics: Arc<Metrics>,
        config: RuntimeConfig,
    ) -> Runtime {
        let (ready, _) = watch::channel(false);
        Runtime {
            shared,
            targets,
            status,
            metrics,
            config,
            delivered: BTreeMap::new(),
            logged: BTreeSet::new(),
            ready,
            live: None,
            report_refresh: None,
        }
    }

    /// Records every round and delivery in `live` (the `/ui` page reads it).
    pub fn with_live(mut self, live: Option<Arc<LiveView>>) -> Runtime {
        self.live = live;
        self
    }

    /// Rewrites the status report whenever `changes` ticks (see [`crate::status::report::Report::with_xds`]).
    pub fn with_report_refresh(mut self, changes: watch::Receiver<u64>) -> Runtime {
        self.report_refresh = Some(changes);
        self
    }

    /// Becomes true after the first complete round.
    pub fn ready(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// Runs until `shutdown` completes.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        let mut changes = self.shared.subscribe();
        let mut leader = match &self.status {
            StatusSink::Kube { leader, .. } => Some(leader.clone()),
            _ => None,
        };
        let mut resync = tokio::time::interval(self.config.resync);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.tick().await;
        tokio::pin!(shutdown);
        let mut retry = false;
        let mut force = true;
        let mut report_refresh = self.report_refresh.take();
        loop {
            if !force {
                tokio::select! {
                    () = &mut shutdown => break,
                    Some(()) = async {
                        match report_refresh.as_mut() {
                            Some(r) => r.changed().await.ok(),
                            None => std::future::pending().await,
                        }
                    } => {
                        // Batch a burst (every Envoy ACKing one push) into one write.
                        tokio::time::sleep(self.config.debounce).await;
                        if let Some(r) = report_refresh.as_mut() {
                            r.mark_unchanged();
                        }
                        self.refresh_report();
                        continue;
                    }
                    changed = changes.changed() => {
                        if changed.is_err() { break; }
                    }
                    _ = resync.tick() => force = true,
                    () = tokio::time::sleep(self.config.retry), if retry => {}
                    Some(()) = async {
                        match leader.as_mut() {
                            Some(l) => l.changed().await.ok(),
                            None => std::future::pending().await,
                        }
                    } => {}
                }
                quiet(&mut changes, self.config.debounce, DEBOUNCE_MAX_PERIODS).await;
            }
            changes.mark_unchanged();
            let report = self.round(force).await;
            retry = report.retry;
            force = false;
        }
    }

    fn selected(&self, gateway: &ObjectKey) -> bool {
        self.config.gateways.is_empty() || self.config.gateways.contains(gateway)
    }

    /// One pass: resolve, deliver what changed (everything when `force`), write status.
    pub async fn round(&mut self, force: bool) -> RoundReport {
        let mut report = RoundReport::default();
        let Some((revision, snapshot)) = self.shared.snapshot_if_ready() else {
            let waiting = self.shared.read(|index| index.unsynced());
            tracing::debug!(?waiting, "waiting for the first list of every kind");
            return report;
        };
        let settings = Settings {
            controller_name: self.config.controller_name.clone(),
            now: crate::api::Time(crate::api::jiff::Timestamp::now()),
        };
        let resolution = crate::resolve(&snapshot, &settings);
        self.metrics.resolved();
        report.resolved = true;
        tracing::debug!(revision, gateways = resolution.gateways.len(), "resolved");
        self.diagnose(&snapshot, &resolution);
        for gateway in &resolution.gateways {
            if self.selected(&gateway.gateway) {
                self.deliver(gateway, force, &mut report).await;
            }
        }
        self.forget_gone(&resolution);
        self.write_status(&snapshot, &resolution, &mut report).await;
        if let Some(live) = &self.live {
            let present: Vec<ObjectKey> = resolution
                .gateways
                .iter()
                .map(|g| g.gateway.clone())
                .collect();
            live.resolved(snapshot, &present);
        }
        if report.failed.is_empty() && !*self.ready.borrow() {
            self.ready.send_replace(true);
            self.metrics.set_ready();
            tracing::info!("first delivery done; ready");
        }
        report.retry |= !report.failed.is_empty();
        report
    }

    async fn deliver(&mut self, gateway: &GatewayResult, force: bool, report: &mut RoundReport) {
        if let Err(error) = engine::RouteTable::compile(&gateway.config) {
            self.metrics.rejected("engine");
            tracing::error!(gateway = %gateway.gateway, revision = %gateway.config.revision, %error,
                "the engine rejects this config; the proxies keep the last one delivered");
            report.rejected.push(gateway.gateway.clone());
            if let Some(live) = &self.live {
                live.not_running(gateway, &format!("the engine rejects it: {error}"));
            }
            return;
        }
        let hash = content_hash(gateway);
        for (index, target) in self.targets.iter_mut().enumerate() {
            let id = (index, gateway.gateway.clone());
            if !force && self.delivered.get(&id) == Some(&hash) {
                continue;
            }
            let started = Instant::now();
            let result = target.deliver(gateway).await;
            let elapsed = started.elapsed();
            let name = target.name();
            match result {
                Ok(delivered) => {
                    self.metrics.push(name, "ok", elapsed);
                    self.delivered.insert(id, hash.clone());
                    if let Some(live) = &self.live {
                        live.delivered(gateway, name, delivered.changed, elapsed);
                    }
                    for warning in &delivered.warnings {
                        tracing::warn!(target = name, gateway = %gateway.gateway, "{warning}");
                    }
                    if delivered.changed {
                        tracing::info!(
                            target = name,
                            gateway = %gateway.gateway,
                            revision = %gateway.config.revision,
                            routes = gateway.config.routes.len(),
                            duration_ms = elapsed.as_secs_f64() * 1000.0,
                            "pushed"
                        );
                        report
                            .pushed
                            .push((name.to_owned(), gateway.gateway.clone()));
                    }
                }
                Err(error) => {
                    self.metrics.push(name, error.metric_label(), elapsed);
                    tracing::error!(
                        target = name,
                        gateway = %gateway.gateway,
                        revision = %gateway.config.revision,
                        %error,
                        "push failed; retrying"
                    );
                    if let Some(live) = &self.live {
                        live.not_running(gateway, &format!("the push to {name} failed: {error}"));
                    }
                    report.failed.push((
                        name.to_owned(),
                        gateway.gateway.clone(),
                        error.to_string(),
                    ));
                }
            }
        }
    }

    /// Writes the report again (directory mode) with nothing new from the resolver.
    fn refresh_report(&mut self) {
        if let StatusSink::Report(sink) = &mut self.status
            && let Err(error) = sink.apply(&[], &self.shared.problems())
        {
            tracing::error!(%error, "status report not written");
        }
    }

    async fn write_status(
        &mut self,
        snapshot: &Snapshot,
        resolution: &Resolution,
        report: &mut RoundReport,
    ) {
        let controller = self.config.controller_name.clone();
        let routes = status::route_keys(snapshot);
        match &mut self.status {
            StatusSink::None => {}
            StatusSink::Report(sink) => {
                sink.set_existing(status::status_keys(snapshot));
                let patches = status::plan(resolution, sink, &controller, &routes);
                report.status_patches = patches.len();
                for patch in &patches {
                    self.metrics.status_patch(patch.kind.as_str(), "ok");
                }
                if let Err(error) = sink.apply(&patches, &self.shared.problems()) {
                    self.metrics.status_patch("Report", error.metric_label());
                    tracing::error!(%error, "status report not written");
                    report.retry = true;
                }
            }
            StatusSink::Kube { writer, leader } => {
                if !*leader.borrow() {
                    return;
                }
                let patches = status::plan(
                    resolution,
                    &FromSnapshot::new(snapshot),
                    &controller,
                    &routes,
                );
                report.status_patches = patches.len();
                let errors = writer.apply(patches, &self.metrics).await;
                report.retry |= !errors.is_empty();
            }
        }
    }

    /// A Gateway that disappeared (or whose class is no longer ours) is not undelivered: its proxy
    /// keeps the last config it has, which is safer than emptying a proxy that still serves traffic.
    /// Say so once, and forget its hashes so that a Gateway coming back is delivered again.
    fn forget_gone(&mut self, resolution: &Resolution) {
        let present: BTreeSet<&ObjectKey> =
            resolution.gateways.iter().map(|g| &g.gateway).collect();
        let gone: BTreeSet<ObjectKey> = self
            .delivered
            .keys()
            .filter(|(_, key)| !present.contains(key))
            .map(|(_, key)| key.clone())
            .collect();
        for key in gone {
            tracing::warn!(gateway = %key, "the Gateway is gone or no longer ours; its proxy keeps the last config delivered");
            self.delivered.retain(|(_, k), _| *k != key);
        }
    }

    /// Logs (once per distinct message) what the resolver cannot put in any status: routes (of
    /// every kind) whose parentRef names a Gateway that does not exist, and source problems.
    fn diagnose(&mut self, snapshot: &Snapshot, resolution: &Resolution) {
        let mut messages = BTreeSet::new();
        for (kind, key, target) in snapshot.routes_to_missing_gateways() {
            messages.insert(format!(
                "{kind} {key}: parentRef Gateway {target} does not exist; no controller reports status for it"
            ));
        }
        for (source, problem) in self.shared.problems() {
            messages.insert(format!("{source}: {problem}"));
        }
        for message in &messages {
            if !self.logged.contains(message) {
                tracing::warn!("{message}");
            }
        }
        let _ = resolution;
        self.logged = messages;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_millis(100);

    /// Sends a change every `every` until the receiver is gone.
    fn changing(every: Duration) -> watch::Receiver<u64> {
        let (sender, receiver) = watch::channel(0u64);
        tokio::spawn(async move {
            let mut revision = 0;
            loop {
                tokio::time::sleep(every).await;
                revision += 1;
                if sender.send(revision).is_err() {
                    return;
                }
            }
        });
        receiver
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_source_waits_one_period() {
        let (_sender, mut changes) = watch::channel(0u64);
        let started = tokio::time::Instant::now();
        quiet(&mut changes, PERIOD, DEBOUNCE_MAX_PERIODS).await;
        assert_eq!(started.elapsed(), PERIOD);
    }

    #[tokio::test(start_paused = true)]
    async fn a_source_that_never_stops_changing_still_gets_a_round_within_a_second() {
        // Just under one period apart (the slowest that never lets a period pass quietly), and
        // much faster.
        for every in [Duration::from_millis(99), Duration::from_millis(5)] {
            let mut changes = changing(every);
            let started = tokio::time::Instant::now();
            tokio::time::timeout(
                Duration::from_secs(60),
                quiet(&mut changes, PERIOD, DEBOUNCE_MAX_PERIODS),
            )
            .await
            .unwrap_or_else(|_| panic!("changes every {every:?} starved the round"));
            let waited = started.elapsed();
            assert!(
                waited <= PERIOD * DEBOUNCE_MAX_PERIODS,
                "changes every {every:?}: waited {waited:?}"
            );
        }
        assert_eq!(PERIOD * DEBOUNCE_MAX_PERIODS, Duration::from_secs(1));
    }
}
