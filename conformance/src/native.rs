//! The native target: the resolver, then the filter's own code. The resolved PluginConfig goes
//! through the filter's `configure` and every request through its request adapter
//! (`gateway_wasm::filter::on_request_headers` / `on_response_headers`) over the plugin's mock host,
//! so header stripping, port and TLS-server-name lookup, every edit and the upstream selection are
//! the code that runs in Envoy. The mock host stands in for Envoy's header maps and properties
//! ([`Proxy::send`] says which); the echo backend's answer is modelled from the request the
//! filter lets through.
//!
//! What only a live proxy can show (timeouts firing, retries, upstream protocols, endpoint routing)
//! is skipped here with the reason; `--target envoy` runs those for real.

use std::collections::BTreeMap;
use std::rc::Rc;

use controller_shim::{Settings, resolve};
use engine::PluginConfig;
use engine::config::UpstreamSelector;
use gateway_wasm::filter::{
    Compiled, FILTER_CHAIN_PREFIX, MIRROR_TIMEOUT_MS, Shared, Stream, UPSTREAM_HEADER, Verdict,
    configure, on_request_headers, on_response_headers,
};
use gateway_wasm::mock::{LocalReply, MockHost};

use crate::exchange::{EchoView, Exchange, check, request_authority, request_headers};
use crate::outcome::Outcome;
use crate::snapshot::{case_gateway, snapshot_for};
use crate::vectors::{Case, VectorFile};

/// The address the suite would send as Host when a case has none (TEST-NET-1, never routable).
pub const GATEWAY_IP: &str = "192.0.2.10";

/// Runs one request case through the resolver and the filter.
pub fn run(case: &Case, file: &VectorFile) -> Outcome {
    if let Some(reason) = crate::coverage::unchecked_request_case_with_grpc(case) {
        return Outcome::Skip(reason);
    }
    if case.is_grpc() {
        return crate::native_grpc::run(case, file);
    }
    if let Some(reason) = needs_live_proxy(case) {
        return Outcome::Skip(reason);
    }
    let mut proxy = match Proxy::for_case(case, file) {
        Ok(proxy) => proxy,
        Err(e) => return Outcome::Fail(e),
    };
    if !case.expect.distribution.is_empty() {
        return distribution(case, &mut proxy);
    }
    let sent = match proxy.send(case) {
        Ok(sent) => sent,
        Err(e) => return Outcome::Fail(e),
    };
    if let Err(e) = check(case, &sent.exchange) {
        return Outcome::Fail(e);
    }
    if !case.expect.mirrored_to.is_empty()
        && let Err(e) = mirrors(case, &mut proxy)
    {
        return Outcome::Fail(e);
    }
    if !case.expect.per_backend_request_headers.is_empty()
        && let Err(e) = per_backend_headers(case, &mut proxy)
    {
        return Outcome::Fail(e);
    }
    Outcome::Pass
}

/// Why a case cannot be decided without a live proxy, if it cannot.
fn needs_live_proxy(case: &Case) -> Option<String> {
    let request = &case.request;
    if request.backend_behavior.is_some() {
        return Some("retries need a live proxy and a failing backend".to_owned());
    }
    if request.path.contains("delay=") {
        return Some("timeouts need a live proxy and a slow backend".to_owned());
    }
    if let Some(protocol) = &case.expect.upstream_protocol {
        return Some(format!(
            "the upstream protocol ({protocol}) is the proxy's, not the route table's"
        ));
    }
    if !case.expect.websocket_echo.is_empty() {
        return Some("WebSocket upgrades need a live proxy".to_owned());
    }
    if case.test == "HTTPRouteServiceTypes" {
        return Some(
            "routing to EndpointSlice addresses behind the Service needs a live proxy".to_owned(),
        );
    }
    None
}

/// The PluginConfig the resolver produces for the case's Gateway.
fn resolved_config(case: &Case, file: &VectorFile) -> Result<PluginConfig, String> {
    let snapshot = snapshot_for(case, file);
    case_gateway(resolve(&snapshot, &Settings::default()), case).map(|g| g.config)
}

/// `namespace/service` from a backend key `namespace/service:port` (GRPCRoute backends:
/// `grpc:namespace/service:port`).
fn service_of(backend_key: &str) -> String {
    let key = backend_key.strip_prefix("grpc:").unwrap_or(backend_key);
    key.rsplit_once(':')
        .map_or(key, |(service, _)| service)
        .to_owned()
}

/// One request as the client and the echo backend saw it, and where the filter sent mirrors.
#[derive(Debug)]
pub struct Sent {
    pub exchange: Exchange,
    /// `namespace/service` of each mirror the filter dispatched.
    pub mirrored_to: Vec<String>,
}

/// The filter with the case's configuration, as one Envoy worker runs it: one compiled table and
/// one per-VM state (random generator, mirrors in flight) for every request of the case.
pub struct Proxy {
    compiled: Rc<Compiled>,
    shared: Shared,
    /// Upstream name (Envoy cluster, or Kong target) → `namespace/service` of the backend.
    services: BTreeMap<String, String>,
    /// Gateway port → the filter chain name the shim gives that port in Envoy.
    chain_names: BTreeMap<u16, String>,
    /// The mock host's clock, nanoseconds.
    now: u64,
}

impl Proxy {
    /// Resolves the case's objects and hands the config to the filter's `configure`, as the shim
    /// delivers it (PluginConfig JSON).
    pub fn for_case(case: &Case, file: &VectorFile) -> Result<Proxy, String> {
        let config = resolved_config(case, file)?;
        let seed = case
            .id
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        Proxy::new(&config, seed)
    }

    /// Configures the filter with `config`; `seed` starts its random generator.
    pub fn new(config: &PluginConfig, seed: u64) -> Result<Proxy, String> {
        // The mock host plays Envoy; Kong's routing is the kong-emulated target's.
        if config.upstream_selector != UpstreamSelector::EnvoyClusterHeader {
            return Err(format!(
                "the native target runs the filter as Envoy does; upstreamSelector {:?} is run by \
                 --target kong-emulated",
                config.upstream_selector
            ));
        }
        let json = serde_json::to_vec(config)
            .map_err(|e| format!("the resolved config does not serialize: {e}"))?;
        let mut host = MockHost::default();
        let compiled = configure(&mut host, &json).ok_or_else(|| {
            format!(
                "the filter rejected the resolved config: {}",
                host.log_text()
            )
        })?;
        let services = config
            .backends
            .iter()
            .filter_map(|(key, backend)| Some((backend.upstream.clone()?, service_of(key))))
            .collect();
        let mut listeners_by_port: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
        for listener in &config.listeners {
            listeners_by_port
                .entry(listener.port)
                .or_default()
                .push(&listener.name);
        }
        let chain_names = listeners_by_port
            .into_iter()
            .map(|(port, names)| {
                (
                    port,
                    format!("{FILTER_CHAIN_PREFIX}{port}:{}", names.join(",")),
                )
            })
            .collect();
        Ok(Proxy {
            compiled,
            shared: Shared::new(seed),
            services,
            chain_names,
            now: 1_000_000_000,
        })
    }

    /// Sends the case's request through the filter. The mock host plays Envoy:
    /// - the request arrives with its pseudo-headers (`:method`, `:authority`, `:path`,
    ///   `:scheme`), the case's headers and the suite's `X-Echo-Set-Header`;
    /// - properties: `xds.filter_chain_name` (the shim's `gateway-wasm:<port>:<listeners>`),
    ///   `destination.port` (8 little-endian bytes, as Envoy encodes integers) and, for TLS,
    ///   `connection.requested_server_name`;
    /// - what the filter forwards reaches the echo backend, less the upstream header (the
    ///   catch-all route the shim renders removes it) and the pseudo-headers (which become the
    ///   method, path and Host the backend sees); the backend answers 200 with the response
    ///   headers the request asked for, and the filter's response phase edits them;
    /// - every request gets a clock one mirror timeout later than the last, so mirrors are never
    ///   still in flight (requests are sent one at a time and a mirror is answered at once).
    pub fn send(&mut self, case: &Case) -> Result<Sent, String> {
        let headers = request_headers(case);
        let (mut host, mut stream, verdict) =
            self.filter_request(case, &case.request.method, &case.request.path, &headers);
        let mirrored_to = host
            .dispatches
            .iter()
            .map(|d| self.service(&d.upstream))
            .collect::<Result<_, _>>()?;
        let exchange = match verdict {
            Verdict::Stop => local_exchange(case, &host)?,
            Verdict::Continue => self.forwarded_exchange(case, &mut host, &mut stream)?,
        };
        Ok(Sent {
            exchange,
            mirrored_to,
        })
    }

    /// Runs the filter's request phase on the case's request, sent as `method path` with
    /// `headers` (besides the pseudo-headers): the host after it, the stream state and the verdict.
    pub(crate) fn filter_request(
        &mut self,
        case: &Case,
        method: &str,
        path: &str,
        headers: &[(String, String)],
    ) -> (MockHost, Stream, Verdict) {
        let mut host = self.request_host(case, method, path, headers);
        let mut stream = Stream::default();
        let verdict = on_request_headers(
            &mut host,
            Some(&self.compiled),
            &self.shared,
            true,
            &mut stream,
        );
        (host, stream, verdict)
    }

    fn request_host(
        &mut self,
        case: &Case,
        method: &str,
        path: &str,
        headers: &[(String, String)],
    ) -> MockHost {
        let authority = request_authority(case, GATEWAY_IP);
        let extra: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let mut host = MockHost::request(method, &authority, path, &extra);
        if !case.request.scheme.is_empty()
            && let Some((_, scheme)) = host
                .request_headers
                .iter_mut()
                .find(|(n, _)| n == ":scheme")
        {
            scheme.clone_from(&case.request.scheme);
        }
        self.now = self
            .now
            .saturating_add(MIRROR_TIMEOUT_MS.saturating_mul(1_000_000) + 1);
        host.now = self.now;
        let port = case.request.port;
        host = host.with_property(&["destination", "port"], &u64::from(port).to_le_bytes());
        if let Some(name) = self.chain_names.get(&port) {
            host = host.with_property(&["xds", "filter_chain_name"], name.as_bytes());
        }
        if let Some(sni) = &case.request.sni {
            host = host.with_property(&["connection", "requested_server_name"], sni.as_bytes());
        }
        host
    }

    /// The request the echo backend receives and the response the client gets.
    fn forwarded_exchange(
        &self,
        case: &Case,
        host: &mut MockHost,
        stream: &mut Stream,
    ) -> Result<Exchange, String> {
        let echo = self.echo_view(host, "")?;
        // The echo backend sets the response headers the request asked for.
        host.response_headers = case
            .request
            .backend_response_headers
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        on_response_headers(host, stream);
        Ok(Exchange {
            request_target: case.request.path.clone(),
            status: 200,
            response_headers: std::mem::take(&mut host.response_headers),
            echo: Some(echo),
        })
    }

    /// What the backend the filter chose sees of the forwarded request: the upstream header (the
    /// catch-all route removes it) and the pseudo-headers become the backend, method, path and Host.
    pub(crate) fn echo_view(&self, host: &MockHost, proto: &str) -> Result<EchoView, String> {
        let upstream = host
            .header(UPSTREAM_HEADER)
            .map(str::to_owned)
            .ok_or("the filter let the request through without choosing an upstream")?;
        let pseudo = |name: &str| host.header(name).unwrap_or_default().to_owned();
        Ok(EchoView {
            backend: self.service(&upstream)?,
            method: pseudo(":method"),
            path: pseudo(":path"),
            host: pseudo(":authority"),
            proto: proto.to_owned(),
            headers: host
                .request_headers
                .iter()
                .filter(|(n, _)| !n.starts_with(':') && !n.eq_ignore_ascii_case(UPSTREAM_HEADER))
                .cloned()
                .collect(),
        })
    }

    fn service(&self, upstream: &str) -> Result<String, String> {
        self.services.get(upstream).cloned().ok_or_else(|| {
            format!("the filter chose upstream {upstream:?}, which no backend of the config has")
        })
    }
}

/// The filter's own answer; an error when it reset the stream or answered nothing.
pub(crate) fn local_reply(host: &MockHost) -> Result<&LocalReply, String> {
    host.local_reply.as_ref().ok_or_else(|| {
        if host.reset {
            "the filter reset the stream".to_owned()
        } else {
            "the filter stopped the request without answering it".to_owned()
        }
    })
}

/// The filter answered itself (or reset the stream).
fn local_exchange(case: &Case, host: &MockHost) -> Result<Exchange, String> {
    let reply = local_reply(host)?;
    Ok(Exchange {
        request_target: case.request.path.clone(),
        status: reply.status,
        response_headers: reply.headers.clone(),
        echo: None,
    })
}

/// Weighted splits: sample the filter's picks and compare fractions with the tolerance.
fn distribution(case: &Case, proxy: &mut Proxy) -> Outcome {
    let samples = case.expect.samples.unwrap_or(1000);
    let tolerance = case.expect.distribution_tolerance.unwrap_or(0.05);
    let outcome = crate::distribution::sample(
        &case.id,
        &case.expect.distribution,
        samples,
        tolerance,
        || {
            let answered = proxy.send(case).and_then(|sent| {
                check(case, &sent.exchange)?;
                Ok(sent.exchange.echo.map(|echo| echo.backend))
            });
            Ok::<_, std::convert::Infallible>(answered)
        },
    );
    match outcome {
        Ok(outcome) => outcome,
        Err(never) => match never {},
    }
}

/// Mirrors: the filter must dispatch to each expected mirror backend (sampled when a percentage
/// applies).
fn mirrors(case: &Case, proxy: &mut Proxy) -> Result<(), String> {
    const SAMPLES: u32 = 2000;
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..SAMPLES {
        for service in proxy.send(case)?.mirrored_to {
            *seen.entry(service).or_default() += 1;
        }
    }
    for expected in &case.expect.mirrored_to {
        let count = seen.get(&expected.backend).copied().unwrap_or(0);
        let percent = f64::from(expected.percent.unwrap_or(100));
        let got = f64::from(count) * 100.0 / f64::from(SAMPLES);
        // The suite allows a wide band for sampled mirrors; a binomial at 2000 samples stays
        // within 5 points with overwhelming probability.
        if (got - percent).abs() > 5.0 {
            return Err(format!(
                "mirror to {}: expected {percent}% of requests, got {got:.1}% ({seen:?})",
                expected.backend
            ));
        }
    }
    Ok(())
}

/// Backend-level filters: each picked backend must see its own headers.
fn per_backend_headers(case: &Case, proxy: &mut Proxy) -> Result<(), String> {
    let mut checked = BTreeMap::new();
    for _ in 0..200 {
        let Some(echo) = proxy.send(case)?.exchange.echo else {
            continue;
        };
        if let Some(expected) = case.expect.per_backend_request_headers.get(&echo.backend) {
            for (name, value) in expected {
                let got = crate::exchange::joined(&echo.headers, name);
                if got.as_deref() != Some(value.as_str()) {
                    return Err(format!(
                        "{} must see {name}: {value:?}, got {got:?}",
                        echo.backend
                    ));
                }
            }
            checked.insert(echo.backend, ());
        }
    }
    for backend in case.expect.per_backend_request_headers.keys() {
        if !checked.contains_key(backend) {
            return Err(format!("{backend} was never picked in 200 requests"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::exchange::joined;

    /// Port 80 routes `/` to app/web and mirrors `/mirror` to app/shadow; port 8080 routes
    /// `/only` to app/alt.
    fn proxy() -> Proxy {
        let document = serde_json::json!({
            "schemaVersion": 1,
            "gateway": {"namespace": "infra", "name": "gw"},
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"},
                          {"name": "alt", "port": 8080, "protocol": "HTTP"}],
            "routes": [
                {"namespace": "app", "name": "web", "parents": [{"listener": "http"}],
                 "rules": [{"backendRefs": [{"backend": "app/web:80"}]},
                           {"matches": [{"path": {"type": "PathPrefix", "value": "/mirror"}}],
                            "filters": [{"type": "RequestMirror",
                                         "requestMirror": {"backend": "app/shadow:80"}}],
                            "backendRefs": [{"backend": "app/web:80"}]}]},
                {"namespace": "app", "name": "alt", "parents": [{"listener": "alt"}],
                 "rules": [{"matches": [{"path": {"type": "Exact", "value": "/only"}}],
                            "backendRefs": [{"backend": "app/alt:80"}]}]}
            ],
            "backends": {"app/web:80": {"upstream": "app/web:80"},
                         "app/alt:80": {"upstream": "app/alt:80"},
                         "app/shadow:80": {"upstream": "app/shadow:80"}}
        });
        let config = engine::parse(document.to_string().as_bytes()).unwrap();
        Proxy::new(&config, 1).unwrap()
    }

    fn case(port: u16, path: &str, headers: &[(&str, &str)]) -> Case {
        let mut case = Case::default();
        case.request.method = "GET".into();
        case.request.port = port;
        case.request.host = Some("example.com".into());
        case.request.path = path.into();
        case.request.headers = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        case
    }

    #[test]
    fn a_client_cannot_choose_the_backend_or_the_router_controls() {
        let sent = proxy()
            .send(&case(
                80,
                "/",
                &[
                    ("X-Gateway-Wasm-Upstream", "app/alt:80"),
                    ("x-gateway-wasm-debug", "1"),
                    ("x-envoy-upstream-rq-timeout-ms", "1"),
                    ("x-kept", "yes"),
                ],
            ))
            .unwrap();
        let echo = sent.exchange.echo.unwrap();
        assert_eq!(echo.backend, "app/web");
        for stripped in ["x-gateway-wasm-debug", "x-envoy-upstream-rq-timeout-ms"] {
            assert_eq!(joined(&echo.headers, stripped), None, "{stripped}");
        }
        assert_eq!(joined(&echo.headers, "x-kept").as_deref(), Some("yes"));
    }

    #[test]
    fn the_gateway_port_comes_from_the_filter_chain_name() {
        let mut proxy = proxy();
        let sent = proxy.send(&case(8080, "/only", &[])).unwrap();
        assert_eq!(sent.exchange.echo.unwrap().backend, "app/alt");
        let sent = proxy.send(&case(80, "/only", &[])).unwrap();
        assert_eq!(sent.exchange.echo.unwrap().backend, "app/web");
    }

    #[test]
    fn local_replies_and_mirrors_are_the_filters() {
        let mut proxy = proxy();
        let sent = proxy.send(&case(8080, "/elsewhere", &[])).unwrap();
        assert_eq!(sent.exchange.status, 404);
        assert!(sent.exchange.echo.is_none());
        // The filter's own reply carries a text body, hence a content type.
        assert_eq!(
            joined(&sent.exchange.response_headers, "content-type").as_deref(),
            Some("text/plain; charset=utf-8")
        );
        let sent = proxy.send(&case(80, "/mirror/x", &[])).unwrap();
        assert_eq!(sent.mirrored_to, ["app/shadow"]);
        for _ in 0..300 {
            // More than the filter allows in flight at once: the clock moves on per request.
            assert_eq!(
                proxy
                    .send(&case(80, "/mirror/x", &[]))
                    .unwrap()
                    .mirrored_to
                    .len(),
                1
            );
        }
    }
}
