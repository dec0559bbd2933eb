#!/usr/bin/env bash
# The floor of tracing futex syscalls through tracepoints on this kernel: a futex-heavy workload untraced,
# with EMPTY BPF programs on sys_enter_futex and sys_exit_futex (bpftrace `{}`: no map, no filter), and
# traced by futex-trace (default options), alternated, medians. Whatever a tracer does in its programs, it
# cannot beat the empty programs' ratio: kprobes do not work on these machines, fentry/fexit are refused,
# and the kernel has no futex tracepoint but the syscall ones.
#   sudo bash scripts/tracepoint-floor.sh [ROUNDS [WORKLOAD ARGS...]]   (default: 7 --wake-storm 2)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-7}"
if [ "$#" -gt 1 ]; then
    shift
    args=("$@")
else
    args=(--wake-storm 2)
fi
cargo build --release -q -p futex-workload -p futex-trace
w=target/release/futex-workload
t=target/release/futex-trace
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
ops() { python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])['ops_per_sec'])" "$1"; }
untraced=() empty=() ours=()
for _ in $(seq "$rounds"); do
    "$w" "${args[@]}" >"$tmp/u"
    untraced+=("$(ops "$tmp/u")")
    bpftrace -e 'tracepoint:syscalls:sys_enter_futex {} tracepoint:syscalls:sys_exit_futex {}' >/dev/null 2>&1 &
    bp=$!
    sleep 3 # attached by then (bpftrace prints nothing when it is)
    "$w" "${args[@]}" >"$tmp/e"
    empty+=("$(ops "$tmp/e")")
    kill -INT "$bp"
    wait "$bp" 2>/dev/null || true
    "$t" record -o "$tmp/t.ftr" --command-output "$tmp/t" -- "$w" "${args[@]}" 2>/dev/null
    ours+=("$(ops "$tmp/t")")
done
python3 - "${untraced[*]}" "${empty[*]}" "${ours[*]}" "${args[*]}" <<'PY'
import statistics as s, sys
u, e, o = ([float(x) for x in a.split()] for a in sys.argv[1:4])
mu = s.median(u)
print(f"futex-workload {sys.argv[4]} (ops/s, medians of {len(u)}): untraced {mu:,.0f}; "
      f"empty enter+exit programs {s.median(e):,.0f} ({s.median(e) / mu:.3f}); "
      f"futex-trace {s.median(o):,.0f} ({s.median(o) / mu:.3f})")
PY
