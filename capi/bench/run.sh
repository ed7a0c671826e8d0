#!/usr/bin/env bash
# capi/bench/run.sh - wall time of real programs under glibc's malloc, libtemporal_slab.so,
# mimalloc and jemalloc (LD_PRELOAD), side by side; each cell is the median of RUNS runs.
#
# usage: capi/bench/run.sh            (from anywhere; builds the release .so first)
#        RUNS=5 capi/bench/run.sh
# needs: python3 git sqlite3 gcc; optional: libmimalloc2.0 libjemalloc2 (a missing allocator's
# column is "-"). A benchmark, never a CI gate: the machine's noise decides small differences.
#
# Workloads (the same files the tests use, scaled up):
#   python3  tests/workloads/threads.py 20 with PYTHONMALLOC=malloc (4 threads; every Python
#            object goes through malloc, not Python's own arenas)
#   git      init, then 4 rounds of 1500 files: add + commit; log -p; gc
#   sqlite3  tests/workloads/workload.sql with 300000 rows, into a fresh database file
#   gcc      gcc -O2 -g -c on the three C files of tests/c plus compile-and-link compute.c
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CAPI=$ROOT/capi
RUNS=${RUNS:-3}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

cargo build --quiet --release -p temporal-slab-capi --manifest-path "$ROOT/Cargo.toml"
SLAB=$TARGET/release/libtemporal_slab.so
LIBDIR=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)

NAMES=(glibc temporal-slab mimalloc jemalloc)
PRELOADS=("" "$SLAB" "$LIBDIR/libmimalloc.so.2" "$LIBDIR/libjemalloc.so.2")

PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=$(command -v python3)
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT

# Files for the git workload, made once, outside the timings.
for round in 1 2 3 4; do
    mkdir -p "$SCRATCH/files/$round"
    "$PYTHON" - "$SCRATCH/files/$round" "$round" <<'EOF'
import sys
d, r = sys.argv[1], int(sys.argv[2])
for f in range(1500):
    with open("%s/f%04d.txt" % (d, f), "w") as out:
        out.write("".join("file %d line %d round %d\n" % (f, l, r) for l in range(20 + f % 60)))
EOF
done
sed 's/@ROWS@/300000/' "$CAPI/tests/workloads/workload.sql" > "$SCRATCH/workload.sql"

# Each workload runs its programs with LD_PRELOAD="$PRE" (empty: glibc) in a fresh directory $W.
w_python3() { LD_PRELOAD=$PRE PYTHONMALLOC=malloc "$PYTHON" "$CAPI/tests/workloads/threads.py" 20 > /dev/null; }
w_git() {
    local g=(env LD_PRELOAD="$PRE" HOME="$W" GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@b.invalid
        GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@b.invalid git -C "$W")
    "${g[@]}" init -q -b main .
    for round in 1 2 3 4; do
        cp "$SCRATCH/files/$round"/* "$W"/
        "${g[@]}" add .
        "${g[@]}" commit -q -m "round $round"
    done
    "${g[@]}" log -p > /dev/null
    "${g[@]}" gc -q
}
w_sqlite3() { LD_PRELOAD=$PRE sqlite3 "$W/db" ".read $SCRATCH/workload.sql" > /dev/null; }
w_gcc() {
    local c
    for c in abi_test dlopen_tls tls_module; do
        LD_PRELOAD=$PRE gcc -O2 -g -I "$CAPI/include" -c "$CAPI/tests/c/$c.c" -o "$W/$c.o"
    done
    LD_PRELOAD=$PRE gcc -O2 -g "$CAPI/tests/workloads/compute.c" -o "$W/compute"
}

# Median wall time in seconds of RUNS runs of workload $1 with preload $2.
measure() {
    local times=() i t0 t1
    for ((i = 0; i < RUNS; i++)); do
        W=$(mktemp -d -p "$SCRATCH")
        PRE=$2
        t0=$(date +%s%N)
        "w_$1"
        t1=$(date +%s%N)
        rm -rf "$W"
        times+=("$(((t1 - t0) / 1000000))")
    done
    printf '%s\n' "${times[@]}" | sort -n | awk -v n="$RUNS" '{ a[NR] = $1 } END { printf "%.2f", a[int((n + 1) / 2)] / 1000 }'
}

echo "median of $RUNS runs, wall seconds ($(nproc) CPUs, $(ldd --version | head -1 | sed 's/.* //') glibc)"
printf '| %-8s |' workload
for n in "${NAMES[@]}"; do printf ' %13s |' "$n"; done
printf '\n|----------|'
for _ in "${NAMES[@]}"; do printf '%s|' "---------------"; done
printf '\n'
for w in python3 git sqlite3 gcc; do
    printf '| %-8s |' "$w"
    for i in "${!NAMES[@]}"; do
        pre=${PRELOADS[$i]}
        if [ -n "$pre" ] && [ ! -e "$pre" ]; then
            printf ' %13s |' "-"
            continue
        fi
        printf ' %13s |' "$(measure "$w" "$pre")"
    done
    printf '\n'
done
