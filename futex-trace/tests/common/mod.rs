//! What the root-only test files share.

/// True when a root-only test may run (root or CAP_BPF + CAP_PERFMON, and tracefs mounted). Otherwise
/// prints why it skips and returns false, except under CI=true (CI runs as root), where it fails.
pub(crate) fn privileged(test: &str) -> bool {
    match futex_trace::ebpf::check_can_trace() {
        Ok(()) => true,
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test}: must run in CI but cannot: {why}"
            );
            eprintln!("SKIPPED {test}: {why}");
            false
        }
    }
}
