//! controller-shim library: from Gateway API objects to what the data plane needs.
//!
//! - [`snapshot`]: the input, a consistent set of Kubernetes objects (from the API server or a
//!   directory of manifests);
//! - [`resolution`]: the output types — one PluginConfig per Gateway, the backends and TLS material
//!   the proxy needs, and the status every object should get;
//! - [`resolve`]: the pure function between the two (attachment, hostnames, ReferenceGrants,
//!   backend resolution, conditions).

pub mod deliver;
pub mod envoy;
pub mod manifests;
pub mod metrics;
pub mod request_text;
pub mod resolution;
pub mod resolve;
pub mod runtime;
pub mod snapshot;
pub mod source;
pub mod status;

pub use resolution::{Resolution, Settings};
pub use resolve::resolve;
pub use snapshot::Snapshot;
