#!/usr/bin/env bash
# Memory of `futex-trace serve --demo` over a long run: RSS every 30 s while /metrics is scraped every
# 5 s and a 2-second block profile is pulled every 30 s. Usage: scripts/serve-memory.sh [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-10}"
cargo build --release -q -p futex-trace
target/release/futex-trace serve --demo --listen 127.0.0.1:19465 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
sleep 2
end=$((SECONDS + minutes * 60))
next_rss=$SECONDS
while ((SECONDS < end)); do
    curl -s -o /dev/null http://127.0.0.1:19465/metrics
    if ((SECONDS >= next_rss)); then
        curl -s -o /dev/null "http://127.0.0.1:19465/debug/pprof/block?seconds=2"
        printf '%4d s  rss %s kB\n' "$SECONDS" "$(awk '/VmRSS/ {print $2}' /proc/$pid/status)"
        next_rss=$((SECONDS + 30))
    fi
    sleep 5
done
