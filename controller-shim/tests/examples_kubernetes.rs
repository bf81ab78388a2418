//! `examples/kubernetes/`, as `kubectl kustomize` renders each overlay: the RBAC grants exactly what
//! the code uses (the code's own table, `rbac::required_rbac()`), and the Deployment's
//! pieces agree with each other (paths, ServiceAccount, lease namespace, controllerName). That
//! every object type-checks is `examples_kustomize.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod examples_common;

use std::collections::BTreeSet;

use controller_shim::rbac::required_rbac;
use serde_json::Value;

/// Every object the overlays render (`kubectl kustomize`), plus the example route.
fn documents() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for overlay in examples_common::kustomize_overlays() {
        for (i, value) in examples_common::kustomize(&overlay).into_iter().enumerate() {
            out.push((format!("{} object {}", overlay.display(), i + 1), value));
        }
    }
    let route = examples_common::examples().join("kubernetes/example-route.yaml");
    for (i, value) in examples_common::documents(&route).into_iter().enumerate() {
        out.push((format!("{} document {}", route.display(), i + 1), value));
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
fn gateway_api_objects_load_in_the_shim() {
    for (origin, value) in documents() {
        let kind = value["kind"].as_str().unwrap_or_default();
        if !matches!(kind, "GatewayClass" | "Gateway" | "HTTPRoute") {
            continue;
        }
        // Gateway API kinds: the shim's own loader must read them.
        let mut loaded = controller_shim::manifests::Loaded::default();
        let text = serde_json::to_string(&value).unwrap();
        controller_shim::manifests::load_str(&text, std::path::Path::new(&origin), &mut loaded)
            .unwrap_or_else(|e| panic!("{origin} ({kind}): {e}"));
        assert!(loaded.unknown.is_empty(), "{origin}: {:?}", loaded.unknown);
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

/// The value the shim container gets for environment variable `name`: a literal, the pod's
/// namespace (a fieldRef), or a key of a ConfigMap it loads with `envFrom`.
fn shim_env(name: &str) -> String {
    let deployment = &of_kind("Deployment")[0];
    let shim = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "controller-shim")
        .unwrap();
    if let Some(var) = shim["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == name)
    {
        if let Some(value) = var["value"].as_str() {
            return value.to_owned();
        }
        assert_eq!(
            var["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.namespace"
        );
        return deployment["metadata"]["namespace"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    let maps = of_kind("ConfigMap");
    shim["envFrom"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|from| from["configMapRef"]["name"].as_str())
        .find_map(|map| {
            let map = maps.iter().find(|m| m["metadata"]["name"] == map)?;
            map["data"][name].as_str().map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("the shim gets no {name}"))
}

#[test]
fn rbac_grants_exactly_what_the_code_uses() {
    let cluster: BTreeSet<_> = of_kind("ClusterRole")
        .iter()
        .flat_map(|r| grants(&r["rules"]))
        .collect();
    // The shim's --lease-namespace defaults to $POD_NAMESPACE.
    let lease_namespace = shim_env("POD_NAMESPACE");
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
        shim_env("GATEWAY_WASM_CONTROLLER_NAME")
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
