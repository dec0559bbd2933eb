//! Wait sites: the unit of the answer. Words are how the kernel sees waiting; a program's author thinks
//! of the place in the program where threads wait. A **wait site** is the program's innermost frame
//! above the plumbing (threading libraries, runtimes, lock implementations: [`crate::stacks::is_plumbing`])
//! and its caller, per process name: the waits of every thread and every process of that name at that
//! place, on whatever words (one per thread for the JVM's, V8's and PostgreSQL's locks; two for a glibc
//! condvar). Its **release site** is the same place in the stacks of the threads that released it.
//!
//! Each site gets a [`Class`] from behaviour, not from the primitive it sleeps on ([`classify`]), with
//! the evidence that decided it. Where a site's stacks stop in a runtime (no language frames) and its
//! threads behave two ways — some released by each other, some by other threads — it is split in two
//! groups, so that a lock and a work queue behind the same runtime entry are told apart.

mod classify;

use std::collections::{BTreeMap, BTreeSet, HashMap};

pub use classify::{Class, Rules};

use crate::event::WaitKind;
use crate::khash::KernelHash;
use crate::model::{AddrStats, Log2Hist, Model, Release, StackKey};
use crate::stacks::{is_plumbing, is_plumbing_name, is_thread_entry, Names, StackTable};

/// What every view draws from: a model, how its words and frames are named, and its wait sites.
pub struct Analysis<'a> {
    pub model: &'a Model,
    pub names: Names<'a>,
    pub sites: Sites,
    /// Words of shared futexes seen by several processes: each to its representative (the least
    /// (pid, address) of the same memory), as the kernel keys them.
    pub shared: HashMap<(u32, u64), (u32, u64)>,
    /// The representatives' figures, every process's added (see [`Analysis::words`]).
    merged: HashMap<(u32, u64), AddrStats>,
}

impl<'a> Analysis<'a> {
    /// The sites of `model`, with the user's `rules`.
    pub fn new(model: &'a Model, names: Names<'a>, rules: &Rules) -> Analysis<'a> {
        let shared = shared_words(model, names);
        let mut merged: HashMap<(u32, u64), AddrStats> = HashMap::new();
        for (w, rep) in &shared {
            let a = &model.addresses[w];
            match merged.get_mut(rep) {
                Some(m) => m.absorb(a),
                None => {
                    merged.insert(*rep, a.clone());
                }
            }
        }
        let mut sites = Sites::of(model, names, rules);
        sites.merge_shared(&shared);
        Analysis {
            model,
            names,
            sites,
            shared,
            merged,
        }
    }

    /// A word's figures as the kernel keys it (a shared futex's, every process's added).
    pub fn stats(&self, word: (u32, u64)) -> Option<&AddrStats> {
        let rep = self.word(word);
        self.merged
            .get(&rep)
            .or_else(|| self.model.addresses.get(&rep))
    }

    /// The word `word` is, as the kernel keys it: its representative when it is a shared futex that
    /// other processes see too, else itself.
    pub fn word(&self, word: (u32, u64)) -> (u32, u64) {
        self.shared.get(&word).copied().unwrap_or(word)
    }

    /// The model's words as the kernel keys them: the figures of a shared futex's processes added
    /// into its representative, with every process that saw it.
    pub fn words(&self) -> BTreeMap<(u32, u64), (AddrStats, BTreeSet<u32>)> {
        let mut out: BTreeMap<(u32, u64), (AddrStats, BTreeSet<u32>)> = BTreeMap::new();
        for (&w, a) in &self.model.addresses {
            let e = out
                .entry(self.word(w))
                .or_insert_with(|| (AddrStats::default(), BTreeSet::new()));
            if e.1.is_empty() {
                e.0 = a.clone();
            } else {
                e.0.absorb(a);
            }
            e.1.insert(w.0);
        }
        for (w, (a, _)) in out.iter_mut() {
            a.pid = w.0;
        }
        out
    }

    /// The class of word (pid, addr): its busiest site's; a word without stacks by what its events
    /// say (futex-core's Mutex and Condvar), else by the primitive its stacks name, else unclassified.
    pub fn word_class(&self, word: (u32, u64)) -> Class {
        let Some(a) = self.stats(word) else {
            return Class::Unclassified;
        };
        if let Some(c) = self.sites.class_of(a) {
            return c;
        }
        match a.kind_in(self.names.stacks) {
            WaitKind::Mutex | WaitKind::RwLock => Class::Lock,
            WaitKind::Condvar | WaitKind::Join | WaitKind::Semaphore | WaitKind::Idle => {
                Class::Work
            }
            WaitKind::Raw | WaitKind::Kernel => Class::Unclassified,
        }
    }

    /// Time waited by waits that slept, by the class of their word: (contention, idle, unclassified).
    pub fn wait_split(&self) -> (Log2Hist, Log2Hist, Log2Hist) {
        let mut out = (
            Log2Hist::default(),
            Log2Hist::default(),
            Log2Hist::default(),
        );
        for (&word, a) in &self.model.addresses {
            let c = self.word_class(word);
            let h = if c.is_contention() {
                &mut out.0
            } else if c.is_idle() {
                &mut out.1
            } else {
                &mut out.2
            };
            h.merge(&a.wait_ns);
        }
        out
    }
}

/// The shared futexes several processes waited or woke on, each to its representative.
fn shared_words(model: &Model, names: Names<'_>) -> HashMap<(u32, u64), (u32, u64)> {
    let Some(t) = names.stacks else {
        return HashMap::new();
    };
    let mut by_key: BTreeMap<(String, u64, u64), Vec<(u32, u64)>> = BTreeMap::new();
    for (&w, a) in &model.addresses {
        if a.kernel == Some(KernelHash::Shared) {
            if let Some(k) = t.shared_key(w.0, w.1) {
                by_key.entry(k).or_default().push(w);
            }
        }
    }
    let mut out = HashMap::new();
    for words in by_key.into_values().filter(|w| w.len() > 1) {
        let rep = *words.iter().min().expect("not empty");
        for w in words {
            out.insert(w, rep);
        }
    }
    out
}

/// Which threads of a site it holds, when a site was split by how its threads are released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// Threads released by threads that also wait at the site (a lock's or a hand-off's).
    ReleasedByPeers,
    /// Threads released by threads that do not wait there (a queue's consumers).
    ReleasedByOthers,
}

impl Group {
    fn label(self) -> &'static str {
        match self {
            Group::ReleasedByPeers => "threads released by each other",
            Group::ReleasedByOthers => "threads released by other threads",
        }
    }
}

/// One word a site waited on.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SiteWord {
    pub pid: u32,
    #[serde(serialize_with = "hex")]
    pub addr: u64,
    /// Time waited at the site on this word (sampled: an estimate).
    pub wait_ns: u64,
    /// Threads that waited on it here (1: a per-thread word, as the JVM's, V8's and PostgreSQL's).
    pub threads: usize,
    /// The word at `addr + 4` belongs to it (a glibc condvar's two sequence words).
    pub with_next: bool,
}

fn hex<S: serde::Serializer>(a: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{a:#x}"))
}

/// A thread of a site and its time there.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SiteThread {
    pub pid: u32,
    pub tid: u32,
    /// Its name, when the trace saw it (kernel sources: the thread's `comm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub wait_ns: u64,
}

/// A wait site: where threads wait in the program, with what released them and its class.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Site {
    /// The processes' name (`postgres`, `java`): one site for every process of that name.
    pub process: String,
    /// The site's frames, innermost first: the frame, its caller, and further callers up to the first
    /// one with a name (a stripped binary's statics are `file+0x…`).
    pub frames: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<Group>,
    pub class: Class,
    /// What decided the class, in words.
    pub evidence: String,
    /// Waits that slept here, and their time (sampled stacks: estimates), and the samples behind them.
    pub waits: f64,
    pub wait_ns: u64,
    pub samples: u64,
    pub pids: BTreeSet<u32>,
    /// Threads that waited here.
    pub threads: usize,
    /// Each of them with its time here (sampled: an estimate), the hottest first.
    pub by_thread: Vec<SiteThread>,
    /// The words waited on, the hottest first.
    pub words: Vec<SiteWord>,
    /// Where its waiters were released from (the waker's site) and the time they had waited, hottest
    /// first.
    pub released_from: Vec<(String, u64)>,
    /// Of its time, the share in stacks cut short (the site may be deeper than shown).
    pub truncated_share: f64,
    /// Its waiting stacks and their time, the hottest first (the dashboard's detail shows them).
    #[serde(skip)]
    pub stacks: Vec<(StackKey, u64)>,
}

impl Site {
    /// Its threads by name, grouped as the flamegraph groups them (`teller-N ×4, main`), the most time
    /// first, four groups at most; `None` when no name is known.
    pub fn thread_groups(&self, names: Names<'_>) -> Option<String> {
        let mut by: Vec<(String, u64, usize)> = Vec::new();
        for t in &self.by_thread {
            let Some(name) = &t.name else { continue };
            let comm = (names.stacks.and_then(|st| st.processes.get(&t.pid)))
                .map_or("", |p| p.comm.as_str());
            let group = crate::stacks::thread_group(name, comm);
            match by.iter_mut().find(|(g, _, _)| *g == group) {
                Some(e) => {
                    e.1 += t.wait_ns;
                    e.2 += 1;
                }
                None => by.push((group, t.wait_ns, 1)),
            }
        }
        if by.is_empty() {
            return None;
        }
        by.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let shown: Vec<String> = (by.iter().take(4))
            .map(|(g, _, n)| {
                if *n > 1 {
                    format!("{g} ×{n}")
                } else {
                    g.clone()
                }
            })
            .collect();
        Some(match by.len().saturating_sub(4) {
            0 => shown.join(", "),
            more => format!("{} and {more} more", shown.join(", ")),
        })
    }

    /// The site in one line: `XLogFlush ← RecordTransactionCommit`.
    pub fn name(&self) -> String {
        self.frames.join(" ← ")
    }

    /// The site with its process and group: `postgres: XLogFlush ← RecordTransactionCommit`.
    pub fn label(&self) -> String {
        let mut s = format!("{}: {}", self.process, self.name());
        if let Some(g) = self.group {
            s.push_str(&format!(" [{}]", g.label()));
        }
        s
    }
}

/// Where a stack waited: its site's key and frames, and how deep the site is below its thread's entry.
#[derive(Clone, Debug)]
struct Located {
    key: (String, String, String),
    frames: Vec<String>,
    /// Program frames from the thread's entry to the site (its loop is shallow: a worker waiting for work).
    depth: usize,
    truncated: bool,
    /// Every frame was plumbing (a runtime without language frames, code without names): the site is
    /// the runtime's entry, which may serve several purposes.
    in_plumbing: bool,
}

/// A frame name as a site key: unnamed code (JIT, no symbols) is one kind of place, not an address.
fn key_name(name: &str) -> String {
    if name.starts_with("[unknown]") {
        "[code without symbols]".into()
    } else {
        name.to_string()
    }
}

/// Whether a frame has no name of its own (a stripped static, or code in no file).
fn unnamed(name: &str) -> bool {
    name.starts_with("[unknown]") || name.contains("+0x")
}

/// Where stack `key` waited (or released a waiter): its innermost frame that is not plumbing, with its
/// callers. A stack wholly in plumbing (a runtime's own threads) is placed at its innermost frame that
/// is not plumbing by name.
fn locate(t: &StackTable, model: &Model, key: StackKey) -> Located {
    let frames = t.frames(key);
    let names: Vec<&str> = frames.iter().map(|(n, _)| n.as_str()).collect();
    let program = frames.iter().rposition(|(n, f)| !is_plumbing(n, *f));
    let at = program
        .or_else(|| names.iter().rposition(|n| !is_plumbing_name(n)))
        .unwrap_or(names.len().saturating_sub(1));
    // Frames up to the site, outermost first (none for a stack that was not captured).
    let upto = &names[..names.len().min(at + 1)];
    let mut shown = Vec::new();
    for (i, n) in upto.iter().enumerate().rev() {
        // A thread's entry is no caller worth naming (`consumer`, not `consumer ← call_once`).
        if !shown.is_empty() && is_thread_entry(n) {
            break;
        }
        // A program frame's caller in its runtime's own code (an interpreter, which runs every
        // function in one piece of code) names no place: the caller is further out, if anywhere.
        if !shown.is_empty() && program.is_some() && is_plumbing(n, frames[i].1) {
            continue;
        }
        shown.push(key_name(n));
        // The frame and its caller, then on to the first named caller.
        if (at - i >= 1 && !unnamed(n)) || shown.len() >= 8 {
            break;
        }
    }
    if shown.is_empty() {
        shown.push("[no frames]".to_string());
    }
    let depth = upto
        .iter()
        .zip(&frames)
        .filter(|(n, (_, f))| !is_plumbing(n, *f) && !is_thread_entry(n))
        .count();
    let process = process_name(t, model, key.0);
    Located {
        key: (
            process,
            shown.first().cloned().unwrap_or_default(),
            shown.get(1).cloned().unwrap_or_default(),
        ),
        frames: shown,
        depth,
        truncated: t.truncated.contains(&key),
        in_plumbing: program.is_none(),
    }
}

/// A program frame without a caller to show (called from an interpreter: the interpreted caller is
/// unnamed) is the same place as that frame called from compiled code, as a runtime runs a function
/// interpreted first and compiled later: its draft joins the busiest draft of the same frame.
fn merge_callerless(
    drafts: &mut BTreeMap<(String, String, String), Draft>,
    stack_draft: &mut HashMap<StackKey, (String, String, String)>,
) {
    let lone: Vec<(String, String, String)> = (drafts.iter())
        .filter(|(k, d)| k.2.is_empty() && d.located.as_ref().is_some_and(|l| !l.in_plumbing))
        .map(|(k, _)| k.clone())
        .collect();
    for k in lone {
        let into = (drafts.iter())
            .filter(|(o, _)| o.0 == k.0 && o.1 == k.1 && !o.2.is_empty())
            .max_by_key(|(o, d)| (d.wait_ns, std::cmp::Reverse((*o).clone())))
            .map(|(o, _)| o.clone());
        let Some(into) = into else { continue };
        let Some(d) = drafts.remove(&k) else { continue };
        let t = drafts.get_mut(&into).expect("found above");
        t.waits += d.waits;
        t.wait_ns += d.wait_ns;
        t.samples += d.samples;
        t.truncated_ns += d.truncated_ns;
        t.stacks.extend(d.stacks);
        for dk in stack_draft.values_mut().filter(|dk| **dk == k) {
            *dk = into.clone();
        }
    }
}

/// A process's name: as its maps were read, else its main thread's (or any thread's) as the tracer saw
/// it, else its pid.
pub fn process_name(t: &StackTable, model: &Model, pid: u32) -> String {
    if let Some(c) = t
        .processes
        .get(&pid)
        .map(|p| &p.comm)
        .filter(|c| !c.is_empty())
    {
        return c.clone();
    }
    let thread = model.threads.get(&(pid, pid)).or_else(|| {
        model
            .threads
            .range((pid, 0)..=(pid, u32::MAX))
            .next()
            .map(|(_, n)| n)
    });
    thread.map_or_else(|| format!("pid {pid}"), |n| n.as_str().into_owned())
}

/// A site being built: its stacks, threads and releases.
#[derive(Default)]
struct Draft {
    /// Where its hottest stack waited (it names the site: its callers and depth are the most common).
    located: Option<Located>,
    hottest: (u64, Option<StackKey>),
    waits: f64,
    wait_ns: u64,
    samples: u64,
    truncated_ns: u64,
    /// Waiting threads (pid, tid) → time waited.
    threads: BTreeMap<(u32, u32), u64>,
    releases: Vec<(Release, u64)>,
    stacks: Vec<StackKey>,
}

/// The sites of a trace, and which site each waiting stack (and thread) is at.
#[derive(Clone, Debug, Default)]
pub struct Sites {
    /// The hottest first.
    pub sites: Vec<Site>,
    /// Waiting stack → its site, or, for a split site, its two groups' sites by thread.
    by_stack: HashMap<StackKey, Placement>,
}

#[derive(Clone, Debug)]
enum Placement {
    One(usize),
    ByThread {
        peers: usize,
        others: usize,
        peer_threads: BTreeSet<(u32, u32)>,
    },
}

impl Sites {
    /// The sites of what `model` gathered, named through `names` (nothing without stacks).
    pub fn of(model: &Model, names: Names<'_>, rules: &Rules) -> Sites {
        let Some(t) = names.stacks else {
            return Sites::default();
        };
        let mut located: HashMap<StackKey, Located> = HashMap::new();
        let mut locate_cached = |key: StackKey| {
            located
                .entry(key)
                .or_insert_with(|| locate(t, model, key))
                .clone()
        };
        let mut drafts: BTreeMap<(String, String, String), Draft> = BTreeMap::new();
        let mut stack_draft: HashMap<StackKey, (String, String, String)> = HashMap::new();
        for (&key, s) in &model.stacks {
            if !t.stacks.contains_key(&key) {
                continue;
            }
            let l = locate_cached(key);
            let d = drafts.entry(l.key.clone()).or_default();
            stack_draft.insert(key, l.key.clone());
            d.waits += s.waits;
            d.wait_ns += s.wait_ns;
            d.samples += s.samples;
            if l.truncated {
                d.truncated_ns += s.wait_ns;
            }
            d.stacks.push(key);
            // The hottest stack names the site (ties to the least key: the same name in every run).
            let best = (s.wait_ns, std::cmp::Reverse(key));
            if d.located.is_none()
                || best > (d.hottest.0, std::cmp::Reverse(d.hottest.1.unwrap_or(key)))
            {
                d.hottest = (s.wait_ns, Some(key));
                d.located = Some(l);
            }
        }
        merge_callerless(&mut drafts, &mut stack_draft);
        // Each thread's time at its site, as the flamegraph draws it (a stack's time by thread).
        for a in model.addresses.values() {
            for (&(k, tid), &ns) in &a.thread_stacks {
                if let Some(d) = stack_draft.get(&k).and_then(|dk| drafts.get_mut(dk)) {
                    *d.threads.entry((k.0, tid)).or_default() += ns;
                }
            }
        }
        for (r, s) in &model.releases {
            if let Some(d) = stack_draft.get(&r.waiter).and_then(|k| drafts.get_mut(k)) {
                d.releases.push((*r, s.wait_ns));
            }
        }
        // Sources without a thread's stack time: its sampled releases say which threads wait there.
        for d in drafts.values_mut() {
            if d.threads.is_empty() {
                for (r, ns) in &d.releases {
                    *d.threads.entry((r.waiter.0, r.waiter_tid)).or_default() += ns;
                }
            }
        }
        let mut release_site = |key: StackKey| -> String {
            let l = locate_cached(key);
            format!("{}: {}", l.key.0, l.frames.join(" ← "))
        };
        let mut sites = Vec::new();
        let mut by_draft: HashMap<(String, String, String), Placement> = HashMap::new();
        for (dkey, d) in drafts {
            let placement = build(&d, model, t, rules, &mut release_site, &mut sites);
            by_draft.insert(dkey, placement);
        }
        let by_stack = stack_draft
            .into_iter()
            .filter_map(|(k, d)| Some((k, by_draft.get(&d)?.clone())))
            .collect();
        let mut out = Sites { sites, by_stack };
        out.attach_words(model);
        out.rank();
        out
    }

    /// The site a waiting stack (of thread `tid`, when known) is at.
    pub fn index_of(&self, stack: StackKey, tid: Option<u32>) -> Option<usize> {
        match self.by_stack.get(&stack)? {
            Placement::One(i) => Some(*i),
            Placement::ByThread {
                peers,
                others,
                peer_threads,
            } => Some(match tid {
                Some(tid) if peer_threads.contains(&(stack.0, tid)) => *peers,
                Some(_) => *others,
                None => *peers,
            }),
        }
    }

    /// The site a waiting stack (of thread `tid`, when known) is at.
    pub fn site_of(&self, stack: StackKey, tid: Option<u32>) -> Option<&Site> {
        self.sites.get(self.index_of(stack, tid)?)
    }

    /// The class of the site where a word was waited on longest (`None`: no stack of it).
    pub fn class_of(&self, a: &AddrStats) -> Option<Class> {
        let mut by: HashMap<usize, u64> = HashMap::new();
        if a.thread_stacks.is_empty() {
            for (&k, &ns) in &a.stacks {
                if let Some(i) = self.index_of(k, None) {
                    *by.entry(i).or_default() += ns;
                }
            }
        } else {
            for (&(k, tid), &ns) in &a.thread_stacks {
                if let Some(i) = self.index_of(k, Some(tid)) {
                    *by.entry(i).or_default() += ns;
                }
            }
        }
        let (i, _) = by
            .into_iter()
            .max_by_key(|&(i, ns)| (ns, std::cmp::Reverse(i)))?;
        Some(self.sites[i].class)
    }

    /// Fills each site's words from the words' time per stack and thread.
    fn attach_words(&mut self, model: &Model) {
        // site → word → (ns, threads)
        // site → word → (time, threads)
        type Words = BTreeMap<(u32, u64), (u64, BTreeSet<u32>)>;
        let mut words: HashMap<usize, Words> = HashMap::new();
        for (&word, a) in &model.addresses {
            let parts: Vec<(StackKey, Option<u32>, u64)> = if a.thread_stacks.is_empty() {
                a.stacks.iter().map(|(&k, &ns)| (k, None, ns)).collect()
            } else {
                (a.thread_stacks.iter())
                    .map(|(&(k, tid), &ns)| (k, Some(tid), ns))
                    .collect()
            };
            for (k, tid, ns) in parts {
                if let Some(i) = self.index_of(k, tid) {
                    let w = words.entry(i).or_default().entry(word).or_default();
                    w.0 += ns;
                    w.1.extend(tid);
                }
            }
        }
        for (i, ws) in words {
            let mut list: Vec<SiteWord> = Vec::new();
            for (&(pid, addr), (ns, tids)) in &ws {
                // A glibc condvar's second sequence word, 4 bytes after the first, waited on by the
                // same threads: one primitive.
                if addr >= 4 && ws.get(&(pid, addr - 4)).is_some_and(|(_, t)| t == tids) {
                    if let Some(prev) = list.iter_mut().find(|w| w.pid == pid && w.addr == addr - 4)
                    {
                        prev.wait_ns += ns;
                        prev.with_next = true;
                        continue;
                    }
                }
                list.push(SiteWord {
                    pid,
                    addr,
                    wait_ns: *ns,
                    threads: tids.len(),
                    with_next: false,
                });
            }
            list.sort_by(|a, b| {
                b.wait_ns
                    .cmp(&a.wait_ns)
                    .then((a.pid, a.addr).cmp(&(b.pid, b.addr)))
            });
            self.sites[i].words = list;
        }
    }

    /// One row per shared futex in each site's words (every process's waits on it added).
    fn merge_shared(&mut self, shared: &HashMap<(u32, u64), (u32, u64)>) {
        if shared.is_empty() {
            return;
        }
        for site in &mut self.sites {
            let mut merged: Vec<SiteWord> = Vec::new();
            for w in site.words.drain(..) {
                let (pid, addr) = shared
                    .get(&(w.pid, w.addr))
                    .copied()
                    .unwrap_or((w.pid, w.addr));
                match merged.iter_mut().find(|m| (m.pid, m.addr) == (pid, addr)) {
                    Some(m) => {
                        m.wait_ns += w.wait_ns;
                        m.threads += w.threads;
                    }
                    None => merged.push(SiteWord { pid, addr, ..w }),
                }
            }
            merged.sort_by(|a, b| {
                b.wait_ns
                    .cmp(&a.wait_ns)
                    .then((a.pid, a.addr).cmp(&(b.pid, b.addr)))
            });
            site.words = merged;
        }
    }

    /// Orders the sites hottest first, keeping each stack's placement.
    fn rank(&mut self) {
        let mut order: Vec<usize> = (0..self.sites.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (&self.sites[a], &self.sites[b]);
            y.wait_ns.cmp(&x.wait_ns).then(x.label().cmp(&y.label()))
        });
        let mut new_index = vec![0; order.len()];
        for (new, &old) in order.iter().enumerate() {
            new_index[old] = new;
        }
        let mut sites: Vec<Option<Site>> = std::mem::take(&mut self.sites)
            .into_iter()
            .map(Some)
            .collect();
        self.sites = order
            .iter()
            .map(|&i| sites[i].take().expect("each once"))
            .collect();
        for p in self.by_stack.values_mut() {
            match p {
                Placement::One(i) => *i = new_index[*i],
                Placement::ByThread { peers, others, .. } => {
                    *peers = new_index[*peers];
                    *others = new_index[*others];
                }
            }
        }
    }
}

/// How each waiting thread of a draft was released: (pid, tid) → (time released by a waker, of that by a
/// waker that also waits at the site for real: a peer, see [`classify::peers`]).
fn released_by_peers(d: &Draft) -> BTreeMap<(u32, u32), (u64, u64)> {
    let peers = classify::peers(&d.threads);
    let mut out: BTreeMap<(u32, u32), (u64, u64)> = BTreeMap::new();
    for (r, ns) in &d.releases {
        let Some(waker) = r.waker else { continue };
        let e = out.entry((r.waiter.0, r.waiter_tid)).or_default();
        e.0 += ns;
        if peers.contains(&waker) && waker != (r.waiter.0, r.waiter_tid) {
            e.1 += ns;
        }
    }
    out
}

/// A group must hold this many sampled waits for the site to be split.
const SPLIT_SAMPLES: u64 = 5;

/// A group must hold this share of a site's time for the site to be split.
const SPLIT_SHARE: f64 = 0.1;

/// Builds the site(s) of one draft into `sites`: one, or two groups when its threads are released two
/// ways.
fn build(
    d: &Draft,
    model: &Model,
    t: &StackTable,
    rules: &Rules,
    release_site: &mut dyn FnMut(StackKey) -> String,
    sites: &mut Vec<Site>,
) -> Placement {
    let per_thread = released_by_peers(d);
    let mut peers: BTreeSet<(u32, u32)> = BTreeSet::new();
    let (mut peer_ns, mut other_ns) = (0u64, 0u64);
    for (&th, &ns) in &d.threads {
        match per_thread.get(&th) {
            Some(&(released, by_peers)) if released > 0 && by_peers * 2 >= released => {
                peers.insert(th);
                peer_ns += ns;
            }
            _ => other_ns += ns,
        }
    }
    let total = (peer_ns + other_ns).max(1) as f64;
    // Only a runtime's entry (no program frame) may be two places at once; and each group needs the
    // samples to say so.
    let samples = |group: &dyn Fn((u32, u32)) -> bool| -> u64 {
        (d.releases.iter())
            .filter(|(r, _)| group((r.waiter.0, r.waiter_tid)))
            .map(|(r, _)| model.releases.get(r).map_or(0, |s| s.samples))
            .sum()
    };
    let split = d.located.as_ref().is_some_and(|l| l.in_plumbing)
        && peer_ns as f64 / total >= SPLIT_SHARE
        && other_ns as f64 / total >= SPLIT_SHARE
        && samples(&|th| peers.contains(&th)) >= SPLIT_SAMPLES
        && samples(&|th| !peers.contains(&th)) >= SPLIT_SAMPLES;
    if !split {
        sites.push(site(d, None, |_| true, model, t, rules, release_site));
        return Placement::One(sites.len() - 1);
    }
    let in_peers = |th: (u32, u32)| peers.contains(&th);
    sites.push(site(
        d,
        Some(Group::ReleasedByPeers),
        in_peers,
        model,
        t,
        rules,
        release_site,
    ));
    let p = sites.len() - 1;
    sites.push(site(
        d,
        Some(Group::ReleasedByOthers),
        |th| !in_peers(th),
        model,
        t,
        rules,
        release_site,
    ));
    Placement::ByThread {
        peers: p,
        others: sites.len() - 1,
        peer_threads: peers,
    }
}

/// The site of a draft's threads that `keep` selects.
fn site(
    d: &Draft,
    group: Option<Group>,
    keep: impl Fn((u32, u32)) -> bool,
    model: &Model,
    t: &StackTable,
    rules: &Rules,
    release_site: &mut dyn FnMut(StackKey) -> String,
) -> Site {
    let l = d.located.clone().expect("a draft has a stack");
    // Its threads' time, and the other group's.
    let (mine, others) = (d.threads.iter()).fold((0u64, 0u64), |(m, o), (th, ns)| {
        if keep(*th) {
            (m + ns, o)
        } else {
            (m, o + ns)
        }
    });
    let share = match group {
        Some(_) if mine + others > 0 => mine as f64 / (mine + others) as f64,
        _ => 1.0,
    };
    // The two groups' time adds up to the draft's, to the nanosecond: the others' is their threads',
    // the peers' the rest (with any time of no known thread, as `index_of` places it).
    let wait_ns = match group {
        None => d.wait_ns,
        Some(Group::ReleasedByOthers) => mine.min(d.wait_ns),
        Some(Group::ReleasedByPeers) => d.wait_ns - others.min(d.wait_ns),
    };
    let releases: Vec<(Release, u64)> = (d.releases.iter())
        .filter(|(r, _)| keep((r.waiter.0, r.waiter_tid)))
        .copied()
        .collect();
    let threads: BTreeSet<(u32, u32)> = d.threads.keys().filter(|th| keep(**th)).copied().collect();
    // Who counts as a peer is decided over the whole site: a group's wakers may wait in the other group.
    let mut from: HashMap<String, u64> = HashMap::new();
    for (r, ns) in &releases {
        if let Some(k) = r.waker_stack {
            *from.entry(release_site(k)).or_default() += ns;
        }
    }
    let mut released_from: Vec<(String, u64)> = from.into_iter().collect();
    released_from.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let evidence = classify::Evidence {
        site_frame: &l.key.1,
        depth: l.depth,
        stacks: &d.stacks,
        releases: &releases,
        thread_ns: &d.threads,
        released_from: &released_from,
    };
    let (class, why) = classify::classify(&evidence, model, t, rules);
    Site {
        process: l.key.0.clone(),
        frames: l.frames.clone(),
        group,
        class,
        evidence: why,
        waits: d.waits * share,
        wait_ns,
        samples: (d.samples as f64 * share).round() as u64,
        pids: match group {
            None => d.stacks.iter().map(|k| k.0).collect(),
            Some(_) => threads.iter().map(|th| th.0).collect(),
        },
        threads: threads.len(),
        by_thread: {
            let mut v: Vec<SiteThread> = (threads.iter())
                .map(|&(pid, tid)| SiteThread {
                    pid,
                    tid,
                    name: model
                        .threads
                        .get(&(pid, tid))
                        .map(|n| n.as_str().into_owned()),
                    wait_ns: d.threads.get(&(pid, tid)).copied().unwrap_or(0),
                })
                .collect();
            v.sort_by(|a, b| b.wait_ns.cmp(&a.wait_ns).then(a.tid.cmp(&b.tid)));
            v
        },
        words: Vec::new(),
        released_from,
        truncated_share: if d.wait_ns == 0 {
            0.0
        } else {
            d.truncated_ns as f64 / d.wait_ns as f64
        },
        stacks: {
            let mut v: Vec<(StackKey, u64)> = (d.stacks.iter())
                .map(|&k| (k, model.stacks.get(&k).map_or(0, |s| s.wait_ns)))
                .collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            v
        },
    }
}
