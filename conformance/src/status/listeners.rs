//! Listener expectations: `gatewayListenerStatus`, `listenerSetListenerStatus` and the
//! `listeners` prose.

use std::collections::BTreeMap;

use controller_shim::Resolution;
use controller_shim::api::GATEWAY_GROUP;
use controller_shim::api::meta::Condition;
use controller_shim::resolution::GatewayResult;

use super::{Parent, gateway, has_condition};
use crate::vectors::{ExpectedCondition, ListenerStatusExpect, StatusCase};

/// `listenerSetListenerStatus`: ListenerSet name → its listener status entries.
pub fn check_listener_sets(
    case: &StatusCase,
    resolution: &Resolution,
    sets: &BTreeMap<String, Vec<ListenerStatusExpect>>,
    report: &mut impl FnMut(String),
) {
    for (name, expected) in sets {
        let namespace = case
            .gateway
            .listener_sets
            .iter()
            .find(|s| s.name == *name)
            .map_or(case.gateway.namespace.as_str(), |s| s.namespace.as_str());
        let set_key = format!("{namespace}/{name}");
        let Some(update) = resolution
            .listener_sets
            .iter()
            .find(|s| s.listener_set.to_string() == set_key)
        else {
            report(format!("listenerSet {set_key}: no status"));
            continue;
        };
        let actual = update.status.listeners.as_deref().unwrap_or_default();
        for want in expected {
            match actual.iter().find(|l| l.name == want.name) {
                None => report(format!(
                    "listenerSet {set_key}: no listener status {:?}",
                    want.name
                )),
                Some(l) => {
                    for e in listener_diff(
                        want,
                        l.attached_routes,
                        &l.conditions,
                        l.supported_kinds
                            .iter()
                            .flatten()
                            .map(|k| (k.group.clone(), k.kind.clone()))
                            .collect(),
                    ) {
                        report(format!("listenerSet {set_key} listener {}: {e}", want.name));
                    }
                }
            }
        }
    }
}

fn listener_diff(
    want: &ListenerStatusExpect,
    attached: i32,
    conditions: &[Condition],
    kinds: Vec<(Option<String>, String)>,
) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(n) = want.attached_routes
        && i64::from(attached) != n
    {
        errors.push(format!("expected attachedRoutes {n}, got {attached}"));
    }
    for c in &want.conditions {
        if let Err(e) = has_condition(conditions, c, None) {
            errors.push(e);
        }
    }
    // As the suite's `listenersMatch` compares them: "Ensure that the expected
    // Listener.SupportedKinds items are present in actual Listener.SupportedKinds ... because the
    // implementation might support more Kinds than defined in the test", and an expected empty
    // list needs an empty one ("Expected list of SupportedKinds was empty, but the actual list for
    // comparison was not").
    if let Some(want_kinds) = &want.supported_kinds {
        let norm = |g: &Option<String>| g.clone().unwrap_or_else(|| GATEWAY_GROUP.to_owned());
        let w: Vec<(String, String)> = want_kinds
            .iter()
            .map(|k| (norm(&k.group), k.kind.clone()))
            .collect();
        let g: Vec<(String, String)> = kinds.iter().map(|(gr, k)| (norm(gr), k.clone())).collect();
        let missing: Vec<&(String, String)> = w.iter().filter(|k| !g.contains(k)).collect();
        if !missing.is_empty() || (w.is_empty() && !g.is_empty()) {
            errors.push(format!("expected supportedKinds {w:?}, got {g:?}"));
        }
    }
    errors
}

pub fn check_gateway(
    gw: &GatewayResult,
    expected: &[ListenerStatusExpect],
    report: &mut impl FnMut(String),
) {
    let actual = gw.status.listeners.as_deref().unwrap_or_default();
    if actual.len() != expected.len() {
        report(format!(
            "gateway {}: expected {} listener statuses, got {}",
            gw.gateway,
            expected.len(),
            actual.len()
        ));
    }
    for want in expected {
        let Some(l) = actual.iter().find(|l| l.name == want.name) else {
            report(format!(
                "gateway {}: no listener status {:?}",
                gw.gateway, want.name
            ));
            continue;
        };
        let kinds = l
            .supported_kinds
            .iter()
            .flatten()
            .map(|k| (k.group.clone(), k.kind.clone()))
            .collect();
        for e in listener_diff(want, l.attached_routes, &l.conditions, kinds) {
            report(format!(
                "gateway {} listener {}: {e}",
                gw.gateway, want.name
            ));
        }
        // attachedRouteNames: the routes the data plane serves on this listener.
        if let Some(names) = &want.attached_route_names {
            let mut got: Vec<String> = gw
                .config
                .routes
                .iter()
                .filter(|r| r.parents.iter().any(|p| p.listener == want.name))
                .map(|r| format!("{}/{}", r.namespace, r.name))
                .collect();
            let mut names = names.clone();
            got.sort();
            names.sort();
            if got != names {
                report(format!(
                    "gateway {} listener {}: expected routes {names:?} in the config, got {got:?}",
                    gw.gateway, want.name
                ));
            }
        }
    }
}

pub fn check_prose(
    resolution: &Resolution,
    parent: &Parent,
    wanted: &[ExpectedCondition],
    report: &mut impl FnMut(String),
) {
    let key = format!("{}/{}", parent.namespace, parent.name);
    let listeners: Vec<(String, Vec<Condition>)> = match parent.kind.as_str() {
        "ListenerSet" => resolution
            .listener_sets
            .iter()
            .find(|s| s.listener_set.to_string() == key)
            .and_then(|s| s.status.listeners.as_ref())
            .map(|ls| {
                ls.iter()
                    .map(|l| (l.name.clone(), l.conditions.clone()))
                    .collect()
            })
            .unwrap_or_default(),
        _ => gateway(resolution, &key)
            .and_then(|g| g.status.listeners.as_ref())
            .map(|ls| {
                ls.iter()
                    .map(|l| (l.name.clone(), l.conditions.clone()))
                    .collect()
            })
            .unwrap_or_default(),
    };
    if listeners.is_empty() {
        report(format!("{parent}: no listener status"));
    }
    for (name, conditions) in &listeners {
        for want in wanted {
            if let Err(e) = has_condition(conditions, want, None) {
                report(format!("{parent} listener {name}: {e}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::SupportedKind;

    fn want(kinds: &[&str]) -> ListenerStatusExpect {
        ListenerStatusExpect {
            supported_kinds: Some(
                kinds
                    .iter()
                    .map(|k| SupportedKind {
                        group: None,
                        kind: (*k).to_owned(),
                    })
                    .collect(),
            ),
            ..ListenerStatusExpect::default()
        }
    }

    fn got(kinds: &[&str]) -> Vec<(Option<String>, String)> {
        kinds
            .iter()
            .map(|k| (Some(GATEWAY_GROUP.to_owned()), (*k).to_owned()))
            .collect()
    }

    /// The suite's `listenersMatch`: expected kinds must be present (more may be), and an
    /// expected empty list needs an empty one.
    #[test]
    fn supported_kinds_compare_as_the_suite_does() {
        let diff = |w: &[&str], g: &[&str]| listener_diff(&want(w), 0, &[], got(g));
        assert!(diff(&["HTTPRoute"], &["HTTPRoute", "GRPCRoute"]).is_empty());
        assert!(diff(&["HTTPRoute"], &["HTTPRoute"]).is_empty());
        assert!(!diff(&["HTTPRoute"], &["GRPCRoute"]).is_empty());
        assert!(!diff(&["HTTPRoute", "GRPCRoute"], &["HTTPRoute"]).is_empty());
        assert!(diff(&[], &[]).is_empty());
        assert!(!diff(&[], &["HTTPRoute"]).is_empty());
    }
}
