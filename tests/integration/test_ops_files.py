"""The files for operating eosproxy in a fleet (issue 14, parts 3 and 4),
checked against a real eosproxy and real validators:

* docker/prometheus/alerts.yaml: a real eosproxy is driven into each state
  an on-call engineer cares about (healthy traffic, failed logins and a
  connection flood, Redis killed while a consumer reads a dedup topic, an
  event loop frozen for 400 ms at a time as a CPU-throttled container's is,
  the process stopped and started again, a certificate reload that fails,
  a slow TLS consumer behind a tiny buffer, an upstream that refuses
  connections or whose certificate is not trusted). Its /metrics, scraped
  before and in the state, become promtool input series
  (ops_support.sustained / .sequence) and `promtool test rules` checks
  that exactly the expected alerts fire.
* docker/grafana/eosproxy-dashboard.json and the alert expressions: every
  PromQL expression is parsed (promql-parser, and promtool) and every metric
  it names must be in a real scrape of an eosproxy with dedup, auth and an
  idempotent topic.
* docker/k8s/*.yaml: kubernetes-validate --strict (Kubernetes 1.29 and
  1.37 schemas, no cluster), the ConfigMap's eosproxy.yaml through
  `eosproxy --check`, probes against admin.stall_abort, the Secret keys the
  pods use, and resources against eosproxy's RSS measured here.
* docker/compose.yaml: `docker compose config -q` (or Debian's
  docker-compose 1.29 when the compose plugin is absent), the services'
  wiring, the mounted eosproxy config through `eosproxy --check` and the
  Prometheus config through `promtool check config`.
* docker/Dockerfile: built with deps.sh's Debian packages and the Makefile's
  own target; the runtime stage has every shared library eosproxy links.

Tools (promtool, docker-compose, python3-venv) come from tests/tools/deps.sh;
the PyPI packages go into a venv under the build directory. A missing tool
fails the test. No timing assertions: every rate comes from what the scrapes
measured.
"""

import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition

import conftest
import ops_support as ops
from helpers import Conn, unique, wait_until
from redis_server import redis_server  # noqa: F401 (fixture)
from security import passwd_line, sasl_plain_login, write_users_file

K8S = os.path.join(ops.DOCKER, "k8s")
COMPOSE = os.path.join(ops.DOCKER, "compose.yaml")
DOCKERFILE = os.path.join(ops.DOCKER, "Dockerfile")
DEPS_SH = os.path.join(ops.ROOT, "tests", "tools", "deps.sh")
MAKEFILE = os.path.join(ops.ROOT, "Makefile")

USER = "orders"
MAX_CONNECTIONS = 12
LOAD_RECORDS = 50000  # test_resources_measured

pytestmark = pytest.mark.usefixtures("needs_proxy")


@pytest.fixture(scope="module")
def users(tmp_path_factory):
    """(users file, password) for an auth-enabled eosproxy."""
    password = "ops-" + unique("pw")
    d = tmp_path_factory.mktemp("ops-users")
    path = write_users_file(d / "users", [passwd_line(conftest.EOSPROXY_BIN, USER, password)])
    return path, password


def full_overrides(redis, users_file):
    """dedup (Redis), client auth and an idempotent topic: every metric
    family of eosproxy is in use."""
    return {
        "topics": [
            {"match": "ops-dd-*", "delivery": "at-least-once",
             "dedup": {"event_id": "header:event-id", "ttl": "1h"}},
            {"match": "ops-idem-*", "delivery": "idempotent"},
        ],
        "redis.url": redis.url,
        "redis.timeout": "300ms",
        "redis.block_timeout": "1s",
        "auth.users_file": users_file,
        "listen.max_connections": MAX_CONNECTIONS,
    }


def sasl(password):
    return {"security.protocol": "sasl_plaintext", "sasl.mechanisms": "PLAIN",
            "sasl.username": USER, "sasl.password": password}


def producer(bootstrap, extra=None):
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                     "message.timeout.ms": 30000, **(extra or {})})


def produce(bootstrap, topic, records, extra=None, p=None):
    """records: [(partition, event_id, value)]; waits until all are acked
    (with producer p, or a new one)."""
    errors = []
    if p is None:  # (a Producer is falsy while its queue is empty)
        p = producer(bootstrap, extra)
    for part, eid, val in records:
        p.produce(topic, value=val, partition=part,
                  headers=[("event-id", eid.encode())] if eid else None,
                  on_delivery=lambda err, msg: err and errors.append(err))
    assert p.flush(60) == 0, f"records to {topic} not delivered"
    assert not errors, errors


def consume(consumer, want, timeout=30.0):
    """Polls until `want` records arrived (errors are raised); returns them."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < want:
        assert time.monotonic() < deadline, f"consumed {len(got)} of {want}"
        m = consumer.poll(0.2)
        if m is None:
            continue
        assert not m.error(), m.error()
        got.append(m)
    return got


def assigned_consumer(bootstrap, topic, partitions, extra=None, group=None):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group or unique("ops-g"),
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "fetch.wait.max.ms": 100, **(extra or {})})
    c.assign([TopicPartition(topic, p) for p in range(partitions)])
    return c


def scrape_when(proxy, cond, what, timeout=20.0):
    """The first scrape for which cond(scrape) holds."""
    return wait_until(lambda: (lambda s: s if cond(s) else None)(ops.Scrape(proxy)),
                      timeout=timeout, interval=0.1, what=what)


# ---------------------------------------------------------------- alert rules

def test_alert_rules_are_documented():
    """promtool accepts the rules file (templates included); every alert
    has a severity and summary, description and runbook annotations."""
    promtool = ops.need_tool("promtool", "prometheus")
    p = subprocess.run([promtool, "check", "rules", ops.ALERTS], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    rules = ops.alert_rules()
    assert len(rules) >= 12
    for name, r in rules:
        assert r["labels"].get("severity") in ("critical", "warning", "info"), name
        ann = r.get("annotations", {})
        for key in ("summary", "description", "runbook"):
            assert len(ann.get(key, "").split()) >= 4, f"{name}: annotation {key} missing or empty"
    assert len({n for n, _ in rules}) == len(rules), "duplicate alert names"


def test_alerts_fire_on_real_states(mock, proxy_factory, redis_server, users, tmp_path):  # noqa: F811
    """One eosproxy with dedup, auth and an idempotent topic goes through
    healthy traffic (nothing fires), failed logins and a connection flood,
    Redis killed under a reading consumer, a frozen event loop, and a stop
    and restart; each state's scrapes must fire exactly its alerts (plus
    EosproxyEventLoopLag where the scrapes show the shared machine really
    delayed the loop: ops_support.expected)."""
    users_file, password = users
    overrides = full_overrides(redis_server, users_file)
    proxy = proxy_factory(**overrides)
    login = sasl(password)
    dd = mock.topic(unique("ops-dd"), 2)
    idem = mock.topic(unique("ops-idem"), 2)

    # Healthy: an application's long-lived clients (a producer for each
    # topic, a committing consumer of the dedup topic) connected and logged
    # in, then a round of records through eosproxy between two scrapes.
    producers = {dd: producer(proxy.bootstrap, login),
                 idem: producer(proxy.bootstrap, {**login, "enable.idempotence": False})}
    consumer = assigned_consumer(proxy.bootstrap, dd, 2, login)

    def traffic(round_):
        recs = [(i % 2, f"ev-{round_}-{i}", b"x" * 100) for i in range(50)]
        for topic, p in producers.items():
            produce(None, topic, recs, p=p)
        consume(consumer, 50)
        consumer.commit(asynchronous=False)

    traffic(0)
    h0 = ops.Scrape(proxy)
    traffic(1)
    h1 = ops.Scrape(proxy)
    consumer.close()
    producers.clear()  # a Producer disconnects when it is freed
    assert h1.value("eosproxy_redis_connected") == 1 and h1.value("eosproxy_ready") == 1
    assert h1.value("eosproxy_produce_requests_total", route="upgrade") > 0
    ops.promtool_test(tmp_path, "healthy", ops.sustained(h0, h1), ops.expected(h0, h1, {}))

    # Failed logins (wrong password, raw SASL/PLAIN) and more connections
    # than listen.max_connections.
    wait_until(lambda: ops.Scrape(proxy).value("eosproxy_client_connections") == 0,
               what="the healthy clients' connections closed")
    for _ in range(4):
        with Conn(proxy.bootstrap) as c:
            assert sasl_plain_login(c, USER, "not-the-password")[0] in ("authenticate", "closed")
    flood = []
    try:
        for _ in range(MAX_CONNECTIONS + 3):
            flood.append(socket.create_connection(("127.0.0.1", proxy.port), timeout=10))
        sec = scrape_when(proxy, lambda s: s.value("eosproxy_client_connections_rejected_total") >= 3,
                          "connections rejected over listen.max_connections")
    finally:
        for s in flood:
            s.close()
    assert sec.value("eosproxy_auth_logins_total", mechanism="PLAIN", result="failed") >= 4
    ops.promtool_test(tmp_path, "logins-and-connections", ops.sustained(h1, sec),
                      ops.expected(h1, sec, {"EosproxyLoginFailures": [{"result": "failed"}],
                                             "EosproxyConnectionsRejected": [{}]}))

    # Redis killed while a consumer reads the dedup topic: responses held,
    # then their partitions answered with errors after block_timeout.
    wait_until(lambda: ops.Scrape(proxy).value("eosproxy_client_connections") == 0,
               what="the flood's connections closed")
    produce(mock.bootstrap, dd, [(i % 2, f"ev-outage-{i}", b"y" * 100) for i in range(20)])
    redis_server.kill()
    stop = threading.Event()
    reader_errors = []

    def reader():
        c = assigned_consumer(proxy.bootstrap, dd, 2, login)
        try:
            while not stop.is_set():
                c.poll(0.1)
        except Exception as e:  # noqa: BLE001 - reported below
            reader_errors.append(e)
        finally:
            c.close()

    t = threading.Thread(target=reader)
    t.start()
    try:
        rd = scrape_when(proxy, lambda s: s.value("eosproxy_redis_connected") == 0
                         and s.value("eosproxy_dedup_held_responses") > 0
                         and s.value("eosproxy_dedup_error_partitions_total") > 0,
                         "held responses and error partitions with Redis down", timeout=30)
    finally:
        stop.set()
        t.join(30)
    assert not reader_errors, reader_errors
    ops.promtool_test(tmp_path, "redis-down", ops.sustained(sec, rd),
                      ops.expected(sec, rd, {"EosproxyRedisDown": [{}],
                                             "EosproxyDedupResponsesHeld": [{}],
                                             "EosproxyDedupErrorPartitions": [{}]}))
    redis_server.start()
    scrape_when(proxy, lambda s: s.value("eosproxy_redis_connected") == 1
                and s.value("eosproxy_dedup_held_responses") == 0, "Redis back", timeout=30)

    # The event loop frozen for 400 ms, three times (what CPU throttling of
    # the container does to it).
    l0 = ops.Scrape(proxy)
    for _ in range(3):
        os.kill(proxy.proc.pid, signal.SIGSTOP)
        time.sleep(0.4)
        os.kill(proxy.proc.pid, signal.SIGCONT)
        time.sleep(0.3)
    l1 = ops.Scrape(proxy)
    assert ops.loop_lag_p99_above(l0, l1), "the freezes did not show in the histogram"
    ops.promtool_test(tmp_path, "event-loop-lag", ops.sustained(l0, l1),
                      {"EosproxyEventLoopLag": [{}]})

    # Stopped (no scrape answers), then the same config started again.
    assert proxy.stop() == 0
    with pytest.raises(OSError):
        proxy.http_get("/metrics", timeout=2)
    again = proxy_factory(**overrides)
    new = scrape_when(again, lambda s: s.value("eosproxy_redis_connected") == 1,
                      "the restarted eosproxy connected to Redis")
    assert new.value("eosproxy_event_loop_lag_seconds_count") < \
        l1.value("eosproxy_event_loop_lag_seconds_count")
    ops.promtool_test(tmp_path, "down", ops.sequence([(l1, 10), (None, 10)]),
                      {"EosproxyDown": [{}]}, eval_time="19m")
    ops.promtool_test(tmp_path, "restarted", ops.sequence([(l1, 10), (None, 2), (new, 10)]),
                      {"EosproxyRestarted": [{}]}, eval_time="21m")


def test_alerts_backpressure_and_tls_reload(mock, proxy_factory, certs, tmp_path):
    """A TLS listener with a 1 KiB buffer: a consumer reading 1 KB records
    makes eosproxy pause reads (EosproxyBackpressure); then a certificate
    whose key does not match is refused on SIGHUP (EosproxyTLSReloadFailed)."""
    cert, key = str(tmp_path / "server.pem"), str(tmp_path / "server.key")
    shutil.copyfile(certs.server, cert)
    shutil.copyfile(certs.server_key, key)
    os.chmod(key, 0o600)
    proxy = proxy_factory(**{"listen.tls": {"cert_file": cert, "key_file": key},
                             "listen.buffer_bytes": "1KiB"})
    topic = mock.topic(unique("ops-bp"), 1)
    produce(mock.bootstrap, topic, [(0, None, os.urandom(512).hex().encode()) for _ in range(300)])
    tls = {"security.protocol": "ssl", "ssl.ca.location": certs.ca}

    a = ops.Scrape(proxy)
    c = assigned_consumer(proxy.bootstrap, topic, 1, tls)
    try:
        consume(c, 300)
    finally:
        c.close()
    b = ops.Scrape(proxy)
    assert b.value("eosproxy_backpressure_pauses_total") > a.value("eosproxy_backpressure_pauses_total")
    ops.promtool_test(tmp_path, "backpressure", ops.sustained(a, b),
                      ops.expected(a, b, {"EosproxyBackpressure": [{}]}))

    shutil.copyfile(certs.server2_key, key)  # not server.pem's key
    proxy.proc.send_signal(signal.SIGHUP)
    c_ = scrape_when(proxy, lambda s: s.value("eosproxy_tls_reload_failures_total") >= 1,
                     "the refused reload counted")
    ops.promtool_test(tmp_path, "tls-reload-failed", ops.sequence([(b, 10), (c_, 10)]),
                      {"EosproxyTLSReloadFailed": [{}]}, eval_time="15m")
    assert proxy.alive()


def test_alerts_upstream_unreachable(mock, proxy_factory, certs, tmp_path):
    """eosproxy pointed at a port nobody listens on, and one whose
    upstream.tls.ca_file did not sign the broker's certificate (the broker:
    a second eosproxy with a TLS listener in front of the mock): neither
    gets ready; the first counts connect errors, the second TLS errors."""
    broker = proxy_factory(**{"listen.tls": {"cert_file": certs.server, "key_file": certs.server_key}})
    started = []

    def start(name, overrides):
        p = conftest.Proxy(mock, tmp_path, name, overrides)
        started.append(p)
        return p

    failures = []
    try:
        dead = start("ops-dead", {"upstream.bootstrap": f"127.0.0.1:{conftest.free_port()}"})
        tls = start("ops-tls", {"upstream.bootstrap": broker.bootstrap,
                                "upstream.tls": {"ca_file": certs.rogue_ca}})
        for p in (dead, tls):
            wait_until(lambda: p.alive() and p.http_get("/metrics")[0] == 200,
                       timeout=conftest.READY_TIMEOUT, what=f"{p.config_path.name} admin endpoint")
        a_dead, a_tls = ops.Scrape(dead), ops.Scrape(tls)
        b_dead = scrape_when(dead, lambda s: s.value("eosproxy_upstream_errors_total", kind="connect")
                             >= a_dead.value("eosproxy_upstream_errors_total", kind="connect") + 2,
                             "connect errors")
        b_tls = scrape_when(tls, lambda s: s.value("eosproxy_upstream_errors_total", kind="tls")
                            >= a_tls.value("eosproxy_upstream_errors_total", kind="tls") + 2,
                            "TLS errors")
        ops.promtool_test(tmp_path, "upstream-refused", ops.sustained(a_dead, b_dead),
                          ops.expected(a_dead, b_dead, {
                              "EosproxyNotReady": [{}],
                              "EosproxyUpstreamErrors": [{"kind": "connect"}]}))
        ops.promtool_test(tmp_path, "upstream-tls-refused", ops.sustained(a_tls, b_tls),
                          ops.expected(a_tls, b_tls, {
                              "EosproxyNotReady": [{}],
                              "EosproxyUpstreamLoginFailing": [{"kind": "tls"}]}))
    finally:
        failures += conftest.stop_checked(started)
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


# ---------------------------------------------------------------- metric names

def test_dashboard_and_alerts_name_only_exported_metrics(mock, proxy_factory, redis_server,  # noqa: F811
                                                         users, tmp_path):
    """Every PromQL expression of the dashboard and the alert rules parses,
    and every metric it names is one a real eosproxy (dedup, auth, an
    idempotent topic) declares in /metrics (# HELP / # TYPE, so counters
    that only appear once non-zero count too). Alerts may also use `up`."""
    proxy = proxy_factory(**full_overrides(redis_server, users[0]))
    s = ops.Scrape(proxy)
    exported = s.names()
    assert "eosproxy_dedup_held_responses" in exported and "eosproxy_auth_logins_total" in exported

    alerts = [(f"alert {n}", r["expr"]) for n, r in ops.alert_rules()]
    dash = [(w, ops.grafana_to_promql(e)) for w, e in ops.dashboard_exprs()]
    assert len(dash) >= 40, f"only {len(dash)} dashboard queries found"
    parsed = ops.promql_metric_names([e for _, e in alerts + dash])
    bad = []
    used = set()
    for (where, expr), res in zip(alerts + dash, parsed):
        if "error" in res:
            bad.append(f"{where}: does not parse: {res['error']}\n    {expr}")
            continue
        if not res["names"]:
            bad.append(f"{where}: names no metric\n    {expr}")
        allowed = exported | ({"up"} if where.startswith("alert") else set())
        for n in res["names"]:
            used.add(n)
            if n not in allowed:
                bad.append(f"{where}: {n} is not exported by eosproxy\n    {expr}")
    assert not bad, "\n".join(bad)

    # Prometheus's own parser too: the dashboard's queries as recording rules.
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query:{i}", "expr": e} for i, (_, e) in enumerate(dash)]}]}
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    p = subprocess.run([ops.need_tool("promtool", "prometheus"), "check", "rules", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    families = {s.family(n) for n in exported if n.startswith("eosproxy_")}
    uncovered = sorted(f for f in families if not any(s.family(u) == f for u in used))
    if uncovered:
        print(f"families on no panel or alert: {uncovered}")


def test_dashboard_layout():
    """The dashboard's structure: unique panel ids, panels that do not
    overlap on Grafana's 24-column grid, one refId per query in a panel, the
    Prometheus datasource chosen by a variable, and a panel for each topic
    of issue 14 (throughput and latency by API, produce routes, upgrade,
    dedup, Redis, security, event-loop lag, connections)."""
    dash = json.load(open(ops.DASHBOARD))
    panels = dash["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells = {}
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"'{p['title']}' overlaps '{cells[(x, y)]}'"
                cells[(x, y)] = p["title"]
        if p["type"] != "row":
            refs = [t["refId"] for t in p["targets"]]
            assert refs and len(refs) == len(set(refs)), p["title"]
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    rows = [p["title"] for p in panels if p["type"] == "row"]
    for topic in ("latency by API", "Produce routes", "upgrade", "dedup", "Redis", "Security",
                  "Event loop", "Connections"):
        assert any(topic in r for r in rows), f"no row for {topic}: {rows}"


# ---------------------------------------------------------------- Kubernetes

def k8s_docs():
    out = []
    for path in sorted(glob.glob(os.path.join(K8S, "*.yaml"))):
        for d in yaml.safe_load_all(open(path)):
            if d:
                out.append((os.path.basename(path), d))
    return out


def eosproxy_container(pod_spec):
    """(container, is a native sidecar) of the container named eosproxy."""
    for c in pod_spec.get("initContainers", []):
        if c["name"] == "eosproxy":
            return c, c.get("restartPolicy") == "Always"
    for c in pod_spec.get("containers", []):
        if c["name"] == "eosproxy":
            return c, False
    raise AssertionError("no eosproxy container")


def duration_s(text, default):
    if text is None:
        return default
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", str(text))
    mult = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 0.001}[m.group(2)]
    return int(m.group(1)) * mult


def mebibytes(q):
    m = re.fullmatch(r"(\d+)(Mi|Gi|M|G)", q)
    return int(m.group(1)) * {"Mi": 1, "Gi": 1024, "M": 1e6 / 2**20, "G": 1e9 / 2**20}[m.group(2)]


def check_config(config_text, tmp_path, env, name="eosproxy.yaml"):
    """`eosproxy --check` on a config; file paths it names (`*_file` keys)
    are replaced by files in tmp_path."""
    cfg = yaml.safe_load(config_text)
    made = []

    def relocate(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k.endswith("_file") and isinstance(v, str):
                    local = tmp_path / ("ref-" + os.path.basename(v))
                    local.write_text("placeholder for " + v + "\n")
                    os.chmod(local, 0o600)
                    node[k] = str(local)
                    made.append(v)
                else:
                    relocate(v)
        elif isinstance(node, list):
            for v in node:
                relocate(v)

    relocate(cfg)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    p = subprocess.run([ops.release_bin() if os.access(ops.release_bin(), os.X_OK)
                        else conftest.EOSPROXY_BIN, "--check", "-c", str(path)],
                       capture_output=True, text=True, timeout=30, env={**os.environ, **env})
    assert p.returncode == 0, f"eosproxy --check refused {name}:\n{p.stdout}{p.stderr}"
    return cfg


def kubernetes_validate(files, version):
    kv = os.path.join(os.path.dirname(ops.ops_venv()), "kubernetes-validate")
    return subprocess.run([kv, "--strict", "--quiet", "-k", version, *files],
                          capture_output=True, text=True, timeout=300)


def test_k8s_manifests(tmp_path):
    """The Kubernetes examples validate against the 1.29 and 1.37 schemas
    with unknown fields refused, their eosproxy.yaml passes --check, and the
    pods are wired the way eosproxy needs."""
    files = sorted(glob.glob(os.path.join(K8S, "*.yaml"))) + [os.path.join(ops.DOCKER, "sidecar.yaml")]
    kinds = {d["kind"] for _, d in k8s_docs()}
    assert {"ConfigMap", "Secret", "Deployment", "StatefulSet", "Service"} <= kinds, kinds
    for version in ("1.29.0", "1.37.0"):
        p = kubernetes_validate(files, version)
        assert p.returncode == 0, f"kubernetes-validate -k {version}:\n{p.stdout}{p.stderr}"
    # The validator does refuse what is wrong (a misspelt container field).
    broken = tmp_path / "broken.yaml"
    broken.write_text(open(os.path.join(K8S, "deployment.yaml")).read()
                      .replace("readinessProbe:", "readinessProbes:", 1))
    p = kubernetes_validate([str(broken)], "1.37.0")
    assert p.returncode != 0 and "readinessProbes" in p.stdout + p.stderr, p.stdout + p.stderr

    docs = k8s_docs()
    configmaps = {d["metadata"]["name"]: d for _, d in docs if d["kind"] == "ConfigMap"}
    secrets = {d["metadata"]["name"]: d for _, d in docs if d["kind"] == "Secret"}
    workloads = [d for _, d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    assert {w["kind"] for w in workloads} == {"Deployment", "StatefulSet"}
    specs = []
    for w in workloads:
        what = f"{w['kind']} {w['metadata']['name']}"
        pod = w["spec"]["template"]["spec"]
        c, native = eosproxy_container(pod)
        assert native, f"{what}: eosproxy should be a native sidecar (initContainers, restartPolicy Always)"
        specs.append(c)
        # Its config: the ConfigMap mounted where -c points.
        args = c["args"]
        cfg_path = args[args.index("-c") + 1]
        mount = next(m for m in c["volumeMounts"] if cfg_path.startswith(m["mountPath"].rstrip("/") + "/"))
        vol = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        cm = configmaps[vol["configMap"]["name"]]
        key = os.path.relpath(cfg_path, mount["mountPath"])
        assert key in cm["data"], f"{what}: {cfg_path} is not a key of ConfigMap {cm['metadata']['name']}"
        env = {}
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                sec = secrets[ref["name"]]
                data = {**sec.get("stringData", {}), **sec.get("data", {})}
                assert ref["key"] in data, f"{what}: Secret {ref['name']} has no key {ref['key']}"
                env[e["name"]] = "from-the-secret"
            elif e.get("valueFrom", {}).get("fieldRef"):
                env[e["name"]] = "orders-0"  # what the downward API gives, e.g. the pod name
            else:
                env[e["name"]] = str(e.get("value", ""))
        for var in re.findall(r"\$\{(\w+)\}", cm["data"][key]):
            assert var in env, f"{what}: the config uses ${{{var}}}, the container sets no {var}"
        cfg = check_config(cm["data"][key], tmp_path, env)
        # Admin port: probes and Prometheus reach it from outside the pod.
        host, port = cfg["admin"]["listen"].rsplit(":", 1)
        assert host in ("0.0.0.0", "::", "[::]"), f"{what}: kubelet probes need admin.listen off loopback"
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports["admin"] == int(port)
        stall = duration_s(cfg["admin"].get("stall_abort"), 30)
        live, ready, startup = c["livenessProbe"], c["readinessProbe"], c["startupProbe"]
        assert live["httpGet"]["path"] == "/healthz" and live["httpGet"]["port"] in ("admin", int(port))
        assert ready["httpGet"]["path"] == "/readyz" and startup["httpGet"]["path"] == "/readyz"
        # The kubelet kills after failureThreshold failed probes; the first can
        # fail only timeoutSeconds after the stall began. Leave the watchdog
        # (admin.stall_abort) 10 s to abort with a core dump first.
        earliest_kill = (live["failureThreshold"] - 1) * live["periodSeconds"] + live["timeoutSeconds"]
        assert earliest_kill >= stall + 10, f"{what}: liveness kills after {earliest_kill}s, " \
                                            f"before admin.stall_abort ({stall}s) aborts"
        drain = duration_s(cfg.get("drain_timeout"), 10)
        assert pod["terminationGracePeriodSeconds"] >= drain + 10
        # The application talks to eosproxy's listener on localhost.
        app = pod["containers"][0]
        app_env = {e["name"]: e.get("value") for e in app.get("env", [])}
        assert f"localhost:{cfg['listen']['port']}" in app_env.values(), app_env
        assert cfg["listen"]["host"] in ("127.0.0.1", "localhost")
        res = c["resources"]
        assert {"cpu", "memory"} <= set(res["requests"]) and "memory" in res["limits"]
        # The image built from docker/Dockerfile: this version, its user.
        version = open(os.path.join(ops.ROOT, "VERSION")).read().strip()
        assert c["image"].endswith(":" + version), f"{what}: image {c['image']} is not {version}"
        uid = re.search(r"useradd -r -u (\d+)", open(DOCKERFILE).read()).group(1)
        assert c["securityContext"]["runAsUser"] == int(uid)
    assert specs[0] == specs[1], "the Deployment's and the StatefulSet's eosproxy differ"


# ---------------------------------------------------------------- compose

def compose_validate(tmp_path):
    """`docker compose config -q` when the compose plugin is there, else
    Debian's docker-compose (1.29, validates against the Compose spec
    offline). Neither needs a Docker engine."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True,
                                 timeout=30).returncode == 0:
        cmd = [docker, "compose"]
    else:
        cmd = [ops.need_tool("docker-compose", "docker-compose")]
    p = subprocess.run(cmd + ["-f", COMPOSE, "config", "-q"], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert p.returncode == 0, f"{' '.join(cmd)} config -q:\n{p.stdout}{p.stderr}"
    return cmd


def test_compose_file(tmp_path):
    """docker/compose.yaml: valid for Compose, and wired the way the
    services need (KRaft Kafka, Redis, eosproxy built from the Dockerfile
    with a config that passes --check, a producer and a consumer through
    eosproxy, Prometheus with the alert rules, Grafana with the dashboard)."""
    compose_validate(tmp_path)
    doc = yaml.safe_load(open(COMPOSE))
    sv = doc["services"]
    assert {"kafka", "redis", "eosproxy", "producer", "consumer", "prometheus", "grafana"} <= set(sv)
    base = os.path.dirname(COMPOSE)

    # Every bind mount's source exists.
    for name, s in sv.items():
        for v in s.get("volumes", []):
            src = v.split(":")[0] if isinstance(v, str) else v["source"]
            if src.startswith((".", "/")):
                assert os.path.exists(os.path.join(base, src)), f"{name}: {src} missing"

    kafka = sv["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    kenv = kafka["environment"]
    assert set(kenv["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}, "KRaft, one node"
    node = kenv["KAFKA_NODE_ID"]
    assert str(kenv["KAFKA_CONTROLLER_QUORUM_VOTERS"]).startswith(f"{node}@kafka:")
    advertised = dict(l.split("://") for l in kenv["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert sv["redis"]["image"].startswith("redis:7")

    ep = sv["eosproxy"]
    build = ep["build"]
    assert os.path.normpath(os.path.join(base, build["context"], build["dockerfile"])) == DOCKERFILE
    cmd = ep["command"]
    cfg_target = cmd[cmd.index("-c") + 1]
    src = next(v.split(":")[0] for v in ep["volumes"] if v.split(":")[1] == cfg_target)
    cfg = check_config(open(os.path.join(base, src)).read(), tmp_path, {}, "compose-eosproxy.yaml")
    assert cfg["upstream"]["bootstrap"] == advertised["PLAINTEXT"], "eosproxy -> Kafka's advertised listener"
    assert cfg["redis"]["url"].startswith("redis://redis:")
    assert cfg["listen"]["advertised_host"] == "eosproxy"
    assert any(t.get("dedup") for t in cfg["topics"])
    admin_port = int(cfg["admin"]["listen"].rsplit(":", 1)[1])
    assert any(str(p).endswith(f":{admin_port}") for p in ep["ports"])
    for dep in ("kafka", "redis"):
        assert ep["depends_on"][dep]["condition"] == "service_healthy"
    bootstrap = f"eosproxy:{cfg['listen']['port']}"
    for client in ("producer", "consumer"):
        text = json.dumps(sv[client])
        assert bootstrap in text, f"{client} does not go through eosproxy"
        assert "kcat" in text

    # Prometheus: its config (with the alert rules it loads) passes promtool.
    prom = sv["prometheus"]
    prom_cfg = next(v.split(":")[0] for v in prom["volumes"] if v.endswith("prometheus.yml:ro"))
    p = subprocess.run([ops.need_tool("promtool", "prometheus"), "check", "config",
                        os.path.join(base, prom_cfg)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "alerts.yaml" in p.stdout, "prometheus.yml does not load the alert rules"
    scrape = yaml.safe_load(open(os.path.join(base, prom_cfg)))["scrape_configs"]
    job = next(j for j in scrape if j["job_name"] == "eosproxy")
    assert f"eosproxy:{admin_port}" in job["static_configs"][0]["targets"]
    assert any("eosproxy-dashboard.json" in str(v) for v in sv["grafana"]["volumes"])
    for f in glob.glob(os.path.join(base, "grafana", "provisioning", "*", "*.yaml")):
        assert yaml.safe_load(open(f))["apiVersion"] == 1, f


def test_prometheus_kubernetes_scrape_config(tmp_path):
    """docker/prometheus/prometheus-kubernetes.yml passes promtool check
    config. Debian's Prometheus is built without Kubernetes discovery, so
    its kubernetes_sd_configs block is swapped for a static target first;
    the relabelling (keep the eosproxy container's admin port) is checked
    as written, against the ports the manifests declare."""
    src = os.path.join(ops.DOCKER, "prometheus", "prometheus-kubernetes.yml")
    cfg = yaml.safe_load(open(src))
    job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "eosproxy")
    assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
    job["static_configs"] = [{"targets": ["127.0.0.1:9644"]}]
    keep = next(r for r in job["relabel_configs"] if r.get("action") == "keep")
    for _, d in k8s_docs():
        if d["kind"] in ("Deployment", "StatefulSet"):
            c, _ = eosproxy_container(d["spec"]["template"]["spec"])
            names = ";".join([c["name"], next(p["name"] for p in c["ports"] if p["containerPort"] == 9644)])
            assert re.fullmatch(keep["regex"], names), f"{d['kind']}: {names} not kept"
    shutil.copyfile(ops.ALERTS, tmp_path / "alerts.yaml")
    path = tmp_path / "prometheus-kubernetes.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    p = subprocess.run([ops.need_tool("promtool", "prometheus"), "check", "config", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr


# ---------------------------------------------------------------- Dockerfile

def deps_apt_packages():
    text = open(DEPS_SH).read()
    m = re.search(r'^APT_PKGS="([^"]*)"', text, re.M)
    return set(m.group(1).split())


def dockerfile_stages():
    """{stage name: [Debian packages its apt-get install names]}, plus the
    RUN lines of each stage."""
    text = open(DOCKERFILE).read().replace("\\\n", " ")
    stages, runs, name = {}, {}, None
    for line in text.splitlines():
        m = re.match(r"\s*FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            name = m.group(2) or m.group(1)
            stages[name], runs[name] = [], []
            continue
        if re.match(r"\s*RUN\s", line):
            runs[name].append(line)
            for cmd in line.split("&&"):
                m = re.search(r"apt-get\s+install\s+(.*)", cmd)
                if m:
                    stages[name] += [w for w in m.group(1).split() if not w.startswith("-")]
    return stages, runs


def dpkg_owners(paths):
    """{path: the Debian package that installed it}, in one `dpkg -S` (the
    link itself first: a -dev package owns libX.so, the runtime package
    what it points to; /lib and /usr/lib both tried)."""
    def candidates(path):
        out = [os.path.normpath(path), os.path.realpath(path)]
        return out + [c[4:] if c.startswith("/usr/") else "/usr" + c for c in out]

    every = sorted({c for p in paths for c in candidates(p)})
    out = subprocess.run(["dpkg", "-S", *every], capture_output=True, text=True).stdout
    owner = {}
    for line in out.splitlines():
        pkgs, path = line.split(": ", 1)
        owner[path.strip()] = pkgs.split(",")[0].split(":")[0].strip()
    res = {}
    for p in paths:
        found = [owner[c] for c in candidates(p) if c in owner]
        assert found, f"no Debian package owns {p}"
        res[p] = found[0]
    return res


_DPKG_DEPENDS = {}


def closure(packages):
    """The packages plus everything they depend on (first alternative of
    each dependency; the versions installed here, Debian 12 like the image)."""
    if not _DPKG_DEPENDS:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Pre-Depends}, ${Depends}\n"],
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            pkg, deps = line.split("\t", 1)
            firsts = [d.split("|")[0].strip() for d in deps.split(",")]
            _DPKG_DEPENDS[pkg] = [re.split(r"[\s(:]", f)[0] for f in firsts if f]
    seen, todo = set(), list(packages)
    while todo:
        pkg = todo.pop()
        if pkg not in seen:
            seen.add(pkg)
            todo += _DPKG_DEPENDS.get(pkg, [])
    return seen


def test_dockerfile_builds_like_ci(tmp_path):
    """The image's build stage installs only Debian packages that
    tests/tools/deps.sh installs for CI, and enough of them (every
    pkg-config module and -l library of the Makefile); it builds with the
    Makefile's own target; the runtime stage has the package of every
    shared library the binary links."""
    stages, runs = dockerfile_stages()
    build, runtime = stages["build"], stages[list(stages)[-1]]
    assert build and runtime
    deps = deps_apt_packages()
    assert set(build) <= deps, f"Dockerfile builds with packages CI does not have: {set(build) - deps}"

    make = open(MAKEFILE).read()
    assert re.search(r"^B\s*\?=\s*build$", make, re.M)
    assert re.search(r"^all:\s*\$\(B\)/eosproxy$", make, re.M)
    assert re.search(r"^DEPS_STAMP\s*:=\s*\$\(B\)/\.deps-ok$", make, re.M)
    build_runs = " ".join(runs["build"])
    assert re.search(r"\bmake build/eosproxy\b", build_runs), "the image builds build/eosproxy"
    assert "touch build/.deps-ok" in build_runs, "deps.sh (apt, npm) is skipped through its stamp"
    assert "COPY --from=build /src/build/eosproxy" in open(DOCKERFILE).read()
    b = tmp_path / "b"
    p = subprocess.run(["make", "-n", f"B={b}", f"{b}/eosproxy"], cwd=ops.ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and f"-o {b}/eosproxy" in p.stdout, p.stdout[-2000:] + p.stderr

    # Every library the Makefile builds against comes from the build stage's packages.
    have = closure(build)
    mods = re.search(r"^PKGS\s*:=\s*(.*)$", make, re.M).group(1).split()
    files = {}
    for mod in mods:
        pc = subprocess.run(["pkg-config", "--variable=pcfiledir", mod], capture_output=True,
                            text=True).stdout.strip()
        files[f"pkg-config {mod}"] = os.path.join(pc, mod + ".pc")
    libs = re.findall(r"(?<!\S)-l(\w+)", re.search(r"^LIBS\s*=.*$", make, re.M).group(0))
    assert {"z", "snappy", "lz4", "zstd"} <= set(libs), libs
    for lib in libs:
        found = subprocess.run(["cc", f"-print-file-name=lib{lib}.so"], capture_output=True,
                               text=True).stdout.strip()
        assert os.path.isabs(found), f"lib{lib}.so not found"
        files[f"-l{lib}"] = found
    owners = dpkg_owners(list(files.values()))
    lacking = [f"{what} ({owners[f]})" for what, f in files.items() if owners[f] not in have]
    assert not lacking, f"the build stage lacks the packages of {lacking}"

    # Every shared library of the binary is in the runtime image.
    binary = ops.release_bin()
    assert os.access(binary, os.X_OK), f"{binary} missing (make B=... {binary})"
    required = set()
    q = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Priority} ${Essential}\n"],
                       capture_output=True, text=True).stdout
    for line in q.splitlines():
        pkg, prio, ess = (line.split() + ["", ""])[:3]
        if prio == "required" or ess == "yes":
            required.add(pkg)
    image = closure(set(runtime) | required | {"apt"})
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    libs = re.findall(r"=>\s+(/\S+)", ldd)
    assert len(libs) >= 10, ldd
    owners = dpkg_owners(libs)
    missing = [f"{os.path.basename(lib)} ({owners[lib]})" for lib in libs if owners[lib] not in image]
    assert not missing, f"the runtime stage lacks {missing}"


# ---------------------------------------------------------------- resources

def proc_cpu_s(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kib(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def test_resources_measured(mock, proxy_factory, redis_server, monkeypatch, tmp_path):  # noqa: F811
    """The optimised eosproxy under a small load (50,000 records of 200 B
    produced through an idempotent+dedup topic and read back by a committing
    consumer): its CPU and peak RSS, printed and written to the build
    directory; the pods' memory request covers the peak, the limit leaves
    room for held Fetch responses and buffers."""
    binary, out = ops.release_bin(), os.path.join(ops.build_dir(), "ops-resources.json")
    assert os.access(binary, os.X_OK), f"{binary} missing (make B=... {binary})"
    monkeypatch.setattr(conftest, "EOSPROXY_BIN", binary)
    proxy = proxy_factory(**{"topics": [{"match": "ops-load-*", "delivery": "idempotent",
                                         "dedup": {"event_id": "header:event-id", "ttl": "1h"}}],
                             "redis.url": redis_server.url})
    pid = proxy.proc.pid
    topic = mock.topic(unique("ops-load"), 4)
    n = LOAD_RECORDS
    # One in ten records repeats the previous eventId (dropped by dedup).
    records = [(i % 4, f"load-{i - 1 if i and i % 10 == 0 else i}", b"z" * 200) for i in range(n)]
    unique_ids = len({eid for _, eid, _ in records})
    idle_rss = proc_status_kib(pid, "VmRSS")
    cpu0, t0 = proc_cpu_s(pid), time.monotonic()
    produce(proxy.bootstrap, topic, records, {"enable.idempotence": False})
    c = assigned_consumer(proxy.bootstrap, topic, 4)
    try:
        got = consume(c, unique_ids, timeout=120)
        c.commit(asynchronous=False)
    finally:
        c.close()
    cpu1, t1 = proc_cpu_s(pid), time.monotonic()
    m = {
        "records_produced": n, "records_consumed": len(got), "wall_s": round(t1 - t0, 2),
        "cpu_s": round(cpu1 - cpu0, 2), "cores_busy": round((cpu1 - cpu0) / (t1 - t0), 3),
        "cpu_ms_per_10k_records": round((cpu1 - cpu0) * 1000 / (n / 10000), 1),
        "rss_idle_mib": round(idle_rss / 1024, 1),
        "rss_mib": round(proc_status_kib(pid, "VmRSS") / 1024, 1),
        "rss_peak_mib": round(proc_status_kib(pid, "VmHWM") / 1024, 1),
    }
    with open(out, "w") as f:
        json.dump(m, f, indent=1)
    print(f"eosproxy under load: {m} (also in {out})")

    for _, d in k8s_docs():
        if d["kind"] not in ("Deployment", "StatefulSet"):
            continue
        res = eosproxy_container(d["spec"]["template"]["spec"])[0]["resources"]
        req, lim = mebibytes(res["requests"]["memory"]), mebibytes(res["limits"]["memory"])
        assert req >= m["rss_peak_mib"], f"{d['kind']}: memory request {req} MiB < measured peak"
        assert lim >= 4 * m["rss_peak_mib"], f"{d['kind']}: memory limit {lim} MiB leaves no headroom"
