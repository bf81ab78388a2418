//! Evaluating arbitrary requests against compiled route tables (the committed seed configs: the
//! quickstart, the rendered golden configs, the Envoy example and the security suite's table).
//! `evaluate` must never panic, and `explain` (the traced path) must reach the same decision.
//!
//! Input, as text lines: `<table> <port> [<sni>]`, the method, the authority, the request target,
//! then `name: value` headers.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

const CONFIGS: [&[u8]; 5] = [
    include_bytes!("../seeds/config_compile/quickstart.json"),
    include_bytes!("../seeds/config_compile/golden-http-two-ports.json"),
    include_bytes!("../seeds/config_compile/golden-https-sni.json"),
    include_bytes!("../seeds/config_compile/example-envoy.json"),
    include_bytes!("../seeds/config_compile/security.json"),
];

fn tables() -> &'static [engine::RouteTable] {
    static TABLES: OnceLock<Vec<engine::RouteTable>> = OnceLock::new();
    TABLES.get_or_init(|| {
        CONFIGS
            .iter()
            .map(|json| engine::RouteTable::from_json(json).expect("a seed config compiles"))
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let mut head = lines.next().unwrap_or_default().split(' ');
    let table_index = head
        .next()
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(0);
    let port = head
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(80);
    let sni = head.next();
    let method = lines.next().unwrap_or("GET");
    let authority = lines.next().unwrap_or_default();
    let path = lines.next().unwrap_or("/");
    let headers: Vec<(&str, &str)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim(), v.trim()))
        .collect();
    let tables = tables();
    let table = &tables[table_index % tables.len()];
    let request = engine::Request {
        port,
        sni,
        method,
        authority,
        path,
        headers: &headers,
    };
    let seed = data.len() as u64;
    let decision = table.evaluate(&request, &mut engine::SplitMix64(seed));
    let (explained, _trace) = table.explain(&request, &mut engine::SplitMix64(seed));
    assert_eq!(decision, explained, "evaluate and explain disagree");
});
