//! Envoy delivery: from one Gateway's [`GatewayResult`] to the files a file-configured Envoy runs from.
//!
//! Consumes a resolved Gateway (its PluginConfig, backends and TLS material) and [`EnvoyOptions`];
//! produces [`EnvoyFiles`]:
//! - `bootstrap.yaml`: admin on loopback, `node`, one listener per Gateway port (bind port mapped by
//!   [`EnvoyOptions::port_offset`]/[`EnvoyOptions::port_map`]), one filter chain per HTTPS listener
//!   hostname (SNI), each with one HTTP connection manager whose only route is a catch-all forwarding
//!   to the cluster named by `x-gateway-wasm-upstream`; the wasm filter comes from extension-config
//!   discovery (a file) and the clusters from CDS (a file); edge-safe settings everywhere (path
//!   normalization, header and stream limits, timeouts, an overload manager: [`EdgeOptions`]);
//! - `ecds/extension-config.json`: the wasm filter with the PluginConfig JSON as its configuration
//!   (the only part that changes between pushes; gzip-compressed when large, see
//!   [`ConfigCompression`]). JSON, not YAML like the others: Envoy parses it about three times
//!   faster, and this is the file every push makes it read;
//! - `cds/clusters.yaml`: one cluster per backend;
//! - `tls/*.crt|key`: the listeners' certificates.
//!
//! [`write_files`] writes them atomically (temp file + rename in the same directory) and only when
//! their content changed; Envoy watches the `ecds/` and `cds/` directories and reloads on rename.
//! How it all fits together in Envoy: `docs/envoy.md`.
//!
//! The same functions render the resources the xDS server streams ([`Delivery::Ads`]): the
//! listeners of the file bootstrap are LDS's listeners, with their config sources pointing at the
//! ADS stream instead of files and certificates coming from SDS ([`resources`]); the minimal
//! bootstrap of an xDS-mode Envoy is [`ads_bootstrap`]. `docs/xds.md` explains that mode.

mod ads_bootstrap;
mod bootstrap;
mod clusters;
mod edge;
mod extension;
pub(crate) mod node;
mod write;

pub use ads_bootstrap::{
    AdsBootstrap, AdsProtocol, Binding, MODULE_PATH_PREFIX, MODULE_WARMUP_LISTENER,
    NODE_METADATA_KEY, XDS_CLUSTER, ads_bootstrap, module_warmup_listener,
};

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use edge::{EdgeOptions, EscapedSlashes};
pub use write::{WriteReport, write_files};

use crate::resolution::GatewayResult;

/// The filter's name in the HTTP connection manager and in the extension-config file.
pub const FILTER_NAME: &str = "gateway-wasm";
/// The module's root context id, as the OCI artifacts (`packager`), Istio's `WasmPlugin` and the
/// Kong filter name spell it. The filter accepts any root id; one spelling keeps configs greppable.
pub const ROOT_ID: &str = "gateway_wasm";
/// The request header the filter sets and the catch-all route's `cluster_header` reads.
pub const UPSTREAM_HEADER: &str = "x-gateway-wasm-upstream";
/// Filter chains are named `gateway-wasm:<gateway port>:<listener>`; the filter reads the Gateway
/// port back from the `xds.filter_chain_name` property, whatever port Envoy binds.
pub const FILTER_CHAIN_PREFIX: &str = "gateway-wasm:";

/// The bootstrap, relative to the output directory.
pub const BOOTSTRAP_FILE: &str = "bootstrap.yaml";
/// The extension-config (ECDS) file, in its own watched directory.
pub const EXTENSION_CONFIG_FILE: &str = "ecds/extension-config.json";
/// The clusters (CDS) file, in its own watched directory.
pub const CLUSTERS_FILE: &str = "cds/clusters.yaml";

/// What Envoy does when the wasm VM fails (it never forwards a request the filter did not route).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// Requests fail (503) while the VM is broken; a new config push creates a new VM.
    #[default]
    FailClosed,
    /// Like `FailClosed`, and Envoy reloads a failed VM on the next request (with backoff).
    FailReload,
}

impl FailurePolicy {
    pub fn as_envoy(self) -> &'static str {
        match self {
            FailurePolicy::FailClosed => "FAIL_CLOSED",
            FailurePolicy::FailReload => "FAIL_RELOAD",
        }
    }
}

/// Which build of the filter Envoy runs. Both take the same PluginConfig bytes from the same
/// extension-config (ECDS) resource; only the resource's type differs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EnvoyFilter {
    /// The proxy-wasm filter ([`EnvoyOptions::wasm_path`]) in Envoy's V8: sandboxed, any Envoy.
    #[default]
    Wasm,
    /// The Envoy dynamic module (`libgateway_wasm_dynamic.so`, as Envoy will see it): native code,
    /// Envoy 1.40-1.41 only. The filter chain's name reaches it as route metadata.
    DynamicModule(PathBuf),
}

/// The route-metadata namespace and key that carry a filter chain's name to the dynamic module
/// (its ABI has no `xds.filter_chain_name` property).
pub const ROUTE_METADATA_NAMESPACE: &str = "gateway-wasm";
pub const ROUTE_METADATA_FILTER_CHAIN: &str = "filter_chain_name";

/// How the PluginConfig travels inside the extension-config file.
///
/// Envoy reads that file at a few MB per second (the 10,000-route document of ~6 MB takes it about
/// half a second as JSON, over a second as YAML, before the filter runs), so large documents go
/// gzip-compressed, as a `google.protobuf.BytesValue` (base64 in the file); the filter inflates
/// them. Small ones stay plain JSON, readable in the file and in Envoy's config dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConfigCompression {
    /// gzip when the JSON is larger than [`COMPRESS_ABOVE_BYTES`].
    #[default]
    Auto,
    /// Always gzip.
    Always,
    /// Never gzip.
    Never,
}

/// [`ConfigCompression::Auto`]'s threshold: about 100 routes. Below it Envoy's parsing costs
/// milliseconds either way.
pub const COMPRESS_ABOVE_BYTES: usize = 64 * 1024;

/// How to render the Envoy files.
#[derive(Debug, Clone)]
pub struct EnvoyOptions {
    /// The directory the files live in, as Envoy will see it (paths in the bootstrap point there).
    pub config_dir: PathBuf,
    /// The filter (`gateway_wasm.wasm`), as Envoy will see it.
    pub wasm_path: PathBuf,
    /// Listeners bind to `gateway port + port_offset` (tests cannot all use 80/443).
    pub port_offset: u16,
    /// Explicit bind ports per Gateway port; wins over `port_offset`.
    pub port_map: BTreeMap<u16, u16>,
    /// Address the listeners bind to.
    pub bind_address: String,
    /// Admin endpoint; always on loopback.
    pub admin_port: u16,
    pub failure_policy: FailurePolicy,
    pub config_compression: ConfigCompression,
    /// Path normalization, timeouts, HTTP/2 and buffer limits, the overload manager.
    pub edge: EdgeOptions,
    /// The Wasm filter or the dynamic module.
    pub filter: EnvoyFilter,
    /// Files for one Envoy, or the xDS server's stream for a fleet.
    pub delivery: Delivery,
}

/// Where Envoy takes what changes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Delivery {
    /// Files under [`EnvoyOptions::config_dir`] that Envoy watches; the module from
    /// [`EnvoyOptions::wasm_path`].
    #[default]
    Files,
    /// The controller-shim's aggregated discovery stream: listeners (LDS), clusters (CDS) and their
    /// endpoints (EDS), certificates (SDS) and the filter (ECDS); the module over HTTP, pinned by
    /// its sha256.
    Ads(RemoteModule),
}

/// Where an xDS-mode Envoy downloads the module (`vm_config.code.remote`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteModule {
    /// The URL Envoy asks for (its host and path; the connection goes to `cluster`).
    pub uri: String,
    /// The bootstrap cluster that reaches the controller-shim.
    pub cluster: String,
    /// Lower-case hex sha256 of the module: Envoy refuses other bytes, and caches by it.
    pub sha256: String,
}

impl EnvoyOptions {
    /// Defaults: bind `0.0.0.0` at the Gateway ports, admin on `127.0.0.1:19000`, fail closed, the
    /// edge-safe settings of [`EdgeOptions::default`].
    pub fn new(config_dir: impl Into<PathBuf>, wasm_path: impl Into<PathBuf>) -> EnvoyOptions {
        EnvoyOptions {
            config_dir: config_dir.into(),
            wasm_path: wasm_path.into(),
            port_offset: 0,
            port_map: BTreeMap::new(),
            bind_address: "0.0.0.0".to_owned(),
            admin_port: 19000,
            failure_policy: FailurePolicy::default(),
            config_compression: ConfigCompression::default(),
            edge: EdgeOptions::default(),
            filter: EnvoyFilter::Wasm,
            delivery: Delivery::default(),
        }
    }

    /// The port Envoy binds for a Gateway port.
    pub fn bind_port(&self, gateway_port: u16) -> Result<u16, RenderError> {
        if let Some(port) = self.port_map.get(&gateway_port) {
            return Ok(*port);
        }
        gateway_port
            .checked_add(self.port_offset)
            .ok_or(RenderError::PortOverflow {
                port: gateway_port,
                offset: self.port_offset,
            })
    }
}

/// The rendered files, relative to the output directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvoyFiles {
    /// `(relative path, content, private)`, in the order they must be written: certificates and
    /// clusters before the extension config (a route never names a cluster Envoy lacks), the
    /// bootstrap last.
    pub files: Vec<RenderedFile>,
    /// Things the operator should know (skipped listeners, backends without clusters).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    pub path: PathBuf,
    pub content: String,
    /// Written with mode 0600 (private keys).
    pub private: bool,
}

impl EnvoyFiles {
    /// The content of one rendered file.
    pub fn get(&self, relative: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|f| f.path == std::path::Path::new(relative))
            .map(|f| f.content.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("Gateway port {port} plus port offset {offset} is above 65535")]
    PortOverflow { port: u16, offset: u16 },
    #[error("serializing {what}: {message}")]
    Serialize { what: &'static str, message: String },
    #[error(transparent)]
    Write(#[from] atomic_file::Error),
}

/// A certificate and its key for SDS (xDS mode), named as the listeners' filter chains ask for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdsSecret {
    pub name: String,
    pub certificate_chain_pem: String,
    pub private_key_pem: String,
}

/// What rendering listeners produced besides the listeners: the certificate files (file mode) or
/// SDS secrets (xDS mode), and warnings.
#[derive(Debug, Default)]
pub(crate) struct ListenerExtras {
    pub files: Vec<RenderedFile>,
    pub secrets: Vec<SdsSecret>,
    pub warnings: Vec<String>,
}

/// One Gateway's resources for the xDS server (rendered with [`Delivery::Ads`]): the parts every
/// Envoy of the Gateway shares. Listeners depend on how each Envoy binds ([`listeners`]).
#[derive(Debug, Clone)]
pub struct SharedResources {
    /// CDS: `envoy.config.cluster.v3.Cluster` documents (with `@type`).
    pub clusters: Vec<node::Node>,
    /// EDS: `envoy.config.endpoint.v3.ClusterLoadAssignment` documents, one per EDS cluster.
    pub load_assignments: Vec<node::Node>,
    /// ECDS: the `envoy.config.core.v3.TypedExtensionConfig` of the filter.
    pub extension_config: node::Node,
    pub warnings: Vec<String>,
}

/// The shared resources of one Gateway (see [`SharedResources`]).
pub fn shared_resources(
    result: &GatewayResult,
    options: &EnvoyOptions,
) -> Result<SharedResources, RenderError> {
    let mut warnings = Vec::new();
    let (config, cluster_nodes) = clusters::clusters(result, &mut warnings);
    let (clusters, load_assignments) = clusters::for_delivery(cluster_nodes, &options.delivery);
    Ok(SharedResources {
        clusters,
        load_assignments,
        extension_config: extension::extension_config(&config, options)?,
        warnings,
    })
}

/// The listeners one Envoy of the Gateway runs (LDS in xDS mode; the bootstrap's in file mode), with
/// the SDS secrets they name and warnings. The very function the file bootstrap uses: an xDS
/// listener and a file listener for the same Gateway and options differ only in where their filter
/// config and certificates come from.
pub fn listeners(
    result: &GatewayResult,
    options: &EnvoyOptions,
) -> Result<RenderedListeners, RenderError> {
    let mut extras = ListenerExtras::default();
    let listeners = bootstrap::listeners(result, options, &mut extras)?;
    Ok(RenderedListeners {
        listeners,
        secrets: extras.secrets,
        warnings: extras.warnings,
    })
}

/// What [`listeners`] renders.
#[derive(Debug)]
pub struct RenderedListeners {
    pub listeners: Vec<node::Node>,
    /// The certificates the listeners name (SDS).
    pub secrets: Vec<SdsSecret>,
    pub warnings: Vec<String>,
}

/// Renders every file for one Gateway.
pub fn render(result: &GatewayResult, options: &EnvoyOptions) -> Result<EnvoyFiles, RenderError> {
    let mut out = EnvoyFiles::default();
    let (config, cluster_nodes) = clusters::clusters(result, &mut out.warnings);
    let mut extras = ListenerExtras::default();
    let listeners = bootstrap::listeners(result, options, &mut extras)?;
    out.files.append(&mut extras.files);
    out.warnings.append(&mut extras.warnings);
    out.files.push(RenderedFile {
        path: CLUSTERS_FILE.into(),
        content: to_yaml("clusters", &clusters::discovery_file(cluster_nodes))?,
        private: false,
    });
    out.files.push(RenderedFile {
        path: EXTENSION_CONFIG_FILE.into(),
        content: to_json(
            "extension config",
            &extension::discovery_file(&config, options)?,
        )?,
        private: false,
    });
    out.files.push(RenderedFile {
        path: BOOTSTRAP_FILE.into(),
        content: to_yaml(
            "bootstrap",
            &bootstrap::bootstrap(result, options, listeners),
        )?,
        private: false,
    });
    Ok(out)
}

fn to_json(what: &'static str, node: &node::Node) -> Result<String, RenderError> {
    serde_json::to_string_pretty(node)
        .map(|mut text| {
            text.push('\n');
            text
        })
        .map_err(|e| RenderError::Serialize {
            what,
            message: e.to_string(),
        })
}

pub(crate) fn to_yaml(what: &'static str, node: &node::Node) -> Result<String, RenderError> {
    serde_norway::to_string(node).map_err(|e| RenderError::Serialize {
        what,
        message: e.to_string(),
    })
}
