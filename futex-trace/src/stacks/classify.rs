//! Wait classes from stacks: what a kernel futex wait was for, read from the frames that called into the
//! futex — a lock (pthread mutex, Rust std's or parking_lot's Mutex, futex-core's), a rwlock, a condition
//! variable, a thread join, a semaphore or barrier — so that waiting for work (condvar, join, semaphore)
//! is not counted as contention, for programs we did not write.
//!
//! The innermost frame that names a class decides: a condvar wait that sleeps again to re-take its
//! mutex (glibc's `__pthread_mutex_cond_lock` → `__lll_lock_wait`) is lock contention.

use regex::Regex;

use crate::event::WaitKind;
use crate::model::{AddrStats, Log2Hist, Model};
use crate::stacks::StackTable;

/// Name fragments of the functions that wait for each class, checked innermost frame first. glibc's
/// own names (`___pthread_cond_wait`, `__pthread_clockjoin_ex`, `__new_sem_wait_slow`), Rust std's
/// (`std::sys::sync::condvar::futex::Condvar::wait`), parking_lot's and futex-core's.
const CLASSES: &[(&str, WaitKind)] = &[
    ("pthread_cond_wait", WaitKind::Condvar),
    ("pthread_cond_timedwait", WaitKind::Condvar),
    ("pthread_cond_clockwait", WaitKind::Condvar),
    ("Condvar::wait", WaitKind::Condvar),
    ("pthread_join", WaitKind::Join),
    ("pthread_clockjoin", WaitKind::Join),
    ("pthread_timedjoin", WaitKind::Join),
    ("pthread_tryjoin", WaitKind::Join),
    ("JoinInner", WaitKind::Join),
    ("Thread::join", WaitKind::Join),
    ("sem_wait", WaitKind::Semaphore),
    ("sem_timedwait", WaitKind::Semaphore),
    ("sem_clockwait", WaitKind::Semaphore),
    ("pthread_barrier_wait", WaitKind::Semaphore),
    ("Barrier::wait", WaitKind::Semaphore),
    ("pthread_rwlock_", WaitKind::RwLock),
    ("RwLock::read", WaitKind::RwLock),
    ("RwLock::write", WaitKind::RwLock),
    ("RawRwLock", WaitKind::RwLock),
    ("pthread_mutex_lock", WaitKind::Mutex),
    ("pthread_mutex_timedlock", WaitKind::Mutex),
    ("pthread_mutex_clocklock", WaitKind::Mutex),
    ("pthread_mutex_cond_lock", WaitKind::Mutex),
    ("lll_lock_wait", WaitKind::Mutex),
    ("Mutex::lock", WaitKind::Mutex),
    ("RawMutex::lock", WaitKind::Mutex),
];

/// The class a frame's function name says, if any.
pub fn frame_class(name: &str) -> Option<WaitKind> {
    let name = plain_path(name);
    CLASSES
        .iter()
        .find(|(frag, _)| name.contains(frag))
        .map(|(_, k)| *k)
}

/// A demangled Rust or C++ name without generic arguments and qualified-path brackets:
/// `<std::sys::sync::mutex::futex::Mutex>::lock_contended` and `std::sync::Mutex<T>::lock` become
/// `std::sys::sync::mutex::futex::Mutex::lock_contended` and `std::sync::Mutex::lock`.
pub(crate) fn plain_path(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    // For each open '<': whether it opened generic arguments (dropped with their content).
    let mut open: Vec<bool> = Vec::new();
    let mut prev = ' ';
    for c in name.chars() {
        match c {
            '<' => open.push(prev.is_alphanumeric() || prev == '_' || open.last() == Some(&true)),
            '>' => {
                open.pop();
            }
            _ if open.last() == Some(&true) => {}
            _ => out.push(c),
        }
        prev = c;
    }
    out
}

/// The class of a stack (frames outermost first, as [`StackTable::frame_names`] gives them): an
/// `idle` rule's match anywhere makes it [`WaitKind::Idle`]; else the innermost frame with a class.
pub fn stack_class(frames: &[String], idle: Option<&Regex>) -> Option<WaitKind> {
    if let Some(re) = idle {
        if frames.iter().any(|f| re.is_match(f)) {
            return Some(WaitKind::Idle);
        }
    }
    frames.iter().rev().find_map(|f| frame_class(f))
}

impl StackTable {
    /// Classifies every symbolized stack not classified yet (see [`stack_class`]).
    pub fn classify(&mut self, idle: Option<&Regex>) {
        let todo: Vec<_> = (self.stacks.keys())
            .filter(|k| !self.kinds.contains_key(k))
            .copied()
            .collect();
        for key in todo {
            let frames = self.frame_names(key);
            // A stack whose frames are not all named yet is classified once they are.
            let named = self.stacks[&key]
                .iter()
                .all(|ip| self.symbols.contains_key(&(key.0, *ip)));
            match stack_class(&frames, idle) {
                Some(k) => {
                    self.kinds.insert(key, k);
                }
                None if named => {
                    self.kinds.insert(key, WaitKind::Kernel);
                }
                None => {}
            }
        }
    }

    /// Classifies every stack again with the rule `idle` (`--idle-frame`).
    pub fn reclassify(&mut self, idle: Option<&Regex>) {
        self.kinds.clear();
        self.classify(idle);
    }
}

impl AddrStats {
    /// The kind of this word's waits: the kind its events carry (futex-core's Mutex or Condvar), or for
    /// kernel futexes the class of its waiting stacks, by the time they waited.
    pub fn kind_in(&self, stacks: Option<&StackTable>) -> WaitKind {
        let own = self.kind();
        let Some(t) = stacks.filter(|_| matches!(own, WaitKind::Kernel | WaitKind::Raw)) else {
            return own;
        };
        let mut by: Vec<(WaitKind, u64)> = Vec::new();
        for (key, ns) in &self.stacks {
            if let Some(&k) = t.kinds.get(key) {
                match by.iter_mut().find(|(kk, _)| *kk == k) {
                    Some((_, n)) => *n += ns,
                    None => by.push((k, *ns)),
                }
            }
        }
        by.into_iter()
            .filter(|(k, _)| *k != WaitKind::Kernel)
            .max_by_key(|(k, n)| (*n, *k))
            .map_or(own, |(k, _)| k)
    }
}

impl Model {
    /// Time waited split into contention and idle waits by each word's kind in `stacks` (see
    /// [`AddrStats::kind_in`]); without stacks, as folded.
    pub fn wait_split(&self, stacks: Option<&StackTable>) -> (Log2Hist, Log2Hist) {
        if stacks.is_none() {
            return (self.wait_contention.clone(), self.wait_idle.clone());
        }
        let (mut busy, mut idle) = (Log2Hist::default(), Log2Hist::default());
        for a in self.addresses.values() {
            if a.kind_in(stacks).is_idle() {
                idle.merge(&a.wait_ns);
            } else {
                busy.merge(&a.wait_ns);
            }
        }
        (busy, idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(s: &str) -> Vec<String> {
        s.split(';').map(String::from).collect()
    }

    #[test]
    fn the_innermost_frame_with_a_class_decides() {
        let c = |s: &str| stack_class(&frames(s), None);
        assert_eq!(
            c("start_thread;worker;do_work;take_lock;___pthread_mutex_lock;__GI___lll_lock_wait"),
            Some(WaitKind::Mutex)
        );
        assert_eq!(
            c("start_thread;waiter;___pthread_cond_wait;__pthread_cond_wait_common;__futex_abstimed_wait_common64"),
            Some(WaitKind::Condvar)
        );
        // Re-taking the mutex inside a condvar wait is contention for the mutex.
        assert_eq!(
            c("start_thread;___pthread_cond_wait;__pthread_mutex_cond_lock;__GI___lll_lock_wait"),
            Some(WaitKind::Mutex)
        );
        assert_eq!(
            c("main;__pthread_clockjoin_ex;__futex_abstimed_wait_common"),
            Some(WaitKind::Join)
        );
        assert_eq!(
            c("main;std::thread::JoinInner<()>::join;std::sys::pal::unix::thread::Thread::join"),
            Some(WaitKind::Join)
        );
        assert_eq!(
            c("main;app::run;std::sys::sync::mutex::futex::Mutex::lock_contended;syscall"),
            Some(WaitKind::Mutex)
        );
        assert_eq!(
            c("main;std::sys::sync::rwlock::futex::RwLock::write_contended"),
            Some(WaitKind::RwLock)
        );
        assert_eq!(c("main;__new_sem_wait_slow64"), Some(WaitKind::Semaphore));
        assert_eq!(c("main;my_own_futex_wait;syscall"), None);
        let re = Regex::new("^my_own_").unwrap();
        assert_eq!(
            stack_class(&frames("main;my_own_futex_wait;syscall"), Some(&re)),
            Some(WaitKind::Idle)
        );
        assert!(WaitKind::Join.is_idle() && WaitKind::Semaphore.is_idle());
        assert!(!WaitKind::Mutex.is_idle() && !WaitKind::RwLock.is_idle());
    }

    #[test]
    fn generic_arguments_and_qualified_paths_do_not_hide_a_class() {
        assert_eq!(
            plain_path("<std::sys::sync::mutex::futex::Mutex>::lock_contended"),
            "std::sys::sync::mutex::futex::Mutex::lock_contended"
        );
        assert_eq!(
            plain_path("std::sync::poison::mutex::Mutex<T>::lock"),
            "std::sync::poison::mutex::Mutex::lock"
        );
        assert_eq!(
            plain_path("<lock_api::mutex::Mutex<parking_lot::raw_mutex::RawMutex, u32>>::lock"),
            "lock_api::mutex::Mutex::lock"
        );
        assert_eq!(
            frame_class("<std::sys::sync::condvar::futex::Condvar>::wait_optional_timeout"),
            Some(WaitKind::Condvar)
        );
    }

    #[test]
    fn a_words_kind_is_its_stacks_by_time() {
        let mut t = StackTable::default();
        t.kinds.insert((1, 10), WaitKind::Condvar);
        t.kinds.insert((1, 11), WaitKind::Mutex);
        let mut a = AddrStats {
            pid: 1,
            ..Default::default()
        };
        a.kinds.insert(WaitKind::Kernel, 3);
        a.stacks.insert((1, 10), 500);
        a.stacks.insert((1, 11), 100);
        assert_eq!(a.kind_in(Some(&t)), WaitKind::Condvar);
        assert_eq!(a.kind_in(None), WaitKind::Kernel);
        a.stacks.insert((1, 11), 900);
        assert_eq!(a.kind_in(Some(&t)), WaitKind::Mutex);
    }
}
