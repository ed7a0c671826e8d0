#!/usr/bin/env bash
# capi/bench/calls.sh - instructions per C allocation call pattern (callgrind, the loop only)
# under glibc, mimalloc, jemalloc, tcmalloc and libtemporal_slab.so (LD_PRELOAD), one table.
# Deterministic counts, so one run each: for the cost of the C entry points (issue 20, item 2),
# not for time.
#
# usage: capi/bench/calls.sh [SIZE [N]]     (default 64 bytes, 200000 iterations)
# needs: gcc, valgrind; optional: libmimalloc2.0 libjemalloc2 libtcmalloc-minimal4 (a missing
# allocator's row is left out with a note).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SIZE=${1:-64}
N=${2:-200000}
for tool in gcc valgrind; do
    command -v "$tool" >/dev/null || { echo "calls.sh: $tool not found (apt-get install $tool)" >&2; exit 1; }
done
cargo build --quiet --release -p temporal-slab-capi --manifest-path "$ROOT/Cargo.toml"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
gcc -O2 -g -o "$SCRATCH/calls" "$ROOT/capi/bench/calls.c"
LIBDIR=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
NAMES=(glibc mimalloc jemalloc tcmalloc temporal-slab)
LIBS=("" "$LIBDIR/libmimalloc.so.2" "$LIBDIR/libjemalloc.so.2" "$LIBDIR/libtcmalloc_minimal.so.4"
      "$TARGET/release/libtemporal_slab.so")
PATTERNS=(pairs calloc realloc memalign)
echo "instructions per iteration, $SIZE bytes, $N iterations (callgrind; loop overhead included)"
echo
echo "| allocator | malloc+free | calloc+free | malloc+realloc(2x)+free | posix_memalign(64)+free |"
echo "|---|---:|---:|---:|---:|"
for i in "${!NAMES[@]}"; do
    lib=${LIBS[$i]}
    if [ -n "$lib" ] && [ ! -e "$lib" ]; then
        echo "calls.sh: ${NAMES[$i]} left out: $lib not found" >&2
        continue
    fi
    row="| ${NAMES[$i]} |"
    for w in "${PATTERNS[@]}"; do
        out=$(env ${lib:+LD_PRELOAD=$lib} TSLAB_RECLAIM=0 valgrind --tool=callgrind \
            --callgrind-out-file=/dev/null --toggle-collect="run_$w" "$SCRATCH/calls" "$w" "$SIZE" "$N" 2>&1) \
            || { echo "calls.sh: ${NAMES[$i]} $w failed: $out" >&2; exit 1; }
        n=$(grep -o "Collected : [0-9]*" <<<"$out" | grep -o "[0-9]*")
        row="$row $((n / N)) |"
    done
    echo "$row"
done
