//! A measuring probe: a pass-through filter that makes chosen host calls a chosen number of times
//! on every request, so that the cost of one call shows up above the noise of a shared machine.
//!
//! The plugin configuration is `op=count` pairs separated by commas, e.g. `sni=50,metric=50`:
//!
//! | op | host call (what the gateway-wasm filter does once per request) |
//! |---|---|
//! | `chain` | `get_property(["xds", "filter_chain_name"])` (the Gateway port) |
//! | `sni` | `get_property(["connection", "requested_server_name"])` |
//! | `headers` | `get_map(HttpRequestHeaders)` (every request header) |
//! | `header` | `get_map_value(HttpRequestHeaders, ":path")` (one header) |
//! | `set` | `set_map_value(HttpRequestHeaders, "x-probe", "1")` |
//! | `metric` | `increment_metric` on a counter |
//!
//! Run by `gateway-bench --variants floor --floor-wasm …/probe_filter.wasm --floor-config …`;
//! the per-call cost is (CPU per request with the ops − without) / count.

/// One op and how many times to run it per request.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Chain,
    Sni,
    Headers,
    Header,
    Set,
    Metric,
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn parse(config: &str) -> Vec<(Op, u32)> {
    config
        .split(',')
        .filter_map(|pair| {
            let (name, count) = pair.trim().split_once('=')?;
            let op = match name.trim() {
                "chain" => Op::Chain,
                "sni" => Op::Sni,
                "headers" => Op::Headers,
                "header" => Op::Header,
                "set" => Op::Set,
                "metric" => Op::Metric,
                _ => return None,
            };
            Some((op, count.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(target_arch = "wasm32")]
mod glue {
    use std::rc::Rc;

    use proxy_wasm::hostcalls;
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};

    use super::{Op, parse};

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Warn);
        proxy_wasm::set_root_context(|_context_id| -> Box<dyn RootContext> {
            Box::new(Root { ops: Rc::new(Vec::new()), metric: None })
        });
    }}

    struct Root {
        ops: Rc<Vec<(Op, u32)>>,
        metric: Option<u32>,
    }

    impl Context for Root {}

    impl RootContext for Root {
        fn on_configure(&mut self, size: usize) -> bool {
            let bytes = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size)
                .ok()
                .flatten()
                .unwrap_or_default();
            self.ops = Rc::new(parse(&String::from_utf8_lossy(&bytes)));
            self.metric = hostcalls::define_metric(MetricType::Counter, "probe.calls").ok();
            true
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }

        fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Probe {
                ops: Rc::clone(&self.ops),
                metric: self.metric,
            }))
        }
    }

    struct Probe {
        ops: Rc<Vec<(Op, u32)>>,
        metric: Option<u32>,
    }

    impl Context for Probe {}

    impl HttpContext for Probe {
        fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
            for &(op, count) in self.ops.iter() {
                for _ in 0..count {
                    let _ = match op {
                        Op::Chain => hostcalls::get_property(vec!["xds", "filter_chain_name"])
                            .map(|v| v.map_or(0, |v| v.len())),
                        Op::Sni => {
                            hostcalls::get_property(vec!["connection", "requested_server_name"])
                                .map(|v| v.map_or(0, |v| v.len()))
                        }
                        Op::Headers => {
                            hostcalls::get_map(MapType::HttpRequestHeaders).map(|m| m.len())
                        }
                        Op::Header => {
                            hostcalls::get_map_value(MapType::HttpRequestHeaders, ":path")
                                .map(|v| v.map_or(0, |v| v.len()))
                        }
                        Op::Set => hostcalls::set_map_value(
                            MapType::HttpRequestHeaders,
                            "x-probe",
                            Some("1"),
                        )
                        .map(|()| 0),
                        Op::Metric => match self.metric {
                            Some(id) => hostcalls::increment_metric(id, 1).map(|()| 0),
                            None => Ok(0),
                        },
                    };
                }
            }
            Action::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ops() {
        assert_eq!(
            parse("sni=50, metric=2,bogus=1,headers=x"),
            [(Op::Sni, 50), (Op::Metric, 2)]
        );
        assert!(parse("{}").is_empty());
    }
}
