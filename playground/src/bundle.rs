//! The editor's text: one or several manifest files in one text.
//!
//! A line `# file: NAME` starts a new file (the examples are written this way, one marker per file
//! of the example's directory, in the order `controller-shim --manifests DIR` reads them); text
//! before the first marker, or a text without markers, is the file [`DEFAULT_FILE`]. Each file is
//! loaded on its own, so an error names the file and the document within it exactly as the CLI
//! names them for the same directory.

use std::path::Path;

use gateway_resolver::manifests::{self, Loaded, ManifestError};

/// The name of text that no marker names.
pub const DEFAULT_FILE: &str = "manifests.yaml";

/// The line that starts a file, followed by its name.
pub const FILE_MARKER: &str = "# file: ";

/// One file of the editor's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File<'t> {
    pub name: &'t str,
    pub text: &'t str,
}

/// Splits `text` at `# file: NAME` lines. Text before the first marker that is only blank lines
/// and comments is dropped; otherwise it is [`DEFAULT_FILE`].
pub fn split(text: &str) -> Vec<File<'_>> {
    let mut files = Vec::new();
    let mut name = DEFAULT_FILE;
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end_matches(['\n', '\r']);
        if let Some(next) = trimmed.strip_prefix(FILE_MARKER) {
            push(&mut files, name, text.get(start..offset).unwrap_or(""));
            name = next.trim();
            start = offset + line.len();
        }
        offset += line.len();
    }
    push(&mut files, name, text.get(start..).unwrap_or(""));
    files
}

fn push<'t>(files: &mut Vec<File<'t>>, name: &'t str, text: &'t str) {
    let empty = text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---");
    if name == DEFAULT_FILE && empty && files.is_empty() {
        return;
    }
    files.push(File { name, text });
}

/// Loads every file of the text, stopping at the first error (as the CLI does).
pub fn load(text: &str) -> Result<Loaded, ManifestError> {
    let mut loaded = Loaded::default();
    for file in split(text) {
        manifests::load_str(file.text, Path::new(file.name), &mut loaded)?;
        loaded.files += 1;
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn markers_split_files_and_unmarked_text_is_one_file() {
        assert_eq!(
            split("kind: A\n"),
            [File {
                name: DEFAULT_FILE,
                text: "kind: A\n"
            }]
        );
        let files =
            split("# an example\n\n# file: a.yaml\nkind: A\n---\n# file: dir/b.yaml\nkind: B\n");
        assert_eq!(
            files,
            [
                File {
                    name: "a.yaml",
                    text: "kind: A\n---\n"
                },
                File {
                    name: "dir/b.yaml",
                    text: "kind: B\n"
                }
            ]
        );
        assert!(split("").is_empty());
    }

    #[test]
    fn errors_name_the_file_and_its_document() {
        let text = "# file: a.yaml\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n\
                    # file: b.yaml\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n---\n\
                    apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\n\
                    spec: {gatewayClassName: c, listeners: [{name: l, port: x, protocol: HTTP}]}\n";
        let err = load(text).unwrap_err().to_string();
        assert!(
            err.starts_with("b.yaml document 2: Gateway spec.listeners[0].port: "),
            "{err}"
        );
        let loaded = load(&text.replace("port: x", "port: 80")).unwrap();
        assert_eq!((loaded.files, loaded.objects), (2, 3));
    }
}
