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
}
