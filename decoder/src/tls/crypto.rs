//! Cipher suites, key schedules and record protection (RFC 8446 sections 5.2-5.3 and 7,
//! RFC 5246 sections 5 and 6.3, RFC 5288, RFC 7905). The ciphers and hashes are RustCrypto's
//! (aes-gcm, chacha20poly1305, hkdf, hmac, sha2); nothing cryptographic is written here but
//! the nonce and additional-data layouts the RFCs define.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::ChaCha20Poly1305;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384};

use super::keylog::Secret;

/// AEAD tag length of every supported suite.
pub const TAG: usize = 16;

/// The AEAD of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aead {
    /// AES-128-GCM.
    Aes128Gcm,
    /// AES-256-GCM.
    Aes256Gcm,
    /// ChaCha20-Poly1305.
    ChaCha20Poly1305,
}

impl Aead {
    fn key_len(self) -> usize {
        match self {
            Aead::Aes128Gcm => 16,
            Aead::Aes256Gcm | Aead::ChaCha20Poly1305 => 32,
        }
    }
}

/// A cipher suite we can decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    /// Its IANA number.
    pub id: u16,
    /// The record protection.
    pub aead: Aead,
    /// The hash of the key schedule is SHA-384 (else SHA-256).
    pub sha384: bool,
    /// A TLS 1.3 suite (else TLS 1.2).
    pub tls13: bool,
}

/// The suite numbered `id`, if it is one we decrypt: the TLS 1.3 suites and the TLS 1.2 AEAD
/// suites (GCM and ChaCha20-Poly1305, any key exchange: the key log gives the master secret).
/// CBC, CCM and export suites are not supported.
pub fn suite(id: u16) -> Option<Suite> {
    let (aead, sha384, tls13) = match id {
        0x1301 => (Aead::Aes128Gcm, false, true),
        0x1302 => (Aead::Aes256Gcm, true, true),
        0x1303 => (Aead::ChaCha20Poly1305, false, true),
        // RSA, DHE_RSA, ECDHE_ECDSA, ECDHE_RSA, PSK variants with AES-GCM.
        0x009c | 0x009e | 0x00a2 | 0x00a8 | 0xc02b | 0xc02d | 0xc02f | 0xc031 => {
            (Aead::Aes128Gcm, false, false)
        }
        0x009d | 0x009f | 0x00a3 | 0x00a9 | 0xc02c | 0xc02e | 0xc030 | 0xc032 => {
            (Aead::Aes256Gcm, true, false)
        }
        0xcca8..=0xccae => (Aead::ChaCha20Poly1305, false, false),
        _ => return None,
    };
    Some(Suite {
        id,
        aead,
        sha384,
        tls13,
    })
}

/// The standard name of a suite (the supported ones and the common others), for reports.
pub fn suite_name(id: u16) -> Option<&'static str> {
    Some(match id {
        0x1301 => "TLS_AES_128_GCM_SHA256",
        0x1302 => "TLS_AES_256_GCM_SHA384",
        0x1303 => "TLS_CHACHA20_POLY1305_SHA256",
        0x1304 => "TLS_AES_128_CCM_SHA256",
        0x1305 => "TLS_AES_128_CCM_8_SHA256",
        0x009c => "TLS_RSA_WITH_AES_128_GCM_SHA256",
        0x009d => "TLS_RSA_WITH_AES_256_GCM_SHA384",
        0x009e => "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
        0x009f => "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
        0xc02b => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        0xc02c => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        0xc02f => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        0xc030 => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        0xcca8 => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0xcca9 => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        0xccaa => "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0x002f => "TLS_RSA_WITH_AES_128_CBC_SHA",
        0x0035 => "TLS_RSA_WITH_AES_256_CBC_SHA",
        0xc013 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        0xc014 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        0xc009 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        0xc00a => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        0xc027 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
        0xc028 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
        _ => return None,
    })
}

/// HKDF-Expand-Label (RFC 8446 7.1) with an empty context.
fn expand_label(sha384: bool, secret: &[u8], label: &str, out: &mut [u8]) -> bool {
    let mut info = [0u8; 2 + 1 + 32 + 1];
    let full = 6 + label.len();
    if full > 32 {
        return false;
    }
    let len = u16::try_from(out.len()).unwrap_or(u16::MAX);
    info[..2].copy_from_slice(&len.to_be_bytes());
    info[2] = u8::try_from(full).unwrap_or(0);
    info[3..9].copy_from_slice(b"tls13 ");
    info[9..9 + label.len()].copy_from_slice(label.as_bytes());
    info[9 + label.len()] = 0;
    let info = &info[..10 + label.len()];
    if sha384 {
        match hkdf::Hkdf::<Sha384>::from_prk(secret) {
            Ok(h) => h.expand(info, out).is_ok(),
            Err(_) => false,
        }
    } else {
        match hkdf::Hkdf::<Sha256>::from_prk(secret) {
            Ok(h) => h.expand(info, out).is_ok(),
            Err(_) => false,
        }
    }
}

/// The TLS 1.2 PRF (RFC 5246 5): P_SHA256 or P_SHA384 of `secret` over `label || seed`.
fn prf12(sha384: bool, secret: &[u8], label: &[u8], seed: &[&[u8]], out: &mut [u8]) {
    fn p_hash<M: Mac + KeyInit + Clone>(
        secret: &[u8],
        label: &[u8],
        seed: &[&[u8]],
        out: &mut [u8],
    ) {
        let Ok(base) = <M as Mac>::new_from_slice(secret) else {
            return;
        };
        // A(1) = HMAC(secret, label || seed)
        let mut m = base.clone();
        m.update(label);
        for s in seed {
            m.update(s);
        }
        let mut a = m.finalize().into_bytes();
        let mut done = 0;
        while done < out.len() {
            let mut m = base.clone();
            m.update(&a);
            m.update(label);
            for s in seed {
                m.update(s);
            }
            let block = m.finalize().into_bytes();
            let n = (out.len() - done).min(block.len());
            out[done..done + n].copy_from_slice(&block[..n]);
            done += n;
            let mut m = base.clone();
            m.update(&a);
            a = m.finalize().into_bytes();
        }
    }
    if sha384 {
        p_hash::<Hmac<Sha384>>(secret, label, seed, out)
    } else {
        p_hash::<Hmac<Sha256>>(secret, label, seed, out)
    }
}

enum Key {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

impl Key {
    fn new(aead: Aead, key: &[u8]) -> Option<Key> {
        Some(match aead {
            Aead::Aes128Gcm => Key::Aes128(Box::new(Aes128Gcm::new_from_slice(key).ok()?)),
            Aead::Aes256Gcm => Key::Aes256(Box::new(Aes256Gcm::new_from_slice(key).ok()?)),
            Aead::ChaCha20Poly1305 => {
                Key::ChaCha(Box::new(ChaCha20Poly1305::new_from_slice(key).ok()?))
            }
        })
    }

    fn open(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
        let nonce = aes_gcm::Nonce::from_slice(nonce);
        let tag = aes_gcm::Tag::from_slice(tag);
        match self {
            Key::Aes128(k) => k.decrypt_in_place_detached(nonce, aad, buf, tag).is_ok(),
            Key::Aes256(k) => k.decrypt_in_place_detached(nonce, aad, buf, tag).is_ok(),
            Key::ChaCha(k) => k.decrypt_in_place_detached(nonce, aad, buf, tag).is_ok(),
        }
    }
}

/// Record protection of one direction at one epoch: the key, the IV and the sequence number.
pub struct RecordKeys {
    key: Key,
    iv: [u8; 12],
    suite: Suite,
    /// The TLS 1.3 traffic secret these keys came from (for KeyUpdate).
    secret: Option<Secret>,
    /// Sequence number of the next record.
    pub seq: u64,
}

impl std::fmt::Debug for RecordKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecordKeys({:#06x}, seq {})", self.suite.id, self.seq)
    }
}

/// A record opened: its content type and where its plaintext is in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// Content type (TLS 1.3: the inner type).
    pub content_type: u8,
    /// Plaintext start in the record's fragment.
    pub start: usize,
    /// Plaintext end.
    pub end: usize,
}

impl RecordKeys {
    /// TLS 1.3 keys from a traffic secret.
    pub fn tls13(suite: Suite, secret: Secret) -> Option<RecordKeys> {
        let mut key = [0u8; 32];
        let key = &mut key[..suite.aead.key_len()];
        let mut iv = [0u8; 12];
        if !expand_label(suite.sha384, secret.bytes(), "key", key)
            || !expand_label(suite.sha384, secret.bytes(), "iv", &mut iv)
        {
            return None;
        }
        Some(RecordKeys {
            key: Key::new(suite.aead, key)?,
            iv,
            suite,
            secret: Some(secret),
            seq: 0,
        })
    }

    /// The keys after a KeyUpdate (RFC 8446 7.2): the next traffic secret, sequence 0.
    pub fn updated(&self) -> Option<RecordKeys> {
        let secret = self.secret?;
        let mut next = [0u8; 48];
        let n = secret.bytes().len();
        if !expand_label(
            self.suite.sha384,
            secret.bytes(),
            "traffic upd",
            &mut next[..n],
        ) {
            return None;
        }
        RecordKeys::tls13(self.suite, Secret::new(&next[..n]))
    }

    /// TLS 1.2 keys of both directions (client, server) from the master secret and the two
    /// hello randoms.
    pub fn tls12(
        suite: Suite,
        master: &Secret,
        client_random: &[u8; 32],
        server_random: &[u8; 32],
    ) -> Option<(RecordKeys, RecordKeys)> {
        let key_len = suite.aead.key_len();
        let iv_len = match suite.aead {
            Aead::ChaCha20Poly1305 => 12,
            _ => 4,
        };
        let mut block = [0u8; 2 * 32 + 2 * 12];
        let block = &mut block[..2 * (key_len + iv_len)];
        prf12(
            suite.sha384,
            master.bytes(),
            b"key expansion",
            &[server_random, client_random],
            block,
        );
        let (ck, rest) = block.split_at(key_len);
        let (sk, rest) = rest.split_at(key_len);
        let (civ, siv) = rest.split_at(iv_len);
        let keys = |k: &[u8], iv: &[u8]| {
            let mut full = [0u8; 12];
            full[..iv.len()].copy_from_slice(iv);
            Some(RecordKeys {
                key: Key::new(suite.aead, k)?,
                iv: full,
                suite,
                secret: None,
                seq: 0,
            })
        };
        Some((keys(ck, civ)?, keys(sk, siv)?))
    }

    fn xor_nonce(&self, seq: u64) -> [u8; 12] {
        let mut n = self.iv;
        for (a, b) in n[4..].iter_mut().zip(seq.to_be_bytes()) {
            *a ^= b;
        }
        n
    }

    /// Opens one record (`header` its 5 bytes, `frag` its fragment, decrypted in place) with
    /// sequence number `seq`. `None`: it did not authenticate (the fragment is then garbage).
    pub fn open_at(&self, seq: u64, header: &[u8; 5], frag: &mut [u8]) -> Option<Opened> {
        if frag.len() < TAG {
            return None;
        }
        if self.suite.tls13 {
            let (body, tag) = frag.split_at_mut(frag.len() - TAG);
            if !self.key.open(&self.xor_nonce(seq), header, body, tag) {
                return None;
            }
            // TLSInnerPlaintext: content, the type, zero padding.
            let end = body.iter().rposition(|&b| b != 0)?;
            return Some(Opened {
                content_type: body[end],
                start: 0,
                end,
            });
        }
        let explicit = match self.suite.aead {
            Aead::ChaCha20Poly1305 => 0,
            _ => 8,
        };
        if frag.len() < explicit + TAG {
            return None;
        }
        let nonce = if explicit == 8 {
            let mut n = self.iv;
            n[4..].copy_from_slice(&frag[..8]);
            n
        } else {
            self.xor_nonce(seq)
        };
        let plain_len = frag.len() - explicit - TAG;
        let mut aad = [0u8; 13];
        aad[..8].copy_from_slice(&seq.to_be_bytes());
        aad[8..11].copy_from_slice(&header[..3]);
        aad[11..].copy_from_slice(&u16::try_from(plain_len).ok()?.to_be_bytes());
        let (body, tag) = frag[explicit..].split_at_mut(plain_len);
        if !self.key.open(&nonce, &aad, body, tag) {
            return None;
        }
        Some(Opened {
            content_type: header[0],
            start: explicit,
            end: explicit + plain_len,
        })
    }

    /// The TLS 1.2 GCM explicit nonce of a record, which most stacks set to the sequence
    /// number: the first guess after a gap.
    pub fn explicit_nonce(&self, frag: &[u8]) -> Option<u64> {
        if self.suite.tls13 || self.suite.aead == Aead::ChaCha20Poly1305 || frag.len() < 8 {
            return None;
        }
        Some(u64::from_be_bytes(frag[..8].try_into().ok()?))
    }

    /// The suite.
    pub fn suite(&self) -> Suite {
        self.suite
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    // RFC 8448 section 3 (simple 1-RTT handshake): the server handshake traffic secret and
    // the key and IV the RFC derives from it.
    #[test]
    fn tls13_keys_are_those_of_rfc_8448() {
        let secret = unhex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38");
        let k =
            RecordKeys::tls13(suite(0x1301).expect("suite"), Secret::new(&secret)).expect("keys");
        assert_eq!(k.iv.to_vec(), unhex("5d313eb2671276ee13000b30"));
        // The server's first encrypted record of RFC 8448 (EncryptedExtensions .. Finished)
        // is long; its last bytes are the tag. A record under this key with a flipped bit
        // must not open.
        let header = [23, 3, 3, 0, 20];
        let mut frag = [0u8; 20];
        assert!(k.open_at(0, &header, &mut frag).is_none());
    }

    #[test]
    fn tls12_prf_matches_a_known_vector() {
        // The widely used P_SHA256 test vector (from the IETF TLS list, as in many TLS test
        // suites): secret, seed and label "test label", 100 bytes of output.
        let secret = unhex("9bbe436ba940f017b17652849a71db35");
        let seed = unhex("a0ba9f936cda311827a6f796ffd5198c");
        let mut out = [0u8; 100];
        prf12(false, &secret, b"test label", &[&seed], &mut out);
        assert_eq!(
            out.to_vec(),
            unhex(
                "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff70187347b66"
            )
        );
    }
}
