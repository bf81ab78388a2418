//! The task both ADS variants run per stream, and the state they share.
//!
//! The loop answers three things: a request from the Envoy, a new catalog (a push), and the module
//! gate's timer or a finished module download (an extension config held back during a module
//! switch may go now). What a request means and what a push sends differ between state of the
//! world and delta; a [`Variant`] supplies those two steps and keeps its own per-type subscriptions.
//! Who the Envoy is, which module it has ([`ModuleGate`]), the nonce counter and the response
//! channel live here, in [`Shared`], once.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node as EnvoyNode;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::catalog::{Resource, ResourceType};
use super::stream::{GateDecision, Identity, ModuleGate, StreamContext, identify, view};

/// The response channel is gone: the stream ends.
#[derive(Debug)]
pub struct Closed;

/// What a variant's request step asks of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing to send (a stale answer, an unsubscription).
    Nothing,
    /// Send the type's current set if the Envoy lacks it; `warmup_done`: the extension config of a
    /// module switch was answered, so the warm-up listener goes too.
    Push { warmup_done: bool },
}

/// What a variant's push step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Sent what was needed, or nothing was.
    Done,
    /// The extension config names a module this Envoy has not downloaded: the listeners (with the
    /// warm-up listener) go first, the config later.
    WarmupFirst,
}

/// One protocol's per-stream state machine.
pub trait Variant: Send {
    type Request: Send + 'static;
    type Response: Send + 'static;
    /// For logs and the status report.
    const PROTOCOL: &'static str;

    fn node(request: &Self::Request) -> Option<&EnvoyNode>;
    fn type_url(request: &Self::Request) -> &str;
    /// The types the Envoy subscribed to (pushed again when the catalog changes).
    fn subscribed(&self) -> Vec<ResourceType>;
    /// Takes in a request of type `kind`: subscription changes, ACK or NACK.
    fn on_request(
        &mut self,
        shared: &mut Shared<Self::Response>,
        kind: ResourceType,
        request: Self::Request,
    ) -> Next;
    /// Sends what the Envoy lacks of `kind`, if anything.
    fn push(
        &mut self,
        shared: &mut Shared<Self::Response>,
        kind: ResourceType,
    ) -> impl Future<Output = Result<Pushed, Closed>> + Send;
}

/// What both variants keep per stream.
#[derive(Debug)]
pub struct Shared<R> {
    pub context: StreamContext,
    tx: mpsc::Sender<Result<R, Status>>,
    /// Known from the first request on.
    identity: Option<Identity>,
    pub gate: ModuleGate,
    nonce: u64,
}

impl<R> Shared<R> {
    /// The node id, for logs.
    pub fn node(&self) -> &str {
        self.identity
            .as_ref()
            .map_or("<unknown>", |i| i.node.as_str())
    }

    /// A nonce not used before on this stream.
    pub fn next_nonce(&mut self) -> String {
        self.nonce += 1;
        self.nonce.to_string()
    }

    pub async fn send(&self, response: R) -> Result<(), Closed> {
        self.tx.send(Ok(response)).await.map_err(|_| Closed)
    }

    /// What the node should have of `kind` now (see [`view`]), with the warm-up listener while a
    /// module switch is under way, and the PluginConfig revision. `None`: nothing may be sent yet.
    pub fn current(
        &self,
        kind: ResourceType,
        names: Option<&BTreeSet<String>>,
    ) -> Option<(Vec<Arc<Resource>>, String)> {
        let identity = self.identity.as_ref()?;
        let catalog = self.context.catalog.borrow().clone();
        let (mut resources, revision) = view(&catalog, identity, kind, names)?;
        if kind == ResourceType::Listener
            && let Some(warming) = self.gate.warming()
            && catalog.module.as_ref().is_some_and(|m| m.sha256 == warming)
            && let Some(gateway) = identity
                .gateway
                .as_ref()
                .and_then(|g| catalog.gateways.get(g))
        {
            resources.push(gateway.module_warmup.clone());
        }
        Some((resources, revision))
    }

    /// Whether `resources` of `kind` may go now: always, unless it is an extension config naming
    /// a module the Envoy may not have downloaded (see [`ModuleGate::check`]).
    pub fn module_gate(&mut self, kind: ResourceType, resources: &[Arc<Resource>]) -> GateDecision {
        if kind != ResourceType::ExtensionConfig {
            return GateDecision::Send;
        }
        let Some(module) = resources.first().and_then(|r| r.module.as_deref()) else {
            return GateDecision::Send;
        };
        let downloaded = self
            .context
            .peer
            .and_then(|peer| self.context.modules.downloaded(peer, module));
        let decision = self.gate.check(module, downloaded);
        if decision == GateDecision::StartWarmup {
            tracing::info!(node = %self.node(), %module,
                "bringing the new module into the Envoy's cache before switching to it");
        }
        decision
    }

    /// Learns who the Envoy is from its first request.
    fn identify(&mut self, node: Option<&EnvoyNode>, protocol: &'static str) {
        if self.identity.is_some() {
            return;
        }
        let identity = identify(node);
        if let Some(problem) = &identity.problem {
            tracing::warn!("{problem}; it is sent nothing");
        }
        let gateway = identity.gateway.as_ref().map(ToString::to_string);
        self.context
            .connection
            .identify(&identity.node, gateway.clone());
        tracing::info!(node = %identity.node, ?gateway, protocol, "Envoy connected");
        self.identity = Some(identity);
    }
}

/// Serves one stream until Envoy or the server closes it.
pub async fn run<V: Variant>(
    mut requests: Streaming<V::Request>,
    tx: mpsc::Sender<Result<V::Response, Status>>,
    context: StreamContext,
    mut variant: V,
) {
    let mut downloads = context.modules.subscribe_downloads();
    let mut shared = Shared {
        context,
        tx,
        identity: None,
        gate: ModuleGate::default(),
        nonce: 0,
    };
    loop {
        let deadline = shared.gate.deadline();
        tokio::select! {
            request = requests.message() => match request {
                Ok(Some(request)) => {
                    if on_request(&mut variant, &mut shared, request).await.is_err() { break; }
                }
                Ok(None) => break,
                Err(status) => {
                    tracing::debug!(%status, "xDS stream ended");
                    break;
                }
            },
            changed = shared.context.catalog.changed() => {
                if changed.is_err() || push_all(&mut variant, &mut shared).await.is_err() { break; }
            }
            Ok(()) = downloads.changed(), if deadline.is_some() => {
                if push(&mut variant, &mut shared, ResourceType::ExtensionConfig).await.is_err() {
                    break;
                }
            }
            () = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                if push(&mut variant, &mut shared, ResourceType::ExtensionConfig).await.is_err() {
                    break;
                }
            }
            () = shared.tx.closed() => break,
        }
    }
}

async fn on_request<V: Variant>(
    variant: &mut V,
    shared: &mut Shared<V::Response>,
    request: V::Request,
) -> Result<(), Closed> {
    shared.identify(V::node(&request), V::PROTOCOL);
    let Some(kind) = ResourceType::from_type_url(V::type_url(&request)) else {
        tracing::debug!(type_url = %V::type_url(&request), "a type this server does not serve");
        return Ok(());
    };
    let Next::Push { warmup_done } = variant.on_request(shared, kind, request) else {
        return Ok(());
    };
    push(variant, shared, kind).await?;
    if warmup_done {
        // The switch is answered: the warm-up listener goes.
        push(variant, shared, ResourceType::Listener).await?;
    }
    Ok(())
}

async fn push_all<V: Variant>(
    variant: &mut V,
    shared: &mut Shared<V::Response>,
) -> Result<(), Closed> {
    for kind in variant.subscribed() {
        push(variant, shared, kind).await?;
    }
    Ok(())
}

async fn push<V: Variant>(
    variant: &mut V,
    shared: &mut Shared<V::Response>,
    kind: ResourceType,
) -> Result<(), Closed> {
    if variant.push(shared, kind).await? == Pushed::WarmupFirst {
        variant.push(shared, ResourceType::Listener).await?;
    }
    Ok(())
}
