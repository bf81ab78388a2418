//! Push and pull against a real OCI registry (Debian's docker-registry, distribution 2.8), with
//! skopeo as an independent reader of both the layouts and the registry copies.

// Integration tests: failing loudly (unwrap, panic) is the point here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use packager::formats::{self, Manifest};

const FORMATS: [&str; 3] = ["compat", "oci", "cncf"];

fn package_fixture(dir: &std::path::Path, format: &str) -> (std::path::PathBuf, Vec<u8>, String) {
    let (wasm, module) = fixture(dir, &format!("{format}.wasm"), GOOD_WAT);
    let out_dir = dir.join(format!("layout-{format}"));
    let out = packager(&[
        "package",
        "--format",
        format,
        "--out",
        out_dir.to_str().unwrap(),
        "--wasm",
        wasm.to_str().unwrap(),
        "--artifact-version",
        "0.1.0",
        "--source",
        "https://example.invalid/gateway-wasm",
        "--revision",
        "0123456789abcdef0123456789abcdef01234567",
        "--created",
        "2024-05-06T07:08:09Z",
    ]);
    let digest = manifest_digest(&ok(&out));
    (out_dir, module, digest)
}

/// Packages the fixture in `format` and pushes it to `name:0.1.0` on `registry`; returns the
/// repository, the module bytes and the manifest digest.
fn pushed_fixture(
    registry: &TestRegistry,
    dir: &std::path::Path,
    format: &str,
    name: &str,
) -> (String, Vec<u8>, String) {
    let (layout, module, digest) = package_fixture(dir, format);
    let repo = format!("{}/{name}", registry.host());
    push(&layout, &format!("{repo}:0.1.0"));
    (repo, module, digest)
}

#[test]
fn each_format_pushes_and_pulls_back_byte_identical() {
    let registry = TestRegistry::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for format in FORMATS {
        let (layout, module, digest) = package_fixture(tmp.path(), format);

        // Push; skopeo reads our manifest from the layout and the same bytes from the registry.
        let repo = format!("{}/gateway-wasm-{format}", registry.host());
        let raw = push_and_inspect(&layout, &repo, "0.1.0", &digest);
        let manifest: Manifest = serde_json::from_slice(&raw).unwrap();
        assert_eq!(
            formats::detect(&manifest, "layout").unwrap().0.name(),
            format
        );

        // Pull by pinned digest and by tag: byte-identical module.
        for reference in [
            format!("{repo}@{digest}"),
            format!("{repo}:0.1.0@{digest}"),
            format!("{repo}:0.1.0"),
        ] {
            let out_file = tmp.path().join(format!("pulled-{format}.wasm"));
            let pulled = pull_identical(&reference, &out_file, &module);
            assert!(pulled.contains(&format!("({format} format)")), "{pulled}");
            assert!(pulled.contains(&digest), "{pulled}");
            std::fs::remove_file(&out_file).unwrap();
        }
    }
}

#[test]
fn push_without_tag_uses_the_layout_tag() {
    let registry = TestRegistry::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (layout, _, digest) = package_fixture(tmp.path(), "compat");
    let repo = format!("{}/untagged", registry.host());
    let out = push(&layout, &repo);
    assert!(out.contains(&format!("pushed {repo}:0.1.0")), "{out}");
    let remote = registry_manifest(&format!("{repo}:0.1.0"));
    assert_eq!(format!("sha256:{}", sha256_hex(&remote)), digest);
}

#[test]
fn wrong_digest_on_pull_fails_with_expected_and_got() {
    let registry = TestRegistry::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _, digest) = pushed_fixture(&registry, tmp.path(), "compat", "pinned");

    let wrong = format!("sha256:{}", "0".repeat(64));
    let out_file = tmp.path().join("never.wasm");

    // Tag and digest: the tag resolves to another digest.
    let err = fails(&pull(&format!("{repo}:0.1.0@{wrong}"), &out_file, None));
    assert!(err.contains("manifest digest mismatch"), "{err}");
    assert!(err.contains(&format!("expected {wrong}")), "{err}");
    assert!(err.contains(&format!("got {digest}")), "{err}");

    // Digest only: the registry has no such manifest.
    let err = fails(&pull(&format!("{repo}@{wrong}"), &out_file, None));
    assert!(err.contains(&format!("no manifest {wrong} in")), "{err}");

    // The module sha256 given on the command line must match too.
    let err = fails(&pull(
        &format!("{repo}:0.1.0"),
        &out_file,
        Some(&"f".repeat(64)),
    ));
    assert!(err.contains("module sha256 mismatch"), "{err}");
    assert!(
        err.contains(&format!("expected {}", "f".repeat(64))),
        "{err}"
    );
    assert!(
        !out_file.exists(),
        "a failed pull left {}",
        out_file.display()
    );
}

#[test]
fn unreachable_registry_names_the_address() {
    let port = free_port();
    let tmp = tempfile::tempdir().unwrap();
    let err = fails(&pull(
        &format!("127.0.0.1:{port}/nothing:1"),
        &tmp.path().join("x.wasm"),
        None,
    ));
    assert!(
        err.contains(&format!(
            "cannot reach the registry at http://127.0.0.1:{port}"
        )),
        "{err}"
    );

    let (layout, _, _) = package_fixture(tmp.path(), "cncf");
    let err = fails(&packager(&[
        "push",
        layout.to_str().unwrap(),
        &format!("127.0.0.1:{port}/nothing:1"),
        "--plain-http",
    ]));
    assert!(
        err.contains(&format!(
            "cannot reach the registry at http://127.0.0.1:{port}"
        )),
        "{err}"
    );
}

#[test]
fn snippets_fill_in_digests_and_the_remote_blob_serves_the_module() {
    let registry = TestRegistry::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (repo, module, digest) = pushed_fixture(&registry, tmp.path(), "oci", "snippets");

    let out = ok(&packager(&[
        "snippets",
        &format!("{repo}:0.1.0"),
        "--plain-http",
    ]));
    let module_sha = sha256_hex(&module);
    let manifest_hex = digest.trim_start_matches("sha256:");
    assert!(
        out.contains(&format!("url: oci://{repo}@{digest}")),
        "{out}"
    );
    assert!(out.contains(&format!("sha256: {manifest_hex}")), "{out}");
    assert!(out.contains(&format!("sha256: {module_sha}")), "{out}");
    assert!(out.contains("kind: WasmPlugin"), "{out}");
    assert!(out.contains("kind: EnvoyExtensionPolicy"), "{out}");

    // The remote URI in the Envoy snippet serves exactly the module.
    let uri = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("uri: "))
        .unwrap();
    let path = uri.split_once(&registry.host()).unwrap().1;
    let (status, body) = http_get(registry.port, path).unwrap();
    assert_eq!(status, 200, "GET {uri}");
    assert_eq!(sha256_hex(&body), module_sha);

    // A pinned reference with the module sha256 needs no registry at all.
    let offline = ok(&packager(&[
        "snippets",
        &format!("127.0.0.1:1/gone@{digest}"),
        "--module-sha256",
        &module_sha,
    ]));
    assert!(
        offline.contains(&format!("url: oci://127.0.0.1:1/gone@{digest}")),
        "{offline}"
    );
}

#[test]
fn authenticated_registry_takes_stdin_and_docker_config_credentials() {
    let registry = TestRegistry::start_with_htpasswd("alice", "s3cr3t-pass").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (layout, module, _) = package_fixture(tmp.path(), "cncf");
    let repo = format!("{}/private", registry.host());
    let layout = layout.to_str().unwrap();

    // Anonymous: refused, and the message says which credentials were used and what to do.
    let err = fails(&packager(&[
        "push",
        layout,
        &format!("{repo}:1"),
        "--plain-http",
    ]));
    assert!(
        err.contains(&format!(
            "the registry at http://{} refused access",
            registry.host()
        )),
        "{err}"
    );
    assert!(err.contains("credentials used: anonymous"), "{err}");

    // `packager push` as alice, the password on stdin.
    let push_as_alice = |password: &str| {
        packager_with_stdin(
            &[
                "push",
                layout,
                &format!("{repo}:1"),
                "--plain-http",
                "--username",
                "alice",
                "--password-stdin",
            ],
            Some(&format!("{password}\n")),
        )
    };
    // Wrong password: refused too.
    let err = fails(&push_as_alice("wrong"));
    assert!(err.contains("refused access"), "{err}");
    assert!(err.contains("user alice (command line)"), "{err}");

    // --username + --password-stdin: accepted; the secret never appears in the output.
    let out = push_as_alice("s3cr3t-pass");
    ok(&out);
    assert!(!stderr(&out).contains("s3cr3t-pass") && !stdout(&out).contains("s3cr3t-pass"));

    // The Docker config file (`auth` = base64 of user:password): pull works.
    let docker_config = tmp.path().join("docker");
    std::fs::create_dir(&docker_config).unwrap();
    std::fs::write(
        docker_config.join("config.json"),
        format!(
            r#"{{"auths": {{"{}": {{"auth": "YWxpY2U6czNjcjN0LXBhc3M="}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    let out_file = tmp.path().join("private.wasm");
    let out = packager_full(
        &[
            "pull",
            &format!("{repo}:1"),
            "--out",
            out_file.to_str().unwrap(),
            "--plain-http",
        ],
        None,
        &docker_config,
    );
    ok(&out);
    assert!(
        stderr(&out).contains("user alice (from "),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&out_file).unwrap(), module);
}
