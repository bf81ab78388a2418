//! The benchmark's floor: a proxy-wasm HTTP filter that does nothing.
//!
//! Envoy still creates a VM per worker, an HTTP context per request and calls every callback the SDK
//! exports (request and response headers, bodies, trailers, log, done); each returns `Continue`. The
//! difference between Envoy with this filter and Envoy without any filter is the cost of Wasm
//! itself; the difference between this filter and the real one (`plugin/`) is the cost of the
//! routing work the real filter does.
//!
//! Only built for wasm32 (the host functions are imports of the VM); on the host the crate is empty.

#[cfg(target_arch = "wasm32")]
mod glue {
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{ContextType, LogLevel};

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Warn);
        proxy_wasm::set_root_context(|_context_id| -> Box<dyn RootContext> { Box::new(Root) });
    }}

    struct Root;

    impl Context for Root {}

    impl RootContext for Root {
        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }

        fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Pass))
        }
    }

    /// Every callback keeps its default: `Action::Continue`.
    struct Pass;

    impl Context for Pass {}

    impl HttpContext for Pass {}
}
