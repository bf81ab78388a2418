//! PluginConfig parse, validation and compilation: any bytes, never a panic. A config the engine
//! accepts must survive the trip the shim makes it take (serialize, then parse and compile in the
//! filter) and compile to the same table.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(config) = engine::parse(data) else {
        return;
    };
    let Ok(table) = engine::RouteTable::compile(&config) else {
        return;
    };
    let json = serde_json::to_vec(&config).expect("an accepted config serializes");
    let again = engine::parse(&json).expect("a serialized config parses again");
    let recompiled =
        engine::RouteTable::compile(&again).expect("a config that compiled compiles again");
    assert_eq!(table.stats(), recompiled.stats());
    assert_eq!(table.revision(), recompiled.revision());
});
