//! The series over a capture's own time, for `promtool tsdb create-blocks-from openmetrics`:
//! the registry is sampled at every step boundary the packet clock crosses, and written as
//! OpenMetrics text with a timestamp on every sample, each series' samples together and in time
//! order, families in registration order.

use std::collections::BTreeMap;
use std::io::Write;

use prometheus_client::registry::Registry;

fn encode(registry: &Registry) -> Option<String> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).ok()?;
    Some(text)
}

/// One family's text: its metadata lines and, per series, (timestamp, value) samples.
#[derive(Debug, Default)]
struct FamilyText {
    meta: Vec<String>,
    series: BTreeMap<String, Vec<(u64, String)>>,
}

/// Samples a registry over capture time.
#[derive(Debug)]
pub struct Backfill {
    step_ns: u64,
    next: Option<u64>,
    order: Vec<String>,
    families: BTreeMap<String, FamilyText>,
    /// Samples kept; past the bound the oldest steps are not sampled again (counted).
    samples: usize,
    max_samples: usize,
}

impl Backfill {
    /// Samples every `step_secs` seconds of capture time, keeping at most `max_samples`.
    pub fn new(step_secs: u64, max_samples: usize) -> Backfill {
        Backfill {
            step_ns: step_secs.max(1) * 1_000_000_000,
            next: None,
            order: Vec::new(),
            families: BTreeMap::new(),
            samples: 0,
            max_samples,
        }
    }

    /// True when packet time `ts` has reached the next step boundary.
    pub fn due(&self, ts: decoder::Nanos) -> bool {
        self.next.is_none_or(|n| ts.0 >= n)
    }

    /// Records the registry at the step boundary the clock reached, with the current values.
    /// Call it before handling the packet at `ts`, so the values are those of the boundary's own
    /// time. When packets skipped several steps (a quiet stretch, a capture resumed later), the
    /// steps between have no data and get no sample: one sample per step that has data, and
    /// the work is bounded by the packets, not by how far time jumped.
    pub fn sample(&mut self, ts: decoder::Nanos, registry: &Registry) {
        let ts = ts.0;
        let at = self.next.unwrap_or(ts - ts % self.step_ns);
        if at > ts {
            return;
        }
        let Some(text) = encode(registry) else { return };
        self.add(&text, at);
        // The next boundary after the packet's own step.
        self.next = Some((ts - ts % self.step_ns).saturating_add(self.step_ns));
    }

    /// The capture ended: one last sample at the next boundary, with the final values.
    pub fn finish(&mut self, registry: &Registry) {
        if let (Some(at), Some(text)) = (self.next, encode(registry)) {
            self.add(&text, at);
        }
    }

    fn add(&mut self, text: &str, at: u64) {
        let mut family = String::new();
        for line in text.lines() {
            if line == "# EOF" {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# ") {
                let name = rest.split(' ').nth(1).unwrap_or("").to_owned();
                if !self.families.contains_key(&name) {
                    self.order.push(name.clone());
                }
                let f = self.families.entry(name.clone()).or_default();
                if !f.meta.iter().any(|m| m == line) {
                    f.meta.push(line.to_owned());
                }
                family = name;
                continue;
            }
            if self.samples >= self.max_samples {
                return;
            }
            // "name{labels} value" possibly followed by an exemplar, which backfill drops.
            let sample = line.split_once(" # ").map_or(line, |(s, _)| s);
            let Some((series, value)) = sample.rsplit_once(' ') else {
                continue;
            };
            if let Some(f) = self.families.get_mut(&family) {
                f.series
                    .entry(series.to_owned())
                    .or_default()
                    .push((at, value.to_owned()));
                self.samples += 1;
            }
        }
    }

    /// Writes everything sampled as OpenMetrics text.
    pub fn write(&self, w: &mut dyn Write) -> std::io::Result<()> {
        for name in &self.order {
            let Some(f) = self.families.get(name) else {
                continue;
            };
            if f.series.is_empty() {
                continue;
            }
            for m in &f.meta {
                writeln!(w, "{m}")?;
            }
            for (series, points) in &f.series {
                for (ts, v) in points {
                    // OpenMetrics timestamps are seconds.
                    writeln!(
                        w,
                        "{series} {v} {}.{:03}",
                        ts / 1_000_000_000,
                        ts % 1_000_000_000 / 1_000_000
                    )?;
                }
            }
        }
        writeln!(w, "# EOF")
    }
}
