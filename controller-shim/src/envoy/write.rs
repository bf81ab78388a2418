//! Writing the rendered files: atomically, and only when the content changed.
//!
//! Envoy watches the `cds/` and `ecds/` directories for files renamed into them; a file written in
//! place could be read half-written, and an unchanged file rewritten would make Envoy rebuild the
//! filter (new root contexts, `on_configure` again) for nothing.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::{EnvoyFiles, RenderError};

/// Which files were written and which already had the right content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteReport {
    pub written: Vec<PathBuf>,
    pub unchanged: Vec<PathBuf>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> RenderError + '_ {
    move |source| RenderError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `content` to `path` through a temporary file in the same directory and a rename, unless
/// the file already holds exactly this content. Returns whether it wrote. `private` files get mode
/// 0600.
pub fn write_atomic(path: &Path, content: &[u8], private: bool) -> Result<bool, RenderError> {
    if fs::read(path).is_ok_and(|existing| existing == content) {
        return Ok(false);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(if private { 0o600 } else { 0o644 });
        }
        let mut file = options.open(&temp).map_err(io_error(&temp))?;
        file.write_all(content).map_err(io_error(&temp))?;
        file.sync_all().map_err(io_error(&temp))?;
        drop(file);
        fs::rename(&temp, path).map_err(io_error(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map(|()| true)
}

/// Writes every rendered file under `dir`, in the rendered order (certificates and clusters before
/// the extension config, the bootstrap last).
pub fn write_files(dir: &Path, files: &EnvoyFiles) -> Result<WriteReport, RenderError> {
    let mut report = WriteReport::default();
    for file in &files.files {
        let path = dir.join(&file.path);
        if write_atomic(&path, file.content.as_bytes(), file.private)? {
            report.written.push(path);
        } else {
            report.unchanged.push(path);
        }
    }
    Ok(report)
}
