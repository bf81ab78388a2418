//! What the fake Kong's workers do with a new configuration, modelled on Kong's source (Kong/kong
//! tags 3.4.0–3.9.3): each worker rebuilds its filter-chain state (`kong/runloop/wasm.lua`,
//! `rebuild_state`), which re-encodes every object `config` with lua-cjson
//! (`serialize_configuration`: `cjson.encode(config)` of the Lua table that `cjson.decode` of the
//! posted JSON produced, so an empty array comes back as `{}`) and loads the filters, which runs
//! the filter's `on_configure` (`proxy_wasm.load` → ngx_wasm_module's root context start,
//! `ngx_proxy_wasm.c`: a false return is `NGX_PROXY_WASM_ERR_CONFIGURE_FAILED`). A filter that
//! rejects its configuration fails the worker's reconfiguration: the worker logs `declarative
//! reconfigure failed …` and keeps serving its previous state (`kong/runloop/handler.lua`,
//! `reconfigure_handler`), while the Admin API already answered 201 and `GET /status` reports
//! the new hash. Nothing else tells the Admin API client.
//!
//! The filter's `on_configure` is modelled by the engine the filter is built from
//! (`engine::RouteTable::from_json`, exactly what the filter's configure step runs).

use serde_json::Value;

/// A JSON document as lua-cjson writes it after a round trip through Lua tables.
pub fn lua_cjson_reencode(value: &Value) -> String {
    testkit::lua_cjson::reencode(value)
}

/// The filter configurations the workers run, and Kong's error log.
#[derive(Debug, Default, Clone)]
pub struct Workers {
    /// The configuration text each filter got, as the workers last loaded it.
    pub configs: Vec<String>,
    /// Error log lines (`[error] … declarative reconfigure failed …`).
    pub error_log: Vec<String>,
    /// Successful reconfigurations.
    pub reloads: usize,
}

impl Workers {
    /// Rebuilds the filter-chain state from the filter chains' filters; on a filter rejecting its
    /// configuration, logs like Kong and keeps the previous state.
    pub fn reconfigure(&mut self, chains: &[Value]) {
        let mut configs = Vec::new();
        for chain in chains {
            if chain["enabled"] == false {
                continue;
            }
            for filter in chain["filters"].as_array().into_iter().flatten() {
                if filter["enabled"] == false {
                    continue;
                }
                let text = match &filter["config"] {
                    Value::String(text) => text.clone(),
                    Value::Null => String::new(),
                    object => lua_cjson_reencode(object),
                };
                if let Err(error) = engine::RouteTable::from_json(text.as_bytes()) {
                    let label = chain["route"]["id"]
                        .as_str()
                        .map_or_else(|| "service".to_owned(), |id| format!("route({id})"));
                    self.error_log.push(format!(
                        "[error] declarative reconfigure failed after 0 ms on worker #0: failed to initialize {label} filter chain: failed loading filters: [emerg] the filter rejected its configuration: rejected config: {error}"
                    ));
                    return;
                }
                configs.push(text);
            }
        }
        self.configs = configs;
        self.reloads += 1;
    }
}
