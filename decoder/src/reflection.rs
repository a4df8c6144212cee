//! Schemas the capture itself carries: gRPC server reflection.
//!
//! grpcurl, Postman, evans and grpc-ui ask a server for its schemas over
//! `grpc.reflection.v1.ServerReflection/ServerReflectionInfo` (or `v1alpha`, the same messages
//! under the older package). Each `ServerReflectionResponse` with a `file_descriptor_response`
//! (field 4) carries serialized `FileDescriptorProto`s (its field 1, repeated bytes): the
//! files that define the symbol asked for, usually with their dependencies. A tap that sees such
//! an exchange has the server's schemas, as if given with `--descriptor-set`.
//!
//! [`SchemaStore`] holds the schemas every connection uses: the user's, plus what reflection
//! taught. Learning is rare and cheap to check: a tracker compares [`SchemaStore::generation`]
//! (one atomic load) with the one it last saw and only then takes the new [`Schemas`].
//!
//! Bounds: a response message is read only when whole and at most [`MAX_MESSAGE`] bytes; at
//! most [`MAX_FILES`] files and [`MAX_BYTES`] bytes of descriptors are held (added or waiting for
//! their dependencies); a file whose name the pool already has is skipped (the user's schemas
//! win), and one that does not build (a bad descriptor, a type defined twice) waits and is
//! counted as rejected when the capture ends.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use prost_reflect::DescriptorPool;

use crate::schema::Schemas;

/// `:path` of the reflection RPC, in both versions.
pub const METHODS: [&str; 2] = [
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// Largest response message read.
pub const MAX_MESSAGE: usize = 4 << 20;
/// Files held at most.
pub const MAX_FILES: usize = 4096;
/// Bytes of descriptors held at most.
pub const MAX_BYTES: usize = 64 << 20;

/// Whether `path` is the reflection RPC.
pub fn is_reflection(path: &str) -> bool {
    METHODS.contains(&path)
}

/// A protobuf varint at the start of `b`: its value and length.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// The length-delimited fields numbered `field` of the message `msg` (wire format, no schema).
/// `None` when the message does not parse.
fn fields(msg: &[u8], field: u64) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < msg.len() {
        let (key, n) = varint(&msg[at..])?;
        at += n;
        match key & 7 {
            0 => at += varint(&msg[at..])?.1,
            1 => at += 8,
            5 => at += 4,
            2 => {
                let (len, n) = varint(&msg[at..])?;
                at += n;
                let end = at.checked_add(usize::try_from(len).ok()?)?;
                let value = msg.get(at..end)?;
                if key >> 3 == field {
                    out.push(value);
                }
                at = end;
            }
            _ => return None,
        }
        if at > msg.len() {
            return None;
        }
    }
    Some(out)
}

/// The serialized `FileDescriptorProto`s of one `ServerReflectionResponse`.
pub fn file_descriptors(response: &[u8]) -> Vec<&[u8]> {
    fields(response, 4)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|fdr| fields(fdr, 1).unwrap_or_default())
        .collect()
}

/// What reflection taught over the run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Learned {
    /// Files added to the schemas.
    pub files: usize,
    /// Services they define, sorted.
    pub services: Vec<String>,
    /// Files held back: their dependencies never came, or they did not build.
    pub waiting: usize,
    /// Files turned away: past the bounds, or the pool already had a file of that name.
    pub skipped: usize,
}

#[derive(Debug)]
struct Inner {
    pool: DescriptorPool,
    /// Serialized files not added yet.
    waiting: Vec<Vec<u8>>,
    /// Hashes of every file seen (added or waiting): a repeat is ignored.
    seen: HashSet<u64>,
    bytes: usize,
    learned: Learned,
}

/// The schemas in use: the user's and what server reflection in the capture taught.
#[derive(Debug)]
pub struct SchemaStore {
    inner: Mutex<Inner>,
    current: RwLock<Option<Arc<Schemas>>>,
    generation: AtomicU64,
}

impl SchemaStore {
    /// Starts from the user's schemas (`None`: none given).
    pub fn new(base: Option<Arc<Schemas>>) -> Arc<SchemaStore> {
        let pool = match &base {
            Some(s) => s.pool().clone(),
            None => {
                let mut pool = DescriptorPool::new();
                // Built in; if it failed, learned files that need it wait.
                let _ = crate::schema::add_google_rpc(&mut pool);
                pool
            }
        };
        Arc::new(SchemaStore {
            inner: Mutex::new(Inner {
                pool,
                waiting: Vec::new(),
                seen: HashSet::new(),
                bytes: 0,
                learned: Learned::default(),
            }),
            current: RwLock::new(base),
            generation: AtomicU64::new(0),
        })
    }

    /// Changes each time the schemas do.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The schemas now.
    pub fn current(&self) -> Option<Arc<Schemas>> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// What reflection taught so far.
    pub fn learned(&self) -> Learned {
        match self.inner.lock() {
            Ok(g) => g.learned.clone(),
            Err(p) => p.into_inner().learned.clone(),
        }
    }

    /// Offers the files of one reflection response; returns whether the schemas changed.
    pub fn learn(&self, files: &[&[u8]]) -> bool {
        let mut inner = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for f in files {
            let hash = {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                f.hash(&mut h);
                h.finish()
            };
            if inner.seen.contains(&hash) {
                continue;
            }
            if inner.seen.len() >= MAX_FILES || inner.bytes + f.len() > MAX_BYTES {
                inner.learned.skipped += 1;
                continue;
            }
            inner.seen.insert(hash);
            inner.bytes += f.len();
            inner.waiting.push(f.to_vec());
        }
        // Add what builds; a file whose dependencies came later builds on a later pass.
        let mut changed = false;
        loop {
            let mut progress = false;
            let waiting = std::mem::take(&mut inner.waiting);
            for bytes in waiting {
                let name = file_name(&bytes);
                if let Some(n) = &name
                    && inner.pool.get_file_by_name(n).is_some()
                {
                    inner.learned.skipped += 1;
                    continue;
                }
                // On a copy: a file that fails leaves the pool as it was.
                let mut pool = inner.pool.clone();
                if pool.decode_file_descriptor_proto(bytes.as_slice()).is_ok() {
                    inner.pool = pool;
                    inner.learned.files += 1;
                    progress = true;
                } else {
                    inner.waiting.push(bytes);
                }
            }
            changed |= progress;
            if !progress {
                break;
            }
        }
        inner.learned.waiting = inner.waiting.len();
        if changed {
            let schemas = Schemas::new(inner.pool.clone());
            let mut services: Vec<String> = schemas
                .method_list()
                .iter()
                .filter_map(|(p, _)| crate::grpc::split_path(p).map(|(s, _)| s.to_owned()))
                .collect();
            services.dedup();
            inner.learned.services = services;
            match self.current.write() {
                Ok(mut g) => *g = Some(Arc::new(schemas)),
                Err(p) => *p.into_inner() = Some(Arc::new(schemas)),
            }
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        changed
    }
}

/// Field 1 (`name`) of a serialized `FileDescriptorProto`.
fn file_name(fdp: &[u8]) -> Option<String> {
    let name = fields(fdp, 1)?.into_iter().next()?;
    Some(String::from_utf8_lossy(name).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A length-delimited field.
    fn ld(field: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![(field << 3) | 2];
        let mut len = body.len();
        while len >= 0x80 {
            v.push(u8::try_from(len & 0x7f).expect("7 bits") | 0x80);
            len >>= 7;
        }
        v.push(u8::try_from(len).expect("7 bits"));
        v.extend_from_slice(body);
        v
    }

    /// A FileDescriptorProto with one message and one service (hand-built wire bytes).
    fn file(name: &str, package: &str, import: Option<&str>, msg: &str, service: &str) -> Vec<u8> {
        let mut f = ld(1, name.as_bytes());
        f.extend(ld(2, package.as_bytes()));
        if let Some(i) = import {
            f.extend(ld(3, i.as_bytes()));
        }
        f.extend(ld(4, &ld(1, msg.as_bytes())));
        let ty = format!(".{package}.{msg}");
        let mut method = ld(1, b"Do");
        method.extend(ld(2, ty.as_bytes()));
        method.extend(ld(3, ty.as_bytes()));
        let mut svc = ld(1, service.as_bytes());
        svc.extend(ld(2, &method));
        f.extend(ld(6, &svc));
        f.extend(ld(12, b"proto3"));
        f
    }

    fn response(files: &[&[u8]]) -> Vec<u8> {
        let mut fdr = Vec::new();
        for f in files {
            fdr.extend(ld(1, f));
        }
        let mut r = ld(1, b"localhost"); // valid_host
        r.extend(ld(4, &fdr));
        r
    }

    #[test]
    fn descriptors_are_read_from_responses() {
        let a = file("a.proto", "pa", None, "M", "S");
        let r = response(&[&a, b"junk"]);
        assert_eq!(file_descriptors(&r), vec![&a[..], b"junk"]);
        // Other responses (list_services, field 6) carry none; garbage is no panic.
        assert!(file_descriptors(&ld(6, &ld(1, &ld(1, b"pa.S")))).is_empty());
        assert!(file_descriptors(&[0xff, 0xff, 0xff]).is_empty());
        assert!(file_descriptors(&[0x22, 0x7f, 1]).is_empty());
    }

    #[test]
    fn files_build_in_any_order_and_once() {
        let store = SchemaStore::new(None);
        assert!(store.current().is_none());
        // b.proto imports a.proto, and comes first: it waits for it.
        let a = file("a.proto", "pa", None, "M", "S");
        let b = file("b.proto", "pb", Some("a.proto"), "N", "T");
        assert!(!store.learn(&[&b]));
        assert_eq!(store.learned().waiting, 1);
        let g = store.generation();
        assert!(store.learn(&[&a, &a]));
        assert!(store.generation() > g);
        let s = store.current().expect("schemas");
        assert!(s.method("/pa.S/Do").is_some() && s.method("/pb.T/Do").is_some());
        let l = store.learned();
        assert_eq!((l.files, l.waiting), (2, 0));
        assert_eq!(l.services, ["pa.S", "pb.T"]);
        // The same file again changes nothing; one whose import never comes and one that is not
        // a descriptor wait, and the schemas stay.
        let orphan = file("c.proto", "pc", Some("missing.proto"), "Q", "R");
        assert!(!store.learn(&[&a, &orphan, b"\xff\xff\xff"]));
        assert_eq!(store.learned().waiting, 2);
        assert!(
            store
                .current()
                .expect("schemas")
                .method("/pa.S/Do")
                .is_some()
        );
    }

    #[test]
    fn the_users_schemas_win() {
        let user = crate::schema::tests::from_source(
            "a.proto",
            "syntax = \"proto3\"; package pa; message M { string x = 1; } service S { rpc Do(M) returns (M); }",
        );
        let store = SchemaStore::new(Some(Arc::new(user)));
        let a = file("a.proto", "other", None, "Q", "R");
        assert!(!store.learn(&[&a]));
        assert_eq!(store.learned().skipped, 1);
        let s = store.current().expect("schemas");
        assert!(s.method("/pa.S/Do").is_some() && s.method("/other.R/Do").is_none());
    }
}
