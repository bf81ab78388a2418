//! Golden files for the Envoy output, and `envoy --mode validate` of a rendered bootstrap.
//!
//! Regenerate the golden files with `BLESS=1 cargo test -p controller-shim --test envoy_render`.

// Test helpers outside #[test] functions may panic too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/fixtures.rs"]
mod fixtures;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use controller_shim::envoy::{self, EnvoyFiles, EnvoyOptions};
use controller_shim::resolution::{
    BackendTarget, Endpoint, GatewayResult, ObjectKey, TlsCertificate,
};
use fixtures::fixture;

fn gateway(config: &str) -> GatewayResult {
    GatewayResult {
        gateway: ObjectKey {
            namespace: "infra".into(),
            name: "gw".into(),
        },
        generation: Some(1),
        config: engine::parse(config.as_bytes()).expect("test config parses"),
        backends: BTreeMap::new(),
        tls: BTreeMap::new(),
        status: Default::default(),
    }
}

fn target(
    service: &str,
    port: u16,
    app_protocol: Option<&str>,
    endpoints: &[(&str, u16)],
) -> BackendTarget {
    BackendTarget {
        namespace: "app".into(),
        service: service.into(),
        port,
        app_protocol: app_protocol.map(str::to_owned),
        endpoints: endpoints
            .iter()
            .map(|(address, port)| Endpoint {
                address: (*address).to_owned(),
                port: *port,
            })
            .collect(),
    }
}

fn options() -> EnvoyOptions {
    EnvoyOptions::new(
        "/etc/gateway-wasm/infra/gw",
        "/usr/lib/gateway-wasm/gateway_wasm.wasm",
    )
}

const HTTP_CONFIG: &str = fixture!("plugin-config-http-two-ports.json");

fn http_case() -> GatewayResult {
    let mut result = gateway(HTTP_CONFIG);
    result.backends.insert(
        "app/api:8080".into(),
        target("api", 8080, None, &[("10.0.0.1", 8080), ("10.0.0.2", 8080)]),
    );
    result.backends.insert(
        "app/grpc:9000".into(),
        target(
            "grpc",
            9000,
            Some("kubernetes.io/h2c"),
            &[("10.0.1.1", 50051)],
        ),
    );
    result
        .backends
        .insert("app/dns:80".into(), target("dns", 80, None, &[]));
    // app/api-v2:8080 is left without a target: the renderer warns.
    result
}

const HTTPS_CONFIG: &str = fixture!("plugin-config-https-sni.json");

fn certificate(listener: &str) -> TlsCertificate {
    TlsCertificate {
        secret: ObjectKey {
            namespace: "infra".into(),
            name: format!("{listener}-cert"),
        },
        certificate_pem: format!(
            "-----BEGIN CERTIFICATE-----\n{listener}\n-----END CERTIFICATE-----\n"
        ),
        private_key_pem: format!(
            "-----BEGIN PRIVATE KEY-----\n{listener}\n-----END PRIVATE KEY-----\n"
        ),
    }
}

fn https_case() -> GatewayResult {
    let mut result = gateway(HTTPS_CONFIG);
    result.backends.insert(
        "app/api:8080".into(),
        target("api", 8080, None, &[("10.0.0.1", 8080)]),
    );
    for listener in [
        "https-a",
        "https-b",
        "https-any",
        "https-again",
        "http-on-443",
    ] {
        result
            .tls
            .insert(listener.into(), vec![certificate(listener)]);
    }
    result
}

fn golden_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/envoy")
        .join(case)
}

/// Compares every rendered file (and the warnings) with the golden directory, or rewrites it.
fn check_golden(case: &str, files: &EnvoyFiles) {
    let dir = golden_dir(case);
    let mut expected: BTreeMap<PathBuf, String> = files
        .files
        .iter()
        .map(|f| (f.path.clone(), f.content.clone()))
        .collect();
    expected.insert("warnings.txt".into(), files.warnings.join("\n") + "\n");
    if std::env::var_os("BLESS").is_some() {
        let _ = std::fs::remove_dir_all(&dir);
        for (path, content) in &expected {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content).unwrap();
        }
        return;
    }
    for (path, content) in &expected {
        let golden = std::fs::read_to_string(dir.join(path)).unwrap_or_else(|e| {
            panic!(
                "{case}: golden file {} missing ({e}); run with BLESS=1",
                path.display()
            )
        });
        if &golden != content {
            let diff: Vec<String> = golden
                .lines()
                .zip(content.lines())
                .enumerate()
                .filter(|(_, (a, b))| a != b)
                .take(5)
                .map(|(i, (a, b))| format!("line {}:\n  golden:   {a}\n  rendered: {b}", i + 1))
                .collect();
            panic!(
                "{case}: {} differs from the golden file (run with BLESS=1 to accept):\n{}\n(golden {} lines, rendered {} lines)",
                path.display(),
                diff.join("\n"),
                golden.lines().count(),
                content.lines().count()
            );
        }
    }
}

#[test]
fn golden_http_gateway() {
    let files = envoy::render(&http_case(), &options()).unwrap();
    check_golden("http-two-ports", &files);
}

#[test]
fn golden_https_gateway_with_port_map() {
    let mut options = options();
    options.port_map.insert(443, 8443);
    options.port_offset = 10000;
    options.admin_port = 9901;
    let files = envoy::render(&https_case(), &options).unwrap();
    check_golden("https-sni", &files);
}

/// A GRPCRoute's backend is an h2c cluster of its own, rendered straight from manifests: the
/// resolver infers HTTP/2 from the route kind, the renderer gives the cluster HTTP/2 protocol
/// options, and the HTTPRoute to the same Service port keeps its HTTP/1.1 cluster.
#[test]
fn golden_grpc_route_gateway() {
    let mut loaded = controller_shim::manifests::Loaded::default();
    controller_shim::manifests::load_str(
        fixture!("grpc-route.yaml"),
        Path::new("grpc-route.yaml"),
        &mut loaded,
    )
    .unwrap();
    let resolution =
        controller_shim::resolve(&loaded.snapshot, &controller_shim::Settings::default());
    let files = envoy::render(&resolution.gateways[0], &options()).unwrap();
    check_golden("grpc-route", &files);

    let cds: serde_json::Value =
        serde_norway::from_str(files.get(envoy::CLUSTERS_FILE).unwrap()).unwrap();
    let clusters = cds["resources"].as_array().unwrap();
    let http2 = |name: &str| {
        let cluster = clusters
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no cluster {name}"));
        cluster["typed_extension_protocol_options"]
            ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["explicit_http_config"]
            .get("http2_protocol_options")
            .is_some()
    };
    assert!(
        http2("grpc:infra/echo:8080"),
        "the GRPCRoute's cluster speaks h2c"
    );
    assert!(
        !http2("infra/echo:8080"),
        "the HTTPRoute's cluster stays HTTP/1.1"
    );
}

#[test]
fn warnings_name_what_is_not_served() {
    let files = envoy::render(&https_case(), &options()).unwrap();
    let warnings = files.warnings.join("\n");
    assert!(
        warnings.contains("https-nocert has no usable certificate"),
        "{warnings}"
    );
    assert!(
        warnings.contains("https-again repeats hostname a.example.com"),
        "{warnings}"
    );
    assert!(warnings.contains("http-on-443"), "{warnings}");
    let files = envoy::render(&http_case(), &options()).unwrap();
    assert!(
        files
            .warnings
            .join("\n")
            .contains("app/api-v2:8080 has no resolved target"),
        "{:?}",
        files.warnings
    );
}

#[test]
fn the_plugin_config_in_the_extension_config_still_compiles() {
    let files = envoy::render(&http_case(), &options()).unwrap();
    let ecds: serde_json::Value =
        serde_norway::from_str(files.get(envoy::EXTENSION_CONFIG_FILE).unwrap()).unwrap();
    let value = ecds["resources"][0]["typed_config"]["config"]["configuration"]["value"]
        .as_str()
        .unwrap();
    let table = engine::RouteTable::from_json(value.as_bytes()).unwrap();
    assert_eq!(table.revision(), "rev-7");
    let mut upstreams: Vec<&str> = table.upstreams().collect();
    upstreams.sort_unstable();
    assert_eq!(
        upstreams,
        [
            "app/api-v2:8080",
            "app/api:8080",
            "app/dns:80",
            "app/grpc:9000"
        ]
    );
}

/// The `configuration` of the rendered extension config: its type URL and value.
fn configuration(files: &EnvoyFiles) -> (String, String) {
    let ecds: serde_json::Value =
        serde_norway::from_str(files.get(envoy::EXTENSION_CONFIG_FILE).unwrap()).unwrap();
    let any = &ecds["resources"][0]["typed_config"]["config"]["configuration"];
    (
        any["@type"].as_str().unwrap().to_owned(),
        any["value"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn large_configs_travel_gzip_compressed_and_deterministically() {
    use base64::prelude::{BASE64_STANDARD, Engine as _};
    use std::io::Read as _;

    // ~300 copies of the route: well over the 64 KiB threshold.
    let mut large = http_case();
    let route = large.config.routes[0].clone();
    for i in 0..300 {
        let mut copy = route.clone();
        copy.name = format!("web-{i}");
        large.config.routes.push(copy);
    }
    let plain = serde_json::to_string(&large.config).unwrap();
    assert!(plain.len() > envoy::COMPRESS_ABOVE_BYTES, "{}", plain.len());

    let files = envoy::render(&large, &options()).unwrap();
    let (type_url, value) = configuration(&files);
    assert_eq!(type_url, "type.googleapis.com/google.protobuf.BytesValue");
    let compressed = BASE64_STANDARD.decode(&value).unwrap();
    assert!(
        compressed.len() * 10 < plain.len(),
        "{} of {}",
        compressed.len(),
        plain.len()
    );
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(compressed.as_slice())
        .read_to_end(&mut json)
        .unwrap();
    let table = engine::RouteTable::from_json(&json).unwrap();
    assert_eq!(table.stats().1, 301);
    assert_eq!(
        envoy::render(&large, &options()).unwrap(),
        files,
        "the same config renders the same bytes (no needless reload)"
    );

    let mut never = options();
    never.config_compression = envoy::ConfigCompression::Never;
    let (type_url, value) = configuration(&envoy::render(&large, &never).unwrap());
    assert_eq!(type_url, "type.googleapis.com/google.protobuf.StringValue");
    assert_eq!(value, plain);

    // Small configs stay readable unless asked.
    let (type_url, _) = configuration(&envoy::render(&http_case(), &options()).unwrap());
    assert_eq!(type_url, "type.googleapis.com/google.protobuf.StringValue");
    let mut always = options();
    always.config_compression = envoy::ConfigCompression::Always;
    let (type_url, _) = configuration(&envoy::render(&http_case(), &always).unwrap());
    assert_eq!(type_url, "type.googleapis.com/google.protobuf.BytesValue");
}

#[test]
fn a_missing_revision_becomes_a_content_hash() {
    let files = envoy::render(&https_case(), &options()).unwrap();
    let text = files.get(envoy::EXTENSION_CONFIG_FILE).unwrap();
    assert!(text.contains("fnv1a-"), "{text}");
    let again = envoy::render(&https_case(), &options()).unwrap();
    assert_eq!(files, again, "rendering is deterministic");
}

#[test]
fn port_offset_overflow_is_an_error() {
    let mut options = options();
    options.port_offset = 65500;
    let error = envoy::render(&http_case(), &options).unwrap_err();
    assert!(error.to_string().contains("above 65535"), "{error}");
}

#[test]
fn files_are_written_atomically_and_only_when_changed() {
    let dir = tempfile::tempdir().unwrap();
    let files = envoy::render(&https_case(), &options()).unwrap();
    let first = envoy::write_files(dir.path(), &files).unwrap();
    assert_eq!(first.written.len(), files.files.len());
    assert!(first.unchanged.is_empty());
    let second = envoy::write_files(dir.path(), &files).unwrap();
    assert!(second.written.is_empty());
    assert_eq!(second.unchanged.len(), files.files.len());

    use std::os::unix::fs::PermissionsExt as _;
    let key = dir.path().join("tls/https-a-0.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "private keys are private");

    let mut changed = files.clone();
    let cds = changed
        .files
        .iter_mut()
        .find(|f| f.path == Path::new(envoy::CLUSTERS_FILE))
        .unwrap();
    cds.content.push_str("# changed\n");
    let third = envoy::write_files(dir.path(), &changed).unwrap();
    assert_eq!(third.written, [dir.path().join(envoy::CLUSTERS_FILE)]);
    // No temporary files are left behind.
    for sub in ["", "cds", "ecds", "tls"] {
        for entry in std::fs::read_dir(dir.path().join(sub)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.contains(".tmp-"), "{name}");
        }
    }
}

#[test]
fn envoy_validates_the_rendered_bootstrap() {
    let dir = tempfile::tempdir().unwrap();
    let ca = testkit::certs::CertificateAuthority::new("gateway-wasm test CA").unwrap();
    let mut result = https_case();
    for certificates in result.tls.values_mut() {
        let issued = ca.issue(&["a.example.com"]).unwrap();
        certificates[0].certificate_pem = issued.chain_pem();
        certificates[0].private_key_pem = issued.key_pem.clone();
    }
    let mut options = EnvoyOptions::new(dir.path(), dir.path().join("gateway_wasm.wasm"));
    options.port_offset = 20000;
    options.admin_port = 0;
    let files = envoy::render(&result, &options).unwrap();
    envoy::write_files(dir.path(), &files).unwrap();
    testkit::validate_config(&dir.path().join(envoy::BOOTSTRAP_FILE)).unwrap();
}

fn dynamic_module_options() -> EnvoyOptions {
    let mut options = options();
    options.filter = envoy::EnvoyFilter::DynamicModule(
        "/usr/lib/gateway-wasm/libgateway_wasm_dynamic.so".into(),
    );
    options
}

#[test]
fn golden_http_gateway_dynamic_module() {
    let files = envoy::render(&http_case(), &dynamic_module_options()).unwrap();
    check_golden("http-two-ports-dynamic-module", &files);
}

/// The two builds get the same bytes: only the resource around them differs.
#[test]
fn the_dynamic_module_gets_the_wasm_filters_configuration() {
    for compression in [
        envoy::ConfigCompression::Never,
        envoy::ConfigCompression::Always,
    ] {
        let mut wasm = options();
        wasm.config_compression = compression;
        let mut dynamic = dynamic_module_options();
        dynamic.config_compression = compression;
        let wasm_files = envoy::render(&http_case(), &wasm).unwrap();
        let dynamic_files = envoy::render(&http_case(), &dynamic).unwrap();
        let ecds: serde_json::Value =
            serde_json::from_str(dynamic_files.get(envoy::EXTENSION_CONFIG_FILE).unwrap()).unwrap();
        let typed = &ecds["resources"][0]["typed_config"];
        assert_eq!(
            typed["@type"],
            "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter"
        );
        assert_eq!(
            typed["dynamic_module_config"]["module"]["local"]["filename"],
            "/usr/lib/gateway-wasm/libgateway_wasm_dynamic.so"
        );
        let (wasm_type, wasm_value) = configuration(&wasm_files);
        assert_eq!(typed["filter_config"]["@type"], wasm_type.as_str());
        assert_eq!(typed["filter_config"]["value"], wasm_value.as_str());
        // The connection manager discovers the dynamic module's type, and each route names
        // its Gateway port for the module.
        let bootstrap = dynamic_files.get(envoy::BOOTSTRAP_FILE).unwrap();
        assert!(bootstrap.contains("dynamic_modules.v3.DynamicModuleFilter"));
        assert!(!bootstrap.contains("filters.http.wasm.v3.Wasm"));
        assert!(bootstrap.contains("filter_chain_name: gateway-wasm:"));
        assert!(
            !wasm_files
                .get(envoy::BOOTSTRAP_FILE)
                .unwrap()
                .contains("filter_chain_name")
        );
    }
}

/// xDS-mode rendering options: resources from the ADS stream, the module downloaded from the shim.
fn ads_options() -> EnvoyOptions {
    let mut options = options();
    options.delivery = envoy::Delivery::Ads(envoy::RemoteModule {
        uri: "http://gateway-wasm-xds/modules/sha256/00.wasm".into(),
        cluster: envoy::XDS_CLUSTER.into(),
        sha256: "00".into(),
    });
    options
}

/// Replaces, anywhere in `value`, what legitimately differs between file and xDS delivery (where
/// the filter config and the certificates come from) with a marker.
fn without_sources(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if map.contains_key("config_source") {
                map.insert("config_source".into(), "<source>".into());
            }
            for key in ["tls_certificates", "tls_certificate_sds_secret_configs"] {
                if map.remove(key).is_some() {
                    map.insert("<certificates>".into(), true.into());
                }
            }
            map.values_mut().for_each(without_sources);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(without_sources),
        _ => {}
    }
}

#[test]
fn envoy_validates_the_rendered_dynamic_module_bootstrap() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = EnvoyOptions::new(dir.path(), dir.path().join("gateway_wasm.wasm"));
    options.filter =
        envoy::EnvoyFilter::DynamicModule(dir.path().join("libgateway_wasm_dynamic.so"));
    options.port_offset = 20000;
    options.admin_port = 0;
    let files = envoy::render(&http_case(), &options).unwrap();
    envoy::write_files(dir.path(), &files).unwrap();
    testkit::validate_config(&dir.path().join(envoy::BOOTSTRAP_FILE)).unwrap();
}

#[test]
fn lds_listeners_are_the_file_bootstraps_listeners() {
    for (case, result) in [("http", http_case()), ("https", https_case())] {
        let files = envoy::render(&result, &options()).unwrap();
        let bootstrap: serde_json::Value =
            serde_norway::from_str(files.get(envoy::BOOTSTRAP_FILE).unwrap()).unwrap();
        let mut from_file = bootstrap["static_resources"]["listeners"].clone();
        let envoy::RenderedListeners {
            listeners, secrets, ..
        } = envoy::listeners(&result, &ads_options()).unwrap();
        let mut from_lds = serde_json::to_value(&listeners).unwrap();
        // Same connection manager (every edge setting), same filter chains, same routes: the
        // listeners differ only in where the filter config and certificates come from.
        assert!(
            from_lds.to_string().contains("\"ads\""),
            "{case}: {from_lds}"
        );
        for edge_setting in [
            "normalize_path",
            "path_with_escaped_slashes_action",
            "per_connection_buffer_limit_bytes",
        ] {
            assert!(
                from_lds.to_string().contains(edge_setting),
                "{case}: no {edge_setting}: {from_lds}"
            );
        }
        without_sources(&mut from_file);
        without_sources(&mut from_lds);
        assert_eq!(from_lds, from_file, "{case}");
        if case == "https" {
            assert!(!secrets.is_empty());
            assert!(
                secrets
                    .iter()
                    .all(|s| s.certificate_chain_pem.contains("CERTIFICATE"))
            );
        }
    }
}

#[test]
fn every_resource_of_both_cases_converts_to_protobuf() {
    use controller_shim::xds::{Hub, ModuleInfo, Published, ResourceType};
    for result in [http_case(), https_case()] {
        let hub = Hub::new(options());
        hub.set_module(ModuleInfo {
            sha256: "ab".repeat(32),
            origin: "test".into(),
        });
        assert!(matches!(
            hub.set_gateway(&result).unwrap(),
            Published::Rendered { .. }
        ));
        let catalog = hub.catalog();
        let gateway = &catalog.gateways[&result.gateway];
        for kind in ResourceType::ALL {
            let resources = gateway.resources(kind, &envoy::Binding::default()).unwrap();
            assert!(
                !resources.is_empty() || kind == ResourceType::Secret,
                "{kind:?} is empty"
            );
        }
    }
}

#[test]
fn envoy_validates_the_xds_bootstrap() {
    let dir = tempfile::tempdir().unwrap();
    let text = envoy::ads_bootstrap(&envoy::AdsBootstrap {
        xds_host: "gateway-wasm-xds.gateway-system.svc".into(),
        xds_port: 18000,
        gateway: ObjectKey {
            namespace: "infra".into(),
            name: "gw".into(),
        },
        node_id: "envoy-0".into(),
        admin_port: 19000,
        protocol: envoy::AdsProtocol::Delta,
        binding: envoy::Binding::default(),
        edge: envoy::EdgeOptions::default(),
    })
    .unwrap();
    assert!(text.contains("api_type: DELTA_GRPC"), "{text}");
    assert!(text.contains("gateway: infra/gw"), "{text}");
    assert!(
        text.contains("type: STRICT_DNS"),
        "a name is resolved: {text}"
    );
    // Edge-safe as the file bootstrap: the overload manager, the admin endpoint exempt from it.
    assert!(text.contains("overload_manager:"), "{text}");
    assert!(text.contains("max_heap_size_bytes"), "{text}");
    assert!(text.contains("ignore_global_conn_limit: true"), "{text}");
    let path = dir.path().join("bootstrap.yaml");
    std::fs::write(&path, text).unwrap();
    testkit::validate_config(&path).unwrap();
}
