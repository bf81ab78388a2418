//! gateway-resolver: from Gateway API objects to what the data plane needs, with no I/O.
//!
//! - [`api`]: the Kubernetes and Gateway API types, chosen in one place;
//! - [`kinds`]: the table of every kind the shim reads, from which [`Snapshot`] (the input, a
//!   consistent set of objects), the manifest loader, and the controller-shim's watchers, index,
//!   status writer and RBAC are derived;
//! - [`manifests`]: YAML/JSON manifests (text, or a directory) into a [`Snapshot`], and a
//!   snapshot back into manifests text;
//! - [`resolution`]: the output types — one PluginConfig per Gateway, the backends and TLS material
//!   the proxy needs, and the status every object should get;
//! - [`request_text`]: a request written as text (`'GET http://host/path'`, `name: value` headers),
//!   as `explain` and the playground take it;
//! - [`resolve()`]: the pure function between the two (attachment, hostnames, ReferenceGrants,
//!   backend resolution, conditions);
//! - [`explain`]: where a request would go and why, as `controller-shim explain --json` and the
//!   playground page both print it.
//!
//! The controller-shim runs this crate against the Kubernetes API or a directory; the playground
//! runs it in a browser, so it stays free of tokio, the Kubernetes client, TLS, randomness and the
//! system clock (the time conditions are stamped with is [`Settings::now`]). `cargo xtask test`
//! builds it for `wasm32-unknown-unknown`.

pub mod api;
pub mod explain;
pub mod kinds;
pub mod manifests;
pub mod request_text;
pub mod resolution;
pub mod resolve;

pub use kinds::{Kind, Object, Snapshot};
pub use resolution::{Resolution, Settings};
pub use resolve::resolve;
