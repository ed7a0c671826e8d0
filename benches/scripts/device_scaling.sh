#!/bin/sh
# Thread scaling on a many-core machine (issue 17): the suite's threaded workloads at 1 to 16
# threads for temporal-slab and its peers, and the remote-free benchmark, in one short run.
#
# Build here first (the device machine has no network, so it runs the binaries built here):
#   cargo build --release -p benches --bins
# then run it there with the two binaries carried:
#   run  command: sh benches/scripts/device_scaling.sh   carry: target/release/suite target/release/pairs
# Results go to $OUT (the device's output folder), else target/scaling:
#   suite-scaling.md / .json   time, throughput and peak RSS per workload and thread count
#   remote.md                  pairs --remote medians (benches/scripts/remote_frees.py)
#   machine.txt                nproc, lscpu, the kernel
#
# THREADS (default 1,2,4,8,16) and REPS (default 3) override the defaults; each part has its own
# time limit, so a slow machine cuts the run short rather than the lease.
set -u
OUT=${OUT:-target/scaling}
THREADS=${THREADS:-1,2,4,8,16}
REPS=${REPS:-3}
SUITE=target/release/suite
PAIRS=target/release/pairs
mkdir -p "$OUT" || { echo "device_scaling: cannot create $OUT" >&2; exit 2; }
for b in "$SUITE" "$PAIRS"; do
    if [ ! -x "$b" ]; then
        echo "device_scaling: $b is missing: build with \`cargo build --release -p benches --bins\` and carry it" >&2
        exit 2
    fi
done
{ nproc; lscpu 2>/dev/null; uname -a; } > "$OUT/machine.txt"
status=0
timeout 420 "$SUITE" all --reps "$REPS" --threads "$THREADS" \
    --workloads alloc-test,larson,xmalloc,cache-scratch,request-server \
    --allocators temporal-slab,glibc,mimalloc,jemalloc --no-latency \
    --out "$OUT/suite-scaling.json" > "$OUT/suite-scaling.md" 2>&1 || status=1
timeout 120 python3 benches/scripts/remote_frees.py --pairs "$PAIRS" --reps 5 --sizes 64,256 \
    > "$OUT/remote.md" 2> "$OUT/remote.err" || status=1
tail -n 40 "$OUT/suite-scaling.md"
cat "$OUT/remote.md"
exit $status
