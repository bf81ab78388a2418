//! An empty Envoy dynamic-module HTTP filter: every hook Envoy 1.40 requires, each returning
//! "continue" without calling back into Envoy. The benchmark's `dynamic-floor` setup runs it in
//! front of a catch-all route: what any dynamic module costs per request before it does any work
//! (the counterpart of `bench/floor-filter` for Wasm).
//!
//! Hook names and the ABI version are those of `dynamic-module/` (Envoy's ABI "v0.2.0").

// Exported C symbols (`no_mangle`) count as unsafe code; nothing here dereferences a pointer.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_void};

/// A non-null configuration pointer (the module keeps no state).
static CONFIG: u8 = 0;

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    c"v0.2.0".as_ptr()
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    _config_envoy: *mut c_void,
    // Two `{ptr, length}` buffers by value, passed like four scalar arguments (x86-64, AArch64).
    _name_ptr: *const u8,
    _name_length: usize,
    _config_ptr: *const u8,
    _config_length: usize,
) -> *const c_void {
    (&raw const CONFIG).cast()
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(_config: *const c_void) {}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *const c_void,
    _filter_envoy: *mut c_void,
) -> *const c_void {
    config
}

/// Every stream hook: continue (0 is `Continue` in each status enum) and read nothing.
macro_rules! continue_hooks {
    ($($name:ident),* $(,)?) => {$(
        #[unsafe(no_mangle)]
        pub extern "C" fn $name(_filter_envoy: *mut c_void, _filter: *const c_void) -> u32 {
            0
        }
    )*};
}

continue_hooks!(
    envoy_dynamic_module_on_http_filter_request_headers,
    envoy_dynamic_module_on_http_filter_request_body,
    envoy_dynamic_module_on_http_filter_request_trailers,
    envoy_dynamic_module_on_http_filter_response_headers,
    envoy_dynamic_module_on_http_filter_response_body,
    envoy_dynamic_module_on_http_filter_response_trailers,
);

/// Hooks without a result.
macro_rules! empty_hooks {
    ($($name:ident),* $(,)?) => {$(
        #[unsafe(no_mangle)]
        pub extern "C" fn $name(_filter_envoy: *mut c_void, _filter: *const c_void) {}
    )*};
}

empty_hooks!(
    envoy_dynamic_module_on_http_filter_stream_complete,
    envoy_dynamic_module_on_http_filter_http_callout_done,
    envoy_dynamic_module_on_http_filter_http_stream_headers,
    envoy_dynamic_module_on_http_filter_http_stream_data,
    envoy_dynamic_module_on_http_filter_http_stream_trailers,
    envoy_dynamic_module_on_http_filter_http_stream_complete,
    envoy_dynamic_module_on_http_filter_http_stream_reset,
    envoy_dynamic_module_on_http_filter_scheduled,
    envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark,
    envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark,
);

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(_filter: *const c_void) {}
