//! The proxy-wasm ABI 0.2.1 surface a module may rely on when it has to run in both hosts we
//! target: Envoy (V8, through proxy-wasm-cpp-host) and Kong 3.4–3.9 (ngx_wasm_module, "WasmX").
//!
//! Where these tables come from (read when this file was written):
//! - The ABI: proxy-wasm/spec `abi-versions/v0.2.1/README.md` (status FINAL): callback and host
//!   function names and their wasm signatures, and the WASI functions it names (`fd_write`,
//!   `clock_time_get`, `random_get`, `environ_*`, `args_*`, `proc_exit`).
//! - Envoy: proxy-wasm-cpp-host `include/proxy-wasm/exports.h` (`FOR_ALL_HOST_FUNCTIONS`,
//!   `FOR_ALL_HOST_FUNCTIONS_ABI_SPECIFIC`, `FOR_ALL_WASI_FUNCTIONS`) and `src/wasm.cc`
//!   (`registerCallbacks`: every WASI function is registered under both `wasi_unstable` and
//!   `wasi_snapshot_preview1`; `continue_stream`, `close_stream`, `get_log_level` only for 0.2.1).
//!   The WASI list has grown over time: since 2021 it has `fd_write fd_read fd_seek fd_close
//!   fd_fdstat_get environ_get environ_sizes_get args_get args_sizes_get clock_time_get random_get
//!   proc_exit path_open fd_prestat_get fd_prestat_dir_name`; `fd_fdstat_set_flags sched_yield
//!   poll_oneoff` came in December 2024 and ~30 more stubs in April 2026.
//! - Kong: ngx_wasm_module `src/common/proxy_wasm/ngx_proxy_wasm_host.c` (host function table)
//!   and `src/wasm/wasi/ngx_wasi_host.c` as of mid-2023 (Kong 3.4): the WASI functions are
//!   `args_get args_sizes_get clock_time_get environ_get environ_sizes_get fd_close fd_fdstat_get
//!   fd_prestat_get fd_prestat_dir_name fd_read fd_seek fd_write path_open proc_exit random_get`.
//!   `sched_yield`, `poll_oneoff` and `fd_fdstat_set_flags` only arrived in February 2025, after
//!   Kong 3.9, so a module importing them does not instantiate in the Kong releases we support.
//!   Kong has no `proxy_get_header_map_size` and no `proxy_get_buffer_status`; several functions
//!   exist there as no-ops (marked `kong_noop` below: importing them works, calling them does
//!   nothing useful).
//!
//! The allowed set is the intersection: ABI 0.2.1 `env.proxy_*` functions both hosts register,
//! and the `wasi_snapshot_preview1` functions both hosts register in the versions we support.

use wasmparser::ValType::{self, I32, I64};

/// A function signature: parameter and result types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sig {
    pub params: &'static [ValType],
    pub results: &'static [ValType],
}

impl std::fmt::Display for Sig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", render_sig(self.params, self.results))
    }
}

/// Renders a signature as `(i32, i32) -> i32`.
pub fn render_sig(params: &[ValType], results: &[ValType]) -> String {
    let list = |types: &[ValType]| {
        types
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match results {
        [] => format!("({})", list(params)),
        _ => format!("({}) -> {}", list(params), list(results)),
    }
}

const fn sig(params: &'static [ValType], results: &'static [ValType]) -> Sig {
    Sig { params, results }
}

/// A host function a module may import.
#[derive(Debug, Clone, Copy)]
pub struct HostFn {
    pub module: &'static str,
    pub name: &'static str,
    pub sig: Sig,
    /// Registered by Kong but implemented as a no-op in at least one supported Kong release.
    pub kong_noop: bool,
}

const R: &[ValType] = &[I32];
const fn env(name: &'static str, params: &'static [ValType], kong_noop: bool) -> HostFn {
    HostFn {
        module: "env",
        name,
        sig: sig(params, R),
        kong_noop,
    }
}
const fn wasi(
    name: &'static str,
    params: &'static [ValType],
    results: &'static [ValType],
) -> HostFn {
    HostFn {
        module: WASI_MODULE,
        name,
        sig: sig(params, results),
        kong_noop: false,
    }
}

pub const WASI_MODULE: &str = "wasi_snapshot_preview1";

const I32X1: &[ValType] = &[I32];
const I32X2: &[ValType] = &[I32, I32];
const I32X3: &[ValType] = &[I32, I32, I32];
const I32X4: &[ValType] = &[I32, I32, I32, I32];
const I32X5: &[ValType] = &[I32, I32, I32, I32, I32];
const I32X6: &[ValType] = &[I32, I32, I32, I32, I32, I32];
const I32X8: &[ValType] = &[I32, I32, I32, I32, I32, I32, I32, I32];
const I32X9: &[ValType] = &[I32, I32, I32, I32, I32, I32, I32, I32, I32];
const I32X10: &[ValType] = &[I32, I32, I32, I32, I32, I32, I32, I32, I32, I32];
const I32X12: &[ValType] = &[I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32];

/// Host functions both hosts provide (ABI 0.2.1 `env` module, plus WASI preview 1).
pub const ALLOWED_IMPORTS: &[HostFn] = &[
    env("proxy_log", I32X3, false),
    env("proxy_get_log_level", I32X1, true),
    env("proxy_get_current_time_nanoseconds", I32X1, false),
    env("proxy_set_effective_context", I32X1, false),
    env("proxy_done", &[], true),
    env("proxy_set_tick_period_milliseconds", I32X1, false),
    env("proxy_get_buffer_bytes", I32X5, false),
    env("proxy_set_buffer_bytes", I32X5, false),
    env("proxy_get_header_map_pairs", I32X3, false),
    env("proxy_set_header_map_pairs", I32X3, false),
    env("proxy_get_header_map_value", I32X5, false),
    env("proxy_add_header_map_value", I32X5, false),
    env("proxy_replace_header_map_value", I32X5, false),
    env("proxy_remove_header_map_value", I32X3, false),
    env("proxy_continue_stream", I32X1, false),
    env("proxy_close_stream", I32X1, true),
    env("proxy_get_status", I32X3, true),
    env("proxy_send_local_response", I32X8, false),
    env("proxy_http_call", I32X10, false),
    env("proxy_grpc_call", I32X12, true),
    env("proxy_grpc_stream", I32X9, true),
    env("proxy_grpc_send", I32X4, true),
    env("proxy_grpc_cancel", I32X1, true),
    env("proxy_grpc_close", I32X1, true),
    env("proxy_set_shared_data", I32X5, false),
    env("proxy_get_shared_data", I32X5, false),
    env("proxy_register_shared_queue", I32X3, false),
    env("proxy_resolve_shared_queue", I32X5, true),
    env("proxy_enqueue_shared_queue", I32X3, false),
    env("proxy_dequeue_shared_queue", I32X3, false),
    env("proxy_define_metric", I32X4, true),
    env("proxy_record_metric", &[I32, I64], true),
    env("proxy_increment_metric", &[I32, I64], true),
    env("proxy_get_metric", I32X2, true),
    env("proxy_get_property", I32X4, false),
    env("proxy_set_property", I32X4, false),
    env("proxy_call_foreign_function", I32X6, true),
    wasi("args_get", I32X2, R),
    wasi("args_sizes_get", I32X2, R),
    wasi("clock_time_get", &[I32, I64, I32], R),
    wasi("environ_get", I32X2, R),
    wasi("environ_sizes_get", I32X2, R),
    wasi("fd_close", I32X1, R),
    wasi("fd_fdstat_get", I32X2, R),
    wasi("fd_prestat_get", I32X2, R),
    wasi("fd_prestat_dir_name", I32X3, R),
    wasi("fd_read", I32X4, R),
    wasi("fd_seek", &[I32, I64, I32, I32], R),
    wasi("fd_write", I32X4, R),
    wasi(
        "path_open",
        &[I32, I32, I32, I32, I32, I64, I64, I32, I32],
        R,
    ),
    wasi("proc_exit", I32X1, &[]),
    wasi("random_get", I32X2, R),
];

/// Imports we know by name but must refuse, with the reason.
pub const REFUSED_IMPORTS: &[(&str, &str, &str)] = &[
    (
        "env",
        "proxy_get_header_map_size",
        "Envoy provides it, Kong/WasmX does not",
    ),
    (
        "env",
        "proxy_get_buffer_status",
        "Envoy provides it, Kong/WasmX does not",
    ),
    (
        WASI_MODULE,
        "sched_yield",
        "Kong/WasmX only has it since 2025, after Kong 3.9",
    ),
    (
        WASI_MODULE,
        "poll_oneoff",
        "Kong/WasmX only has it since 2025, after Kong 3.9",
    ),
    (
        WASI_MODULE,
        "fd_fdstat_set_flags",
        "Kong/WasmX only has it since 2025, after Kong 3.9",
    ),
];

/// Looks up an allowed import.
pub fn allowed_import(module: &str, name: &str) -> Option<&'static HostFn> {
    ALLOWED_IMPORTS
        .iter()
        .find(|f| f.module == module && f.name == name)
}

/// Why a known-but-refused import is refused.
pub fn refused_reason(module: &str, name: &str) -> Option<&'static str> {
    REFUSED_IMPORTS
        .iter()
        .find(|(m, n, _)| *m == module && *n == name)
        .map(|(_, _, why)| *why)
}

/// The ABI marker export the module must carry (the artifacts' runtime config names it too).
pub use oci_artifacts::formats::ABI_MARKER;
/// Other ABI markers a module might carry instead (older ABIs).
pub const OTHER_ABI_MARKERS: &[&str] = &["proxy_abi_version_0_1_0", "proxy_abi_version_0_2_0"];

/// An export requirement: one of `names` must be exported with the given signature.
#[derive(Debug, Clone, Copy)]
pub struct RequiredExport {
    /// Alternatives, in order of preference (the host calls the first one present).
    pub names: &'static [&'static str],
    pub sig: Sig,
    /// What the host uses it for, for error messages.
    pub role: &'static str,
}

const fn req(names: &'static [&'static str], sig: Sig, role: &'static str) -> RequiredExport {
    RequiredExport { names, sig, role }
}

/// Function exports an HTTP filter must have for Envoy and Kong to load it and call it for every
/// request. The spec makes every callback optional; these are the ones without which our filter
/// cannot work (no config, no request or response headers, leaked contexts).
pub const REQUIRED_FUNCTION_EXPORTS: &[RequiredExport] = &[
    req(&[ABI_MARKER], sig(&[], &[]), "ABI 0.2.1 marker"),
    req(
        &["_initialize", "_start"],
        sig(&[], &[]),
        "module initialisation (WASI reactor or command)",
    ),
    req(
        &["proxy_on_memory_allocate", "malloc"],
        sig(I32X1, R),
        "host-to-module memory allocation",
    ),
    req(
        &["proxy_on_context_create"],
        sig(I32X2, &[]),
        "root and stream context creation",
    ),
    req(&["proxy_on_vm_start"], sig(I32X2, R), "VM start"),
    req(
        &["proxy_on_configure"],
        sig(I32X2, R),
        "plugin configuration",
    ),
    req(
        &["proxy_on_request_headers"],
        sig(I32X3, R),
        "request headers",
    ),
    req(
        &["proxy_on_response_headers"],
        sig(I32X3, R),
        "response headers",
    ),
    req(&["proxy_on_done"], sig(I32X1, R), "context completion"),
    req(&["proxy_on_delete"], sig(I32X1, &[]), "context deletion"),
];

/// Optional callbacks: not required, but when exported their signature must match the ABI.
pub const OPTIONAL_FUNCTION_EXPORTS: &[(&str, Sig)] = &[
    ("proxy_on_log", sig(I32X1, &[])),
    ("proxy_on_tick", sig(I32X1, &[])),
    ("proxy_on_request_body", sig(I32X3, R)),
    ("proxy_on_request_trailers", sig(I32X2, R)),
    ("proxy_on_response_body", sig(I32X3, R)),
    ("proxy_on_response_trailers", sig(I32X2, R)),
    ("proxy_on_http_call_response", sig(I32X5, &[])),
    ("proxy_on_queue_ready", sig(I32X2, &[])),
    ("proxy_on_foreign_function", sig(I32X3, &[])),
    ("proxy_on_new_connection", sig(I32X1, R)),
    ("proxy_on_downstream_data", sig(I32X3, R)),
    ("proxy_on_upstream_data", sig(I32X3, R)),
    ("proxy_on_downstream_connection_close", sig(I32X2, &[])),
    ("proxy_on_upstream_connection_close", sig(I32X2, &[])),
    ("proxy_on_grpc_receive_initial_metadata", sig(I32X3, &[])),
    ("proxy_on_grpc_receive", sig(I32X3, &[])),
    ("proxy_on_grpc_receive_trailing_metadata", sig(I32X3, &[])),
    ("proxy_on_grpc_close", sig(I32X3, &[])),
];

/// The linear memory export both hosts read and write.
pub const MEMORY_EXPORT: &str = "memory";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_and_refused_lists_do_not_overlap() {
        for (m, n, _) in REFUSED_IMPORTS {
            assert!(allowed_import(m, n).is_none(), "{m}.{n} is in both lists");
        }
    }

    #[test]
    fn allowed_imports_are_unique() {
        for (i, a) in ALLOWED_IMPORTS.iter().enumerate() {
            for b in ALLOWED_IMPORTS.iter().skip(i + 1) {
                assert!(
                    !(a.module == b.module && a.name == b.name),
                    "duplicate {}.{}",
                    a.module,
                    a.name
                );
            }
        }
    }

    #[test]
    fn signatures_render_like_wat() {
        assert_eq!(sig(I32X2, R).to_string(), "(i32, i32) -> i32");
        assert_eq!(sig(&[], &[]).to_string(), "()");
    }
}
