//! Small helpers shared by the commands: hashing, atomic directory replacement, timestamps, base64 of Docker auth.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

pub use oci_artifacts::digest::{base64_decode, sha256_digest, sha256_hex, short_digest};

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
