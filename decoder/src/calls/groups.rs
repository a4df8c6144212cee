//! Groups of calls whose `:path` was the same unseen header table entry, and what their
//! messages say about the method they all call.
//!
//! A request block whose `:path` we cannot read still tells which unseen entries it used (their
//! [`EntryId`]s, stable while the entries live: see `hpack`). Two blocks that used exactly the
//! same unseen entries used the same `:path` entry, so their calls have the same method: the
//! `:path` is one of those entries (a request must carry it, and once), and an entry holds one
//! header. Calls are grouped by that set (per connection: each direction has its own table). A
//! group may hold fewer calls than a method has (another header from before the capture may
//! differ between its calls), never calls of two methods.
//!
//! A field whose *name* came from an unseen entry (a literal with an indexed name, as nghttp2
//! sends custom metadata) could be the `:path` itself, with a value that varies between methods
//! while the set of entries does not. A `:path` starts with `/` (RFC 9113 8.3.1), so a block
//! with such a field whose value starts with `/` is not grouped; other such fields are not the
//! `:path` and do not count.

use std::collections::HashMap;
use std::sync::Arc;

use super::infer;
use super::record::CallRecord;
use crate::hpack::{EntryId, HeaderList, Text};
use crate::schema::Schemas;

/// Groups kept per connection; calls of further groups are not grouped.
const MAX_GROUPS: usize = 1024;

/// What the calls of one group have shown so far.
#[derive(Debug, Default)]
struct Group {
    /// Methods (indexes into the schemas' method list) every call so far fits; `None` until a
    /// call with something to say ended.
    candidates: Option<Vec<u32>>,
    /// The method, once exactly one candidate is left.
    name: Option<Arc<str>>,
}

/// The groups of one connection.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    index: HashMap<Box<[EntryId]>, u32, foldhash::fast::RandomState>,
    groups: Vec<Group>,
    scratch: Vec<EntryId>,
}

impl Groups {
    /// The group of a request block whose `:path` is not readable, if it can have one.
    pub(crate) fn of(&mut self, list: &HeaderList) -> Option<u32> {
        self.scratch.clear();
        for f in list.iter() {
            match (f.name, f.value) {
                (Text::Unknown(id), Text::Unknown(_)) => self.scratch.push(id),
                // A name from an unseen entry with a value of its own: maybe the :path.
                (Text::Unknown(_), Text::Bytes(v)) if v.first() == Some(&b'/') => return None,
                _ => {}
            }
        }
        if self.scratch.is_empty() {
            return None;
        }
        self.scratch.sort_unstable();
        self.scratch.dedup();
        if let Some(&g) = self.index.get(&self.scratch[..]) {
            return Some(g);
        }
        if self.groups.len() >= MAX_GROUPS {
            return None;
        }
        let g = u32::try_from(self.groups.len()).ok()?;
        self.index
            .insert(self.scratch.clone().into_boxed_slice(), g);
        self.groups.push(Group::default());
        Some(g)
    }

    /// The schemas changed: candidates (indexes into the old method list) are dropped; groups
    /// not named yet are narrowed again from their next calls.
    pub(crate) fn forget_candidates(&mut self) {
        for g in &mut self.groups {
            g.candidates = None;
        }
    }

    /// The group's method, if its calls have told it.
    pub(crate) fn name(&self, g: u32) -> Option<Arc<str>> {
        self.groups.get(g as usize)?.name.clone()
    }

    /// A call of group `g` ended: its messages narrow the group's candidates. Returns the
    /// group's method when exactly one is left.
    pub(crate) fn observe(
        &mut self,
        g: u32,
        call: &CallRecord,
        schemas: &Schemas,
        cap: usize,
    ) -> Option<Arc<str>> {
        let group = self.groups.get_mut(g as usize)?;
        if group.name.is_some() || !infer::has_evidence(call) {
            return group.name.clone();
        }
        let left = infer::candidates(schemas, call, cap, group.candidates.as_deref());
        if let [one] = left.as_slice() {
            group.name = schemas
                .method_list()
                .get(*one as usize)
                .map(|(p, _)| Arc::from(p.as_str()));
        }
        group.candidates = Some(left);
        group.name.clone()
    }
}
