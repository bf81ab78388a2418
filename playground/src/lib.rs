//! The route playground's module: the resolver and the engine, compiled for the browser.
//!
//! Consumes the editor's text (multi-document YAML, optionally split into files by
//! `# file: NAME` lines, see [`bundle`]), a request line in `controller-shim explain`'s form and
//! headers; produces JSON text: [`resolve`] (every Gateway's PluginConfig, the status every object
//! would get, manifest errors, the topology) and [`explain`] (exactly what
//! `controller-shim explain --json` prints, built by the same code:
//! [`gateway_resolver::explain`]).
//!
//! `cargo xtask playground` builds this crate for `wasm32-unknown-unknown`, runs wasm-bindgen
//! and wasm-opt, and puts the module next to the page (`playground/web/`), whose `gateway-wasm.js`
//! wraps these functions as `window.gatewayWasm` (documented in `docs/playground.md`). The
//! functions below return JSON text rather than JavaScript objects: no serde-wasm-bindgen in the
//! module, and the text of `explain` is byte for byte the CLI's.
//!
//! The module reads no clock (there is none the Rust standard library can read in a browser):
//! `resolve` takes the time conditions are stamped with from JavaScript.

pub mod bundle;
pub mod topology;
pub mod view;

use serde::Deserialize;
use wasm_bindgen::prelude::*;

use gateway_resolver::explain;
use gateway_resolver::request_text::{RequestText, grpc_call, parse_request};
use gateway_resolver::resolution::ObjectKey;
use gateway_resolver::{Settings, resolve as resolve_snapshot};

/// What `explain`'s optional fourth argument may carry.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExplainOptions {
    /// The Gateway `namespace/name` (`--gateway`), when the manifests hold several of ours.
    #[serde(default)]
    pub gateway: Option<String>,
    /// `--controller-name`.
    #[serde(default)]
    pub controller_name: Option<String>,
    /// `--grpc SERVICE/METHOD`: the request is this gRPC call to the URL's host and port.
    #[serde(default)]
    pub grpc: Option<String>,
}

/// What `explainConfig`'s optional fourth argument may carry: the PluginConfig already names its
/// Gateway and was resolved for one controller, so only the request's own option remains.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigOptions {
    /// As [`ExplainOptions::grpc`].
    #[serde(default)]
    pub grpc: Option<String>,
}

/// `options` JSON text (empty: the defaults), with the CLI's unknown-flag strictness.
fn parse_options<T: Default + serde::de::DeserializeOwned>(json: &str) -> Result<T, String> {
    if json.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(json).map_err(|e| format!("options: {e}"))
}

/// The request and headers explain evaluates, parsed as the CLI parses `--request`, `-H` and
/// `--grpc`, in that order (so the first bad one is the error reported, as there).
fn request_of(
    request_line: &str,
    headers_json: &str,
    grpc: Option<&str>,
) -> Result<(RequestText, Vec<(String, String)>), String> {
    let mut request = parse_request(request_line).map_err(|e| e.to_string())?;
    let mut headers = parse_headers(headers_json)?;
    if let Some(rpc) = grpc {
        grpc_call(rpc, &mut request, &mut headers).map_err(|e| e.to_string())?;
    }
    Ok((request, headers))
}

/// Headers as JavaScript gives them: an object (`{"x-a": "1", "x-b": ["2", "3"]}`, in key order)
/// or a list of `[name, value]` pairs. Names are lower-cased and both sides trimmed, as the CLI's
/// `-H 'name: value'`.
pub fn parse_headers(json: &str) -> Result<Vec<(String, String)>, String> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let Headers(headers) = serde_json::from_str(json).map_err(|e| format!("headers: {e}"))?;
    Ok(headers)
}

/// Headers in the order given (serde_json's own map would sort the names).
struct Headers(Vec<(String, String)>);

/// One header value: a string, or a number or boolean written without quotes.
#[derive(Deserialize)]
#[serde(untagged)]
enum HeaderValue {
    Text(String),
    Number(serde_json::Number),
    Flag(bool),
    Many(Vec<HeaderValue>),
}

impl HeaderValue {
    fn push(self, name: &str, out: &mut Vec<(String, String)>) -> Result<(), String> {
        let text = match self {
            HeaderValue::Text(text) => text,
            HeaderValue::Number(n) => n.to_string(),
            HeaderValue::Flag(b) => b.to_string(),
            HeaderValue::Many(values) => {
                for value in values {
                    if matches!(value, HeaderValue::Many(_)) {
                        return Err(format!("header {name:?}: a value list inside a list"));
                    }
                    value.push(name, out)?;
                }
                return Ok(());
            }
        };
        out.push(explain::header(name, &text));
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Headers;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of header values or a list of [name, value] pairs")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Headers, E> {
                Ok(Headers(Vec::new()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Headers, A::Error> {
                let mut out = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, HeaderValue>()? {
                    value
                        .push(&name, &mut out)
                        .map_err(serde::de::Error::custom)?;
                }
                Ok(Headers(out))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Headers, A::Error> {
                let mut out = Vec::new();
                while let Some((name, value)) = seq.next_element::<(String, HeaderValue)>()? {
                    value
                        .push(&name, &mut out)
                        .map_err(serde::de::Error::custom)?;
                }
                Ok(Headers(out))
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

/// `resolve(text, nowMs)`: the JSON of [`view::Resolved`].
pub fn resolve_text(text: &str, now_ms: f64) -> String {
    let resolved = view::resolved(text, &view::settings_at(now_ms));
    serde_json::to_string(&resolved).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// `explain(text, requestLine, headers, options)`: the text `controller-shim explain --json`
/// prints for the same manifests and request (without the final newline), or the error it would
/// report.
pub fn explain_text(
    text: &str,
    request_line: &str,
    headers_json: &str,
    options_json: &str,
) -> Result<String, String> {
    let options: ExplainOptions = parse_options(options_json)?;
    let (request, headers) = request_of(request_line, headers_json, options.grpc.as_deref())?;
    // The CLI prints `loading DIR: DIR/FILE document N: ...`; the editor has no directory, so
    // the message is the part from the file on (`FILE document N: ...`), the end of the CLI's.
    let loaded = bundle::load(text).map_err(|e| e.to_string())?;
    // The CLI's settings: conditions are not part of the answer, so no clock is needed.
    let mut settings = Settings::default();
    if let Some(name) = options.controller_name {
        settings.controller_name = name;
    }
    let resolution = resolve_snapshot(&loaded.snapshot, &settings);
    explain::explain(&resolution, options.gateway.as_deref(), &request, &headers)
        .map(|e| e.to_json())
        .map_err(|e| e.to_string())
}

/// `explainConfig(config, requestLine, headers, options)`: the same answer, against a
/// PluginConfig (the live page asks what the proxy runs now, not what the manifests would give).
pub fn explain_config_text(
    config_json: &str,
    request_line: &str,
    headers_json: &str,
    options_json: &str,
) -> Result<String, String> {
    let config = engine::parse(config_json.as_bytes())
        .map_err(|e| format!("the PluginConfig is not valid: {e}"))?;
    let options: ConfigOptions = parse_options(options_json)?;
    let (request, headers) = request_of(request_line, headers_json, options.grpc.as_deref())?;
    let gateway = ObjectKey {
        namespace: config.gateway.namespace.clone(),
        name: config.gateway.name.clone(),
    };
    explain::explain_config(&gateway, &config, &request, &headers)
        .map(|e| e.to_json())
        .map_err(|e| e.to_string())
}

// The exports. Thin: the functions above hold the logic and are tested natively.

/// JSON text of [`view::Resolved`]. `now_ms`: `Date.now()`.
#[wasm_bindgen(js_name = resolve)]
pub fn resolve(text: &str, now_ms: f64) -> String {
    resolve_text(text, now_ms)
}

/// The `controller-shim explain --json` text; throws the CLI's error message.
#[wasm_bindgen(js_name = explain)]
pub fn explain(
    text: &str,
    request_line: &str,
    headers_json: &str,
    options_json: &str,
) -> Result<String, JsError> {
    explain_text(text, request_line, headers_json, options_json).map_err(|e| JsError::new(&e))
}

/// The same against one PluginConfig (JSON text).
#[wasm_bindgen(js_name = explainConfig)]
pub fn explain_config(
    config_json: &str,
    request_line: &str,
    headers_json: &str,
    options_json: &str,
) -> Result<String, JsError> {
    explain_config_text(config_json, request_line, headers_json, options_json)
        .map_err(|e| JsError::new(&e))
}

/// The crate version the module was built from.
#[wasm_bindgen(js_name = version)]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn headers_come_as_objects_or_pairs_like_the_cli_reads_them() {
        let h = parse_headers(r#"{"X-A": " 1 ", "x-b": ["2", "3"], "n": 4}"#).unwrap();
        let h: Vec<(&str, &str)> = h.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(h, [("x-a", "1"), ("x-b", "2"), ("x-b", "3"), ("n", "4")]);
        let h = parse_headers(r#"[["Env", "canary"]]"#).unwrap();
        assert_eq!(h, [("env".to_owned(), "canary".to_owned())]);
        assert!(parse_headers("[1]").is_err());
        assert!(parse_headers(r#"{"a": {"b": 1}}"#).is_err());
        assert!(parse_headers("7").is_err());
        assert!(parse_headers("").unwrap().is_empty());
    }

    #[test]
    fn explain_errors_read_like_the_cli() {
        let err = explain_text("", "GET example.com/", "{}", "").unwrap_err();
        assert!(err.contains("must start with http://"), "{err}");
        let err = explain_text("", "GET http://example.com/", "{}", "").unwrap_err();
        assert_eq!(
            err,
            "the manifests hold no Gateway whose GatewayClass is ours"
        );
        let err = explain_text("", "GET http://h/", "{}", r#"{"gatway": "a/b"}"#).unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        // A manifest error: what the CLI prints after `loading DIR: DIR/`.
        let text = "# file: gw.yaml\napiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n---\napiVersion: gateway.networking.k8s.io/v1\n\
                    kind: Gateway\nmetadata: {name: g}\nspec:\n  gatewayClassName: c\n  \
                    listeners: [{name: l, port: eighty, protocol: HTTP}]\n";
        let err = explain_text(text, "GET http://h/", "{}", "").unwrap_err();
        assert!(
            err.starts_with("gw.yaml document 2: Gateway spec.listeners[0].port: "),
            "{err}"
        );
    }

    const GRPC: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: ours}\n\
        spec: {controllerName: gateway-wasm.dev/controller-shim}\n---\n\
        apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g, namespace: n}\n\
        spec: {gatewayClassName: ours, listeners: [{name: h, port: 80, protocol: HTTP}]}\n---\n\
        apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: r, namespace: n}\n\
        spec: {parentRefs: [{name: g}], rules: [{matches: [{method: {service: pkg.Cart, method: Add}}], \
        backendRefs: [{name: cart, port: 9000}]}]}\n---\n\
        apiVersion: v1\nkind: Service\nmetadata: {name: cart, namespace: n}\nspec: {ports: [{port: 9000}]}\n";

    fn decision(json: &str) -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(json).unwrap()["decision"].clone()
    }

    #[test]
    fn the_grpc_option_makes_the_request_a_grpc_call_as_the_cli_flag_does() {
        let routed = explain_text(GRPC, "http://h/", "{}", r#"{"grpc": "pkg.Cart/Add"}"#).unwrap();
        let d = decision(&routed);
        assert_eq!(d["kind"], "forward");
        assert_eq!(d["route"]["kind"], "GRPCRoute");
        assert_eq!(d["backend"], "grpc:n/cart:9000");
        // Without the option the same URL is a plain GET: no GRPCRoute takes it.
        let plain = decision(&explain_text(GRPC, "http://h/pkg.Cart/Add", "{}", "").unwrap());
        assert_eq!(
            (plain["kind"].clone(), plain["grpcStatus"].clone()),
            ("local".into(), serde_json::Value::Null)
        );
        // An RPC no rule matches: the gateway answers UNIMPLEMENTED itself.
        let d = decision(
            &explain_text(GRPC, "http://h/", "{}", r#"{"grpc": "pkg.Cart/Remove"}"#).unwrap(),
        );
        assert_eq!(
            (d["status"].clone(), d["grpcStatus"].clone()),
            (200.into(), 12.into())
        );
        let err = explain_text(GRPC, "http://h/", "{}", r#"{"grpc": "Cart"}"#).unwrap_err();
        assert_eq!(
            err,
            "--grpc \"Cart\" is not 'SERVICE/METHOD' (e.g. 'pkg.v1.Cart/AddItem')"
        );

        // The same against the PluginConfig, as the live page asks.
        let config =
            serde_json::to_string(&view::resolved(GRPC, &Settings::default()).gateways[0].config)
                .unwrap();
        let live =
            explain_config_text(&config, "http://h/", "{}", r#"{"grpc": "pkg.Cart/Add"}"#).unwrap();
        assert_eq!(live, routed);
        let err =
            explain_config_text(&config, "http://h/", "{}", r#"{"gateway": "n/g"}"#).unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
    }
}
