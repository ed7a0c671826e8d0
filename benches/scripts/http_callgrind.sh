#!/bin/bash
# User-space instructions per request of the example axum service (`http_load serve`) under
# callgrind, without the domain layer, with it outside the router and with `Router::layer`,
# interleaved, ROUNDS rounds; prints each run and the medians with the layer's cost against no
# layer. Each run: the server under valgrind (TSLAB_RECLAIM=0: no reclaimer thread), a 2 s
# warm-up by 4 connections, counters zeroed, then 4 connections for 4 s, counters dumped.
#
# usage: benches/scripts/http_callgrind.sh [ROUNDS (3)] [HTTP_LOAD (target/release/http_load)]
# needs: valgrind (callgrind_control, callgrind_annotate); build first with
#        cargo build --release -p benches --bin http_load
set -u
ROUNDS=${1:-3}
BIN=${2:-target/release/http_load}
[ -x "$BIN" ] || { echo "http_callgrind: $BIN not found: cargo build --release -p benches --bin http_load" >&2; exit 1; }
command -v callgrind_control > /dev/null || { echo "http_callgrind: valgrind not installed: apt-get install valgrind" >&2; exit 1; }
BIN=$(realpath "$BIN")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# one_run MODE_ARGS TAG -> prints "TAG requests instructions_per_request"
one_run() {
    local out="$WORK/$2"
    TSLAB_RECLAIM=0 BENCH_ALLOCATOR=temporal-slab valgrind --tool=callgrind --callgrind-out-file="$out.cg" \
        "$BIN" serve $1 --workers 2 > "$out.srv" 2>&1 &
    local vpid=$!
    for _ in $(seq 200); do grep -q listening "$out.srv" && break; sleep 0.3; done
    local addr
    addr=$(grep -o 'http://[0-9.:]*' "$out.srv" | head -1 | sed 's#http://##')
    [ -n "$addr" ] || { echo "http_callgrind: the server did not start: $(tail -1 "$out.srv")" >&2; kill $vpid; exit 1; }
    "$BIN" drive "$addr" --connections 4 --seconds 2 > /dev/null 2>&1
    callgrind_control -z $vpid > /dev/null 2>&1
    "$BIN" drive "$addr" --connections 4 --seconds 4 > "$out.drive" 2>&1
    callgrind_control -d $vpid > /dev/null 2>&1
    sleep 1
    kill $vpid
    wait $vpid 2> /dev/null
    local ir req
    ir=$(callgrind_annotate "$out.cg.1" 2> /dev/null | grep -m1 "PROGRAM TOTALS" | awk '{gsub(",", "", $1); print $1}')
    req=$(grep -o "^[0-9]* ok" "$out.drive" | grep -o "[0-9]*")
    echo "$2 $req $((ir / req))"
}

for r in $(seq "$ROUNDS"); do
    one_run --no-domains "no-layer.$r"
    one_run "--domains --outer" "outer.$r"
    one_run --domains "router-layer.$r"
done | tee "$WORK/runs"
python3 - "$WORK/runs" << 'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    tag, _, per = line.split()
    runs.setdefault(tag.split(".")[0], []).append(int(per))
base = statistics.median(runs["no-layer"])
for name in ("no-layer", "outer", "router-layer"):
    m = statistics.median(runs[name])
    print(f"{name:13} median {m:8.0f} instructions/request  vs no layer {m - base:+6.0f} ({(m / base - 1) * 100:+.2f}%)")
EOF
