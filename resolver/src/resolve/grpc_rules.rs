//! A GRPCRoute's rules → the engine's `grpcRoutes[].rules`, defaults filled in as the API server
//! would (method and header match `type` "+kubebuilder:default=Exact", backendRef weight 1).
//!
//! Invalid rules are dropped exactly as HTTPRoute rules are ([`super::rules`]): "All valid rules
//! within a Route attached to this Listener should be implemented. Invalid Route rules can be
//! ignored (sometimes that will mean the full Route)." The engine's validation carries the CRD's
//! own rules for GRPCMethodMatch ("One or both of 'service' or 'method' must be specified", the
//! character rules of Exact service and method names) and compiles RegularExpression matches with
//! its size bounds, so a rule the API server would have refused, or the engine could not compile,
//! is dropped with its reason instead of rejecting the Gateway's whole config.

use crate::api::grpcroutes::{
    GrpcRoute, GrpcRouteRules, GrpcRouteRulesMatches, GrpcRouteRulesMatchesHeadersType,
    GrpcRouteRulesMatchesMethodType,
};
use engine::config::{
    BackendRef, GrpcMatch, GrpcMethodMatch, GrpcRoute as EngineGrpcRoute, GrpcRule, HeaderMatch,
    ValueMatchType,
};

use super::backends::{self, Backends};
use super::conditions::{Problem, route as reason};
use super::filters::{self, Context};
use super::routes::RouteKind;
use super::rules::{
    Converted, Rules, engine_verdict, filters_and_backend_refs, first_of_each_name,
    rule_check_config,
};
use super::{Lookup, namespace};

/// Converts every rule of a GRPCRoute.
pub fn convert(lookup: &Lookup<'_>, route: &GrpcRoute) -> Converted {
    let route_namespace = namespace(&route.metadata);
    let mut out = Converted {
        backends: Backends::of(RouteKind::Grpc),
        ..Converted::default()
    };
    let mut valid = Vec::new();
    for (i, rule) in route.spec.rules.iter().flatten().enumerate() {
        let mut backends = Backends::of(RouteKind::Grpc);
        let mut notes = Vec::new();
        let converted = convert_rule(lookup, route_namespace, i, rule, &mut backends, &mut notes)
            .and_then(|r| engine_check(i, r, &backends.entries));
        out.keep(i, converted, &mut valid, backends, notes);
    }
    out.rules = Rules::Grpc(valid);
    out
}

fn convert_rule(
    lookup: &Lookup<'_>,
    route_namespace: &str,
    i: usize,
    rule: &GrpcRouteRules,
    backends: &mut Backends,
    notes: &mut Vec<String>,
) -> Result<GrpcRule, Problem> {
    // "If no matches are specified, the implementation MUST match every gRPC request."
    let matches = rule.matches.iter().flatten().map(convert_match).collect();

    let (filters, backend_refs) = filters_and_backend_refs!(
        lookup,
        route_namespace,
        i,
        rule,
        backends,
        notes,
        filters::grpc_rule_filter,
        filters::grpc_backend_filter
    );

    Ok(GrpcRule {
        name: rule.name.clone(),
        matches,
        filters,
        backend_refs,
    })
}

fn convert_match(m: &GrpcRouteRulesMatches) -> GrpcMatch {
    // GRPCMethodMatch service and method: "If left empty or omitted, will match all services"
    // (methods): the document says that one way, by leaving the field out. A method match left
    // with neither is kept as written, and the engine's check drops the rule ("One or both of
    // 'service' or 'method' must be specified").
    let method = m.method.as_ref().map(|method| GrpcMethodMatch {
        kind: match method.r#type {
            None | Some(GrpcRouteRulesMatchesMethodType::Exact) => ValueMatchType::Exact,
            Some(GrpcRouteRulesMatchesMethodType::RegularExpression) => {
                ValueMatchType::RegularExpression
            }
        },
        service: method.service.clone().filter(|s| !s.is_empty()),
        method: method.method.clone().filter(|s| !s.is_empty()),
    });
    let headers = first_of_each_name(m.headers.iter().flatten().map(|h| HeaderMatch {
        kind: match h.r#type {
            None | Some(GrpcRouteRulesMatchesHeadersType::Exact) => ValueMatchType::Exact,
            Some(GrpcRouteRulesMatchesHeadersType::RegularExpression) => {
                ValueMatchType::RegularExpression
            }
        },
        name: h.name.clone(),
        value: h.value.clone(),
    }));
    GrpcMatch { method, headers }
}

/// The engine's verdict on this rule alone (see `rules::engine_check`).
fn engine_check(
    i: usize,
    rule: GrpcRule,
    backends: &std::collections::BTreeMap<String, engine::config::Backend>,
) -> Result<GrpcRule, Problem> {
    let mut config = rule_check_config(backends);
    config.grpc_routes.push(EngineGrpcRoute {
        namespace: "rule-check".to_owned(),
        name: "rule-check".to_owned(),
        creation_timestamp: None,
        parents: Vec::new(),
        rules: vec![rule],
    });
    engine_verdict(i, &config, "grpcRoutes[0].rules[0]")?;
    Ok(config
        .grpc_routes
        .into_iter()
        .next()
        .and_then(|r| r.rules.into_iter().next())
        .unwrap_or_default())
}
