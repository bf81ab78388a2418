//! The engine accepts every PluginConfig the resolver produces from the shared vectors, and the
//! resolver is deterministic on them.

// A test crate: its helpers report failures by panicking, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::panic)]

use conformance::snapshot::snapshot_for;
use conformance::vectors::{self, Scenario, VectorFile};
use controller_shim::{Resolution, Settings, resolve};

fn fingerprint(r: &Resolution) -> String {
    let mut out = String::new();
    for g in &r.gateways {
        out.push_str(&serde_json::to_string(&g.config).unwrap());
        out.push_str(&serde_json::to_string(&g.status).unwrap());
        out.push_str(&format!("{:?}{:?}", g.backends, g.tls));
    }
    for x in &r.routes {
        out.push_str(&serde_json::to_string(&x.status).unwrap());
    }
    for x in &r.listener_sets {
        out.push_str(&serde_json::to_string(&x.status).unwrap());
    }
    for x in &r.gateway_classes {
        out.push_str(&serde_json::to_string(&x.status).unwrap());
    }
    out
}

fn check(case: &impl Scenario, file: &VectorFile) {
    let snapshot = snapshot_for(case, file);
    let resolution = resolve(&snapshot, &Settings::default());
    let gw = case.gateway();
    assert!(
        resolution
            .gateways
            .iter()
            .any(|g| g.gateway.namespace == gw.namespace && g.gateway.name == gw.name),
        "{}: no result for the case's Gateway",
        case.id()
    );
    for g in &resolution.gateways {
        if let Err(e) = engine::RouteTable::compile(&g.config) {
            panic!(
                "{}: the engine rejects the config of {}: {e}\n{}",
                case.id(),
                g.gateway,
                serde_json::to_string_pretty(&g.config).unwrap()
            );
        }
    }
    // Same input, same output, whatever the order of the objects in the snapshot.
    let mut shuffled = snapshot.clone();
    shuffled.http_routes.reverse();
    shuffled.services.reverse();
    shuffled.namespaces.reverse();
    shuffled.endpoint_slices.reverse();
    shuffled.listener_sets.reverse();
    assert_eq!(
        fingerprint(&resolution),
        fingerprint(&resolve(&shuffled, &Settings::default())),
        "{}: the resolution depends on object order",
        case.id()
    );
}

#[test]
fn every_resolved_config_compiles() {
    let file = vectors::load(vectors::httproute_vectors_path()).unwrap();
    for case in &file.cases {
        check(case, &file);
    }
    for case in &file.unreleased_cases {
        check(case, &file);
    }
    for case in &file.status_cases {
        check(case, &file);
    }
}
