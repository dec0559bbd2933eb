//! The probe encoding: how each [`QueueEventKind`] becomes the six arguments of its USDT probe, and back.
//!
//! `PROBES.md` is the contract; this module is its one implementation. The emitting side
//! (`Table::emit`) calls [`encode`]; decoders (futex-trace's eBPF source reads the arguments in the
//! kernel and hands them to [`decode`]) call [`decode`]. The round trip is tested below, so the two
//! sides cannot drift apart.
//!
//! Probes carry at most six arguments (bpftrace reads at most six on x86-64), so some are packed:
//! argument 2 (`tk`) holds the wait kind (bits 0..8), the table id (bits 32..64) and, for `wait_end`,
//! the outcome (bits 8..16) and the times requeued (bits 16..32, saturating); `requeue` packs its two
//! queues and its woken/moved counts into one argument each (low half, high half).

use crate::event::{QueueEventKind, WaitKind, WaitOutcome};

/// futex-core's probes (provider `futex_core`), numbered as the eBPF side numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Probe {
    WaitStart = 0,
    WaitEnd = 1,
    Wake = 2,
    Requeue = 3,
    LockContended = 4,
}

impl Probe {
    /// Every probe, in number order.
    pub const ALL: [Probe; 5] = [
        Probe::WaitStart,
        Probe::WaitEnd,
        Probe::Wake,
        Probe::Requeue,
        Probe::LockContended,
    ];

    /// The probe's name in `.note.stapsdt`.
    pub fn name(self) -> &'static str {
        match self {
            Probe::WaitStart => "wait_start",
            Probe::WaitEnd => "wait_end",
            Probe::Wake => "wake",
            Probe::Requeue => "requeue",
            Probe::LockContended => "lock_contended",
        }
    }

    /// The probe of this number; unknown numbers are `None`.
    pub fn from_u8(v: u8) -> Option<Probe> {
        Probe::ALL.get(v as usize).copied()
    }

    /// The probe named `name` (provider `futex_core`).
    pub fn from_name(name: &str) -> Option<Probe> {
        Probe::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// The provider name of every probe.
pub const PROVIDER: &str = "futex_core";

/// `tk` (argument 2): the wait kind's bits.
pub const KIND_MASK: u64 = 0xff;
/// `tk` of `wait_end`: where the outcome starts (8 bits).
pub const OUTCOME_SHIFT: u32 = 8;
/// `tk` of `wait_end`: where the times-requeued count starts (16 bits, saturating).
pub const REQUEUED_SHIFT: u32 = 16;
/// `tk`: where the table id starts (32 bits; 0 is the process-wide default table).
pub const TABLE_SHIFT: u32 = 32;

fn tk(table: u32, kind: WaitKind) -> u64 {
    kind as u64 | u64::from(table) << TABLE_SHIFT
}

fn pair(lo: u32, hi: u32) -> u64 {
    u64::from(lo) | u64::from(hi) << 32
}

fn lo(v: u64) -> u32 {
    v as u32
}

fn hi(v: u64) -> u32 {
    (v >> 32) as u32
}

/// The probe `kind` fires and its arguments, for an event of table `table`.
#[inline]
pub fn encode(table: u32, kind: &QueueEventKind) -> (Probe, [u64; 6]) {
    match *kind {
        QueueEventKind::WaitStart {
            addr,
            bucket: queue,
            wait: kind,
            expected,
        } => (
            Probe::WaitStart,
            [
                addr as u64,
                queue.into(),
                tk(table, kind),
                expected.into(),
                0,
                0,
            ],
        ),
        QueueEventKind::WaitEnd {
            addr,
            bucket: queue,
            wait: kind,
            outcome,
            wait_ns,
            wake_to_return_ns,
            requeued,
            final_addr,
        } => (
            Probe::WaitEnd,
            [
                addr as u64,
                queue.into(),
                tk(table, kind)
                    | (outcome as u64) << OUTCOME_SHIFT
                    | u64::from(requeued.min(0xffff)) << REQUEUED_SHIFT,
                wait_ns,
                wake_to_return_ns,
                final_addr as u64,
            ],
        ),
        QueueEventKind::Wake {
            addr,
            bucket: queue,
            wait: kind,
            requested,
            woken,
            collisions,
        } => (
            Probe::Wake,
            [
                addr as u64,
                queue.into(),
                tk(table, kind),
                requested.into(),
                woken.into(),
                collisions.into(),
            ],
        ),
        QueueEventKind::Requeue {
            from,
            from_bucket: from_queue,
            to,
            to_bucket: to_queue,
            wait: kind,
            woken,
            moved,
            collisions,
        } => (
            Probe::Requeue,
            [
                from as u64,
                to as u64,
                tk(table, kind),
                pair(from_queue, to_queue),
                pair(woken, moved),
                collisions.into(),
            ],
        ),
        QueueEventKind::LockContended {
            addr,
            bucket: queue,
            wait: kind,
            wait_ns,
        } => (
            Probe::LockContended,
            [addr as u64, queue.into(), tk(table, kind), wait_ns, 0, 0],
        ),
    }
}

/// The event a probe's arguments describe, and its table id; `None` for a wait kind or outcome this
/// version does not know. `requeued` comes back saturated at 65535, as the probe carries it.
pub fn decode(probe: Probe, a: [u64; 6]) -> Option<(u32, QueueEventKind)> {
    let table = hi(a[2]);
    let kind = WaitKind::from_u8((a[2] & KIND_MASK) as u8)?;
    let event = match probe {
        Probe::WaitStart => QueueEventKind::WaitStart {
            addr: a[0] as usize,
            bucket: lo(a[1]),
            wait: kind,
            expected: lo(a[3]),
        },
        Probe::WaitEnd => QueueEventKind::WaitEnd {
            addr: a[0] as usize,
            bucket: lo(a[1]),
            wait: kind,
            outcome: WaitOutcome::from_u8((a[2] >> OUTCOME_SHIFT) as u8)?,
            wait_ns: a[3],
            wake_to_return_ns: a[4],
            requeued: ((a[2] >> REQUEUED_SHIFT) & 0xffff) as u32,
            final_addr: a[5] as usize,
        },
        Probe::Wake => QueueEventKind::Wake {
            addr: a[0] as usize,
            bucket: lo(a[1]),
            wait: kind,
            requested: lo(a[3]),
            woken: lo(a[4]),
            collisions: lo(a[5]),
        },
        Probe::Requeue => QueueEventKind::Requeue {
            from: a[0] as usize,
            from_bucket: lo(a[3]),
            to: a[1] as usize,
            to_bucket: hi(a[3]),
            wait: kind,
            woken: lo(a[4]),
            moved: hi(a[4]),
            collisions: lo(a[5]),
        },
        Probe::LockContended => QueueEventKind::LockContended {
            addr: a[0] as usize,
            bucket: lo(a[1]),
            wait: kind,
            wait_ns: a[3],
        },
    };
    Some((table, event))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<QueueEventKind> {
        let k = WaitKind::Condvar;
        vec![
            QueueEventKind::WaitStart {
                addr: 0x7fff_0000_1230,
                bucket: 63,
                wait: WaitKind::Mutex,
                expected: u32::MAX,
            },
            QueueEventKind::WaitEnd {
                addr: 0x10,
                bucket: 7,
                wait: k,
                outcome: WaitOutcome::TimedOut,
                wait_ns: u64::MAX,
                wake_to_return_ns: 40,
                requeued: 3,
                final_addr: 0x20,
            },
            QueueEventKind::Wake {
                addr: 0x10,
                bucket: 1,
                wait: WaitKind::Raw,
                requested: u32::MAX,
                woken: 5,
                collisions: 2,
            },
            QueueEventKind::Requeue {
                from: 0x10,
                from_bucket: 3,
                to: 0x20,
                to_bucket: 9,
                wait: k,
                woken: 1,
                moved: u32::MAX,
                collisions: 4,
            },
            QueueEventKind::LockContended {
                addr: 0x30,
                bucket: 2,
                wait: WaitKind::Mutex,
                wait_ns: 1234,
            },
        ]
    }

    #[test]
    fn every_event_round_trips_through_its_probe() {
        for table in [0, 1, u32::MAX] {
            for e in every_kind() {
                let (probe, args) = encode(table, &e);
                assert_eq!(Probe::from_name(probe.name()), Some(probe));
                assert_eq!(Probe::from_u8(probe as u8), Some(probe));
                assert_eq!(decode(probe, args), Some((table, e)), "{probe:?}");
            }
        }
    }

    #[test]
    fn requeued_saturates_and_unknown_values_are_refused() {
        let e = QueueEventKind::WaitEnd {
            addr: 1,
            bucket: 0,
            wait: WaitKind::Raw,
            outcome: WaitOutcome::Woken,
            wait_ns: 0,
            wake_to_return_ns: 0,
            requeued: 70_000,
            final_addr: 1,
        };
        let (p, mut a) = encode(0, &e);
        let Some((_, QueueEventKind::WaitEnd { requeued, .. })) = decode(p, a) else {
            panic!()
        };
        assert_eq!(requeued, 0xffff);
        a[2] |= 9 << OUTCOME_SHIFT; // outcome 9 does not exist
        assert_eq!(decode(p, a), None);
        assert_eq!(decode(Probe::Wake, [0, 0, 7, 0, 0, 0]), None, "kind 7");
        assert_eq!(Probe::from_u8(5), None);
    }

    #[test]
    fn the_layout_is_the_one_probes_md_documents() {
        // PROBES.md's examples (bpftrace) read these positions directly.
        let (p, a) = encode(
            2,
            &QueueEventKind::WaitEnd {
                addr: 0xa,
                bucket: 5,
                wait: WaitKind::Mutex,
                outcome: WaitOutcome::Mismatch,
                wait_ns: 100,
                wake_to_return_ns: 0,
                requeued: 1,
                final_addr: 0xb,
            },
        );
        assert_eq!(p.name(), "wait_end");
        assert_eq!(a, [0xa, 5, 1 | 2 << 8 | 1 << 16 | 2 << 32, 100, 0, 0xb]);
    }
}
