//! HPACK (RFC 7541) decoding for a passive observer: one decoder per connection direction.
//!
//! A tap often joins a connection after its dynamic tables were filled. Entries inserted while
//! we watched are exact: HPACK inserts at the front (index 62 is always the newest), and the
//! encoder evicts its oldest entries first, so entries we saw leave its table exactly when their
//! own sizes exceed the table size, which we track. An index past the entries we saw refers to
//! state from before the capture and decodes to [`Text::Unknown`] instead of failing; decoding
//! goes on. After a block fails to decode, or bytes of the direction were lost, the decoder
//! forgets its entries (see [`Decoder::forget`]) so it never resolves an index to a wrong header.
//!
//! ## Entries from before the capture have a stable identity
//!
//! RFC 7541 section 2.3.3: "the dynamic table [...] the first and newest entry is at the lowest
//! index, and the oldest entry [...] at the highest index"; section 4.4: "Before a new entry is
//! added to the dynamic table, entries are evicted from the end of the dynamic table until the
//! size of the dynamic table is less than or equal to (maximum size - new entry size)", and 4.3:
//! a size change also evicts "from the end". So the table is a queue: entries enter at the front
//! and leave from the back, oldest first. Call the entries inserted before we started watching
//! (or before we last lost track) the *unseen* ones. They are older than every entry we saw
//! inserted, so they sit behind all of them and leave first. Hence, while an unseen entry lives:
//! - every entry we saw inserted is still in the table (the encoder evicts one of ours only once
//!   every unseen entry is gone), so the unseen entries start at index `62 + known`, where
//!   `known` is the number of entries we hold;
//! - an insertion moves the unseen entries back by one, and `known` grows by one with it;
//!   an eviction removes the oldest unseen entry, from the back.
//!
//! So `index - 62 - known` (the entry's position among the unseen ones, newest first) names one
//! and the same entry for as long as it lives: an [`EntryId`] with that position and the epoch of
//! the table (an epoch ends when the decoder forgets its entries). This needs `known` to be
//! exact while unseen entries live, that is, never to drop one of our entries before the encoder
//! does: our sizes are exact or lower bounds (a name we never saw counts as empty), and the
//! table's maximum is either known (a connection seen from its start, or a size update seen) or
//! taken as the largest the limits allow ([`Decoder::joined`]) until a size update says it.
//! Keeping an entry longer than the encoder is harmless: it has then evicted every unseen entry
//! and will never refer to the one we kept. SETTINGS_HEADER_TABLE_SIZE changes nothing by
//! itself: a smaller maximum is always signalled by a size update in a header block (4.2).

pub mod huffman;
mod table;

use std::collections::VecDeque;
use std::fmt;
use std::ops::Range;

pub use table::STATIC_TABLE;

/// Bounds on what one decoder holds and produces.
#[derive(Debug, Clone, Copy)]
pub struct HpackLimits {
    /// Largest dynamic table size a size update may set.
    pub max_table_size: usize,
    /// Longest string literal (after Huffman decoding).
    pub max_string_len: usize,
    /// Largest decoded header list (RFC 9113 sizes: name + value + 32 per field); fields past
    /// it are dropped from the list (the table is still updated) and the list is marked.
    pub max_list_size: usize,
}

impl Default for HpackLimits {
    fn default() -> Self {
        HpackLimits {
            max_table_size: 1 << 20,
            max_string_len: 1 << 20,
            max_list_size: 4 << 20,
        }
    }
}

/// What went wrong in a header block, at which byte of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HpackError {
    /// Offset in the header block.
    pub offset: usize,
    /// What.
    pub kind: HpackErrorKind,
}

/// Kinds of invalid header blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HpackErrorKind {
    /// The block ends inside a representation.
    Truncated,
    /// Index 0, or a static index past 61 with no dynamic entry possible.
    InvalidIndex,
    /// An integer longer than 32 bits.
    IntegerOverflow,
    /// A string longer than `max_string_len`.
    StringTooLong,
    /// Bad Huffman code or padding.
    Huffman(huffman::HuffmanError),
    /// A size update above `max_table_size`.
    TableSizeTooLarge,
}

impl fmt::Display for HpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HPACK {:?} at byte {} of the header block",
            self.kind, self.offset
        )
    }
}

impl std::error::Error for HpackError {}

/// A dynamic table entry inserted before the decoder started watching (or before it last
/// forgot its entries): the same entry keeps the same id for as long as it lives (see the
/// module doc for why). Ids are per decoder, that is per connection direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId {
    /// Which stretch of the table's life: a new epoch starts when the decoder forgets.
    pub epoch: u32,
    /// Position among the unseen entries, newest first.
    pub pos: u32,
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.epoch, self.pos)
    }
}

/// A name or value: bytes, or a reference to a table entry from before the capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text<'a> {
    /// Known bytes.
    Bytes(&'a [u8]),
    /// An entry inserted before we started watching: its value is not known, its identity is.
    Unknown(EntryId),
}

impl<'a> Text<'a> {
    /// The bytes, if known.
    pub fn bytes(&self) -> Option<&'a [u8]> {
        match self {
            Text::Bytes(b) => Some(b),
            Text::Unknown(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    At { start: u32, len: u32 },
    Unknown(EntryId),
}

/// What a table index referred to when the field was decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indexed {
    /// The static table (RFC 7541 appendix A).
    Static,
    /// A dynamic table entry inserted while we watched.
    Dynamic,
    /// A dynamic table entry inserted before the capture (or before the decoder last forgot).
    Unknown,
}

/// How a literal field asks the decoder to treat the table (RFC 7541 sections 6.2.1-6.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indexing {
    /// With incremental indexing: the field was added to the dynamic table.
    Incremental,
    /// Without indexing.
    Without,
    /// Never indexed: the sender marked it sensitive.
    Never,
}

/// How one field was represented in its header block (RFC 7541 section 6), for a view of the
/// frames: what an encoder chose, and what came from before the capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rep {
    /// An indexed field (6.1): name and value from the entry at `index`.
    Indexed {
        /// The index as sent.
        index: u32,
        /// Where it pointed.
        table: Indexed,
    },
    /// A literal field (6.2): the value as a string literal, the name by index (`name`, the
    /// index as sent and where it pointed) or as a literal too.
    Literal {
        /// The name's index, when the name was one.
        name: Option<(u32, Indexed)>,
        /// The table rule.
        indexing: Indexing,
        /// The value was Huffman-coded.
        huffman: bool,
    },
    /// Not from HPACK (an HTTP/1.1 head).
    Plain,
}

impl Rep {
    /// Sent as "never indexed".
    pub fn sensitive(self) -> bool {
        matches!(
            self,
            Rep::Literal {
                indexing: Indexing::Never,
                ..
            }
        )
    }
}

/// One decoded field of a [`HeaderList`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// Header name.
    pub name: Text<'a>,
    /// Header value.
    pub value: Text<'a>,
    /// Sent as "never indexed" (RFC 7541 section 6.2.3): the sender marked it sensitive.
    pub sensitive: bool,
    /// How it was represented.
    pub rep: Rep,
}

/// A decoded header block, stored in one reusable buffer.
#[derive(Debug, Default, Clone)]
pub struct HeaderList {
    buf: Vec<u8>,
    fields: Vec<(Span, Span, Rep)>,
    size: usize,
    /// Fields were dropped because the list exceeded `max_list_size`.
    pub truncated: bool,
    /// Fields that referred to entries from before the capture.
    pub unknown_refs: u32,
    /// The last dynamic table size update the block carried (RFC 7541 section 6.3).
    pub size_update: Option<u32>,
}

impl HeaderList {
    /// Empties the list, keeping its memory.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.fields.clear();
        self.size = 0;
        self.truncated = false;
        self.unknown_refs = 0;
        self.size_update = None;
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    fn text(&self, s: Span) -> Text<'_> {
        match s {
            Span::At { start, len } => Text::Bytes(
                self.buf
                    .get(start as usize..(start + len) as usize)
                    .unwrap_or(&[]),
            ),
            Span::Unknown(i) => Text::Unknown(i),
        }
    }

    /// The fields in order.
    pub fn iter(&self) -> impl Iterator<Item = Field<'_>> + '_ {
        self.fields.iter().map(|&(n, v, rep)| Field {
            name: self.text(n),
            value: self.text(v),
            sensitive: rep.sensitive(),
            rep,
        })
    }

    /// The value of the first field named `name`, if its value is known.
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.iter()
            .find(|f| f.name.bytes() == Some(name))
            .and_then(|f| f.value.bytes())
    }

    /// Adds a field whose name and value are known (HTTP/1.1 heads, which have no table); the
    /// name in lower case, as HTTP/2 sends names.
    pub(crate) fn push(&mut self, name: &[u8], value: &[u8]) {
        let at = self.buf.len();
        let n = self.push_bytes(name);
        self.buf[at..].make_ascii_lowercase();
        let v = self.push_bytes(value);
        self.size += name.len() + value.len() + 32;
        self.fields.push((n, v, Rep::Plain));
    }

    fn push_bytes(&mut self, b: &[u8]) -> Span {
        let start = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf.extend_from_slice(b);
        Span::At {
            start,
            len: u32::try_from(b.len()).unwrap_or(u32::MAX),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    /// `None`: the name came from an entry we never saw (`name_of` says which).
    name: Option<Box<[u8]>>,
    /// The unseen entry the name came from.
    name_of: Option<EntryId>,
    value: Box<[u8]>,
}

impl Entry {
    /// RFC 7541 section 4.1. An unknown name counts as empty: see `Decoder::approximate`.
    fn size(&self) -> usize {
        self.name.as_ref().map_or(0, |n| n.len()) + self.value.len() + 32
    }
}

/// Decodes the header blocks of one direction of one connection.
#[derive(Debug)]
pub struct Decoder {
    limits: HpackLimits,
    entries: VecDeque<Entry>,
    size: usize,
    max_size: usize,
    /// Entries whose name was unknown make our size accounting a lower bound.
    approximate: u32,
    /// Counts the times the decoder forgot its entries (see [`EntryId`]).
    epoch: u32,
    scratch: Vec<u8>,
}

/// Where a name or value of a representation comes from, before it is copied into the list.
enum Source {
    Static(usize),
    Dynamic(usize),
    Unknown(EntryId),
    Literal,
}

impl Source {
    /// Where an index pointed (none: a literal).
    fn table(&self) -> Option<Indexed> {
        match self {
            Source::Static(_) => Some(Indexed::Static),
            Source::Dynamic(_) => Some(Indexed::Dynamic),
            Source::Unknown(_) => Some(Indexed::Unknown),
            Source::Literal => None,
        }
    }
}

impl Decoder {
    /// A decoder for a connection seen from its start: an empty table of the default size
    /// (4096, RFC 7541 section 4.2).
    pub fn new(limits: HpackLimits) -> Decoder {
        Decoder {
            limits,
            entries: VecDeque::new(),
            size: 0,
            max_size: 4096,
            approximate: 0,
            epoch: 0,
            scratch: Vec::new(),
        }
    }

    /// A decoder for a connection joined mid-way: its table holds entries we never saw, and its
    /// maximum size is not known, so it is taken as the largest the limits allow until a size
    /// update says what it is (keeping entries longer than the encoder is safe, dropping them
    /// earlier is not: see the module doc).
    pub fn joined(limits: HpackLimits) -> Decoder {
        Decoder {
            max_size: limits.max_table_size,
            ..Decoder::new(limits)
        }
    }

    /// Entries we hold (inserted while we watched).
    pub fn known_entries(&self) -> usize {
        self.entries.len()
    }

    /// Forgets every entry: later references to them decode as unknown, under a new epoch.
    /// Used when bytes of the direction were lost (a missed insertion would shift every index)
    /// or a block failed.
    /// Bytes the table holds: its entries as RFC 7541 counts them, and their records.
    pub fn memory(&self) -> usize {
        self.size + self.entries.capacity() * std::mem::size_of::<Entry>() + self.scratch.capacity()
    }

    /// Forgets the table and lets its memory go (the decoder state budget shed it).
    pub fn shed(&mut self) {
        self.forget();
        self.entries = VecDeque::new();
        self.scratch = Vec::new();
    }

    pub fn forget(&mut self) {
        self.entries.clear();
        self.size = 0;
        self.approximate = 0;
        self.epoch = self.epoch.wrapping_add(1);
    }

    /// Decodes one complete header block into `out` (cleared first). On error the table is
    /// forgotten, since the block may have inserted entries we did not apply.
    pub fn decode(&mut self, block: &[u8], out: &mut HeaderList) -> Result<(), HpackError> {
        out.clear();
        let r = self.decode_inner(block, out);
        if r.is_err() {
            self.forget();
        }
        r
    }

    fn decode_inner(&mut self, block: &[u8], out: &mut HeaderList) -> Result<(), HpackError> {
        let mut at = 0;
        while at < block.len() {
            let b = block[at];
            if b & 0x80 != 0 {
                // Indexed header field (section 6.1).
                let idx = int(block, &mut at, 7)?;
                let src = self.lookup(idx, at)?;
                self.emit_indexed(out, &src, idx);
            } else if b & 0xe0 == 0x20 {
                // Dynamic table size update (section 6.3).
                let size = int(block, &mut at, 5)? as usize;
                if size > self.limits.max_table_size {
                    return Err(HpackError {
                        offset: at,
                        kind: HpackErrorKind::TableSizeTooLarge,
                    });
                }
                self.max_size = size;
                out.size_update = Some(u32::try_from(size).unwrap_or(u32::MAX));
                self.evict(0);
                if size == 0 {
                    // Every entry is gone, seen or not: positions start again.
                    self.epoch = self.epoch.wrapping_add(1);
                }
            } else {
                // Literals (sections 6.2.1-6.2.3).
                let (prefix, indexing, rule) = if b & 0xc0 == 0x40 {
                    (6, true, Indexing::Incremental)
                } else if b & 0xf0 == 0x10 {
                    (4, false, Indexing::Never)
                } else {
                    (4, false, Indexing::Without)
                };
                let idx = int(block, &mut at, prefix)?;
                let name_src = if idx == 0 {
                    Source::Literal
                } else {
                    self.lookup(idx, at)?
                };
                let name_lit = if idx == 0 {
                    Some(self.string(block, &mut at)?)
                } else {
                    None
                };
                let huffman = block.get(at).is_some_and(|b| b & 0x80 != 0);
                let value_range = self.string(block, &mut at)?;
                let rep = Rep::Literal {
                    name: name_src.table().map(|t| (idx, t)),
                    indexing: rule,
                    huffman,
                };
                if indexing {
                    let name = match (&name_src, name_lit.clone()) {
                        (_, Some(r)) => Some(self.scratch[r].to_vec().into_boxed_slice()),
                        (Source::Static(i), None) => Some(STATIC_TABLE[*i].0.as_bytes().into()),
                        (Source::Dynamic(i), None) => {
                            self.entries.get(*i).and_then(|e| e.name.clone())
                        }
                        (Source::Unknown(_), None) | (Source::Literal, None) => None,
                    };
                    let value = self.scratch[value_range.clone()]
                        .to_vec()
                        .into_boxed_slice();
                    let name_of = match (&name, self.unknown_span(&name_src)) {
                        (None, Span::Unknown(id)) => Some(id),
                        _ => None,
                    };
                    // Copy into the list before inserting: insertion shifts dynamic indexes.
                    self.emit_literal(out, &name_src, name_lit, value_range, rep);
                    self.insert(Entry {
                        name,
                        name_of,
                        value,
                    });
                } else {
                    self.emit_literal(out, &name_src, name_lit, value_range, rep);
                }
                self.scratch.clear();
            }
        }
        Ok(())
    }

    /// Resolves an index (1-based; 1..=61 static, then dynamic newest first).
    fn lookup(&self, idx: u32, at: usize) -> Result<Source, HpackError> {
        let i = idx as usize;
        match i {
            0 => Err(HpackError {
                offset: at,
                kind: HpackErrorKind::InvalidIndex,
            }),
            1..=61 => Ok(Source::Static(i - 1)),
            _ if i - 62 < self.entries.len() => Ok(Source::Dynamic(i - 62)),
            // Past the entries we saw: an unseen one, named by its place among them.
            _ => Ok(Source::Unknown(EntryId {
                epoch: self.epoch,
                pos: u32::try_from(i - 62 - self.entries.len()).unwrap_or(u32::MAX),
            })),
        }
    }

    /// Appends an indexed field (name and value both from `src`).
    fn emit_indexed(&self, out: &mut HeaderList, src: &Source, index: u32) {
        let (name, value): (Option<&[u8]>, Option<&[u8]>) = match src {
            Source::Static(i) => (
                Some(STATIC_TABLE[*i].0.as_bytes()),
                Some(STATIC_TABLE[*i].1.as_bytes()),
            ),
            Source::Dynamic(i) => match self.entries.get(*i) {
                Some(e) => (e.name.as_deref(), Some(&e.value[..])),
                None => (None, None),
            },
            Source::Unknown(_) | Source::Literal => (None, None),
        };
        let size = name.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len) + 32;
        if !Self::room(out, size, self.limits.max_list_size) {
            return;
        }
        let unknown = self.unknown_span(src);
        let n = match name {
            Some(n) => out.push_bytes(n),
            None => unknown,
        };
        let v = match value {
            Some(v) => out.push_bytes(v),
            None => unknown,
        };
        if matches!(n, Span::Unknown(_)) || matches!(v, Span::Unknown(_)) {
            out.unknown_refs += 1;
        }
        let table = src.table().unwrap_or(Indexed::Unknown);
        out.fields.push((n, v, Rep::Indexed { index, table }));
    }

    /// Appends a literal field: the name from `name_src` or `name_lit`, the value from scratch.
    fn emit_literal(
        &self,
        out: &mut HeaderList,
        name_src: &Source,
        name_lit: Option<Range<usize>>,
        value: Range<usize>,
        rep: Rep,
    ) {
        let name: Option<&[u8]> = match (name_lit, name_src) {
            (Some(r), _) => self.scratch.get(r),
            (None, Source::Static(i)) => Some(STATIC_TABLE[*i].0.as_bytes()),
            (None, Source::Dynamic(i)) => self.entries.get(*i).and_then(|e| e.name.as_deref()),
            (None, _) => None,
        };
        let value_bytes = self.scratch.get(value).unwrap_or(&[]);
        let size = name.map_or(0, <[u8]>::len) + value_bytes.len() + 32;
        if !Self::room(out, size, self.limits.max_list_size) {
            return;
        }
        let n = match name {
            Some(n) => out.push_bytes(n),
            None => {
                out.unknown_refs += 1;
                self.unknown_span(name_src)
            }
        };
        let v = out.push_bytes(value_bytes);
        out.fields.push((n, v, rep));
    }

    /// The unseen entry behind what `src` does not tell: the entry itself, or for an entry we
    /// hold whose name we never saw, the unseen entry that name came from.
    fn unknown_span(&self, src: &Source) -> Span {
        let id = match src {
            Source::Unknown(id) => Some(*id),
            Source::Dynamic(i) => self.entries.get(*i).and_then(|e| e.name_of),
            Source::Static(_) | Source::Literal => None,
        };
        Span::Unknown(id.unwrap_or(EntryId {
            epoch: self.epoch,
            pos: u32::MAX,
        }))
    }

    fn room(out: &mut HeaderList, size: usize, max: usize) -> bool {
        if out.size + size > max {
            out.truncated = true;
            return false;
        }
        out.size += size;
        true
    }

    /// Reads a string literal (section 5.2) into `scratch`, returning its range there.
    fn string(&mut self, block: &[u8], at: &mut usize) -> Result<Range<usize>, HpackError> {
        let Some(&first) = block.get(*at) else {
            return Err(HpackError {
                offset: *at,
                kind: HpackErrorKind::Truncated,
            });
        };
        let huff = first & 0x80 != 0;
        let len = int(block, at, 7)? as usize;
        if len > self.limits.max_string_len {
            return Err(HpackError {
                offset: *at,
                kind: HpackErrorKind::StringTooLong,
            });
        }
        let Some(raw) = block.get(*at..*at + len) else {
            return Err(HpackError {
                offset: *at,
                kind: HpackErrorKind::Truncated,
            });
        };
        let start = self.scratch.len();
        if huff {
            huffman::decode(raw, &mut self.scratch, start + self.limits.max_string_len).map_err(
                |e| HpackError {
                    offset: *at,
                    kind: match e {
                        huffman::HuffmanError::TooLong => HpackErrorKind::StringTooLong,
                        e => HpackErrorKind::Huffman(e),
                    },
                },
            )?;
        } else {
            self.scratch.extend_from_slice(raw);
        }
        *at += len;
        Ok(start..self.scratch.len())
    }

    fn insert(&mut self, e: Entry) {
        let size = e.size();
        if e.name.is_none() {
            self.approximate += 1;
        }
        // An entry larger than the table empties it and is not added (section 4.4).
        self.evict(size);
        if size <= self.max_size {
            self.size += size;
            self.entries.push_front(e);
        }
    }

    /// Evicts oldest entries until `extra` more bytes fit.
    fn evict(&mut self, extra: usize) {
        while self.size + extra > self.max_size {
            match self.entries.pop_back() {
                Some(e) => {
                    self.size -= e.size();
                    if e.name.is_none() {
                        self.approximate -= 1;
                    }
                }
                None => {
                    self.size = 0;
                    break;
                }
            }
        }
    }
}

/// Decodes an integer with an `n`-bit prefix at `block[*at]` (section 5.1), advancing `at`.
fn int(block: &[u8], at: &mut usize, n: u32) -> Result<u32, HpackError> {
    let start = *at;
    let trunc = || HpackError {
        offset: start,
        kind: HpackErrorKind::Truncated,
    };
    let mask = (1u32 << n) - 1;
    let first = u32::from(*block.get(*at).ok_or_else(trunc)?) & mask;
    *at += 1;
    if first < mask {
        return Ok(first);
    }
    let mut value = u64::from(mask);
    let mut shift = 0;
    loop {
        let b = *block.get(*at).ok_or_else(trunc)?;
        *at += 1;
        value += u64::from(b & 0x7f) << shift;
        if value > u64::from(u32::MAX) {
            return Err(HpackError {
                offset: start,
                kind: HpackErrorKind::IntegerOverflow,
            });
        }
        if b & 0x80 == 0 {
            return u32::try_from(value).map_err(|_| HpackError {
                offset: start,
                kind: HpackErrorKind::IntegerOverflow,
            });
        }
        shift += 7;
        if shift > 28 {
            return Err(HpackError {
                offset: start,
                kind: HpackErrorKind::IntegerOverflow,
            });
        }
    }
}

#[cfg(test)]
mod tests;
