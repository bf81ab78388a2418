//! `controller-shim explain`'s request text: the `'METHOD URL'` line and `'name: value'` headers,
//! parsed as the CLI does and evaluated against the quickstart's route table.
//!
//! Input: the request line, then one header per line.

#![no_main]

use std::sync::OnceLock;

use gateway_resolver::request_text::{parse_header, parse_request};
use libfuzzer_sys::fuzz_target;

fn quickstart() -> &'static engine::RouteTable {
    static TABLE: OnceLock<engine::RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        engine::RouteTable::from_json(include_bytes!("../seeds/config_compile/quickstart.json"))
            .expect("the quickstart config compiles")
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let Some(first) = lines.next() else {
        return;
    };
    let Ok(target) = parse_request(first) else {
        return;
    };
    assert!(target.path.starts_with('/'), "{target:?}");
    assert!(target.port > 0 && !target.host.is_empty(), "{target:?}");
    let headers: Vec<(String, String)> = lines.filter_map(|l| parse_header(l).ok()).collect();
    let request = target.to_engine(&headers);
    let _ = quickstart().explain(&request, &mut engine::SplitMix64(1));
});
