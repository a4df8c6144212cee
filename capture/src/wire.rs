//! Link, IP and TCP headers as views over packet bytes.
//!
//! Every parser checks a length before it reads, so no accessor panics on any input; errors say
//! which layer stopped, and whether the bytes were cut short (snaplen, truncation) or are invalid.
//! Checksums are not verified: captures taken on the sending host carry offloaded (unfilled)
//! checksums, and a tap that dropped those segments would lose whole streams.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// pcap/pcapng link-layer header types we decode (tcpdump.org/linktypes.html).
pub mod linktype {
    /// BSD loopback: 4-byte address family in the capturing host's byte order.
    pub const NULL: u32 = 0;
    /// Ethernet II, with 802.1Q / 802.1ad tags.
    pub const ETHERNET: u32 = 1;
    /// Raw IP on OpenBSD-derived systems (DLT_RAW numbering differs by platform).
    pub const RAW_14: u32 = 14;
    /// Raw IP on some BSDs.
    pub const RAW_12: u32 = 12;
    /// Raw IPv4 or IPv6, version from the first nibble.
    pub const RAW: u32 = 101;
    /// OpenBSD loopback: like NULL but the family is big-endian.
    pub const LOOP: u32 = 108;
    /// Linux cooked capture v1 (`tcpdump -i any` before libpcap 1.10).
    pub const LINUX_SLL: u32 = 113;
    /// Raw IPv4.
    pub const IPV4: u32 = 228;
    /// Raw IPv6.
    pub const IPV6: u32 = 229;
    /// Linux cooked capture v2 (`tcpdump -i any` with libpcap >= 1.10).
    pub const LINUX_SLL2: u32 = 276;
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
/// QinQ nests two tags; more than this many is treated as malformed.
const MAX_VLAN_TAGS: usize = 4;

/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;

/// A UDP datagram's ports and payload (RFC 768), as far as it was captured; `None` when the
/// header is cut.
pub fn parse_udp(data: &[u8]) -> Option<(u16, u16, &[u8])> {
    let h = data.get(..8)?;
    let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let end = len.clamp(8, data.len());
    Some((
        u16::from_be_bytes([h[0], h[1]]),
        u16::from_be_bytes([h[2], h[3]]),
        &data[8..end],
    ))
}

/// The protocol layer a parse error refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// The link-layer header (Ethernet, SLL, SLL2, NULL).
    Link,
    /// IPv4 header.
    Ipv4,
    /// IPv6 header or one of its extension headers.
    Ipv6,
    /// TCP header.
    Tcp,
}

/// Why a packet could not be turned into a TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The header at `layer` needs `needed` bytes but only `got` were captured.
    Truncated {
        /// Layer whose header was cut.
        layer: Layer,
        /// Bytes the header needs.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// A header field has a value no valid packet carries.
    Invalid {
        /// Layer of the bad field.
        layer: Layer,
        /// What is wrong.
        what: &'static str,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated { layer, needed, got } => {
                write!(
                    f,
                    "{layer:?} header truncated: needs {needed} bytes, {got} captured"
                )
            }
            WireError::Invalid { layer, what } => write!(f, "{layer:?}: {what}"),
        }
    }
}

impl std::error::Error for WireError {}

fn need(layer: Layer, data: &[u8], needed: usize) -> Result<(), WireError> {
    if data.len() < needed {
        Err(WireError::Truncated {
            layer,
            needed,
            got: data.len(),
        })
    } else {
        Ok(())
    }
}

// Callers check lengths with `need` first; these are the only indexing helpers.
fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}
fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
}

/// What the link layer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPayload<'a> {
    /// An IPv4 or IPv6 packet (version decided by the IP parser).
    Ip(&'a [u8]),
    /// Something that is not IP (ARP, LLDP, ...), with its ethertype when known.
    Other(u16),
}

/// Strips the link-layer header of one packet.
pub fn parse_link(linktype: u32, data: &[u8]) -> Result<LinkPayload<'_>, WireError> {
    match linktype {
        linktype::ETHERNET => parse_ethernet(data),
        linktype::LINUX_SLL => parse_sll(data),
        linktype::LINUX_SLL2 => parse_sll2(data),
        linktype::NULL => parse_null(data, false),
        linktype::LOOP => parse_null(data, true),
        linktype::RAW | linktype::RAW_12 | linktype::RAW_14 | linktype::IPV4 | linktype::IPV6 => {
            Ok(LinkPayload::Ip(data))
        }
        _ => Err(WireError::Invalid {
            layer: Layer::Link,
            what: "unsupported link type",
        }),
    }
}

fn by_ethertype(ethertype: u16, payload: &[u8]) -> LinkPayload<'_> {
    match ethertype {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => LinkPayload::Ip(payload),
        other => LinkPayload::Other(other),
    }
}

/// Ethernet II: dst(6) src(6) ethertype(2), then any number of 4-byte VLAN tags.
mod eth_field {
    pub(super) const ETHERTYPE: usize = 12;
    pub(super) const HEADER_LEN: usize = 14;
    pub(super) const TAG_LEN: usize = 4;
}

fn parse_ethernet(data: &[u8]) -> Result<LinkPayload<'_>, WireError> {
    need(Layer::Link, data, eth_field::HEADER_LEN)?;
    let mut ethertype = be16(data, eth_field::ETHERTYPE);
    let mut at = eth_field::HEADER_LEN;
    let mut tags = 0;
    while matches!(
        ethertype,
        ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD
    ) {
        tags += 1;
        if tags > MAX_VLAN_TAGS {
            return Err(WireError::Invalid {
                layer: Layer::Link,
                what: "too many VLAN tags",
            });
        }
        need(Layer::Link, data, at + eth_field::TAG_LEN)?;
        // A tag is TCI(2) then the next ethertype(2).
        ethertype = be16(data, at + 2);
        at += eth_field::TAG_LEN;
    }
    Ok(by_ethertype(ethertype, &data[at..]))
}

/// Linux cooked v1: packet type(2) ARPHRD(2) addr len(2) addr(8) protocol(2).
mod sll_field {
    pub(super) const PROTOCOL: usize = 14;
    pub(super) const HEADER_LEN: usize = 16;
}

fn parse_sll(data: &[u8]) -> Result<LinkPayload<'_>, WireError> {
    need(Layer::Link, data, sll_field::HEADER_LEN)?;
    Ok(by_ethertype(
        be16(data, sll_field::PROTOCOL),
        &data[sll_field::HEADER_LEN..],
    ))
}

/// Linux cooked v2: protocol(2) reserved(2) ifindex(4) ARPHRD(2) packet type(1) addr len(1)
/// addr(8).
mod sll2_field {
    pub(super) const PROTOCOL: usize = 0;
    pub(super) const HEADER_LEN: usize = 20;
}

fn parse_sll2(data: &[u8]) -> Result<LinkPayload<'_>, WireError> {
    need(Layer::Link, data, sll2_field::HEADER_LEN)?;
    Ok(by_ethertype(
        be16(data, sll2_field::PROTOCOL),
        &data[sll2_field::HEADER_LEN..],
    ))
}

/// NULL/LOOP: a 4-byte address family. NULL stores it in the capturing host's byte order, so a
/// value whose low bytes are zero was written big-endian.
fn parse_null(data: &[u8], always_big_endian: bool) -> Result<LinkPayload<'_>, WireError> {
    need(Layer::Link, data, 4)?;
    let raw = [data[0], data[1], data[2], data[3]];
    let family = if always_big_endian || (raw[0] == 0 && raw[1] == 0) {
        u32::from_be_bytes(raw)
    } else {
        u32::from_le_bytes(raw)
    };
    let payload = &data[4..];
    // AF_INET is 2 everywhere; AF_INET6 is 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS),
    // 10 (Linux).
    match family {
        2 | 10 | 24 | 28 | 30 => Ok(LinkPayload::Ip(payload)),
        _ => Ok(LinkPayload::Other(0)),
    }
}

/// Fragment identity and position of one IP fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragInfo {
    /// IPv4 identification or IPv6 fragment-header identification.
    pub id: u32,
    /// Offset of this fragment's payload in the datagram, in bytes.
    pub offset: u32,
    /// More fragments follow.
    pub more: bool,
}

/// The parts of an IPv4 or IPv6 packet the TCP layer needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPacket<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Upper-layer protocol after all extension headers.
    pub protocol: u8,
    /// Upper-layer bytes that were captured.
    pub payload: &'a [u8],
    /// Upper-layer bytes the IP header announces but the capture cut off (snaplen).
    pub missing: usize,
    /// Set when this packet is a fragment.
    pub frag: Option<FragInfo>,
}

/// IPv4 header offsets (RFC 791).
mod ipv4_field {
    pub(super) const TOTAL_LEN: usize = 2;
    pub(super) const IDENT: usize = 4;
    pub(super) const FLAGS_FRAG: usize = 6;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const SRC: usize = 12;
    pub(super) const DST: usize = 16;
    pub(super) const MIN_LEN: usize = 20;
}

/// IPv6 header offsets (RFC 8200).
mod ipv6_field {
    pub(super) const PAYLOAD_LEN: usize = 4;
    pub(super) const NEXT_HEADER: usize = 6;
    pub(super) const SRC: usize = 8;
    pub(super) const DST: usize = 24;
    pub(super) const HEADER_LEN: usize = 40;
}

/// Parses an IPv4 or IPv6 packet, walking IPv6 extension headers.
pub fn parse_ip(data: &[u8]) -> Result<IpPacket<'_>, WireError> {
    match data.first().map(|b| b >> 4) {
        Some(4) => parse_ipv4(data),
        Some(6) => parse_ipv6(data),
        Some(_) => Err(WireError::Invalid {
            layer: Layer::Ipv4,
            what: "IP version is neither 4 nor 6",
        }),
        None => Err(WireError::Truncated {
            layer: Layer::Ipv4,
            needed: 1,
            got: 0,
        }),
    }
}

/// Splits `data[start..]` into what was captured of `announced` bytes and what is missing.
/// Bytes past `announced` are link-layer padding (Ethernet pads frames to 60 bytes).
fn announced_payload(data: &[u8], start: usize, announced: usize) -> (&[u8], usize) {
    let end = start.saturating_add(announced);
    if end <= data.len() {
        (&data[start..end], 0)
    } else {
        (&data[start.min(data.len())..], end - data.len())
    }
}

fn parse_ipv4(data: &[u8]) -> Result<IpPacket<'_>, WireError> {
    use ipv4_field as f;
    need(Layer::Ipv4, data, f::MIN_LEN)?;
    let ihl = usize::from(data[0] & 0x0f) * 4;
    if ihl < f::MIN_LEN {
        return Err(WireError::Invalid {
            layer: Layer::Ipv4,
            what: "header length below 20",
        });
    }
    need(Layer::Ipv4, data, ihl)?;
    let total = usize::from(be16(data, f::TOTAL_LEN));
    // TSO captures on the sender carry total length 0; trust the captured length then.
    let total = if total == 0 { data.len() } else { total };
    if total < ihl {
        return Err(WireError::Invalid {
            layer: Layer::Ipv4,
            what: "total length below header length",
        });
    }
    let flags_frag = be16(data, f::FLAGS_FRAG);
    let more = flags_frag & 0x2000 != 0;
    let offset = u32::from(flags_frag & 0x1fff) * 8;
    let frag = (more || offset != 0).then_some(FragInfo {
        id: u32::from(be16(data, f::IDENT)),
        offset,
        more,
    });
    let (payload, missing) = announced_payload(data, ihl, total - ihl);
    Ok(IpPacket {
        src: IpAddr::V4(Ipv4Addr::new(
            data[f::SRC],
            data[f::SRC + 1],
            data[f::SRC + 2],
            data[f::SRC + 3],
        )),
        dst: IpAddr::V4(Ipv4Addr::new(
            data[f::DST],
            data[f::DST + 1],
            data[f::DST + 2],
            data[f::DST + 3],
        )),
        protocol: data[f::PROTOCOL],
        payload,
        missing,
        frag,
    })
}

fn ipv6_addr(d: &[u8], at: usize) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&d[at..at + 16]);
    Ipv6Addr::from(octets)
}

/// Extension headers (RFC 8200 section 4) that can stand before TCP.
const EXT_HOP_BY_HOP: u8 = 0;
const EXT_ROUTING: u8 = 43;
const EXT_FRAGMENT: u8 = 44;
const EXT_AH: u8 = 51;
const EXT_DEST_OPTS: u8 = 60;
const EXT_MOBILITY: u8 = 135;
const EXT_HIP: u8 = 139;
const EXT_SHIM6: u8 = 140;
/// More extension headers than this is treated as malformed (a hostile chain costs a loop).
const MAX_EXT_HEADERS: usize = 16;

fn parse_ipv6(data: &[u8]) -> Result<IpPacket<'_>, WireError> {
    use ipv6_field as f;
    need(Layer::Ipv6, data, f::HEADER_LEN)?;
    let payload_len = usize::from(be16(data, f::PAYLOAD_LEN));
    // A jumbogram or a TSO capture says 0; trust the captured length then.
    let payload_len = if payload_len == 0 {
        data.len() - f::HEADER_LEN
    } else {
        payload_len
    };
    let (mut rest, missing) = announced_payload(data, f::HEADER_LEN, payload_len);
    let mut next = data[f::NEXT_HEADER];
    let mut frag = None;
    for _ in 0..MAX_EXT_HEADERS {
        let len = match next {
            EXT_HOP_BY_HOP | EXT_ROUTING | EXT_DEST_OPTS | EXT_MOBILITY | EXT_HIP | EXT_SHIM6 => {
                need(Layer::Ipv6, rest, 2)?;
                (usize::from(rest[1]) + 1) * 8
            }
            EXT_AH => {
                need(Layer::Ipv6, rest, 2)?;
                (usize::from(rest[1]) + 2) * 4
            }
            EXT_FRAGMENT => {
                need(Layer::Ipv6, rest, 8)?;
                let off_flags = be16(rest, 2);
                frag = Some(FragInfo {
                    id: be32(rest, 4),
                    offset: u32::from(off_flags & 0xfff8),
                    more: off_flags & 1 != 0,
                });
                8
            }
            _ => {
                return Ok(IpPacket {
                    src: IpAddr::V6(ipv6_addr(data, f::SRC)),
                    dst: IpAddr::V6(ipv6_addr(data, f::DST)),
                    protocol: next,
                    payload: rest,
                    missing,
                    frag,
                });
            }
        };
        need(Layer::Ipv6, rest, len)?;
        next = rest[0];
        rest = &rest[len..];
        if frag.is_some_and(|fr| fr.offset != 0) {
            // A non-first fragment carries no further headers: the rest is raw payload.
            return Ok(IpPacket {
                src: IpAddr::V6(ipv6_addr(data, f::SRC)),
                dst: IpAddr::V6(ipv6_addr(data, f::DST)),
                protocol: next,
                payload: rest,
                missing,
                frag,
            });
        }
    }
    Err(WireError::Invalid {
        layer: Layer::Ipv6,
        what: "extension header chain too long",
    })
}

/// TCP control flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field is significant.
    pub const ACK: u8 = 0x10;

    /// FIN set.
    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    /// SYN set.
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    /// RST set.
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    /// ACK set.
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
}

/// One TCP segment, with addresses from its IP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    /// Sender address.
    pub src: IpAddr,
    /// Receiver address.
    pub dst: IpAddr,
    /// Sender port.
    pub src_port: u16,
    /// Receiver port.
    pub dst_port: u16,
    /// Sequence number of the first byte (or of the SYN).
    pub seq: u32,
    /// Acknowledgment number (meaningful when `flags.ack()`).
    pub ack: u32,
    /// Control flags.
    pub flags: TcpFlags,
    /// Payload bytes that were captured.
    pub payload: &'a [u8],
    /// Payload bytes the headers announce that the capture cut off.
    pub missing: usize,
}

/// TCP header offsets (RFC 9293 section 3.1).
mod tcp_field {
    pub(super) const SRC_PORT: usize = 0;
    pub(super) const DST_PORT: usize = 2;
    pub(super) const SEQ: usize = 4;
    pub(super) const ACK: usize = 8;
    pub(super) const DATA_OFF: usize = 12;
    pub(super) const FLAGS: usize = 13;
    pub(super) const MIN_LEN: usize = 20;
}

/// Parses the TCP header at the start of an IP payload.
pub fn parse_tcp<'a>(ip: &IpPacket<'a>) -> Result<TcpSegment<'a>, WireError> {
    use tcp_field as f;
    let d = ip.payload;
    need(Layer::Tcp, d, f::MIN_LEN)?;
    let doff = usize::from(d[f::DATA_OFF] >> 4) * 4;
    if doff < f::MIN_LEN {
        return Err(WireError::Invalid {
            layer: Layer::Tcp,
            what: "data offset below 20",
        });
    }
    need(Layer::Tcp, d, doff)?;
    Ok(TcpSegment {
        src: ip.src,
        dst: ip.dst,
        src_port: be16(d, f::SRC_PORT),
        dst_port: be16(d, f::DST_PORT),
        seq: be32(d, f::SEQ),
        ack: be32(d, f::ACK),
        flags: TcpFlags(d[f::FLAGS]),
        payload: &d[doff..],
        missing: ip.missing,
    })
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test values are small and known
mod tests {
    use super::*;

    /// IPv4 10.0.0.1:40000 -> 10.0.0.2:50051, seq 1000, ack 7, flags ACK|PSH, payload "hi".
    pub(crate) fn ipv4_tcp(payload: &[u8]) -> Vec<u8> {
        let total = 20 + 20 + payload.len();
        let mut p = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0x40,
            0,
            64,
            6,
            0,
            0,
            10,
            0,
            0,
            1,
            10,
            0,
            0,
            2,
        ];
        p.extend_from_slice(&[
            0x9c, 0x40, 0xc3, 0x83, 0, 0, 0x03, 0xe8, 0, 0, 0, 7, 0x50, 0x18, 0xff, 0xff, 0, 0, 0,
            0,
        ]);
        p.extend_from_slice(payload);
        p
    }

    fn seg(linktype: u32, frame: &[u8]) -> TcpSegment<'_> {
        let LinkPayload::Ip(ip) = parse_link(linktype, frame).expect("link") else {
            panic!("not ip")
        };
        let ip = parse_ip(ip).expect("ip");
        parse_tcp(&ip).expect("tcp")
    }

    fn check_common(s: &TcpSegment<'_>) {
        assert_eq!(s.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(s.dst, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!((s.src_port, s.dst_port), (40000, 50051));
        assert_eq!((s.seq, s.ack), (1000, 7));
        assert!(s.flags.ack() && !s.flags.syn());
        assert_eq!(s.payload, b"hi");
        assert_eq!(s.missing, 0);
    }

    #[test]
    fn ethernet_plain_vlan_and_qinq() {
        let ip = ipv4_tcp(b"hi");
        let mut plain = vec![0u8; 12];
        plain.extend_from_slice(&[0x08, 0x00]);
        plain.extend_from_slice(&ip);
        check_common(&seg(linktype::ETHERNET, &plain));

        let mut qinq = vec![0u8; 12];
        qinq.extend_from_slice(&[0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0xc8, 0x08, 0x00]);
        qinq.extend_from_slice(&ip);
        check_common(&seg(linktype::ETHERNET, &qinq));

        // Ethernet padding after a short IP packet must not become payload.
        let mut padded = plain.clone();
        padded.extend_from_slice(&[0u8; 6]);
        check_common(&seg(linktype::ETHERNET, &padded));
    }

    #[test]
    fn linux_cooked_v1_and_v2() {
        let ip = ipv4_tcp(b"hi");
        let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&ip);
        check_common(&seg(linktype::LINUX_SLL, &sll));

        let mut sll2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
        ];
        sll2.extend_from_slice(&ip);
        check_common(&seg(linktype::LINUX_SLL2, &sll2));
    }

    #[test]
    fn null_both_byte_orders_loop_and_raw() {
        let ip = ipv4_tcp(b"hi");
        for header in [[2u8, 0, 0, 0], [0, 0, 0, 2]] {
            let mut f = header.to_vec();
            f.extend_from_slice(&ip);
            check_common(&seg(linktype::NULL, &f));
        }
        let mut lo = vec![0, 0, 0, 2];
        lo.extend_from_slice(&ip);
        check_common(&seg(linktype::LOOP, &lo));
        check_common(&seg(linktype::RAW, &ip));
        check_common(&seg(linktype::IPV4, &ip));
        // IPv6 family on macOS is 30.
        let mut v6 = vec![30u8, 0, 0, 0];
        v6.extend_from_slice(&ipv6_tcp(&[EXT_HOP_BY_HOP], b"x"));
        let s = seg(linktype::NULL, &v6);
        assert_eq!(s.payload, b"x");
    }

    /// IPv6 ::1 -> ::2 with the given extension headers (each 8 bytes) before TCP.
    fn ipv6_tcp(exts: &[u8], payload: &[u8]) -> Vec<u8> {
        let tcp_len = 20 + payload.len();
        let plen = exts.len() * 8 + tcp_len;
        let first = exts.first().copied().unwrap_or(IPPROTO_TCP);
        let mut p = vec![0x60, 0, 0, 0, (plen >> 8) as u8, plen as u8, first, 64];
        p.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        p.extend_from_slice(&Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 2).octets());
        for (i, _) in exts.iter().enumerate() {
            let next = exts.get(i + 1).copied().unwrap_or(IPPROTO_TCP);
            p.extend_from_slice(&[next, 0, 0, 0, 0, 0, 0, 0]);
        }
        p.extend_from_slice(&[
            0x9c, 0x40, 0xc3, 0x83, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0, 0, 0, 0, 0, 0,
        ]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn ipv6_extension_headers_are_walked() {
        let pkt = ipv6_tcp(&[EXT_HOP_BY_HOP, EXT_DEST_OPTS, EXT_ROUTING], b"payload");
        let ip = parse_ip(&pkt).expect("ip");
        assert_eq!(ip.protocol, IPPROTO_TCP);
        let s = parse_tcp(&ip).expect("tcp");
        assert_eq!(s.payload, b"payload");
        assert_eq!(s.dst_port, 50051);
    }

    #[test]
    fn ipv6_fragment_header_is_reported() {
        let pkt = ipv6_tcp(&[EXT_FRAGMENT], b"abc");
        let mut pkt = pkt;
        // fragment offset 0, M=1, id 0xdeadbeef
        pkt[40 + 2..40 + 8].copy_from_slice(&[0x00, 0x01, 0xde, 0xad, 0xbe, 0xef]);
        let ip = parse_ip(&pkt).expect("ip");
        assert_eq!(
            ip.frag,
            Some(FragInfo {
                id: 0xdead_beef,
                offset: 0,
                more: true
            })
        );
    }

    #[test]
    fn snaplen_cut_payload_is_counted_as_missing() {
        let ip = ipv4_tcp(b"hello world");
        let cut = &ip[..ip.len() - 5];
        let s = parse_tcp(&parse_ip(cut).expect("ip")).expect("tcp");
        assert_eq!(s.payload, b"hello ");
        assert_eq!(s.missing, 5);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x81, 0x00, 0, 1, 0x08, 0x00]);
        eth.extend_from_slice(&ipv4_tcp(b"hi"));
        for n in 0..eth.len() {
            let frame = &eth[..n];
            let r = parse_link(linktype::ETHERNET, frame).and_then(|l| match l {
                LinkPayload::Ip(ip) => parse_ip(ip).and_then(|ip| parse_tcp(&ip)),
                LinkPayload::Other(_) => Err(WireError::Invalid {
                    layer: Layer::Link,
                    what: "x",
                }),
            });
            // Up to the end of the TCP header every cut is a truncation error; after it the
            // segment parses with the rest of the payload reported missing.
            if n < 18 + 40 {
                assert!(
                    matches!(r, Err(WireError::Truncated { .. })),
                    "cut at {n}: {r:?}"
                );
            } else {
                assert_eq!(r.expect("parses").missing, 18 + 42 - n);
            }
        }
    }

    #[test]
    fn invalid_headers_are_rejected() {
        let mut ip = ipv4_tcp(b"hi");
        ip[0] = 0x44; // IHL 4
        assert!(matches!(
            parse_ip(&ip),
            Err(WireError::Invalid {
                layer: Layer::Ipv4,
                ..
            })
        ));
        let mut ip = ipv4_tcp(b"hi");
        ip[20 + 12] = 0x40; // TCP data offset 16 bytes
        let p = parse_ip(&ip).expect("ip");
        assert!(matches!(
            parse_tcp(&p),
            Err(WireError::Invalid {
                layer: Layer::Tcp,
                ..
            })
        ));
        assert!(matches!(parse_ip(&[0x70]), Err(WireError::Invalid { .. })));
    }
}
