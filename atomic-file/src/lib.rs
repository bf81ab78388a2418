//! Replacing a file atomically: the new content goes to a hidden temporary file in the same
//! directory, is flushed to disk, and is renamed over the target. A reader sees the old file or the
//! new one, never a half-written one, and a failure leaves the old file as it was (and no temporary
//! file behind).
//!
//! Used wherever the project writes a file someone else watches or reads concurrently: the Envoy
//! files the controller-shim delivers (Envoy reloads on the rename into its watched directory), the
//! shim's status report, the packager's outputs, the benchmark's and the demo's config pushes.
//!
//! - [`write()`] replaces a file; [`write_if_changed`] leaves a file that already holds exactly the
//!   content alone (an unchanged ECDS file rewritten would make Envoy rebuild the filter for
//!   nothing);
//! - [`stage`] + [`Staged::commit`] split the two steps, for callers that time the rename itself.
//!
//! Temporary files are named `.<file name>.tmp-<pid>-<n>`: hidden (so directory watchers that skip
//! dotfiles, like the shim's manifest poller, never read one) and unique per process and call.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Who may read the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    /// Mode 0644 on Unix.
    #[default]
    Public,
    /// Mode 0600 on Unix (private keys).
    Private,
}

/// A failed write, naming the file it was about.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct Error {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error {
        path: path.to_path_buf(),
        source,
    }
}

/// A temporary file holding the new content, not yet renamed over its target. Dropping it without
/// [`commit`](Staged::commit) removes the temporary file.
#[derive(Debug)]
pub struct Staged {
    temp: PathBuf,
    target: PathBuf,
    committed: bool,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `content` to a temporary file next to `path` (creating the directory if needed) and
/// flushes it to disk; [`Staged::commit`] then renames it over `path`.
pub fn stage(path: &Path, content: &[u8], access: Access) -> Result<Staged, Error> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).map_err(at(dir))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let staged = Staged {
        temp: dir.join(format!(".{file_name}.tmp-{}-{n}", std::process::id())),
        target: path.to_path_buf(),
        committed: false,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(match access {
            Access::Public => 0o644,
            Access::Private => 0o600,
        });
    }
    #[cfg(not(unix))]
    let _ = access;
    let mut file = options.open(&staged.temp).map_err(at(&staged.temp))?;
    file.write_all(content)
        .and_then(|()| file.sync_all())
        .map_err(at(&staged.temp))?;
    Ok(staged)
}

impl Staged {
    /// The temporary file (hidden, next to the target).
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Renames the temporary file over the target: the moment readers see the new content.
    pub fn commit(mut self) -> Result<(), Error> {
        fs::rename(&self.temp, &self.target).map_err(at(&self.target))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Replaces `path` with `content`.
pub fn write(path: &Path, content: &[u8], access: Access) -> Result<(), Error> {
    stage(path, content, access)?.commit()
}

/// Replaces `path` with `content` unless it already holds exactly that. Returns whether it wrote.
pub fn write_if_changed(path: &Path, content: &[u8], access: Access) -> Result<bool, Error> {
    if fs::read(path).is_ok_and(|existing| existing == content) {
        return Ok(false);
    }
    write(path, content, access).map(|()| true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.json");
        write(&path, b"one", Access::Public).unwrap();
        write(&path, b"two", Access::Public).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(names(&dir.path().join("sub")), ["config.json"]);
    }

    #[test]
    fn unchanged_content_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        assert!(write_if_changed(&path, b"x", Access::Public).unwrap());
        let before = fs::metadata(&path).unwrap().modified().unwrap();
        assert!(!write_if_changed(&path, b"x", Access::Public).unwrap());
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), before);
        assert!(write_if_changed(&path, b"y", Access::Public).unwrap());
    }

    #[test]
    fn staged_content_is_invisible_until_committed_and_dropped_if_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write(&path, b"old", Access::Public).unwrap();
        let staged = stage(&path, b"new", Access::Public).unwrap();
        assert!(staged.temp_path().exists());
        assert!(
            staged
                .temp_path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".f.tmp-")
        );
        assert_eq!(fs::read(&path).unwrap(), b"old");
        drop(staged);
        assert_eq!(names(dir.path()), ["f"]);
        stage(&path, b"new", Access::Public)
            .unwrap()
            .commit()
            .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn a_failed_rename_keeps_the_old_file_and_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a non-empty directory: rename cannot replace it.
        let path = dir.path().join("taken");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"").unwrap();
        let error = write(&path, b"x", Access::Public).unwrap_err();
        assert_eq!(error.path, path);
        assert!(error.to_string().starts_with(&path.display().to_string()));
        assert_eq!(names(dir.path()), ["taken"]);
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("tls.key");
        write(&key, b"secret", Access::Private).unwrap();
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // 0644 less the umask: at least readable and writable by the owner.
        let public = dir.path().join("tls.crt");
        write(&public, b"cert", Access::Public).unwrap();
        let mode = fs::metadata(&public).unwrap().permissions().mode();
        assert_eq!(mode & 0o600, 0o600, "{mode:o}");
        assert_eq!(mode & 0o133, 0, "{mode:o}");
    }
}
