//! `packager trim-exports`: keeps only the `proxy_on_*` entry points a host calls for this filter.
//!
//! Why: proxy-wasm-rust-sdk exports every callback of the ABI (`#[no_mangle]` functions in its
//! `dispatcher.rs`), and rustc exports every `#[no_mangle]` function of every crate linked into a
//! `cdylib` (it passes one `--export` per symbol to wasm-ld; no stable flag takes one back). The
//! hosts then call what is there:
//!
//! - **Envoy** (proxy-wasm-cpp-host) looks each callback up once and calls only those that exist
//!   (`docs/benchmarks.md`: an empty filter pays a V8 call per exported callback per stream: log,
//!   done, body chunks, trailers). What it needs from this filter: context creation, VM start,
//!   configure, request headers and body (mirrors send a copy of the body), response headers,
//!   the HTTP callout response (mirrors) and `proxy_on_delete` (the SDK frees a context's state
//!   there; without it every stream would leak).
//! - **Kong** (ngx_wasm_module, `src/common/proxy_wasm/ngx_proxy_wasm.c`,
//!   `ngx_proxy_wasm_filter_init` looks the callbacks up; `ngx_proxy_wasm_on_log` and
//!   `src/http/proxy_wasm/ngx_http_proxy_wasm.c` call `proxy_on_done`, `proxy_on_log`,
//!   `proxy_on_response_body` and the trailer callbacks through `ngx_wavm_instance_call_funcref`
//!   without checking that they were found): every HTTP-phase callback must stay. What Kong never
//!   calls for an HTTP filter that sets no tick period, registers no queue and makes no gRPC or
//!   foreign call (ours) can go: the stream (L4) callbacks, gRPC callouts, timers, queues and
//!   foreign functions.
//!
//! The pass only rewrites the export section (every other section is copied byte for byte); the
//! code behind a removed export stays until a dead-code pass (`packager build --optimize`, binaryen's
//! `wasm-opt -Oz`) drops it.

use anyhow::{Context, Result, bail};
use wasm_encoder::{ExportKind, ExportSection, Module, RawSection};
use wasmparser::{ExternalKind, Parser, Payload};

/// The host a trimmed module is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Host {
    /// Envoy (proxy-wasm-cpp-host, V8): only the callbacks this filter needs; Kong cannot load it.
    Envoy,
    /// Kong 3.4-3.9 (ngx_wasm_module) and Envoy: every HTTP callback, none of the others.
    Kong,
}

/// The prefix of every proxy-wasm callback export; other exports (`memory`, `_initialize`, the ABI
/// marker `proxy_abi_version_0_2_1`) are never removed.
const CALLBACK_PREFIX: &str = "proxy_on_";

/// What Envoy calls for this filter (see the module documentation).
const ENVOY_CALLBACKS: &[&str] = &[
    "proxy_on_memory_allocate",
    "proxy_on_context_create",
    "proxy_on_vm_start",
    "proxy_on_configure",
    "proxy_on_request_headers",
    "proxy_on_request_body",
    "proxy_on_response_headers",
    "proxy_on_http_call_response",
    "proxy_on_delete",
];

/// What ngx_wasm_module may call for an HTTP filter (see the module documentation).
const KONG_CALLBACKS: &[&str] = &[
    "proxy_on_memory_allocate",
    "proxy_on_context_create",
    "proxy_on_vm_start",
    "proxy_on_configure",
    "proxy_on_request_headers",
    "proxy_on_request_body",
    "proxy_on_request_trailers",
    "proxy_on_response_headers",
    "proxy_on_response_body",
    "proxy_on_response_trailers",
    "proxy_on_http_call_response",
    "proxy_on_done",
    "proxy_on_log",
    "proxy_on_delete",
];

impl Host {
    /// The callbacks a module for this host keeps (when it has them).
    pub fn callbacks(self) -> &'static [&'static str] {
        match self {
            Host::Envoy => ENVOY_CALLBACKS,
            Host::Kong => KONG_CALLBACKS,
        }
    }
}

/// A trimmed module and the exports the pass removed.
#[derive(Debug)]
pub struct Trimmed {
    pub module: Vec<u8>,
    pub removed: Vec<String>,
}

/// Removes the `proxy_on_*` exports `host` does not call. Fails on a module that does not parse
/// or that lacks `proxy_on_configure` (not a proxy-wasm filter: nothing sensible to keep).
pub fn trim(module: &[u8], host: Host) -> Result<Trimmed> {
    let keep = |name: &str| !name.starts_with(CALLBACK_PREFIX) || host.callbacks().contains(&name);
    let mut out = Module::new();
    let mut removed = Vec::new();
    let mut has_configure = false;
    for payload in Parser::new(0).parse_all(module) {
        let payload = payload.context("parsing the module")?;
        if let Payload::ExportSection(reader) = &payload {
            let mut exports = ExportSection::new();
            for export in reader.clone() {
                let export = export.context("reading the export section")?;
                has_configure |= export.name == "proxy_on_configure";
                if keep(export.name) {
                    exports.export(export.name, export_kind(export.kind)?, export.index);
                } else {
                    removed.push(export.name.to_owned());
                }
            }
            out.section(&exports);
        } else if let Some((id, range)) = payload.as_section() {
            let data = usize::try_from(range.start)
                .ok()
                .zip(usize::try_from(range.end).ok())
                .and_then(|(start, end)| module.get(start..end))
                .with_context(|| format!("section {id} at {range:?} is outside the module"))?;
            out.section(&RawSection { id, data });
        }
    }
    if !has_configure {
        bail!("the module exports no proxy_on_configure: not a proxy-wasm filter");
    }
    Ok(Trimmed {
        module: out.finish(),
        removed,
    })
}

fn export_kind(kind: ExternalKind) -> Result<ExportKind> {
    Ok(match kind {
        ExternalKind::Func => ExportKind::Func,
        ExternalKind::Table => ExportKind::Table,
        ExternalKind::Memory => ExportKind::Memory,
        ExternalKind::Global => ExportKind::Global,
        ExternalKind::Tag => ExportKind::Tag,
        other => bail!("unsupported export kind {other:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A filter with every callback the SDK exports, and the non-callback exports a module has.
    fn sdk_like() -> Vec<u8> {
        let mut text = String::from("(module (memory (export \"memory\") 1)\n");
        text.push_str(
            "(func (export \"_initialize\"))\n(func (export \"proxy_abi_version_0_2_1\"))\n",
        );
        // Kong's list holds Envoy's; the rest are callbacks neither host calls for this filter.
        assert!(ENVOY_CALLBACKS.iter().all(|e| KONG_CALLBACKS.contains(e)));
        for name in KONG_CALLBACKS.iter().chain(&[
            "proxy_on_tick",
            "proxy_on_queue_ready",
            "proxy_on_foreign_function",
            "proxy_on_new_connection",
            "proxy_on_grpc_receive",
        ]) {
            text.push_str(&format!("(func (export \"{name}\"))\n"));
        }
        text.push_str("(@custom \"name-ish\" \"kept as is\"))");
        wat::parse_str(&text).unwrap()
    }

    fn exports(module: &[u8]) -> Vec<String> {
        let mut names = Vec::new();
        for payload in Parser::new(0).parse_all(module) {
            if let Payload::ExportSection(reader) = payload.unwrap() {
                names.extend(reader.into_iter().map(|e| e.unwrap().name.to_owned()));
            }
        }
        names
    }

    #[test]
    fn envoy_keeps_only_its_callbacks_and_every_other_export() {
        let trimmed = trim(&sdk_like(), Host::Envoy).unwrap();
        wasmparser::validate(&trimmed.module).unwrap();
        let kept = exports(&trimmed.module);
        for name in
            ENVOY_CALLBACKS
                .iter()
                .chain(&["memory", "_initialize", "proxy_abi_version_0_2_1"])
        {
            assert!(kept.iter().any(|k| k == name), "{name} missing: {kept:?}");
        }
        for gone in [
            "proxy_on_done",
            "proxy_on_log",
            "proxy_on_response_body",
            "proxy_on_tick",
        ] {
            assert!(!kept.iter().any(|k| k == gone), "{gone} kept: {kept:?}");
            assert!(
                trimmed.removed.iter().any(|r| r == gone),
                "{gone} not reported"
            );
        }
    }

    #[test]
    fn kong_keeps_every_http_callback() {
        let trimmed = trim(&sdk_like(), Host::Kong).unwrap();
        let kept = exports(&trimmed.module);
        for name in KONG_CALLBACKS {
            assert!(kept.iter().any(|k| k == name), "{name} missing: {kept:?}");
        }
        let mut removed = trimmed.removed.clone();
        removed.sort();
        assert_eq!(
            removed,
            [
                "proxy_on_foreign_function",
                "proxy_on_grpc_receive",
                "proxy_on_new_connection",
                "proxy_on_queue_ready",
                "proxy_on_tick"
            ]
        );
    }

    #[test]
    fn sections_other_than_exports_are_copied_unchanged() {
        let module = sdk_like();
        let trimmed = trim(&module, Host::Kong).unwrap();
        // Trimming what is left again removes nothing and changes no byte.
        let again = trim(&trimmed.module, Host::Kong).unwrap();
        assert!(again.removed.is_empty());
        assert_eq!(again.module, trimmed.module);
        let custom = b"kept as is";
        assert!(trimmed.module.windows(custom.len()).any(|w| w == custom));
    }

    #[test]
    fn a_module_without_configure_is_refused() {
        let module = wat::parse_str("(module (func (export \"proxy_on_log\")))").unwrap();
        let error = trim(&module, Host::Envoy).unwrap_err().to_string();
        assert!(error.contains("no proxy_on_configure"), "{error}");
        assert!(trim(b"not wasm", Host::Envoy).is_err());
    }
}
