//! The manifest loader (a file of YAML documents, `List`s, any kinds) and the resolver behind it:
//! any text, never a panic; whatever resolves is handed to the engine as the runtime would.

#![no_main]

use std::path::Path;

use gateway_resolver::manifests::{Loaded, load_str};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut loaded = Loaded::default();
    if load_str(&text, Path::new("fuzz.yaml"), &mut loaded).is_err() {
        return;
    }
    let resolution =
        gateway_resolver::resolve(&loaded.snapshot, &gateway_resolver::Settings::default());
    for gateway in &resolution.gateways {
        let _ = engine::RouteTable::compile(&gateway.config);
    }
});
