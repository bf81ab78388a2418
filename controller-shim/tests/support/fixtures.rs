//! The manifests and PluginConfigs the integration tests share, kept as files under
//! `tests/fixtures/` so each is written once and reads like what a user writes.
//!
//! `fixture!("name.yaml")` embeds a file at compile time (a missing file fails the build);
//! [`fill`] replaces the `${key}` placeholders of the files that need values only known at run
//! time (ports of echo servers, the backend a step switches to).

/// The text of `tests/fixtures/<name>`.
macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/",
            $name
        ))
    };
}
pub(crate) use fixture;

/// Replaces every `${key}` in `template` with its value. A key that does not occur, or a
/// placeholder left without a value, is a mistake in the test and panics.
// Not every test binary that includes this module fills placeholders.
#[allow(dead_code)]
pub fn fill(template: &str, values: &[(&str, &dyn std::fmt::Display)]) -> String {
    let mut text = template.to_owned();
    for (key, value) in values {
        let placeholder = format!("${{{key}}}");
        assert!(
            text.contains(&placeholder),
            "the fixture has no {placeholder}"
        );
        text = text.replace(&placeholder, &value.to_string());
    }
    if let Some(start) = text.find("${") {
        let rest = text.get(start..).unwrap_or_default();
        let end = rest.find('}').map_or(rest.len(), |e| e + 1);
        panic!(
            "the fixture's placeholder {} has no value",
            rest.get(..end).unwrap_or(rest)
        );
    }
    text
}
