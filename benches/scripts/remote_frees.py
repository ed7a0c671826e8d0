#!/usr/bin/env python3
"""Time one remote free (and one allocation of an object freed remotely) for temporal-slab and
its peers with `pairs <allocator> <size> <objects> --remote`, interleaved, and print a Markdown
table of the medians.

`pairs --remote` runs a producer thread that allocates batches of 256 objects and a consumer
thread that frees them (benches/src/remote.rs); only the loops are timed. The peers are the
`pairs` binary's glibc, mimalloc and jemalloc instances, and tcmalloc as glibc under
LD_PRELOAD of Debian's libtcmalloc-minimal4 when it is installed. Every repetition runs each
allocator once, round-robin, so machine noise spreads over all alike.

Build first: cargo build --release -p benches --bin pairs

Standard library only.
"""

import argparse
import glob
import os
import re
import statistics
import subprocess
import sys

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(SCRIPT_DIR, "..", ".."))
LINE = re.compile(r"ns/free=([0-9.]+) ns/alloc=([0-9.]+)")


def tcmalloc_lib():
    """The tcmalloc shared library, or None."""
    found = sorted(glob.glob("/usr/lib/*/libtcmalloc_minimal.so*"))
    return found[0] if found else None


def variants(tcmalloc):
    """(name, pairs allocator argument, extra environment) for each allocator measured."""
    out = [("temporal-slab", "temporal-slab", {}), ("glibc", "glibc", {}),
           ("mimalloc", "mimalloc", {}), ("jemalloc", "jemalloc", {})]
    if tcmalloc:
        out.append(("tcmalloc", "glibc", {"LD_PRELOAD": tcmalloc}))
    return out


def run_one(pairs, arg, env, size, objects, timeout):
    """(ns per free, ns per alloc) of one run; raises RuntimeError with the reason."""
    e = dict(os.environ)
    e.update(env)
    try:
        p = subprocess.run([pairs, arg, str(size), str(objects), "--remote"], env=e,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"timed out after {timeout} s")
    m = LINE.search(p.stdout)
    if p.returncode != 0 or not m:
        raise RuntimeError(f"exit {p.returncode}: {p.stderr.strip()[:200]}")
    return float(m.group(1)), float(m.group(2))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", default=os.path.join(REPO_ROOT, "target", "release", "pairs"),
                    help="the pairs binary (default: target/release/pairs)")
    ap.add_argument("--reps", type=int, default=9, help="runs per allocator (default 9)")
    ap.add_argument("--sizes", default="64", help="object sizes, comma-separated (default 64)")
    ap.add_argument("--objects", type=int, default=2_000_000,
                    help="objects per run (default 2,000,000)")
    ap.add_argument("--timeout", type=int, default=120, help="seconds per run (default 120)")
    a = ap.parse_args()
    if a.reps < 1 or a.objects < 1:
        sys.exit("remote_frees: --reps and --objects must be at least 1")
    try:
        sizes = [int(s) for s in a.sizes.split(",")]
    except ValueError:
        sys.exit(f"remote_frees: --sizes must be numbers separated by commas, not {a.sizes!r}")
    if any(s < 1 for s in sizes):
        sys.exit("remote_frees: every size must be at least 1")
    if not os.access(a.pairs, os.X_OK):
        sys.exit(f"remote_frees: {a.pairs} is not an executable; build it with "
                 "`cargo build --release -p benches --bin pairs`")
    vs = variants(tcmalloc_lib())
    results = {(v[0], s): ([], []) for v in vs for s in sizes}
    failures = []
    for rep in range(a.reps):
        for s in sizes:
            for name, arg, env in vs:
                try:
                    f, al = run_one(a.pairs, arg, env, s, a.objects, a.timeout)
                except RuntimeError as err:
                    failures.append(f"{name} {s} B rep {rep + 1}: {err}")
                    continue
                results[(name, s)][0].append(f)
                results[(name, s)][1].append(al)
        print(f"remote_frees: repetition {rep + 1}/{a.reps} done", file=sys.stderr)
    print(f"Median of {a.reps} runs, {a.objects:,} objects each (ns; min in brackets).\n")
    print("| allocator | " + " | ".join(f"free {s} B | alloc {s} B" for s in sizes) + " |")
    print("|---|" + "---:|---:|" * len(sizes))
    for name, _, _ in vs:
        cells = []
        for s in sizes:
            f, al = results[(name, s)]
            for xs in (f, al):
                cells.append(f"{statistics.median(xs):.1f} [{min(xs):.1f}]" if xs else "failed")
        print(f"| {name} | " + " | ".join(cells) + " |")
    for line in failures:
        print(f"failed: {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
