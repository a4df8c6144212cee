//! Numbers as the views print them: short, fixed width where it matters.

use std::time::Duration;

/// "850ns", "12.3µs", "4.56ms", "1.23s", "2m03s".
pub fn duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 10_000 {
        format!("{:.1}µs", ns as f64 / 1e3)
    } else if ns < 1_000_000 {
        format!("{:.0}µs", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2}ms", ns as f64 / 1e6)
    } else if ns < 60_000_000_000 {
        format!("{:.2}s", ns as f64 / 1e9)
    } else {
        let s = d.as_secs();
        if s < 3600 {
            format!("{}m{:02}s", s / 60, s % 60)
        } else {
            format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
        }
    }
}

/// A duration in at most 6 characters: "850ns", "672µs", "3.60ms", "108ms", "12.3s", "5m03s".
pub fn duration_short(d: Duration) -> String {
    let ns = d.as_nanos();
    let f = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 10_000 {
        format!("{:.1}µs", f / 1e3)
    } else if ns < 1_000_000 {
        format!("{:.0}µs", f / 1e3)
    } else if ns < 10_000_000 {
        format!("{:.2}ms", f / 1e6)
    } else if ns < 100_000_000 {
        format!("{:.1}ms", f / 1e6)
    } else if ns < 1_000_000_000 {
        format!("{:.0}ms", f / 1e6)
    } else if ns < 10_000_000_000 {
        format!("{:.2}s", f / 1e9)
    } else if ns < 60_000_000_000 {
        format!("{:.1}s", f / 1e9)
    } else {
        duration(d)
    }
}

/// A duration or "-".
pub fn opt_duration(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), duration)
}

/// "1 call", "2 calls", "12.3k calls": a count and its noun, plural unless one.
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{} {noun}s", count(n))
    }
}

/// "999", "12.3k", "4.56M".
pub fn count(n: u64) -> String {
    if n < 10_000 {
        n.to_string()
    } else if n < 1_000_000 {
        format!("{:.1}k", n as f64 / 1e3)
    } else if n < 1_000_000_000 {
        format!("{:.2}M", n as f64 / 1e6)
    } else {
        format!("{:.2}G", n as f64 / 1e9)
    }
}

/// Bytes: "512 B", "1.5 KiB", "3.2 MiB".
pub fn bytes(n: u64) -> String {
    if n < 1024 {
        format!("{n} B")
    } else if n < 1 << 20 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else if n < 1 << 30 {
        format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20))
    } else {
        format!("{:.2} GiB", n as f64 / f64::from(1u32 << 30))
    }
}

/// Bytes in at most 5 characters: "512B", "285K", "1.2M", "3.4G".
pub fn bytes_short(n: u64) -> String {
    let f = n as f64;
    if n < 1000 {
        format!("{n}B")
    } else if f < 9.95e3 {
        format!("{:.1}K", f / 1e3)
    } else if f < 999.5e3 {
        format!("{:.0}K", f / 1e3)
    } else if f < 9.95e6 {
        format!("{:.1}M", f / 1e6)
    } else if f < 999.5e6 {
        format!("{:.0}M", f / 1e6)
    } else {
        format!("{:.1}G", f / 1e9)
    }
}

/// `s` in at most `width` characters, cut on the right ("head…").
pub fn fit_right(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let head: String = s.chars().take(width - 1).collect();
    format!("{head}…")
}

/// `s` in at most `width` characters, cut on the left ("…tail").
pub fn fit_left(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        return s.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let tail: String = s.chars().skip(n - (width - 1)).collect();
    format!("…{tail}")
}

/// A method name in at most `width` characters: whole when it fits, else without the
/// service's package ("/pkg.sub.Svc/M" -> "Svc/M"), else cut on the left.
pub fn fit_method(name: &str, width: usize) -> String {
    if name.chars().count() <= width {
        return name.to_owned();
    }
    let short = match decoder::grpc::split_path(name) {
        Some((svc, m)) => format!("{}/{m}", svc.rsplit('.').next().unwrap_or(svc)),
        None => name.to_owned(),
    };
    fit_left(&short, width)
}

/// Calls per second: "0", "0.4", "12.5", "1.2k".
pub fn rate(r: f64) -> String {
    if r == 0.0 {
        "0".to_owned()
    } else if r < 100.0 {
        format!("{r:.1}")
    } else if r < 10_000.0 {
        format!("{r:.0}")
    } else {
        format!("{:.1}k", r / 1e3)
    }
}

/// A ratio as a percentage, "-" when unknown.
pub fn percent(r: Option<f64>) -> String {
    match r {
        None => "-".to_owned(),
        Some(0.0) => "0%".to_owned(),
        Some(r) if r < 0.1 => format!("{:.1}%", r * 100.0),
        Some(r) => format!("{:.0}%", r * 100.0),
    }
}

/// One character per value, scaled to the largest; zero is a space.
pub fn spark(values: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|&v| {
            if v == 0 || max == 0 {
                ' '
            } else {
                // v <= max, so the index is within 0..8.
                #[allow(clippy::cast_possible_truncation)]
                let i = (v * 7 / max) as usize;
                BARS[i.min(7)]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(duration(Duration::from_micros(1234)), "1.23ms");
        assert_eq!(duration(Duration::from_nanos(800)), "800ns");
        assert_eq!(duration(Duration::from_secs(125)), "2m05s");
        assert_eq!(duration(Duration::from_secs(7300)), "2h01m");
        assert_eq!(duration_short(Duration::from_micros(108_270)), "108ms");
        assert_eq!(duration_short(Duration::from_micros(16_500)), "16.5ms");
        assert_eq!(duration_short(Duration::from_micros(3_604)), "3.60ms");
        assert_eq!(count(12_345), "12.3k");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(rate(0.25), "0.2");
        assert_eq!(rate(12_500.0), "12.5k");
        assert_eq!(percent(Some(0.5)), "50%");
        assert_eq!(percent(Some(0.001)), "0.1%");
        assert_eq!(spark(&[0, 1, 7, 14]), " ▁▄█");
        assert_eq!(bytes_short(285_012), "285K");
        assert_eq!(bytes_short(1_234_567), "1.2M");
        assert_eq!(
            fit_method("/grpctap.test.Echo/Unary", 30),
            "/grpctap.test.Echo/Unary"
        );
        assert_eq!(fit_method("/grpctap.test.Echo/Unary", 12), "Echo/Unary");
        assert_eq!(fit_method("/grpctap.test.Echo/Unary", 6), "…Unary");
        assert_eq!(fit_left("abcdef", 4), "…def");
        assert_eq!(fit_right("200/300", 7), "200/300");
        assert_eq!(fit_right("200/300", 5), "200/…");
        assert_eq!(fit_right("abc", 0), "");
    }
}
