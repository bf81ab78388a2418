//! `packager image` end to end: the real static musl build of the controller-shim (built once per
//! test binary and shared by every test here), its digest across two builds, the image as skopeo
//! and the OCI spec's own types read it, a push to the real Debian `docker-registry` with the SBOM
//! as a referrer, a pull back, the binary run from the unpacked layer, and the image run as a
//! container by Debian's podman (runc, read-only root, user 65532).
// Integration tests: failing loudly (unwrap, panic) is the point here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;
use packager::formats::{Index, Manifest};
use serde_json::Value;

const TAG: &str = "0.1.0";
const SOURCE: &str = "https://example.invalid/gateway-wasm";
const REVISION: &str = "0123456789abcdef0123456789abcdef01234567";

/// The image built once: its layout directory and digest.
struct Built {
    layout: PathBuf,
    digest: String,
    _dir: tempfile::TempDir,
}

fn image_args(out: &Path) -> Vec<String> {
    [
        "image",
        "--out",
        out.to_str().unwrap(),
        "--source",
        SOURCE,
        "--revision",
        REVISION,
    ]
    .map(String::from)
    .to_vec()
}

fn run_image(out: &Path, envs: &[(&str, &str)]) -> String {
    let args = image_args(out);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stdout = ok(&packager_with_env(&args, envs));
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("image: "))
        .unwrap_or_else(|| panic!("no `image:` line in:\n{stdout}"))
        .trim()
        .to_string()
}

/// Builds the image twice from the same checkout (the second time cargo has nothing to compile,
/// the layout is assembled again): the digests and every blob must be identical.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        ensure_debian_package("musl-gcc", "musl-tools");
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first");
        let second = dir.path().join("second");
        let digest = run_image(&first, &[]);
        let again = run_image(&second, &[]);
        assert_eq!(digest, again, "two builds of the same commit differ");
        for layout in [&first, &second] {
            assert_eq!(
                std::fs::read(layout.join("index.json")).unwrap(),
                std::fs::read(first.join("index.json")).unwrap()
            );
        }
        let blobs = |d: &Path| {
            let mut names: Vec<_> = std::fs::read_dir(d.join("blobs/sha256"))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            names
        };
        assert_eq!(
            blobs(&first),
            blobs(&second),
            "the blobs differ (the SBOM?)"
        );
        Built {
            layout: first,
            digest,
            _dir: dir,
        }
    })
}

fn json_file(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap()
}

#[test]
fn image_is_reproducible_and_carries_user_entrypoint_labels_and_platform() {
    let built = built();
    let oci = format!("oci:{}:{TAG}", built.layout.display());

    // skopeo reads the layout: the manifest is ours, the config says how to run the image.
    let raw = skopeo(&["inspect", "--raw", &oci]);
    assert_eq!(format!("sha256:{}", sha256_hex(&raw)), built.digest);
    let config: Value = serde_json::from_slice(&skopeo(&["inspect", "--config", &oci])).unwrap();
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/controller-shim"])
    );
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    let labels = &config["config"]["Labels"];
    assert_eq!(labels["org.opencontainers.image.source"], SOURCE);
    assert_eq!(labels["org.opencontainers.image.revision"], REVISION);
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");

    // The OCI spec's own types (oci-spec) read the manifest and config too.
    let manifest: oci_spec::image::ImageManifest = serde_json::from_slice(&raw).unwrap();
    assert_eq!(manifest.layers().len(), 1, "one layer");
    let typed: oci_spec::image::ImageConfiguration =
        serde_json::from_slice(&blob(&built.layout, manifest.config().digest().as_ref())).unwrap();
    assert_eq!(
        typed.config().as_ref().unwrap().user().as_deref(),
        Some("65532:65532")
    );

    // index.json: the tagged image (with its platform) and the untagged SBOM referrer.
    let index: Index = serde_json::from_value(json_file(&built.layout.join("index.json"))).unwrap();
    assert_eq!(index.manifests.len(), 2, "{index:?}");
    let image = &index.manifests[0];
    assert_eq!(image.digest, built.digest);
    assert_eq!(image.platform.as_ref().unwrap().architecture, "amd64");
    let sbom: Manifest =
        serde_json::from_slice(&blob(&built.layout, &index.manifests[1].digest)).unwrap();
    assert_eq!(sbom.subject.unwrap().digest, built.digest);

    // SOURCE_DATE_EPOCH sets the timestamps, and they are part of the digest.
    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("epoch");
    let digest = run_image(&other, &[("SOURCE_DATE_EPOCH", "1700000000")]);
    assert_ne!(digest, built.digest);
    let config: Value = serde_json::from_slice(&skopeo(&[
        "inspect",
        "--config",
        &format!("oci:{}:{TAG}", other.display()),
    ]))
    .unwrap();
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
}

/// Whether an ELF file asks for a program interpreter (a dynamic loader the image does not have).
fn has_interpreter(elf: &[u8]) -> bool {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not a 64-bit ELF file");
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap());
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (size, count) = (usize::from(u16_at(0x36)), usize::from(u16_at(0x38)));
    (0..count).any(|i| {
        let at = phoff + i * size;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3 // PT_INTERP
    })
}

fn unpack_layer(layout: &Path, manifest: &Manifest, into: &Path) {
    let gz = blob(layout, &manifest.layers[0].digest);
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz.as_slice()));
    archive.set_preserve_permissions(true);
    archive.unpack(into).unwrap();
}

#[test]
fn pushed_image_passes_skopeo_its_sbom_is_a_referrer_and_the_binary_runs_from_the_layer() {
    let built = built();
    let registry = TestRegistry::start().unwrap();
    let repo = format!("{}/gateway-wasm/controller-shim", registry.host());
    let pushed = push(&built.layout, &format!("{repo}:{TAG}"));
    assert!(
        pushed.contains(&format!("{repo}@{}", built.digest)),
        "{pushed}"
    );

    // skopeo reads the registry copy: same manifest, the image's platform, user and entrypoint.
    let docker = format!("docker://{repo}:{TAG}");
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &docker]);
    assert_eq!(format!("sha256:{}", sha256_hex(&raw)), built.digest);
    let inspected: Value =
        serde_json::from_slice(&skopeo(&["inspect", "--tls-verify=false", &docker])).unwrap();
    assert_eq!(inspected["Architecture"], "amd64");
    assert_eq!(inspected["Os"], "linux");
    assert_eq!(
        inspected["Labels"]["org.opencontainers.image.source"],
        SOURCE
    );
    let config: Value = serde_json::from_slice(&skopeo(&[
        "inspect",
        "--config",
        "--tls-verify=false",
        &docker,
    ]))
    .unwrap();
    assert_eq!(config["config"]["User"], "65532:65532");

    // The SBOM: listed under the referrers tag sha256-<hex>, its subject is the image, and it
    // names the crates compiled into the binary.
    let referrers_tag = built.digest.replacen(':', "-", 1);
    let referrers: Index = serde_json::from_slice(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{repo}:{referrers_tag}"),
    ]))
    .unwrap();
    assert_eq!(referrers.manifests.len(), 1, "{referrers:?}");
    let listed = &referrers.manifests[0];
    assert_eq!(
        listed.artifact_type.as_deref(),
        Some("application/vnd.cyclonedx+json")
    );
    let sbom_manifest: Manifest = serde_json::from_slice(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{repo}@{}", listed.digest),
    ]))
    .unwrap();
    assert_eq!(sbom_manifest.subject.as_ref().unwrap().digest, built.digest);
    let (status, body) = http_get(
        registry.port,
        &format!(
            "/v2/gateway-wasm/controller-shim/blobs/{}",
            sbom_manifest.layers[0].digest
        ),
    )
    .unwrap();
    assert_eq!(status, 200);
    let bom: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(bom["bomFormat"], "CycloneDX");
    assert_eq!(bom["metadata"]["component"]["name"], "controller-shim");
    let purls: Vec<&str> = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["purl"].as_str())
        .collect();
    for krate in ["kube-client", "rustls", "gateway-api", "engine"] {
        assert!(
            purls
                .iter()
                .any(|p| p.starts_with(&format!("pkg:cargo/{krate}@"))),
            "{krate} not in the SBOM: {purls:?}"
        );
    }
    // Pushing again finds everything in place and keeps one referrer.
    push(&built.layout, &format!("{repo}:{TAG}"));
    let again: Index = serde_json::from_slice(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{repo}:{referrers_tag}"),
    ]))
    .unwrap();
    assert_eq!(again.manifests.len(), 1);

    // Pull it back with skopeo, unpack the layer, run the binary from there.
    let tmp = tempfile::tempdir().unwrap();
    let pulled = tmp.path().join("pulled");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &docker,
        &format!("oci:{}:{TAG}", pulled.display()),
    ]);
    let index: Index = serde_json::from_value(json_file(&pulled.join("index.json"))).unwrap();
    assert_eq!(index.manifests[0].digest, built.digest);
    let manifest: Manifest = serde_json::from_slice(&blob(&pulled, &built.digest)).unwrap();
    let root = tmp.path().join("rootfs");
    unpack_layer(&pulled, &manifest, &root);
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(passwd.contains(":65532:65532:"), "{passwd}");
    let certs = std::fs::read_to_string(root.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    assert!(certs.matches("BEGIN CERTIFICATE").count() > 100);
    let binary = root.join("usr/local/bin/controller-shim");
    assert!(
        !has_interpreter(&std::fs::read(&binary).unwrap()),
        "the binary needs a dynamic loader, which the image does not have"
    );

    let version = Command::new(&binary).arg("--version").output().unwrap();
    assert!(version.status.success(), "{version:?}");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("controller-shim {}", env!("CARGO_PKG_VERSION"))
    );
    let out = tmp.path().join("render");
    let render = Command::new(&binary)
        .args(["render", "--manifests"])
        .arg(workspace_root().join("examples/quickstart"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        render.status.success(),
        "render failed: {}",
        String::from_utf8_lossy(&render.stderr)
    );
    assert_quickstart_rendered(&out);
}

/// The files `render` writes for the quickstart's Gateway.
fn assert_quickstart_rendered(out: &Path) -> Vec<PathBuf> {
    let gateway = out.join("infra").join("quickstart");
    let files: Vec<PathBuf> = [
        "bootstrap.yaml",
        "ecds/extension-config.json",
        "cds/clusters.yaml",
    ]
    .iter()
    .map(|f| gateway.join(f))
    .collect();
    for file in &files {
        assert!(file.is_file(), "{} was not written", file.display());
    }
    let status = std::fs::read_to_string(out.join("status.txt")).unwrap();
    assert!(status.contains("Accepted"), "{status}");
    files
}

/// `podman` with its own storage under `root`: nothing touches the machine's containers.
fn podman(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new("podman")
        .arg("--root")
        .arg(root.join("storage"))
        .arg("--runroot")
        .arg(root.join("run"))
        .args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ])
        .args(args)
        .output()
        .expect("running podman")
}

#[test]
fn podman_runs_the_image_as_65532_with_a_read_only_root() {
    let built = built();
    ensure_debian_package("podman", "podman");
    ensure_debian_package("runc", "runc");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // Only the image's user may write the output; the container must not run as root.
    std::os::unix::fs::chown(&out, Some(65532), Some(65532)).unwrap();
    let quickstart = workspace_root().join("examples/quickstart");
    // podman names an image pulled from a layout after its path, and image names must be lower
    // case: a copy of the layout under a lower-case name.
    let lower = tempfile::Builder::new()
        .prefix(&format!("gateway-wasm-podman-{}", std::process::id()))
        .rand_bytes(0)
        .tempdir()
        .unwrap();
    let layout = lower.path().join("layout");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(&built.layout)
        .arg(&layout)
        .status()
        .unwrap();
    assert!(copied.success());
    let image = format!("oci:{}:{TAG}", layout.display());
    let mount_in = format!("{}:/manifests:ro", quickstart.display());
    let mount_out = format!("{}:/out", out.display());
    let run = |command: &[&str]| {
        let mut args = vec![
            "run",
            "--rm",
            "--runtime",
            "runc",
            "--read-only",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "-v",
            &mount_in,
            "-v",
            &mount_out,
            &image,
        ];
        args.extend(command);
        podman(tmp.path(), &args)
    };

    let rendered = run(&["render", "--manifests", "/manifests", "--out", "/out"]);
    assert!(
        rendered.status.success(),
        "podman run failed ({}): {}",
        rendered.status,
        String::from_utf8_lossy(&rendered.stderr)
    );
    for file in assert_quickstart_rendered(&out) {
        let meta = std::fs::metadata(&file).unwrap();
        use std::os::unix::fs::MetadataExt as _;
        assert_eq!(
            (meta.uid(), meta.gid()),
            (65532, 65532),
            "{} is not owned by the image's user",
            file.display()
        );
    }

    // The root really is read-only: writing anywhere but the mounted volume fails.
    let refused = run(&["render", "--manifests", "/manifests", "--out", "/elsewhere"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("Read-only file system"),
        "expected a read-only root: {stderr}"
    );
}
