"""Fixtures for eosproxy's integration tests.

Run from this directory with EOSPROXY_BIN and MOCKCLUSTER_BIN set (`make
integration` does that; defaults: ../../build/asan/eosproxy and
../../build/mockcluster).

  mock           a fresh 3-broker librdkafka mock cluster (tests/mockcluster);
                 .bootstrap, .cmd("rtt 1 0 3 0 100") for fault injection
  proxy_factory  starts eosproxy in front of `mock`: proxy_factory(**overrides)
  proxy          one eosproxy with the default test config

  cluster        parametrized: the mock (a fresh one per test) or the real
                 Kafka 4 broker (kafka_real.py's `kafka`, started once per
                 session and shared). One interface for both: .kind ("mock" or
                 "kafka"), .topic(name, partitions) -> name, .bootstrap,
                 .brokers, .node_ids, .ports, .record_count(topic); anything
                 else goes to the backend (.cmd only exists on the mock, so a
                 test that injects faults cannot run on Kafka by mistake).
                 The kafka param is marked `real_kafka`: -m "not real_kafka"
                 leaves it out.
  cluster_proxy_factory, cproxy
                 proxy_factory and proxy in front of `cluster`.

A test runs on both kinds unless it cannot: a mock-only test keeps the
`mock` fixture and is marked mock_only("why"), a Kafka-only one keeps
`kafka` (marked real_kafka) and is marked kafka_only("why"). Where the two
kinds answer differently, the test branches on cluster.kind and says why.

Every process started here is killed at teardown, even when the test failed.
eosproxy itself must exit 0 on SIGTERM, and its log must hold no sanitizer
report; teardown asserts both.

EOSPROXY_TEST_DIRECT=1 points `proxy` straight at the mock (no eosproxy) to
tell a client-side problem from a proxy one; tests that need eosproxy itself
skip then. Never set it in CI: by default every test goes through eosproxy.
"""

import faulthandler
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
import yaml

# Real Apache Kafka fixtures (kafka, kproxy_factory, kproxy): kafka_real.py.
pytest_plugins = ["kafka_real"]

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
EOSPROXY_BIN = os.environ.get("EOSPROXY_BIN", os.path.join(ROOT, "build", "asan", "eosproxy"))
MOCKCLUSTER_BIN = os.environ.get("MOCKCLUSTER_BIN", os.path.join(ROOT, "build", "mockcluster"))
DIRECT = os.environ.get("EOSPROXY_TEST_DIRECT") == "1"
MOCK_BROKERS = 3
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 30.0
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error", "UndefinedBehaviorSanitizer")

# A test still running after this long is hung (the longest take a few
# minutes): its name and every thread's stack go to the real stderr and
# pytest exits with 3, so a run fails where it hung instead of waiting for
# CI's own limit.
HANG_TIMEOUT = float(os.environ.get("EOSPROXY_TEST_HANG_TIMEOUT", "1200"))


@pytest.fixture(autouse=True)
def _hang_guard(request):
    done = threading.Event()

    def watch():
        if done.wait(HANG_TIMEOUT):
            return
        capman = request.config.pluginmanager.getplugin("capturemanager")
        if capman:
            capman.suspend_global_capture(in_=True)
        sys.stderr.write(f"\n{request.node.nodeid}: still running after {HANG_TIMEOUT:.0f} s, "
                         "taken as hung; the stack of every thread:\n")
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.flush()
        os._exit(3)

    threading.Thread(target=watch, daemon=True, name="hang-guard").start()
    yield
    done.set()


# Ports handed out in this session, so that two fixtures never get the same one.
_given_ports = set()


def _can_bind(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_range():
    """The kernel's range for outgoing connections' local ports."""
    try:
        lo, hi = open("/proc/sys/net/ipv4/ip_local_port_range").read().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def _listen_port_candidates():
    """Ports below the ephemeral range: a port handed out here stays free
    until eosproxy binds it, because no outgoing connection (the tests'
    clients make thousands) can take it in between."""
    lo, _ = _ephemeral_range()
    top = max(lo - 1, 12000)
    return 10000, top


def free_port():
    rng = random.Random()
    lo, hi = _listen_port_candidates()
    for _ in range(500):
        port = rng.randint(lo, hi)
        if port not in _given_ports and _can_bind(port):
            _given_ports.add(port)
            return port
    raise RuntimeError("no free port")


def free_port_base(n):
    """A base such that base+1..base+n are free (the mock's node ids are 1..n)."""
    rng = random.Random()
    lo, hi = _listen_port_candidates()
    for _ in range(500):
        base = rng.randint(lo, hi - n - 1)
        ports = range(base + 1, base + n + 1)
        if any(p in _given_ports for p in ports):
            continue
        if all(_can_bind(p) for p in ports):
            _given_ports.update(ports)
            return base
    raise RuntimeError("no free port block")


def _kill(proc, sig=signal.SIGTERM, timeout=10.0):
    if proc.poll() is not None:
        return proc.returncode
    try:
        proc.send_signal(sig)
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(10)


# ---------------------------------------------------------------- mock cluster

class MockCluster:
    def __init__(self, tmp_path, brokers=MOCK_BROKERS, topics=()):
        if not os.access(MOCKCLUSTER_BIN, os.X_OK):
            pytest.fail(f"MOCKCLUSTER_BIN {MOCKCLUSTER_BIN} is missing (make build/mockcluster)")
        self.brokers = brokers
        self.log_path = tmp_path / "mock.log"
        args = [MOCKCLUSTER_BIN, "--brokers", str(brokers)]
        for t in topics:
            args += ["--topic", t]
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, text=True, bufsize=1)
        line = self._readline(20.0)
        if not line.startswith("BOOTSTRAP "):
            raise RuntimeError(f"mockcluster said {line!r}; log: {self.log_path.read_text()}")
        self.bootstrap = line.split(" ", 1)[1].strip()
        self.ports = [int(a.rsplit(":", 1)[1]) for a in self.bootstrap.split(",")]

    def _readline(self, timeout):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise RuntimeError("mockcluster did not answer")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"mockcluster exited: {self.log_path.read_text()}")
        return line.rstrip("\n")

    def cmd(self, line):
        """Runs one mockcluster command ("topic t 4", "rtt 1 0 3 0 100", ...)."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self._readline(20.0)
        if answer != "OK":
            raise RuntimeError(f"mockcluster: {line!r}: {answer}")

    def topic(self, name, partitions=4):
        self.cmd(f"topic {name} {partitions}")
        return name

    def close(self):
        try:
            if self.proc.poll() is None:
                self.proc.stdin.close()
        except OSError:
            pass
        _kill(self.proc)
        self._log.close()


@pytest.fixture
def mock(tmp_path):
    m = MockCluster(tmp_path)
    try:
        yield m
    finally:
        m.close()


# ---------------------------------------------------------------- mock or real Kafka

class Cluster:
    """The mock or the real broker behind one interface (see `cluster`)."""

    def __init__(self, kind, backend):
        self.kind = kind  # "mock" or "kafka"
        self.backend = backend

    def __repr__(self):
        return f"<Cluster {self.kind} {self.bootstrap}>"

    def __getattr__(self, name):  # .cmd (mock), .listener/.certs/.users (kafka), ...
        return getattr(self.backend, name)

    @property
    def bootstrap(self):
        """The cluster's own address (plaintext): not through eosproxy."""
        return self.backend.bootstrap

    @property
    def brokers(self):
        return self.backend.brokers

    @property
    def node_ids(self):
        return list(range(1, self.brokers + 1))

    @property
    def ports(self):
        """Every port the cluster itself listens on."""
        if self.kind == "mock":
            return list(self.backend.ports)
        return [p for n in self.backend.nodes for p in n.ports.values()]

    def topic(self, name, partitions=4):
        """Creates the topic (on Kafka: and waits until every partition is
        served); returns its name."""
        return self.backend.topic(name, partitions)

    def record_count(self, topic):
        """Records in topic, from the cluster's own watermarks (not through eosproxy)."""
        if self.kind == "kafka":
            return self.backend.record_count(topic)
        from security import mock_record_count
        return mock_record_count(self.backend, topic)


CLUSTER_KINDS = ["mock", pytest.param("kafka", marks=pytest.mark.real_kafka)]


@pytest.fixture(params=CLUSTER_KINDS)
def cluster(request, tmp_path):
    """A fresh mock, or the session's real Kafka broker (kafka_real.kafka)."""
    if request.param == "kafka":
        yield Cluster("kafka", request.getfixturevalue("kafka"))
        return
    m = MockCluster(tmp_path)
    try:
        yield Cluster("mock", m)
    finally:
        m.close()


# ---------------------------------------------------------------- eosproxy

def parse_prometheus(text):
    """{(name, ((label, value), ...)): float} from Prometheus text."""
    out = {}
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = line_re.match(line)
        if not m:
            raise AssertionError(f"unparseable metrics line: {line!r}")
        labels = tuple(sorted(label_re.findall(m.group(3) or "")))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


class Metrics(dict):
    def get_value(self, name, **labels):
        """A sample's value, 0 when absent (counters only appear once non-zero)."""
        return self.get((name, tuple(sorted(labels.items()))), 0.0)

    def names(self):
        return {k[0] for k in self}


class Proxy:
    def __init__(self, mock, tmp_path, name, overrides):
        self.mock = mock
        self.port = free_port()
        self.admin_port = free_port()
        self.broker_port_base = free_port_base(mock.brokers)
        self.host = "127.0.0.1"
        self.bootstrap = f"{self.host}:{self.port}"
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        cfg = {
            "service": "eosproxy-it",
            "listen": {
                "host": self.host,
                "port": self.port,
                "advertised_host": self.host,
                "broker_port_base": self.broker_port_base,
            },
            "upstream": {"bootstrap": mock.bootstrap},
            "admin": {"listen": f"127.0.0.1:{self.admin_port}"},
            "log": {"level": "info", "format": "text"},
        }
        for key, val in overrides.items():  # "listen.max_frame_bytes"=..., "topics"=[...]
            node = cfg
            parts = key.split(".")
            for p in parts[:-1]:
                node = node.setdefault(p, {})
            node[parts[-1]] = val
        self.config = cfg
        self.advertised_host = cfg["listen"].get("advertised_host", cfg["listen"]["host"])
        self.config_path = tmp_path / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        self.log_path = tmp_path / f"{name}.log"
        self._log = open(self.log_path, "w")
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = "detect_leaks=1"
        env["UBSAN_OPTIONS"] = "print_stacktrace=1"
        self.proc = subprocess.Popen([EOSPROXY_BIN, "-c", str(self.config_path)],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self.returncode = None

    def broker_addr(self, node_id):
        return f"{self.host}:{self.broker_port_base + node_id}"

    def _wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"eosproxy exited {self.proc.returncode} before ready:\n{self.log}")
            try:
                if self.http_get("/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"eosproxy not ready after {READY_TIMEOUT}s:\n{self.log}")

    def http_get(self, path, timeout=10.0):
        """(status, body text, headers)."""
        try:
            with urllib.request.urlopen(self.admin_url + path, timeout=timeout) as r:
                return r.status, r.read().decode(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace"), dict(e.headers)

    def metrics(self):
        status, body, _ = self.http_get("/metrics")
        assert status == 200, f"/metrics answered {status}"
        return Metrics(parse_prometheus(body))

    @property
    def log(self):
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM and wait; returns the exit code (SIGKILL after timeout -> -9)."""
        if self.returncode is None:
            self.returncode = _kill(self.proc, signal.SIGTERM, timeout)
            self._log.close()
        return self.returncode

    def wait_exit(self, timeout=STOP_TIMEOUT):
        """Waits (no signal) for eosproxy to exit by itself; returns the code."""
        if self.returncode is None:
            try:
                self.returncode = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"eosproxy still running after {timeout}s:\n{self.log[-3000:]}")
            self._log.close()
        return self.returncode

    def check_clean_exit(self):
        code = self.stop()
        log = self.log_path.read_text(errors="replace")
        bad = [m for m in SANITIZER_MARKS if m in log]
        assert not bad, f"eosproxy log has {bad}:\n{log[-6000:]}"
        assert code == 0, f"eosproxy exited {code} after SIGTERM; log tail:\n{log[-4000:]}"


class DirectProxy:
    """EOSPROXY_TEST_DIRECT=1: clients talk to the mock itself."""

    def __init__(self, mock):
        self.mock = mock
        self.bootstrap = mock.bootstrap
        self.host = "127.0.0.1"
        self.advertised_host = "127.0.0.1"
        self.broker_port_base = None
        self.admin_url = None
        self.log = ""

    def broker_addr(self, node_id):
        return self.mock.bootstrap.split(",")[node_id - 1]

    def metrics(self):
        pytest.skip("EOSPROXY_TEST_DIRECT: no eosproxy metrics")

    def http_get(self, path, timeout=10.0):
        pytest.skip("EOSPROXY_TEST_DIRECT: no eosproxy admin endpoint")

    def alive(self):
        return True

    def stop(self, timeout=STOP_TIMEOUT):
        return 0

    def check_clean_exit(self):
        pass


def stop_checked(procs):
    """Stops every eosproxy in procs with check_clean_exit (SIGTERM, exit
    0, no sanitizer report) and kills any still running. Returns the
    failures, for the caller to report once its own teardown is done."""
    failures = []
    for p in procs:
        try:
            p.check_clean_exit()
        except AssertionError as e:
            failures.append(str(e))
        finally:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait(10)
    return failures


def _proxy_factory(upstream, tmp_path):
    """The body of proxy_factory and cluster_proxy_factory: yields
    start(**overrides), stops and checks every eosproxy it started."""
    started = []

    def start(**overrides):
        if DIRECT:
            return DirectProxy(upstream)
        if not os.access(EOSPROXY_BIN, os.X_OK):
            pytest.fail(f"EOSPROXY_BIN {EOSPROXY_BIN} is missing (make build/asan/eosproxy)")
        p = Proxy(upstream, tmp_path, f"eosproxy{len(started)}", overrides)
        started.append(p)  # from here on, teardown stops it whatever happens
        p._wait_ready()
        return p

    failures = []
    try:
        yield start
    finally:
        failures = stop_checked(started)
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


@pytest.fixture
def proxy_factory(mock, tmp_path):
    yield from _proxy_factory(mock, tmp_path)


@pytest.fixture
def proxy(proxy_factory):
    return proxy_factory()


@pytest.fixture
def cluster_proxy_factory(cluster, tmp_path):
    """eosproxy in front of `cluster` (mock or Kafka's PLAINTEXT listener):
    cluster_proxy_factory(**overrides), as proxy_factory."""
    yield from _proxy_factory(cluster, tmp_path)


@pytest.fixture
def cproxy(cluster_proxy_factory):
    return cluster_proxy_factory()


@pytest.fixture
def needs_proxy():
    if DIRECT:
        pytest.skip("needs eosproxy itself (EOSPROXY_TEST_DIRECT=1)")


def pytest_configure(config):
    config.addinivalue_line("markers", "mock_only(reason): runs on the mock only (the reason "
                            "says why: fault injection, a mock quirk...)")
    config.addinivalue_line("markers", "kafka_only(reason): runs on the real broker only "
                            "(the reason says why); implies real_kafka")


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(config, items):
    """A one-kind test says why, and cannot also take `cluster`; a
    kafka_only one is deselected with -m "not real_kafka" like the rest."""
    for item in items:
        for kind in ("mock_only", "kafka_only"):
            mark = item.get_closest_marker(kind)
            if mark is None:
                continue
            if not (mark.args and mark.args[0]):
                raise pytest.UsageError(f"{item.nodeid}: {kind} needs a reason")
            if "cluster" in item.fixturenames:
                raise pytest.UsageError(f"{item.nodeid}: {kind} but uses `cluster`, which "
                                        "runs on both kinds")
        if item.get_closest_marker("kafka_only") and not item.get_closest_marker("real_kafka"):
            item.add_marker(pytest.mark.real_kafka)


# ---------------------------------------------------------------- TLS

@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """Test certificates written once per session by tests/tools/mkcerts.sh:
    a CA, server (CN eosproxy) and server2 (CN eosproxy-rotated) for
    localhost, 127.0.0.1, ::1 and `hostname -I`, a client (CN app) and a
    rogue CA with its own client. See security.Certs for the attributes."""
    from security import make_certs
    return make_certs(tmp_path_factory.mktemp("certs"))
