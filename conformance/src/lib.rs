//! Gateway API conformance vectors for this project.
//!
//! Consumes the neutral vector files in `../shared/conformance/` and produces what the test runners
//! need: [`vectors`] (the file model and [`vectors::load`]), [`snapshot`] (a case → the resolver's
//! input), and [`status`] (checks a `statusCases` entry against the resolver's output).

pub mod snapshot;
pub mod status;
pub mod vectors;

// Request cases: shared checks, the native target and the pass/fail bookkeeping.
pub mod distribution;
pub mod envoy;
pub mod exchange;
pub mod native;
pub mod outcome;
