//! One HTTP request as ngx_wasm_module shows it to a filter inside Kong: the request line and
//! headers, nginx variables (Kong's `$upstream_*` among them), the host property tree, Kong's
//! `balancer_data`, and what the filter asked for (local response, dispatches).
//!
//! Property semantics follow src/common/proxy_wasm/ngx_proxy_wasm_properties.c
//! (`ngx_proxy_wasm_properties_get` / `_set`): proxy-wasm names mapped to nginx variables
//! (`request.path` → `$request_uri`, `destination.port` → `$proxy_protocol_port`, …), `ngx.<var>`
//! for any nginx variable (set only when the variable is changeable: Kong's `set $upstream_*`),
//! `kong.<name>` for the host namespace (a per-request tree, plus Kong's Lua handlers from 3.6),
//! and nothing else (`xds.*` does not exist).

use std::collections::BTreeMap;

use crate::version::KongVersion;

/// Header pairs in order, names as given.
pub type Headers = Vec<(String, String)>;

/// The proxy-wasm status codes the emulation answers (proxy-wasm ABI 0.2.1 `WasmResult`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    InternalFailure = 10,
}

/// The result of a property access: a value, a status, or a trap with ngx_wasm_module's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prop {
    Value(Vec<u8>),
    Status(Status),
    Trap(String),
}

/// Which filter callback is running (ngx_wasm_module checks it for header and body access).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Configure,
    RequestHeaders,
    RequestBody,
    ResponseHeaders,
    DispatchResponse,
}

/// A local response the filter produced (`proxy_send_local_response`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A `proxy_http_call` the filter made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    pub token: u32,
    /// `host:port` as given.
    pub upstream: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Kong's view of the request the Lua property handlers act on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KongContext {
    pub route_id: String,
    pub route_name: String,
    pub service_id: String,
    pub service_name: String,
    /// `balancer_data.host` / `.port`, as `kong.service.set_target` changes them.
    pub balancer_host: String,
    pub balancer_port: u16,
}

/// nginx variables Kong's `location /` declares with `set` (kong/templates/nginx_kong.lua): the
/// only changeable ones a filter may set through `ngx.<name>`.
pub const CHANGEABLE_VARIABLES: [&str; 15] = [
    "ctx_ref",
    "upstream_te",
    "upstream_via",
    "upstream_host",
    "upstream_upgrade",
    "upstream_connection",
    "upstream_scheme",
    "upstream_uri",
    "upstream_x_forwarded_for",
    "upstream_x_forwarded_proto",
    "upstream_x_forwarded_host",
    "upstream_x_forwarded_port",
    "upstream_x_forwarded_path",
    "upstream_x_forwarded_prefix",
    "kong_proxy_mode",
];

#[derive(Debug, Clone)]
pub struct Stream {
    pub version: KongVersion,
    pub method: String,
    /// nginx's `r->uri`: decoded and normalized.
    pub uri: String,
    /// nginx's `r->args` (raw), and whether the request target had a `?`.
    pub args: String,
    pub has_args: bool,
    pub scheme: String,
    /// `headers_in`, names as received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// nginx variables (`request_uri`, `server_port`, Kong's `upstream_*`, …).
    pub vars: BTreeMap<String, String>,
    /// The request's host property tree (`kong.*` values stored by sets and const gets).
    pub host_props: BTreeMap<String, String>,
    pub kong: KongContext,
    pub step: Step,
    pub local: Option<LocalResponse>,
    pub response_status: u16,
    pub response_headers: Vec<(String, String)>,
    pub dispatches: Vec<Dispatch>,
    /// The dispatch response being delivered (`on_http_call_response`).
    pub call_response: Option<(Headers, Vec<u8>)>,
    /// The filter closed the stream (`proxy_close_stream`).
    pub closed: bool,
    /// What ngx_wasm_module logged while the filter ran (read-only headers, variable errors).
    pub log: Vec<String>,
}

impl Stream {
    /// `:path` as ngx_wasm_module builds it: `r->uri` plus `?` and `r->args` when there are args
    /// (src/common/proxy_wasm/ngx_proxy_wasm_maps.c `ngx_proxy_wasm_maps_get_path`).
    pub fn pseudo_path(&self) -> String {
        if self.args.is_empty() {
            self.uri.clone()
        } else {
            format!("{}?{}", self.uri, self.args)
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request headers map as a filter reads it: the pseudo-headers with a value first
    /// (`ngx_proxy_wasm_maps_get_all`'s extras), then `headers_in`.
    pub fn request_map(&self) -> Vec<(String, String)> {
        let mut map = vec![
            (":path".to_owned(), self.pseudo_path()),
            (":method".to_owned(), self.method.clone()),
            (":scheme".to_owned(), self.scheme.clone()),
        ];
        if let Some(host) = self.header("host") {
            map.push((":authority".to_owned(), host.to_owned()));
        }
        map.extend(self.headers.iter().cloned());
        map
    }

    /// Sets one request header entry (`replace` removes every value first). Pseudo-headers follow
    /// ngx_proxy_wasm_maps.c: `:path` rewrites `r->uri`/`r->args`, `:method` the method,
    /// `:authority` and `:scheme` are read-only (an error is logged, the call succeeds).
    pub fn set_request_header(&mut self, name: &str, value: Option<&str>, replace: bool) {
        match (name, value) {
            (":path", Some(value)) => {
                match value.split_once('?') {
                    Some((uri, args)) => {
                        self.uri = uri.to_owned();
                        self.args = args.to_owned();
                    }
                    None => {
                        self.uri = value.to_owned();
                        self.args.clear();
                    }
                }
                return;
            }
            (":method", Some(value)) => {
                self.method = value.to_owned();
                return;
            }
            (":authority" | ":scheme" | ":path" | ":method", _) => {
                self.log
                    .push(format!("[error] cannot set read-only \"{name}\" header"));
                return;
            }
            _ => {}
        }
        if replace || value.is_none() {
            self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        }
        if let Some(value) = value {
            self.headers.push((name.to_owned(), value.to_owned()));
        }
    }

    /// `get_property`, inside a request.
    pub fn get_property(&mut self, path: &str) -> Prop {
        if let Some(variable) = mapped_variable(path) {
            return self.variable(variable);
        }
        if let Some(name) = path.strip_prefix("request.headers.") {
            return match self.header(name) {
                Some(v) => Prop::Value(v.as_bytes().to_vec()),
                None => Prop::Status(Status::NotFound),
            };
        }
        match path {
            "plugin_name" => return Prop::Value(b"gateway_wasm".to_vec()),
            "plugin_root_id" => return Prop::Value(Vec::new()),
            _ => {}
        }
        if let Some(variable) = path.strip_prefix("ngx.") {
            return self.variable(variable);
        }
        if path.starts_with("kong.") {
            return self.get_kong(path);
        }
        Prop::Status(Status::NotFound)
    }

    fn variable(&self, name: &str) -> Prop {
        let header = name
            .strip_prefix("http_")
            .map(|h| h.replace('_', "-"))
            .and_then(|h| self.header(&h).map(str::to_owned));
        match self.vars.get(name).cloned().or(header) {
            Some(value) => Prop::Value(value.into_bytes()),
            None => Prop::Status(Status::NotFound),
        }
    }

    fn get_kong(&mut self, path: &str) -> Prop {
        if let Some(value) = self.host_props.get(path) {
            return Prop::Value(value.clone().into_bytes());
        }
        if !self.version.host_property_handlers() {
            return Prop::Status(Status::NotFound);
        }
        // kong/runloop/wasm.lua register_property_handlers (the getters the filter could use).
        let value = match path {
            "kong.version" => Some(self.version.full().to_owned()),
            "kong.client.protocol" => Some(self.scheme.clone()),
            "kong.nginx.subsystem" => Some("http".to_owned()),
            "kong.request.port" => self.vars.get("server_port").cloned(),
            "kong.route_id" => Some(self.kong.route_id.clone()),
            "kong.service_id" => Some(self.kong.service_id.clone()),
            "kong.route_name" if self.version.name_properties() => {
                Some(self.kong.route_name.clone())
            }
            "kong.service_name" if self.version.name_properties() => {
                Some(self.kong.service_name.clone())
            }
            _ => None,
        };
        match value {
            Some(value) => Prop::Value(value.into_bytes()),
            None => Prop::Status(Status::NotFound),
        }
    }

    /// `set_property`, inside a request.
    pub fn set_property(&mut self, path: &str, value: &str) -> Prop {
        if let Some(name) = path.strip_prefix("ngx.") {
            return self.set_variable(name, value);
        }
        if let Some(variable) = mapped_variable(path) {
            return self.set_variable(variable, value);
        }
        if !path.starts_with("kong.") {
            return Prop::Status(Status::NotFound);
        }
        if !self.version.host_property_handlers() {
            // No Lua setter: stored in the request's tree, nothing else happens.
            self.host_props.insert(path.to_owned(), value.to_owned());
            return Prop::Status(Status::Ok);
        }
        match path {
            "kong.service.target" => self.set_target(path, value),
            "kong.service.request.scheme" => {
                self.vars
                    .insert("upstream_scheme".to_owned(), value.to_owned());
                self.host_props.insert(path.to_owned(), value.to_owned());
                Prop::Status(Status::Ok)
            }
            _ if path.starts_with("kong.ctx.shared.") => {
                self.host_props.insert(path.to_owned(), value.to_owned());
                Prop::Status(Status::Ok)
            }
            // The setter returns false (no Upstream of that name, no such property): the FFI
            // handler answers an error, which ngx_wasm_module turns into a trap.
            _ => Prop::Trap(format!("could not set \"{path}\": unknown error")),
        }
    }

    /// kong/pdk/service.lua `set_target` through the `kong.service.target` setter: the value must
    /// be `host:port`; `$upstream_host` becomes the host and `balancer_data.host`/`port` change
    /// (`balancer_data.ip`, already resolved when the filter runs after `access.after`, does not).
    fn set_target(&mut self, path: &str, value: &str) -> Prop {
        let parsed = value
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host, port.parse::<u32>().ok()?)))
            .filter(|(_, port)| !value.ends_with(':') && *port <= 65_535);
        let Some((host, port)) = parsed else {
            return Prop::Trap(format!("could not set \"{path}\": unknown error"));
        };
        self.vars
            .insert("upstream_host".to_owned(), host.to_owned());
        self.kong.balancer_host = host.to_owned();
        self.kong.balancer_port = u16::try_from(port).unwrap_or(0);
        self.host_props.insert(path.to_owned(), value.to_owned());
        Prop::Status(Status::Ok)
    }

    fn set_variable(&mut self, name: &str, value: &str) -> Prop {
        if CHANGEABLE_VARIABLES.contains(&name) {
            self.vars.insert(name.to_owned(), value.to_owned());
            return Prop::Status(Status::Ok);
        }
        if self.vars.contains_key(name) {
            self.log
                .push(format!("[error] variable \"{name}\" is not changeable"));
            return Prop::Status(Status::InternalFailure);
        }
        Prop::Status(Status::NotFound)
    }
}

/// proxy-wasm property names mapped to nginx variables (`pw2ngx` in
/// ngx_proxy_wasm_properties.c; the ones a gateway filter may read).
fn mapped_variable(path: &str) -> Option<&'static str> {
    Some(match path {
        "request.path" => "request_uri",
        "request.url_path" => "uri",
        "request.host" => "hostname",
        "request.scheme" => "scheme",
        "request.method" => "request_method",
        "request.useragent" => "http_user_agent",
        "request.protocol" => "server_protocol",
        "request.query" => "args",
        "destination.address" => "proxy_protocol_addr",
        "destination.port" => "proxy_protocol_port",
        "connection.requested_server_name" => "ssl_server_name",
        "source.address" => "remote_addr",
        "source.port" => "remote_port",
        _ => return None,
    })
}

/// nginx's `r->uri` from a raw path: percent-decoded, `//` merged (`merge_slashes on`), dot
/// segments resolved (ngx_http_parse_complex_uri).
pub fn normalize_uri(raw_path: &str) -> String {
    let bytes = raw_path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |j: usize| bytes.get(j).and_then(|c| (*c as char).to_digit(16));
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                decoded.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                i += 3;
            }
            _ => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    let text = String::from_utf8_lossy(&decoded);
    let mut segments: Vec<&str> = Vec::new();
    for segment in text.split('/').skip(1) {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let trailing = text.ends_with('/') || text.ends_with("/.") || text.ends_with("/..");
    let mut uri = String::from("/");
    uri.push_str(&segments.join("/"));
    if trailing && !segments.is_empty() {
        uri.push('/');
    }
    uri
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_normalizes_the_uri() {
        assert_eq!(normalize_uri("/a//b/./c/../d%7Ee"), "/a/b/d~e");
        assert_eq!(normalize_uri("/"), "/");
        assert_eq!(normalize_uri("/store/"), "/store/");
        assert_eq!(normalize_uri("/x/.."), "/");
    }
}
