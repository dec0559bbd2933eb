#!/usr/bin/env bash
# What counting spins on the kernel's futex bucket locks costs (root): the lock contention tracepoints'
# programs run for every contended kernel lock on the host. Each workload untraced, traced with the spins
# counted (the default) and traced with --no-bucket-spins, alternated ROUNDS times; prints the
# workload's own ops/s. Then the cost for a process futex-trace does not trace: the EAGAIN storm
# untraced while futex-trace traces another process (a sleep), with and without the spins.
# Usage: scripts/bench-bucket-spins.sh [SECONDS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-3}"
rounds="${2:-5}"
cargo build --release -q -p futex-trace -p futex-workload
w=target/release/futex-workload
ft=target/release/futex-trace
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
ops() { python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["ops_per_sec"]))' "$1"; }
for args in "--eagain $secs --threads 2" "--wake-storm $secs"; do
    for r in $(seq "$rounds"); do
        # shellcheck disable=SC2086
        "$w" $args >"$out/u.json"
        # shellcheck disable=SC2086
        "$ft" report --command-output "$out/s.json" -- "$w" $args >/dev/null 2>&1
        # shellcheck disable=SC2086
        "$ft" report --no-bucket-spins --command-output "$out/n.json" -- "$w" $args >/dev/null 2>&1
        echo "$args round $r: untraced $(ops "$out/u.json") spins $(ops "$out/s.json") no-spins $(ops "$out/n.json")"
    done
done
for r in $(seq "$rounds"); do
    sleep 600 &
    other=$!
    line="untraced storm, another process traced, round $r:"
    for flag in "" "--no-bucket-spins"; do
        # shellcheck disable=SC2086
        "$ft" record $flag -o "$out/x.ftr" -p "$other" >/dev/null 2>&1 &
        tracer=$!
        sleep 1
        "$w" --eagain "$secs" --threads 2 >"$out/o.json"
        kill -INT "$tracer" && wait "$tracer" || true
        line="$line ${flag:-spins} $(ops "$out/o.json")"
    done
    "$w" --eagain "$secs" --threads 2 >"$out/o.json"
    echo "$line none $(ops "$out/o.json")"
    kill "$other"
done
