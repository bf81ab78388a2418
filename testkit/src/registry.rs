//! A real OCI registry for tests: Debian's `docker-registry` (distribution 2.8) as a child process on
//! 127.0.0.1, storing into a temporary directory, optionally behind htpasswd basic auth. The
//! packager's push/pull tests and the controller-shim's module pulls run against it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Minimal HTTP/1.0 GET on loopback: (status, body).
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header terminator"))?;
    let head = String::from_utf8_lossy(raw.get(..split).unwrap_or_default()).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {head}")))?;
    Ok((status, raw.get(split + 4..).unwrap_or_default().to_vec()))
}

fn spawn(config: &std::path::Path) -> Result<Child> {
    Command::new("docker-registry")
        .arg("serve")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting docker-registry")
}

/// A docker-registry child process on 127.0.0.1, storing into a temporary directory. Stopped
/// when dropped.
#[derive(Debug)]
pub struct TestRegistry {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl TestRegistry {
    /// An anonymous registry (installs the Debian package when missing).
    pub fn start() -> Result<Self> {
        Self::start_with_auth(None)
    }

    /// A registry that requires HTTP basic auth (htpasswd, bcrypt) for `user`/`password`.
    pub fn start_with_htpasswd(user: &str, password: &str) -> Result<Self> {
        Self::start_with_auth(Some((user, password)))
    }

    fn start_with_auth(credentials: Option<(&str, &str)>) -> Result<Self> {
        crate::debian::ensure_package("docker-registry", "docker-registry")?;
        let dir = tempfile::tempdir().context("creating the registry's directory")?;
        let mut auth = String::new();
        if let Some((user, password)) = credentials {
            crate::debian::ensure_package("htpasswd", "apache2-utils")?;
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .context("running htpasswd")?;
            if !out.status.success() {
                bail!("htpasswd failed: {out:?}");
            }
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &out.stdout).context("writing the htpasswd file")?;
            auth = format!(
                "auth:\n  htpasswd:\n    realm: gateway-wasm-test\n    path: {}\n",
                file.display()
            );
        }
        let port = crate::ports::free_port()?;
        Self::start_at(dir, port, &auth)
    }

    /// Starts the process again on the same port with the same storage (after [`Self::stop`]).
    pub fn start_again(&mut self) -> Result<()> {
        self.stop();
        self.child = spawn(&self._dir.path().join("config.yml"))?;
        self.wait_ready()
    }

    fn start_at(dir: tempfile::TempDir, port: u16, auth: &str) -> Result<Self> {
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).context("creating the registry's storage")?;
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
                data.display()
            ),
        )
        .context("writing the registry's configuration")?;
        let child = spawn(&config)?;
        let mut registry = TestRegistry {
            port,
            child,
            _dir: dir,
        };
        registry.wait_ready()?;
        Ok(registry)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200 | 401, _)) = http_get(self.port, "/v2/") {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!(
                    "docker-registry exited early ({status}) on port {}",
                    self.port
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "docker-registry did not answer /v2/ on 127.0.0.1:{} within 30s",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the process (the storage stays until the handle is dropped).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Pushes `module` as the packager's `oci` artifact format under `repository:tag` (anonymous,
    /// plain HTTP); returns the manifest digest. The tag moves when pushed again.
    pub fn publish_module(&self, repository: &str, tag: &str, module: &[u8]) -> Result<String> {
        use oci_artifacts::formats::{self, Format, Metadata};
        use oci_artifacts::registry::{Connect, Registry, Target};
        let artifact = formats::build_artifact(
            Format::Oci,
            module,
            &Metadata {
                version: "0.1.0".into(),
                source: None,
                revision: None,
                created: "2026-01-01T00:00:00Z".into(),
            },
        )?;
        let (auth, auth_source) = oci_artifacts::auth::anonymous();
        let registry = Registry::new(Connect {
            plain_http: true,
            auth,
            auth_source,
        })
        .with_progress(|_| {});
        let target = Target::parse(&format!("{}/{repository}:{tag}", self.host()))?;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting a runtime for the registry client")?
            .block_on(registry.push_artifact(&artifact, &target))
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}
