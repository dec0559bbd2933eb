//! The stack resolver: reads process maps, fetches stack frames from the source's stack lookup and
//! symbolizes them, off the fold thread (symbolizing a large binary the first time takes a while),
//! publishing into the session's stacks.

use std::collections::BTreeSet;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Seen, Shared};
use crate::event::{Event, EventKind, OpClass};
use crate::lock;
use crate::stacks::StackLookup;
use crate::stacks::{is_interpreter_frame, new_symbolizer, PerfMaps, StackTable};
use crate::trace::process_gone;

pub(super) enum ResolverMsg {
    /// A process seen for the first time: read its maps now (it may not live long).
    Pid(u32),
    /// Stack ids seen in events.
    Ids(Vec<(u32, u32)>),
    /// Futex words seen waited on (named if they are statics).
    Addrs(Vec<(u32, u64)>),
    /// Resolve everything pending now, then answer.
    Flush(mpsc::Sender<()>),
    /// End (after a flush).
    Stop,
}

/// Reads process maps, fetches stack frames from the kernel's map and symbolizes them, off the fold
/// thread (symbolizing a large binary the first time takes a while), publishing into the session's
/// stacks.
pub(super) struct Resolver {
    tx: mpsc::Sender<ResolverMsg>,
    handle: JoinHandle<()>,
}

impl Resolver {
    pub(super) fn spawn(map: Arc<dyn StackLookup>, shared: Arc<Shared>) -> Resolver {
        let (tx, rx) = mpsc::channel::<ResolverMsg>();
        *lock(&shared.resolver) = Some(tx.clone());
        let handle = std::thread::Builder::new()
            .name("futex-stacks".into())
            .spawn(move || {
                let symbolizer = new_symbolizer();
                let mut perf_maps = PerfMaps::default();
                let mut table = StackTable::default();
                let mut pending: BTreeSet<(u32, u32)> = BTreeSet::new();
                let mut pending_addrs: Vec<(u32, u64)> = Vec::new();
                let mut pids: BTreeSet<u32> = BTreeSet::new();
                // The first stacks are resolved as soon as they come (a profile of the first seconds
                // has names); then once a second.
                let mut last = Instant::now()
                    .checked_sub(Duration::from_secs(1))
                    .unwrap_or_else(Instant::now);
                loop {
                    let mut flush = None;
                    match rx.recv_timeout(Duration::from_millis(250)) {
                        Ok(ResolverMsg::Pid(p)) => {
                            table.refresh_process(p);
                            pids.insert(p);
                        }
                        Ok(ResolverMsg::Ids(ids)) => pending.extend(ids),
                        Ok(ResolverMsg::Addrs(a)) => pending_addrs.extend(a),
                        Ok(ResolverMsg::Flush(done)) => flush = Some(done),
                        Ok(ResolverMsg::Stop) => return,
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                    if flush.is_none() && last.elapsed() < Duration::from_secs(1) {
                        continue;
                    }
                    last = Instant::now();
                    // Libraries loaded since (dlopen) show in the maps: read them again. A process gone
                    // before its maps were read has those its source read, if it did.
                    for &p in &pids {
                        if !process_gone(p) {
                            table.refresh_process(p);
                        }
                        if table.processes.get(&p).is_none_or(|i| i.maps.is_empty()) {
                            if let Some(maps) = map.maps(p) {
                                table.processes.entry(p).or_default().maps = maps;
                            }
                        }
                    }
                    let mut new = false;
                    for key in std::mem::take(&mut pending) {
                        if table.stacks.contains_key(&key) {
                            continue;
                        }
                        if let Some((ips, truncated)) = map.stack(key.1) {
                            // Interpreter frames were named by the source, while their process ran.
                            for &ip in ips.iter().filter(|&&ip| is_interpreter_frame(ip)) {
                                if let Some(n) = map.frame_name(key.0, ip) {
                                    table.symbols.insert((key.0, ip), vec![n]);
                                }
                            }
                            table.add_stack(key, ips, truncated);
                            new = true;
                        }
                    }
                    if new {
                        // Frames and maps first (a recording writes them at once; a recorder killed
                        // before the symbols are ready still has them), then their names.
                        *lock(&shared.stacks) = Some(table.clone());
                        table.symbolize_with(&symbolizer);
                    }
                    // JIT code is named as its runtime's perf map grows (a JVM may write its map
                    // only at exit), so each round, not only for new stacks.
                    if table.name_jit(&mut perf_maps) || new {
                        table.classify(None);
                    }
                    if !pending_addrs.is_empty() {
                        table.symbolize_addresses(&std::mem::take(&mut pending_addrs), &symbolizer);
                    }
                    *lock(&shared.stacks) = Some(table.clone());
                    if let Some(done) = flush {
                        let _ = done.send(());
                    }
                }
            })
            .expect("spawn the stack resolver");
        Resolver { tx, handle }
    }

    /// Tells the resolver what `batch` holds that it has not seen: processes, stacks, futex words.
    pub(super) fn saw(&self, batch: &[Event], seen: &mut Seen) {
        let mut ids = Vec::new();
        let mut addrs = Vec::new();
        for e in batch {
            if e.pid != 0 && seen.pids.insert(e.pid) {
                let _ = self.tx.send(ResolverMsg::Pid(e.pid));
            }
            let waited_on = match e.kind {
                EventKind::WaitStart { addr, .. } => Some(addr),
                EventKind::Counts { addr, op, .. } if op.class() == OpClass::Wait => Some(addr),
                _ => None,
            };
            if let Some(addr) = waited_on {
                if seen.addrs.insert((e.pid, addr)) {
                    addrs.push((e.pid, addr));
                }
            }
            for key in e.stack_keys().into_iter().flatten() {
                if key.0 != 0 && seen.pids.insert(key.0) {
                    let _ = self.tx.send(ResolverMsg::Pid(key.0));
                }
                if seen.stacks.insert(key) {
                    ids.push(key);
                }
            }
        }
        if !ids.is_empty() {
            let _ = self.tx.send(ResolverMsg::Ids(ids));
        }
        if !addrs.is_empty() {
            let _ = self.tx.send(ResolverMsg::Addrs(addrs));
        }
    }

    /// Resolves what is pending and stops.
    pub(super) fn finish(self) {
        let (done_tx, done_rx) = mpsc::channel();
        let _ = self.tx.send(ResolverMsg::Flush(done_tx));
        let _ = done_rx.recv();
        let _ = self.tx.send(ResolverMsg::Stop);
        drop(self.tx);
        let _ = self.handle.join();
    }
}
