//! `cargo xtask playground`: build the route playground page (and serve it on 127.0.0.1).
//!
//! Steps: the `playground` crate for wasm32-unknown-unknown (profile `playground`); wasm-bindgen
//! (the CLI at the exact version of the `wasm-bindgen` crate in Cargo.lock, installed into
//! `.tools/` with `cargo install` when missing) for the JS glue; binaryen's wasm-opt (npm, into
//! `.tools/`, as the packager does) to shrink the module; then the static files of
//! `playground/web/` and `examples.json` (the examples, as the editor shows them). The page is
//! written to a staging directory and renamed into place, so a failed build leaves the previous
//! page whole. No bundler and nothing fetched at run time: plain ES modules and static files.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash as _, Hasher as _};
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::steps::{BROWSER_TARGET, cargo, ensure_target, root};

/// The crate whose module the page runs.
const PACKAGE: &str = "playground";
/// Its library name (the `.wasm` file and the glue are named after it).
const LIB: &str = "gateway_playground";
/// The size-tuned, unstripped profile (workspace Cargo.toml).
const PROFILE: &str = "browser";
/// The binaryen release the packager also installs.
const BINARYEN_NPM: &str = "binaryen@132";
/// Features the Rust toolchain emits for wasm32; wasm-opt rejects the module without them.
const WASM_OPT_FLAGS: &[&str] = &[
    "--enable-bulk-memory",
    "--enable-sign-ext",
    "--enable-nontrapping-float-to-int",
    "--enable-mutable-globals",
    "--enable-reference-types",
    "--enable-multivalue",
    "-Oz",
    "--strip-debug",
    "--strip-producers",
];
/// The example every fresh page opens with, then the others of `playground/examples/`.
const QUICKSTART: &str = "examples/quickstart";
const MORE_EXAMPLES: &str = "playground/examples";
/// The quickstart's first request (the demo's first request too).
const QUICKSTART_REQUEST: &str = "GET http://store.example.com/cart";

/// Build the route playground page into target/playground (or --out), optionally serve it
///
/// The page runs the resolver and the engine of the filter in the browser (WebAssembly): paste
/// manifests, type a request, and see the topology, the status every object would get, the
/// decision and the engine's trace. `--serve` serves it on 127.0.0.1 (it needs no network).
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct PlaygroundArgs {
    /// Where to write the page [default: target/playground, where `controller-shim run` finds it].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Serve the page on 127.0.0.1 after building it (Ctrl-C stops).
    #[arg(long)]
    serve: bool,
    /// The port for --serve.
    #[arg(long, value_name = "PORT", default_value_t = 8090)]
    port: u16,
}

pub fn run(args: &PlaygroundArgs) -> anyhow::Result<()> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| crate::demo::target_dir(&root()).join("playground"));
    build(&out)?;
    if args.serve {
        serve(&out, args.port)?;
    }
    Ok(())
}

/// The version of the `wasm-bindgen` crate in Cargo.lock (the CLI must match it exactly).
fn locked_wasm_bindgen_version(lock: &str) -> Option<String> {
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"wasm-bindgen\"" {
            return lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = \""))
                .and_then(|v| v.strip_suffix('"'))
                .map(str::to_owned);
        }
    }
    None
}

/// The wasm-bindgen CLI at `version`: on PATH when it is that version, else in `.tools/`,
/// installed there with `cargo install` when missing.
fn wasm_bindgen(version: &str) -> anyhow::Result<PathBuf> {
    let reports = |program: &Path| {
        Command::new(program)
            .arg("--version")
            .output()
            .ok()
            .is_some_and(|o| {
                String::from_utf8_lossy(&o.stdout).trim() == format!("wasm-bindgen {version}")
            })
    };
    if reports(Path::new("wasm-bindgen")) {
        return Ok(PathBuf::from("wasm-bindgen"));
    }
    let prefix = root()
        .join(".tools")
        .join(format!("wasm-bindgen-{version}"));
    let local = prefix.join("bin").join("wasm-bindgen");
    if local.is_file() && reports(&local) {
        return Ok(local);
    }
    eprintln!(
        "    wasm-bindgen {version} is not installed; building it from the crate registry (about 2 minutes, once)"
    );
    cargo(
        &format!("install wasm-bindgen-cli {version}"),
        &[
            "install",
            "wasm-bindgen-cli",
            "--version",
            version,
            "--root",
            &prefix.to_string_lossy(),
        ],
    )?;
    if !reports(&local) {
        bail!(
            "cargo install finished but {} does not report version {version}",
            local.display()
        );
    }
    Ok(local)
}

/// binaryen's wasm-opt: on PATH, else in `.tools/` (npm), installed there when missing.
fn wasm_opt() -> anyhow::Result<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("wasm-opt"))
            .find(|p| p.is_file())
    });
    if let Some(path) = on_path {
        return Ok(path);
    }
    let tools = root().join(".tools");
    let local = tools.join("node_modules").join(".bin").join("wasm-opt");
    if local.is_file() {
        return Ok(local);
    }
    std::fs::create_dir_all(&tools).with_context(|| format!("creating {}", tools.display()))?;
    let started = Instant::now();
    eprintln!("==> install {BINARYEN_NPM} (wasm-opt): npm install --prefix .tools {BINARYEN_NPM}");
    let status = Command::new("npm")
        .arg("install")
        .arg("--prefix")
        .arg(&tools)
        .args(["--no-audit", "--no-fund", BINARYEN_NPM])
        .status()
        .context("running npm (Node.js and npm install binaryen's wasm-opt)")?;
    if !status.success() || !local.is_file() {
        bail!("npm install --prefix .tools {BINARYEN_NPM} failed ({status})");
    }
    eprintln!(
        "    wasm-opt installed ({:.0}s)",
        started.elapsed().as_secs_f64()
    );
    Ok(local)
}

fn run_tool(label: &str, command: &mut Command) -> anyhow::Result<()> {
    let started = Instant::now();
    let status = command
        .current_dir(root())
        .status()
        .with_context(|| format!("starting {label}"))?;
    if !status.success() {
        bail!("{label} failed ({status})");
    }
    eprintln!("    {label}: ok ({:.0}s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// `wasm-opt -Oz` on `input`, cached by the input's content: an unchanged module is not
/// optimized again (it takes close to a minute).
fn optimize(input: &Path, cache: &Path) -> anyhow::Result<PathBuf> {
    let bytes = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    WASM_OPT_FLAGS.hash(&mut hasher);
    let cached = cache.join(format!("{LIB}.{:016x}.wasm", hasher.finish()));
    if cached.is_file() {
        eprintln!(
            "    wasm-opt: unchanged module, reusing {}",
            crate::demo::shown(&root(), &cached)
        );
        return Ok(cached);
    }
    let tool = wasm_opt()?;
    std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    // Older entries are of modules that no longer exist (another build's work in progress stays).
    if let Ok(entries) = std::fs::read_dir(cache) {
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().contains(".partial") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let partial = cache.join(format!("{LIB}.{}.partial.wasm", std::process::id()));
    eprintln!("==> wasm-opt {}", WASM_OPT_FLAGS.join(" "));
    run_tool(
        "wasm-opt",
        Command::new(&tool)
            .args(WASM_OPT_FLAGS)
            .arg(input)
            .arg("-o")
            .arg(&partial),
    )?;
    std::fs::rename(&partial, &cached)
        .with_context(|| format!("renaming to {}", cached.display()))?;
    Ok(cached)
}

/// Size with gzip -9 (what a server sending `Content-Encoding: gzip` transfers).
fn gzipped_size(path: &Path) -> Option<u64> {
    let output = Command::new("gzip").arg("-9c").arg(path).output().ok()?;
    output
        .status
        .success()
        .then_some(output.stdout.len() as u64)
}

/// Every manifest file under `dir`, in the order `controller-shim --manifests DIR` reads them
/// (recursively, sorted paths, hidden entries skipped).
fn manifest_files(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            manifest_files(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// The editor's text for a directory: each file after a `# file: PATH` line (the playground
/// crate's `bundle` splits it the same way).
pub fn bundle_dir(dir: &Path) -> anyhow::Result<String> {
    let mut files = Vec::new();
    manifest_files(dir, &mut files)?;
    files.sort();
    let mut text = String::new();
    for file in files {
        let body = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let name = file
            .strip_prefix(dir)
            .unwrap_or(&file)
            .display()
            .to_string();
        if !text.is_empty() && !text.ends_with("---\n") {
            text.push_str("---\n");
        }
        text.push_str(&format!("# file: {name}\n{body}"));
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    Ok(text)
}

/// A `# key: value` line of an example's leading comment.
fn comment_field<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
        .map(str::trim)
}

/// `examples.json`: the quickstart, then every file of `playground/examples/`.
fn examples_json() -> anyhow::Result<String> {
    let root = root();
    let mut examples = vec![serde_json::json!({
        "name": "quickstart",
        "title": "Quickstart: two teams, a canary, a split, a redirect (examples/quickstart)",
        "text": bundle_dir(&root.join(QUICKSTART))?,
        "request": QUICKSTART_REQUEST,
        "headers": [],
    })];
    let mut more: Vec<PathBuf> = std::fs::read_dir(root.join(MORE_EXAMPLES))
        .with_context(|| format!("reading {MORE_EXAMPLES}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    more.sort();
    for path in more {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let title = comment_field(&text, "title")
            .with_context(|| format!("{}: the first lines need '# title: ...'", path.display()))?
            .to_owned();
        let request = comment_field(&text, "request")
            .unwrap_or("GET http://www.example.com/")
            .to_owned();
        examples.push(serde_json::json!({
            "name": name, "title": title, "text": text, "request": request, "headers": [],
        }));
    }
    Ok(serde_json::to_string_pretty(&examples)?)
}

/// Builds the page into `out`.
pub fn build(out: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let root = root();
    let target = crate::demo::target_dir(&root);
    ensure_target(BROWSER_TARGET)?;
    // `-p` alone: with the rest of the workspace, kube's client would be unified in.
    cargo(
        "playground module (wasm32-unknown-unknown)",
        &[
            "build",
            "-p",
            PACKAGE,
            "--target",
            BROWSER_TARGET,
            "--profile",
            PROFILE,
        ],
    )?;
    let module = target
        .join(BROWSER_TARGET)
        .join(PROFILE)
        .join(format!("{LIB}.wasm"));
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?;
    let version = locked_wasm_bindgen_version(&lock).context(
        "Cargo.lock has no wasm-bindgen package; is the playground crate in the workspace?",
    )?;
    let bindgen = wasm_bindgen(&version)?;
    let glue = target.join("playground-bindgen");
    let _ = std::fs::remove_dir_all(&glue);
    eprintln!("==> wasm-bindgen {version} --target web");
    run_tool(
        "wasm-bindgen",
        Command::new(&bindgen)
            .args(["--target", "web", "--no-typescript", "--out-dir"])
            .arg(&glue)
            .arg(&module),
    )?;
    let raw = glue.join(format!("{LIB}_bg.wasm"));
    let optimized = optimize(&raw, &target.join("playground-wasm-opt"))?;

    let staging = out.with_extension("partial");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
    let web = root.join("playground").join("web");
    for entry in std::fs::read_dir(&web).with_context(|| format!("reading {}", web.display()))? {
        let path = entry?.path();
        if let Some(name) = path.file_name().filter(|_| path.is_file()) {
            std::fs::copy(&path, staging.join(name))
                .with_context(|| format!("copying {}", path.display()))?;
        }
    }
    let glue_js = format!("{LIB}.js");
    std::fs::copy(glue.join(&glue_js), staging.join(&glue_js)).context("copying the JS glue")?;
    std::fs::copy(&optimized, staging.join(format!("{LIB}_bg.wasm")))
        .context("copying the module")?;
    std::fs::write(staging.join("examples.json"), examples_json()?)
        .context("writing examples.json")?;
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("replacing {}", out.display()))?;
    }
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::rename(&staging, out)
        .with_context(|| format!("moving the page to {}", out.display()))?;

    let size = |p: &Path| p.metadata().map(|m| m.len()).unwrap_or(0);
    let kib = |n: u64| format!("{:.0} KiB", n as f64 / 1024.0);
    let shipped = out.join(format!("{LIB}_bg.wasm"));
    eprintln!(
        "    page: {} (module {} from wasm-bindgen, {} after wasm-opt, {} gzipped) in {:.0}s",
        crate::demo::shown(&root, out),
        kib(size(&raw)),
        kib(size(&shipped)),
        gzipped_size(&shipped).map_or_else(|| "?".to_owned(), kib),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// --serve: a small static file server on 127.0.0.1

/// The Content-Type of a page file (ES modules need a JavaScript type, and streaming compilation
/// of the module needs `application/wasm`).
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("wasm") => "application/wasm",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body));
}

fn handle(mut stream: TcpStream, dir: &Path) {
    let mut line = String::new();
    if BufReader::new(&stream).read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    if method != "GET" && method != "HEAD" {
        respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            b"GET only\n",
        );
        return;
    }
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let name = if path == "/" {
        "index.html"
    } else {
        path.trim_start_matches('/')
    };
    // Only the files of the page itself: no directories, no `..`.
    if name.contains('/') || name.contains('\\') || name.starts_with('.') {
        respond(&mut stream, "404 Not Found", "text/plain", b"not found\n");
        return;
    }
    match std::fs::read(dir.join(name)) {
        Ok(body) => respond(&mut stream, "200 OK", content_type(name), &body),
        Err(_) => respond(&mut stream, "404 Not Found", "text/plain", b"not found\n"),
    }
}

fn serve(dir: &Path, port: u16) -> anyhow::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .with_context(|| format!("binding 127.0.0.1:{port} (pick another with --port)"))?;
    println!(
        "The playground is at http://127.0.0.1:{port}/  (serving {}; Ctrl-C stops)",
        dir.display()
    );
    for stream in listener.incoming().flatten() {
        let dir = dir.to_path_buf();
        std::thread::spawn(move || handle(stream, &dir));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_wasm_bindgen_version_comes_from_the_lock_file() {
        let lock = "[[package]]\nname = \"wasm-bindgen-macro\"\nversion = \"0.1.0\"\n\n[[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.130\"\nsource = \"x\"\n";
        assert_eq!(
            locked_wasm_bindgen_version(lock).as_deref(),
            Some("0.2.130")
        );
        assert_eq!(locked_wasm_bindgen_version("name = \"serde\"\n"), None);
    }

    #[test]
    fn the_quickstart_bundle_has_every_file_in_cli_order() {
        let text = bundle_dir(&root().join(QUICKSTART)).unwrap();
        let files: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# file: "))
            .collect();
        assert_eq!(
            files,
            [
                "gateway.yaml",
                "gatewayclass.yaml",
                "grpc/route.yaml",
                "grpc/services.yaml",
                "site/route.yaml",
                "site/services.yaml",
                "store/route.yaml",
                "store/services.yaml"
            ]
        );
    }

    #[test]
    fn examples_have_titles_and_requests() {
        let examples: Vec<serde_json::Value> =
            serde_json::from_str(&examples_json().unwrap()).unwrap();
        assert!(examples.len() >= 3);
        for example in &examples {
            assert!(
                example["title"].as_str().is_some_and(|t| !t.is_empty()),
                "{example}"
            );
            assert!(
                example["request"]
                    .as_str()
                    .is_some_and(|r| r.contains("http://")),
                "{example}"
            );
        }
    }

    #[test]
    fn pages_are_served_with_types_browsers_require() {
        assert_eq!(
            content_type("gateway_playground_bg.wasm"),
            "application/wasm"
        );
        assert!(content_type("app.js").starts_with("text/javascript"));
        assert!(content_type("index.html").starts_with("text/html"));
    }
}
