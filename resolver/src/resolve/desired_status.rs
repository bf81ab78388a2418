//! Status for routes, listeners, Gateways and ListenerSets, and the assembly of the Resolution.

use crate::api::gateways::{
    GatewayStatus, GatewayStatusListeners, GatewayStatusListenersSupportedKinds,
};
use crate::api::listenersets::{
    ListenerSetStatus, ListenerSetStatusListeners, ListenerSetStatusListenersSupportedKinds,
};
use crate::api::meta::Condition;
use crate::api::{RouteParentStatus, RouteStatus};

use super::attach::RouteResult;
use super::conditions::{
    self, Problem, Stamp, carry_transition_times, gateway as gw_reason, route as route_reason,
};
use super::listeners::{GatewayModel, ListenerModel, Owner};
use super::routes::RouteObject;
use super::{Lookup, config, key};
use crate::resolution::{GatewayResult, ListenerSetStatusUpdate, Resolution, RouteStatusUpdate};

pub fn finish<'a>(
    lookup: &Lookup<'a>,
    gateways: &mut [GatewayModel<'a>],
    routes: &[RouteResult<'a>],
    resolution: &mut Resolution,
) {
    for (i, gw) in gateways.iter().enumerate() {
        let built = config::build(i, gw, routes);
        resolution.gateways.push(GatewayResult {
            gateway: gw.key.clone(),
            generation: gw.object.metadata.generation,
            config: built.config,
            backends: built.backends,
            tls: built.tls,
            status: gateway_status(lookup, gw),
        });
        resolution
            .listener_sets
            .extend(listener_set_statuses(lookup, gw));
    }
    for route in routes {
        resolution.routes.push(route_status(lookup, route));
    }
    resolution.routes.extend(stale_routes(lookup, routes));
}

fn route_status(lookup: &Lookup<'_>, route: &RouteResult<'_>) -> RouteStatusUpdate {
    let meta = route.object.meta();
    let stamp = Stamp {
        generation: meta.generation,
        now: &lookup.settings.now,
    };
    let old = route.object.current_parents();
    let parents = route
        .parents
        .iter()
        .map(|parent| {
            let mut conditions = vec![match &parent.accepted {
                Ok(_) => {
                    let notes: Vec<&str> = route
                        .rules
                        .notes
                        .iter()
                        .chain(&parent.lost)
                        .map(String::as_str)
                        .collect();
                    let mut message = "Accepted".to_owned();
                    if !notes.is_empty() {
                        message = format!("Accepted; {}", notes.join("; "));
                    }
                    stamp.condition(conditions::ACCEPTED, true, route_reason::ACCEPTED, &message)
                }
                Err(p) => stamp.condition(conditions::ACCEPTED, false, p.reason, &p.message),
            }];
            conditions.push(match &route.rules.backends.problem {
                None => stamp.condition(
                    conditions::RESOLVED_REFS,
                    true,
                    route_reason::RESOLVED_REFS,
                    "All references resolved",
                ),
                Some(p) => stamp.condition(conditions::RESOLVED_REFS, false, p.reason, &p.message),
            });
            if parent.accepted.is_ok()
                && let Some((_, first)) = route.rules.dropped.first()
            {
                let message = route
                    .rules
                    .dropped
                    .iter()
                    .map(|(_, p)| p.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                // "The message for this condition MUST start with the prefix "Dropped Rule" and
                // include information about which Rules have been dropped." (the messages name
                // `rules[i]`).
                conditions.push(stamp.condition(
                    conditions::PARTIALLY_INVALID,
                    true,
                    first.reason,
                    &format!("Dropped Rule(s): {message}"),
                ));
            }
            let previous = old.iter().find(|p| {
                p.controller_name == lookup.settings.controller_name
                    && p.parent_ref == parent.parent_ref
            });
            carry_transition_times(&mut conditions, previous.map(|p| p.conditions));
            RouteParentStatus {
                conditions,
                controller_name: lookup.settings.controller_name.clone(),
                parent_ref: parent.parent_ref.clone(),
            }
        })
        .collect();
    RouteStatusUpdate {
        kind: route.kind().kind(),
        route: route.key.clone(),
        generation: meta.generation,
        status: RouteStatus { parents },
    }
}

/// Routes that no longer reference any parent of ours but still carry our status entries: an empty
/// update removes them ("Controllers should ensure that entries to status populated with their
/// ControllerName are cleaned up when they are no longer necessary.").
fn stale_routes<'a>(
    lookup: &'a Lookup<'_>,
    routes: &'a [RouteResult<'_>],
) -> impl Iterator<Item = RouteStatusUpdate> + 'a {
    let snapshot = lookup.snapshot;
    let all = snapshot
        .http_routes
        .iter()
        .map(RouteObject::Http)
        .chain(snapshot.grpc_routes.iter().map(RouteObject::Grpc));
    all.filter_map(move |r| {
        let ours = r
            .current_parents()
            .iter()
            .any(|p| p.controller_name == lookup.settings.controller_name);
        let route_key = key(r.meta());
        let resolved = routes
            .iter()
            .any(|x| x.kind() == r.kind() && x.key == route_key);
        (ours && !resolved).then(|| RouteStatusUpdate {
            kind: r.kind().kind(),
            route: route_key,
            generation: r.meta().generation,
            status: RouteStatus { parents: vec![] },
        })
    })
}

/// Listener conditions: Accepted, Conflicted, ResolvedRefs, Programmed.
fn listener_conditions(stamp: &Stamp<'_>, l: &ListenerModel, parent_ok: bool) -> Vec<Condition> {
    let accepted = match (&l.accepted, &l.conflicted) {
        (Err(p), _) | (Ok(()), Some(p)) => Err(p.clone()),
        (Ok(()), None) => Ok(()),
    };
    let programmed = if !parent_ok {
        Err(Problem::new(
            gw_reason::INVALID,
            "the parent is not accepted",
        ))
    } else if l.programmed() {
        Ok(())
    } else {
        let why = accepted
            .as_ref()
            .err()
            .or(l.tls_problem.as_ref())
            .map_or_else(String::new, |p| p.message.clone());
        Err(Problem::new(gw_reason::INVALID, why))
    };
    vec![
        stamp.result(
            conditions::ACCEPTED,
            &accepted,
            gw_reason::ACCEPTED,
            "Accepted",
        ),
        match &l.conflicted {
            Some(p) => stamp.condition(conditions::CONFLICTED, true, p.reason, &p.message),
            None => stamp.condition(
                conditions::CONFLICTED,
                false,
                gw_reason::NO_CONFLICTS,
                "No conflicts",
            ),
        },
        stamp.result(
            conditions::RESOLVED_REFS,
            &l.resolved_refs(),
            gw_reason::RESOLVED_REFS,
            "All references resolved",
        ),
        stamp.result(
            conditions::PROGRAMMED,
            &programmed,
            gw_reason::PROGRAMMED,
            "Programmed",
        ),
    ]
}

fn gateway_status(lookup: &Lookup<'_>, gw: &GatewayModel<'_>) -> GatewayStatus {
    let stamp = Stamp {
        generation: gw.object.metadata.generation,
        now: &lookup.settings.now,
    };
    let old = gw.object.status.as_ref();
    let own: Vec<&ListenerModel> = gw.listeners_of(Owner::Gateway).map(|(_, l)| l).collect();
    // `status.listeners` is a map keyed by name: a repeated name (which rejects the Gateway) gets
    // one entry, or the API server would refuse the whole status update.
    let mut named = std::collections::BTreeSet::new();
    let listeners = own
        .iter()
        .filter(|l| named.insert(l.section_name.as_str()))
        .map(|l| {
            let mut conditions = listener_conditions(&stamp, l, gw.accepted.is_ok());
            let previous = old
                .and_then(|s| s.listeners.as_ref())
                .and_then(|ls| ls.iter().find(|x| x.name == l.section_name));
            carry_transition_times(&mut conditions, previous.map(|p| p.conditions.as_slice()));
            GatewayStatusListeners {
                attached_routes: l.attached_routes,
                conditions,
                name: l.section_name.clone(),
                supported_kinds: Some(
                    l.supported_kinds
                        .iter()
                        .map(|(group, kind)| GatewayStatusListenersSupportedKinds {
                            group: Some(group.clone()),
                            kind: kind.clone(),
                        })
                        .collect(),
                ),
            }
        })
        .collect();

    let (accepted, any_programmed) = objects_conditions(&gw.accepted, &own);
    let programmed = if let Err(p) = &accepted {
        Err(Problem::new(gw_reason::INVALID, p.message.clone()))
    } else if !any_programmed {
        Err(Problem::new(
            gw_reason::INVALID,
            "no listener of this Gateway can be programmed",
        ))
    } else if gw
        .object
        .spec
        .addresses
        .as_ref()
        .is_some_and(|a| !a.is_empty())
    {
        // "If a value is set in the spec and the requested address is invalid or unavailable, the
        // implementation MUST indicate this in an associated entry in GatewayStatus.Conditions."
        // The data plane's addresses are configured outside this controller.
        Err(Problem::new(
            gw_reason::ADDRESS_NOT_ASSIGNED,
            "this controller does not assign addresses; spec.addresses is not honoured",
        ))
    } else {
        Ok(())
    };
    let accepted_condition = match &accepted {
        Ok(message) => stamp.condition(conditions::ACCEPTED, true, message.0, &message.1),
        Err(p) => stamp.condition(conditions::ACCEPTED, false, p.reason, &p.message),
    };
    let mut conditions = vec![
        accepted_condition,
        stamp.result(
            conditions::PROGRAMMED,
            &programmed,
            gw_reason::PROGRAMMED,
            "Programmed",
        ),
    ];
    carry_transition_times(&mut conditions, old.and_then(|s| s.conditions.as_deref()));

    let attached_sets = gw
        .listener_sets
        .iter()
        .enumerate()
        .filter(|(i, s)| {
            s.allowed.is_ok()
                && gw.accepted.is_ok()
                && gw
                    .listeners_of(Owner::ListenerSet(*i))
                    .any(|(_, l)| l.accepted.is_ok() && l.conflicted.is_none())
        })
        .count();
    let has_sets = !gw.listener_sets.is_empty() || gw.object.spec.allowed_listeners.is_some();
    GatewayStatus {
        addresses: None,
        attached_listener_sets: has_sets.then(|| i32::try_from(attached_sets).unwrap_or(i32::MAX)),
        conditions: Some(conditions),
        listeners: Some(listeners),
    }
}

/// Accepted for an object with listeners (Gateway or ListenerSet): `(reason, message)` when
/// accepted, and whether any listener is programmed.
///
/// "The implementation MUST set a "ListenersNotValid" condition on the Gateway Status when the
/// Gateway contains Conflicted Listeners whether or not they accept the Gateway." With no valid
/// listener at all, "the Gateway effectively contains _no_ Listeners, and must be rejected".
fn objects_conditions(
    parent: &Result<(), Problem>,
    listeners: &[&ListenerModel],
) -> (Result<(&'static str, String), Problem>, bool) {
    let any_programmed = listeners.iter().any(|l| l.programmed());
    if let Err(p) = parent {
        return (Err(p.clone()), any_programmed);
    }
    let invalid: Vec<&str> = listeners
        .iter()
        .filter(|l| !l.programmed())
        .map(|l| l.section_name.as_str())
        .collect();
    let usable = listeners
        .iter()
        .any(|l| l.accepted.is_ok() && l.conflicted.is_none());
    let accepted = if !usable {
        Err(Problem::new(
            gw_reason::LISTENERS_NOT_VALID,
            "no listener is valid",
        ))
    } else if !invalid.is_empty() {
        Ok((
            gw_reason::LISTENERS_NOT_VALID,
            format!("invalid listeners: {}", invalid.join(", ")),
        ))
    } else {
        Ok((gw_reason::ACCEPTED, "Accepted".to_owned()))
    };
    (accepted, any_programmed)
}

fn listener_set_statuses(
    lookup: &Lookup<'_>,
    gw: &GatewayModel<'_>,
) -> Vec<ListenerSetStatusUpdate> {
    let mut out = Vec::new();
    for (i, set) in gw.listener_sets.iter().enumerate() {
        let stamp = Stamp {
            generation: set.object.metadata.generation,
            now: &lookup.settings.now,
        };
        let own: Vec<&ListenerModel> = gw
            .listeners_of(Owner::ListenerSet(i))
            .map(|(_, l)| l)
            .collect();
        let parent = match (&set.allowed, &gw.accepted) {
            (Err(p), _) => Err(p.clone()),
            (Ok(()), Err(p)) => Err(Problem::new(
                gw_reason::PARENT_NOT_ACCEPTED,
                format!("Gateway {} is not accepted: {}", gw.key, p.message),
            )),
            (Ok(()), Ok(())) => Ok(()),
        };
        let (accepted, any_programmed) = objects_conditions(&parent, &own);
        let programmed = match &accepted {
            Err(p) => Err(Problem::new(
                if p.reason == gw_reason::PARENT_NOT_ACCEPTED {
                    gw_reason::PARENT_NOT_PROGRAMMED
                } else {
                    gw_reason::INVALID
                },
                p.message.clone(),
            )),
            Ok(_) if !any_programmed => Err(Problem::new(
                gw_reason::INVALID,
                "no listener of this ListenerSet can be programmed",
            )),
            Ok(_) => Ok(()),
        };
        let old = set.object.status.as_ref();
        let mut conditions = vec![
            match &accepted {
                Ok((reason, message)) => {
                    stamp.condition(conditions::ACCEPTED, true, reason, message)
                }
                Err(p) => stamp.condition(conditions::ACCEPTED, false, p.reason, &p.message),
            },
            stamp.result(
                conditions::PROGRAMMED,
                &programmed,
                gw_reason::PROGRAMMED,
                "Programmed",
            ),
        ];
        carry_transition_times(&mut conditions, old.and_then(|s| s.conditions.as_deref()));
        let listeners = (set.allowed.is_ok()).then(|| {
            own.iter()
                .map(|l| {
                    let mut conditions = listener_conditions(&stamp, l, parent.is_ok());
                    let previous = old
                        .and_then(|s| s.listeners.as_ref())
                        .and_then(|ls| ls.iter().find(|x| x.name == l.section_name));
                    carry_transition_times(
                        &mut conditions,
                        previous.map(|p| p.conditions.as_slice()),
                    );
                    ListenerSetStatusListeners {
                        attached_routes: l.attached_routes,
                        conditions,
                        name: l.section_name.clone(),
                        supported_kinds: Some(
                            l.supported_kinds
                                .iter()
                                .map(|(group, kind)| ListenerSetStatusListenersSupportedKinds {
                                    group: Some(group.clone()),
                                    kind: kind.clone(),
                                })
                                .collect(),
                        ),
                    }
                })
                .collect()
        });
        out.push(ListenerSetStatusUpdate {
            listener_set: set.key.clone(),
            generation: set.object.metadata.generation,
            status: ListenerSetStatus {
                conditions: Some(conditions),
                listeners,
            },
        });
    }
    out
}
