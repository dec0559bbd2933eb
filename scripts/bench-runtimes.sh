#!/usr/bin/env bash
# What tracing a managed runtime with its language's stacks costs (root): the Java bank, the Node atomics
# lock and the Python bank (futex-trace/tests/programs), each run untraced and under `futex-trace record`
# (default options: stacks at the default rate, unwound through JIT code, CPython's frames copied),
# alternated ROUNDS times with the runtime's perf-map flags in both; prints each run's work done (the
# programs' own count: lock acquisitions, or transfers) and the medians' ratio.
# Usage: scripts/bench-runtimes.sh [SECONDS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-5}"
rounds="${2:-3}"
cargo build --release -q -p futex-trace
ft="$PWD/target/release/futex-trace"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
javac -d "$out" futex-trace/tests/programs/Bank.java
java_cmd=(java -XX:+PreserveFramePointer -XX:+UnlockDiagnosticVMOptions -XX:+DumpPerfMapAtExit
    -cp "$out" Bank "$secs")
node_cmd=(node --perf-basic-prof --interpreted-frames-native-stack
    "$PWD/futex-trace/tests/programs/atomics_lock.js" "$secs")
python_cmd=(/usr/bin/python3.11 "$PWD/futex-trace/tests/programs/bank.py" "$secs")
# The runs in the scratch directory: what they write there (node's V8 logs) goes with it.
cd "$out"
# The program's JSON line (stdout or stderr) → its lock acquisitions.
acq() {
    python3 -c '
import json, sys
said = json.loads([l for l in open(sys.argv[1]) if l.startswith("{")][-1])
locks = said.get("locks")
print(sum(v["acquisitions"] for v in locks.values()) if locks else said["transfers"])' "$1"
}
# The perf maps the runs write (the runtimes' pids are theirs): removed after each round, others kept.
maps() { { ls /tmp/perf-*.map 2>/dev/null || true; } | sort; }
maps >"$out/maps.before"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for name in java node python; do
    declare -n cmd="${name}_cmd"
    : >"$out/u" && : >"$out/t"
    for r in $(seq "$rounds"); do
        "${cmd[@]}" >"$out/u.err" 2>&1
        u=$(acq "$out/u.err")
        "$ft" record -o "$out/t.ftr" -- "${cmd[@]}" >"$out/t.err" 2>&1
        t=$(acq "$out/t.err")
        echo "$name round $r: untraced $u, traced $t"
        echo "$u" >>"$out/u" && echo "$t" >>"$out/t"
        maps | comm -13 "$out/maps.before" - | xargs -r rm -f
    done
    mu=$(median <"$out/u") && mt=$(median <"$out/t")
    echo "$name: median untraced $mu, traced $mt: $(python3 -c "print(f'{$mt / $mu:.3f}')")x"
done
