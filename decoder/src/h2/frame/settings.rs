//! SETTINGS (RFC 9113 section 6.5): parameters the sender announces for what it receives.

use super::head::{Flags, Head, SettingId};
use crate::h2::error::Error;

/// A SETTINGS frame, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings<'a> {
    /// ACK: acknowledges the peer's settings (and carries none).
    pub ack: bool,
    raw: &'a [u8],
}

impl<'a> Settings<'a> {
    /// Reads the payload: a multiple of 6 bytes, empty with ACK.
    pub fn load(head: &Head, p: &'a [u8]) -> Result<Settings<'a>, Error> {
        let ack = head.has(Flags::ACK);
        if ack {
            head.check_len(p.len(), 0, false)?;
        } else if !p.len().is_multiple_of(6) {
            head.check_len(p.len(), p.len() / 6 * 6 + 6, false)?;
        }
        Ok(Settings { ack, raw: p })
    }

    /// The parameters of a SETTINGS payload that came without a frame (the `HTTP2-Settings`
    /// of an h2c upgrade, RFC 7540 3.2.1); a trailing partial parameter is ignored.
    pub fn from_payload(p: &'a [u8]) -> Settings<'a> {
        Settings {
            ack: false,
            raw: &p[..p.len() / 6 * 6],
        }
    }

    /// The parameters in order (unknown ids too).
    pub fn iter(&self) -> impl Iterator<Item = (SettingId, u32)> + 'a {
        self.raw.chunks_exact(6).map(|s| {
            (
                SettingId(u16::from_be_bytes([s[0], s[1]])),
                u32::from_be_bytes([s[2], s[3], s[4], s[5]]),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2::frame::kind::Kind;

    #[test]
    fn parameters_and_bad_lengths() {
        let h = |flags, len| Head {
            len,
            kind: Kind::SETTINGS,
            flags: Flags(flags),
            stream: 0,
        };
        let p = [0, 5, 0, 0, 0x40, 0, 0xfe, 0x03, 0, 0, 0, 1];
        let s = Settings::load(&h(0, 12), &p).expect("loads");
        let v: Vec<_> = s.iter().collect();
        assert_eq!(
            v,
            [(SettingId::MAX_FRAME_SIZE, 0x4000), (SettingId(0xfe03), 1)]
        );
        assert!(Settings::load(&h(0, 7), &p[..7]).is_err());
        assert!(Settings::load(&h(1, 6), &p[..6]).is_err());
        assert!(Settings::load(&h(1, 0), &[]).expect("ack").ack);
    }
}
