use super::*;

// Processes

/// The sh watchdog: collects the pids it is told, and when its stdin closes (this process ended,
/// however) terminates its process group, which every child joined.
pub(crate) const WATCHDOG: &str = r#"trap '' INT TERM HUP
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

pub(crate) struct Processes {
    pub(crate) watchdog: Child,
    pub(crate) pipe: Option<ChildStdin>,
    pub(crate) group: i32,
    pub(crate) children: Vec<(String, PathBuf, Child)>,
}

impl Processes {
    pub(crate) fn new() -> anyhow::Result<Processes> {
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
    pub(crate) fn spawn(
        &mut self,
        name: &str,
        mut command: Command,
        log: &Path,
    ) -> anyhow::Result<u32> {
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
    pub(crate) fn is_running(&mut self, pid: u32) -> bool {
        self.children
            .iter_mut()
            .any(|(_, _, c)| c.id() == pid && matches!(c.try_wait(), Ok(None)))
    }

    /// Stops watching a child that is meant to exit (a restarted process): waits up to `timeout`
    /// for it, SIGKILLs it if it is still there, and drops it from the list.
    pub(crate) fn retire(
        &mut self,
        pid: u32,
        timeout: Duration,
    ) -> Option<std::process::ExitStatus> {
        let index = self.children.iter().position(|(_, _, c)| c.id() == pid)?;
        let (_, _, mut child) = self.children.remove(index);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// Fails naming the first child that exited, with the end of its log.
    pub(crate) fn check_running(&mut self) -> anyhow::Result<()> {
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
    pub(crate) fn stop(&mut self) -> usize {
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

pub(crate) fn tail(path: &Path, n: usize) -> String {
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

pub(crate) fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

pub(crate) fn wait_for(
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

pub(crate) fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
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
