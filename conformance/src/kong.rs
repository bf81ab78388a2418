//! The kong-emulated target: every case through the controller-shim's Kong rendering (the
//! declarative configuration a DB-less Kong gets) loaded into `kong-emulator`, which runs the real
//! `gateway_wasm.wasm` under an emulation of each Kong release's semantics, derived from Kong's
//! and ngx_wasm_module's source. It is not Kong (`docs/kong.md`, *Emulation*).
//!
//! Backends are the emulator's: every backend answers at its endpoints and at the address its
//! cluster DNS name resolves to, like the conformance echo server (the request it received, and
//! the response headers `X-Echo-Set-Header` asks for). Gateway ports are Kong listen
//! ports one to one (`--kong-port P=P`).
//!
//! Cases whose features Kong cannot support, or the emulation does not model, are skipped with the
//! reason ([`unsupported`]).

use std::path::Path;

use anyhow::{Context, bail};
use controller_shim::deliver::kong::{KongOptions, declarative_config};
use controller_shim::resolution::GatewayResult;
use controller_shim::{Settings, resolve};
use kong_emulator::{ClientRequest, Filter, KongEmulator, KongVersion, Response};

use crate::exchange::{EchoView, Exchange, check, request_authority, request_headers};
use crate::native::GATEWAY_IP;
use crate::outcome::Outcome;
use crate::snapshot::{case_gateway, snapshot_for};
use crate::vectors::{Case, VectorFile};

/// The route secret the target renders with (any valid one: the emulator never sees clients that
/// could guess it).
const ROUTE_SECRET: &str = "conformance-kong-emulated";
/// The Service whose pods selector-less and headless test Services resolve to.
const ENDPOINTS_DONOR: (&str, &str) = ("gateway-conformance-infra", "infra-backend-v1");

/// Why Kong (or the emulation) cannot run a case, if it cannot.
pub fn unsupported(case: &Case) -> Option<String> {
    let request = &case.request;
    if request.backend_behavior.is_some() {
        return Some(
            "retries: a filter cannot set Kong's per-request retries (docs/kong.md, Limitations)"
                .to_owned(),
        );
    }
    if request.path.contains("delay=") {
        return Some(
            "timeouts: a filter cannot set Kong's per-request timeouts (docs/kong.md, Limitations)"
                .to_owned(),
        );
    }
    if request.scheme == "https" || request.sni.is_some() {
        return Some("TLS listeners: the emulation does not model TLS".to_owned());
    }
    if let Some(protocol) = &request.protocol {
        return Some(format!(
            "the client protocol {protocol}: the emulation speaks HTTP/1.1 only"
        ));
    }
    if let Some(protocol) = &case.expect.upstream_protocol {
        return Some(format!(
            "the upstream protocol ({protocol}) is Kong's service protocol, not the filter's"
        ));
    }
    if !case.expect.websocket_echo.is_empty() {
        return Some("WebSocket upgrades: the emulation speaks HTTP/1.1 requests only".to_owned());
    }
    None
}

/// One emulated Kong release with the filter compiled once.
pub struct KongEmulatedTarget {
    version: KongVersion,
    filter: Filter,
}

impl KongEmulatedTarget {
    pub fn new(wasm: &Path, version: KongVersion) -> anyhow::Result<KongEmulatedTarget> {
        if !wasm.exists() {
            bail!(
                "{} does not exist; build it with `cargo build -p plugin --target wasm32-wasip1 --profile wasm`",
                wasm.display()
            );
        }
        let bytes = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
        let filter = Filter::load(&bytes).map_err(anyhow::Error::msg)?;
        Ok(KongEmulatedTarget { version, filter })
    }

    pub fn version(&self) -> KongVersion {
        self.version
    }

    /// Runs one case; setup errors become failures that say what broke.
    pub fn run(&self, case: &Case, file: &VectorFile) -> Outcome {
        if let Some(reason) = unsupported(case) {
            return Outcome::Skip(reason);
        }
        match self.try_run(case, file) {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Fail(format!("{e:#}")),
        }
    }

    fn try_run(&self, case: &Case, file: &VectorFile) -> anyhow::Result<Outcome> {
        let gateway = resolved(case, file)?;
        let mut kong = KongEmulator::with_filter(self.version, &self.filter);
        backends(&mut kong, &gateway, case, file);
        let mut options = KongOptions::new("http://kong-emulated");
        options.route_secret = ROUTE_SECRET.to_owned();
        options.proxy = Some("127.0.0.1:8000".to_owned());
        options.config_as_string = !self.version.json_filter_config();
        options.ports = gateway
            .config
            .listeners
            .iter()
            .map(|l| (l.port, l.port))
            .collect();
        let declarative = declarative_config(&gateway, &options)
            .map_err(|e| anyhow::anyhow!("the shim cannot render this Gateway for Kong: {e}"))?;
        let loaded = kong
            .load(&declarative)
            .map_err(|e| anyhow::anyhow!("Kong's Admin API would refuse the configuration: {e}"))?;
        if !loaded {
            bail!(
                "Kong's workers failed to load the filter: {:?}",
                kong.error_log()
            );
        }
        let request = client_request(case);

        if !case.expect.distribution.is_empty() {
            return crate::distribution::sample(
                &case.id,
                &case.expect.distribution,
                case.expect.samples.unwrap_or(500),
                case.expect.distribution_tolerance.unwrap_or(0.05),
                || {
                    let exchange = to_exchange(&request, kong.send(request.clone()));
                    anyhow::Ok(check(case, &exchange).map(|()| exchange.echo.map(|e| e.backend)))
                },
            );
        }

        let response = kong.send(request.clone());
        let attempts = response.attempts.join(" → ");
        let exchange = to_exchange(&request, response);
        if let Err(e) = check(case, &exchange) {
            return Ok(Outcome::Fail(with_log(
                format!("{e} (Kong connected to: {attempts})"),
                &kong,
            )));
        }
        if !case.expect.per_backend_request_headers.is_empty() {
            for _ in 0..50 {
                let exchange = to_exchange(&request, kong.send(request.clone()));
                if let Err(e) = crate::exchange::check_backend_headers(case, &exchange) {
                    return Ok(Outcome::Fail(e));
                }
            }
        }
        if !case.expect.mirrored_to.is_empty()
            && let Err(e) = check_mirrors(case, &request, &mut kong)
        {
            return Ok(Outcome::Fail(with_log(e, &kong)));
        }
        if !kong.error_log().is_empty() {
            return Ok(Outcome::Fail(format!(
                "Kong's error log: {:?}",
                kong.error_log()
            )));
        }
        Ok(Outcome::Pass)
    }
}

fn with_log(error: String, kong: &KongEmulator) -> String {
    if kong.error_log().is_empty() {
        error
    } else {
        format!("{error} (Kong's error log: {:?})", kong.error_log())
    }
}

fn resolved(case: &Case, file: &VectorFile) -> anyhow::Result<GatewayResult> {
    let snapshot = snapshot_for(case, file);
    case_gateway(resolve(&snapshot, &Settings::default()), case).map_err(anyhow::Error::msg)
}

/// Every backend of the resolved Gateway answers where Kong will connect: at each endpoint the
/// EndpointSlices list, and at an address its cluster DNS name resolves to (used when there is
/// not exactly one endpoint).
fn backends(kong: &mut KongEmulator, gateway: &GatewayResult, case: &Case, file: &VectorFile) {
    for (i, target) in gateway.backends.values().enumerate() {
        // Selector-less and headless Services are backed by the donor's pods, as in the suite.
        let donor = file
            .services
            .iter()
            .chain(case.extra_services.iter())
            .find(|s| s.namespace == target.namespace && s.name == target.service)
            .is_some_and(|s| s.selector_less() || s.headless);
        let name = if donor {
            format!("{}/{}", ENDPOINTS_DONOR.0, ENDPOINTS_DONOR.1)
        } else {
            format!("{}/{}", target.namespace, target.service)
        };
        for endpoint in &target.endpoints {
            kong.listen(&format!("{}:{}", endpoint.address, endpoint.port), &name);
        }
        let ip = format!("10.96.{}.{}", i / 250, i % 250 + 1);
        kong.resolve(
            &format!("{}.{}.svc.cluster.local", target.service, target.namespace),
            &ip,
        );
        kong.listen(&format!("{ip}:{}", target.port), &name);
    }
}

fn client_request(case: &Case) -> ClientRequest {
    let mut headers = vec![("Host".to_owned(), request_authority(case, GATEWAY_IP))];
    headers.extend(request_headers(case));
    ClientRequest {
        port: case.request.port,
        method: case.request.method.clone(),
        target: case.request.path.clone(),
        headers,
        body: Vec::new(),
    }
}

fn to_exchange(request: &ClientRequest, response: Response) -> Exchange {
    let echo = response.upstream.map(|upstream| EchoView {
        backend: upstream.backend,
        method: upstream.method,
        path: upstream.target,
        host: upstream.host,
        proto: "HTTP/1.1".to_owned(),
        headers: upstream
            .headers
            .into_iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("host"))
            .collect(),
    });
    Exchange {
        request_target: request.target.clone(),
        status: response.status,
        response_headers: response.headers,
        echo,
    }
}

/// Each expected mirror backend receives copies: one per request, or the right share.
fn check_mirrors(
    case: &Case,
    request: &ClientRequest,
    kong: &mut KongEmulator,
) -> Result<(), String> {
    let sampled = case
        .expect
        .mirrored_to
        .iter()
        .any(|m| m.percent.is_some_and(|p| p < 100));
    let requests: u32 = if sampled { 400 } else { 1 };
    for _ in 1..requests {
        kong.send(request.clone());
    }
    for expected in &case.expect.mirrored_to {
        let count = kong
            .mirrored()
            .iter()
            .filter(|m| m.backend == expected.backend)
            .count();
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        crate::exchange::check_mirror_count(expected, count, u64::from(requests), sampled)?;
    }
    Ok(())
}
