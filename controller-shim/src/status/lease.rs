//! Leader election on a `coordination.k8s.io/v1` Lease, so that only one replica writes status.
//!
//! The loop, every [`LeaseConfig::renew_every`]:
//! - no Lease: create it naming us (`POST`; a 409 means another replica created it first);
//! - we hold it: renew `renewTime` with `PUT` carrying the `resourceVersion` we read, so a replica
//!   that took over in between makes our write fail with 409 and we step down;
//! - another replica holds it: take over only when the record has not changed for
//!   `leaseDurationSeconds` *as measured by our own clock since we last saw it change* (like
//!   client-go: clocks of different nodes are never compared), again with `PUT` + `resourceVersion`.
//!
//! A leader that cannot renew (API unreachable) keeps acting as leader only until its last
//! successful renewal is older than two thirds of the lease duration, so it stops before anyone
//! else may take over. On shutdown the holder clears `holderIdentity`, letting a peer take over at
//! once.

use std::time::{Duration, Instant};

use crate::api::coordination::{Lease, LeaseSpec};
use crate::api::meta::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;

/// Which Lease, and who we are.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    pub duration: Duration,
    pub renew_every: Duration,
}

impl LeaseConfig {
    pub fn new(namespace: &str, identity: &str) -> LeaseConfig {
        LeaseConfig {
            namespace: namespace.to_owned(),
            name: "gateway-wasm-controller-shim".to_owned(),
            identity: identity.to_owned(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(3),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("Lease {namespace}/{name} changed concurrently (409 Conflict)")]
    Conflict { namespace: String, name: String },
    #[error("Lease {namespace}/{name}: {source}")]
    Api {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl LeaseError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            LeaseError::Conflict { .. } => "conflict",
            LeaseError::Api { .. } => "api",
        }
    }
}

/// The elector's memory between rounds.
#[derive(Debug)]
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The last record seen (resourceVersion) and when we first saw it.
    observed: Option<(String, Instant)>,
    last_renewed: Option<Instant>,
    leader: bool,
}

fn now() -> MicroTime {
    MicroTime(crate::api::jiff::Timestamp::now())
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX).max(1)
}

impl Elector {
    pub fn new(api: Api<Lease>, config: LeaseConfig) -> Elector {
        Elector {
            api,
            config,
            observed: None,
            last_renewed: None,
            leader: false,
        }
    }

    pub fn is_leader(&self) -> bool {
        self.leader
    }

    fn error(&self, source: kube::Error) -> LeaseError {
        match source {
            kube::Error::Api(status) if status.code == 409 => LeaseError::Conflict {
                namespace: self.config.namespace.clone(),
                name: self.config.name.clone(),
            },
            source => LeaseError::Api {
                namespace: self.config.namespace.clone(),
                name: self.config.name.clone(),
                source,
            },
        }
    }

    fn spec_for_us(&self, previous: Option<&LeaseSpec>) -> LeaseSpec {
        let taking_over = previous
            .and_then(|s| s.holder_identity.as_deref())
            .is_none_or(|holder| holder != self.config.identity);
        let transitions = previous.and_then(|s| s.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(seconds(self.config.duration)),
            acquire_time: if taking_over {
                Some(now())
            } else {
                previous.and_then(|s| s.acquire_time.clone())
            },
            renew_time: Some(now()),
            lease_transitions: Some(if taking_over && previous.is_some() {
                transitions + 1
            } else {
                transitions
            }),
            ..previous.cloned().unwrap_or_default()
        }
    }

    /// One round: returns whether we lead afterwards.
    pub async fn round(&mut self) -> Result<bool, LeaseError> {
        let result = self.try_round().await;
        match &result {
            Ok(leader) => {
                self.leader = *leader;
                if *leader {
                    self.last_renewed = Some(Instant::now());
                }
            }
            Err(LeaseError::Conflict { .. }) => self.leader = false,
            Err(LeaseError::Api { .. }) => {
                // Keep leading only while our last renewal is comfortably inside the lease.
                let margin = self.config.duration * 2 / 3;
                self.leader =
                    self.leader && self.last_renewed.is_some_and(|t| t.elapsed() < margin);
            }
        }
        result.map(|_| self.leader)
    }

    async fn try_round(&mut self) -> Result<bool, LeaseError> {
        let current = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.error(e))?;
        let Some(lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec_for_us(None)),
            };
            self.api
                .create(&PostParams::default(), &lease)
                .await
                .map_err(|e| self.error(e))?;
            tracing::info!(identity = %self.config.identity, lease = %self.config.name, "created the Lease; leading");
            return Ok(true);
        };
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        if self.observed.as_ref().map(|(v, _)| v) != Some(&version) {
            self.observed = Some((version, Instant::now()));
        }
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let ours = holder == self.config.identity;
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.config.duration, Duration::from_secs);
        let expired = holder.is_empty()
            || self
                .observed
                .as_ref()
                .is_some_and(|(_, seen)| seen.elapsed() >= duration);
        if !ours && !expired {
            return Ok(false);
        }
        let mut updated = lease.clone();
        updated.spec = Some(self.spec_for_us(Some(&spec)));
        let replaced = self
            .api
            .replace(&self.config.name, &PostParams::default(), &updated)
            .await
            .map_err(|e| self.error(e))?;
        self.observed = replaced
            .metadata
            .resource_version
            .map(|v| (v, Instant::now()));
        if !ours {
            tracing::info!(identity = %self.config.identity, previous = %holder, "took over the Lease; leading");
        }
        Ok(true)
    }

    /// Gives the Lease up (clears `holderIdentity`) if we hold it.
    pub async fn release(&mut self) {
        if !self.leader {
            return;
        }
        self.leader = false;
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await
            && let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(self.config.identity.as_str())
        {
            spec.holder_identity = None;
            let _ = self
                .api
                .replace(&self.config.name, &PostParams::default(), &lease)
                .await;
        }
    }
}

/// Runs rounds until `stop` turns true, publishing leadership on `leader`; then releases the
/// Lease if held.
pub async fn run(
    mut elector: Elector,
    leader: watch::Sender<bool>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let was = elector.is_leader();
        if let Err(error) = elector.round().await {
            tracing::debug!(%error, "lease round failed");
        }
        let is = elector.is_leader();
        if was != is {
            tracing::info!(leader = is, "leadership changed");
        }
        metrics.set_leader(is);
        leader.send_if_modified(|current| std::mem::replace(current, is) != is);
        tokio::select! {
            () = tokio::time::sleep(elector.config.renew_every) => {}
            _ = stop.changed() => {}
        }
    }
    elector.release().await;
    metrics.set_leader(false);
    leader.send_replace(false);
}
