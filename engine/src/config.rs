//! The PluginConfig document: what the controller-shim pushes and the filter reads.
//!
//! The shapes follow Gateway API (`HTTPRoute` rules, matches and filters keep their field names) so a
//! user who knows the API can read a pushed config, with three differences that make the document
//! self-contained for the data plane:
//! - routes carry their *effective* hostnames per listener (route ∩ listener, computed by the shim);
//! - backendRefs name an entry of `backends`, where the shim has already resolved the Service port
//!   to an upstream (an Envoy cluster or a `host:port` target) or recorded why it is invalid;
//! - a filter the shim could not resolve becomes `{"type": "Unresolved"}`, which answers 500 as the
//!   spec requires ("the filter MUST NOT be skipped").
//!
//! Field-by-field documentation: `docs/plugin-config.md`; JSON Schema: `docs/plugin-config.schema.json`.
//! Writing goes through serde (`Serialize`, whose attributes the JSON Schema also follows); reading
//! goes through `config/read.rs`, which keeps the filter's Wasm module free of serde's per-type
//! deserializers.

use std::collections::BTreeMap;

use serde::Serialize;

mod json;
mod read;
mod tagged;

pub(crate) use json::ReadError;

/// The only `schemaVersion` this engine understands. A different version is rejected, so a newer shim
/// talking to an older filter keeps the previous config instead of half-understanding a new one.
pub const SCHEMA_VERSION: u32 = 1;

/// Reads a PluginConfig document, already known to be UTF-8 (`crate::parse` checks it and turns a
/// [`ReadError`]'s offset into the JSON path, line and column).
pub(crate) fn read_document(text: &str) -> Result<PluginConfig, ReadError> {
    let mut reader = json::Reader::new(text);
    let config = read::plugin_config(&mut reader)?;
    reader.end()?;
    Ok(config)
}

/// Reads a document holding one value with `value` (a reader of one config type or of a JSON
/// value), for unit tests; the error is the message alone.
#[cfg(test)]
pub(crate) fn read_value<'a, T>(
    text: &'a str,
    value: impl FnOnce(&mut json::Reader<'a>) -> json::Read<T>,
) -> Result<T, String> {
    let mut reader = json::Reader::new(text);
    value(&mut reader)
        .and_then(|value| reader.end().map(|()| value))
        .map_err(|error| error.message)
}

/// The whole routing state of one Gateway.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginConfig {
    /// Must be 1.
    pub schema_version: u32,
    /// Opaque revision chosen by the producer (the shim uses a content hash); logged by the filter
    /// when it accepts the config.
    #[serde(default)]
    pub revision: String,
    /// The Gateway this config belongs to.
    pub gateway: ObjectRef,
    /// The Gateway's listeners (including those merged from ListenerSets).
    pub listeners: Vec<Listener>,
    /// Routes attached to at least one listener.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// GRPCRoutes attached to at least one listener. Only gRPC requests (POST with a
    /// `content-type` of `application/grpc`, `application/grpc+…` or `application/grpc;…`) can
    /// match them, and for those they are tried before `routes`. Left out of the document when
    /// empty, so configs without GRPCRoutes read exactly as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grpc_routes: Vec<GrpcRoute>,
    /// Resolved backends, keyed by the id that backendRefs and mirror filters use.
    #[serde(default)]
    pub backends: BTreeMap<String, Backend>,
    /// How the filter hands the chosen upstream to its host.
    #[serde(default)]
    pub upstream_selector: UpstreamSelector,
    /// Kong only (`upstreamSelector: kongRoute`): how the filter reaches Kong's own proxy
    /// listener and which Kong port serves which Gateway port. The engine does not read it; the
    /// filter's Kong adapter does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kong: Option<KongDataPlane>,
}

/// The host mechanism that forwards to the upstream the filter chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum UpstreamSelector {
    /// Envoy: the filter sets a request header that a catch-all route's `cluster_header` reads;
    /// `backends[].upstream` are cluster names.
    #[default]
    EnvoyClusterHeader,
    /// Kong 3.4–3.9 (WasmX): `backends[].upstream` are path prefixes, each matched by a Kong
    /// route of the shim's whose service is that backend. The filter sets Kong's `$upstream_uri`
    /// (property `ngx.upstream_uri`) to the prefix plus the request target, Kong proxies the
    /// request to its own proxy listener (`kong.proxy`), and there Kong's router picks the
    /// backend's service by that prefix, before Kong's balancer runs (`docs/kong.md`).
    KongRoute,
}

/// What the filter needs to know about the Kong it runs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KongDataPlane {
    /// `host:port` of Kong's own proxy listener as seen from Kong (`127.0.0.1:8000`): where the
    /// entry service forwards and where request mirrors are dispatched.
    pub proxy: String,
    /// Kong listen port → Gateway listener port, for Gateways with more than one port (the
    /// filter reads the port a request arrived on from `ngx.server_port`). Empty when the
    /// Gateway has one port.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<u16, u16>,
}

/// `namespace/name` of a Kubernetes object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ObjectRef {
    pub namespace: String,
    pub name: String,
}

/// Listener protocol. Only HTTP-family listeners reach the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Protocol {
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "HTTPS")]
    Https,
}

impl Protocol {
    /// The URL scheme requests on this listener use.
    pub fn scheme(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Https => "https",
        }
    }
}

/// One Gateway listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Listener {
    /// Unique within the config (ListenerSet listeners are prefixed by the shim).
    pub name: String,
    /// The Gateway port (used for listener selection and redirect ports).
    pub port: u16,
    pub protocol: Protocol,
    /// Exact (`a.example.com`) or wildcard (`*.example.com`) hostname; absent matches every host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// An HTTPRoute as the data plane needs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route {
    pub namespace: String,
    pub name: String,
    /// RFC 3339 creation time; older routes win precedence ties. Absent sorts as equal to every
    /// other absent timestamp and after every present one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// The listeners this route is attached to, each with the route's effective hostnames there.
    pub parents: Vec<Attachment>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

/// A GRPCRoute as the data plane needs it: the same identity and attachments as [`Route`], with
/// gRPC rules. The shim leaves out a GRPCRoute that lost the HTTPRoute/GRPCRoute hostname conflict
/// on a listener (Gateway API `GRPCRouteSpec.hostnames`), so attachments here are never contested.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcRoute {
    pub namespace: String,
    pub name: String,
    /// RFC 3339 creation time; older routes win precedence ties, as for [`Route`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// The listeners this route is attached to, each with the route's effective hostnames there.
    pub parents: Vec<Attachment>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<GrpcRule>,
}

/// One GRPCRoute rule.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcRule {
    /// The rule's `name`, reported in decisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// ORed; empty matches every gRPC request ("If no matches are specified, the implementation
    /// MUST match every gRPC request").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<GrpcMatch>,
    /// Only `RequestHeaderModifier`, `ResponseHeaderModifier`, `RequestMirror` and `Unresolved`
    /// (the GRPCRoute filter types; an ExtensionRef the shim cannot resolve is `Unresolved`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Filter>,
    /// Empty answers `grpc-status: 14` (UNAVAILABLE): there is nothing to forward to. Backend
    /// filters have the same restriction as rule filters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<BackendRef>,
}

/// GRPCRouteMatch: every present condition must hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcMatch {
    /// Absent matches every service and method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<GrpcMethodMatch>,
    /// ANDed; names case-insensitive, values case-sensitive (as [`HeaderMatch`] in `routes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatch>,
}

/// GRPCMethodMatch on the request's `:path` `/<service>/<method>`: at least one of `service` and
/// `method` is present; an absent one matches anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct GrpcMethodMatch {
    /// `Exact` (case-sensitive equality) or `RegularExpression` (each present value is a regular
    /// expression that must match the whole service or method).
    #[serde(rename = "type", default)]
    pub kind: ValueMatchType,
    /// Fully-qualified service (`pkg.Service`): the part of `:path` between the leading `/` and
    /// the last `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Method: the part of `:path` after the last `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// A route's attachment to one listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Attachment {
    /// A `listeners[].name`.
    pub listener: String,
    /// Effective hostnames (route hostnames intersected with the listener hostname). Empty means
    /// every host the listener accepts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
}

/// One HTTPRoute rule.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// The rule's `name` (Gateway API `sectionName` for rules), reported in decisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// ORed; empty means one match of `PathPrefix /`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<Match>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Filter>,
    /// Empty (with no redirect filter) answers 500: there is nothing to forward to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<BackendRef>,
    // Boxed, as is `retry`: few rules set them, and inline they were 56 of a rule's 104 bytes on
    // wasm32 (1.1 MB of a 10,000-route config that every VM parses into fresh memory,
    // `docs/benchmarks.md`, *The lean Wasm path*). A plain comment: doc comments become the JSON
    // Schema's descriptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Box<Timeouts>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Box<Retry>>,
}

/// HTTPRouteMatch: every present condition must hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Match {
    /// Absent means `PathPrefix /`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<QueryParamMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum PathMatchType {
    Exact,
    #[default]
    PathPrefix,
    RegularExpression,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PathMatch {
    #[serde(rename = "type", default)]
    pub kind: PathMatchType,
    #[serde(default = "root_path")]
    pub value: String,
}

fn root_path() -> String {
    "/".to_owned()
}

impl Default for PathMatch {
    fn default() -> Self {
        PathMatch {
            kind: PathMatchType::PathPrefix,
            value: root_path(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum ValueMatchType {
    #[default]
    Exact,
    RegularExpression,
}

/// Header match: the name is case-insensitive, the value case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    #[serde(rename = "type", default)]
    pub kind: ValueMatchType,
    pub name: String,
    pub value: String,
}

/// Query parameter match: name and value are case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct QueryParamMatch {
    #[serde(rename = "type", default)]
    pub kind: ValueMatchType,
    pub name: String,
    pub value: String,
}

/// HTTPRouteFilter, tagged by `type` as in Gateway API.
// Read in one pass by `config/tagged.rs`; the attributes here serve serializing and the JSON
// Schema.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Filter {
    #[serde(rename_all = "camelCase")]
    RequestHeaderModifier {
        request_header_modifier: HeaderModifier,
    },
    #[serde(rename_all = "camelCase")]
    ResponseHeaderModifier {
        response_header_modifier: HeaderModifier,
    },
    #[serde(rename_all = "camelCase")]
    RequestRedirect { request_redirect: RequestRedirect },
    #[serde(rename = "URLRewrite", rename_all = "camelCase")]
    UrlRewrite { url_rewrite: UrlRewrite },
    #[serde(rename_all = "camelCase")]
    RequestMirror { request_mirror: RequestMirror },
    #[serde(rename = "CORS")]
    Cors { cors: Cors },
    /// A filter the shim could not resolve (an unknown ExtensionRef, say): requests that reach it
    /// get a 500, as the spec requires.
    Unresolved {
        #[serde(default)]
        reason: String,
    },
}

/// HTTPHeaderFilter. Applied in the order set, add, remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HeaderModifier {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<HeaderValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<HeaderValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HeaderValue {
    pub name: String,
    pub value: String,
}

/// HTTPRequestRedirectFilter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestRedirect {
    /// `http` or `https`; absent keeps the request's scheme.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Absent keeps the request's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
    /// Absent: the scheme's well-known port when `scheme` is set, else the listener port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// 301, 302 (default), 303, 307 or 308.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
}

/// HTTPURLRewriteFilter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UrlRewrite {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
}

/// HTTPPathModifier.
// Read in one pass by `config/tagged.rs`, like `Filter`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", deny_unknown_fields)]
pub enum PathModifier {
    #[serde(rename_all = "camelCase")]
    ReplaceFullPath { replace_full_path: String },
    /// Only valid on rules whose matches are all `PathPrefix`.
    #[serde(rename_all = "camelCase")]
    ReplacePrefixMatch { replace_prefix_match: String },
}

/// HTTPRequestMirrorFilter, with the backend already resolved to a `backends` key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestMirror {
    /// A `backends` key.
    pub backend: String,
    /// 0–100; absent (and no fraction) mirrors every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<Fraction>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Fraction {
    pub numerator: u32,
    #[serde(default = "default_denominator")]
    pub denominator: u32,
}

fn default_denominator() -> u32 {
    100
}

/// HTTPCORSFilter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cors {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origins: Vec<String>,
    #[serde(default)]
    pub allow_credentials: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// Seconds; the spec's default is 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u32>,
}

/// HTTPBackendRef with the target resolved to a `backends` key.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendRef {
    /// A `backends` key.
    pub backend: String,
    /// Relative share of the rule's traffic; 0 sends none.
    #[serde(default = "default_weight", skip_serializing_if = "is_default_weight")]
    #[cfg_attr(feature = "schema", schemars(extend("default" = 1)))]
    pub weight: u32,
    /// Filters applied only when this backend is picked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Filter>,
}

fn default_weight() -> u32 {
    1
}

/// Serde's signature for `skip_serializing_if`: the default weight is left out of the document,
/// as every empty list is, because at 10,000 routes those members were a fifth of its bytes and
/// each costs inflating and parsing in every VM (`docs/benchmarks.md`, *The lean Wasm path*).
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_default_weight(weight: &u32) -> bool {
    *weight == default_weight()
}

/// HTTPRouteTimeouts as GEP-2257 durations (`10s`, `500ms`, `1h30m`); `0s` disables the timeout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Timeouts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_request: Option<String>,
}

/// HTTPRouteRetry: `attempts` counts retries after the first try.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
}

/// Where a backendRef leads: an upstream the host can forward to, or the reason it cannot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backend {
    /// The host's name for the upstream: an Envoy cluster name, or `host:port` for Kong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Set when the reference could not be resolved; requests picking it get a 500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid: Option<InvalidBackend>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct InvalidBackend {
    /// The Gateway API condition reason (`BackendNotFound`, `RefNotPermitted`, `InvalidKind`, …).
    pub reason: String,
    #[serde(default)]
    pub message: String,
}
