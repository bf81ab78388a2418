//! Where config-push time goes for a 10,000-route table: parse, validate, compile.
//! `cargo run --release -p engine --example compile_profile` (wall clock), or under
//! `valgrind --tool=callgrind` for instruction counts that do not depend on machine load.

#[path = "../benches/tables.rs"]
#[allow(dead_code)] // the request mix is for the benchmark, not this profile
mod tables;

fn main() -> Result<(), engine::ConfigError> {
    let json = tables::config(10_000).to_string();
    println!("json bytes {}", json.len());
    let t = std::time::Instant::now();
    let config = engine::parse(json.as_bytes())?;
    let parse = t.elapsed();
    let t = std::time::Instant::now();
    engine::validate(&config)?;
    let validate = t.elapsed();
    let t = std::time::Instant::now();
    let table = engine::RouteTable::compile(&config)?;
    let validate_and_compile = t.elapsed();
    println!(
        "parse {parse:?}, validate {validate:?}, validate+compile {validate_and_compile:?}, {:?}",
        table.stats()
    );
    Ok(())
}
