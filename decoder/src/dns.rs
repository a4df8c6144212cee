//! Names learned passively from DNS answers in the capture (RFC 1035): the addresses of A and
//! AAAA records, each with the name the question asked (what a client resolved to reach it,
//! through any CNAMEs). Bounded: a message of at most 64 KiB, names of at most 255 bytes, at
//! most 64 compression jumps per name and 64 answers per message. Hostile messages are
//! refused, never followed far.

use std::net::IpAddr;

/// Answers read of one message at most.
const MAX_ANSWERS: usize = 64;
/// Compression pointers followed per name.
const MAX_JUMPS: usize = 64;

/// Reads a name at `at`; returns it (lower case, dotted) and where the record goes on.
fn name(msg: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut next = None;
    let mut jumps = 0;
    loop {
        let len = *msg.get(at)?;
        match len & 0xc0 {
            0xc0 => {
                let ptr = usize::from(u16::from_be_bytes([len & 0x3f, *msg.get(at + 1)?]));
                next.get_or_insert(at + 2);
                jumps += 1;
                if jumps > MAX_JUMPS || ptr >= msg.len() {
                    return None;
                }
                at = ptr;
            }
            0 if len == 0 => {
                return Some((out, next.unwrap_or(at + 1)));
            }
            0 => {
                let label = msg.get(at + 1..at + 1 + usize::from(len))?;
                if !out.is_empty() {
                    out.push('.');
                }
                for &b in label {
                    out.push(char::from(b.to_ascii_lowercase()));
                }
                if out.len() > 255 {
                    return None;
                }
                at += 1 + usize::from(len);
            }
            _ => return None,
        }
    }
}

fn u16_at(msg: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]))
}

/// The addresses a DNS response (`msg`, without TCP's length prefix) answered, each with the
/// question's name, into `out`. A query, an error response or a malformed message adds none.
pub fn answers(msg: &[u8], out: &mut Vec<(IpAddr, String)>) {
    let _ = read(msg, out);
}

fn read(msg: &[u8], out: &mut Vec<(IpAddr, String)>) -> Option<()> {
    if msg.len() < 12 || msg.len() > 65_535 {
        return None;
    }
    let flags = u16_at(msg, 2)?;
    // A response (QR), no error (RCODE 0).
    if flags & 0x8000 == 0 || flags & 0x000f != 0 {
        return None;
    }
    let (qd, an) = (u16_at(msg, 4)?, u16_at(msg, 6)?);
    if qd == 0 {
        return None;
    }
    let mut at = 12;
    let mut asked = None;
    for _ in 0..qd {
        let (n, next) = name(msg, at)?;
        asked.get_or_insert(n);
        at = next + 4;
    }
    let asked = asked?;
    for _ in 0..usize::from(an).min(MAX_ANSWERS) {
        let (_, next) = name(msg, at)?;
        let ty = u16_at(msg, next)?;
        let class = u16_at(msg, next + 2)?;
        let len = usize::from(u16_at(msg, next + 8)?);
        let data = msg.get(next + 10..next + 10 + len)?;
        at = next + 10 + len;
        if class != 1 {
            continue;
        }
        let addr = match (ty, data.len()) {
            (1, 4) => IpAddr::from(<[u8; 4]>::try_from(data).ok()?),
            (28, 16) => IpAddr::from(<[u8; 16]>::try_from(data).ok()?),
            _ => continue,
        };
        out.push((addr, asked.clone()));
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response for `q` with a CNAME to `target` and an A record of it (compressed).
    fn response(q: &str, a: [u8; 4]) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
        for l in q.split('.') {
            m.push(u8::try_from(l.len()).expect("label"));
            m.extend_from_slice(l.as_bytes());
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        // CNAME: owner = the question (pointer 12), target "svc.local".
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 11]);
        let cname_at = m.len();
        m.extend_from_slice(&[3, b's', b'v', b'c', 5, b'l', b'o', b'c', b'a', b'l', 0]);
        // A: owner = the CNAME target (pointer).
        m.extend_from_slice(&[
            0xc0,
            u8::try_from(cname_at).expect("small"),
            0,
            1,
            0,
            1,
            0,
            0,
            0,
            60,
            0,
            4,
        ]);
        m.extend_from_slice(&a);
        m
    }

    #[test]
    fn an_answer_names_its_address_by_the_question() {
        let mut out = Vec::new();
        answers(&response("Echo.Example.com", [10, 0, 0, 7]), &mut out);
        assert_eq!(
            out,
            [(IpAddr::from([10, 0, 0, 7]), "echo.example.com".to_owned())]
        );
    }

    #[test]
    fn queries_errors_and_hostile_messages_add_nothing() {
        let mut out = Vec::new();
        let mut q = response("a.b", [1, 2, 3, 4]);
        q[2] = 0x01; // a query
        answers(&q, &mut out);
        let mut e = response("a.b", [1, 2, 3, 4]);
        e[3] = 0x83; // NXDOMAIN
        answers(&e, &mut out);
        // A pointer to itself.
        let mut lp = vec![0, 0, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 0xc0, 12];
        lp.extend_from_slice(&[0, 1, 0, 1]);
        answers(&lp, &mut out);
        for cut in 0..40 {
            let m = response("a.b", [1, 2, 3, 4]);
            answers(&m[..cut.min(m.len())], &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
    }
}
