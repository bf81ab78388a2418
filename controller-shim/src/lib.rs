//! controller-shim library: from Gateway API objects to what the data plane needs, kept current.
//!
//! The pure part lives in the `gateway-resolver` crate and is re-exported here:
//! - [`api`]: the Kubernetes and Gateway API types, chosen in one place;
//! - [`kinds`]: the table of every kind the shim reads (watchers, index, status writer and RBAC
//!   are derived from it);
//! - [`Snapshot`]: the input, a consistent set of Kubernetes objects (from the API server or a
//!   directory of [`manifests`]);
//! - [`resolution`]: the output types — one PluginConfig per Gateway, the backends and TLS material
//!   the proxy needs, and the status every object should get;
//! - [`resolve()`]: the pure function between the two.
//!
//! This crate adds the I/O around it: [`source`] (Kubernetes watchers, manifest directory poller,
//! the index they feed), [`runtime`] (the loop), [`envoy`] (rendering Envoy's files), [`deliver`]
//! (Envoy files, Kong's Admin API), [`xds`] (the xDS server for a fleet of Envoys), [`status`]
//! (writing status under a Lease, or a report).

pub mod deliver;
pub mod envoy;
pub mod metrics;
pub mod rbac;
pub mod runtime;
pub mod source;
pub mod status;
pub mod xds;

pub use gateway_resolver::{
    Kind, Object, Resolution, Settings, Snapshot, api, explain, kinds, manifests, request_text,
    resolution, resolve,
};
