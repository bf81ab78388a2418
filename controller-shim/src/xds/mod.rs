//! The xDS server: one controller-shim feeding any number of Envoys over gRPC (the Aggregated
//! Discovery Service, state-of-the-world and delta), and serving them the filter module.
//!
//! Consumes each Gateway's resolved result (through [`XdsTarget`], a delivery target of the
//! runtime) and the module ([`XdsServer::set_module`]); produces, per connected Envoy, the
//! resources of the Gateway its node names: listeners (LDS), clusters (CDS) and endpoints (EDS),
//! certificates (SDS) and the filter with the PluginConfig (ECDS). Rendering is the file mode's own
//! (`crate::envoy`, with [`crate::envoy::Delivery::Ads`]); [`proto`] turns the documents into
//! protobuf.
//!
//! - [`catalog`]: rendered resources with content versions, published to every stream;
//! - [`ads`]: the per-stream task both variants run (requests, pushes, the module gate);
//! - [`sotw`], [`delta`]: the two protocol state machines (versions, nonces, ACK/NACK);
//! - [`nodes`]: what each connected Envoy has ACKed or NACKed (status report, `/debug/xds`,
//!   metrics);
//! - [`server`]: the gRPC service and the module download on one port;
//! - [`module`]: the module from an OCI registry (pulled, verified, cached, refreshed).
//!
//! `docs/xds.md` describes the mode for users.

pub mod ads;
pub mod catalog;
pub mod delta;
pub mod module;
pub mod nodes;
pub mod proto;
pub mod server;
pub mod sotw;
pub mod stream;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

pub use catalog::{Hub, ModuleInfo, Published, ResourceType};
pub use nodes::{Nack, NodeState, Registry};
pub use server::ModuleStore;

use crate::deliver::{DeliverError, Delivered};
use crate::envoy::EnvoyOptions;
use crate::metrics::Metrics;
use crate::resolution::GatewayResult;

/// The server's shared state: the catalog hub, the connected Envoys, the modules.
#[derive(Debug, Clone)]
pub struct XdsServer {
    pub hub: Arc<Hub>,
    pub registry: Registry,
    pub modules: ModuleStore,
}

impl XdsServer {
    /// `options`: how resources are rendered (failure policy, config compression).
    pub fn new(options: EnvoyOptions, metrics: Arc<Metrics>) -> XdsServer {
        XdsServer {
            hub: Arc::new(Hub::new(options)),
            registry: Registry::new(metrics),
            modules: ModuleStore::default(),
        }
    }

    /// Listens on `addr` (gRPC and module downloads). Returns the bound address.
    pub async fn serve(
        &self,
        addr: SocketAddr,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        server::serve(
            addr,
            self.hub.clone(),
            self.registry.clone(),
            self.modules.clone(),
        )
        .await
    }

    /// Makes `bytes` the module every Envoy loads (served by its sha256; every Gateway's extension
    /// config is rendered again to name it).
    pub fn set_module(&self, bytes: Bytes, origin: &str) -> String {
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        self.modules.insert(&sha256, bytes);
        let module = ModuleInfo {
            sha256: sha256.clone(),
            origin: origin.to_owned(),
        };
        if self.hub.module().as_ref() != Some(&module) {
            tracing::info!(sha256 = %module.sha256, origin = %module.origin, "serving the filter module");
        }
        for (gateway, error) in self.hub.set_module(module) {
            tracing::error!(%gateway, %error, "cannot render this Gateway's resources for the new module");
        }
        sha256
    }
}

/// The runtime's delivery target for xDS: hands each Gateway's result to the hub.
#[derive(Debug, Clone)]
pub struct XdsTarget {
    server: XdsServer,
}

impl XdsTarget {
    pub fn new(server: XdsServer) -> XdsTarget {
        XdsTarget { server }
    }

    pub async fn deliver(&mut self, gateway: &GatewayResult) -> Result<Delivered, DeliverError> {
        let hub = self.server.hub.clone();
        let gateway = gateway.clone();
        let published = tokio::task::spawn_blocking(move || hub.set_gateway(&gateway))
            .await
            .map_err(|e| DeliverError::Task(e.to_string()))?
            .map_err(|e| DeliverError::Config(e.to_string()))?;
        match published {
            Published::Rendered { changed, warnings } => Ok(Delivered { changed, warnings }),
            Published::WaitingForModule => Err(DeliverError::Config(
                "the filter module is not available yet; the Gateway is served once it is".into(),
            )),
        }
    }
}
