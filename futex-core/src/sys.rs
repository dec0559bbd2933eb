//! The two kernel services futex-core needs: parking a thread on a word (`futex(2)`, private) and a
//! monotonic clock in nanoseconds (`CLOCK_MONOTONIC`, the clock eBPF's `bpf_ktime_get_ns` reads, so that
//! timestamps from probes and from kernel tracepoints can be compared).

#[cfg(not(loom))]
use std::time::Duration;

/// Nanoseconds of `CLOCK_MONOTONIC`. Read through the vDSO: no syscall.
#[cfg(not(loom))]
#[inline]
pub(crate) fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC is always supported on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// Under loom there is no time: timestamps are zero and every timeout may fire at any point.
#[cfg(loom)]
#[inline]
pub(crate) fn now_ns() -> u64 {
    0
}

/// Sleeps while `*word == expected`, at most `timeout`. Returns on a wake, a timeout, a signal or a
/// mismatch: the caller re-checks its own condition in every case.
#[cfg(not(loom))]
pub(crate) fn futex_wait(
    word: &std::sync::atomic::AtomicU32,
    expected: u32,
    timeout: Option<Duration>,
) {
    let ts;
    let ts_ptr = match timeout {
        Some(d) => {
            ts = libc::timespec {
                tv_sec: d.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            };
            &ts as *const libc::timespec
        }
        None => std::ptr::null(),
    };
    // SAFETY: `word` is a live, aligned u32 for the duration of the call; `ts_ptr` is null or points at a
    // timespec that outlives the call. FUTEX_WAIT only reads both.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ts_ptr,
        )
    };
}

/// Wakes at most one thread sleeping in [`futex_wait`] on `addr`.
///
/// `addr` is taken as a bare address, never dereferenced: the word may belong to a waiter that has already
/// returned (its stack frame gone). The kernel only hashes the address; at worst an unrelated thread that
/// now sleeps on the same address sees a spurious wakeup, which every caller of `futex_wait` tolerates.
#[cfg(not(loom))]
pub(crate) fn futex_wake_addr(addr: usize) {
    // SAFETY: FUTEX_WAKE does not access user memory at `addr`; any address is acceptable to the kernel.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            addr as *const u32,
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1u32,
        )
    };
}
