//! Plumbing: the frames between a program and its futex calls that are not the program — threading
//! libraries (glibc, libstdc++), language runtimes (CPython, the JVM, V8 and libuv, Rust's std,
//! parking_lot, futex-core) and the lock implementations of servers built on them (PostgreSQL's LWLocks,
//! MariaDB's wrappers). A wait site is the innermost frame above them (see [`crate::sites`]).
//!
//! Frames are plumbing by the file their code is in, or by their (demangled, generic-stripped) name. The
//! tables were read off real stacks of CPython 3.11, PostgreSQL 15, OpenJDK 17, Node 20 and MariaDB 10.11
//! (Debian's builds) and of Rust programs.

use std::sync::LazyLock;

use regex::RegexSet;

use super::classify::plain_path;

/// Files whose every frame is plumbing: the C library and its threads, the C++ runtime, the JVM, and
/// executables that are language runtimes (their program frames come from a language unwinder).
const FILES: &[&str] = &[
    "libc.so",
    "libpthread",
    "ld-linux",
    "libstdc++",
    "libgcc_s",
    "libjvm.so",
    "libpython3",
    "python3",
    "node",
];

/// Names that are plumbing wherever their code is (linked into the program, or a stripped binary's
/// dynamic symbols).
const NAMES: &[&str] = &[
    // Rust: std, core, alloc, and the lock crates (linked into the program).
    r"^(std|core|alloc|parking_lot|parking_lot_core|lock_api|futex_core|crossbeam_\w+)::",
    r"^<(std|core|alloc|parking_lot|lock_api|futex_core)::",
    r"^__rust_|^__futex_abstimed_wait|^__lll_|^___?pthread_|^__new_sem_|^sem_|^syscall$|^futex_wa(ke|it)$|^__GI_",
    // CPython.
    r"^(PyThread_|PyEval_(Save|Restore|Acquire|Release)Thread|PyGILState_|_PyEval_|take_gil|drop_gil)",
    r"^(_PyFunction_Vectorcall|_PyObject_(MakeTpCall|Call)|PyObject_(Vectorcall|Call)|method_vectorcall)",
    r"^py::threading\.|^py::queue\.|^py::concurrent\.futures\.",
    // PostgreSQL's locks and semaphores.
    r"^(PGSemaphore(Lock|Unlock)|LWLock(Acquire|AcquireOrWait|WaitForVar|Release|Wakeup|UpdateVar|ReleaseClearVar|QueueSelf)|ConditionVariable(Sleep|TimedSleep|Signal|Broadcast))$",
    // HotSpot (libjvm is plumbing by its file) and the JDK's own concurrency code.
    r"^(java\.util\.concurrent\.|jdk\.internal\.misc\.Unsafe\.|java\.lang\.Object\.wait|java\.lang\.Thread\.(sleep|join|onSpinWait))",
    r"^(Interpreter|StubRoutines|Stub|call_stub)",
    // JIT code no perf map named, and the runtimes' own generated code (see `jit`).
    r"^(\[JIT code\]$|v8:[A-Z]|jit:)",
    // V8, libuv and node's platform threads.
    r"^(v8::internal::Object v8::internal::FutexEmulation::|v8::internal::FutexEmulation::|v8::internal::Builtin_Atomics|Builtins_|v8::internal::Execution::|v8::Function::Call|v8::base::|v8::platform::)",
    r"^(node::(InternalMakeCallback|AsyncWrap::|worker::MessagePort::|TaskQueue|NodePlatform|PerIsolatePlatformData|\(anonymous namespace\)::PlatformWorkerThread)|uv_|uv__)",
    // MariaDB's lock wrappers and its thread pool's own waits.
    r"^(inline_mysql_|my_cond_|my_mutex_|psi_|tpool::thread_pool_generic::(wait_begin|wait_end))",
    // C++ standard library (inlined into programs).
    r"^std::(__1::)?(condition_variable|mutex|unique_lock|lock_guard|shared_mutex|__detail::__atomic)",
];

static PLUMBING: LazyLock<RegexSet> =
    LazyLock::new(|| RegexSet::new(NAMES).expect("the plumbing table's patterns compile"));

/// Names of the functions threads start in, below a program's own loop.
static THREAD_ENTRY: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSet::new([
        r"^(start_thread|clone3?|thread_start|thread_native_entry|__clone|_start|__libc_start_main|__libc_start_call_main|main)$",
        r"Thread::call_run$|thread::Thread::new::thread_start|__rust_begin_short_backtrace|^java\.lang\.Thread\.run$",
        r"FnOnce>?::call_once|^std::rt::lang_start",
    ])
    .expect("the thread-entry patterns compile")
});

/// Frames of a waker that release a lock: an unlock whose release woke the waiter is a lock's
/// hand-over, whatever the primitive the waiter slept on.
static RELEASE: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSet::new([
        r"pthread_mutex_unlock|^__lll_unlock_wake|^lll_unlock|pthread_rwlock_unlock",
        r"^LWLockRelease$|^ObjectMonitor::(exit|ExitEpilog)$|^SharedRuntime::complete_monitor_unlocking",
        r"Mutex::unlock|MutexGuard.*::drop|RawMutex::unlock|RwLock::(read|write)_unlock|::wake$",
        r"^futex_core::sync::mutex::",
    ])
    .expect("the release patterns compile")
});

/// Frames of futex-core's observer taking a stack (`ObserverSlot::emit` ← `Table::emit`): never where a
/// program waited.
pub fn is_observer_frame(name: &str) -> bool {
    name.starts_with("futex_core::observer::") || name == "futex_core::table::Table::emit"
}

/// Frames that acquire a mutual-exclusion lock, and frames of a condvar's wait (whose mutex re-take is
/// no acquire of the program's).
static ACQUIRE: LazyLock<(RegexSet, RegexSet)> = LazyLock::new(|| {
    let acquire = RegexSet::new([
        r"^(LWLockAcquire|LWLockAcquireOrWait|LWLockWaitForVar)$",
        r"pthread_mutex_(lock|timedlock|clocklock)|^__lll_lock_wait|^lll_lock_wait|pthread_rwlock_(rd|wr|timedrd|timedwr|clockrd|clockwr)lock",
        r"Mutex(<.*>)?::lock|RawMutex::lock|RwLock(<.*>)?::(read|write)|::lock_contended$|::lock_slow$",
        r"^ObjectMonitor::(enter|EnterI)$|^ObjectSynchronizer::enter$",
        r"^java\.util\.concurrent\.locks\.(ReentrantLock|ReentrantReadWriteLock)\S*\.lock$",
    ])
    .expect("the acquire patterns compile");
    let condvar = RegexSet::new([
        r"pthread_cond_|^__condvar_|^__pthread_mutex_cond_lock",
        r"Condvar(<.*>)?::wait|^ConditionVariable(Sleep|TimedSleep)$|condition_variable::wait",
        r"ConditionObject\.await|^java\.lang\.Object\.wait",
    ])
    .expect("the condvar patterns compile");
    (acquire, condvar)
});

/// Whether a stack (frame names, outermost first) waits to acquire a mutual-exclusion lock: its
/// outermost acquire frame, unless the wait is inside a condvar's wait (the mutex a condvar re-takes;
/// a condvar's wait calls no program code, so any of its frames means the wait is its).
pub fn waits_in_acquire(frames: &[String]) -> Option<&str> {
    let (acquire, condvar) = &*ACQUIRE;
    let mut found = None;
    for f in frames.iter().rev() {
        let plain = plain_path(f);
        if condvar.is_match(&plain) {
            return None;
        }
        if acquire.is_match(&plain) {
            found = Some(f.as_str());
        }
    }
    found
}

/// The file name of a path.
fn base(file: &str) -> &str {
    file.rsplit('/').next().unwrap_or(file)
}

/// Whether a frame (its name, and the file its code is in) is plumbing, not the program.
pub fn is_plumbing(name: &str, file: Option<&str>) -> bool {
    if file.map(base).is_some_and(|b| {
        FILES.iter().any(|f| {
            b.starts_with(f) && (b.len() == f.len() || !b.as_bytes()[f.len()].is_ascii_alphabetic())
        })
    }) {
        return true;
    }
    is_plumbing_name(name)
}

/// Whether a frame is plumbing by its name alone (a runtime's or a library's function).
pub fn is_plumbing_name(name: &str) -> bool {
    PLUMBING.is_match(&plain_path(name.trim_start_matches('<')))
}

/// Whether a frame is one a thread starts in (or the process's `main`), below a program's own loop.
pub fn is_thread_entry(name: &str) -> bool {
    THREAD_ENTRY.is_match(&plain_path(name))
}

/// Whether a waker's frame releases a lock (an unlock, not a notify or a post).
pub fn is_release(name: &str) -> bool {
    RELEASE.is_match(&plain_path(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_acquire_is_told_from_a_condvars_mutex_retake() {
        let v = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            waits_in_acquire(&v(&[
                "XLogFlush",
                "LWLockAcquireOrWait",
                "PGSemaphoreLock",
                "sem_wait"
            ])),
            Some("LWLockAcquireOrWait")
        );
        assert_eq!(
            waits_in_acquire(&v(&["worker", "___pthread_mutex_lock", "__lll_lock_wait"])),
            Some("___pthread_mutex_lock")
        );
        assert_eq!(
            waits_in_acquire(&v(&[
                "worker",
                "___pthread_cond_wait",
                "__pthread_mutex_cond_lock",
                "__lll_lock_wait"
            ])),
            None,
            "a condvar's re-take"
        );
        assert_eq!(waits_in_acquire(&v(&["worker", "sem_wait"])), None);
    }

    #[test]
    fn libraries_and_runtimes_are_plumbing_and_programs_are_not() {
        let libc = Some("/usr/lib/x86_64-linux-gnu/libc.so.6");
        assert!(is_plumbing("__new_sem_wait_slow64", libc));
        assert!(is_plumbing(
            "anything",
            Some("/usr/lib/jvm/java-17/lib/server/libjvm.so")
        ));
        assert!(is_plumbing(
            "_PyEval_EvalFrameDefault",
            Some("/usr/bin/python3.11")
        ));
        assert!(is_plumbing("uv__io_poll", Some("/usr/bin/node")));
        assert!(
            !is_plumbing("main", Some("/usr/bin/nodejs-app")),
            "a file that only starts alike"
        );
        assert!(is_plumbing(
            "LWLockAcquireOrWait",
            Some("/usr/lib/postgresql/15/bin/postgres")
        ));
        assert!(!is_plumbing(
            "XLogFlush",
            Some("/usr/lib/postgresql/15/bin/postgres")
        ));
        assert!(is_plumbing(
            "std::sys::sync::mutex::futex::Mutex::lock_contended",
            Some("/app")
        ));
        assert!(is_plumbing(
            "<lock_api::mutex::Mutex<R, T>>::lock",
            Some("/app")
        ));
        assert!(!is_plumbing("app::transfer", Some("/app")));
        assert!(is_plumbing(
            "java.util.concurrent.locks.ReentrantLock.lock",
            None
        ));
        assert!(!is_plumbing("Bank.transferFunds", None));
        assert!(is_thread_entry("start_thread") && is_thread_entry("thread_native_entry"));
        assert!(is_release("___pthread_mutex_unlock") && is_release("LWLockRelease"));
        assert!(is_release("ObjectMonitor::ExitEpilog"));
        assert!(!is_release("__new_sem_post") && !is_release("___pthread_cond_signal"));
    }
}
