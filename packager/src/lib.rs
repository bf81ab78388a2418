//! gateway-wasm packager: builds, checks, optimizes and packages the proxy-wasm filter as OCI
//! artifacts (Istio/solo compat and oci variants, CNCF Wasm artifact), the Envoy dynamic module as
//! an OCI artifact of its own type and a tarball, builds the controller-shim
//! container image with its SBOM, pushes and pulls them, writes the Kong bundle and prints
//! deployment snippets. See `packager/README.md`.

pub mod abi;
pub mod builder;
pub mod check;
pub mod cli;
pub mod dynamic;
pub mod entry_points;
pub mod image;
pub mod kong;
pub mod layout;
pub mod push;
pub mod schema;
pub mod snippets;
pub mod util;

// The artifact formats, registry client and credentials are shared with the controller-shim
// (which pulls the module it serves to its Envoys); they live in the `oci-artifacts` crate.
pub use oci_artifacts::{auth, formats, registry};
