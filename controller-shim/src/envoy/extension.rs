//! The extension-config (ECDS) file: the wasm filter (or the dynamic module) with the PluginConfig
//! as its configuration.
//!
//! Everything but `configuration` stays byte-for-byte the same across pushes (same `vm_id`, code and
//! `vm_config`), so Envoy keeps its VMs and only runs `on_configure` in new root contexts. The
//! dynamic module's resource carries the same bytes as `filter_config`; Envoy keeps the loaded
//! library and runs its config hook once per push.

use std::io::Write as _;

use base64::prelude::{BASE64_STANDARD, Engine as _};
use engine::PluginConfig;
use flate2::Compression;
use flate2::write::GzEncoder;

use super::node::Node;
use super::{
    COMPRESS_ABOVE_BYTES, ConfigCompression, Delivery, EnvoyFilter, EnvoyOptions, FILTER_NAME,
    RenderError,
};

const TYPED_EXTENSION_CONFIG: &str =
    "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";
pub(super) const WASM_FILTER_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
pub(super) const DYNAMIC_MODULE_FILTER_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter";
const STRING_VALUE: &str = "type.googleapis.com/google.protobuf.StringValue";
/// Envoy hands a `BytesValue` configuration to the filter as raw bytes (base64 only in the file).
const BYTES_VALUE: &str = "type.googleapis.com/google.protobuf.BytesValue";

/// The extension-config file: a DiscoveryResponse-shaped document holding [`extension_config`].
pub(super) fn discovery_file(
    config: &PluginConfig,
    options: &EnvoyOptions,
) -> Result<Node, RenderError> {
    Ok(Node::map([(
        "resources",
        Node::list([extension_config(config, options)?]),
    )]))
}

/// The filter's `TypedExtensionConfig`: the file's only resource, and the ECDS resource.
pub(super) fn extension_config(
    config: &PluginConfig,
    options: &EnvoyOptions,
) -> Result<Node, RenderError> {
    let serialize = |config: &PluginConfig| {
        serde_json::to_string(config).map_err(|e| RenderError::Serialize {
            what: "plugin config",
            message: e.to_string(),
        })
    };
    let mut json = serialize(config)?;
    if config.revision.is_empty() {
        // The filter logs the revision it accepts; make one from the content when the producer
        // did not choose one.
        let mut with_revision = config.clone();
        with_revision.revision = format!("fnv1a-{:016x}", fnv1a(json.as_bytes()));
        json = serialize(&with_revision)?;
    }
    let typed_config = match &options.filter {
        EnvoyFilter::Wasm => Node::typed(WASM_FILTER_TYPE, [("config", wasm(json, options)?)]),
        EnvoyFilter::DynamicModule(module) => dynamic_module(module, json, options)?,
    };
    Ok(Node::typed(
        TYPED_EXTENSION_CONFIG,
        [
            ("name", Node::from(FILTER_NAME)),
            ("typed_config", typed_config),
        ],
    ))
}

/// The type URL of the filter resource, which the connection manager's `config_discovery` names.
pub(super) fn filter_type(options: &EnvoyOptions) -> &'static str {
    match options.filter {
        EnvoyFilter::Wasm => WASM_FILTER_TYPE,
        EnvoyFilter::DynamicModule(_) => DYNAMIC_MODULE_FILTER_TYPE,
    }
}

/// A `DynamicModuleFilter`: the library by path, loaded once and never unloaded (a push replaces
/// the configuration, not the code), the PluginConfig as `filter_config`.
fn dynamic_module(
    module: &std::path::Path,
    json: String,
    options: &EnvoyOptions,
) -> Result<Node, RenderError> {
    Ok(Node::typed(
        DYNAMIC_MODULE_FILTER_TYPE,
        [
            (
                "dynamic_module_config",
                Node::map([
                    (
                        "module",
                        Node::map([(
                            "local",
                            Node::map([("filename", Node::from(module.display().to_string()))]),
                        )]),
                    ),
                    // Counters keep Envoy's default namespace: `dynamicmodulescustom.<name>`,
                    // as the Wasm filter's are `wasmcustom.<name>`.
                    ("do_not_close", Node::from(true)),
                ]),
            ),
            ("filter_name", Node::from(FILTER_NAME)),
            (
                "filter_config",
                configuration(json, options.config_compression)?,
            ),
        ],
    ))
}

fn wasm(json: String, options: &EnvoyOptions) -> Result<Node, RenderError> {
    Ok(Node::map([
        ("name", Node::from(FILTER_NAME)),
        ("root_id", Node::from(super::ROOT_ID)),
        (
            "failure_policy",
            Node::from(options.failure_policy.as_envoy()),
        ),
        ("vm_config", vm_config(options)),
        (
            "configuration",
            configuration(json, options.config_compression)?,
        ),
    ]))
}

/// The VM: the same for every push of one module, so Envoy keeps its VMs and only creates new root
/// contexts. File mode loads the module from a local file; xDS mode downloads it from the shim,
/// pinned by sha256 (Envoy caches remote code by that hash, so later pushes do not download it
/// again).
fn vm_config(options: &EnvoyOptions) -> Node {
    let vm = Node::map([
        ("vm_id", Node::from(FILTER_NAME)),
        ("runtime", Node::from("envoy.wasm.runtime.v8")),
    ]);
    match &options.delivery {
        Delivery::Files => vm.with(
            "code",
            Node::map([(
                "local",
                Node::map([(
                    "filename",
                    Node::from(options.wasm_path.display().to_string()),
                )]),
            )]),
        ),
        // Envoy 1.40 builds a filter from remote code synchronously (and NACKs a config the module
        // refuses) only when the code is in its cache. On a miss it downloads through the init
        // manager of a listener being created, which works when a listener starts but never runs
        // for a listener already serving; `nack_on_code_cache_miss` instead installs a filter
        // without a VM before NACKing. So the xDS server makes sure an Envoy has a new module in
        // its cache before any extension config names it (docs/xds.md, "Changing the module").
        Delivery::Ads(module) => vm.with(
            "code",
            Node::map([(
                "remote",
                Node::map([
                    (
                        "http_uri",
                        Node::map([
                            ("uri", Node::from(&module.uri)),
                            ("cluster", Node::from(&module.cluster)),
                            ("timeout", Node::from("30s")),
                        ]),
                    ),
                    ("sha256", Node::from(&module.sha256)),
                ]),
            )]),
        ),
    }
}

/// The wasm `configuration`: the JSON as a string, or gzip-compressed as bytes (the filter tells
/// them apart by gzip's magic bytes).
fn configuration(json: String, compression: ConfigCompression) -> Result<Node, RenderError> {
    let compress = match compression {
        ConfigCompression::Auto => json.len() > COMPRESS_ABOVE_BYTES,
        ConfigCompression::Always => true,
        ConfigCompression::Never => false,
    };
    if !compress {
        return Ok(Node::typed(STRING_VALUE, [("value", Node::from(json))]));
    }
    // Deterministic output (gzip's mtime field is 0): the same config renders the same file, so an
    // unchanged Gateway is not rewritten and Envoy does not reload it.
    let mut encoder = GzEncoder::new(Vec::with_capacity(json.len() / 8), Compression::default());
    let compressed = encoder
        .write_all(json.as_bytes())
        .and_then(|()| encoder.finish())
        .map_err(|e| RenderError::Serialize {
            what: "gzip-compressed plugin config",
            message: e.to_string(),
        })?;
    Ok(Node::typed(
        BYTES_VALUE,
        [("value", Node::from(BASE64_STANDARD.encode(compressed)))],
    ))
}

/// 64-bit FNV-1a: a stable content hash with no dependency.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
