//! [`Host`] over Envoy's dynamic-module callbacks: [`StreamHost`] for one HTTP stream (a filter
//! hook), [`ConfigHost`] for configure time (the config hook, on the main thread).
//!
//! What differs from the proxy-wasm glue, and why:
//! - properties: the ABI has no property map. `xds.filter_chain_name` is read from the route's
//!   metadata (the shim writes the filter chain's name there, namespace `gateway-wasm`, key
//!   `filter_chain_name`); `destination.port`, `connection.requested_server_name`,
//!   `request.method` and `request.path` are ABI attributes;
//! - header setters: Envoy's `set_header` with an empty value removes the header and `add_header`
//!   refuses an empty value, so a set/add of an empty value becomes a remove/no-op here (a header
//!   with an empty value is not representable through this ABI);
//! - mirrors: `http_callout` is per stream and Envoy cancels a callout still pending when the
//!   stream ends (a mirror not yet connected would be lost: about half of them in the conformance
//!   suite's percentage-mirror case). So the stream counts its callouts in flight and the module
//!   holds the end of the response until they are done (at most [`MIRROR_TIMEOUT_MS`]): a
//!   mirror slower than its primary delays the client's last byte.
//!
//! [`MIRROR_TIMEOUT_MS`]: filter_core::filter::MIRROR_TIMEOUT_MS

use std::cell::Cell;

use filter_core::host::{Host, HostError, LogLevel, Metric};

use crate::abi::{
    self, EnvoyBuffer, EnvoyHeader, FilterConfigEnvoyPtr, FilterEnvoyPtr, ModuleBuffer,
    ModuleHeader,
};

/// The namespace of the route metadata the shim renders for the dynamic module.
pub const METADATA_NAMESPACE: &str = "gateway-wasm";
/// The key of the filter chain's name in that namespace.
pub const FILTER_CHAIN_NAME_KEY: &str = "filter_chain_name";

/// Logs through Envoy's `dynamic_modules` logger.
pub fn log(level: LogLevel, message: &str) {
    let level = match level {
        LogLevel::Debug => abi::LOG_DEBUG,
        LogLevel::Info => abi::LOG_INFO,
        LogLevel::Warn => abi::LOG_WARN,
        LogLevel::Error => abi::LOG_ERROR,
    };
    // SAFETY: the message buffer points into `message`, alive for the call; Envoy copies it.
    unsafe { abi::envoy_dynamic_module_callback_log(level, ModuleBuffer::of(message.as_bytes())) }
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Copies bytes Envoy owns into an owned string (lossy: header values are bytes).
///
/// # Safety
/// `ptr` must point to `length` readable bytes (or be null with any length, read as empty).
unsafe fn envoy_text(ptr: *const u8, length: usize) -> String {
    if ptr.is_null() || length == 0 {
        return String::new();
    }
    // SAFETY: the caller guarantees `ptr` points to `length` readable bytes.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, length) };
    String::from_utf8_lossy(bytes).into_owned()
}

/// Counter ids Envoy assigned at configure time, by [`Metric::index`] (`None`: not defined).
pub type CounterIds = [Option<usize>; Metric::ALL.len()];

/// Defines the filter's counters (only possible in the config hook: Envoy freezes stat creation
/// after it). Envoy shows them as `<metrics namespace>.<name>`.
pub fn define_counters(config: FilterConfigEnvoyPtr) -> CounterIds {
    let mut ids: CounterIds = [None; Metric::ALL.len()];
    for (slot, metric) in ids.iter_mut().zip(Metric::ALL) {
        let mut id = 0usize;
        // SAFETY: `config` is the pointer Envoy passed to the running config hook; the name
        // buffer lives for the call; no labels (null, 0); `id` is a valid out pointer.
        let result = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_config_define_counter(
                config,
                ModuleBuffer::of(metric.name().as_bytes()),
                std::ptr::null(),
                0,
                &mut id,
            )
        };
        if result == abi::METRICS_SUCCESS {
            *slot = Some(id);
        }
    }
    ids
}

/// The host at configure time: logs and counts against the configuration being created.
pub struct ConfigHost {
    pub config: FilterConfigEnvoyPtr,
    pub counters: CounterIds,
}

impl Host for ConfigHost {
    fn log(&self, level: LogLevel, message: &str) {
        log(level, message);
    }

    fn now_nanos(&self) -> u64 {
        now_nanos()
    }

    fn request_headers(&self) -> Result<Vec<(String, String)>, HostError> {
        Err(HostError::new(
            "request_headers",
            "no stream at configure time",
        ))
    }
    fn set_request_header(&mut self, _: &str, _: &str) -> Result<(), HostError> {
        Err(HostError::new("set_header", "no stream at configure time"))
    }
    fn add_request_header(&mut self, _: &str, _: &str) -> Result<(), HostError> {
        Err(HostError::new("add_header", "no stream at configure time"))
    }
    fn remove_request_header(&mut self, _: &str) -> Result<(), HostError> {
        Err(HostError::new(
            "remove_header",
            "no stream at configure time",
        ))
    }
    fn set_response_header(&mut self, _: &str, _: &str) -> Result<(), HostError> {
        Err(HostError::new("set_header", "no stream at configure time"))
    }
    fn add_response_header(&mut self, _: &str, _: &str) -> Result<(), HostError> {
        Err(HostError::new("add_header", "no stream at configure time"))
    }
    fn remove_response_header(&mut self, _: &str) -> Result<(), HostError> {
        Err(HostError::new(
            "remove_header",
            "no stream at configure time",
        ))
    }
    fn send_local_response(
        &mut self,
        _: u16,
        _: &[(&str, &str)],
        _: &[u8],
    ) -> Result<(), HostError> {
        Err(HostError::new(
            "send_response",
            "no stream at configure time",
        ))
    }
    fn reset_stream(&mut self) {}
    fn property(&self, _: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        Ok(None)
    }
    fn set_property(&mut self, _: &[&str], _: &[u8]) -> Result<(), HostError> {
        Err(HostError::new(
            "set_property",
            "no stream at configure time",
        ))
    }
    fn request_body(&self, _: usize) -> Result<Option<Vec<u8>>, HostError> {
        Ok(None)
    }

    fn increment(&mut self, metric: Metric) {
        if let Some(Some(id)) = self.counters.get(metric.index()) {
            // SAFETY: `config` is the pointer of the running config hook; no labels.
            unsafe {
                abi::envoy_dynamic_module_callback_http_filter_config_increment_counter(
                    self.config,
                    *id,
                    std::ptr::null(),
                    0,
                    1,
                );
            }
        }
    }

    fn dispatch_http_call(
        &mut self,
        _: &str,
        _: &[(&str, &str)],
        _: Option<&[u8]>,
        _: u64,
    ) -> Result<u32, HostError> {
        Err(HostError::new(
            "http_callout",
            "no stream at configure time",
        ))
    }
}

/// The host inside one filter hook of one HTTP stream.
pub struct StreamHost<'a> {
    pub filter: FilterEnvoyPtr,
    pub counters: &'a CounterIds,
    /// The stream's HTTP callouts in flight (mirrors), counted up here and down when Envoy
    /// reports one done.
    pub callouts: &'a Cell<usize>,
}

/// The module-owned header array for a call; it points into `headers`, which must outlive it.
fn header_pairs(headers: &[(&str, &str)]) -> Vec<ModuleHeader> {
    headers
        .iter()
        .map(|(name, value)| ModuleHeader {
            key_ptr: name.as_ptr(),
            key_length: name.len(),
            value_ptr: value.as_ptr(),
            value_length: value.len(),
        })
        .collect()
}

impl StreamHost<'_> {
    fn set(&self, header_type: u32, name: &str, value: &str) -> Result<(), HostError> {
        // SAFETY: `filter` is the pointer of the running hook; both buffers live for the call.
        // An empty value makes Envoy remove the header (see the module docs).
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_set_header(
                self.filter,
                header_type,
                ModuleBuffer::of(name.as_bytes()),
                if value.is_empty() {
                    ModuleBuffer::EMPTY
                } else {
                    ModuleBuffer::of(value.as_bytes())
                },
            )
        };
        if ok {
            Ok(())
        } else {
            Err(HostError::new("set_header", format!("refused for {name}")))
        }
    }

    fn add(&self, header_type: u32, name: &str, value: &str) -> Result<(), HostError> {
        if value.is_empty() {
            return Ok(());
        }
        // SAFETY: as in `set`.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_add_header(
                self.filter,
                header_type,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value.as_bytes()),
            )
        };
        if ok {
            Ok(())
        } else {
            Err(HostError::new("add_header", format!("refused for {name}")))
        }
    }

    fn attribute_string(&self, attribute: u32) -> Option<Vec<u8>> {
        let mut result = EnvoyBuffer::EMPTY;
        // SAFETY: `filter` is the running hook's; `result` is a valid out pointer.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_get_attribute_string(
                self.filter,
                attribute,
                &mut result,
            )
        };
        // SAFETY: on success Envoy points `result` at `length` bytes it owns for this hook.
        ok.then(|| unsafe { envoy_text(result.ptr, result.length) }.into_bytes())
    }

    fn route_metadata(&self, key: &str) -> Option<Vec<u8>> {
        let mut result = EnvoyBuffer::EMPTY;
        // SAFETY: `filter` is the running hook's; the buffers live for the call; `result` is a
        // valid out pointer.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_get_metadata_string(
                self.filter,
                abi::METADATA_ROUTE,
                ModuleBuffer::of(METADATA_NAMESPACE.as_bytes()),
                ModuleBuffer::of(key.as_bytes()),
                &mut result,
            )
        };
        // SAFETY: on success Envoy points `result` at bytes of the route's metadata.
        ok.then(|| unsafe { envoy_text(result.ptr, result.length) }.into_bytes())
    }
}

impl Host for StreamHost<'_> {
    fn log(&self, level: LogLevel, message: &str) {
        log(level, message);
    }

    fn now_nanos(&self) -> u64 {
        now_nanos()
    }

    fn request_headers(&self) -> Result<Vec<(String, String)>, HostError> {
        // SAFETY: `filter` is the running hook's.
        let count = unsafe {
            abi::envoy_dynamic_module_callback_http_get_headers_size(
                self.filter,
                abi::REQUEST_HEADER,
            )
        };
        let mut raw = vec![EnvoyHeader::EMPTY; count];
        // SAFETY: `raw` has room for `count` headers, the number Envoy just reported for this
        // map; nothing changes the map between the two calls (same thread, same hook).
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_get_headers(
                self.filter,
                abi::REQUEST_HEADER,
                raw.as_mut_ptr(),
            )
        };
        if !ok {
            return Err(HostError::new("get_headers", "no request headers"));
        }
        Ok(raw
            .iter()
            .map(|h| {
                // SAFETY: Envoy filled each entry with pointers into its header map, valid
                // until a setter is called; they are copied before any setter runs.
                unsafe {
                    (
                        envoy_text(h.key_ptr, h.key_length),
                        envoy_text(h.value_ptr, h.value_length),
                    )
                }
            })
            .collect())
    }

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.set(abi::REQUEST_HEADER, name, value)
    }
    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.add(abi::REQUEST_HEADER, name, value)
    }
    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        self.set(abi::REQUEST_HEADER, name, "")
    }
    fn set_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.set(abi::RESPONSE_HEADER, name, value)
    }
    fn add_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.add(abi::RESPONSE_HEADER, name, value)
    }
    fn remove_response_header(&mut self, name: &str) -> Result<(), HostError> {
        self.set(abi::RESPONSE_HEADER, name, "")
    }

    fn send_local_response(
        &mut self,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError> {
        let pairs = header_pairs(headers);
        // SAFETY: `pairs` points into `headers`, and `body` and the details live for the call;
        // Envoy copies all of them.
        unsafe {
            abi::envoy_dynamic_module_callback_http_send_response(
                self.filter,
                u32::from(status),
                pairs.as_ptr(),
                pairs.len(),
                ModuleBuffer::of(body),
                ModuleBuffer::of(b"gateway_wasm"),
            );
        }
        Ok(())
    }

    fn reset_stream(&mut self) {
        // SAFETY: `filter` is the running hook's; the details buffer is static.
        unsafe {
            abi::envoy_dynamic_module_callback_http_filter_reset_stream(
                self.filter,
                abi::RESET_LOCAL,
                ModuleBuffer::of(b"gateway_wasm_reset"),
            );
        }
    }

    fn property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        Ok(match path {
            ["xds", "filter_chain_name"] => self.route_metadata(FILTER_CHAIN_NAME_KEY),
            ["destination", "port"] => {
                let mut port = 0u64;
                // SAFETY: `filter` is the running hook's; `port` is a valid out pointer.
                let ok = unsafe {
                    abi::envoy_dynamic_module_callback_http_filter_get_attribute_int(
                        self.filter,
                        abi::ATTRIBUTE_DESTINATION_PORT,
                        &mut port,
                    )
                };
                // Encoded as proxy-wasm does (8 little-endian bytes), which `decode_port` reads.
                ok.then(|| port.to_le_bytes().to_vec())
            }
            ["connection", "requested_server_name"] => {
                self.attribute_string(abi::ATTRIBUTE_CONNECTION_REQUESTED_SERVER_NAME)
            }
            ["request", "method"] => self.attribute_string(abi::ATTRIBUTE_REQUEST_METHOD),
            ["request", "path"] => self.attribute_string(abi::ATTRIBUTE_REQUEST_PATH),
            _ => None,
        })
    }

    fn set_property(&mut self, path: &[&str], _: &[u8]) -> Result<(), HostError> {
        Err(HostError::new(
            "set_property",
            format!("the dynamic-module ABI has no property {}", path.join(".")),
        ))
    }

    fn request_body(&self, size: usize) -> Result<Option<Vec<u8>>, HostError> {
        // SAFETY: `filter` is the running hook's.
        let count = unsafe {
            abi::envoy_dynamic_module_callback_http_get_body_chunks_size(
                self.filter,
                abi::RECEIVED_REQUEST_BODY,
            )
        };
        if count == 0 {
            return Ok(None);
        }
        let mut chunks = vec![EnvoyBuffer::EMPTY; count];
        // SAFETY: `chunks` has room for the `count` slices Envoy just reported.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_get_body_chunks(
                self.filter,
                abi::RECEIVED_REQUEST_BODY,
                chunks.as_mut_ptr(),
            )
        };
        if !ok {
            return Err(HostError::new("get_body_chunks", "no request body"));
        }
        let mut body = Vec::with_capacity(size);
        for chunk in &chunks {
            if chunk.ptr.is_null() || chunk.length == 0 {
                continue;
            }
            // SAFETY: Envoy filled each slice with a pointer to `length` bytes of the body
            // buffer, valid during this hook.
            let bytes = unsafe { std::slice::from_raw_parts(chunk.ptr, chunk.length) };
            let room = size.saturating_sub(body.len());
            body.extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
        }
        Ok(Some(body))
    }

    fn increment(&mut self, metric: Metric) {
        if let Some(Some(id)) = self.counters.get(metric.index()) {
            // SAFETY: `filter` is the running hook's; no labels.
            unsafe {
                abi::envoy_dynamic_module_callback_http_filter_increment_counter(
                    self.filter,
                    *id,
                    std::ptr::null(),
                    0,
                    1,
                );
            }
        }
    }

    fn dispatch_http_call(
        &mut self,
        upstream: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout_ms: u64,
    ) -> Result<u32, HostError> {
        let pairs = header_pairs(headers);
        let mut id = 0u64;
        // Counted before the call: Envoy may report a failed callout done from inside it.
        self.callouts.set(self.callouts.get().saturating_add(1));
        // SAFETY: `filter` is the running hook's; `pairs` points into `headers`, which with the
        // cluster name and body lives for the call (Envoy copies them); `id` is a valid out
        // pointer.
        let result = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_http_callout(
                self.filter,
                &mut id,
                ModuleBuffer::of(upstream.as_bytes()),
                pairs.as_ptr(),
                pairs.len(),
                body.map_or(ModuleBuffer::EMPTY, ModuleBuffer::of),
                timeout_ms,
            )
        };
        if result == abi::CALLOUT_SUCCESS {
            Ok(u32::try_from(id).unwrap_or(u32::MAX))
        } else {
            self.callouts.set(self.callouts.get().saturating_sub(1));
            Err(HostError::new(
                "http_callout",
                format!("init result {result}"),
            ))
        }
    }
}
