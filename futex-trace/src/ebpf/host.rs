//! What tracing needs of the host, checked before anything is loaded: privileges, tracefs, and processes
//! that can be traced. Each failure is an [`Error`] variant the binaries turn into one line and a hint.

use std::path::Path;

use crate::{Error, Result};

const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Where tracefs is mounted, or what to do about it.
pub fn tracefs() -> Result<&'static str> {
    TRACEFS
        .into_iter()
        .find(|d| Path::new(d).join("events/syscalls").is_dir())
        .ok_or(Error::NoTracefs)
}

/// Checks that this process may load BPF programs: root, or CAP_BPF with CAP_PERFMON, or CAP_SYS_ADMIN.
pub fn check_privileges() -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(());
    }
    let caps = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0);
    let has = |bit: u32| caps & (1u64 << bit) != 0;
    if has(21) || (has(39) && has(38)) {
        return Ok(());
    }
    Err(Error::NeedsPrivileges)
}

/// Checks everything tracing needs before it starts: privileges, then tracefs.
pub fn check_can_trace() -> Result<()> {
    check_privileges()?;
    tracefs().map(|_| ())
}

/// Checks that `pid` names a process that can make futex calls: it exists, has not exited (a zombie),
/// and is not a kernel thread. Returns the process to trace: `pid` itself, or, when `pid` is a thread
/// of another process, that process (and a note that says so).
pub fn resolve_pid(pid: u32) -> Result<(u32, Option<String>)> {
    let status = (pid != 0)
        .then(|| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .flatten()
        .ok_or(Error::NoSuchProcess { pid })?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let name = field("Name").unwrap_or("?").to_string();
    if field("Kthread") == Some("1") || (field("Kthread").is_none() && field("VmSize").is_none()) {
        return Err(Error::KernelThread { pid, name });
    }
    if is_zombie(pid) {
        return Err(Error::Zombie { pid, name });
    }
    match field("Tgid").and_then(|t| t.parse::<u32>().ok()) {
        Some(tgid) if tgid != pid => Ok((
            tgid,
            Some(format!(
                "pid {pid} is a thread of process {tgid}: tracing process {tgid} (all its threads)"
            )),
        )),
        _ => Ok((pid, None)),
    }
}

/// Checks that `pid` names a process that can be traced (see [`resolve_pid`]).
pub fn check_pid(pid: u32) -> Result<()> {
    resolve_pid(pid).map(drop)
}

/// True when `pid` has exited and waits for its parent to reap it.
pub fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
        // "pid (comm) S …": the state follows the last ')' (a name may hold parentheses).
        st.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}
