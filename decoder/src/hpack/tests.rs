#![allow(clippy::cast_possible_truncation)] // test values are small and known

use super::*;
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn pairs(list: &HeaderList) -> Vec<(String, String)> {
    list.iter()
        .map(|f| {
            let t = |t: Text<'_>| match t {
                Text::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                Text::Unknown(id) => format!("<unknown {id}>"),
            };
            (t(f.name), t(f.value))
        })
        .collect()
}

fn p(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// RFC 7541 C.3 (no Huffman) and C.4 (Huffman): three requests on one connection.
#[test]
fn appendix_c3_and_c4_requests() {
    let c3 = [
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ];
    let c4 = [
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ];
    let want = [
        p(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
        ]),
        p(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
            ("cache-control", "no-cache"),
        ]),
        p(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/index.html"),
            (":authority", "www.example.com"),
            ("custom-key", "custom-value"),
        ]),
    ];
    for blocks in [c3, c4] {
        let mut d = Decoder::new(HpackLimits::default());
        let mut out = HeaderList::default();
        for (b, w) in blocks.iter().zip(&want) {
            d.decode(&hex(b), &mut out).expect("decodes");
            assert_eq!(&pairs(&out), w);
        }
        assert_eq!(d.known_entries(), 3);
        assert_eq!(d.size, 164);
    }
}

/// RFC 7541 C.5 and C.6: responses with a 256-byte table, so entries get evicted.
#[test]
fn appendix_c5_and_c6_responses_with_eviction() {
    let c5 = [
        "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
         2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
         6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
         54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
         5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
         3d31",
    ];
    let c6 = [
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ff c1 c0 bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
         77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
         9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ];
    let date1 = "Mon, 21 Oct 2013 20:13:21 GMT";
    let date2 = "Mon, 21 Oct 2013 20:13:22 GMT";
    let loc = "https://www.example.com";
    let want = [
        p(&[
            (":status", "302"),
            ("cache-control", "private"),
            ("date", date1),
            ("location", loc),
        ]),
        p(&[
            (":status", "307"),
            ("cache-control", "private"),
            ("date", date1),
            ("location", loc),
        ]),
        p(&[
            (":status", "200"),
            ("cache-control", "private"),
            ("date", date2),
            ("location", loc),
            ("content-encoding", "gzip"),
            (
                "set-cookie",
                "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
            ),
        ]),
    ];
    for blocks in [c5, c6] {
        let mut d = Decoder::new(HpackLimits::default());
        let mut out = HeaderList::default();
        // The examples assume SETTINGS_HEADER_TABLE_SIZE 256: a size update says so.
        let mut first = vec![0x3f, 0xe1, 0x01];
        first.extend(hex(blocks[0]));
        d.decode(&first, &mut out).expect("first");
        assert_eq!(pairs(&out), want[0]);
        assert_eq!(d.size, 222);
        d.decode(&hex(blocks[1]), &mut out).expect("second");
        assert_eq!(pairs(&out), want[1]);
        assert_eq!(d.size, 222);
        d.decode(&hex(blocks[2]), &mut out).expect("third");
        assert_eq!(pairs(&out), want[2]);
        assert_eq!(d.size, 215);
        assert_eq!(d.known_entries(), 3);
    }
}

#[test]
fn sensitive_literals_and_size_limits() {
    let mut d = Decoder::new(HpackLimits::default());
    let mut out = HeaderList::default();
    // C.2.3: never-indexed "password: secret".
    d.decode(&hex("1008 7061 7373 776f 7264 0673 6563 7265 74"), &mut out)
        .expect("decodes");
    let f = out.iter().next().expect("field");
    assert!(f.sensitive);
    assert_eq!(f.value.bytes(), Some(&b"secret"[..]));
    assert_eq!(d.known_entries(), 0);

    // A list over its cap keeps the table in sync but drops the fields.
    let mut small = Decoder::new(HpackLimits {
        max_list_size: 60,
        ..HpackLimits::default()
    });
    small
        .decode(
            &hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572 8286"),
            &mut out,
        )
        .expect("ok");
    assert!(out.truncated);
    assert_eq!(small.known_entries(), 1);

    // Bad input: errors, never panics, and the table is forgotten.
    for bad in ["80", "3fe1ffffffff0f", "4f", "407f", "ff80808080808001"] {
        let e = d.decode(&hex(bad), &mut out);
        assert!(e.is_err(), "{bad}: {e:?}");
    }
}

/// An HPACK encoder that indexes like gRPC stacks do, written as plainly as the RFC says: a
/// field already in the table (name and value) is sent by index; a new one as a literal with
/// incremental indexing, its name by index when the table (static or dynamic) has it; entries
/// evicted from the end (RFC 7541 4.4). No Huffman. The `hpack` crate's encoder never refers to
/// the dynamic table, so it cannot test what a join mid-way sees.
struct IndexingEncoder {
    table: std::collections::VecDeque<(Vec<u8>, Vec<u8>)>,
    size: usize,
    max: usize,
}

impl IndexingEncoder {
    fn new(max: usize) -> IndexingEncoder {
        IndexingEncoder {
            table: Default::default(),
            size: 0,
            max,
        }
    }

    fn int(out: &mut Vec<u8>, first: u8, prefix: u32, mut v: usize) {
        let mask = (1usize << prefix) - 1;
        if v < mask {
            out.push(first | v as u8);
            return;
        }
        out.push(first | mask as u8);
        v -= mask;
        while v >= 128 {
            out.push((v % 128) as u8 | 0x80);
            v /= 128;
        }
        out.push(v as u8);
    }

    fn string(out: &mut Vec<u8>, s: &[u8]) {
        Self::int(out, 0, 7, s.len());
        out.extend_from_slice(s);
    }

    fn encode(&mut self, list: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, v) in list {
            let stat = STATIC_TABLE
                .iter()
                .position(|(sn, sv)| sn.as_bytes() == n && sv.as_bytes() == v);
            let dynm = self.table.iter().position(|(tn, tv)| tn == n && tv == v);
            if let Some(i) = stat {
                Self::int(&mut out, 0x80, 7, i + 1);
                continue;
            }
            if let Some(i) = dynm {
                Self::int(&mut out, 0x80, 7, 62 + i);
                continue;
            }
            let name_idx = STATIC_TABLE
                .iter()
                .position(|(sn, _)| sn.as_bytes() == n)
                .map(|i| i + 1)
                .or_else(|| {
                    self.table
                        .iter()
                        .position(|(tn, _)| tn == n)
                        .map(|i| 62 + i)
                });
            match name_idx {
                Some(i) => Self::int(&mut out, 0x40, 6, i),
                None => {
                    out.push(0x40);
                    Self::string(&mut out, n);
                }
            }
            Self::string(&mut out, v);
            let size = n.len() + v.len() + 32;
            while self.size + size > self.max {
                match self.table.pop_back() {
                    Some((a, b)) => self.size -= a.len() + b.len() + 32,
                    None => break,
                }
            }
            if size <= self.max {
                self.table.push_front((n.clone(), v.clone()));
                self.size += size;
            }
        }
        out
    }
}

/// Header lists a gRPC client might send, as input for the differential tests.
fn header_lists() -> impl Strategy<Value = Vec<Vec<(Vec<u8>, Vec<u8>)>>> {
    let name = prop_oneof![
        Just(b":path".to_vec()),
        Just(b"grpc-timeout".to_vec()),
        Just(b"x-request-id".to_vec()),
        Just(b"user-agent".to_vec()),
        Just(b"content-type".to_vec()),
        prop::collection::vec(b'a'..=b'z', 1..12),
    ];
    let value = prop::collection::vec(any::<u8>(), 0..40);
    prop::collection::vec(prop::collection::vec((name, value), 1..8), 1..30)
}

/// Header lists drawn from a small set of fields, so values repeat and come back by index, with
/// unique values among them that churn the table.
fn repeating_lists() -> impl Strategy<Value = Vec<Vec<(Vec<u8>, Vec<u8>)>>> {
    let field = prop_oneof![
        (0usize..6).prop_map(|i| (b":path".to_vec(), format!("/s.S/M{i}").into_bytes())),
        (0usize..3).prop_map(|i| (b"grpc-status".to_vec(), i.to_string().into_bytes())),
        (0usize..4).prop_map(|i| (format!("x-h{i}").into_bytes(), b"v".repeat(i * 20))),
        (0u32..1_000_000).prop_map(|i| (b"x-call-id".to_vec(), i.to_string().into_bytes())),
    ];
    prop::collection::vec(prop::collection::vec(field, 1..6), 1..120)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Our decoder against the `hpack` crate's encoder on valid input.
    #[test]
    fn decodes_what_another_encoder_wrote(lists in header_lists()) {
        let mut enc = hpack::Encoder::new();
        let mut d = Decoder::new(HpackLimits::default());
        let mut out = HeaderList::default();
        for list in &lists {
            let block = enc.encode(list.iter().map(|(n, v)| (&n[..], &v[..])));
            d.decode(&block, &mut out).expect("valid block");
            let got: Vec<(Vec<u8>, Vec<u8>)> = out
                .iter()
                .map(|f| (f.name.bytes().expect("known").to_vec(), f.value.bytes().expect("known").to_vec()))
                .collect();
            prop_assert_eq!(&got, list);
        }
    }

    /// Joining at any block: every field is exact or unknown, never wrong.
    #[test]
    fn joining_mid_connection_is_never_wrong(lists in header_lists(), join in any::<prop::sample::Index>()) {
        let mut enc = hpack::Encoder::new();
        let blocks: Vec<Vec<u8>> = lists.iter().map(|l| enc.encode(l.iter().map(|(n, v)| (&n[..], &v[..])))).collect();
        let start = join.index(blocks.len());
        let mut d = Decoder::new(HpackLimits::default());
        let mut out = HeaderList::default();
        for (block, list) in blocks.iter().zip(&lists).skip(start) {
            d.decode(block, &mut out).expect("valid block");
            prop_assert_eq!(out.len(), list.len());
            for (f, (n, v)) in out.iter().zip(list) {
                if let Text::Bytes(b) = f.name { prop_assert_eq!(b, &n[..]); }
                if let Text::Bytes(b) = f.value { prop_assert_eq!(b, &v[..]); }
            }
        }
    }

    /// Joining at any block: an unseen entry keeps one identity for as long as it is used,
    /// across insertions and evictions (the module doc's argument, checked against a real
    /// encoder): every field decoded as `Unknown(id)` is the same header each time `id` shows.
    #[test]
    fn unseen_entries_keep_their_identity(lists in repeating_lists(), join in any::<prop::sample::Index>(), max in 256usize..16384) {
        // The table size is set once, in the first block (RFC 7541 4.2): a tap that joins later
        // never learns it, and may not assume the default.
        let mut enc = IndexingEncoder::new(max);
        let blocks: Vec<Vec<u8>> = lists.iter().enumerate().map(|(i, l)| {
            let mut b = Vec::new();
            if i == 0 {
                IndexingEncoder::int(&mut b, 0x20, 5, max);
            }
            b.extend(enc.encode(l));
            b
        }).collect();
        let start = join.index(blocks.len());
        let mut d = Decoder::joined(HpackLimits::default());
        let mut out = HeaderList::default();
        let mut seen: std::collections::HashMap<EntryId, (Vec<u8>, Option<Vec<u8>>)> = Default::default();
        // The encoder holds one entry per field at a time, so while a field's entry is unseen it
        // has one id.
        let mut id_of: std::collections::HashMap<(Vec<u8>, Vec<u8>), EntryId> = Default::default();
        for (block, list) in blocks.iter().zip(&lists).skip(start) {
            d.decode(block, &mut out).expect("valid block");
            for (f, (n, v)) in out.iter().zip(list) {
                let Text::Unknown(id) = f.name else { continue };
                let value = matches!(f.value, Text::Unknown(_)).then(|| v.clone());
                if value.is_some() {
                    let first = *id_of.entry((n.clone(), v.clone())).or_insert(id);
                    prop_assert_eq!(first, id, "one entry, two ids");
                }
                match seen.get(&id) {
                    Some((n0, v0)) => {
                        prop_assert_eq!(n0, n, "entry {} changed its name", id);
                        if let (Some(v0), Some(v)) = (v0, &value) {
                            prop_assert_eq!(v0, v, "entry {} changed its value", id);
                        }
                    }
                    None => {
                        seen.insert(id, (n.clone(), value));
                    }
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(blocks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..20)) {
        let mut d = Decoder::new(HpackLimits { max_table_size: 4096, max_string_len: 256, max_list_size: 1024 });
        let mut out = HeaderList::default();
        for b in &blocks {
            let _ = d.decode(b, &mut out);
            prop_assert!(d.size <= d.max_size);
        }
    }
}

/// A gRPC-like connection joined mid-way: the same paths and statuses come back by index while
/// new values (call ids) push entries in front of them and the oldest get evicted. Each unseen
/// entry keeps its id although its index grows with every insertion.
#[test]
fn unseen_entries_keep_their_id_through_insertions_and_evictions() {
    let paths = ["/a.S/Get", "/a.S/Put", "/a.S/List"];
    let lists: Vec<Vec<(Vec<u8>, Vec<u8>)>> = (0..400)
        .map(|i: usize| {
            vec![
                (b":path".to_vec(), paths[i % 3].as_bytes().to_vec()),
                (b"content-type".to_vec(), b"application/grpc".to_vec()),
                (b"x-call-id".to_vec(), format!("{i:08}").into_bytes()),
            ]
        })
        .collect();
    let mut enc = IndexingEncoder::new(4096);
    let blocks: Vec<Vec<u8>> = lists.iter().map(|l| enc.encode(l)).collect();
    // Join after the paths were indexed, before they are evicted.
    let mut d = Decoder::joined(HpackLimits::default());
    let mut out = HeaderList::default();
    let mut ids: std::collections::HashMap<EntryId, Vec<u8>> = Default::default();
    let mut unknown_uses = 0;
    for (block, list) in blocks.iter().zip(&lists).skip(10).take(40) {
        d.decode(block, &mut out).expect("valid");
        let path = out.iter().next().expect("field");
        if let Text::Unknown(id) = path.value {
            unknown_uses += 1;
            let truth = &list[0].1;
            assert_eq!(
                ids.entry(id).or_insert_with(|| truth.clone()),
                truth,
                "{id}"
            );
        }
    }
    assert!(
        unknown_uses >= 30,
        "the paths came by index: {unknown_uses}"
    );
    assert_eq!(ids.len(), 3, "one id per path: {ids:?}");
}

/// The encoder's table is larger than the default, set before the capture: a decoder that
/// joins later must not assume 4096 (it would drop entries the encoder still has, and the unseen
/// entries' ids would shift).
#[test]
fn unseen_ids_hold_when_the_table_size_was_set_before_the_capture() {
    let paths = ["/a.S/Get", "/a.S/Put"];
    let mut enc = IndexingEncoder::new(16_384);
    let mut blocks = Vec::new();
    let mut truth = Vec::new();
    for i in 0..300usize {
        let list = vec![
            (b":path".to_vec(), paths[i % 2].as_bytes().to_vec()),
            (b"x-call-id".to_vec(), format!("{i:032}").into_bytes()),
        ];
        let mut b = Vec::new();
        if i == 0 {
            IndexingEncoder::int(&mut b, 0x20, 5, 16_384);
        }
        b.extend(enc.encode(&list));
        blocks.push(b);
        truth.push(list[0].1.clone());
    }
    let mut d = Decoder::joined(HpackLimits::default());
    let mut out = HeaderList::default();
    let mut ids: std::collections::HashMap<EntryId, Vec<u8>> = Default::default();
    let mut unknown = 0;
    // 250 call ids of 32 digits push over 16 KiB of new entries in front of the paths.
    for (block, path) in blocks.iter().zip(&truth).skip(20) {
        d.decode(block, &mut out).expect("valid");
        if let Some(Text::Unknown(id)) = out.iter().next().map(|f| f.value) {
            unknown += 1;
            assert_eq!(ids.entry(id).or_insert_with(|| path.clone()), path, "{id}");
        }
    }
    assert!(unknown > 100, "{unknown}");
    // One entry per path lived through the whole stretch: one id each.
    assert_eq!(ids.len(), 2, "{ids:?}");
}

/// Each field says how it was represented: RFC 7541 C.4's three requests (Huffman), then a
/// joined decoder's reference past the entries it saw, a never-indexed literal and a size update.
#[test]
fn representations_are_reported() {
    let c4 = [
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ];
    let mut d = Decoder::new(HpackLimits::default());
    let mut list = HeaderList::default();
    let reps: Vec<Vec<Rep>> = c4
        .iter()
        .map(|b| {
            d.decode(&hex(b), &mut list).expect("decode");
            list.iter().map(|f| f.rep).collect()
        })
        .collect();
    let st = |index| Rep::Indexed {
        index,
        table: Indexed::Static,
    };
    let dynamic = |index| Rep::Indexed {
        index,
        table: Indexed::Dynamic,
    };
    let incremental = |name| Rep::Literal {
        name,
        indexing: Indexing::Incremental,
        huffman: true,
    };
    assert_eq!(
        reps[0],
        vec![st(2), st(6), st(4), incremental(Some((1, Indexed::Static)))]
    );
    assert_eq!(
        reps[1],
        vec![
            st(2),
            st(6),
            st(4),
            dynamic(62),
            incremental(Some((24, Indexed::Static)))
        ]
    );
    assert_eq!(
        reps[2],
        vec![st(2), st(7), st(5), dynamic(63), incremental(None)]
    );
    // Joined: index 62 is an entry from before the capture; a never-indexed literal with a
    // literal name, not Huffman-coded; a size update.
    let mut j = Decoder::joined(HpackLimits::default());
    j.decode(&hex("3fe1 1f be 10 01 61 01 62"), &mut list)
        .expect("decode");
    assert_eq!(list.size_update, Some(4096));
    let reps: Vec<Rep> = list.iter().map(|f| f.rep).collect();
    assert_eq!(
        reps,
        vec![
            Rep::Indexed {
                index: 62,
                table: Indexed::Unknown
            },
            Rep::Literal {
                name: None,
                indexing: Indexing::Never,
                huffman: false
            }
        ]
    );
    assert!(list.iter().nth(1).expect("field").sensitive);
}
