//! The connection table: 4-tuple to connection state, bounded, with expiry and eviction.
//!
//! Connections live in a slab and on one of two intrusive lists ordered by last activity: open
//! and closed. Expiry walks each list from its least recently active end; eviction (when the
//! table is full) takes a closed connection first, then the least recently active open one.
//! Both are O(1) per connection removed, so a SYN flood costs constant work per packet and
//! memory stays at the bound.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use foldhash::fast::RandomState;

use crate::config::CaptureLimits;
use crate::event::{
    CloseReason, ConnId, ConnInfo, Dir, EventKind, Nanos, RoleSource, StreamEvent, StreamSink, sock,
};
use crate::reasm::{Ctx, HalfStream, SegIn};
use crate::stats::CaptureStats;
use crate::wire::TcpSegment;

/// Connection key independent of direction: the smaller endpoint first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey {
    a: [u8; 16],
    b: [u8; 16],
    a_port: u16,
    b_port: u16,
}

fn ip_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

impl FlowKey {
    fn of(seg: &TcpSegment<'_>) -> FlowKey {
        let s = (ip_bytes(seg.src), seg.src_port);
        let d = (ip_bytes(seg.dst), seg.dst_port);
        let (lo, hi) = if s <= d { (s, d) } else { (d, s) };
        FlowKey {
            a: lo.0,
            b: hi.0,
            a_port: lo.1,
            b_port: hi.1,
        }
    }
}

/// Which of `n` workers owns the connections between `a` and `b`: a fixed hash of the two
/// addresses in order, so both directions, every run and every worker count agree on it.
pub(crate) fn shard_of(a: IpAddr, b: IpAddr, n: usize) -> usize {
    use std::hash::BuildHasher as _;
    let (a, b) = (ip_bytes(a), ip_bytes(b));
    let key = if a <= b { (a, b) } else { (b, a) };
    let h = foldhash::fast::FixedState::default().hash_one(key);
    // The high bits are the well mixed ones.
    usize::try_from((u128::from(h) * n as u128) >> 64).unwrap_or(0)
}

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListId {
    Open,
    Closed,
}

#[derive(Debug, Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

impl Default for List {
    fn default() -> Self {
        List {
            head: NIL,
            tail: NIL,
        }
    }
}

#[derive(Debug)]
struct Conn {
    id: ConnId,
    key: FlowKey,
    info: ConnInfo,
    halves: [HalfStream; 2],
    last_seen: Nanos,
    list: ListId,
    prev: u32,
    next: u32,
}

impl Conn {
    fn dir_of(&self, seg: &TcpSegment<'_>) -> Dir {
        if sock(seg.src, seg.src_port) == self.info.client {
            Dir::ToServer
        } else {
            Dir::ToClient
        }
    }
    fn is_closed(&self) -> bool {
        self.halves.iter().all(HalfStream::is_closed)
    }
}

/// Tracks every TCP connection and reassembles both of its directions.
#[derive(Debug)]
pub struct FlowTable {
    limits: CaptureLimits,
    map: HashMap<FlowKey, u32, RandomState>,
    slots: Vec<Option<Conn>>,
    free: Vec<u32>,
    open: List,
    closed: List,
    next_id: u64,
    /// Written into every connection id (see [`ConnId`]): the worker that owns this table.
    shard: u16,
    ooo_total: usize,
    /// Latest packet time seen (packets may come slightly out of time order).
    now: Nanos,
    last_tick: Nanos,
}

/// How often, in capture time, expiry runs.
const TICK_NANOS: u64 = 1_000_000_000;

impl FlowTable {
    /// An empty table with the given bounds.
    pub fn new(limits: CaptureLimits) -> FlowTable {
        FlowTable {
            limits,
            map: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            open: List::default(),
            closed: List::default(),
            next_id: 0,
            shard: 0,
            ooo_total: 0,
            now: Nanos::default(),
            last_tick: Nanos::default(),
        }
    }

    /// The same table for worker `shard`: its connection ids carry the shard number, so they
    /// never collide with another worker's.
    pub fn with_shard(mut self, shard: u16) -> FlowTable {
        self.shard = shard;
        self
    }

    /// Connections tracked now (open and lingering closed ones).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no connection is tracked.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes held in reorder buffers now.
    pub fn buffered_bytes(&self) -> usize {
        self.ooo_total
    }

    /// Feeds one TCP segment captured at `ts`.
    pub fn handle_segment<S: StreamSink + ?Sized>(
        &mut self,
        seg: &TcpSegment<'_>,
        ts: Nanos,
        stats: &mut CaptureStats,
        sink: &mut S,
    ) {
        stats.tcp_segments += 1;
        self.now = self.now.max(ts);
        if self.now.0 >= self.last_tick.0.saturating_add(TICK_NANOS) {
            self.last_tick = self.now;
            self.poll_timeouts(self.now, stats, sink);
        }
        let key = FlowKey::of(seg);
        let flags = seg.flags;
        let new_syn = flags.syn() && !flags.ack();
        let mut idx = self.map.get(&key).copied();
        if let Some(i) = idx
            && new_syn
        {
            let conn = self.conn(i);
            let client_isn = conn.halves[0].isn();
            if conn.is_closed() {
                self.remove(i);
                idx = None;
            } else if client_isn != Some(seg.seq) || sock(seg.src, seg.src_port) != conn.info.client
            {
                // A new incarnation of the 4-tuple: the old one ended unseen.
                self.close_conn(i, CloseReason::Reused, ts, stats, sink);
                stats.conns_reused += 1;
                self.remove(i);
                idx = None;
            }
        }
        let i = match idx {
            Some(i) => i,
            None if flags.syn() || !seg.payload.is_empty() || seg.missing > 0 => {
                self.create(seg, ts, stats, sink)
            }
            None => {
                stats.stray_segments += 1;
                return;
            }
        };
        self.touch(i, ts);
        let Some((conn, mut cx)) = self.conn_ctx(i, ts, stats, sink) else {
            return;
        };
        let dir = conn.dir_of(seg);
        cx.dir = dir;
        if flags.rst() {
            conn.halves[dir.index()].stats.packets += 1;
            // The sender's direction closes first: who ended the connection is the first close.
            for d in [dir, dir.reverse()] {
                cx.dir = d;
                conn.halves[d.index()].close(CloseReason::Rst, &mut cx);
            }
        } else {
            let s = SegIn {
                seq: seg.seq,
                syn: flags.syn(),
                fin: flags.fin(),
                payload: seg.payload,
                missing: seg.missing,
            };
            conn.halves[dir.index()].segment(&s, &mut cx);
            let rev = dir.reverse();
            if flags.ack() && conn.halves[rev.index()].has_pending() {
                cx.dir = rev;
                conn.halves[rev.index()].peer_acked(seg.ack, &mut cx);
            }
            for d in [Dir::ToServer, Dir::ToClient] {
                if conn.halves[d.index()].has_pending() {
                    cx.dir = d;
                    conn.halves[d.index()].check_timeout(ts, &mut cx);
                }
            }
        }
        if conn.list == ListId::Open && conn.is_closed() {
            stats.conns_closed += 1;
            self.unlink(i);
            self.push_back(i, ListId::Closed);
        }
    }

    /// The newest packet time seen.
    pub fn now(&self) -> Nanos {
        self.now
    }

    /// Time has reached `now` (packets of other workers): what ends at the end of the capture
    /// ends then.
    pub fn advance(&mut self, now: Nanos) {
        self.now = self.now.max(now);
    }

    /// Expires idle connections and forgets closed ones after their linger time.
    pub fn poll_timeouts<S: StreamSink + ?Sized>(
        &mut self,
        now: Nanos,
        stats: &mut CaptureStats,
        sink: &mut S,
    ) {
        let linger = self.limits.closed_linger;
        while self.closed.head != NIL
            && now.saturating_since(self.conn(self.closed.head).last_seen) >= linger
        {
            self.remove(self.closed.head);
        }
        let idle = self.limits.idle_timeout;
        while self.open.head != NIL
            && now.saturating_since(self.conn(self.open.head).last_seen) >= idle
        {
            let i = self.open.head;
            self.close_conn(i, CloseReason::Idle, now, stats, sink);
            stats.conns_expired += 1;
            self.remove(i);
        }
    }

    /// Ends the capture: every open connection is closed (holes become gaps) and forgotten.
    pub fn finish<S: StreamSink + ?Sized>(&mut self, stats: &mut CaptureStats, sink: &mut S) {
        let now = self.now;
        // In the order the connections opened (their ids): the same order whichever worker of
        // a sharded run holds them.
        let mut open = Vec::with_capacity(self.map.len());
        let mut i = self.open.head;
        while i != NIL {
            let c = self.conn(i);
            open.push((c.id, i));
            i = c.next;
        }
        open.sort_unstable();
        for (_, i) in open {
            self.close_conn(i, CloseReason::EndOfCapture, now, stats, sink);
            self.remove(i);
        }
        while self.closed.head != NIL {
            self.remove(self.closed.head);
        }
    }

    fn conn(&self, i: u32) -> &Conn {
        match self.slots.get(i as usize).and_then(Option::as_ref) {
            Some(c) => c,
            None => unreachable!("list and map only hold live slots"),
        }
    }

    fn conn_mut(&mut self, i: u32) -> &mut Conn {
        match self.slots.get_mut(i as usize).and_then(Option::as_mut) {
            Some(c) => c,
            None => unreachable!("list and map only hold live slots"),
        }
    }

    fn create<S: StreamSink + ?Sized>(
        &mut self,
        seg: &TcpSegment<'_>,
        ts: Nanos,
        stats: &mut CaptureStats,
        sink: &mut S,
    ) -> u32 {
        while self.map.len() >= self.limits.max_connections.max(1) {
            let victim = if self.closed.head != NIL {
                self.closed.head
            } else {
                self.open.head
            };
            if self.conn(victim).list == ListId::Open {
                self.close_conn(victim, CloseReason::Evicted, ts, stats, sink);
                stats.conns_evicted += 1;
            }
            self.remove(victim);
        }
        let src = sock(seg.src, seg.src_port);
        let dst = sock(seg.dst, seg.dst_port);
        let (client, server, roles) = if seg.flags.syn() && !seg.flags.ack() {
            (src, dst, RoleSource::Syn)
        } else if seg.flags.syn() {
            (dst, src, RoleSource::SynAck)
        } else if guess_server_is_src(src, dst) {
            (dst, src, RoleSource::Guess)
        } else {
            (src, dst, RoleSource::Guess)
        };
        let id = ConnId::new(self.shard, self.next_id);
        self.next_id += 1;
        let conn = Conn {
            id,
            key: FlowKey::of(seg),
            info: ConnInfo {
                client,
                server,
                roles,
            },
            halves: Default::default(),
            last_seen: ts,
            list: ListId::Open,
            prev: NIL,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(conn);
                i
            }
            None => {
                self.slots.push(Some(conn));
                u32::try_from(self.slots.len() - 1).unwrap_or(NIL)
            }
        };
        self.map.insert(FlowKey::of(seg), i);
        self.push_back(i, ListId::Open);
        stats.conns_opened += 1;
        sink.on_event(StreamEvent {
            conn: id,
            dir: Dir::ToServer,
            ts,
            kind: EventKind::Open(ConnInfo {
                client,
                server,
                roles,
            }),
        });
        i
    }

    fn close_conn<S: StreamSink + ?Sized>(
        &mut self,
        i: u32,
        reason: CloseReason,
        ts: Nanos,
        stats: &mut CaptureStats,
        sink: &mut S,
    ) {
        let Some((conn, mut cx)) = self.conn_ctx(i, ts, stats, sink) else {
            return;
        };
        for d in [Dir::ToServer, Dir::ToClient] {
            cx.dir = d;
            conn.halves[d.index()].close(reason, &mut cx);
        }
    }

    /// Connection `i` and a reassembly context over the table's other fields (split borrow).
    fn conn_ctx<'t, S: StreamSink + ?Sized>(
        &'t mut self,
        i: u32,
        ts: Nanos,
        stats: &'t mut CaptureStats,
        sink: &'t mut S,
    ) -> Option<(&'t mut Conn, Ctx<'t, S>)> {
        let FlowTable {
            slots,
            ooo_total,
            limits,
            ..
        } = self;
        let conn = slots.get_mut(i as usize)?.as_mut()?;
        let cx = Ctx {
            conn: conn.id,
            dir: Dir::ToServer,
            ts,
            sink,
            stats,
            ooo_total,
            limits,
        };
        Some((conn, cx))
    }

    fn remove(&mut self, i: u32) {
        self.unlink(i);
        if let Some(mut conn) = self.slots.get_mut(i as usize).and_then(Option::take) {
            for h in &mut conn.halves {
                h.release(&mut self.ooo_total);
            }
            self.map.remove(&conn.key);
            self.free.push(i);
        }
    }

    fn touch(&mut self, i: u32, ts: Nanos) {
        let conn = self.conn_mut(i);
        conn.last_seen = conn.last_seen.max(ts);
        let list = conn.list;
        let tail = match list {
            ListId::Open => self.open.tail,
            ListId::Closed => self.closed.tail,
        };
        if tail != i {
            self.unlink(i);
            self.push_back(i, list);
        }
    }

    fn list_mut(&mut self, id: ListId) -> &mut List {
        match id {
            ListId::Open => &mut self.open,
            ListId::Closed => &mut self.closed,
        }
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next, list) = {
            let c = self.conn(i);
            (c.prev, c.next, c.list)
        };
        if prev == NIL {
            self.list_mut(list).head = next;
        } else {
            self.conn_mut(prev).next = next;
        }
        if next == NIL {
            self.list_mut(list).tail = prev;
        } else {
            self.conn_mut(next).prev = prev;
        }
        let c = self.conn_mut(i);
        c.prev = NIL;
        c.next = NIL;
    }

    fn push_back(&mut self, i: u32, list: ListId) {
        let tail = self.list_mut(list).tail;
        {
            let c = self.conn_mut(i);
            c.list = list;
            c.prev = tail;
            c.next = NIL;
        }
        if tail == NIL {
            self.list_mut(list).head = i;
        } else {
            self.conn_mut(tail).next = i;
        }
        self.list_mut(list).tail = i;
    }
}

/// With no handshake seen, the lower port is taken as the server's (clients use ephemeral
/// ports, which are high); equal ports make the receiver of this packet the server.
fn guess_server_is_src(src: SocketAddr, dst: SocketAddr) -> bool {
    src.port() < dst.port()
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test values are small and known
mod tests {
    use super::*;
    use crate::wire::TcpFlags;
    use std::net::Ipv4Addr;

    #[test]
    fn a_host_pair_has_one_shard_both_ways_and_pairs_spread() {
        let a: IpAddr = "10.0.0.1".parse().expect("addr");
        let b: IpAddr = "10.0.0.2".parse().expect("addr");
        let v6: IpAddr = "fd00::7".parse().expect("addr");
        for n in [2, 3, 4, 16] {
            assert_eq!(shard_of(a, b, n), shard_of(b, a, n));
            assert_eq!(shard_of(a, v6, n), shard_of(v6, a, n));
            assert!(shard_of(a, b, n) < n);
        }
        // Many clients of one server land on every worker.
        let mut seen = [false; 4];
        for i in 0..64u8 {
            let c = IpAddr::V4(Ipv4Addr::new(10, 1, 0, i));
            seen[shard_of(c, b, 4)] = true;
        }
        assert_eq!(seen, [true; 4]);
    }

    fn seg(src_port: u16, dst_port: u16, seq: u32, flags: u8, payload: &[u8]) -> TcpSegment<'_> {
        TcpSegment {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            src_port,
            dst_port,
            seq,
            ack: 0,
            flags: TcpFlags(flags),
            payload,
            missing: 0,
        }
    }

    #[derive(Default)]
    struct Log {
        opens: Vec<(ConnId, ConnInfo)>,
        closes: Vec<(ConnId, Dir, CloseReason)>,
        data: Vec<(ConnId, Dir, Vec<u8>)>,
    }

    impl StreamSink for Log {
        fn on_event(&mut self, ev: StreamEvent<'_>) {
            match ev.kind {
                EventKind::Open(info) => self.opens.push((ev.conn, info)),
                EventKind::Close { reason, .. } => self.closes.push((ev.conn, ev.dir, reason)),
                EventKind::Data(d) => self.data.push((ev.conn, ev.dir, d.to_vec())),
                EventKind::Gap { .. } => {}
            }
        }
    }

    const SYN: u8 = TcpFlags::SYN;
    const ACK: u8 = TcpFlags::ACK;
    const FIN: u8 = TcpFlags::FIN;
    const RST: u8 = TcpFlags::RST;

    /// A flow table with its counters and an event log.
    struct Rig {
        t: FlowTable,
        st: CaptureStats,
        log: Log,
    }

    impl Rig {
        fn new(limits: CaptureLimits) -> Rig {
            Rig {
                t: FlowTable::new(limits),
                st: CaptureStats::default(),
                log: Log::default(),
            }
        }

        fn feed(&mut self, s: &TcpSegment<'_>, ts: u64) {
            self.t
                .handle_segment(s, Nanos(ts), &mut self.st, &mut self.log);
        }
    }

    #[test]
    fn handshake_data_both_ways_and_fin_close() {
        let mut r = Rig::new(CaptureLimits::default());
        r.feed(&seg(40000, 443, 10, SYN, b""), 1);
        let mut synack = seg(443, 40000, 500, SYN | ACK, b"");
        synack.src = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        synack.dst = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        r.feed(&synack, 1);
        r.feed(&seg(40000, 443, 11, ACK, b"ping"), 1);
        let mut resp = synack;
        resp.seq = 501;
        resp.flags = TcpFlags(ACK | FIN);
        resp.payload = b"pong";
        r.feed(&resp, 1);
        r.feed(&seg(40000, 443, 15, ACK | FIN, b""), 1);
        assert_eq!(r.log.opens.len(), 1);
        assert_eq!(r.log.opens[0].1.roles, RoleSource::Syn);
        assert_eq!(r.log.opens[0].1.server.port(), 443);
        assert_eq!(
            r.log.data,
            vec![
                (ConnId::new(0, 0), Dir::ToServer, b"ping".to_vec()),
                (ConnId::new(0, 0), Dir::ToClient, b"pong".to_vec())
            ]
        );
        assert_eq!(r.log.closes.len(), 2);
        assert!(r.log.closes.iter().all(|c| c.2 == CloseReason::Fin));
        assert_eq!(r.st.conns_closed, 1);
        // A new SYN on the closed 4-tuple is a new connection.
        r.feed(&seg(40000, 443, 9999, SYN, b""), 1);
        assert_eq!(r.log.opens.len(), 2);
        assert_eq!(r.log.opens[1].0, ConnId::new(0, 1));
        assert_eq!(r.t.len(), 1);
    }

    #[test]
    fn new_syn_on_open_tuple_replaces_it_but_retransmitted_syn_does_not() {
        let mut r = Rig::new(CaptureLimits::default());
        r.feed(&seg(40000, 443, 10, SYN, b""), 1);
        r.feed(&seg(40000, 443, 10, SYN, b""), 2);
        assert_eq!(r.log.opens.len(), 1);
        r.feed(&seg(40000, 443, 77, SYN, b""), 3);
        assert_eq!(r.log.opens.len(), 2);
        assert_eq!(r.st.conns_reused, 1);
        assert!(
            r.log
                .closes
                .iter()
                .all(|c| c.0 == ConnId::new(0, 0) && c.2 == CloseReason::Reused)
        );
    }

    #[test]
    fn mid_stream_join_guesses_roles_and_strays_are_ignored() {
        let mut r = Rig::new(CaptureLimits::default());
        r.feed(&seg(50051, 61000, 1, ACK, b""), 1);
        r.feed(&seg(50051, 61000, 1, RST, b""), 1);
        assert_eq!(r.st.stray_segments, 2);
        r.feed(&seg(50051, 61000, 1, ACK, b"data"), 1);
        assert_eq!(r.log.opens[0].1.roles, RoleSource::Guess);
        assert_eq!(r.log.opens[0].1.server.port(), 50051);
        assert_eq!(r.log.data[0].1, Dir::ToClient);
    }

    #[test]
    fn idle_connections_expire_and_closed_ones_linger_briefly() {
        let limits = CaptureLimits::default();
        let idle = limits.idle_timeout.as_nanos() as u64;
        let mut r = Rig::new(limits);
        r.feed(&seg(40000, 443, 1, ACK, b"a"), 1);
        r.feed(&seg(40001, 443, 1, ACK, b"a"), 2);
        r.feed(&seg(40001, 443, 2, RST, b""), 3);
        r.t.poll_timeouts(Nanos(20_000_000_000), &mut r.st, &mut r.log);
        assert_eq!(r.t.len(), 1, "closed connection forgotten after linger");
        r.t.poll_timeouts(Nanos(idle + 2), &mut r.st, &mut r.log);
        assert_eq!(r.t.len(), 0);
        assert_eq!(r.st.conns_expired, 1);
        assert!(
            r.log
                .closes
                .contains(&(ConnId::new(0, 0), Dir::ToServer, CloseReason::Idle))
        );
    }

    #[test]
    fn syn_flood_stays_within_the_bound() {
        let limits = CaptureLimits {
            max_connections: 1000,
            ..CaptureLimits::default()
        };
        let mut t = FlowTable::new(limits);
        let mut st = CaptureStats::default();
        let mut sink = |_: StreamEvent<'_>| {};
        for n in 0..1_000_000u32 {
            let mut s = seg(0, 443, n, SYN, b"");
            s.src_port = (n % 60000) as u16;
            s.src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n / 60000));
            t.handle_segment(&s, Nanos(u64::from(n)), &mut st, &mut sink);
            assert!(t.len() <= 1000);
        }
        assert_eq!(st.conns_opened, 1_000_000);
        assert_eq!(st.conns_evicted, 999_000);
        assert!(t.slots.len() <= 1000, "slab never grows past the bound");
    }
}
