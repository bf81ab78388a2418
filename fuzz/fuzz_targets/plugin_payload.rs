//! The filter's configuration payload as `on_configure` receives it (plain PluginConfig JSON, or
//! that JSON gzip-compressed), through the same steps: `payload::decode`, parse, compile.
//!
//! The first byte picks the mode: 0 hands the rest over as the host would, so corrupt and hostile
//! gzip streams reach the inflater; 1 gzips the rest first, so well-formed streams of any content do,
//! and must inflate back to exactly that content.

#![no_main]

use std::io::Write as _;

use libfuzzer_sys::fuzz_target;

fn configure(payload: &[u8]) {
    if let Ok(json) = gateway_wasm::payload::decode(payload)
        && let Ok(config) = engine::parse(&json)
    {
        let _ = engine::RouteTable::compile(&config);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        configure(rest);
        return;
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(rest).expect("writing to a Vec");
    let compressed = encoder.finish().expect("finishing into a Vec");
    let inflated = gateway_wasm::payload::decode(&compressed).expect("a well-formed gzip inflates");
    assert_eq!(inflated.as_ref(), rest);
    configure(&compressed);
});
