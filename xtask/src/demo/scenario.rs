use super::*;

// The scenario

pub(crate) struct Demo {
    pub(crate) root: PathBuf,
    pub(crate) style: Style,
    pub(crate) shim: PathBuf,
    pub(crate) grpc_call: PathBuf,
    pub(crate) manifests: PathBuf,
    pub(crate) envoy: SocketAddr,
    pub(crate) admin: SocketAddr,
    pub(crate) passed: usize,
    pub(crate) failed: Vec<String>,
}

impl Demo {
    pub(crate) fn heading(&self, text: &str) {
        println!();
        println!("{}", self.style.bold(text));
    }

    pub(crate) fn check(&mut self, ok: bool, what: &str) {
        if ok {
            self.passed += 1;
            println!("    {}  {what}", self.style.pass());
        } else {
            self.failed.push(what.to_owned());
            println!("    {}  {what}", self.style.fail());
        }
    }

    /// The engine's decision for a request, as `controller-shim explain` prints it.
    pub(crate) fn decision(&self, probe: &Probe<'_>) -> Vec<String> {
        let mut command = Command::new(&self.shim);
        command
            .arg("explain")
            .arg("--manifests")
            .arg(&self.manifests)
            .arg("--request")
            .arg(probe.request_line());
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

    pub(crate) fn describe(&self, probe: &Probe<'_>) {
        let mut line = probe.request_line();
        for (name, value) in probe.headers {
            let _ = write!(line, "  -H '{name}: {value}'");
        }
        println!("  {} {}", self.style.cyan("→"), self.style.cyan(&line));
        for (i, decision) in self.decision(probe).iter().enumerate() {
            let label = if i == 0 { "decision" } else { "        " };
            println!("    {}  {decision}", self.style.dim(label));
        }
    }

    pub(crate) fn send(&self, probe: &Probe<'_>) -> anyhow::Result<Reply> {
        http_get(self.envoy, probe.host, probe.path, probe.headers)
    }

    /// Sends one request, printing it, the decision and the answer.
    pub(crate) fn request(&self, probe: &Probe<'_>) -> Option<Reply> {
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

    pub(crate) fn served_by(reply: Option<&Reply>) -> Option<String> {
        reply.and_then(Reply::echo).map(|e| e.backend())
    }

    pub(crate) fn expect_backend(
        &mut self,
        probe: &Probe<'_>,
        backend: &str,
        what: &str,
    ) -> Option<Reply> {
        let reply = self.request(probe);
        let got = Self::served_by(reply.as_ref());
        let ok = reply.as_ref().is_some_and(|r| r.status == 200) && got.as_deref() == Some(backend);
        self.check(ok, &format!("{what} (expected {backend})"));
        reply
    }

    pub(crate) fn routing(&mut self) {
        self.heading("1. Host and path routing: two teams share one Gateway");
        println!(
            "   {}",
            self.style.dim(
                "The store team owns store.example.com and www.example.com/store; the site team owns www.example.com."
            )
        );
        let p = STORE_CART;
        self.expect_backend(
            &p,
            "store/store-v1",
            "store.example.com goes to the store team",
        );
        let p = SITE_ABOUT;
        self.expect_backend(&p, "site/site-v1", "www.example.com goes to the site team");
        let p = STORE_ON_WWW;
        self.expect_backend(
            &p,
            "store/store-v1",
            "www.example.com/store goes to the store team (path prefix beats /)",
        );
    }

    pub(crate) fn canary(&mut self) {
        self.heading("2. Header-based canary: `env: canary` reaches store-v2");
        let p = CANARY;
        self.expect_backend(&p, "store/store-v2", "the canary header selects store-v2");
        let p = NOT_CANARY;
        self.expect_backend(&p, "store/store-v1", "another value does not");
    }

    pub(crate) fn split(&mut self, n: u32) {
        self.heading(&format!(
            "3. Weighted split: www.example.com/home is 80% site-v1, 20% site-v2 ({n} requests)"
        ));
        let p = SPLIT;
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

    pub(crate) fn redirect(&mut self) {
        self.heading("4. Redirect: /old-blog moved to /blog (301, answered by the filter)");
        let p = REDIRECT;
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

    pub(crate) fn rewrite(&mut self) {
        self.heading("5. Path rewrite: the store team's /store prefix is removed on the way in");
        let p = REWRITE;
        let reply = self.request(&p);
        let echo = reply.as_ref().and_then(Reply::echo);
        let ok = echo
            .as_ref()
            .is_some_and(|e| e.service == "store-v1" && e.path == "/cart?item=42");
        self.check(ok, "store-v1 saw /cart?item=42 (query kept)");
    }

    pub(crate) fn header_edits(&mut self) {
        self.heading("6. Header edits: set, add and remove on the request; set on the response");
        let p = HEADER_EDITS;
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

    pub(crate) fn not_found(&mut self) {
        self.heading("7. No route: a host nobody serves gets 404 from the filter");
        let p = NOT_FOUND;
        let reply = self.request(&p);
        let ok = reply
            .as_ref()
            .is_some_and(|r| r.status == 404 && r.echo().is_none());
        self.check(ok, "404, no backend involved");
        let p = SPOOFED_UPSTREAM;
        let reply = self.request(&p);
        let ok = reply
            .as_ref()
            .is_some_and(|r| r.status == 404 && r.echo().is_none());
        self.check(
            ok,
            "still 404: a client cannot pick a backend with the filter's internal header",
        );
    }

    pub(crate) fn admin_counter(&self, name: &str) -> Option<u64> {
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
    pub(crate) fn reload_logs(
        &self,
        shim_log: &Path,
        envoy_log: &Path,
    ) -> Option<(String, String)> {
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

    pub(crate) fn hot_reload(
        &mut self,
        processes: &mut Processes,
        envoy_pid: u32,
        shim_log: &Path,
        envoy_log: &Path,
    ) -> anyhow::Result<()> {
        self.heading("9. Hot reload: the site team promotes site-v2 by editing its route");
        let p = RELOADED;
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
        let staged = atomic_file::stage(&file, edited.as_bytes(), atomic_file::Access::Public)?;
        let saved = Instant::now();
        staged.commit()?;

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
