//! HPACK Huffman decoding (RFC 7541 section 5.2, Appendix B), table-driven: four bits of input
//! per lookup in a state machine built once from the code lengths.
//!
//! The code of Appendix B is canonical (codes ordered by length, then symbol), so the lengths
//! alone define it; a test checks every code against the RFC's table.

use std::sync::LazyLock;

/// Code length of each symbol (RFC 7541 Appendix B); index 256 is EOS.
const CODE_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, //
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, //
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, //
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, //
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, //
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, //
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, //
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, //
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, //
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, //
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, //
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, //
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, //
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, //
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, //
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, //
    30,
];

const EOS: u16 = 256;

/// Canonical codes from the lengths: `(code, length)` per symbol.
pub(crate) fn codes() -> [(u32, u8); 257] {
    let mut order: Vec<u16> = (0..=EOS).collect();
    order.sort_by_key(|&s| (CODE_LENGTHS[usize::from(s)], s));
    let mut out = [(0u32, 0u8); 257];
    let mut code = 0u32;
    let mut prev = CODE_LENGTHS[usize::from(order[0])];
    for (i, &s) in order.iter().enumerate() {
        let len = CODE_LENGTHS[usize::from(s)];
        if i > 0 {
            code = (code + 1) << (len - prev);
        }
        prev = len;
        out[usize::from(s)] = (code, len);
    }
    out
}

/// One transition: after feeding a nibble in some state.
#[derive(Debug, Clone, Copy, Default)]
struct Step {
    /// Next state (an internal node of the code tree; 0 is the root).
    next: u16,
    /// A symbol completed during this nibble (at most one: every code is 5 bits or longer).
    sym: Option<u8>,
    /// The nibble walked into EOS or past a leaf: invalid input.
    fail: bool,
    /// Ending input here is valid padding: at the root, or on a path of all 1 bits shorter
    /// than 8 (RFC 7541 section 5.2).
    accept: bool,
}

struct Table {
    steps: Vec<[Step; 16]>,
}

static TABLE: LazyLock<Table> = LazyLock::new(build);

/// Builds the code tree, then the nibble transitions of every internal node.
fn build() -> Table {
    // Tree of internal nodes: children[node][bit] = Child.
    #[derive(Clone, Copy)]
    enum Child {
        None,
        Node(u16),
        Leaf(u16),
    }
    let mut children: Vec<[Child; 2]> = vec![[Child::None; 2]];
    for (sym, (code, len)) in codes().iter().enumerate() {
        let mut node = 0usize;
        for i in (0..*len).rev() {
            let bit = usize::from((code >> i) & 1 == 1);
            if i == 0 {
                children[node][bit] = Child::Leaf(u16::try_from(sym).unwrap_or(EOS));
            } else {
                node = match children[node][bit] {
                    Child::Node(n) => usize::from(n),
                    _ => {
                        children.push([Child::None; 2]);
                        let n = children.len() - 1;
                        children[node][bit] = Child::Node(u16::try_from(n).unwrap_or(0));
                        n
                    }
                };
            }
        }
    }
    // Depth of all-ones paths: a node reached from the root by only 1 bits, fewer than 8.
    let mut ones_depth = vec![None; children.len()];
    let mut n = 0usize;
    for depth in 0..8 {
        ones_depth[n] = Some(depth);
        match children[n][1] {
            Child::Node(c) => n = usize::from(c),
            _ => break,
        }
    }
    let steps = (0..children.len())
        .map(|state| {
            let mut row = [Step::default(); 16];
            for (nibble, step) in row.iter_mut().enumerate() {
                let mut node = state;
                let mut sym = None;
                let mut fail = false;
                for i in (0..4).rev() {
                    let bit = (nibble >> i) & 1;
                    match children[node][bit] {
                        Child::Node(c) => node = usize::from(c),
                        Child::Leaf(s) if s != EOS && sym.is_none() => {
                            sym = u8::try_from(s).ok();
                            node = 0;
                        }
                        _ => {
                            fail = true;
                            break;
                        }
                    }
                }
                *step = Step {
                    next: u16::try_from(node).unwrap_or(0),
                    sym,
                    fail,
                    accept: !fail && ones_depth[node].is_some(),
                };
            }
            row
        })
        .collect();
    Table { steps }
}

/// Why a Huffman string did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HuffmanError {
    /// The bits spell EOS or no code at all.
    InvalidCode,
    /// The last byte's padding is not a prefix of EOS, or is 8 bits or longer.
    InvalidPadding,
    /// The decoded string would exceed the limit.
    TooLong,
}

/// Appends the decoding of `src` to `out`, refusing to grow `out` past `max_len`.
pub fn decode(src: &[u8], out: &mut Vec<u8>, max_len: usize) -> Result<(), HuffmanError> {
    let table = &*TABLE;
    let mut state = 0usize;
    let mut accept = true;
    for &byte in src {
        for nibble in [byte >> 4, byte & 0x0f] {
            let step = table.steps[state][usize::from(nibble)];
            if step.fail {
                return Err(HuffmanError::InvalidCode);
            }
            if let Some(s) = step.sym {
                if out.len() >= max_len {
                    return Err(HuffmanError::TooLong);
                }
                out.push(s);
            }
            state = usize::from(step.next);
            accept = step.accept;
        }
    }
    if accept {
        Ok(())
    } else {
        Err(HuffmanError::InvalidPadding)
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // the encoder keeps the low bits on purpose
mod tests {
    use super::*;

    /// The "code as hex" column of RFC 7541 Appendix B, symbols 0..=256.
    const RFC_CODES: [u32; 257] = [
        0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7,
        0xfffffe8, 0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec,
        0xfffffed, 0xfffffee, 0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3,
        0xffffff4, 0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb,
        0x14, 0x3f8, 0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa, 0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa,
        0x16, 0x17, 0x18, 0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x5c, 0xfb,
        0x7ffc, 0x20, 0xffb, 0x3fc, 0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62, 0x63, 0x64,
        0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, 0xfc,
        0x73, 0xfd, 0x1ffb, 0x7fff0, 0x1ffc, 0x3ffc, 0x22, 0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25,
        0x26, 0x27, 0x6, 0x74, 0x75, 0x28, 0x29, 0x2a, 0x7, 0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77,
        0x78, 0x79, 0x7a, 0x7b, 0x7ffe, 0x7fc, 0x3ffd, 0x1ffd, 0xffffffc, 0xfffe6, 0x3fffd2,
        0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4, 0x3fffd5, 0x7fffd9, 0x3fffd6, 0x7fffda, 0x7fffdb,
        0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb, 0x7fffdf, 0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0,
        0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3, 0x7fffe4, 0x1fffdc, 0x3fffd8, 0x7fffe5, 0x3fffd9,
        0x7fffe6, 0x7fffe7, 0xffffef, 0x3fffda, 0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8,
        0x7fffe9, 0x1fffde, 0x7fffea, 0x3fffdd, 0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb,
        0x7fffec, 0x1fffe0, 0x1fffe1, 0x3fffe0, 0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef,
        0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4, 0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1, 0x3ffffe0,
        0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7, 0x7ffff2, 0x3fffe8, 0x1ffffec, 0x3ffffe2, 0x3ffffe3,
        0x3ffffe4, 0x7ffffde, 0x7ffffdf, 0x3ffffe5, 0xfffff1, 0x1ffffed, 0x7fff2, 0x1fffe3,
        0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7, 0x7ffffe2, 0xfffff2, 0x1fffe4, 0x1fffe5,
        0x3ffffe8, 0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4, 0x7ffffe5, 0xfffec, 0xfffff3,
        0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7, 0x1fffe8, 0x7ffff3, 0x3fffea, 0x3fffeb, 0x1ffffee,
        0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4, 0x3ffffeb, 0x7ffffe6, 0x3ffffec,
        0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea, 0x7ffffeb, 0xffffffe, 0x7ffffec,
        0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee, 0x3fffffff,
    ];

    /// Bit-by-bit encoder, for round trips.
    pub(crate) fn encode(s: &[u8]) -> Vec<u8> {
        let codes = codes();
        let (mut acc, mut bits, mut out) = (0u64, 0u32, Vec::new());
        for &b in s {
            let (code, len) = codes[usize::from(b)];
            acc = (acc << len) | u64::from(code);
            bits += u32::from(len);
            while bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        if bits > 0 {
            out.push(((acc << (8 - bits)) as u8) | (0xff >> bits));
        }
        out
    }

    fn dec(b: &[u8]) -> Result<Vec<u8>, HuffmanError> {
        let mut out = Vec::new();
        decode(b, &mut out, 1 << 20).map(|()| out)
    }

    #[test]
    fn canonical_codes_equal_the_rfc_table() {
        let ours = codes();
        for s in 0..257 {
            assert_eq!(ours[s].0, RFC_CODES[s], "symbol {s}");
        }
    }

    #[test]
    fn rfc7541_appendix_c_strings() {
        let cases: [(&str, &[u8]); 6] = [
            (
                "www.example.com",
                &[
                    0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
                ],
            ),
            ("no-cache", &[0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf]),
            (
                "custom-key",
                &[0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xa9, 0x7d, 0x7f],
            ),
            (
                "custom-value",
                &[0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xb8, 0xe8, 0xb4, 0xbf],
            ),
            ("302", &[0x64, 0x02]),
            ("private", &[0xae, 0xc3, 0x77, 0x1a, 0x4b]),
        ];
        for (text, bytes) in cases {
            assert_eq!(dec(bytes).expect(text), text.as_bytes());
            assert_eq!(encode(text.as_bytes()), bytes);
        }
    }

    #[test]
    fn every_byte_round_trips_and_bad_padding_is_refused() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(dec(&encode(&all)).expect("all bytes"), all);
        // 0x00 alone: "000000000" would need more bits; as a whole byte it is '0' then
        // padding "000", which is not all ones.
        assert_eq!(dec(&[0x00]), Err(HuffmanError::InvalidPadding));
        // Eight or more bits of padding.
        assert_eq!(dec(&[0xff]), Err(HuffmanError::InvalidPadding));
        // EOS spelled out (30 ones) is an error.
        assert_eq!(
            dec(&[0xff, 0xff, 0xff, 0xff]),
            Err(HuffmanError::InvalidCode)
        );
        let mut out = Vec::new();
        assert_eq!(
            decode(&encode(b"abcdef"), &mut out, 3),
            Err(HuffmanError::TooLong)
        );
    }
}
