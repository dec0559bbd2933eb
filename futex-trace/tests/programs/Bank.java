// Ground-truth workload for futex-trace (issue 25): two contended locks and an idle pool, with the
// program's own accounting printed as one JSON line at exit.
//
//   4 x teller-N : loop { transferFunds(i) }   -- static synchronized (ObjectMonitor on Bank.class)
//   4 x clerk-N  : loop { appendLedger(i) }    -- ReentrantLock ledgerLock (AQS -> LockSupport.park)
//   auditor-N    : ThreadPoolExecutor(2) workers, idle in LinkedBlockingQueue.take(); main submits a tiny
//                  job every 250 ms (idle waiting for work)
//   main         : Thread.sleep between submissions (sleep)
//
// Critical sections are pure CPU work (no sleep inside a lock): one holder per lock runs at a time, so
// with 2 CPUs the two holders run and every other teller/clerk is blocked in the kernel.
//
// Usage: java -XX:+PreserveFramePointer -cp DIR Bank [seconds=6]
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadInfo;
import java.lang.management.ThreadMXBean;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;

public class Bank {
    static final int TELLERS = 4, CLERKS = 4, AUDITORS = 2;
    static final int CS_WORK = 40_000;     // loop iterations inside each lock (~30-60 us)
    static final int OUT_WORK = 2_000;     // a little work outside the lock
    static final long SUBMIT_EVERY_MS = 250;

    static final long[] balances = new long[64];
    static final ReentrantLock ledgerLock = new ReentrantLock();
    static long ledgerEntries = 0;
    static volatile boolean running = true;
    static volatile long sink;

    // per-thread accounting, written only by the owning thread
    static final class Acct {
        final String name;
        long lockWaitNs, acquisitions, maxWaitNs;
        long aliveNs, busyNs, jobs;   // auditors
        Acct(String n) { name = n; }
    }
    static final List<Acct> accts = Collections.synchronizedList(new ArrayList<>());
    static final ThreadLocal<long[]> enterStamp = ThreadLocal.withInitial(() -> new long[1]);

    static long work(int n, long x) {
        for (int k = 0; k < n; k++) x += k ^ (x >>> 3);
        return x;
    }

    // contended intrinsic monitor: the time from the call to the first statement is the wait to enter
    static synchronized void transferFunds(int i, long t0, Acct a) {
        long w = System.nanoTime() - t0;
        a.lockWaitNs += w; a.acquisitions++; if (w > a.maxWaitNs) a.maxWaitNs = w;
        balances[i & 63] -= 1;
        balances[(i * 7) & 63] += 1;
        sink += work(CS_WORK, i);
    }

    // contended ReentrantLock: the time lock() takes is the wait to acquire
    static void appendLedger(int i, Acct a) {
        long t0 = System.nanoTime();
        ledgerLock.lock();
        long w = System.nanoTime() - t0;
        try {
            a.lockWaitNs += w; a.acquisitions++; if (w > a.maxWaitNs) a.maxWaitNs = w;
            ledgerEntries++;
            sink += work(CS_WORK, i);
        } finally {
            ledgerLock.unlock();
        }
    }

    static void handleJob(int n) { sink += work(n, 1); }

    public static void main(String[] args) throws Exception {
        double secs = args.length > 0 ? Double.parseDouble(args[0]) : 6;
        long durNs = (long) (secs * 1e9);
        ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        if (mx.isThreadContentionMonitoringSupported()) mx.setThreadContentionMonitoringEnabled(true);

        List<Thread> tellers = new ArrayList<>(), clerks = new ArrayList<>();
        Map<String, Acct> byName = new ConcurrentHashMap<>();
        for (int t = 0; t < TELLERS; t++) {
            Acct a = new Acct("teller-" + t); accts.add(a); byName.put(a.name, a);
            final int n = t;
            tellers.add(new Thread(() -> {
                int i = n;
                while (running) {
                    sink += work(OUT_WORK, i);
                    transferFunds(i++, System.nanoTime(), a);
                }
            }, a.name));
        }
        for (int t = 0; t < CLERKS; t++) {
            Acct a = new Acct("clerk-" + t); accts.add(a); byName.put(a.name, a);
            final int n = t;
            clerks.add(new Thread(() -> {
                int i = n;
                while (running) {
                    sink += work(OUT_WORK, i);
                    appendLedger(i++, a);
                }
            }, a.name));
        }

        // auditors: a fixed pool whose workers are named auditor-N and account their idle time
        AtomicLong auditorSeq = new AtomicLong();
        ThreadFactory tf = r -> {
            String name = "auditor-" + auditorSeq.getAndIncrement();
            Acct a = new Acct(name); accts.add(a); byName.put(name, a);
            return new Thread(() -> {
                long s = System.nanoTime();
                try { r.run(); } finally { a.aliveNs = System.nanoTime() - s; }
            }, name);
        };
        ThreadPoolExecutor pool = new ThreadPoolExecutor(AUDITORS, AUDITORS, 0, TimeUnit.MILLISECONDS,
                new LinkedBlockingQueue<>(), tf) {
            @Override protected void beforeExecute(Thread t, Runnable r) {
                enterStamp.get()[0] = System.nanoTime();
            }
            @Override protected void afterExecute(Runnable r, Throwable e) {
                Acct a = byName.get(Thread.currentThread().getName());
                a.busyNs += System.nanoTime() - enterStamp.get()[0];
                a.jobs++;
            }
        };
        pool.prestartAllCoreThreads();

        long start = System.nanoTime();
        for (Thread t : tellers) t.start();
        for (Thread t : clerks) t.start();
        long end = start + durNs;
        long submitted = 0;
        while (System.nanoTime() < end) {
            pool.execute(() -> handleJob(1000));
            submitted++;
            Thread.sleep(SUBMIT_EVERY_MS);
        }
        // JVM's own accounting, read while the threads still run
        Map<String, long[]> jmx = new TreeMap<>();
        for (ThreadInfo ti : mx.getThreadInfo(mx.getAllThreadIds())) {
            if (ti == null) continue;
            jmx.put(ti.getThreadName(), new long[] { ti.getBlockedTime(), ti.getWaitedTime(),
                    ti.getBlockedCount(), ti.getWaitedCount() });
        }
        running = false;
        for (Thread t : tellers) t.join();
        for (Thread t : clerks) t.join();
        pool.shutdown();
        pool.awaitTermination(5, TimeUnit.SECONDS);
        double wall = (System.nanoTime() - start) / 1e9;

        // one JSON line
        long[] tw = new long[3], cw = new long[3], aw = new long[4];
        long jTellerBlocked = 0, jClerkWaited = 0, jAuditorWaited = 0;
        StringBuilder per = new StringBuilder();
        synchronized (accts) {
            for (Acct a : accts) {
                long[] j = jmx.getOrDefault(a.name, new long[] { -1, -1, 0, 0 });
                if (a.name.startsWith("teller")) { tw[0] += a.lockWaitNs; tw[1] += a.acquisitions; tw[2] = Math.max(tw[2], a.maxWaitNs); jTellerBlocked += j[0]; }
                else if (a.name.startsWith("clerk")) { cw[0] += a.lockWaitNs; cw[1] += a.acquisitions; cw[2] = Math.max(cw[2], a.maxWaitNs); jClerkWaited += j[1]; }
                else { long idle = a.aliveNs - a.busyNs; aw[0] += idle; aw[1] += a.jobs; aw[2] += a.aliveNs; jAuditorWaited += j[1]; }
                if (per.length() > 0) per.append(',');
                per.append(String.format("\"%s\":{\"lock_wait_ms\":%.1f,\"acquisitions\":%d,\"idle_ms\":%.1f,\"jmx_blocked_ms\":%d,\"jmx_waited_ms\":%d}",
                        a.name, a.lockWaitNs / 1e6, a.acquisitions,
                        a.name.startsWith("auditor") ? (a.aliveNs - a.busyNs) / 1e6 : 0.0, j[0], j[1]));
            }
        }
        System.out.println(String.format(Locale.ROOT,
                "{\"program\":\"Bank\",\"seconds\":%.2f,\"cpus\":%d,"
                + "\"locks\":{\"transferFunds\":{\"kind\":\"synchronized\",\"threads\":\"teller-*\",\"wait_ms\":%.1f,\"acquisitions\":%d,\"max_wait_ms\":%.2f,\"jmx_blocked_ms\":%d},"
                + "\"appendLedger\":{\"kind\":\"ReentrantLock\",\"threads\":\"clerk-*\",\"wait_ms\":%.1f,\"acquisitions\":%d,\"max_wait_ms\":%.2f,\"jmx_waited_ms\":%d}},"
                + "\"idle\":{\"auditors\":{\"threads\":\"auditor-*\",\"wait_for_work_ms\":%.1f,\"alive_ms\":%.1f,\"jobs\":%d,\"submitted\":%d,\"jmx_waited_ms\":%d}},"
                + "\"threads\":{%s}}",
                wall, Runtime.getRuntime().availableProcessors(),
                tw[0] / 1e6, tw[1], tw[2] / 1e6, jTellerBlocked,
                cw[0] / 1e6, cw[1], cw[2] / 1e6, jClerkWaited,
                aw[0] / 1e6, aw[2] / 1e6, aw[1], submitted, jAuditorWaited, per));
    }
}
