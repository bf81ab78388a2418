//! The Kubernetes source: one kube-runtime watcher per [`Kind`], each applying its events to the
//! shared index.
//!
//! kube-runtime's watcher lists (paged), then watches from the list's resourceVersion with
//! bookmarks; when the watch connection drops it re-watches from the last version it saw, and when
//! the API server answers `410 Gone` (the version was compacted) it relists. A relist arrives as
//! `Init`, `InitApply`…, `InitDone`: the objects are buffered and swapped into the index in one step,
//! so objects deleted while we were away disappear and nothing is half-listed. Errors (API errors,
//! connection refused, 410) are counted in `gateway_wasm_watch_restarts_total` and retried with
//! kube-runtime's default exponential backoff (800 ms doubling to 30 s, with jitter; reset after
//! 120 s without errors).
//!
//! A kind the API server does not serve (404 on the list: its CRD is not installed, typically the
//! experimental ListenerSet) counts as empty, so the index still becomes ready; the watcher keeps
//! retrying and picks the kind up once the CRD appears.
//!
//! GatewayClasses are filtered by `spec.controllerName` in the index (the field is not selectable);
//! Secrets are watched with the field selector of their row in the table of kinds
//! (`type=kubernetes.io/tls`, the only ones the resolver reads).

use std::sync::Arc;

use futures::StreamExt as _;
use gateway_resolver::kinds::{Kind, KindType, KindVisitor, Object};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::task::JoinHandle;

use super::Shared;
use crate::metrics::Metrics;

/// Starts one watcher task per kind of the table ([`Kind::ALL`]). The tasks run until aborted.
pub fn spawn(client: Client, shared: Arc<Shared>, metrics: Arc<Metrics>) -> Vec<JoinHandle<()>> {
    Kind::ALL
        .into_iter()
        .map(|kind| {
            kind.visit(SpawnWatcher {
                client: client.clone(),
                shared: shared.clone(),
                metrics: metrics.clone(),
            })
        })
        .collect()
}

/// Spawns the watcher of one kind, with its Rust type.
struct SpawnWatcher {
    client: Client,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
}

impl KindVisitor for SpawnWatcher {
    type Output = JoinHandle<()>;

    fn visit<K: KindType>(self) -> JoinHandle<()> {
        let mut config = watcher::Config::default();
        if let Some(fields) = K::KIND.watch_field_selector() {
            config = config.fields(fields);
        }
        tokio::spawn(watch(
            Api::<K>::all(self.client),
            config,
            self.shared,
            self.metrics,
        ))
    }
}

async fn watch<K: KindType>(
    api: Api<K>,
    config: watcher::Config,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
) {
    let kind = K::KIND;
    let wrap = K::into_object;
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let mut relist: Vec<Object> = Vec::new();
    let problem_key = format!("watch {kind}");
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => relist.clear(),
            Ok(Event::InitApply(object)) => relist.push(wrap(object)),
            Ok(Event::InitDone) => {
                let objects = std::mem::take(&mut relist);
                let count = objects.len();
                shared.update(|index| {
                    index.replace(kind, objects);
                    index.mark_synced(kind);
                });
                shared.set_problem(&problem_key, None);
                tracing::debug!(%kind, count, "listed");
            }
            Ok(Event::Apply(object)) => {
                shared.update(|index| index.apply(wrap(object)));
            }
            Ok(Event::Delete(object)) => {
                let object = wrap(object);
                shared.update(|index| index.delete(kind, &object.key()));
            }
            Err(watcher::Error::InitialListFailed(kube::Error::Api(status)))
                if status.code == 404 =>
            {
                // The API server does not serve this kind (e.g. the experimental ListenerSet CRD is
                // not installed). Treat it as empty so the rest can go ready; keep retrying.
                metrics.watch_restart(kind.as_str());
                let first = shared.update(|index| {
                    let first = !index.synced(kind);
                    index.replace(kind, Vec::new());
                    index.mark_synced(kind);
                    first
                });
                if first {
                    tracing::warn!(%kind, "the API server does not serve this kind (CRD not installed?); treating it as empty");
                }
                shared.set_problem(
                    &problem_key,
                    Some(format!("{kind} is not served by the API server")),
                );
            }
            Err(error) => {
                metrics.watch_restart(kind.as_str());
                tracing::warn!(%kind, %error, "watch failed; retrying with backoff");
                shared.set_problem(&problem_key, Some(error.to_string()));
            }
        }
    }
}
