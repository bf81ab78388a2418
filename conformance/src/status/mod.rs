//! Checks one `statusCases` entry against the resolver's output.
//!
//! Every expectation field of the schema is checked; a case with an expectation this module does not
//! know (an unknown field, or prose it does not recognise) is [`Outcome::Skip`], never passed.
//! Failures say what was expected and what the resolver produced.
//!
//! Besides the per-case expectations, the schema's shape requirement is checked on every route
//! status entry of the case: "Parent refs written in route status must carry group
//! gateway.networking.k8s.io, kind Gateway, the Gateway name, namespace (may be omitted only for a
//! same-namespace route), the implementation's controllerName, and conditions whose
//! observedGeneration equals metadata.generation."

use controller_shim::api::meta::Condition;
use controller_shim::api::{GATEWAY_GROUP, RouteParentStatus};
use controller_shim::kinds::StatusWrite;
use controller_shim::resolution::{GatewayResult, RouteStatusUpdate};
use controller_shim::{Kind, Resolution, Settings, Snapshot, resolve};
use engine::config::{Attachment, PluginConfig};

use crate::outcome::Outcome;
use crate::snapshot::{SnapshotOptions, try_snapshot_for};
use crate::vectors::{ExpectedCondition, RouteParentConditions, RouteSpec, StatusCase, VectorFile};

mod listeners;
mod mutation;

/// The one `listeners` phrasing the vectors use; the conditions are parsed out of it.
const LISTENERS_PREFIX: &str = "every listener of the parent has ";
const LISTENERS_SUFFIX: &str = " (any reason)";
const EXACT_PARENTS: &str = "status.parents must contain this parent (namespace required in parentRef) with only the listed condition checked";
const OBSERVED_GENERATION: &str = "every condition in status.parents[*].conditions has observedGeneration == metadata.generation, before and after the patch; metadata.generation must change";

/// Checks a status case with the default settings (the controller name the snapshot's
/// GatewayClass uses). [`Outcome::Fail`] carries every difference found.
pub fn check(case: &StatusCase, file: &VectorFile) -> Outcome {
    check_with(case, file, &Settings::default())
}

pub fn check_with(case: &StatusCase, file: &VectorFile, settings: &Settings) -> Outcome {
    let expect = &case.expect;
    if let Some(reason) = crate::coverage::unchecked_status_case(case) {
        return Outcome::Skip(reason);
    }
    if let Some(text) = &expect.listeners
        && listener_conditions(text).is_none()
    {
        return Outcome::Skip(format!("unrecognised listeners expectation: {text:?}"));
    }
    if let Some(text) = expect
        .exact_parents
        .as_ref()
        .filter(|t| *t != EXACT_PARENTS)
    {
        return Outcome::Skip(format!("unrecognised exactParents expectation: {text:?}"));
    }
    if let Some(text) = expect
        .observed_generation
        .as_ref()
        .filter(|t| *t != OBSERVED_GENERATION)
    {
        return Outcome::Skip(format!(
            "unrecognised observedGeneration expectation: {text:?}"
        ));
    }
    let mutation = match &expect.mutation {
        None => None,
        Some(text) => match mutation::parse(text) {
            Some(m) => Some(m),
            None => {
                return Outcome::Skip(format!("unrecognised mutation: {text:?}"));
            }
        },
    };
    if mutation.is_some() && expect.route.is_none() {
        return Outcome::Skip(
            "a mutation needs expect.route to name the route it patches".to_owned(),
        );
    }
    let options = SnapshotOptions {
        controller_name: settings.controller_name.clone(),
        ..SnapshotOptions::default()
    };
    let snapshot = match try_snapshot_for(case, file, &options) {
        Ok(s) => s,
        Err(e) => return Outcome::Skip(format!("objects do not convert: {e}")),
    };

    let mut errors = Vec::new();
    let resolution = resolve(&snapshot, settings);
    check_resolution(case, &snapshot, &resolution, settings, "", &mut errors);

    if let (Some(m), Some(route)) = (&mutation, &expect.route) {
        let patched = route_kind(case, route).and_then(|kind| {
            Ok((
                kind,
                mutation::apply(&snapshot, &resolution, kind, route, m)?,
            ))
        });
        match patched {
            Err(e) => errors.push(format!("mutation {:?}: {e}", m.text)),
            Ok((kind, patched)) => {
                let after = resolve(&patched, settings);
                if route_generation(&patched, kind, route)
                    == route_generation(&snapshot, kind, route)
                {
                    errors.push("after the patch: metadata.generation did not change".to_owned());
                }
                check_resolution(
                    case,
                    &patched,
                    &after,
                    settings,
                    "after the patch: ",
                    &mut errors,
                );
            }
        }
    }

    if errors.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail(errors.join("\n"))
    }
}

/// A parent as the vectors name it: `ns/name` (a Gateway), `Gateway ns/name (sectionName x)` or
/// `ListenerSet ns/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Parent {
    kind: String,
    namespace: String,
    name: String,
}

impl std::fmt::Display for Parent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// Parses a parent name. A trailing `(sectionName x)` is not a constraint: the suite's helper
/// "does not compare sectionName" (the case notes say so); `parentSectionNames` is the field that
/// constrains section names.
fn parse_parent(text: &str) -> Option<Parent> {
    let text = match text.find(" (") {
        Some(i) => text.get(..i)?,
        None => text,
    };
    let (kind, rest) = match text.split_once(' ') {
        Some((kind, rest)) => (kind, rest),
        None => ("Gateway", text),
    };
    let (namespace, name) = rest.split_once('/')?;
    Some(Parent {
        kind: kind.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })
}

/// `Type=Status` pairs out of the `listeners` prose.
fn listener_conditions(text: &str) -> Option<Vec<ExpectedCondition>> {
    let list = text
        .strip_prefix(LISTENERS_PREFIX)?
        .strip_suffix(LISTENERS_SUFFIX)?;
    list.split(", ")
        .map(|pair| {
            let (kind, status) = pair.split_once('=')?;
            Some(ExpectedCondition {
                kind: kind.to_owned(),
                status: status.to_owned(),
                reason: None,
            })
        })
        .collect()
}

fn check_resolution(
    case: &StatusCase,
    snapshot: &Snapshot,
    resolution: &Resolution,
    settings: &Settings,
    when: &str,
    errors: &mut Vec<String>,
) {
    let mut report = |e: String| errors.push(format!("{when}{e}"));
    let expect = &case.expect;
    let gateway_key = format!("{}/{}", case.gateway.namespace, case.gateway.name);

    // Shape of every route status entry of the case's routes.
    for route in &case.routes {
        let route_key = route.key();
        let Some(kind) = route_kind_named(route.kind()) else {
            report(format!(
                "route {route_key}: unknown kind {:?}",
                route.kind()
            ));
            continue;
        };
        let generation = route_generation(snapshot, kind, &route_key);
        if let Some(update) = route_status(resolution, kind, &route_key) {
            for parent in &update.status.parents {
                for e in parent_shape(parent, settings, generation) {
                    report(format!("route {route_key}: {e}"));
                }
            }
        }
    }

    let mut named_parents: Vec<Parent> = Vec::new();
    let mut route_checks: Vec<RouteParentConditions> = expect.route_parent_conditions.clone();
    if let Some(route) = &expect.route {
        route_checks.push(RouteParentConditions {
            route: route.clone(),
            parent: expect.parent.clone().unwrap_or_else(|| gateway_key.clone()),
            parent_section_names: None,
            conditions: expect.conditions.clone(),
            extra: Default::default(),
        });
    }
    for check in &route_checks {
        let (route, parent_text) = (&check.route, &check.parent);
        let (sections, conditions) = (&check.parent_section_names, &check.conditions);
        let Some(parent) = parse_parent(parent_text) else {
            report(format!("cannot read parent {parent_text:?}"));
            continue;
        };
        if !named_parents.contains(&parent) {
            named_parents.push(parent.clone());
        }
        let kind = match route_kind(case, route) {
            Ok(kind) => kind,
            Err(e) => {
                report(e);
                continue;
            }
        };
        let generation = route_generation(snapshot, kind, route);
        let route_ns = route.split('/').next().unwrap_or_default();
        let entries: Vec<&RouteParentStatus> = route_status(resolution, kind, route)
            .map(|u| {
                u.status
                    .parents
                    .iter()
                    .filter(|p| parent_is(p, &parent, route_ns))
                    .collect()
            })
            .unwrap_or_default();
        if expect.no_accepted_parents == Some(true) {
            // "status.parents empty or a single parent with Accepted=False": the conditions below
            // are then checked on that single entry.
            let all = route_status(resolution, kind, route).map_or(0, |u| u.status.parents.len());
            if all > 1 {
                report(format!(
                    "route {route}: noAcceptedParents: expected at most one parent entry, got {all}"
                ));
            }
        }
        if entries.is_empty() {
            report(format!(
                "route {route}: no status.parents entry for {parent}; got {}",
                describe_parents(route_status(resolution, kind, route))
            ));
            continue;
        }
        // `parentSectionNames` are the listener names the Go test passes to its helper; the helper
        // builds one expected parent per name but does not compare sectionName (the route's
        // parentRef may select listeners by port alone). What those names mean for the data
        // plane is checked instead: the route is attached to each of these listeners.
        if let Some(sections) = sections {
            let gw_key = format!("{}/{}", parent.namespace, parent.name);
            let config = match parent.kind.as_str() {
                "ListenerSet" => case
                    .gateway
                    .listener_sets
                    .iter()
                    .any(|s| s.namespace == parent.namespace && s.name == parent.name)
                    .then(|| format!("{}/{}", case.gateway.namespace, case.gateway.name))
                    .and_then(|g| gateway(resolution, &g)),
                _ => gateway(resolution, &gw_key),
            };
            let listener_name = |section: &str| match parent.kind.as_str() {
                "ListenerSet" => format!("{}/{}/{section}", parent.namespace, parent.name),
                _ => section.to_owned(),
            };
            match config {
                None => report(format!("route {route}: no config for {parent}")),
                Some(gw) => {
                    let attached = attached_listeners(&gw.config, kind, route);
                    for section in sections {
                        if !attached.contains(&listener_name(section).as_str()) {
                            report(format!(
                                "route {route} parent {parent}: expected to be attached to listener {section}, the config attaches it to {attached:?}"
                            ));
                        }
                    }
                }
            }
        }
        if expect.exact_parents.is_some()
            && entries.iter().any(|p| p.parent_ref.namespace.is_none())
        {
            report(format!(
                "route {route} parent {parent}: exactParents requires parentRef.namespace"
            ));
        }
        for entry in &entries {
            let section = entry
                .parent_ref
                .section_name
                .as_deref()
                .map_or_else(String::new, |s| format!(" sectionName {s}"));
            for want in conditions {
                if let Err(e) = has_condition(&entry.conditions, want, generation) {
                    report(format!("route {route} parent {parent}{section}: {e}"));
                }
            }
        }
    }

    let parent_gateway = expect
        .parent
        .as_deref()
        .and_then(parse_parent)
        .filter(|p| p.kind == "Gateway")
        .map_or_else(
            || gateway_key.clone(),
            |p| format!("{}/{}", p.namespace, p.name),
        );

    if let Some(n) = expect.gateway_attached_routes {
        match gateway(resolution, &parent_gateway) {
            None => report(format!("gateway {parent_gateway}: no result")),
            Some(gw) => {
                let listeners = gw.status.listeners.as_deref().unwrap_or_default();
                let counts: Vec<i32> = listeners.iter().map(|l| l.attached_routes).collect();
                // "GatewayMustHaveZeroRoutes accepts either no listener status or a single listener
                // with attachedRoutes 0"; other counts are totals over the listeners.
                let ok = if n == 0 {
                    counts.is_empty() || counts == [0]
                } else {
                    counts.iter().map(|c| i64::from(*c)).sum::<i64>() == n
                };
                if !ok {
                    report(format!(
                        "gateway {parent_gateway}: expected {n} attached routes, listeners have {counts:?}"
                    ));
                }
            }
        }
    }

    if let Some(expected) = &expect.gateway_listener_status {
        match gateway(resolution, &gateway_key) {
            None => report(format!("gateway {gateway_key}: no result")),
            Some(gw) => listeners::check_gateway(gw, expected, &mut report),
        }
    }

    if let Some(text) = &expect.listeners {
        let wanted = listener_conditions(text).unwrap_or_default();
        let mut parents = named_parents.clone();
        if parents.is_empty()
            && let Some((ns, name)) = parent_gateway.split_once('/')
        {
            parents.push(Parent {
                kind: "Gateway".to_owned(),
                namespace: ns.to_owned(),
                name: name.to_owned(),
            });
        }
        for parent in &parents {
            listeners::check_prose(resolution, parent, &wanted, &mut report);
        }
    }

    if let Some(sets) = &expect.listener_set_listener_status {
        listeners::check_listener_sets(case, resolution, sets, &mut report);
    }

    if let Some(n) = expect.gateway_attached_listener_sets {
        match gateway(resolution, &gateway_key) {
            None => report(format!("gateway {gateway_key}: no result")),
            Some(gw) if gw.status.attached_listener_sets.map(i64::from) != Some(n) => {
                report(format!(
                    "gateway {gateway_key}: expected attachedListenerSets {n}, got {:?}",
                    gw.status.attached_listener_sets
                ))
            }
            Some(_) => {}
        }
    }
}

fn route_status<'r>(
    resolution: &'r Resolution,
    kind: Kind,
    route: &str,
) -> Option<&'r RouteStatusUpdate> {
    resolution
        .routes
        .iter()
        .find(|r| r.kind == kind && r.route.to_string() == route)
}

/// The table's route kind for a `routes[].kind` string.
fn route_kind_named(kind: &str) -> Option<Kind> {
    Kind::from_manifest(GATEWAY_GROUP, kind)
        .filter(|k| matches!(k.status(), StatusWrite::RouteParents { .. }))
}

/// The kind of the case's route `key` (expectations name routes by `namespace/name` only). When
/// routes of two kinds share that name the expectation does not say which it means: an error
/// rather than a guess.
pub(super) fn route_kind(case: &StatusCase, key: &str) -> Result<Kind, String> {
    let mut kinds: Vec<&str> = case
        .routes
        .iter()
        .filter(|r| r.key() == key)
        .map(RouteSpec::kind)
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    match kinds.as_slice() {
        [] => Ok(Kind::HttpRoute),
        [kind] => {
            route_kind_named(kind).ok_or_else(|| format!("route {key}: unknown kind {kind:?}"))
        }
        _ => Err(format!(
            "route {key}: routes of kinds {} share this name; the expectation cannot say which",
            kinds.join(" and ")
        )),
    }
}

/// `metadata.generation` of a route in the snapshot.
fn route_generation(snapshot: &Snapshot, kind: Kind, route: &str) -> Option<i64> {
    snapshot
        .objects_of(kind)
        .into_iter()
        .find(|o| o.key().to_string() == route)
        .and_then(|o| o.metadata().generation)
}

/// The listeners a route of `kind` is attached to in a config.
fn attached_listeners<'c>(config: &'c PluginConfig, kind: Kind, route: &str) -> Vec<&'c str> {
    let parents: Vec<&'c [Attachment]> = if kind == Kind::GrpcRoute {
        config
            .grpc_routes
            .iter()
            .filter(|r| format!("{}/{}", r.namespace, r.name) == route)
            .map(|r| r.parents.as_slice())
            .collect()
    } else {
        config
            .routes
            .iter()
            .filter(|r| format!("{}/{}", r.namespace, r.name) == route)
            .map(|r| r.parents.as_slice())
            .collect()
    };
    parents
        .into_iter()
        .flatten()
        .map(|p| p.listener.as_str())
        .collect()
}

pub(super) fn gateway<'r>(resolution: &'r Resolution, key: &str) -> Option<&'r GatewayResult> {
    resolution
        .gateways
        .iter()
        .find(|g| g.gateway.to_string() == key)
}

fn parent_is(entry: &RouteParentStatus, parent: &Parent, route_ns: &str) -> bool {
    let r = &entry.parent_ref;
    r.kind.as_deref().unwrap_or("Gateway") == parent.kind
        && r.name == parent.name
        && r.namespace.as_deref().unwrap_or(route_ns) == parent.namespace
}

fn describe_parents(update: Option<&RouteStatusUpdate>) -> String {
    match update {
        None => "no status for the route".to_owned(),
        Some(u) if u.status.parents.is_empty() => "no parents".to_owned(),
        Some(u) => u
            .status
            .parents
            .iter()
            .map(|p| {
                let r = &p.parent_ref;
                format!(
                    "{} {}/{}{} [{}]",
                    r.kind.as_deref().unwrap_or("Gateway"),
                    r.namespace.as_deref().unwrap_or("<route ns>"),
                    r.name,
                    r.section_name
                        .as_deref()
                        .map_or_else(String::new, |s| format!(" sectionName {s}")),
                    describe_conditions(&p.conditions)
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
    }
}

pub(super) fn describe_conditions(conditions: &[Condition]) -> String {
    conditions
        .iter()
        .map(|c| format!("{}={} ({})", c.type_, c.status, c.reason))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The schema's shape requirement on a route status entry.
/// The namespace "may be omitted only for a same-namespace route": an omitted namespace means the
/// route's own, so omission cannot be wrong here (`exactParents` cases require it separately).
fn parent_shape(
    parent: &RouteParentStatus,
    settings: &Settings,
    generation: Option<i64>,
) -> Vec<String> {
    let mut errors = Vec::new();
    let r = &parent.parent_ref;
    if r.group.as_deref() != Some(GATEWAY_GROUP) {
        errors.push(format!(
            "parentRef {}: group must be {GATEWAY_GROUP}, got {:?}",
            r.name, r.group
        ));
    }
    if !matches!(r.kind.as_deref(), Some("Gateway" | "ListenerSet")) {
        errors.push(format!(
            "parentRef {}: kind must be Gateway (or ListenerSet), got {:?}",
            r.name, r.kind
        ));
    }
    if parent.controller_name != settings.controller_name {
        errors.push(format!(
            "parentRef {}: controllerName {:?}, expected {:?}",
            r.name, parent.controller_name, settings.controller_name
        ));
    }
    for c in &parent.conditions {
        if c.observed_generation != generation {
            errors.push(format!(
                "parentRef {}: condition {} has observedGeneration {:?}, metadata.generation is {:?}",
                r.name, c.type_, c.observed_generation, generation
            ));
        }
    }
    errors
}

/// Whether `conditions` holds `want` (reason absent = any), stamped with `generation` when given.
pub(super) fn has_condition(
    conditions: &[Condition],
    want: &ExpectedCondition,
    generation: Option<i64>,
) -> Result<(), String> {
    let Some(c) = conditions.iter().find(|c| c.type_ == want.kind) else {
        return Err(format!(
            "expected {want}, no {} condition (got {})",
            want.kind,
            describe_conditions(conditions)
        ));
    };
    let reason_ok = want.reason.as_deref().is_none_or(|r| r == c.reason);
    if c.status != want.status || !reason_ok {
        return Err(format!(
            "expected {want}, got {}={} ({}: {})",
            c.type_, c.status, c.reason, c.message
        ));
    }
    if generation.is_some() && c.observed_generation != generation {
        return Err(format!(
            "{}: observedGeneration {:?}, expected {:?}",
            c.type_, c.observed_generation, generation
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_names() {
        assert_eq!(
            parse_parent("ns/gw"),
            Some(Parent {
                kind: "Gateway".into(),
                namespace: "ns".into(),
                name: "gw".into()
            })
        );
        assert_eq!(
            parse_parent("Gateway ns/gw (sectionName x)").unwrap().name,
            "gw"
        );
        assert_eq!(
            parse_parent("ListenerSet ns/ls").unwrap().kind,
            "ListenerSet"
        );
        assert_eq!(parse_parent("nonsense"), None);
    }

    /// The GRPCRoute status cases are checked, not waved through: flipping an expected condition,
    /// or naming a listener the route is not attached to, fails them.
    #[test]
    fn grpcroute_status_cases_fail_when_flipped() {
        let file = crate::vectors::load(crate::vectors::grpcroute_vectors_path()).unwrap();
        for case in &file.status_cases {
            assert_eq!(check(case, &file), Outcome::Pass, "{}", case.id);
            let mut flipped = case.clone();
            flipped.expect.route_parent_conditions[0].conditions[0].status = "False".into();
            assert!(
                matches!(check(&flipped, &file), Outcome::Fail(_)),
                "{} flipped",
                case.id
            );
        }
        let mut case = file
            .status_cases
            .iter()
            .find(|c| c.id.starts_with("GRPCRouteListenerHostnameMatching"))
            .unwrap()
            .clone();
        case.expect.route_parent_conditions[0].parent_section_names =
            Some(vec!["listener-4".into()]);
        let Outcome::Fail(error) = check(&case, &file) else {
            panic!("a wrong listener expectation must fail");
        };
        assert!(
            error.contains("expected to be attached to listener listener-4"),
            "{error}"
        );
    }

    /// Expectations name routes by `namespace/name`; when an HTTPRoute and a GRPCRoute share it, the
    /// runner says it cannot tell which is meant instead of guessing.
    #[test]
    fn a_name_shared_by_two_kinds_is_ambiguous() {
        let file = crate::vectors::load(crate::vectors::grpcroute_vectors_path()).unwrap();
        let mut case = file.status_cases[0].clone();
        let mut twin = case.routes[0].clone();
        twin.kind = Some("HTTPRoute".into());
        case.routes.push(twin);
        let error = route_kind(&case, &case.routes[0].key()).unwrap_err();
        assert!(
            error.contains("GRPCRoute and HTTPRoute share this name"),
            "{error}"
        );
    }

    #[test]
    fn listener_prose() {
        let c = listener_conditions(
            "every listener of the parent has Accepted=True, ResolvedRefs=True, Programmed=True (any reason)",
        )
        .unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[2].kind, "Programmed");
        assert!(listener_conditions("some listeners are fine").is_none());
    }
}
