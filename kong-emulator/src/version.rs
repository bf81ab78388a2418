//! Which Kong release is emulated, and what differs between releases. Every fact names the file it
//! comes from in Kong/kong (at the release's tag) or Kong/ngx_wasm_module (at the commit Kong's
//! `.requirements` pins as `NGX_WASM_MODULE` for that release).

use std::fmt;

/// A Kong release line from 3.4 to 3.9 (the releases that ship Wasm support).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KongVersion {
    pub minor: u8,
}

impl KongVersion {
    pub const V3_4: KongVersion = KongVersion { minor: 4 };
    pub const V3_5: KongVersion = KongVersion { minor: 5 };
    pub const V3_6: KongVersion = KongVersion { minor: 6 };
    pub const V3_7: KongVersion = KongVersion { minor: 7 };
    pub const V3_8: KongVersion = KongVersion { minor: 8 };
    pub const V3_9: KongVersion = KongVersion { minor: 9 };

    /// Every emulated release, oldest first.
    pub const ALL: [KongVersion; 6] = [
        KongVersion::V3_4,
        KongVersion::V3_5,
        KongVersion::V3_6,
        KongVersion::V3_7,
        KongVersion::V3_8,
        KongVersion::V3_9,
    ];

    /// `3.9` → the release line.
    pub fn parse(text: &str) -> Option<KongVersion> {
        let minor = text.trim().strip_prefix("3.")?;
        let minor: u8 = minor.split('.').next()?.parse().ok()?;
        KongVersion::ALL.into_iter().find(|v| v.minor == minor)
    }

    /// What `kong.version` answers (the newest patch release of the line).
    pub fn full(self) -> &'static str {
        match self.minor {
            4 => "3.4.2",
            5 => "3.5.0",
            6 => "3.6.1",
            7 => "3.7.1",
            8 => "3.8.1",
            _ => "3.9.3",
        }
    }

    /// Filter configs may be JSON (validated against meta.json's `config_schema`) and are then
    /// re-encoded with lua-cjson; before 3.5 `config` is a plain string
    /// (kong/db/schema/entities/filter_chains.lua at 3.4.0: `config = { type = "string" }`;
    /// kong/db/schema/others/wasm_filter.lua and kong/runloop/wasm.lua `serialize_configuration`
    /// from 3.5.0).
    pub fn json_filter_config(self) -> bool {
        self >= KongVersion::V3_5
    }

    /// Kong registers Lua getters and setters for `kong.*` properties (`kong.version`,
    /// `kong.service.target`, …) from 3.6 (kong/runloop/wasm.lua `register_property_handlers`,
    /// kong/runloop/wasm/properties.lua). Before, a `kong.*` property is only what was stored in
    /// the request's host property tree (ngx_proxy_wasm_properties.c `properties_set_host`): a set
    /// succeeds and changes nothing else.
    pub fn host_property_handlers(self) -> bool {
        self >= KongVersion::V3_6
    }

    /// The filter chain's `on_request_headers` runs after Kong's `access.after` (which resolved
    /// the service's address into `balancer_data.ip` and appended `?args` to `$upstream_uri`).
    /// Kong 3.4–3.7 call `proxy_wasm.start()` inside `runloop.wasm_attach(ctx)`, before
    /// `runloop.access.after(ctx)` (kong/init.lua `Kong.access`, kong/runloop/wasm.lua
    /// `_M.attach`); 3.8 removed `start()` (Kong/kong commit 19ee6a9, "bump ngx_wasm_module to
    /// ae7b611") and the filters run in ngx_wasm_module's access handler, which is postponed after
    /// `access_by_lua` (src/http/ngx_http_wasm_module.c `ngx_http_wasm_access_handler`,
    /// src/common/lua/ngx_wasm_lua_ffi.c `ngx_http_wasm_ffi_plan_attach`:
    /// `req_headers_in_access` when attached from the access phase).
    pub fn filter_runs_after_access(self) -> bool {
        self >= KongVersion::V3_8
    }

    /// `proxy_define_metric` and the other metric calls are implemented (3.8:
    /// src/common/proxy_wasm/ngx_proxy_wasm_host.c `ngx_proxy_wasm_hfuncs_define_metric`);
    /// before, they are `ngx_proxy_wasm_hfuncs_nop` returning `NGX_WAVM_NYI`, which
    /// src/wasm/vm/ngx_wavm_host.c turns into a trap "host trap (function not yet implemented)".
    pub fn metrics(self) -> bool {
        self >= KongVersion::V3_8
    }

    /// `kong.route_name` and `kong.service_name` getters exist (added in 3.9).
    pub fn name_properties(self) -> bool {
        self >= KongVersion::V3_9
    }
}

impl fmt::Display for KongVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "3.{}", self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order() {
        assert_eq!(KongVersion::parse("3.9"), Some(KongVersion::V3_9));
        assert_eq!(KongVersion::parse("3.4.2"), Some(KongVersion::V3_4));
        assert_eq!(KongVersion::parse("3.10"), None);
        assert!(KongVersion::V3_7 < KongVersion::V3_8);
        assert!(!KongVersion::V3_7.filter_runs_after_access());
        assert!(KongVersion::V3_8.metrics());
        assert_eq!(KongVersion::V3_6.to_string(), "3.6");
    }
}
