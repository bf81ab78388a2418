//! The connected Envoys as the xDS server sees them: which Gateway each serves, per resource type
//! the version last sent and the version it ACKed, and every NACK with Envoy's own message. Read by
//! the status report, `/debug/xds` and the metrics; logs say the same at the moment it happens.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use tokio::sync::watch;

use super::catalog::ResourceType;
use crate::metrics::Metrics;

/// How many NACKs the registry remembers (newest last).
const NACK_HISTORY: usize = 50;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Nack {
    pub node: String,
    pub gateway: Option<String>,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The version Envoy refused; it keeps serving `acked`.
    pub version: String,
    pub acked: Option<String>,
    /// Envoy's `error_detail.message`.
    pub message: String,
    pub at: String,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeState {
    pub sent: Option<String>,
    pub acked: Option<String>,
    /// The last NACK of this type, until a later version is ACKed.
    pub nack: Option<Nack>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeState {
    pub node: String,
    pub gateway: Option<String>,
    pub protocol: &'static str,
    pub peer: String,
    pub connected_at: String,
    /// By type (`CDS`, `EDS`, `SDS`, `LDS`, `ECDS`).
    pub resources: BTreeMap<&'static str, TypeState>,
    /// The PluginConfig revision of the last ACKed extension config.
    pub revision: Option<String>,
}

impl NodeState {
    /// Every version sent was ACKed.
    pub fn in_sync(&self) -> bool {
        self.resources.values().all(|t| t.sent == t.acked)
    }
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    nodes: BTreeMap<u64, NodeState>,
    nacks: VecDeque<Nack>,
}

/// Shared by every stream; cheap to clone.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<Mutex<Inner>>,
    changed: watch::Sender<u64>,
    metrics: Arc<Metrics>,
}

fn now() -> String {
    crate::api::jiff::Timestamp::now().to_string()
}

impl Registry {
    pub fn new(metrics: Arc<Metrics>) -> Registry {
        let (changed, _) = watch::channel(0);
        Registry {
            inner: Arc::new(Mutex::new(Inner::default())),
            changed,
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn touch(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Ticks on every change (status report, tests).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// A stream opened; the returned guard removes it when the stream ends.
    pub fn connect(&self, peer: String, protocol: &'static str) -> Connection {
        let id = {
            let mut inner = self.lock();
            inner.next += 1;
            let id = inner.next;
            inner.nodes.insert(
                id,
                NodeState {
                    node: String::new(),
                    gateway: None,
                    protocol,
                    peer,
                    connected_at: now(),
                    resources: BTreeMap::new(),
                    revision: None,
                },
            );
            id
        };
        self.metrics.xds_connected(1);
        self.touch();
        Connection {
            registry: self.clone(),
            id,
        }
    }

    pub fn nodes(&self) -> Vec<NodeState> {
        self.lock().nodes.values().cloned().collect()
    }

    pub fn nacks(&self) -> Vec<Nack> {
        self.lock().nacks.iter().cloned().collect()
    }

    /// The report's `xds` section: connected Envoys and recent NACKs.
    pub fn document(&self) -> serde_json::Value {
        let inner = self.lock();
        let nodes: Vec<&NodeState> = inner.nodes.values().collect();
        serde_json::json!({
            "connected": nodes.len(),
            "inSync": nodes.iter().filter(|n| n.in_sync()).count(),
            "nodes": nodes,
            "nacks": inner.nacks,
        })
    }
}

/// One stream's handle on the registry.
#[derive(Debug)]
pub struct Connection {
    registry: Registry,
    id: u64,
}

impl Connection {
    fn update<T>(&self, change: impl FnOnce(&mut NodeState) -> T) -> Option<T> {
        let result = {
            let mut inner = self.registry.lock();
            inner.nodes.get_mut(&self.id).map(change)
        };
        self.registry.touch();
        result
    }

    pub fn identify(&self, node: &str, gateway: Option<String>) {
        self.update(|state| {
            node.clone_into(&mut state.node);
            state.gateway = gateway;
        });
    }

    pub fn sent(&self, kind: ResourceType, version: &str) {
        self.registry.metrics.xds_response(kind.short());
        self.update(|state| {
            state.resources.entry(kind.short()).or_default().sent = Some(version.to_owned());
        });
    }

    pub fn acked(&self, kind: ResourceType, version: &str, revision: Option<&str>) {
        self.registry.metrics.xds_ack(kind.short());
        self.update(|state| {
            let entry = state.resources.entry(kind.short()).or_default();
            entry.acked = Some(version.to_owned());
            entry.nack = None;
            if let Some(revision) = revision {
                state.revision = Some(revision.to_owned());
            }
        });
    }

    /// The Envoy already has `version` (it said so when it reconnected): nothing was sent.
    pub fn settled(&self, kind: ResourceType, version: &str, revision: Option<&str>) {
        self.update(|state| {
            let entry = state.resources.entry(kind.short()).or_default();
            if entry.sent.as_deref() == Some(version) && entry.acked.as_deref() == Some(version) {
                return;
            }
            entry.sent = Some(version.to_owned());
            entry.acked = Some(version.to_owned());
            entry.nack = None;
            if let Some(revision) = revision {
                state.revision = Some(revision.to_owned());
            }
        });
    }

    /// The Envoy dropped its last resource of `kind` (a non-wildcard type requested with no
    /// names): nothing of that type is outstanding.
    pub fn unsubscribed(&self, kind: ResourceType) {
        self.update(|state| {
            state.resources.remove(kind.short());
        });
    }

    /// Records a NACK, logs it and counts it.
    pub fn nacked(&self, kind: ResourceType, version: &str, message: &str) {
        self.registry.metrics.xds_nack(kind.short());
        let recorded = self.update(|state| {
            let entry = state.resources.entry(kind.short()).or_default();
            let nack = Nack {
                node: state.node.clone(),
                gateway: state.gateway.clone(),
                kind: kind.short(),
                version: version.to_owned(),
                acked: entry.acked.clone(),
                message: message.to_owned(),
                at: now(),
            };
            entry.nack = Some(nack.clone());
            nack
        });
        let Some(nack) = recorded else { return };
        tracing::error!(
            node = %nack.node,
            gateway = nack.gateway.as_deref().unwrap_or("?"),
            r#type = nack.kind,
            version = %nack.version,
            keeps = nack.acked.as_deref().unwrap_or("nothing yet"),
            error = %nack.message,
            "Envoy rejected the update (NACK); it keeps serving the last version it accepted"
        );
        let mut inner = self.registry.lock();
        inner.nacks.push_back(nack);
        while inner.nacks.len() > NACK_HISTORY {
            inner.nacks.pop_front();
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.registry.lock().nodes.remove(&self.id);
        self.registry.metrics.xds_connected(-1);
        self.registry.touch();
    }
}
