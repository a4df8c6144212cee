//! `--from` / `--to`: a point of capture time, absolute (RFC 3339, or Unix seconds) or an offset
//! from the capture's first packet (`+90s`, `+1m30s`, `+2h`, `+250ms`).

use std::time::Duration;

use decoder::Nanos;

/// A point of capture time as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeSpec {
    /// This packet time.
    At(Nanos),
    /// This long after the capture's first packet.
    After(Duration),
}

impl TimeSpec {
    /// The packet time it names, for a capture whose first packet came at `first`.
    pub(crate) fn resolve(self, first: Nanos) -> Nanos {
        match self {
            TimeSpec::At(t) => t,
            TimeSpec::After(d) => Nanos(
                first
                    .0
                    .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            ),
        }
    }
}

/// `+DURATION` (units h, m, s, ms, us, ns, summed: `+1m30s`; a bare number is seconds),
/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` (a space for the `T` too), or Unix seconds
/// (`1796143048.25`).
pub(crate) fn parse(s: &str) -> Result<TimeSpec, String> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('+') {
        return offset(rest).map(TimeSpec::After);
    }
    if s.contains('-') && s.len() >= 19 {
        return rfc3339(s).map(TimeSpec::At);
    }
    // Unix seconds, read as decimal digits (an f64 would lose the nanoseconds).
    let bad =
        || format!("{s:?}: a time is +OFFSET (+90s, +1m30s), YYYY-MM-DDTHH:MM:SSZ or Unix seconds");
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || whole.len() > 11 {
        return Err(bad());
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let secs: u64 = whole.parse().map_err(|_| bad())?;
    let digits = &frac[..frac.len().min(9)];
    let mut ns: u64 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| bad())?
    };
    for _ in digits.len()..9 {
        ns *= 10;
    }
    Ok(TimeSpec::At(Nanos(secs * 1_000_000_000 + ns)))
}

fn offset(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| format!("+{s}: {e}"));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("+{s}: a number needs its unit (h, m, s, ms, us, ns)"))?;
        let value: f64 = rest[..n]
            .parse()
            .map_err(|_| format!("+{s}: {:?} is not a number", &rest[..n]))?;
        let unit_len = rest[n..]
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len() - n);
        let unit = &rest[n..n + unit_len];
        let scale = match unit {
            "h" => 3600.0,
            "m" | "min" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(format!("+{s}: unknown unit {unit:?} (h, m, s, ms, us, ns)")),
        };
        total += Duration::try_from_secs_f64(value * scale).map_err(|e| format!("+{s}: {e}"))?;
        rest = &rest[n + unit_len..];
    }
    Ok(total)
}

/// Days from 1970-01-01 to the civil date (proleptic Gregorian; Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn rfc3339(s: &str) -> Result<Nanos, String> {
    let bad = || format!("{s:?}: a time is YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM)");
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        s.get(r).and_then(|t| t.parse().ok()).ok_or_else(bad)
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':' || b[16] != b':' || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    if h > 23 || mi > 59 || sec > 60 {
        return Err(bad());
    }
    let mut rest = &s[19..];
    let mut frac_ns = 0i64;
    if let Some(f) = rest.strip_prefix('.') {
        let n = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
        let digits = &f[..n.min(9)];
        if digits.is_empty() {
            return Err(bad());
        }
        frac_ns = digits.parse::<i64>().map_err(|_| bad())?
            * 10i64.pow(9 - u32::try_from(digits.len()).unwrap_or(9));
        rest = &f[n..];
    }
    let zone = match rest {
        "Z" | "z" | "" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return Err(bad()),
            };
            let z = &rest[1..];
            let (zh, zm) = z.split_once(':').ok_or_else(bad)?;
            let (zh, zm): (i64, i64) = (
                zh.parse().map_err(|_| bad())?,
                zm.parse().map_err(|_| bad())?,
            );
            sign * (zh * 3600 + zm * 60)
        }
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - zone;
    let ns = secs
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(frac_ns))
        .filter(|n| *n >= 0)
        .ok_or_else(|| format!("{s:?}: before 1970"))?;
    Ok(Nanos(u64::try_from(ns).map_err(|_| bad())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_dates_and_seconds() {
        let s = |t: &str| parse(t).expect(t);
        assert_eq!(s("+90s"), TimeSpec::After(Duration::from_secs(90)));
        assert_eq!(s("+1m30s"), TimeSpec::After(Duration::from_secs(90)));
        assert_eq!(s("+1.5h"), TimeSpec::After(Duration::from_secs(5400)));
        assert_eq!(s("+250ms"), TimeSpec::After(Duration::from_millis(250)));
        assert_eq!(s("+2"), TimeSpec::After(Duration::from_secs(2)));
        // date -u -d 2026-12-01T21:00:00Z +%s: 1796158800.
        assert_eq!(
            s("2026-12-01T21:00:00Z"),
            TimeSpec::At(Nanos(1_796_158_800_000_000_000))
        );
        assert_eq!(
            s("2026-12-01 22:00:00.5+01:00"),
            TimeSpec::At(Nanos(1_796_158_800_500_000_000))
        );
        assert_eq!(s("1970-01-01T00:00:00Z"), TimeSpec::At(Nanos(0)));
        assert_eq!(
            s("2000-02-29T00:00:00Z"),
            TimeSpec::At(Nanos(951_782_400_000_000_000))
        );
        assert_eq!(
            s("1796158800.25"),
            TimeSpec::At(Nanos(1_796_158_800_250_000_000))
        );
        for bad in [
            "+5 parsecs",
            "+m",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-12-01T00:00",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            TimeSpec::After(Duration::from_secs(2)).resolve(Nanos(1_000)),
            Nanos(2_000_001_000)
        );
    }
}
