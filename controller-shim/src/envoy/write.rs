//! Writing the rendered files: atomically, and only when the content changed.
//!
//! Envoy watches the `cds/` and `ecds/` directories for files renamed into them; a file written in
//! place could be read half-written, and an unchanged file rewritten would make Envoy rebuild the
//! filter (new root contexts, `on_configure` again) for nothing. The replacing itself is the
//! workspace's one atomic writer, the `atomic-file` crate.

use std::path::{Path, PathBuf};

use atomic_file::Access;

use super::{EnvoyFiles, RenderError};

/// Which files were written and which already had the right content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteReport {
    pub written: Vec<PathBuf>,
    pub unchanged: Vec<PathBuf>,
}

/// Writes every rendered file under `dir`, in the rendered order (certificates and clusters before
/// the extension config, the bootstrap last).
pub fn write_files(dir: &Path, files: &EnvoyFiles) -> Result<WriteReport, RenderError> {
    let mut report = WriteReport::default();
    for file in &files.files {
        let path = dir.join(&file.path);
        let access = if file.private {
            Access::Private
        } else {
            Access::Public
        };
        if atomic_file::write_if_changed(&path, file.content.as_bytes(), access)? {
            report.written.push(path);
        } else {
            report.unchanged.push(path);
        }
    }
    Ok(report)
}
