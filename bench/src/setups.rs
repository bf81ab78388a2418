//! The five Envoy setups, as files in a directory, all with the same listener settings, the same
//! clusters (pointing at the same upstream) and the same request mix:
//!
//! - **native**: Envoy's own router. The routes come from RDS (a watched file, so a push can be
//!   measured), in the shape Envoy Gateway generates ([`Table::native_route_config`]).
//! - **plugin**: the files the controller-shim renders (`controller_shim::envoy::render`): the
//!   gateway-wasm filter from ECDS with the PluginConfig, and the catch-all `cluster_header` route.
//! - **floor**: the empty pass-through wasm filter (`bench/floor-filter`) in front of a catch-all
//!   route to one cluster: what any wasm filter costs before it does any work.
//! - **dynamic**: the shim's files with `--envoy-filter dynamic-module`: the same engine as an
//!   Envoy dynamic module (`libgateway_wasm_dynamic.so`), same PluginConfig through ECDS.
//! - **dynamic-floor**: the empty dynamic module (`bench/dynamic-floor`) in front of the floor's
//!   catch-all route: what any dynamic module costs.
//!
//! The connection manager settings of native and floor copy the shim's (codec AUTO,
//! `use_remote_address`, WebSocket upgrades); clusters are the shim's CDS file in all three.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use controller_shim::envoy::{
    CLUSTERS_FILE, EXTENSION_CONFIG_FILE, EnvoyFiles, EnvoyFilter, EnvoyOptions, render,
    write_files,
};
use controller_shim::resolution::{BackendTarget, Endpoint, GatewayResult, ObjectKey};
use serde_json::{Value, json};

use crate::tables::{GATEWAY_PORT, Table};

const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const DYNAMIC_MODULE_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter";
const ROUTE_CONFIG_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const STRING_VALUE: &str = "type.googleapis.com/google.protobuf.StringValue";
/// The native setup's RDS file (JSON: Envoy's fastest file format for a large route table).
pub const ROUTES_FILE: &str = "rds/routes.json";
const ROUTE_CONFIG_NAME: &str = "bench-native";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Variant {
    Native,
    Plugin,
    Floor,
    Dynamic,
    DynamicFloor,
}

impl Variant {
    pub const ALL: [Variant; 5] = [
        Variant::Native,
        Variant::Plugin,
        Variant::Floor,
        Variant::Dynamic,
        Variant::DynamicFloor,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Native => "native",
            Variant::Plugin => "plugin",
            Variant::Floor => "floor",
            Variant::Dynamic => "dynamic",
            Variant::DynamicFloor => "dynamic-floor",
        }
    }

    /// Whether the setup routes (and so can take a route push).
    pub fn routes(self) -> bool {
        !self.is_floor()
    }

    /// The empty filters, which forward everything to one cluster.
    pub fn is_floor(self) -> bool {
        matches!(self, Variant::Floor | Variant::DynamicFloor)
    }

    /// The setups running the gateway-wasm engine in a filter (they log `on_configure` times).
    pub fn runs_the_engine(self) -> bool {
        matches!(self, Variant::Plugin | Variant::Dynamic)
    }
}

/// What the harness needs to run one setup.
#[derive(Debug, Clone)]
pub struct Setup {
    pub variant: Variant,
    pub dir: PathBuf,
    pub bootstrap: PathBuf,
    pub listen_port: u16,
}

/// Paths of the two wasm files.
#[derive(Debug, Clone)]
pub struct WasmFiles {
    pub plugin: PathBuf,
    pub floor: PathBuf,
    /// The floor filter's plugin configuration (the floor ignores it; `bench/probe-filter` reads it).
    pub floor_config: String,
    /// `libgateway_wasm_dynamic.so` and the empty dynamic module.
    pub dynamic: PathBuf,
    pub dynamic_floor: PathBuf,
}

pub(crate) fn shim_options(
    dir: &Path,
    wasm: &Path,
    listen_port: u16,
    filter: EnvoyFilter,
) -> EnvoyOptions {
    let mut options = EnvoyOptions::new(dir, wasm);
    options.filter = filter;
    options.port_map = BTreeMap::from([(GATEWAY_PORT, listen_port)]);
    options.bind_address = "127.0.0.1".into();
    options.admin_port = 0;
    options
}

/// The resolved Gateway the shim would produce for `table`: every backend a static cluster of the
/// one upstream.
fn gateway_result(table: &Table, upstream_port: u16) -> Result<GatewayResult> {
    let backends = table
        .backends()
        .into_iter()
        .map(|key| {
            let (namespace, rest) = key.split_once('/').unwrap_or(("default", &key));
            let service = rest.split(':').next().unwrap_or(rest);
            let target = BackendTarget {
                namespace: namespace.to_owned(),
                service: service.to_owned(),
                port: 8080,
                app_protocol: None,
                endpoints: vec![Endpoint {
                    address: "127.0.0.1".into(),
                    port: upstream_port,
                }],
            };
            (key, target)
        })
        .collect();
    shim_result(&table.plugin_config(), backends)
}

/// The resolved Gateway (`infra/bench`) the shim would produce for a generated PluginConfig and
/// its backends.
pub(crate) fn shim_result(
    config: &Value,
    backends: BTreeMap<String, BackendTarget>,
) -> Result<GatewayResult> {
    let config = engine::parse(config.to_string().as_bytes())
        .map_err(|e| anyhow!("the generated PluginConfig does not parse: {e}"))?;
    Ok(GatewayResult {
        gateway: ObjectKey {
            namespace: "infra".into(),
            name: "bench".into(),
        },
        generation: None,
        config,
        backends,
        tls: BTreeMap::new(),
        status: Default::default(),
    })
}

/// Renders the shim's files for `table`, with the Wasm filter or the dynamic module.
pub fn render_plugin(
    table: &Table,
    dir: &Path,
    wasm: &Path,
    listen_port: u16,
    upstream_port: u16,
    filter: EnvoyFilter,
) -> Result<EnvoyFiles> {
    let result = gateway_result(table, upstream_port)?;
    render(&result, &shim_options(dir, wasm, listen_port, filter))
        .context("rendering the shim's files")
}

/// The shim's filter for a setup: the dynamic module for `dynamic`, else the Wasm filter.
pub(crate) fn shim_filter(variant: Variant, wasm: &WasmFiles) -> EnvoyFilter {
    if variant == Variant::Dynamic {
        EnvoyFilter::DynamicModule(wasm.dynamic.clone())
    } else {
        EnvoyFilter::Wasm
    }
}

fn file_source(dir: &Path, relative: &str) -> Value {
    let path = dir.join(relative);
    let watched = path.parent().unwrap_or(dir).to_path_buf();
    json!({
        "resource_api_version": "V3",
        "path_config_source": {
            "path": path.display().to_string(),
            "watched_directory": {"path": watched.display().to_string()},
        },
    })
}

/// The shim's connection manager settings, with the route source and filters of a setup.
pub(crate) fn connection_manager(routes: (&str, Value), filters: Vec<Value>) -> Value {
    let mut filters = filters;
    filters
        .push(json!({"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}));
    let mut config = json!({
        "@type": HCM_TYPE,
        "stat_prefix": format!("gateway_{GATEWAY_PORT}"),
        "codec_type": "AUTO",
        "use_remote_address": true,
        "upgrade_configs": [{"upgrade_type": "websocket"}],
        "http_filters": filters,
    });
    if let Some(o) = config.as_object_mut() {
        o.insert(routes.0.to_owned(), routes.1);
    }
    json!({"name": "envoy.filters.network.http_connection_manager", "typed_config": config})
}

pub(crate) fn bootstrap(variant: Variant, dir: &Path, listen_port: u16, hcm: Value) -> Value {
    json!({
        "node": {"id": format!("bench-{}", variant.name()), "cluster": "bench"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "dynamic_resources": {"cds_config": file_source(dir, CLUSTERS_FILE)},
        "static_resources": {"listeners": [{
            "name": format!("gateway-{GATEWAY_PORT}"),
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen_port}},
            "filter_chains": [{"name": format!("bench:{GATEWAY_PORT}"), "filters": [hcm]}],
        }]},
    })
}

/// The native setup's RDS file content for `table`.
pub fn native_routes(table: &Table) -> Result<String> {
    let mut config = table.native_route_config(ROUTE_CONFIG_NAME);
    if let Some(o) = config.as_object_mut() {
        o.insert("@type".into(), json!(ROUTE_CONFIG_TYPE));
    }
    Ok(serde_json::to_string(&json!({"resources": [config]}))?)
}

pub(crate) fn write_json(path: &Path, value: &Value) -> Result<()> {
    write_file(path, serde_json::to_string_pretty(value)?.as_bytes())
}

pub(crate) fn write_file(path: &Path, content: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, content).with_context(|| format!("writing {}", path.display()))
}

/// Writes every file of one setup into `dir` (fresh for each run) and returns how to start it.
pub fn write_setup(
    variant: Variant,
    table: &Table,
    dir: &Path,
    wasm: &WasmFiles,
    listen_port: u16,
    upstream_port: u16,
) -> Result<Setup> {
    // The shim renders the clusters for every setup (and everything for plugin and dynamic).
    let files = render_plugin(
        table,
        dir,
        &wasm.plugin,
        listen_port,
        upstream_port,
        shim_filter(variant, wasm),
    )?;
    let bootstrap_path = match variant {
        Variant::Plugin | Variant::Dynamic => {
            write_files(dir, &files).context("writing the shim's files")?;
            dir.join(controller_shim::envoy::BOOTSTRAP_FILE)
        }
        Variant::Native | Variant::Floor | Variant::DynamicFloor => {
            let clusters = files
                .get(CLUSTERS_FILE)
                .ok_or_else(|| anyhow!("the shim rendered no clusters file"))?;
            write_file(&dir.join(CLUSTERS_FILE), clusters.as_bytes())?;
            let hcm = if variant == Variant::Native {
                write_file(&dir.join(ROUTES_FILE), native_routes(table)?.as_bytes())?;
                connection_manager(
                    (
                        "rds",
                        json!({"route_config_name": ROUTE_CONFIG_NAME,
                               "config_source": file_source(dir, ROUTES_FILE)}),
                    ),
                    Vec::new(),
                )
            } else {
                let cluster = table
                    .backends()
                    .into_iter()
                    .next()
                    .ok_or_else(|| anyhow!("the table has no backend"))?;
                connection_manager(
                    (
                        "route_config",
                        json!({"name": "floor", "validate_clusters": false, "virtual_hosts": [{
                            "name": "floor", "domains": ["*"],
                            "routes": [{"name": "floor", "match": {"prefix": "/"},
                                        "route": {"cluster": cluster, "timeout": "0s"}}],
                        }]}),
                    ),
                    vec![if variant == Variant::Floor {
                        floor_filter(&wasm.floor, &wasm.floor_config)
                    } else {
                        dynamic_floor_filter(&wasm.dynamic_floor)
                    }],
                )
            };
            let path = dir.join("bootstrap.json");
            write_json(&path, &bootstrap(variant, dir, listen_port, hcm))?;
            path
        }
    };
    Ok(Setup {
        variant,
        dir: dir.to_path_buf(),
        bootstrap: bootstrap_path,
        listen_port,
    })
}

/// The floor filter, configured like the real one (V8, local file, fail closed) but inline.
fn floor_filter(wasm: &Path, configuration: &str) -> Value {
    json!({
        "name": "floor",
        "typed_config": {"@type": WASM_TYPE, "config": {
            "name": "floor",
            "root_id": "floor",
            "failure_policy": "FAIL_CLOSED",
            "vm_config": {
                "vm_id": "floor",
                "runtime": "envoy.wasm.runtime.v8",
                "code": {"local": {"filename": wasm.display().to_string()}},
            },
            "configuration": {"@type": STRING_VALUE, "value": configuration},
        }},
    })
}

/// The empty dynamic module, inline, loaded like the shim loads the real one.
fn dynamic_floor_filter(module: &Path) -> Value {
    json!({
        "name": "dynamic-floor",
        "typed_config": {"@type": DYNAMIC_MODULE_TYPE,
            "dynamic_module_config": {
                "module": {"local": {"filename": module.display().to_string()}},
                "do_not_close": true,
            },
            "filter_name": "dynamic-floor",
            "filter_config": {"@type": STRING_VALUE, "value": "{}"},
        },
    })
}

/// The file a route push replaces, and its new content.
pub fn push_file(
    setup: &Setup,
    table: &Table,
    wasm: &WasmFiles,
    upstream_port: u16,
) -> Result<(PathBuf, String)> {
    match setup.variant {
        Variant::Native => Ok((setup.dir.join(ROUTES_FILE), native_routes(table)?)),
        Variant::Plugin | Variant::Dynamic => {
            let files = render_plugin(
                table,
                &setup.dir,
                &wasm.plugin,
                setup.listen_port,
                upstream_port,
                shim_filter(setup.variant, wasm),
            )?;
            let content = files
                .get(EXTENSION_CONFIG_FILE)
                .ok_or_else(|| anyhow!("the shim rendered no extension config"))?;
            Ok((setup.dir.join(EXTENSION_CONFIG_FILE), content.to_owned()))
        }
        Variant::Floor | Variant::DynamicFloor => {
            Err(anyhow!("the floor setups have no routes to push"))
        }
    }
}
