//! `--wasm oci://…` against a real registry process (Debian's `docker-registry`): the module is
//! pulled from each of the three artifact formats `packager push` publishes, verified, cached by
//! digest (a pinned reference restarts with the registry down), re-resolved when its tag moves,
//! refused when its bytes do not match the manifest, and fetched with credentials.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use controller_shim::envoy::EnvoyOptions;
use controller_shim::metrics::Metrics;
use controller_shim::xds::XdsServer;
use controller_shim::xds::module::{OciModule, RegistryAccess};
use oci_artifacts::auth;
use oci_artifacts::digest::sha256_hex;
use oci_artifacts::formats::{self, ANN_MODULE_SHA256, Format, Metadata};
use oci_artifacts::registry::{Connect, Registry, Target};
use testkit::registry::TestRegistry;

/// A small valid module standing in for the filter; `tag` makes its bytes (and sha256) differ.
fn module(tag: &str) -> Vec<u8> {
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    let name = b"release";
    let mut section = vec![u8::try_from(name.len()).unwrap()];
    section.extend_from_slice(name);
    section.extend_from_slice(tag.as_bytes());
    bytes.push(0);
    bytes.push(u8::try_from(section.len()).unwrap());
    bytes.extend_from_slice(&section);
    bytes
}

fn meta() -> Metadata {
    Metadata {
        version: "0.1.0".into(),
        source: None,
        revision: None,
        created: "2026-01-02T03:04:05Z".into(),
    }
}

fn registry_client(auth: Option<(&str, &str)>) -> Registry {
    let (auth, auth_source) = match auth {
        Some((user, password)) => auth::with_password(user, password).unwrap(),
        None => auth::anonymous(),
    };
    Registry::new(Connect {
        plain_http: true,
        auth,
        auth_source,
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Publishes `module` as `reference` (REGISTRY/REPO:TAG) in `format`; returns the manifest digest.
fn publish(rt: &tokio::runtime::Runtime, reference: &str, format: Format, module: &[u8]) -> String {
    publish_with(rt, reference, format, module, None)
}

fn publish_with(
    rt: &tokio::runtime::Runtime,
    reference: &str,
    format: Format,
    module: &[u8],
    auth: Option<(&str, &str)>,
) -> String {
    let artifact = formats::build_artifact(format, module, &meta()).unwrap();
    let target = Target::parse(reference).unwrap();
    rt.block_on(registry_client(auth).push_artifact(&artifact, &target))
        .unwrap()
}

fn anonymous() -> RegistryAccess {
    RegistryAccess {
        plain_http: true,
        ..RegistryAccess::default()
    }
}

fn metrics() -> Arc<Metrics> {
    Arc::new(Metrics::default())
}

#[test]
fn each_artifact_format_is_pulled_verified_and_cached() {
    let registry = TestRegistry::start().unwrap();
    let rt = runtime();
    let cache = tempfile::tempdir().unwrap();
    for (format, name) in [
        (Format::Compat, "compat"),
        (Format::Oci, "oci"),
        (Format::Cncf, "cncf"),
    ] {
        let bytes = module(name);
        let reference = format!("{}/gateway-wasm-{name}:0.1.0", registry.host());
        let digest = publish(&rt, &reference, format, &bytes);
        let source =
            OciModule::new(&reference, anonymous(), cache.path().into(), metrics()).unwrap();
        let resolved = rt.block_on(source.resolve(None)).unwrap();
        assert_eq!(resolved.module.as_ref(), bytes.as_slice(), "{name}");
        assert_eq!(resolved.module_sha256, sha256_hex(&bytes));
        assert_eq!(resolved.manifest_digest, digest);
        assert_eq!(
            resolved.origin,
            format!("oci://{}/gateway-wasm-{name}@{digest}", registry.host())
        );
        let cached = cache
            .path()
            .join("modules")
            .join(format!("{}.wasm", resolved.module_sha256));
        assert_eq!(std::fs::read(&cached).unwrap(), bytes);
    }
}

#[test]
fn a_pinned_digest_restarts_from_the_cache_with_the_registry_down() {
    let mut registry = TestRegistry::start().unwrap();
    let rt = runtime();
    let cache = tempfile::tempdir().unwrap();
    let bytes = module("pinned");
    let digest = publish(
        &rt,
        &format!("{}/gw:1", registry.host()),
        Format::Oci,
        &bytes,
    );
    let pinned = format!("{}/gw@{digest}", registry.host());
    let first = OciModule::new(&pinned, anonymous(), cache.path().into(), metrics()).unwrap();
    rt.block_on(first.resolve(None)).unwrap();
    registry.stop();

    let again = OciModule::new(&pinned, anonymous(), cache.path().into(), metrics()).unwrap();
    let resolved = rt.block_on(again.resolve(None)).unwrap();
    assert_eq!(resolved.module.as_ref(), bytes.as_slice());

    // A cached file that does not match its sha256 is not served.
    let cached = cache
        .path()
        .join("modules")
        .join(format!("{}.wasm", sha256_hex(&bytes)));
    std::fs::write(&cached, b"tampered").unwrap();
    let error = rt.block_on(again.resolve(None)).unwrap_err();
    assert!(
        format!("{error:#}").contains("cannot reach the registry"),
        "{error:#}"
    );
}

#[test]
fn a_module_whose_bytes_do_not_match_the_manifest_is_refused() {
    let registry = TestRegistry::start().unwrap();
    let rt = runtime();
    let cache = tempfile::tempdir().unwrap();
    let bytes = module("tampered");
    let mut artifact = formats::build_artifact(Format::Cncf, &bytes, &meta()).unwrap();
    artifact
        .manifest
        .annotations
        .insert(ANN_MODULE_SHA256.into(), "0".repeat(64));
    artifact.manifest_bytes = serde_json::to_vec(&artifact.manifest).unwrap();
    artifact.manifest_digest = oci_artifacts::digest::sha256_digest(&artifact.manifest_bytes);
    let reference = format!("{}/gw-bad:1", registry.host());
    rt.block_on(
        registry_client(None).push_artifact(&artifact, &Target::parse(&reference).unwrap()),
    )
    .unwrap();
    let source = OciModule::new(&reference, anonymous(), cache.path().into(), metrics()).unwrap();
    let error = format!("{:#}", rt.block_on(source.resolve(None)).unwrap_err());
    assert!(error.contains("module sha256 mismatch"), "{error}");
    assert!(
        !cache.path().join("modules").exists()
            || std::fs::read_dir(cache.path().join("modules"))
                .unwrap()
                .count()
                == 0,
        "nothing unverified is cached"
    );
}

#[test]
fn a_moved_tag_is_pulled_and_served_and_the_registry_going_down_keeps_the_module() {
    let mut registry = TestRegistry::start().unwrap();
    let rt = runtime();
    let cache = tempfile::tempdir().unwrap();
    let reference = format!("{}/gw-moving:stable", registry.host());
    let v1 = module("v1");
    publish(&rt, &reference, Format::Compat, &v1);
    let metrics = metrics();
    let server = XdsServer::new(EnvoyOptions::new("", "unused.wasm"), metrics.clone());
    let source = OciModule::new(
        &reference,
        anonymous(),
        cache.path().into(),
        metrics.clone(),
    )
    .unwrap();
    let task = rt.spawn(source.run(server.clone(), Some(Duration::from_millis(300))));

    let wait_for = |sha256: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while server.hub.module().map(|m| m.sha256) != Some(sha256.to_owned()) {
            assert!(Instant::now() < deadline, "module {sha256} never served");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for(&sha256_hex(&v1));
    assert_eq!(
        server.modules.get(&sha256_hex(&v1)).unwrap().as_ref(),
        v1.as_slice()
    );

    let v2 = module("v2");
    publish(&rt, &reference, Format::Compat, &v2);
    wait_for(&sha256_hex(&v2));
    assert!(
        server.modules.get(&sha256_hex(&v1)).is_some(),
        "the previous module stays downloadable for Envoys that have not switched"
    );
    assert!(
        metrics
            .encode()
            .contains("gateway_wasm_module_pulls_total{result=\"ok\"} 2")
    );

    // The registry goes away: the current module stays, and the failure is counted.
    registry.stop();
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(server.hub.module().unwrap().sha256, sha256_hex(&v2));
    assert!(
        metrics
            .encode()
            .contains("gateway_wasm_module_pulls_total{result=\"error\"}")
    );
    task.abort();

    // A restart while the registry is down serves what the tag named last, from the cache.
    let restarted = XdsServer::new(EnvoyOptions::new("", "unused.wasm"), metrics.clone());
    let source = OciModule::new(
        &reference,
        anonymous(),
        cache.path().into(),
        metrics.clone(),
    )
    .unwrap();
    let task = rt.spawn(source.run(restarted.clone(), None));
    let deadline = Instant::now() + Duration::from_secs(20);
    while restarted.hub.module().is_none() {
        assert!(Instant::now() < deadline, "nothing served from the cache");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(restarted.hub.module().unwrap().sha256, sha256_hex(&v2));
    task.abort();
    registry.start_again().unwrap();
}

#[test]
fn credentials_come_from_a_password_file() {
    let registry = TestRegistry::start_with_htpasswd("puller", "pa55-word").unwrap();
    let rt = runtime();
    let cache = tempfile::tempdir().unwrap();
    let bytes = module("private");
    let reference = format!("{}/private:1", registry.host());
    publish_with(
        &rt,
        &reference,
        Format::Oci,
        &bytes,
        Some(("puller", "pa55-word")),
    );

    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "pa55-word\n").unwrap();
    let access = RegistryAccess {
        plain_http: true,
        username: Some("puller".into()),
        password_file: Some(password.clone()),
    };
    let source =
        OciModule::new(&reference, access.clone(), cache.path().into(), metrics()).unwrap();
    assert_eq!(
        rt.block_on(source.resolve(None)).unwrap().module.as_ref(),
        bytes.as_slice()
    );

    std::fs::write(&password, "wrong").unwrap();
    let other_cache = tempfile::tempdir().unwrap();
    let source = OciModule::new(&reference, access, other_cache.path().into(), metrics()).unwrap();
    let error = format!("{:#}", rt.block_on(source.resolve(None)).unwrap_err());
    assert!(error.contains("refused"), "{error}");
    assert!(
        error.contains("puller"),
        "the message names the user: {error}"
    );
    assert!(!error.contains("wrong"), "never the password: {error}");
}
