//! Parsers of the command-line values both binaries take (`futex-trace`, `futex-tui`): each refuses an
//! impossible value with the valid range, so that clap prints one line that says what to give instead.

use std::time::Duration;

use crate::session::SPEEDS;

/// Most threads the demo runs on its heat-graded locks.
pub const DEMO_MAX_THREADS: usize = 256;

/// A duration to trace ("10s", "500ms", "2m"), more than zero.
pub fn duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a duration ({e}): try 5s, 500ms or 2m"))?;
    if d.is_zero() {
        return Err(format!(
            "'{s}' traces nothing: give at least 1ms (e.g. 5s), or leave -d out"
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

/// How user stacks are taken (`--unwind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum UnwindArg {
    /// Copy the top of each sampled stack and unwind it from CFI (.eh_frame): whole stacks through
    /// glibc and code built without frame pointers.
    Dwarf,
    /// The kernel walks frame pointers: cheaper per stack, but cut at the first function without one.
    Fp,
}

impl UnwindArg {
    /// The tracer's setting, with `--stack-bytes`.
    pub fn with_bytes(self, bytes: usize) -> crate::ebpf::Unwind {
        match self {
            UnwindArg::Dwarf => crate::ebpf::Unwind::Dwarf { bytes },
            UnwindArg::Fp => crate::ebpf::Unwind::FramePointers,
        }
    }
}

/// Bytes of stack copied per stack (`--stack-bytes`): 4096 up to what one copy holds.
pub fn stack_bytes(s: &str) -> Result<usize, String> {
    let max = crate::abi::FT_USTACK_BYTES;
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number of bytes: try 16384"))?;
    if !(4096..=max).contains(&n) {
        return Err(format!(
            "{n} bytes is outside 4096..={max}: one copy holds at most {max} bytes of stack"
        ));
    }
    Ok(n)
}

/// A stack rate (`--stack-rate`): "0" (every wait), or a duration up to about 4 s.
pub fn stack_rate(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    let d = humantime::parse_duration(s).map_err(|e| {
        format!("'{s}' is not a duration ({e}): try 1ms, 100us, or 0 for a stack of every wait")
    })?;
    let max = Duration::from_nanos(crate::abi::FT_MAX_STACK_RATE);
    if d > max {
        return Err(format!(
            "'{s}' is longer than the largest stack rate, {}: give a shorter one",
            humantime::format_duration(Duration::from_millis(max.as_millis() as u64))
        ));
    }
    Ok(d)
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
        assert!(super::duration("0s")
            .unwrap_err()
            .contains("traces nothing"));
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
    fn stack_bytes_are_between_a_page_and_a_copy() {
        assert_eq!(stack_bytes("16384"), Ok(16384));
        assert!(stack_bytes("100").unwrap_err().contains("outside"));
        assert!(stack_bytes("1000000").unwrap_err().contains("at most"));
        assert!(stack_bytes("lots").is_err());
    }

    #[test]
    fn stack_rates_are_zero_or_durations_up_to_the_bpf_limit() {
        assert_eq!(stack_rate("0"), Ok(Duration::ZERO));
        assert_eq!(stack_rate("1ms"), Ok(Duration::from_millis(1)));
        assert!(stack_rate("5s").unwrap_err().contains("largest stack rate"));
        assert!(stack_rate("fast").is_err());
    }

    #[test]
    fn bytes_read_well() {
        assert_eq!(bytes(812.0), "812 B");
        assert_eq!(bytes(35_200.0), "35.2 kB");
        assert_eq!(bytes(1_300_000.0), "1.3 MB");
    }
}
