//! What the xDS server serves: per Gateway, its resources rendered once (clusters, endpoints, the
//! filter's extension config) and its listeners and certificates rendered per way of binding
//! ([`Binding`]), each resource with a content version. The [`Hub`] keeps the latest Gateway results
//! and module, renders, and publishes an immutable [`Catalog`] that every stream watches.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use envoy_types::pb::google::protobuf::Any;
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

use super::proto::{self, ProtoError};
use crate::envoy::node::Node;
use crate::envoy::{
    self, Binding, Delivery, EnvoyOptions, MODULE_PATH_PREFIX, RemoteModule, RenderError,
    XDS_CLUSTER,
};
use crate::resolution::{GatewayResult, ObjectKey};

/// The resource types the server streams, in the order a change is pushed: clusters and their
/// endpoints before anything that routes to them, certificates before the listeners naming them,
/// the filter (which picks clusters) last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    Cluster,
    Endpoint,
    Secret,
    Listener,
    ExtensionConfig,
}

impl ResourceType {
    pub const ALL: [ResourceType; 5] = [
        ResourceType::Cluster,
        ResourceType::Endpoint,
        ResourceType::Secret,
        ResourceType::Listener,
        ResourceType::ExtensionConfig,
    ];

    pub fn type_url(self) -> &'static str {
        match self {
            ResourceType::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            ResourceType::Endpoint => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            ResourceType::Secret => {
                "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
            }
            ResourceType::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            ResourceType::ExtensionConfig => {
                "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"
            }
        }
    }

    pub fn from_type_url(url: &str) -> Option<ResourceType> {
        ResourceType::ALL.into_iter().find(|t| t.type_url() == url)
    }

    /// The short name in logs, metrics and the status report.
    pub fn short(self) -> &'static str {
        match self {
            ResourceType::Cluster => "CDS",
            ResourceType::Endpoint => "EDS",
            ResourceType::Secret => "SDS",
            ResourceType::Listener => "LDS",
            ResourceType::ExtensionConfig => "ECDS",
        }
    }

    /// LDS and CDS are wildcard subscriptions (Envoy takes every resource the server has); the
    /// others name the resources they want.
    pub fn is_wildcard(self) -> bool {
        matches!(self, ResourceType::Cluster | ResourceType::Listener)
    }
}

/// One resource with its content version.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub name: String,
    /// A hash of the rendered document: equal content, equal version, in every shim replica and
    /// across restarts, so a reconnecting Envoy that already has it is not sent it again.
    pub version: String,
    pub body: Any,
    /// ECDS only: the module's sha256 the config loads.
    pub module: Option<String>,
}

fn version_of(type_url: &str, document: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(type_url.as_bytes());
    hasher.update([0]);
    hasher.update(document);
    hex::encode(hasher.finalize().get(..8).unwrap_or_default())
}

fn from_node(
    kind: ResourceType,
    name: String,
    node: &Node,
    body: Any,
    module: Option<String>,
) -> Arc<Resource> {
    let document = serde_json::to_vec(node).unwrap_or_default();
    let hash = version_of(kind.type_url(), &document);
    // An extension config's version names its module, so an Envoy that reconnects says which
    // module it runs.
    let version = match &module {
        Some(sha256) => format!("m{}-{hash}", sha256.get(..12).unwrap_or(sha256)),
        None => hash,
    };
    Arc::new(Resource {
        version,
        name,
        body,
        module,
    })
}

/// The filter module the Envoys load, as the shim serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// Lower-case hex sha256 of the module.
    pub sha256: String,
    /// Where it came from, for logs and the report (`file …` or `oci://…@sha256:…`).
    pub origin: String,
}

impl ModuleInfo {
    /// The module's URL in the ECDS config (its host is only a name: the connection goes to the
    /// bootstrap's xDS cluster).
    pub fn remote(&self) -> RemoteModule {
        RemoteModule {
            uri: format!(
                "http://{XDS_CLUSTER}{MODULE_PATH_PREFIX}{}.wasm",
                self.sha256
            ),
            cluster: XDS_CLUSTER.to_owned(),
            sha256: self.sha256.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Proto(#[from] ProtoError),
}

/// The listeners (and the certificates they name) of one binding.
#[derive(Debug)]
pub struct ListenerSet {
    pub listeners: Vec<Arc<Resource>>,
    pub secrets: Vec<Arc<Resource>>,
    pub warnings: Vec<String>,
}

/// Everything one Gateway serves.
#[derive(Debug)]
pub struct GatewayResources {
    pub gateway: ObjectKey,
    /// The PluginConfig revision in the extension config.
    pub revision: String,
    pub clusters: Vec<Arc<Resource>>,
    pub endpoints: Vec<Arc<Resource>>,
    pub extension: Arc<Resource>,
    /// LDS: the listener that downloads this module into an Envoy switching to it.
    pub module_warmup: Arc<Resource>,
    pub warnings: Vec<String>,
    result: GatewayResult,
    options: EnvoyOptions,
    listeners: Mutex<HashMap<Binding, Arc<ListenerSet>>>,
}

impl GatewayResources {
    fn render(result: &GatewayResult, options: &EnvoyOptions) -> Result<Self, CatalogError> {
        let module = match &options.delivery {
            Delivery::Ads(module) => Some(module.sha256.clone()),
            Delivery::Files => None,
        };
        let shared = envoy::shared_resources(result, options)?;
        let mut clusters = Vec::new();
        for node in &shared.clusters {
            let cluster = proto::cluster(node)?;
            let body = proto::pack(&cluster);
            clusters.push(from_node(
                ResourceType::Cluster,
                cluster.name,
                node,
                body,
                None,
            ));
        }
        let mut endpoints = Vec::new();
        for node in &shared.load_assignments {
            let assignment = proto::load_assignment(node)?;
            let body = proto::pack(&assignment);
            endpoints.push(from_node(
                ResourceType::Endpoint,
                assignment.cluster_name,
                node,
                body,
                None,
            ));
        }
        let warmup_node = envoy::module_warmup_listener(&shared.extension_config);
        let warmup = proto::listener(&warmup_node)?;
        let body = proto::pack(&warmup);
        let module_warmup = from_node(
            ResourceType::Listener,
            warmup.name,
            &warmup_node,
            body,
            None,
        );
        let extension = proto::extension_config(&shared.extension_config)?;
        let body = proto::pack(&extension);
        let extension = from_node(
            ResourceType::ExtensionConfig,
            extension.name,
            &shared.extension_config,
            body,
            module,
        );
        Ok(GatewayResources {
            gateway: result.gateway.clone(),
            revision: result.config.revision.clone(),
            clusters,
            endpoints,
            extension,
            module_warmup,
            warnings: shared.warnings,
            result: result.clone(),
            options: options.clone(),
            listeners: Mutex::new(HashMap::new()),
        })
    }

    /// The listeners and certificates of Envoys that bind this way (rendered once per binding).
    pub fn listeners(&self, binding: &Binding) -> Result<Arc<ListenerSet>, CatalogError> {
        let mut cache = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(set) = cache.get(binding) {
            return Ok(set.clone());
        }
        let options = binding.apply(&self.options);
        let envoy::RenderedListeners {
            listeners: nodes,
            secrets,
            warnings,
        } = envoy::listeners(&self.result, &options)?;
        let mut listeners = Vec::new();
        for node in &nodes {
            let listener = proto::listener(node)?;
            let body = proto::pack(&listener);
            listeners.push(from_node(
                ResourceType::Listener,
                listener.name,
                node,
                body,
                None,
            ));
        }
        let secrets = secrets
            .iter()
            .map(|material| {
                let secret = proto::secret(material);
                let document = format!(
                    "{}\n{}\n{}",
                    material.name, material.certificate_chain_pem, material.private_key_pem
                );
                Arc::new(Resource {
                    name: material.name.clone(),
                    version: version_of(ResourceType::Secret.type_url(), document.as_bytes()),
                    body: proto::pack(&secret),
                    module: None,
                })
            })
            .collect();
        let set = Arc::new(ListenerSet {
            listeners,
            secrets,
            warnings,
        });
        cache.insert(binding.clone(), set.clone());
        Ok(set)
    }

    /// Every resource of `kind` an Envoy binding this way gets.
    pub fn resources(
        &self,
        kind: ResourceType,
        binding: &Binding,
    ) -> Result<Vec<Arc<Resource>>, CatalogError> {
        Ok(match kind {
            ResourceType::Cluster => self.clusters.clone(),
            ResourceType::Endpoint => self.endpoints.clone(),
            ResourceType::ExtensionConfig => vec![self.extension.clone()],
            ResourceType::Listener => self.listeners(binding)?.listeners.clone(),
            ResourceType::Secret => self.listeners(binding)?.secrets.clone(),
        })
    }
}

/// What the streams see: one immutable value, replaced as a whole on every change.
#[derive(Debug, Default)]
pub struct Catalog {
    pub gateways: BTreeMap<ObjectKey, Arc<GatewayResources>>,
    pub module: Option<ModuleInfo>,
}

#[derive(Debug, Default)]
struct HubState {
    results: BTreeMap<ObjectKey, GatewayResult>,
    rendered: BTreeMap<ObjectKey, Arc<GatewayResources>>,
    module: Option<ModuleInfo>,
}

/// Keeps the latest result of every Gateway and the module, renders, and publishes the catalog.
#[derive(Debug)]
pub struct Hub {
    options: EnvoyOptions,
    state: Mutex<HubState>,
    catalog: watch::Sender<Arc<Catalog>>,
}

/// What a delivery to the hub did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// Rendered and published; `changed` is false when every resource kept its version.
    Rendered {
        changed: bool,
        warnings: Vec<String>,
    },
    /// Kept: there is no module to point the filter at yet.
    WaitingForModule,
}

impl Hub {
    /// `options`: rendering options (failure policy, compression); delivery and binding are the
    /// hub's and each node's.
    pub fn new(options: EnvoyOptions) -> Hub {
        let (catalog, _) = watch::channel(Arc::new(Catalog::default()));
        Hub {
            options,
            state: Mutex::new(HubState::default()),
            catalog,
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Catalog>> {
        self.catalog.subscribe()
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.borrow().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn options_for(&self, module: &ModuleInfo) -> EnvoyOptions {
        let mut options = self.options.clone();
        options.delivery = Delivery::Ads(module.remote());
        options
    }

    /// A Gateway's new result. Renders it (when the module is known) and publishes.
    pub fn set_gateway(&self, result: &GatewayResult) -> Result<Published, CatalogError> {
        let mut state = self.lock();
        state.results.insert(result.gateway.clone(), result.clone());
        let Some(module) = state.module.clone() else {
            return Ok(Published::WaitingForModule);
        };
        let rendered = Arc::new(GatewayResources::render(
            result,
            &self.options_for(&module),
        )?);
        let before = state.rendered.get(&result.gateway).cloned();
        let changed = before.is_none_or(|b| {
            !same_shared(&b, &rendered)
                || crate::runtime::content_hash(&b.result) != crate::runtime::content_hash(result)
        });
        let warnings = rendered.warnings.clone();
        state.rendered.insert(result.gateway.clone(), rendered);
        self.publish(&state);
        Ok(Published::Rendered { changed, warnings })
    }

    /// A new module (first pull, a moved tag): every Gateway is rendered again to load it.
    pub fn set_module(&self, module: ModuleInfo) -> Vec<(ObjectKey, CatalogError)> {
        let mut state = self.lock();
        if state.module.as_ref() == Some(&module) {
            return Vec::new();
        }
        let options = self.options_for(&module);
        let mut errors = Vec::new();
        let mut rendered = BTreeMap::new();
        for (key, result) in &state.results {
            match GatewayResources::render(result, &options) {
                Ok(resources) => {
                    rendered.insert(key.clone(), Arc::new(resources));
                }
                Err(error) => errors.push((key.clone(), error)),
            }
        }
        state.rendered = rendered;
        state.module = Some(module);
        self.publish(&state);
        errors
    }

    pub fn module(&self) -> Option<ModuleInfo> {
        self.lock().module.clone()
    }

    fn publish(&self, state: &HubState) {
        self.catalog.send_replace(Arc::new(Catalog {
            gateways: state.rendered.clone(),
            module: state.module.clone(),
        }));
    }
}

fn same_shared(a: &GatewayResources, b: &GatewayResources) -> bool {
    let versions = |r: &[Arc<Resource>]| r.iter().map(|r| r.version.clone()).collect::<Vec<_>>();
    versions(&a.clusters) == versions(&b.clusters)
        && versions(&a.endpoints) == versions(&b.endpoints)
        && a.extension.version == b.extension.version
}
