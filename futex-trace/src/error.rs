//! Why futex-trace cannot go on. Each variant prints as one line that says what was wrong and what to do;
//! the binaries decide by the variant (the hint each adds, the exit code), never by the text.

use std::path::PathBuf;

/// What went wrong, for a user to act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not root, and without CAP_BPF with CAP_PERFMON (or CAP_SYS_ADMIN).
    #[error("tracing kernel futexes needs root (or CAP_BPF and CAP_PERFMON): run it with sudo")]
    NeedsPrivileges,
    /// tracefs is not mounted: the tracepoints cannot be found.
    #[error(
        "tracefs is not mounted, so the futex tracepoints cannot be found: mount it with \
         `sudo mount -t tracefs nodev /sys/kernel/tracing` and try again"
    )]
    NoTracefs,
    /// No process has this pid.
    #[error("no process with pid {pid}: check the pid (e.g. with `pgrep NAME`)")]
    NoSuchProcess { pid: u32 },
    /// The pid is a kernel thread: it has no user-space futexes.
    #[error(
        "pid {pid} is a kernel thread ({name}): it has no user-space futexes to trace; give the pid of \
         a user process"
    )]
    KernelThread { pid: u32, name: String },
    /// The process has exited and waits for its parent.
    #[error(
        "pid {pid} ({name}) is a zombie: it has exited and makes no more futex calls (its parent has \
         not collected it yet)"
    )]
    Zombie { pid: u32, name: String },
    /// A command to start that cannot be run.
    #[error("cannot run `{program}`: {why}")]
    Command { program: String, why: String },
    /// A file that cannot be read or written: what was being done, the path, and the system's reason.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file that is not a recording, or a recording that cannot be read on.
    #[error("{}: {source}", path.display())]
    Recording { path: PathBuf, source: ReadError },
    /// The kernel refused or lacks something the eBPF programs need (the message says what).
    #[error("{0}")]
    Ebpf(String),
    /// A binary's probes cannot be traced (`--usdt`).
    #[error("{0}")]
    Usdt(String),
    /// The HTTP side of `serve`.
    #[error("{0}")]
    Http(String),
    /// An output failed, or closed before tracing started.
    #[error("{0}")]
    Output(String),
    /// A thread could not be started, or ended in a panic.
    #[error("{0}")]
    Thread(String),
    /// Options that cannot go together, or name nothing to trace.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// An I/O failure on `path` while doing `action` ("open", "write", "read").
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// futex-trace's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a recording could not be read (see [`crate::recording`]).
#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    /// Not a recording, a version we cannot read, or corrupt: says where and what.
    Format(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Format(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ReadError {}
