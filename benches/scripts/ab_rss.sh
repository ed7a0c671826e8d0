#!/bin/bash
# Interleaved A/B of two suite builds on temporal-slab: time (min of 3 reps) and peak RSS per
# round; summarise with `python3 benches/scripts/ab_rss.py LOG` (B/A medians, bootstrap 95% CI).
# usage: ab_rss.sh A_SUITE B_SUITE N "W:T ..." [A_ALLOC B_ALLOC] -> lines "W:T X time_min peak_rss"
# A_ALLOC / B_ALLOC: the suite allocator each side runs (default temporal-slab for both), e.g.
# `ab_rss.sh S S 5 "epochs-domains:2" temporal-slab-noepochs temporal-slab` for API / no API.
A=$1; B=$2; N=$3; WS=$4; AA=${5:-temporal-slab}; BA=${6:-temporal-slab}
for i in $(seq 1 $N); do
  for wt in $WS; do
    W=${wt%%:*}; T=${wt##*:}
    if [ $((i % 2)) = 0 ]; then ord="A B"; else ord="B A"; fi
    for x in $ord; do
      if [ $x = A ]; then s=$A; a=$AA; else s=$B; a=$BA; fi
      r=$(BENCH_ALLOCATOR=temporal-slab $s one $a $W --threads $T --reps 3 --no-latency 2>/dev/null | tail -1 | python3 -c "import json,sys; d=json.load(sys.stdin); print(min(d['times_ns']), d['peak_rss_bytes'])")
      echo "$W:$T $x $r"
    done
  done
done
