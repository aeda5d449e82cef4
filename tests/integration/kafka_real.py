"""Real Apache Kafka (4.x, KRaft) for eosproxy's integration tests.

The jars come from Maven Central into a git-ignored cache
(tests/kafka/fetch.sh; `make test` runs it through tests/tools/deps.sh), and
the brokers run on Java 17 from those jars, with no Kafka install.

  KafkaCluster(workdir, nodes=1)   one combined broker+controller, or three
                                   of them (three voters, replication 3).
      .start() / .stop()           formats storage, starts every node, waits
                                   until every broker is in Metadata
      .bootstrap                   the PLAINTEXT listeners (what eosproxy and
                                   tests use by default)
      .listener(name)              bootstrap of one listener: PLAINTEXT,
                                   SASL_PLAINTEXT, SSL, SASL_SSL
      .brokers                     the node count (node ids 1..brokers, as
                                   conftest.Proxy expects of a `mock`)
      .kill(node_id) / .restart(node_id)
      .create_topic(name, partitions, replication=None), or .topic(name, n)
                                   as on the mock
      .users / .certs              SASL accounts and the TLS files
      .record_count(topic)         records in a topic, from the broker's
                                   own watermarks (not through eosproxy)
      .read_batches(topic, n)      every batch's producer id, epoch, base
                                   sequence and values, from the broker's
                                   log segments (DumpLogSegments)

  ProxyFactory(cluster, tmp_path)  starts conftest.Proxy (eosproxy) in front
                                   of a cluster; .close() stops and checks
  run_java(cluster, cmd, ...)      tests/java/Harness.java (the Java client)
  ck2_python()                     the venv python with confluent-kafka 2.x

Each node listens on PLAINTEXT (inter-broker), SASL_PLAINTEXT and SASL_SSL
(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), SSL, and a CONTROLLER listener. Its
certificate is tests/tools/mkcerts.sh's server certificate (localhost,
127.0.0.1), read as PEM stores, which Kafka 4 supports, so no keytool step is
needed. SCRAM credentials are written at format time (StorageTool
--add-scram); PLAIN passwords are in the listener's JAAS config. Every JVM is
capped at -Xmx512m and is killed when the process that started it dies
(setpriv --pdeathsig), besides being stopped at the end of the session.

Fixtures (registered by conftest.py's pytest_plugins):

  kafka          the single broker, started once per session
  kproxy_factory eosproxy in front of `kafka`: kproxy_factory(**overrides),
                 stopped and checked (exit 0, no sanitizer report) at teardown
  kproxy         one eosproxy with the default config in front of `kafka`

Tests that need these are marked `real_kafka`; the ones that need the three
broker cluster (test_real_cluster.py) `real_kafka_cluster` too. If Kafka
cannot be fetched or started, those tests fail: they are never skipped.

Run `/usr/bin/python3 kafka_real.py [1|3]` to start a cluster by hand and
print its listeners (Ctrl-C stops it); `make run-kafka` puts eosproxy in
front of one.
"""

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
FETCH = os.path.join(ROOT, "tests", "kafka", "fetch.sh")
JAVA_LOG_CONFIG = os.path.join(ROOT, "tests", "java", "log4j2.properties")
LISTENERS = ("PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
HEAP = os.environ.get("EOSPROXY_KAFKA_HEAP", "512m")
START_TIMEOUT = 180.0  # a 2-core machine shared with other work: generous
STOP_TIMEOUT = 60.0

# Accounts the brokers know, for PLAIN and SCRAM alike. "sidecar" is
# eosproxy's own identity (upstream.sasl); "app" is a direct client.
USERS = ("sidecar", "app")

def _die_with_parent(args):
    """args run under setpriv --pdeathsig (util-linux): the child is killed
    when the process that started it dies, so that no broker outlives a
    killed pytest. (Not a preexec_fn: librdkafka's threads may hold malloc
    locks when a test forks.)"""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *args] if setpriv else list(args)


def fetch_kafka():
    """(libs dir, harness classes dir); runs tests/kafka/fetch.sh, which
    does nothing when the cache is complete. AssertionError when it fails."""
    try:
        p = subprocess.run(["bash", FETCH], capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"tests/kafka/fetch.sh did not finish in 900 s: {e}")
    if p.returncode != 0:
        raise AssertionError(f"tests/kafka/fetch.sh exited {p.returncode}:\n{p.stderr[-4000:]}")
    libs = p.stdout.strip().splitlines()[-1]
    return libs, os.path.join(os.path.dirname(libs), "harness")


def ck2_python():
    """The venv python with a current confluent-kafka (tests/kafka/fetch.sh)."""
    import glob
    fetch_kafka()
    found = sorted(glob.glob(os.path.join(ROOT, "tests", "kafka", ".cache", "venv-confluent-*",
                                          "bin", "python")))
    found = [f for f in found
             if os.path.exists(os.path.join(os.path.dirname(os.path.dirname(f)), ".complete"))]
    if not found:
        raise AssertionError("tests/kafka/fetch.sh made no confluent-kafka venv "
                             "(pip install from PyPI failed; run it to see why)")
    return found[-1]


def _java():
    java = shutil.which("java")
    if not java:
        raise AssertionError("java is not installed (make deps)")
    return java


def _default_free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def _jaas_value(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class KafkaNode:
    def __init__(self, cluster, node_id, ports):
        self.cluster = cluster
        self.node_id = node_id
        self.ports = ports  # {listener name: port}, CONTROLLER included
        self.dir = os.path.join(cluster.workdir, f"node{node_id}")
        self.data_dir = os.path.join(self.dir, "data")
        self.config_path = os.path.join(self.dir, "server.properties")
        self.log_dir = os.path.join(self.dir, "logs")
        self.stdout_path = os.path.join(self.dir, "stdout.log")
        self.proc = None
        self._out = None

    def write_config(self):
        c = self.cluster
        os.makedirs(self.data_dir, exist_ok=True)
        os.makedirs(self.log_dir, exist_ok=True)
        names = (*LISTENERS, "CONTROLLER")
        props = {
            "process.roles": "broker,controller",
            "node.id": self.node_id,
            "controller.quorum.voters": ",".join(
                f"{n.node_id}@127.0.0.1:{n.ports['CONTROLLER']}" for n in c.nodes),
            "controller.listener.names": "CONTROLLER",
            "listeners": ",".join(f"{n}://127.0.0.1:{self.ports[n]}" for n in names),
            "advertised.listeners": ",".join(f"{n}://127.0.0.1:{self.ports[n]}" for n in LISTENERS),
            "listener.security.protocol.map": ",".join(
                f"{n}:{'PLAINTEXT' if n == 'CONTROLLER' else n}" for n in names),
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": self.data_dir,
            "num.partitions": 3,
            "default.replication.factor": c.replication,
            "min.insync.replicas": 1,
            "offsets.topic.replication.factor": c.replication,
            "offsets.topic.num.partitions": 3,
            "transaction.state.log.replication.factor": c.replication,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 3,
            "share.coordinator.state.topic.replication.factor": c.replication,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            "num.network.threads": 2,
            "num.io.threads": 2,
            "num.recovery.threads.per.data.dir": 1,
            "background.threads": 2,
            "log.segment.bytes": 16 * 1024 * 1024,
            # Brokers that come back quickly after a kill (test_real_cluster).
            "controller.quorum.election.timeout.ms": 2000,
            "broker.session.timeout.ms": 6000,
            "broker.heartbeat.interval.ms": 1000,
            "sasl.enabled.mechanisms": ",".join(MECHANISMS),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": c.keystore,
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": c.certs.ca,
            "ssl.client.auth": "none",
        }
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule required " + " ".join(
            f"user_{u}={_jaas_value(pw)}" for u, pw in c.users.items()) + ";"
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        for lst in ("sasl_plaintext", "sasl_ssl"):
            props[f"listener.name.{lst}.plain.sasl.jaas.config"] = plain
            for m in ("scram-sha-256", "scram-sha-512"):
                props[f"listener.name.{lst}.{m}.sasl.jaas.config"] = scram
        with open(self.config_path, "w") as f:
            for k, v in props.items():
                f.write(f"{k}={v}\n")
        with open(os.path.join(self.dir, "log4j2.properties"), "w") as f:
            f.write("status = error\n"
                    "appender.file.type = File\n"
                    "appender.file.name = file\n"
                    f"appender.file.fileName = {os.path.join(self.log_dir, 'server.log')}\n"
                    "appender.file.layout.type = PatternLayout\n"
                    "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
                    "rootLogger.level = info\n"
                    "rootLogger.appenderRef.file.ref = file\n"
                    "logger.req.name = kafka.request.logger\n"
                    "logger.req.level = warn\n")

    def format(self):
        c = self.cluster
        args = [_java(), "-Xmx256m", "-cp", os.path.join(c.libs, "*"),
                f"-Dlog4j2.configurationFile={JAVA_LOG_CONFIG}",
                "kafka.tools.StorageTool", "format", "-t", c.cluster_id, "-c", self.config_path]
        for user, pw in c.users.items():
            for m in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
                args += ["--add-scram", f"{m}=[name={user},password={pw}]"]
        p = subprocess.run(args, capture_output=True, text=True, timeout=180)
        if p.returncode != 0:
            raise AssertionError(f"StorageTool format of node {self.node_id} exited "
                                 f"{p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")

    def start(self):
        assert not self.alive(), f"node {self.node_id} is already running"
        c = self.cluster
        args = [_java(), f"-Xmx{HEAP}", f"-Xms{HEAP}", "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={os.path.join(self.dir, 'log4j2.properties')}",
                f"-Dkafka.logs.dir={self.log_dir}",
                "-cp", os.path.join(c.libs, "*"), "kafka.Kafka", self.config_path]
        self._out = open(self.stdout_path, "a")
        self.proc = subprocess.Popen(_die_with_parent(args), stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=subprocess.STDOUT, cwd=self.dir)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """kill -9: no controlled shutdown."""
        if self.alive():
            self.proc.kill()
            self.proc.wait(30)
        self._close_out()

    def stop(self, timeout=STOP_TIMEOUT):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self._close_out()

    def _close_out(self):
        if self._out and not self._out.closed:
            self._out.close()

    def log_tail(self, n=3000):
        out = []
        for path in (self.stdout_path, os.path.join(self.log_dir, "server.log")):
            try:
                with open(path, errors="replace") as f:
                    out.append(f"--- {path}\n" + f.read()[-n:])
            except OSError:
                pass
        return "\n".join(out)


class KafkaCluster:
    def __init__(self, workdir, nodes=1, certs=None, free_port=None, users=None):
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.libs, self.harness = fetch_kafka()
        self.replication = 3 if nodes >= 3 else 1
        self.cluster_id = self._cluster_id()
        self.certs = certs
        if self.certs is None:
            from security import make_certs
            self.certs = make_certs(os.path.join(self.workdir, "certs"))
        self.keystore = os.path.join(self.workdir, "broker-keystore.pem")
        with open(self.keystore, "w") as f:  # PEM key store: key, then the chain
            f.write(open(self.certs.server_key).read())
            f.write(open(self.certs.server).read())
        os.chmod(self.keystore, 0o600)
        if users is None:
            from security import _SECRETS
            users = {}
            for u in USERS:
                # No ',' '=' ']' or '"' in them: --add-scram's syntax has no escapes.
                pw = f"{u}-pw-{uuid.uuid4().hex[:12]}"
                _SECRETS.add(pw)  # security.assert_no_secret looks for it in logs
                users[u] = pw
        self.users = users
        port = free_port or _default_free_port
        self.nodes = []
        for i in range(1, nodes + 1):
            ports = {n: port() for n in (*LISTENERS, "CONTROLLER")}
            self.nodes.append(KafkaNode(self, i, ports))
        self.started = False

    @staticmethod
    def _cluster_id():
        import base64
        while True:  # StorageTool would take a leading '-' for an option
            cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            if not cid.startswith("-"):
                return cid

    # ---- what conftest.Proxy reads of a `mock`
    @property
    def brokers(self):
        return len(self.nodes)

    @property
    def bootstrap(self):
        return self.listener("PLAINTEXT")

    def listener(self, name):
        return ",".join(f"127.0.0.1:{n.ports[name]}" for n in self.nodes)

    def node(self, node_id):
        return self.nodes[node_id - 1]

    # ---- life cycle
    def start(self, timeout=START_TIMEOUT):
        for n in self.nodes:
            n.write_config()
        for n in self.nodes:
            n.format()
        self.started = True
        for n in self.nodes:
            n.start()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=START_TIMEOUT, brokers=None):
        """Until Metadata from every running node lists `brokers` brokers
        (default: all nodes) and every listener accepts connections."""
        want = brokers if brokers is not None else len(self.nodes)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for n in self.nodes:
                if n.proc is not None and n.proc.poll() is not None:
                    raise AssertionError(f"Kafka node {n.node_id} exited {n.proc.returncode} "
                                         f"during start-up:\n{n.log_tail()}")
            try:
                running = [n for n in self.nodes if n.alive()]
                ok = all(all(_port_open(p) for p in n.ports.values()) for n in running)
                if ok:
                    counts = [len(metadata_brokers(f"127.0.0.1:{n.ports['PLAINTEXT']}"))
                              for n in running]
                    last = counts
                    if counts and all(c >= want for c in counts):
                        return
            except (OSError, ValueError) as e:
                last = e
            time.sleep(0.5)
        raise AssertionError(f"Kafka not ready after {timeout}s (last: {last!r}):\n"
                             + "\n".join(n.log_tail() for n in self.nodes))

    def kill(self, node_id):
        self.node(node_id).kill()

    def restart(self, node_id, timeout=START_TIMEOUT):
        self.node(node_id).start()
        self.wait_ready(timeout)

    def stop(self, timeout=30.0):
        """SIGTERM to every node at once (a controller left alone would wait
        for its quorum), SIGKILL to any still running after timeout."""
        for n in self.nodes:
            if n.alive():
                n.proc.terminate()
        deadline = time.monotonic() + timeout
        for n in self.nodes:
            if n.proc is None:
                continue
            try:
                n.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                n.proc.kill()
                n.proc.wait(30)
            n._close_out()

    def log_tail(self):
        return "\n".join(n.log_tail() for n in self.nodes)

    # ---- direct access (not through eosproxy)
    def admin(self):
        from confluent_kafka.admin import AdminClient
        return AdminClient({"bootstrap.servers": self.bootstrap})

    def create_topic(self, name, partitions=3, replication=None, config=None):
        from confluent_kafka.admin import NewTopic
        rf = replication or self.replication
        admin = self.admin()  # the futures die with their handle: keep it
        fs = admin.create_topics([NewTopic(name, partitions, rf, config=config or {})],
                                 operation_timeout=60, request_timeout=60)
        fs[name].result(90)
        self.wait_topic(name, partitions)
        return name

    def topic(self, name, partitions=3):
        """The mock's way to make a topic (test_security's helpers use it)."""
        return self.create_topic(name, partitions)

    def wait_topic(self, name, partitions, timeout=60):
        """Until every partition of name has a leader that serves it (its
        watermarks can be read): a write sooner may meet NOT_LEADER, which
        an acks=0 producer never hears of."""
        from confluent_kafka import Consumer, KafkaException, TopicPartition
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "eosproxy-it-wait"})
            try:
                md = c.list_topics(name, timeout=10)
                t = md.topics.get(name)
                if t and not t.error and len(t.partitions) == partitions and \
                        all(p.leader >= 0 for p in t.partitions.values()):
                    for p in t.partitions:
                        c.get_watermark_offsets(TopicPartition(name, p), timeout=10)
                    return
            except KafkaException as e:
                last = e
            finally:
                c.close()
            time.sleep(0.3)
        raise AssertionError(f"topic {name} not served after {timeout}s (last: {last!r})")

    def record_count(self, topic):
        """Records in topic (high minus low watermark, summed), asked of the
        brokers directly."""
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "eosproxy-it-watermarks",
                      "enable.auto.commit": False})
        try:
            md = c.list_topics(topic, timeout=30)
            total = 0
            for p in md.topics[topic].partitions:
                lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                total += hi - lo
            return total
        finally:
            c.close()

    def read_batches(self, topic, partitions):
        """[(partition, producer_id, producer_epoch, base_sequence, values)]
        of every record batch in topic, read from the broker's log segment
        files with Kafka's own DumpLogSegments (the broker's view of who
        wrote each batch)."""
        out = []
        for part in range(partitions):
            for n in self.nodes:
                d = os.path.join(n.data_dir, f"{topic}-{part}")
                if not os.path.isdir(d):
                    continue
                segs = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".log"))
                if not segs:
                    continue
                p = subprocess.run(
                    [_java(), "-Xmx256m", "-cp", os.path.join(self.libs, "*"),
                     f"-Dlog4j2.configurationFile={JAVA_LOG_CONFIG}",
                     "org.apache.kafka.tools.DumpLogSegments", "--deep-iteration", "--print-data-log",
                     "--files", ",".join(segs)],
                    capture_output=True, text=True, timeout=180)
                assert p.returncode == 0, f"DumpLogSegments exited {p.returncode}: {p.stderr[-2000:]}"
                out += [(part, *b) for b in _parse_dump(p.stdout)]
                break  # one replica is enough
        return out


def _parse_dump(text):
    """Batches of DumpLogSegments --deep-iteration --print-data-log output:
    [(producer_id, producer_epoch, base_sequence, [values])]."""
    batches = []
    cur = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("baseOffset:"):
            f = _fields(line)
            cur = (int(f["producerId"]), int(f["producerEpoch"]), int(f["baseSequence"]), [])
            batches.append(cur)
        elif line.startswith("| offset:") and cur is not None:
            i = line.find(" payload: ")
            if i >= 0:
                cur[3].append(line[i + len(" payload: "):])
    return batches


def _fields(line):
    out = {}
    toks = line.split()
    for i, t in enumerate(toks):
        if t.endswith(":") and i + 1 < len(toks):
            out[t[:-1]] = toks[i + 1]
    return out


# ---------------------------------------------------------------- raw Metadata

def metadata_brokers(addr, timeout=5.0):
    """[(node_id, host, port)] from a Metadata v4 request (non-flexible, and
    served by every Kafka 4 broker) to addr."""
    host, port = addr.rsplit(":", 1)
    body = struct.pack(">i", 0) + b"\x00"  # no topics; allow_auto_topic_creation false
    payload = struct.pack(">hhi", 3, 4, 1) + struct.pack(">h", 5) + b"ready" + body
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", _recv(s, 4))[0]
        data = _recv(s, size)
    i = 8  # correlation id, throttle time
    n = struct.unpack_from(">i", data, i)[0]
    i += 4
    out = []
    for _ in range(n):
        node = struct.unpack_from(">i", data, i)[0]
        hl = struct.unpack_from(">h", data, i + 4)[0]
        h = data[i + 6:i + 6 + hl].decode()
        i += 6 + hl
        p = struct.unpack_from(">i", data, i)[0]
        i += 4
        rl = struct.unpack_from(">h", data, i)[0]
        i += 2 + max(rl, 0)
        out.append((node, h, p))
    return out


def _recv(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


# ---------------------------------------------------------------- the Java harness

def run_java(cluster, command, *args, props=None, timeout=240):
    """Runs tests/java/Harness.java's COMMAND; returns its JSON output."""
    import json
    cmd = [_java(), "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
           f"-Dlog4j2.configurationFile={JAVA_LOG_CONFIG}",
           "-cp", cluster.harness + os.pathsep + os.path.join(cluster.libs, "*"),
           "Harness", command, *[str(a) for a in args]]
    for k, v in (props or {}).items():
        cmd += ["--prop", f"{k}={v}"]
    p = subprocess.run(_die_with_parent(cmd), capture_output=True, text=True, timeout=timeout)
    lines = p.stdout.strip().splitlines()
    assert p.returncode == 0 and lines, \
        f"Harness {command} exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}"
    out = json.loads(lines[-1])
    out["stderr"] = p.stderr
    return out


# ---------------------------------------------------------------- pytest

def pytest_configure(config):
    config.addinivalue_line("markers", "real_kafka: needs a real Apache Kafka broker "
                            "(tests/kafka; started once per session)")
    config.addinivalue_line("markers", "real_kafka_cluster: needs the real 3-broker "
                            "Kafka cluster (started for test_real_cluster.py only)")


def start_cluster(tmp_path_factory, certs, nodes):
    from conftest import free_port
    workdir = tmp_path_factory.mktemp(f"kafka{nodes}")
    cluster = KafkaCluster(workdir, nodes=nodes, certs=certs, free_port=free_port)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="session")
def kafka(tmp_path_factory, certs):
    """The single real broker (combined broker and controller), once per session."""
    cluster = start_cluster(tmp_path_factory, certs, 1)
    try:
        yield cluster
    finally:
        cluster.stop()


class ProxyFactory:
    """Starts eosproxy (conftest.Proxy) in front of a KafkaCluster, which
    stands where conftest's fixtures put the mock: factory(**overrides).
    close() stops each one and checks it (exit 0 after SIGTERM, no
    sanitizer report); it returns the failures."""

    def __init__(self, cluster, tmp_path, prefix="eosproxy"):
        self.cluster, self.tmp_path, self.prefix = cluster, tmp_path, prefix
        self.started = []

    def __call__(self, **overrides):
        from conftest import EOSPROXY_BIN, Proxy
        if not os.access(EOSPROXY_BIN, os.X_OK):
            pytest.fail(f"EOSPROXY_BIN {EOSPROXY_BIN} is missing (make build/asan/eosproxy)")
        p = Proxy(self.cluster, self.tmp_path, f"{self.prefix}{len(self.started)}", overrides)
        self.started.append(p)  # from here on, close() stops it whatever happens
        p._wait_ready()
        return p

    def close(self):
        from conftest import stop_checked
        return stop_checked(self.started)


@pytest.fixture
def kproxy_factory(kafka, tmp_path):
    """Starts eosproxy in front of `kafka` (its PLAINTEXT listener unless
    upstream.bootstrap is overridden): kproxy_factory(**overrides), as
    conftest's proxy_factory does for the mock."""
    f = ProxyFactory(kafka, tmp_path)
    try:
        yield f
    finally:
        failures = f.close()
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


@pytest.fixture
def kproxy(kproxy_factory):
    return kproxy_factory()


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    nodes = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    import tempfile
    work = tempfile.mkdtemp(prefix="eosproxy-kafka-")
    c = KafkaCluster(work, nodes=nodes)
    try:
        c.start()
        for name in LISTENERS:
            print(f"{name:15} {c.listener(name)}")
        print("users:", ", ".join(c.users), " work dir:", work, flush=True)
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        c.stop()
        shutil.rmtree(work, ignore_errors=True)
