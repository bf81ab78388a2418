//! The command line: argument definitions and the glue from each subcommand to the modules.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::auth;
use crate::builder::{self, Workspace};
use crate::check::{self, CheckReport, human_size};
use crate::formats::{self, Format, Metadata};
use crate::image::{self, Arch};
use crate::kong;
use crate::layout;
use crate::registry::{Connect, Registry, Target, progress};
use crate::schema;
use crate::snippets::{self, SnippetInput};
use crate::util::rfc3339_utc;

/// Writes a line to standard output, ignoring a closed pipe (`packager check f | head`).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Writes text to standard output as is, ignoring a closed pipe.
fn say_raw(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

const ABOUT: &str = "Build, check, package and publish the gateway-wasm proxy-wasm filter.";
const LONG_ABOUT: &str = "Build, check, package and publish the gateway-wasm proxy-wasm filter.

Publish flow:
  packager build --release --optimize
  packager package --format compat --out out/oci
  packager push out/oci registry.example/gateway-wasm:0.1.0
  packager snippets registry.example/gateway-wasm:0.1.0";

#[derive(Debug, Parser)]
#[command(name = "packager", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    /// The gateway-wasm Cargo workspace (default: found from the current directory).
    #[arg(
        long,
        global = true,
        env = "GATEWAY_WASM_WORKSPACE",
        value_name = "DIR"
    )]
    pub workspace: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Build plugin/ for wasm32-wasip1, optionally optimize it with wasm-opt, and check it.
    ///
    /// The release build uses the size-tuned `wasm` profile
    /// (target/wasm32-wasip1/wasm/gateway_wasm.wasm); without --release the dev profile
    /// (target/wasm32-wasip1/debug/gateway_wasm.wasm). --optimize writes gateway_wasm.opt.wasm
    /// next to it (without the callbacks no host calls, then wasm-opt -Oz), which `package` and
    /// `kong-bundle` then prefer.
    Build(BuildArgs),
    /// Check that FILE is a proxy-wasm ABI 0.2.1 HTTP filter both Envoy and Kong load.
    ///
    /// The module must validate, export the ABI 0.2.1 entry points with the ABI's signatures and
    /// a 32-bit `memory`, and import only host functions both hosts provide. Prints the size and
    /// sha256; exits non-zero and names every problem otherwise.
    Check(CheckArgs),
    /// Remove the proxy_on_* exports a host never calls for this filter (writes FILE --out OUT).
    ///
    /// The proxy-wasm SDK exports every callback of the ABI, and Envoy calls the stream callbacks
    /// a module exports (log, done, body chunks, trailers) on every stream, so fewer exports cost
    /// less per request. `--host envoy` keeps only what Envoy calls for this filter (Kong cannot load that
    /// module: ngx_wasm_module calls proxy_on_done, proxy_on_log and the body and trailer
    /// callbacks unconditionally); `--host kong` keeps every HTTP callback and loads in both
    /// hosts. Only the export section changes; `wasm-opt -Oz` afterwards drops the dead code.
    TrimExports(TrimExportsArgs),
    /// Install binaryen's wasm-opt into <workspace>/.tools with npm (binaryen@132).
    InstallTools,
    /// Write the module as an OCI image-layout directory in the chosen format.
    ///
    /// Output is deterministic: the same module and metadata give the same digests. The layout is
    /// built next to DIR and renamed into place, so a failure leaves nothing half-written.
    Package(PackageArgs),
    /// Package the Envoy dynamic module (libgateway_wasm_dynamic.so) as an OCI artifact and a tarball.
    ///
    /// Builds it with `cargo build --release -p dynamic-module` unless --module names one. The
    /// artifact has media types of its own (artifactType
    /// application/vnd.gateway-wasm.envoy.dynamic-module.v1, the library as the one layer), so no
    /// Wasm fetcher mistakes it for a Wasm module; its annotations record the library's sha256 and
    /// the Envoy versions it loads into (1.40-1.41, ABI v0.2.0). `push` and `pull` handle it.
    DynamicModule(DynamicModuleArgs),
    /// Build the controller-shim container image as an OCI image-layout directory.
    ///
    /// Builds the shim as a static musl binary (`cargo build --profile image --target
    /// <arch>-unknown-linux-musl`; x86_64 needs Debian's musl-tools, aarch64 cargo-zigbuild) and
    /// writes one layer: /usr/local/bin/controller-shim, CA certificates
    /// (/etc/ssl/certs/ca-certificates.crt, Mozilla's roots from the webpki-root-certs crate) and
    /// /etc/passwd with the user 65532. Entrypoint: the binary; User: 65532:65532; OCI labels
    /// source, version, revision, licenses, created. Several --arch give an image index.
    ///
    /// A CycloneDX SBOM of the binary's crates (cargo-cyclonedx from Cargo.lock) is stored as an
    /// OCI referrer of the image; `push` uploads it and lists it under the tag sha256-<digest>.
    ///
    /// Reproducible: timestamps come from $SOURCE_DATE_EPOCH (else the last commit), tar entries
    /// are sorted with fixed owners and modes; the same commit gives the same digest.
    Image(ImageArgs),
    /// Push an OCI layout directory (a Wasm artifact or the controller-shim image) to a registry.
    ///
    /// Uploads blobs (POST then PUT), the manifests of a multi-platform index, then the tagged
    /// manifest; referrers in the layout (the image's SBOM) follow, listed under the OCI
    /// referrers tag sha256-<digest>. Prints the pinned reference.
    Push(PushArgs),
    /// Pull an artifact (compat, oci or cncf format), verify it, and write the module to FILE.
    ///
    /// A reference pinned with @sha256:… must match the manifest's digest; the module must match
    /// the sha256 recorded at package time (and --sha256 when given).
    Pull(PullArgs),
    /// Write a Kong 3.4-3.9 (WasmX) filter bundle: gateway_wasm.wasm and gateway_wasm.meta.json
    /// (the config schema, and the Kong versions the filter works with; docs/kong.md).
    KongBundle(KongArgs),
    /// Print Istio WasmPlugin, Envoy Gateway EnvoyExtensionPolicy and Envoy remote-source
    /// snippets for a published artifact, with digest and sha256 filled in.
    Snippets(SnippetArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Build the size-tuned release artifact (profile `wasm`) instead of the debug build.
    #[arg(long)]
    pub release: bool,
    /// Remove the proxy_on_* exports neither Envoy nor Kong calls for this filter (as
    /// `trim-exports --host kong`), then run binaryen's wasm-opt -Oz, which drops the code only
    /// they reached. The result loads in both hosts.
    #[arg(long)]
    pub optimize: bool,
    /// Install wasm-opt into <workspace>/.tools first when it is not found (implies nothing else).
    #[arg(long)]
    pub install_tools: bool,
}

#[derive(Debug, Args)]
pub struct TrimExportsArgs {
    /// The .wasm file to trim.
    pub file: PathBuf,
    /// The host the trimmed module is for.
    #[arg(long, value_enum)]
    pub host: crate::entry_points::Host,
    /// Where to write the trimmed module (written to a temporary file and renamed).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The .wasm file to check.
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct PackageArgs {
    /// Artifact format.
    #[arg(long, value_enum, default_value_t = Format::Compat)]
    pub format: Format,
    /// The OCI layout directory to write (replaced if it is already a layout).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The module to package (default: the plugin's release build).
    #[arg(long, value_name = "FILE")]
    pub wasm: Option<PathBuf>,
    #[command(flatten)]
    pub provenance: ProvenanceArgs,
}

#[derive(Debug, Args)]
pub struct DynamicModuleArgs {
    /// The OCI layout directory to write (replaced if it is already a layout).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Also write the library and its metadata as a deterministic .tar.gz.
    #[arg(long, value_name = "FILE")]
    pub tarball: Option<PathBuf>,
    /// The library to package (default: build the workspace's release build).
    #[arg(long, value_name = "FILE")]
    pub module: Option<PathBuf>,
    #[command(flatten)]
    pub provenance: ProvenanceArgs,
}

#[derive(Debug, Args)]
pub struct ImageArgs {
    /// The OCI layout directory to write (replaced if it is already a layout).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Architectures to build (repeat for a multi-platform image index).
    #[arg(long = "arch", value_enum, default_values_t = [Arch::X86_64], value_name = "ARCH")]
    pub arches: Vec<Arch>,
    /// Leave out the SBOM (otherwise generated with cargo-cyclonedx, installed when missing).
    #[arg(long)]
    pub no_sbom: bool,
    #[command(flatten)]
    pub provenance: ProvenanceArgs,
}

/// Provenance recorded in the annotations (and, for the image, the labels).
#[derive(Debug, Args)]
pub struct ProvenanceArgs {
    /// org.opencontainers.image.version (default: the workspace version).
    #[arg(long = "artifact-version", value_name = "VERSION")]
    pub version: Option<String>,
    /// The tag recorded in index.json (default: the version).
    #[arg(long)]
    pub tag: Option<String>,
    /// org.opencontainers.image.source: the project URL.
    #[arg(long, env = "GATEWAY_WASM_SOURCE", value_name = "URL")]
    pub source: Option<String>,
    /// org.opencontainers.image.revision (default: `git rev-parse HEAD`).
    #[arg(long)]
    pub revision: Option<String>,
    /// org.opencontainers.image.created, RFC 3339 (default: $SOURCE_DATE_EPOCH, else the last
    /// commit's time, so that rebuilding the same commit gives the same digest).
    #[arg(long, value_name = "RFC3339")]
    pub created: Option<String>,
}

#[derive(Debug, Args, Clone)]
pub struct RegistryArgs {
    /// Talk to the registry over plain HTTP (local registries).
    #[arg(long)]
    pub plain_http: bool,
    /// Registry user name (the password is read with --password-stdin). Without it, credentials
    /// come from $DOCKER_CONFIG/config.json or ~/.docker/config.json, else anonymous.
    #[arg(long)]
    pub username: Option<String>,
    /// Read the registry password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The OCI layout directory written by `packager package` or `packager image`.
    pub dir: PathBuf,
    /// Destination, e.g. registry.example/gateway-wasm:0.1.0 (without a tag, the layout's tag).
    #[arg(value_name = "REF")]
    pub reference: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Source, e.g. registry.example/gateway-wasm:0.1.0 or …@sha256:<manifest digest>.
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Where to write the module.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Expected sha256 of the module itself (hex).
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    /// Write the module even if `packager check` would reject it.
    #[arg(long)]
    pub no_check: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct KongArgs {
    /// The bundle directory to write.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The module to bundle (default: the plugin's release build).
    #[arg(long, value_name = "FILE")]
    pub wasm: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SnippetArgs {
    /// The published artifact, e.g. registry.example/gateway-wasm:0.1.0.
    #[arg(value_name = "REF")]
    pub reference: String,
    /// The module's sha256: with a ref pinned by @sha256:…, no registry access is needed.
    #[arg(long, value_name = "HEX")]
    pub module_sha256: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Parses the command line, runs it, prints any error, and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn run(cli: Cli) -> Result<()> {
    let ws = cli.workspace.as_deref();
    match cli.command {
        Cmd::Build(args) => build(ws, &args),
        Cmd::Check(args) => check_file(&args.file).map(|_| ()),
        Cmd::TrimExports(args) => trim_exports(&args),
        Cmd::InstallTools => {
            let ws = Workspace::locate(ws)?;
            let bin = builder::install_tools(&ws)?;
            say!("wasm-opt installed at {}", bin.display());
            Ok(())
        }
        Cmd::Package(args) => package(ws, &args),
        Cmd::DynamicModule(args) => dynamic_module(ws, &args),
        Cmd::Image(args) => image(ws, &args),
        Cmd::Push(args) => runtime()?.block_on(push(&args)),
        Cmd::Pull(args) => runtime()?.block_on(pull(&args)),
        Cmd::KongBundle(args) => kong_bundle(ws, &args),
        Cmd::Snippets(args) => runtime()?.block_on(snippets(&args)),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn read_module(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading the module {}", path.display()))
}

/// Checks a file and prints the report.
fn check_file(path: &Path) -> Result<CheckReport> {
    let bytes = read_module(path)?;
    let report = check::check_module(&bytes, &path.display().to_string())?;
    say!("{}: ok", path.display());
    say!("{report}");
    Ok(report)
}

fn trim_exports(args: &TrimExportsArgs) -> Result<()> {
    let (size, trimmed) = trim_file(&args.file, args.host, &args.out)?;
    say!(
        "{}: {size} -> {} bytes, removed {} exports: {}",
        args.out.display(),
        trimmed.module.len(),
        trimmed.removed.len(),
        trimmed.removed.join(", ")
    );
    Ok(())
}

/// Writes `file` without the callbacks `host` never calls to `out`; returns the size of `file`
/// and what was removed.
fn trim_file(
    file: &Path,
    host: crate::entry_points::Host,
    out: &Path,
) -> Result<(usize, crate::entry_points::Trimmed)> {
    let bytes = read_module(file)?;
    let trimmed = crate::entry_points::trim(&bytes, host)
        .with_context(|| format!("trimming {}", file.display()))?;
    atomic_file::write(out, &trimmed.module, atomic_file::Access::Public)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok((bytes.len(), trimmed))
}

fn build(ws: Option<&Path>, args: &BuildArgs) -> Result<()> {
    let ws = Workspace::locate(ws)?;
    // Find wasm-opt before a long build, so a missing tool fails fast.
    let wasm_opt = if args.optimize {
        match (builder::find_wasm_opt(&ws), args.install_tools) {
            (Some(bin), _) => Some(bin),
            (None, true) => Some(builder::install_tools(&ws)?),
            (None, false) => bail!("{}", builder::missing_wasm_opt_message(&ws)),
        }
    } else {
        None
    };
    let built = builder::build_plugin(&ws, args.release)?;
    let size = std::fs::metadata(&built)
        .with_context(|| format!("reading {}", built.display()))?
        .len();
    progress(&format!("built {} ({size} bytes)", built.display()));
    let module = match wasm_opt {
        Some(bin) => {
            let out = ws.optimized_artifact(args.release);
            // The SDK exports every proxy_on_* callback; the ones no host calls for this filter
            // keep their code alive through wasm-opt unless their exports go first. Kong's set is
            // the one both hosts load (`entry_points.rs`).
            let staged = out.with_file_name("gateway_wasm.trimmed.wasm");
            let (_, trimmed) = trim_file(&built, crate::entry_points::Host::Kong, &staged)?;
            progress(&format!(
                "removed {} exports neither Envoy nor Kong calls: {}",
                trimmed.removed.len(),
                trimmed.removed.join(", ")
            ));
            let optimized = builder::optimize(&bin, &staged, &out);
            let _ = std::fs::remove_file(&staged);
            optimized?;
            let opt_size = std::fs::metadata(&out)
                .with_context(|| format!("reading {}", out.display()))?
                .len();
            progress(&format!(
                "optimized {} ({size} -> {opt_size} bytes)",
                out.display()
            ));
            out
        }
        None => built,
    };
    progress(&format!("checking {}", module.display()));
    check_file(&module)?;
    Ok(())
}

fn module_path(ws: Option<&Path>, wasm: Option<&PathBuf>) -> Result<PathBuf> {
    match wasm {
        Some(path) => Ok(path.clone()),
        None => Workspace::locate(ws)?.default_module(),
    }
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Validates a user-supplied RFC 3339 timestamp's shape (`YYYY-MM-DDTHH:MM:SS…`).
fn check_rfc3339(value: &str) -> Result<String> {
    let b = value.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let ok = b.len() >= 20
        && digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && matches!(b.get(10), Some(b'T' | b't'))
        && digits(11..13)
        && digits(14..16)
        && digits(17..19);
    if !ok {
        bail!("--created `{value}` is not an RFC 3339 timestamp like 2024-01-02T03:04:05Z");
    }
    Ok(value.to_string())
}

fn metadata(args: &ProvenanceArgs, git_dir: &Path) -> Result<(Metadata, u64)> {
    let version = args
        .version
        .clone()
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string());
    let revision = args
        .revision
        .clone()
        .or_else(|| git(git_dir, &["rev-parse", "HEAD"]));
    let epoch = match std::env::var("SOURCE_DATE_EPOCH").ok() {
        Some(s) => s
            .trim()
            .parse::<u64>()
            .with_context(|| format!("SOURCE_DATE_EPOCH `{s}` is not a number of seconds"))?,
        None => git(git_dir, &["log", "-1", "--format=%ct"])
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
    };
    let created = match &args.created {
        Some(c) => check_rfc3339(c)?,
        None => rfc3339_utc(i64::try_from(epoch).unwrap_or(i64::MAX)),
    };
    if args.source.is_none() {
        progress("no --source given: the artifact will have no org.opencontainers.image.source");
    }
    let meta = Metadata {
        version,
        source: args.source.clone(),
        revision,
        created,
    };
    Ok((meta, epoch))
}

fn package(ws: Option<&Path>, args: &PackageArgs) -> Result<()> {
    let path = module_path(ws, args.wasm.as_ref())?;
    progress(&format!("packaging {} as {}", path.display(), args.format));
    let module = read_module(&path)?;
    check::check_module(&module, &path.display().to_string())
        .context("refusing to package a module that fails `packager check`")?;
    let git_dir = ws
        .map(Path::to_path_buf)
        .or_else(|| path.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let (meta, _) = metadata(&args.provenance, &git_dir)?;
    let artifact = formats::build_artifact(args.format, &module, &meta)?;
    let tag = args
        .provenance
        .tag
        .clone()
        .unwrap_or_else(|| meta.version.clone());
    layout::write_layout(&args.out, &artifact, &tag)?;
    say!(
        "wrote {} ({} format, tag {tag})",
        args.out.display(),
        args.format
    );
    say!("manifest: {}", artifact.manifest_digest);
    say!(
        "module:   sha256:{} ({} bytes, {})",
        artifact.module_sha256,
        module.len(),
        human_size(module.len())
    );
    Ok(())
}

fn dynamic_module(ws: Option<&Path>, args: &DynamicModuleArgs) -> Result<()> {
    let path = match &args.module {
        Some(path) => path.clone(),
        None => builder::build_dynamic_module(&Workspace::locate(ws)?)?,
    };
    let library = read_module(&path)?;
    let git_dir = ws
        .map(Path::to_path_buf)
        .or_else(|| path.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let (meta, _) = metadata(&args.provenance, &git_dir)?;
    let tag = args
        .provenance
        .tag
        .clone()
        .unwrap_or_else(|| meta.version.clone());
    let (content, digest) = crate::dynamic::artifact(&library, &meta, &tag)
        .with_context(|| format!("packaging {}", path.display()))?;
    layout::write_content(&args.out, &content)?;
    say!(
        "wrote {} (Envoy dynamic module for Envoy {}-{}, tag {tag})",
        args.out.display(),
        crate::dynamic::ENVOY_MIN,
        crate::dynamic::ENVOY_MAX
    );
    say!("manifest: {digest}");
    if let Some(tarball) = &args.tarball {
        let bytes = crate::dynamic::tarball(&library)?;
        atomic_file::write(tarball, &bytes, atomic_file::Access::Public)?;
        say!("wrote {} ({} bytes)", tarball.display(), bytes.len());
    }
    say!(
        "library:  sha256:{} ({} bytes, {})",
        crate::util::sha256_hex(&library),
        library.len(),
        human_size(library.len())
    );
    Ok(())
}

fn image(ws: Option<&Path>, args: &ImageArgs) -> Result<()> {
    let ws = Workspace::locate(ws)?;
    let mut arches = args.arches.clone();
    arches.sort();
    arches.dedup();
    let (meta, epoch) = metadata(&args.provenance, &ws.root)?;
    let mut inputs = Vec::new();
    for &arch in &arches {
        let path = image::build::build_shim(&ws, arch)?;
        let binary = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        progress(&format!(
            "{} for {arch}: {} ({})",
            path.display(),
            human_size(binary.len()),
            binary.len()
        ));
        let sbom = if args.no_sbom {
            None
        } else {
            Some(image::sbom::generate(&ws, arch, &meta.created)?)
        };
        inputs.push(image::PlatformInput { arch, binary, sbom });
    }
    let image_meta = image::ImageMeta {
        version: meta.version.clone(),
        source: meta.source.clone(),
        revision: meta.revision.clone(),
        created: meta.created.clone(),
        epoch,
        licenses: env!("CARGO_PKG_LICENSE").to_string(),
    };
    let tag = args
        .provenance
        .tag
        .clone()
        .unwrap_or_else(|| meta.version.clone());
    let built = image::assemble(&inputs, &image::rootfs::ca_bundle(), &image_meta, &tag)?;
    layout::write_content(&args.out, &built.content)?;
    say!(
        "wrote {} (controller-shim image, tag {tag})",
        args.out.display()
    );
    say!("image: {}", built.top.digest);
    for (arch, manifest, sbom) in &built.platforms {
        let platform = arch.platform();
        say!(
            "{}/{}: {}{}",
            platform.os,
            platform.architecture,
            manifest.digest,
            sbom.as_ref()
                .map(|s| format!(" (SBOM {})", s.digest))
                .unwrap_or_default()
        );
    }
    Ok(())
}

fn connect(args: &RegistryArgs, target: &Target) -> Result<Registry> {
    let (auth, auth_source) = auth::resolve(
        target.registry(),
        args.username.as_deref(),
        args.password_stdin,
    )?;
    Ok(Registry::new(Connect {
        plain_http: args.plain_http,
        auth,
        auth_source,
    }))
}

async fn push(args: &PushArgs) -> Result<()> {
    let layout = layout::read_layout(&args.dir, None)?;
    let target = Target::parse(&args.reference)?;
    let registry = connect(&args.registry, &target)?;
    let digest = crate::push::push_layout(&registry, &layout, &target).await?;
    let tag = if target.explicit_tag {
        target.reference.tag().map(str::to_string)
    } else {
        layout.ref_name().map(str::to_string)
    };
    let base = format!("{}/{}", target.registry(), target.repository());
    if let Some(tag) = tag {
        say!("pushed {base}:{tag}");
    }
    say!("{base}@{digest}");
    Ok(())
}

async fn pull(args: &PullArgs) -> Result<()> {
    let target = Target::parse(&args.reference)?;
    let registry = connect(&args.registry, &target)?;
    let fetched = registry.fetch_manifest(&target).await?;
    if crate::dynamic::is_dynamic_module(&fetched.manifest) {
        return pull_dynamic_module(args, &registry, &target, &fetched).await;
    }
    let pulled = registry
        .pull_module(&target, args.sha256.as_deref())
        .await?;
    if !args.no_check {
        check::check_module(&pulled.module, &target.raw).context(
            "the pulled module fails `packager check` (pass --no-check to write it anyway)",
        )?;
    }
    atomic_file::write(&args.out, &pulled.module, atomic_file::Access::Public)?;
    say!(
        "wrote {} ({} bytes) from {}/{}@{} ({} format)",
        args.out.display(),
        pulled.module.len(),
        target.registry(),
        target.repository(),
        pulled.manifest_digest,
        pulled.format
    );
    say!("module sha256: {}", pulled.module_sha256);
    Ok(())
}

/// `pull` of a dynamic-module artifact: the library, verified against the manifest's sha256 (and
/// --sha256), written to --out.
async fn pull_dynamic_module(
    args: &PullArgs,
    registry: &Registry,
    target: &Target,
    fetched: &crate::registry::Fetched,
) -> Result<()> {
    let layer = crate::dynamic::library_layer(&fetched.manifest, &target.raw)?;
    let library = registry.fetch_blob(target, layer).await?;
    let sha256 = formats::verify_module(
        &fetched.manifest,
        &library,
        args.sha256.as_deref(),
        &target.raw,
    )?;
    crate::dynamic::elf_architecture(&library)
        .with_context(|| format!("the library in {} is not a shared library", target.raw))?;
    atomic_file::write(&args.out, &library, atomic_file::Access::Public)?;
    say!(
        "wrote {} ({} bytes) from {}/{}@{} (Envoy dynamic module, Envoy {}-{})",
        args.out.display(),
        library.len(),
        target.registry(),
        target.repository(),
        fetched.digest,
        fetched
            .manifest
            .annotations
            .get(crate::dynamic::ANN_ENVOY_MIN)
            .map_or("?", String::as_str),
        fetched
            .manifest
            .annotations
            .get(crate::dynamic::ANN_ENVOY_MAX)
            .map_or("?", String::as_str),
    );
    say!("module sha256: {sha256}");
    Ok(())
}

fn kong_bundle(ws: Option<&Path>, args: &KongArgs) -> Result<()> {
    let path = module_path(ws, args.wasm.as_ref())?;
    let module = read_module(&path)?;
    check::check_module(&module, &path.display().to_string())
        .context("refusing to bundle a module that fails `packager check`")?;
    kong::write_bundle(&args.out, &module, schema::plugin_config_schema())?;
    say!(
        "wrote {} ({} and {})",
        args.out.display(),
        kong::module_file(),
        kong::meta_file()
    );
    say!(
        "for Kong 3.4-3.9 (every feature from 3.8; 3.4 takes the config as a string); see docs/kong.md"
    );
    Ok(())
}

async fn snippets(args: &SnippetArgs) -> Result<()> {
    let target = Target::parse(&args.reference)?;
    let input = match (target.digest(), &args.module_sha256) {
        (Some(digest), Some(module_sha)) => SnippetInput {
            registry: target.registry().to_string(),
            repository: target.repository().to_string(),
            tag: target.tag().map(str::to_string),
            manifest_digest: digest.to_string(),
            module_sha256: module_sha
                .trim_start_matches("sha256:")
                .to_ascii_lowercase(),
            format: None,
            raw_module_blob: None,
            plain_http: args.registry.plain_http,
        },
        _ => {
            let registry = connect(&args.registry, &target)?;
            let pulled = registry
                .pull_module(&target, args.module_sha256.as_deref())
                .await?;
            let raw_module_blob = match pulled.format {
                Format::Oci | Format::Cncf => Some(pulled.layer.digest.clone()),
                Format::Compat => None,
            };
            SnippetInput {
                registry: target.registry().to_string(),
                repository: target.repository().to_string(),
                tag: target.tag().map(str::to_string),
                manifest_digest: pulled.manifest_digest,
                module_sha256: pulled.module_sha256,
                format: Some(pulled.format),
                raw_module_blob,
                plain_http: args.registry.plain_http,
            }
        }
    };
    say_raw(&snippets::render(&input));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn rfc3339_shape_is_checked() {
        assert!(check_rfc3339("2024-01-02T03:04:05Z").is_ok());
        assert!(check_rfc3339("2024-01-02T03:04:05.123+02:00").is_ok());
        assert!(check_rfc3339("yesterday").is_err());
    }
}
