//! Bad input and a missing terminal get one clear line and exit status 2, never a panic.

use std::process::{Command, Stdio};

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_futex-tui"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn without_a_terminal_it_says_so_and_what_to_run_instead() {
    let (code, err) = run(&[]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("needs a terminal") && err.contains("futex-trace report --demo"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn pid_and_bad_skew_are_refused_clearly() {
    let (code, err) = run(&["-p", "999999999"]);
    assert_eq!(code, Some(2));
    assert!(
        (err.contains("no process with pid 999999999") || err.contains("needs root"))
            && !err.contains("panicked"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let (code, err) = run(&["--replay", "/nonexistent.ftr"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("cannot open /nonexistent.ftr"), "{err}");
    let (code, err) = run(&["--skew", "3"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("outside (0, 1]") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn impossible_arguments_are_refused_with_the_valid_range() {
    for (args, want) in [
        (
            &["--threads", "100000"][..],
            "the demo runs 1 to 256 threads",
        ),
        (
            &["--replay", "x.ftr", "--speed", "0"][..],
            "from 0.0625 to 64",
        ),
    ] {
        let (code, err) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(
            err.contains(want) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn the_privileges_hint_is_one_futex_tui_understands() {
    // As nobody: needs root to switch user (CI runs as root, where a skip is a failure).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the_privileges_hint_is_one_futex_tui_understands must run in CI (as root)"
        );
        eprintln!("SKIPPED the_privileges_hint_is_one_futex_tui_understands: not root, cannot become nobody");
        return;
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_futex-tui"))
        .args(["-p", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("needs root") && err.contains("built-in demo"),
        "{err}"
    );
    assert!(!err.contains("--demo"), "futex-tui has no --demo: {err}");
}
