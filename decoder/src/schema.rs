//! Schemas the user supplies: `.proto` files compiled at runtime (protox, no protoc) and
//! descriptor sets (`protoc -o`, `buf build`), merged into one descriptor pool. A file that
//! does not compile is reported (file, line, reason) and left out; the rest still load.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use prost_reflect::DescriptorPool;

use crate::h2::conn::CallType;

/// Where schemas come from.
#[derive(Debug, Clone, Default)]
pub struct SchemaSources {
    /// Directories: every `.proto` below each, with the directory as an include root.
    pub proto_paths: Vec<PathBuf>,
    /// Single `.proto` files (their directory is an include root).
    pub protos: Vec<PathBuf>,
    /// Serialized `FileDescriptorSet`s.
    pub descriptor_sets: Vec<PathBuf>,
}

impl SchemaSources {
    /// True when nothing was given.
    pub fn is_empty(&self) -> bool {
        self.proto_paths.is_empty() && self.protos.is_empty() && self.descriptor_sets.is_empty()
    }
}

/// A schema source that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    /// The file.
    pub file: PathBuf,
    /// What went wrong (protox's message names the line and column).
    pub message: String,
}

impl std::fmt::Display for SchemaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)
    }
}

/// What a schema says about one method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodInfo {
    /// From the `stream` keywords.
    pub call_type: CallType,
    /// Full name of the request message type.
    pub input: String,
    /// Full name of the response message type.
    pub output: String,
}

/// Every loaded schema, with its methods indexed by `:path`.
#[derive(Debug, Clone)]
pub struct Schemas {
    pool: DescriptorPool,
    methods: HashMap<String, MethodInfo>,
}

/// google.rpc.Status and the standard error details (the wire format of
/// `grpc-status-details-bin`), always loaded so rich errors decode without any user schema.
const GOOGLE_RPC_STATUS: &str = r#"
syntax = "proto3";
package google.rpc;
import "google/protobuf/any.proto";
message Status {
  int32 code = 1;
  string message = 2;
  repeated google.protobuf.Any details = 3;
}
"#;

const GOOGLE_RPC_ERROR_DETAILS: &str = r#"
syntax = "proto3";
package google.rpc;
import "google/protobuf/duration.proto";
message RetryInfo { google.protobuf.Duration retry_delay = 1; }
message DebugInfo { repeated string stack_entries = 1; string detail = 2; }
message QuotaFailure {
  message Violation { string subject = 1; string description = 2; }
  repeated Violation violations = 1;
}
message ErrorInfo { string reason = 1; string domain = 2; map<string, string> metadata = 3; }
message PreconditionFailure {
  message Violation { string type = 1; string subject = 2; string description = 3; }
  repeated Violation violations = 1;
}
message BadRequest {
  message FieldViolation { string field = 1; string description = 2; }
  repeated FieldViolation field_violations = 1;
}
message RequestInfo { string request_id = 1; string serving_data = 2; }
message ResourceInfo { string resource_type = 1; string resource_name = 2; string owner = 3; string description = 4; }
message Help {
  message Link { string description = 1; string url = 2; }
  repeated Link links = 1;
}
message LocalizedMessage { string locale = 1; string message = 2; }
"#;

/// Resolves the embedded google.rpc files.
struct Embedded;

impl protox::file::FileResolver for Embedded {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        match name {
            "google/rpc/status.proto" => protox::file::File::from_source(name, GOOGLE_RPC_STATUS),
            "google/rpc/error_details.proto" => {
                protox::file::File::from_source(name, GOOGLE_RPC_ERROR_DETAILS)
            }
            _ => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// Adds google.rpc.Status and error details to `pool` unless the user's schemas brought them.
fn add_google_rpc(pool: &mut DescriptorPool) -> Result<(), String> {
    if pool.get_message_by_name("google.rpc.Status").is_some() {
        return Ok(());
    }
    let mut chain = protox::file::ChainFileResolver::new();
    chain.add(Embedded);
    chain.add(protox::file::GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(chain);
    compiler.include_imports(true);
    compiler
        .open_files(["google/rpc/status.proto", "google/rpc/error_details.proto"])
        .map_err(|e| e.to_string())?;
    pool.add_file_descriptor_set(compiler.file_descriptor_set())
        .map_err(|e| e.to_string())
}

fn call_type(client: bool, server: bool) -> CallType {
    match (client, server) {
        (false, false) => CallType::Unary,
        (true, false) => CallType::ClientStream,
        (false, true) => CallType::ServerStream,
        (true, true) => CallType::BidiStream,
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

impl Schemas {
    /// Loads everything `src` names. Returns the schemas that loaded and an error per source
    /// that did not.
    pub fn load(src: &SchemaSources) -> (Schemas, Vec<SchemaError>) {
        let mut errors = Vec::new();
        let mut includes: Vec<PathBuf> = src.proto_paths.clone();
        let mut files: Vec<(PathBuf, PathBuf)> = Vec::new(); // (shown path, path relative to an include)
        for dir in &src.proto_paths {
            let mut found = Vec::new();
            protos_below(dir, &mut found);
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
        if let Err(message) = add_google_rpc(&mut pool) {
            errors.push(SchemaError {
                file: PathBuf::from("google/rpc/status.proto (built in)"),
                message,
            });
        }
        let mut methods = HashMap::new();
        for service in pool.services() {
            for m in service.methods() {
                let info = MethodInfo {
                    call_type: call_type(m.is_client_streaming(), m.is_server_streaming()),
                    input: m.input().full_name().to_owned(),
                    output: m.output().full_name().to_owned(),
                };
                methods.insert(format!("/{}/{}", service.full_name(), m.name()), info);
            }
        }
        (Schemas { pool, methods }, errors)
    }

    /// What the schemas say about the method at `path` ("/pkg.Service/Method").
    pub fn method(&self, path: &str) -> Option<&MethodInfo> {
        self.methods.get(path)
    }

    /// Every method, sorted by path.
    pub fn methods(&self) -> Vec<(&str, &MethodInfo)> {
        let mut v: Vec<(&str, &MethodInfo)> =
            self.methods.iter().map(|(k, v)| (k.as_str(), v)).collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }

    /// The descriptor pool (message types for decoding payloads).
    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/proto")
    }

    #[test]
    fn proto_path_loads_the_test_service() {
        let (s, errors) = Schemas::load(&SchemaSources {
            proto_paths: vec![testdata()],
            ..Default::default()
        });
        assert!(errors.is_empty(), "{errors:?}");
        let m = s.method("/grpctap.test.Echo/Bidi").expect("method");
        assert_eq!(m.call_type, CallType::BidiStream);
        assert_eq!(m.input, "grpctap.test.EchoRequest");
        assert_eq!(
            s.method("/grpctap.test.Echo/ServerStream")
                .map(|m| m.call_type),
            Some(CallType::ServerStream)
        );
        assert_eq!(s.methods().len(), 4);
    }

    #[test]
    fn google_rpc_status_is_always_there() {
        let (s, errors) = Schemas::load(&SchemaSources::default());
        assert!(errors.is_empty(), "{errors:?}");
        for t in [
            "google.rpc.Status",
            "google.rpc.BadRequest",
            "google.rpc.ErrorInfo",
            "google.rpc.RetryInfo",
        ] {
            assert!(s.pool().get_message_by_name(t).is_some(), "{t}");
        }
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
        let (s, errors) = Schemas::load(&SchemaSources {
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
        assert_eq!(
            s.method("/a.S/M").map(|m| m.call_type),
            Some(CallType::ServerStream)
        );
    }
}
