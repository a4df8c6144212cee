//! Schemas from files: `.proto` files compiled at runtime (protox, no protoc) and descriptor
//! sets (`protoc -o`, `buf build`), merged into one descriptor pool for the decoder. A file that
//! does not compile is reported (file, line, reason) and left out; the rest still load.
//!
//! This is the only place that reads schema files: the decoder takes the pool.

use std::path::{Path, PathBuf};

use decoder::schema::Schemas;
use prost_reflect::DescriptorPool;

/// Where schemas come from.
#[derive(Debug, Clone, Default)]
pub(crate) struct SchemaSources {
    /// Directories: every `.proto` below each, with the directory as an include root.
    pub(crate) proto_paths: Vec<PathBuf>,
    /// Single `.proto` files (their directory is an include root).
    pub(crate) protos: Vec<PathBuf>,
    /// Serialized `FileDescriptorSet`s.
    pub(crate) descriptor_sets: Vec<PathBuf>,
}

impl SchemaSources {
    /// True when nothing was given.
    pub(crate) fn is_empty(&self) -> bool {
        self.proto_paths.is_empty() && self.protos.is_empty() && self.descriptor_sets.is_empty()
    }
}

/// A schema source that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SchemaError {
    /// The file.
    pub(crate) file: PathBuf,
    /// What went wrong (protox's message names the line and column).
    pub(crate) message: String,
}

impl std::fmt::Display for SchemaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)
    }
}

/// protox's message with "line L, column C: " in front when the error points into `file`.
fn with_position(e: &protox::Error, file: &Path) -> String {
    use miette::Diagnostic;
    let offset = e.labels().and_then(|mut l| l.next()).map(|l| l.offset());
    match (offset, std::fs::read_to_string(file)) {
        (Some(off), Ok(text)) if off <= text.len() => {
            let before = &text[..off];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {col}: {e}")
        }
        _ => e.to_string(),
    }
}

fn protos_below(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            protos_below(&p, out);
        } else if p.extension().is_some_and(|e| e == "proto") {
            out.push(p);
        }
    }
}

/// Loads everything `src` names. Returns the schemas that loaded and an error per source
/// that did not.
pub(crate) fn load(src: &SchemaSources) -> (Schemas, Vec<SchemaError>) {
    let mut errors = Vec::new();
    let mut includes: Vec<PathBuf> = src.proto_paths.clone();
    let mut files: Vec<(PathBuf, PathBuf)> = Vec::new(); // (shown path, path relative to an include)
    for dir in &src.proto_paths {
        let mut found = Vec::new();
        protos_below(dir, &mut found);
        if found.is_empty() {
            errors.push(SchemaError {
                file: dir.clone(),
                message: "no .proto files below it".to_owned(),
            });
        }
        for f in found {
            let rel = f
                .strip_prefix(dir)
                .map(Path::to_path_buf)
                .unwrap_or_else(|_| f.clone());
            files.push((f, rel));
        }
    }
    for f in &src.protos {
        let dir = f.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        if !includes.contains(&dir) {
            includes.push(dir);
        }
        let name = f
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| f.clone());
        files.push((f.clone(), name));
    }
    let mut pool = DescriptorPool::global();
    if !files.is_empty() {
        match protox::Compiler::new(&includes) {
            Err(e) => errors.push(SchemaError {
                file: includes.first().cloned().unwrap_or_default(),
                message: e.to_string(),
            }),
            Ok(mut compiler) => {
                compiler.include_imports(true);
                for (shown, rel) in &files {
                    if let Err(e) = compiler.open_file(rel) {
                        errors.push(SchemaError {
                            file: shown.clone(),
                            message: with_position(&e, shown),
                        });
                    }
                }
                let fds = compiler.file_descriptor_set();
                if let Err(e) = pool.add_file_descriptor_set(fds) {
                    errors.push(SchemaError {
                        file: PathBuf::from("<proto files>"),
                        message: e.to_string(),
                    });
                }
            }
        }
    }
    for set in &src.descriptor_sets {
        let result = std::fs::read(set)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                pool.decode_file_descriptor_set(bytes.as_slice())
                    .map_err(|e| e.to_string())
            });
        if let Err(message) = result {
            errors.push(SchemaError {
                file: set.clone(),
                message,
            });
        }
    }
    if let Err(message) = decoder::schema::add_google_rpc(&mut pool) {
        errors.push(SchemaError {
            file: PathBuf::from("google/rpc/status.proto (built in)"),
            message,
        });
    }
    (Schemas::new(pool), errors)
}

/// Whether a method is idempotent, by the schemas `store` holds now (none: not in them).
pub(crate) fn idempotency(
    store: &std::sync::Arc<decoder::reflection::SchemaStore>,
) -> decoder::findings::IdempotencyFn {
    let store = store.clone();
    Box::new(move |method| Some(store.current()?.method(method)?.idempotent))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/proto")
    }

    #[test]
    fn proto_path_loads_the_test_service() {
        let (s, errors) = load(&SchemaSources {
            proto_paths: vec![testdata()],
            ..Default::default()
        });
        assert!(errors.is_empty(), "{errors:?}");
        let m = s.method("/grpctap.test.Echo/Bidi").expect("method");
        assert!(m.client_streaming && m.server_streaming);
        assert_eq!(m.input, "grpctap.test.EchoRequest");
        let ss = s.method("/grpctap.test.Echo/ServerStream").expect("method");
        assert!(!ss.client_streaming && ss.server_streaming);
        let echo = s
            .methods()
            .into_iter()
            .filter(|(p, _)| p.starts_with("/grpctap.test.Echo/"));
        assert_eq!(echo.count(), 4);
    }

    #[test]
    fn google_rpc_status_is_there_without_any_file() {
        let (s, errors) = load(&SchemaSources::default());
        assert!(errors.is_empty(), "{errors:?}");
        assert!(s.pool().get_message_by_name("google.rpc.Status").is_some());
    }

    #[test]
    fn a_broken_file_is_reported_and_the_rest_loads() {
        let dir = std::env::temp_dir().join(format!("grpctap-schema-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("good.proto"), "syntax = \"proto3\";\npackage a;\nservice S { rpc M (R) returns (stream R); }\nmessage R {}\n").expect("write");
        std::fs::write(
            dir.join("bad.proto"),
            "syntax = \"proto3\";\npackage b;\nmessage X { int32 = 1; }\n",
        )
        .expect("write");
        let (s, errors) = load(&SchemaSources {
            proto_paths: vec![dir.clone()],
            ..Default::default()
        });
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].file.ends_with("bad.proto"));
        assert!(
            errors[0].message.starts_with("line 3, column 19: "),
            "{}",
            errors[0]
        );
        assert!(s.method("/a.S/M").is_some_and(|m| m.server_streaming));
    }
}
