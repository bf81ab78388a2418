//! Loading Kubernetes manifests (a directory, or one file's text) into a [`Snapshot`].
//!
//! Consumes every `*.yaml`, `*.yml` and `*.json` file under a directory (recursively, in path order,
//! hidden entries skipped), or text given to [`load_str`] (what the browser does); each file may hold
//! several YAML documents separated by `---`, and a document may be a `kind: List` whose `items` are
//! loaded in turn. Which documents are read, and as which type, comes from the table of kinds
//! ([`Kind::from_manifest`]: the `apiVersion` group and `kind`, or an alias of the row). Produces the
//! [`Snapshot`] the resolver reads, plus the objects of kinds it does not use (reported, not fatal). A document that
//! cannot be read as its kind is an error naming the file, the document (1-based) and the field path
//! (`spec.listeners[0].port`).
//!
//! Namespaced objects without `metadata.namespace` land in `default`, as `kubectl apply` would put
//! them.
//!
//! [`to_text`] goes the other way: a snapshot as one multi-document YAML text that [`load_str`]
//! reads back into the same objects (the live playground page shows what the shim watches this
//! way; tests turn generated snapshots into manifests).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_norway::Value;

use crate::api;
use crate::kinds::{Kind, KindType, KindVisitor, Object, Snapshot};

/// The namespace of namespaced objects that do not name one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Where a document came from: the file, the document number (1-based) and, inside a `List`, the
/// item index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub document: usize,
    pub item: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} document {}", self.file.display(), self.document)?;
        if let Some(item) = self.item {
            write!(f, " items[{item}]")?;
        }
        Ok(())
    }
}

/// An object of a kind the resolver does not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownObject {
    pub origin: Origin,
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

impl fmt::Display for UnknownObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} {} ({}) is not used",
            self.origin, self.kind, self.name, self.api_version
        )
    }
}

/// What a directory held.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub snapshot: Snapshot,
    pub unknown: Vec<UnknownObject>,
    pub files: usize,
    /// Objects read into the snapshot.
    pub objects: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a directory")]
    NotADirectory { path: PathBuf },
    #[error("{origin}: {message}")]
    Yaml { origin: Origin, message: String },
    #[error("{origin}: {kind} {field}: {message}")]
    Malformed {
        origin: Origin,
        kind: String,
        /// The serde path of the offending field (`spec.listeners[0].port`), `.` for the document.
        field: String,
        message: String,
    },
}

/// Loads every manifest under `dir`.
pub fn load_dir(dir: &Path) -> Result<Loaded, ManifestError> {
    if !dir.is_dir() {
        return Err(ManifestError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let mut files = Vec::new();
    collect_files(dir, &mut files)?;
    files.sort();
    let mut loaded = Loaded::default();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| ManifestError::Io {
            path: file.clone(),
            source,
        })?;
        load_str(&text, &file, &mut loaded)?;
        loaded.files += 1;
    }
    Ok(loaded)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ManifestError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ManifestError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| ManifestError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// Loads the documents of one file's text into `loaded`.
pub fn load_str(text: &str, file: &Path, loaded: &mut Loaded) -> Result<(), ManifestError> {
    for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let origin = Origin {
            file: file.to_path_buf(),
            document: index + 1,
            item: None,
        };
        let value: Value =
            serde::Deserialize::deserialize(document).map_err(|e| ManifestError::Yaml {
                origin: origin.clone(),
                message: e.to_string(),
            })?;
        if value.is_null() {
            continue; // an empty document (a leading or trailing `---`)
        }
        load_value(value, origin, loaded)?;
    }
    Ok(())
}

fn text_field<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value.get(key).and_then(Value::as_str)
}

fn load_value(value: Value, origin: Origin, loaded: &mut Loaded) -> Result<(), ManifestError> {
    let malformed = |kind: &str, field: &str, message: String| ManifestError::Malformed {
        origin: origin.clone(),
        kind: kind.to_owned(),
        field: field.to_owned(),
        message,
    };
    if !value.is_mapping() {
        return Err(malformed(
            "document",
            ".",
            "is not a mapping (expected a Kubernetes object)".to_owned(),
        ));
    }
    let Some(kind) = text_field(&value, "kind").map(str::to_owned) else {
        return Err(malformed("object", "kind", "is missing".to_owned()));
    };
    let Some(api_version) = text_field(&value, "apiVersion").map(str::to_owned) else {
        return Err(malformed(&kind, "apiVersion", "is missing".to_owned()));
    };
    let group = api_version
        .rsplit_once('/')
        .map_or("", |(group, _)| group)
        .to_owned();
    if group.is_empty() && kind == "List" {
        let items = match value.get("items") {
            Some(Value::Sequence(items)) => items.clone(),
            None | Some(Value::Null) => Vec::new(),
            Some(_) => return Err(malformed(&kind, "items", "is not a list".to_owned())),
        };
        for (i, item) in items.into_iter().enumerate() {
            let origin = Origin {
                item: Some(i),
                ..origin.clone()
            };
            load_value(item, origin, loaded)?;
        }
        return Ok(());
    }
    let Some(known) = Kind::from_manifest(&group, &kind) else {
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("<unnamed>")
            .to_owned();
        loaded.unknown.push(UnknownObject {
            origin,
            api_version,
            kind,
            name,
        });
        return Ok(());
    };
    let mut value = value;
    if let Value::Mapping(map) = &mut value {
        // An alias (`XListenerSet`) is read as the kind it stands for.
        map.insert("kind".into(), known.as_str().into());
    }
    let mut object = known.visit(Typed {
        value,
        origin: &origin,
        kind: &kind,
    })?;
    if known.namespaced() {
        default_namespace(&mut object.metadata_mut().namespace);
    }
    if let Object::Secret(secret) = &mut object {
        merge_string_data(secret);
    }
    loaded.snapshot.push(object);
    loaded.objects += 1;
    Ok(())
}

fn default_namespace(namespace: &mut Option<String>) {
    if namespace.as_deref().is_none_or(str::is_empty) {
        *namespace = Some(DEFAULT_NAMESPACE.to_owned());
    }
}

/// Deserializes a document into the Rust type of its kind.
struct Typed<'a> {
    value: Value,
    origin: &'a Origin,
    /// The `kind` as the document spells it (for messages).
    kind: &'a str,
}

impl KindVisitor for Typed<'_> {
    type Output = Result<Object, ManifestError>;
    fn visit<K: KindType>(self) -> Self::Output {
        typed::<K>(self.value, self.origin, self.kind).map(K::into_object)
    }
}

/// Deserializes one object, reporting the path of the field that failed.
fn typed<T: DeserializeOwned>(
    value: Value,
    origin: &Origin,
    kind: &str,
) -> Result<T, ManifestError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        ManifestError::Malformed {
            origin: origin.clone(),
            kind: kind.to_owned(),
            field,
            message: e.into_inner().to_string(),
        }
    })
}

/// Whether [`to_text`] copies Secrets' data or replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// Keep every value (tests, tools that run locally).
    Keep,
    /// Replace each value by a placeholder that keeps only the PEM block labels, so a listener
    /// whose certificate resolves still resolves when the text is loaded again, and no key or
    /// certificate leaves the process.
    Redact,
}

/// The text every redacted Secret value carries.
pub const REDACTED: &str = "(redacted by gateway-wasm)";

/// A snapshot as multi-document YAML, kind by kind (the order of the table of kinds). `status`
/// and `metadata.managedFields` are left out: status is what the resolver computes.
pub fn to_text(snapshot: &Snapshot, secrets: Secrets) -> String {
    let mut documents = Vec::new();
    for object in Object::all_of(snapshot) {
        let mut value = object.to_json();
        if let Some(map) = value.as_object_mut() {
            map.remove("status");
            if let Some(meta) = map.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                meta.remove("managedFields");
            }
            if secrets == Secrets::Redact && matches!(object, Object::Secret(_)) {
                redact_secret(&object, map);
            }
        }
        match serde_norway::to_string(&value) {
            Ok(text) => documents.push(text),
            Err(e) => documents.push(format!(
                "# {} {} could not be written as YAML: {e}\n",
                object.kind(),
                object.key()
            )),
        }
    }
    documents.join("---\n")
}

/// Replaces `data` and `stringData` by `stringData` placeholders.
fn redact_secret(object: &Object, map: &mut serde_json::Map<String, serde_json::Value>) {
    let Object::Secret(secret) = object else {
        return;
    };
    let mut redacted = serde_json::Map::new();
    let values = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .chain(
            secret
                .string_data
                .iter()
                .flatten()
                .map(|(k, v)| (k, v.clone())),
        );
    for (key, text) in values {
        let labels: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("-----BEGIN "))
            .filter_map(|l| l.strip_suffix("-----"))
            .collect();
        let placeholder = if labels.is_empty() {
            REDACTED.to_owned()
        } else {
            labels
                .iter()
                .map(|label| {
                    format!("-----BEGIN {label}-----\n{REDACTED}\n-----END {label}-----\n")
                })
                .collect()
        };
        redacted.insert(key.clone(), serde_json::Value::String(placeholder));
    }
    map.remove("data");
    map.insert("stringData".to_owned(), serde_json::Value::Object(redacted));
}

/// Secret.stringData: "All keys and values are merged into the data field on write, overwriting any
/// existing values." The API server does that for `kubectl apply`; the resolver reads `data` only.
fn merge_string_data(secret: &mut api::Secret) {
    if let Some(strings) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(Default::default);
        for (key, value) in strings {
            data.insert(key, api::ByteString(value.into_bytes()));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::{Settings, resolve};

    fn quickstart() -> Loaded {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart");
        load_dir(&dir).unwrap()
    }

    #[test]
    fn text_form_loads_back_into_the_same_resolution() {
        let loaded = quickstart();
        let text = to_text(&loaded.snapshot, Secrets::Keep);
        let mut again = Loaded::default();
        load_str(&text, Path::new("snapshot.yaml"), &mut again).unwrap();
        assert_eq!(again.objects, loaded.objects);
        let settings = Settings::default();
        let (a, b) = (
            resolve(&loaded.snapshot, &settings),
            resolve(&again.snapshot, &settings),
        );
        assert_eq!(a.gateways.len(), 1);
        assert_eq!(a.gateways[0].config, b.gateways[0].config);
        assert!(!text.contains("status:"), "{text}");
    }

    #[test]
    fn secrets_keep_only_their_pem_labels_when_redacted() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: tls, namespace: a}\ntype: kubernetes.io/tls\n\
                    stringData:\n  tls.crt: \"-----BEGIN CERTIFICATE-----\\nSECRETBYTES\\n-----END CERTIFICATE-----\\n\"\n  \
                    tls.key: \"-----BEGIN PRIVATE KEY-----\\nSECRETKEY\\n-----END PRIVATE KEY-----\\n\"\n  note: hello\n";
        let mut loaded = Loaded::default();
        load_str(text, Path::new("s.yaml"), &mut loaded).unwrap();
        let kept = to_text(&loaded.snapshot, Secrets::Keep);
        assert!(kept.contains("data:"), "{kept}");
        let redacted = to_text(&loaded.snapshot, Secrets::Redact);
        assert!(!redacted.contains("SECRET"), "{redacted}");
        assert!(!redacted.contains("hello"), "{redacted}");
        assert!(redacted.contains("BEGIN PRIVATE KEY"), "{redacted}");
        let mut again = Loaded::default();
        load_str(&redacted, Path::new("r.yaml"), &mut again).unwrap();
        let data = again.snapshot.secrets[0].data.as_ref().unwrap();
        let crt = String::from_utf8_lossy(&data["tls.crt"].0).into_owned();
        assert!(crt.starts_with("-----BEGIN CERTIFICATE-----\n"), "{crt}");
        assert_eq!(String::from_utf8_lossy(&data["note"].0), REDACTED);
    }
}
