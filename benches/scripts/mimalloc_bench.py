#!/usr/bin/env python3
"""Run the self-contained programs of mimalloc-bench under glibc, mimalloc, jemalloc,
tcmalloc and libtemporal_slab.so (LD_PRELOAD) and print Markdown tables of the medians.

The programs are built from a checkout of github.com/daanx/mimalloc-bench (never copied into
this repository) in a scratch folder with the system gcc/g++, using the sources, defines and
flags of the suite's bench/CMakeLists.txt, and run with the arguments of its bench.sh for
--procs processors. mimalloc's own test/test-stress.c (from a checkout of
github.com/microsoft/mimalloc, --mimalloc-src) is built with -DUSE_STD_MALLOC and run as
extra rows at `8 100 50` and `32 50 50`.

Each run is measured with `/usr/bin/time -f "%e %M"` (wall seconds, peak RSS KiB). Runs are
interleaved: every repetition runs each program once per allocator, round-robin, so machine
noise spreads over all allocators alike. A non-zero exit, a signal or a timeout is recorded as
a failure and shown in the tables.

Like bench.sh, the programs that run for a fixed time (larsonN, xmalloc-testN, rptestN,
glibc-thread) are compared by the "relative time" they report (seconds per fixed amount of
work, lower is better); their wall time is kept in the JSON. Those rows are marked (rel).

Standard library only. Debian: installs libmimalloc2.0, libjemalloc2, libtcmalloc-minimal4,
time and build-essential with apt-get when they are missing (needs root).
"""

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(SCRIPT_DIR, "..", ".."))
DEFAULT_OURS = os.path.join(REPO_ROOT, "target", "release", "libtemporal_slab.so")
DEFAULT_BUILD = os.path.join(tempfile.gettempdir(), "mimalloc-bench-build")

PEERS = ["glibc", "mimalloc", "jemalloc", "tcmalloc"]
ALL_ALLOCATORS = PEERS + ["ours"]
# allocator -> (Debian package, file name prefix of the .so to preload)
DEBIAN_LIBS = {
    "mimalloc": ("libmimalloc2.0", "libmimalloc.so"),
    "jemalloc": ("libjemalloc2", "libjemalloc.so"),
    "tcmalloc": ("libtcmalloc-minimal4", "libtcmalloc_minimal.so"),
}

C_WARN = ["-w", "-Wno-implicit-function-declaration", "-Wno-implicit-int",
          "-Wno-int-conversion", "-Wno-incompatible-pointer-types"]
RELEASE = ["-O3", "-DNDEBUG"]


class Fatal(Exception):
    """An error that ends the run with one line on stderr and exit status 2."""


# --------------------------------------------------------------------------------------------
# Programs
# --------------------------------------------------------------------------------------------

def mb_builds():
    """Binaries of mimalloc-bench: name -> (compiler, sources under bench/, extra flags, libs)."""
    cfrac = ("cfrac.c pops.c pconst.c pio.c pabs.c pneg.c pcmp.c podd.c phalf.c padd.c psub.c "
             "pmul.c pdivmod.c psqrt.c ppowmod.c atop.c ptoa.c itop.c utop.c ptou.c errorp.c "
             "pfloat.c pidiv.c pimod.c picmp.c primes.c pcfrac.c pgcd.c").split()
    espresso = ("cofactor.c cols.c compl.c contain.c cubestr.c cvrin.c cvrm.c cvrmisc.c cvrout.c "
                "dominate.c equiv.c espresso.c essen.c exact.c expand.c gasp.c getopt.c gimpel.c "
                "globals.c hack.c indep.c irred.c main.c map.c matrix.c mincov.c opo.c pair.c "
                "part.c primes.c reduce.c rows.c set.c setc.c sharp.c sminterf.c solution.c "
                "sparse.c unate.c utility.c verify.c").split()
    return {
        "cfrac": ("gcc", ["cfrac/" + s for s in cfrac], ["-std=gnu89", "-DNOMEMOPT=1"], ["-lm"]),
        "espresso": ("gcc", ["espresso/" + s for s in espresso], ["-std=gnu89"], ["-lm"]),
        "larson": ("g++", ["larson/larson.cpp"], ["-std=c++17", "-DCPP=1"], ["-lpthread"]),
        "alloc-test": ("g++", ["alloc-test/test_common.cpp", "alloc-test/allocator_tester.cpp"],
                       ["-std=c++17", "-DBENCH=4"], ["-lpthread"]),
        "cache-scratch": ("g++", ["cache-scratch/cache-scratch.cpp"], ["-std=c++17"],
                          ["-lpthread"]),
        "cache-thrash": ("g++", ["cache-thrash/cache-thrash.cpp"], ["-std=c++17"], ["-lpthread"]),
        "xmalloc-test": ("gcc", ["xmalloc-test/xmalloc-test.c"], [], ["-lpthread"]),
        "malloc-large": ("g++", ["malloc-large/malloc-large.cpp"], ["-std=c++17"], ["-lpthread"]),
        "mstress": ("gcc", ["mstress/mstress.c"], [], ["-lpthread"]),
        "mleak": ("gcc", ["mleak/mleak.c"], [], ["-lpthread"]),
        "rptest": ("gcc", ["rptest/rptest.c", "rptest/thread.c", "rptest/timer.c"],
                   ["-Irptest"], ["-lpthread", "-lm"]),
        "glibc-simple": ("gcc", ["glibc-bench/bench-malloc-simple.c"], [], ["-lpthread"]),
        "glibc-thread": ("gcc", ["glibc-bench/bench-malloc-thread.c"], [], ["-lpthread"]),
    }


def rel_larson(out):
    m = re.findall(r"relative time: ([0-9.]+)", out)
    return float(m[-1]) if m else None


def rel_xmalloc(out):
    m = re.findall(r"rtime: ([0-9.]+)", out)
    return float(m[-1]) if m else None


def rel_rptest(out):
    m = re.findall(r"(\d+) memory ops", out)
    return 2000000.0 / int(m[-1]) if m and int(m[-1]) > 0 else None


def rel_glibc_thread(out):
    m = re.findall(r"(\d+) iterations", out)
    return 1e9 / int(m[-1]) if m and int(m[-1]) > 0 else None


def programs(procs, stress_scale):
    """The rows, in run order: dicts with name, binary, args, rel (parser or None)."""
    p = str(procs)
    rows = [
        ("cfrac", "cfrac", ["17545186520507317056371138836327483792789528"], None),
        ("espresso", "espresso", ["@MB@/bench/espresso/largest.espresso"], None),
        ("larsonN", "larson", ["5", "8", "1000", "5000", "100", "4141", p], rel_larson),
        ("xmalloc-testN", "xmalloc-test", ["-w", p, "-t", "5", "-s", "64"], rel_xmalloc),
        ("cache-scratch1", "cache-scratch", ["1", "1000", "1", "2000000", p], None),
        ("cache-scratchN", "cache-scratch", [p, "1000", "1", "2000000", p], None),
        ("cache-thrashN", "cache-thrash", [p, "1000", "1", "2000000", p], None),
        ("glibc-simple", "glibc-simple", [], None),
        ("glibc-thread", "glibc-thread", [p], rel_glibc_thread),
        ("mstressN", "mstress", [p, "50", "25"], None),
        ("mleak10", "mleak", ["5"], None),
        ("rptestN", "rptest", [p, "0", "1", "2", "500", "1000", "100", "8", "16000"], rel_rptest),
        ("malloc-large", "malloc-large", [], None),
        ("alloc-test1", "alloc-test", ["1"], None),
        ("alloc-testN", "alloc-test", [str(min(procs, 16))], None),
    ]
    if procs == 1:  # bench.sh runs the N variants only when procs != 1
        rows = [r for r in rows if r[0] not in ("cache-scratchN", "cache-thrashN", "alloc-testN")]
    for threads, scale, iters in ((8, 100, 50), (32, 50, 50)):
        it = max(1, int(round(iters * stress_scale)))
        rows.append(("test-stress %d %d %d" % (threads, scale, it), "test-stress",
                     [str(threads), str(scale), str(it)], None))
    return [dict(name=n, binary=b, args=a, rel=r) for n, b, a, r in rows]


QUICK = ["cfrac", "espresso", "cache-scratchN", "mstressN", "malloc-large", "glibc-thread"]


# --------------------------------------------------------------------------------------------
# Setup: tools, allocator libraries, builds
# --------------------------------------------------------------------------------------------

def log(msg):
    print(msg, file=sys.stderr, flush=True)


def apt_install(packages, no_install):
    if no_install:
        raise Fatal("missing Debian package(s) %s and --no-install given" % " ".join(packages))
    if shutil.which("apt-get") is None:
        raise Fatal("missing package(s) %s and no apt-get to install them" % " ".join(packages))
    log("installing with apt-get: %s" % " ".join(packages))
    cmd = ["apt-get", "install", "-y", "--no-install-recommends"] + packages
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode:
        subprocess.run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
        if r.returncode:
            last = (r.stderr.strip().splitlines() or ["?"])[-1]
            raise Fatal("apt-get install %s failed: %s" % (" ".join(packages), last))


def dpkg_installed(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    return r.returncode == 0 and "install ok installed" in r.stdout


def ensure_tools(args):
    missing = []
    if not os.access("/usr/bin/time", os.X_OK):
        missing.append("time")
    if shutil.which(args.cc) is None or shutil.which(args.cxx) is None:
        missing.append("build-essential")
    if missing:
        apt_install(missing, args.no_install)
    if not os.access("/usr/bin/time", os.X_OK):
        raise Fatal("/usr/bin/time is missing (Debian package 'time')")
    for c in (args.cc, args.cxx):
        if shutil.which(c) is None:
            raise Fatal("compiler %s not found" % c)


def debian_lib(alloc, no_install):
    pkg, prefix = DEBIAN_LIBS[alloc]
    if shutil.which("dpkg") is None:
        raise Fatal("no dpkg: cannot find %s; use --%s-lib PATH" % (pkg, alloc))
    if not dpkg_installed(pkg):
        apt_install([pkg], no_install)
    r = subprocess.run(["dpkg", "-L", pkg], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                       text=True)
    cands = [l for l in r.stdout.split() if os.path.basename(l).startswith(prefix)
             and "debug" not in os.path.basename(l) and os.path.exists(l)]
    if not cands:
        raise Fatal("package %s installs no %s* library" % (pkg, prefix))
    # prefer the soname link (libx.so.2), the shortest name
    return sorted(cands, key=len)[0]


def resolve_allocators(args):
    libs = {}
    for a in args.allocators:
        if a == "glibc":
            libs[a] = None
        elif a == "ours":
            path = os.path.abspath(args.ours_lib)
            if not os.path.isfile(path):
                raise Fatal("our allocator library %s does not exist (build it with `cargo build "
                            "--release -p temporal-slab-capi` or pass --ours-lib)" % path)
            libs[a] = path
        else:
            given = getattr(args, a + "_lib")
            if given:
                if not os.path.isfile(given):
                    raise Fatal("%s library %s does not exist" % (a, given))
                libs[a] = os.path.abspath(given)
            else:
                libs[a] = debian_lib(a, args.no_install)
    # a library that cannot be loaded would make every run of it fail: check once up front
    for a, lib in libs.items():
        if lib is None:
            continue
        r = subprocess.run(["/bin/true"], env=dict(os.environ, LD_PRELOAD=lib),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode or "cannot be preloaded" in r.stderr or "error" in r.stderr.lower():
            raise Fatal("%s library %s cannot be preloaded: %s" %
                        (a, lib, (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[0]))
    return libs


def lib_info(path):
    """Identity of a preloaded library, so a result can be tied to one build of it."""
    if path is None:
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    st = os.stat(path)
    return dict(path=path, realpath=os.path.realpath(path), sha256=h.hexdigest(),
                size=st.st_size, mtime=time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                                     time.gmtime(st.st_mtime)))


def git_commit(path):
    try:
        r = subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
        if r.returncode == 0:
            return r.stdout.strip()
    except OSError:
        pass
    return None


def git_dirty(path):
    """True when the checkout has uncommitted changes to tracked files (the library may then
    not be the commit's build), None when unknown."""
    try:
        r = subprocess.run(["git", "--no-optional-locks", "-C", path, "status", "--porcelain",
                            "--untracked-files=no"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    except OSError:
        return None
    return bool(r.stdout.strip()) if r.returncode == 0 else None


def build_one(cmd, cwd, logpath):
    with open(logpath, "w") as lf:
        lf.write(" ".join(cmd) + "\n")
        lf.flush()
        r = subprocess.run(cmd, cwd=cwd, stdout=lf, stderr=subprocess.STDOUT)
    if r.returncode:
        with open(logpath, errors="replace") as lf:
            lines = [l.strip() for l in lf.readlines()[1:] if l.strip()]  # [0]: the command
        errs = [l for l in lines if "error" in l.lower()]
        return ((errs or lines or ["exit status %d" % r.returncode])[0])[:200]
    return None


def build_all(args, needed):
    """Build the binaries in `needed`; returns (binary -> path, binary -> reason it was skipped)."""
    bindir = os.path.join(args.build_dir, "bin")
    logdir = os.path.join(args.build_dir, "build-logs")
    os.makedirs(bindir, exist_ok=True)
    os.makedirs(logdir, exist_ok=True)
    src = os.path.join(args.mimalloc_bench, "bench")
    built, skipped = {}, {}
    specs = mb_builds()
    for b in sorted(needed):
        out = os.path.join(bindir, b)
        logpath = os.path.join(logdir, b + ".log")
        if b == "test-stress":
            if not args.mimalloc_src:
                skipped[b] = "no --mimalloc-src checkout of microsoft/mimalloc given"
                continue
            f = os.path.join(args.mimalloc_src, "test", "test-stress.c")
            if not os.path.isfile(f):
                skipped[b] = "%s not found" % f
                continue
            cmd = [args.cc] + RELEASE + ["-DUSE_STD_MALLOC", f, "-o", out, "-lpthread"]
            cwd = args.build_dir
        else:
            cc, files, flags, libs = specs[b]
            missing = [f for f in files if not os.path.isfile(os.path.join(src, f))]
            if missing:
                skipped[b] = "source %s missing in the checkout" % missing[0]
                continue
            cmd = ([args.cc if cc == "gcc" else args.cxx] + RELEASE + C_WARN + flags +
                   files + ["-o", out] + libs)
            cwd = src
        log("building %s" % b)
        err = build_one(cmd, cwd, logpath)
        if err:
            skipped[b] = "build failed (%s; log %s)" % (err, logpath)
            log("  skipped %s: %s" % (b, skipped[b]))
        else:
            built[b] = out
    return built, skipped


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------

def run_once(args, prog, binpath, alloc, lib, rep):
    runs = os.path.join(args.build_dir, "runs")
    os.makedirs(runs, exist_ok=True)
    tag = "%s.%s.%d" % (prog["name"].replace(" ", "_"), alloc, rep)
    out_path = os.path.join(runs, tag + ".out")
    time_path = os.path.join(runs, tag + ".time")
    argv = [a.replace("@MB@", args.mimalloc_bench) for a in prog["args"]]
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if lib:
        env["LD_PRELOAD"] = lib
    if os.path.exists(time_path):
        os.unlink(time_path)
    cmd = ["/usr/bin/time", "-o", time_path, "-f", "%e %M", binpath] + argv
    rec = dict(program=prog["name"], allocator=alloc, rep=rep, ok=False, wall_s=None,
               rss_kib=None, rel_s=None, exit=None, error=None)
    t0 = time.monotonic()
    with open(out_path, "w") as of:
        try:
            p = subprocess.Popen(cmd, cwd=runs, env=env, stdout=of, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                p.wait(timeout=args.timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)  # the process group this run started
                p.wait()
                rec["error"] = "timeout after %ds" % args.timeout
            except KeyboardInterrupt:
                os.killpg(p.pid, 9)  # do not leave the benchmark running behind us
                p.wait()
                raise
        except OSError as e:
            rec["error"] = "cannot start: %s" % e
    elapsed = time.monotonic() - t0
    with open(out_path, errors="replace") as of:
        output = of.read()
    times = ""
    if os.path.exists(time_path):
        with open(time_path) as tf:
            times = tf.read()
    m = re.search(r"^([0-9.]+) (\d+)\s*$", times, re.M)
    if m:
        rec["wall_s"], rec["rss_kib"] = float(m.group(1)), int(m.group(2))
    sig = re.search(r"Command terminated by signal (\d+)", times)
    st = re.search(r"Command exited with non-zero status (\d+)", times)
    if rec["error"] is None:
        if sig:
            rec["error"] = "killed by signal %s" % sig.group(1)
            rec["exit"] = -int(sig.group(1))
        elif st:
            rec["error"] = "exit status %s" % st.group(1)
            rec["exit"] = int(st.group(1))
        elif p.returncode:
            rec["error"] = "exit status %d" % p.returncode
            rec["exit"] = p.returncode
        elif not m:
            rec["error"] = "no /usr/bin/time output"
        else:
            rec["exit"] = 0
    if rec["wall_s"] is None:
        rec["wall_s"] = round(elapsed, 2)
    if rec["error"] is None and prog["rel"]:
        rec["rel_s"] = prog["rel"](output)
        if rec["rel_s"] is None:
            rec["error"] = "no relative time in the program's output"
    if rec["error"] is None:
        rec["ok"] = True
    else:
        rec["output_tail"] = output[-600:]
    return rec


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

def summarize(records, prog_names, allocs, rel_names, reps):
    """program -> allocator -> dict(time, rss, wall, fails, n)."""
    s = {}
    for pn in prog_names:
        s[pn] = {}
        for a in allocs:
            rs = [r for r in records if r["program"] == pn and r["allocator"] == a]
            ok = [r for r in rs if r["ok"]]
            key = "rel_s" if pn in rel_names else "wall_s"
            s[pn][a] = dict(
                n=len(rs), fails=len(rs) - len(ok),
                errors=sorted(set(r["error"] for r in rs if not r["ok"])),
                time=statistics.median([r[key] for r in ok]) if ok else None,
                wall=statistics.median([r["wall_s"] for r in ok]) if ok else None,
                rss=statistics.median([r["rss_kib"] for r in ok]) if ok else None)
    return s


def fmt_t(x):
    return "-" if x is None else ("%.3f" % x if x < 10 else "%.2f" % x)


def fmt_mib(kib):
    return "-" if kib is None else "%.1f" % (kib / 1024.0)


def fail_note(c):
    return "FAIL %d/%d (%s)" % (c["fails"], c["n"], "; ".join(c["errors"])[:80])


def tables(summary, prog_names, allocs, rel_names):
    lines = []
    peers = [a for a in allocs if a in PEERS]
    if "ours" in allocs and peers:
        lines.append("| program | ours time (median) | best peer | ours / best peer time "
                     "| ours / best peer peak RSS |")
        lines.append("|---|---:|---|---:|---:|")
        for pn in prog_names:
            row = summary[pn]
            o = row["ours"]
            label = pn + (" (rel)" if pn in rel_names else "")
            # a peer that failed any repetition does not count as the best
            clean = [a for a in peers if row[a]["fails"] == 0 and row[a]["time"] is not None]
            bt = min(clean, key=lambda a: row[a]["time"]) if clean else None
            br = min(clean, key=lambda a: row[a]["rss"]) if clean else None
            ours_t = fmt_t(o["time"]) + " s" if o["time"] is not None else "-"
            if o["fails"]:
                ours_t = fail_note(o) + ("; median of the rest %s s" % fmt_t(o["time"])
                                         if o["time"] is not None else "")
            if bt is None:
                lines.append("| %s | %s | - (no peer without failures) | - | - |" % (label, ours_t))
                continue
            tr = "%.2f" % (o["time"] / row[bt]["time"]) if o["time"] and row[bt]["time"] else "-"
            rr = ("%.2f (vs %s, %s MiB)" % (o["rss"] / row[br]["rss"], br, fmt_mib(row[br]["rss"]))
                  if o["rss"] and row[br]["rss"] else "-")
            lines.append("| %s | %s | %s (%s s) | %s | %s |" %
                         (label, ours_t, bt, fmt_t(row[bt]["time"]), tr, rr))
        lines.append("")
    lines.append("Every allocator: median time in seconds / median peak RSS in MiB.")
    lines.append("")
    lines.append("| program | " + " | ".join(allocs) + " |")
    lines.append("|---|" + "---:|" * len(allocs))
    for pn in prog_names:
        cells = []
        for a in allocs:
            c = summary[pn][a]
            cell = "%s / %s" % (fmt_t(c["time"]), fmt_mib(c["rss"]))
            if c["fails"]:
                cell = fail_note(c) + ("" if c["time"] is None else "; rest " + cell)
            cells.append(cell)
        lines.append("| %s | %s |" % (pn + (" (rel)" if pn in rel_names else ""),
                                      " | ".join(cells)))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="mimalloc_bench.py",
        description=__doc__.split("\n\n")[0],
        epilog=("Rows marked (rel) use the relative time the program prints (it runs for a "
                "fixed time), like mimalloc-bench's bench.sh; all others use wall seconds. "
                "'Best peer' is the fastest of glibc, mimalloc, jemalloc and tcmalloc that "
                "had no failed run on that row; the RSS ratio is against the peer with the "
                "lowest median peak RSS. Exit status: 0 when every run succeeded, 1 when some "
                "run failed, some program was skipped or the run was interrupted, 2 on bad input or setup errors."),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mimalloc_bench", metavar="MIMALLOC_BENCH",
                    help="path of a checkout (work tree) of github.com/daanx/mimalloc-bench; "
                         "it is only read, the programs are built in --build-dir")
    ap.add_argument("--mimalloc-src", metavar="DIR",
                    help="path of a checkout of github.com/microsoft/mimalloc, for "
                         "test/test-stress.c (built with -DUSE_STD_MALLOC); without it the "
                         "test-stress rows are skipped")
    ap.add_argument("--build-dir", default=DEFAULT_BUILD, metavar="DIR",
                    help="scratch folder for binaries, build logs and program outputs "
                         "(default %(default)s)")
    ap.add_argument("--procs", type=int, default=2, metavar="N",
                    help="processor count the suite's arguments are scaled to, as bench.sh "
                         "-j (default %(default)s)")
    ap.add_argument("--reps", type=int, default=None, metavar="N",
                    help="repetitions; each runs every program once per allocator, "
                         "round-robin (default 3, 1 with --quick)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1 repetition of a subset (%s, and test-stress at 1/5 of "
                         "its iterations) unless --reps/--programs/--stress-scale are also "
                         "given" % ", ".join(QUICK))
    ap.add_argument("--programs", metavar="LIST",
                    help="comma-separated rows to run (names as in --list; 'test-stress' "
                         "selects both test-stress rows); default all")
    ap.add_argument("--list", action="store_true", help="print the rows and their commands, "
                    "then exit")
    ap.add_argument("--allocators", default=",".join(ALL_ALLOCATORS), metavar="LIST",
                    help="comma-separated subset of %s (default all)" % ",".join(ALL_ALLOCATORS))
    ap.add_argument("--ours-lib", default=DEFAULT_OURS, metavar="SO",
                    help="our allocator library to preload (default %(default)s)")
    for a in DEBIAN_LIBS:
        ap.add_argument("--%s-lib" % a, metavar="SO",
                        help="%s library to preload instead of the one of Debian package %s"
                             % (a, DEBIAN_LIBS[a][0]))
    ap.add_argument("--stress-scale", type=float, default=None, metavar="F",
                    help="multiply test-stress's iteration count (50) by F to shorten it; the "
                         "row names show the count used (default 1, 0.2 with --quick)")
    ap.add_argument("--timeout", type=int, default=300, metavar="S",
                    help="seconds before one run is killed and recorded as a failure "
                         "(default %(default)s)")
    ap.add_argument("--out", metavar="JSON",
                    help="write the raw results (every run) and the medians as JSON here")
    ap.add_argument("--markdown", metavar="MD",
                    help="also write the printed tables to this file")
    ap.add_argument("--mimalloc-bench-commit", metavar="REV",
                    help="commit to record for MIMALLOC_BENCH when it is an export without "
                         "git metadata (default: git rev-parse HEAD in it)")
    ap.add_argument("--mimalloc-commit", metavar="REV",
                    help="the same for --mimalloc-src")
    ap.add_argument("--cc", default="gcc", help="C compiler (default %(default)s)")
    ap.add_argument("--cxx", default="g++", help="C++ compiler (default %(default)s)")
    ap.add_argument("--no-install", action="store_true",
                    help="never run apt-get; fail instead when a package is missing")
    args = ap.parse_args(argv)
    if args.procs < 1:
        ap.error("--procs must be at least 1")
    if args.reps is not None and args.reps < 1:
        ap.error("--reps must be at least 1")
    if args.timeout < 1:
        ap.error("--timeout must be at least 1")
    if args.stress_scale is not None and args.stress_scale <= 0:
        ap.error("--stress-scale must be positive")
    args.allocators = [a.strip() for a in args.allocators.split(",") if a.strip()]
    bad = [a for a in args.allocators if a not in ALL_ALLOCATORS]
    if bad or not args.allocators:
        ap.error("unknown allocator %r (choose from %s)" % (bad[0] if bad else "",
                                                            ",".join(ALL_ALLOCATORS)))
    args.allocators = [a for a in ALL_ALLOCATORS if a in args.allocators]
    return args, ap


def main(argv):
    args, ap = parse_args(argv)
    quick_defaults = args.quick
    if args.stress_scale is None:
        args.stress_scale = 0.2 if quick_defaults else 1.0
    if args.reps is None:
        args.reps = 1 if quick_defaults else 3

    mb = os.path.abspath(args.mimalloc_bench)
    if not os.path.isfile(os.path.join(mb, "bench.sh")) or not os.path.isdir(
            os.path.join(mb, "bench")):
        raise Fatal("%s is not a mimalloc-bench checkout (no bench.sh and bench/)" % mb)
    args.mimalloc_bench = mb
    if args.mimalloc_src:
        args.mimalloc_src = os.path.abspath(args.mimalloc_src)
        if not os.path.isfile(os.path.join(args.mimalloc_src, "test", "test-stress.c")):
            raise Fatal("%s is not a mimalloc checkout (no test/test-stress.c)" %
                        args.mimalloc_src)
    args.build_dir = os.path.abspath(args.build_dir)
    if args.build_dir == REPO_ROOT or args.build_dir.startswith(REPO_ROOT + os.sep) or \
            args.build_dir == mb or args.build_dir.startswith(mb + os.sep):
        raise Fatal("--build-dir must be outside this repository and the checkout")

    progs = programs(args.procs, args.stress_scale)
    if args.list:
        for p in progs:
            print("%-22s %s %s%s" % (p["name"], p["binary"],
                                     " ".join(a.replace("@MB@", mb) for a in p["args"]),
                                     "   [relative time]" if p["rel"] else ""))
        return 0
    if args.programs or quick_defaults:
        want = ([w.strip() for w in args.programs.split(",") if w.strip()] if args.programs
                else QUICK + ["test-stress"])
        names = [p["name"] for p in progs]
        for w in want:
            if w != "test-stress" and w not in names:
                raise Fatal("unknown program %r (see --list)" % w)
        progs = [p for p in progs if p["name"] in want or
                 ("test-stress" in want and p["binary"] == "test-stress")]

    ensure_tools(args)
    libs = resolve_allocators(args)
    os.makedirs(args.build_dir, exist_ok=True)
    built, skipped_bins = build_all(args, {p["binary"] for p in progs})
    skipped = {}
    for p in progs:
        if p["binary"] in skipped_bins:
            skipped[p["name"]] = skipped_bins[p["binary"]]
    progs = [p for p in progs if p["binary"] in built]
    for n, why in skipped.items():
        print("skipped %s: %s" % (n, why))
    if not progs:
        raise Fatal("no program built")

    rel_names = {p["name"] for p in progs if p["rel"]}
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    # this repository's state when the runs start (it may move on while they run)
    ours_commit, ours_dirty = git_commit(REPO_ROOT), git_dirty(REPO_ROOT)
    lib_infos = {a: lib_info(l) for a, l in libs.items()}
    records = []
    total = args.reps * len(progs) * len(args.allocators)
    k = 0
    interrupted = False
    try:
        for rep in range(1, args.reps + 1):
            for p in progs:
                for a in args.allocators:
                    k += 1
                    r = run_once(args, p, built[p["binary"]], a, libs[a], rep)
                    records.append(r)
                    log("[%d/%d] rep %d %-22s %-9s %s" % (
                        k, total, rep, p["name"], a,
                        ("%.2fs %dKiB%s" % (r["wall_s"], r["rss_kib"],
                                            " rel %.3fs" % r["rel_s"] if r["rel_s"] else ""))
                        if r["ok"] else "FAILED: " + r["error"]))
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: tables and JSON cover the runs done so far")

    names = [p["name"] for p in progs]
    summary = summarize(records, names, args.allocators, rel_names, args.reps)
    hdr = ["mimalloc-bench programs, %d repetition(s), procs=%d, on %d CPUs (%s, %s)" %
           (args.reps, args.procs, os.cpu_count() or 0, platform.machine(),
            platform.libc_ver()[0] + " " + platform.libc_ver()[1]),
           "", "Times: wall seconds (median), or the program's relative time for rows marked "
           "(rel). Lower is better; ratios below 1 favour ours."]
    if args.stress_scale != 1.0:
        hdr.append("test-stress scaled down: iterations x %g (the row names show the count "
                   "used; the suite's default is 50)." % args.stress_scale)
    if interrupted:
        hdr.append("INTERRUPTED: incomplete.")
    if skipped:
        hdr.append("Skipped: " + "; ".join("%s (%s)" % kv for kv in skipped.items()))
    text = "\n".join(hdr) + "\n\n" + tables(summary, names, args.allocators, rel_names)
    print()
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    if args.out:
        doc = dict(
            started=started, finished=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            command=[os.path.basename(sys.argv[0])] + argv, procs=args.procs, reps=args.reps,
            stress_scale=args.stress_scale, cpus=os.cpu_count(), allocators=libs,
            libraries=lib_infos, ours_tree_dirty=ours_dirty,
            mimalloc_bench=dict(path=mb, commit=args.mimalloc_bench_commit or git_commit(mb)),
            mimalloc=dict(path=args.mimalloc_src,
                          commit=args.mimalloc_commit or (git_commit(args.mimalloc_src)
                                                          if args.mimalloc_src else None)),
            ours_commit=ours_commit, skipped=skipped, interrupted=interrupted,
            programs=[dict(name=p["name"], binary=p["binary"],
                           args=[a.replace("@MB@", mb) for a in p["args"]],
                           metric="relative_time" if p["rel"] else "wall") for p in progs],
            medians=summary, runs=records)
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
    failed = any(not r["ok"] for r in records)
    return 1 if (failed or skipped or interrupted) else 0


def _sigterm(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        sys.exit(main(sys.argv[1:]))
    except Fatal as e:
        print("mimalloc_bench.py: error: %s" % e, file=sys.stderr)
        sys.exit(2)
