//! Delivery targets: where a Gateway's resolved config goes.
//!
//! - [`envoy::EnvoyTarget`]: the Envoy files (bootstrap, ECDS, CDS, certificates) under
//!   `<dir>/<namespace>/<gateway>/`, written atomically and only when their content changed;
//! - [`kong::KongTarget`]: Kong 3.4–3.9's Admin API (a catch-all service and route carrying a
//!   filter chain with the `gateway_wasm` filter).
//!
//! Both are idempotent: delivering the same Gateway twice changes nothing the second time (Envoy
//! compares file contents, Kong compares the filter chain it reads back), which is what makes the
//! runtime's periodic re-delivery a cheap drift and restart repair.

pub mod envoy;
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
    Envoy(envoy::EnvoyTarget),
    Kong(Box<kong::KongTarget>),
}

impl Target {
    /// The `target` label in metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Target::Envoy(_) => "envoy",
            Target::Kong(_) => "kong",
        }
    }

    pub async fn deliver(&mut self, gateway: &GatewayResult) -> Result<Delivered, DeliverError> {
        match self {
            Target::Envoy(t) => t.deliver(gateway).await,
            Target::Kong(t) => t.deliver(gateway).await,
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
            DeliverError::Config(_) => "config",
            DeliverError::Task(_) => "task",
        }
    }
}
