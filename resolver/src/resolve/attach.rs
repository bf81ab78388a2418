//! Route parentRefs → listeners, for every route kind.
//!
//! Spec (ParentReference): Group "When unspecified, "gateway.networking.k8s.io" is inferred";
//! Namespace "When unspecified, this refers to the local namespace of the Route"; SectionName
//! "When unspecified (empty string), this will reference the entire resource"; Port "When both Port
//! (experimental) and SectionName are specified, the name and port of the selected listener must
//! match both specified values." and "If 1 of 2 Gateway listeners accept attachment from the
//! referencing Route, the Route MUST be considered successfully attached. If no Gateway listeners
//! accept attachment from this Route, the Route MUST be considered detached from the Gateway."
//!
//! After every route is matched to its listeners, [`conflicts`](super::conflicts) settles HTTPRoutes
//! and GRPCRoutes claiming the same hostname on one listener, and only then are attached routes
//! counted.

use std::collections::BTreeSet;

use crate::api::RouteStatusParentRef;

use super::conditions::{Problem, route as reason};
use super::listeners::{FromNamespaces, GatewayModel, ListenerModel, Owner};
use super::routes::{ParentRef, RouteKind, RouteObject};
use super::rules::{self, Converted};
use super::{Lookup, conflicts, grpc_rules, hostnames, key, namespace};
use crate::api::GATEWAY_GROUP;
use crate::resolution::ObjectKey;

/// One route that references at least one Gateway or ListenerSet of ours.
#[derive(Debug)]
pub struct RouteResult<'a> {
    pub object: RouteObject<'a>,
    pub key: ObjectKey,
    pub rules: Converted,
    pub parents: Vec<ParentResult>,
}

impl RouteResult<'_> {
    pub fn kind(&self) -> RouteKind {
        self.object.kind()
    }
}

/// One parentRef of ours and what became of it.
#[derive(Debug)]
pub struct ParentResult {
    /// Index into the Gateway list.
    pub gateway: usize,
    /// The parentRef echoed into status, defaults made explicit.
    pub parent_ref: RouteStatusParentRef,
    /// The listeners (indices into the Gateway's merged list) with the route's effective hostnames
    /// on each, or why the route is not accepted through this parentRef.
    pub accepted: Result<Vec<(usize, Vec<String>)>, Problem>,
    /// Listeners this parentRef selected but lost to a route of the other kind while it kept
    /// others (said in the Accepted message).
    pub lost: Vec<String>,
}

/// Matches every route's parentRefs, settles cross-kind hostname conflicts and counts attached
/// routes on the listeners.
pub fn routes<'a>(lookup: &Lookup<'a>, gateways: &mut [GatewayModel<'a>]) -> Vec<RouteResult<'a>> {
    let mut out = Vec::new();
    for route in lookup.routes() {
        let route_ns = namespace(route.meta());
        let mut parents = Vec::new();
        let mut seen = BTreeSet::new();
        for p in route.parent_refs() {
            let Some((gw, owner)) = parent(gateways, route_ns, &p) else {
                continue;
            };
            let echo = echo(route_ns, &p, owner);
            // ParentRefs "must be _distinct_"; a repeated one adds nothing and would duplicate
            // the status entry.
            if !seen.insert(format!("{echo:?}")) {
                continue;
            }
            let accepted = gateways.get(gw).map_or(Err(no_parent("the Gateway")), |g| {
                listeners(lookup, g, owner, route, &p)
            });
            parents.push(ParentResult {
                gateway: gw,
                parent_ref: echo,
                accepted,
                lost: Vec::new(),
            });
        }
        if parents.is_empty() {
            continue;
        }
        let rules = match route {
            RouteObject::Http(r) => rules::convert(lookup, r),
            RouteObject::Grpc(r) => grpc_rules::convert(lookup, r),
        };
        // "A Route MUST be considered "Accepted" if at least one of the Route's rules is
        // implemented by the Gateway."
        if rules.rules.is_empty() {
            let problem = Problem::new(
                rules
                    .dropped
                    .first()
                    .map_or(reason::UNSUPPORTED_VALUE, |(_, p)| p.reason),
                if rules.dropped.is_empty() {
                    "the route has no rules".to_owned()
                } else {
                    rules
                        .dropped
                        .iter()
                        .map(|(_, p)| p.message.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                },
            );
            for parent in &mut parents {
                if parent.accepted.is_ok() {
                    parent.accepted = Err(problem.clone());
                }
            }
        }
        out.push(RouteResult {
            object: route,
            key: key(route.meta()),
            rules,
            parents,
        });
    }
    conflicts::settle(gateways, &mut out);
    count_attached(gateways, &out);
    out
}

/// The Gateway (and, for a ListenerSet parent, which of its ListenerSets) a parentRef selects, if
/// it is one of ours. Other parents are another controller's business: "Implementations of this
/// API can only populate Route status for the Gateways/parent resources they are responsible for."
fn parent(
    gateways: &[GatewayModel<'_>],
    route_ns: &str,
    p: &ParentRef<'_>,
) -> Option<(usize, Owner)> {
    if p.group.unwrap_or(GATEWAY_GROUP) != GATEWAY_GROUP {
        return None;
    }
    let ns = p.namespace.unwrap_or(route_ns);
    match p.kind.unwrap_or("Gateway") {
        "Gateway" => gateways
            .iter()
            .position(|g| g.key.namespace == ns && g.key.name == p.name)
            .map(|i| (i, Owner::Gateway)),
        "ListenerSet" => gateways.iter().enumerate().find_map(|(i, g)| {
            g.listener_sets
                .iter()
                .position(|s| s.key.namespace == ns && s.key.name == p.name)
                .map(|j| (i, Owner::ListenerSet(j)))
        }),
        _ => None,
    }
}

/// The parentRef as written, with group, kind and namespace made explicit.
fn echo(route_ns: &str, p: &ParentRef<'_>, owner: Owner) -> RouteStatusParentRef {
    RouteStatusParentRef {
        group: Some(GATEWAY_GROUP.to_owned()),
        kind: Some(
            match owner {
                Owner::Gateway => "Gateway",
                Owner::ListenerSet(_) => "ListenerSet",
            }
            .to_owned(),
        ),
        name: p.name.to_owned(),
        namespace: Some(p.namespace.unwrap_or(route_ns).to_owned()),
        port: p.port,
        section_name: p.section_name.filter(|s| !s.is_empty()).map(str::to_owned),
    }
}

fn no_parent(what: &str) -> Problem {
    Problem::new(
        reason::NO_MATCHING_PARENT,
        format!("{what} is not available"),
    )
}

/// The listeners of `owner` that accept the route through parentRef `p`, each with the route's
/// effective hostnames; the reason names the last stage some listener got through.
fn listeners(
    lookup: &Lookup<'_>,
    gw: &GatewayModel<'_>,
    owner: Owner,
    route: RouteObject<'_>,
    p: &ParentRef<'_>,
) -> Result<Vec<(usize, Vec<String>)>, Problem> {
    if let Err(problem) = &gw.accepted {
        return Err(Problem::new(
            reason::NO_MATCHING_PARENT,
            format!("Gateway {} is not accepted: {}", gw.key, problem.message),
        ));
    }
    if let Owner::ListenerSet(i) = owner
        && let Some(Err(problem)) = gw.listener_sets.get(i).map(|s| &s.allowed)
    {
        return Err(Problem::new(
            reason::NO_MATCHING_PARENT,
            problem.message.clone(),
        ));
    }
    let section = p.section_name.filter(|s| !s.is_empty());
    let selected: Vec<(usize, &ListenerModel)> = gw
        .listeners_of(owner)
        .filter(|(_, l)| section.is_none_or(|s| s == l.section_name))
        .filter(|(_, l)| p.port.is_none_or(|port| port == l.port))
        .collect();
    if selected.is_empty() {
        let mut what = Vec::new();
        if let Some(s) = section {
            what.push(format!("sectionName {s:?}"));
        }
        if let Some(port) = p.port {
            what.push(format!("port {port}"));
        }
        return Err(Problem::new(
            reason::NO_MATCHING_PARENT,
            format!("no listener matches {}", what.join(" and ")),
        ));
    }

    // AllowedRoutes: "Kinds specifies the groups and kinds of Routes that are allowed to bind to
    // this Gateway Listener." and "Namespaces indicates namespaces from which Routes may be
    // attached to this Listener."; when every selected listener refuses the route on one of the
    // two, the route is "NotAllowedByListeners" and the message says which rule refused it.
    let route_ns = namespace(route.meta());
    let (group, kind) = route.kind().group_kind();
    let mut refusals = Vec::new();
    let mut allowed: Vec<(usize, &ListenerModel)> = Vec::new();
    for (i, l) in selected {
        match refusal(lookup, l, group, kind, route_ns) {
            None => allowed.push((i, l)),
            Some(why) => refusals.push(why),
        }
    }
    if allowed.is_empty() {
        return Err(Problem::new(
            reason::NOT_ALLOWED_BY_LISTENERS,
            format!(
                "no selected listener allows this {kind}: {}",
                refusals.join("; ")
            ),
        ));
    }

    let route_hostnames = route.hostnames();
    if let Some((bad, why)) = route_hostnames
        .iter()
        .find_map(|h| Some((h, engine::check_hostname(h).err()?)))
    {
        return Err(Problem::new(
            reason::UNSUPPORTED_VALUE,
            format!("hostname {bad:?} is not valid: {why}"),
        ));
    }
    let attached: Vec<(usize, Vec<String>)> = allowed
        .into_iter()
        .filter_map(|(i, l)| {
            Some((
                i,
                hostnames::intersect(l.hostname.as_deref(), route_hostnames)?,
            ))
        })
        .collect();
    if attached.is_empty() {
        // HTTPRoute and GRPCRoute alike: "If both the Listener and GRPCRoute have specified
        // hostnames, and none match with the criteria above, then the GRPCRoute MUST NOT be
        // accepted by the implementation. The implementation MUST raise an 'Accepted' Condition
        // with a status of `False` in the corresponding RouteParentStatus."
        return Err(Problem::new(
            reason::NO_MATCHING_LISTENER_HOSTNAME,
            "no hostname of the route intersects a hostname of the selected listeners",
        ));
    }
    Ok(attached)
}

/// Why listener `l` refuses a route of `group`/`kind` from namespace `route_ns`, naming the
/// allowedRoutes rule that refuses it (the kind, the namespace, or both), or `None` when it allows
/// the route.
fn refusal(
    lookup: &Lookup<'_>,
    l: &ListenerModel,
    group: &str,
    kind: &str,
    route_ns: &str,
) -> Option<String> {
    let mut why = Vec::new();
    if !l.allows_kind(group, kind) {
        let kinds: Vec<&str> = l.supported_kinds.iter().map(|(_, k)| k.as_str()).collect();
        why.push(if kinds.is_empty() {
            format!("does not allow kind {kind} (it allows no route kinds)")
        } else {
            format!(
                "does not allow kind {kind} (allowedRoutes.kinds: {})",
                kinds.join(", ")
            )
        });
    }
    if !namespace_allowed(lookup, l, route_ns) {
        why.push(format!(
            "does not allow routes from namespace {route_ns} (allowedRoutes.namespaces.from: {})",
            match &l.from {
                FromNamespaces::Same => format!("Same, only namespace {}", l.namespace),
                FromNamespaces::All => "All".to_owned(),
                FromNamespaces::Selector(Some(_)) => {
                    "Selector, whose selector does not match the namespace's labels".to_owned()
                }
                FromNamespaces::Selector(None) => {
                    "Selector without a selector, which selects no namespace".to_owned()
                }
            }
        ));
    }
    (!why.is_empty()).then(|| format!("listener {:?} {}", l.section_name, why.join(" and ")))
}

/// AllowedRoutes `namespaces.from`: "All: Routes in all namespaces may be used by this Gateway.
/// Selector: Routes in namespaces selected by the selector may be used by this Gateway. Same: Only
/// Routes in the same namespace may be used by this Gateway." (For a ListenerSet listener, "Same"
/// is the ListenerSet's namespace.)
fn namespace_allowed(lookup: &Lookup<'_>, l: &ListenerModel, route_ns: &str) -> bool {
    match &l.from {
        FromNamespaces::Same => l.namespace == route_ns,
        FromNamespaces::All => true,
        FromNamespaces::Selector(selector) => selector
            .as_ref()
            .is_some_and(|s| s.matches(&lookup.namespace_labels(route_ns))),
    }
}

/// "The AttachedRoutes number represents the number of Routes with the Accepted condition set to
/// "True" that have been attached to this Listener." A route counts once per listener however many
/// of its parentRefs select it; HTTPRoutes and GRPCRoutes both count.
fn count_attached(gateways: &mut [GatewayModel<'_>], routes: &[RouteResult<'_>]) {
    let mut attached: BTreeSet<(usize, usize, RouteKind, &ObjectKey)> = BTreeSet::new();
    for route in routes {
        for parent in &route.parents {
            if let Ok(listeners) = &parent.accepted {
                for (l, _) in listeners {
                    attached.insert((parent.gateway, *l, route.kind(), &route.key));
                }
            }
        }
    }
    for (gw, l, _, _) in attached {
        if let Some(listener) = gateways.get_mut(gw).and_then(|g| g.listeners.get_mut(l)) {
            listener.attached_routes = listener.attached_routes.saturating_add(1);
        }
    }
}
