//! The real-Envoy target: every case through a real Envoy 1.40 running the wasm filter, configured
//! through the very files the controller-shim writes, in front of real echo backends on loopback.
//!
//! One Envoy is reused across cases: a case whose rendered bootstrap (listeners, TLS) equals the
//! running one only pushes a new extension config and clusters, which Envoy hot-reloads, exactly as
//! in production; a case that needs other listeners restarts Envoy with its bootstrap.
//!
//! [`EnvoyTarget::new_xds`] (`--target envoy-xds`) runs the same cases and checks with the
//! controller-shim process feeding Envoy over xDS instead ([`xds`]).

mod fleet;
mod send;
mod xds;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use controller_shim::api::ByteString;
use controller_shim::envoy::{self as render, EnvoyOptions, FILTER_NAME};
use controller_shim::resolution::GatewayResult;
use controller_shim::{Settings, Snapshot, resolve};
use testkit::certs::{CertificateAuthority, IssuedCert};
use testkit::envoy::{Envoy, EnvoyOptions as ProcessOptions};

use crate::outcome::Outcome;
use crate::snapshot::{PLACEHOLDER_TLS_SECRET, case_gateway, snapshot_for};
use crate::vectors::{Case, ServiceSpec, VectorFile};

/// The stat Envoy bumps when it accepts a new extension config for the filter.
fn ecds_success_stat() -> String {
    format!("extension_config_discovery.http_filter.{FILTER_NAME}.update_success")
}
fn ecds_rejected_stat() -> String {
    format!("extension_config_discovery.http_filter.{FILTER_NAME}.update_rejected")
}
const CDS_SUCCESS_STAT: &str = "cluster_manager.cds.update_success";

/// How long a pushed config may take to show up (the product promises about a second).
const PUSH_DEADLINE: Duration = Duration::from_secs(10);

pub struct EnvoyTarget {
    dir: tempfile::TempDir,
    wasm: PathBuf,
    /// The Wasm filter, or the dynamic module (`--target envoy-dynamic`).
    filter: render::EnvoyFilter,
    fleet: fleet::Fleet,
    authority: CertificateAuthority,
    /// Gateway port → loopback port Envoy binds, stable across cases so bootstraps compare equal.
    ports: BTreeMap<u16, u16>,
    running: Option<Running>,
    /// Extension-config pushes Envoy applied without a restart, and bootstrap restarts.
    hot_reloads: u64,
    restarts: u64,
    /// `--target envoy-xds`: the shim process feeding Envoy over xDS, and the one certificate
    /// (for every name of every case) its listeners present, so SDS changes only with listeners.
    xds: Option<(Box<xds::XdsDelivery>, IssuedCert)>,
}

struct Running {
    envoy: Envoy,
    bootstrap: String,
}

impl EnvoyTarget {
    /// Prepares the target: the wasm module must already be built (`wasm`).
    pub fn new(wasm: &Path) -> anyhow::Result<EnvoyTarget> {
        if !wasm.exists() {
            bail!(
                "{} does not exist; build it with `cargo build -p plugin --target wasm32-wasip1 --profile wasm`",
                wasm.display()
            );
        }
        testkit::envoy::ensure_envoy()?;
        Ok(EnvoyTarget {
            dir: tempfile::tempdir().context("creating a work directory")?,
            wasm: wasm.to_path_buf(),
            filter: render::EnvoyFilter::Wasm,
            fleet: fleet::Fleet::default(),
            authority: CertificateAuthority::new("gateway-wasm conformance CA")?,
            ports: BTreeMap::new(),
            running: None,
            hot_reloads: 0,
            restarts: 0,
            xds: None,
        })
    }

    /// The same target with the Envoy dynamic module (`libgateway_wasm_dynamic.so`) instead of the Wasm
    /// filter: same rendering, same cases, same checks.
    pub fn dynamic_module(module: &Path) -> anyhow::Result<EnvoyTarget> {
        if !module.is_file() {
            bail!(
                "{} does not exist; build it with `cargo build -p dynamic-module`",
                module.display()
            );
        }
        let module = std::path::absolute(module)
            .with_context(|| format!("resolving {}", module.display()))?;
        let mut target = EnvoyTarget::new(&module)?;
        target.filter = render::EnvoyFilter::DynamicModule(module);
        Ok(target)
    }

    /// The xDS variant: a controller-shim process (`run --manifests --xds-listen --wasm oci://`,
    /// the module published to a registry process) and an Envoy from `controller-shim bootstrap`.
    /// `cases`: every case that will run, for the ports to map and the names to certify up front.
    pub fn new_xds(wasm: &Path, cases: &[&Case]) -> anyhow::Result<EnvoyTarget> {
        let mut target = EnvoyTarget::new(wasm)?;
        let listeners = || {
            cases.iter().flat_map(|c| {
                c.gateway.listeners.iter().chain(
                    c.gateway
                        .listener_sets
                        .iter()
                        .flat_map(|s| s.listeners.iter()),
                )
            })
        };
        let ports = xds::port_map(listeners().map(|l| l.port))?;
        let mut names: Vec<String> = vec!["localhost".to_owned()];
        names.extend(listeners().filter_map(|l| l.hostname.clone()));
        for case in cases {
            names.extend(case.request.sni.clone());
            names.extend(case.request.host.clone());
        }
        names.sort();
        names.dedup();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let certificate = target.authority.issue(&refs)?;
        let delivery = xds::XdsDelivery::start(target.dir.path(), wasm, ports)?;
        target.ports = delivery.ports().clone();
        target.xds = Some((Box::new(delivery), certificate));
        Ok(target)
    }

    /// Runs one case; infrastructure errors become failures that say what broke.
    pub fn run(&mut self, case: &Case, file: &VectorFile) -> Outcome {
        if let Some(reason) = crate::coverage::unchecked_grpc_capable_case(case) {
            return Outcome::Skip(reason);
        }
        match self.try_run(case, file) {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Fail(format!("{e:#}")),
        }
    }

    fn try_run(&mut self, case: &Case, file: &VectorFile) -> anyhow::Result<Outcome> {
        let (snapshot, result) = self.resolve(case, file)?;
        match self.xds.as_mut() {
            Some((delivery, _)) => delivery.push(&snapshot, &result)?,
            None => self.push(&result)?,
        }
        let bind = |port: u16| self.ports.get(&port).copied();
        let Some(port) = bind(case.request.port) else {
            bail!("no Envoy listener for Gateway port {}", case.request.port);
        };
        let sender = if case.is_grpc() {
            let table = crate::grpc_status::http_table(file).map_err(anyhow::Error::msg)?;
            send::Sender::grpc(case, port, table)
        } else {
            send::Sender::new(case, port)
        };

        if !case.expect.websocket_echo.is_empty() {
            return Ok(match sender.websocket(&case.expect.websocket_echo) {
                Ok(()) => Outcome::Pass,
                Err(e) => Outcome::Fail(e),
            });
        }
        if !case.expect.distribution.is_empty() {
            return crate::distribution::sample(
                &case.id,
                &case.expect.distribution,
                case.expect.samples.unwrap_or(500),
                case.expect.distribution_tolerance.unwrap_or(0.05),
                || {
                    let checked = sender.send_any()?.check(case);
                    anyhow::Ok(checked.map(|exchange| exchange.echo.map(|e| e.backend)))
                },
            );
        }

        let mirror_counts = self.mirror_counts(case);
        let exchange = match sender.send_any()?.check(case) {
            Ok(exchange) => exchange,
            Err(e) => return Ok(Outcome::Fail(e)),
        };
        if let Some(protocol) = &case.expect.upstream_protocol
            && let Err(e) = send::check_upstream_protocol(protocol, &exchange)
        {
            return Ok(Outcome::Fail(e));
        }
        if !case.expect.per_backend_request_headers.is_empty() {
            for _ in 0..50 {
                let checked = sender
                    .send_any()?
                    .into_exchange()
                    .and_then(|exchange| crate::exchange::check_backend_headers(case, &exchange));
                if let Err(e) = checked {
                    return Ok(Outcome::Fail(e));
                }
            }
        }
        if !case.expect.mirrored_to.is_empty()
            && let Err(e) = self.check_mirrors(case, &sender, mirror_counts)
        {
            return Ok(Outcome::Fail(e));
        }
        Ok(Outcome::Pass)
    }

    /// Resolves the case with endpoints on the loopback fleet and real TLS certificates.
    fn resolve(
        &mut self,
        case: &Case,
        file: &VectorFile,
    ) -> anyhow::Result<(Snapshot, GatewayResult)> {
        let mut snapshot: Snapshot = snapshot_for(case, file);
        let mut services: BTreeMap<(String, String), &ServiceSpec> = BTreeMap::new();
        for s in file.services.iter().chain(case.extra_services.iter()) {
            services.insert((s.namespace.clone(), s.name.clone()), s);
        }
        let services: Vec<&ServiceSpec> = services.into_values().collect();
        snapshot.endpoint_slices = self.fleet.endpoint_slices(&services)?;
        self.real_certificates(&mut snapshot, case)?;
        let resolution = resolve(&snapshot, &Settings::default());
        let result = case_gateway(resolution, case).map_err(anyhow::Error::msg)?;
        Ok((snapshot, result))
    }

    /// Replaces the placeholder Secrets with a certificate for every hostname the case uses.
    fn real_certificates(&self, snapshot: &mut Snapshot, case: &Case) -> anyhow::Result<()> {
        let mut names: Vec<String> = vec!["localhost".to_owned()];
        let listeners = case.gateway.listeners.iter().chain(
            case.gateway
                .listener_sets
                .iter()
                .flat_map(|s| s.listeners.iter()),
        );
        names.extend(listeners.filter_map(|l| l.hostname.clone()));
        names.extend(case.request.sni.clone());
        names.extend(case.request.host.clone());
        names.sort();
        names.dedup();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let issued = match &self.xds {
            Some((_, certificate)) => certificate.clone(),
            None => self.authority.issue(&refs)?,
        };
        for secret in snapshot
            .secrets
            .iter_mut()
            .filter(|s| s.metadata.name.as_deref() == Some(PLACEHOLDER_TLS_SECRET))
        {
            let data = secret.data.get_or_insert_with(BTreeMap::new);
            data.insert(
                "tls.crt".to_owned(),
                ByteString(issued.chain_pem().into_bytes()),
            );
            data.insert(
                "tls.key".to_owned(),
                ByteString(issued.key_pem.clone().into_bytes()),
            );
        }
        Ok(())
    }

    /// Renders the Envoy files and makes the running Envoy serve them: a restart when the bootstrap
    /// changed, else a hot reload of the extension config and clusters.
    fn push(&mut self, result: &GatewayResult) -> anyhow::Result<()> {
        for listener in &result.config.listeners {
            if let std::collections::btree_map::Entry::Vacant(slot) =
                self.ports.entry(listener.port)
            {
                slot.insert(testkit::ports::free_port()?);
            }
        }
        let config_dir = self.dir.path().join("envoy");
        let mut options = EnvoyOptions::new(&config_dir, &self.wasm);
        options.port_map = self.ports.clone();
        options.filter = self.filter.clone();
        options.bind_address = "127.0.0.1".to_owned();
        options.admin_port = 0;
        let files = render::render(result, &options).context("rendering the Envoy files")?;
        let bootstrap = files
            .get(render::BOOTSTRAP_FILE)
            .unwrap_or_default()
            .to_owned();

        let restart = self
            .running
            .as_ref()
            .is_none_or(|r| r.bootstrap != bootstrap);
        if restart {
            if let Some(running) = self.running.take() {
                drop(running.envoy);
            }
            render::write_files(&config_dir, &files).context("writing the Envoy files")?;
            let mut process = ProcessOptions::new(config_dir.join(render::BOOTSTRAP_FILE));
            process.concurrency = 2;
            process.log_path = Some(self.dir.path().join("envoy.log"));
            let envoy = Envoy::start(process)?;
            self.running = Some(Running { envoy, bootstrap });
            self.restarts += 1;
            return Ok(());
        }
        let Some(running) = self.running.as_ref() else {
            bail!("no running Envoy")
        };
        let before = (
            running.envoy.counter(&ecds_success_stat()).unwrap_or(0),
            running.envoy.counter(&ecds_rejected_stat()).unwrap_or(0),
            running.envoy.counter(CDS_SUCCESS_STAT).unwrap_or(0),
        );
        let report = render::write_files(&config_dir, &files).context("writing the Envoy files")?;
        let changed = |name: &str| report.written.iter().any(|p| p.ends_with(name));
        if changed(render::CLUSTERS_FILE) {
            running
                .envoy
                .wait_for_counter(CDS_SUCCESS_STAT, |n| n > before.2, PUSH_DEADLINE)?;
        }
        if changed(render::EXTENSION_CONFIG_FILE) {
            let started = Instant::now();
            loop {
                let stats = running.envoy.stats()?;
                if stats.get(&ecds_rejected_stat()).copied().unwrap_or(0) > before.1 {
                    bail!(
                        "Envoy rejected the extension config: {}",
                        running.envoy.log_tail(5)
                    );
                }
                if stats.get(&ecds_success_stat()).copied().unwrap_or(0) > before.0 {
                    break;
                }
                if started.elapsed() > PUSH_DEADLINE {
                    bail!("Envoy did not apply the extension config within {PUSH_DEADLINE:?}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // The main thread has accepted the config; give the workers' new root contexts a moment.
            std::thread::sleep(Duration::from_millis(100));
            self.hot_reloads += 1;
        }
        Ok(())
    }

    fn mirror_counts(&self, case: &Case) -> BTreeMap<String, u64> {
        case.expect
            .mirrored_to
            .iter()
            .map(|m| {
                (
                    m.backend.clone(),
                    self.fleet
                        .find(&m.backend)
                        .iter()
                        .map(|s| s.request_count())
                        .sum(),
                )
            })
            .collect()
    }

    /// Each expected mirror backend must receive copies: one per request, or the right share.
    fn check_mirrors(
        &self,
        case: &Case,
        sender: &send::Sender,
        before: BTreeMap<String, u64>,
    ) -> Result<(), String> {
        let sampled = case
            .expect
            .mirrored_to
            .iter()
            .any(|m| m.percent.is_some_and(|p| p < 100));
        let requests: u64 = if sampled { 400 } else { 1 };
        for _ in 1..requests {
            sender.send_any().map_err(|e| format!("{e:#}"))?;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for expected in &case.expect.mirrored_to {
            let start = before.get(&expected.backend).copied().unwrap_or(0);
            let servers = self.fleet.find(&expected.backend);
            if servers.is_empty() {
                return Err(format!(
                    "no echo backend runs for mirror target {}",
                    expected.backend
                ));
            }
            let percent = f64::from(expected.percent.unwrap_or(100));
            let wanted = ((requests as f64) * percent / 100.0 * 0.7).ceil() as u64;
            let count = loop {
                let now: u64 = servers.iter().map(|s| s.request_count()).sum::<u64>() - start;
                if now >= wanted.max(1) || Instant::now() > deadline {
                    break now;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            crate::exchange::check_mirror_count(expected, count, requests, sampled)?;
        }
        Ok(())
    }

    /// How the run exercised Envoy: hot reloads applied, restarts for new listeners, rejections.
    pub fn summary(&self) -> String {
        if let Some((delivery, _)) = &self.xds {
            return format!(
                "Envoy over xDS: {} case configurations delivered by the controller-shim and ACKed, {} Envoy starts (one per Gateway switch)",
                delivery.deliveries, delivery.starts
            );
        }
        let rejected = self
            .running
            .as_ref()
            .and_then(|r| r.envoy.counter(&ecds_rejected_stat()))
            .unwrap_or(0);
        format!(
            "Envoy: {} configs hot-reloaded, {} starts for new listeners/TLS, {rejected} rejected",
            self.hot_reloads, self.restarts
        )
    }
}
