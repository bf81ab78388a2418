//! Scenario tests of the resolver (filled in below).
