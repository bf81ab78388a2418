//! The playground in a real browser: Debian's Chromium driven through chromedriver (WebDriver,
//! the `fantoccini` client), on the page `cargo xtask playground --serve` serves and on
//! `controller-shim run`'s `/ui`.
//!
//! - the page: the quickstart decides, a typed request changes the decision, the diagram has the
//!   quickstart's nodes (and red ones with reasons for the problems example), manifest errors name
//!   file, document and field, a link reproduces the case, and nothing is fetched from elsewhere;
//! - the page and `controller-shim explain --json` print the same bytes for every request of the
//!   demo (`xtask/src/demo/probes.rs`) and a sample of the HTTPRoute conformance cases;
//! - `/ui` shows what the proxies run and follows a manifest edit.
//!
//! Needs `target/debug/controller-shim` (`cargo test --workspace` builds it; `cargo xtask test`
//! runs these tests) and installs `chromium` / `chromium-driver` with apt-get when missing.
//! A screenshot of the page goes to `target/playground-screenshot.png` (the one in docs/ is a copy).

#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../../xtask/src/demo/probes.rs"]
mod probes;
#[path = "support/process_tree.rs"]
mod process_tree;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use process_tree::ProcessTree;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Where things are

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `target/debug` (this test runs from `target/debug/deps/`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

fn shim() -> PathBuf {
    let path = profile_dir().join("controller-shim");
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p controller-shim` (cargo test --workspace does)",
        path.display()
    );
    path
}

/// The xtask binary, built once per test run (`cargo xtask` builds it the same way).
fn xtask() -> &'static Path {
    static XTASK: OnceLock<PathBuf> = OnceLock::new();
    XTASK.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "xtask"])
            .current_dir(workspace())
            .status()
            .unwrap();
        assert!(status.success(), "cargo build -p xtask failed");
        profile_dir().join("xtask")
    })
}

/// A child process, killed (by its own handle) when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16, within: Duration, what: &str, child: &mut Child) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited ({status}) before listening on {port}");
        }
        if Instant::now() > deadline {
            bail!("{what} did not listen on {port} within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `cargo xtask playground --out DIR [--serve --port P]`: builds the page into its own
/// directory (so tests running at once never share one) and serves it.
fn page(dir: &Path, serve: bool) -> Result<(Option<Process>, u16)> {
    let port = testkit::free_port()?;
    let mut command = Command::new(xtask());
    command.arg("playground").arg("--out").arg(dir);
    if !serve {
        let status = command.status()?;
        if !status.success() {
            bail!("cargo xtask playground failed ({status})");
        }
        return Ok((None, port));
    }
    let mut child = command
        .args(["--serve", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .spawn()?;
    // The first build of the module takes minutes; later ones reuse it.
    wait_for_port(
        port,
        Duration::from_secs(1200),
        "cargo xtask playground --serve",
        &mut child,
    )?;
    Ok((Some(Process(child)), port))
}

// ---------------------------------------------------------------------------------------------
// The browser

struct Browser {
    client: Client,
    /// chromedriver and the Chromium it starts.
    _driver: ProcessTree,
}

impl Browser {
    async fn start() -> Result<Browser> {
        testkit::debian::ensure_package("chromium", "chromium")?;
        testkit::debian::ensure_package("chromedriver", "chromium-driver")?;
        let port = testkit::free_port()?;
        let mut driver = ProcessTree(
            ProcessTree::command("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting chromedriver")?,
        );
        wait_for_port(port, Duration::from_secs(30), "chromedriver", &mut driver.0)?;
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-default-apps", "--no-first-run",
                    "--window-size=1440,1000",
                    // Offline: any host but loopback fails to resolve.
                    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                ]
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .context("opening a WebDriver session")?;
        Ok(Browser {
            client,
            _driver: driver,
        })
    }

    async fn js(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        Ok(self.client.execute(script, args).await?)
    }

    /// Waits until `script` returns a truthy value.
    async fn until(&self, what: &str, script: &str) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let value = self.js(script, Vec::new()).await?;
            if !matches!(value, Value::Null | Value::Bool(false)) && value != json!("") {
                return Ok(value);
            }
            if Instant::now() > deadline {
                let decision = self.text("decision").await.unwrap_or_default();
                bail!("timed out waiting for {what} (decision panel: {decision:?})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn open(&self, url: &str) -> Result<()> {
        self.client.goto(url).await?;
        let state = self
            .until(
                "the page to start",
                "return document.body.dataset.ready || ''",
            )
            .await?;
        if state != json!("true") {
            bail!("the page failed: {}", self.text("decision").await?);
        }
        Ok(())
    }

    async fn text(&self, id: &str) -> Result<String> {
        Ok(self.client.find(Locator::Id(id)).await?.text().await?)
    }

    async fn type_into(&self, id: &str, text: &str) -> Result<()> {
        let field = self.client.find(Locator::Id(id)).await?;
        field.clear().await?;
        field.send_keys(text).await?;
        Ok(())
    }

    /// The page's link once its fragment holds the latest state (the page saves it a moment
    /// after the last edit; an earlier state's link would reproduce the wrong case).
    async fn saved_link(&self) -> Result<String> {
        let link = self
            .until(
                "the state in the URL",
                "return document.body.dataset.fragment === 'saved' \
                   && location.hash.startsWith('#v1.') && location.href",
            )
            .await?;
        Ok(link.as_str().unwrap_or_default().to_owned())
    }

    /// Picks `value` in the `<select>` `id`, as a user's choice does (a `change` event).
    async fn choose(&self, id: &str, value: &str) -> Result<()> {
        self.js(
            "const s = document.getElementById(arguments[0]); s.value = arguments[1]; \
             s.dispatchEvent(new Event('change'));",
            vec![json!(id), json!(value)],
        )
        .await?;
        Ok(())
    }

    /// Waits until the decision panel shows every one of `parts`.
    async fn decision_shows(&self, parts: &[&str]) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.text("decision").await?;
            if parts.iter().all(|p| text.contains(p)) {
                return Ok(text);
            }
            if Instant::now() > deadline {
                bail!("the decision panel never showed {parts:?}; it shows {text:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The diagram's nodes: (id, ok, problems text).
    async fn nodes(&self) -> Result<Vec<(String, bool, String)>> {
        let value = self
            .js(
                "return [...document.querySelectorAll('#topology g.node')].map(g => \
                 [g.dataset.id, !g.classList.contains('bad'), g.querySelector('title').textContent, g.classList.contains('hit')])",
                Vec::new(),
            )
            .await?;
        Ok(value
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n[0].as_str().unwrap().to_owned(),
                    n[1].as_bool().unwrap(),
                    n[2].as_str().unwrap().to_owned(),
                )
            })
            .collect())
    }
}

/// Runs `body` with a fresh browser, closing the session whatever happens.
fn with_browser<F>(body: impl FnOnce(Arc<Browser>) -> F)
where
    F: std::future::Future<Output = Result<()>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let browser = Arc::new(Browser::start().await.unwrap());
        let result = body(browser.clone()).await;
        let _ = browser.client.clone().close().await;
        if let Err(e) = result {
            panic!("{e:#}");
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The page

#[test]
fn the_page_decides_draws_and_reproduces_a_case_from_its_link() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = page(&dir.path().join("page"), true).unwrap();
    let url = format!("http://127.0.0.1:{port}/");
    let started = Instant::now();
    with_browser(|b| async move {
        b.open(&url).await?;
        // Prefilled with examples/quickstart and its first request.
        assert_eq!(
            b.js("return document.getElementById('example').value", vec![])
                .await?,
            "quickstart"
        );
        b.decision_shows(&["forward to store/store-v1:8080", "rules[1] (main)"])
            .await?;

        // A typed request: the redirect of the demo.
        b.type_into("url", "http://www.example.com/old-blog/2024/hello?lang=en")
            .await?;
        b.decision_shows(&[
            "redirect",
            "301 to http://www.example.com/blog/2024/hello?lang=en",
        ])
        .await?;
        // A header selects the canary.
        b.type_into("url", "http://store.example.com/cart").await?;
        b.type_into("headers", "env: canary").await?;
        b.decision_shows(&["store/store-v2:8080", "rules[0] (canary)"])
            .await?;
        let trace = b.text("trace").await?;
        assert!(trace.contains("canary"), "{trace}");

        // The diagram: the quickstart's objects, all fine, the decision's path highlighted.
        let nodes = b.nodes().await?;
        let ids: Vec<&str> = nodes.iter().map(|(id, _, _)| id.as_str()).collect();
        for id in [
            "GatewayClass:gateway-wasm",
            "Gateway:infra/quickstart",
            "Listener:infra/quickstart/http",
            "HTTPRoute:store/store",
            "HTTPRoute:store/store-on-www",
            "Rule:store/store/0",
            "Backend:store/store-v2:8080",
            "Backend:site/site-v1:8080",
        ] {
            assert!(ids.contains(&id), "no node {id} in {ids:?}");
        }
        assert!(nodes.iter().all(|(_, ok, _)| *ok), "{nodes:?}");
        let hits = b.js("return [...document.querySelectorAll('#topology g.node.hit')].map(g => g.dataset.id)", vec![]).await?;
        for id in [
            "HTTPRoute:store/store",
            "Rule:store/store/0",
            "Backend:store/store-v2:8080",
        ] {
            assert!(
                hits.as_array().unwrap().contains(&json!(id)),
                "{id} not highlighted: {hits}"
            );
        }

        // The link reproduces the case: manifests, request and headers.
        b.type_into("url", "http://www.example.com/store/cart?item=42")
            .await?;
        b.type_into("headers", "").await?;
        b.decision_shows(&["rewritten to /cart?item=42"]).await?;
        let link = b.saved_link().await?;
        let shot = b.client.screenshot().await?;
        let shot_path = profile_dir().join("..").join("playground-screenshot.png");
        std::fs::write(&shot_path, &shot)?;
        eprintln!("screenshot: {} ({} bytes)", shot_path.display(), shot.len());
        b.client.goto("about:blank").await?;
        b.open(&link).await?;
        b.decision_shows(&["store/store-v1:8080", "rewritten to /cart?item=42"])
            .await?;
        assert_eq!(
            b.js("return document.getElementById('url').value", vec![])
                .await?,
            "http://www.example.com/store/cart?item=42"
        );

        grpc_in_the_page(&b, &link).await?;

        // Manifest errors name the file, the document and the field, as the CLI does.
        b.js(
            "const e = document.getElementById('editor'); \
              e.value = e.value.replace('    port: 80\\n', '    port: eighty\\n'); \
              e.dispatchEvent(new Event('input'));",
            vec![],
        )
        .await?;
        let errors = b
            .until(
                "a manifest error",
                "const e = document.getElementById('errors'); return !e.hidden && e.textContent",
            )
            .await?;
        assert!(
            errors
                .as_str()
                .unwrap()
                .starts_with("gateway.yaml document 2: Gateway spec.listeners[0].port: "),
            "{errors}"
        );

        // What red looks like: the problems example.
        b.choose("example", "problems").await?;
        b.decision_shows(&["local 500 (invalid_backend)", "api/users"])
            .await?;
        let nodes = b.nodes().await?;
        let problem = |id: &str| {
            nodes
                .iter()
                .find(|(n, _, _)| n == id)
                .map(|(_, ok, why)| (*ok, why.clone()))
        };
        for (id, reason) in [
            ("HTTPRoute:sandbox/experiment", "NotAllowedByListeners"),
            ("HTTPRoute:api/wrong-host", "NoMatchingListenerHostname"),
            (
                "HTTPRoute:api/lost",
                "parentRef Gateway infra/edge-typo does not exist",
            ),
            ("HTTPRoute:api/users", "BackendNotFound"),
            (
                "Gateway:infra/orphan",
                "GatewayClass no-such-class does not exist",
            ),
            ("Listener:infra/edge/secure", "InvalidCertificateRef"),
        ] {
            let (ok, why) = problem(id).unwrap_or_else(|| panic!("no node {id} in {nodes:?}"));
            assert!(
                !ok && why.contains(reason),
                "{id} should be red with {reason}: {why}"
            );
        }
        let red_edges = b
            .js(
                "return document.querySelectorAll('#topology path.edge.bad').length",
                vec![],
            )
            .await?;
        assert!(red_edges.as_u64().unwrap() >= 3, "{red_edges}");
        let status = b.text("status").await?;
        assert!(status.contains("NotAllowedByListeners"), "{status}");

        // Offline: everything came from the page's own origin.
        let foreign = b.js("return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith(location.origin))", vec![]).await?;
        assert_eq!(foreign, json!([]), "the page fetched from elsewhere");
        Ok(())
    });
    eprintln!(
        "page test: {:.1} s in the browser",
        started.elapsed().as_secs_f64()
    );
}

/// gRPC on the quickstart: the GRPCRoute's node and status row, a gRPC call typed in the form
/// (routed, then one no rule matches), and a link that keeps the call. `previous_link` is the
/// page's link before.
async fn grpc_in_the_page(b: &Browser, previous_link: &str) -> Result<()> {
    // The diagram: the GRPCRoute in the route column, its rule and its gRPC backend, all fine.
    let nodes = b.nodes().await?;
    for id in [
        "GRPCRoute:rpc/echo",
        "Rule:GRPCRoute:rpc/echo/0",
        "Backend:grpc:rpc/grpc-echo:8080",
    ] {
        let node = nodes.iter().find(|(n, _, _)| n == id);
        assert!(
            node.is_some_and(|(_, ok, _)| *ok),
            "no good node {id} in {nodes:?}"
        );
    }
    let column = b
        .js(
            "const x = g => g.transform.baseVal[0].matrix.e; \
             const node = id => document.querySelector(`#topology g.node[data-id='${id}']`); \
             return [x(node('GRPCRoute:rpc/echo')), x(node('HTTPRoute:store/store'))]",
            vec![],
        )
        .await?;
    assert_eq!(column[0], column[1], "routes of both kinds share a column");
    // The status table: a row per condition of the GRPCRoute's parent, with its reason.
    let rows = b
        .js(
            "const t = [...document.querySelectorAll('#status table')] \
               .find(t => t.caption.textContent === 'GRPCRoute rpc/echo → parent infra/quickstart'); \
             return t && [...t.querySelectorAll('tr')].slice(1) \
               .map(r => [...r.cells].slice(0, 3).map(c => c.textContent))",
            vec![],
        )
        .await?;
    for condition in ["Accepted", "ResolvedRefs"] {
        assert!(
            rows.as_array()
                .is_some_and(|rows| rows.contains(&json!([condition, "True", condition]))),
            "GRPCRoute rpc/echo's status has no {condition} True {condition}: {rows}"
        );
    }

    // A gRPC call typed in the form: the demo's routed call. The form shows the service/method
    // input only for gRPC, and the HTTP method only for HTTP (as rendered, not just attributes).
    let shown =
        "return ['method', 'grpc'].map(id => document.getElementById(id).offsetParent !== null)";
    assert_eq!(b.js(shown, vec![]).await?, json!([true, false]));
    b.choose("kind", "grpc").await?;
    assert_eq!(b.js(shown, vec![]).await?, json!([false, true]));
    b.type_into("url", &format!("http://{}", probes::GRPC_HOST))
        .await?;
    let rpc = format!("{}/{}", probes::GRPC_SERVICE, probes::GRPC_ROUTED);
    b.type_into("grpc", &rpc).await?;
    b.decision_shows(&[
        "forward to grpc:rpc/grpc-echo:8080",
        "GRPCRoute rpc/echo",
        "set x-routed-by: gateway-wasm",
    ])
    .await?;
    let cli = b.text("cli").await?;
    assert!(cli.contains(&format!("--grpc '{rpc}'")), "{cli}");
    let hits = b
        .js(
            "return [...document.querySelectorAll('#topology g.node.hit')].map(g => g.dataset.id)",
            vec![],
        )
        .await?;
    for id in ["GRPCRoute:rpc/echo", "Rule:GRPCRoute:rpc/echo/0"] {
        assert!(
            hits.as_array().unwrap().contains(&json!(id)),
            "{id} not highlighted: {hits}"
        );
    }
    // A method no rule matches: the gateway's own gRPC answer.
    let unrouted = format!("{}/{}", probes::GRPC_SERVICE, probes::GRPC_UNROUTED);
    b.type_into("grpc", &unrouted).await?;
    b.decision_shows(&["local", "200, grpc-status 12 UNIMPLEMENTED (no_route)"])
        .await?;

    // The link keeps the call: kind, service/method, URL.
    let link = b.saved_link().await?;
    assert_ne!(link, previous_link);
    b.client.goto("about:blank").await?;
    b.open(&link).await?;
    b.decision_shows(&["grpc-status 12"]).await?;
    let form = b
        .js(
            "return ['kind', 'grpc', 'url'].map(id => document.getElementById(id).value)",
            vec![],
        )
        .await?;
    assert_eq!(
        form,
        json!(["grpc", unrouted, format!("http://{}", probes::GRPC_HOST)])
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Page vs CLI

/// One request to compare: manifests (the page's text; the CLI's directory), request line,
/// headers.
struct Compared {
    what: String,
    text: String,
    dir: PathBuf,
    line: String,
    headers: Vec<(String, String)>,
    /// A gRPC call's `SERVICE/METHOD` (`--grpc`, `options.grpc`).
    grpc: Option<String>,
    /// For manifests broken on purpose: the file the error must name.
    broken_file: Option<String>,
}

/// The quickstart with one mistake each (a YAML syntax error, a value of the wrong type, an
/// unknown enum value), in the editor's text and in a copy of the directory: the page and the
/// CLI must report the same file, document, field and message.
fn broken_quickstarts(text: &str, quickstart: &Path, root: &Path) -> Vec<Compared> {
    let mistakes = [
        ("gateway.yaml", "    port: 80\n", "    port: eighty\n"),
        ("store/route.yaml", "kind: HTTPRoute", "kind: [HTTPRoute"),
        ("site/route.yaml", "type: PathPrefix", "type: Prefix"),
    ];
    mistakes
        .iter()
        .enumerate()
        .map(|(i, (file, from, to))| {
            // In the editor: the first occurrence after the file's `# file:` line.
            let start = text
                .find(&format!("# file: {file}\n"))
                .unwrap_or_else(|| panic!("no {file} in the editor"));
            let at = start + text[start..].find(from).unwrap();
            let edited = format!("{}{to}{}", &text[..at], &text[at + from.len()..]);
            // On disk: the same edit in a copy of the directory.
            let dir = root.join(format!("quickstart-broken-{i}"));
            copy_dir(quickstart, &dir);
            let path = dir.join(file);
            let content = std::fs::read_to_string(&path).unwrap();
            assert!(content.contains(from), "{file} has no {from:?}");
            std::fs::write(&path, content.replacen(from, to, 1)).unwrap();
            Compared {
                what: format!("quickstart with {file}: {from:?} → {to:?}"),
                text: edited,
                dir,
                line: "GET http://www.example.com/".to_owned(),
                headers: Vec::new(),
                grpc: None,
                broken_file: Some((*file).to_owned()),
            }
        })
        .collect()
}

/// `controller-shim explain --json` for one case: stdout, or `Err(stderr)`.
fn cli(case: &Compared) -> std::result::Result<String, String> {
    let mut command = Command::new(shim());
    command
        .args(["explain", "--json", "--manifests"])
        .arg(&case.dir)
        .args(["--request", &case.line]);
    for (name, value) in &case.headers {
        command.arg("-H").arg(format!("{name}: {value}"));
    }
    if let Some(rpc) = &case.grpc {
        command.args(["--grpc", rpc]);
    }
    let output = command.output().unwrap();
    if output.status.success() {
        Ok(String::from_utf8(output.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// A sample of a conformance vector file's request cases (`conformance/vectors/NAME`), as
/// manifests and a request line (and the RPC of a gRPC call): every `step`-th case. Cases the
/// request line cannot express (a TLS server name other than the host) are left out, each with
/// its reason printed.
fn conformance_cases(root: &Path, name: &str, step: usize) -> Vec<Compared> {
    use conformance::exchange::{request_authority, request_headers};
    use gateway_resolver::manifests::{Secrets, to_text};
    let file =
        conformance::vectors::load(workspace().join("conformance/vectors").join(name)).unwrap();
    let mut out = Vec::new();
    let mut left_out = Vec::new();
    for (index, case) in file.cases.iter().enumerate() {
        let request = &case.request;
        let https = request.scheme == "https";
        let authority = request_authority(case, conformance::native::GATEWAY_IP);
        if https && request.sni.as_deref() != Some(engine::request::host_of(&authority)) {
            left_out.push(format!(
                "{}: SNI {:?} differs from the host",
                case.id, request.sni
            ));
            continue;
        }
        // The decision is deterministic for routing, filter and proxy scopes alike; proxy
        // behaviour is not compared here.
        if index % step != 0 {
            continue;
        }
        let snapshot =
            match conformance::snapshot::try_snapshot_for(case, &file, &Default::default()) {
                Ok(s) => s,
                Err(e) => {
                    left_out.push(e);
                    continue;
                }
            };
        let text = to_text(&snapshot, Secrets::Keep);
        let dir = root.join(format!("{name}-{index}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("manifests.yaml"), &text).unwrap();
        let scheme = if https { "https" } else { "http" };
        let default_port = if https { 443 } else { 80 };
        let host_port =
            if engine::request::host_of(&authority) == authority && request.port != default_port {
                format!("{authority}:{}", request.port)
            } else {
                authority.clone()
            };
        out.push(Compared {
            what: format!("{name} {}", case.id),
            text,
            dir,
            line: format!("{} {scheme}://{host_port}{}", request.method, request.path),
            headers: request_headers(case),
            grpc: request
                .grpc
                .as_ref()
                .map(|rpc| format!("{}/{}", rpc.service, rpc.method)),
            broken_file: None,
        });
    }
    for reason in &left_out {
        eprintln!("conformance sample ({name}): left out {reason}");
    }
    out
}

#[test]
fn page_and_cli_print_the_same_explanation_for_every_demo_and_sampled_conformance_request() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = page(&dir.path().join("page"), true).unwrap();
    let url = format!("http://127.0.0.1:{port}/");
    let quickstart = workspace().join("examples/quickstart");
    let edited = dir.path().join("quickstart-edited");
    copy_dir(&quickstart, &edited);
    let file = edited.join(probes::EDITED_FILE);
    let route = std::fs::read_to_string(&file).unwrap();
    assert_eq!(route.matches(probes::EDIT_FROM).count(), 1);
    std::fs::write(&file, route.replacen(probes::EDIT_FROM, probes::EDIT_TO, 1)).unwrap();

    let root = dir.path().to_path_buf();
    with_browser(|b| async move {
        b.open(&url).await?;
        // The quickstart exactly as the page holds it (the example, split into its files).
        let text = b
            .js("return document.getElementById('editor').value", vec![])
            .await?;
        let text = text.as_str().unwrap().to_owned();
        let headers = |p: &probes::Probe<'_>| {
            p.headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>()
        };
        let mut cases: Vec<Compared> = probes::ALL
            .iter()
            .map(|p| Compared {
                what: format!("demo {}", p.request_line()),
                text: text.clone(),
                dir: quickstart.clone(),
                line: p.request_line(),
                headers: headers(p),
                grpc: None,
                broken_file: None,
            })
            .collect();
        // The demo's gRPC calls (its step 8), as `explain --grpc` takes them.
        cases.extend(probes::GRPC_CALLS.iter().map(|method| Compared {
            what: format!("demo gRPC {}/{method}", probes::GRPC_SERVICE),
            text: text.clone(),
            dir: quickstart.clone(),
            line: format!("http://{}", probes::GRPC_HOST),
            headers: Vec::new(),
            grpc: Some(format!("{}/{method}", probes::GRPC_SERVICE)),
            broken_file: None,
        }));
        let edited_text = text.replacen(probes::EDIT_FROM, probes::EDIT_TO, 1);
        assert_ne!(edited_text, text);
        cases.push(Compared {
            what: "demo after the hot-reload edit".to_owned(),
            text: edited_text,
            dir: edited.clone(),
            line: probes::RELOADED.request_line(),
            headers: headers(&probes::RELOADED),
            grpc: None,
            broken_file: None,
        });
        let demo = cases.len();
        let broken = broken_quickstarts(&text, &quickstart, &root);
        let broken_count = broken.len();
        cases.extend(broken);
        // Every second HTTPRoute case, every GRPCRoute case (there are few).
        let http = conformance_cases(&root, "httproute-vectors.json", 2);
        let grpc = conformance_cases(&root, "grpcroute-vectors.json", 1);
        let grpc_count = grpc.len();
        let conformance = http.len() + grpc_count;
        cases.extend(http);
        cases.extend(grpc);

        let input: Vec<Value> = cases
            .iter()
            .map(|c| {
                let options = c.grpc.as_ref().map(|rpc| json!({"grpc": rpc}));
                json!([c.text, c.line, c.headers, options])
            })
            .collect();
        let page = b
            .js(
                "return arguments[0].map(([text, line, headers, options]) => { \
               try { \
                 const json = window.gatewayWasm.explainJson(text, line, headers, options); \
                 const object = window.gatewayWasm.explain(text, line, headers, options); \
                 return {json, object: JSON.stringify(object, null, 2)}; \
               } catch (e) { return {error: e.message}; } })",
                vec![Value::Array(input)],
            )
            .await?;
        let page = page.as_array().unwrap();
        let mut failures = Vec::new();
        let mut forwarded = 0;
        let mut grpc_routed = 0;
        let mut errors = 0;
        for (case, answer) in cases.iter().zip(page) {
            match (cli(case), answer.get("json").and_then(Value::as_str)) {
                (Ok(stdout), Some(json)) => {
                    if stdout != format!("{json}\n") {
                        failures.push(format!(
                            "{}: the CLI printed\n{stdout}\nthe page returned\n{json}",
                            case.what
                        ));
                    } else if answer["object"].as_str() != Some(json) {
                        failures.push(format!(
                            "{}: explain() is not the value of explainJson()",
                            case.what
                        ));
                    }
                    forwarded += usize::from(json.contains("\"kind\": \"forward\""));
                    grpc_routed += usize::from(json.contains("\"kind\": \"GRPCRoute\""));
                }
                (Err(stderr), None) => {
                    // The CLI names the file by its full path, the page by its path in the
                    // editor (`# file: NAME`): the page's message is the end of the CLI's.
                    let message = answer["error"].as_str().unwrap_or_default();
                    if !stderr.trim_end().ends_with(message) || message.is_empty() {
                        failures.push(format!(
                            "{}: the CLI failed with {stderr:?}, the page with {message:?}",
                            case.what
                        ));
                    }
                    if let Some(file) = &case.broken_file
                        && !message.starts_with(&format!("{file} document "))
                    {
                        failures.push(format!(
                            "{}: the page's error does not name {file} and its document: {message:?}",
                            case.what
                        ));
                    }
                    errors += 1;
                }
                (cli, _) => failures.push(format!(
                    "{}: the CLI gave {cli:?}, the page {answer}",
                    case.what
                )),
            }
        }
        eprintln!(
            "page vs CLI: {} requests ({demo} of the demo, {broken_count} on broken manifests, {conformance} conformance cases, {grpc_count} of them gRPC), {forwarded} forwarded, {grpc_routed} by a GRPCRoute, {errors} errors, {} differ",
            cases.len(),
            failures.len()
        );
        // The demo's routed call and most GRPCRoute cases end in a GRPCRoute.
        assert!(
            grpc_count >= 20 && grpc_routed > grpc_count / 2,
            "{grpc_count} gRPC cases, {grpc_routed} decided by a GRPCRoute"
        );
        assert!(
            errors >= broken_count,
            "{errors} errors, {broken_count} broken cases"
        );
        assert!(cases.len() >= 100, "only {} requests compared", cases.len());
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// controller-shim run: /ui

fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

#[test]
fn the_shims_ui_shows_what_the_proxies_run_and_follows_an_edit() {
    let dir = tempfile::tempdir().unwrap();
    let page_dir = dir.path().join("page");
    page(&page_dir, false).unwrap();
    let manifests = dir.path().join("manifests");
    copy_dir(&workspace().join("examples/quickstart"), &manifests);
    let port = testkit::free_port().unwrap();
    let mut child = Command::new(shim())
        .args(["run", "--manifests"])
        .arg(&manifests)
        .arg("--envoy-dir")
        .arg(dir.path().join("envoy"))
        .args([
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
            "--bind-address",
            "127.0.0.1",
        ])
        .arg("--ui-dir")
        .arg(&page_dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("shim.log")).unwrap())
        .spawn()
        .unwrap();
    wait_for_port(
        port,
        Duration::from_secs(30),
        "controller-shim run",
        &mut child,
    )
    .unwrap();
    let _shim = Process(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(port, "/readyz").map(|r| r.0).unwrap_or(0) != 200 {
        assert!(
            Instant::now() < deadline,
            "not ready: {}",
            std::fs::read_to_string(dir.path().join("shim.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, live) = http_get(port, "/ui/live.json").unwrap();
    assert_eq!(status, 200);
    let live: Value = serde_json::from_str(&live).unwrap();
    let revision = live["gateways"][0]["revision"].as_str().unwrap().to_owned();
    assert_eq!(live["gateways"][0]["gateway"], "infra/quickstart");
    assert_eq!(live["gateways"][0]["pushes"][0]["target"], "envoy");
    assert!(
        live["manifests"]
            .as_str()
            .unwrap()
            .contains("name: store-on-www")
    );

    let route = manifests.join(probes::EDITED_FILE);
    with_browser(|b| async move {
        // /ui redirects to /ui/, the page starts in its live mode with what the proxies run.
        b.open(&format!("http://127.0.0.1:{port}/ui")).await?;
        assert_eq!(b.text("mode").await?, "live");
        let banner = b.text("live").await?;
        assert!(
            banner.contains(&format!("revision {revision}")) && banner.contains("envoy at "),
            "{banner}"
        );
        assert_eq!(
            b.js("return document.getElementById('editor').readOnly", vec![])
                .await?,
            true
        );
        b.type_into("url", "http://store.example.com/cart").await?;
        b.decision_shows(&["forward", "store/store-v1:8080"])
            .await?;
        // A gRPC call, against the running config too.
        b.choose("kind", "grpc").await?;
        b.type_into("url", &format!("http://{}", probes::GRPC_HOST))
            .await?;
        b.type_into(
            "grpc",
            &format!("{}/{}", probes::GRPC_SERVICE, probes::GRPC_ROUTED),
        )
        .await?;
        b.decision_shows(&["forward to grpc:rpc/grpc-echo:8080", "GRPCRoute rpc/echo"])
            .await?;
        b.choose("kind", "http").await?;
        b.type_into("url", "http://www.example.com/about").await?;
        b.decision_shows(&["site/site-v1:8080"]).await?;
        assert!(
            b.nodes()
                .await?
                .iter()
                .any(|(id, _, _)| id == "Gateway:infra/quickstart")
        );

        // The site team promotes v2: the shim pushes, and the page follows within its refresh.
        let text = std::fs::read_to_string(&route)?;
        std::fs::write(&route, text.replacen(probes::EDIT_FROM, probes::EDIT_TO, 1))?;
        b.decision_shows(&["site/site-v2:8080"]).await?;
        let banner = b.text("live").await?;
        assert!(
            !banner.contains(&format!("revision {revision}")),
            "{banner}"
        );
        Ok(())
    });
}
