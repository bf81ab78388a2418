//! Which cases the runners can check at all, decided once for every target.
//!
//! Loading is lenient (other vector files add fields), but "a test runner tolerates unknown fields
//! when loading, but never passes a case with an expectation it does not check: such a case fails or
//! is skipped with the reason, and a flipped expectation must make it fail." Every runner (native,
//! Envoy, status) asks this module first and skips, with the reason printed, a case that:
//! - has a route of a kind the target does not handle (GRPCRoute on targets that do not run gRPC
//!   calls yet; the native target runs them, [`unchecked_request_case_with_grpc`]; status cases
//!   take HTTPRoute and GRPCRoute, [`STATUS_ROUTE_KINDS`]), which the HTTPRoute machinery would
//!   otherwise read as an HTTPRoute;
//! - expects something this model does not know (an unknown field anywhere under `expect`), or
//!   describes its request with fields the senders do not know (they would send another request);
//! - expects a gRPC outcome (`expect.grpcStatus`, `httpStatusOneOf`) on a target that does not
//!   send gRPC calls yet. The native target sends them and applies [`crate::grpc_status::check`];
//!   the real-Envoy target sends real ones ([`unchecked_grpc_capable_case`]) and skips only the
//!   gRPC cases it cannot send as a gRPC client would ([`crate::grpc_exchange::unsendable`]).

use serde_json::{Map, Value};

use crate::vectors::{Case, DEFAULT_ROUTE_KIND, RouteSpec, StatusCase};

/// The route kinds the resolver and the engine implement.
pub const SUPPORTED_ROUTE_KINDS: &[&str] = &[DEFAULT_ROUTE_KIND];

/// The route kinds the resolver implements (attachment and status): what the status runner checks.
pub const STATUS_ROUTE_KINDS: &[&str] = &[DEFAULT_ROUTE_KIND, "GRPCRoute"];

/// Why a target without gRPC calls (kong-emulated today) cannot check this request case, if so.
pub fn unchecked_request_case(case: &Case) -> Option<String> {
    unchecked(case, SUPPORTED_ROUTE_KINDS, false)
}

/// Why a target that runs gRPC calls and GRPCRoutes (native) cannot check this request case, if
/// so: what is left are fields the model does not know.
pub fn unchecked_request_case_with_grpc(case: &Case) -> Option<String> {
    unchecked(case, GRPC_REQUEST_ROUTE_KINDS, true)
}

/// Why a target that sends real gRPC calls over the network (the real-Envoy target, which checks
/// them with [`crate::grpc_exchange::check`]) cannot check this request case, if so: as
/// [`unchecked_request_case_with_grpc`], and a gRPC case no gRPC client would send that way.
pub fn unchecked_grpc_capable_case(case: &Case) -> Option<String> {
    unchecked_request_case_with_grpc(case).or_else(|| {
        if case.is_grpc() {
            crate::grpc_exchange::unsendable(case)
        } else {
            None
        }
    })
}

/// The route kinds a target that runs gRPC calls handles.
pub const GRPC_REQUEST_ROUTE_KINDS: &[&str] = &[DEFAULT_ROUTE_KIND, "GRPCRoute"];

fn unchecked(case: &Case, kinds: &[&str], grpc_calls: bool) -> Option<String> {
    if let Some(reason) = unsupported_kinds(&case.routes, kinds) {
        return Some(reason);
    }
    let unknown = unknown_request_case_fields(case);
    if !unknown.is_empty() {
        return Some(format!(
            "fields this runner does not know (never counted as checked): {}",
            unknown.join(", ")
        ));
    }
    if case.is_grpc() && !grpc_calls {
        return Some(
            "gRPC calls are not run by this target yet, so expect.grpcStatus cannot be checked"
                .to_owned(),
        );
    }
    None
}

/// Why no runner can check this status case today, if so.
pub fn unchecked_status_case(case: &StatusCase) -> Option<String> {
    if let Some(reason) = unsupported_kinds(&case.routes, STATUS_ROUTE_KINDS) {
        return Some(reason);
    }
    let unknown = unknown_status_case_fields(case);
    if !unknown.is_empty() {
        return Some(format!(
            "unknown expectation fields: {}",
            unknown.join(", ")
        ));
    }
    None
}

/// `GRPCRoute is not supported yet (gateway-conformance-infra/exact-matching)`.
pub fn unsupported_route_kinds(routes: &[RouteSpec]) -> Option<String> {
    unsupported_kinds(routes, SUPPORTED_ROUTE_KINDS)
}

/// The routes whose kind is not in `supported`, by kind.
fn unsupported_kinds(routes: &[RouteSpec], supported: &[&str]) -> Option<String> {
    let mut kinds: Vec<(&str, Vec<String>)> = Vec::new();
    for route in routes.iter().filter(|r| !supported.contains(&r.kind())) {
        match kinds.iter_mut().find(|(kind, _)| *kind == route.kind()) {
            Some((_, names)) => names.push(route.key()),
            None => kinds.push((route.kind(), vec![route.key()])),
        }
    }
    (!kinds.is_empty()).then(|| {
        kinds
            .iter()
            .map(|(kind, names)| format!("{kind} is not supported yet ({})", names.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// JSON paths of every field under `request` and `expect` the model does not know.
fn unknown_request_case_fields(case: &Case) -> Vec<String> {
    let mut unknown = Vec::new();
    let request = &case.request;
    push_keys(&mut unknown, "request", &request.extra);
    if let Some(behaviour) = &request.backend_behavior {
        push_keys(&mut unknown, "request.backendBehavior", &behaviour.extra);
    }
    if let Some(grpc) = &request.grpc {
        push_keys(&mut unknown, "request.grpc", &grpc.extra);
    }
    let expect = &case.expect;
    push_keys(&mut unknown, "expect", &expect.extra);
    if let Some(redirect) = &expect.redirect {
        push_keys(&mut unknown, "expect.redirect", &redirect.extra);
    }
    for (i, mirror) in expect.mirrored_to.iter().enumerate() {
        push_keys(
            &mut unknown,
            &format!("expect.mirroredTo[{i}]"),
            &mirror.extra,
        );
    }
    unknown
}

/// JSON paths of every expectation field of a status case the model does not know.
fn unknown_status_case_fields(case: &StatusCase) -> Vec<String> {
    let mut unknown = Vec::new();
    let expect = &case.expect;
    push_keys(&mut unknown, "expect", &expect.extra);
    for (i, entry) in expect.route_parent_conditions.iter().enumerate() {
        push_keys(
            &mut unknown,
            &format!("expect.routeParentConditions[{i}]"),
            &entry.extra,
        );
    }
    for (i, listener) in expect.gateway_listener_status.iter().flatten().enumerate() {
        push_keys(
            &mut unknown,
            &format!("expect.gatewayListenerStatus[{i}]"),
            &listener.extra,
        );
    }
    for (set, listeners) in expect.listener_set_listener_status.iter().flatten() {
        for (i, listener) in listeners.iter().enumerate() {
            push_keys(
                &mut unknown,
                &format!("expect.listenerSetListenerStatus.{set}[{i}]"),
                &listener.extra,
            );
        }
    }
    unknown
}

fn push_keys(out: &mut Vec<String>, prefix: &str, extra: &Map<String, Value>) {
    out.extend(extra.keys().map(|key| format!("{prefix}.{key}")));
}

#[cfg(test)]
mod tests;
