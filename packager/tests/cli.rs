//! The packager binary on local files: check, package, kong-bundle, build, and the real plugin.
// Integration tests: failing loudly (unwrap, panic) is the point here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;

#[test]
fn check_rejects_non_wasm_and_abi_incomplete_modules() {
    let tmp = tempfile::tempdir().unwrap();

    let text = tmp.path().join("notes.txt");
    std::fs::write(&text, "not a module").unwrap();
    let err = fails(&packager(&["check", text.to_str().unwrap()]));
    assert!(
        err.contains(&format!("{} is not a WebAssembly module", text.display())),
        "{err}"
    );

    let missing = tmp.path().join("missing.wasm");
    let err = fails(&packager(&["check", missing.to_str().unwrap()]));
    assert!(
        err.contains(&format!("reading the module {}", missing.display())),
        "{err}"
    );

    // A valid module without the HTTP callbacks and with an import Kong does not provide.
    let incomplete = GOOD_WAT
        .replace("(export \"proxy_on_request_headers\")", "")
        .replace("(export \"proxy_on_vm_start\")", "")
        .replace(
            "(memory",
            "(import \"wasi_snapshot_preview1\" \"sched_yield\" (func (result i32))) (memory",
        );
    let (path, _) = fixture(tmp.path(), "incomplete.wasm", &incomplete);
    let err = fails(&packager(&["check", path.to_str().unwrap()]));
    assert!(
        err.contains("incomplete.wasm is not a proxy-wasm 0.2.1 filter"),
        "{err}"
    );
    assert!(
        err.contains("missing export `proxy_on_request_headers`"),
        "{err}"
    );
    assert!(err.contains("missing export `proxy_on_vm_start`"), "{err}");
    assert!(
        err.contains("`wasi_snapshot_preview1.sched_yield`"),
        "{err}"
    );

    let (path, bytes) = fixture(tmp.path(), "good.wasm", GOOD_WAT);
    let out = ok(&packager(&["check", path.to_str().unwrap()]));
    assert!(
        out.contains(&format!("sha256:  {}", sha256_hex(&bytes))),
        "{out}"
    );
    assert!(
        out.contains(&format!("size:    {} bytes", bytes.len())),
        "{out}"
    );
}

#[test]
fn package_is_deterministic_and_fails_without_leftovers() {
    let tmp = tempfile::tempdir().unwrap();
    let (wasm, _) = fixture(tmp.path(), "m.wasm", GOOD_WAT);
    let run = |out: &str| {
        packager(&[
            "package",
            "--out",
            tmp.path().join(out).to_str().unwrap(),
            "--wasm",
            wasm.to_str().unwrap(),
            "--source",
            "https://example.invalid/gw",
        ])
    };
    // Defaults (version, git revision, commit time) are stable between runs.
    let a = manifest_digest(&ok(&run("a")));
    let b = manifest_digest(&ok(&run("b")));
    assert_eq!(
        a, b,
        "packaging the same module twice gave different digests"
    );
    let index_a = std::fs::read(tmp.path().join("a/index.json")).unwrap();
    let index_b = std::fs::read(tmp.path().join("b/index.json")).unwrap();
    assert_eq!(index_a, index_b);
    // Repackaging over an existing layout replaces it.
    assert_eq!(manifest_digest(&ok(&run("a"))), a);

    // A module that fails the check leaves no output directory and no temporary files.
    let (bad, _) = fixture(tmp.path(), "bad.wasm", "(module)");
    let before: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let err = fails(&packager(&[
        "package",
        "--out",
        tmp.path().join("c").to_str().unwrap(),
        "--wasm",
        bad.to_str().unwrap(),
    ]));
    assert!(
        err.contains("refusing to package a module that fails `packager check`"),
        "{err}"
    );
    assert!(
        err.contains("missing export `proxy_abi_version_0_2_1`"),
        "{err}"
    );
    let after: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(before, after);

    // A directory that is not a layout is never replaced.
    let precious = tmp.path().join("precious");
    std::fs::create_dir(&precious).unwrap();
    std::fs::write(precious.join("keep.txt"), "mine").unwrap();
    let err = fails(&packager(&[
        "package",
        "--out",
        precious.to_str().unwrap(),
        "--wasm",
        wasm.to_str().unwrap(),
    ]));
    assert!(err.contains("refusing to replace"), "{err}");
    assert!(precious.join("keep.txt").exists());
}

#[test]
fn missing_plugin_build_says_how_to_build_it() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    std::fs::write(
        ws.join("Cargo.toml"),
        "[workspace]\nmembers = [\"plugin\"]\nresolver = \"3\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(ws.join("plugin/src")).unwrap();
    std::fs::write(
        ws.join("plugin/Cargo.toml"),
        "[package]\nname = \"plugin\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
    )
    .unwrap();
    std::fs::write(ws.join("plugin/src/lib.rs"), "").unwrap();
    let out_dir = ws.join("out");
    let err = fails(&packager(&[
        "--workspace",
        ws.to_str().unwrap(),
        "package",
        "--out",
        out_dir.to_str().unwrap(),
    ]));
    assert!(err.contains("no release build of the plugin"), "{err}");
    assert!(err.contains("packager build --release"), "{err}");
    assert!(
        err.contains("cargo build -p plugin --target wasm32-wasip1 --profile wasm"),
        "{err}"
    );
    assert!(!out_dir.exists());
}

#[test]
fn kong_bundle_carries_the_module_and_the_config_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let (wasm, bytes) = fixture(tmp.path(), "m.wasm", GOOD_WAT);
    let dir = tmp.path().join("kong");
    ok(&packager(&[
        "kong-bundle",
        "--out",
        dir.to_str().unwrap(),
        "--wasm",
        wasm.to_str().unwrap(),
    ]));
    assert_eq!(std::fs::read(dir.join("gateway_wasm.wasm")).unwrap(), bytes);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("gateway_wasm.meta.json")).unwrap())
            .unwrap();
    assert_eq!(
        meta["config_schema"],
        packager::schema::plugin_config_schema()
    );
    let mut keys: Vec<&String> = meta.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["config_schema", "x-gateway-wasm"]);
    // The Kong versions the filter works with travel with the bundle (docs/kong.md).
    assert_eq!(meta["x-gateway-wasm"]["supported"], ">=3.4.0 <3.10.0");
    assert_eq!(meta["x-gateway-wasm"]["full_features"], ">=3.8.0 <3.10.0");
    // Kong validates config_schema against the draft-4 metaschema and refuses other dialects.
    assert_eq!(
        meta["config_schema"]["$schema"],
        "http://json-schema.org/draft-04/schema#"
    );

    let (bad, _) = fixture(
        tmp.path(),
        "bad.wasm",
        "(module (memory (export \"memory\") 1))",
    );
    let err = fails(&packager(&[
        "kong-bundle",
        "--out",
        tmp.path().join("kong2").to_str().unwrap(),
        "--wasm",
        bad.to_str().unwrap(),
    ]));
    assert!(err.contains("refusing to bundle"), "{err}");
    assert!(!tmp.path().join("kong2").exists());
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        "build",
        "check",
        "install-tools",
        "package",
        "push",
        "pull",
        "kong-bundle",
        "snippets",
    ] {
        let out = ok(&packager(&[sub, "--help"]));
        assert!(out.contains("Usage: packager"), "{sub}: {out}");
    }
    let out = ok(&packager(&["--help"]));
    assert!(out.contains("Publish flow"), "{out}");
}

#[test]
fn the_real_plugin_passes_check() {
    let path = real_plugin();
    let out = ok(&packager(&["check", path.to_str().unwrap()]));
    assert!(out.contains("proxy_abi_version_0_2_1"), "{out}");
    let bytes = std::fs::read(&path).unwrap();
    assert!(out.contains(&sha256_hex(&bytes)), "{out}");
    eprintln!(
        "real plugin: {} bytes, sha256 {}",
        bytes.len(),
        sha256_hex(&bytes)
    );
}

#[test]
fn build_release_optimize_produces_a_smaller_module_that_passes_check() {
    // `build` runs the real cargo build, then binaryen's wasm-opt (installed into the project's
    // .tools with npm when missing), then the check.
    let root = workspace_root();
    let out = packager(&[
        "--workspace",
        root.to_str().unwrap(),
        "build",
        "--release",
        "--optimize",
        "--install-tools",
    ]);
    let stdout = ok(&out);
    let stderr = stderr(&out);
    assert!(
        stderr.contains("building plugin for wasm32-wasip1 (profile wasm)"),
        "{stderr}"
    );
    assert!(stderr.contains("optimizing with"), "{stderr}");
    assert!(stdout.contains("gateway_wasm.opt.wasm: ok"), "{stdout}");
    let plain = real_plugin();
    let optimized = plain.with_file_name("gateway_wasm.opt.wasm");
    let (p, o) = (
        std::fs::metadata(&plain).unwrap().len(),
        std::fs::metadata(&optimized).unwrap().len(),
    );
    eprintln!("plugin: {p} bytes; after wasm-opt -Oz: {o} bytes");
    assert!(o < p, "wasm-opt did not shrink the module ({p} -> {o})");
    // The callbacks no host calls are gone; every HTTP callback Kong calls unchecked stays.
    assert!(
        stderr.contains("removed 12 exports neither Envoy nor Kong calls"),
        "{stderr}"
    );
    let exports = export_names(&std::fs::read(&optimized).unwrap());
    for gone in [
        "proxy_on_tick",
        "proxy_on_grpc_receive",
        "proxy_on_new_connection",
    ] {
        assert!(!exports.iter().any(|e| e == gone), "{gone} in {exports:?}");
    }
    for kept in [
        "proxy_on_log",
        "proxy_on_done",
        "proxy_on_response_body",
        "proxy_on_configure",
    ] {
        assert!(
            exports.iter().any(|e| e == kept),
            "{kept} missing from {exports:?}"
        );
    }
    assert!(
        !optimized
            .with_file_name("gateway_wasm.trimmed.wasm")
            .exists(),
        "the trimmed intermediate module was left behind"
    );
}
