#!/usr/bin/env bash
# Builds the eBPF object that futex-trace embeds, from futex.bpf.c, into futex.bpf.o beside it.
#   bash ebpf/build.sh           rebuild (needs clang and libbpf-dev's headers)
#   bash ebpf/build.sh --check   fail if the committed object differs from a fresh build (CI runs this)
#   bash ebpf/build.sh --out F   build into F (futex-trace's build.rs does, so the command line is here once)
# The object is committed so that building futex-trace never needs clang. The build is reproducible:
# the source directory is mapped to "ebpf" in the debug info, so the same clang gives the same bytes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/futex.bpf.o"
build() {
    clang -O2 -g -target bpf -D__TARGET_ARCH_x86 -I/usr/include/x86_64-linux-gnu -Wall -Werror \
        -fdebug-prefix-map="$here"=ebpf -fdebug-compilation-dir=ebpf \
        -c "$here/futex.bpf.c" -o "$1"
}
if ! command -v clang >/dev/null; then
    echo "ebpf/build.sh: clang not found: install clang and libbpf-dev (apt-get install clang libbpf-dev)" >&2
    exit 1
fi
if [ "${1:-}" = "--out" ]; then
    build "$2"
elif [ "${1:-}" = "--check" ]; then
    tmp="$(mktemp)"
    trap 'rm -f "$tmp"' EXIT
    build "$tmp"
    if ! cmp -s "$tmp" "$out"; then
        echo "ebpf/futex.bpf.o is stale: it differs from a build of ebpf/futex.bpf.c." >&2
        echo "Run 'bash ebpf/build.sh' and commit ebpf/futex.bpf.o." >&2
        exit 1
    fi
    echo "ebpf/futex.bpf.o matches ebpf/futex.bpf.c"
else
    build "$out"
    echo "built $out"
fi
