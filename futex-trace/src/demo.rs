//! The built-in demo: a contended workload on futex-core, in this process, traced through the observer
//! (no root needed). Several Mutexes of different heat, two hot locks whose addresses share a bucket, a
//! Condvar whose `notify_all` requeues onto its mutex, and a producer/consumer queue.

use std::collections::{HashMap, VecDeque};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use futex_core::sync::{Condvar, Mutex};

/// The demo's knobs (the CLI's `--threads` and `--skew`).
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// Threads contending on the heat-graded locks.
    pub threads: usize,
    /// Heat ratio between consecutive locks: lock i is picked with weight `skew^i` (0 < skew ≤ 1;
    /// 1 spreads evenly, 0.3 makes lock 0 very hot).
    pub skew: f64,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            threads: 4,
            skew: 0.5,
        }
    }
}

const HEAT_LOCKS: usize = 6;

struct Shared {
    stop: AtomicBool,
    heat: Vec<Mutex<u64>>,
    /// Two locks whose futex words hash to the same futex-core bucket.
    pair: (Arc<Mutex<u64>>, Arc<Mutex<u64>>),
    broadcast: (Mutex<u64>, Condvar),
    queue: (Mutex<VecDeque<u64>>, Condvar),
}

/// A running demo; [`Demo::stop`] ends it and joins its threads.
pub struct Demo {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
    labels: HashMap<u64, String>,
}

/// Two heap-allocated mutexes whose words share a bucket of the default table.
fn colliding_pair() -> (Arc<Mutex<u64>>, Arc<Mutex<u64>>) {
    let t = futex_core::default_table();
    let mut by_bucket: HashMap<usize, Arc<Mutex<u64>>> = HashMap::new();
    let mut keep = Vec::new(); // keep candidates alive so addresses are not reused while searching
    loop {
        let m = Arc::new(Mutex::new(0));
        let b = t.bucket_of_addr(m.addr());
        if let Some(first) = by_bucket.remove(&b) {
            return (first, m);
        }
        by_bucket.insert(b, m.clone());
        keep.push(m);
    }
}

/// Busy work of roughly `n` small steps, inside or outside a critical section.
fn work(n: u32) {
    let mut x = 0u64;
    for i in 0..n {
        x = black_box(x.wrapping_mul(31).wrapping_add(i as u64));
    }
    black_box(x);
}

/// A tiny xorshift generator: the demo needs cheap, not good, randomness.
fn next_rand(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// The demo's futex words by name: each lock and condvar says what it is.
fn labels_of(shared: &Shared) -> HashMap<u64, String> {
    let mut labels = HashMap::new();
    for (i, m) in shared.heat.iter().enumerate() {
        labels.insert(m.addr() as u64, format!("demo: heat lock {i}"));
    }
    let named = [
        (shared.pair.0.addr(), "demo: colliding lock A"),
        (shared.pair.1.addr(), "demo: colliding lock B"),
        (shared.broadcast.0.addr(), "demo: broadcast mutex"),
        (shared.broadcast.1.addr(), "demo: broadcast condvar"),
        (shared.queue.0.addr(), "demo: queue mutex"),
        (shared.queue.1.addr(), "demo: queue condvar"),
    ];
    for (addr, name) in named {
        labels.insert(addr as u64, name.into());
    }
    labels
}

/// Where each heat lock's share of the picks ends, in [0, 1]: lock i has weight `skew^i`.
fn heat_shares(skew: f64) -> Vec<f64> {
    let weights: Vec<f64> = (0..HEAT_LOCKS).map(|i| skew.powi(i as i32)).collect();
    let total: f64 = weights.iter().sum();
    weights
        .iter()
        .scan(0.0, |acc, w| {
            *acc += w / total;
            Some(*acc)
        })
        .collect()
}

/// A heat worker: picks a lock by its heat, takes it twice (the second time with work inside), and
/// now and then blocks while holding it (I/O, a page fault…), so that waiters sleep.
#[inline(never)]
fn heat_worker(s: &Shared, t: usize, shares: &[f64]) {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ ((t as u64 + 1) << 32);
    while !s.stop.load(Ordering::Relaxed) {
        let r = (next_rand(&mut rng) >> 11) as f64 / (1u64 << 53) as f64;
        let i = shares.iter().position(|&c| r < c).unwrap_or(HEAT_LOCKS - 1);
        *s.heat[i].lock() += 1;
        work(200);
        let mut g = s.heat[i].lock();
        work(400);
        *g += 1;
        if (*g).is_multiple_of(16) {
            thread::sleep(Duration::from_micros(100));
        }
        drop(g);
    }
}

/// A thread on one of the two colliding locks: holding it across a sleep now and then makes the other
/// side sleep in the shared bucket.
#[inline(never)]
fn colliding_worker(s: &Shared, side: usize) {
    let m = if side.is_multiple_of(2) {
        &s.pair.0
    } else {
        &s.pair.1
    };
    while !s.stop.load(Ordering::Relaxed) {
        let mut g = m.lock();
        work(300);
        *g += 1;
        if (*g).is_multiple_of(8) {
            thread::sleep(Duration::from_micros(50));
        }
        drop(g);
        work(100);
    }
}

/// Waits for the broadcaster's next generation, then works on it.
#[inline(never)]
fn broadcast_waiter(s: &Shared) {
    let (m, c) = &s.broadcast;
    let mut seen = 0;
    while !s.stop.load(Ordering::Relaxed) {
        let g = m.lock();
        let (g, _) = c.wait_timeout(g, Duration::from_millis(100));
        if *g != seen {
            seen = *g;
            drop(g);
            work(2_000);
        }
    }
}

/// Publishes a new generation every 2 ms with `notify_all`, which requeues the waiters onto the mutex.
#[inline(never)]
fn broadcaster(s: &Shared) {
    let (m, c) = &s.broadcast;
    while !s.stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(2));
        *m.lock() += 1;
        c.notify_all();
    }
    c.notify_all();
}

/// Pushes work onto the queue in bursts of 16.
#[inline(never)]
fn producer(s: &Shared) {
    let (m, c) = &s.queue;
    let mut n = 0u64;
    while !s.stop.load(Ordering::Relaxed) {
        for _ in 0..16 {
            m.lock().push_back(n);
            n += 1;
            c.notify_one();
        }
        thread::sleep(Duration::from_micros(500));
    }
    c.notify_all();
}

/// Waits for work on the queue, then does it.
#[inline(never)]
fn consumer(s: &Shared) {
    let (m, c) = &s.queue;
    while !s.stop.load(Ordering::Relaxed) {
        let g = m.lock();
        let (mut g, _) = c.wait_timeout_while(g, Duration::from_millis(100), |q| q.is_empty());
        if g.pop_front().is_some() {
            drop(g);
            work(500);
        }
    }
}

impl Demo {
    /// Starts the demo's threads: heat workers on the heat-graded locks, four threads on the two
    /// colliding locks, three broadcast waiters and their broadcaster, a producer and two consumers.
    pub fn start(cfg: &DemoConfig) -> Demo {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            heat: (0..HEAT_LOCKS).map(|_| Mutex::new(0)).collect(),
            pair: colliding_pair(),
            broadcast: (Mutex::new(0), Condvar::new()),
            queue: (Mutex::new(VecDeque::new()), Condvar::new()),
        });
        let labels = labels_of(&shared);
        let shares = Arc::new(heat_shares(cfg.skew.clamp(0.01, 1.0)));
        let mut handles = Vec::new();
        let mut spawn = |name: String, f: Box<dyn FnOnce(&Shared) + Send>| {
            let s = shared.clone();
            let h = thread::Builder::new().name(name).spawn(move || f(&s));
            handles.push(h.expect("spawn a demo thread"));
        };
        for t in 0..cfg.threads.max(1) {
            let shares = shares.clone();
            spawn(
                format!("demo-heat-{t}"),
                Box::new(move |s| heat_worker(s, t, &shares)),
            );
        }
        // Two threads on each of the two colliding locks, so both have waiters in the shared bucket.
        for side in 0..4 {
            spawn(
                format!("demo-collide-{side}"),
                Box::new(move |s| colliding_worker(s, side)),
            );
        }
        for w in 0..3 {
            spawn(format!("demo-bcast-wait-{w}"), Box::new(broadcast_waiter));
        }
        spawn("demo-bcast".into(), Box::new(broadcaster));
        spawn("demo-producer".into(), Box::new(producer));
        for k in 0..2 {
            spawn(format!("demo-consumer-{k}"), Box::new(consumer));
        }
        Demo {
            shared,
            handles,
            labels,
        }
    }

    /// Names of the demo's futex words, by address.
    pub fn labels(&self) -> &HashMap<u64, String> {
        &self.labels
    }

    /// Stops every demo thread and waits for them.
    pub fn stop(self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for h in self.handles {
            let _ = h.join();
        }
    }
}
