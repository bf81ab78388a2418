//! `/ui`: the playground page, read-only, with the live configuration (`/ui/live.json`).
//!
//! The page's files are built by `cargo xtask playground` (into `target/playground/`); `run`
//! finds them with `--ui-dir DIR` (or `GATEWAY_WASM_UI_DIR`), else next to its own binary
//! (`target/debug/controller-shim` → `target/playground/`). They are read once at start, so the
//! server never touches the file system per request and cannot serve anything else. Without them
//! `/ui` answers 503 with the command that builds them. The page is served in its "live" mode: the
//! editor is read-only and requests are explained against the configuration the proxies run now.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::live::LiveView;

/// Where the page's files come from, when no `--ui-dir` is given: `../playground` from the
/// directory of the running binary (cargo's `target/<profile>/` → `target/playground/`).
pub fn default_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.join("playground"))
}

/// The page's files, or why there are none.
#[derive(Debug, Clone)]
pub enum Assets {
    Loaded(BTreeMap<String, Vec<u8>>),
    Missing(String),
}

/// The command that builds the page.
pub const BUILD_HINT: &str = "build it with `cargo xtask playground` (writes target/playground/), then restart, or pass --ui-dir DIR";

/// The meta tag that switches the page to its live mode.
const PLAYGROUND_MODE: &str = r#"<meta name="gateway-wasm-mode" content="playground">"#;
const LIVE_MODE: &str = r#"<meta name="gateway-wasm-mode" content="live">"#;

impl Assets {
    /// Reads every file of `dir` (not recursively). Fails when the directory cannot be read or
    /// holds no `index.html` with the mode tag the live view needs.
    pub fn load(dir: &Path) -> Result<Assets, String> {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut files = BTreeMap::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !path.is_file() || name.starts_with('.') {
                continue;
            }
            let mut bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            if name == "index.html" {
                let text = String::from_utf8_lossy(&bytes);
                if !text.contains(PLAYGROUND_MODE) {
                    return Err(format!(
                        "{} is not the playground page (no {PLAYGROUND_MODE})",
                        path.display()
                    ));
                }
                bytes = text.replacen(PLAYGROUND_MODE, LIVE_MODE, 1).into_bytes();
            }
            files.insert(name.to_owned(), bytes);
        }
        if !files.contains_key("index.html") {
            return Err(format!("{} has no index.html", dir.display()));
        }
        Ok(Assets::Loaded(files))
    }

    /// `--ui-dir` when given (its problems are errors), else the default directory (its absence
    /// is not: `/ui` then says how to build the page).
    pub fn find(dir: Option<&Path>) -> Result<Assets, String> {
        if let Some(dir) = dir {
            return Assets::load(dir).map_err(|e| format!("--ui-dir: {e}"));
        }
        match default_dir() {
            Some(dir) if dir.join("index.html").is_file() => Assets::load(&dir),
            Some(dir) => Ok(Assets::Missing(format!(
                "The playground page is not built ({} has none). To serve it here, {BUILD_HINT}.",
                dir.display()
            ))),
            None => Ok(Assets::Missing(format!(
                "The playground page was not found. To serve it here, {BUILD_HINT}."
            ))),
        }
    }
}

/// The `/ui` site: the page's files and the live view.
#[derive(Debug, Clone)]
pub struct Ui {
    assets: Assets,
    live: Arc<LiveView>,
}

/// One answer: status, content type, body.
pub type Answer = (u16, &'static str, Vec<u8>);

/// The Content-Type of a page file (ES modules need a JavaScript type; streaming compilation of
/// the module needs `application/wasm`).
fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("wasm") => "application/wasm",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

impl Ui {
    pub fn new(assets: Assets, live: Arc<LiveView>) -> Ui {
        Ui { assets, live }
    }

    /// Whether the page's files were found.
    pub fn available(&self) -> bool {
        matches!(self.assets, Assets::Loaded(_))
    }

    /// The answer for a path under `/ui/` (`name` is what follows it; empty for the page).
    pub fn answer(&self, name: &str) -> Answer {
        if name == "live.json" {
            let body = serde_json::to_vec(&self.live.document()).unwrap_or_default();
            return (200, "application/json", body);
        }
        let name = if name.is_empty() { "index.html" } else { name };
        match &self.assets {
            Assets::Loaded(files) => match files.get(name) {
                Some(body) => (200, content_type(name), body.clone()),
                None => (404, "text/plain", b"not found\n".to_vec()),
            },
            Assets::Missing(message) if name == "index.html" => (
                503,
                "text/html; charset=utf-8",
                format!(
                    "<!doctype html><title>gateway-wasm</title><h1>gateway-wasm controller-shim</h1><p>{}</p>\
                     <p>The live configuration is at <a href=\"live.json\">live.json</a>.</p>\n",
                    html_escape(message)
                )
                .into_bytes(),
            ),
            Assets::Missing(message) => (503, "text/plain", format!("{message}\n").into_bytes()),
        }
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn live() -> Arc<LiveView> {
        Arc::new(LiveView::new("manifests m", "c"))
    }

    #[test]
    fn the_page_is_served_in_live_mode_and_nothing_else_is() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("index.html"),
            format!("<html>{PLAYGROUND_MODE}</html>"),
        )
        .unwrap();
        std::fs::write(dir.path().join("app.js"), "export {}").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let ui = Ui::new(Assets::find(Some(dir.path())).unwrap(), live());
        assert!(ui.available());
        let (status, kind, body) = ui.answer("");
        assert_eq!((status, kind), (200, "text/html; charset=utf-8"));
        assert!(String::from_utf8(body).unwrap().contains(LIVE_MODE));
        assert_eq!(ui.answer("app.js").1, "text/javascript; charset=utf-8");
        assert_eq!(ui.answer("../Cargo.toml").0, 404);
        assert_eq!(ui.answer("sub").0, 404);
        let (status, kind, body) = ui.answer("live.json");
        assert_eq!((status, kind), (200, "application/json"));
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(doc["source"], "manifests m");
        assert_eq!(doc["gateways"], serde_json::json!([]));
    }

    #[test]
    fn a_missing_page_says_how_to_build_it_and_a_wrong_dir_is_an_error() {
        let ui = Ui::new(Assets::Missing(format!("not built; {BUILD_HINT}")), live());
        let (status, _, body) = ui.answer("");
        assert_eq!(status, 503);
        assert!(
            String::from_utf8(body)
                .unwrap()
                .contains("cargo xtask playground")
        );
        assert_eq!(ui.answer("live.json").0, 200);
        let dir = tempfile::tempdir().unwrap();
        let err = Assets::find(Some(dir.path())).unwrap_err();
        assert!(err.contains("has no index.html"), "{err}");
    }
}
