//! The Envoy dynamic module's artifact against a real OCI registry (Debian's docker-registry), with
//! skopeo as an independent reader: package, push, pull back byte-identical, refuse a wrong sha256.
//! The library is this test's own executable: a real x86-64/AArch64 ELF file of a few MB (the
//! packager only reads its ELF header; the real module is loaded into Envoy by
//! `dynamic-module/tests/envoy.rs`).

// Integration tests: failing loudly (unwrap, panic) is the point here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use packager::dynamic;
use packager::formats::Manifest;

#[test]
fn the_dynamic_module_packages_pushes_and_pulls_back_byte_identical() {
    let registry = TestRegistry::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let library_path = tmp.path().join("libgateway_wasm_dynamic.so");
    std::fs::copy(std::env::current_exe().unwrap(), &library_path).unwrap();
    let library = std::fs::read(&library_path).unwrap();
    let layout = tmp.path().join("layout");
    let tarball = tmp.path().join("libgateway_wasm.tar.gz");
    let packaged = ok(&packager(&[
        "dynamic-module",
        "--module",
        library_path.to_str().unwrap(),
        "--out",
        layout.to_str().unwrap(),
        "--tarball",
        tarball.to_str().unwrap(),
        "--artifact-version",
        "0.1.0",
        "--revision",
        "0123456789abcdef0123456789abcdef01234567",
        "--created",
        "2024-05-06T07:08:09Z",
    ]));
    assert!(packaged.contains("Envoy 1.40-1.41"), "{packaged}");
    let digest = manifest_digest(&packaged);

    // Push; skopeo reads the same manifest, with our types and the Envoy window, from the layout
    // and from the registry.
    let repo = format!("{}/gateway-wasm-dynamic", registry.host());
    let raw = push_and_inspect(&layout, &repo, "0.1.0", &digest);
    let manifest: Manifest = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        manifest.artifact_type.as_deref(),
        Some(dynamic::ARTIFACT_TYPE)
    );
    assert_eq!(manifest.layers.len(), 1);
    assert_eq!(manifest.layers[0].media_type, dynamic::LAYER_TYPE);
    assert_eq!(manifest.annotations[dynamic::ANN_ENVOY_MIN], "1.40");
    assert_eq!(manifest.annotations[dynamic::ANN_ENVOY_MAX], "1.41");

    // The tarball holds the library unchanged.
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(&tarball).unwrap(),
    ));
    let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(entry.path().unwrap().to_str(), Some(dynamic::LIBRARY_FILE));
    let mut unpacked = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut unpacked).unwrap();
    assert_eq!(unpacked, library);

    // Pull by digest: byte-identical, verified against the recorded sha256.
    let pulled = pull_identical(
        &format!("{repo}@{digest}"),
        &tmp.path().join("pulled.so"),
        &library,
    );
    assert!(
        pulled.contains("Envoy dynamic module, Envoy 1.40-1.41"),
        "{pulled}"
    );

    // A wrong expected sha256 is refused and nothing is written.
    let refused = tmp.path().join("refused.so");
    let error = fails(&pull(
        &format!("{repo}:0.1.0"),
        &refused,
        Some(&"0".repeat(64)),
    ));
    assert!(error.contains("sha256 mismatch"), "{error}");
    assert!(!refused.exists());
}
