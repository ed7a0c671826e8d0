#!/usr/bin/env python3
"""Ratio ranges over several `suite all` results files (the noise between identical runs).

Usage: suite_runs.py RESULTS.json [RESULTS.json ...]
For every workload x threads, and each temporal-slab row (with and without its phase API), prints
temporal-slab's median time divided by each peer's, as "median of the runs [min - max]", and the
same for peak RSS against glibc. Below 1 favours temporal-slab.
"""
import json
import statistics
import sys

PEERS = ["mimalloc", "glibc", "jemalloc", "glibc-notrim"]
TS = ["temporal-slab", "temporal-slab-noepochs"]


def cell(values):
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def main(paths):
    if not paths:
        sys.exit("usage: suite_runs.py RESULTS.json [RESULTS.json ...]")
    runs = []
    for p in paths:
        with open(p) as f:
            doc = json.load(f)
        table = {}
        for r in doc["rows"]:
            table[(r["workload"], r["threads"], r["allocator"])] = r
        runs.append(table)
    keys = []
    for r in json.load(open(paths[0]))["rows"]:
        k = (r["workload"], r["threads"])
        if k not in keys:
            keys.append(k)
    head = " | ".join(f"ts / {p}" for p in PEERS)
    print(f"| workload | threads | runs | {head} | ts / glibc peak RSS |")
    print("|---|---:|---:|" + "---:|" * (len(PEERS) + 1))
    for w, t in keys:
        for ts in TS:
            present = [run for run in runs if (w, t, ts) in run]
            if not present:
                continue
            cells = []
            for peer in PEERS + ["rss"]:
                vals = []
                for run in present:
                    a = run.get((w, t, ts))
                    b = run.get((w, t, "glibc" if peer == "rss" else peer))
                    if not a or not b:
                        continue
                    k = "peak_rss_bytes" if peer == "rss" else "median_ns"
                    if b[k]:
                        vals.append(a[k] / b[k])
                cells.append(cell(vals))
            label = f"{w} (ts without epochs)" if ts != "temporal-slab" else w
            print(f"| {label} | {t} | {len(present)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
