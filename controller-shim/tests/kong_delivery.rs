//! Kong delivery against a fixture of Kong's Admin API (`support/fake_kong.rs`), with the pushed
//! filter config validated against the `config_schema` Kong's `gateway_wasm.meta.json` carries:
//! first Kong with a database (entities upserted by name), then DB-less Kong (the whole
//! declarative configuration through `POST /config`), then how the mode is chosen.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/fake_kong.rs"]
mod fake_kong;
#[path = "support/fixtures.rs"]
mod fixtures;
#[path = "support/json_schema.rs"]
mod json_schema;

use std::path::Path;
use std::sync::Arc;

use controller_shim::deliver::kong::dbless::{CONFIG_PATH, EMPTY_CONFIG_HASH, config_hash};
use controller_shim::deliver::kong::{
    KongMode, KongOptions, KongTarget, declarative_config, entity_name,
};
use controller_shim::deliver::{DeliverError, Target};
use controller_shim::manifests::{self, Loaded};
use controller_shim::metrics::Metrics;
use controller_shim::resolution::GatewayResult;
use controller_shim::runtime::{Runtime, RuntimeConfig, StatusSink};
use controller_shim::source::{Index, IndexFilter, Kind, Object, Shared};
use controller_shim::{Settings, resolve};
use fake_kong::{FakeKong, Settings as KongSettings};
use fixtures::fixture;
use serde_json::Value;

/// Gateways infra/gw and infra/other, and a route whose backends have one endpoint, two, none and
/// no Service.
fn kong_manifests() -> String {
    format!(
        "{}---\n{}",
        fixture!("gateway.yaml"),
        fixture!("kong-routes.yaml")
    )
}

fn loaded() -> Loaded {
    let mut loaded = Loaded::default();
    manifests::load_str(&kong_manifests(), Path::new("test.yaml"), &mut loaded).unwrap();
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

/// The secret part of the backend routes' paths, pinned so that tests can compare what was posted.
const SECRET: &str = "test-secret-0123456789";

fn options(url: &str) -> KongOptions {
    let mut options = KongOptions::new(url);
    options.route_secret = SECRET.to_owned();
    options
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

/// The path prefix of a backend's Kong route.
fn prefix(key: &str) -> String {
    format!(
        "/.gateway-wasm/{SECRET}/{}",
        controller_shim::deliver::kong::entities::backend_id(key)
    )
}

/// Checks the filter config Kong holds: the meta.json schema, Kong route prefixes, the engine.
fn check_pushed_config(config: &Value) {
    let errors = json_schema::validate(&schema(), config);
    assert!(
        errors.is_empty(),
        "the pushed config violates meta.json's schema: {errors:?}"
    );
    assert_eq!(config["upstreamSelector"], "kongRoute");
    assert_eq!(
        config["kong"]["proxy"], "127.0.0.1:8000",
        "from proxy_listeners"
    );
    assert!(
        !config.to_string().contains("[]"),
        "no empty list reaches Kong (it would turn into {{}}): {config}"
    );
    let backends = &config["backends"];
    for key in ["app/one:8080", "app/many:80", "app/none:80"] {
        assert_eq!(backends[key]["upstream"], prefix(key).as_str());
    }
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

/// The entry service, route and filter chain exist and point at each other, and every backend has
/// its service and prefix route.
fn check_entities(kong: &FakeKong) {
    let service = kong.entity("services", "gateway-wasm.infra.gw").unwrap();
    assert_eq!(
        (service["host"].as_str(), service["port"].as_u64()),
        (Some("127.0.0.1"), Some(8000)),
        "the entry service is Kong's own proxy listener"
    );
    for (key, host, port) in [
        ("app/one:8080", "10.1.0.7", 9000),
        ("app/many:80", "many.app.svc.cluster.local", 80),
        ("app/none:80", "none.app.svc.cluster.local", 80),
    ] {
        let name = format!(
            "gateway-wasm.infra.gw.{}",
            controller_shim::deliver::kong::entities::backend_id(key)
        );
        let backend = kong.entity("services", &name).unwrap();
        assert_eq!(
            (backend["host"].as_str(), backend["port"].as_u64()),
            (Some(host), Some(port)),
            "{key}: one endpoint is addressed directly, several through the Service name"
        );
        let route = kong.entity("routes", &name).unwrap();
        assert_eq!(route["paths"], serde_json::json!([prefix(key)]));
        assert_eq!(route["strip_path"], true);
        assert_eq!(route["preserve_host"], true);
        assert_eq!(route["service"]["id"], backend["id"]);
    }
    let route = kong.entity("routes", "gateway-wasm.infra.gw").unwrap();
    assert_eq!(route["paths"], serde_json::json!(["/"]));
    assert_eq!(route["preserve_host"], true);
    assert_eq!(route["service"]["id"], service["id"]);
    let chain = kong
        .entity("filter-chains", "gateway-wasm.infra.gw")
        .unwrap();
    assert_eq!(chain["route"]["id"], route["id"]);
}

/// The runtime with the test's objects and one Kong target serving infra/gw.
fn kong_runtime(options: KongOptions, metrics: &Arc<Metrics>) -> Runtime {
    let shared = Arc::new(Shared::new(Index::new(IndexFilter::default(), Kind::ALL)));
    let objects = Object::all_of(&loaded().snapshot);
    shared.update(|index| {
        for object in objects {
            index.apply(object);
        }
        for kind in Kind::ALL {
            index.mark_synced(kind);
        }
    });
    let mut config = RuntimeConfig::new("gateway-wasm.dev/controller-shim");
    config.gateways = vec![gateway("gw").gateway];
    Runtime::new(
        shared,
        vec![Target::Kong(Box::new(KongTarget::new(options)))],
        StatusSink::None,
        metrics.clone(),
        config,
    )
}

// ---- Kong with a database -------------------------------------------------------------------

#[tokio::test]
async fn pushes_a_catch_all_route_with_a_filter_chain_kong_accepts() {
    let kong = FakeKong::start(Some(schema())).await;
    let mut target = KongTarget::new(options(&kong.url()));
    let delivered = target.deliver(&gateway("gw")).await.unwrap();
    assert!(delivered.changed);
    assert_eq!(target.mode(), Some(KongMode::Db), "GET / said postgres");
    check_entities(&kong);
    check_pushed_config(&chain_config(&kong));
    let requests = kong.requests();
    assert_eq!(requests[0], ("GET".to_owned(), "/".to_owned()));
    assert!(
        requests
            .iter()
            .all(|(_, path)| !path.starts_with("/config")),
        "{requests:?}"
    );
    target.deliver(&gateway("gw")).await.unwrap();
    assert_eq!(kong.count("GET", "/"), 1, "the mode is asked once");
}

#[tokio::test]
async fn the_entities_match_what_a_dbless_kong_would_get() {
    let kong = FakeKong::start(Some(schema())).await;
    let mut target = KongTarget::new(options(&kong.url()));
    target.deliver(&gateway("gw")).await.unwrap();
    let declared = declarative_config(&gateway("gw"), &options(&kong.url())).unwrap();
    assert_eq!(
        declared["services"].as_array().unwrap().len(),
        4,
        "entry + 3 backends"
    );
    let service = &declared["services"][0];
    let route = &service["routes"][0];
    let chain = &route["filter_chains"][0];
    let strip = |mut entity: Value, keys: &[&str]| {
        for key in keys {
            entity.as_object_mut().unwrap().remove(*key);
        }
        entity
    };
    assert_eq!(
        strip(
            kong.entity("services", "gateway-wasm.infra.gw").unwrap(),
            &["id"]
        ),
        strip(service.clone(), &["routes"])
    );
    assert_eq!(
        strip(
            kong.entity("routes", "gateway-wasm.infra.gw").unwrap(),
            &["id", "service"]
        ),
        strip(route.clone(), &["filter_chains"])
    );
    let mut stored_chain = strip(
        kong.entity("filter-chains", "gateway-wasm.infra.gw")
            .unwrap(),
        &["id", "route"],
    );
    // The database mode tags the chain with a digest of everything it wrote.
    let tags = stored_chain
        .as_object_mut()
        .unwrap()
        .remove("tags")
        .unwrap();
    assert!(tags.to_string().contains("gateway-wasm-state:"), "{tags}");
    assert_eq!(stored_chain, *chain);
    for backend in &declared["services"].as_array().unwrap()[1..] {
        let name = backend["name"].as_str().unwrap();
        assert_eq!(
            strip(kong.entity("services", name).unwrap(), &["id"]),
            strip(backend.clone(), &["routes"])
        );
        assert_eq!(
            strip(kong.entity("routes", name).unwrap(), &["id", "service"]),
            backend["routes"][0]
        );
    }
}

#[tokio::test]
async fn unchanged_configs_are_not_rewritten_and_deleted_entities_are_recreated() {
    let kong = FakeKong::start(Some(schema())).await;
    let mut target = KongTarget::new(options(&kong.url()));
    target.deliver(&gateway("gw")).await.unwrap();
    let writes = kong.writes();
    assert_eq!(
        writes,
        3 + 2 * 3,
        "entry service, route, chain; a service and route per backend"
    );
    let again = target.deliver(&gateway("gw")).await.unwrap();
    assert!(!again.changed, "read back, found equal, nothing written");
    assert_eq!(kong.writes(), writes);
    // Someone deleted the entities (a Kong with a database keeps them across restarts).
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
    let mut object = KongTarget::new(options(&kong.url()));
    let err = object.deliver(&gateway("gw")).await.unwrap_err();
    assert!(
        matches!(err, DeliverError::KongStatus { status: 400, .. }),
        "{err}"
    );
    // … and --kong-config-string sends the same document serialized.
    let mut opts = options(&kong.url());
    opts.config_as_string = true;
    let mut string = KongTarget::new(opts);
    string.deliver(&gateway("gw")).await.unwrap();
    let config = chain_config(&kong);
    let parsed: Value = serde_json::from_str(config.as_str().unwrap()).unwrap();
    assert_eq!(parsed["upstreamSelector"], "kongRoute");
    assert!(!string.deliver(&gateway("gw")).await.unwrap().changed);
}

#[tokio::test]
async fn a_refused_push_names_kong_and_the_error() {
    let kong = FakeKong::start(Some(schema())).await;
    kong.fail_next_chain(400, "schema violation (filters.1.config: invalid)");
    let mut target = KongTarget::new(options(&kong.url()));
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
    let mut nowhere = KongTarget::new(options("http://127.0.0.1:9"));
    let err = nowhere.deliver(&gateway("gw")).await.unwrap_err();
    assert_eq!(err.metric_label(), "http", "{err}");
}

#[tokio::test]
async fn one_kong_serves_one_gateway() {
    let kong = FakeKong::start(Some(schema())).await;
    let mut target = KongTarget::new(options(&kong.url()));
    target.deliver(&gateway("gw")).await.unwrap();
    let err = target.deliver(&gateway("other")).await.unwrap_err();
    assert!(err.to_string().contains("one Gateway"), "{err}");
    assert_eq!(entity_name(&gateway("gw").gateway), "gateway-wasm.infra.gw");
}

#[tokio::test]
async fn the_runtime_pushes_to_kong_once_per_change_and_counts_it() {
    let kong = FakeKong::start(Some(schema())).await;
    let metrics = Arc::new(Metrics::default());
    let mut runtime = kong_runtime(options(&kong.url()), &metrics);
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
        "the periodic re-delivery recreates deleted entities"
    );
}

// ---- DB-less Kong ---------------------------------------------------------------------------

/// What the fixture would report for a foreign configuration: a DB-less Kong started from an
/// operator's own declarative file.
const FOREIGN_FILE: &str = fixture!("kong-foreign-declarative.yaml");

#[tokio::test]
async fn dbless_kong_gets_the_whole_declarative_config_in_one_post() {
    let kong = FakeKong::start_dbless(Some(schema())).await;
    let options = options(&kong.url());
    let mut target = KongTarget::new(options.clone());
    let delivered = target.deliver(&gateway("gw")).await.unwrap();
    assert!(delivered.changed);
    assert_eq!(target.mode(), Some(KongMode::Dbless), "GET / said off");
    let requests = kong.requests();
    let expected: Vec<(String, String)> = [("GET", "/"), ("GET", "/status"), ("POST", CONFIG_PATH)]
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        requests, expected,
        "an empty Kong is not read before it is filled; no PUT"
    );
    assert_eq!(CONFIG_PATH, "/config?check_hash=1&flatten_errors=1");
    assert_eq!(kong.writes(), 0);
    assert_eq!(kong.reloads(), 1);
    // Kong holds exactly the declarative configuration, fingerprinted as the MD5 of its text.
    let declared = declarative_config(&gateway("gw"), &options).unwrap();
    assert_eq!(kong.loaded().unwrap(), declared);
    assert_eq!(declared["_format_version"], "3.0");
    assert_eq!(kong.hash(), config_hash(&declared.to_string()));
    check_entities(&kong);
    check_pushed_config(&chain_config(&kong));
    // Nothing but ours.
    let kinds: Vec<String> = kong.entities().keys().cloned().collect();
    assert_eq!(kinds, ["filter-chains", "routes", "services"]);
    let counts: Vec<usize> = kong.entities().values().map(|m| m.len()).collect();
    assert_eq!(
        counts,
        [1, 4, 4],
        "one filter chain; entry + 3 backend routes and services"
    );
}

#[tokio::test]
async fn dbless_no_op_pushes_are_skipped() {
    let kong = FakeKong::start_dbless(Some(schema())).await;
    let mut target = KongTarget::new(options(&kong.url()));
    target.deliver(&gateway("gw")).await.unwrap();
    let posts = kong.count("POST", CONFIG_PATH);
    let again = target.deliver(&gateway("gw")).await.unwrap();
    assert!(!again.changed, "Kong's hash equals ours: nothing posted");
    assert_eq!(kong.count("POST", CONFIG_PATH), posts);
    assert_eq!(kong.count("GET", "/config"), 0);
    // A restarted shim finds the same hash and posts nothing either.
    let mut fresh = KongTarget::new(options(&kong.url()));
    assert!(!fresh.deliver(&gateway("gw")).await.unwrap().changed);
    assert_eq!(kong.count("POST", CONFIG_PATH), posts);
    // A different config is posted (Kong holds our previous one: no ownership check needed).
    let mut opts = options(&kong.url());
    opts.cluster_domain = "example.internal".to_owned();
    let mut other_domain = KongTarget::new(opts);
    assert!(other_domain.deliver(&gateway("gw")).await.unwrap().changed);
    assert_eq!(kong.reloads(), 2);
    let many = format!(
        "gateway-wasm.infra.gw.{}",
        controller_shim::deliver::kong::entities::backend_id("app/many:80")
    );
    assert_eq!(
        kong.entity("services", &many).unwrap()["host"],
        "many.app.svc.example.internal"
    );
}

#[tokio::test]
async fn dbless_kong_skips_the_reload_itself_when_its_hash_cannot_be_predicted() {
    // Should Kong's reported fingerprint ever differ from our MD5, nothing reloads needlessly:
    // the shim checks the configuration is ours and Kong's check_hash answers 304.
    let mut settings = KongSettings::dbless(Some(schema()));
    settings.unpredictable_hash = true;
    let kong = FakeKong::start_with(settings).await;
    let mut target = KongTarget::new(options(&kong.url()));
    assert!(target.deliver(&gateway("gw")).await.unwrap().changed);
    let again = target.deliver(&gateway("gw")).await.unwrap();
    assert!(!again.changed, "304 counts as unchanged");
    assert_eq!(kong.count("GET", "/config"), 1, "ownership read");
    assert_eq!(kong.count("POST", CONFIG_PATH), 2);
    assert_eq!(kong.reloads(), 1, "Kong did not reload");
}

#[tokio::test]
async fn a_restarted_dbless_kong_is_repaired_by_the_periodic_resync() {
    let kong = FakeKong::start_dbless(Some(schema())).await;
    let metrics = Arc::new(Metrics::default());
    let mut runtime = kong_runtime(options(&kong.url()), &metrics);
    let first = runtime.round(false).await;
    assert_eq!(first.pushed.len(), 1, "{first:?}");
    let forced = runtime.round(true).await;
    assert!(
        forced.pushed.is_empty() && forced.failed.is_empty(),
        "{forced:?}"
    );
    assert_eq!(
        kong.reloads(),
        1,
        "the resync compared hashes and posted nothing"
    );
    // Kong restarts without a declarative_config file: it comes back empty.
    kong.restart();
    assert_eq!(kong.hash(), EMPTY_CONFIG_HASH);
    assert!(
        kong.entity("filter-chains", "gateway-wasm.infra.gw")
            .is_none()
    );
    let unforced = runtime.round(false).await;
    assert!(
        unforced.pushed.is_empty(),
        "nothing changed on our side: the change-driven round does not ask"
    );
    let repaired = runtime.round(true).await;
    assert_eq!(repaired.pushed.len(), 1, "{repaired:?}");
    assert_eq!(kong.reloads(), 2);
    check_entities(&kong);
    check_pushed_config(&chain_config(&kong));
    assert_eq!(metrics.pushes("kong", "ok"), 3);
}

#[tokio::test]
async fn dbless_kong_holding_configuration_the_shim_did_not_write_is_not_replaced() {
    let kong = FakeKong::start_dbless(Some(schema())).await;
    kong.boot_with(FOREIGN_FILE);
    let before = kong.hash();
    let mut target = KongTarget::new(options(&kong.url()));
    let err = target.deliver(&gateway("gw")).await.unwrap_err();
    assert_eq!(err.metric_label(), "foreign");
    let text = err.to_string();
    assert!(
        text.contains("plugin prometheus")
            && text.contains("route billing")
            && text.contains("service billing"),
        "{text}"
    );
    assert!(text.contains("nothing was sent"), "{text}");
    assert_eq!(kong.count("POST", CONFIG_PATH), 0);
    assert_eq!(kong.hash(), before);
    assert!(kong.entity("services", "billing").is_some());

    // A Kong restarted from a file holding only our entities (examples/kong/kong.yaml's case)
    // is taken over.
    let ours = serde_norway::to_string(
        &declarative_config(&gateway("gw"), &options(&kong.url())).unwrap(),
    )
    .unwrap();
    kong.boot_with(&ours);
    assert!(target.deliver(&gateway("gw")).await.unwrap().changed);
    assert_eq!(kong.count("GET", "/config"), 2);

    // Another Gateway's shim pointed at the same Kong refuses rather than erase this one.
    let mut intruder = KongTarget::new(options(&kong.url()));
    let err = intruder.deliver(&gateway("other")).await.unwrap_err();
    assert_eq!(err.metric_label(), "foreign");
    assert!(
        err.to_string()
            .contains("filter_chain gateway-wasm.infra.gw"),
        "{err}"
    );
    assert!(
        kong.entity("filter-chains", "gateway-wasm.infra.gw")
            .is_some()
    );
}

#[tokio::test]
async fn dbless_validation_errors_name_the_entity_and_the_field() {
    // Kong 3.4, or no meta.json: a filter config must be a string.
    let kong = FakeKong::start_dbless(None).await;
    let mut object = KongTarget::new(options(&kong.url()));
    let err = object.deliver(&gateway("gw")).await.unwrap_err();
    assert_eq!(err.metric_label(), "invalid");
    let text = err.to_string();
    assert!(
        text.contains("POST /config?check_hash=1&flatten_errors=1 answered 400"),
        "{text}"
    );
    assert!(
        text.contains("filter_chain gateway-wasm.infra.gw: filters.1.config: expected a string"),
        "{text}"
    );
    assert_eq!(kong.reloads(), 0, "a refused configuration changes nothing");
    assert_eq!(kong.hash(), EMPTY_CONFIG_HASH);
    // --kong-config-string sends the same document serialized, and Kong takes it.
    let mut as_string = options(&kong.url());
    as_string.config_as_string = true;
    let mut string = KongTarget::new(as_string);
    assert!(string.deliver(&gateway("gw")).await.unwrap().changed);
    let config = chain_config(&kong);
    let parsed: Value = serde_json::from_str(config.as_str().unwrap()).unwrap();
    check_pushed_config(&parsed);
    assert!(!string.deliver(&gateway("gw")).await.unwrap().changed);

    // The runtime counts a refused push under its label.
    let fresh = FakeKong::start_dbless(None).await;
    let metrics = Arc::new(Metrics::default());
    let mut runtime = kong_runtime(options(&fresh.url()), &metrics);
    let round = runtime.round(false).await;
    assert_eq!(round.failed.len(), 1, "{round:?}");
    assert!(round.retry);
    assert_eq!(metrics.pushes("kong", "invalid"), 1);
}

// ---- choosing the mode ----------------------------------------------------------------------

#[tokio::test]
async fn explicit_db_mode_against_a_dbless_kong_fails_with_kongs_405() {
    let kong = FakeKong::start_dbless(Some(schema())).await;
    let mut opts = options(&kong.url());
    opts.mode = KongMode::Db;
    opts.proxy = Some("127.0.0.1:8000".to_owned());
    let mut target = KongTarget::new(opts);
    let err = target.deliver(&gateway("gw")).await.unwrap_err();
    assert!(
        matches!(err, DeliverError::KongStatus { status: 405, .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(
            "cannot create or update 'services' entities by 'name' when not using a database"
        ),
        "{text}"
    );
    assert!(text.contains("--kong-mode"), "{text}");
    assert_eq!(kong.count("GET", "/"), 0, "an explicit mode is not asked");
    assert_eq!(target.mode(), Some(KongMode::Db), "and not second-guessed");
}

#[tokio::test]
async fn explicit_dbless_mode_posts_without_asking() {
    let kong = FakeKong::start_dbless(Some(schema())).await;
    let mut opts = options(&kong.url());
    opts.mode = KongMode::Dbless;
    // With the mode and Kong's proxy listener given, nothing needs asking.
    opts.proxy = Some("127.0.0.1:8000".to_owned());
    let mut target = KongTarget::new(opts);
    assert!(target.deliver(&gateway("gw")).await.unwrap().changed);
    assert_eq!(kong.count("GET", "/"), 0);
    check_entities(&kong);
    // Against a Kong with a database: its GET /status has no configuration hash.
    let db = FakeKong::start(Some(schema())).await;
    let mut options = KongOptions::new(&db.url());
    options.mode = KongMode::Dbless;
    let err = KongTarget::new(options)
        .deliver(&gateway("gw"))
        .await
        .unwrap_err();
    assert_eq!(err.metric_label(), "config");
    assert!(err.to_string().contains("has a database"), "{err}");
    assert!(err.to_string().contains("--kong-mode"), "{err}");
    assert_eq!(db.count("POST", CONFIG_PATH), 0);
}

#[tokio::test]
async fn detection_refuses_data_planes_and_kong_without_wasm() {
    let mut data_plane = KongSettings::dbless(Some(schema()));
    data_plane.role = "data_plane";
    let kong = FakeKong::start_with(data_plane).await;
    let mut target = KongTarget::new(options(&kong.url()));
    let err = target.deliver(&gateway("gw")).await.unwrap_err();
    assert_eq!(err.metric_label(), "config");
    assert!(err.to_string().contains("data plane"), "{err}");
    assert_eq!(target.mode(), None, "asked again on the next attempt");
    assert_eq!(kong.count("POST", CONFIG_PATH), 0);

    let mut no_wasm = KongSettings::db(Some(schema()));
    no_wasm.wasm = false;
    let kong = FakeKong::start_with(no_wasm).await;
    let err = KongTarget::new(options(&kong.url()))
        .deliver(&gateway("gw"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("wasm = off"), "{err}");
    assert_eq!(kong.writes(), 0);
}
