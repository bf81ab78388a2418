//! HTTPRoutes and GRPCRoutes claiming the same hostname on one listener.
//!
//! Spec (GRPCRouteSpec.hostnames): "If a Route (A) of type HTTPRoute or GRPCRoute is attached to a
//! Listener and that listener already has another Route (B) of the other type attached and the
//! intersection of the hostnames of A and B is non-empty, then the implementation MUST accept
//! exactly one of these two routes, determined by the following criteria, in order: * The oldest
//! Route based on creation timestamp. * The Route appearing first in alphabetical order by
//! "{namespace}/{name}". The rejected Route MUST raise an 'Accepted' condition with a status of
//! 'False' in the corresponding RouteParentStatus."
//!
//! How this reads here:
//! - Per listener. The routes attached to a listener are taken in that precedence order (a missing
//!   creation timestamp sorts after every present one, as for ListenerSets; an HTTPRoute and a
//!   GRPCRoute with the same timestamp *and* the same `namespace/name`, which the spec leaves
//!   tied, go HTTPRoute first), and each is kept unless a route of the other kind already kept
//!   there shares a host with it ([`hostnames::overlap`] of the effective hostnames). A rejected
//!   route is not attached, so it rejects nothing in turn.
//! - Per parentRef for status. A parentRef that selected several listeners keeps those it did not
//!   lose ("If 1 of 2 Gateway listeners accept attachment from the referencing Route, the Route
//!   MUST be considered successfully attached", and its Accepted message names what it lost); one
//!   that lost all of them gets Accepted=False with reason
//!   [`HostnameConflict`](super::conditions::route::HOSTNAME_CONFLICT), naming the route it lost
//!   to. Either way the route is left out of the data plane on the listeners it
//!   lost, and not counted in their `attachedRoutes`.

use std::collections::BTreeMap;

use crate::api::Time;

use super::attach::RouteResult;
use super::conditions::{Problem, route as reason};
use super::hostnames;
use super::listeners::GatewayModel;
use super::routes::RouteKind;
use crate::resolution::ObjectKey;

/// One route's attachment to one listener through one parentRef.
struct Claim<'r> {
    route: usize,
    parent: usize,
    hostnames: &'r [String],
}

/// The precedence of a route in a conflict: smaller wins.
fn precedence<'r>(
    route: &'r RouteResult<'_>,
) -> (bool, Option<&'r Time>, &'r ObjectKey, RouteKind) {
    let created = route.object.meta().creation_timestamp.as_ref();
    (created.is_none(), created, &route.key, route.kind())
}

/// A listener a route lost, and to whom.
struct Loss {
    route: usize,
    parent: usize,
    listener: usize,
    winner: usize,
}

/// Removes every listener a route lost from its parents' attachments; parentRefs left with no
/// listener become Accepted=False.
pub fn settle(gateways: &[GatewayModel<'_>], routes: &mut [RouteResult<'_>]) {
    let losses = find_losses(routes);
    if losses.is_empty() {
        return;
    }
    let mut lost_to: BTreeMap<(usize, usize), Vec<(usize, usize)>> = BTreeMap::new();
    for loss in &losses {
        lost_to
            .entry((loss.route, loss.parent))
            .or_default()
            .push((loss.listener, loss.winner));
    }
    for ((r, p), lost) in lost_to {
        let message = routes.get(r).and_then(|loser| {
            let (listener, winner) = *lost.first()?;
            let winner = routes.get(winner)?;
            let gateway = loser.parents.get(p).and_then(|x| gateways.get(x.gateway));
            let listener = gateway
                .and_then(|g| g.listeners.get(listener))
                .map_or("?", |l| l.config_name.as_str());
            Some(message(loser, winner, listener))
        });
        let Some(parent) = routes.get_mut(r).and_then(|x| x.parents.get_mut(p)) else {
            continue;
        };
        let Ok(attached) = &mut parent.accepted else {
            continue;
        };
        attached.retain(|(l, _)| !lost.iter().any(|(lost, _)| lost == l));
        if attached.is_empty() {
            parent.accepted = Err(Problem::new(
                reason::HOSTNAME_CONFLICT,
                message.unwrap_or_default(),
            ));
        } else {
            parent.lost.extend(message);
        }
    }
}

/// Every (route, parentRef, listener) that loses to a route of the other kind.
fn find_losses(routes: &[RouteResult<'_>]) -> Vec<Loss> {
    let mut claims: BTreeMap<(usize, usize), Vec<Claim<'_>>> = BTreeMap::new();
    for (r, route) in routes.iter().enumerate() {
        for (p, parent) in route.parents.iter().enumerate() {
            let Ok(attached) = &parent.accepted else {
                continue;
            };
            for (listener, hostnames) in attached {
                claims
                    .entry((parent.gateway, *listener))
                    .or_default()
                    .push(Claim {
                        route: r,
                        parent: p,
                        hostnames,
                    });
            }
        }
    }
    let mut losses = Vec::new();
    for ((_, listener), mut claims) in claims {
        // Nothing to settle on a listener that only one kind uses.
        let kinds = |c: &Claim<'_>| routes.get(c.route).map(RouteResult::kind);
        let first = claims.first().and_then(kinds);
        if claims.iter().all(|c| kinds(c) == first) {
            continue;
        }
        claims.sort_by(|a, b| match (routes.get(a.route), routes.get(b.route)) {
            (Some(a), Some(b)) => precedence(a).cmp(&precedence(b)),
            _ => std::cmp::Ordering::Equal,
        });
        // Claims kept so far, by kind: a claim is only compared with the other kind's, so a
        // listener with thousands of HTTPRoutes and a few GRPCRoutes costs thousands of checks,
        // not millions.
        let mut kept: BTreeMap<Option<RouteKind>, Vec<&Claim<'_>>> = BTreeMap::new();
        for claim in &claims {
            let kind = kinds(claim);
            let winner = kept
                .iter()
                .filter(|(k, _)| **k != kind)
                .flat_map(|(_, list)| list.iter())
                .find(|k| hostnames::overlap(k.hostnames, claim.hostnames));
            match winner {
                Some(winner) => losses.push(Loss {
                    route: claim.route,
                    parent: claim.parent,
                    listener,
                    winner: winner.route,
                }),
                None => kept.entry(kind).or_default().push(claim),
            }
        }
    }
    losses
}

/// `an HTTPRoute and a GRPCRoute may not share a hostname on a listener: HTTPRoute infra/web is
/// kept on listener "http" (it is older)`.
fn message(loser: &RouteResult<'_>, winner: &RouteResult<'_>, listener: &str) -> String {
    let (loser_ts, winner_ts) = (
        loser.object.meta().creation_timestamp.as_ref(),
        winner.object.meta().creation_timestamp.as_ref(),
    );
    let why = if winner_ts != loser_ts {
        "it is older"
    } else if winner.key != loser.key {
        "same age; it comes first by namespace/name"
    } else {
        "same age and name; the HTTPRoute is kept"
    };
    format!(
        "an HTTPRoute and a GRPCRoute may not share a hostname on a listener: {} {} is kept on listener {listener:?} ({why})",
        winner.kind().as_str(),
        winner.key,
    )
}
