//! Gateway API HTTPRoute and GRPCRoute semantics for a data plane, with no proxy and no Kubernetes dependency.
//!
//! Consumes a PluginConfig document (JSON, produced by the controller-shim; see [`config`]) and
//! produces, for each request, a [`Decision`]: forward to an upstream with header edits and rewrites,
//! redirect, or answer locally. Builds for the host and for `wasm32-wasip1`.
//!
//! ```
//! use engine::{Action, Request, RouteTable, SplitMix64};
//!
//! let table = RouteTable::from_json(br#"{
//!   "schemaVersion": 1,
//!   "gateway": {"namespace": "infra", "name": "gw"},
//!   "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
//!   "routes": [{"namespace": "app", "name": "web",
//!               "parents": [{"listener": "http", "hostnames": ["example.com"]}],
//!               "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
//!                          "backendRefs": [{"backend": "app/api:8080"}]}]}],
//!   "backends": {"app/api:8080": {"upstream": "app_api_8080"}}
//! }"#).unwrap();
//!
//! let request = Request { port: 80, sni: None, method: "GET", authority: "example.com",
//!                         path: "/api/users?page=2", headers: &[("accept", "*/*")] };
//! let decision = table.evaluate(&request, &mut SplitMix64(1));
//! let Action::Forward(forward) = decision.action else { panic!("expected a forward") };
//! assert_eq!(forward.upstream, "app_api_8080");
//! ```
//!
//! Precedence follows the spec; the full order is documented on [`RouteTable`] (and in
//! `docs/plugin-config.md`) and is a type of its own, [`Precedence`]. Errors in a config name the JSON path and the value ([`ConfigError`]).

mod compile;
pub mod config;
mod cors;
pub mod decision;
mod error;
mod eval;
mod filters;
mod grpc;
mod hash;
pub mod hostname;
mod index;
mod json_path;
mod matchers;
mod precedence;
pub mod request;
#[cfg(feature = "schema")]
pub mod schema;
mod segment_map;
mod sort;
mod table;
pub mod time;
pub mod trace;
mod validate;

pub use config::PluginConfig;
pub use decision::{
    Action, Decision, Forward, GrpcCode, HeaderEdit, LocalReason, LocalResponse, Mirror, Redirect,
    RouteIdentity, RouteKind,
};
pub use error::ConfigError;
pub use hostname::{HostnameError, check_hostname, check_precise_hostname, is_valid_hostname};
pub use matchers::{REGEX_NEST_LIMIT, REGEX_SIZE_LIMIT};
pub use precedence::{
    GrpcMatchRank, HostnameMatch, HttpMatch, NameMatchRank, PathMatchRank, Precedence,
};
pub use request::{RandomSource, Request, SplitMix64};
pub use table::RouteTable;
pub use trace::{NoTrace, Trace, Tracer};
pub use validate::validate;

/// Parses a PluginConfig document. Errors name the JSON path
/// (`routes[1].rules[0].backendRefs[0].weight: invalid type: string "heavy", expected u32 at line 1 column 312`).
///
/// UTF-8 is checked once for the whole document, then the reader of `config/read.rs` works on the
/// text (no serde deserializers: they were a third of the Wasm module).
pub fn parse(json: &[u8]) -> Result<PluginConfig, ConfigError> {
    let text = std::str::from_utf8(json).map_err(|e| {
        let offset = e.valid_up_to();
        let (line, column) = json_path::line_column(json, offset);
        let byte = json.get(offset).copied().unwrap_or_default();
        ConfigError::new(
            json_path::path_at_offset(json, offset),
            format!("invalid UTF-8 (byte 0x{byte:02x}) at line {line} column {column}"),
        )
    })?;
    config::read_document(text).map_err(|error| {
        let (line, column) = json_path::line_column(json, error.offset);
        ConfigError::new(
            json_path::path_at_offset(json, error.offset),
            format!("{} at line {line} column {column}", error.message),
        )
    })
}
