//! Statuses behind header table entries from before the capture.
//!
//! A server that indexes `grpc-status` (grpc-go, gRPC C-core, nghttp2) sends it by index for
//! the rest of the connection, so a tap that joined mid-way reads no status at all. Each unseen
//! entry has a stable identity, though (see `hpack`), and one entry holds one header: a trailers
//! block that uses the entry holding `grpc-status: N` ended with N.
//!
//! Which entry that is cannot be read, but it can be narrowed down. For each code, the *kernel*
//! is the set of unseen entries that every trailers block known (from other evidence: see
//! `Tracker::infer_status`) to end with that code used. The entry `grpc-status: N` is in every
//! such block, so it is in the kernel; so is whatever always comes with it (grpc-go sends
//! `grpc-message:` empty with every OK). A block that uses every entry of a code's kernel uses
//! the status entry, so it ended with that code.
//!
//! What keeps this sound:
//! - A block whose `grpc-status` is readable carries it once (gRPC PROTOCOL-HTTP2.md), so its
//!   unseen entries are no status: they leave every kernel. If such a block nevertheless holds a
//!   whole kernel of another code, that kernel is wrong and is used no more.
//! - A block with a field whose name came from an unseen entry and whose value reads as a
//!   status teaches nothing (the status may be that field), but can still be answered.
//! - When the blocks of two codes both match, there is no answer.
//!
//! It assumes the encoder holds one unseen entry per status value (encoders look a header up
//! before inserting it again; a second entry for the same value only empties a kernel, which
//! then answers nothing) and that the evidence is right.
//!
//! Names too. Once the entries from before the capture start to be evicted, encoders send
//! `grpc-status` as a literal whose *name* refers to an unseen entry (`grpc-status: 5`'s name
//! for a `0`): the value is on the wire, the name is not. In a block whose status is not
//! readable, when exactly one field could be the status (a value that reads as a code, under a
//! name not known to be something else) and no whole unseen entry could, that field is
//! `grpc-status`: its name entry is learned as the name `grpc-status`, and every later field with
//! that name is read as one. A name seen beside a readable `grpc-status` is some other header.

use std::collections::HashMap;

use crate::grpc::Code;
use crate::hpack::{EntryId, HeaderList, Text};

/// Entries remembered per connection as not holding a status.
const MAX_NOT_STATUS: usize = 4096;
/// Codes learned per connection (17 are defined; more are carried as they come).
const MAX_CODES: usize = 32;

/// The unseen entries of a trailers block, as the learner needs them.
#[derive(Debug, Default, Clone)]
pub(crate) struct Unseen {
    /// Entries used whole (name and value unknown), sorted, without repeats.
    pub(crate) ids: Vec<EntryId>,
    /// Fields whose name came from an unseen entry: that entry, and the value read as a status
    /// (`None` when it does not read as one).
    pub(crate) named: Vec<(EntryId, Option<Code>)>,
}

impl Unseen {
    /// The unseen entries of `list`.
    pub(crate) fn of(list: &HeaderList) -> Unseen {
        let mut u = Unseen::default();
        for f in list.iter() {
            match (f.name, f.value) {
                (Text::Unknown(id), Text::Unknown(_)) => u.ids.push(id),
                (Text::Unknown(id), Text::Bytes(v)) => {
                    u.named.push((id, crate::grpc::parse_status(v)));
                }
                _ => {}
            }
        }
        u.ids.sort_unstable();
        u.ids.dedup();
        u
    }

    fn holds(&self, kernel: &[EntryId]) -> bool {
        !kernel.is_empty() && kernel.iter().all(|k| self.ids.binary_search(k).is_ok())
    }
}

#[derive(Debug, Clone)]
struct Kernel {
    /// Sorted.
    entries: Vec<EntryId>,
    /// Contradicted: used no more.
    wrong: bool,
}

type Set = std::collections::HashSet<EntryId, foldhash::fast::RandomState>;

/// What one connection's server direction has taught.
#[derive(Debug, Default)]
pub(crate) struct StatusEntries {
    not_status: Set,
    kernels: HashMap<Code, Kernel, foldhash::fast::RandomState>,
    /// Name entries that are `grpc-status`.
    status_names: Set,
    /// Name entries seen beside a readable `grpc-status`: other headers.
    other_names: Set,
}

impl StatusEntries {
    fn remember(set: &mut Set, id: EntryId) {
        if set.len() < MAX_NOT_STATUS {
            set.insert(id);
        }
    }

    /// Whether a field named after unseen entry `name` with value `code` could be the status.
    fn could_be_status(&self, name: EntryId, code: Option<Code>) -> bool {
        code.is_some() && !self.other_names.contains(&name)
    }

    /// The status read from a field whose name is known to be `grpc-status`.
    pub(crate) fn named_status(&self, u: &Unseen) -> Option<Code> {
        u.named
            .iter()
            .find(|(n, _)| self.status_names.contains(n))
            .and_then(|(_, c)| *c)
    }

    /// When exactly one field of a block with no readable status can be the status, and it is
    /// a value under an unseen name: that name is `grpc-status`, and the value the status.
    pub(crate) fn name_by_elimination(&mut self, u: &Unseen) -> Option<Code> {
        let mut fields = u.named.iter().filter(|(n, c)| self.could_be_status(*n, *c));
        let (name, code) = *fields.next()?;
        if fields.next().is_some() || u.ids.iter().any(|e| !self.not_status.contains(e)) {
            return None;
        }
        Self::remember(&mut self.status_names, name);
        code
    }

    /// A trailers block whose status, `code`, was readable: its unseen entries are no status.
    pub(crate) fn readable(&mut self, u: &Unseen, code: Code) {
        for (name, _) in &u.named {
            if !self.status_names.contains(name) {
                Self::remember(&mut self.other_names, *name);
            }
        }
        for (c, k) in &mut self.kernels {
            if *c != code && u.holds(&k.entries) {
                k.wrong = true;
            }
            k.entries.retain(|e| u.ids.binary_search(e).is_err());
        }
        for &id in &u.ids {
            Self::remember(&mut self.not_status, id);
        }
    }

    /// The call whose trailers used `u` ended with `code`, known from other evidence.
    pub(crate) fn learn(&mut self, u: &Unseen, code: Code) {
        if u.named.iter().any(|(n, c)| self.could_be_status(*n, *c)) {
            // The status may be that field, not an entry of the block.
            return;
        }
        let fresh: Vec<EntryId> = u
            .ids
            .iter()
            .copied()
            .filter(|e| !self.not_status.contains(e))
            .collect();
        let full = self.kernels.len() >= MAX_CODES;
        match self.kernels.get_mut(&code) {
            Some(k) => k.entries.retain(|e| fresh.binary_search(e).is_ok()),
            None if !full => {
                let entries = fresh;
                self.kernels.insert(
                    code,
                    Kernel {
                        entries,
                        wrong: false,
                    },
                );
            }
            None => {}
        }
    }

    /// The status a block that used `u` ended with, when the kernel of exactly one code says.
    pub(crate) fn status(&self, u: &Unseen) -> Option<Code> {
        let mut found = None;
        for (c, k) in &self.kernels {
            if !k.wrong && u.holds(&k.entries) {
                if found.is_some() {
                    return None;
                }
                found = Some(*c);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(ids: &[u32]) -> Unseen {
        let mut ids: Vec<EntryId> = ids.iter().map(|&pos| EntryId { epoch: 0, pos }).collect();
        ids.sort_unstable();
        Unseen {
            ids,
            named: Vec::new(),
        }
    }

    #[test]
    fn a_code_is_told_by_the_entries_that_always_come_with_it() {
        let mut s = StatusEntries::default();
        // OK blocks: status entry 1, empty message 2, a tag that varies (7, 8).
        s.learn(&u(&[1, 2, 7]), Code::OK);
        assert_eq!(s.status(&u(&[1, 2, 7])), Some(Code::OK));
        assert_eq!(s.status(&u(&[1, 2])), None, "7 may be the status yet");
        s.learn(&u(&[1, 2, 8]), Code::OK);
        assert_eq!(s.status(&u(&[1, 2, 9])), Some(Code::OK), "7 and 8 were not");
        // A block with the tag but another status entry is not answered from the OK kernel.
        assert_eq!(s.status(&u(&[5, 2])), None);
        // Where the status was readable (NOT_FOUND), entry 2 came too: not a status, and the
        // kernel of OK shrinks to {1}.
        s.readable(&u(&[2]), Code(5));
        assert_eq!(s.status(&u(&[1])), Some(Code::OK));
        // A readable block of another code that holds the whole OK kernel: the kernel is wrong.
        s.readable(&u(&[1]), Code(5));
        assert_eq!(s.status(&u(&[1, 2])), None);
    }

    #[test]
    fn two_codes_that_match_answer_nothing() {
        let mut s = StatusEntries::default();
        s.learn(&u(&[1, 3]), Code::OK);
        s.learn(&u(&[4, 3]), Code(5));
        assert_eq!(s.status(&u(&[1, 3])), Some(Code::OK));
        assert_eq!(s.status(&u(&[4, 3])), Some(Code(5)));
        assert_eq!(s.status(&u(&[1, 3, 4])), None);
        // A block whose status may be a field with an unseen name teaches nothing.
        let mut named = u(&[9]);
        named.named = vec![(EntryId { epoch: 0, pos: 50 }, Some(Code(7)))];
        s.learn(&named, Code(7));
        assert_eq!(s.status(&u(&[9])), None);
    }

    #[test]
    fn the_name_grpc_status_is_learned_by_elimination() {
        let name = EntryId { epoch: 0, pos: 15 };
        let msg = EntryId { epoch: 0, pos: 3 };
        let block = |code: &str, extra: &[u32]| Unseen {
            named: vec![
                (name, crate::grpc::parse_status(code.as_bytes())),
                (msg, None),
            ],
            ..u(extra)
        };
        let mut s = StatusEntries::default();
        // An unseen whole entry (16) could still be the status: no answer.
        assert_eq!(s.name_by_elimination(&block("5", &[16])), None);
        // Without it, the one field that reads as a code under an unseen name is the status.
        assert_eq!(s.name_by_elimination(&block("5", &[])), Some(Code(5)));
        assert_eq!(s.named_status(&block("0", &[16])), Some(Code::OK));
        // A name seen beside a readable status is another header, and never learned.
        let mut t = StatusEntries::default();
        t.readable(&block("7", &[]), Code(9));
        assert_eq!(t.name_by_elimination(&block("5", &[])), None);
        assert_eq!(t.named_status(&block("5", &[])), None);
    }
}
