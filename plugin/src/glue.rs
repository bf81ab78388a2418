//! The proxy-wasm glue: root and HTTP contexts that call [`crate::filter`] with a [`Host`] made of
//! `proxy_wasm::hostcalls`. Only built for wasm32 (the host functions are imports of the VM).
//!
//! The SDK's trait convenience methods (`get_http_request_headers`, …) unwrap host results and
//! would abort the VM on a refusal; every call here goes through `hostcalls::*`, which returns a
//! `Result` that the adapter turns into a local 500.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use engine::config::UpstreamSelector;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{
    Action, BufferType, ContextType, LogLevel as WasmLogLevel, MapType, MetricType, Status,
};

use crate::filter::{self, Compiled, Shared, Stream, Verdict};
use crate::host::{Host, HostError, LogLevel, Metric};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(WasmLogLevel::Info);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(Root::new(context_id))
    });
}}

/// The filter's counters in one VM: host metric ids once defined, counts kept until then.
struct Metrics {
    /// Host metric ids, by [`Metric::index`]; `None` until the host is known to implement metrics.
    ids: Option<Vec<Option<u32>>>,
    /// Counts made before the metrics could be defined (added when they are).
    pending: [u64; Metric::ALL.len()],
}

thread_local! {
    static METRICS: RefCell<Metrics> = const {
        RefCell::new(Metrics { ids: None, pending: [0; Metric::ALL.len()] })
    };
}

/// Defines the metrics once per VM and adds the counts made before. Never called before the host
/// is known: ngx_wasm_module before Kong 3.8 traps on `proxy_define_metric`, and a trap cannot
/// be caught (so not in `on_vm_start`, which runs before the configuration says which host this
/// is).
fn define_metrics() {
    METRICS.with(|cell| {
        let mut metrics = cell.borrow_mut();
        if metrics.ids.is_some() {
            return;
        }
        let ids: Vec<Option<u32>> = Metric::ALL
            .iter()
            .map(|m| hostcalls::define_metric(MetricType::Counter, m.name()).ok())
            .collect();
        for (id, pending) in ids.iter().zip(metrics.pending.iter_mut()) {
            if let Some(id) = id
                && *pending > 0
            {
                let _ =
                    hostcalls::increment_metric(*id, i64::try_from(*pending).unwrap_or(i64::MAX));
            }
            *pending = 0;
        }
        metrics.ids = Some(ids);
    });
}

fn status_error(call: &'static str) -> impl Fn(Status) -> HostError {
    move |status| HostError::new(call, format!("{status:?}"))
}

/// [`Host`] over the proxy-wasm ABI.
struct ProxyHost;

impl ProxyHost {
    fn set(map: MapType, name: &str, value: &str) -> Result<(), HostError> {
        hostcalls::set_map_value(map, name, Some(value)).map_err(status_error("set_header"))
    }
    fn add(map: MapType, name: &str, value: &str) -> Result<(), HostError> {
        hostcalls::add_map_value(map, name, value).map_err(status_error("add_header"))
    }
    fn remove(map: MapType, name: &str) -> Result<(), HostError> {
        hostcalls::remove_map_value(map, name).map_err(status_error("remove_header"))
    }
}

impl Host for ProxyHost {
    fn log(&self, level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Debug => WasmLogLevel::Debug,
            LogLevel::Info => WasmLogLevel::Info,
            LogLevel::Warn => WasmLogLevel::Warn,
            LogLevel::Error => WasmLogLevel::Error,
        };
        let _ = hostcalls::log(level, message);
    }

    fn now_nanos(&self) -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    fn request_headers(&self) -> Result<Vec<(String, String)>, HostError> {
        hostcalls::get_map(MapType::HttpRequestHeaders).map_err(status_error("get_request_headers"))
    }

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        Self::set(MapType::HttpRequestHeaders, name, value)
    }

    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        Self::add(MapType::HttpRequestHeaders, name, value)
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        Self::remove(MapType::HttpRequestHeaders, name)
    }

    fn set_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        Self::set(MapType::HttpResponseHeaders, name, value)
    }

    fn add_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        Self::add(MapType::HttpResponseHeaders, name, value)
    }

    fn remove_response_header(&mut self, name: &str) -> Result<(), HostError> {
        Self::remove(MapType::HttpResponseHeaders, name)
    }

    fn send_local_response(
        &mut self,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError> {
        hostcalls::send_http_response(u32::from(status), headers.to_vec(), Some(body))
            .map_err(status_error("send_http_response"))
    }

    fn reset_stream(&mut self) {
        let _ = hostcalls::reset_http_request();
    }

    fn property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        hostcalls::get_property(path.to_vec()).map_err(status_error("get_property"))
    }

    fn set_property(&mut self, path: &[&str], value: &[u8]) -> Result<(), HostError> {
        hostcalls::set_property(path.to_vec(), Some(value)).map_err(status_error("set_property"))
    }

    fn request_body(&self, size: usize) -> Result<Option<Vec<u8>>, HostError> {
        hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size)
            .map_err(status_error("get_request_body"))
    }

    fn increment(&mut self, metric: Metric) {
        let id = METRICS.with(|cell| {
            let mut metrics = cell.borrow_mut();
            match &metrics.ids {
                Some(ids) => ids.get(metric.index()).copied().flatten(),
                None => {
                    if let Some(pending) = metrics.pending.get_mut(metric.index()) {
                        *pending = pending.saturating_add(1);
                    }
                    None
                }
            }
        });
        if let Some(id) = id {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    fn enable_metrics(&mut self) {
        define_metrics();
    }

    fn dispatch_http_call(
        &mut self,
        upstream: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout_ms: u64,
    ) -> Result<u32, HostError> {
        hostcalls::dispatch_http_call(
            upstream,
            headers.to_vec(),
            body,
            Vec::new(),
            Duration::from_millis(timeout_ms),
        )
        .map_err(status_error("dispatch_http_call"))
    }
}

/// One per plugin instance and worker: holds the compiled table of the configuration it accepted.
struct Root {
    compiled: Option<Rc<Compiled>>,
    shared: Rc<Shared>,
}

impl Root {
    fn new(context_id: u32) -> Root {
        let seed = ProxyHost.now_nanos() ^ (u64::from(context_id) << 32);
        Root {
            compiled: None,
            shared: Rc::new(Shared::new(seed)),
        }
    }
}

impl Context for Root {}

impl RootContext for Root {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        true
    }

    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(
            BufferType::PluginConfiguration,
            0,
            plugin_configuration_size,
        ) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(status) => {
                ProxyHost.log(
                    LogLevel::Error,
                    &format!("cannot read the plugin configuration: {status:?}"),
                );
                return false;
            }
        };
        let compiled = filter::configure(&mut ProxyHost, &bytes);
        // Envoy implements metrics (define them now, also in a VM whose first configuration is
        // rejected, so the rejection is counted); in Kong the first request learns the version.
        let envoy = match &compiled {
            Some(compiled) => compiled.selector == UpstreamSelector::EnvoyClusterHeader,
            None => !crate::kong::is_kong_config(&bytes),
        };
        if envoy {
            define_metrics();
        }
        match compiled {
            Some(compiled) => {
                self.compiled = Some(compiled);
                true
            }
            // Returning false makes the host reject this configuration and keep the previous one.
            None => false,
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http {
            compiled: self.compiled.clone(),
            shared: Rc::clone(&self.shared),
            stream: Stream::default(),
        }))
    }
}

/// One per request.
struct Http {
    compiled: Option<Rc<Compiled>>,
    shared: Rc<Shared>,
    stream: Stream,
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        match filter::on_request_headers(
            &mut ProxyHost,
            self.compiled.as_deref(),
            &self.shared,
            end_of_stream,
            &mut self.stream,
        ) {
            Verdict::Continue => Action::Continue,
            Verdict::Stop => Action::Pause,
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.stream.awaiting_body() {
            filter::on_request_body(
                &mut ProxyHost,
                &self.shared,
                body_size,
                end_of_stream,
                &mut self.stream,
            );
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        filter::on_response_headers(&mut ProxyHost, &mut self.stream);
        Action::Continue
    }
}
