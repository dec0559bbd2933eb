#!/usr/bin/env bash
# The project's tests: every crate's tests, then the loom model checks of futex-core's races.
# Root-only tests (bpftrace on futex-core's probes) skip with a printed reason when not root, and fail
# instead of skipping when CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --all-targets
cargo test --workspace --doc

# loom cannot share build artefacts with a normal build (different cfg), hence its own target dir.
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}" \
    cargo test -p futex-core --test loom --release
