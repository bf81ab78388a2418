//! Unit tests for [`super`] (kept apart to keep the module short).
use super::*;

fn meta() -> Metadata {
    Metadata {
        version: "1.2.3".into(),
        source: Some("https://example.invalid/gateway-wasm".into()),
        revision: Some("0123456789abcdef".into()),
        created: "2024-01-02T03:04:05Z".into(),
    }
}

const MODULE: &[u8] = b"\0asm\x01\0\0\0fake module body";

fn layer_bytes(a: &Artifact, d: &Descriptor) -> Vec<u8> {
    a.blobs.get(&d.digest).unwrap().clone()
}

#[test]
fn every_format_round_trips_the_module() {
    for format in [Format::Compat, Format::Oci, Format::Cncf] {
        let a = build_artifact(format, MODULE, &meta()).unwrap();
        let parsed: Manifest = serde_json::from_slice(&a.manifest_bytes).unwrap();
        assert_eq!(parsed, a.manifest);
        let (found, layer) = detect(&parsed, "test").unwrap();
        assert_eq!(found, format);
        let module = module_from_layer(found, layer, layer_bytes(&a, layer)).unwrap();
        assert_eq!(module, MODULE, "{format}");
        verify_module(&parsed, &module, Some(&a.module_sha256), "test").unwrap();
        for d in std::iter::once(&parsed.config).chain(&parsed.layers) {
            let blob = a.blobs.get(&d.digest).unwrap();
            assert_eq!(sha256_digest(blob), d.digest);
            assert_eq!(blob.len() as u64, d.size);
        }
    }
}

#[test]
fn builds_are_deterministic() {
    for format in [Format::Compat, Format::Oci, Format::Cncf] {
        let a = build_artifact(format, MODULE, &meta()).unwrap();
        let b = build_artifact(format, MODULE, &meta()).unwrap();
        assert_eq!(a.manifest_bytes, b.manifest_bytes);
        assert_eq!(a.blobs, b.blobs);
    }
}

#[test]
fn compat_media_types_and_annotations() {
    let a = build_artifact(Format::Compat, MODULE, &meta()).unwrap();
    let m = &a.manifest;
    assert_eq!(m.media_type.as_deref(), Some(OCI_MANIFEST));
    assert_eq!(m.config.media_type, OCI_IMAGE_CONFIG);
    assert_eq!(m.layers.len(), 1);
    assert_eq!(m.layers[0].media_type, OCI_LAYER_TAR_GZIP);
    assert_eq!(m.annotations[ANN_VARIANT], "compat");
    assert_eq!(m.annotations[ANN_VERSION], "1.2.3");
    assert_eq!(m.annotations[ANN_REVISION], "0123456789abcdef");
    assert_eq!(m.annotations[ANN_CREATED], "2024-01-02T03:04:05Z");
    assert_eq!(
        m.annotations[ANN_SOURCE],
        "https://example.invalid/gateway-wasm"
    );
    assert_eq!(m.annotations[ANN_MODULE_SHA256], sha256_hex(MODULE));
    // gzip header: magic, deflate, no flags, mtime 0, xfl 2 (best), OS 255.
    let layer = layer_bytes(&a, &m.layers[0]);
    assert_eq!(
        layer.get(..10).unwrap(),
        &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255]
    );
    // The tar entry: plugin.wasm, uid/gid 0, mtime 0.
    let tar = compat_tar(MODULE).unwrap();
    let mut archive = tar::Archive::new(tar.as_slice());
    let entry = archive.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(entry.path().unwrap().to_str(), Some("plugin.wasm"));
    assert_eq!(entry.header().mtime().unwrap(), 0);
    assert_eq!(entry.header().uid().unwrap(), 0);
    assert_eq!(entry.header().mode().unwrap(), 0o644);
}

#[test]
fn oci_variant_has_two_layers_like_istio_expects() {
    let a = build_artifact(Format::Oci, MODULE, &meta()).unwrap();
    let m = &a.manifest;
    assert_eq!(m.config.media_type, SOLO_CONFIG);
    let types: Vec<_> = m.layers.iter().map(|l| l.media_type.as_str()).collect();
    assert_eq!(types, vec![SOLO_CONFIG, SOLO_CONTENT]);
    assert_eq!(m.layers[0].digest, m.config.digest);
    let config: serde_json::Value = serde_json::from_slice(&layer_bytes(&a, &m.config)).unwrap();
    assert_eq!(config["type"], "envoy_proxy");
    assert_eq!(m.annotations[ANN_RUNTIME_TYPE], "envoy_proxy");
}

#[test]
fn cncf_config_lists_layer_digests() {
    let a = build_artifact(Format::Cncf, MODULE, &meta()).unwrap();
    let m = &a.manifest;
    assert_eq!(m.config.media_type, CNCF_CONFIG);
    assert_eq!(m.layers[0].media_type, CNCF_LAYER);
    let config: serde_json::Value = serde_json::from_slice(&layer_bytes(&a, &m.config)).unwrap();
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip1");
    assert_eq!(config["layerDigests"][0], m.layers[0].digest.as_str());
    assert!(!m.annotations.contains_key(ANN_VARIANT));
}

#[test]
fn module_digest_mismatch_names_both_values() {
    let a = build_artifact(Format::Cncf, MODULE, &meta()).unwrap();
    let err = verify_module(&a.manifest, b"tampered", None, "reg/repo:tag").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("reg/repo:tag"), "{msg}");
    assert!(
        msg.contains(&format!("expected {}", sha256_hex(MODULE))),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("got {}", sha256_hex(b"tampered"))),
        "{msg}"
    );
    let err = verify_module(&a.manifest, MODULE, Some("00"), "x").unwrap_err();
    assert!(err.to_string().contains("(from --sha256)"));
}

#[test]
fn unknown_manifest_lists_what_it_has() {
    let mut m = build_artifact(Format::Cncf, MODULE, &meta())
        .unwrap()
        .manifest;
    m.layers[0].media_type = "application/octet-stream".into();
    let err = detect(&m, "reg/x:1").unwrap_err().to_string();
    assert!(err.contains("reg/x:1"), "{err}");
    assert!(err.contains("application/octet-stream"), "{err}");
}

#[test]
fn compat_layer_without_plugin_file_is_explained() {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_path("other.txt").unwrap();
    header.set_size(1);
    header.set_cksum();
    builder.append(&header, &b"x"[..]).unwrap();
    let layer = gzip_fixed(&builder.into_inner().unwrap()).unwrap();
    let desc = Descriptor::of(OCI_LAYER_TAR_GZIP, &layer, None);
    let err = module_from_layer(Format::Compat, &desc, layer)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no `plugin.wasm`"), "{err}");
    assert!(err.contains("other.txt"), "{err}");
}

/// Exact digests for a fixed input: a change in serialization, tar or gzip output (a new
/// flate2 backend, a field order change) shows up here instead of as silently new digests.
#[test]
fn digests_are_pinned() {
    let meta = Metadata {
        version: "1.2.3".into(),
        source: Some("https://example.invalid/gateway-wasm".into()),
        revision: Some("0123456789abcdef".into()),
        created: "2024-01-02T03:04:05Z".into(),
    };
    let module = b"\0asm\x01\0\0\0fake module body";
    let expected = [
        (
            Format::Compat,
            "sha256:bc2f7cc38caf2a1d8554ebedae31ca17b0fc45dc5a332e1a0ff3a50398ac584e",
        ),
        (
            Format::Oci,
            "sha256:d420cd1021cd198ead7dc6a6ef4fe631638dd42fc8d68fdec9a73ae069df9347",
        ),
        (
            Format::Cncf,
            "sha256:4d861c788a9b83af3384465eeedad2d435afb52356e1e1b237cb5f22195cc326",
        ),
    ];
    for (format, digest) in expected {
        let a = build_artifact(format, module, &meta).unwrap();
        assert_eq!(a.manifest_digest, digest, "{format}");
    }
}
