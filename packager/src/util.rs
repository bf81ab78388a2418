//! Small helpers shared by the commands: hashing, atomic directory replacement, timestamps, base64 of Docker auth.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// OCI digest string `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// The parent directory a temporary sibling of `path` goes into (created if missing).
fn parent_dir(path: &Path) -> Result<PathBuf> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent)
        .with_context(|| format!("creating directory {}", parent.display()))?;
    Ok(parent)
}

/// Builds a directory atomically: `fill` writes into a fresh temporary directory next to `dir`,
/// which then replaces `dir`. If `fill` fails, the temporary directory is removed and `dir` is
/// untouched. An existing `dir` is only replaced when `replaceable` says it may be.
pub fn write_dir_atomic(
    dir: &Path,
    replaceable: impl Fn(&Path) -> bool,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    if dir.exists() {
        if !dir.is_dir() {
            bail!("{} exists and is not a directory", dir.display());
        }
        let empty = fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_none();
        if !empty && !replaceable(dir) {
            bail!(
                "refusing to replace {}: it is not empty and not an output of this command",
                dir.display()
            );
        }
    }
    let parent = parent_dir(dir)?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temporary directory in {}", parent.display()))?;
    fill(tmp.path())?;

    // Move the old directory aside first: rename cannot replace a non-empty directory.
    let old = if dir.exists() {
        let aside = tempfile::Builder::new()
            .prefix(&format!(".{name}.old-"))
            .tempdir_in(&parent)
            .with_context(|| format!("creating a temporary directory in {}", parent.display()))?
            .keep();
        let aside_target = aside.join("old");
        fs::rename(dir, &aside_target)
            .with_context(|| format!("moving the previous {} aside", dir.display()))?;
        Some(aside)
    } else {
        None
    };
    let tmp_path = tmp.keep();
    if let Err(e) = fs::rename(&tmp_path, dir) {
        // Put the old directory back; leave nothing half-written behind.
        if let Some(aside) = &old {
            let _ = fs::rename(aside.join("old"), dir);
            let _ = fs::remove_dir_all(aside);
        }
        let _ = fs::remove_dir_all(&tmp_path);
        return Err(e)
            .with_context(|| format!("renaming the new directory onto {}", dir.display()));
    }
    if let Some(aside) = old {
        fs::remove_dir_all(&aside)
            .with_context(|| format!("removing the previous copy in {}", aside.display()))?;
    }
    Ok(())
}

/// Formats seconds since the Unix epoch as RFC 3339 UTC (`2024-01-02T03:04:05Z`).
pub fn rfc3339_utc(epoch_secs: i64) -> String {
    let days = epoch_secs.div_euclid(86_400);
    let secs = epoch_secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Decodes the `auth` field of Docker's config file: standard base64 of `user:password`, with or
/// without padding (both occur in the wild).
pub fn base64_decode(input: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const DOCKER_AUTH: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    DOCKER_AUTH.decode(input.trim()).ok()
}

/// Shortens `sha256:0123456789abcdef…` to `sha256:0123456789ab` for progress lines.
pub fn short_digest(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn base64_round_trips_docker_auth() {
        assert_eq!(base64_decode("dXNlcjpwYXNz").unwrap(), b"user:pass");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YQ").unwrap(), b"a");
        assert!(base64_decode("not base64!").is_none());
    }

    #[test]
    fn sha256_of_empty() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn atomic_dir_failure_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        let err = write_dir_atomic(
            &out,
            |_| true,
            |tmp| {
                fs::write(tmp.join("half"), b"x")?;
                bail!("boom")
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("boom"));
        assert!(!out.exists());
        assert_eq!(
            fs::read_dir(root.path()).unwrap().count(),
            0,
            "temp dir left behind"
        );
    }

    #[test]
    fn atomic_dir_replaces_only_when_allowed() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        fs::create_dir(&out).unwrap();
        fs::write(out.join("precious"), b"keep").unwrap();
        let err = write_dir_atomic(&out, |_| false, |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("refusing to replace"), "{err}");
        assert!(out.join("precious").exists());

        write_dir_atomic(&out, |_| true, |tmp| Ok(fs::write(tmp.join("new"), b"n")?)).unwrap();
        assert!(out.join("new").exists());
        assert!(!out.join("precious").exists());
        assert_eq!(
            fs::read_dir(root.path()).unwrap().count(),
            1,
            "leftovers next to out"
        );
    }
}
