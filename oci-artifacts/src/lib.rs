//! The gateway-wasm filter as OCI artifacts, for both sides of a registry: the packager builds and
//! pushes them, the controller-shim pulls the module to serve it to its Envoys.
//!
//! - [`formats`]: the three artifact layouts (Istio/solo `compat` and `oci`, CNCF Wasm), built
//!   deterministically, and finding and verifying the module in a manifest of any of them;
//! - [`registry`]: the OCI distribution API through oci-client (login, manifests and blobs by
//!   digest, the module pulled and verified);
//! - [`auth`]: credentials from the command line, a password file or Docker's config file;
//! - [`digest`]: sha256 digests as OCI writes them.

pub mod auth;
pub mod digest;
pub mod formats;
pub mod registry;
