//! Shedding root once tracing runs (`serve`): the eBPF programs are loaded and attached and the port is
//! bound, so what is left (reading the ring buffer and maps through their open descriptors, reading the
//! traced processes' maps and files to name stacks, answering HTTP) needs no more than the traced
//! processes' own user. `serve` becomes that user: every capability goes, and a bug in the HTTP side can
//! do no more than that user could.

/// The user and group to become, when every traced process runs as the same user that is not root
/// (the demo: `nobody`). `None`: stay root, and why.
fn target(traced: &[u32], demo: bool, usdt: bool) -> Result<(u32, u32, String), String> {
    if demo {
        return Ok((NOBODY, NOBODY, "nobody".into()));
    }
    if usdt {
        return Err("--usdt attaches to processes that start later, which needs root".into());
    }
    let mut owner = None;
    for &pid in traced {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().nth(1)?.parse::<u32>().ok())
        };
        let (Some(uid), Some(gid)) = (field("Uid:"), field("Gid:")) else {
            continue;
        };
        match owner {
            None => owner = Some((uid, gid)),
            Some(o) if o == (uid, gid) => {}
            Some(_) => {
                return Err("the traced processes run as different users".into());
            }
        }
    }
    match owner {
        None => Err("no traced process is running yet (its user is not known)".into()),
        Some((0, _)) => Err(
            "the traced processes run as root (naming their stacks reads their \
                             maps and files, which needs it)"
                .into(),
        ),
        Some((uid, gid)) => Ok((uid, gid, user_name(uid))),
    }
}

/// `nobody`'s uid and gid on Linux.
const NOBODY: u32 = 65534;

fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.get(2)? == &uid.to_string().as_str()).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// Becomes the traced processes' user (every thread: glibc applies set*id to all of them), dropping
/// every capability; says what it did, or why it kept root. Not root to begin with: nothing to shed.
pub fn shed(traced: &[u32], demo: bool, usdt: bool) -> String {
    // SAFETY: geteuid(2) has no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return "not running as root: nothing to shed".into();
    }
    let (uid, gid, name) = match target(traced, demo, usdt) {
        Ok(t) => t,
        Err(why) => return format!("serving as root: {why}"),
    };
    // SAFETY: plain system calls on integers; setgroups with 0 entries reads no memory. glibc runs
    // setresgid/setresuid in every thread of the process, so no thread keeps root.
    let failed = unsafe {
        libc::setgroups(0, std::ptr::null()) != 0
            || libc::setresgid(gid, gid, gid) != 0
            || libc::setresuid(uid, uid, uid) != 0
    };
    if failed {
        return format!(
            "serving as root: could not become {name} ({})",
            std::io::Error::last_os_error()
        );
    }
    format!(
        "serving as {name} (uid {uid}), the traced processes' user, with no capability: the eBPF \
         programs are attached, and reading them and naming stacks needs no more"
    )
}
