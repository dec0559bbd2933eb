//! Contention profiles in pprof's format, laid out as Go's runtime lays out its block and mutex
//! profiles, so that `go tool pprof`, Grafana Pyroscope and Parca read them as they read Go's: sample
//! types `contentions/count` and `delay/nanoseconds`, period type `contentions/count`, period 1.
//!
//! The waiting threads' stacks are the block profile (delay: the time they waited); the wakers' stacks
//! (`--wakers`) the mutex profile (delay: the time waited by the threads each stack released). Kernel
//! sources sample stacks (Go's block-profile rule, see [`crate::model::StackStats`]): each stack carries
//! its estimated contentions and delay, as Go's profiles do. Each sample is labelled with its process
//! (`pid`), its lock (`lock`: a static's or a demo lock's name, else the address) and the wait's kind
//! (`wait`). Locations carry their address and mapping (file, file offset, build id) so that a backend
//! can symbolize them again; their functions are the names futex-trace resolved. Traces without stacks
//! (`--no-stacks`, recordings made before the observer took stacks) give one location per lock.
//!
//! The messages below are `profile.proto` (github.com/google/pprof, proto/profile.proto) written out
//! for prost's derive, so that building needs no `protoc`.

use std::collections::HashMap;
use std::io::Write;

use super::Show;
use crate::export::flame::Side;
use crate::sites::Analysis;
use crate::stacks::StackTable;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Profile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    #[prost(int64, tag = "7")]
    pub drop_frames: i64,
    #[prost(int64, tag = "8")]
    pub keep_frames: i64,
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    pub period: i64,
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueType {
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(int64, tag = "1")]
    pub key: i64,
    #[prost(int64, tag = "2")]
    pub str: i64,
    #[prost(int64, tag = "3")]
    pub num: i64,
    #[prost(int64, tag = "4")]
    pub num_unit: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Mapping {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    #[prost(int64, tag = "5")]
    pub filename: i64,
    #[prost(int64, tag = "6")]
    pub build_id: i64,
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    #[prost(uint64, tag = "3")]
    pub address: u64,
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
    #[prost(bool, tag = "5")]
    pub is_folded: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    #[prost(int64, tag = "4")]
    pub filename: i64,
    #[prost(int64, tag = "5")]
    pub start_line: i64,
}

/// What a profile covers: when it started (wall clock) and for how long.
#[derive(Clone, Copy, Debug, Default)]
pub struct Span {
    pub start_unix_ns: i64,
    pub duration_ns: i64,
}

/// Builds a profile: interns strings, functions, mappings and locations as samples are added.
struct Builder<'a> {
    p: Profile,
    strings: HashMap<String, i64>,
    functions: HashMap<String, u64>,
    locations: HashMap<(u32, u64), u64>,
    mappings: HashMap<(u32, usize), u64>,
    stacks: Option<&'a StackTable>,
}

impl<'a> Builder<'a> {
    fn new(stacks: Option<&'a StackTable>, side: Side, span: Span) -> Self {
        let mut b = Builder {
            p: Profile::default(),
            strings: HashMap::new(),
            functions: HashMap::new(),
            locations: HashMap::new(),
            mappings: HashMap::new(),
            stacks,
        };
        b.s(""); // string 0 is "" (pprof requires it)
        let contentions = ValueType {
            r#type: b.s("contentions"),
            unit: b.s("count"),
        };
        let delay = ValueType {
            r#type: b.s("delay"),
            unit: b.s("nanoseconds"),
        };
        // The preferred type is named by its string's index (Go's block profiles show delay first).
        b.p.default_sample_type = delay.r#type;
        b.p.sample_type = vec![contentions.clone(), delay];
        b.p.period_type = Some(contentions);
        b.p.period = 1;
        b.p.time_nanos = span.start_unix_ns;
        b.p.duration_nanos = span.duration_ns;
        let comment = match side {
            Side::Waiters => "futex-trace: where threads waited on futexes (block profile)",
            Side::Wakers => "futex-trace: who woke waiting threads (mutex profile)",
        };
        let c = b.s(comment);
        b.p.comment.push(c);
        // pprof takes the first mapping for the main binary: the lowest code mapping of the first
        // process (a program's own text lies below its libraries').
        if let Some(first) = stacks.and_then(|t| t.processes.iter().next()) {
            if let Some(low) = first
                .1
                .maps
                .iter()
                .filter(|m| m.exec && m.is_file())
                .map(|m| m.start)
                .min()
            {
                b.mapping(*first.0, low);
            }
        }
        b
    }

    fn s(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = self.p.string_table.len() as i64;
        self.p.string_table.push(s.to_string());
        self.strings.insert(s.to_string(), i);
        i
    }

    fn function(&mut self, name: &str, file: &str) -> u64 {
        if let Some(&id) = self.functions.get(name) {
            return id;
        }
        let id = self.p.function.len() as u64 + 1;
        let (n, f) = (self.s(name), self.s(file));
        self.p.function.push(Function {
            id,
            name: n,
            system_name: n,
            filename: f,
            start_line: 0,
        });
        self.functions.insert(name.to_string(), id);
        id
    }

    /// The mapping of process `pid` that holds code address `ip` (0: none known).
    fn mapping(&mut self, pid: u32, ip: u64) -> u64 {
        let Some(t) = self.stacks else { return 0 };
        let Some(maps) = t.processes.get(&pid).map(|p| &p.maps) else {
            return 0;
        };
        let Some((i, m)) = maps
            .iter()
            .enumerate()
            .rev()
            .find(|(_, m)| m.exec && m.start <= ip && ip < m.end)
        else {
            return 0;
        };
        if let Some(&id) = self.mappings.get(&(pid, i)) {
            return id;
        }
        let id = self.p.mapping.len() as u64 + 1;
        let build_id = crate::stacks::build_id(&m.path).unwrap_or_default();
        let (filename, build_id) = (self.s(&m.path), self.s(&build_id));
        self.p.mapping.push(Mapping {
            id,
            memory_start: m.start,
            memory_limit: m.end,
            file_offset: m.offset,
            filename,
            build_id,
            has_functions: true,
            has_filenames: false,
            has_line_numbers: false,
            has_inline_frames: true,
        });
        self.mappings.insert((pid, i), id);
        id
    }

    /// The location of frame `ip` of process `pid`: its mapping, and its function with the functions
    /// inlined into it (innermost first, as pprof wants them).
    fn location(&mut self, pid: u32, ip: u64) -> u64 {
        if let Some(&id) = self.locations.get(&(pid, ip)) {
            return id;
        }
        let names: Vec<String> = match self.stacks.and_then(|t| t.symbols.get(&(pid, ip))) {
            Some(n) => n.clone(),
            None => vec![self
                .stacks
                .and_then(|t| t.locate(pid, ip))
                .map(|(path, off)| {
                    let file = path.rsplit('/').next().unwrap_or(path);
                    format!("{file}+{off:#x}")
                })
                .unwrap_or_else(|| format!("[unknown] {ip:#x}"))],
        };
        let mapping_id = self.mapping(pid, ip);
        let line = names
            .iter()
            .rev()
            .map(|n| Line {
                function_id: self.function(n, ""),
                line: 0,
            })
            .collect();
        let id = self.p.location.len() as u64 + 1;
        self.p.location.push(Location {
            id,
            mapping_id,
            address: ip,
            line,
            is_folded: false,
        });
        self.locations.insert((pid, ip), id);
        id
    }

    /// A location standing for a whole lock (sources without stacks): a function named after it.
    fn lock_location(&mut self, pid: u32, addr: u64, name: &str) -> u64 {
        if let Some(&id) = self.locations.get(&(pid, addr)) {
            return id;
        }
        let f = self.function(name, "");
        let id = self.p.location.len() as u64 + 1;
        self.p.location.push(Location {
            id,
            mapping_id: 0,
            address: 0,
            line: vec![Line {
                function_id: f,
                line: 0,
            }],
            is_folded: false,
        });
        self.locations.insert((pid, addr), id);
        id
    }

    fn sample(
        &mut self,
        locations: Vec<u64>,
        contentions: u64,
        delay_ns: u64,
        labels: &[(&str, Lv)],
    ) {
        let label = labels
            .iter()
            .map(|(k, v)| match v {
                Lv::Str(s) => Label {
                    key: self.s(k),
                    str: self.s(s),
                    num: 0,
                    num_unit: 0,
                },
                Lv::Num(n) => Label {
                    key: self.s(k),
                    str: 0,
                    num: *n,
                    num_unit: 0,
                },
            })
            .collect();
        self.p.sample.push(Sample {
            location_id: locations,
            value: vec![contentions as i64, delay_ns as i64],
            label,
        });
    }
}

/// A label's value.
enum Lv {
    Str(String),
    Num(i64),
}

/// The profile of what `model` gathered: the waiters' stacks (block profile) or the wakers' (mutex
/// profile), one sample per (stack, lock); by lock when there are no stacks.
pub fn build(an: &Analysis<'_>, side: Side, span: Span, show: Show) -> Profile {
    let (model, names) = (an.model, an.names);
    let show = show.resolve(an);
    let stacks = names.stacks;
    let mut b = Builder::new(stacks, side, span);
    let name = |pid: u32, addr: u64| names.word(pid, addr);
    let kind = |a: &crate::model::AddrStats| a.kind_in(stacks).name().to_string();
    let mut keys: Vec<_> = model.addresses.keys().copied().collect();
    keys.sort_unstable();
    let Some(t) = stacks else {
        // No stacks (a trace recorded without them): one sample per lock, its waits and time waited.
        for (pid, addr) in keys {
            let a = &model.addresses[&(pid, addr)];
            let class = an.word_class((pid, addr));
            if side == Side::Waiters && a.wait_ns_total > 0 && show.keeps(class) {
                let n = name(pid, addr);
                let loc = b.lock_location(pid, addr, &n);
                let labels = Labels {
                    pid,
                    lock: n,
                    kind: kind(a),
                    class,
                    ..Labels::default()
                };
                b.sample(vec![loc], a.waits_blocked, a.wait_ns_total, &labels.list());
            }
        }
        return b.p;
    };
    let parts = stack_parts(an, &keys, side);
    let all = match side {
        Side::Waiters => &model.stacks,
        Side::Wakers => &model.waker_stacks,
    };
    for ((pid, id), mut ps) in parts {
        let (Some(ips), Some(s)) = (t.stacks.get(&(pid, id)), all.get(&(pid, id))) else {
            continue;
        };
        ps.retain(|p| p.2 > 0);
        ps.sort_unstable();
        // The stack's estimated contentions, a whole number, shared out by time (largest remainder),
        // so that the parts add up to the stack's own count.
        let total_ns: u64 = ps.iter().map(|p| p.2).sum();
        let shares = largest_remainder(
            s.waits.round().max(0.0) as u64,
            &ps.iter()
                .map(|p| p.2 as f64 / total_ns.max(1) as f64)
                .collect::<Vec<_>>(),
        );
        let locs: Vec<u64> = ips.iter().map(|&ip| b.location(pid, ip)).collect();
        for (((wpid, addr), tid, ns), n) in ps.into_iter().zip(shares) {
            let a = &model.addresses[&(wpid, addr)];
            let (class, site) = match side {
                Side::Waiters => match an.sites.site_of((pid, id), tid) {
                    Some(s) => (s.class, Some(s.label())),
                    None => (an.word_class((wpid, addr)), None),
                },
                Side::Wakers => (an.word_class((wpid, addr)), None),
            };
            if !show.keeps(class) {
                continue;
            }
            let info = t.processes.get(&pid);
            let labels = Labels {
                pid,
                process: info.map(|p| p.comm.clone()),
                cgroup: info.map(|p| p.cgroup.clone()).filter(|c| !c.is_empty()),
                container: info.and_then(|p| p.container()).map(str::to_string),
                lock: name(wpid, addr),
                kind: kind(a),
                class,
                site,
                tid,
                thread_name: tid
                    .and_then(|tid| model.threads.get(&(pid, tid)))
                    .map(|n| n.as_str().into_owned()),
            };
            b.sample(locs.clone(), n, ns, &labels.list());
        }
    }
    b.p
}

/// Each stack's time, split by word and, where the model knows it, by thread (the waiting one; for
/// --wakers the waking one): (pid, stack id) → [(word, tid, ns)].
fn stack_parts(
    an: &Analysis<'_>,
    keys: &[(u32, u64)],
    side: Side,
) -> std::collections::BTreeMap<(u32, u32), Vec<Part>> {
    let mut parts: std::collections::BTreeMap<(u32, u32), Vec<Part>> = Default::default();
    for &word in keys {
        let a = &an.model.addresses[&word];
        let (here, by_thread) = match side {
            Side::Waiters => (&a.stacks, &a.thread_stacks),
            Side::Wakers => (&a.waker_stacks, &a.waker_thread_stacks),
        };
        if by_thread.is_empty() {
            for (&key, &ns) in here {
                parts.entry(key).or_default().push((word, None, ns));
            }
        } else {
            for (&(key, tid), &ns) in by_thread {
                parts.entry(key).or_default().push((word, Some(tid), ns));
            }
        }
    }
    parts
}

/// A stack's share on one word (and thread, when known): ((pid, address), thread id, nanoseconds).
type Part = ((u32, u64), Option<u32>, u64);

/// A sample's labels: its process, lock, wait kind and class, its site, and its thread when known.
#[derive(Default)]
struct Labels {
    pid: u32,
    process: Option<String>,
    lock: String,
    kind: String,
    class: crate::sites::Class,
    site: Option<String>,
    tid: Option<u32>,
    thread_name: Option<String>,
    /// The process's cgroup (v2) and the container id in it, when known.
    cgroup: Option<String>,
    container: Option<String>,
}

impl Labels {
    fn list(self) -> Vec<(&'static str, Lv)> {
        let mut l = vec![
            ("pid", Lv::Num(i64::from(self.pid))),
            ("lock", Lv::Str(self.lock)),
            ("wait", Lv::Str(self.kind)),
            ("class", Lv::Str(self.class.name().into())),
        ];
        if let Some(p) = self.process {
            l.push(("process", Lv::Str(p)));
        }
        if let Some(s) = self.site {
            l.push(("site", Lv::Str(s)));
        }
        if let Some(tid) = self.tid {
            l.push(("thread", Lv::Num(i64::from(tid))));
        }
        if let Some(n) = self.thread_name {
            l.push(("thread_name", Lv::Str(n)));
        }
        if let Some(c) = self.cgroup {
            l.push(("cgroup", Lv::Str(c)));
        }
        if let Some(c) = self.container {
            l.push(("container", Lv::Str(c)));
        }
        l
    }
}

/// `total` shared out in proportion to `weights` (which add up to 1) in whole numbers that add up to
/// `total`: each its floor, then one more to the largest remainders.
fn largest_remainder(total: u64, weights: &[f64]) -> Vec<u64> {
    let exact: Vec<f64> = weights.iter().map(|w| w * total as f64).collect();
    let mut out: Vec<u64> = exact.iter().map(|x| x.floor() as u64).collect();
    let mut left = total.saturating_sub(out.iter().sum());
    let mut order: Vec<usize> = (0..exact.len()).collect();
    order.sort_by(|&i, &j| (exact[j] - exact[j].floor()).total_cmp(&(exact[i] - exact[i].floor())));
    for i in order {
        if left == 0 {
            break;
        }
        out[i] += 1;
        left -= 1;
    }
    out
}

/// The profile as Go's `net/http/pprof` writes a contention profile with `?debug=1`: a
/// `--- contention:` header, `cycles/second` (nanoseconds here, so a cycle is a nanosecond), then one
/// `delay count @ pc pc …` line per sample followed by its frames (`#\tpc\tfunction`), innermost
/// first. Text for a person (or `go tool pprof`'s legacy reader), not for a scraper.
pub fn text(p: &Profile) -> String {
    use std::fmt::Write;
    let name = |i: i64| p.string_table.get(i as usize).map_or("?", String::as_str);
    let functions: HashMap<u64, &str> = p.function.iter().map(|f| (f.id, name(f.name))).collect();
    let locations: HashMap<u64, &Location> = p.location.iter().map(|l| (l.id, l)).collect();
    let mut out = String::from("--- contention:\ncycles/second=1000000000\n");
    let mut samples: Vec<&Sample> = p.sample.iter().collect();
    samples.sort_by_key(|s| std::cmp::Reverse(s.value.get(1).copied().unwrap_or(0)));
    for s in samples {
        let (count, delay) = (
            s.value.first().copied().unwrap_or(0),
            s.value.get(1).copied().unwrap_or(0),
        );
        let _ = write!(out, "{delay} {count} @");
        for id in &s.location_id {
            let _ = write!(out, " {:#x}", locations.get(id).map_or(0, |l| l.address));
        }
        out.push('\n');
        for id in &s.location_id {
            let Some(l) = locations.get(id) else { continue };
            for line in &l.line {
                let f = functions.get(&line.function_id).copied().unwrap_or("?");
                let _ = writeln!(out, "#\t{:#x}\t{f}", l.address);
            }
        }
        out.push('\n');
    }
    out
}

/// The profile, encoded and gzipped, as pprof files are.
pub fn encode_gz(p: &Profile) -> Vec<u8> {
    use prost::Message;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&p.encode_to_vec())
        .expect("writing to memory cannot fail");
    gz.finish().expect("writing to memory cannot fail")
}

/// A gzipped (or plain) encoded profile, decoded.
pub fn decode(bytes: &[u8]) -> Result<Profile, String> {
    use prost::Message;
    let raw = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out)
            .map_err(|e| format!("not a gzipped profile: {e}"))?;
        out
    } else {
        bytes.to_vec()
    };
    Profile::decode(raw.as_slice()).map_err(|e| format!("not a pprof profile: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventKind, FutexOp, Outcome, Waker};
    use crate::model::BucketOrigin;
    use crate::model::Model;
    use crate::stacks::Names;

    #[test]
    fn shares_are_whole_and_add_up() {
        assert_eq!(largest_remainder(10, &[0.5, 0.25, 0.25]), [5, 3, 2]);
        assert_eq!(largest_remainder(1, &[0.3, 0.7]), [0, 1]);
        let s = largest_remainder(7, &[1.0 / 3.0; 3]);
        assert_eq!(s.iter().sum::<u64>(), 7);
    }

    #[test]
    fn a_sampled_stack_becomes_a_go_block_profile_sample_with_its_weight_and_lock() {
        let mut m = Model::new(64, BucketOrigin::FutexCoreHash);
        let (pid, addr) = (7, 0x5000u64);
        m.apply(&Event {
            ts_ns: 1,
            pid,
            tid: 0,
            kind: EventKind::Counts {
                addr,
                op: FutexOp::Wait,
                hash: None,
                counts: crate::event::Counts {
                    calls: 5,
                    blocked: 5,
                    woken: 5,
                    wait_ns: 10_000,
                    ..Default::default()
                },
            },
        });
        // 2 µs at a 10 µs rate: stands for 5 waits, 10 µs.
        m.apply(&Event {
            ts_ns: 1,
            pid,
            tid: 8,
            kind: EventKind::WaitSample {
                addr,
                final_addr: addr,
                op: FutexOp::Wait,
                outcome: Outcome::Woken,
                wait_ns: 2_000,
                wake_to_return_ns: None,
                sched_delay_ns: None,
                waker: Some(Waker {
                    tid: 9,
                    stack: Some(2),
                    pid: 0,
                }),
                stack: Some(1),
                stack_rate_ns: 10_000,
                waker_every: 4,
            },
        });
        let mut t = StackTable::default();
        t.stacks.insert((pid, 1), vec![0x10, 0x20]);
        t.stacks.insert((pid, 2), vec![0x30]);
        t.symbols
            .insert((pid, 0x10), vec!["lock_slow".into(), "inlined_wait".into()]);
        t.symbols.insert((pid, 0x20), vec!["worker".into()]);
        t.symbols.insert((pid, 0x30), vec!["unlock".into()]);
        let labels = HashMap::from([(addr, "orders".to_string())]);
        let span = Span {
            start_unix_ns: 1_700_000_000_000_000_000,
            duration_ns: 5_000_000_000,
        };
        let rules = crate::sites::Rules::default();
        let an = Analysis::new(&m, Names::new(&labels, Some(&t)), &rules);
        let p = build(&an, Side::Waiters, span, Show::All);
        let s = |i: i64| p.string_table[i as usize].as_str();
        let types: Vec<(&str, &str)> = p
            .sample_type
            .iter()
            .map(|v| (s(v.r#type), s(v.unit)))
            .collect();
        assert_eq!(types, [("contentions", "count"), ("delay", "nanoseconds")]);
        let pt = p.period_type.as_ref().unwrap();
        assert_eq!(
            (s(pt.r#type), s(pt.unit), p.period),
            ("contentions", "count", 1)
        );
        assert_eq!(p.sample.len(), 1);
        assert_eq!(p.sample[0].value, [5, 10_000]);
        let labels: Vec<(&str, String)> = p.sample[0]
            .label
            .iter()
            .map(|l| {
                (
                    s(l.key),
                    if l.str != 0 {
                        s(l.str).to_string()
                    } else {
                        l.num.to_string()
                    },
                )
            })
            .collect();
        assert_eq!(
            labels,
            [
                ("pid", "7".into()),
                ("lock", "orders".into()),
                ("wait", "kernel".into()),
                ("class", "waiting for work".into()),
                ("site", "pid 7: inlined_wait ← lock_slow".into()),
                ("thread", "8".into())
            ]
        );
        // Innermost location first; an inlined function before the one it was inlined into.
        let loc = &p.location[(p.sample[0].location_id[0] - 1) as usize];
        let names: Vec<&str> = loc
            .line
            .iter()
            .map(|l| s(p.function[(l.function_id - 1) as usize].name))
            .collect();
        assert_eq!(
            (loc.address, names),
            (0x10, vec!["inlined_wait", "lock_slow"])
        );
        assert_eq!(p.time_nanos, span.start_unix_ns);
        // Encoded and gzipped, it decodes to itself.
        let bytes = encode_gz(&p);
        assert_eq!(&bytes[..2], &[0x1f, 0x8b]);
        assert_eq!(decode(&bytes).unwrap(), p);
        // The wakers' profile: the waker's stack, counted for the 4 releases it stands for.
        let none = HashMap::new();
        let an = Analysis::new(&m, Names::new(&none, Some(&t)), &rules);
        let w = build(&an, Side::Wakers, span, Show::All);
        assert_eq!(w.sample.len(), 1);
        assert_eq!(w.sample[0].value, [4, 8_000]);
    }
}
