//! The native target: resolver + engine, with the proxy around them simulated the way Envoy applies
//! a decision (header edits in order, rewrites, local replies) and the echo backend's answer
//! modelled from the request it would receive.
//!
//! What only a live proxy can show (timeouts firing, retries, upstream protocols, endpoint routing)
//! is skipped here with the reason; `--target envoy` runs those for real.

use std::collections::BTreeMap;

use controller_shim::{Settings, resolve};
use engine::{Action, Decision, HeaderEdit, Request, RouteTable, SplitMix64};

use crate::exchange::{EchoView, Exchange, check, request_authority, request_headers};
use crate::outcome::Outcome;
use crate::snapshot::snapshot_for;
use crate::vectors::{Case, VectorFile};

/// The address the suite would send as Host when a case has none (TEST-NET-1, never routable).
pub const GATEWAY_IP: &str = "192.0.2.10";

/// Runs one request case through resolver and engine.
pub fn run(case: &Case, file: &VectorFile) -> Outcome {
    if let Some(reason) = crate::coverage::unchecked_request_case(case) {
        return Outcome::Skip(reason);
    }
    if let Some(reason) = needs_live_proxy(case) {
        return Outcome::Skip(reason);
    }
    let table = match compile(case, file) {
        Ok(table) => table,
        Err(e) => return Outcome::Fail(e),
    };
    let authority = request_authority(case, GATEWAY_IP);
    let headers = request_headers(case);
    let request = Request {
        port: case.request.port,
        sni: case.request.sni.as_deref(),
        method: &case.request.method,
        authority: &authority,
        path: &case.request.path,
        headers: &headers,
    };
    let seed = case
        .id
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let mut random = SplitMix64(seed);

    if !case.expect.distribution.is_empty() {
        return distribution(case, &table, &request, &mut random);
    }
    let exchange = simulate(case, &table.evaluate(&request, &mut random), &request);
    if let Err(e) = check(case, &exchange) {
        return Outcome::Fail(e);
    }
    if !case.expect.mirrored_to.is_empty()
        && let Err(e) = mirrors(case, &table, &request, &mut random)
    {
        return Outcome::Fail(e);
    }
    if !case.expect.per_backend_request_headers.is_empty()
        && let Err(e) = per_backend_headers(case, &table, &request, &mut random)
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

fn compile(case: &Case, file: &VectorFile) -> Result<RouteTable, String> {
    let snapshot = snapshot_for(case, file);
    let resolution = resolve(&snapshot, &Settings::default());
    let gateway = resolution
        .gateways
        .iter()
        .find(|g| {
            g.gateway.namespace == case.gateway.namespace && g.gateway.name == case.gateway.name
        })
        .ok_or_else(|| {
            format!(
                "the resolver produced no config for Gateway {}/{}",
                case.gateway.namespace, case.gateway.name
            )
        })?;
    RouteTable::compile(&gateway.config)
        .map_err(|e| format!("the engine rejected the resolved config: {e}"))
}

/// `namespace/service` from a backend key `namespace/service:port`.
fn service_of(backend_key: &str) -> String {
    backend_key
        .rsplit_once(':')
        .map_or(backend_key, |(service, _)| service)
        .to_owned()
}

/// What the client and the echo backend see when a proxy applies `decision`.
pub fn simulate(case: &Case, decision: &Decision<'_>, request: &Request<'_, String>) -> Exchange {
    match &decision.action {
        Action::Forward(forward) => {
            let mut headers: Vec<(String, String)> = request.headers.to_vec();
            apply(&mut headers, &forward.request_headers);
            let echo = EchoView {
                backend: service_of(forward.backend),
                method: request.method.to_owned(),
                path: forward
                    .path
                    .clone()
                    .unwrap_or_else(|| request.path.to_owned()),
                host: forward.authority.unwrap_or(request.authority).to_owned(),
                proto: String::new(),
                headers,
            };
            // The echo backend sets the response headers the request asked for.
            let mut response: Vec<(String, String)> = case
                .request
                .backend_response_headers
                .iter()
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect();
            apply(&mut response, &forward.response_headers);
            Exchange {
                request_target: request.path.to_owned(),
                status: 200,
                response_headers: response,
                echo: Some(echo),
            }
        }
        Action::Redirect(redirect) => {
            let mut response = vec![("location".to_owned(), redirect.location.clone())];
            apply(&mut response, &redirect.response_headers);
            Exchange {
                request_target: request.path.to_owned(),
                status: redirect.status,
                response_headers: response,
                echo: None,
            }
        }
        Action::Respond(local) => {
            let mut response = Vec::new();
            apply(&mut response, &local.headers);
            Exchange {
                request_target: request.path.to_owned(),
                status: local.status,
                response_headers: response,
                echo: None,
            }
        }
    }
}

/// Header edits as Envoy applies them: set replaces every value, add appends, remove deletes.
pub fn apply(headers: &mut Vec<(String, String)>, edits: &[HeaderEdit<'_>]) {
    for edit in edits {
        match edit {
            HeaderEdit::Set(name, value) => {
                headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
                headers.push(((*name).to_owned(), value.to_string()));
            }
            HeaderEdit::Add(name, value) => headers.push(((*name).to_owned(), value.to_string())),
            HeaderEdit::Remove(name) => headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name)),
        }
    }
}

/// Weighted splits: sample the engine's picker and compare fractions with the tolerance.
fn distribution(
    case: &Case,
    table: &RouteTable,
    request: &Request<'_, String>,
    random: &mut SplitMix64,
) -> Outcome {
    let samples = case.expect.samples.unwrap_or(1000);
    let tolerance = case.expect.distribution_tolerance.unwrap_or(0.05);
    let outcome = crate::distribution::sample(
        &case.id,
        &case.expect.distribution,
        samples,
        tolerance,
        || {
            let exchange = simulate(case, &table.evaluate(request, random), request);
            Ok::<_, std::convert::Infallible>(
                check(case, &exchange).map(|()| exchange.echo.map(|echo| echo.backend)),
            )
        },
    );
    match outcome {
        Ok(outcome) => outcome,
        Err(never) => match never {},
    }
}

/// Mirrors: the decision must name each expected mirror backend (sampled when a percentage applies).
fn mirrors(
    case: &Case,
    table: &RouteTable,
    request: &Request<'_, String>,
    random: &mut SplitMix64,
) -> Result<(), String> {
    const SAMPLES: u32 = 2000;
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..SAMPLES {
        if let Action::Forward(f) = table.evaluate(request, random).action {
            for m in f.mirrors {
                *seen.entry(service_of(m.backend)).or_default() += 1;
            }
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
fn per_backend_headers(
    case: &Case,
    table: &RouteTable,
    request: &Request<'_, String>,
    random: &mut SplitMix64,
) -> Result<(), String> {
    let mut checked = BTreeMap::new();
    for _ in 0..200 {
        let exchange = simulate(case, &table.evaluate(request, random), request);
        let Some(echo) = exchange.echo else { continue };
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
