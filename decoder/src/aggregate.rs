//! Per-method aggregation of finished calls: counts by status, message counts, latency
//! quantiles. Written once; the summary table, JSON summary, TUI and exporter all read it.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::calls::record::{CallRecord, CallType, Confidence, StatusSource};

/// Buckets per doubling: each bucket is 2^(1/16) = 4.4% wide.
const SUB: f64 = 16.0;
/// Highest bucket: 2^64 ns.
const MAX_BUCKETS: usize = 64 * 16;

/// A latency histogram with log-spaced buckets (relative error under 2.2% at the bucket's
/// geometric midpoint), exact count and max, memory bounded by the range of values recorded
/// (from the bucket of the smallest to that of the largest: a method whose calls take 1 to 10
/// ms holds 54 buckets).
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Counts of buckets `lo`, `lo + 1`, ...
    counts: Vec<u64>,
    lo: usize,
    n: u64,
    max: Duration,
    min: Option<Duration>,
}

/// Where each sixteenth of an octave begins, at the top of a u64: the least `m` with
/// `m^16 >= 2^(1008 + k)` (2^(63 + k/16) rounded up), for k = 0..16.
const OCTAVE: [u64; 16] = [
    0x8000000000000000,
    0x85aac367cc487b15,
    0x8b95c1e3ea8bd6e7,
    0x91c3d373ab11c337,
    0x9837f0518db8a970,
    0x9ef5326091a111ae,
    0xa5fed6a9b15138eb,
    0xad583eea42a14ac7,
    0xb504f333f9de6485,
    0xbd08a39f580c36bf,
    0xc5672a115506dade,
    0xce248c151f8480e4,
    0xd744fccad69d6af5,
    0xe0ccdeec2a94e112,
    0xeac0c6e7dd24392f,
    0xf5257d152486cc2d,
];

/// The bucket of `ns` (at least 1): floor(log2(ns) * 16), in integers (the octave from the
/// leading bit, the sixteenth from the bits below it).
#[inline]
fn bucket(ns: u64) -> usize {
    let e = 63 - ns.max(1).leading_zeros() as usize;
    let m = ns.max(1) << (63 - e);
    e * 16 + OCTAVE.partition_point(|&t| t <= m) - 1
}

// Buckets are found in integers (`bucket`); their bounds for quantiles go through f64:
// indexes are clamped below MAX_BUCKETS and nanosecond values to u64 before any cast.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
impl Histogram {
    /// Records one value.
    pub fn record(&mut self, d: Duration) {
        let ns = d.as_nanos().clamp(1, u128::from(u64::MAX)) as u64;
        let i = bucket(ns).min(MAX_BUCKETS - 1);
        self.cover(i, i);
        self.counts[i - self.lo] += 1;
        self.n += 1;
        self.max = self.max.max(d);
        self.min = Some(self.min.map_or(d, |m| m.min(d)));
    }

    /// Makes room for buckets `from..=to`.
    fn cover(&mut self, from: usize, to: usize) {
        if self.counts.is_empty() {
            self.lo = from;
        } else if from < self.lo {
            // Rare: a value below every one so far.
            let grow = self.lo - from;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.lo = from;
        }
        if self.counts.len() <= to - self.lo {
            self.counts.resize(to - self.lo + 1, 0);
        }
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        if other.n == 0 {
            return;
        }
        self.cover(other.lo, other.lo + other.counts.len() - 1);
        let at = other.lo - self.lo;
        for (a, b) in self.counts[at..].iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.n += other.n;
        self.max = self.max.max(other.max);
        self.min = match (self.min, other.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// Values per bucket, from the smallest value's bucket to the largest's: each bucket's
    /// lower bound and count.
    pub fn buckets(&self) -> impl Iterator<Item = (Duration, u64)> + '_ {
        self.counts.iter().enumerate().map(|(k, &c)| {
            let low = 2f64.powf((self.lo + k) as f64 / SUB);
            (Duration::from_nanos(low as u64), c)
        })
    }

    /// Forgets every value, keeping the memory.
    pub fn clear(&mut self) {
        self.counts.clear();
        self.n = 0;
        self.max = Duration::ZERO;
        self.min = None;
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// Largest value.
    pub fn max(&self) -> Option<Duration> {
        (self.n > 0).then_some(self.max)
    }

    /// The q-quantile (0 < q <= 1): the bucket holding the ceil(q*n)-th value, reported at its
    /// geometric midpoint and clamped to the exact min and max.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.n == 0 {
            return None;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (k, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let mid = 2f64.powf(((self.lo + k) as f64 + 0.5) / SUB);
                let d = Duration::from_nanos(mid as u64);
                return Some(d.clamp(self.min.unwrap_or(d), self.max));
            }
        }
        Some(self.max)
    }
}

/// What one method did.
#[derive(Debug, Clone, Default)]
pub struct MethodStats {
    /// Ended calls (not still open at the end of the capture).
    pub calls: u64,
    /// Calls still open when the capture ended.
    pub unfinished: u64,
    /// Calls that ended with a status we cannot read (header table entries from before the
    /// capture, and nothing to infer it from): neither OK nor an error.
    pub status_unknown: u64,
    /// Calls that failed with a code that could not be known (errors all the same).
    pub error_unknown_code: u64,
    /// Calls named by inference (`method_confidence` inferred).
    pub method_inferred: u64,
    /// Ended calls whose status (or failure) was inferred.
    pub status_inferred: u64,
    /// Finished calls by canonical status name.
    pub status: BTreeMap<&'static str, u64>,
    /// Finished calls by status source.
    pub sources: BTreeMap<&'static str, u64>,
    /// By call type.
    pub call_types: BTreeMap<CallType, u64>,
    /// Request messages.
    pub req_msgs: u64,
    /// Response messages.
    pub resp_msgs: u64,
    /// Request message bytes.
    pub req_bytes: u64,
    /// Response message bytes.
    pub resp_bytes: u64,
    /// Latency of finished calls whose start was seen.
    pub latency: Histogram,
    /// Calls whose request started before the capture (no latency).
    pub no_start: u64,
}

impl MethodStats {
    /// Ended calls that failed: a known status other than OK, or an error whose code is not
    /// known.
    pub fn errors(&self) -> u64 {
        self.calls - self.status_unknown - self.status.get("OK").copied().unwrap_or(0)
    }

    /// Ended calls whose outcome (OK or failed) is known.
    pub fn known_outcome(&self) -> u64 {
        self.calls - self.status_unknown
    }
}

/// Method name for calls whose `:path` is unknown.
pub const UNKNOWN_METHOD: &str = "<unknown>";
/// Method name (and Prometheus label value) of the calls of methods past the cap, in every
/// output: the summary, the TUI and the exporter.
pub const OTHER_METHOD: &str = "other";
/// Distinct methods kept apart by default, in every output (`--max-methods`).
pub const DEFAULT_MAX_METHODS: usize = 2_000;

/// The one rule for how many distinct methods an output keeps apart: a peer sending random
/// paths must not grow memory (or Prometheus series) without bound. Each output keeps its own
/// map of methods and asks the cap before adding one; past the cap, calls of new methods are
/// counted under [`OTHER_METHOD`].
#[derive(Debug, Clone, Copy)]
pub struct MethodCap {
    max: usize,
    apart: usize,
    folded: u64,
}

impl MethodCap {
    /// A cap of `max` methods.
    pub fn new(max: usize) -> MethodCap {
        MethodCap {
            max,
            apart: 0,
            folded: 0,
        }
    }

    /// A call of a method the output does not hold yet: true when the method may be added (it
    /// now counts against the cap), false when the call goes under [`OTHER_METHOD`].
    pub fn admit(&mut self) -> bool {
        if self.apart < self.max {
            self.apart += 1;
            true
        } else {
            self.folded += 1;
            false
        }
    }

    /// Whether another method may still be added (asking does not count against the cap).
    pub fn has_room(&self) -> bool {
        self.apart < self.max
    }

    /// Calls counted under [`OTHER_METHOD`] so far.
    pub fn folded(&self) -> u64 {
        self.folded
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }
}

/// Aggregates finished calls by method, within a [`MethodCap`].
#[derive(Debug, Clone)]
pub struct Aggregator {
    methods: HashMap<String, MethodStats>,
    cap: MethodCap,
    /// All calls together.
    pub total: MethodStats,
}

impl Aggregator {
    /// An aggregator keeping at most `max_methods` methods apart.
    pub fn new(max_methods: usize) -> Aggregator {
        Aggregator {
            methods: HashMap::new(),
            cap: MethodCap::new(max_methods),
            total: MethodStats::default(),
        }
    }

    /// Calls counted under [`OTHER_METHOD`].
    pub fn folded_methods(&self) -> u64 {
        self.cap.folded()
    }

    /// Adds one ended call.
    pub fn record(&mut self, rec: &CallRecord) {
        let label = rec.method_label();
        let name = label.as_deref().unwrap_or(UNKNOWN_METHOD);
        self.total.record(rec);
        // The common case, a method already seen, allocates nothing.
        if let Some(m) = self.methods.get_mut(name) {
            return m.record(rec);
        }
        let key = if self.cap.admit() { name } else { OTHER_METHOD };
        self.methods.entry(key.to_owned()).or_default().record(rec);
    }

    /// Methods sorted by name.
    pub fn methods(&self) -> Vec<(&str, &MethodStats)> {
        let mut v: Vec<(&str, &MethodStats)> =
            self.methods.iter().map(|(k, v)| (k.as_str(), v)).collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }
}

impl MethodStats {
    /// Adds one ended call.
    pub fn record(&mut self, rec: &CallRecord) {
        let m = self;
        m.req_msgs += rec.req.msgs;
        m.resp_msgs += rec.resp.msgs;
        m.req_bytes += rec.req.bytes;
        m.resp_bytes += rec.resp.bytes;
        *m.call_types.entry(rec.call_type).or_default() += 1;
        if rec.method_confidence == Confidence::Inferred {
            m.method_inferred += 1;
        }
        if rec.status_source == StatusSource::Unfinished {
            m.unfinished += 1;
            return;
        }
        m.calls += 1;
        *m.sources.entry(rec.status_source.name()).or_default() += 1;
        match rec.status {
            Some(status) => *m.status.entry(status.name()).or_default() += 1,
            None if rec.error_unknown_code => m.error_unknown_code += 1,
            None => m.status_unknown += 1,
        }
        if rec.status_confidence == Confidence::Inferred {
            m.status_inferred += 1;
        }
        match rec.duration() {
            Some(d) => m.latency.record(d),
            None => m.no_start += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    fn integer_buckets_are_those_of_the_logarithm() {
        let by_log = |ns: u64| ((ns as f64).log2() * SUB) as usize;
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut values: Vec<u64> = (1..5000).collect();
        for e in 1..64 {
            let p = 1u64 << e;
            values.extend([p - 1, p, p + 1]);
        }
        for _ in 0..200_000 {
            // xorshift, at every scale up to a day in nanoseconds.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x >> (x % 48 + 16));
        }
        for ns in values.into_iter().filter(|&v| v > 0) {
            // Within rounding of a boundary the f64 logarithm may land on either side (2^49 - 1
            // comes out as 784.0): those are checked exactly below.
            let l = (ns as f64).log2() * SUB;
            if (l - l.round()).abs() < 1e-9 && !ns.is_power_of_two() {
                continue;
            }
            assert_eq!(bucket(ns), by_log(ns), "{ns}");
        }
        for e in 8..64 {
            assert_eq!(bucket(1 << e), e * 16);
            assert_eq!(bucket((1 << e) - 1), e * 16 - 1);
        }
        assert_eq!(bucket(u64::MAX), MAX_BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_within_the_bucket_error() {
        let mut h = Histogram::default();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        for (q, want) in [(0.5, 500.0), (0.9, 900.0), (0.99, 990.0)] {
            let got = h.quantile(q).expect("value").as_secs_f64() * 1000.0;
            assert!((got - want).abs() / want < 0.025, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.max(), Some(Duration::from_millis(1000)));
        assert_eq!(h.quantile(1.0), Some(Duration::from_millis(1000)));
        let mut one = Histogram::default();
        one.record(Duration::from_micros(1234));
        assert_eq!(
            one.quantile(0.5),
            Some(Duration::from_micros(1234)),
            "clamped to the exact value"
        );
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn merged_histograms_answer_as_one() {
        let (mut a, mut b, mut all) = (
            Histogram::default(),
            Histogram::default(),
            Histogram::default(),
        );
        for ms in 1..=300u64 {
            a.record(Duration::from_millis(ms));
            all.record(Duration::from_millis(ms));
        }
        for ms in 301..=1000u64 {
            b.record(Duration::from_micros(ms * 1000 + 7));
            all.record(Duration::from_micros(ms * 1000 + 7));
        }
        let mut m = Histogram::default();
        m.merge(&b);
        m.merge(&Histogram::default());
        m.merge(&a);
        for q in [0.01, 0.5, 0.9, 0.99, 1.0] {
            assert_eq!(m.quantile(q), all.quantile(q), "q{q}");
        }
        assert_eq!((m.count(), m.max()), (all.count(), all.max()));
        m.clear();
        assert_eq!((m.count(), m.quantile(0.5)), (0, None));
    }
}
