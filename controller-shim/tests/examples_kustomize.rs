//! `examples/kubernetes/`: every overlay renders with `kubectl kustomize`, and every rendered
//! object (plus `example-route.yaml`) deserializes into its `k8s-openapi` / `gateway-api` type
//! with nothing left over: a field the type does not know (a typo, a field from another API
//! version) fails, naming the object and the field's path.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod examples_common;

use controller_shim::api::apps::Deployment;
use controller_shim::api::core::{ConfigMap, Namespace, Service, ServiceAccount};
use controller_shim::api::rbac::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use controller_shim::api::{Gateway, GatewayClass, HttpRoute};
use examples_common::{documents, examples, kustomize, kustomize_overlays};
use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Paths of `original` that the typed round trip lost or changed.
fn lost_fields(original: &Value, round_trip: &Value, path: &str, out: &mut Vec<String>) {
    match (original, round_trip) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let here = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match b.get(key) {
                    Some(back) => lost_fields(value, back, &here, out),
                    None if value.is_null() => {}
                    None => out.push(format!("`{here}` is not a field of the type")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (value, back)) in a.iter().zip(b).enumerate() {
                lost_fields(value, back, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a != b => out.push(format!("`{path}` is {a} but reads as {b}")),
        _ => {}
    }
}

/// Deserializes `value` as `T` (its apiVersion and kind must be `T`'s), then serializes it back:
/// anything of `value` that did not survive is a field `T` does not have.
fn strict<T>(value: &Value) -> Result<(), String>
where
    T: Resource<DynamicType = ()> + DeserializeOwned + Serialize,
{
    let (api_version, kind) = (T::api_version(&()), T::kind(&()));
    if value["apiVersion"] != api_version.as_ref() || value["kind"] != kind.as_ref() {
        return Err(format!("expected apiVersion {api_version}, kind {kind}"));
    }
    let typed: T = serde_path_to_error::deserialize(value.clone())
        .map_err(|e| format!("`{}`: {}", e.path(), e.inner()))?;
    let round_trip = serde_json::to_value(&typed).unwrap();
    let mut lost = Vec::new();
    lost_fields(value, &round_trip, "", &mut lost);
    if lost.is_empty() {
        Ok(())
    } else {
        Err(lost.join("; "))
    }
}

/// Type-checks one object by its kind; every kind the install uses is listed here.
fn type_check(value: &Value) -> Result<(), String> {
    match value["kind"].as_str().unwrap_or_default() {
        "Namespace" => strict::<Namespace>(value),
        "ServiceAccount" => strict::<ServiceAccount>(value),
        "ConfigMap" => strict::<ConfigMap>(value),
        "Service" => strict::<Service>(value),
        "Deployment" => strict::<Deployment>(value),
        "ClusterRole" => strict::<ClusterRole>(value),
        "ClusterRoleBinding" => strict::<ClusterRoleBinding>(value),
        "Role" => strict::<Role>(value),
        "RoleBinding" => strict::<RoleBinding>(value),
        "GatewayClass" => strict::<GatewayClass>(value),
        "Gateway" => strict::<Gateway>(value),
        "HTTPRoute" => strict::<HttpRoute>(value),
        other => Err(format!("kind {other:?} has no type check here; add it")),
    }
}

fn name(value: &Value) -> String {
    format!(
        "{} {}/{}",
        value["kind"].as_str().unwrap_or("?"),
        value["metadata"]["namespace"].as_str().unwrap_or("-"),
        value["metadata"]["name"].as_str().unwrap_or("?")
    )
}

#[test]
fn every_overlay_renders_and_every_object_type_checks() {
    for overlay in kustomize_overlays() {
        let objects = kustomize(&overlay);
        assert!(objects.len() >= 10, "{}: {objects:?}", overlay.display());
        for object in &objects {
            type_check(object)
                .unwrap_or_else(|e| panic!("{} renders {}: {e}", overlay.display(), name(object)));
        }
    }
    for object in documents(&examples().join("kubernetes/example-route.yaml")) {
        type_check(&object).unwrap_or_else(|e| panic!("example-route.yaml {}: {e}", name(&object)));
    }
}

#[test]
fn the_type_check_rejects_typos_and_wrong_versions() {
    let overlay = &kustomize_overlays()[0];
    let objects = kustomize(overlay);
    let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
    type_check(deployment).unwrap();

    let mut typo = deployment.clone();
    typo["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always".into();
    let err = type_check(&typo).unwrap_err();
    assert!(
        err.contains("`spec.template.spec.containers[0].imagePullPolicyy` is not a field"),
        "{err}"
    );

    let mut wrong_type = deployment.clone();
    wrong_type["spec"]["replicas"] = "two".into();
    let err = type_check(&wrong_type).unwrap_err();
    assert!(err.contains("`spec.replicas`"), "{err}");

    let mut old = deployment.clone();
    old["apiVersion"] = "apps/v1beta1".into();
    assert!(
        type_check(&old)
            .unwrap_err()
            .contains("expected apiVersion apps/v1")
    );

    let gateway = objects.iter().find(|o| o["kind"] == "Gateway").unwrap();
    let mut typo = gateway.clone();
    typo["spec"]["listeners"][0]["allowedRoute"] = serde_json::json!({});
    let err = type_check(&typo).unwrap_err();
    assert!(err.contains("spec.listeners[0].allowedRoute"), "{err}");
}

#[test]
fn the_sidecar_overlay_runs_the_image_packager_builds() {
    let overlay = examples().join("kubernetes/overlays/sidecar");
    let objects = kustomize(&overlay);
    let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    let shim = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "controller-shim")
        .unwrap();
    // kustomization.yaml's `images` names the repository `packager push` publishes to; the image
    // runs as user 65532 (`packager image`), which the securityContext requires.
    assert_eq!(
        shim["image"],
        "registry.example/gateway-wasm/controller-shim:0.1.0"
    );
    assert_eq!(shim["securityContext"]["runAsUser"], 65532);
    assert_eq!(shim["securityContext"]["readOnlyRootFilesystem"], true);
    // The generated ConfigMaps are referenced by their hashed names.
    for map in objects.iter().filter(|o| o["kind"] == "ConfigMap") {
        let name = map["metadata"]["name"].as_str().unwrap();
        assert!(
            deployment.to_string().contains(&format!("\"{name}\"")),
            "ConfigMap {name} is not referenced by the Deployment"
        );
    }
    // Everything namespaced lands in the kustomization's namespace.
    for object in &objects {
        let kind = object["kind"].as_str().unwrap();
        if !matches!(
            kind,
            "Namespace" | "ClusterRole" | "ClusterRoleBinding" | "GatewayClass"
        ) {
            assert_eq!(
                object["metadata"]["namespace"],
                "gateway-system",
                "{}",
                name(object)
            );
        }
    }
}

/// The arguments examples/kubernetes-fleet/README.md gives `controller-shim bootstrap`.
const FLEET_BOOTSTRAP_ARGS: [&str; 8] = [
    "--xds",
    "gateway-wasm-xds.gateway-system.svc.cluster.local:18000",
    "--gateway",
    "gateway-system/gw",
    "--node-id",
    "envoy",
    "--port-offset",
    "8000",
];

#[test]
fn the_fleet_example_renders_type_checks_and_feeds_its_envoys_over_xds() {
    let dir = examples().join("kubernetes-fleet");
    let objects = kustomize(&dir);
    for object in &objects {
        type_check(object)
            .unwrap_or_else(|e| panic!("kubernetes-fleet renders {}: {e}", name(object)));
    }
    let deployment = |app: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == app)
            .unwrap_or_else(|| panic!("no Deployment {app}"))
    };
    let shim = deployment("controller-shim");
    assert_eq!(shim["spec"]["replicas"], 2);
    let args = shim["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    for flag in [
        "--kube",
        "--xds-listen=0.0.0.0:18000",
        "--wasm=oci://",
        "--gateway=gateway-system/gw",
    ] {
        assert!(args.contains(flag), "the shim runs without {flag}: {args}");
    }
    // The Service the bootstrap names selects the shim replicas and reaches their xDS port.
    let xds = objects
        .iter()
        .find(|o| o["kind"] == "Service" && o["metadata"]["name"] == "gateway-wasm-xds")
        .unwrap();
    assert_eq!(xds["spec"]["selector"]["app"], "controller-shim");
    assert_eq!(xds["spec"]["ports"][0]["port"], 18000);
    // The Envoys mount the generated bootstrap ConfigMap by its hashed name.
    let envoy = deployment("envoy");
    let map = objects
        .iter()
        .find(|o| {
            o["kind"] == "ConfigMap"
                && o["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .starts_with("envoy-bootstrap-")
        })
        .unwrap();
    assert_eq!(
        envoy["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"],
        map["metadata"]["name"]
    );
    // bootstrap.yaml is exactly what `controller-shim bootstrap` prints, and Envoy accepts it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_controller-shim"))
        .arg("bootstrap")
        .args(FLEET_BOOTSTRAP_ARGS)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let path = dir.join("bootstrap.yaml");
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, &printed).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        printed,
        "examples/kubernetes-fleet/bootstrap.yaml is stale: BLESS=1 cargo test -p controller-shim --test examples_kustomize"
    );
    assert_eq!(map["data"]["bootstrap.yaml"], printed.as_str());
    testkit::validate_config(&path).unwrap();
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(
        readme.contains(&FLEET_BOOTSTRAP_ARGS.join(" ")),
        "README.md must give the bootstrap command's arguments"
    );
}
