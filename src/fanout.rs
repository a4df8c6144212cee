//! The one fan-out: every output of a run gets every event, in the same order. Outputs are
//! boxed; the verb that built them takes them back by type at the end (for its report).

use std::any::Any;

use decoder::output::{Output, Tick};
use decoder::tls::session::{TlsInfo, TlsState};
use decoder::{CallRecord, ConnEvent, ConnId, Nanos, Side, Sink};

use crate::timespec::TimeSpec;

/// An output the fan-out can hand back by type.
pub(crate) trait AnyOutput: Output + Any {}

impl<T: Output + Any> AnyOutput for T {}

/// Every output of a run.
#[derive(Default)]
pub(crate) struct Fanout {
    outputs: Vec<Box<dyn AnyOutput>>,
    /// Indexes of the outputs that count single messages.
    per_message: Vec<usize>,
    /// `--call-filter`: only the calls it passes reach the outputs.
    filter: Option<CallFilter>,
    /// What each TLS connection's report said (for `--connections`), when asked to keep it.
    pub(crate) tls_kept: Option<Vec<(ConnId, TlsInfo, TlsState)>>,
}

/// The calls a `--call-filter` lets through. A filter with words about the status (or plain
/// words, which may be) knows only at a call's end: such a call is announced as started then,
/// just before it ends, so every output still sees a start for every end.
struct CallFilter {
    filter: decoder::filter::Filter,
    /// `--from` / `--to`: only calls that ended within it (resolved at the first packet).
    range: Option<Range>,
    needs_end: bool,
    /// Calls announced as started (their end goes out whatever the filter says of it then).
    started: std::collections::HashSet<(ConnId, u32), foldhash::fast::FixedState>,
    /// Calls ended, and those let through.
    ended: u64,
    passed: u64,
}

/// A range of capture time, as given and once resolved.
#[derive(Debug, Clone, Copy)]
struct Range {
    from: Option<TimeSpec>,
    to: Option<TimeSpec>,
    at: Option<(Nanos, Nanos)>,
}

impl CallFilter {
    fn passes(&self, call: &CallRecord, open: bool) -> bool {
        let in_range = match self.range {
            None => true,
            // Known at the end only; a call with no end (still open) is in no range.
            Some(_) if open => true,
            Some(Range {
                at: Some((from, to)),
                ..
            }) => call.end.is_some_and(|e| e >= from && e <= to),
            Some(Range { at: None, .. }) => false,
        };
        in_range
            && self
                .filter
                .matches(&decoder::filter::Fields::of(call, open))
    }
}

impl Fanout {
    /// Lets only the calls `filter` passes, and that ended within `from..=to`, reach the
    /// outputs (connection events and per-message sizes are not about one call and pass).
    pub(crate) fn filter_calls(
        &mut self,
        filter: decoder::filter::Filter,
        (from, to): (Option<TimeSpec>, Option<TimeSpec>),
    ) {
        let range = (from.is_some() || to.is_some()).then_some(Range { from, to, at: None });
        self.filter = (!filter.is_empty() || range.is_some()).then(|| CallFilter {
            needs_end: filter.needs_end() || range.is_some(),
            filter,
            range,
            started: std::collections::HashSet::default(),
            ended: 0,
            passed: 0,
        });
    }

    /// The capture's first packet came at `first`: a range given as offsets is resolved.
    pub(crate) fn set_first_packet(&mut self, first: Nanos) {
        if let Some(r) = self.filter.as_mut().and_then(|f| f.range.as_mut())
            && r.at.is_none()
        {
            let from = r.from.map_or(Nanos::ZERO, |t| t.resolve(first));
            let to = r.to.map_or(Nanos::MAX, |t| t.resolve(first));
            r.at = Some((from, to));
        }
    }

    /// The range of `--from` / `--to`, resolved.
    pub(crate) fn range(&self) -> Option<(Nanos, Nanos)> {
        self.filter.as_ref()?.range?.at
    }

    /// With a call filter: its text, the calls that ended and those it let through.
    pub(crate) fn filtered(&self) -> Option<(&str, u64, u64)> {
        self.filter
            .as_ref()
            .map(|f| (f.filter.text(), f.ended, f.passed))
    }

    /// Whether some output counts single messages.
    pub(crate) fn wants_messages(&self) -> bool {
        !self.per_message.is_empty()
    }

    /// Adds an output; it hears events after the ones added before it.
    pub(crate) fn push(&mut self, o: impl AnyOutput) {
        if o.wants_messages() {
            self.per_message.push(self.outputs.len());
        }
        self.outputs.push(Box::new(o));
    }

    /// The output of type `T`, if there is one.
    pub(crate) fn get_mut<T: Any>(&mut self) -> Option<&mut T> {
        self.outputs
            .iter_mut()
            .find_map(|o| (&mut **o as &mut dyn Any).downcast_mut::<T>())
    }

    /// Takes the output of type `T` out of the fan-out.
    pub(crate) fn take<T: Any>(&mut self) -> Option<T> {
        let i = self
            .outputs
            .iter()
            .position(|o| (&**o as &dyn Any).is::<T>())?;
        let o: Box<dyn Any> = self.outputs.remove(i);
        self.per_message.retain(|&j| j != i);
        for j in &mut self.per_message {
            if *j > i {
                *j -= 1;
            }
        }
        o.downcast::<T>().ok().map(|b| *b)
    }

    /// Every output's `tick`.
    pub(crate) fn tick(&mut self, t: &Tick<'_>) {
        for o in &mut self.outputs {
            o.tick(t);
        }
    }

    /// Every output's `end_of_input`.
    pub(crate) fn end_of_input(&mut self, t: &Tick<'_>) {
        for o in &mut self.outputs {
            o.end_of_input(t);
        }
    }

    /// Finishes every output; the first error, if any (the others are finished regardless).
    pub(crate) fn finish(&mut self) -> std::io::Result<()> {
        let mut first = Ok(());
        for o in &mut self.outputs {
            let r = o.finish();
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

impl Fanout {
    fn start(&mut self, call: &CallRecord) {
        for o in &mut self.outputs {
            o.call_started(call);
        }
    }
}

impl Sink for Fanout {
    fn call_started(&mut self, call: &CallRecord) {
        if let Some(f) = &mut self.filter {
            if f.needs_end || !f.passes(call, true) {
                return;
            }
            f.started.insert((call.conn, call.stream_id));
        }
        self.start(call);
    }

    fn call_ended(&mut self, call: &CallRecord) {
        if let Some(f) = &mut self.filter {
            f.ended += 1;
            let announced = f.started.remove(&(call.conn, call.stream_id));
            let passes = f.passes(call, false);
            f.passed += u64::from(passes);
            if !announced {
                if !passes {
                    return;
                }
                if call.start.is_some() {
                    self.start(call);
                }
            }
        }
        for o in &mut self.outputs {
            o.call_ended(call);
        }
    }

    fn conn_event(&mut self, conn: ConnId, event: ConnEvent) {
        for o in &mut self.outputs {
            o.conn_event(conn, event);
        }
    }

    fn tls(&mut self, conn: ConnId, info: &TlsInfo, state: TlsState) {
        if let Some(keep) = self.tls_kept.as_mut()
            && keep.len() < crate::connections::MAX_ROWS
        {
            keep.push((conn, info.clone(), state));
        }
        for o in &mut self.outputs {
            o.tls(conn, info, state);
        }
    }

    fn dns_name(&mut self, addr: std::net::IpAddr, name: &str) {
        for o in &mut self.outputs {
            o.dns_name(addr, name);
        }
    }

    fn message(&mut self, conn: ConnId, from: Side, len: u32) {
        for &i in &self.per_message {
            if let Some(o) = self.outputs.get_mut(i) {
                o.message(conn, from, len);
            }
        }
    }

    fn message_body(
        &mut self,
        call: &CallRecord,
        from: Side,
        index: u64,
        body: &decoder::grpc::msg::Body,
    ) {
        if let Some(f) = &self.filter
            && !f.passes(call, true)
        {
            return;
        }
        for o in &mut self.outputs {
            o.message_body(call, from, index, body);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Counts the calls that ended (other tests use it too).
    #[derive(Default)]
    pub(crate) struct Count(pub(crate) u64);
    impl Sink for Count {
        fn call_ended(&mut self, _: &CallRecord) {
            self.0 += 1;
        }
    }
    impl Output for Count {}

    #[derive(Default)]
    struct Other;
    impl Sink for Other {
        fn call_ended(&mut self, _: &CallRecord) {}
    }
    impl Output for Other {}

    #[test]
    fn outputs_hear_every_call_and_come_back_by_type() {
        let mut f = Fanout::default();
        f.push(Other);
        f.push(Count::default());
        let rec = CallRecord::new(
            ConnId::new(0, 1),
            1,
            "10.0.0.1:1".parse().expect("addr"),
            "10.0.0.2:2".parse().expect("addr"),
            None,
        );
        f.call_ended(&rec);
        f.call_ended(&rec);
        assert_eq!(f.get_mut::<Count>().map(|c| c.0), Some(2));
        assert_eq!(f.take::<Count>().map(|c| c.0), Some(2));
        assert!(f.take::<Count>().is_none());
        assert!(f.get_mut::<Other>().is_some());
    }
}
