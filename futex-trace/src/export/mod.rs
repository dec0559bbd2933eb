//! What a trace is turned into for people and for the tools they run: the [`report`] (text and JSON),
//! [`flame`]graphs, [`pprof`] profiles, and [`serve`] (Prometheus metrics, Go-style pprof endpoints,
//! pushes to Pyroscope). Each is a function of a trace's [`crate::sites::Analysis`]: its model, how it
//! names words and frames, and its wait sites and classes.

pub mod flame;
pub mod pprof;
pub mod report;
pub mod serve;

use std::collections::BTreeMap;

use crate::model::{Side, StackKey};
use crate::sites::{Analysis, Class};

/// Which waits a flamegraph or a profile draws, by the class of their wait site.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Show {
    /// Contention only when the trace has any (a lock, a hand-off), else every wait.
    #[default]
    Auto,
    /// Waits for a lock or a hand-off.
    Contention,
    /// Waits for work, and sleeps.
    Idle,
    /// Every wait, unclassified ones too.
    All,
}

impl Show {
    /// What `self` draws of `an`: `Auto` decided (contention, if the trace has any).
    pub fn resolve(self, an: &Analysis<'_>) -> Show {
        match self {
            Show::Auto if an.sites.sites.iter().any(|s| s.class.is_contention()) => {
                Show::Contention
            }
            Show::Auto => Show::All,
            s => s,
        }
    }

    /// Whether waits of `class` are drawn.
    pub fn keeps(self, class: Class) -> bool {
        match self {
            Show::Contention => class.is_contention(),
            Show::Idle => class.is_idle(),
            Show::Auto | Show::All => true,
        }
    }

    /// What it draws, in words ("contention only").
    pub fn says(self) -> &'static str {
        match self {
            Show::Contention => "contention only (a lock, a hand-off)",
            Show::Idle => "idle waits only (waiting for work, sleeps)",
            Show::Auto | Show::All => "every wait",
        }
    }
}

/// The time of each stack, by thread where the model knows it, with the class it counts in: a waiting
/// stack's site's class; a waking stack's, the class of the word whose waiter it released.
pub fn stack_weights(
    an: &Analysis<'_>,
    side: Side,
) -> BTreeMap<(StackKey, Option<u32>), (u64, Class)> {
    let mut out: BTreeMap<(StackKey, Option<u32>), (u64, Class)> = BTreeMap::new();
    for (&word, a) in &an.model.addresses {
        let word_class = an.word_class(word);
        let (by_stack, by_thread) = match side {
            Side::Waiters => (&a.stacks, &a.thread_stacks),
            Side::Wakers => (&a.waker_stacks, &a.waker_thread_stacks),
        };
        let parts: Vec<(StackKey, Option<u32>, u64)> = if by_thread.is_empty() {
            by_stack.iter().map(|(&k, &ns)| (k, None, ns)).collect()
        } else {
            by_thread
                .iter()
                .map(|(&(k, t), &ns)| (k, Some(t), ns))
                .collect()
        };
        for (k, tid, ns) in parts {
            let class = match side {
                Side::Waiters => an.sites.site_of(k, tid).map_or(word_class, |s| s.class),
                Side::Wakers => word_class,
            };
            let e = out.entry((k, tid)).or_insert((0, class));
            e.0 += ns;
        }
    }
    out
}
