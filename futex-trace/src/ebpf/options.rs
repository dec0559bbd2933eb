//! How user stacks are taken: one struct, filled by the command line of both binaries (it is a clap
//! `Args` group they flatten) and carried whole to the loader.

use std::time::Duration;

use super::abi::{FT_MAX_STACK_RATE, FT_USTACK_BYTES};

/// The default `--stack-rate`: a wait that slept for d gets its stack with probability
/// min(1, d / 1 ms), as Go's block profile does with its rate.
pub const DEFAULT_STACK_RATE: Duration = Duration::from_millis(1);

/// The default `--waker-every`: one wake call in this many that wakes a waiter gets its stack taken.
pub const DEFAULT_WAKER_EVERY: u32 = 8;

/// The default bytes of stack copied per stack (`--stack-bytes`).
pub const DEFAULT_STACK_BYTES: usize = 16384;

/// How user stacks are taken by the eBPF programs.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Stacks (eBPF)")]
pub struct StackOptions {
    /// Capture no user stacks (the cheapest tracing; no flamegraphs or top stacks).
    #[arg(long, conflicts_with = "demo")]
    pub no_stacks: bool,
    /// Sample stacks as Go's block profile does. A wait that slept for d gets its stack with
    /// probability min(1, d / RATE) and counts for 1/p waits in flamegraphs and top stacks, so their
    /// widths stay unbiased while short waits cost no stack walk. 0 takes a stack of every wait that
    /// slept. Counts and times are exact either way (counted in the kernel).
    #[arg(long, value_name = "RATE", default_value = "1ms", conflicts_with = "demo",
          value_parser = stack_rate)]
    pub stack_rate: Duration,
    /// One wake call in N that wakes a waiter gets its stack (the waker flamegraph); each counts for N.
    /// 1 takes every one. A waiter that waited --stack-rate or longer always gets its waker's stack
    /// (counting for 1): the long waits all say where they were released from.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WAKER_EVERY, conflicts_with = "demo",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub waker_every: u32,
    /// How user stacks are taken. `dwarf` copies the top of each sampled stack (--stack-bytes) with
    /// the registers and unwinds it here from each library's CFI (.eh_frame), as `perf record
    /// --call-graph dwarf` does: whole stacks through glibc and through programs built without frame
    /// pointers (most distribution packages, Rust's release profile). `fp` lets the kernel walk frame
    /// pointers: cheaper per stack, but a stack stops at the first function built without them.
    /// With dwarf, Java and JavaScript frames are walked by frame pointers and named from the runtime's
    /// perf map (java -XX:+PreserveFramePointer and `jcmd PID Compiler.perfmap`; node --perf-basic-prof
    /// --interpreted-frames-native-stack), and CPython 3.11's frames are read from the interpreter.
    #[arg(long, value_enum, default_value = "dwarf", conflicts_with = "demo")]
    pub unwind: Unwind,
    /// With --unwind dwarf: bytes of stack copied per stack, from the stack pointer up (4096 to 28672,
    /// in pages: the rest of the stack pointer's page, then whole pages, at most BYTES rounded up to a
    /// page in all), where copies start: a process whose stacks are seen to go on above their copies
    /// (V8's, a JVM's) gets the largest from then on. A stack deeper than its copy is cut there
    /// (reported as truncated).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_STACK_BYTES, conflicts_with = "demo",
          value_parser = stack_bytes)]
    pub stack_bytes: usize,
    /// The ring buffer that carries events from the kernel to futex-trace (a power of two from 1M to
    /// 1G; the stack copies' ring is half of it). Memory held is about twice the two rings (the kernel
    /// maps a ring's pages twice). Larger rides out a reader starved of CPU longer; an event that
    /// finds the ring full is counted as lost, never silent (raise it then).
    #[arg(long, value_name = "SIZE", default_value = "8M", conflicts_with = "demo",
          value_parser = ring_size)]
    pub ring_size: u32,
    /// Do not count spins on the kernel's futex bucket locks. Counting them attaches to the kernel's
    /// lock contention tracepoints, whose programs run (and return at once) for every contended kernel
    /// lock on the host, traced process or not.
    #[arg(long, conflicts_with = "demo")]
    pub no_bucket_spins: bool,
}

/// The default `--ring-size`: 8 MiB, about 70,000 events (a futex storm's quarter second: the reader
/// drains it every few milliseconds; counts are exact in the kernel whatever is lost).
pub(super) const DEFAULT_RING_SIZE: u32 = 8 << 20;

/// A ring size (`--ring-size`): a power of two from 1 MiB to 1 GiB.
pub(super) fn ring_size(s: &str) -> Result<u32, String> {
    let b = crate::cli::parse::size(s)?;
    if !b.is_power_of_two() || !((1 << 20)..=(1 << 30)).contains(&b) {
        return Err(format!(
            "'{s}' is not a ring size: give a power of two from 1M to 1G, such as 16M or 64M"
        ));
    }
    Ok(b as u32)
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            no_stacks: false,
            stack_rate: DEFAULT_STACK_RATE,
            waker_every: DEFAULT_WAKER_EVERY,
            unwind: Unwind::Dwarf,
            stack_bytes: DEFAULT_STACK_BYTES,
            ring_size: DEFAULT_RING_SIZE,
            no_bucket_spins: false,
        }
    }
}

/// How user stacks are taken (`--unwind`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Unwind {
    /// Copy the top of each sampled stack and unwind it from CFI (.eh_frame): whole stacks through
    /// glibc and code built without frame pointers.
    #[default]
    Dwarf,
    /// The kernel walks frame pointers: cheaper per stack, but cut at the first function without one.
    Fp,
}

/// Bytes of stack copied per stack (`--stack-bytes`): 4096 up to what one copy holds.
pub fn stack_bytes(s: &str) -> Result<usize, String> {
    let max = FT_USTACK_BYTES;
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
    let max = Duration::from_nanos(FT_MAX_STACK_RATE);
    if d > max {
        return Err(format!(
            "'{s}' is longer than the largest stack rate, {}: give a shorter one",
            humantime::format_duration(Duration::from_millis(max.as_millis() as u64))
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
