//! `examples/kubernetes/`: every manifest parses as its kind, the RBAC grants exactly what the code
//! uses (the code's own table, `rbac::required_rbac()`), and the Deployment's pieces agree
//! with each other (paths, ServiceAccount, lease namespace, controllerName).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use controller_shim::api::apps::Deployment;
use controller_shim::api::core::{Namespace, Service, ServiceAccount};
use controller_shim::api::rbac::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use controller_shim::rbac::required_rbac;
use serde::Deserialize as _;
use serde_json::Value;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/kubernetes")
}

/// Every document of every YAML file, as JSON.
fn documents() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, document) in serde_norway::Deserializer::from_str(&text).enumerate() {
            let value = Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{} document {}: {e}", file.display(), i + 1));
            if !value.is_null() {
                out.push((format!("{} document {}", file.display(), i + 1), value));
            }
        }
    }
    out
}

fn of_kind(kind: &str) -> Vec<Value> {
    documents()
        .into_iter()
        .filter(|(_, v)| v["kind"] == kind)
        .map(|(_, v)| v)
        .collect()
}

#[test]
fn every_manifest_parses_as_its_kind() {
    for (origin, value) in documents() {
        assert!(value["metadata"]["name"].is_string(), "{origin}: no name");
        let kind = value["kind"].as_str().unwrap_or_default();
        let parsed: Result<(), String> = match kind {
            "Deployment" => serde_json::from_value::<Deployment>(value.clone())
                .map(drop)
                .map_err(|e| e.to_string()),
            "ClusterRole" => serde_json::from_value::<ClusterRole>(value.clone())
                .map(drop)
                .map_err(|e| e.to_string()),
            "Role" => serde_json::from_value::<Role>(value.clone())
                .map(drop)
                .map_err(|e| e.to_string()),
            "RoleBinding" => serde_json::from_value::<RoleBinding>(value.clone())
                .map(drop)
                .map_err(|e| e.to_string()),
            "ClusterRoleBinding" => serde_json::from_value::<ClusterRoleBinding>(value.clone())
                .map(drop)
                .map_err(|e| e.to_string()),
            "ServiceAccount" => serde_json::from_value::<ServiceAccount>(value.clone())
                .map(drop)
                .map_err(|e| e.to_string()),
            "Service" => serde_json::from_value::<Service>(value.clone())
                .map(drop)
                .map_err(|e| e.to_string()),
            "Namespace" => serde_json::from_value::<Namespace>(value.clone())
                .map(drop)
                .map_err(|e| e.to_string()),
            _ => {
                // Gateway API kinds: the shim's own loader must read them.
                let mut loaded = controller_shim::manifests::Loaded::default();
                let text = serde_json::to_string(&value).unwrap();
                controller_shim::manifests::load_str(
                    &text,
                    std::path::Path::new(&origin),
                    &mut loaded,
                )
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    if loaded.unknown.is_empty() {
                        Ok(())
                    } else {
                        Err(format!("unknown kind {kind}"))
                    }
                })
            }
        };
        parsed.unwrap_or_else(|e| panic!("{origin} ({kind}): {e}"));
    }
}

/// (apiGroup, resource, verb) triples a list of PolicyRules grants.
fn grants(rules: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in rules.as_array().unwrap() {
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    out.insert((
                        group.as_str().unwrap().to_owned(),
                        resource.as_str().unwrap().to_owned(),
                        verb.as_str().unwrap().to_owned(),
                    ));
                }
            }
        }
    }
    out
}

fn shim_arg(name: &str) -> String {
    let deployment = &of_kind("Deployment")[0];
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    let shim = containers
        .iter()
        .find(|c| c["name"] == "controller-shim")
        .unwrap();
    shim["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find_map(|a| a.strip_prefix(&format!("--{name}=")).map(str::to_owned))
        .unwrap_or_else(|| panic!("the shim has no --{name}"))
}

#[test]
fn rbac_grants_exactly_what_the_code_uses() {
    let cluster: BTreeSet<_> = of_kind("ClusterRole")
        .iter()
        .flat_map(|r| grants(&r["rules"]))
        .collect();
    let lease_namespace = shim_arg("lease-namespace");
    let roles = of_kind("Role");
    let namespaced: BTreeSet<_> = roles
        .iter()
        .filter(|r| r["metadata"]["namespace"] == lease_namespace.as_str())
        .flat_map(|r| grants(&r["rules"]))
        .collect();
    let mut needed_cluster = BTreeSet::new();
    let mut needed_namespaced = BTreeSet::new();
    for rule in required_rbac() {
        for verb in rule.verbs {
            let triple = (
                rule.group.to_string(),
                rule.resource.clone(),
                (*verb).to_owned(),
            );
            if rule.namespaced_role {
                needed_namespaced.insert(triple);
            } else {
                needed_cluster.insert(triple);
            }
        }
    }
    let missing: Vec<_> = needed_cluster.difference(&cluster).collect();
    assert!(missing.is_empty(), "the ClusterRole lacks {missing:?}");
    let missing: Vec<_> = needed_namespaced.difference(&namespaced).collect();
    assert!(
        missing.is_empty(),
        "the Role in {lease_namespace} lacks {missing:?}"
    );
    let extra: Vec<_> = cluster.difference(&needed_cluster).collect();
    assert!(
        extra.is_empty(),
        "the ClusterRole grants more than the code uses: {extra:?}"
    );
    let extra: Vec<_> = namespaced.difference(&needed_namespaced).collect();
    assert!(
        extra.is_empty(),
        "the Role grants more than the code uses: {extra:?}"
    );
}

#[test]
fn the_pieces_agree() {
    let deployment = &of_kind("Deployment")[0];
    let pod = &deployment["spec"]["template"]["spec"];
    let account = pod["serviceAccountName"].as_str().unwrap();
    let namespace = deployment["metadata"]["namespace"].as_str().unwrap();
    for binding in of_kind("RoleBinding")
        .iter()
        .chain(of_kind("ClusterRoleBinding").iter())
    {
        let subject = &binding["subjects"][0];
        assert_eq!(
            (subject["name"].as_str(), subject["namespace"].as_str()),
            (Some(account), Some(namespace))
        );
    }
    // The shim's controllerName is the GatewayClass's.
    let class = &of_kind("GatewayClass")[0];
    assert_eq!(
        class["spec"]["controllerName"].as_str().unwrap(),
        shim_arg("controller-name")
    );
    // Envoy starts from the bootstrap the shim writes for the Gateway it serves.
    let gateway = shim_arg("gateway");
    let bootstrap = format!("{}/{gateway}/bootstrap.yaml", shim_arg("envoy-dir"));
    let envoy = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "envoy")
        .unwrap();
    assert!(
        envoy["command"].to_string().contains(&bootstrap),
        "{bootstrap} not in {}",
        envoy["command"]
    );
    let (gw_namespace, gw_name) = gateway.split_once('/').unwrap();
    assert!(
        of_kind("Gateway").iter().any(|g| g["metadata"]["namespace"] == gw_namespace && g["metadata"]["name"] == gw_name),
        "the served Gateway {gateway} is in gateway.yaml"
    );
    // The shared config volume is an in-memory emptyDir mounted by both containers.
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "config")
        .unwrap();
    assert_eq!(volume["emptyDir"]["medium"], "Memory");
    // The filter path the shim renders is where Envoy mounts the filter.
    let wasm = shim_arg("wasm");
    assert!(
        envoy["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| wasm.starts_with(m["mountPath"].as_str().unwrap())),
        "Envoy does not mount {wasm}"
    );
    // Probes use the shim's health endpoints.
    let text = deployment.to_string();
    assert!(text.contains("/readyz") && text.contains("/healthz"));
}
