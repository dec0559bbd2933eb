//! What the test files share: the binary, its JSON report of a recording, the workload, and the
//! privilege check of root-only tests (`require_privileges!()`, which names the test itself).

#[allow(dead_code, reason = "only the ebpf tests and the bench use bpftrace")]
pub(crate) mod bpftrace;
#[allow(dead_code, reason = "only the tests of serve use it")]
pub(crate) mod serve;

/// Asserts that a command succeeded, showing its stderr when it did not.
#[allow(
    dead_code,
    reason = "not every test file that includes this module runs commands"
)]
pub(crate) fn succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The name of the function it is used in (a test's name).
#[allow(
    unused_macros,
    reason = "not every test file that includes this module is root-only"
)]
macro_rules! function_name {
    () => {{
        fn f() {}
        let n = std::any::type_name_of_val(&f);
        let n = n.strip_suffix("::f").unwrap_or(n);
        n.rsplit("::").next().unwrap_or(n)
    }};
}

/// Returns from the calling test when it cannot run here (not root, or no tracefs), saying why under
/// the test's own name; under CI=true it fails instead (see [`privileged`]).
#[allow(
    unused_macros,
    reason = "not every test file that includes this module is root-only"
)]
macro_rules! require_privileges {
    () => {
        if !crate::common::privileged(function_name!()) {
            return;
        }
    };
}

/// The `futex-trace` binary of this build.
#[allow(
    dead_code,
    reason = "not every test file that includes this module runs it"
)]
pub(crate) fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_futex-trace"))
}

/// `futex-trace report --json` of a recording.
#[allow(
    dead_code,
    reason = "not every test file that includes this module reads reports"
)]
pub(crate) fn report_json(trace: &std::path::Path) -> serde_json::Value {
    let out = bin()
        .args(["report", "--json"])
        .arg(trace)
        .output()
        .unwrap();
    succeeded(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// True when a root-only test may run (root or CAP_BPF + CAP_PERFMON, and tracefs mounted). Otherwise
/// prints why it skips and returns false, except under CI=true (CI runs as root), where it fails.
#[allow(
    dead_code,
    reason = "not every test file that includes this module is root-only"
)]
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

/// The `futex-workload` binary (the workspace's test workload crate), built with this test's profile
/// into this test's target directory if it is not there yet (`cargo test -p futex-trace` alone does not
/// build other packages' binaries).
#[allow(
    dead_code,
    reason = "not every test file that includes this module runs the workload"
)]
pub(crate) fn workload() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| build_workload(false)).clone()
}

/// The `futex-workload` binary as a default `cargo build --release` makes programs: the release profile,
/// without the workspace's forced frame pointers (`.cargo/config.toml`; RUSTFLAGS set, even empty,
/// replaces it), in a target directory of its own (`target/default-release`).
#[allow(
    dead_code,
    reason = "not every test file that includes this module runs the workload"
)]
pub(crate) fn release_workload() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| build_workload(true)).clone()
}

#[allow(
    dead_code,
    reason = "not every test file that includes this module runs the workload"
)]
fn build_workload(force_release: bool) -> std::path::PathBuf {
    // target/<profile>/deps/<test binary> → target/<profile>/futex-workload
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>");
    let target_dir = profile_dir.parent().expect("target/");
    let release = force_release || profile_dir.file_name().is_some_and(|n| n == "release");
    let default_release = target_dir.join("default-release");
    let target_dir = if force_release {
        default_release.as_path()
    } else {
        target_dir
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = std::process::Command::new(cargo);
    build
        .args(["build", "--quiet", "-p", "futex-workload", "--target-dir"])
        .arg(target_dir);
    if release {
        build.arg("--release");
    }
    if force_release {
        build.env("RUSTFLAGS", "");
    }
    let status = build.status().expect("run cargo to build futex-workload");
    assert!(status.success(), "building futex-workload failed");
    let dir = if release {
        target_dir.join("release")
    } else {
        profile_dir.to_path_buf()
    };
    dir.join("futex-workload")
}

/// Takes a futex-trace child's stderr and reads it until futex-trace says it is tracing (its first line,
/// `futex-trace: tracing …`, printed once every program is attached); returns the rest to read on.
#[allow(
    dead_code,
    reason = "not every test file that includes this module runs a live tracer"
)]
pub(crate) fn tracing_started(
    tracer: &mut std::process::Child,
) -> std::io::BufReader<std::process::ChildStderr> {
    use std::io::BufRead;
    let mut err = std::io::BufReader::new(tracer.stderr.take().expect("stderr piped"));
    let mut line = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !line.starts_with("futex-trace: tracing ") {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "futex-trace ended before tracing"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "futex-trace did not start tracing within 30 s"
        );
    }
    err
}
