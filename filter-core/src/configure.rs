//! Configure time: from the plugin configuration bytes (PluginConfig JSON, plain or gzip-compressed)
//! to the compiled table every HTTP context of the root context shares. A rejected configuration is
//! logged with the reason and counted, and the host keeps the previous one.

use std::borrow::Cow;
use std::rc::Rc;

use engine::RouteTable;
use engine::config::UpstreamSelector;

use crate::host::{Host, LogLevel, Metric};

/// A compiled configuration, shared by the root context and its HTTP contexts.
#[derive(Debug)]
pub struct Compiled {
    pub table: RouteTable,
    pub selector: UpstreamSelector,
    /// The distinct Gateway listener ports, sorted.
    pub ports: Vec<u16>,
    /// Kong only: Kong's own proxy listener and its listen-port map (`upstreamSelector: kongRoute`).
    pub kong: Option<engine::config::KongDataPlane>,
    /// Whether any listener terminates TLS: only then is the TLS server name worth a host call
    /// (for HTTP listeners TLS, if any, is not the Gateway's and the name must not steer routing).
    pub has_https: bool,
}

/// Parses, validates and compiles a configuration. Logs the outcome and counts it; `None` means
/// rejected (the host then keeps the previous configuration).
pub fn configure(host: &mut impl Host, bytes: &[u8]) -> Option<Rc<Compiled>> {
    compile(host, bytes).map(Rc::new)
}

/// [`configure`] without the `Rc`: for a host that shares the table across threads (the Envoy
/// dynamic module wraps it in an `Arc`).
pub fn compile(host: &mut impl Host, bytes: &[u8]) -> Option<Compiled> {
    let mut clock = PhaseClock::start(host);
    let decoded = crate::payload::decode(bytes);
    let inflate_micros = clock.lap(host);
    // "6569960 bytes" or "6569960 bytes (gzip: 357300, inflated in 41000 µs)": what the table
    // came from, and what inflating it cost (part of the "compiled in" time).
    let size = match &decoded {
        Ok(Cow::Owned(json)) => format!(
            "{} bytes (gzip: {}, inflated in {inflate_micros} µs)",
            json.len(),
            bytes.len()
        ),
        _ => format!("{} bytes", bytes.len()),
    };
    let result = match decoded {
        _ if bytes.is_empty() => Err("the plugin configuration is empty".to_owned()),
        Err(error) => Err(error),
        Ok(json) => compile_json(host, json, &mut clock),
    };
    let micros = clock.total(host);
    let phases = clock.phases;
    match result {
        Ok(compiled) => {
            let (listeners, routes, rules, matches) = compiled.table.stats();
            let gateway = compiled.table.gateway();
            let revision = compiled.table.revision();
            host.log(
                LogLevel::Info,
                &format!(
                    "accepted config revision {:?} for gateway {}/{}: {listeners} listeners, \
                     {routes} routes, {rules} rules, {matches} matches, {} upstreams, {size}, compiled in {micros} µs \
                     (parse {} µs, validate+compile {} µs, free parsed {} µs)",
                    revision,
                    gateway.namespace,
                    gateway.name,
                    compiled.table.upstreams().count(),
                    phases.parse,
                    phases.compile,
                    phases.free,
                ),
            );
            host.increment(Metric::ConfigAccepted);
            Some(compiled)
        }
        Err(error) => {
            host.log(
                LogLevel::Error,
                &format!("rejected config ({size}): {error}"),
            );
            host.increment(Metric::ConfigRejected);
            None
        }
    }
}

/// Parses and compiles the (inflated) JSON, timing each phase into `clock`.
///
/// The inflated document is freed once parsed, before compiling: the parsed config owns its strings,
/// and compiling then allocates in the pages the document occupied instead of fresh ones, which a
/// new Wasm VM would first have to fault in (5.7 MB at 10,000 routes; `docs/benchmarks.md`).
fn compile_json(
    host: &mut impl Host,
    json: Cow<'_, [u8]>,
    clock: &mut PhaseClock,
) -> Result<Compiled, String> {
    let config = engine::parse(&json).map_err(|e| e.to_string())?;
    drop(json);
    clock.phases.parse = clock.lap(host);
    let table = RouteTable::compile(&config).map_err(|e| e.to_string())?;
    // Inserted in order rather than sorted: a handful of ports, and a sort would be another
    // copy of the standard library's sort in the module (3.5 KB).
    let mut ports: Vec<u16> = Vec::new();
    for port in config.listeners.iter().map(|l| l.port) {
        if let Err(at) = ports.binary_search(&port) {
            ports.insert(at, port);
        }
    }
    let compiled = Compiled {
        table,
        selector: config.upstream_selector,
        kong: config.kong.clone(),
        ports,
        has_https: config
            .listeners
            .iter()
            .any(|l| l.protocol == engine::config::Protocol::Https),
    };
    clock.phases.compile = clock.lap(host);
    drop(config);
    clock.phases.free = clock.lap(host);
    Ok(compiled)
}

/// Microseconds per configure phase, for the `accepted config` log line: where a slow push spends
/// its time in this VM (`docs/benchmarks.md`, *on_configure*).
#[derive(Debug, Default, Clone, Copy)]
struct Phases {
    parse: u64,
    compile: u64,
    free: u64,
}

/// The host's clock, read between phases.
struct PhaseClock {
    started: u64,
    last: u64,
    phases: Phases,
}

impl PhaseClock {
    fn start(host: &mut impl Host) -> PhaseClock {
        let now = host.now_nanos();
        PhaseClock {
            started: now,
            last: now,
            phases: Phases::default(),
        }
    }

    /// Microseconds since the previous lap (or the start).
    fn lap(&mut self, host: &mut impl Host) -> u64 {
        let now = host.now_nanos();
        let micros = now.saturating_sub(self.last) / 1_000;
        self.last = now;
        micros
    }

    /// Microseconds since the start.
    fn total(&self, host: &mut impl Host) -> u64 {
        host.now_nanos().saturating_sub(self.started) / 1_000
    }
}
