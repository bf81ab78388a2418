//! The request flow of one emulated Kong: router → `balancer_prepare` → (3.4–3.7: filter) →
//! `access.after` → (3.8+: filter) → request body → proxy attempts → response headers.

use std::collections::BTreeMap;

use serde_json::Value;
use wasmi::{Engine, Linker, Module};

use crate::abi::{self, HostState};
use crate::http::{Answer, ClientRequest, Response, Upstream, echo};
use crate::kong::{self, Entities};
use crate::stream::{KongContext, LocalResponse, Step, Stream, normalize_uri};
use crate::version::KongVersion;
use crate::vm::Vm;

/// How deep Kong may proxy to itself (the entry pass plus the backend pass; more is a loop).
const MAX_PASSES: usize = 3;

/// Callbacks ngx_wasm_module calls through `ngx_wavm_instance_call_funcref` whatever the lookup
/// found (src/common/proxy_wasm/ngx_proxy_wasm.c: `ngx_proxy_wasm_on_log` calls `proxy_on_done`
/// and `proxy_on_log`, the context teardown `proxy_on_delete`; src/http/proxy_wasm/
/// ngx_http_proxy_wasm.c: the header and body phases). `call_funcref` dereferences the lookup's
/// result, so a module without one of them takes the nginx worker down when the phase runs; the
/// emulation refuses such a module at load instead.
const CALLED_WITHOUT_LOOKUP_CHECK: &[&str] = &[
    "proxy_on_context_create",
    "proxy_on_vm_start",
    "proxy_on_configure",
    "proxy_on_request_headers",
    "proxy_on_request_body",
    "proxy_on_response_headers",
    "proxy_on_response_body",
    "proxy_on_done",
    "proxy_on_log",
    "proxy_on_delete",
];

/// The filter module, compiled once and shared by any number of emulated Kongs.
#[derive(Clone)]
pub struct Filter {
    engine: Engine,
    module: Module,
    linker: Linker<HostState>,
}

impl Filter {
    /// Compiles `wasm` (the `gateway_wasm.wasm` Kong finds in `wasm_filters_path`).
    pub fn load(wasm: &[u8]) -> Result<Filter, String> {
        let engine = Engine::default();
        let module =
            Module::new(&engine, wasm).map_err(|e| format!("the module does not load: {e}"))?;
        let missing: Vec<&str> = CALLED_WITHOUT_LOOKUP_CHECK
            .iter()
            .copied()
            .filter(|name| module.get_export(name).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "the module does not export {} (ngx_wasm_module calls them without checking that \
                 they exist: Kong would crash; a module trimmed with `packager trim-exports --host \
                 envoy` is for Envoy only)",
                missing.join(", ")
            ));
        }
        let linker = abi::linker(&engine, &module).map_err(|e| format!("linking the host: {e}"))?;
        Ok(Filter {
            engine,
            module,
            linker,
        })
    }
}

/// An emulated Kong with the filter loaded in one worker.
pub struct KongEmulator {
    version: KongVersion,
    filter: Filter,
    entities: Entities,
    vm: Option<Vm>,
    error_log: Vec<String>,
    dns: BTreeMap<String, String>,
    listening: BTreeMap<String, String>,
    answer: Answer,
    /// Kong's own plain-HTTP proxy listener (`127.0.0.1:<port>`).
    proxy_port: u16,
    mirrored: Vec<Upstream>,
}

impl KongEmulator {
    /// An empty Kong `version` whose `wasm_filters_path` holds `wasm` as `gateway_wasm`, listening
    /// on 127.0.0.1:8000.
    pub fn new(version: KongVersion, wasm: &[u8]) -> Result<KongEmulator, String> {
        Ok(KongEmulator::with_filter(version, &Filter::load(wasm)?))
    }

    /// Like [`KongEmulator::new`] with an already compiled filter.
    pub fn with_filter(version: KongVersion, filter: &Filter) -> KongEmulator {
        KongEmulator {
            version,
            filter: filter.clone(),
            entities: Entities::default(),
            vm: None,
            error_log: Vec::new(),
            dns: BTreeMap::new(),
            listening: BTreeMap::new(),
            answer: echo,
            proxy_port: 8000,
            mirrored: Vec::new(),
        }
    }

    pub fn version(&self) -> KongVersion {
        self.version
    }

    /// Kong's own proxy port (default 8000).
    pub fn set_proxy_port(&mut self, port: u16) {
        self.proxy_port = port;
    }

    /// A DNS name Kong resolves (`toip`).
    pub fn resolve(&mut self, name: &str, ip: &str) {
        self.dns.insert(name.to_owned(), ip.to_owned());
    }

    /// A backend listening at `ip:port`.
    pub fn listen(&mut self, address: &str, backend: &str) {
        self.listening
            .insert(address.to_owned(), backend.to_owned());
    }

    pub fn set_answer(&mut self, answer: Answer) {
        self.answer = answer;
    }

    /// `POST /config` then every worker's reconfiguration. `Err`: the Admin API refuses the
    /// configuration. `Ok(false)`: the Admin API accepted it, but the workers failed to load the
    /// filter (logged in [`Self::error_log`]) and keep serving the previous configuration.
    pub fn load(&mut self, declarative: &Value) -> Result<bool, String> {
        let entities = kong::parse_declarative(declarative, self.version)?;
        let vm = match &entities.chain {
            Some((_, config)) => match Vm::start(
                &self.filter.engine,
                &self.filter.module,
                &self.filter.linker,
                self.version,
                config.clone(),
            ) {
                Ok(vm) => Some(vm),
                Err(error) => {
                    self.error_log.push(format!(
                        "[error] declarative reconfigure failed on worker #0: failed to initialize filter chain: failed loading filters: {error}"
                    ));
                    return Ok(false);
                }
            },
            None => None,
        };
        self.entities = entities;
        self.vm = vm;
        Ok(true)
    }

    /// Kong's error log.
    pub fn error_log(&self) -> &[String] {
        &self.error_log
    }

    /// What the running filter logged.
    pub fn filter_log(&self) -> Vec<String> {
        self.vm
            .as_ref()
            .map(|vm| vm.logs().to_vec())
            .unwrap_or_default()
    }

    /// A filter metric's value (`None` when the filter did not define it).
    pub fn metric(&self, name: &str) -> Option<u64> {
        self.vm.as_ref().and_then(|vm| vm.metric(name))
    }

    /// Requests backends received from the filter's dispatches (mirrors), oldest first.
    pub fn mirrored(&self) -> &[Upstream] {
        &self.mirrored
    }

    /// A client request through Kong.
    pub fn send(&mut self, request: ClientRequest) -> Response {
        self.pass(request, 1)
    }

    fn pass(&mut self, request: ClientRequest, depth: usize) -> Response {
        if depth > MAX_PASSES {
            return Response::plain(508, "Kong proxied to itself too often");
        }
        let (raw_path, query) = match request.target.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (request.target.clone(), None),
        };
        let uri = normalize_uri(&raw_path);
        // access.before: the router.
        let Some((route_index, prefix)) = self.entities.route_for(&uri) else {
            return Response::plain(404, "no Route matched with those values");
        };
        let prefix = prefix.to_owned();
        let Some(route) = self.entities.routes.get(route_index).cloned() else {
            return Response::plain(500, "no route");
        };
        let Some(service) = self.entities.services.get(route.service).cloned() else {
            return Response::plain(503, "no Service found with those values");
        };
        let host_header = request
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("host"))
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let mut vars = BTreeMap::new();
        for (name, value) in [
            ("request_uri", request.target.clone()),
            ("uri", uri.clone()),
            ("args", query.clone().unwrap_or_default()),
            ("scheme", "http".to_owned()),
            ("request_method", request.method.clone()),
            ("server_port", request.port.to_string()),
            ("server_protocol", "HTTP/1.1".to_owned()),
            ("remote_addr", "127.0.0.1".to_owned()),
            ("remote_port", "40000".to_owned()),
            ("hostname", "kong".to_owned()),
            ("upstream_scheme", "http".to_owned()),
            (
                "upstream_uri",
                kong::upstream_uri(&raw_path, &prefix, route.strip_path),
            ),
            (
                "upstream_host",
                if route.preserve_host {
                    host_header.clone()
                } else {
                    String::new()
                },
            ),
            ("upstream_connection", "keep-alive".to_owned()),
            ("upstream_x_forwarded_for", "127.0.0.1".to_owned()),
            ("upstream_x_forwarded_proto", "http".to_owned()),
            (
                "upstream_x_forwarded_host",
                host_header.split(':').next().unwrap_or_default().to_owned(),
            ),
            ("upstream_x_forwarded_port", request.port.to_string()),
            ("upstream_x_forwarded_path", raw_path.clone()),
            ("kong_proxy_mode", "http".to_owned()),
        ] {
            vars.insert(name.to_owned(), value);
        }
        for name in crate::stream::CHANGEABLE_VARIABLES {
            vars.entry(name.to_owned()).or_default();
        }
        let mut stream = Stream {
            version: self.version,
            method: request.method.clone(),
            uri,
            args: query.clone().unwrap_or_default(),
            has_args: query.is_some(),
            scheme: "http".to_owned(),
            headers: request.headers.clone(),
            body: request.body.clone(),
            vars,
            host_props: BTreeMap::new(),
            kong: KongContext {
                route_id: route.id.clone(),
                route_name: route.name.clone(),
                service_id: service.id.clone(),
                service_name: service.name.clone(),
                balancer_host: service.host.clone(),
                balancer_port: service.port,
            },
            step: Step::RequestHeaders,
            local: None,
            response_status: 0,
            response_headers: Vec::new(),
            dispatches: Vec::new(),
            call_response: None,
            closed: false,
            log: Vec::new(),
        };
        if !self.version.host_property_handlers() {
            // kong/runloop/wasm.lua 3.4/3.5 `_M.attach`: set_proxy_wasm_property(...).
            stream
                .host_props
                .insert("kong.route_id".to_owned(), route.id.clone());
            stream
                .host_props
                .insert("kong.service_id".to_owned(), service.id.clone());
        }
        let filtered =
            matches!(&self.entities.chain, Some((r, _)) if *r == route_index) && self.vm.is_some();
        let mut context = None;
        if filtered && !self.version.filter_runs_after_access() {
            match self.request_headers(&mut stream, depth) {
                Ok(ctx) => context = Some(ctx),
                Err(response) => return *response,
            }
        }
        // access.after: the query, preserve_host, the first balancer execution, the Host header.
        if stream.has_args {
            let uri = stream.vars.entry("upstream_uri".to_owned()).or_default();
            uri.push('?');
            uri.push_str(&stream.args);
        }
        let preserve_host = stream
            .vars
            .get("upstream_host")
            .is_some_and(|h| !h.is_empty());
        let Some(mut ip) = kong::resolve(&stream.kong.balancer_host, &self.dns) else {
            return Response::plain(503, "name resolution failed");
        };
        if !preserve_host {
            let host = kong::host_header(&stream.kong.balancer_host, stream.kong.balancer_port);
            stream.vars.insert("upstream_host".to_owned(), host);
        }
        if filtered && self.version.filter_runs_after_access() {
            match self.request_headers(&mut stream, depth) {
                Ok(ctx) => context = Some(ctx),
                Err(response) => return *response,
            }
        }
        // Content phase: the body, read only when there is one.
        if let Some(ctx) = context
            && !stream.body.is_empty()
        {
            stream.step = Step::RequestBody;
            let size = i32::try_from(stream.body.len()).unwrap_or(i32::MAX);
            if let Err(response) = self.run(
                ctx,
                &mut stream,
                "proxy_on_request_body",
                &[ctx, size, 1],
                depth,
            ) {
                return *response;
            }
        }
        // Kong.balancer: the first try connects to balancer_data.ip (resolved in access.after)
        // and balancer_data.port; a retry executes the balancer again.
        let mut attempts = Vec::new();
        let tries = service.retries.saturating_add(1);
        let mut answered = None;
        for attempt in 0..tries {
            if attempt > 0 {
                match kong::resolve(&stream.kong.balancer_host, &self.dns) {
                    Some(next) => ip = next,
                    None => break,
                }
            }
            let peer = format!("{ip}:{}", stream.kong.balancer_port);
            attempts.push(peer.clone());
            if let Some(response) = self.connect(&peer, &stream, depth) {
                answered = Some(response);
                break;
            }
        }
        let mut response = match answered {
            Some(mut response) => {
                let mut all = attempts;
                all.append(&mut response.attempts);
                response.attempts = all;
                response
            }
            None => {
                let mut response = Response::plain(
                    502,
                    "An invalid response was received from the upstream server",
                );
                response.attempts = attempts;
                response
            }
        };
        if let Some(ctx) = context {
            self.response_headers(ctx, &mut stream, &mut response, depth);
        }
        response
    }

    /// One connection attempt: Kong itself (another pass), a listening backend, or nothing.
    fn connect(&mut self, peer: &str, stream: &Stream, depth: usize) -> Option<Response> {
        let headers = kong::upstream_headers(&stream.headers, &stream.vars);
        let target = stream.vars.get("upstream_uri").cloned().unwrap_or_default();
        let host = stream
            .vars
            .get("upstream_host")
            .cloned()
            .unwrap_or_default();
        if peer == format!("127.0.0.1:{}", self.proxy_port) {
            return Some(self.pass(
                ClientRequest {
                    port: self.proxy_port,
                    method: stream.method.clone(),
                    target,
                    headers,
                    body: stream.body.clone(),
                },
                depth + 1,
            ));
        }
        let backend = self.listening.get(peer)?.clone();
        let upstream = Upstream {
            backend,
            peer: peer.to_owned(),
            method: stream.method.clone(),
            target,
            host,
            headers,
            body: stream.body.clone(),
        };
        let (status, headers) = (self.answer)(&upstream);
        Some(Response {
            status,
            headers,
            body: Vec::new(),
            upstream: Some(upstream),
            attempts: Vec::new(),
        })
    }

    /// Creates the HTTP context and runs `on_request_headers` (end of stream: always false in
    /// ngx_wasm_module). `Err`: the request ends here (local response, trap).
    fn request_headers(&mut self, stream: &mut Stream, depth: usize) -> Result<i32, Box<Response>> {
        let Some(vm) = self.vm.as_mut() else {
            return Err(Box::new(Response::plain(500, "no filter")));
        };
        let ctx = vm.new_context().map_err(|e| Box::new(self.trapped(&e)))?;
        let headers = i32::try_from(stream.request_map().len()).unwrap_or(0);
        stream.step = Step::RequestHeaders;
        self.run(
            ctx,
            stream,
            "proxy_on_request_headers",
            &[ctx, headers, 0],
            depth,
        )?;
        Ok(ctx)
    }

    /// Runs one step with `stream` installed, then delivers its dispatches. A local response or a
    /// trap ends the request.
    fn run(
        &mut self,
        ctx: i32,
        stream: &mut Stream,
        export: &str,
        args: &[i32],
        depth: usize,
    ) -> Result<(), Box<Response>> {
        let Some(vm) = self.vm.as_mut() else {
            return Err(Box::new(Response::plain(500, "no filter")));
        };
        vm.set_stream(Some(stream.clone()));
        let result = vm.call(export, args);
        if let Some(after) = vm.take_stream() {
            *stream = after;
        }
        self.error_log.append(&mut stream.log);
        if let Err(error) = result {
            return Err(Box::new(self.trapped(&error)));
        }
        self.deliver_dispatches(ctx, stream, depth)?;
        if let Some(local) = stream.local.take() {
            return Err(Box::new(local_response(local)));
        }
        if stream.closed {
            return Err(Box::new(Response::plain(
                502,
                "the filter closed the stream",
            )));
        }
        Ok(())
    }

    fn trapped(&mut self, error: &str) -> Response {
        self.error_log
            .push(format!("[error] filter chain failed: {error}"));
        Response::plain(500, "An unexpected error occurred")
    }

    /// Sends every pending dispatch (ngx_wasm_module pauses the filter chain until they are
    /// answered) and calls `on_http_call_response` for each.
    fn deliver_dispatches(
        &mut self,
        ctx: i32,
        stream: &mut Stream,
        depth: usize,
    ) -> Result<(), Box<Response>> {
        let dispatches = std::mem::take(&mut stream.dispatches);
        for dispatch in dispatches {
            let header = |name: &str| {
                dispatch
                    .headers
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            };
            let request = ClientRequest {
                port: self.proxy_port,
                method: header(":method").unwrap_or_default(),
                target: header(":path").unwrap_or_default(),
                headers: dispatch
                    .headers
                    .iter()
                    .filter(|(n, _)| !n.starts_with(':'))
                    .cloned()
                    .chain(
                        header(":authority")
                            .or_else(|| Some(dispatch.upstream.clone()))
                            .map(|h| ("Host".to_owned(), h)),
                    )
                    .collect(),
                body: dispatch.body.clone(),
            };
            let answer = if dispatch.upstream == format!("127.0.0.1:{}", self.proxy_port) {
                Some(self.pass(request, depth + 1))
            } else {
                self.listening
                    .get(&dispatch.upstream)
                    .cloned()
                    .map(|backend| {
                        let upstream = Upstream {
                            backend,
                            peer: dispatch.upstream.clone(),
                            method: request.method.clone(),
                            target: request.target.clone(),
                            host: header(":authority").unwrap_or_default(),
                            headers: request.headers.clone(),
                            body: request.body.clone(),
                        };
                        let (status, headers) = (self.answer)(&upstream);
                        Response {
                            status,
                            headers,
                            body: Vec::new(),
                            upstream: Some(upstream),
                            attempts: Vec::new(),
                        }
                    })
            };
            let (headers, body) = match answer {
                Some(response) => {
                    if let Some(upstream) = response.upstream.clone() {
                        self.mirrored.push(upstream);
                    }
                    let mut headers = vec![(":status".to_owned(), response.status.to_string())];
                    headers.extend(response.headers);
                    (headers, response.body)
                }
                None => (Vec::new(), Vec::new()),
            };
            let count = i32::try_from(headers.len()).unwrap_or(0);
            let size = i32::try_from(body.len()).unwrap_or(0);
            let token = i32::try_from(dispatch.token).unwrap_or(0);
            let step = stream.step;
            stream.call_response = Some((headers, body));
            stream.step = Step::DispatchResponse;
            let Some(vm) = self.vm.as_mut() else {
                return Err(Box::new(Response::plain(500, "no filter")));
            };
            vm.set_stream(Some(stream.clone()));
            let result = vm.call("proxy_on_http_call_response", &[ctx, token, count, size, 0]);
            if let Some(after) = vm.take_stream() {
                *stream = after;
            }
            stream.call_response = None;
            stream.step = step;
            if let Err(error) = result {
                return Err(Box::new(self.trapped(&error)));
            }
        }
        Ok(())
    }

    /// `on_response_headers` with the backend's response; its edits apply to what the client gets.
    fn response_headers(
        &mut self,
        ctx: i32,
        stream: &mut Stream,
        response: &mut Response,
        depth: usize,
    ) {
        stream.step = Step::ResponseHeaders;
        stream.response_status = response.status;
        stream.response_headers = response.headers.clone();
        let count = i32::try_from(stream.response_headers.len() + 1).unwrap_or(0);
        match self.run(
            ctx,
            stream,
            "proxy_on_response_headers",
            &[ctx, count, 0],
            depth,
        ) {
            Ok(()) => {
                response.status = stream.response_status;
                response.headers = std::mem::take(&mut stream.response_headers);
            }
            Err(failed) => {
                response.status = failed.status;
                response.headers = failed.headers;
            }
        }
        if let Some(vm) = self.vm.as_mut() {
            let _ = vm.call("proxy_on_done", &[ctx]);
            let _ = vm.call("proxy_on_delete", &[ctx]);
        }
    }
}

fn local_response(local: LocalResponse) -> Response {
    Response {
        status: local.status,
        headers: local.headers,
        body: local.body,
        upstream: None,
        attempts: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module_exporting(callbacks: &[&str]) -> Vec<u8> {
        let mut text = String::from("(module (memory (export \"memory\") 1)\n");
        for name in callbacks {
            text.push_str(&format!("(func (export \"{name}\"))\n"));
        }
        text.push(')');
        wat::parse_str(&text).unwrap()
    }

    #[test]
    fn a_module_without_a_callback_kong_calls_unchecked_is_refused_by_name() {
        let all = module_exporting(CALLED_WITHOUT_LOOKUP_CHECK);
        assert!(Filter::load(&all).is_ok());
        let without: Vec<&str> = CALLED_WITHOUT_LOOKUP_CHECK
            .iter()
            .copied()
            .filter(|n| *n != "proxy_on_log" && *n != "proxy_on_done")
            .collect();
        let error = Filter::load(&module_exporting(&without)).err().unwrap();
        assert!(
            error.contains("does not export proxy_on_done, proxy_on_log"),
            "{error}"
        );
    }
}
