#!/usr/bin/env bash
# Old vs new futex-trace on the same workloads, in one run, alternated (root): untraced, OLD, NEW; prints
# each workload's own ops/s. Usage: scripts/ab-tracer.sh OLD_FUTEX_TRACE [ROUNDS]
# (build the old one from a worktree: git worktree add /tmp/old REV && cargo build --release -p futex-trace
# in it). The new one and the workload are this checkout's release builds.
set -euo pipefail
cd "$(dirname "$0")/.."
old="$1"
rounds="${2:-5}"
cargo build --release -q -p futex-trace -p futex-workload
w=target/release/futex-workload
new=target/release/futex-trace
ops() { python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["ops_per_sec"]))' "$1"; }
out="$(mktemp -d)"
for args in "--eagain 3 --threads 4" "--pingpong 3" "--wake-storm 3"; do
    for _ in $(seq "$rounds"); do
        # shellcheck disable=SC2086
        "$w" $args >"$out/u.json"
        # shellcheck disable=SC2086
        "$old" report --command-output "$out/o.json" -- "$w" $args >/dev/null 2>&1
        # shellcheck disable=SC2086
        "$new" report --command-output "$out/n.json" -- "$w" $args >/dev/null 2>&1
        echo "$args untraced $(ops "$out/u.json") old $(ops "$out/o.json") new $(ops "$out/n.json")"
    done
done
rm -rf "$out"
