//! `--kernel-hash`: futex words spread over pages, ping-ponged, with the kernel's own answer to "which
//! of them share a bucket of this process's private futex hash", found by timing the kernel.
//!
//! The method (the ground truth futex-trace's kernel buckets are tested against): with many threads
//! asleep on one word, a `FUTEX_WAKE` of another word that nobody waits on takes the bucket's lock and
//! walks its list of waiters if, and only if, the two words share a bucket; otherwise the kernel sees
//! no waiter pending in that bucket and returns at once. So the words are grouped by bucket, one group
//! per round: sleepers on the first word not yet grouped, every other word's wake timed.
//!
//! Optionally the slots are set first (`--slots`) and changed half-way (`--resize-to`), with
//! `prctl(PR_FUTEX_HASH)`; each phase prints `GET_SLOTS`. A word of a `MAP_SHARED` mapping, used without
//! `FUTEX_PRIVATE_FLAG`, goes to the global table: it is printed as `shared`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

const PR_FUTEX_HASH: i32 = 78;
const PR_FUTEX_HASH_SET_SLOTS: u64 = 1;
const PR_FUTEX_HASH_GET_SLOTS: u64 = 2;

/// Threads asleep on a word while the others are timed: enough that walking their list (~7 ns each)
/// stands far above a wake that finds its bucket empty (~0.1 µs).
const SLEEPERS: usize = 600;
/// Time a wake that walks the sleepers' list takes beyond one that finds its bucket empty, at least
/// (about half of what 600 sleepers take here).
const WALK_NS: u64 = 2_000;
/// Wakes timed per word; the median is kept.
const TIMINGS: usize = 41;
/// Hand-offs per word in the ping-pong.
const HANDOFFS: u32 = 200;

/// WAIT or WAKE on `word`, private or shared.
fn futex(word: &AtomicU32, op: i32, val: u32, private: bool) -> i64 {
    let flag = if private { libc::FUTEX_PRIVATE_FLAG } else { 0 };
    super::futex_op(word, op | flag, val, None, 0, None, 0)
}

pub(crate) fn get_slots() -> i64 {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_GET_SLOTS, 0u64, 0u64, 0u64) as i64 }
}

pub(crate) fn set_slots(n: u32) {
    // SAFETY: prctl with integer arguments only.
    let r = unsafe {
        libc::prctl(
            PR_FUTEX_HASH,
            PR_FUTEX_HASH_SET_SLOTS,
            u64::from(n),
            0u64,
            0u64,
        )
    };
    assert!(
        r == 0,
        "prctl(PR_FUTEX_HASH_SET_SLOTS, {n}) failed: {} (needs Linux 6.17+ with CONFIG_FUTEX_PRIVATE_HASH)",
        std::io::Error::last_os_error()
    );
}

/// An anonymous mapping of `pages` pages, `shared` or private, zeroed; never unmapped (the words live
/// as long as the workload).
fn map(pages: usize, shared: bool) -> &'static [AtomicU32] {
    let len = pages * page_size();
    let flags = libc::MAP_ANONYMOUS
        | if shared {
            libc::MAP_SHARED
        } else {
            libc::MAP_PRIVATE
        };
    // SAFETY: a fresh anonymous mapping; checked for failure below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            -1,
            0,
        )
    };
    assert!(p != libc::MAP_FAILED, "mmap failed");
    // SAFETY: the mapping is `len` bytes, readable and writable, zeroed, page-aligned (so aligned for
    // u32), never unmapped, and only ever accessed atomically.
    unsafe { std::slice::from_raw_parts(p as *const AtomicU32, len / 4) }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// `n` words spread over pages, at offsets that differ within each page as well.
fn spread_words(n: usize) -> Vec<&'static AtomicU32> {
    let per_page = 6;
    let pages = n.div_ceil(per_page);
    let mem = map(pages, false);
    let words_per_page = page_size() / 4;
    (0..n)
        .map(|i| {
            let (page, k) = (i / per_page, i % per_page);
            // Offsets 0x40, 0x2c0, ... in the page, shifted a little per page.
            let off = (16 + k * 160 + page * 3) % words_per_page;
            &mem[page * words_per_page + off]
        })
        .collect()
}

/// The median time of a `FUTEX_WAKE` of `word`, which nobody waits on.
fn wake_time(word: &AtomicU32) -> u64 {
    let mut t: Vec<u64> = (0..TIMINGS)
        .map(|_| {
            let start = Instant::now();
            let r = futex(word, libc::FUTEX_WAKE, 1, true);
            let d = start.elapsed().as_nanos() as u64;
            assert_eq!(r, 0, "a wake of a word nobody waits on woke {r}");
            d
        })
        .collect();
    t.sort_unstable();
    t[t.len() / 2]
}

/// Groups `words` by the kernel bucket they share (see the module's documentation). Returns each
/// word's group (numbered in order of first appearance) and its wake time in the round that grouped it
/// (0 for the word the sleepers were on), and the time of a wake that found its bucket empty.
fn group_by_bucket(words: &[&'static AtomicU32]) -> (Vec<usize>, Vec<u64>, u64) {
    // Nobody waits anywhere yet: every wake finds its bucket empty. That is the baseline.
    let base = words.iter().map(|w| wake_time(w)).min().unwrap_or(0);
    let mut group = vec![usize::MAX; words.len()];
    let mut time = vec![0u64; words.len()];
    let mut next = 0;
    while let Some(u) = group.iter().position(|&g| g == usize::MAX) {
        let target = words[u];
        target.store(0, Ordering::SeqCst);
        let (tx, rx) = std::sync::mpsc::channel();
        let sleepers: Vec<_> = (0..SLEEPERS)
            .map(|_| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    tx.send(super::gettid()).unwrap();
                    while target.load(Ordering::SeqCst) == 0 {
                        futex(target, libc::FUTEX_WAIT, 0, true);
                    }
                })
            })
            .collect();
        let tids: Vec<i32> = (0..SLEEPERS).map(|_| rx.recv().unwrap()).collect();
        super::wait_until_in_futex(&tids);
        let times: Vec<(usize, u64)> = (0..words.len())
            .filter(|&i| i != u && group[i] == usize::MAX)
            .map(|i| (i, wake_time(words[i])))
            .collect();
        group[u] = next;
        for (i, t) in times {
            // A walk of SLEEPERS waiters takes microseconds (~4 µs); an empty bucket a tenth of one,
            // plus a tracer's cost per call when traced: so the test is the time a walk adds.
            if t > base + WALK_NS {
                group[i] = next;
                time[i] = t;
            }
        }
        next += 1;
        target.store(1, Ordering::SeqCst);
        futex(target, libc::FUTEX_WAKE, i32::MAX as u32, true);
        for s in sleepers {
            s.join().unwrap();
        }
        target.store(0, Ordering::SeqCst);
    }
    (group, time, base)
}

/// Two threads hand a turn back and forth `HANDOFFS` times on each word (waits that sleep and the
/// wakes that end them). Returns the futex calls made: (waits, wakes).
fn pingpong(words: &[&'static AtomicU32], private: bool) -> (u64, u64) {
    let side = |me: u32| {
        let words = words.to_vec();
        std::thread::spawn(move || {
            let (mut waits, mut wakes) = (0u64, 0u64);
            for w in words {
                for _ in 0..HANDOFFS {
                    loop {
                        let v = w.load(Ordering::SeqCst);
                        if v % 2 == me {
                            break;
                        }
                        futex(w, libc::FUTEX_WAIT, v, private);
                        waits += 1;
                    }
                    w.fetch_add(1, Ordering::SeqCst);
                    futex(w, libc::FUTEX_WAKE, 1, private);
                    wakes += 1;
                }
            }
            (waits, wakes)
        })
    };
    for w in words {
        w.store(0, Ordering::SeqCst);
    }
    let (a, b) = (side(0), side(1));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    (a.0 + b.0, a.1 + b.1)
}

fn phase(words: &[&'static AtomicU32], set: Option<u32>) -> serde_json::Value {
    if let Some(n) = set {
        set_slots(n);
    }
    let slots = get_slots();
    let (group, time, base) = group_by_bucket(words);
    let (waits, wakes) = pingpong(words, true);
    serde_json::json!({
        "set_slots": set,
        "slots": slots,
        "empty_bucket_wake_ns": base,
        "waits": waits,
        "wakes": wakes,
        "words": words.iter().zip(&group).zip(&time).map(|((w, g), t)| serde_json::json!({
            "addr": format!("{:#x}", w.as_ptr() as usize),
            "group": g,
            "wake_ns": t,
        })).collect::<Vec<_>>(),
    })
}

/// The `--kernel-hash` mode: prints `{"phases": [...], "shared": addr, "pid": ...}`.
pub(crate) fn run(words: usize, slots: Option<u32>, resize_to: Option<u32>) {
    let words = spread_words(words);
    // The process gets its private hash with its first thread; make one before the first GET_SLOTS.
    std::thread::spawn(|| {}).join().unwrap();
    let start = Instant::now();
    let mut phases = vec![phase(&words, slots)];
    if let Some(n) = resize_to {
        phases.push(phase(&words, Some(n)));
    }
    let shared = &map(1, true)[64];
    pingpong(std::slice::from_ref(&shared), false);
    println!(
        "{}",
        serde_json::json!({
            "pid": std::process::id(),
            "phases": phases,
            "shared": format!("{:#x}", shared.as_ptr() as usize),
            "secs": start.elapsed().as_secs_f64(),
        })
    );
}
