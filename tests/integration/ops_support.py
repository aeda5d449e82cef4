"""Helpers for test_ops_files.py (the alert rules, the Grafana dashboard and
the deployment files under docker/):

  Scrape(proxy)            one real /metrics scrape: samples, # TYPE and
                           # HELP families, and when it was taken
  sustained(a, b)          promtool input series for a state that lasts:
                           gauges keep b's value, counters keep growing at
                           the rate measured between scrapes a and b
  sequence([(s, steps)])   piecewise series: each scrape's values held for
                           `steps` minutes; None is a failed scrape (up 0,
                           no eosproxy samples)
  promtool_test(...)       runs `promtool test rules` with expectations for
                           every alert of the rules file
  ops_venv()               a venv under the build directory with the PyPI
                           packages the checks use (kubernetes-validate,
                           promql-parser), installed on first use
  promql_metric_names(...) the metric names each PromQL expression selects,
                           parsed by promql-parser in that venv
"""

import json
import os
import re
import shutil
import subprocess
import time

import pytest
import yaml

import conftest
from conftest import parse_prometheus

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
DOCKER = os.path.join(ROOT, "docker")
ALERTS = os.path.join(DOCKER, "prometheus", "alerts.yaml")
DASHBOARD = os.path.join(DOCKER, "grafana", "eosproxy-dashboard.json")

# The series' labels in the promtool tests: what a scrape job named
# "eosproxy" (the one EosproxyDown watches) would add.
TARGET = {"job": "eosproxy", "instance": "orders-0:9644"}
STEP_S = 60          # promtool series interval (1m)
STEPS = 40           # 40 minutes of series
EVAL = "30m"         # sustained states are judged here: every `for` and window is full

# The Python packages the checks run in a venv of their own (pinned).
VENV_PACKAGES = ("kubernetes-validate==1.37.0", "promql-parser==0.12.0")


def build_dir():
    """The build directory of the binaries under test (B in the Makefile):
    EOSPROXY_BIN is $(B)/asan/eosproxy."""
    return os.path.dirname(os.path.dirname(os.path.abspath(conftest.EOSPROXY_BIN)))


def release_bin():
    """$(B)/eosproxy, the optimised build next to the ASan one."""
    return os.path.join(build_dir(), "eosproxy")


def need_tool(name, package):
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} is missing: install Debian's {package} (tests/tools/deps.sh does)")
    return path


# ---------------------------------------------------------------- scrapes

class Scrape:
    """One /metrics scrape of a running eosproxy."""

    def __init__(self, proxy):
        status, body, _ = proxy.http_get("/metrics")
        assert status == 200, f"/metrics answered {status}"
        self.t = time.monotonic()
        self.text = body
        self.samples = parse_prometheus(body)
        self.types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", body, re.M))
        self.helps = set(re.findall(r"^# HELP (\S+) ", body, re.M))

    def value(self, name, **labels):
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def family(self, name):
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[: -len(suffix)]
            if name.endswith(suffix) and self.types.get(base) == "histogram":
                return base
        return name

    def is_counter(self, name):
        return self.types.get(self.family(name)) in ("counter", "histogram")

    def names(self):
        """Every metric name this scrape declares or carries: # HELP and
        # TYPE families, histogram series, and the sample names themselves."""
        out = set(self.helps) | set(self.types) | {k[0] for k in self.samples}
        for fam, typ in self.types.items():
            if typ == "histogram":
                out |= {fam + "_bucket", fam + "_sum", fam + "_count"}
        return out


def _series_name(name, labels):
    lab = dict(TARGET)
    lab.update(dict(labels))
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(lab.items()))
    return f"{name}{{{inner}}}"


def _fmt(v):
    if v is None:
        return "_"
    return format(v, ".12g")


def sustained(a, b):
    """Series for STEPS minutes of the state b was scraped in: gauges hold
    b's values; counters start at a's value and grow at the rate they grew
    between the two scrapes (a counter that only appears once non-zero
    counts as 0 in a)."""
    dt = b.t - a.t
    assert dt > 0, "scrapes out of order"
    series = {}
    for key, vb in b.samples.items():
        name, labels = key
        if b.is_counter(name):
            va = a.samples.get(key, 0.0)
            per_step = max(vb - va, 0.0) / dt * STEP_S
            vals = [va + per_step * i for i in range(STEPS + 1)]
        else:
            vals = [vb] * (STEPS + 1)
        series[_series_name(name, labels)] = vals
    series[_series_name("up", ())] = [1.0] * (STEPS + 1)
    return series


LAG_ALERT = "EosproxyEventLoopLag"
LAG_THRESHOLD_S = 0.1  # its expression: p99 of the loop lag above 100 ms


def loop_lag_p99_above(a, b, seconds=LAG_THRESHOLD_S):
    """Whether the loop-lag observations made between scrapes a and b have
    their 99th percentile above `seconds` (a bucket bound), as
    histogram_quantile computes it from their rates."""
    name = "eosproxy_event_loop_lag_seconds"
    total = b.value(name + "_count") - a.value(name + "_count")
    le = {"le": format(seconds, "g")}
    below = b.value(name + "_bucket", **le) - a.value(name + "_bucket", **le)
    return total > 0 and below < 0.99 * total


def expected(a, b, firing):
    """The alerts a sustained state (scrapes a, b) must fire: `firing`, plus
    EosproxyEventLoopLag when the loop really lagged in that window (the
    machine is shared; a stalled ASan eosproxy is then what the alert is
    for)."""
    out = dict(firing)
    if LAG_ALERT not in out and loop_lag_p99_above(a, b):
        print(f"loop lag p99 above {LAG_THRESHOLD_S}s in this window: expecting {LAG_ALERT} too")
        out[LAG_ALERT] = [{}]
    return out


def sequence(phases):
    """Piecewise series: [(scrape or None, minutes), ...]. A scrape's values
    are held for its minutes (counters flat); None is a target that did not
    answer: up 0 and no eosproxy samples."""
    keys = set()
    for s, _ in phases:
        if s is not None:
            keys |= set(s.samples)
    series = {_series_name(n, lab): [] for n, lab in keys}
    up = []
    for s, steps in phases:
        for _ in range(steps):
            up.append(0.0 if s is None else 1.0)
            for n, lab in keys:
                v = None if s is None else s.samples.get((n, lab))
                series[_series_name(n, lab)].append(v)
    series[_series_name("up", ())] = up
    return series


# ---------------------------------------------------------------- promtool

def alert_rules():
    """[(alertname, rule dict)] of docker/prometheus/alerts.yaml, in order."""
    doc = yaml.safe_load(open(ALERTS))
    return [(r["alert"], r) for g in doc["groups"] for r in g["rules"] if "alert" in r]


def behaviour_rules(directory):
    """A copy of alerts.yaml without annotations: promtool compares
    annotations verbatim, and theirs quote $value. The annotations are
    checked on their own (test_alert_rules_are_documented)."""
    doc = yaml.safe_load(open(ALERTS))
    for g in doc["groups"]:
        for r in g["rules"]:
            r.pop("annotations", None)
    path = os.path.join(str(directory), "alerts-behaviour.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    return path


def promtool_test(directory, name, series, firing, eval_time=EVAL):
    """Runs `promtool test rules` on the alert rules with `series`, expecting
    exactly the alerts in `firing` ({alertname: [extra labels, ...]}) at
    eval_time and no other alert. Fails with promtool's output otherwise."""
    promtool = need_tool("promtool", "prometheus")
    rules = behaviour_rules(directory)
    severity = {n: r["labels"]["severity"] for n, r in alert_rules()}
    unknown = set(firing) - set(severity)
    assert not unknown, f"{name}: expected alerts that alerts.yaml lacks: {unknown}"
    tests = []
    for alert in severity:
        exp = []
        for extra in firing.get(alert, []):
            labels = dict(TARGET)
            labels.update(extra)
            labels["severity"] = severity[alert]
            exp.append({"exp_labels": labels})
        tests.append({"eval_time": eval_time, "alertname": alert, "exp_alerts": exp})
    doc = {
        "rule_files": [rules],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": s, "values": " ".join(_fmt(v) for v in vals)}
                             for s, vals in sorted(series.items())],
            "alert_rule_test": tests,
        }],
    }
    path = os.path.join(str(directory), f"promtool-{name}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    p = subprocess.run([promtool, "test", "rules", path], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, (f"promtool test rules, state '{name}' ({path}): expected "
                               f"{sorted(firing) or 'no alert'} at {eval_time}\n"
                               f"{p.stdout}\n{p.stderr}")
    return path


# ---------------------------------------------------------------- the venv

def ops_venv():
    """<build dir>/ops-venv with VENV_PACKAGES; created and filled from PyPI
    on first use (nothing is installed system-wide). Returns its python."""
    venv = os.path.join(build_dir(), "ops-venv")
    py = os.path.join(venv, "bin", "python")
    stamp = os.path.join(venv, ".packages")
    want = "\n".join(VENV_PACKAGES)
    if os.path.exists(stamp) and open(stamp).read() == want and os.access(py, os.X_OK):
        return py
    shutil.rmtree(venv, ignore_errors=True)
    p = subprocess.run(["/usr/bin/python3", "-m", "venv", venv], capture_output=True,
                       text=True, timeout=300)
    if p.returncode != 0:
        pytest.fail(f"python3 -m venv {venv} failed (Debian's python3-venv, tests/tools/deps.sh):"
                    f"\n{p.stdout}\n{p.stderr}")
    p = subprocess.run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        *VENV_PACKAGES], capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        pytest.fail(f"pip install {' '.join(VENV_PACKAGES)} into {venv} failed:\n"
                    f"{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    with open(stamp, "w") as f:
        f.write(want)
    return py


_NAMES_SCRIPT = r"""
import json, sys
import promql_parser as pp

def walk(node, out):
    if isinstance(node, pp.VectorSelector):
        if node.name:
            out.add(node.name)
        for m in node.matchers.matchers:
            if m.name == "__name__":
                out.add("__name__" + str(m.op) + m.value)
        return
    for attr in ("lhs", "rhs", "expr", "param", "vector_selector"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, (int, float, str)):
            walk(child, out)
    for child in getattr(node, "args", None) or []:
        walk(child, out)

res = []
for expr in json.load(sys.stdin):
    try:
        names = set()
        walk(pp.parse(expr), names)
        res.append({"expr": expr, "names": sorted(names)})
    except Exception as e:
        res.append({"expr": expr, "error": str(e)})
print(json.dumps(res))
"""


def promql_metric_names(exprs):
    """[{"expr", "names"} or {"expr", "error"}] for each PromQL expression,
    parsed by promql-parser (a full PromQL parser) in the ops venv."""
    py = ops_venv()
    p = subprocess.run([py, "-c", _NAMES_SCRIPT], input=json.dumps(list(exprs)),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"promql-parser run failed:\n{p.stderr}"
    return json.loads(p.stdout)


# ---------------------------------------------------------------- the dashboard

GRAFANA_VARS = re.compile(r"\$\{?(\w+)(?::\w+)?\}?")


def dashboard_exprs():
    """[(where, PromQL)] of every query in the dashboard: panel targets
    (rows' nested panels too) and template variable queries, with Grafana's
    variables replaced by what Grafana would put there."""
    dash = json.load(open(DASHBOARD))
    out = []

    def panels(ps):
        for p in ps:
            yield p
            yield from panels(p.get("panels", []))

    for p in panels(dash.get("panels", [])):
        for t in p.get("targets", []):
            if "expr" in t:
                out.append((f"panel '{p.get('title')}' {t.get('refId')}", t["expr"]))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\)\s*", q or "")
        out.append((f"variable '{v.get('name')}'", m.group(1) if m else q))
    return out


def grafana_to_promql(expr):
    expr = re.sub(r"\[\$\{?__\w+\}?\]", "[5m]", expr)
    return GRAFANA_VARS.sub(lambda m: "5m" if m.group(1).startswith("__") else ".*", expr)
