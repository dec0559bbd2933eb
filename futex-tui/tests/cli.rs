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
