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

impl Demo {
    pub fn start(cfg: &DemoConfig) -> Demo {
        let skew = cfg.skew.clamp(0.01, 1.0);
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            heat: (0..HEAT_LOCKS).map(|_| Mutex::new(0)).collect(),
            pair: colliding_pair(),
            broadcast: (Mutex::new(0), Condvar::new()),
            queue: (Mutex::new(VecDeque::new()), Condvar::new()),
        });
        let mut labels = HashMap::new();
        for (i, m) in shared.heat.iter().enumerate() {
            labels.insert(m.addr() as u64, format!("demo: heat lock {i}"));
        }
        labels.insert(shared.pair.0.addr() as u64, "demo: colliding lock A".into());
        labels.insert(shared.pair.1.addr() as u64, "demo: colliding lock B".into());
        labels.insert(
            shared.broadcast.0.addr() as u64,
            "demo: broadcast mutex".into(),
        );
        labels.insert(
            shared.broadcast.1.addr() as u64,
            "demo: broadcast condvar".into(),
        );
        labels.insert(shared.queue.0.addr() as u64, "demo: queue mutex".into());
        labels.insert(shared.queue.1.addr() as u64, "demo: queue condvar".into());

        let weights: Vec<f64> = (0..HEAT_LOCKS).map(|i| skew.powi(i as i32)).collect();
        let total: f64 = weights.iter().sum();
        let cumulative: Arc<Vec<f64>> = Arc::new(
            weights
                .iter()
                .scan(0.0, |acc, w| {
                    *acc += w / total;
                    Some(*acc)
                })
                .collect(),
        );
        let mut handles = Vec::new();
        let mut spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
            handles.push(
                thread::Builder::new()
                    .name(name)
                    .spawn(f)
                    .expect("spawn a demo thread"),
            );
        };
        for t in 0..cfg.threads.max(1) {
            let (s, cum) = (shared.clone(), cumulative.clone());
            spawn(
                format!("demo-heat-{t}"),
                Box::new(move || {
                    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ ((t as u64 + 1) << 32);
                    while !s.stop.load(Ordering::Relaxed) {
                        let r = (next_rand(&mut rng) >> 11) as f64 / (1u64 << 53) as f64;
                        let i = cum.iter().position(|&c| r < c).unwrap_or(HEAT_LOCKS - 1);
                        *s.heat[i].lock() += 1;
                        work(200);
                        let mut g = s.heat[i].lock();
                        work(400);
                        *g += 1;
                        if *g % 16 == 0 {
                            // A holder that blocks (I/O, page fault…) while holding: waiters sleep.
                            thread::sleep(Duration::from_micros(100));
                        }
                        drop(g);
                    }
                }),
            );
        }
        // Two threads on each of the two colliding locks, so both have waiters in the shared bucket.
        for side in 0..4 {
            let s = shared.clone();
            spawn(
                format!("demo-collide-{side}"),
                Box::new(move || {
                    let m = if side % 2 == 0 { &s.pair.0 } else { &s.pair.1 };
                    while !s.stop.load(Ordering::Relaxed) {
                        let mut g = m.lock();
                        work(300);
                        *g += 1;
                        if *g % 8 == 0 {
                            // Holding the lock across a sleep makes the other side sleep in the bucket.
                            thread::sleep(Duration::from_micros(50));
                        }
                        drop(g);
                        work(100);
                    }
                }),
            );
        }
        // Broadcast: 3 waiters wait for a new generation; 1 thread publishes one every 2 ms.
        for w in 0..3 {
            let s = shared.clone();
            spawn(
                format!("demo-bcast-wait-{w}"),
                Box::new(move || {
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
                }),
            );
        }
        {
            let s = shared.clone();
            spawn(
                "demo-bcast".into(),
                Box::new(move || {
                    let (m, c) = &s.broadcast;
                    while !s.stop.load(Ordering::Relaxed) {
                        thread::sleep(Duration::from_millis(2));
                        *m.lock() += 1;
                        c.notify_all();
                    }
                    c.notify_all();
                }),
            );
        }
        // Producer/consumer: 1 producer in bursts, 2 consumers.
        {
            let s = shared.clone();
            spawn(
                "demo-producer".into(),
                Box::new(move || {
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
                }),
            );
        }
        for k in 0..2 {
            let s = shared.clone();
            spawn(
                format!("demo-consumer-{k}"),
                Box::new(move || {
                    let (m, c) = &s.queue;
                    while !s.stop.load(Ordering::Relaxed) {
                        let g = m.lock();
                        let (mut g, _) =
                            c.wait_timeout_while(g, Duration::from_millis(100), |q| q.is_empty());
                        if g.pop_front().is_some() {
                            drop(g);
                            work(500);
                        }
                    }
                }),
            );
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
