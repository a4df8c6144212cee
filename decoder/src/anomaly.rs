//! Protocol anomalies: things a peer (or the capture) did that the decoder noticed and went on
//! from. Each is counted and shown; none is fatal. Emitted by the HTTP/2 layer and the call
//! tracker, reported through [`crate::calls::ConnEvent::Anomaly`].

/// One kind of anomaly. How far each reaches is said on the variant: a frame, a stream, the
/// direction's header table, or the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnomalyKind {
    /// The connection carries no HTTP/2 (checked once per connection): it is dropped.
    NotHttp2,
    /// Bytes skipped to find a frame boundary (joined mid-way or after a gap).
    Resync,
    /// A frame longer than we buffer; skipped (a header block: the table is forgotten).
    FrameTooLarge,
    /// A header block did not decode; the direction's HPACK table was forgotten.
    HpackError,
    /// A header block used table entries from before the capture.
    HpackUnknownIndex,
    /// HEADERS without END_HEADERS not followed by CONTINUATION (RFC 9113 6.10).
    BrokenContinuation,
    /// Padding longer than the frame (RFC 9113 6.1, 6.2).
    BadPadding,
    /// A frame whose fixed layout is wrong (RST_STREAM not 4 bytes, GOAWAY under 8, SETTINGS
    /// not a multiple of 6, ...): that frame is ignored.
    MalformedFrame,
    /// More calls at once than `max_streams`: the new stream is not tracked.
    StreamLimit,
    /// Bytes of the connection were lost inside a DATA frame: that stream's counts are lower
    /// bounds.
    GapInFrame,
    /// Bytes were lost where frames could not be followed: every open call is marked, the
    /// direction's header table is forgotten.
    GapLostFrames,
    /// A stream ended inside a gRPC message (its prefix announced more bytes than came): the
    /// message is not counted.
    MessageCutShort,
    /// The bytes kept of open calls (metadata, messages for `--bodies` and the UI) reached
    /// their bound: this call's were not kept; it is still tracked and counted.
    StateShed,
    /// Decoder state across all connections (header tables, frame and header block buffers,
    /// open calls) reached its bound (`--max-decoder-bytes`): this connection, the largest,
    /// dropped its header tables and buffers and goes on as if joined after a gap.
    ConnStateShed,
    /// A TLS record did not authenticate (corrupt, or not the keys the key log gave): its
    /// plaintext is handled as a gap.
    TlsBadRecord,
    /// After a gap, TLS records lined up again (a later record opened).
    TlsResync,
    /// TLS bytes were lost where decryption could not resume: the direction stays encrypted.
    TlsLost,
    /// HTTP/1.1 joined mid-way or after a gap: the server was still sending a response after
    /// the request decoding began with (the client pipelines), so which request a response
    /// answers is not known; the connection is not decoded further.
    Http1Unpaired,
}

impl AnomalyKind {
    /// Name used in summaries and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::NotHttp2 => "not_http2",
            AnomalyKind::Resync => "resync",
            AnomalyKind::FrameTooLarge => "frame_too_large",
            AnomalyKind::HpackError => "hpack_error",
            AnomalyKind::HpackUnknownIndex => "hpack_unknown_index",
            AnomalyKind::BrokenContinuation => "broken_continuation",
            AnomalyKind::BadPadding => "bad_padding",
            AnomalyKind::MalformedFrame => "malformed_frame",
            AnomalyKind::StreamLimit => "stream_limit",
            AnomalyKind::GapInFrame => "gap_in_frame",
            AnomalyKind::GapLostFrames => "gap_lost_frames",
            AnomalyKind::MessageCutShort => "message_cut_short",
            AnomalyKind::StateShed => "state_shed",
            AnomalyKind::ConnStateShed => "conn_state_shed",
            AnomalyKind::TlsBadRecord => "tls_bad_record",
            AnomalyKind::TlsResync => "tls_resync",
            AnomalyKind::TlsLost => "tls_lost",
            AnomalyKind::Http1Unpaired => "http1_unpaired",
        }
    }
}
