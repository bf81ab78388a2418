//! gateway-wasm as an Envoy dynamic module: the same request and configure adapter as the
//! proxy-wasm filter ([`filter_core`]), called through Envoy's dynamic-module HTTP filter C ABI
//! (Envoy 1.40 and 1.41, ABI "v0.2.0") instead of a Wasm VM. Native code, no sandbox: about 1 µs
//! less per request than an empty proxy-wasm filter, and a configuration compiled once per push
//! and shared by every worker.
//!
//! - `abi`: the C declarations this module uses (written from Envoy's ABI header);
//! - `host`: [`filter_core::host::Host`] over those callbacks;
//! - this file: the exported hooks. Each one catches panics (an unwinding panic across the C ABI
//!   would abort Envoy): a panic in a request hook answers 500, in the config hook it rejects the
//!   configuration, and Envoy keeps the previous one.
//!
//! Envoy loads `libgateway_wasm_dynamic.so` from a `DynamicModuleFilter` whose `filter_config` is the
//! PluginConfig (a `StringValue`, or gzip bytes in a `BytesValue`, as for the Wasm filter):
//! `controller-shim render --envoy-filter dynamic-module --module PATH`. See
//! `docs/dynamic-module.md`.

// The one crate allowed to use `unsafe`: it implements a C ABI. Every block says why it is sound.
#![allow(unsafe_code)]

mod abi;
mod host;

use std::cell::{Cell, RefCell};
use std::ffi::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use filter_core::filter::{self, Compiled, Shared, Stream, Verdict};
use filter_core::host::{Host, LogLevel};

use abi::{FilterConfigEnvoyPtr, FilterConfigModulePtr, FilterEnvoyPtr, FilterModulePtr};
use host::{ConfigHost, CounterIds, StreamHost};

/// One accepted configuration: the compiled table every worker's streams share, and the counter
/// ids Envoy assigned to it. Created on the main thread, read from every worker thread.
struct FilterConfig {
    compiled: Arc<Compiled>,
    counters: CounterIds,
    /// Distinct per accepted configuration: selects the worker's [`Shared`] state.
    generation: u64,
}

// Envoy reads a configuration from every worker thread through a raw pointer, out of the
// compiler's sight: the build fails if the compiled table ever stops being `Send + Sync`.
const _: () = {
    const fn shared_across_threads<T: Send + Sync>() {}
    shared_across_threads::<FilterConfig>();
};

/// The last configuration generation handed out.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// One HTTP stream.
struct Filter {
    config: Arc<FilterConfig>,
    stream: Stream,
}

/// What Envoy's stream pointer points to: the stream state, and the mirror bookkeeping outside
/// the `RefCell` (a callout can be reported done while a hook holds the state).
struct StreamBox {
    state: RefCell<Filter>,
    /// Mirrors (HTTP callouts) in flight.
    callouts: Cell<usize>,
    /// The end of the response waits for `callouts` to reach 0.
    held: Cell<bool>,
    /// The configuration generation, to find the worker's [`Shared`] state without the stream.
    generation: u64,
}

thread_local! {
    /// Per worker thread and configuration: the random generator for weighted picks and the
    /// in-flight mirror deadlines. The proxy-wasm filter keeps the same state per root context,
    /// i.e. per worker and pushed configuration; a push starts afresh here too.
    static SHARED: RefCell<Option<(u64, Rc<Shared>)>> = const { RefCell::new(None) };
}

/// This worker's [`Shared`] state for a configuration generation.
fn shared_for(generation: u64) -> Rc<Shared> {
    SHARED.with(|slot| {
        let mut slot = slot.borrow_mut();
        match slot.as_ref() {
            Some((current, shared)) if *current == generation => Rc::clone(shared),
            _ => {
                let shared = Rc::new(Shared::new(seed()));
                *slot = Some((generation, Rc::clone(&shared)));
                shared
            }
        }
    })
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| {
            u64::try_from(d.as_nanos() & u128::from(u64::MAX)).unwrap_or(0)
        });
    // Distinct per thread even when two start in the same nanosecond.
    let local = 0u8;
    nanos ^ ((&raw const local) as u64).rotate_left(32)
}

/// Runs a hook body, turning a panic into `fallback` (logged; an unwinding panic must never
/// cross into Envoy).
fn guarded<T>(hook: &str, fallback: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(_) => {
            host::log(
                LogLevel::Error,
                &format!("gateway-wasm: panic in {hook}; contained"),
            );
            fallback
        }
    }
}

/// The ABI handshake: the ABI version this module was written against. Envoy 1.40 logs "Dynamic
/// module ABI version v0.2.0 matched"; on a mismatch Envoy only warns, so the hard check is the
/// link: every callback this module calls is bound when Envoy loads it, and an Envoy without one
/// refuses the module naming the missing symbol (`tests/envoy.rs`).
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    abi::ABI_VERSION.as_ptr().cast()
}

/// Configure time, once per push on the main thread: decode, parse and compile the PluginConfig.
/// Returning null rejects the configuration; Envoy keeps serving with the previous one.
///
/// # Safety
/// Envoy passes its config object and two buffers valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: FilterConfigEnvoyPtr,
    _name: abi::EnvoyBuffer,
    config: abi::EnvoyBuffer,
) -> FilterConfigModulePtr {
    guarded("on_http_filter_config_new", std::ptr::null(), || {
        let bytes: &[u8] = if config.ptr.is_null() || config.length == 0 {
            &[]
        } else {
            // SAFETY: Envoy guarantees `config` points to `length` bytes for this call.
            unsafe { std::slice::from_raw_parts(config.ptr, config.length) }
        };
        let mut config_host = ConfigHost {
            config: config_envoy,
            counters: host::define_counters(config_envoy),
        };
        match filter_core::configure::compile(&mut config_host, bytes) {
            Some(compiled) => {
                let shared = Arc::new(FilterConfig {
                    compiled: Arc::new(compiled),
                    counters: config_host.counters,
                    generation: GENERATION.fetch_add(1, Ordering::Relaxed).wrapping_add(1),
                });
                Arc::into_raw(shared).cast()
            }
            None => std::ptr::null(),
        }
    })
}

/// # Safety
/// `config` is a pointer returned by `on_http_filter_config_new`, destroyed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(
    config: FilterConfigModulePtr,
) {
    guarded("on_http_filter_config_destroy", (), || {
        if !config.is_null() {
            // SAFETY: `config` came from `Arc::into_raw` in the config hook and Envoy destroys
            // it exactly once; streams hold their own clones.
            drop(unsafe { Arc::from_raw(config.cast::<FilterConfig>()) });
        }
    });
}

/// A new stream on a worker thread.
///
/// # Safety
/// `config` is a live pointer returned by `on_http_filter_config_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: FilterConfigModulePtr,
    _filter_envoy: FilterEnvoyPtr,
) -> FilterModulePtr {
    guarded("on_http_filter_new", std::ptr::null(), || {
        if config.is_null() {
            return std::ptr::null();
        }
        let config = config.cast::<FilterConfig>();
        // SAFETY: `config` came from `Arc::into_raw` and is alive (Envoy destroys a config only
        // after its streams); incrementing first keeps the count right for the clone below.
        let config = unsafe {
            Arc::increment_strong_count(config);
            Arc::from_raw(config)
        };
        let generation = config.generation;
        let filter = Box::new(StreamBox {
            state: RefCell::new(Filter {
                config,
                stream: Stream::default(),
            }),
            callouts: Cell::new(0),
            held: Cell::new(false),
            generation,
        });
        Box::into_raw(filter).cast_const().cast()
    })
}

/// Borrows the stream state behind a filter pointer.
///
/// # Safety
/// `filter` is a live pointer returned by `on_http_filter_new`, used on its worker thread only.
unsafe fn with_filter<T>(
    filter: FilterModulePtr,
    body: impl FnOnce(&mut Filter, &Cell<usize>) -> T,
) -> Option<T> {
    // SAFETY: the caller's guarantee.
    let stream = unsafe { stream_box(filter) }?;
    let mut state = stream.state.try_borrow_mut().ok()?;
    Some(body(&mut state, &stream.callouts))
}

/// The stream behind a filter pointer.
///
/// # Safety
/// `filter` is null or a live pointer returned by `on_http_filter_new`, used on its worker
/// thread only.
unsafe fn stream_box<'a>(filter: FilterModulePtr) -> Option<&'a StreamBox> {
    if filter.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees a live `Box<StreamBox>` pointer; Envoy calls a stream's
    // hooks one at a time on one thread, so the RefCell is never contended across threads.
    Some(unsafe { &*filter.cast::<StreamBox>() })
}

/// Whether the response must wait for the stream's mirrors; marks it held when so.
///
/// The whole response waits, from its headers on, not only its last frame: Envoy often forwards
/// the body in a frame of its own and ends the stream with an empty one, so a client that has all
/// `content-length` bytes closes its connection while that empty frame is held; Envoy then resets
/// the stream and cancels the mirrors still pending (measured in the percentage-mirror
/// conformance case: 195 mirrors sent, 143 received; Envoy logged "stream reset: reset reason:
/// connection termination" for every stream that ended with a mirror pending).
/// Nothing of the response reaches the client before the mirrors are done.
///
/// # Safety
/// As for [`stream_box`].
unsafe fn hold_for_mirrors(filter: FilterModulePtr) -> bool {
    // SAFETY: the caller's guarantee.
    match unsafe { stream_box(filter) } {
        Some(stream) if stream.held.get() || stream.callouts.get() > 0 => {
            stream.held.set(true);
            true
        }
        _ => false,
    }
}

/// The request headers: evaluate, then forward (upstream header + route re-match) or answer.
///
/// # Safety
/// Envoy passes the stream's pointers, valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter_envoy: FilterEnvoyPtr,
    filter: FilterModulePtr,
    end_of_stream: bool,
) -> u32 {
    let handled = guarded("on_http_filter_request_headers", None, || {
        let evaluate = |state: &mut Filter, callouts: &Cell<usize>| {
            let mut host = StreamHost {
                filter: filter_envoy,
                counters: &state.config.counters,
                callouts,
            };
            let shared = shared_for(state.config.generation);
            let verdict = filter::on_request_headers(
                &mut host,
                Some(&state.config.compiled),
                &shared,
                end_of_stream,
                &mut state.stream,
            );
            if verdict == Verdict::Continue {
                // The filter set the upstream header; the catch-all route's `cluster_header`
                // must be evaluated again to see it.
                // SAFETY: `filter_envoy` is the running hook's.
                unsafe { abi::envoy_dynamic_module_callback_http_clear_route_cache(filter_envoy) };
            }
            verdict
        };
        // SAFETY: Envoy passes the pointer this module returned for the stream.
        unsafe { with_filter(filter, evaluate) }
    });
    match handled {
        Some(Verdict::Continue) => abi::CONTINUE,
        Some(Verdict::Stop) => abi::STOP_ITERATION,
        None => {
            // A panic (or a stream without state): answer 500 rather than forward unrouted.
            let counters: CounterIds = [None; filter_core::host::Metric::ALL.len()];
            let callouts = Cell::new(0);
            let mut host = StreamHost {
                filter: filter_envoy,
                counters: &counters,
                callouts: &callouts,
            };
            let answered = guarded("on_http_filter_request_headers (500)", false, || {
                host.send_local_response(
                    500,
                    &[("content-type", "text/plain; charset=utf-8")],
                    b"gateway-wasm: internal error\n",
                )
                .is_ok()
            });
            if !answered {
                host.reset_stream();
            }
            abi::STOP_ITERATION
        }
    }
}

/// Request body chunks: only read while mirrors wait for the body.
///
/// # Safety
/// Envoy passes the stream's pointers, valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    filter_envoy: FilterEnvoyPtr,
    filter: FilterModulePtr,
    end_of_stream: bool,
) -> u32 {
    guarded("on_http_filter_request_body", (), || {
        // SAFETY: Envoy passes the pointer this module returned for the stream.
        unsafe {
            with_filter(filter, |state, callouts| {
                if !state.stream.awaiting_body() {
                    return;
                }
                let mut host = StreamHost {
                    filter: filter_envoy,
                    counters: &state.config.counters,
                    callouts,
                };
                let size = host
                    .request_body(filter_core::filter::MIRROR_BODY_LIMIT.saturating_add(1))
                    .ok()
                    .flatten()
                    .map_or(0, |b| b.len());
                let shared = shared_for(state.config.generation);
                filter::on_request_body(&mut host, &shared, size, end_of_stream, &mut state.stream);
            });
        }
    });
    abi::CONTINUE
}

/// Response headers: apply the edits kept from the request phase. While a mirror of the stream
/// is in flight the response waits here, headers and all (see [`hold_for_mirrors`]).
///
/// # Safety
/// Envoy passes the stream's pointers, valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    filter_envoy: FilterEnvoyPtr,
    filter: FilterModulePtr,
    _end_of_stream: bool,
) -> u32 {
    guarded("on_http_filter_response_headers", abi::CONTINUE, || {
        // SAFETY: Envoy passes the pointer this module returned for the stream.
        unsafe {
            with_filter(filter, |state, callouts| {
                let mut host = StreamHost {
                    filter: filter_envoy,
                    counters: &state.config.counters,
                    callouts,
                };
                filter::on_response_headers(&mut host, &mut state.stream);
            });
        }
        // SAFETY: as above.
        if unsafe { hold_for_mirrors(filter) } {
            abi::STOP_ITERATION
        } else {
            abi::CONTINUE
        }
    })
}

/// Response body chunks wait while the response is held for the stream's mirrors.
///
/// # Safety
/// Envoy passes the stream's pointers, valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _filter_envoy: FilterEnvoyPtr,
    filter: FilterModulePtr,
    _end_of_stream: bool,
) -> u32 {
    guarded("on_http_filter_response_body", abi::CONTINUE, || {
        // Every chunk waits while held (flow control, not a buffer limit: a large response to a
        // slow mirror is slowed, not failed).
        // SAFETY: Envoy passes the pointer this module returned for the stream.
        if unsafe { hold_for_mirrors(filter) } {
            abi::STOP_ITERATION_AND_WATERMARK
        } else {
            abi::CONTINUE
        }
    })
}

/// A mirror's response (ignored: mirrors are fire-and-forget); the held response goes on once
/// the last one is done.
///
/// # Safety
/// Envoy passes the stream's pointers, valid for the call; the other arguments are not read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    filter_envoy: FilterEnvoyPtr,
    filter: FilterModulePtr,
    _callout_id: u64,
    result: u32,
) {
    guarded("on_http_filter_http_callout_done", (), || {
        // SAFETY: Envoy passes the pointer this module returned for the stream.
        let Some(stream) = (unsafe { stream_box(filter) }) else {
            return;
        };
        if result != abi::CALLOUT_SUCCESS {
            host::log(
                filter_core::host::LogLevel::Warn,
                &format!(
                    "mirror ended without a response (callout result {result}: 1 reset, 2 \
                     response over the buffer limit)"
                ),
            );
        }
        stream.callouts.set(stream.callouts.get().saturating_sub(1));
        // A done mirror frees its slot at once (the proxy-wasm filter cannot tell, and holds it
        // for the mirror timeout).
        SHARED.with(|slot| {
            if let Some((current, shared)) = slot.borrow().as_ref()
                && *current == stream.generation
            {
                shared.release_mirror();
            }
        });
        if stream.callouts.get() == 0 && stream.held.replace(false) {
            // SAFETY: `filter_envoy` is the stream's, valid for this hook.
            unsafe {
                abi::envoy_dynamic_module_callback_http_filter_continue_encoding(filter_envoy)
            };
        }
    });
}

/// # Safety
/// `filter` is a pointer returned by `on_http_filter_new`, destroyed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_destroy(filter: FilterModulePtr) {
    guarded("on_http_filter_destroy", (), || {
        if !filter.is_null() {
            // SAFETY: `filter` came from `Box::into_raw` in `on_http_filter_new`; Envoy destroys
            // it once, after its last hook.
            drop(unsafe { Box::from_raw(filter.cast_mut().cast::<StreamBox>()) });
        }
    });
}

// Hooks Envoy 1.40 requires a module to export but this filter has nothing to do in: they only
// continue. Parameters after the two stream pointers are not read (the C calling convention lets
// a callee ignore trailing arguments).

/// # Safety
/// Called by Envoy; reads nothing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _filter_envoy: FilterEnvoyPtr,
    _filter: FilterModulePtr,
) -> u32 {
    abi::CONTINUE
}

/// Response trailers end the response: they wait for the stream's mirrors too.
///
/// # Safety
/// Envoy passes the stream's pointers, valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _filter_envoy: FilterEnvoyPtr,
    filter: FilterModulePtr,
) -> u32 {
    guarded("on_http_filter_response_trailers", abi::CONTINUE, || {
        // SAFETY: Envoy passes the pointer this module returned for the stream.
        if unsafe { hold_for_mirrors(filter) } {
            abi::STOP_ITERATION
        } else {
            abi::CONTINUE
        }
    })
}

/// # Safety
/// Called by Envoy; reads nothing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    _filter_envoy: FilterEnvoyPtr,
    _filter: FilterModulePtr,
) {
}

/// # Safety
/// Called by Envoy; reads nothing (this module starts no streams).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _filter_envoy: FilterEnvoyPtr,
    _filter: FilterModulePtr,
) {
}

/// # Safety
/// Called by Envoy; reads nothing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _filter_envoy: FilterEnvoyPtr,
    _filter: FilterModulePtr,
) {
}

/// # Safety
/// Called by Envoy; reads nothing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _filter_envoy: FilterEnvoyPtr,
    _filter: FilterModulePtr,
) {
}

/// # Safety
/// Called by Envoy; reads nothing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _filter_envoy: FilterEnvoyPtr,
    _filter: FilterModulePtr,
) {
}

/// # Safety
/// Called by Envoy; reads nothing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _filter_envoy: FilterEnvoyPtr,
    _filter: FilterModulePtr,
) {
}

/// # Safety
/// Called by Envoy; reads nothing (this module schedules nothing).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _filter_envoy: FilterEnvoyPtr,
    _filter: FilterModulePtr,
) {
}

/// # Safety
/// Called by Envoy; reads nothing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _filter_envoy: FilterEnvoyPtr,
    _filter: FilterModulePtr,
) {
}

/// # Safety
/// Called by Envoy; reads nothing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _filter_envoy: FilterEnvoyPtr,
    _filter: FilterModulePtr,
) {
}
