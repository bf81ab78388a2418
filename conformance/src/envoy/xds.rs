//! `--target envoy-xds`: the real-Envoy target with the controller-shim in between, as a fleet
//! runs it. Each case's objects are written as manifests into a directory that one
//! `controller-shim run --manifests DIR --xds-listen … --wasm oci://…` process watches; the filter
//! comes from a real registry process; Envoy starts from `controller-shim bootstrap` and gets
//! everything else over ADS. A case runs once the Envoy has ACKed the route table revision the
//! shim resolves from those manifests, and every resource type it was sent.
//!
//! One Envoy per Gateway (the bootstrap names it); switching to a case of another Gateway stops
//! the previous Envoy, since both would bind the same loopback ports.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use controller_shim::resolution::GatewayResult;
use controller_shim::{Object, Settings, Snapshot, manifests, resolve};
use serde_json::Value;
use testkit::envoy::{Envoy, EnvoyOptions as ProcessOptions};
use testkit::registry::{TestRegistry, http_get};

const REPOSITORY: &str = "gateway-wasm/filter";
const TAG: &str = "conformance";
const NODE: &str = "conformance-envoy";
const MANIFEST_FILE: &str = "case.yaml";
/// How long a case's manifests may take to reach Envoy (directory poll, debounce, push, ACK).
const DELIVERY_DEADLINE: Duration = Duration::from_secs(15);

pub struct XdsDelivery {
    work: PathBuf,
    manifests: PathBuf,
    shim_binary: PathBuf,
    _registry: TestRegistry,
    shim: Child,
    xds: SocketAddr,
    metrics: SocketAddr,
    /// Gateway port → loopback port, for every port any case uses.
    ports: BTreeMap<u16, u16>,
    envoy: Option<(String, Envoy)>,
    pub starts: u64,
    pub deliveries: u64,
}

impl XdsDelivery {
    /// Publishes `wasm` to a fresh registry and starts the shim on an empty manifest directory.
    pub fn start(
        work: &Path,
        wasm: &Path,
        ports: BTreeMap<u16, u16>,
    ) -> anyhow::Result<XdsDelivery> {
        let shim_binary = std::env::current_exe()
            .ok()
            .and_then(|me| me.parent().map(|d| d.join("controller-shim")))
            .filter(|p| p.exists())
            .context("the controller-shim binary is not next to this one: `cargo build -p controller-shim`")?;
        let module = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
        let registry = TestRegistry::start()?;
        registry.publish_module(REPOSITORY, TAG, &module)?;
        let manifests = work.join("manifests");
        std::fs::create_dir_all(&manifests)?;
        let xds = SocketAddr::from(([127, 0, 0, 1], testkit::ports::free_port()?));
        let metrics = SocketAddr::from(([127, 0, 0, 1], testkit::ports::free_port()?));
        let log = std::fs::File::create(work.join("controller-shim.log"))?;
        let shim = Command::new(&shim_binary)
            .arg("run")
            .arg("--manifests")
            .arg(&manifests)
            .args([
                "--xds-listen",
                &xds.to_string(),
                "--metrics-addr",
                &metrics.to_string(),
            ])
            .arg("--wasm")
            .arg(format!("oci://{}/{REPOSITORY}:{TAG}", registry.host()))
            .args(["--registry-plain-http", "--wasm-refresh", "0"])
            .arg("--wasm-cache")
            .arg(work.join("wasm-cache"))
            .arg("--report")
            .arg(work.join("status.json"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", shim_binary.display()))?;
        Ok(XdsDelivery {
            work: work.to_path_buf(),
            manifests,
            shim_binary,
            _registry: registry,
            shim,
            xds,
            metrics,
            ports,
            envoy: None,
            starts: 0,
            deliveries: 0,
        })
    }

    pub fn ports(&self) -> &BTreeMap<u16, u16> {
        &self.ports
    }

    /// Writes `snapshot` as the manifest directory, makes sure an Envoy serves `result`'s Gateway,
    /// and waits until it ACKed what the shim resolves from the manifests.
    pub fn push(&mut self, snapshot: &Snapshot, result: &GatewayResult) -> anyhow::Result<()> {
        let text = manifest_text(snapshot)?;
        // The revision the shim computes: resolve what it will read, not the snapshot in memory.
        let mut loaded = manifests::Loaded::default();
        manifests::load_str(&text, Path::new(MANIFEST_FILE), &mut loaded)
            .context("the written manifests do not load")?;
        let gateway = result.gateway.to_string();
        let expected = resolve(&loaded.snapshot, &Settings::default())
            .gateways
            .into_iter()
            .find(|g| g.gateway == result.gateway)
            .map(|g| g.config.revision)
            .with_context(|| format!("the written manifests resolve no Gateway {gateway}"))?;
        atomic_file::write(
            &self.manifests.join(MANIFEST_FILE),
            text.as_bytes(),
            atomic_file::Access::Private,
        )
        .context("writing the manifests")?;
        if self.envoy.as_ref().is_none_or(|(g, _)| *g != gateway) {
            self.envoy = None;
            self.envoy = Some((gateway.clone(), self.start_envoy(&gateway)?));
            self.starts += 1;
        }
        let started = Instant::now();
        loop {
            if self.delivered(&expected) {
                break;
            }
            if let Ok(Some(status)) = self.shim.try_wait() {
                bail!(
                    "the controller-shim exited ({status}): {}",
                    self.shim_log_tail()
                );
            }
            if started.elapsed() > DELIVERY_DEADLINE {
                bail!(
                    "Envoy did not ACK revision {expected} within {DELIVERY_DEADLINE:?}; /debug/xds: {}; shim log: {}",
                    self.debug_xds().map(|v| v.to_string()).unwrap_or_default(),
                    self.shim_log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // ACKed by the main thread; give the workers' new root contexts a moment.
        std::thread::sleep(Duration::from_millis(100));
        self.deliveries += 1;
        Ok(())
    }

    fn start_envoy(&self, gateway: &str) -> anyhow::Result<Envoy> {
        let bootstrap = self.work.join("bootstrap.yaml");
        let mut command = Command::new(&self.shim_binary);
        command
            .args([
                "bootstrap",
                "--xds",
                &self.xds.to_string(),
                "--gateway",
                gateway,
            ])
            .args([
                "--node-id",
                NODE,
                "--admin-port",
                "0",
                "--bind-address",
                "127.0.0.1",
            ])
            .arg("--out")
            .arg(&bootstrap);
        for (gateway_port, bind) in &self.ports {
            command
                .arg("--port-map")
                .arg(format!("{gateway_port}={bind}"));
        }
        let output = command
            .output()
            .context("running controller-shim bootstrap")?;
        if !output.status.success() {
            bail!(
                "controller-shim bootstrap failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let mut process = ProcessOptions::new(&bootstrap);
        process.concurrency = 2;
        process.log_path = Some(self.work.join("envoy.log"));
        Envoy::start(process)
    }

    fn debug_xds(&self) -> Option<Value> {
        let (status, body) = http_get(self.metrics.port(), "/debug/xds").ok()?;
        (status == 200)
            .then(|| serde_json::from_slice(&body).ok())
            .flatten()
    }

    /// The Envoy runs `revision` and ACKed every version it was sent.
    fn delivered(&self, revision: &str) -> bool {
        let Some(status) = self.debug_xds() else {
            return false;
        };
        testkit::xds_debug::synced_node(&status, NODE)
            .is_some_and(|n| n.get("revision").and_then(Value::as_str) == Some(revision))
    }

    fn shim_log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.work.join("controller-shim.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines
            .get(lines.len().saturating_sub(5)..)
            .unwrap_or_default()
            .join("\n")
    }
}

impl Drop for XdsDelivery {
    fn drop(&mut self) {
        self.envoy = None;
        let _ = self.shim.kill();
        let _ = self.shim.wait();
    }
}

/// Every object of `snapshot` as one multi-document YAML file.
fn manifest_text(snapshot: &Snapshot) -> anyhow::Result<String> {
    let mut text = String::new();
    for object in Object::all_of(snapshot) {
        text.push_str("---\n");
        text.push_str(
            &serde_norway::to_string(&object.to_json()).context("writing an object as YAML")?,
        );
    }
    Ok(text)
}

/// Every Gateway (and ListenerSet) port any of `listeners` binds, mapped to a free loopback port.
pub fn port_map(ports: impl IntoIterator<Item = i32>) -> anyhow::Result<BTreeMap<u16, u16>> {
    let mut map = BTreeMap::new();
    for port in ports {
        let port = u16::try_from(port).with_context(|| format!("listener port {port}"))?;
        if let std::collections::btree_map::Entry::Vacant(slot) = map.entry(port) {
            slot.insert(testkit::ports::free_port()?);
        }
    }
    Ok(map)
}
