//! Parsers of the command-line values both binaries take (`futex-trace`, `futex-tui`): each refuses an
//! impossible value with the valid range, so that clap prints one line that says what to give instead.

use std::time::Duration;

use crate::trace::SPEEDS;

/// Most threads the demo runs on its heat-graded locks.
pub const DEMO_MAX_THREADS: usize = 256;

/// A duration ("10s", "500ms", "100us"), more than zero: a threshold, an interval.
pub fn duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a duration ({e}): try 5s, 500ms or 2m"))?;
    if d.is_zero() {
        return Err(format!(
            "'{s}' is no time at all: give more than 0 (e.g. 5s)"
        ));
    }
    Ok(d)
}

/// How long to trace (`-d`: "10s", "500ms", "2m"): at least a millisecond.
pub fn trace_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a duration ({e}): try 5s, 500ms or 2m"))?;
    if d < Duration::from_millis(1) {
        return Err(format!(
            "'{s}' is too short to trace: give at least 1ms (e.g. 5s), or leave -d out"
        ));
    }
    Ok(d)
}

/// A regular expression (`--idle-frame`).
pub fn regex(s: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(s).map_err(|e| {
        let first = e.to_string();
        let last = first.lines().last().unwrap_or("").trim().to_string();
        format!("'{s}' is not a regular expression ({last})")
    })
}

/// Most slots `--slots` takes: a kernel futex hash of a million buckets is far past any real table.
pub const MAX_KERNEL_SLOTS: u32 = 1 << 20;

/// A slot count of a kernel private futex hash (`--slots`): a power of two from 2, as
/// `prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_SET_SLOTS, n)` takes.
pub fn slots(s: &str) -> Result<u32, String> {
    let n: u32 = s.trim().parse().map_err(|_| {
        format!("'{s}' is not a slot count: give a power of two such as 16, 64 or 256")
    })?;
    if !(2..=MAX_KERNEL_SLOTS).contains(&n) || !n.is_power_of_two() {
        return Err(format!(
            "{n} slots: the kernel's private futex hash has a power of two from 2 to \
             {MAX_KERNEL_SLOTS} slots (e.g. 16, 64, 256)"
        ));
    }
    Ok(n)
}

/// A size in bytes (`--max-size`): a number with an optional unit k, M, G (powers of 1024; "B" and
/// "iB" may follow), at least 4 KiB.
pub fn size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        Some((i, 't' | 'T')) => (&t[..i], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a size: try 500M, 2G or 64k"))?;
    let bytes = v * mult as f64;
    if !bytes.is_finite() || bytes < 4096.0 {
        return Err(format!(
            "'{s}' is too small for a recording: give at least 4k"
        ));
    }
    Ok(bytes.min(u64::MAX as f64) as u64)
}

/// Bytes for people: "812 B", "35.2 kB", "1.3 MB" (powers of 1000).
pub fn bytes(b: f64) -> String {
    match b {
        b if b < 1e3 => format!("{b:.0} B"),
        b if b < 1e6 => format!("{:.1} kB", b / 1e3),
        b if b < 1e9 => format!("{:.1} MB", b / 1e6),
        b => format!("{:.2} GB", b / 1e9),
    }
}

/// A replay speed, in [`SPEEDS`].
pub fn speed(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !SPEEDS.contains(&v) {
        return Err(format!(
            "{v} is not a replay speed: give one from {} to {} (1 = as recorded)",
            SPEEDS.start(),
            SPEEDS.end()
        ));
    }
    Ok(v)
}

/// The demo's thread count, 1 to [`DEMO_MAX_THREADS`].
pub fn threads(s: &str) -> Result<usize, String> {
    let v: usize = s
        .parse()
        .map_err(|_| format!("'{s}' is not a whole number"))?;
    if !(1..=DEMO_MAX_THREADS).contains(&v) {
        return Err(format!(
            "the demo runs 1 to {DEMO_MAX_THREADS} threads, not {v}"
        ));
    }
    Ok(v)
}

/// The demo's heat ratio between consecutive locks, in (0, 1].
pub fn skew(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(format!("{v} is outside (0, 1]: try 0.5"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn impossible_values_are_refused_with_the_range() {
        for short in ["0s", "1ns", "999us"] {
            assert!(super::trace_duration(short)
                .unwrap_err()
                .contains("give at least 1ms"));
        }
        assert!(super::trace_duration("1ms").is_ok());
        assert_eq!(
            super::duration("100us"),
            Ok(std::time::Duration::from_micros(100))
        );
        assert!(super::duration("0s").is_err());
        assert!(super::duration("soon").is_err());
        assert_eq!(
            super::duration("250ms"),
            Ok(std::time::Duration::from_millis(250))
        );
        assert!(super::speed("0").unwrap_err().contains("from 0.0625 to 64"));
        assert_eq!(super::speed("0.5"), Ok(0.5));
        assert!(super::threads("100000").unwrap_err().contains("1 to 256"));
        assert!(super::threads("0").is_err());
        assert_eq!(super::threads("8"), Ok(8));
        assert!(super::skew("3").unwrap_err().contains("outside (0, 1]"));
        assert_eq!(super::skew("1"), Ok(1.0));
    }

    use super::*;

    #[test]
    fn sizes_take_units_and_refuse_nonsense() {
        assert_eq!(size("4096"), Ok(4096));
        assert_eq!(size("64k"), Ok(64 << 10));
        assert_eq!(size("500M"), Ok(500 << 20));
        assert_eq!(size("1.5GiB"), Ok(3 << 29));
        assert_eq!(size("2GB"), Ok(2 << 30));
        assert!(size("12").unwrap_err().contains("at least 4k"));
        assert!(size("lots").unwrap_err().contains("not a size"));
        assert!(size("-5M").is_err());
    }

    #[test]
    fn bytes_read_well() {
        assert_eq!(bytes(812.0), "812 B");
        assert_eq!(bytes(35_200.0), "35.2 kB");
        assert_eq!(bytes(1_300_000.0), "1.3 MB");
    }
}
