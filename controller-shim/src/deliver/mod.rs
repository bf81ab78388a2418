//! Delivery targets: where a Gateway's resolved config goes.
//!
//! - [`envoy_files::EnvoyFilesTarget`]: the Envoy files (bootstrap, ECDS, CDS, certificates) under
//!   `<dir>/<namespace>/<gateway>/`, written atomically and only when their content changed;
//! - [`crate::xds::XdsTarget`]: the xDS server's catalog, streamed to every Envoy of the Gateway;
//! - [`kong::KongTarget`]: Kong 3.4–3.9's Admin API (a catch-all service and route carrying a
//!   filter chain with the `gateway_wasm` filter), upserted by name when Kong has a database,
//!   posted as the whole declarative configuration when it is DB-less.
//!
//! All are idempotent: delivering the same Gateway twice changes nothing the second time (Envoy
//! compares file contents, Kong with a database compares the filter chain it reads back, DB-less
//! Kong compares the configuration hash it reports), which is what makes the runtime's periodic
//! re-delivery a cheap drift and restart repair.

pub mod envoy_files;
pub mod kong;

use crate::resolution::GatewayResult;

/// What a delivery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Something was written or sent (false: the target already had this config).
    pub changed: bool,
    /// Things the operator should know (skipped listeners, a bootstrap change needing a restart).
    pub warnings: Vec<String>,
}

/// A configured target.
#[derive(Debug)]
pub enum Target {
    Envoy(Box<envoy_files::EnvoyFilesTarget>),
    Kong(Box<kong::KongTarget>),
    /// The xDS server's catalog (every Envoy connected for the Gateway).
    Xds(crate::xds::XdsTarget),
}

impl Target {
    /// The `target` label in metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Target::Envoy(_) => "envoy",
            Target::Kong(_) => "kong",
            Target::Xds(_) => "xds",
        }
    }

    pub async fn deliver(&mut self, gateway: &GatewayResult) -> Result<Delivered, DeliverError> {
        match self {
            Target::Envoy(t) => t.deliver(gateway).await,
            Target::Kong(t) => t.deliver(gateway).await,
            Target::Xds(t) => t.deliver(gateway).await,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("rendering Envoy files: {0}")]
    Render(#[from] crate::envoy::RenderError),
    #[error("Kong Admin API {method} {path}: {message}")]
    KongHttp {
        method: &'static str,
        path: String,
        message: String,
    },
    #[error("Kong Admin API {method} {path} answered {status}: {body}")]
    KongStatus {
        method: &'static str,
        path: String,
        status: u16,
        body: String,
    },
    /// Kong validated the configuration and refused it (DB-less `POST /config` answered 400); one
    /// problem per entity and field, e.g. `filter_chain gateway-wasm.infra.gw: filters.1.config: …`.
    #[error("Kong refused the configuration ({method} {path} answered 400): {}", .problems.join("; "))]
    KongInvalid {
        method: &'static str,
        path: String,
        problems: Vec<String>,
    },
    /// A DB-less Kong holds entities the shim did not write; posting would erase them.
    #[error(
        "DB-less Kong holds configuration the shim did not write ({}); POST /config would erase it, so nothing was sent: give this Gateway a Kong of its own, or empty this one",
        summary(.entities)
    )]
    KongForeign { entities: Vec<String> },
    #[error("{0}")]
    Config(String),
    #[error("the delivery task stopped: {0}")]
    Task(String),
}

impl DeliverError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            DeliverError::Render(_) => "render",
            DeliverError::KongHttp { .. } => "http",
            DeliverError::KongStatus { .. } => "status",
            DeliverError::KongInvalid { .. } => "invalid",
            DeliverError::KongForeign { .. } => "foreign",
            DeliverError::Config(_) => "config",
            DeliverError::Task(_) => "task",
        }
    }
}

/// At most five items, then how many more.
fn summary(items: &[String]) -> String {
    let shown: Vec<&str> = items.iter().take(5).map(String::as_str).collect();
    match items.len().saturating_sub(shown.len()) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}
