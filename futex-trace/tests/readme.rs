//! Every futex-trace command in README.md's code blocks, run as written (as root, in a directory that
//! holds `./futex-trace`, `./futex-workload` and a `./server`, as `cd target/release` gives), with only
//! the placeholders filled in: `PID` is a running workload, `-d 10s` is shortened, `[--json]` runs both
//! ways. Commands that run until stopped (`stream`, `serve`) are stopped once they have shown they work.
//! The dashboard's, cargo's and bpftrace's lines are run by their own tests (futex-tui's tmux tests, CI
//! itself, the usdt tests); they are listed in [`ELSEWHERE`] so that a new line cannot go untested.

#[macro_use]
mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// README lines run elsewhere, by the start of the command.
const ELSEWHERE: &[&str] = &[
    "cargo ", // the top commands are CI's own; `cargo run -p futex-trace` lines are run translated
    "bash ",  // scripts/test.sh: CI runs it
    "sudo futex-tui", // the dashboard: futex-tui's tmux tests
    "sudo target/release/futex-tui",
    "target/release/futex-tui",
    "bpftrace ", // the usdt tests list the probes with bpftrace
    "#",
];

/// The README's shell lines: (line, its comment stripped).
fn readme_lines() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let mut out = Vec::new();
    let mut in_sh = false;
    for l in readme.lines() {
        if l.starts_with("```") {
            in_sh = l == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        // A comment starts at a `#` after a space (none of the commands holds one).
        let cmd = l.split(" #").next().unwrap().trim();
        if !cmd.is_empty() {
            out.push(cmd.to_string());
        }
    }
    out
}

/// The working directory: the binaries, a `server` (the workload under another name, as a service).
fn workdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("futex-trace-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = |from: &Path, name: &str| {
        let to = dir.join(name);
        let _ = std::fs::remove_file(&to);
        std::os::unix::fs::symlink(from, to).unwrap();
    };
    link(Path::new(env!("CARGO_BIN_EXE_futex-trace")), "futex-trace");
    link(&common::workload(), "futex-workload");
    std::fs::write(
        dir.join("server"),
        "#!/bin/sh\n# a service: the workload's contended mutex for a second\nexec ./futex-workload --contend 1\n",
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(dir.join("server"))
        .status()
        .unwrap();
    // `./app`: a program that links futex-core (its probes), for --usdt.
    link(&common::workload(), "app");
    dir
}

/// `line` as it runs here: `sudo` dropped (the test is root), placeholders filled.
fn fill(line: &str, pid: u32, dir: &Path) -> String {
    let mut l = line.strip_prefix("sudo ").unwrap_or(line).to_string();
    l = l.replace("PID", &pid.to_string());
    l = l.replace("-d 10s", "-d 1s").replace("-d 5s", "-d 1s");
    l = l.replace("seconds=10", "seconds=1");
    l = l.replace(
        "~/.local/share/bash-completion/completions/futex-trace",
        &dir.join("completion.bash").display().to_string(),
    );
    if l.contains("| man -l -") && Command::new("man").arg("--version").output().is_err() {
        l = l.replace("| man -l -", "> futex-trace.1");
    }
    // `cargo run --release -p futex-trace -- ARGS`: the same binary, built already.
    if let Some(args) = l.strip_prefix("cargo run --release -p futex-trace -- ") {
        l = format!("./futex-trace {args}");
    }
    l
}

fn sh(cmd: &str, dir: &Path) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", cmd]).current_dir(dir);
    c
}

/// Runs `cmd` to its end: it must succeed.
fn run(cmd: &str, dir: &Path) {
    let out = sh(cmd, dir).output().unwrap();
    assert!(
        out.status.success(),
        "README's `{cmd}` failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `cmd` (it runs until stopped) and waits until its stderr says `ready`.
fn start(cmd: &str, dir: &Path, ready: &str) -> Child {
    let mut c = sh(&format!("exec {cmd}"), dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(c.stderr.take().unwrap());
    let mut said = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !said.contains(ready) {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0 && Instant::now() < deadline,
            "README's `{cmd}` did not say '{ready}': {said}"
        );
        said.push_str(&line);
    }
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    c
}

fn stop(mut c: Child) {
    // SAFETY: kill(2) on our own child; SIGINT ends futex-trace cleanly.
    unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
    let st = c.wait().unwrap();
    assert!(st.success(), "stopped with {st}");
}

#[test]
fn every_futex_trace_command_in_the_readme_works_as_written() {
    require_privileges!();
    let dir = workdir();
    // PID: a running process whose threads contend (and, for --usdt, use futex-core).
    let mut busy = Command::new(common::workload())
        .args(["--core-mutex", "120"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = busy.id();
    let mut ran = 0;
    let mut serving: Option<Child> = None;
    for line in readme_lines() {
        if ELSEWHERE.iter().any(|p| line.starts_with(p))
            && !line.starts_with("cargo run --release -p futex-trace")
        {
            continue;
        }
        if line.starts_with("cargo build") {
            continue; // the binaries are built: this directory is what `cd target/release` gives
        }
        let cmd = fill(&line, pid, &dir);
        let t = Instant::now();
        if cmd.contains(" serve ") {
            // Runs until stopped: once it serves, the lines after it (curl, go tool pprof) use it.
            if let Some(s) = serving.take() {
                stop(s);
            }
            serving = Some(start(&cmd, &dir, "serving http://"));
        } else if (cmd.contains(" stream ") || cmd.contains(" record -p ")) && !cmd.contains(" -d ")
        {
            // Until Ctrl-C: traced a moment, then stopped as a person would.
            let s = start(&cmd, &dir, "tracing");
            std::thread::sleep(Duration::from_millis(500));
            stop(s);
        } else if cmd.starts_with("go ") && Command::new("go").arg("version").output().is_err() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "go is missing in CI"
            );
            eprintln!("SKIPPED `{cmd}`: go is not installed");
            continue;
        } else if cmd.contains("[--json]") {
            run(&cmd.replace(" [--json]", ""), &dir);
            run(&cmd.replace("[--json]", "--json"), &dir);
        } else {
            run(&cmd, &dir);
        }
        eprintln!("{:>6.1} s  {cmd}", t.elapsed().as_secs_f64());
        ran += 1;
    }
    if let Some(s) = serving.take() {
        stop(s);
    }
    let _ = busy.kill();
    let _ = busy.wait();
    assert!(
        ran >= 20,
        "only {ran} README commands found: is the README's layout the same?"
    );
    std::fs::remove_dir_all(dir).ok();
}
