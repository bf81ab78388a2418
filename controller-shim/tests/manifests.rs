//! Loading manifest directories: multi-document files, Lists, defaults, unknown kinds, and errors that
//! name the file, the document and the field.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

use controller_shim::manifests::{self, ManifestError};

const GATEWAY: &str = r#"
# leading comment and an empty document
---
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
  - {name: http, port: 80, protocol: HTTP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - backendRefs: [{name: api, port: 8080}]
---
"#;

const BACKENDS: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: api}
  spec:
    ports: [{port: 8080, targetPort: 8080, appProtocol: kubernetes.io/h2c}]
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: api-1, labels: {kubernetes.io/service-name: api}}
  addressType: IPv4
  endpoints: [{addresses: [10.0.0.1], conditions: {ready: true}}]
  ports: [{port: 8080}]
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: settings}
  data: {a: b}
"#;

const OTHERS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: infra, labels: {shared: "true"}}
---
apiVersion: v1
kind: Secret
metadata: {name: cert, namespace: infra}
type: kubernetes.io/tls
data: {tls.crt: Y2VydA==, tls.key: a2V5}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: allow, namespace: app}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: infra}]
  to: [{group: "", kind: Service}]
---
apiVersion: gateway.networking.x-k8s.io/v1alpha1
kind: XListenerSet
metadata: {name: extra, namespace: infra}
spec:
  parentRef: {name: gw}
  listeners:
  - {name: extra, port: 8080, protocol: HTTP}
"#;

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

#[test]
fn loads_every_kind_from_multi_document_files_and_lists() {
    let dir = dir_with(&[
        ("gateway.yaml", GATEWAY),
        ("nested/backends.yml", BACKENDS),
        ("others.yaml", OTHERS),
        ("README.md", "not a manifest"),
        (".hidden.yaml", "kind: [broken"),
    ]);
    let loaded = manifests::load_dir(dir.path()).unwrap();
    let s = &loaded.snapshot;
    assert_eq!(loaded.files, 3);
    assert_eq!(s.gateway_classes.len(), 1);
    assert_eq!(s.gateways.len(), 1);
    assert_eq!(s.gateways[0].spec.listeners[0].port, 80);
    assert_eq!(s.http_routes.len(), 1);
    assert_eq!(
        s.http_routes[0].metadata.namespace.as_deref(),
        Some("default"),
        "namespaced objects default to `default`"
    );
    assert_eq!(s.services.len(), 1);
    assert_eq!(s.endpoint_slices.len(), 1);
    assert_eq!(s.namespaces.len(), 1);
    assert_eq!(s.secrets.len(), 1);
    assert_eq!(s.reference_grants.len(), 1);
    assert_eq!(s.listener_sets.len(), 1);
    assert_eq!(loaded.objects, 9);

    assert_eq!(loaded.unknown.len(), 1);
    let unknown = &loaded.unknown[0];
    assert_eq!(unknown.kind, "ConfigMap");
    assert_eq!(unknown.name, "settings");
    assert_eq!(unknown.origin.document, 1);
    assert_eq!(unknown.origin.item, Some(2));
    assert!(
        unknown
            .to_string()
            .contains("backends.yml document 1 items[2]")
    );
}

#[test]
fn malformed_documents_name_the_file_the_document_and_the_field() {
    let broken = GATEWAY.replace("port: 80", "port: eighty");
    let dir = dir_with(&[("a.yaml", &broken)]);
    let error = manifests::load_dir(dir.path()).unwrap_err();
    let ManifestError::Malformed {
        origin,
        kind,
        field,
        ..
    } = &error
    else {
        panic!("unexpected error: {error}");
    };
    assert!(origin.file.ends_with("a.yaml"));
    // A comment before the first `---` is not a document of its own.
    assert_eq!(origin.document, 2);
    assert_eq!(kind, "Gateway");
    assert_eq!(field, "spec.listeners[0].port");
    let text = error.to_string();
    assert!(
        text.contains("a.yaml document 2: Gateway spec.listeners[0].port"),
        "{text}"
    );
}

#[test]
fn documents_without_kind_or_with_bad_yaml_are_errors() {
    let dir = dir_with(&[("a.yaml", "apiVersion: v1\nmetadata: {name: x}\n")]);
    let text = manifests::load_dir(dir.path()).unwrap_err().to_string();
    assert!(
        text.contains("a.yaml document 1: object kind: is missing"),
        "{text}"
    );

    let dir = dir_with(&[("b.yaml", "kind: Service\n---\nkind: [unclosed\n")]);
    let text = manifests::load_dir(dir.path()).unwrap_err().to_string();
    assert!(text.contains("b.yaml document"), "{text}");

    let dir = dir_with(&[("c.yaml", "- just\n- a list\n")]);
    let text = manifests::load_dir(dir.path()).unwrap_err().to_string();
    assert!(text.contains("not a mapping"), "{text}");
}

#[test]
fn a_missing_directory_is_an_error() {
    let error = manifests::load_dir(Path::new("/nonexistent/manifests")).unwrap_err();
    assert!(error.to_string().contains("is not a directory"), "{error}");
}
