// Ground-truth workload for futex-trace (issue 25), Node 20 worker_threads, with the program's own
// accounting printed as one JSON line at exit.
//
//   4 x teller  : loop { transferFunds() }: acquireAccountLock() = a 3-state futex-style mutex on
//                 Int32Array(SharedArrayBuffer)[0]: spin (compareExchange) then Atomics.wait; held for CPU
//                 work only; released with Atomics.notify (contention)
//   2 x consumer: waitForJob() = Atomics.wait on its own mailbox word; main posts a job every 250 ms
//                 (idle, waiting for work)
//   main        : setInterval producer (waits in epoll, not a futex)
//
// Usage: node atomics_lock.js [seconds=6]
'use strict';
const { Worker, isMainThread, workerData, parentPort, threadId } = require('worker_threads');

const TELLERS = 4, CONSUMERS = 2;
const CS_WORK = 60000;      // busy-loop iterations inside the lock (~50-100 us)
const OUT_WORK = 3000;      // a little work outside it
const SPIN = 50;            // compareExchange attempts before sleeping
const POST_EVERY_MS = 250;

const now = () => Number(process.hrtime.bigint()) / 1e6;   // ms

function busy(n, x) { for (let k = 0; k < n; k++) x += k ^ (x >>> 3); return x; }

// per-thread accounting
const acct = { lockWaitMs: 0, atomicsWaitMs: 0, acquisitions: 0, sleeps: 0, maxWaitMs: 0,
               idleMs: 0, jobs: 0 };

// Drepper's mutex #2 with a short spin (0 free, 1 locked, 2 locked with waiters).
function acquireAccountLock(i32) {
  const t0 = now();
  let c = Atomics.compareExchange(i32, 0, 0, 1);
  for (let s = 0; c !== 0 && s < SPIN; s++) {
    c = Atomics.compareExchange(i32, 0, 0, 1);
  }
  if (c !== 0) {
    if (c !== 2) c = Atomics.exchange(i32, 0, 2);
    while (c !== 0) {
      const w0 = now();
      Atomics.wait(i32, 0, 2);              // V8 FutexEmulation: g_mutex + a per-thread condvar
      acct.atomicsWaitMs += now() - w0;
      acct.sleeps++;
      c = Atomics.exchange(i32, 0, 2);
    }
  }
  const w = now() - t0;
  acct.lockWaitMs += w; acct.acquisitions++;
  if (w > acct.maxWaitMs) acct.maxWaitMs = w;
}

function releaseAccountLock(i32) {
  if (Atomics.sub(i32, 0, 1) !== 1) {
    Atomics.store(i32, 0, 0);
    Atomics.notify(i32, 0, 1);
  }
}

let sink = 0;
function transferFunds(lock, balances, i) {
  acquireAccountLock(lock);
  try {
    balances[i & 63] -= 1;
    balances[(i * 7) & 63] += 1;
    sink = busy(CS_WORK, i);
  } finally {
    releaseAccountLock(lock);
  }
}

// an idle consumer: waits for work on its own mailbox word
function waitForJob(mbox) {
  const t0 = now();
  Atomics.wait(mbox, 0, 0);
  acct.idleMs += now() - t0;
  return Atomics.exchange(mbox, 0, 0);
}

if (isMainThread) {
  const secs = Number(process.argv[2] || 6);
  const sab = new SharedArrayBuffer(4 + 64 * 4);
  const ctl = new Int32Array(new SharedArrayBuffer(4));          // [0]: stop
  const mboxSab = new SharedArrayBuffer(4 * CONSUMERS);
  const mbox = new Int32Array(mboxSab);
  const results = [];
  const workers = [];
  const t0 = now();
  for (let t = 0; t < TELLERS; t++)
    workers.push(new Worker(__filename, { name: `teller-${t}`, workerData: { role: 'teller', sab, ctl: ctl.buffer, t } }));
  for (let t = 0; t < CONSUMERS; t++)
    workers.push(new Worker(__filename, { name: `consumer-${t}`, workerData: { role: 'consumer', mboxSab, t } }));
  for (const w of workers) w.on('message', (m) => results.push(m));
  let posted = 0;
  const timer = setInterval(() => {              // producer: a job to one consumer, round robin
    const slot = posted++ % CONSUMERS;
    Atomics.store(mbox, slot, 1);
    Atomics.notify(mbox, slot, 1);
  }, POST_EVERY_MS);
  setTimeout(() => {
    clearInterval(timer);
    Atomics.store(ctl, 0, 1);
    for (let s = 0; s < CONSUMERS; s++) { Atomics.store(mbox, s, -1); Atomics.notify(mbox, s); }
  }, secs * 1000);
  let exited = 0;
  for (const w of workers) w.on('exit', () => {
    if (++exited < workers.length) return;
    const sum = (role, f) => results.filter(r => r.role === role).reduce((a, r) => a + r[f], 0);
    const r1 = (x) => Math.round(x * 10) / 10;
    const out = {
      program: 'atomics_lock.js', seconds: r1((now() - t0) / 1000) , node: process.version,
      locks: { acquireAccountLock: { threads: 'teller-*', wait_ms: r1(sum('teller', 'lockWaitMs')),
        atomics_wait_ms: r1(sum('teller', 'atomicsWaitMs')), acquisitions: sum('teller', 'acquisitions'),
        sleeps: sum('teller', 'sleeps'),
        max_wait_ms: r1(Math.max(...results.filter(r => r.role === 'teller').map(r => r.maxWaitMs))) } },
      idle: { waitForJob: { threads: 'consumer-*', wait_for_work_ms: r1(sum('consumer', 'idleMs')),
        jobs: sum('consumer', 'jobs'), posted } },
      threads: Object.fromEntries(results.map(r => [r.name, { tid: r.tid, lock_wait_ms: r1(r.lockWaitMs),
        atomics_wait_ms: r1(r.atomicsWaitMs), acquisitions: r.acquisitions, idle_ms: r1(r.idleMs), jobs: r.jobs }])),
    };
    console.log(JSON.stringify(out));
  });
} else {
  const { role, t } = workerData;
  const tidOf = () => { try { return Number(require('fs').readlinkSync('/proc/thread-self').split('/').pop()); } catch { return -1; } };
  const report = () => parentPort.postMessage({ role, name: `${role}-${t}`, tid: tidOf(), ...acct });
  if (role === 'teller') {
    const lock = new Int32Array(workerData.sab, 0, 1);
    const balances = new Int32Array(workerData.sab, 4, 64);
    const ctl = new Int32Array(workerData.ctl);
    let i = t;
    while (Atomics.load(ctl, 0) === 0) {
      sink = busy(OUT_WORK, i);
      transferFunds(lock, balances, i++);
    }
    report();
  } else {
    const mbox = new Int32Array(workerData.mboxSab, t * 4, 1);
    for (;;) {
      const job = waitForJob(mbox);
      if (job === -1) break;
      sink = busy(1000, job);
      acct.jobs++;
    }
    report();
  }
}
