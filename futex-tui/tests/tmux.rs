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

fn have_tmux() -> bool {
    if Command::new("tmux").arg("-V").output().is_err() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("tmux is missing in CI: .ci/run must install it");
        }
        eprintln!("SKIPPED tmux test: tmux is not installed (apt-get install tmux)");
        return false;
    }
    true
}

/// futex-tui running in a tmux session of its own (its own server socket), 80×24.
/// True when `test` may trace through eBPF (root, tracefs); otherwise says why it skips, and fails under
/// CI=true (CI runs as root).
fn can_trace(test: &str) -> bool {
    match futex_trace::ebpf::check_can_trace() {
        Ok(()) => true,
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test} must run in CI but cannot: {e}"
            );
            eprintln!("SKIPPED {test}: {e}");
            false
        }
    }
}

struct Dashboard {
    socket: String,
    session: String,
    exit_file: PathBuf,
    out_dir: PathBuf,
    _kill: KillServer,
}

impl Dashboard {
    fn start(name: &str, args: &[&str]) -> Dashboard {
        let id = format!("futex-tui-{name}-{}", std::process::id());
        let out_dir = std::env::temp_dir().join(&id);
        let _ = std::fs::remove_dir_all(&out_dir);
        std::fs::create_dir_all(&out_dir).unwrap();
        let exit_file = out_dir.join("exit");
        let cmd = format!(
            "{} --out-dir {} {} ; echo $? > {}",
            env!("CARGO_BIN_EXE_futex-tui"),
            out_dir.display(),
            args.join(" "),
            exit_file.display()
        );
        let d = Dashboard {
            socket: id.clone(),
            session: id.clone(),
            exit_file,
            out_dir,
            _kill: KillServer(id.clone()),
        };
        d.tmux(&["new-session", "-d", "-s", &id, "-x", "80", "-y", "24", &cmd]);
        d.tmux(&["set-option", "-t", &id, "remain-on-exit", "on"]);
        d
    }

    fn tmux(&self, args: &[&str]) -> String {
        let mut v = vec!["-L", self.socket.as_str()];
        v.extend_from_slice(args);
        tmux(&v)
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", &self.session])
    }

    fn keys(&self, k: &str) {
        self.tmux(&["send-keys", "-t", &self.session, k]);
    }

    /// Presses `f` and returns the flamegraph it says it wrote.
    fn flamegraph(&self) -> String {
        self.keys("f");
        let mut screen = String::new();
        assert!(
            until(Duration::from_secs(10), || {
                screen = self.screen();
                screen.contains("flamegraph written")
            }),
            "no flamegraph message:\n{screen}"
        );
        let svgs: Vec<_> = std::fs::read_dir(&self.out_dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "svg"))
            .collect();
        assert_eq!(svgs.len(), 1, "{svgs:?}");
        let svg = std::fs::read_to_string(&svgs[0]).unwrap();
        assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
        svg
    }

    /// Presses `q`; checks the exit status was 0 and the terminal left the alternate screen. Returns
    /// the screen after the exit (what futex-tui printed once the terminal was restored).
    fn quit(self) -> String {
        self.keys("q");
        let exited = until(Duration::from_secs(15), || {
            std::fs::read_to_string(&self.exit_file).is_ok_and(|c| !c.trim().is_empty())
        });
        let alt = self.tmux(&[
            "display-message",
            "-p",
            "-t",
            &self.session,
            "#{alternate_on}",
        ]);
        assert!(exited, "futex-tui did not exit after q:\n{}", self.screen());
        assert_eq!(
            std::fs::read_to_string(&self.exit_file).unwrap().trim(),
            "0"
        );
        assert_eq!(
            alt.trim(),
            "0",
            "the terminal was left in the alternate screen"
        );
        let _ = std::fs::remove_dir_all(&self.out_dir);
        // Everything printed after the exit, wrapped lines joined, scrolled-off rows included.
        self.tmux(&[
            "capture-pane",
            "-p",
            "-J",
            "-S",
            "-200",
            "-t",
            &self.session,
        ])
    }
}

#[test]
fn demo_in_tmux_shows_contention_writes_a_flamegraph_and_quits_cleanly() {
    if !have_tmux() {
        return;
    }
    let d = Dashboard::start("demo", &[]);
    // The rates cover the last full second: wait until the hot lock shows waits/s > 0 and the hottest
    // bucket is named with its rate.
    let waits_per_sec = |screen: &str| -> f64 {
        screen
            .lines()
            .find(|l| l.contains("demo: heat lock 0"))
            .and_then(|l| l.split_whitespace().nth(5)) // "│demo:" "heat" "lock" "0" kind waits/s
            .and_then(|v| match v.strip_suffix('k') {
                Some(k) => k.parse::<f64>().ok().map(|k| k * 1e3),
                None => v.parse().ok(),
            })
            .unwrap_or(0.0)
    };
    let mut screen = String::new();
    let shown = until(Duration::from_secs(20), || {
        screen = d.screen();
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
    d.keys("?");
    assert!(until(Duration::from_secs(5), || d
        .screen()
        .contains(" Help ")));
    d.keys("Escape");
    // Resized while running, it fills the new size at once: 200×60 gains the activity panel and the
    // selected row's detail (a site's, or a word's before the sites are known); back at 80×24 the
    // footer is on the last row again.
    for (w, h, want) in [(200, 60, "┌ Selected "), (80, 24, "slept/s")] {
        d.tmux(&[
            "resize-window",
            "-t",
            &d.session,
            "-x",
            &w.to_string(),
            "-y",
            &h.to_string(),
        ]);
        let fits = until(Duration::from_secs(10), || {
            screen = d.screen();
            let lines: Vec<&str> = screen.lines().collect();
            lines.len() == h
                && lines[h - 1].starts_with("q quit")
                && lines[0].starts_with("futex-tui")
                && screen.contains(want)
                && (w < 150 || screen.contains("Activity"))
        });
        assert!(fits, "after a resize to {w}x{h}:\n{screen}");
    }
    // `f`: a flamegraph of what is shown, by the waiting threads' stacks (the observer's).
    let svg = d.flamegraph();
    assert!(
        svg.contains("futex_trace::demo::") && svg.contains("futex_core::sync::"),
        "the demo's stacks are in the flamegraph: {}",
        svg.split("<title>")
            .skip(1)
            .take(12)
            .map(|t| t.split("</title>").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    d.quit();
}

#[test]
fn a_traced_pid_in_tmux_shows_its_lock_and_stacks() {
    if !have_tmux() {
        return;
    }
    if !can_trace("a_traced_pid_in_tmux_shows_its_lock_and_stacks") {
        return;
    }
    // futex-trace's workload: two threads handing a turn through one futex.
    let workload =
        std::path::Path::new(env!("CARGO_BIN_EXE_futex-tui")).with_file_name("futex-workload");
    assert!(
        workload.exists(),
        "{} missing: build futex-trace's bins (cargo test --workspace does)",
        workload.display()
    );
    let mut w = Command::new(&workload)
        .args(["--pingpong", "60"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct KillChild<'a>(&'a mut std::process::Child);
    impl Drop for KillChild<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = w.id().to_string();
    let _w = KillChild(&mut w);
    let d = Dashboard::start("pid", &["-p", &pid]);
    let mut screen = String::new();
    let shown = until(Duration::from_secs(20), || {
        screen = d.screen();
        // A site row (where the workload's threads wait, classed) and the buckets of the process's own
        // kernel futex hash.
        screen.contains(&format!("pid {pid}"))
            && screen.contains(&format!("pid {pid}'s kernel futex hash"))
            && screen
                .lines()
                .any(|l| l.contains("│futex-workload: futex_workload::") && l.contains("hand-off"))
    });
    assert!(
        shown,
        "the traced workload's wait site never showed:\n{screen}"
    );
    // v: the words beneath, the ping-pong's word among them.
    d.keys("v");
    let shown = until(Duration::from_secs(10), || {
        screen = d.screen();
        screen.contains("PINGPONG_TURN") || screen.lines().any(|l| l.contains("│0x"))
    });
    assert!(shown, "v did not show the words:\n{screen}");
    // b: futex-core's hash of the same addresses, labelled a what-if.
    d.keys("b");
    let shown = until(Duration::from_secs(10), || {
        screen = d.screen();
        screen.contains("futex-core's hash") && screen.contains("what-if")
    });
    assert!(shown, "b did not show futex-core's what-if:\n{screen}");
    d.keys("b");
    // Its detail names the waiting stack and the wakers, demangled.
    d.keys("Enter");
    let shown = until(Duration::from_secs(10), || {
        screen = d.screen();
        screen.contains("waiting stacks")
            && screen.contains("wakers")
            && screen.contains("futex_workload::")
    });
    assert!(shown, "no stacks in the lock's detail:\n{screen}");
    d.keys("Escape");
    let svg = d.flamegraph();
    assert!(
        svg.contains("futex_workload::pingpong"),
        "the workload's function is in the flamegraph"
    );
    d.quit();
}

#[test]
fn a_recording_replays_with_pause_speed_and_step() {
    if !have_tmux() {
        return;
    }
    // A recording of the demo (no root): futex-trace is built beside futex-tui.
    let dir = std::env::temp_dir().join(format!("futex-tui-recording-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("demo.ftr");
    let trace = std::path::Path::new(env!("CARGO_BIN_EXE_futex-tui")).with_file_name("futex-trace");
    let out = Command::new(&trace)
        .args(["record", "--demo", "-d", "2s", "-o"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = Dashboard::start("replay", &["--replay", file.to_str().unwrap()]);
    let mut screen = String::new();
    assert!(
        until(Duration::from_secs(15), || {
            screen = d.screen();
            // The demo's locks (which rank first depends on the machine's load: heat or colliding).
            screen.contains("replay ×1") && screen.contains("mutex") && screen.contains("demo: ")
        }),
        "{screen}"
    );
    d.keys("p");
    d.keys("+");
    assert!(
        until(Duration::from_secs(5), || {
            screen = d.screen();
            screen.contains("replay ×2") && screen.contains("PAUSED")
        }),
        "{screen}"
    );
    // Paused: the position holds; `n` moves it one second on.
    let up = |s: &str| -> u64 {
        s.split("· up ")
            .nth(1)
            .and_then(|r| r.split('s').next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(u64::MAX)
    };
    std::thread::sleep(Duration::from_millis(500));
    let before = up(&d.screen());
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(up(&d.screen()), before, "paused, the replay holds");
    d.keys("n");
    assert!(
        until(Duration::from_secs(5), || up(&d.screen())
            == before.saturating_add(1)),
        "n steps one second: {}",
        d.screen()
    );
    d.quit();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn quitting_ends_the_command_futex_tui_started_and_says_so() {
    if !have_tmux() {
        return;
    }
    if !can_trace("quitting_ends_the_command_futex_tui_started_and_says_so") {
        return;
    }
    let workload =
        std::path::Path::new(env!("CARGO_BIN_EXE_futex-tui")).with_file_name("futex-workload");
    // A duration no other test uses, to find this workload's pid.
    let args = ["--pingpong", "93.5"];
    let d = Dashboard::start(
        "command",
        &["--", workload.to_str().unwrap(), args[0], args[1]],
    );
    // Anchored at argv[0]: futex-tui's own command line contains the same words.
    let pattern = format!("^{} {} {}", workload.display(), args[0], args[1]);
    let mut pid = String::new();
    let running = until(Duration::from_secs(20), || {
        let out = Command::new("pgrep")
            .args(["-f", &pattern])
            .output()
            .unwrap();
        pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
        !pid.is_empty() && d.screen().contains("kernel futexes")
    });
    assert!(running, "the command never ran:\n{}", d.screen());
    let screen = d.quit();
    let gone = until(Duration::from_secs(10), || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    });
    assert!(gone, "pid {pid} still runs after futex-tui quit");
    assert!(
        screen.contains(&format!("(pid {pid}) with SIGTERM")),
        "futex-tui did not say what it did:\n{screen}"
    );
}
