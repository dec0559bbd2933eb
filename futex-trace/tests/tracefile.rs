//! The recorded trace format: every event kind survives a round trip, and a truncated or corrupt file
//! gives a clear error or a warning, never a panic (a deterministic mutation fuzzer runs here on every
//! test run; `fuzz/` has the libFuzzer target for longer runs).

use futex_trace::event::{
    Counts, Event, EventKind, FutexOp, HistOf, Kernel, KernelHash, Outcome, ThreadName, WaitKind,
    Waker,
};
use futex_trace::model::BucketOrigin;
use futex_trace::recording::{self, ReadError, TraceEnd, TraceMeta, TraceWriter};
use futex_trace::stacks::{Mapping, ProcessInfo, StackTable};

fn meta() -> TraceMeta {
    TraceMeta {
        source: "test".into(),
        pids: vec![42],
        command: Some(vec!["./app".into(), "--flag".into()]),
        buckets: 64,
        bucket_origin: BucketOrigin::FutexCoreHash,
        started_unix_s: 1.5e9,
        started_mono_ns: 123,
        labels: vec![(0x1000, "lock".into())],
    }
}

fn every_kind() -> Vec<Event> {
    let k = Some(Kernel {
        op: Some(FutexOp::WaitBitset),
        private: true,
        stack: Some(7),
    });
    let kinds = vec![
        EventKind::WaitStart {
            addr: 0x1000,
            bucket: 3,
            wait: WaitKind::Kernel,
            kernel: k,
        },
        EventKind::WaitEnd {
            addr: 0x1000,
            final_addr: 0x2000,
            bucket: 9,
            wait: WaitKind::Condvar,
            outcome: Outcome::Interrupted,
            wait_ns: u64::MAX,
            wake_to_return_ns: Some(5),
            requeued: 1,
            sched_delay_ns: None,
            waker: Some(Waker {
                tid: 77,
                stack: None,
                pid: 0,
            }),
            kernel: Some(Kernel {
                op: None,
                private: false,
                stack: None,
            }),
        },
        EventKind::Wake {
            addr: 1,
            bucket: 0,
            wait: WaitKind::Mutex,
            requested: u32::MAX,
            woken: 2,
            collisions: 3,
            kernel: None,
        },
        EventKind::Requeue {
            from: 1,
            to: 2,
            from_bucket: 3,
            to_bucket: 4,
            wait: WaitKind::Raw,
            woken: 1,
            moved: 4,
            collisions: 0,
            kernel: k,
        },
        EventKind::LockContended {
            addr: 5,
            bucket: 6,
            wait: WaitKind::Mutex,
            wait_ns: 7,
        },
        EventKind::Lost { count: 99 },
        EventKind::OtherOp {
            addr: 8,
            op: FutexOp::TrylockPi,
            ret: -22,
        },
        EventKind::Fork { child: 43 },
        EventKind::Exit,
        // Counts of a version-3 recording (no table), of the global table, of a private one.
        EventKind::Counts {
            addr: 0x1000,
            op: FutexOp::CmpRequeuePi,
            hash: None,
            counts: Counts::default(),
        },
        EventKind::Counts {
            addr: 0x1004,
            op: FutexOp::Wake,
            hash: Some(KernelHash::Global),
            counts: Counts {
                calls: 1,
                ..Counts::default()
            },
        },
        EventKind::Counts {
            addr: 0x1000,
            op: FutexOp::CmpRequeuePi,
            hash: Some(KernelHash::Private {
                slots: 1 << 20,
                bucket: (1 << 20) - 1,
            }),
            counts: Counts {
                calls: 2,
                blocked: 3,
                mismatches: 4,
                timeouts: 5,
                interrupted: 6,
                failed: 7,
                acquired: 8,
                woken: 9,
                moved: 10,
                wait_ns: u64::MAX,
            },
        },
        EventKind::Hist {
            of: HistOf::Wait { addr: 0x1000 },
            slot: 39,
            count: 300,
            sum: 1 << 40,
            max: 127,
        },
        EventKind::Hist {
            of: HistOf::WakeToReturn,
            slot: 0,
            count: 1,
            sum: 0,
            max: 0,
        },
        EventKind::Hist {
            of: HistOf::SchedDelay,
            slot: 5,
            count: 2,
            sum: 70,
            max: 40,
        },
        EventKind::Waiting {
            addr: 0x1000,
            now: 300,
        },
        EventKind::Moved {
            from: 0x1000,
            to: 0x2000,
            requeues: 1,
            moved: 127,
            woken: 128,
        },
        EventKind::WaitSample {
            addr: 0x1000,
            final_addr: 0x2000,
            op: FutexOp::Futex2Waitv,
            outcome: Outcome::Woken,
            wait_ns: 5_000,
            wake_to_return_ns: Some(7),
            sched_delay_ns: None,
            waker: Some(Waker {
                tid: 9,
                stack: Some(3),
                pid: 43,
            }),
            stack: Some(4),
            stack_rate_ns: 1_000_000,
            waker_every: 8,
        },
        EventKind::WaitSample {
            addr: 0x1000,
            final_addr: 0x1000,
            op: FutexOp::Wait,
            outcome: Outcome::TimedOut,
            wait_ns: 5_000,
            wake_to_return_ns: None,
            sched_delay_ns: Some(3),
            waker: None,
            stack: None,
            stack_rate_ns: 0,
            waker_every: 0,
        },
        EventKind::ThreadName {
            name: ThreadName::new("ledger-0"),
        },
        EventKind::Counts {
            addr: 0x7000,
            op: FutexOp::Wake,
            hash: Some(KernelHash::Shared),
            counts: Counts {
                calls: 3,
                woken: 2,
                ..Counts::default()
            },
        },
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| Event {
            ts_ns: 1_000 + i as u64,
            pid: 42,
            tid: 100 + i as u32,
            kind,
        })
        .collect()
}

fn stacks() -> StackTable {
    let mut t = StackTable::default();
    t.stacks.insert((42, 7), vec![0x10, 0x20]);
    t.processes.insert(
        42,
        ProcessInfo {
            comm: "app".into(),
            maps: vec![Mapping {
                start: 0x0,
                end: 0x1000,
                offset: 0,
                path: "/bin/app".into(),
                exec: true,
                dev: "08:01".into(),
                inode: 4242,
                deleted: true,
            }],
            cgroup: "/system.slice/app.service".into(),
        },
    );
    t.symbols
        .insert((42, 0x10), vec!["main".into(), "inlined".into()]);
    t
}

/// Each chunk of a (version 2) recording: (offset, header + payload length).
fn chunks(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut pos = 12;
    let mut v = Vec::new();
    while pos + 11 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos + 3..pos + 7].try_into().unwrap()) as usize;
        v.push((pos, 11 + len));
        pos += 11 + len;
    }
    v
}

fn file(events: &[Event]) -> Vec<u8> {
    let mut w = TraceWriter::new(Vec::new(), &meta()).unwrap();
    w.events(&events[..3]).unwrap();
    w.events(&events[3..]).unwrap();
    w.finish(
        &stacks(),
        &TraceEnd {
            pids: vec![42, 43],
            duration_s: 2.0,
            events: events.len() as u64,
            lost_events: 99,
            stack_errors: 1,
            untraced_calls: 2,
            missed_runs: 7,
            reason: "duration".into(),
            labels: vec![(0x1000, "lock".into())],
        },
    )
    .unwrap()
}

#[test]
fn every_event_kind_round_trips() {
    let events = every_kind();
    let bytes = file(&events);
    let mut back = Vec::new();
    let t = recording::read(&bytes[..], |e| back.push(*e)).unwrap();
    assert_eq!(back, events);
    assert_eq!(t.meta, meta());
    assert_eq!(t.stacks, stacks());
    assert_eq!(t.end.unwrap().pids, vec![42, 43]);
    assert_eq!(t.warning, None);
}

#[test]
fn truncation_keeps_whole_chunks_and_warns() {
    let events = every_kind();
    let bytes = file(&events);
    // Cut anywhere after the header chunk: never an error, never more events than written, and a
    // warning that says the recording is incomplete.
    let header_len = {
        let mut w = TraceWriter::new(Vec::new(), &meta()).unwrap();
        w.events(&[]).unwrap();
        w.finish(&StackTable::default(), &TraceEnd::default())
            .unwrap();
        12 + 11 + serde_json::to_vec(&meta()).unwrap().len()
    };
    for cut in header_len..bytes.len() {
        let mut n = 0;
        let t = recording::read(&bytes[..cut], |_| n += 1)
            .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert!(n == 0 || n == 3 || n == events.len(), "cut {cut}: {n}");
        let w = t.warning.unwrap_or_default();
        assert!(
            w.contains("cut short") || w.contains("did not end cleanly"),
            "cut {cut}: {w}"
        );
    }
}

#[test]
fn not_a_recording_and_future_versions_are_clear_errors() {
    let msg = |b: &[u8]| match recording::read(b, |_| {}) {
        Err(ReadError::Format(m)) => m,
        other => panic!("{other:?}"),
    };
    assert!(msg(b"").contains("not a futex-trace recording"));
    assert!(msg(b"hello world, not a trace").contains("not a futex-trace recording"));
    let mut v = file(&every_kind());
    v[8] = 9;
    assert!(msg(&v).contains("version 9"), "{}", msg(&v));
    // A chunk whose type is damaged is skipped, not the whole recording (version 2 finds the next
    // chunk by its marker and CRC).
    let mut v = file(&every_kind());
    let events_chunk = chunks(&v)[1].0;
    v[events_chunk + 2] = 200; // the first events chunk's type
    let mut n = 0;
    let t = recording::read(&v[..], |_| n += 1).unwrap();
    assert_eq!(
        n,
        every_kind().len() - 3,
        "only the damaged chunk's 3 events are lost"
    );
    assert!(t.warning.unwrap().contains("damaged bytes were skipped"));
}

/// xorshift64*: a deterministic stream of mutations, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mutated_files_never_panic() {
    let base = file(&every_kind());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut ok, mut err) = (0, 0);
    for _ in 0..20_000 {
        let mut v = base.clone();
        for _ in 0..=rng.below(4) {
            match rng.below(4) {
                0 => {
                    let i = rng.below(v.len());
                    v[i] = rng.next() as u8;
                }
                1 => {
                    let i = rng.below(v.len());
                    v[i] ^= 1 << rng.below(8);
                }
                2 => {
                    let cut = rng.below(v.len());
                    v.truncate(cut);
                }
                _ => {
                    let i = rng.below(v.len());
                    v.insert(i, rng.next() as u8);
                }
            }
            if v.is_empty() {
                break;
            }
        }
        match recording::read(&v[..], |_| {}) {
            Ok(_) => ok += 1,
            Err(ReadError::Format(m)) => {
                assert!(!m.is_empty());
                err += 1
            }
            Err(ReadError::Io(e)) => panic!("reading a slice cannot fail with I/O: {e}"),
        }
    }
    // Both paths were exercised.
    assert!(ok > 100 && err > 100, "ok {ok} err {err}");
}

#[test]
fn stacks_written_each_second_add_up_and_a_cut_keeps_them() {
    // Three tables, as a recording writes them: each second what is new, then the rest at the end.
    let mut all = stacks();
    let mut second = StackTable::default();
    second.stacks.insert((42, 8), vec![0x30]);
    second.symbols.insert((42, 0x30), vec!["worker".into()]);
    let mut lib = all.processes[&42].maps[0].clone();
    lib.path = "/lib/libc.so.6".into();
    lib.start = 0x7000;
    second.processes.insert(
        42,
        ProcessInfo {
            comm: "app".into(),
            maps: vec![lib],
            cgroup: String::new(),
        },
    );
    let mut last = StackTable::default();
    last.addr_symbols.insert((42, 0x5000), "LOCK".into());
    let mut w = TraceWriter::new(Vec::new(), &meta()).unwrap();
    w.events(&every_kind()).unwrap();
    w.stacks(&all).unwrap();
    w.stacks(&second).unwrap();
    w.events(&every_kind()).unwrap();
    let cut_at = w.finish(&last, &TraceEnd::default()).unwrap();
    all.merge(second.clone());
    all.merge(last.clone());
    let t = recording::read(&cut_at[..], |_| {}).unwrap();
    assert_eq!(t.stacks, all, "the chunks merge into the whole table");
    assert_eq!(t.stacks.processes[&42].maps.len(), 2);
    assert_eq!(t.meta.labels, meta().labels, "labels travel in the header");
    // Killed before its end: the stacks written each second are still there.
    let mut cut = cut_at.clone();
    // Drop the final STACKS and END chunks.
    let starts: Vec<usize> = chunks(&cut).iter().map(|c| c.0).collect();
    cut.truncate(starts[starts.len() - 2]);
    let t = recording::read(&cut[..], |_| {}).unwrap();
    assert!(t.end.is_none());
    assert!(t.warning.unwrap().contains("did not end cleanly"));
    let mut want = stacks();
    want.merge(second);
    assert_eq!(
        t.stacks, want,
        "a cut recording keeps the stacks of every whole second"
    );
}

#[test]
fn damage_loses_only_what_it_hits() {
    // Ten event chunks; damage in the middle of one chunk's payload, then in another one's length.
    let events = every_kind();
    let mut w = TraceWriter::new(Vec::new(), &meta()).unwrap();
    for _ in 0..10 {
        w.events(&events).unwrap();
    }
    let whole = w.finish(&stacks(), &TraceEnd::default()).unwrap();
    let cs = chunks(&whole);
    let count = |b: &[u8]| {
        let mut n = 0;
        let t = recording::read(b, |_| n += 1).unwrap();
        (n, t)
    };
    assert_eq!(count(&whole).0, 10 * events.len());
    // One flipped payload byte: its chunk fails its CRC; the nine others are read.
    let mut v = whole.clone();
    let (at, len) = cs[5];
    v[at + len / 2] ^= 0x10;
    let (n, t) = count(&v);
    assert_eq!(n, 9 * events.len());
    let w = t.warning.unwrap();
    assert!(
        w.contains(&format!(
            "{len} damaged bytes were skipped (from byte {at})"
        )),
        "{w}"
    );
    assert_eq!(t.stacks, stacks(), "the chunks after the damage are read");
    assert!(t.end.is_some());
    // A length field made huge: the reader finds the next chunk by its marker.
    let mut v = whole.clone();
    let (at, _) = cs[3];
    v[at + 6] = 0x7f;
    let (n, t) = count(&v);
    assert_eq!(n, 9 * events.len());
    assert!(t.end.is_some() && t.stacks == stacks());
    // Garbage inserted between two chunks: skipped, nothing lost.
    let mut v = whole.clone();
    let (at, _) = cs[7];
    v.splice(at..at, std::iter::repeat_n(0xf7u8, 100));
    let (n, t) = count(&v);
    assert_eq!(n, 10 * events.len());
    assert!(t
        .warning
        .unwrap()
        .contains("100 damaged bytes were skipped"));
}
