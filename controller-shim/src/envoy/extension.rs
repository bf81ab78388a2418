//! The extension-config (ECDS) file: the wasm filter with the PluginConfig as its configuration.
//!
//! Everything but `configuration` stays byte-for-byte the same across pushes (same `vm_id`, code and
//! `vm_config`), so Envoy keeps its VMs and only runs `on_configure` in new root contexts.

use engine::PluginConfig;

use super::node::Node;
use super::{EnvoyOptions, FILTER_NAME, RenderError};

const TYPED_EXTENSION_CONFIG: &str =
    "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";
pub(super) const WASM_FILTER_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const STRING_VALUE: &str = "type.googleapis.com/google.protobuf.StringValue";

pub(super) fn discovery_file(
    config: &PluginConfig,
    options: &EnvoyOptions,
) -> Result<Node, RenderError> {
    let mut config = config.clone();
    let json = serde_json::to_string(&config).map_err(|e| RenderError::Serialize {
        what: "plugin config",
        message: e.to_string(),
    })?;
    if config.revision.is_empty() {
        // The filter logs the revision it accepts; make one from the content when the producer
        // did not choose one.
        config.revision = format!("fnv1a-{:016x}", fnv1a(json.as_bytes()));
    }
    let json = serde_json::to_string(&config).map_err(|e| RenderError::Serialize {
        what: "plugin config",
        message: e.to_string(),
    })?;
    let wasm = Node::map([
        ("name", Node::from(FILTER_NAME)),
        ("root_id", Node::from(super::ROOT_ID)),
        (
            "failure_policy",
            Node::from(options.failure_policy.as_envoy()),
        ),
        (
            "vm_config",
            Node::map([
                ("vm_id", Node::from(FILTER_NAME)),
                ("runtime", Node::from("envoy.wasm.runtime.v8")),
                (
                    "code",
                    Node::map([(
                        "local",
                        Node::map([(
                            "filename",
                            Node::from(options.wasm_path.display().to_string()),
                        )]),
                    )]),
                ),
            ]),
        ),
        (
            "configuration",
            Node::typed(STRING_VALUE, [("value", Node::from(json))]),
        ),
    ]);
    Ok(Node::map([(
        "resources",
        Node::list([Node::typed(
            TYPED_EXTENSION_CONFIG,
            [
                ("name", Node::from(FILTER_NAME)),
                (
                    "typed_config",
                    Node::typed(WASM_FILTER_TYPE, [("config", wasm)]),
                ),
            ],
        )]),
    )]))
}

/// 64-bit FNV-1a: a stable content hash with no dependency.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
