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
                Text::Unknown(i) => format!("<unknown {i}>"),
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
