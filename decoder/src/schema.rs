//! Schemas as the decoder uses them: a descriptor pool (prost-reflect) with its methods
//! indexed by `:path`. Sans-IO: the binary reads `.proto` files and descriptor sets and hands
//! the pool over; the only compiling done here is of google.rpc.Status and its standard error
//! details, embedded as text, so rich errors decode without any user schema.

use std::collections::HashMap;

use prost_reflect::DescriptorPool;

/// What a schema says about one method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodInfo {
    /// `stream` on the request.
    pub client_streaming: bool,
    /// `stream` on the response.
    pub server_streaming: bool,
    /// Full name of the request message type.
    pub input: String,
    /// Full name of the response message type.
    pub output: String,
    /// Marked `idempotency_level` NO_SIDE_EFFECTS or IDEMPOTENT: safe to retry.
    pub idempotent: bool,
}

/// Every loaded schema, with its methods indexed by `:path`.
#[derive(Debug, Clone)]
pub struct Schemas {
    pool: DescriptorPool,
    methods: HashMap<String, MethodInfo>,
    /// The same methods sorted by path (inference walks them in this order).
    sorted: Vec<(String, MethodInfo)>,
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

/// Adds google.rpc.Status and error details to `pool` unless the user's schemas brought them
/// (compiled from the text above: no file is read).
pub fn add_google_rpc(pool: &mut DescriptorPool) -> Result<(), String> {
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

impl Schemas {
    /// Only the built-in google.rpc types (rich errors decode with no schema given).
    pub fn builtin() -> Schemas {
        let mut pool = DescriptorPool::new();
        // The embedded files always compile (a test checks).
        let _ = add_google_rpc(&mut pool);
        Schemas::new(pool)
    }

    /// Indexes every method of every service in `pool`.
    pub fn new(pool: DescriptorPool) -> Schemas {
        let mut methods = HashMap::new();
        for service in pool.services() {
            for m in service.methods() {
                let info = MethodInfo {
                    client_streaming: m.is_client_streaming(),
                    server_streaming: m.is_server_streaming(),
                    input: m.input().full_name().to_owned(),
                    output: m.output().full_name().to_owned(),
                    idempotent: m
                        .method_descriptor_proto()
                        .options
                        .as_ref()
                        .and_then(|o| o.idempotency_level)
                        .is_some_and(|l| l == 1 || l == 2),
                };
                methods.insert(format!("/{}/{}", service.full_name(), m.name()), info);
            }
        }
        let mut sorted: Vec<(String, MethodInfo)> = methods
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        Schemas {
            pool,
            methods,
            sorted,
        }
    }

    /// Every method, sorted by path, without allocating.
    pub fn method_list(&self) -> &[(String, MethodInfo)] {
        &self.sorted
    }

    /// What the schemas say about the method at `path` ("/pkg.Service/Method").
    pub fn method(&self, path: &str) -> Option<&MethodInfo> {
        self.methods.get(path)
    }

    /// Every method, sorted by path.
    pub fn methods(&self) -> Vec<(&str, &MethodInfo)> {
        self.sorted.iter().map(|(k, v)| (k.as_str(), v)).collect()
    }

    /// The name of the .proto file that defines the service of the method at `path`
    /// ("/pkg.Service/Method"), as it was imported ("echo.proto", "pkg/v1/svc.proto").
    pub fn file_of(&self, path: &str) -> Option<String> {
        let (service, _) = crate::grpc::split_path(path)?;
        let svc = self.pool.get_service_by_name(service)?;
        Some(svc.parent_file().name().to_owned())
    }

    /// The descriptor pool (message types for decoding payloads).
    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Schemas compiled from one `.proto` text (with google.rpc), for tests.
    pub(crate) fn from_source(name: &str, source: &str) -> Schemas {
        struct One(String, String);
        impl protox::file::FileResolver for One {
            fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
                if name == self.0 {
                    protox::file::File::from_source(name, &self.1)
                } else {
                    Err(protox::Error::file_not_found(name))
                }
            }
        }
        let mut chain = protox::file::ChainFileResolver::new();
        chain.add(One(name.to_owned(), source.to_owned()));
        chain.add(protox::file::GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(chain);
        compiler.include_imports(true);
        compiler.open_file(name).expect("test schema compiles");
        let mut pool = DescriptorPool::new();
        pool.add_file_descriptor_set(compiler.file_descriptor_set())
            .expect("pool");
        add_google_rpc(&mut pool).expect("google.rpc");
        Schemas::new(pool)
    }

    #[test]
    fn methods_are_indexed_by_path() {
        let s = from_source(
            "t.proto",
            "syntax = \"proto3\";\npackage a;\nmessage R {}\n\
             service S { rpc M (R) returns (stream R); rpc U (R) returns (R); }\n",
        );
        let m = s.method("/a.S/M").expect("method");
        assert!(!m.client_streaming && m.server_streaming);
        assert_eq!(m.input, "a.R");
        assert_eq!(s.methods().len(), 2);
        assert_eq!(s.methods()[0].0, "/a.S/M");
    }

    #[test]
    fn google_rpc_status_is_always_there() {
        let mut pool = DescriptorPool::new();
        add_google_rpc(&mut pool).expect("embedded");
        add_google_rpc(&mut pool).expect("twice is fine");
        let s = Schemas::new(pool);
        for t in [
            "google.rpc.Status",
            "google.rpc.BadRequest",
            "google.rpc.ErrorInfo",
            "google.rpc.RetryInfo",
        ] {
            assert!(s.pool().get_message_by_name(t).is_some(), "{t}");
        }
    }
}
