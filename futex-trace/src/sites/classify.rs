//! A site's class, from behaviour: what released its waiters, and from where. The primitive a site
//! sleeps on says little: CPython's `Lock` is a semaphore, PostgreSQL's LWLocks sleep on a semaphore
//! per backend, the JVM's monitors and `ReentrantLock` park on a condvar per thread, and idle pools wait
//! on the very same primitives. In order, the first that holds decides (weighted by time waited):
//!
//! 1. a rule of the user's (`--lock-frame`, `--idle-frame`) matches a frame of the site's stacks;
//! 2. **sleep**: most of its time ended by a timeout, nobody released it;
//! 3. **lock**: most of its released time was released by an unlock (`pthread_mutex_unlock`,
//!    `LWLockRelease`, `ObjectMonitor::exit`, Rust's and futex-core's `Mutex` unlock), and that is more
//!    than a sliver (a tenth) of its time;
//! 4. **lock**: most of its time waits in a lock's acquire (`pthread_mutex_lock`, `LWLockAcquire`, a
//!    `Mutex::lock`; not the mutex a condvar's wait re-takes) — for sites whose releases were not
//!    sampled;
//! 5. **hand-off**: released from the very place it waits, by threads that wait there too (a group
//!    commit's leader, a holder doing the same work);
//! 6. **waiting for work** (a dispatch loop): the site is a thread's own loop (one to three program
//!    frames below its entry) and its waiters are released from somewhere else (a submit, a notify);
//! 7. **hand-off**: the threads that release its waiters also wait there for real (a lock whose release
//!    the runtime does as a post or an unpark: CPython's `Lock`, `ReentrantLock`, `Atomics.wait`
//!    locks, a group commit's followers);
//! 8. **waiting for work**: its waiters are released by other threads (producers), from a place the
//!    trace saw; from a place not sampled, **unclassified**;
//! 9. without releases seen: futex-core's own kinds (its observer and probes say Mutex or Condvar), else
//!    the primitive of its stacks (a mutex or rwlock is a lock); else **unclassified**, shown as such.
//!
//! Lock and hand-off are contention; waiting for work and sleep are idle.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use serde::Serialize;

use crate::event::WaitKind;
use crate::model::{Model, Release, StackKey};
use crate::stacks::{is_release, waits_in_acquire, StackTable};

/// What a site's waiting is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Waiting for a lock released by an unlock.
    Lock,
    /// Waiting for another thread of the same set to hand over (a lock whose release is a post or an
    /// unpark, a leader's group commit).
    HandOff,
    /// Waiting for work (a queue, a dispatch loop), or for a thread's end.
    Work,
    /// A sleep: the wait ended by its timeout.
    Sleep,
    /// Nothing seen decides it.
    #[default]
    Unclassified,
}

impl Class {
    /// Contention: threads wait for one another's work on a shared resource.
    pub fn is_contention(self) -> bool {
        matches!(self, Class::Lock | Class::HandOff)
    }

    /// Idle: threads wait for work or time to pass.
    pub fn is_idle(self) -> bool {
        matches!(self, Class::Work | Class::Sleep)
    }

    /// As reports name it.
    pub fn name(self) -> &'static str {
        match self {
            Class::Lock => "lock",
            Class::HandOff => "hand-off",
            Class::Work => "waiting for work",
            Class::Sleep => "sleep",
            Class::Unclassified => "unclassified",
        }
    }
}

/// The user's rules: a site with a frame matching `idle` is waiting for work, one matching `lock` is a
/// lock, whatever the behaviour says.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    pub idle: Option<Regex>,
    pub lock: Option<Regex>,
}

/// What a site's class is decided from.
pub(super) struct Evidence<'a> {
    /// The site's own frame.
    pub(super) site_frame: &'a str,
    /// Program frames from its thread's entry to the site.
    pub(super) depth: usize,
    pub(super) stacks: &'a [StackKey],
    /// Its sampled waits' releases, with their time.
    pub(super) releases: &'a [(Release, u64)],
    /// Every thread that waits at the site (both groups), with its time there: who is a peer.
    pub(super) thread_ns: &'a BTreeMap<(u32, u32), u64>,
    /// The release sites, hottest first.
    pub(super) released_from: &'a [(String, u64)],
}

/// A dispatch loop is at most this many program frames below its thread's entry.
const DISPATCH_DEPTH: usize = 3;

fn pct(part: u64, all: u64) -> f64 {
    if all == 0 {
        0.0
    } else {
        part as f64 * 100.0 / all as f64
    }
}

/// The class of a site, and why.
pub(super) fn classify(
    e: &Evidence<'_>,
    model: &Model,
    t: &StackTable,
    rules: &Rules,
) -> (Class, String) {
    if let Some(found) = rule(e, t, rules) {
        return found;
    }
    let all: u64 = e.releases.iter().map(|(_, ns)| ns).sum();
    let timed_out: u64 = (e.releases.iter())
        .filter(|(r, _)| r.timed_out)
        .map(|(_, ns)| ns)
        .sum();
    if all > 0 && timed_out * 10 >= all * 9 {
        return (
            Class::Sleep,
            format!(
                "{:.0}% of its time ended by a timeout: nobody released it",
                pct(timed_out, all)
            ),
        );
    }
    let released: u64 = (e.releases.iter())
        .filter(|(r, _)| r.waker.is_some())
        .map(|(_, ns)| ns)
        .sum();
    if let Some(found) = unlock(e, t, all) {
        return found;
    }
    if let Some((frame, share)) = acquire(e, model, t) {
        return (
            Class::Lock,
            format!(
                "waits in a lock's acquire ({frame}) for {:.0}% of its time",
                share * 100.0
            ),
        );
    }
    let elsewhere =
        (e.released_from.first()).is_some_and(|(from, _)| first_frame(from) != e.site_frame);
    // Released by a peer: another thread that waits here for real.
    let peers = peers(e.thread_ns);
    let by_peer = |r: &Release| {
        r.waker
            .is_some_and(|w| w != (r.waiter.0, r.waiter_tid) && peers.contains(&w))
    };
    // The same function waits and wakes; the wakers must be threads that wait here too (a leader, a
    // holder), not a producer that calls the same wrapper (a `futex()` helper used for both).
    let waker_waits_here = e.releases.iter().any(|(r, _)| by_peer(r));
    if released > 0 && !e.released_from.is_empty() && !elsewhere && e.depth > 0 && waker_waits_here
    {
        return (
            Class::HandOff,
            format!(
                "released from where it waits ({}): a leader or a holder doing the same work",
                e.site_frame
            ),
        );
    }
    // A loop of the program's own: a site wholly in plumbing (no program frame was found: a runtime
    // whose frames are not native, a stripped binary) says nothing about where in its thread it is.
    if released > 0 && (1..=DISPATCH_DEPTH).contains(&e.depth) && elsewhere {
        return (
            Class::Work,
            format!(
                "a thread's own loop ({} program frames below its start) released from {}",
                e.depth, e.released_from[0].0
            ),
        );
    }
    let by_peers: u64 = (e.releases.iter())
        .filter(|(r, _)| by_peer(r))
        .map(|(_, ns)| ns)
        .sum();
    if released > 0 && by_peers * 2 >= released {
        return (
            Class::HandOff,
            format!(
                "the threads that release its waiters wait here too ({:.0}% of its released time)",
                pct(by_peers, released)
            ),
        );
    }
    if released > 0 {
        // Waiting for work needs its producer seen: released from a place the trace names.
        return match e.released_from.first() {
            Some((from, _)) => (
                Class::Work,
                format!(
                    "released by other threads ({:.0}% of its released time), from {from}",
                    pct(released - by_peers, released)
                ),
            ),
            None => (
                Class::Unclassified,
                "released by threads that do not wait here, from a place not sampled (more waker \
                 stacks: --waker-every 1)"
                    .into(),
            ),
        };
    }
    without_releases(e, model, t)
}

/// The threads that wait at a site for real: at least a tenth of the mean time there (`thread_ns`: each
/// waiting thread's time). A producer that waits once at the same place (a join at the end, one `get`
/// of its own, a pool's shutdown) is not a peer of the workers it feeds.
pub(super) fn peers(thread_ns: &BTreeMap<(u32, u32), u64>) -> BTreeSet<(u32, u32)> {
    let all: u64 = thread_ns.values().sum();
    let n = thread_ns.len().max(1) as u64;
    (thread_ns.iter())
        .filter(|(_, ns)| **ns * n * 10 >= all)
        .map(|(th, _)| *th)
        .collect()
}

/// Lock, when an unlock released most of what was seen of a site's releases (their waker stacks), and
/// what it released is not a sliver of the site's time (`all`: a condvar's mutex re-take, once).
fn unlock(e: &Evidence<'_>, t: &StackTable, all: u64) -> Option<(Class, String)> {
    let with_stack: Vec<(StackKey, u64)> = (e.releases.iter())
        .filter_map(|(r, ns)| Some((r.waker_stack?, *ns)))
        .collect();
    let seen: u64 = with_stack.iter().map(|(_, ns)| ns).sum();
    let unlocked: Vec<(String, u64)> = (with_stack.iter())
        .filter_map(|&(k, ns)| {
            let f = t.frame_names(k).into_iter().rev().find(|f| is_release(f))?;
            Some((f, ns))
        })
        .collect();
    let by_unlock: u64 = unlocked.iter().map(|(_, ns)| ns).sum();
    (seen > 0 && by_unlock * 2 >= seen && by_unlock * 10 >= all).then(|| {
        let frame = unlocked
            .iter()
            .max_by_key(|(_, ns)| *ns)
            .map(|(f, _)| f.as_str());
        (
            Class::Lock,
            format!(
                "released by an unlock ({}) for {:.0}% of its released time",
                frame.unwrap_or("?"),
                pct(by_unlock, seen)
            ),
        )
    })
}

/// The acquire most of a site's time waits in (a mutex, an rwlock, an LWLock; not a condvar's mutex
/// re-take), with its share of the time, when that share is at least half.
fn acquire(e: &Evidence<'_>, model: &Model, t: &StackTable) -> Option<(String, f64)> {
    let mut all = 0u64;
    let mut by: std::collections::BTreeMap<String, u64> = Default::default();
    for &k in e.stacks {
        let ns = model.stacks.get(&k).map_or(0, |s| s.wait_ns);
        all += ns;
        if let Some(f) = waits_in_acquire(&t.frame_names(k)) {
            *by.entry(f.to_string()).or_default() += ns;
        }
    }
    let acquiring: u64 = by.values().sum();
    if all == 0 || acquiring * 2 < all {
        return None;
    }
    let (frame, _) = by
        .into_iter()
        .max_by_key(|(f, ns)| (*ns, std::cmp::Reverse(f.clone())))?;
    Some((frame, acquiring as f64 / all as f64))
}

/// The first frame of a site's label (`process: frame ← caller`).
fn first_frame(label: &str) -> &str {
    let frames = label.split_once(": ").map_or(label, |(_, f)| f);
    frames.split(" ← ").next().unwrap_or(frames)
}

/// A user's rule that matches a frame of the site's stacks.
fn rule(e: &Evidence<'_>, t: &StackTable, rules: &Rules) -> Option<(Class, String)> {
    for (re, class, flag) in [
        (&rules.lock, Class::Lock, "--lock-frame"),
        (&rules.idle, Class::Work, "--idle-frame"),
    ] {
        let Some(re) = re else { continue };
        for &k in e.stacks {
            if let Some(f) = t.frame_names(k).into_iter().find(|f| re.is_match(f)) {
                return Some((class, format!("{flag} matched {f}")));
            }
        }
    }
    None
}

/// The class of a site whose releases were not seen: futex-core's own kinds, else its primitive.
fn without_releases(e: &Evidence<'_>, model: &Model, t: &StackTable) -> (Class, String) {
    let mut core = (0u64, 0u64);
    let mut primitive: Option<WaitKind> = None;
    for &k in e.stacks {
        let ns = model.stacks.get(&k).map_or(0, |s| s.wait_ns);
        for a in model
            .addresses
            .values()
            .filter(|a| a.stacks.contains_key(&k))
        {
            match a.kind() {
                WaitKind::Mutex | WaitKind::RwLock => core.0 += ns,
                WaitKind::Condvar => core.1 += ns,
                _ => {}
            }
        }
        primitive = primitive.or(t.kinds.get(&k).copied());
    }
    if core.0 + core.1 > 0 {
        return if core.0 >= core.1 {
            (Class::Lock, "a futex-core Mutex (as its probes say)".into())
        } else {
            (
                Class::Work,
                "a futex-core Condvar (as its probes say; who notified it is not seen)".into(),
            )
        };
    }
    match primitive {
        Some(WaitKind::Mutex | WaitKind::RwLock) => (
            Class::Lock,
            format!(
                "its primitive is a {} (no release was seen)",
                primitive.map_or("lock", |k| k.name())
            ),
        ),
        Some(WaitKind::Join) => (Class::Work, "waits for a thread's end".into()),
        _ => (
            Class::Unclassified,
            "no release was seen, and its primitive does not say".into(),
        ),
    }
}
