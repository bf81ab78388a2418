//! Kong's phase order as the emulation models it, shown with a minimal filter (WebAssembly text)
//! that does what the previous design did: set `kong.service.target` to a backend's `host:port`
//! in `on_request_headers`. The service points at a sink (`127.0.0.1:9`) and the backend listens
//! on another address (`10.0.0.2:8080`), so the peer of each connection attempt shows when the
//! property took effect (`docs/kong.md`, *Upstream selection*):
//! - 3.4/3.5: no `kong.service.target` setter: the request goes to the sink on every try;
//! - 3.6/3.7: the filter runs before `access.after`, whose balancer run resolves the new target;
//! - 3.8/3.9: the filter runs after `access.after` resolved the sink's address, so the first try
//!   connects to the sink's IP with the target's port, and only a retry reaches the target;
//! - from 3.6 the target's host replaces the client's Host (`set_target` sets `$upstream_host`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kong_emulator::{ClientRequest, KongEmulator, KongVersion};
use serde_json::json;

/// A filter that sets `kong.service.target` to `10.0.0.2:8080` and lets the request go on.
const SET_TARGET: &str = r#"
(module
  (import "env" "proxy_set_property" (func $set (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 0) "kong\00service\00target")
  (data (i32.const 64) "10.0.0.2:8080")
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    (local.get $at))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $set (i32.const 0) (i32.const 19) (i32.const 64) (i32.const 13)))
    (i32.const 0))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32)))
"#;

fn kong(version: KongVersion) -> KongEmulator {
    let wasm = wat::parse_str(SET_TARGET).unwrap();
    let mut kong = KongEmulator::new(version, &wasm).unwrap();
    kong.listen("10.0.0.2:8080", "backend");
    let config = if version.json_filter_config() {
        json!({})
    } else {
        json!("")
    };
    let loaded = kong
        .load(&json!({"_format_version": "3.0", "services": [{
            "name": "sink", "host": "127.0.0.1", "port": 9,
            "routes": [{"name": "all", "paths": ["/"], "strip_path": false, "preserve_host": true,
                        "filter_chains": [{"filters": [{"name": "gateway_wasm", "config": config}]}]}]
        }]}))
        .unwrap();
    assert!(loaded, "{:?}", kong.error_log());
    kong
}

#[test]
fn kong_service_target_takes_effect_only_where_the_phase_order_lets_it() {
    for version in KongVersion::ALL {
        let response = kong(version).send(ClientRequest::get(8000, "shop.example.com", "/"));
        let host = response.upstream.as_ref().map(|u| u.host.as_str());
        match version.minor {
            4 | 5 => {
                assert_eq!(response.status, 502, "Kong {version}");
                assert!(
                    response.attempts.iter().all(|a| a == "127.0.0.1:9"),
                    "Kong {version}: {:?}",
                    response.attempts
                );
            }
            6 | 7 => {
                assert_eq!(response.attempts, ["10.0.0.2:8080"], "Kong {version}");
                assert_eq!(
                    host,
                    Some("10.0.0.2"),
                    "Kong {version}: the Host is replaced"
                );
            }
            _ => {
                assert_eq!(
                    response.attempts,
                    ["127.0.0.1:8080", "10.0.0.2:8080"],
                    "Kong {version}: the first try goes to the sink's IP with the target's port"
                );
                assert_eq!(
                    host,
                    Some("10.0.0.2"),
                    "Kong {version}: the Host is replaced"
                );
            }
        }
    }
}
