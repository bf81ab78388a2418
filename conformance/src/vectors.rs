//! Serde model of the conformance vector files (`../shared/conformance/*.json`).
//!
//! The file's own `schema` object is the reference for every field; the doc comments below quote it.
//! Loading is lenient on purpose: other vector files in the same schema add fields, so unknown fields
//! are ignored (or kept in an `extra` map where a checker must notice them), and fields whose shape
//! varies between files (redirect ports written as strings, retry-simulator failure modes that are a
//! status code or a word) keep a raw [`serde_json::Value`] or accept both spellings.
//!
//! The same model reads the GRPCRoute file (`grpcroute-vectors.json`), whose schema adds
//! `routes[].kind`, `request.grpc`, `expect.grpcStatus` / `grpcStatusName` / `httpStatusOneOf`,
//! `services[].grpcEcho`, `needsTLS`, `headersAssertedBySuite` and the top-level
//! `grpcStatusFromHttp` table. [`crate::coverage`] decides which cases the runners can check.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// A whole vector file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VectorFile {
    /// Where the facts come from (suite version, commits).
    pub source: Option<String>,
    pub repository: Option<String>,
    pub license: Option<String>,
    /// `{cases, statusCases, unreleasedCases, tests, statusTests}`.
    pub counts: BTreeMap<String, Value>,
    pub validation: Option<String>,
    /// Field-by-field explanation of the format (kept raw: it is prose).
    pub schema: Value,
    /// GRPC addition: "non-200 :status -> gRPC code a grpc-go client reports (any other non-200
    /// status -> 2 UNKNOWN; 200 without content-type application/grpc -> 2 UNKNOWN)". Keys are
    /// status codes written as strings; see [`crate::grpc_status::http_table`].
    pub grpc_status_from_http: BTreeMap<String, Value>,
    /// Namespace name → labels. Every namespace the suite creates.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// Services shared by every case.
    pub services: Vec<ServiceSpec>,
    pub feature_counts: Value,
    pub test_counts: Value,
    pub status_feature_counts: Value,
    pub unreleased_feature_counts: Value,
    pub unreleased_test_counts: Value,
    pub not_included: Value,
    /// Request cases (`scope`: routing, filter, proxy).
    pub cases: Vec<Case>,
    /// Control-plane expectations for the shim.
    pub status_cases: Vec<StatusCase>,
    /// Same schema as `cases`; tests that exist only on the main branch.
    pub unreleased_cases: Vec<Case>,
}

/// File name of the HTTPRoute vectors.
pub const HTTPROUTE_VECTORS: &str = "httproute-vectors.json";
/// File name of the GRPCRoute vectors.
pub const GRPCROUTE_VECTORS: &str = "grpcroute-vectors.json";

/// The HTTPRoute vector file: `$CONFORMANCE_VECTORS` when set, else the copy vendored in
/// `conformance/vectors/` (a clean clone and CI need no file outside the repository; a test keeps the
/// copy identical to `../shared/conformance/` wherever that directory exists).
pub fn httproute_vectors_path() -> std::path::PathBuf {
    match std::env::var_os("CONFORMANCE_VECTORS") {
        Some(path) => path.into(),
        None => vendored_vectors_path(HTTPROUTE_VECTORS),
    }
}

/// The GRPCRoute vector file vendored in `conformance/vectors/`.
pub fn grpcroute_vectors_path() -> std::path::PathBuf {
    vendored_vectors_path(GRPCROUTE_VECTORS)
}

/// A vector file vendored in `conformance/vectors/`.
pub fn vendored_vectors_path(file_name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("vectors")
        .join(file_name)
}

/// Where the shared (upstream) copy of the HTTPRoute vectors lives relative to the workspace.
pub fn shared_vectors_path() -> std::path::PathBuf {
    shared_copy_path(HTTPROUTE_VECTORS)
}

/// Where the shared (upstream) copy of a vector file lives relative to the workspace.
pub fn shared_copy_path(file_name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/conformance")
        .join(file_name)
}

/// Reads and parses a vector file. Type errors name the JSON path of the offending value.
pub fn load(path: impl AsRef<Path>) -> anyhow::Result<VectorFile> {
    let path = path.as_ref();
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Parses a vector file from bytes.
pub fn parse(json: &[u8]) -> anyhow::Result<VectorFile> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let file: VectorFile = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| anyhow::anyhow!("{}: {}", e.path(), e.inner()))?;
    deserializer.end()?;
    Ok(file)
}

/// What every case (request or status) sets up: a Gateway, routes, grants and extra Services.
/// [`crate::snapshot::snapshot_for`] turns it into the resolver's input.
pub trait Scenario {
    fn id(&self) -> &str;
    fn gateway(&self) -> &GatewaySpec;
    fn routes(&self) -> &[RouteSpec];
    fn reference_grants(&self) -> &[ReferenceGrantSpec];
    fn extra_services(&self) -> &[ServiceSpec];
}

/// One request case: a request, and what the client and the echo backend must observe.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Case {
    /// `"<ConformanceTest ShortName>/<n>"`.
    pub id: String,
    /// Conformance test ShortName.
    pub test: String,
    /// Subtest name the Go suite would print for this request.
    pub name: Option<String>,
    /// Enclosing `t.Run` group, when the test has several.
    pub subtest: Option<String>,
    /// `routing`, `filter` or `proxy`.
    pub scope: String,
    /// Primary SupportedFeature the case exercises (`Core` when only core features are needed).
    pub feature: String,
    /// Every SupportedFeature the conformance test declares.
    pub features: Vec<String>,
    pub since: Option<String>,
    pub since_note: Option<String>,
    pub provisional: bool,
    /// GRPC addition: the request enters through an HTTPS listener (TLS termination with ALPN h2).
    #[serde(rename = "needsTLS", skip_serializing_if = "Option::is_none")]
    pub needs_tls: Option<bool>,
    pub source: Option<SourceRef>,
    pub gateway: GatewaySpec,
    /// The listener the request should enter through (derived by the generator, not asserted by
    /// the suite); `None` when no listener hostname matches.
    pub listener: Option<ListenerRef>,
    pub routes: Vec<RouteSpec>,
    pub reference_grants: Vec<ReferenceGrantSpec>,
    pub extra_services: Vec<ServiceSpec>,
    pub request: RequestSpec,
    pub expect: Expect,
    /// Extra facts needed to reproduce the check.
    pub note: Option<String>,
}

/// Request and status cases set up their scenario from fields of the same names.
macro_rules! scenario_from_fields {
    ($($case:ty),*) => {$(
        impl Scenario for $case {
            fn id(&self) -> &str {
                &self.id
            }
            fn gateway(&self) -> &GatewaySpec {
                &self.gateway
            }
            fn routes(&self) -> &[RouteSpec] {
                &self.routes
            }
            fn reference_grants(&self) -> &[ReferenceGrantSpec] {
                &self.reference_grants
            }
            fn extra_services(&self) -> &[ServiceSpec] {
                &self.extra_services
            }
        }
    )*};
}

scenario_from_fields!(Case, StatusCase);

/// Paths inside kubernetes-sigs/gateway-api of the Go test and its manifest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SourceRef {
    pub go: Option<String>,
    pub manifest: Option<String>,
}

/// The parent Gateway. `gatewayClassName` and TLS `certificateRefs` are omitted by the vectors.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GatewaySpec {
    pub namespace: String,
    pub name: String,
    pub listeners: Vec<ListenerSpec>,
    /// Gateway `spec.allowedListeners`, as in the YAML.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_listeners: Option<Value>,
    /// ListenerSets whose parentRef is this Gateway.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listener_sets: Vec<ListenerSetSpec>,
    /// Fields this model does not know, kept so they reach the Gateway object.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A Gateway (or ListenerSet) listener, as in the YAML.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ListenerSpec {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    pub port: i32,
    pub protocol: String,
    /// `{mode, certificateRefs?, options?}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Value>,
    /// `{namespaces: {from, selector?}, kinds?}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_routes: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A ListenerSet attached to the case's Gateway.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ListenerSetSpec {
    pub namespace: String,
    pub name: String,
    /// `{group?, kind?, name, namespace?}`.
    pub parent_ref: Value,
    pub listeners: Vec<ListenerSpec>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The listener a request enters through (generator-derived).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ListenerRef {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    pub port: i32,
    pub protocol: String,
}

/// A route exactly as in the YAML (not defaulted): `parentRefs`, `hostnames`, `rules` and any
/// other spec field live in `spec`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RouteSpec {
    /// `HTTPRoute` (also when absent, as in the HTTPRoute file) or `GRPCRoute`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub namespace: String,
    pub name: String,
    /// RFC 3339 `metadata.creationTimestamp`, when the case cares about route age.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// `metadata.generation`; 1 when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// `metadata.labels`, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Everything else: the route's `spec`.
    #[serde(flatten)]
    pub spec: Map<String, Value>,
}

/// The route kind a vector means when `routes[].kind` is absent.
pub const DEFAULT_ROUTE_KIND: &str = "HTTPRoute";
/// `routes[].kind` of a GRPCRoute.
pub const GRPC_ROUTE_KIND: &str = "GRPCRoute";

impl RouteSpec {
    /// The route's kind: `routes[].kind`, [`DEFAULT_ROUTE_KIND`] when absent.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or(DEFAULT_ROUTE_KIND)
    }

    /// The spec as the gateway-api crate's type (the experimental channel, a superset of standard).
    /// A route of another kind is refused rather than read as an HTTPRoute (whose type would
    /// ignore the fields it does not know and accept it).
    pub fn http_route_spec(
        &self,
    ) -> Result<controller_shim::api::httproutes::HttpRouteSpec, String> {
        if self.kind() != DEFAULT_ROUTE_KIND {
            return Err(format!(
                "route {}/{} is a {}, not an HTTPRoute",
                self.namespace,
                self.name,
                self.kind()
            ));
        }
        serde_json::from_value(Value::Object(self.spec.clone()))
            .map_err(|e| format!("route {}/{}: {e}", self.namespace, self.name))
    }

    /// The spec as a GRPCRoute (the experimental channel's type); a route of another kind is
    /// refused.
    pub fn grpc_route_spec(
        &self,
    ) -> Result<controller_shim::api::grpcroutes::GrpcRouteSpec, String> {
        if self.kind() != GRPC_ROUTE_KIND {
            return Err(format!(
                "route {}/{} is a {}, not a GRPCRoute",
                self.namespace,
                self.name,
                self.kind()
            ));
        }
        serde_json::from_value(Value::Object(self.spec.clone()))
            .map_err(|e| format!("route {}/{}: {e}", self.namespace, self.name))
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// A ReferenceGrant: `from[]` may reference `to[]` in `namespace`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReferenceGrantSpec {
    pub namespace: String,
    pub name: String,
    pub from: Vec<Value>,
    pub to: Vec<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A Service the suite creates (shared or per test).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceSpec {
    pub namespace: String,
    pub name: String,
    pub ports: Vec<ServicePortSpec>,
    /// Pods behind the Service (echo backends); absent means the manifest does not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// `clusterIP: None`.
    pub headless: bool,
    /// GRPC addition: the Service's pods run the suite's gRPC echo server (`GrpcEcho/Echo` and
    /// `/EchoTwo`) instead of the HTTP one.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub grpc_echo: bool,
    /// The Service selector. Present as `null` for selector-less Services whose EndpointSlices
    /// the manifest creates by hand; absent means the usual `app: <name>` selector.
    #[serde(
        default,
        deserialize_with = "present_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub selector: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ServiceSpec {
    /// True when the YAML writes `selector: null` (or an empty selector): no Pods are selected and
    /// EndpointSlices are managed by hand.
    pub fn selector_less(&self) -> bool {
        match &self.selector {
            None => false,
            Some(Value::Null) => true,
            Some(Value::Object(map)) => map.is_empty(),
            Some(_) => false,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServicePortSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub port: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
    /// `TCP` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The request the suite sends.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RequestSpec {
    /// HTTP method (the suite defaults to GET).
    pub method: String,
    /// `http` or `https`.
    pub scheme: String,
    /// Gateway port the client connects to.
    pub port: u16,
    /// Host header. `None` = the suite sends the Gateway address (an IP literal, with `:port`
    /// unless 80/443); only routes/listeners without hostnames can match it.
    pub host: Option<String>,
    /// TLS server name (https only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Request target: path plus optional `?query`, sent verbatim.
    pub path: String,
    /// Request headers, one value each (the suite also always sends `X-Echo-Set-Header`).
    pub headers: BTreeMap<String, String>,
    /// Absent = HTTP/1.1 (over TLS when https); `h2`, `h2c-prior-knowledge`, `websocket`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// GRPC addition: the RPC (`request.path` split at its last `/`); the message is an empty
    /// `EchoRequest`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcMethodSpec>,
    /// Headers the echo backend will put on its response.
    pub backend_response_headers: BTreeMap<String, String>,
    /// How the echo backend misbehaves for this request (retry simulator).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_behavior: Option<BackendBehavior>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `request.grpc`: the service and method of a gRPC call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GrpcMethodSpec {
    /// Fully-qualified service (`gateway_api_conformance.echo_basic.grpcecho.GrpcEcho`).
    pub service: String,
    /// Method (`Echo`).
    pub method: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl GrpcMethodSpec {
    /// The `:path` this RPC is sent to: `/<service>/<method>`.
    pub fn path(&self) -> String {
        format!("/{}/{}", self.service, self.method)
    }
}

/// Retry-simulator behaviour, decoded from the query string.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BackendBehavior {
    /// Attempts that fail before the simulator answers 200.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_first: Option<u32>,
    /// An HTTP status code, or a word such as `"tcp-reset"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_with: Option<Value>,
    /// A GEP-2257 duration the simulator waits before each failed answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_per_failed_attempt: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl BackendBehavior {
    /// `failWith` as a status code, when it is one.
    pub fn fail_with_status(&self) -> Option<u16> {
        match &self.fail_with {
            Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        }
    }
}

/// What a request case expects. Every field of the schema; unknown ones land in `extra` so a runner
/// can refuse to call a case passed when it does not check everything.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Expect {
    /// Expected status code (first acceptable one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// All acceptable status codes when more than one (408 and 504 are interchangeable).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub status_one_of: Vec<u16>,
    /// `namespace/service` whose pod must answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Only the backend namespace is asserted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_namespace: Option<String>,
    /// Any of these backends may answer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backend_one_of: Vec<String>,
    /// The response must come from the gateway itself (empty echo body).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_by_gateway: Option<bool>,
    /// Path (+query) the backend must see when it differs from `request.path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewritten_path: Option<String>,
    /// Host header the backend must see when it differs from `request.host`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewritten_host: Option<String>,
    /// Method the backend must see when it differs from `request.method`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_method: Option<String>,
    /// Headers the backend must see (name case-insensitive, values joined with ",").
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub request_headers: BTreeMap<String, String>,
    /// Headers the backend must not see.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub absent_request_headers: Vec<String>,
    /// Response headers the client must see.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub response_headers: BTreeMap<String, String>,
    /// Response header → acceptable values.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub response_headers_one_of: BTreeMap<String, Vec<String>>,
    /// Spaces are removed from actual and expected values before comparing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_whitespace_in_response_header_values: Option<bool>,
    /// Response headers the client must not see.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub absent_response_headers: Vec<String>,
    /// `{scheme, host?, port, path}` parsed from Location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect: Option<RedirectExpect>,
    /// Canonical Location value (when the host is asserted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_location: Option<String>,
    /// Backends that must receive a mirrored copy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mirrored_to: Vec<MirrorExpect>,
    /// Weighted split: expected fraction per backend.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub distribution: BTreeMap<String, f64>,
    /// Absolute tolerance of `distribution`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distribution_tolerance: Option<f64>,
    /// Number of requests for `distribution`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples: Option<u32>,
    /// How many times the request is sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat: Option<u32>,
    /// Per picked backend, headers the backend must see (backendRef-level filters).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub per_backend_request_headers: BTreeMap<String, BTreeMap<String, String>>,
    /// Protocol the gateway must speak to the backend (`h2c`, `websocket`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_protocol: Option<String>,
    /// Frames that must be echoed over the upgraded connection.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub websocket_echo: Vec<String>,
    /// GRPC addition, replaces `status`: the gRPC code the client must end up with, "as a grpc-go
    /// client computes it" (checked by [`crate::grpc_status::check`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<u32>,
    /// GRPC addition: the canonical name of `grpcStatus` (`UNIMPLEMENTED`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_status_name: Option<String>,
    /// GRPC addition: the `:status` values the gateway may answer with so that the client sees
    /// `grpcStatus` (200 only with `content-type: application/grpc` and that `grpc-status`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub http_status_one_of: Vec<u16>,
    /// GRPC addition: false when `requestHeaders`/`absentRequestHeaders` are derived from the spec
    /// because the suite states header literals it never checks. A qualifier, not a check: the
    /// header expectations are checked either way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers_asserted_by_suite: Option<bool>,
    /// Expectations this model does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Expect {
    /// True when the case expects a gRPC outcome (`grpcStatus`, `grpcStatusName` or
    /// `httpStatusOneOf`), which only a gRPC-aware check can decide.
    pub fn is_grpc(&self) -> bool {
        self.grpc_status.is_some()
            || self.grpc_status_name.is_some()
            || !self.http_status_one_of.is_empty()
    }

    /// Every acceptable status code (`statusOneOf`, else `status`).
    pub fn acceptable_statuses(&self) -> Vec<u16> {
        if !self.status_one_of.is_empty() {
            self.status_one_of.clone()
        } else {
            self.status.into_iter().collect()
        }
    }
}

/// A redirect's expected Location parts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RedirectExpect {
    /// Defaults to the request's scheme.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Absent = not asserted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `None` (null) = no port or the scheme's default port is accepted. Written as a string in
    /// the file; numbers are accepted too.
    #[serde(
        deserialize_with = "string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub port: Option<String>,
    /// Defaults to the request's path without query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl RedirectExpect {
    /// The expected port as a number (`None` when any default is accepted or it is not a number).
    pub fn port_number(&self) -> Option<u16> {
        self.port.as_deref().and_then(|p| p.parse().ok())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MirrorExpect {
    /// `namespace/service`.
    pub backend: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Case {
    /// True when the request is a gRPC call (`request.grpc`) or the case expects a gRPC outcome.
    pub fn is_grpc(&self) -> bool {
        self.request.grpc.is_some() || self.expect.is_grpc()
    }
}

/// One control-plane case: objects in, statuses expected.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatusCase {
    pub id: String,
    pub test: String,
    pub feature: String,
    pub features: Vec<String>,
    pub since: Option<String>,
    pub provisional: bool,
    pub source: Option<SourceRef>,
    pub gateway: GatewaySpec,
    pub routes: Vec<RouteSpec>,
    pub reference_grants: Vec<ReferenceGrantSpec>,
    pub extra_services: Vec<ServiceSpec>,
    pub expect: StatusExpect,
    pub note: Option<String>,
}

/// What a status case expects. Prose fields (`listeners`, `exactParents`, `observedGeneration`,
/// `mutation`) are kept as written; [`crate::status`] interprets the phrasings it knows and skips
/// a case with one it does not.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatusExpect {
    /// Per (route, parent): the conditions the route status must carry.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub route_parent_conditions: Vec<RouteParentConditions>,
    /// Short form of one `routeParentConditions` entry: route, parent and conditions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ExpectedCondition>,
    /// `status.parents` empty or a single parent with Accepted=False.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_accepted_parents: Option<bool>,
    /// The parent Gateway's total attached routes (0 = no listener status, or one listener with 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_attached_routes: Option<i64>,
    /// Listener status entries of the parent Gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_listener_status: Option<Vec<ListenerStatusExpect>>,
    /// Listener conditions, as prose ("every listener of the parent has Accepted=True, …").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listeners: Option<String>,
    /// ListenerSet name → its listener status entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener_set_listener_status: Option<BTreeMap<String, Vec<ListenerStatusExpect>>>,
    /// The Gateway's `status.attachedListenerSets`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_attached_listener_sets: Option<i64>,
    /// Prose: status.parents must contain this parent (namespace required in parentRef).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact_parents: Option<String>,
    /// Prose: every condition's observedGeneration equals metadata.generation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<String>,
    /// Prose: a change applied to the route before the second check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mutation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Expectations this model does not know (a checker must skip, not pass, such a case).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RouteParentConditions {
    /// `namespace/name` of the HTTPRoute.
    pub route: String,
    /// `namespace/name` of a Gateway, or `Gateway ns/name (sectionName x)` / `ListenerSet ns/name`.
    pub parent: String,
    /// When set, the route must be attached through parentRefs with these section names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_section_names: Option<Vec<String>>,
    pub conditions: Vec<ExpectedCondition>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A condition to find: `reason` absent = any reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExpectedCondition {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl std::fmt::Display for ExpectedCondition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.kind, self.status)?;
        if let Some(reason) = &self.reason {
            write!(f, " ({reason})")?;
        }
        Ok(())
    }
}

/// Expected status of one listener.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ListenerStatusExpect {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supported_kinds: Option<Vec<SupportedKind>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ExpectedCondition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attached_routes: Option<i64>,
    /// Informational: which routes make up `attachedRoutes` (the suite checks only the count).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attached_route_names: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SupportedKind {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub kind: String,
}

/// Keeps "present but null" apart from "absent": `Some(Value::Null)` vs `None`.
fn present_value<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// A port written as `"8083"` or `8083`; `null` is `None`.
fn string_or_number<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Null => None,
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    })
}

#[cfg(test)]
mod tests;
