//! Loading manifest directories: multi-document files, Lists, defaults, unknown kinds, and errors that
//! name the file, the document and the field.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/fixtures.rs"]
mod fixtures;

use std::path::Path;

use controller_shim::manifests::{self, ManifestError};
use fixtures::fixture;

/// A class, a Gateway and a route without namespace, after a comment and an empty document.
const GATEWAY: &str = fixture!("loader-gateway.yaml");
/// A `kind: List` of a Service, its EndpointSlice and a ConfigMap the resolver does not read.
const BACKENDS: &str = fixture!("loader-backends.yaml");
/// A Namespace, a TLS Secret, a ReferenceGrant and an experimental XListenerSet.
const OTHERS: &str = fixture!("loader-others.yaml");

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
