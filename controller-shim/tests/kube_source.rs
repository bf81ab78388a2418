//! The Kubernetes source, the status writer and the Lease against an in-process fake API server
//! (`support/fake_apiserver.rs`): list/watch, 410 Gone relists, dropped watches, status patches
//! only on change, other controllers' route parents preserved, 409 conflicts, leader election.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/fixtures.rs"]
mod fixtures;

use std::sync::Arc;
use std::time::Duration;

use controller_shim::metrics::Metrics;
use controller_shim::runtime::{Runtime, RuntimeConfig, StatusSink};
use controller_shim::source::{Index, IndexFilter, Kind, Shared};
use controller_shim::status::kube::KubeStatus;
use controller_shim::status::lease::{Elector, LeaseConfig};
use fake_apiserver::FakeApiServer;
use fixtures::fixture;
use serde_json::{Value, json};

const OURS: &str = "gateway-wasm.dev/controller-shim";

async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn seed(server: &FakeApiServer) {
    server.apply_manifests(fixture!("kube-cluster.yaml"));
}

struct Running {
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn start(server: &FakeApiServer) -> Running {
    let shared = Arc::new(Shared::new(Index::new(
        IndexFilter {
            controller_name: Some(OURS.into()),
        },
        Kind::ALL,
    )));
    let metrics = Arc::new(Metrics::default());
    let tasks =
        controller_shim::source::kube::spawn(server.client(), shared.clone(), metrics.clone());
    wait_for("every kind listed", || shared.read(|i| i.ready())).await;
    Running {
        shared,
        metrics,
        tasks,
    }
}

fn route_count(shared: &Shared) -> usize {
    shared.read(|i| i.snapshot().http_routes.len())
}

#[tokio::test]
async fn watchers_list_then_follow_changes() {
    let server = FakeApiServer::start().await;
    seed(&server);
    let running = start(&server).await;
    let snapshot = running.shared.read(|i| i.snapshot());
    assert_eq!(
        snapshot.gateway_classes.len(),
        1,
        "the foreign class is filtered out"
    );
    assert_eq!(snapshot.gateways.len(), 1);
    assert_eq!(snapshot.http_routes.len(), 1);
    assert_eq!(
        snapshot.secrets.len(),
        1,
        "only kubernetes.io/tls Secrets are listed"
    );
    assert!(
        server.seen().iter().any(|s| s.path == "/api/v1/secrets"
            && s.query.contains("fieldSelector=type%3Dkubernetes.io%2Ftls")),
        "{:?}",
        server.seen()
    );
    // Watches ask for bookmarks and resume from the list's version. "Listed" does not mean the
    // watch request has gone out yet (on a loaded machine it may lag), so wait for it.
    wait_for("a watch with bookmarks", || {
        server
            .seen()
            .iter()
            .any(|s| s.query.contains("watch=true") && s.query.contains("allowWatchBookmarks=true"))
    })
    .await;

    server.apply(
        "httproutes",
        json!({"metadata": {"name": "api", "namespace": "app"}, "spec": {
            "parentRefs": [{"name": "gw", "namespace": "infra"}],
            "rules": [{"backendRefs": [{"name": "api", "port": 8080}]}]}}),
    );
    wait_for("the added route", || route_count(&running.shared) == 2).await;
    server.bookmark("httproutes");
    server.delete("httproutes", "app", "api");
    wait_for("the deleted route", || route_count(&running.shared) == 1).await;
    // A class handed over to another controller leaves the index.
    server.apply(
        "gatewayclasses",
        json!({"metadata": {"name": "wasm"}, "spec": {"controllerName": "example.com/other"}}),
    );
    wait_for("the class to leave", || {
        running
            .shared
            .read(|i| i.snapshot().gateway_classes.is_empty())
    })
    .await;
}

#[tokio::test]
async fn gone_forces_a_relist_that_drops_objects_deleted_meanwhile() {
    let server = FakeApiServer::start().await;
    seed(&server);
    let running = start(&server).await;
    let lists_before = server.lists("httproutes");
    // The route disappears while its deletion event is compacted away: a watch resuming from the
    // old version gets 410 Gone, and only the relist notices.
    server.delete_silently("httproutes", "app", "web");
    server.compact();
    wait_for("the relist to drop the route", || {
        route_count(&running.shared) == 0
    })
    .await;
    assert!(server.lists("httproutes") > lists_before, "relisted");
    assert!(running.metrics.watch_restarts("HTTPRoute") >= 1);
    assert!(
        running
            .metrics
            .encode()
            .contains("gateway_wasm_watch_restarts_total{kind=\"HTTPRoute\"}")
    );
}

#[tokio::test]
async fn dropped_watches_resume_without_relisting() {
    let server = FakeApiServer::start().await;
    seed(&server);
    let running = start(&server).await;
    let lists_before = server.lists("httproutes");
    let watches = || {
        server
            .seen()
            .iter()
            .filter(|s| s.path.ends_with("/httproutes") && s.query.contains("watch=true"))
            .count()
    };
    let watches_before = watches();
    server.drop_watches();
    wait_for("a new watch", || watches() > watches_before).await;
    server.apply(
        "httproutes",
        json!({"metadata": {"name": "late", "namespace": "app"}, "spec": {
            "parentRefs": [{"name": "gw", "namespace": "infra"}]}}),
    );
    wait_for("the route added after the reconnect", || {
        route_count(&running.shared) == 2
    })
    .await;
    assert_eq!(
        server.lists("httproutes"),
        lists_before,
        "resumed from the last version, no relist"
    );
}

fn our_parent(route: &Value) -> Value {
    route["status"]["parents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["controllerName"] == OURS)
        .cloned()
        .unwrap_or(Value::Null)
}

fn condition<'v>(parent: &'v Value, kind: &str) -> &'v Value {
    parent["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == kind)
        .unwrap()
}

#[tokio::test]
async fn status_is_patched_only_on_change_and_keeps_other_controllers() {
    let server = FakeApiServer::start().await;
    seed(&server);
    let running = start(&server).await;
    let (_leader_tx, leader) = tokio::sync::watch::channel(true);
    let mut runtime = Runtime::new(
        running.shared.clone(),
        Vec::new(),
        StatusSink::Kube {
            writer: KubeStatus::new(server.client()),
            leader,
        },
        running.metrics.clone(),
        RuntimeConfig::new(OURS),
    );
    let report = runtime.round(false).await;
    assert!(report.resolved);
    // GatewayClass, Gateway and HTTPRoute.
    assert_eq!(report.status_patches, 3, "{report:?}");
    let patches = server.patches();
    assert_eq!(patches.len(), 3);
    assert!(patches.iter().all(|p| p.status == 200), "{patches:?}");
    let route_patch = patches.iter().find(|p| p.plural == "httproutes").unwrap();
    assert!(
        route_patch.body["metadata"]["resourceVersion"].is_string(),
        "route patches carry the resourceVersion: {}",
        route_patch.body
    );
    let route = server.object("httproutes", "app", "web").unwrap();
    let parents = route["status"]["parents"].as_array().unwrap();
    assert_eq!(parents.len(), 2, "{parents:?}");
    assert_eq!(parents[0]["controllerName"], "example.com/other");
    assert_eq!(parents[0]["conditions"][0]["message"], "theirs");
    let ours = our_parent(&route);
    assert_eq!(condition(&ours, "Accepted")["status"], "True");
    assert_eq!(condition(&ours, "ResolvedRefs")["status"], "True");
    let gateway = server.object("gateways", "infra", "gw").unwrap();
    assert_eq!(gateway["status"]["listeners"][0]["attachedRoutes"], 1);
    let class = server.object("gatewayclasses", "", "wasm").unwrap();
    assert_eq!(class["status"]["conditions"][0]["type"], "Accepted");
    let accepted_time = condition(&ours, "Accepted")["lastTransitionTime"].clone();

    // Once the watch has delivered our own writes, nothing changes: no patch.
    wait_for("our writes to come back", || {
        running.shared.read(|i| {
            i.snapshot()
                .http_routes
                .iter()
                .any(|r| r.status.as_ref().is_some_and(|s| s.parents.len() == 2))
        })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let report = runtime.round(false).await;
    assert_eq!(report.status_patches, 0, "{report:?}");
    assert_eq!(server.patches().len(), 3);

    // The Service disappears: ResolvedRefs turns False, Accepted keeps its transition time.
    server.delete("services", "app", "api");
    wait_for("the service to go", || {
        running.shared.read(|i| i.snapshot().services.is_empty())
    })
    .await;
    let report = runtime.round(false).await;
    assert_eq!(
        report.status_patches, 1,
        "only the route's conditions change: {report:?}"
    );
    let route = server.object("httproutes", "app", "web").unwrap();
    let ours = our_parent(&route);
    assert_eq!(
        condition(&ours, "ResolvedRefs")["reason"],
        "BackendNotFound"
    );
    assert_eq!(
        condition(&ours, "Accepted")["lastTransitionTime"],
        accepted_time
    );
    assert_eq!(
        route["status"]["parents"][0]["controllerName"],
        "example.com/other"
    );
    assert!(running.metrics.status_patches("HTTPRoute", "ok") >= 2);
}

#[tokio::test]
async fn a_conflicting_status_write_is_replanned() {
    let server = FakeApiServer::start().await;
    seed(&server);
    let running = start(&server).await;
    let (_leader_tx, leader) = tokio::sync::watch::channel(true);
    let mut runtime = Runtime::new(
        running.shared.clone(),
        Vec::new(),
        StatusSink::Kube {
            writer: KubeStatus::new(server.client()),
            leader,
        },
        running.metrics.clone(),
        RuntimeConfig::new(OURS),
    );
    server.fail_next("PATCH", "httproutes", 409);
    let report = runtime.round(false).await;
    assert!(report.retry, "a conflict asks for another round");
    assert_eq!(running.metrics.status_patches("HTTPRoute", "conflict"), 1);
    // Another controller writes its own parent meanwhile; our next round keeps it.
    let mut route = server.object("httproutes", "app", "web").unwrap();
    route["status"]["parents"][0]["conditions"][0]["message"] = json!("theirs, updated");
    server.apply("httproutes", route);
    wait_for("their update", || {
        running.shared.read(|i| {
            i.snapshot().http_routes.iter().any(|r| {
                r.status.as_ref().is_some_and(|s| {
                    s.parents
                        .iter()
                        .any(|p| p.conditions.iter().any(|c| c.message == "theirs, updated"))
                })
            })
        })
    })
    .await;
    let report = runtime.round(false).await;
    assert!(!report.retry, "{report:?}");
    let route = server.object("httproutes", "app", "web").unwrap();
    assert_eq!(
        route["status"]["parents"][0]["conditions"][0]["message"],
        "theirs, updated"
    );
    assert_eq!(our_parent(&route)["controllerName"], OURS);
}

#[tokio::test]
async fn followers_do_not_write_status() {
    let server = FakeApiServer::start().await;
    seed(&server);
    let running = start(&server).await;
    let (_leader_tx, leader) = tokio::sync::watch::channel(false);
    let mut runtime = Runtime::new(
        running.shared.clone(),
        Vec::new(),
        StatusSink::Kube {
            writer: KubeStatus::new(server.client()),
            leader,
        },
        running.metrics.clone(),
        RuntimeConfig::new(OURS),
    );
    let report = runtime.round(false).await;
    assert!(report.resolved);
    assert!(server.patches().is_empty());
}

fn lease_config(identity: &str) -> LeaseConfig {
    let mut config = LeaseConfig::new("gateway-system", identity);
    config.duration = Duration::from_secs(1);
    config.renew_every = Duration::from_millis(200);
    config
}

fn elector(server: &FakeApiServer, identity: &str) -> Elector {
    Elector::new(
        kube::Api::namespaced(server.client(), "gateway-system"),
        lease_config(identity),
    )
}

fn lease(server: &FakeApiServer) -> Value {
    server
        .object("leases", "gateway-system", "gateway-wasm-controller-shim")
        .unwrap()
}

#[tokio::test]
async fn one_leader_renews_and_a_follower_takes_over_after_expiry() {
    let server = FakeApiServer::start().await;
    let mut a = elector(&server, "replica-a");
    let mut b = elector(&server, "replica-b");
    assert!(a.round().await.unwrap(), "a creates the Lease");
    assert_eq!(lease(&server)["spec"]["holderIdentity"], "replica-a");
    assert!(!b.round().await.unwrap(), "b sees a live holder");
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(a.round().await.unwrap(), "a renews");
        assert!(
            !b.round().await.unwrap(),
            "b keeps following while a renews"
        );
    }
    let renewed = lease(&server)["spec"]["renewTime"].clone();
    assert!(renewed.is_string());
    // a stops renewing; b takes over once the record held still for the lease duration.
    assert!(!b.round().await.unwrap());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(b.round().await.unwrap(), "b takes over");
    let lease = lease(&server);
    assert_eq!(lease["spec"]["holderIdentity"], "replica-b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    // a's next renewal finds b holding a fresh Lease and steps down.
    assert!(!a.round().await.unwrap());
}

#[tokio::test]
async fn a_conflicting_renewal_steps_down_and_release_hands_over() {
    let server = FakeApiServer::start().await;
    let mut a = elector(&server, "replica-a");
    let mut b = elector(&server, "replica-b");
    assert!(a.round().await.unwrap());
    server.fail_next("PUT", "leases", 409);
    assert!(a.round().await.is_err(), "409 on renewal");
    assert!(
        !a.is_leader(),
        "a conflict means someone else wrote: step down"
    );
    assert!(
        a.round().await.unwrap(),
        "still the holder on record: leads again"
    );
    // Creating when it already exists is an AlreadyExists conflict, not leadership.
    server.fail_next("GET", "leases", 404);
    assert!(b.round().await.is_err());
    assert!(!b.is_leader());
    a.release().await;
    assert!(lease(&server)["spec"]["holderIdentity"].is_null());
    assert!(b.round().await.unwrap(), "a released: b takes over at once");
}

#[tokio::test]
async fn status_and_lease_need_nothing_beyond_the_rbac_table() {
    // Every path the fake saw for writes is a kind with status written or the Lease.
    let server = FakeApiServer::start().await;
    seed(&server);
    let running = start(&server).await;
    let (_leader_tx, leader) = tokio::sync::watch::channel(true);
    let mut runtime = Runtime::new(
        running.shared.clone(),
        Vec::new(),
        StatusSink::Kube {
            writer: KubeStatus::new(server.client()),
            leader,
        },
        running.metrics.clone(),
        RuntimeConfig::new(OURS),
    );
    runtime.round(false).await;
    elector(&server, "x").round().await.unwrap();
    let rules = controller_shim::rbac::required_rbac();
    for seen in server.seen() {
        let target = fake_apiserver::parse_path(&seen.path).unwrap();
        let sub = if target.status { "/status" } else { "" };
        let verb = match (seen.method.as_str(), seen.query.contains("watch=true")) {
            ("GET", true) => "watch",
            ("GET", false) if target.name.is_none() => "list",
            ("GET", false) => "get",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            (other, _) => panic!("unexpected {other}"),
        };
        let wanted = format!("{}{sub}", target.plural);
        assert!(
            rules
                .iter()
                .any(|r| r.resource == wanted && r.verbs.contains(&verb)),
            "{verb} {wanted} ({}) is not in the RBAC table",
            seen.path
        );
    }
}

#[tokio::test]
async fn an_unserved_kind_counts_as_empty_until_its_crd_appears() {
    let server = FakeApiServer::start().await;
    server.unserve("listenersets");
    seed(&server);
    let running = start(&server).await;
    assert!(
        running
            .shared
            .read(|i| i.snapshot().listener_sets.is_empty())
    );
    assert_eq!(running.shared.read(|i| i.snapshot().http_routes.len()), 1);
    assert!(running.metrics.watch_restarts("ListenerSet") >= 1);
    assert!(
        running
            .shared
            .problems()
            .values()
            .any(|p| p.contains("ListenerSet is not served")),
        "{:?}",
        running.shared.problems()
    );
    // The CRD gets installed: the watcher's retry picks the kind up.
    server.serve("listenersets");
    server.apply(
        "listenersets",
        json!({"metadata": {"name": "extra", "namespace": "infra"}, "spec": {
            "parentRef": {"name": "gw"},
            "listeners": [{"name": "extra", "port": 8080, "protocol": "HTTP"}]}}),
    );
    wait_for("the ListenerSet", || {
        running
            .shared
            .read(|i| i.snapshot().listener_sets.len() == 1)
    })
    .await;
}
