"""A bank whose tellers contend on two threading.Lock (a semaphore inside CPython) in named functions,
and whose auditors wait for work on a queue.Queue: the lock waits are contention, the queue waits are
idle, whatever the primitive. Threads are named (prctl) so a trace can tell them apart. Runs SECS
seconds (argv[1], default 6) and prints its own account of the time waited, as JSON."""

import ctypes
import json
import queue
import sys
import threading
import time

libc = ctypes.CDLL(None)
PR_SET_NAME = 15

accounts_lock = threading.Lock()
ledger_lock = threading.Lock()
balances = [0] * 64
ledger = []
lock_wait = [0.0] * 8
transfers = [0] * 8
queue_wait = [0.0] * 2


def name_thread(name):
    libc.prctl(PR_SET_NAME, name.encode(), 0, 0, 0)


def transfer_funds(i):
    t0 = time.monotonic()
    with accounts_lock:
        lock_wait[i] += time.monotonic() - t0
        x = 0
        for k in range(3000):
            x += k
        balances[i % 64] += 1


def append_ledger(i):
    t0 = time.monotonic()
    with ledger_lock:
        lock_wait[i] += time.monotonic() - t0
        ledger.append(i)
        if len(ledger) > 1000:
            ledger.clear()


def teller(i, stop):
    name_thread(f"teller-{i}")
    while not stop.is_set():
        transfer_funds(i)
        append_ledger(i)
        transfers[i] += 1


def auditor(i, work):
    name_thread(f"auditor-{i}")
    while True:
        t0 = time.monotonic()
        item = work.get()
        queue_wait[i] += time.monotonic() - t0
        if item is None:
            return


def main():
    secs = float(sys.argv[1]) if len(sys.argv) > 1 else 6.0
    stop = threading.Event()
    work = queue.Queue()
    tellers = [threading.Thread(target=teller, args=(i, stop)) for i in range(8)]
    auditors = [threading.Thread(target=auditor, args=(i, work)) for i in range(2)]
    for t in tellers + auditors:
        t.start()
    end = time.monotonic() + secs
    while time.monotonic() < end:
        time.sleep(0.2)
        work.put(len(ledger))
    stop.set()
    for _ in auditors:
        work.put(None)
    for t in tellers + auditors:
        t.join()
    print(json.dumps({"lock_wait_s": sum(lock_wait), "queue_wait_s": sum(queue_wait),
                      "transfers": sum(transfers)}))


main()
