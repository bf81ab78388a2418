//! Status writing: from the resolver's statuses to the few patches that actually change something.
//!
//! [`plan`] is pure: it compares what the resolver wants with what each object currently carries
//! (ignoring `lastTransitionTime`, and keeping the recorded time of conditions whose status did not
//! change) and returns one [`StatusPatch`] per object whose status must change. Route patches
//! carry every `parents[]` entry of other controllers unchanged (a merge patch replaces arrays
//! whole) and the object's `resourceVersion`, so a concurrent write by another controller makes
//! ours fail with 409 instead of erasing theirs; the next round, triggered by the watch event of
//! their write, plans again from the new object.
//!
//! Where the patches go: [`kube::KubeStatus`] (the status subresource, under a [`lease`]) or
//! [`report::Report`] (a JSON file and readable lines, in directory mode).

pub mod diff;
pub mod kube;
pub mod lease;
pub mod report;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::Snapshot;
use crate::kinds::{Kind, StatusWrite};
use crate::resolution::{ObjectKey, Resolution};

/// An object's status as it is now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Current {
    pub status: Option<Value>,
    pub resource_version: Option<String>,
}

/// One status write.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusPatch {
    pub kind: Kind,
    pub key: ObjectKey,
    /// The complete new status.
    pub status: Value,
    /// The merge patch body's `status` (the new status, with removed top-level fields as `null`).
    pub patch_status: Value,
    /// Sent as `metadata.resourceVersion` (optimistic concurrency) when known.
    pub resource_version: Option<String>,
}

impl StatusPatch {
    /// The JSON merge patch for the status subresource.
    pub fn body(&self) -> Value {
        match &self.resource_version {
            Some(version) => json!({
                "metadata": {"resourceVersion": version},
                "status": self.patch_status,
            }),
            None => json!({"status": self.patch_status}),
        }
    }
}

/// Looks up the current status of objects.
pub trait Known {
    fn current(&self, kind: Kind, key: &ObjectKey) -> Option<Current>;
}

/// The objects of a snapshot (Kubernetes mode: the watch cache is the truth).
pub struct FromSnapshot {
    objects: BTreeMap<(Kind, ObjectKey), Current>,
}

impl FromSnapshot {
    pub fn new(snapshot: &Snapshot) -> FromSnapshot {
        let objects = Kind::ALL
            .into_iter()
            .filter(|kind| kind.status_written())
            .flat_map(|kind| snapshot.objects_of(kind))
            .map(|o| {
                let status = o.to_json().get("status").cloned().filter(|s| !s.is_null());
                (
                    (o.kind(), o.key()),
                    Current {
                        status,
                        resource_version: o.metadata().resource_version.clone(),
                    },
                )
            })
            .collect();
        FromSnapshot { objects }
    }
}

impl Known for FromSnapshot {
    fn current(&self, kind: Kind, key: &ObjectKey) -> Option<Current> {
        self.objects.get(&(kind, key.clone())).cloned()
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The patches that bring every object's status to what the resolution says.
///
/// `routes_in_snapshot`: every route that exists ([`route_keys`]); a route that no longer references
/// any of our Gateways but still carries our `parents[]` entries gets them removed.
pub fn plan(
    resolution: &Resolution,
    known: &dyn Known,
    controller: &str,
    routes_in_snapshot: &[(Kind, ObjectKey)],
) -> Vec<StatusPatch> {
    let mut patches = Vec::new();
    let mut consider = |kind: Kind, key: &ObjectKey, desired: Value| {
        // An object that is gone (or was never there) gets no status.
        let Some(current) = known.current(kind, key) else {
            return;
        };
        let mut desired = match kind.status() {
            StatusWrite::RouteParents { .. } => {
                let ours = desired
                    .get("parents")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                diff::merge_route_parents(ours, current.status.as_ref(), controller)
            }
            _ => desired,
        };
        if let Some(old) = &current.status {
            diff::carry_transition_times(&mut desired, old);
            if diff::same(&desired, old) {
                return;
            }
        }
        patches.push(StatusPatch {
            kind,
            key: key.clone(),
            patch_status: diff::replacing(&desired, current.status.as_ref()),
            status: desired,
            resource_version: current.resource_version,
        });
    };
    for class in &resolution.gateway_classes {
        let key = ObjectKey {
            namespace: String::new(),
            name: class.class.clone(),
        };
        consider(Kind::GatewayClass, &key, to_json(&class.status));
    }
    for gateway in &resolution.gateways {
        consider(Kind::Gateway, &gateway.gateway, to_json(&gateway.status));
    }
    for set in &resolution.listener_sets {
        consider(Kind::ListenerSet, &set.listener_set, to_json(&set.status));
    }
    let mut routed: BTreeSet<(Kind, &ObjectKey)> = BTreeSet::new();
    for route in &resolution.routes {
        routed.insert((route.kind, &route.route));
        consider(route.kind, &route.route, to_json(&route.status));
    }
    for (kind, key) in routes_in_snapshot {
        if routed.contains(&(*kind, key)) {
            continue;
        }
        let has_ours = known
            .current(*kind, key)
            .is_some_and(|c| diff::has_our_parents(c.status.as_ref(), controller));
        if has_ours {
            consider(*kind, key, json!({"parents": []}));
        }
    }
    patches
}

/// Every route of a snapshot (the kinds whose status is [`StatusWrite::RouteParents`]).
pub fn route_keys(snapshot: &Snapshot) -> Vec<(Kind, ObjectKey)> {
    keys(snapshot, |kind| {
        matches!(kind.status(), StatusWrite::RouteParents { .. })
    })
}

/// Every object whose status is written (they may get status; others never do).
pub fn status_keys(snapshot: &Snapshot) -> BTreeSet<(Kind, ObjectKey)> {
    keys(snapshot, Kind::status_written)
}

fn keys<C: FromIterator<(Kind, ObjectKey)>>(snapshot: &Snapshot, of: impl Fn(Kind) -> bool) -> C {
    Kind::ALL
        .into_iter()
        .filter(|kind| of(*kind))
        .flat_map(|kind| {
            snapshot
                .keys_of(kind)
                .into_iter()
                .map(move |key| (kind, key))
        })
        .collect()
}

/// Errors writing status.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("{kind} {key}: the object changed since it was read (409 Conflict); replanning")]
    Conflict { kind: Kind, key: ObjectKey },
    #[error("{kind} {key}: not found")]
    NotFound { kind: Kind, key: ObjectKey },
    #[error("{kind} {key}: {source}")]
    Api {
        kind: Kind,
        key: ObjectKey,
        #[source]
        source: Box<::kube::Error>,
    },
    #[error("writing the status report {path}: {message}")]
    Report { path: String, message: String },
}

impl StatusError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            StatusError::Conflict { .. } => "conflict",
            StatusError::NotFound { .. } => "not_found",
            StatusError::Api { .. } => "api",
            StatusError::Report { .. } => "report",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(BTreeMap<(Kind, ObjectKey), Current>);

    impl Known for Fixed {
        fn current(&self, kind: Kind, key: &ObjectKey) -> Option<Current> {
            self.0.get(&(kind, key.clone())).cloned()
        }
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey {
            namespace: "app".into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_route_that_left_our_gateways_loses_only_our_parents() {
        let theirs =
            json!({"parentRef": {"name": "theirs"}, "controllerName": "them", "conditions": []});
        let ours = json!({"parentRef": {"name": "gw"}, "controllerName": "us", "conditions": []});
        let known = Fixed(
            [
                (
                    (Kind::HttpRoute, key("left")),
                    Current {
                        status: Some(json!({"parents": [theirs.clone(), ours.clone()]})),
                        resource_version: Some("7".into()),
                    },
                ),
                (
                    (Kind::HttpRoute, key("never")),
                    Current {
                        status: Some(json!({"parents": [theirs.clone()]})),
                        resource_version: Some("8".into()),
                    },
                ),
            ]
            .into(),
        );
        let patches = plan(
            &Resolution::default(),
            &known,
            "us",
            &[
                (Kind::HttpRoute, key("left")),
                (Kind::HttpRoute, key("never")),
                (Kind::HttpRoute, key("gone")),
            ],
        );
        assert_eq!(patches.len(), 1, "{patches:?}");
        assert_eq!(patches[0].key, key("left"));
        assert_eq!(patches[0].status, json!({"parents": [theirs]}));
        assert_eq!(patches[0].body()["metadata"]["resourceVersion"], "7");
    }

    /// An HTTPRoute and a GRPCRoute may share `namespace/name`: each status goes to its own kind.
    #[test]
    fn route_statuses_go_to_their_own_kind() {
        let known = Fixed(
            [Kind::HttpRoute, Kind::GrpcRoute]
                .into_iter()
                .map(|kind| ((kind, key("echo")), Current::default()))
                .collect(),
        );
        let update = |kind: Kind, reason: &str| {
            crate::resolution::RouteStatusUpdate {
            kind,
            route: key("echo"),
            generation: Some(1),
            status: serde_json::from_value(json!({"parents": [{
                "parentRef": {"name": "gw"}, "controllerName": "us",
                "conditions": [{"type": "Accepted", "status": "True", "reason": reason, "message": "",
                                "lastTransitionTime": "2026-01-01T00:00:00Z"}]
            }]}))
            .unwrap(),
        }
        };
        let resolution = Resolution {
            routes: vec![
                update(Kind::HttpRoute, "ForHttp"),
                update(Kind::GrpcRoute, "ForGrpc"),
            ],
            ..Resolution::default()
        };
        let patches = plan(&resolution, &known, "us", &[]);
        let written: Vec<(Kind, &Value)> = patches
            .iter()
            .map(|p| (p.kind, &p.status["parents"][0]["conditions"][0]["reason"]))
            .collect();
        assert_eq!(
            written,
            [
                (Kind::HttpRoute, &json!("ForHttp")),
                (Kind::GrpcRoute, &json!("ForGrpc"))
            ]
        );
    }
}
