//! The Kong 3.4–3.9 side of the adapter (`upstreamSelector: kongRoute`), written from Kong's and
//! ngx_wasm_module's source (`docs/kong.md` has the file and line of every fact used here).
//!
//! **Upstream selection.** Kong picks the peer of the first connection attempt before this filter
//! can act: from Kong 3.8 the filter's `on_request_headers` runs after Kong's `access.after`
//! (`kong/init.lua`: `runloop.wasm_attach(ctx)` then `runloop.access.after(ctx)`, and
//! ngx_wasm_module postpones its access handler after `access_by_lua`), which already resolved
//! the matched service's address into `balancer_data.ip`; `kong.service.target` only changes
//! `balancer_data.host`/`port`. So the filter never tries to move the peer. Kong's entry route
//! (a catch-all carrying this filter) forwards to Kong's own proxy listener, and the filter
//! rewrites Kong's `$upstream_uri` (the settable nginx variable `ngx.upstream_uri`) to
//! `<backend prefix><request target>`. On that second pass Kong's router matches the prefix to
//! the backend's own route and service (`strip_path` removes the prefix) and Kong's balancer runs
//! for the right service. The prefixes carry a per-Gateway secret, so a client cannot address a
//! backend route directly.
//!
//! **Host and path.** Kong sends `Host: $upstream_host` and the URI `$upstream_uri`, both
//! computed by Kong before the filter runs; `:authority` is read-only in ngx_wasm_module and a
//! `:path` edit does not reach `$upstream_uri`. URLRewrite therefore sets `ngx.upstream_host` and
//! the rewritten path goes into `ngx.upstream_uri`; without a rewrite the client's Host (the
//! entry route has `preserve_host`) and request target pass unchanged.
//!
//! **The query string.** Kong 3.4–3.7 run the filter inside `runloop.wasm_attach` (through
//! `proxy_wasm.start()`), *before* `access.after` appends `?<args>` to `$upstream_uri`; from 3.8
//! the filter runs after it. The filter learns Kong's version from the `kong.version` property
//! (Kong 3.6+; absent on 3.4 and 3.5) once per VM and leaves the query out before 3.8.
//!
//! **Metrics.** ngx_wasm_module before Kong 3.8 answers `proxy_define_metric` with a host trap the
//! filter cannot catch; the metrics are defined only once `kong.version` says 3.8 or later.

use std::cell::Cell;

use engine::config::KongDataPlane;

use crate::host::{Host, HostError};

/// Kong's version string (`kong.version`, a getter registered from Kong 3.6).
pub const VERSION_PROPERTY: [&str; 2] = ["kong", "version"];
/// The raw request target as the client sent it (nginx `$request_uri`).
pub const REQUEST_TARGET_PROPERTY: [&str; 2] = ["request", "path"];
/// Kong's `$upstream_uri`: the URI Kong proxies with (`proxy_pass …$upstream_uri`).
pub const UPSTREAM_URI_PROPERTY: [&str; 2] = ["ngx", "upstream_uri"];
/// Kong's `$upstream_host`: the Host header Kong sends (`proxy_set_header Host $upstream_host`).
pub const UPSTREAM_HOST_PROPERTY: [&str; 2] = ["ngx", "upstream_host"];
/// The port the connection arrived on (nginx `$server_port`).
pub const SERVER_PORT_PROPERTY: [&str; 2] = ["ngx", "server_port"];

/// The first Kong release whose ngx_wasm_module implements the metric host calls, and whose
/// filters run after `access.after`.
pub const METRICS_SINCE: KongVersion = KongVersion { major: 3, minor: 8 };

/// `major.minor` of the Kong the filter runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KongVersion {
    pub major: u16,
    pub minor: u16,
}

impl KongVersion {
    /// Kong 3.4 and 3.5 register no host property getters, so `kong.version` is absent there.
    pub const BEFORE_3_6: KongVersion = KongVersion { major: 3, minor: 5 };

    /// `3.9.3`, `3.8.0.0-enterprise`, … → major and minor.
    pub fn parse(text: &str) -> Option<KongVersion> {
        let mut parts = text.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts
            .next()?
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()?;
        Some(KongVersion { major, minor })
    }

    /// Whether Kong's `access.after` (which appends `?<args>` to `$upstream_uri`) has already run
    /// when the filter's `on_request_headers` runs.
    pub fn filter_runs_after_access(self) -> bool {
        self >= METRICS_SINCE
    }
}

/// Whether configuration bytes are meant for Kong, also when they do not parse: the shim's Kong
/// configs always carry `"upstreamSelector":"kongRoute"` (and Kong never gets the gzip form). Used
/// to decide, in `on_configure`, whether metrics may be defined right away (Envoy) or only once
/// the first request told Kong's version.
pub fn is_kong_config(bytes: &[u8]) -> bool {
    const MARK: &[u8] = b"\"kongRoute\"";
    bytes.windows(MARK.len()).any(|w| w == MARK)
}

/// Per-VM Kong knowledge, learned on the first request.
#[derive(Debug, Default)]
pub struct KongState {
    version: Cell<Option<KongVersion>>,
}

impl KongState {
    /// Kong's version: read once per VM from `kong.version`; the first read also turns the
    /// filter's metrics on where the host implements them.
    pub fn version(&self, host: &mut impl Host) -> KongVersion {
        if let Some(known) = self.version.get() {
            return known;
        }
        let version = host
            .property(&VERSION_PROPERTY)
            .ok()
            .flatten()
            .and_then(|raw| KongVersion::parse(&String::from_utf8_lossy(&raw)))
            .unwrap_or(KongVersion::BEFORE_3_6);
        self.version.set(Some(version));
        if version >= METRICS_SINCE {
            host.enable_metrics();
        }
        version
    }
}

/// The request target (path and query) exactly as the client sent it. ngx_wasm_module's `:path`
/// is nginx's decoded and normalized `r->uri` plus the arguments; matching and forwarding use the
/// raw target, as Envoy presents it.
pub fn request_target(host: &impl Host) -> Option<String> {
    let raw = host.property(&REQUEST_TARGET_PROPERTY).ok().flatten()?;
    String::from_utf8(raw).ok().filter(|t| t.starts_with('/'))
}

/// The Gateway port of a request: the only port, or the Gateway port mapped from the Kong port the
/// connection arrived on (`destination.port` is the PROXY protocol port in ngx_wasm_module, and
/// `xds.*` does not exist there).
pub fn gateway_port(host: &impl Host, ports: &[u16], kong: Option<&KongDataPlane>) -> Option<u16> {
    if let [only] = ports {
        return Some(*only);
    }
    let raw = host.property(&SERVER_PORT_PROPERTY).ok().flatten()?;
    let arrived: u16 = std::str::from_utf8(&raw).ok()?.trim().parse().ok()?;
    match kong.and_then(|k| k.ports.get(&arrived)) {
        Some(gateway) => Some(*gateway),
        None => ports.contains(&arrived).then_some(arrived),
    }
}

/// Whether a request has no body, from its headers. ngx_wasm_module always calls
/// `on_request_headers` with `end_of_stream` false and calls `on_request_body` only when a body
/// was read, so without this a mirror waiting for the body would never be sent.
pub fn has_no_body(headers: &[(String, String)]) -> bool {
    let mut length_zero = true;
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return false;
        }
        if name.eq_ignore_ascii_case("content-length") && value.trim() != "0" {
            length_zero = false;
        }
    }
    length_zero
}

/// `<prefix><target>`, leaving the query out when Kong will append it itself.
pub fn upstream_uri(prefix: &str, target: &str, version: KongVersion) -> String {
    let target = if version.filter_runs_after_access() {
        target
    } else {
        target.split('?').next().unwrap_or(target)
    };
    let mut uri = String::with_capacity(prefix.len() + target.len());
    uri.push_str(prefix);
    uri.push_str(target);
    uri
}

/// Hands the chosen backend to Kong: `$upstream_uri` gets the backend's route prefix in front of
/// the (possibly rewritten) target, and a rewritten host goes into `$upstream_host`.
pub fn route_to_backend(
    host: &mut impl Host,
    state: &KongState,
    prefix: &str,
    target: &str,
    authority: Option<&str>,
) -> Result<(), HostError> {
    let version = state.version(host);
    let uri = upstream_uri(prefix, target, version);
    host.set_property(&UPSTREAM_URI_PROPERTY, uri.as_bytes())?;
    if let Some(authority) = authority {
        host.set_property(&UPSTREAM_HOST_PROPERTY, authority.as_bytes())?;
    }
    Ok(())
}

/// A mirror in Kong: dispatched to Kong's own proxy listener with the mirror backend's prefix in
/// front of the target, so Kong's router sends it to that backend. Returns the `host:port` to
/// dispatch to and the `:path` to send.
pub fn mirror_call(kong: &KongDataPlane, prefix: &str, target: &str) -> (String, String) {
    let mut path = String::with_capacity(prefix.len() + target.len());
    path.push_str(prefix);
    path.push_str(target);
    (kong.proxy.clone(), path)
}
