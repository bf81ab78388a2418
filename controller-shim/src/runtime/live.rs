//! What the proxies run now, for the playground page at `/ui` (`live.json`).
//!
//! The runtime records each round here: the snapshot it resolved (rendered as manifests text only
//! when someone asks, with Secret values redacted), and per Gateway the PluginConfig last
//! delivered, when and to which target, and a newer revision that is *not* running (the engine
//! rejected it, or a push failed). The page explains requests against the delivered config, so it
//! answers "where would this request go right now?", not "where would it go if the last edit
//! had worked".

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::Snapshot;
use crate::api::jiff::Timestamp;
use crate::manifests::{self, Secrets};
use crate::resolution::{GatewayResult, ObjectKey};

/// The live state, shared between the runtime (writer) and the `/ui` server (reader).
#[derive(Debug)]
pub struct LiveView {
    source: String,
    controller: String,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    resolved_at: Option<Timestamp>,
    snapshot: Option<Snapshot>,
    gateways: BTreeMap<ObjectKey, Running>,
}

#[derive(Debug, Clone)]
struct Running {
    /// The config last delivered (absent until a first delivery succeeded). Only the
    /// PluginConfig: the Gateway's TLS material stays out of this view.
    delivered: Option<engine::PluginConfig>,
    pushes: BTreeMap<String, Push>,
    pending: Option<Pending>,
}

/// One delivery target's last successful delivery of a Gateway.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Push {
    pub target: String,
    pub revision: String,
    /// When this revision was written (or, after a restart, first found already in place).
    pub at: String,
    pub duration_ms: f64,
}

/// A revision that resolved but is not running, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    pub revision: String,
    pub reason: String,
}

/// `live.json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveDocument {
    /// Where objects come from (`manifests DIR` or `kubernetes`).
    pub source: String,
    pub controller: String,
    /// The last resolution (RFC 3339), `null` before the first.
    pub resolved_at: Option<String>,
    /// The objects the shim resolved, as manifests (Secret values redacted).
    pub manifests: String,
    pub gateways: Vec<LiveGateway>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveGateway {
    /// `namespace/name`.
    pub gateway: String,
    /// The revision of `config`.
    pub revision: String,
    pub routes: usize,
    /// The PluginConfig the proxies run.
    pub config: engine::PluginConfig,
    pub pushes: Vec<Push>,
    pub pending: Option<Pending>,
}

impl LiveView {
    pub fn new(source: &str, controller: &str) -> LiveView {
        LiveView {
            source: source.to_owned(),
            controller: controller.to_owned(),
            state: Mutex::new(State::default()),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut state)
    }

    /// A round resolved `snapshot`; Gateways not in `present` are gone.
    pub fn resolved(&self, snapshot: Snapshot, present: &[ObjectKey]) {
        self.with(|state| {
            state.resolved_at = Some(Timestamp::now());
            state.snapshot = Some(snapshot);
            state.gateways.retain(|key, _| present.contains(key));
        });
    }

    fn running<'s>(state: &'s mut State, gateway: &ObjectKey) -> &'s mut Running {
        state
            .gateways
            .entry(gateway.clone())
            .or_insert_with(|| Running {
                delivered: None,
                pushes: BTreeMap::new(),
                pending: None,
            })
    }

    /// `target` accepted `gateway`'s config; `changed`: it was written now (not already there).
    pub fn delivered(
        &self,
        gateway: &GatewayResult,
        target: &str,
        changed: bool,
        duration: Duration,
    ) {
        self.with(|state| {
            let running = Self::running(state, &gateway.gateway);
            let revision = &gateway.config.revision;
            let known = running
                .pushes
                .get(target)
                .is_some_and(|p| &p.revision == revision);
            if changed || !known {
                running.pushes.insert(
                    target.to_owned(),
                    Push {
                        target: target.to_owned(),
                        revision: revision.clone(),
                        at: Timestamp::now().to_string(),
                        duration_ms: duration.as_secs_f64() * 1000.0,
                    },
                );
            }
            running.delivered = Some(gateway.config.clone());
            if running
                .pending
                .as_ref()
                .is_some_and(|p| &p.revision == revision)
            {
                running.pending = None;
            }
        });
    }

    /// `gateway`'s newest revision is not running, for `reason`.
    pub fn not_running(&self, gateway: &GatewayResult, reason: &str) {
        self.with(|state| {
            Self::running(state, &gateway.gateway).pending = Some(Pending {
                revision: gateway.config.revision.clone(),
                reason: reason.to_owned(),
            });
        });
    }

    /// The document the page reads.
    pub fn document(&self) -> LiveDocument {
        self.with(|state| LiveDocument {
            source: self.source.clone(),
            controller: self.controller.clone(),
            resolved_at: state.resolved_at.map(|t| t.to_string()),
            manifests: state
                .snapshot
                .as_ref()
                .map(|s| manifests::to_text(s, Secrets::Redact))
                .unwrap_or_default(),
            gateways: state
                .gateways
                .iter()
                .filter_map(|(key, running)| {
                    let delivered = running.delivered.as_ref()?;
                    Some(LiveGateway {
                        gateway: key.to_string(),
                        revision: delivered.revision.clone(),
                        routes: delivered.routes.len(),
                        config: delivered.clone(),
                        pushes: running.pushes.values().cloned().collect(),
                        pending: running.pending.clone(),
                    })
                })
                .collect(),
        })
    }
}
