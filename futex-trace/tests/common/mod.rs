//! What the root-only test files share.

/// True when a root-only test may run (root or CAP_BPF + CAP_PERFMON, and tracefs mounted). Otherwise
/// prints why it skips and returns false, except under CI=true (CI runs as root), where it fails.
pub(crate) fn privileged(test: &str) -> bool {
    let why = if futex_trace::ebpf::check_privileges().is_err() {
        Some("not root (needs CAP_BPF and CAP_PERFMON)".to_string())
    } else {
        futex_trace::ebpf::tracefs().err().map(|e| e.to_string())
    };
    match why {
        None => true,
        Some(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test}: must run in CI but cannot: {why}"
            );
            eprintln!("SKIPPED {test}: {why}");
            false
        }
    }
}
