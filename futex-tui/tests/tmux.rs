//! futex-tui end to end, as a person uses it: started in tmux on its demo, read with capture-pane, keys
//! sent with send-keys, `q` quits with status 0 and the terminal leaves the alternate screen.
//! Needs tmux; skips with a reason without it, except under CI=true, where it fails.

use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().expect("tmux runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kills the test's tmux server however the test ends, so a failing run leaves no dashboard running.
struct KillServer(String);

impl Drop for KillServer {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .output();
    }
}

/// Polls `f` for up to `limit`.
fn until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f() {
            return true;
        }
        thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn demo_in_tmux_shows_contention_and_quits_cleanly() {
    if Command::new("tmux").arg("-V").output().is_err() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("tmux is missing in CI: .ci/run must install it");
        }
        eprintln!("SKIPPED tmux test: tmux is not installed (apt-get install tmux)");
        return;
    }
    let session = format!("futex-tui-test-{}", std::process::id());
    let socket = format!("futex-tui-test-{}", std::process::id());
    let exit_file: PathBuf = std::env::temp_dir().join(format!("{session}.exit"));
    let _ = std::fs::remove_file(&exit_file);
    let cmd = format!(
        "{} ; echo $? > {}",
        env!("CARGO_BIN_EXE_futex-tui"),
        exit_file.display()
    );
    let s = |args: &[&str]| {
        let mut v = vec!["-L", socket.as_str()];
        v.extend_from_slice(args);
        tmux(&v)
    };
    let _kill = KillServer(socket.clone());
    s(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "80",
        "-y",
        "24",
        &cmd,
    ]);
    s(&["set-option", "-t", &session, "remain-on-exit", "on"]);
    // The rates cover the last full second: wait until the hot lock shows waits/s > 0 and the hottest
    // bucket is named with its rate.
    let waits_per_sec = |screen: &str| -> f64 {
        screen
            .lines()
            .find(|l| l.contains("demo: heat lock 0"))
            .and_then(|l| l.split_whitespace().nth(5)) // "│demo:" "heat" "lock" "0" kind waits/s
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let mut screen = String::new();
    let shown = until(Duration::from_secs(20), || {
        screen = s(&["capture-pane", "-p", "-t", &session]);
        screen.contains("Buckets") && screen.contains("hottest ") && waits_per_sec(&screen) > 0.0
    });
    assert!(
        shown,
        "the dashboard never showed contention on the demo's locks:\n{screen}"
    );
    assert!(
        screen.contains("Requeue movement") && screen.contains("demo: broad"),
        "{screen}"
    );
    // Help opens and closes.
    s(&["send-keys", "-t", &session, "?"]);
    assert!(until(Duration::from_secs(5), || s(&[
        "capture-pane",
        "-p",
        "-t",
        &session
    ])
    .contains(" Keys ")));
    s(&["send-keys", "-t", &session, "Escape"]);
    s(&["send-keys", "-t", &session, "q"]);
    let exited = until(Duration::from_secs(15), || {
        std::fs::read_to_string(&exit_file).is_ok_and(|c| !c.trim().is_empty())
    });
    let alt = s(&["display-message", "-p", "-t", &session, "#{alternate_on}"]);
    s(&["kill-session", "-t", &session]);
    assert!(exited, "futex-tui did not exit after q");
    assert_eq!(std::fs::read_to_string(&exit_file).unwrap().trim(), "0");
    assert_eq!(
        alt.trim(),
        "0",
        "the terminal was left in the alternate screen"
    );
    let _ = std::fs::remove_file(&exit_file);
}
