//! Kong delivery against a fixture of Kong's Admin API (`support/fake_kong.rs`), with the pushed
//! filter config validated against the `config_schema` Kong's `gateway_wasm.meta.json` carries.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/fake_kong.rs"]
mod fake_kong;
#[path = "support/json_schema.rs"]
mod json_schema;

use std::path::Path;
use std::sync::Arc;

use controller_shim::deliver::kong::{KongOptions, KongTarget, entity_name};
use controller_shim::deliver::{DeliverError, Target};
use controller_shim::manifests::{self, Loaded};
use controller_shim::metrics::Metrics;
use controller_shim::resolution::GatewayResult;
use controller_shim::runtime::{Runtime, RuntimeConfig, StatusSink};
use controller_shim::source::{Filter, Index, Kind, Object, Shared};
use controller_shim::{Settings, resolve};
use fake_kong::FakeKong;
use serde_json::Value;

const MANIFESTS: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: wasm}
spec: {controllerName: gateway-wasm.dev/controller-shim}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: wasm
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: other, namespace: infra}
spec:
  gatewayClassName: wasm
  listeners:
  - {name: http, port: 8080, protocol: HTTP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: app}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  hostnames: [example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /one}}]
    backendRefs: [{name: one, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /many}}]
    backendRefs: [{name: many, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /none}}]
    backendRefs: [{name: none, port: 80}]
  - backendRefs: [{name: missing, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: one, namespace: app}
spec: {ports: [{name: http, port: 8080, targetPort: 9000}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: one-1, namespace: app, labels: {kubernetes.io/service-name: one}}
addressType: IPv4
endpoints: [{addresses: [10.1.0.7], conditions: {ready: true}}]
ports: [{name: http, port: 9000}]
---
apiVersion: v1
kind: Service
metadata: {name: many, namespace: app}
spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: many-1, namespace: app, labels: {kubernetes.io/service-name: many}}
addressType: IPv4
endpoints: [{addresses: [10.1.0.8], conditions: {ready: true}}, {addresses: [10.1.0.9], conditions: {ready: true}}]
ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: none, namespace: app}
spec: {ports: [{name: http, port: 80}]}
"#;

fn loaded() -> Loaded {
    let mut loaded = Loaded::default();
    manifests::load_str(MANIFESTS, Path::new("test.yaml"), &mut loaded).unwrap();
    loaded
}

fn gateways() -> Vec<GatewayResult> {
    resolve(&loaded().snapshot, &Settings::default()).gateways
}

fn gateway(name: &str) -> GatewayResult {
    gateways()
        .into_iter()
        .find(|g| g.gateway.name == name)
        .unwrap()
}

fn schema() -> Value {
    engine::schema::plugin_config_schema_draft4()
}

fn chain_config(kong: &FakeKong) -> Value {
    let chain = kong
        .entity("filter-chains", "gateway-wasm.infra.gw")
        .unwrap();
    assert_eq!(chain["filters"][0]["name"], "gateway_wasm");
    assert_eq!(chain["filters"][0]["enabled"], true);
    chain["filters"][0]["config"].clone()
}

#[tokio::test]
async fn pushes_a_catch_all_route_with_a_filter_chain_kong_accepts() {
    let kong = FakeKong::start(Some(schema())).await;
    let mut target = KongTarget::new(KongOptions::new(&kong.url()));
    let delivered = target.deliver(&gateway("gw")).await.unwrap();
    assert!(delivered.changed);

    let service = kong.entity("services", "gateway-wasm.infra.gw").unwrap();
    assert_eq!(
        (service["host"].as_str(), service["port"].as_u64()),
        (Some("127.0.0.1"), Some(9))
    );
    let route = kong.entity("routes", "gateway-wasm.infra.gw").unwrap();
    assert_eq!(route["paths"], serde_json::json!(["/"]));
    assert_eq!(route["service"]["id"], service["id"]);
    let chain = kong
        .entity("filter-chains", "gateway-wasm.infra.gw")
        .unwrap();
    assert_eq!(chain["route"]["id"], route["id"]);

    let config = chain_config(&kong);
    let errors = json_schema::validate(&schema(), &config);
    assert!(
        errors.is_empty(),
        "the pushed config violates meta.json's schema: {errors:?}"
    );
    assert_eq!(config["upstreamSelector"], "kongServiceTarget");
    let backends = &config["backends"];
    assert_eq!(
        backends["app/one:8080"]["upstream"], "10.1.0.7:9000",
        "one endpoint: its address"
    );
    assert_eq!(
        backends["app/many:80"]["upstream"], "many.app.svc.cluster.local:80",
        "several endpoints: the Service name, balanced by kube-proxy"
    );
    assert_eq!(
        backends["app/none:80"]["upstream"],
        "none.app.svc.cluster.local:80"
    );
    let invalid: Vec<&Value> = backends
        .as_object()
        .unwrap()
        .values()
        .filter(|b| b["invalid"]["reason"] == "BackendNotFound")
        .collect();
    assert_eq!(invalid.len(), 1, "app/missing stays invalid: {backends}");
    assert!(invalid[0]["upstream"].is_null());
    // The engine accepts what Kong's filter will get.
    let parsed = engine::parse(config.to_string().as_bytes()).unwrap();
    engine::RouteTable::compile(&parsed).unwrap();
}

#[tokio::test]
async fn unchanged_configs_are_not_rewritten_and_a_restarted_kong_is_repaired() {
    let kong = FakeKong::start(Some(schema())).await;
    let mut target = KongTarget::new(KongOptions::new(&kong.url()));
    target.deliver(&gateway("gw")).await.unwrap();
    let writes = kong.writes();
    assert_eq!(writes, 3);
    let again = target.deliver(&gateway("gw")).await.unwrap();
    assert!(!again.changed, "read back, found equal, nothing written");
    assert_eq!(kong.writes(), writes);
    kong.restart();
    let repaired = target.deliver(&gateway("gw")).await.unwrap();
    assert!(repaired.changed);
    assert_eq!(kong.writes(), writes * 2);
    assert!(
        kong.entity("filter-chains", "gateway-wasm.infra.gw")
            .is_some()
    );
}

#[tokio::test]
async fn kong_without_a_schema_takes_the_config_as_a_string() {
    let kong = FakeKong::start(None).await;
    // A JSON object is refused where no meta.json schema exists (Kong 3.4 behaviour) …
    let mut object = KongTarget::new(KongOptions::new(&kong.url()));
    let err = object.deliver(&gateway("gw")).await.unwrap_err();
    assert!(
        matches!(err, DeliverError::KongStatus { status: 400, .. }),
        "{err}"
    );
    // … and --kong-config-string sends the same document serialized.
    let mut options = KongOptions::new(&kong.url());
    options.config_as_string = true;
    let mut string = KongTarget::new(options);
    string.deliver(&gateway("gw")).await.unwrap();
    let config = chain_config(&kong);
    let parsed: Value = serde_json::from_str(config.as_str().unwrap()).unwrap();
    assert_eq!(parsed["upstreamSelector"], "kongServiceTarget");
    assert!(!string.deliver(&gateway("gw")).await.unwrap().changed);
}

#[tokio::test]
async fn a_refused_push_names_kong_and_the_error() {
    let kong = FakeKong::start(Some(schema())).await;
    kong.fail_next_chain(400, "schema violation (filters.1.config: invalid)");
    let mut target = KongTarget::new(KongOptions::new(&kong.url()));
    let err = target.deliver(&gateway("gw")).await.unwrap_err();
    assert_eq!(err.metric_label(), "status");
    let text = err.to_string();
    assert!(
        text.contains("PUT /filter-chains/gateway-wasm.infra.gw"),
        "{text}"
    );
    assert!(
        text.contains("400") && text.contains("schema violation"),
        "{text}"
    );
    // An unreachable Kong is an HTTP error, not a panic.
    let mut nowhere = KongTarget::new(KongOptions::new("http://127.0.0.1:9"));
    let err = nowhere.deliver(&gateway("gw")).await.unwrap_err();
    assert_eq!(err.metric_label(), "http", "{err}");
}

#[tokio::test]
async fn one_kong_serves_one_gateway() {
    let kong = FakeKong::start(Some(schema())).await;
    let mut target = KongTarget::new(KongOptions::new(&kong.url()));
    target.deliver(&gateway("gw")).await.unwrap();
    let err = target.deliver(&gateway("other")).await.unwrap_err();
    assert!(err.to_string().contains("one Gateway"), "{err}");
    assert_eq!(entity_name(&gateway("gw").gateway), "gateway-wasm.infra.gw");
}

#[tokio::test]
async fn the_runtime_pushes_to_kong_once_per_change_and_counts_it() {
    let kong = FakeKong::start(Some(schema())).await;
    let shared = Arc::new(Shared::new(Index::new(Filter::default(), Kind::ALL)));
    let objects = Object::all_of(&loaded().snapshot);
    shared.update(|index| {
        for object in objects {
            index.apply(object);
        }
        for kind in Kind::ALL {
            index.mark_synced(kind);
        }
    });
    let metrics = Arc::new(Metrics::default());
    let mut config = RuntimeConfig::new("gateway-wasm.dev/controller-shim");
    config.gateways = vec![gateway("gw").gateway];
    let mut runtime = Runtime::new(
        shared,
        vec![Target::Kong(Box::new(KongTarget::new(KongOptions::new(
            &kong.url(),
        ))))],
        StatusSink::None,
        metrics.clone(),
        config,
    );
    let first = runtime.round(false).await;
    assert_eq!(first.pushed.len(), 1, "{first:?}");
    let second = runtime.round(false).await;
    assert!(second.pushed.is_empty(), "same hash: not even asked");
    let forced = runtime.round(true).await;
    assert!(
        forced.pushed.is_empty() && forced.failed.is_empty(),
        "forced re-delivery reads back and writes nothing"
    );
    assert_eq!(metrics.pushes("kong", "ok"), 2);
    kong.restart();
    let repaired = runtime.round(true).await;
    assert_eq!(
        repaired.pushed.len(),
        1,
        "the periodic re-delivery repairs a restarted Kong"
    );
}
