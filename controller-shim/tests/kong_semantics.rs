//! The Kong delivery under Kong's own semantics (`docs/kong.md`), against the Admin API fixture
//! (`support/fake_kong.rs`) whose workers re-encode object filter configs with lua-cjson and load
//! them with the filter's engine, reporting a rejection only in Kong's error log:
//! - what the shim posts is what Kong's workers run (no empty list turns into a rejected `{}`);
//! - the backend routes Kong's router picks follow the configuration (stale ones are deleted);
//! - multi-port Gateways need a Kong port map; Kong's limitations are reported.

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

mod examples_common;

use controller_shim::deliver::kong::{KongMode, KongOptions, KongTarget};
use examples_common::quickstart;
use fake_kong::FakeKong;

fn schema() -> serde_json::Value {
    engine::schema::plugin_config_schema_draft4()
}

/// The workers run exactly one filter configuration, of the revision just delivered, and Kong's
/// error log has no failed reconfiguration.
fn check_workers_run_the_push(kong: &FakeKong) {
    assert_eq!(
        kong.error_log(),
        Vec::<String>::new(),
        "Kong's workers refused what the shim posted (while the Admin API said 201)"
    );
    let configs = kong.worker_configs();
    assert_eq!(configs.len(), 1, "{configs:?}");
    let running = engine::parse(configs[0].as_bytes()).unwrap();
    assert_eq!(running.revision, quickstart().config.revision);
}

#[tokio::test]
async fn dbless_kongs_workers_run_what_the_shim_posts() {
    let kong = FakeKong::start_dbless(Some(schema())).await;
    let mut target = KongTarget::new(KongOptions::new(&kong.url()));
    target.deliver(&quickstart()).await.unwrap();
    check_workers_run_the_push(&kong);
}

#[tokio::test]
async fn database_kongs_workers_run_what_the_shim_writes() {
    let kong = FakeKong::start(Some(schema())).await;
    let mut target = KongTarget::new(KongOptions::new(&kong.url()));
    target.deliver(&quickstart()).await.unwrap();
    check_workers_run_the_push(&kong);
}

#[tokio::test]
async fn a_config_sent_as_a_string_reaches_the_workers_unchanged() {
    let kong = FakeKong::start_dbless(None).await;
    let mut options = KongOptions::new(&kong.url());
    options.config_as_string = true;
    let mut target = KongTarget::new(options);
    target.deliver(&quickstart()).await.unwrap();
    check_workers_run_the_push(&kong);
}

#[tokio::test]
async fn backend_routes_follow_the_configuration_and_stale_ones_are_deleted() {
    let kong = FakeKong::start(Some(schema())).await;
    let mut target = KongTarget::new(KongOptions::new(&kong.url()));
    let full = quickstart();
    target.deliver(&full).await.unwrap();
    let layout = target.layout(&full).unwrap();
    assert_eq!(layout.backends.len(), 4, "{:?}", layout.backends);
    for backend in &layout.backends {
        let route = kong.entity("routes", &backend.name).unwrap();
        assert_eq!(route["paths"][0], backend.prefix.as_str());
        assert!(
            backend.prefix.starts_with("/.gateway-wasm/") && backend.prefix.len() > 50,
            "a secret and an id: {}",
            backend.prefix
        );
    }

    // The canary backend (store-v2) goes away: its rule is gone from the configuration.
    let mut smaller = full.clone();
    for route in &mut smaller.config.routes {
        for rule in &mut route.rules {
            rule.backend_refs
                .retain(|r| r.backend != "store/store-v2:8080");
        }
        route
            .rules
            .retain(|r| !r.backend_refs.is_empty() || !r.filters.is_empty());
    }
    smaller.config.backends.remove("store/store-v2:8080");
    smaller.backends.remove("store/store-v2:8080");
    assert!(target.deliver(&smaller).await.unwrap().changed);
    let gone = layout
        .backends
        .iter()
        .find(|b| b.key == "store/store-v2:8080")
        .unwrap();
    assert!(kong.entity("routes", &gone.name).is_none());
    assert!(kong.entity("services", &gone.name).is_none());
    assert_eq!(kong.count("DELETE", &format!("/routes/{}", gone.name)), 1);
    for kept in layout.backends.iter().filter(|b| b.name != gone.name) {
        assert!(kong.entity("routes", &kept.name).is_some(), "{}", kept.name);
    }
    assert!(kong.entity("routes", &layout.name).is_some());
    check_workers_run_revision(&kong, &smaller.config.revision);
}

fn check_workers_run_revision(kong: &FakeKong, revision: &str) {
    assert!(kong.error_log().is_empty(), "{:?}", kong.error_log());
    let configs = kong.worker_configs();
    assert_eq!(
        engine::parse(configs[0].as_bytes()).unwrap().revision,
        revision
    );
}

#[tokio::test]
async fn a_multi_port_gateway_needs_a_kong_port_for_every_gateway_port() {
    let kong = FakeKong::start_dbless(Some(schema())).await;
    let mut gateway = quickstart();
    let mut alt = gateway.config.listeners[0].clone();
    alt.name = "alt".to_owned();
    alt.port = 8080;
    gateway.config.listeners.push(alt);

    let mut target = KongTarget::new(KongOptions::new(&kong.url()));
    let err = target.deliver(&gateway).await.unwrap_err().to_string();
    assert!(
        err.contains("listens on ports 80, 8080")
            && err.contains("--kong-port")
            && err.contains("missing: 80, 8080"),
        "{err}"
    );
    assert_eq!(kong.reloads(), 0, "nothing half-written");

    let mut options = KongOptions::new(&kong.url());
    options.ports = [(80, 8000), (8080, 8001)].into_iter().collect();
    let mut target = KongTarget::new(options);
    target.deliver(&gateway).await.unwrap();
    let running: serde_json::Value = serde_json::from_str(&kong.worker_configs()[0]).unwrap();
    assert_eq!(
        running["kong"]["ports"],
        serde_json::json!({"8000": 80, "8001": 8080})
    );
}

#[tokio::test]
async fn timeouts_and_retries_are_reported_as_not_applied() {
    let kong = FakeKong::start_dbless(Some(schema())).await;
    let mut gateway = quickstart();
    let rule = &mut gateway.config.routes[0].rules[0];
    rule.timeouts = Some(Box::new(engine::config::Timeouts {
        request: Some("5s".to_owned()),
        backend_request: None,
    }));
    rule.retry = Some(Box::new(engine::config::Retry {
        attempts: Some(2),
        ..Default::default()
    }));
    let mut target = KongTarget::new(KongOptions::new(&kong.url()));
    let delivered = target.deliver(&gateway).await.unwrap();
    // The quickstart's GRPCRoute is not delivered to Kong (its own warning); the rule's timeouts
    // and retry are the one other warning.
    assert_eq!(delivered.warnings.len(), 2, "{:?}", delivered.warnings);
    let (grpc, others): (Vec<&String>, Vec<&String>) = delivered
        .warnings
        .iter()
        .partition(|w| w.starts_with("GRPCRoute rpc/echo is not delivered to Kong"));
    assert_eq!(grpc.len(), 1, "{:?}", delivered.warnings);
    let warning = others[0];
    assert!(
        warning.contains("rules[0]") && warning.contains("timeouts and retry not applied on Kong"),
        "{warning}"
    );
    assert_eq!(target.mode(), Some(KongMode::Dbless));
}

#[test]
fn a_route_secret_must_be_long_and_path_safe() {
    let mut options = KongOptions::new("http://127.0.0.1:8001");
    options.route_secret = "short".to_owned();
    let err = controller_shim::deliver::kong::layout(&quickstart(), &options)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--kong-route-secret"), "{err}");
    options.route_secret = "has/a/slash/in/it-0123".to_owned();
    assert!(controller_shim::deliver::kong::layout(&quickstart(), &options).is_err());
}
