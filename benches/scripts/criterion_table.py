#!/usr/bin/env python3
"""Markdown ratio table from one or more saved criterion output directories.

Usage: criterion_table.py DIR [DIR ...]
Each DIR is a copy of a criterion output directory (target/criterion) from one full run of
`cargo bench -p benches --bench alloc_pairs`. For every group/allocator the script takes the
median point estimate of each run, then the median across runs, and prints times and the
ratios temporal-slab / mimalloc, / glibc, / jemalloc (below 1 favours temporal-slab).
"""
import json
import statistics
import sys
from pathlib import Path

ALLOCS = ["temporal-slab", "glibc", "mimalloc", "jemalloc"]


def fmt(ns):
    return f"{ns / 1000:.2f} us" if ns >= 1000 else f"{ns:.2f} ns"


def main(dirs):
    if not dirs:
        sys.exit("usage: criterion_table.py DIR [DIR ...]")
    per = {}
    for d in map(Path, dirs):
        if not d.is_dir():
            sys.exit(f"criterion_table.py: {d} is not a directory (pass saved criterion output dirs)")
        for est in d.glob("*/*/new/estimates.json"):
            group, alloc = est.parts[-4], est.parts[-3]
            median = json.loads(est.read_text())["median"]["point_estimate"]
            per.setdefault(group, {}).setdefault(alloc, []).append(median)
    def key(g):
        kind, _, size = g.partition("_")
        return (kind != "pair", kind, int(size) if size.isdigit() else 1 << 40)
    print("| group | runs | " + " | ".join(ALLOCS) + " | ts/mimalloc | ts/glibc | ts/jemalloc |")
    print("|---|---:|" + "---:|" * (len(ALLOCS) + 3))
    for group in sorted(per, key=key):
        m = {a: statistics.median(v) for a, v in per[group].items()}
        if not all(a in m for a in ALLOCS):
            continue
        runs = min(len(per[group][a]) for a in ALLOCS)
        ts = m["temporal-slab"]
        cells = " | ".join(fmt(m[a]) for a in ALLOCS)
        print(f"| `{group.replace('_', '/')}` | {runs} | {cells} | {ts / m['mimalloc']:.2f} | {ts / m['glibc']:.2f} | {ts / m['jemalloc']:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
