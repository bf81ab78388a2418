//! `packager check`: is this file a proxy-wasm 0.2.1 HTTP filter that both Envoy and Kong load?
//!
//! The module must parse and validate, export the ABI 0.2.1 entry points of an HTTP filter with
//! the ABI's signatures, export a 32-bit linear memory named `memory`, and import only host
//! functions both hosts provide (see [`crate::abi`]). Every problem found is reported at once.

use std::fmt;

use wasmparser::types::{EntityType, Types};
use wasmparser::{CompositeInnerType, ValType, Validator};

use crate::abi::{self, Sig};
use crate::util::sha256_hex;

/// What a successful check found.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub size: usize,
    pub sha256: String,
    /// The initialisation export in use (`_initialize` or `_start`).
    pub init_export: String,
    /// The allocator export in use (`proxy_on_memory_allocate` or `malloc`).
    pub alloc_export: String,
    /// Every import, as `module.name`, sorted.
    pub imports: Vec<String>,
    /// Number of exports.
    pub export_count: usize,
    /// Imports that Kong registers as no-ops (they load, but do nothing there).
    pub kong_noop_imports: Vec<String>,
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "size:    {} bytes ({})",
            self.size,
            human_size(self.size)
        )?;
        writeln!(f, "sha256:  {}", self.sha256)?;
        writeln!(
            f,
            "abi:     {} ({}, {}, {} exports)",
            abi::ABI_MARKER,
            self.init_export,
            self.alloc_export,
            self.export_count
        )?;
        write!(f, "imports: {} host functions", self.imports.len())?;
        for import in &self.imports {
            write!(f, "\n  {import}")?;
        }
        if !self.kong_noop_imports.is_empty() {
            write!(
                f,
                "\nnote: Kong/WasmX registers these as no-ops (the module loads; the calls do nothing there): {}",
                self.kong_noop_imports.join(", ")
            )?;
        }
        Ok(())
    }
}

/// One reason a module is rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    MissingExport {
        names: Vec<String>,
        role: String,
    },
    WrongExportKind {
        name: String,
        expected: String,
    },
    WrongSignature {
        name: String,
        expected: String,
        got: String,
    },
    OtherAbi {
        marker: String,
    },
    Memory64,
    UnsupportedImport {
        import: String,
        reason: String,
    },
    WrongImportSignature {
        import: String,
        expected: String,
        got: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::MissingExport { names, role } => {
                write!(f, "missing export `{}` ({role})", names.join("` or `"))
            }
            Problem::WrongExportKind { name, expected } => {
                write!(f, "export `{name}` is not a {expected}")
            }
            Problem::WrongSignature {
                name,
                expected,
                got,
            } => write!(
                f,
                "export `{name}` has signature {got}, ABI 0.2.1 wants {expected}"
            ),
            Problem::OtherAbi { marker } => write!(
                f,
                "module targets another proxy-wasm ABI (exports `{marker}`); build it with proxy-wasm 0.2.x for ABI 0.2.1"
            ),
            Problem::Memory64 => write!(
                f,
                "export `memory` is a 64-bit memory; hosts need a 32-bit one"
            ),
            Problem::UnsupportedImport { import, reason } => {
                write!(
                    f,
                    "import `{import}` is not available in both Envoy and Kong: {reason}"
                )
            }
            Problem::WrongImportSignature {
                import,
                expected,
                got,
            } => write!(
                f,
                "import `{import}` has signature {got}, hosts provide {expected}"
            ),
        }
    }
}

/// Why a module was rejected.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{what} is not a WebAssembly module: {reason}")]
    NotWasm { what: String, reason: String },
    #[error("{what} is not a valid WebAssembly module: {reason}")]
    Invalid { what: String, reason: String },
    #[error("{what} is not a proxy-wasm 0.2.1 filter that Envoy and Kong can load:\n  - {}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  - "))]
    Abi {
        what: String,
        problems: Vec<Problem>,
    },
}

impl CheckError {
    /// The individual problems, for callers that match on them.
    pub fn problems(&self) -> &[Problem] {
        match self {
            CheckError::Abi { problems, .. } => problems,
            _ => &[],
        }
    }
}

/// Checks `bytes`; `what` names the file or reference in messages.
pub fn check_module(bytes: &[u8], what: &str) -> Result<CheckReport, CheckError> {
    sniff_magic(bytes, what)?;
    let types = Validator::new()
        .validate_all(bytes)
        .map_err(|e| CheckError::Invalid {
            what: what.to_string(),
            reason: e.to_string(),
        })?;

    let mut problems = Vec::new();
    let exports = collect_exports(&types);
    let (init_export, alloc_export) = check_exports(&types, &exports, &mut problems);
    let (imports, kong_noop_imports) = check_imports(&types, &mut problems);

    if !problems.is_empty() {
        return Err(CheckError::Abi {
            what: what.to_string(),
            problems,
        });
    }
    Ok(CheckReport {
        size: bytes.len(),
        sha256: sha256_hex(bytes),
        init_export,
        alloc_export,
        imports,
        export_count: exports.len(),
        kong_noop_imports,
    })
}

fn sniff_magic(bytes: &[u8], what: &str) -> Result<(), CheckError> {
    let not_wasm = |reason: String| CheckError::NotWasm {
        what: what.to_string(),
        reason,
    };
    match bytes {
        [] => Err(not_wasm("the file is empty".into())),
        [0x00, b'a', b's', b'm', 1, 0, 0, 0, ..] => Ok(()),
        [0x00, b'a', b's', b'm', _, _, 1, 0, ..] => Err(not_wasm(
            "it is a WebAssembly component; hosts need a core module (wasm32-wasip1)".into(),
        )),
        [0x1f, 0x8b, ..] => Err(not_wasm(
            "it is gzip data (a compat image layer?); use `packager pull` to extract the module"
                .into(),
        )),
        [b'(', ..] | [b' ' | b'\n' | b';', ..] => Err(not_wasm(
            "it looks like WebAssembly text; compile it to binary first".into(),
        )),
        _ => {
            let head: String = bytes
                .iter()
                .take(4)
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ");
            Err(not_wasm(format!(
                "it does not start with the wasm magic bytes `00 61 73 6d` (found `{head}`)"
            )))
        }
    }
}

/// Function type of an entity, when it is a function.
fn func_sig(types: &Types, entity: &EntityType) -> Option<(Vec<ValType>, Vec<ValType>)> {
    let id = match entity {
        EntityType::Func(id) | EntityType::FuncExact(id) => *id,
        _ => return None,
    };
    match &types[id].composite_type.inner {
        CompositeInnerType::Func(f) => Some((f.params().to_vec(), f.results().to_vec())),
        _ => None,
    }
}

fn collect_exports(types: &Types) -> Vec<(String, EntityType)> {
    types
        .as_ref()
        .core_exports()
        .map(|it| it.map(|(n, t)| (n.to_string(), t)).collect())
        .unwrap_or_default()
}

fn check_exports(
    types: &Types,
    exports: &[(String, EntityType)],
    problems: &mut Vec<Problem>,
) -> (String, String) {
    let find = |name: &str| exports.iter().find(|(n, _)| n == name).map(|(_, t)| t);
    let mut chosen = Vec::new();

    if find(abi::ABI_MARKER).is_none() {
        for other in abi::OTHER_ABI_MARKERS {
            if find(other).is_some() {
                problems.push(Problem::OtherAbi {
                    marker: (*other).to_string(),
                });
            }
        }
    }

    for required in abi::REQUIRED_FUNCTION_EXPORTS {
        let present = required
            .names
            .iter()
            .find_map(|name| find(name).map(|entity| (*name, entity)));
        match present {
            None => problems.push(Problem::MissingExport {
                names: required.names.iter().map(|n| n.to_string()).collect(),
                role: required.role.to_string(),
            }),
            Some((name, entity)) => {
                check_export_sig(types, name, entity, &required.sig, problems);
                chosen.push(name.to_string());
            }
        }
    }
    for (name, sig) in abi::OPTIONAL_FUNCTION_EXPORTS {
        if let Some(entity) = find(name) {
            check_export_sig(types, name, entity, sig, problems);
        }
    }

    match find(abi::MEMORY_EXPORT) {
        None => problems.push(Problem::MissingExport {
            names: vec![abi::MEMORY_EXPORT.to_string()],
            role: "linear memory the host reads and writes".into(),
        }),
        Some(EntityType::Memory(mem)) => {
            if mem.memory64 {
                problems.push(Problem::Memory64);
            }
        }
        Some(_) => problems.push(Problem::WrongExportKind {
            name: abi::MEMORY_EXPORT.to_string(),
            expected: "memory".into(),
        }),
    }

    let pick = |names: &[&str]| {
        names
            .iter()
            .find(|n| chosen.iter().any(|c| c == *n))
            .map(|n| n.to_string())
            .unwrap_or_default()
    };
    (
        pick(&["_initialize", "_start"]),
        pick(&["proxy_on_memory_allocate", "malloc"]),
    )
}

fn check_export_sig(
    types: &Types,
    name: &str,
    entity: &EntityType,
    want: &Sig,
    problems: &mut Vec<Problem>,
) {
    match func_sig(types, entity) {
        None => problems.push(Problem::WrongExportKind {
            name: name.to_string(),
            expected: "function".into(),
        }),
        Some((params, results)) => {
            if params != want.params || results != want.results {
                problems.push(Problem::WrongSignature {
                    name: name.to_string(),
                    expected: want.to_string(),
                    got: abi::render_sig(&params, &results),
                });
            }
        }
    }
}

fn check_imports(types: &Types, problems: &mut Vec<Problem>) -> (Vec<String>, Vec<String>) {
    let mut imports = Vec::new();
    let mut kong_noops = Vec::new();
    let Some(iter) = types.as_ref().core_imports() else {
        return (imports, kong_noops);
    };
    let mut all: Vec<(String, String, EntityType)> = iter
        .map(|(m, n, t)| (m.to_string(), n.to_string(), t))
        .collect();
    all.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));

    for (module, name, entity) in all {
        let import = format!("{module}.{name}");
        imports.push(import.clone());
        let Some((params, results)) = func_sig(types, &entity) else {
            problems.push(Problem::UnsupportedImport {
                import,
                reason: "hosts provide only functions (imported memories, tables and globals are not supplied)".into(),
            });
            continue;
        };
        if let Some(host_fn) = abi::allowed_import(&module, &name) {
            if params != host_fn.sig.params || results != host_fn.sig.results {
                problems.push(Problem::WrongImportSignature {
                    import,
                    expected: host_fn.sig.to_string(),
                    got: abi::render_sig(&params, &results),
                });
            } else if host_fn.kong_noop {
                kong_noops.push(import);
            }
            continue;
        }
        let reason = abi::refused_reason(&module, &name)
            .map(str::to_string)
            .unwrap_or_else(|| match module.as_str() {
                "env" if name.starts_with("proxy_") => {
                    "not a proxy-wasm ABI 0.2.1 host function both hosts register".into()
                }
                "env" => {
                    "unknown host function (only proxy_* functions are provided in `env`)".into()
                }
                abi::WASI_MODULE => "Kong/WasmX 3.4-3.9 does not provide this WASI function".into(),
                "wasi_unstable" => {
                    "Kong/WasmX provides WASI only as `wasi_snapshot_preview1`".into()
                }
                _ => format!("unknown import module `{module}`"),
            });
        problems.push(Problem::UnsupportedImport { import, reason });
    }
    (imports, kong_noops)
}

/// `123456` → `120.6 KiB`.
pub fn human_size(bytes: usize) -> String {
    #[allow(clippy::cast_precision_loss)]
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest module with every required export, in text form (shared with the integration
    /// tests); tests remove pieces.
    pub(crate) const GOOD_WAT: &str = include_str!("../tests/fixtures/good.wat");

    fn wasm(text: &str) -> Vec<u8> {
        wat::parse_str(text).unwrap()
    }

    #[test]
    fn good_module_passes() {
        let report = check_module(&wasm(GOOD_WAT), "good.wasm").unwrap();
        assert_eq!(report.init_export, "_initialize");
        assert_eq!(report.alloc_export, "proxy_on_memory_allocate");
        assert_eq!(
            report.imports,
            vec!["env.proxy_log", "wasi_snapshot_preview1.fd_write"]
        );
        assert_eq!(report.sha256.len(), 64);
    }

    #[test]
    fn malloc_and_start_are_accepted_alternatives() {
        let text = GOOD_WAT
            .replace("\"proxy_on_memory_allocate\"", "\"malloc\"")
            .replace("\"_initialize\"", "\"_start\"");
        let report = check_module(&wasm(&text), "alt.wasm").unwrap();
        assert_eq!(report.init_export, "_start");
        assert_eq!(report.alloc_export, "malloc");
    }

    #[test]
    fn missing_exports_are_named() {
        let text = GOOD_WAT
            .replace("(export \"proxy_on_configure\")", "")
            .replace("(export \"proxy_on_memory_allocate\")", "");
        let err = check_module(&wasm(&text), "partial.wasm").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("partial.wasm"), "{msg}");
        assert!(msg.contains("missing export `proxy_on_configure`"), "{msg}");
        assert!(
            msg.contains("missing export `proxy_on_memory_allocate` or `malloc`"),
            "{msg}"
        );
        assert_eq!(err.problems().len(), 2);
    }

    #[test]
    fn wrong_signature_is_reported() {
        let text = GOOD_WAT.replace(
            "(func (export \"proxy_on_done\") (param i32) (result i32) i32.const 1)",
            "(func (export \"proxy_on_done\") (param i32))",
        );
        let err = check_module(&wasm(&text), "sig.wasm").unwrap_err();
        assert_eq!(
            err.problems(),
            &[Problem::WrongSignature {
                name: "proxy_on_done".into(),
                expected: "(i32) -> i32".into(),
                got: "(i32)".into(),
            }]
        );
    }

    #[test]
    fn imports_outside_the_common_surface_are_rejected() {
        let text = GOOD_WAT.replace(
            "(memory",
            r#"(import "env" "proxy_get_header_map_size" (func (param i32 i32) (result i32)))
               (import "wasi_snapshot_preview1" "poll_oneoff" (func (param i32 i32 i32 i32) (result i32)))
               (import "env" "abort" (func))
               (memory"#,
        );
        let err = check_module(&wasm(&text), "imports.wasm").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`env.proxy_get_header_map_size`"), "{msg}");
        assert!(msg.contains("Kong/WasmX does not"), "{msg}");
        assert!(
            msg.contains("`wasi_snapshot_preview1.poll_oneoff`"),
            "{msg}"
        );
        assert!(msg.contains("`env.abort`"), "{msg}");
        assert_eq!(err.problems().len(), 3);
    }

    #[test]
    fn old_abi_marker_is_explained() {
        let text = GOOD_WAT.replace("proxy_abi_version_0_2_1", "proxy_abi_version_0_1_0");
        let msg = check_module(&wasm(&text), "old.wasm")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("exports `proxy_abi_version_0_1_0`"), "{msg}");
        assert!(
            msg.contains("missing export `proxy_abi_version_0_2_1`"),
            "{msg}"
        );
    }

    #[test]
    fn non_wasm_inputs_say_what_they_look_like() {
        let e = check_module(b"", "empty.wasm").unwrap_err().to_string();
        assert!(
            e.contains("empty.wasm is not a WebAssembly module: the file is empty"),
            "{e}"
        );
        let e = check_module(b"\x1f\x8b\x08\x00rest", "layer.tgz")
            .unwrap_err()
            .to_string();
        assert!(e.contains("gzip"), "{e}");
        let e = check_module(b"hello world", "readme.txt")
            .unwrap_err()
            .to_string();
        assert!(e.contains("found `68 65 6c 6c`"), "{e}");
        let e = check_module(GOOD_WAT.as_bytes(), "text.wat")
            .unwrap_err()
            .to_string();
        assert!(e.contains("WebAssembly text"), "{e}");
    }

    #[test]
    fn truncated_module_is_invalid() {
        let bytes = wasm(GOOD_WAT);
        let cut = bytes.get(..bytes.len() / 2).unwrap();
        let e = check_module(cut, "cut.wasm").unwrap_err();
        assert!(matches!(e, CheckError::Invalid { .. }), "{e}");
    }

    #[test]
    fn kong_noop_imports_are_warned_about() {
        let text = GOOD_WAT.replace(
            "(memory",
            r#"(import "env" "proxy_get_log_level" (func (param i32) (result i32))) (memory"#,
        );
        let report = check_module(&wasm(&text), "noop.wasm").unwrap();
        assert_eq!(report.kong_noop_imports, vec!["env.proxy_get_log_level"]);
        assert!(
            report
                .to_string()
                .contains("do nothing there): env.proxy_get_log_level")
        );
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(10), "10 B");
        assert_eq!(human_size(2048), "2.0 KiB");
        assert_eq!(human_size(3 * 1024 * 1024), "3.00 MiB");
    }
}
