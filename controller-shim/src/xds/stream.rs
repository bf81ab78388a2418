//! What both ADS variants share: who the Envoy on a stream is (from its node), what it should have
//! of each type right now, and when a NACKed extension config is sent again.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node as EnvoyNode;
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{Struct, Value};
use sha2::{Digest as _, Sha256};

use tokio::sync::watch;
use tokio::time::Instant;

use super::catalog::{Catalog, Resource, ResourceType};
use super::nodes::Connection;
use super::server::ModuleStore;
use crate::envoy::{Binding, NODE_METADATA_KEY};
use crate::resolution::ObjectKey;

/// What a stream's task gets from the server.
#[derive(Debug)]
pub struct StreamContext {
    pub catalog: watch::Receiver<Arc<Catalog>>,
    pub connection: Connection,
    pub modules: ModuleStore,
    /// The Envoy's end of the connection (its module downloads come over the same one).
    pub peer: Option<SocketAddr>,
}

/// How long a module switch waits for the Envoy to download the new module before sending the
/// extension config anyway (an Envoy that had it cached downloads nothing).
pub const WARMUP_TIMEOUT: Duration = Duration::from_secs(15);
/// After the last byte of the module left the shim, the least time before the extension config
/// follows (the bytes must reach Envoy, which then caches the code). Twice the download's own
/// duration when that is longer.
pub const DOWNLOAD_GRACE: Duration = Duration::from_secs(1);

/// What may happen with an extension config that names a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateDecision {
    /// The Envoy has the module (or runs no filter yet, so its listeners wait for the download).
    Send,
    /// Waiting for the download.
    Hold,
    /// Start bringing the module into the cache: send the warm-up listener.
    StartWarmup,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Warmup {
    /// The warm-up listener was sent; the download has not completed.
    Downloading { module: String, since: Instant },
    /// Downloaded; the config follows at `ready_at`.
    Settling { module: String, ready_at: Instant },
    /// The config was sent; the warm-up listener stays until it is ACKed or NACKed.
    Switching { module: String },
}

/// Keeps a running filter from ever being pointed at a module the Envoy has not downloaded (see
/// [`crate::envoy::MODULE_WARMUP_LISTENER`]).
#[derive(Debug, Default)]
pub struct ModuleGate {
    /// Modules in this Envoy's code cache (sha256s, or the prefix a reconnecting Envoy's version
    /// names).
    loaded: BTreeSet<String>,
    /// The Envoy runs some filter config, which a switch must not break.
    running: bool,
    warmup: Option<Warmup>,
}

impl ModuleGate {
    /// Decides for an extension config naming `module`; `downloaded`: how long the Envoy's
    /// download of it took, once it completed.
    pub fn check(&mut self, module: &str, downloaded: Option<Duration>) -> GateDecision {
        if self.loaded.iter().any(|l| module.starts_with(l.as_str())) || !self.running {
            return GateDecision::Send;
        }
        match self.warmup.clone() {
            Some(Warmup::Downloading { module: m, since }) if m == module => {
                if let Some(took) = downloaded {
                    self.warmup = Some(Warmup::Settling {
                        module: m,
                        ready_at: Instant::now() + DOWNLOAD_GRACE.max(took * 2),
                    });
                    GateDecision::Hold
                } else if since.elapsed() >= WARMUP_TIMEOUT {
                    tracing::warn!(%module, "no download of the new module seen; sending its config anyway");
                    self.switching(module)
                } else {
                    GateDecision::Hold
                }
            }
            Some(Warmup::Settling {
                module: m,
                ready_at,
            }) if m == module => {
                if Instant::now() >= ready_at {
                    self.switching(module)
                } else {
                    GateDecision::Hold
                }
            }
            Some(Warmup::Switching { module: m }) if m == module => GateDecision::Send,
            _ => {
                self.warmup = Some(Warmup::Downloading {
                    module: module.to_owned(),
                    since: Instant::now(),
                });
                GateDecision::StartWarmup
            }
        }
    }

    fn switching(&mut self, module: &str) -> GateDecision {
        self.loaded.insert(module.to_owned());
        self.warmup = Some(Warmup::Switching {
            module: module.to_owned(),
        });
        GateDecision::Send
    }

    /// An extension config naming `module` (or none) was ACKed, or reported on reconnect.
    pub fn has(&mut self, module: Option<&str>) {
        self.running = true;
        if let Some(module) = module {
            self.loaded.insert(module.to_owned());
        }
    }

    /// The Envoy answered the extension config of a switch: the warm-up listener can go. Returns
    /// whether it was there.
    pub fn answered(&mut self) -> bool {
        if matches!(self.warmup, Some(Warmup::Switching { .. })) {
            self.warmup = None;
            return true;
        }
        false
    }

    /// The module whose warm-up listener the Envoy should have.
    pub fn warming(&self) -> Option<&str> {
        match &self.warmup {
            Some(
                Warmup::Downloading { module, .. }
                | Warmup::Settling { module, .. }
                | Warmup::Switching { module },
            ) => Some(module),
            None => None,
        }
    }

    /// When to look again.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.warmup {
            Some(Warmup::Downloading { since, .. }) => Some(*since + WARMUP_TIMEOUT),
            Some(Warmup::Settling { ready_at, .. }) => Some(*ready_at),
            _ => None,
        }
    }
}

/// The module (a sha256 prefix) an extension config version names: `m<prefix>-…` (see the
/// catalog).
pub fn module_of_version(version: &str) -> Option<&str> {
    let prefix = version.strip_prefix('m')?.split('-').next()?;
    (prefix.len() >= 12 && prefix.bytes().all(|b| b.is_ascii_hexdigit())).then_some(prefix)
}

/// Who is on the other end of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub node: String,
    pub gateway: Option<ObjectKey>,
    pub binding: Binding,
    /// What was wrong with the node metadata (logged once).
    pub problem: Option<String>,
}

fn field<'a>(fields: &'a Struct, key: &str) -> Option<&'a Kind> {
    fields.fields.get(key).and_then(|v: &Value| v.kind.as_ref())
}

fn text(fields: &Struct, key: &str) -> Option<String> {
    match field(fields, key) {
        Some(Kind::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

fn port(kind: Option<&Kind>) -> Option<u16> {
    match kind {
        Some(Kind::NumberValue(n)) if n.fract() == 0.0 && (0.0..=65535.0).contains(n) => {
            // Checked to be a whole number in range just above.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Some(*n as u16)
        }
        _ => None,
    }
}

/// Reads `node.metadata.gateway_wasm` (written by `controller-shim bootstrap`).
pub fn identify(node: Option<&EnvoyNode>) -> Identity {
    let id = node.map(|n| n.id.clone()).unwrap_or_default();
    let mut identity = Identity {
        node: if id.is_empty() {
            "<no node id>".to_owned()
        } else {
            id
        },
        gateway: None,
        binding: Binding::default(),
        problem: None,
    };
    let ours =
        node.and_then(|n| n.metadata.as_ref())
            .and_then(|m| match field(m, NODE_METADATA_KEY) {
                Some(Kind::StructValue(s)) => Some(s),
                _ => None,
            });
    let Some(ours) = ours else {
        identity.problem = Some(format!(
            "node {} has no metadata.{NODE_METADATA_KEY}.gateway: start it from `controller-shim bootstrap`",
            identity.node
        ));
        return identity;
    };
    match text(ours, "gateway").as_deref().map(|g| g.split_once('/')) {
        Some(Some((namespace, name))) if !namespace.is_empty() && !name.is_empty() => {
            identity.gateway = Some(ObjectKey {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            });
        }
        _ => {
            identity.problem = Some(format!(
                "node {}: metadata.{NODE_METADATA_KEY}.gateway is not NAMESPACE/NAME",
                identity.node
            ));
        }
    }
    if let Some(address) = text(ours, "bind_address") {
        identity.binding.bind_address = address;
    }
    if let Some(offset) = port(field(ours, "port_offset")) {
        identity.binding.port_offset = offset;
    }
    if let Some(Kind::StructValue(map)) = field(ours, "port_map") {
        for (gateway_port, bind) in &map.fields {
            if let (Ok(gateway_port), Some(bind)) =
                (gateway_port.parse::<u16>(), port(bind.kind.as_ref()))
            {
                identity.binding.port_map.insert(gateway_port, bind);
            }
        }
    }
    identity
}

/// What the node should have of `kind` now: `None` while its Gateway is unknown (nothing is sent,
/// so a restarted shim never empties an Envoy before its first resolution), else the resources,
/// limited to `names` for the types that name theirs (`None`: all), and the PluginConfig revision.
pub fn view(
    catalog: &Catalog,
    identity: &Identity,
    kind: ResourceType,
    names: Option<&BTreeSet<String>>,
) -> Option<(Vec<Arc<Resource>>, String)> {
    let gateway = catalog.gateways.get(identity.gateway.as_ref()?)?;
    let resources = match gateway.resources(kind, &identity.binding) {
        Ok(resources) => resources,
        Err(error) => {
            tracing::error!(node = %identity.node, gateway = %gateway.gateway, %error,
                "cannot render this Envoy's resources");
            return None;
        }
    };
    let resources = match names {
        Some(names) => resources
            .into_iter()
            .filter(|r| names.contains(&r.name))
            .collect(),
        None => resources,
    };
    Some((resources, gateway.revision.clone()))
}

/// The version of a set of resources (state of the world, and delta's `system_version_info`). The
/// one extension config's set has that config's version, which names its module.
pub fn set_version(kind: ResourceType, resources: &[Arc<Resource>]) -> String {
    if kind == ResourceType::ExtensionConfig
        && let [only] = resources
    {
        return only.version.clone();
    }
    let mut hasher = Sha256::new();
    for resource in resources {
        hasher.update(resource.name.as_bytes());
        hasher.update([0]);
        hasher.update(resource.version.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize().get(..8).unwrap_or_default())
}

#[cfg(test)]
mod gate_tests {
    use super::{GateDecision, ModuleGate, module_of_version};

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_version_names_its_module_by_a_sha256_prefix() {
        assert_eq!(
            module_of_version("m0123456789ab-ffee"),
            Some("0123456789ab")
        );
        assert_eq!(
            module_of_version("m0123-ffee"),
            None,
            "too short to name a module"
        );
        assert_eq!(module_of_version("mzzzzzzzzzzzz-ffee"), None);
        assert_eq!(module_of_version("0123456789ab-ffee"), None);
    }

    /// After a shim restart the module may not be pulled yet when an Envoy reconnects; the prefix
    /// its version reports must still count as in its cache (no warm-up for a module it runs).
    #[test]
    fn a_reconnecting_envoys_module_needs_no_warmup() {
        let mut gate = ModuleGate::default();
        gate.has(module_of_version("m0123456789ab-ffee"));
        assert_eq!(gate.check(SHA, None), GateDecision::Send);
        assert_eq!(gate.warming(), None);
    }

    #[test]
    fn another_module_on_a_running_envoy_is_warmed_up_first() {
        let mut gate = ModuleGate::default();
        gate.has(module_of_version("mffffffffffff-ffee"));
        assert_eq!(gate.check(SHA, None), GateDecision::StartWarmup);
        assert_eq!(gate.warming(), Some(SHA));
    }
}
