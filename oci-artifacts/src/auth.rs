//! Registry credentials: `--username` + `--password-stdin`, or Docker's config file
//! (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`) with its `auths` entries and
//! credential helpers (`credHelpers`, `credsStore`), or anonymous access.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, anyhow, bail};
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use crate::digest::base64_decode;

/// Where credentials came from, for progress lines (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthSource {
    Anonymous,
    CommandLine { username: String },
    DockerConfig { path: PathBuf, username: String },
    Helper { helper: String, username: String },
}

impl std::fmt::Display for AuthSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthSource::Anonymous => write!(f, "anonymous"),
            AuthSource::CommandLine { username } => write!(f, "user {username} (command line)"),
            AuthSource::DockerConfig { path, username } => {
                write!(f, "user {username} (from {})", path.display())
            }
            AuthSource::Helper { helper, username } => {
                write!(f, "user {username} (docker-credential-{helper})")
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct HelperOutput {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// The Docker config file that applies: `$DOCKER_CONFIG/config.json`, else
/// `$HOME/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker").join("config.json"))
}

/// Keys a registry may be stored under in `auths`.
fn candidate_keys(registry: &str) -> Vec<String> {
    let mut keys = vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        format!("https://{registry}/v1/"),
        format!("https://{registry}/v2/"),
    ];
    if matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        keys.push("https://index.docker.io/v1/".into());
        keys.push("docker.io".into());
        keys.push("index.docker.io".into());
    }
    keys
}

/// Resolves credentials for `registry` (host[:port] as written in the reference).
pub fn resolve(
    registry: &str,
    username: Option<&str>,
    password_stdin: bool,
) -> Result<(RegistryAuth, AuthSource)> {
    match (username, password_stdin) {
        (Some(user), true) => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\n', '\r']).to_string();
            if password.is_empty() {
                bail!("--password-stdin: standard input was empty");
            }
            return Ok((
                RegistryAuth::Basic(user.to_string(), password),
                AuthSource::CommandLine {
                    username: user.to_string(),
                },
            ));
        }
        (Some(_), false) => {
            bail!("--username needs --password-stdin (the password is read from standard input)")
        }
        (None, true) => bail!("--password-stdin needs --username"),
        (None, false) => {}
    }
    from_environment(registry)
}

/// No credentials.
pub fn anonymous() -> (RegistryAuth, AuthSource) {
    (RegistryAuth::Anonymous, AuthSource::Anonymous)
}

/// Credentials given as a user and a password read elsewhere (a mounted Secret's file).
pub fn with_password(username: &str, password: &str) -> Result<(RegistryAuth, AuthSource)> {
    let password = password.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        bail!("the password for registry user {username} is empty");
    }
    Ok((
        RegistryAuth::Basic(username.to_string(), password.to_string()),
        AuthSource::CommandLine {
            username: username.to_string(),
        },
    ))
}

/// Credentials for `registry` from Docker's config file (and its credential helpers), else none.
pub fn from_environment(registry: &str) -> Result<(RegistryAuth, AuthSource)> {
    match docker_config_path() {
        Some(path) if path.is_file() => from_docker_config(&path, registry),
        _ => Ok((RegistryAuth::Anonymous, AuthSource::Anonymous)),
    }
}

fn from_docker_config(path: &Path, registry: &str) -> Result<(RegistryAuth, AuthSource)> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let config: DockerConfig = serde_json::from_slice(&text)
        .with_context(|| format!("parsing the Docker config file {}", path.display()))?;
    let keys = candidate_keys(registry);

    if let Some(helper) = keys.iter().find_map(|k| config.cred_helpers.get(k)) {
        return from_helper(helper, registry);
    }
    if let Some(entry) = keys.iter().find_map(|k| config.auths.get(k)) {
        let (user, pass) = if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let decoded = base64_decode(auth)
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    anyhow!(
                        "{}: auths.\"{registry}\".auth is not base64 of `user:password`",
                        path.display()
                    )
                })?;
            let (u, p) = decoded.split_once(':').ok_or_else(|| {
                anyhow!(
                    "{}: auths.\"{registry}\".auth does not contain `user:password`",
                    path.display()
                )
            })?;
            (u.to_string(), p.to_string())
        } else if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
            (u.clone(), p.clone())
        } else if entry.identity_token.is_some() {
            bail!(
                "{}: the entry for {registry} holds an OAuth identity token, which this tool cannot use; pass --username and --password-stdin",
                path.display()
            );
        } else {
            // An empty entry (as `docker login` leaves with a credsStore): fall through.
            return match &config.creds_store {
                Some(store) => from_helper(store, registry),
                None => Ok((RegistryAuth::Anonymous, AuthSource::Anonymous)),
            };
        };
        return Ok((
            RegistryAuth::Basic(user.clone(), pass),
            AuthSource::DockerConfig {
                path: path.to_path_buf(),
                username: user,
            },
        ));
    }
    match &config.creds_store {
        Some(store) => from_helper(store, registry),
        None => Ok((RegistryAuth::Anonymous, AuthSource::Anonymous)),
    }
}

/// Runs `docker-credential-<helper> get` with the registry on standard input.
fn from_helper(helper: &str, registry: &str) -> Result<(RegistryAuth, AuthSource)> {
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!("running the Docker credential helper `{program}` named in the Docker config")
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(registry.as_bytes())
            .with_context(|| format!("writing to `{program} get`"))?;
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("waiting for `{program} get`"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        if stdout.contains("credentials not found") || stderr.contains("credentials not found") {
            return Ok((RegistryAuth::Anonymous, AuthSource::Anonymous));
        }
        bail!(
            "`{program} get` for {registry} failed ({}): {}",
            out.status,
            stderr.trim()
        );
    }
    let parsed: HelperOutput = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("parsing the output of `{program} get`"))?;
    if parsed.username == "<token>" {
        bail!(
            "`{program}` returned an identity token for {registry}, which this tool cannot use; pass --username and --password-stdin"
        );
    }
    Ok((
        RegistryAuth::Basic(parsed.username.clone(), parsed.secret),
        AuthSource::Helper {
            helper: helper.to_string(),
            username: parsed.username,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(auth: &RegistryAuth) -> (String, String) {
        match auth {
            RegistryAuth::Basic(u, p) => (u.clone(), p.clone()),
            other => panic!("expected basic auth, got {other:?}"),
        }
    }

    #[test]
    fn reads_auth_field_and_https_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://reg.example:5000":{"auth":"YWxpY2U6czNjcjN0"},
                        "other.example":{"username":"bob","password":"pw"}}}"#,
        )
        .unwrap();
        let (auth, source) = from_docker_config(&path, "reg.example:5000").unwrap();
        assert_eq!(basic(&auth), ("alice".into(), "s3cr3t".into()));
        assert!(source.to_string().contains("alice"));
        assert!(!source.to_string().contains("s3cr3t"));
        let (auth, _) = from_docker_config(&path, "other.example").unwrap();
        assert_eq!(basic(&auth), ("bob".into(), "pw".into()));
        let (auth, source) = from_docker_config(&path, "unknown.example").unwrap();
        assert!(matches!(auth, RegistryAuth::Anonymous));
        assert_eq!(source, AuthSource::Anonymous);
    }

    #[test]
    fn malformed_config_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, "{not json").unwrap();
        let err = from_docker_config(&path, "r").unwrap_err();
        assert!(format!("{err:#}").contains(&path.display().to_string()));
        std::fs::write(&path, r#"{"auths":{"r":{"auth":"bm9jb2xvbg=="}}}"#).unwrap();
        let err = from_docker_config(&path, "r").unwrap_err().to_string();
        assert!(err.contains("does not contain `user:password`"), "{err}");
    }

    #[test]
    fn missing_helper_is_named() {
        let err = from_helper("definitely-not-installed", "r").unwrap_err();
        assert!(format!("{err:#}").contains("docker-credential-definitely-not-installed"));
    }

    #[test]
    fn username_requires_password_stdin() {
        let err = resolve("r", Some("u"), false).unwrap_err().to_string();
        assert!(err.contains("--password-stdin"), "{err}");
    }
}
