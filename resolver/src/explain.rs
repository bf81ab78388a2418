//! Where a request would go, and why: the one implementation behind `controller-shim explain`
//! and the playground's `explain()` (a browser page), so both print the very same JSON.
//!
//! Consumes a [`Resolution`] (or one Gateway's [`PluginConfig`], as the live page does with the
//! configuration a proxy runs now), a request in the CLI's form ([`request_text`]:
//! `'GET http://host/path'`) and its headers. Produces an [`Explanation`]: the engine's decision
//! and trace, with fixed top-level keys `{"gateway", "listener", "decision", "trace"}`
//! ([`Explanation::to_json`]). The fields of `decision` are documented in `docs/playground.md`.
//!
//! Requests are evaluated with the same engine the filter runs, compiled from the same
//! PluginConfig, with a fixed random seed, so a weighted pick is reproducible.

use serde::Serialize;

use engine::decision::{LocalReason, RouteIdentity, RouteKind};
use engine::{Action, Decision, HeaderEdit, PluginConfig, RouteTable, SplitMix64};

use crate::request_text::{self, RequestText};
use crate::resolution::{GatewayResult, ObjectKey, Resolution};

/// The seed of the random source used for weighted picks and mirror percentages: explaining the
/// same request twice gives the same answer.
pub const RANDOM_SEED: u64 = 1;

/// Why a request could not be explained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    #[error(transparent)]
    Request(#[from] request_text::RequestTextError),
    #[error("{text:?} is not 'namespace/name'")]
    GatewayName { text: String },
    #[error("no Gateway {wanted} of ours (have: {have})")]
    NoSuchGateway { wanted: ObjectKey, have: String },
    #[error("the manifests hold no Gateway whose GatewayClass is ours")]
    NoGateway,
    #[error("several Gateways ({have}); pick one with --gateway")]
    SeveralGateways { have: String },
    #[error("the engine rejects the config of {gateway}: {error}")]
    Rejected { gateway: String, error: String },
}

/// A header given as a name and a value (JavaScript objects, the page's form) as explain
/// evaluates it: as [`request_text::parse_header`] reads `'name: value'`.
pub fn header(name: &str, value: &str) -> (String, String) {
    (name.trim().to_ascii_lowercase(), value.trim().to_owned())
}

/// `namespace/name`.
pub fn parse_key(text: &str) -> Result<ObjectKey, ExplainError> {
    let (namespace, name) = text
        .split_once('/')
        .ok_or_else(|| ExplainError::GatewayName {
            text: text.to_owned(),
        })?;
    Ok(ObjectKey {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })
}

/// The Gateway a request is explained against: `wanted` (`namespace/name`), or the only one.
pub fn pick_gateway<'r>(
    gateways: &'r [GatewayResult],
    wanted: Option<&str>,
) -> Result<&'r GatewayResult, ExplainError> {
    let names = || {
        gateways
            .iter()
            .map(|g| g.gateway.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match wanted {
        Some(text) => {
            let key = parse_key(text)?;
            gateways
                .iter()
                .find(|g| g.gateway == key)
                .ok_or_else(|| ExplainError::NoSuchGateway {
                    wanted: key,
                    have: names(),
                })
        }
        None => match gateways {
            [only] => Ok(only),
            [] => Err(ExplainError::NoGateway),
            _ => Err(ExplainError::SeveralGateways { have: names() }),
        },
    }
}

/// The answer of `explain`: `{"gateway", "listener", "decision", "trace"}`, in that order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// `namespace/name` of the Gateway.
    pub gateway: String,
    /// The listener the request entered through (`null` when none accepts it).
    pub listener: Option<String>,
    pub decision: DecisionView,
    /// The engine's trace: every step, every candidate considered and why it matched or not.
    pub trace: Vec<String>,
}

impl Explanation {
    /// The JSON both the CLI (`explain --json`, followed by a newline) and the page return:
    /// pretty-printed with two-space indentation, keys in declaration order.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail (string keys, no maps with other keys).
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// The decision, flattened for people and scripts. Every key is always present (`null` or `[]`
/// when it does not apply), so a consumer never guesses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionView {
    /// `forward` (to a backend), `redirect`, or `local` (the gateway answers itself).
    pub kind: &'static str,
    /// The route rule that matched.
    pub route: Option<RouteView>,
    /// The status the gateway answers with (redirect, local); `null` when forwarding.
    pub status: Option<u16>,
    /// Why the gateway answered locally: `no_listener`, `misdirected`, `no_route`, `no_backends`,
    /// `invalid_backend`, `unresolved_filter`, `cors_preflight`.
    pub reason: Option<&'static str>,
    /// For a gRPC call answered locally, the `grpc-status` sent with HTTP 200 (12 Unimplemented,
    /// 14 Unavailable); `null` otherwise.
    pub grpc_status: Option<u32>,
    /// Details for `invalid_backend` and `unresolved_filter` (the condition reason recorded by
    /// the resolver).
    pub message: Option<String>,
    /// The backend picked (the PluginConfig's `backends` key), or the invalid one.
    pub backend: Option<String>,
    /// The host's upstream name for that backend (Envoy cluster or Kong route prefix).
    pub upstream: Option<String>,
    /// The redirect's `Location`.
    pub location: Option<String>,
    /// The request target sent upstream, when a filter rewrote the path.
    pub path: Option<String>,
    /// The Host sent upstream, when a filter rewrote it.
    pub host: Option<String>,
    /// Request header edits, in the order they are applied.
    pub request_headers: Vec<HeaderEditView>,
    /// Response header edits (forward, redirect) or the local answer's headers.
    pub response_headers: Vec<HeaderEditView>,
    /// Total time for the request in ms (0 = disabled), `null` = the proxy's default.
    pub request_timeout_ms: Option<u64>,
    /// Time for each upstream attempt in ms.
    pub backend_request_timeout_ms: Option<u64>,
    pub retry: Option<RetryView>,
    /// Backends that get a copy of the request.
    pub mirrors: Vec<MirrorView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteView {
    /// `HTTPRoute` or `GRPCRoute`.
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    /// Index of the rule in `spec.rules`.
    pub rule: usize,
    pub rule_name: Option<String>,
    /// Index of the match in the rule's `matches` that matched.
    #[serde(rename = "match")]
    pub match_index: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeaderEditView {
    /// `set` (replace every value), `add` (one more value) or `remove`.
    pub op: &'static str,
    pub name: String,
    /// `null` for `remove`.
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryView {
    /// Retries after the first attempt.
    pub attempts: u32,
    pub codes: Vec<u16>,
    pub backoff_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MirrorView {
    pub backend: String,
    pub upstream: String,
}

/// Explains `request` against the Gateway `gateway` (or the only one) of a resolution.
pub fn explain(
    resolution: &Resolution,
    gateway: Option<&str>,
    request: &RequestText,
    headers: &[(String, String)],
) -> Result<Explanation, ExplainError> {
    let gateway = pick_gateway(&resolution.gateways, gateway)?;
    explain_config(&gateway.gateway, &gateway.config, request, headers)
}

/// Explains `request` against one Gateway's PluginConfig (what the live page does with the
/// configuration a proxy runs now).
pub fn explain_config(
    gateway: &ObjectKey,
    config: &PluginConfig,
    request: &RequestText,
    headers: &[(String, String)],
) -> Result<Explanation, ExplainError> {
    let table = RouteTable::compile(config).map_err(|e| ExplainError::Rejected {
        gateway: gateway.to_string(),
        error: e.to_string(),
    })?;
    let engine_request = request.to_engine(headers);
    let (decision, trace) = table.explain(&engine_request, &mut SplitMix64(RANDOM_SEED));
    Ok(Explanation {
        gateway: gateway.to_string(),
        listener: decision.listener.map(str::to_owned),
        decision: DecisionView::of(&decision),
        trace: trace.lines,
    })
}

fn edits(edits: &[HeaderEdit<'_>]) -> Vec<HeaderEditView> {
    edits
        .iter()
        .map(|edit| match edit {
            HeaderEdit::Set(name, value) => HeaderEditView {
                op: "set",
                name: (*name).to_owned(),
                value: Some(value.to_string()),
            },
            HeaderEdit::Add(name, value) => HeaderEditView {
                op: "add",
                name: (*name).to_owned(),
                value: Some(value.to_string()),
            },
            HeaderEdit::Remove(name) => HeaderEditView {
                op: "remove",
                name: (*name).to_owned(),
                value: None,
            },
        })
        .collect()
}

impl RouteView {
    fn of(route: &RouteIdentity<'_>) -> RouteView {
        RouteView {
            kind: match route.kind {
                RouteKind::HTTPRoute => "HTTPRoute",
                RouteKind::GRPCRoute => "GRPCRoute",
            },
            namespace: route.namespace.to_owned(),
            name: route.name.to_owned(),
            rule: route.rule_index,
            rule_name: route.rule_name.map(str::to_owned),
            match_index: route.match_index,
        }
    }
}

impl DecisionView {
    fn empty(kind: &'static str, decision: &Decision<'_>) -> DecisionView {
        DecisionView {
            kind,
            route: decision.route.as_ref().map(RouteView::of),
            status: None,
            reason: None,
            grpc_status: None,
            message: None,
            backend: None,
            upstream: None,
            location: None,
            path: None,
            host: None,
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            request_timeout_ms: None,
            backend_request_timeout_ms: None,
            retry: None,
            mirrors: Vec::new(),
        }
    }

    /// The view of an engine decision.
    pub fn of(decision: &Decision<'_>) -> DecisionView {
        match &decision.action {
            Action::Forward(forward) => DecisionView {
                backend: Some(forward.backend.to_owned()),
                upstream: Some(forward.upstream.to_owned()),
                path: forward.path.clone(),
                host: forward.authority.map(str::to_owned),
                request_headers: edits(&forward.request_headers),
                response_headers: edits(&forward.response_headers),
                request_timeout_ms: forward.request_timeout_ms,
                backend_request_timeout_ms: forward.backend_request_timeout_ms,
                retry: forward.retry.map(|retry| RetryView {
                    attempts: retry.attempts,
                    codes: retry.codes.to_vec(),
                    backoff_ms: retry.backoff_ms,
                }),
                mirrors: forward
                    .mirrors
                    .iter()
                    .map(|m| MirrorView {
                        backend: m.backend.to_owned(),
                        upstream: m.upstream.to_owned(),
                    })
                    .collect(),
                ..DecisionView::empty("forward", decision)
            },
            Action::Redirect(redirect) => DecisionView {
                status: Some(redirect.status),
                location: Some(redirect.location.clone()),
                response_headers: edits(&redirect.response_headers),
                ..DecisionView::empty("redirect", decision)
            },
            Action::Respond(local) => {
                let (backend, message) = match &local.reason {
                    LocalReason::InvalidBackend { backend, reason } => {
                        (Some((*backend).to_owned()), Some((*reason).to_owned()))
                    }
                    LocalReason::UnresolvedFilter { reason } => (None, Some((*reason).to_owned())),
                    _ => (None, None),
                };
                DecisionView {
                    status: Some(local.status),
                    reason: Some(local.reason.as_str()),
                    grpc_status: local.grpc.map(|code| code.code()),
                    message,
                    backend,
                    response_headers: edits(&local.headers),
                    ..DecisionView::empty("local", decision)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
