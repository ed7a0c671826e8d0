#!/usr/bin/env bash
# VERIFICATION.sh: the one entry point that humans and CI run.
#
# Usage: ./VERIFICATION.sh [--strict] [--skip-cargo] [--only STAGES] [--keep] [--help]
#
# Stages, in order (the default runs all of them):
#   fmt        cargo fmt --all --check
#   clippy     cargo clippy --workspace --all-targets -- -D warnings
#   test       cargo test --workspace
#   doc        cargo doc --workspace --no-deps, with RUSTDOCFLAGS=-Dwarnings
#   rules      promtool check rules and promtool test rules on alerts/; every alert has a
#              severity, a runbook in docs/MONITORING_SETUP.md and tests where it fires and
#              where it stays quiet
#   dashboard  dashboards/temporal-slab.json: datasource as a variable, at least 14 panels, every
#              expression parses (wrapped as recording rules for promtool check rules)
#   live       on loopback: the demo workload (tslab-workload --leak) -> tslab export prometheus
#              --textfile (refreshed every second) and tslab serve -> node_exporter (textfile
#              collector only) -> Prometheus (both as scrape jobs, alerts/ loaded) -> /api/v1:
#              every dashboard query returns data, every alert rule evaluates, no textfile or
#              gathering error
#
# Options:
#   --strict        a skipped check is a failure (also VERIFY_STRICT=1); CI runs this way
#   --skip-cargo    leave out fmt, clippy, test and doc (for a CI that runs them itself)
#   --only STAGES   run only these comma-separated stages; `cargo` = fmt,clippy,test,doc and
#                   `promtool` = rules,dashboard (e.g. --only live, --only promtool,live)
#   --keep          keep the work directory (logs, Prometheus data) (also VERIFY_KEEP=1)
#   -h, --help      this text
#
# Tools: cargo; python3 (JSON, and PyYAML for the rules stage); promtool, prometheus,
# prometheus-node-exporter and curl for the rules/dashboard/live stages. Missing ones are
# installed with apt-get when running as root on Debian; otherwise the checks that need them
# are reported as SKIP (FAIL under --strict).
#
# Output: one line per check (PASS, FAIL or SKIP), then a summary.
# Exit status: 0 no check failed; 1 a check failed; 2 bad arguments.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"

ALL_STAGES=(fmt clippy test doc rules dashboard live)
STRICT=${VERIFY_STRICT:-0}
KEEP=${VERIFY_KEEP:-0}
declare -A WANT=()
for s in "${ALL_STAGES[@]}"; do WANT[$s]=1; done

usage() {
    sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed -e 's/^# \{0,1\}//'
}

select_only() {
    local items i
    for s in "${ALL_STAGES[@]}"; do WANT[$s]=0; done
    IFS=, read -ra items <<<"$1"
    for i in "${items[@]}"; do
        case $i in
            cargo) WANT[fmt]=1 WANT[clippy]=1 WANT[test]=1 WANT[doc]=1 ;;
            promtool) WANT[rules]=1 WANT[dashboard]=1 ;;
            fmt | clippy | test | doc | rules | dashboard | live) WANT[$i]=1 ;;
            *)
                echo "VERIFICATION.sh: unknown stage '$i' (stages: ${ALL_STAGES[*]}, cargo, promtool)" >&2
                exit 2
                ;;
        esac
    done
}

while (($#)); do
    case $1 in
        --strict) STRICT=1 ;;
        --skip-cargo) WANT[fmt]=0 WANT[clippy]=0 WANT[test]=0 WANT[doc]=0 ;;
        --only)
            if (($# < 2)); then
                echo "VERIFICATION.sh: --only needs a list of stages (e.g. --only live)" >&2
                exit 2
            fi
            select_only "$2"
            shift
            ;;
        --only=*) select_only "${1#--only=}" ;;
        --keep) KEEP=1 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            echo "VERIFICATION.sh: unknown argument '$1' (see --help)" >&2
            exit 2
            ;;
    esac
    shift
done
[[ $STRICT == 1 ]] || STRICT=0
[[ $KEEP == 1 ]] || KEEP=0

# ---- results --------------------------------------------------------------------------------

NPASS=0 NFAIL=0 NSKIP=0
FAILED=()
SKIPPED=()

pass() {
    NPASS=$((NPASS + 1))
    printf 'PASS  %s%s\n' "$1" "${2:+: $2}"
}
fail() {
    NFAIL=$((NFAIL + 1))
    FAILED+=("$1")
    printf 'FAIL  %s%s\n' "$1" "${2:+: $2}"
}
skip() {
    if ((STRICT)); then
        fail "$1" "skipped (${2:-no reason given}), a failure under --strict"
    else
        NSKIP=$((NSKIP + 1))
        SKIPPED+=("$1")
        printf 'SKIP  %s%s\n' "$1" "${2:+: $2}"
    fi
}
note() { printf '      %s\n' "$*"; }

# Reads `STATUS<TAB>check<TAB>detail` lines (from the Python helper) into the results.
report_from() {
    local status name detail
    while IFS=$'\t' read -r status name detail; do
        case $status in
            PASS) pass "$name" "$detail" ;;
            FAIL) fail "$name" "$detail" ;;
            SKIP) skip "$name" "$detail" ;;
            NOTE) note "$name${detail:+: $detail}" ;;
            *) note "$status${name:+ $name}${detail:+ $detail}" ;;
        esac
    done <"$1"
}

# ---- work directory and daemons --------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tslab-verify.XXXXXX")
LOGN=0
PIDS=()

# Stops one process we started: TERM, up to 10 s for it to exit, then KILL; always reaped.
stop_pid() {
    local pid=$1 i
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local i
    trap - EXIT INT TERM
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[i]}"
    done
    PIDS=()
    if ((KEEP)); then
        echo "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'echo "VERIFICATION.sh: interrupted" >&2; exit 130' INT
trap 'echo "VERIFICATION.sh: terminated" >&2; exit 143' TERM

# Runs a command as one check; its output goes to a log, shown (last 40 lines) on failure.
check_cmd() {
    local name=$1 log t0 rc
    shift
    LOGN=$((LOGN + 1))
    log="$WORK/check-$LOGN.log"
    t0=$SECONDS
    if "$@" >"$log" 2>&1; then
        pass "$name" "$((SECONDS - t0)) s"
    else
        rc=$?
        fail "$name" "exit status $rc after $((SECONDS - t0)) s; last lines of its output:"
        # Without terminal colour codes (rustfmt colours its diff even when not on a terminal).
        tail -n 40 "$log" | sed -e $'s/\x1b\\[[0-9;]*[A-Za-z]//g' -e $'s/\x1b([A-Z0-9]//g' -e 's/^/      | /'
    fi
}

# Polls a command until it succeeds or the timeout (seconds) passes.
wait_until() {
    local timeout=$1 deadline
    shift
    deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# ---- tools ------------------------------------------------------------------------------------

APT_UPDATED=0
can_apt() { [[ $(id -u) -eq 0 && -f /etc/debian_version ]] && command -v apt-get >/dev/null; }
apt_install() {
    can_apt || return 1
    note "installing with apt-get: $*"
    if ((APT_UPDATED == 0)); then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >>"$WORK/apt.log" 2>&1 || true
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >>"$WORK/apt.log" 2>&1
}

# need_tools CHECK TOOL:PACKAGE...: 0 when every tool is on PATH (installing what is missing
# where possible); otherwise reports CHECK as skipped, naming what is missing, and returns 1.
need_tools() {
    local check=$1 spec missing=() pkgs=()
    shift
    for spec; do
        command -v "${spec%%:*}" >/dev/null || {
            missing+=("${spec%%:*}")
            pkgs+=("${spec#*:}")
        }
    done
    ((${#missing[@]} == 0)) && return 0
    if apt_install "${pkgs[@]}"; then
        missing=()
        for spec; do command -v "${spec%%:*}" >/dev/null || missing+=("${spec%%:*}"); done
        ((${#missing[@]} == 0)) && return 0
        skip "$check" "still missing ${missing[*]} after apt-get install ${pkgs[*]} (not on PATH?)"
    elif can_apt; then
        skip "$check" "missing ${missing[*]} and apt-get install ${pkgs[*]} failed (see apt.log with --keep)"
    else
        skip "$check" "missing ${missing[*]} (install the Debian packages: ${pkgs[*]}; run as root on Debian to have this script install them)"
    fi
    return 1
}

# A python3 that can import yaml (PyYAML), for the rules stage; empty when there is none.
PY_YAML=""
find_py_yaml() {
    local c
    for c in python3 /usr/bin/python3; do
        if command -v "$c" >/dev/null && "$c" -c 'import yaml' 2>/dev/null; then
            PY_YAML=$(command -v "$c")
            return 0
        fi
    done
    return 1
}

# ---- the Python helper (JSON and YAML work, Prometheus API) -----------------------------------

HELPER="$WORK/verify_helper.py"
cat >"$HELPER" <<'PY'
"""Checks for VERIFICATION.sh. Prints one `STATUS<TAB>check<TAB>detail` line per check."""
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.environ["VERIFY_ROOT"]
RULES = os.path.join(ROOT, "alerts", "temporal-slab.rules.yml")
TESTS = os.path.join(ROOT, "alerts", "tests")
DASHBOARD = os.path.join(ROOT, "dashboards", "temporal-slab.json")
SETUP_DOC = os.path.join(ROOT, "docs", "MONITORING_SETUP.md")
METRICS_DOC = os.path.join(ROOT, "docs", "METRICS.md")

# Grafana's variables, as the live check and promtool see them.
RATE_INTERVAL = "15s"
MIN_PANELS = 14
REQUIRED_PANELS = [
    "RSS vs allocator resident vs live bytes", "Fragmentation ratio", "Slabs by state",
    "Slow-path rate by cause", "madvise throughput and failures", "Epoch-close rate",
    "Epoch-close latency", "Close-sweep yield", "Kernel cooperation", "Epoch age by label",
    "Epoch refcount by label", "Epoch RSS by label", "Top size classes", "Size classes",
]
DS_UIDS = {"${datasource}", "$datasource", "-- Grafana --"}
METRIC_RE = re.compile(r"\b((?:temporal_slab|node_textfile|promhttp_metric_handler)_[a-z0-9_]*[a-z0-9])\b")


def out(status, check, detail=""):
    detail = " ".join(str(detail).split())
    print(f"{status}\t{check}\t{detail}", flush=True)


def short(s, n=160):
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 3] + "..."


# ---- rules --------------------------------------------------------------------------------

def github_anchor(heading):
    h = heading.strip().lower()
    h = re.sub(r"[^\w\- ]", "", h)
    return h.replace(" ", "-")


def doc_anchors(path):
    if not os.path.exists(path):
        return set()
    with open(path, encoding="utf-8") as f:
        return {github_anchor(m.group(1)) for m in re.finditer(r"^#+\s+(.*?)\s*$", f.read(), re.M)}


def alert_rules_from_yaml():
    import yaml

    with open(RULES, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def rules_lint():
    import yaml

    rules = alert_rules_from_yaml()
    anchors = doc_anchors(SETUP_DOC)
    problems = []
    for r in rules:
        name = r["alert"]
        sev = (r.get("labels") or {}).get("severity")
        if sev not in ("critical", "warning", "info"):
            problems.append(f"{name}: severity {sev!r} is not critical, warning or info")
        ann = r.get("annotations") or {}
        for key in ("summary", "description", "runbook_url"):
            if not ann.get(key):
                problems.append(f"{name}: no {key} annotation")
        if "for" not in r:
            problems.append(f"{name}: no for: clause")
        url = ann.get("runbook_url", "")
        page, _, frag = url.partition("#")
        if page != "docs/MONITORING_SETUP.md" or frag not in anchors:
            problems.append(f"{name}: runbook_url {url!r} is not a heading of docs/MONITORING_SETUP.md")
    sevs = sorted({(r.get("labels") or {}).get("severity") for r in rules} - {None})
    if set(sevs) != {"critical", "warning", "info"}:
        problems.append(f"severities used: {sevs}; expected critical, warning and info")
    if problems:
        out("FAIL", "alert metadata (severity, summary, description, runbook, for:)", "; ".join(problems))
    else:
        out("PASS", "alert metadata (severity, summary, description, runbook, for:)",
            f"{len(rules)} alerts; severities {', '.join(sevs)}; every runbook_url is a heading of docs/MONITORING_SETUP.md")

    fires, quiet, files = {}, {}, 0
    for name in sorted(os.listdir(TESTS)):
        if not name.endswith((".yml", ".yaml")):
            continue
        files += 1
        with open(os.path.join(TESTS, name), encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        for test in doc.get("tests") or []:
            for case in test.get("alert_rule_test") or []:
                (fires if case.get("exp_alerts") else quiet).setdefault(case["alertname"], 0)
                (fires if case.get("exp_alerts") else quiet)[case["alertname"]] += 1
    names = [r["alert"] for r in rules]
    problems = [f"{n} never fires in a test" for n in names if n not in fires]
    problems += [f"{n} is never tested quiet" for n in names if n not in quiet]
    problems += [f"tests name an unknown alert {n}" for n in sorted(set(fires) | set(quiet)) if n not in names]
    if problems:
        out("FAIL", "alert unit tests: every alert fires and stays quiet", "; ".join(problems))
    else:
        out("PASS", "alert unit tests: every alert fires and stays quiet",
            f"{len(names)} alerts, {sum(fires.values())} firing and {sum(quiet.values())} quiet cases in {files} files")


# ---- dashboard ----------------------------------------------------------------------------

def load_dashboard():
    with open(DASHBOARD, encoding="utf-8") as f:
        return json.load(f)


def panels_of(dash):
    res = []
    for p in dash.get("panels", []):
        if p.get("type") == "row":
            res.extend(p.get("panels") or [])
        else:
            res.append(p)
    return res


def expand(expr, job=".+", instance=".+"):
    for k, v in (("${__rate_interval}", RATE_INTERVAL), ("$__rate_interval", RATE_INTERVAL),
                 ("${__interval}", "5s"), ("$__interval", "5s"), ("${__range}", "1m"), ("$__range", "1m"),
                 ("${job}", job), ("$job", job), ("${instance}", instance), ("$instance", instance)):
        expr = expr.replace(k, v)
    return expr


LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.*?)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$", re.S)


def variable_queries(dash):
    """(name, selector expression, label) of the query variables using label_values()."""
    res = []
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        m = LABEL_VALUES.match(q)
        res.append((v.get("name"), m.group(1) if m else q, m.group(2) if m else None))
    return res


def targets(dash):
    """(panel title, refId, expr) of every panel target."""
    return [(p.get("title", "?"), t.get("refId", "?"), t["expr"])
            for p in panels_of(dash) for t in p.get("targets", []) if t.get("expr")]


def walk_datasources(node, path, bad):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "datasource":
                uid = v.get("uid") if isinstance(v, dict) else v
                if uid not in DS_UIDS and uid is not None:
                    bad.append(f"{path}.datasource = {uid!r}")
            walk_datasources(v, f"{path}.{k}", bad)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            walk_datasources(v, f"{path}[{i}]", bad)


def dashboard_lint():
    try:
        dash = load_dashboard()
    except Exception as e:  # noqa: BLE001 - reported as the check's failure
        out("FAIL", "dashboard JSON parses", e)
        return
    out("PASS", "dashboard JSON parses", os.path.relpath(DASHBOARD, ROOT))

    variables = dash.get("templating", {}).get("list", [])
    ds_vars = [v for v in variables if v.get("type") == "datasource" and v.get("query") == "prometheus"]
    bad = []
    walk_datasources(dash, "dashboard", bad)
    if "__inputs" in dash:
        bad.append("__inputs present (an export with a fixed data source)")
    if not ds_vars:
        out("FAIL", "datasource is a template variable", "no variable of type datasource for prometheus")
    elif bad:
        out("FAIL", "datasource is a template variable", "hard-coded data sources: " + "; ".join(bad[:5]))
    else:
        out("PASS", "datasource is a template variable",
            f"${ds_vars[0]['name']}; no hard-coded datasource uid anywhere")

    panels = panels_of(dash)
    problems = []
    ids = [p.get("id") for p in dash.get("panels", [])]
    ids += [q.get("id") for p in dash.get("panels", []) if p.get("type") == "row" for q in p.get("panels") or []]
    if len(ids) != len(set(ids)):
        problems.append("duplicate panel ids")
    for p in panels:
        tgts = [t for t in p.get("targets", []) if t.get("expr")]
        if not p.get("title") or "gridPos" not in p or not tgts:
            problems.append(f"panel {p.get('id')} ({p.get('title')!r}) lacks a title, gridPos or a query")
        refs = [t.get("refId") for t in p.get("targets", [])]
        if len(refs) != len(set(refs)):
            problems.append(f"panel {p.get('title')!r} repeats a refId")
    titles = [p.get("title", "") for p in panels]
    if len(titles) != len(set(titles)):
        problems.append("duplicate panel titles")
    missing = [r for r in REQUIRED_PANELS if not any(r.lower() in t.lower() for t in titles)]
    if missing:
        problems.append("missing panels: " + ", ".join(missing))
    if len(panels) < MIN_PANELS:
        problems.append(f"{len(panels)} panels, at least {MIN_PANELS} wanted")
    if problems:
        out("FAIL", "dashboard panels", "; ".join(problems))
    else:
        out("PASS", "dashboard panels",
            f"{len(panels)} panels (>= {MIN_PANELS}), {len(targets(dash))} queries, every required panel present")


def dashboard_rules(path):
    dash = load_dashboard()
    rules = []
    for i, (title, ref, expr) in enumerate(targets(dash)):
        rules.append({"record": f"dashboard:query_{i:02d}_{ref}:expr", "expr": expand(expr),
                      "labels": {"panel": title}})
    for name, sel, _ in variable_queries(dash):
        rules.append({"record": f"dashboard:variable_{name}:expr", "expr": expand(sel)})
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"groups": [{"name": "dashboard-expressions", "rules": rules}]}, f, indent=1)
    print(len(rules))


# ---- live -----------------------------------------------------------------------------------

class Prom:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def get(self, path, **params):
        q = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{q}", timeout=10) as r:
            body = json.load(r)
        if body.get("status") != "success":
            raise RuntimeError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr):
        try:
            return self.get("/api/v1/query", query=expr)["result"]
        except urllib.error.HTTPError as e:
            try:
                err = json.load(e)
                raise RuntimeError(f"{err.get('errorType')}: {err.get('error')}") from None
            except ValueError:
                raise RuntimeError(str(e)) from None


def value(sample):
    return float(sample["value"][1])


def rule_alert_names():
    with open(RULES, encoding="utf-8") as f:
        return re.findall(r"^\s*-\s*alert:\s*(\S+)\s*$", f.read(), re.M)


def live(prom_url, min_samples, timeout):
    prom = Prom(prom_url)
    jobs = {"node": "node_exporter textfile", "temporal-slab": "tslab serve"}

    # 1. Enough samples of both jobs for rate() windows.
    t0 = time.time()
    counts = {}
    while time.time() - t0 < timeout:
        try:
            res = prom.query("count_over_time(temporal_slab_snapshot_timestamp_seconds[30s])")
            counts = {s["metric"].get("job"): int(value(s)) for s in res}
        except Exception:  # noqa: BLE001 - Prometheus still starting
            counts = {}
        if all(counts.get(j, 0) >= min_samples for j in jobs):
            break
        time.sleep(0.5)
    got = ", ".join(f"{j}: {counts.get(j, 0)}" for j in jobs)
    if not all(counts.get(j, 0) >= min_samples for j in jobs):
        out("FAIL", f"Prometheus holds >= {min_samples} samples of each job", f"after {timeout} s: {got}")
        return
    out("PASS", f"Prometheus holds >= {min_samples} samples of each job", f"{got} after {time.time() - t0:.1f} s")

    # 2. Targets up, no textfile or gathering error over the whole run, fresh data.
    res = {s["metric"]["job"]: value(s) for s in prom.query("up")}
    ok = all(res.get(j) == 1 for j in jobs)
    out("PASS" if ok else "FAIL", "both scrape jobs are up",
        ", ".join(f"{j} ({d}): up={res.get(j)}" for j, d in jobs.items()))
    for check, expr in (
        ("node_textfile_scrape_error is 0", 'max_over_time(node_textfile_scrape_error{job="node"}[1h])'),
        ('promhttp_metric_handler_errors_total{cause="gathering"} is 0',
         'max_over_time(promhttp_metric_handler_errors_total{job="node",cause="gathering"}[1h])'),
    ):
        res = prom.query(expr)
        ok = len(res) == 1 and value(res[0]) == 0
        out("PASS" if ok else "FAIL", check,
            "highest value during the run: " + (str(value(res[0])) if res else "no series"))
    res = prom.query('time() - node_textfile_mtime_seconds{job="node"}')
    ok = len(res) == 1 and value(res[0]) < 10
    out("PASS" if ok else "FAIL", "textfile collector serves the fresh tslab textfile",
        "; ".join(f"{s['metric'].get('file')}: {value(s):.1f} s old" for s in res) or "no node_textfile_mtime_seconds")
    res = prom.query("time() - temporal_slab_snapshot_timestamp_seconds")
    ok = len(res) == 2 and all(value(s) < 10 for s in res)
    out("PASS" if ok else "FAIL", "snapshots are fresh in both jobs",
        ", ".join(f"{s['metric']['job']}: {value(s):.1f} s old" for s in res))

    # 3. Both paths carry the same families and series; serve adds its exporter health.
    res = prom.query('count by (job, __name__) ({__name__=~"temporal_slab_.+"})')
    fams = {j: {} for j in jobs}
    for s in res:
        fams.setdefault(s["metric"]["job"], {})[s["metric"]["__name__"]] = int(value(s))
    tf, sv = fams["node"], fams["temporal-slab"]
    extra = sorted(set(sv) - set(tf))
    missing = sorted(set(tf) - set(sv))
    # The yield family has a series only for slots whose close sweeps scanned a slab, which can
    # change between the two scrapes; its count may differ.
    sparse = {"temporal_slab_epoch_reclamation_yield_ratio"}
    missing = sorted(set(missing) - sparse)
    differ = sorted(n for n in set(tf) & set(sv) - sparse if tf[n] != sv[n])
    exporter_ok = all(n.startswith("temporal_slab_exporter_") for n in extra)
    ok = tf and not missing and not differ and exporter_ok and sum(tf.values()) >= 1000
    out("PASS" if ok else "FAIL", "tslab serve and the textfile give the same families and series",
        f"textfile: {len(tf)} families / {sum(tf.values())} series; serve: {len(sv)} families / "
        f"{sum(sv.values())} series, plus {', '.join(extra) or 'nothing'}"
        + (f"; missing from serve: {missing}" if missing else "")
        + (f"; series counts differ: {differ}" if differ else ""))
    res = prom.query('temporal_slab_exporter_up{job="temporal-slab"}')
    ok = len(res) == 1 and value(res[0]) == 1
    out("PASS" if ok else "FAIL", "tslab serve reads its target (temporal_slab_exporter_up == 1)",
        f"{len(res)} series" + (f", value {value(res[0])}" if res else ""))

    # 4. Every metric named by the dashboard and the rules exists, and is documented.
    names = set(prom.get("/api/v1/label/__name__/values"))
    with open(DASHBOARD, encoding="utf-8") as f:
        dash_text = f.read()
    with open(RULES, encoding="utf-8") as f:
        rules_text = f.read()
    used = set(METRIC_RE.findall(dash_text)) | set(METRIC_RE.findall(rules_text))
    absent = sorted(used - names)
    out("PASS" if not absent else "FAIL", "every metric in the dashboard and the rules is exported",
        f"{len(used)} metric names, all present in Prometheus" if not absent else f"not exported: {absent}")
    with open(METRICS_DOC, encoding="utf-8") as f:
        metrics_doc = f.read()
    with open(SETUP_DOC, encoding="utf-8") as f:
        setup_doc = f.read()
    undocumented = sorted(
        n for n in used if n.startswith("temporal_slab_")
        and f"`{n}`" not in metrics_doc
        and not (n.startswith("temporal_slab_exporter_") and f"`{n}`" in setup_doc))
    out("PASS" if not undocumented else "FAIL", "every temporal_slab metric used is documented",
        "in docs/METRICS.md (tslab serve's own temporal_slab_exporter_* in docs/MONITORING_SETUP.md)"
        if not undocumented else f"undocumented: {undocumented}")

    # 5. Every dashboard query returns data: all jobs, then each job alone (textfile, serve).
    dash = json.loads(dash_text)
    for name, sel, label in variable_queries(dash):
        try:
            res = prom.query(expand(sel))
            vals = sorted({s["metric"].get(label, "") for s in res}) if label else []
            ok = bool(res) and (not label or all(vals))
            out("PASS" if ok else "FAIL", f"dashboard variable ${name} has values",
                ", ".join(vals) if vals else f"{len(res)} series")
        except Exception as e:  # noqa: BLE001
            out("FAIL", f"dashboard variable ${name} has values", f"{short(sel)}: {e}")
    by_panel = {}
    for title, ref, expr in targets(dash):
        by_panel.setdefault(title, []).append((ref, expr))
    nan_notes = []
    for title, tgts in by_panel.items():
        bad, nseries = [], 0
        for ref, expr in tgts:
            try:
                res = prom.query(expand(expr))
            except Exception as e:  # noqa: BLE001
                bad.append(f"{ref}: {e} in {short(expand(expr))}")
                continue
            if not res:
                bad.append(f"{ref}: no data from {short(expand(expr))}")
            nseries += len(res)
            if res and all(v != v for v in map(value, res)):
                nan_notes.append(f"{title} {ref}")
        out("PASS" if not bad else "FAIL", f"dashboard panel '{title}' returns data",
            f"{len(tgts)} queries, {nseries} series" if not bad else "; ".join(bad))
    for note in nan_notes:
        out("NOTE", f"{note}: the query returns NaN (0/0) with this workload; data, but no value to draw")
    for job, what in jobs.items():
        bad, n = [], 0
        for title, ref, expr in targets(dash):
            if set(METRIC_RE.findall(expr)) and not all(m.startswith("temporal_slab_") for m in METRIC_RE.findall(expr)):
                continue
            # up is per scrape job; tslab serve's own health families exist only in its job.
            if re.search(r"\bup\b", expr) or "temporal_slab_exporter_" in expr:
                continue
            n += 1
            try:
                if not prom.query(expand(expr, job=job)):
                    bad.append(f"{title} {ref}")
            except Exception as e:  # noqa: BLE001
                bad.append(f"{title} {ref}: {e}")
        out("PASS" if not bad else "FAIL", f"dashboard with job={job} ({what}) alone",
            f"{n} temporal_slab queries return data" if not bad else "no data: " + "; ".join(bad))

    # 6. Every alert rule is loaded and evaluates against the live data without error.
    want = rule_alert_names()
    loaded = {}
    deadline = time.time() + 15
    while time.time() < deadline:
        groups = prom.get("/api/v1/rules", type="alert")["groups"]
        loaded = {r["name"]: r for g in groups for r in g["rules"]}
        if all(loaded.get(n, {}).get("health") in ("ok", "err") for n in want):
            break
        time.sleep(0.5)
    problems = [f"{n} not loaded" for n in want if n not in loaded]
    problems += [f"{n}: {r.get('health')} {r.get('lastError', '')}" for n, r in loaded.items() if r.get("health") != "ok"]
    states = {}
    for n, r in loaded.items():
        states.setdefault(r.get("state", "?"), []).append(n)
    out("PASS" if not problems else "FAIL", "every alert rule evaluates on live data",
        f"{len(loaded)} alerting rules healthy; " + "; ".join(f"{k}: {', '.join(sorted(v)) if k != 'inactive' else len(v)}"
                                                           for k, v in sorted(states.items()))
        if not problems else "; ".join(problems))
    errors = []
    for n, r in loaded.items():
        try:
            prom.query(r["query"])
        except Exception as e:  # noqa: BLE001
            errors.append(f"{n}: {e}")
    out("PASS" if not errors else "FAIL", "every alert expression evaluates through /api/v1/query",
        f"{len(loaded)} expressions" if not errors else "; ".join(errors))
    healthy = ["TemporalSlabTextfileStale", "TemporalSlabSnapshotStale", "TemporalSlabTextfileScrapeError",
               "TemporalSlabExporterGatheringErrors", "TemporalSlabServeTargetUnreadable"]
    noisy = [n for n in healthy if loaded.get(n, {}).get("state", "inactive") != "inactive"]
    out("PASS" if not noisy else "FAIL", "exporter alerts stay quiet on a healthy pipeline",
        f"{len(healthy)} alerts inactive" if not noisy else f"not inactive: {noisy}")

    # 7. The leak alerts' joins find the demo's leaked domain once their thresholds are 0.
    for n in ("TemporalSlabEpochLeak", "TemporalSlabEpochMemoryLeak"):
        if n not in loaded:
            continue
        expr = re.sub(r">\s*\d+(\.\d+)?", "> 0", loaded[n]["query"])
        try:
            res = prom.query(expr)
            labels = sorted({s["metric"].get("label", "") for s in res})
            ok = "background-worker-3" in labels and all(
                s["metric"].get("job") in jobs for s in res)
            out("PASS" if ok else "FAIL", f"alert {n} with thresholds at 0 finds the demo's leaked domain",
                f"labels found: {labels}" if res else "no result")
        except Exception as e:  # noqa: BLE001
            out("FAIL", f"alert {n} with thresholds at 0 finds the demo's leaked domain", e)


def main():
    cmd = sys.argv[1]
    if cmd == "rules-lint":
        rules_lint()
    elif cmd == "dashboard-lint":
        dashboard_lint()
    elif cmd == "dashboard-rules":
        dashboard_rules(sys.argv[2])
    elif cmd == "live":
        live(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "free-ports":
        import socket
        socks = []
        for _ in range(int(sys.argv[2])):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        print(" ".join(str(s.getsockname()[1]) for s in socks))
        for s in socks:
            s.close()
    else:
        raise SystemExit(f"unknown helper command {cmd}")


if __name__ == "__main__":
    main()
PY
export VERIFY_ROOT=$ROOT

# Runs a helper command whose output is check lines; a crash is a failure of CHECK.
helper_checks() {
    local check=$1 py=$2 out err
    shift 2
    LOGN=$((LOGN + 1))
    out="$WORK/helper-$LOGN.out"
    err="$WORK/helper-$LOGN.err"
    if "$py" "$HELPER" "$@" >"$out" 2>"$err"; then
        report_from "$out"
    else
        report_from "$out"
        fail "$check" "the Python helper failed:"
        tail -n 20 "$err" | sed 's/^/      | /'
    fi
}

# ---- stages -------------------------------------------------------------------------------------

stage() { printf '\n== %s\n' "$*"; }

stage_cargo() {
    local name=$1
    shift
    if ! command -v cargo >/dev/null; then
        skip "$name" "cargo not found (install the Rust toolchain: https://rustup.rs)"
        return
    fi
    check_cmd "$name" "$@"
}

stage_rules() {
    stage "rules: alerts/"
    need_tools "promtool check rules / test rules" promtool:prometheus || return 0
    check_cmd "promtool check rules alerts/temporal-slab.rules.yml" promtool check rules alerts/temporal-slab.rules.yml
    check_cmd "promtool test rules alerts/tests/*.yml" promtool test rules alerts/tests/*.yml
    if find_py_yaml || { apt_install python3-yaml && find_py_yaml; }; then
        helper_checks "alert rule metadata and test coverage" "$PY_YAML" rules-lint
    else
        skip "alert rule metadata and test coverage" "needs python3 with PyYAML (Debian: python3-yaml; pip: pyyaml)"
    fi
}

stage_dashboard() {
    stage "dashboard: dashboards/temporal-slab.json"
    need_tools "dashboard checks" python3:python3 || return 0
    helper_checks "dashboard checks" python3 dashboard-lint
    need_tools "dashboard expressions parse (promtool check rules)" promtool:prometheus || return 0
    local n
    if n=$(python3 "$HELPER" dashboard-rules "$WORK/dashboard-expressions.rules.json" 2>"$WORK/dash-rules.err"); then
        check_cmd "dashboard expressions parse: $n wrapped as recording rules for promtool check rules" \
            promtool check rules "$WORK/dashboard-expressions.rules.json"
    else
        fail "dashboard expressions parse" "could not extract them: $(tail -n 3 "$WORK/dash-rules.err")"
    fi
}

# Starts a daemon in the background (its own `cmd &` line, so $! is its PID), recording the
# PID for the cleanup trap.
start_daemon() {
    local log=$1
    shift
    "$@" >"$log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# Checks that a daemon started by start_daemon answers and is alive; on failure shows its log.
daemon_up() {
    local name=$1 pid=$2 log=$3 timeout=$4
    shift 4
    if wait_until "$timeout" "$@" && kill -0 "$pid" 2>/dev/null; then
        pass "$name" "pid $pid"
        return 0
    fi
    if kill -0 "$pid" 2>/dev/null; then
        fail "$name" "pid $pid alive but not answering after $timeout s; its log:"
    else
        fail "$name" "pid $pid exited; its log:"
    fi
    tail -n 20 "$log" | sed 's/^/      | /'
    return 1
}

stage_live() {
    stage "live: workload -> tslab -> node_exporter -> Prometheus -> /api/v1/query"
    need_tools "live loopback run" prometheus:prometheus promtool:prometheus \
        prometheus-node-exporter:prometheus-node-exporter curl:curl python3:python3 || return 0

    local bin_dir="${CARGO_TARGET_DIR:-$ROOT/target}/release"
    if command -v cargo >/dev/null; then
        check_cmd "build tslab and tslab-workload (cargo build --release -p stats-dump -p tslab)" \
            cargo build --release -p stats-dump -p tslab
    fi
    local tslab="$bin_dir/tslab" workload="$bin_dir/tslab-workload"
    if [[ ! -x $tslab || ! -x $workload ]]; then
        skip "live loopback run" "no $tslab or $workload (cargo build --release -p stats-dump -p tslab)"
        return 0
    fi

    local t_live=$SECONDS
    local ports ne_port serve_port prom_port
    ports=$(python3 "$HELPER" free-ports 3)
    read -r ne_port serve_port prom_port <<<"$ports"
    note "loopback ports: node_exporter $ne_port, tslab serve $serve_port, Prometheus $prom_port"
    local textdir="$WORK/textfile" textfile="$WORK/textfile/tslab.prom"
    mkdir -p "$textdir"

    # 1. The demo workload: labelled request phases on 4 threads and one leaked domain guard;
    #    RSS read around every close (the kernel cooperation panel).
    TSLAB_RSS_ON_CLOSE=1 "$workload" --leak --threads 4 --seconds 900 >"$WORK/workload.log" 2>&1 &
    local wl_pid=$!
    PIDS+=("$wl_pid")
    daemon_up "demo workload (tslab-workload --leak) is ready" "$wl_pid" "$WORK/workload.log" 20 \
        grep -q '^ready pid=' "$WORK/workload.log" || return 0

    # 2. tslab export --textfile, then refreshed every second (what the systemd timer does).
    check_cmd "tslab export prometheus --pid --textfile" "$tslab" export prometheus --pid "$wl_pid" --textfile "$textfile"
    check_cmd "promtool check metrics on the textfile" sh -c 'promtool check metrics <"$1"' sh "$textfile"
    (
        while kill -0 "$wl_pid" 2>/dev/null; do
            if "$tslab" export prometheus --pid "$wl_pid" --textfile "$textfile" 2>>"$WORK/export-errors.log"; then
                echo ok >>"$WORK/export-ok.log"
            fi
            sleep 1
        done
    ) &
    local refresh_pid=$!
    PIDS+=("$refresh_pid")

    # 3. node_exporter with the textfile collector only, and tslab serve.
    start_daemon "$WORK/node_exporter.log" prometheus-node-exporter \
        --web.listen-address="127.0.0.1:$ne_port" --collector.disable-defaults \
        --collector.textfile --collector.textfile.directory="$textdir"
    local ne_pid=$LAST_PID
    daemon_up "node_exporter (textfile collector only) serves /metrics" "$ne_pid" "$WORK/node_exporter.log" 15 \
        curl -fsS -o /dev/null "http://127.0.0.1:$ne_port/metrics" || return 0
    start_daemon "$WORK/serve.log" "$tslab" serve --pid "$wl_pid" --listen "127.0.0.1:$serve_port"
    local serve_pid=$LAST_PID
    daemon_up "tslab serve serves /metrics" "$serve_pid" "$WORK/serve.log" 15 \
        curl -fsS -o /dev/null "http://127.0.0.1:$serve_port/metrics" || return 0

    curl -fsS "http://127.0.0.1:$ne_port/metrics" >"$WORK/node_exporter.prom"
    if grep -q '^node_textfile_scrape_error 0$' "$WORK/node_exporter.prom" &&
        grep -q '^temporal_slab_build_info{' "$WORK/node_exporter.prom"; then
        pass "node_exporter exports the textfile" "$(grep -c '^temporal_slab_' "$WORK/node_exporter.prom") temporal_slab series, node_textfile_scrape_error 0"
    else
        fail "node_exporter exports the textfile" "$(grep '^node_textfile' "$WORK/node_exporter.prom" | tr '\n' ' ')"
    fi
    curl -fsS "http://127.0.0.1:$serve_port/metrics" >"$WORK/serve.prom"
    check_cmd "promtool check metrics on tslab serve's /metrics" sh -c 'promtool check metrics <"$1"' sh "$WORK/serve.prom"

    # 4. Prometheus scraping both, every second, with the alert rules loaded.
    cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $ROOT/alerts/temporal-slab.rules.yml
scrape_configs:
  - job_name: node
    static_configs: [{ targets: ['127.0.0.1:$ne_port'] }]
  - job_name: temporal-slab
    static_configs: [{ targets: ['127.0.0.1:$serve_port'] }]
EOF
    check_cmd "promtool check config (scrape config with the rules)" promtool check config "$WORK/prometheus.yml"
    start_daemon "$WORK/prometheus.log" prometheus --config.file="$WORK/prometheus.yml" \
        --storage.tsdb.path="$WORK/prometheus-data" --web.listen-address="127.0.0.1:$prom_port" \
        --log.level=warn
    local prom_pid=$LAST_PID
    daemon_up "Prometheus is ready" "$prom_pid" "$WORK/prometheus.log" 30 \
        curl -fsS -o /dev/null "http://127.0.0.1:$prom_port/-/ready" || return 0

    # 5. The checks through the query API.
    helper_checks "live checks" python3 live "http://127.0.0.1:$prom_port" 6 90

    local ok_count err_count pid dead=()
    ok_count=$({ cat "$WORK/export-ok.log" 2>/dev/null || true; } | wc -l)
    err_count=$({ cat "$WORK/export-errors.log" 2>/dev/null || true; } | wc -l)
    if ((ok_count > 0 && err_count == 0)); then
        pass "textfile refreshed every second without error" "$ok_count exports"
    else
        fail "textfile refreshed every second without error" "$ok_count exports, $err_count error lines: $(tail -n 2 "$WORK/export-errors.log" 2>/dev/null)"
    fi
    for pid in "$wl_pid" "$refresh_pid" "$ne_pid" "$serve_pid" "$prom_pid"; do
        kill -0 "$pid" 2>/dev/null || dead+=("$pid")
    done
    if ((${#dead[@]} == 0)); then
        pass "every daemon stayed alive through the run" "workload $wl_pid, refresher $refresh_pid, node_exporter $ne_pid, serve $serve_pid, Prometheus $prom_pid"
    else
        fail "every daemon stayed alive through the run" "exited: ${dead[*]}"
    fi
    note "live stage: $((SECONDS - t_live)) s (after the build)"
}

# ---- main -------------------------------------------------------------------------------------

T0=$SECONDS
printf 'VERIFICATION.sh: stages %s%s\n' \
    "$(for s in "${ALL_STAGES[@]}"; do ((WANT[$s])) && printf '%s ' "$s"; done)" \
    "$( ((STRICT)) && echo '(strict: a skip is a failure)')"

export CARGO_TERM_COLOR=never
if ((WANT[fmt] || WANT[clippy] || WANT[test] || WANT[doc])); then stage "cargo"; fi
((WANT[fmt])) && stage_cargo "cargo fmt --all --check" cargo fmt --all --check
((WANT[clippy])) && stage_cargo "cargo clippy --workspace --all-targets -- -D warnings" \
    cargo clippy --workspace --all-targets -- -D warnings
((WANT[test])) && stage_cargo "cargo test --workspace" cargo test --workspace
((WANT[doc])) && stage_cargo "cargo doc --workspace --no-deps (RUSTDOCFLAGS=-Dwarnings)" \
    env RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps
((WANT[rules])) && stage_rules
((WANT[dashboard])) && stage_dashboard
((WANT[live])) && stage_live

# Stop the daemons now, so the summary is the last thing printed.
cleanup_daemons() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
    PIDS=()
}
cleanup_daemons

printf '\n== summary (%d s)\n' "$((SECONDS - T0))"
printf '%d passed, %d failed, %d skipped\n' "$NPASS" "$NFAIL" "$NSKIP"
for f in "${FAILED[@]}"; do printf '  failed:  %s\n' "$f"; done
for s in "${SKIPPED[@]}"; do printf '  skipped: %s\n' "$s"; done
if ((NFAIL > 0)); then
    exit 1
fi
exit 0
