//! The fleet's processes on loopback: a real OCI registry holding the filter, two echo backends, a
//! directory of manifests, one `controller-shim run --xds-listen` process and N Envoys started from
//! `controller-shim bootstrap`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use testkit::certs::CertificateAuthority;
use testkit::echo::{EchoIdentity, EchoServer};
use testkit::envoy::{Envoy, EnvoyOptions};
use testkit::registry::TestRegistry;

/// The Gateway every Envoy of the fleet serves.
pub const GATEWAY: &str = "fleet/gw";
/// The repository and tag the shim pulls the filter from.
pub const REPOSITORY: &str = "gateway-wasm/filter";
pub const TAG: &str = "stable";

/// A module that refuses every configuration (`proxy_on_configure` returns false): a broken
/// release, pushed under the tag the fleet follows to show a NACK.
pub const REJECTING_MODULE_WAT: &str = r#"
(module
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) i32.const 0)
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_on_configure") (param i32 i32) (result i32) i32.const 0)
  (func (export "proxy_on_done") (param i32) (result i32) i32.const 1)
  (func (export "proxy_on_delete") (param i32))
)"#;

/// Ports one Envoy binds for Gateway ports 80, 8080 and 443.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub http: u16,
    pub extra: u16,
    pub https: u16,
}

pub struct Member {
    pub name: String,
    pub envoy: Envoy,
    pub ports: Ports,
    pub delta: bool,
}

/// The registry with the filter published under [`TAG`].
pub struct Published {
    pub registry: TestRegistry,
}

impl Published {
    pub fn start(module: &[u8]) -> Result<Published> {
        let published = Published {
            registry: TestRegistry::start()?,
        };
        published.publish(module)?;
        Ok(published)
    }

    pub fn reference(&self) -> String {
        format!("{}/{REPOSITORY}:{TAG}", self.registry.host())
    }

    /// Pushes `module` (the `oci` format) under the tag; returns the manifest digest.
    pub fn publish(&self, module: &[u8]) -> Result<String> {
        self.registry.publish_module(REPOSITORY, TAG, module)
    }
}

/// The manifests the shim watches, rewritten by the scenarios.
pub struct Manifests {
    pub dir: PathBuf,
    api: SocketAddr,
    v2: SocketAddr,
}

impl Manifests {
    pub fn write(
        dir: &Path,
        api: &EchoServer,
        v2: &EchoServer,
        ca: &CertificateAuthority,
    ) -> Result<Manifests> {
        std::fs::create_dir_all(dir)?;
        let manifests = Manifests {
            dir: dir.to_path_buf(),
            api: api.addr(),
            v2: v2.addr(),
        };
        manifests.set_services()?;
        manifests.set_route("api")?;
        manifests.set_gateway(false)?;
        manifests.set_certificate(ca)?;
        Ok(manifests)
    }

    fn file(&self, name: &str, text: &str) -> Result<()> {
        atomic_file::write(
            &self.dir.join(name),
            text.as_bytes(),
            atomic_file::Access::Public,
        )
        .with_context(|| format!("writing {name}"))
    }

    fn set_services(&self) -> Result<()> {
        let mut text = String::from("apiVersion: v1\nkind: Namespace\nmetadata: {name: fleet}\n");
        for (service, addr) in [("api", self.api), ("api-v2", self.v2)] {
            text.push_str(&format!(
                "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {service}, namespace: fleet}}\n\
                 spec:\n  ports:\n  - {{name: http, port: 8080, targetPort: {port}}}\n\
                 ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
                 metadata:\n  name: {service}-1\n  namespace: fleet\n  labels: {{kubernetes.io/service-name: {service}}}\n\
                 addressType: IPv4\nendpoints:\n- addresses: [\"127.0.0.1\"]\n  conditions: {{ready: true}}\n\
                 ports:\n- {{name: http, port: {port}, protocol: TCP}}\n",
                port = addr.port()
            ));
        }
        self.file("services.yaml", &text)
    }

    /// The route sends `/switch` (and everything) to `backend` (`api` or `api-v2`).
    pub fn set_route(&self, backend: &str) -> Result<()> {
        self.file(
            "route.yaml",
            &format!(
                "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
                 metadata: {{name: web, namespace: fleet}}\n\
                 spec:\n  parentRefs: [{{name: gw}}]\n  hostnames: [\"fleet.example.com\"]\n  rules:\n  \
                 - backendRefs: [{{name: {backend}, port: 8080}}]\n"
            ),
        )
    }

    /// The Gateway: HTTP on 80 and HTTPS on 443, plus HTTP on 8080 when `extra`.
    pub fn set_gateway(&self, extra: bool) -> Result<()> {
        let extra = if extra {
            "  - {name: extra, port: 8080, protocol: HTTP}\n"
        } else {
            ""
        };
        self.file(
            "gateway.yaml",
            &format!(
                "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: gateway-wasm}}\n\
                 spec: {{controllerName: gateway-wasm.dev/controller-shim}}\n---\n\
                 apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: fleet}}\n\
                 spec:\n  gatewayClassName: gateway-wasm\n  listeners:\n\
                 \x20 - {{name: http, port: 80, protocol: HTTP}}\n{extra}\
                 \x20 - name: https\n    port: 443\n    protocol: HTTPS\n    hostname: fleet.example.com\n\
                 \x20   tls: {{certificateRefs: [{{name: fleet-tls}}]}}\n"
            ),
        )
    }

    /// The listener's certificate, issued by `ca`.
    pub fn set_certificate(&self, ca: &CertificateAuthority) -> Result<()> {
        use base64::Engine as _;
        let issued = ca.issue(&["fleet.example.com"])?;
        let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        self.file(
            "secret.yaml",
            &format!(
                "apiVersion: v1\nkind: Secret\nmetadata: {{name: fleet-tls, namespace: fleet}}\ntype: kubernetes.io/tls\n\
                 data:\n  tls.crt: {}\n  tls.key: {}\n",
                encode(&issued.chain_pem()),
                encode(&issued.key_pem)
            ),
        )
    }
}

/// The controller-shim process.
pub struct Shim {
    child: Child,
    pub xds: SocketAddr,
    pub metrics: SocketAddr,
    pub report: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    binary: PathBuf,
}

impl Shim {
    pub fn start(binary: &Path, work: &Path, manifests: &Path, reference: &str) -> Result<Shim> {
        let xds = SocketAddr::from(([127, 0, 0, 1], testkit::ports::free_port()?));
        let metrics = SocketAddr::from(([127, 0, 0, 1], testkit::ports::free_port()?));
        let report = work.join("status.json");
        let args: Vec<String> = [
            "run",
            "--manifests",
            &manifests.display().to_string(),
            "--xds-listen",
            &xds.to_string(),
            "--wasm",
            &format!("oci://{reference}"),
            "--registry-plain-http",
            "--wasm-refresh",
            "1",
            "--wasm-cache",
            &work.join("cache").display().to_string(),
            "--metrics-addr",
            &metrics.to_string(),
            "--report",
            &report.display().to_string(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let log = work.join("controller-shim.log");
        let child = spawn(binary, &args, &log)?;
        let shim = Shim {
            child,
            xds,
            metrics,
            report,
            args,
            log,
            binary: binary.to_path_buf(),
        };
        shim.wait_ready()?;
        Ok(shim)
    }

    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.get("/readyz").is_ok_and(|(status, _)| status == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the controller-shim was not ready within 60 s; its log: {}",
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A GET on the shim's metrics server: (status, body).
    pub fn get(&self, path: &str) -> Result<(u16, String)> {
        let (status, body) = testkit::registry::http_get(self.metrics.port(), path)?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// Kills the process (SIGKILL: no goodbye to the Envoys).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again with the same arguments (same xDS address).
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.child = spawn(&self.binary, &self.args, &self.log)?;
        self.wait_ready()
    }

    /// The process's resident memory, in KiB (`/proc/PID/status`).
    pub fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("no VmRSS in /proc/PID/status")
    }
}

fn spawn(binary: &Path, args: &[String], log: &Path) -> Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    Command::new(binary)
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(out))
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))
}

impl Drop for Shim {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The echo backends the route switches between.
pub fn backends() -> Result<(EchoServer, EchoServer)> {
    let echo = |service: &str| {
        EchoServer::start(
            EchoIdentity::new("fleet", service, format!("{service}-0")),
            "127.0.0.1:0"
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0))),
        )
    };
    Ok((echo("api")?, echo("api-v2")?))
}

/// Starts `count` Envoys named `{prefix}-NN`, alternating state-of-the-world and delta.
pub fn start_envoys(
    shim: &Path,
    xds: SocketAddr,
    dir: &Path,
    prefix: &str,
    count: usize,
) -> Result<Vec<Member>> {
    let ports = testkit::ports::free_ports(count * 3)?;
    let mut plans = Vec::new();
    for i in 0..count {
        let port = |k: usize| ports.get(i * 3 + k).copied().unwrap_or_default();
        let ports = Ports {
            http: port(0),
            extra: port(1),
            https: port(2),
        };
        let name = format!("{prefix}-{i:02}");
        let delta = i % 2 == 1;
        let bootstrap = dir.join(format!("{name}.yaml"));
        let output = Command::new(shim)
            .args([
                "bootstrap",
                "--xds",
                &xds.to_string(),
                "--gateway",
                GATEWAY,
                "--node-id",
                &name,
            ])
            .args(["--admin-port", "0", "--bind-address", "127.0.0.1"])
            .args(["--protocol", if delta { "delta" } else { "sotw" }])
            .args(["--port-map", &format!("80={}", ports.http)])
            .args(["--port-map", &format!("8080={}", ports.extra)])
            .args(["--port-map", &format!("443={}", ports.https)])
            .args(["--out", &bootstrap.display().to_string()])
            .output()
            .context("running controller-shim bootstrap")?;
        if !output.status.success() {
            bail!(
                "controller-shim bootstrap failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        plans.push((name, bootstrap, ports, delta));
    }
    // One after the other, from this thread: an Envoy started from a thread that then ends gets
    // SIGTERM (observed here), and each start compiles the module in V8 anyway.
    let mut members = Vec::new();
    for (name, bootstrap, ports, delta) in plans {
        let mut options = EnvoyOptions::new(&bootstrap);
        options.log_path = Some(dir.join(format!("{name}.log")));
        options.ready_timeout = Duration::from_secs(120);
        let envoy = Envoy::start(options).with_context(|| format!("starting {name}"))?;
        members.push(Member {
            name,
            envoy,
            ports,
            delta,
        });
    }
    Ok(members)
}

/// Every Envoy's PID, to prove nothing restarted.
pub fn pids(members: &[Member]) -> BTreeMap<String, u32> {
    members
        .iter()
        .map(|m| (m.name.clone(), m.envoy.pid()))
        .collect()
}
