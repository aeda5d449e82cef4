"""Client authentication, TLS and topic ACLs (issue 5), as clients see them.

eosproxy terminates SASL for its clients (auth.users_file; PLAIN,
SCRAM-SHA-256, SCRAM-SHA-512), speaks TLS to them (listen.tls, optionally
mutual), logs into the brokers with TLS and SASL (upstream.tls,
upstream.sasl) and enforces per-user topic ACLs (auth.acls). The tests check
what a user sees: records in the topic (read from the cluster itself, never
through eosproxy), what a consumer got, the error a client reports. Clients:
kcat and confluent-kafka (librdkafka 2.0.2), kafka-python 2.0.2 (SaslHandshake
v0, then SASL tokens without Kafka framing) and kafkajs 2.2.4
(tests/node/sasl_client.js). Raw frames (security.py) pin down the protocol.

The client side runs on the mock and on the real Kafka broker (`cluster`).
The upstream side runs on the mock only, through a chained eosproxy that
stands in for a secured broker (see UPSTREAM_CHAIN); eosproxy logging into
Kafka's own SASL and TLS listeners is test_real_security.py.

Every password used here is checked absent from every log of the test
(autouse fixture), and eosproxy runs at log level debug for that.
"""

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import warnings

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition
from kafka import errors as kerrors

import conftest
from helpers import (Conn, api_versions_request, kcat, kcat_consume, kcat_produce, kstr, request,
                     metadata_request, parse_api_versions, parse_metadata, produce_request,
                     record_batch, unique, wait_until)
from security import (API_SASL_AUTHENTICATE, API_SASL_HANDSHAKE, MECHANISMS,
                      SASL_AUTHENTICATION_FAILED, UNSUPPORTED_SASL_MECHANISM, Login, TlsConn,
                      assert_no_secret, client_tls_context, mock_record_count, new_secret,
                      non_loopback_ipv4, parse_sasl_handshake, passwd_line,
                      sasl_handshake_request, sasl_plain_login, sasl_scram_login, tls_refused,
                      write_users_file)

pytestmark = [pytest.mark.usefixtures("needs_proxy"),
              # kafka-python 2.0.2's own TLS set-up, not ours
              pytest.mark.filterwarnings("ignore:ssl.PROTOCOL_TLS is deprecated")]

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "node")
CLIENTS = ("kcat", "confluent", "kafka-python", "kafkajs")
APP = "app.svc@prod"  # the round trips' user: '.', '@' are valid in user names
USERS = (APP, "alice", "bob", "carol", "sidecar")
UPSTREAM_PW_ENV = "EOSPROXY_IT_UPSTREAM_PASSWORD"


# ---------------------------------------------------------------- fixtures

class Accounts:
    """The users file every auth-enabled eosproxy here loads, and the
    passwords behind it (fresh for each session)."""

    def __init__(self, directory):
        self.passwords = {u: new_secret(u) for u in USERS}
        lines = [passwd_line(conftest.EOSPROXY_BIN, u, pw) for u, pw in self.passwords.items()]
        self.file = write_users_file(os.path.join(str(directory), "users"), lines)

    def login(self, user, mechanism="PLAIN", protocol="SASL_PLAINTEXT", certs=None, password=None):
        return Login(protocol=protocol, mechanism=mechanism, user=user,
                     password=self.passwords.get(user) if password is None else password,
                     ca=certs.ca if certs else None)


@pytest.fixture(scope="module")
def accounts(tmp_path_factory):
    if conftest.DIRECT:
        pytest.skip("needs eosproxy itself (EOSPROXY_TEST_DIRECT=1)")
    return Accounts(tmp_path_factory.mktemp("users"))


@pytest.fixture(autouse=True)
def no_secret_in_logs(tmp_path):
    """After the test (and after every process it started has stopped):
    no password of the session in any log it wrote."""
    yield
    for f in sorted(tmp_path.glob("*.log")):
        assert_no_secret(f.read_text(errors="replace"), f.name)


def tls_listen(certs, client_ca=False, cert=None, key=None):
    tls = {"cert_file": cert or certs.server, "key_file": key or certs.server_key}
    if client_ca:
        tls["client_ca_file"] = certs.ca
    return {"listen.tls": tls}


def start_auth_proxy(proxy_factory, accounts, **overrides):
    """eosproxy with client authentication from the session's users file."""
    return proxy_factory(**{"auth.users_file": accounts.file, "log.level": "debug", **overrides})


class Unready:
    """Starts eosproxy like proxy_factory but without waiting for /readyz
    (it never gets ready when it cannot log into its upstream); stopped and
    checked (exit 0, no sanitizer report) at teardown all the same."""

    def __init__(self, mock, tmp_path):
        self.mock, self.tmp_path, self.started = mock, tmp_path, []

    def start(self, **overrides):
        p = conftest.Proxy(self.mock, self.tmp_path, f"unready{len(self.started)}", overrides)
        self.started.append(p)

        def admin_up():
            if not p.alive():
                raise AssertionError(f"eosproxy exited {p.proc.returncode}:\n{p.log[-3000:]}")
            try:
                return p.http_get("/metrics")[0] == 200
            except OSError:
                return False
        deadline = time.monotonic() + conftest.READY_TIMEOUT
        while not admin_up():
            assert time.monotonic() < deadline, f"no admin endpoint:\n{p.log[-3000:]}"
            time.sleep(0.1)
        return p


@pytest.fixture
def unready(mock, tmp_path):
    u = Unready(mock, tmp_path)
    failures = []
    try:
        yield u
    finally:
        failures += conftest.stop_checked(u.started)
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


# ---------------------------------------------------------------- clients

def run_kafkajs(spec, timeout=120):
    """tests/node/sasl_client.js with spec (a dict) on stdin; its JSON answer."""
    node = shutil.which("node") or shutil.which("nodejs")
    if not node:
        pytest.fail("node is not installed (make deps)")
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "kafkajs")):
        pytest.fail("kafkajs is not installed in tests/node (make deps)")
    p = subprocess.run([node, "sasl_client.js"], cwd=NODE_DIR, input=json.dumps(spec),
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"sasl_client.js exited {p.returncode}:\n{p.stderr[-4000:]}"
    return json.loads(p.stdout.strip().splitlines()[-1])


def kafkajs_error_names(err):
    names = []
    while err:
        names.append(err["name"])
        err = err.get("cause")
    return names


def confluent_produce(bootstrap, login, records, timeout=30, stop_on_auth_error=False):
    """Produces records [(topic, value)] with one Producer. Returns
    (delivered [(topic, value)], failed {topic: [KafkaError]}, client
    errors [KafkaError] from error_cb). With stop_on_auth_error it gives
    up as soon as the client reports an authentication failure."""
    delivered, failed, client_errors = [], {}, []

    def on_delivery(err, msg):
        if err:
            failed.setdefault(msg.topic(), []).append(err)
        else:
            delivered.append((msg.topic(), msg.value().decode()))

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                  "message.timeout.ms": timeout * 1000, "error_cb": client_errors.append,
                  **login.rdkafka()})
    for topic, value in records:
        p.produce(topic, value=value.encode(), on_delivery=on_delivery)
    deadline = time.monotonic() + timeout + 10
    while len(delivered) + sum(map(len, failed.values())) < len(records):
        if time.monotonic() > deadline:
            break
        if stop_on_auth_error and any(e.code() == KafkaError._AUTHENTICATION
                                      for e in client_errors):
            break
        p.poll(0.2)
    p.purge()
    p.flush(5)
    return delivered, failed, client_errors


def confluent_consume(bootstrap, login, topics, n, timeout=30, group=None, want_error=None,
                      linger=0.0):
    """Reads topics from the beginning: with group, subscribed in that
    consumer group; without, assigned every partition. Returns (records
    [(topic, value)], errors [KafkaError]) once n records (and, with
    want_error, an error of that code) arrived and linger more seconds
    passed (to catch what should not come), or at the timeout. Errors
    (consumer errors, topic metadata errors) do not stop it; those reported
    while the consumer closes are left out (librdkafka reports the
    connections it tears down)."""
    errors = []
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group or unique("sec-assign"),
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
                  "error_cb": errors.append, **login.rdkafka()})
    got = []
    try:
        if group:
            c.subscribe(list(topics))
        else:
            tps = []
            for t in topics:
                md = c.list_topics(t, timeout=15).topics[t]
                if md.error is not None:
                    errors.append(md.error)
                tps += [TopicPartition(t, p, OFFSET_BEGINNING) for p in md.partitions]
            c.assign(tps)

        def done():
            return len(got) >= n and (want_error is None
                                      or any(e.code() == want_error for e in errors))
        deadline = time.monotonic() + timeout
        stop_at = None
        while time.monotonic() < (stop_at or deadline):
            if stop_at is None and done():
                stop_at = min(deadline, time.monotonic() + linger)
                continue
            m = c.poll(0.3)
            if m is None:
                continue
            if m.error():
                errors.append(m.error())
                continue
            got.append((m.topic(), m.value().decode()))
        seen = list(errors)
    finally:
        c.close()
    return got, seen


def kp_produce(bootstrap, login, records, timeout=30):
    """kafka-python: returns (delivered [(topic, value)], failed {topic: exception})."""
    prod = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=3,
                         request_timeout_ms=timeout * 1000, max_block_ms=timeout * 1000,
                         api_version_auto_timeout_ms=10000, **login.kafka_python())
    delivered, failed, futures = [], {}, []
    try:
        for t, v in records:
            try:  # send() itself raises when metadata already refused the topic
                futures.append((t, v, prod.send(t, value=v.encode())))
            except kerrors.KafkaError as e:
                failed.setdefault(t, e)
        prod.flush(timeout)
        for t, v, f in futures:
            try:
                f.get(timeout=timeout)
                delivered.append((t, v))
            except kerrors.KafkaError as e:
                failed.setdefault(t, e)
    finally:
        prod.close(10)
    return delivered, failed


def kp_consume(bootstrap, login, topic, n, timeout=30):
    """kafka-python: assigns every partition of topic, reads from the beginning."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                      enable_auto_commit=False, request_timeout_ms=30000,
                      api_version_auto_timeout_ms=10000, **login.kafka_python())
    got = []
    try:
        parts = wait_until(lambda: c.partitions_for_topic(topic), timeout=20,
                           what=f"kafka-python metadata for {topic}")
        c.assign([KpTopicPartition(topic, p) for p in parts])
        c.seek_to_beginning()
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=300).values():
                got += [(r.topic, r.value.decode()) for r in recs]
    finally:
        c.close()
    return got


def kp_attempt(bootstrap, login, topic, timeout=6):
    """kafka-python producer that is expected to fail: the exception it
    raised (constructor, send or delivery), or None if a record got through."""
    try:
        prod = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=0,
                             request_timeout_ms=timeout * 1000, max_block_ms=timeout * 1000,
                             api_version_auto_timeout_ms=timeout * 1000, **login.kafka_python())
    except Exception as e:  # noqa: BLE001 - any failure to start is the outcome
        return e
    try:
        prod.send(topic, value=b"must-not-land").get(timeout=timeout)
        return None
    except Exception as e:  # noqa: BLE001
        return e
    finally:
        prod.close(5)


def roundtrip(client, bootstrap, topic, login, n=20):
    """Produces n records with client through eosproxy and reads the topic
    back with the same client through eosproxy: (produced, consumed) values."""
    if client == "kcat":
        pairs = [(f"k{i % 4}", f"kcat-{i}") for i in range(n)]
        kcat_produce(bootstrap, topic, pairs, extra=login.kcat_args())
        got = kcat_consume(bootstrap, topic, extra=login.kcat_args())
        return [v for _, v in pairs], [v for _, _, _, v in got]
    if client == "confluent":
        values = [f"ck-{i}" for i in range(n)]
        delivered, failed, errs = confluent_produce(bootstrap, login, [(topic, v) for v in values])
        assert not failed and len(delivered) == n, f"confluent: failed {failed}, errors {errs}"
        got, errors = confluent_consume(bootstrap, login, [topic], n)
        # A dropped connection is retried by librdkafka and the records below
        # must still all arrive; about once in 20 runs its coordinator
        # connection reports one while its SASL request is in flight, with
        # nothing closed on eosproxy's side (cause not found).
        transient = [e for e in errors if e.code() == KafkaError._TRANSPORT]
        for e in transient:
            warnings.warn(f"confluent consumer: transient transport error: {e}")
        assert len(errors) == len(transient), f"confluent consumer errors: {errors}"
        return values, [v for _, v in got]
    if client == "kafka-python":
        values = [f"kp-{i}" for i in range(n)]
        delivered, failed = kp_produce(bootstrap, login, [(topic, v) for v in values])
        assert not failed, f"kafka-python: {failed}"
        return values, [v for _, v in kp_consume(bootstrap, login, topic, n)]
    if client == "kafkajs":
        res = run_kafkajs({"bootstrap": bootstrap, **login.kafkajs(),
                           "produce": [{"topic": topic, "count": n, "prefix": "kjs"}],
                           "consume": {"topic": topic, "group": unique("kjs-sec"), "count": n,
                                       "timeout_ms": 60000}})
        assert res["connect_error"] is None, res["connect_error"]
        assert not res["produce_errors"], res["produce_errors"]
        assert res["consume_error"] is None, res["consume_error"]
        for crash in res["consumer_crashes"]:  # recovered from; shown in the summary
            warnings.warn(f"kafkajs consumer crashed and restarted: {crash}")
        return res["produced"][topic], [m["value"] for m in res["consumed"]]
    raise ValueError(client)


def assert_roundtrip(client, cluster, bootstrap, login, n=20, prefix=None):
    """cluster: conftest's Cluster, or a MockCluster or KafkaCluster (its
    .topic() and .bootstrap are used)."""
    topic = cluster.topic(unique(prefix or f"sec-{client}"), 3)
    produced, consumed = roundtrip(client, bootstrap, topic, login, n)
    assert len(produced) == n
    assert sorted(consumed) == sorted(produced), f"{client} read back {len(consumed)} of {n}"
    # What landed in the cluster itself, read without eosproxy.
    stored = [v for _, _, _, v in kcat_consume(cluster.bootstrap, topic)]
    assert sorted(stored) == sorted(produced)


def failed_logins(proxy):
    m = proxy.metrics()
    return sum(m.get_value("eosproxy_auth_logins_total", mechanism=mech, result="failed")
               for mech in MECHANISMS)


def assert_login_refused(client, cluster, bootstrap, login):
    """client, with login, cannot write: it reports an authentication
    failure (kafka-python cannot, see below) and nothing reaches the topic."""
    topic = cluster.topic(unique(f"sec-refused-{client}"), 2)
    if client == "kcat":
        p = kcat("-P", "-b", bootstrap, "-t", topic, "-X", "message.timeout.ms=8000",
                 *login.kcat_args(), input="must-not-land\n", check=False, timeout=60)
        assert p.returncode != 0, f"kcat reported success:\n{p.stderr}"
        assert "Authentication" in p.stderr or "SASL" in p.stderr, p.stderr[-2000:]
    elif client == "confluent":
        delivered, _, errors = confluent_produce(bootstrap, login, [(topic, "must-not-land")],
                                                 timeout=10, stop_on_auth_error=True)
        assert not delivered
        assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), \
            f"no authentication error reported: {errors}"
    elif client == "kafka-python":
        # SaslHandshake v0 framing carries no error: a refused login is a
        # closed connection (Kafka does the same), so kafka-python reports
        # AuthenticationFailedError or no usable broker.
        err = kp_attempt(bootstrap, login, topic)
        assert err is not None, "kafka-python delivered a record"
        assert isinstance(err, (kerrors.AuthenticationFailedError, kerrors.NoBrokersAvailable,
                                kerrors.KafkaTimeoutError, kerrors.KafkaConnectionError)), repr(err)
    elif client == "kafkajs":
        res = run_kafkajs({"bootstrap": bootstrap, **login.kafkajs(), "retries": 1,
                           "produce": [{"topic": topic, "count": 1, "prefix": "must-not-land"}]})
        assert not res["produced"], res
        assert "KafkaJSSASLAuthenticationError" in kafkajs_error_names(res["connect_error"]), res
    else:
        raise ValueError(client)
    assert cluster.record_count(topic) == 0, f"{client}: a record landed without a login"


def fetch_v4_request(topic_partitions, corr=1):
    """FetchRequest v4 from offset 0 for [(topic, partition)]."""
    by_topic = {}
    for t, p in topic_partitions:
        by_topic.setdefault(t, []).append(p)
    body = struct.pack(">iiiib", -1, 100, 1, 1 << 20, 0) + struct.pack(">i", len(by_topic))
    for t, parts in by_topic.items():
        body += kstr(t) + struct.pack(">i", len(parts))
        for p in parts:
            body += struct.pack(">iqi", p, 0, 1 << 20)
    return request(1, 4, corr, body)


def parse_fetch_v4_errors(body):
    """FetchResponse v4 (after the correlation id): {topic: [error codes]}."""
    off = 4  # throttle_time_ms
    (nt,) = struct.unpack_from(">i", body, off)
    off += 4
    out = {}
    for _ in range(nt):
        (ln,) = struct.unpack_from(">h", body, off)
        name = body[off + 2:off + 2 + ln].decode()
        off += 2 + ln
        (np_,) = struct.unpack_from(">i", body, off)
        off += 4
        for _ in range(np_):
            _, err, _, _ = struct.unpack_from(">ihqq", body, off)
            off += 22
            (na,) = struct.unpack_from(">i", body, off)
            off += 4 + max(na, 0) * 16
            (rl,) = struct.unpack_from(">i", body, off)
            off += 4 + max(rl, 0)
            out.setdefault(name, []).append(err)
    return out


# ---------------------------------------------------------------- raw protocol

def test_before_login_api_versions_is_answered_metadata_closes(cluster, cluster_proxy_factory,
                                                               accounts):
    proxy = start_auth_proxy(cluster_proxy_factory, accounts)
    for addr in (proxy.bootstrap, proxy.broker_addr(1)):
        with Conn(addr) as c:
            c.send(api_versions_request(corr=7))
            corr, body = c.recv()
            assert corr == 7
            versions = parse_api_versions(body)
            # Clients need both to log in (kafkajs and librdkafka look for them),
            # whatever the upstream itself supports.
            assert API_SASL_HANDSHAKE in versions and API_SASL_AUTHENTICATE in versions, versions
            c.send(metadata_request(1, corr=8))
            assert c.closed_by_peer(), f"{addr}: Metadata before login was not refused"
    assert proxy.alive()


def test_produce_before_login_closes_and_writes_nothing(cluster, cluster_proxy_factory, accounts):
    proxy = start_auth_proxy(cluster_proxy_factory, accounts)
    topic = cluster.topic(unique("sec-raw-produce"), 1)
    for addr in (proxy.bootstrap, proxy.broker_addr(1)):
        with Conn(addr) as c:
            c.send(produce_request(3, topic, 0, record_batch([b"no-login"]), acks=1))
            assert c.closed_by_peer(), f"{addr}: Produce before login was not refused"
    assert cluster.record_count(topic) == 0


def test_connection_without_login_is_closed_after_login_timeout(cluster, cluster_proxy_factory,
                                                                accounts):
    proxy = start_auth_proxy(cluster_proxy_factory, accounts, **{"auth.login_timeout": "1s"})
    with Conn(proxy.bootstrap, timeout=15.0) as c:
        c.send(api_versions_request(corr=3))
        assert c.recv()[0] == 3  # served while the clock runs
        assert c.closed_by_peer(), "a connection that never logged in was kept"
    closed = proxy.metrics().get_value("eosproxy_client_connections_closed_total", reason="auth")
    assert closed >= 1, closed
    # A login well inside the limit is not cut short.
    with Conn(proxy.bootstrap) as c:
        assert sasl_plain_login(c, APP, accounts.passwords[APP])[0] == "ok"
        time.sleep(1.5)
        c.send(api_versions_request(corr=4))
        assert c.recv()[0] == 4
    assert proxy.alive()


def test_sasl_handshake_offers_configured_mechanisms(cluster, cluster_proxy_factory, accounts):
    default = start_auth_proxy(cluster_proxy_factory, accounts)
    with Conn(default.bootstrap) as c:
        c.send(sasl_handshake_request("GSSAPI", 1, corr=3))
        err, mechs = parse_sasl_handshake(c.recv()[1])
    assert err == UNSUPPORTED_SASL_MECHANISM
    assert sorted(mechs) == sorted(MECHANISMS)

    only512 = start_auth_proxy(cluster_proxy_factory, accounts,
                               **{"auth.mechanisms": ["SCRAM-SHA-512"]})
    with Conn(only512.bootstrap) as c:
        outcome = sasl_plain_login(c, APP, accounts.passwords[APP])
    assert outcome[:2] == ("handshake", UNSUPPORTED_SASL_MECHANISM), outcome
    assert outcome[2] == ["SCRAM-SHA-512"]
    with Conn(only512.bootstrap) as c:
        assert sasl_scram_login(c, "SCRAM-SHA-512", APP, accounts.passwords[APP])[0] == "ok"


@pytest.mark.parametrize("version", [0, 1, 2])
def test_raw_plain_login(cluster, cluster_proxy_factory, accounts, version):
    """SaslHandshake v1 + SaslAuthenticate v0..v2 (v2 is flexible, as Java
    clients send it): right password, then requests are served; wrong
    password or unknown user: SASL_AUTHENTICATION_FAILED, then closed."""
    proxy = start_auth_proxy(cluster_proxy_factory, accounts)
    with Conn(proxy.broker_addr(cluster.node_ids[-1])) as c:
        assert sasl_plain_login(c, APP, accounts.passwords[APP], version) == ("ok", 0, None)
        c.send(metadata_request(1, corr=31))
        corr, body = c.recv()
        assert corr == 31 and sorted(b[0] for b in parse_metadata(1, body)[0]) == cluster.node_ids
    for user, pw in ((APP, accounts.passwords["alice"]), ("mallory", accounts.passwords[APP])):
        with Conn(proxy.bootstrap) as c:
            kind, err, msg = sasl_plain_login(c, user, pw, version)
            assert (kind, err) == ("authenticate", SASL_AUTHENTICATION_FAILED), (kind, err, msg)
            assert_no_secret(msg or "", "the SaslAuthenticate error message")
            assert c.closed_by_peer(), "the connection stayed open after a failed login"


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_raw_scram_login(cluster, cluster_proxy_factory, accounts, mechanism):
    """The SCRAM exchange computed here (RFC 5802), the server signature
    checked; a wrong password or an unknown user fails at the proof."""
    proxy = start_auth_proxy(cluster_proxy_factory, accounts)
    with Conn(proxy.bootstrap) as c:
        assert sasl_scram_login(c, mechanism, "alice", accounts.passwords["alice"])[0] == "ok"
        c.send(metadata_request(1, corr=41))
        assert c.recv()[0] == 41
    for user, pw in (("alice", accounts.passwords["bob"]), ("mallory", accounts.passwords["bob"])):
        with Conn(proxy.bootstrap) as c:
            kind, err, msg = sasl_scram_login(c, mechanism, user, pw)
            assert (kind, err) == ("authenticate", SASL_AUTHENTICATION_FAILED), (kind, err, msg)
            assert c.closed_by_peer()


# ---------------------------------------------------------------- clients, SASL_PLAINTEXT

@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("client", CLIENTS)
def test_sasl_plaintext_roundtrip(cluster, cluster_proxy_factory, accounts, client, mechanism):
    proxy = start_auth_proxy(cluster_proxy_factory, accounts)
    assert_roundtrip(client, cluster, proxy.bootstrap, accounts.login(APP, mechanism))


# ---------------------------------------------------------------- clients, SASL_SSL

# Each client once over TLS; the mechanisms rotate so that each runs over TLS.
SSL_CASES = [("kcat", "PLAIN"), ("confluent", "SCRAM-SHA-512"), ("kafka-python", "SCRAM-SHA-256"),
             ("kafkajs", "PLAIN"), ("kafkajs", "SCRAM-SHA-512")]


def kernel_has_tls():
    try:
        with open("/proc/sys/net/ipv4/tcp_available_ulp") as f:
            return "tls" in f.read().split()
    except OSError:
        return False


KTLS = ("none", "send", "recv", "both")


@pytest.mark.parametrize("client,mechanism", SSL_CASES)
def test_sasl_ssl_roundtrip(cluster, cluster_proxy_factory, accounts, certs, client, mechanism):
    proxy = start_auth_proxy(cluster_proxy_factory, accounts, **tls_listen(certs))
    assert_roundtrip(client, cluster, proxy.bootstrap,
                     accounts.login(APP, mechanism, "SASL_SSL", certs))
    # Every handshake is counted once by what kernel TLS took over, and the
    # log says which; without the kernel's `tls` module, OpenSSL does it all.
    m = proxy.metrics()
    by = {k: m.get_value("eosproxy_tls_connections_total", side="client", ktls=k) for k in KTLS}
    assert sum(by.values()) == m.get_value("eosproxy_tls_handshakes_total") > 0, by
    if not kernel_has_tls():
        assert by["none"] == sum(by.values()), by
    assert "client TLS connections: kernel TLS" in proxy.log


def test_tls_listener_refuses_plaintext_clients(cluster, cluster_proxy_factory, certs):
    proxy = cluster_proxy_factory(**tls_listen(certs))
    topic = cluster.topic(unique("sec-tls-plain"), 1)
    for addr in (proxy.bootstrap, proxy.broker_addr(1)):
        with Conn(addr) as c:
            c.send(api_versions_request(corr=5))
            assert c.closed_by_peer(), f"{addr}: a plaintext request on the TLS listener was served"
    p = kcat("-P", "-b", proxy.bootstrap, "-t", topic, "-X", "message.timeout.ms=5000",
             input="plain\n", check=False)
    assert p.returncode != 0
    assert cluster.record_count(topic) == 0
    # TLS without SASL (no auth.users_file) works.
    assert_roundtrip("kcat", cluster, proxy.bootstrap, Login("SSL", ca=certs.ca))


# ---------------------------------------------------------------- refused logins

REFUSED = [(c, "wrong-password") for c in CLIENTS] + [("kcat", "unknown-user"),
                                                      ("confluent", "unknown-user")]


@pytest.mark.parametrize("client,case", REFUSED)
def test_refused_login_writes_nothing(cluster, cluster_proxy_factory, accounts, client, case):
    proxy = start_auth_proxy(cluster_proxy_factory, accounts)
    mech = "SCRAM-SHA-256" if client == "kafka-python" else "PLAIN"
    if case == "wrong-password":
        login = accounts.login(APP, mech, password=accounts.passwords["bob"])
    else:
        login = accounts.login("nobody", mech, password=accounts.passwords[APP])
    assert_login_refused(client, cluster, proxy.bootstrap, login)
    if client == "kafka-python":  # the client cannot tell; eosproxy can
        assert failed_logins(proxy) > 0
    # Refused for the credentials, not because this eosproxy is broken.
    with Conn(proxy.bootstrap) as c:
        assert sasl_plain_login(c, APP, accounts.passwords[APP])[0] == "ok"


def test_kafka_python_plain_wrong_password_writes_nothing(cluster, cluster_proxy_factory, accounts):
    """PLAIN with SaslHandshake v0 framing (no SaslAuthenticate)."""
    proxy = start_auth_proxy(cluster_proxy_factory, accounts)
    assert_login_refused("kafka-python", cluster, proxy.bootstrap,
                         accounts.login(APP, "PLAIN", password=accounts.passwords["carol"]))
    assert failed_logins(proxy) > 0


def test_clients_without_sasl_write_nothing(cluster, cluster_proxy_factory, accounts):
    proxy = start_auth_proxy(cluster_proxy_factory, accounts)
    topic = cluster.topic(unique("sec-nosasl"), 2)
    p = kcat("-P", "-b", proxy.bootstrap, "-t", topic, "-X", "message.timeout.ms=8000",
             input="no-sasl\n", check=False, timeout=60)
    assert p.returncode != 0, f"kcat without SASL reported success:\n{p.stderr}"
    err = kp_attempt(proxy.bootstrap, Login(), topic)
    assert err is not None, "kafka-python without SASL delivered a record"
    delivered, _, _ = confluent_produce(proxy.bootstrap, Login(), [(topic, "no-sasl")], timeout=6)
    assert not delivered
    assert cluster.record_count(topic) == 0


# ---------------------------------------------------------------- ACLs

# alice: orders.* only. carol: consumes orders.* only. "*" (bob, and any
# other user without a rule of its own): public.* only.
ACLS = {"auth.acls": [
    {"user": "alice", "produce": ["orders.*"], "consume": ["orders.*"], "admin": False},
    {"user": "carol", "produce": [], "consume": ["orders.*"]},
    {"user": "*", "produce": ["public.*"], "consume": ["public.*"]},
]}


def test_acl_metadata_hides_denied_topics_and_creates_none(cluster, cluster_proxy_factory,
                                                           accounts):
    orders, payments = cluster.topic(unique("orders.m"), 1), cluster.topic(unique("payments"), 1)
    proxy = start_auth_proxy(cluster_proxy_factory, accounts, **ACLS)
    alice = accounts.login("alice", "PLAIN")
    p = Producer({"bootstrap.servers": proxy.bootstrap, **alice.rdkafka()})
    listed = p.list_topics(timeout=15).topics
    assert orders in listed and listed[orders].error is None
    assert payments not in listed, "an all-topics listing showed a topic alice may not use"
    named = p.list_topics(payments, timeout=15).topics
    assert named[payments].error is not None
    assert named[payments].error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Naming a denied topic that does not exist must not make the cluster create it.
    secret = unique("secret.new")
    assert p.list_topics(secret, timeout=15).topics[secret].error.code() == \
        KafkaError.TOPIC_AUTHORIZATION_FAILED
    direct = Producer({"bootstrap.servers": cluster.bootstrap})
    assert secret not in direct.list_topics(timeout=15).topics, "a denied topic was created"
    assert payments in direct.list_topics(timeout=15).topics


@pytest.mark.parametrize("client", ["confluent", "kafka-python", "kafkajs"])
def test_acl_produce_denied_topic_fails_allowed_lands(cluster, cluster_proxy_factory, accounts,
                                                      client):
    orders, payments = cluster.topic(unique("orders.a"), 2), cluster.topic(unique("payments"), 2)
    proxy = start_auth_proxy(cluster_proxy_factory, accounts, **ACLS)
    login = accounts.login("alice", "SCRAM-SHA-256")
    records = [(orders, f"order-{i}") for i in range(10)]
    records += [(payments, f"pay-{i}") for i in range(5)]
    if client == "confluent":
        delivered, failed, _ = confluent_produce(proxy.bootstrap, login, records, timeout=20)
        assert sorted(v for t, v in delivered) == sorted(v for t, v in records if t == orders)
        codes = {e.code() for e in failed.get(payments, [])}
        assert codes == {KafkaError.TOPIC_AUTHORIZATION_FAILED}, failed
        assert orders not in failed
    elif client == "kafka-python":
        delivered, failed = kp_produce(proxy.bootstrap, login, records, timeout=20)
        assert sorted(v for t, v in delivered) == sorted(v for t, v in records if t == orders)
        assert isinstance(failed.get(payments), kerrors.TopicAuthorizationFailedError), failed
    else:
        res = run_kafkajs({"bootstrap": proxy.bootstrap, **login.kafkajs(), "retries": 2,
                           "produce": [{"topic": orders, "count": 10, "prefix": "order"},
                                       {"topic": payments, "count": 5, "prefix": "pay"}]})
        assert res["connect_error"] is None, res
        assert len(res["produced"].get(orders, [])) == 10, res
        err = res["produce_errors"].get(payments)
        assert err is not None and "TOPIC_AUTHORIZATION_FAILED" in json.dumps(err), res
    assert cluster.record_count(orders) == 10
    assert cluster.record_count(payments) == 0


def test_acl_star_rule_is_for_users_without_their_own(cluster, cluster_proxy_factory, accounts):
    orders, public = cluster.topic(unique("orders.b"), 1), cluster.topic(unique("public.x"), 1)
    proxy = start_auth_proxy(cluster_proxy_factory, accounts, **ACLS)
    bob = accounts.login("bob", "PLAIN")
    delivered, failed, _ = confluent_produce(proxy.bootstrap, bob,
                                             [(public, "bob-public"), (orders, "bob-orders")],
                                             timeout=20)
    assert delivered == [(public, "bob-public")]
    assert {e.code() for e in failed.get(orders, [])} == {KafkaError.TOPIC_AUTHORIZATION_FAILED}
    # alice has a rule of her own: "*" does not add to it.
    delivered, failed, _ = confluent_produce(proxy.bootstrap, accounts.login("alice", "PLAIN"),
                                             [(public, "alice-public")], timeout=20)
    assert not delivered
    assert {e.code() for e in failed.get(public, [])} == {KafkaError.TOPIC_AUTHORIZATION_FAILED}
    assert cluster.record_count(public) == 1
    assert cluster.record_count(orders) == 0


def test_acl_consume_denied_topic_reports_authorization_failed(cluster, cluster_proxy_factory,
                                                               accounts):
    payments = cluster.topic(unique("payments"), 2)
    kcat_produce(cluster.bootstrap, payments, [(f"k{i}", f"pay-{i}") for i in range(6)])
    proxy = start_auth_proxy(cluster_proxy_factory, accounts, **ACLS)
    login = accounts.login("alice", "SCRAM-SHA-512")

    got, errors = confluent_consume(proxy.bootstrap, login, [payments], 0, timeout=20,
                                    want_error=KafkaError.TOPIC_AUTHORIZATION_FAILED, linger=2)
    assert not got, f"alice read {len(got)} records of a topic she may not consume"
    assert any(e.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED for e in errors), errors

    # kafka-python is not even told the topic exists (Metadata hides it, as
    # Kafka hides topics a user may not describe).
    c = KafkaConsumer(bootstrap_servers=proxy.bootstrap, group_id=None,
                      request_timeout_ms=30000, **login.kafka_python())
    try:
        assert payments not in c.topics()
    finally:
        c.close()

    # A Fetch naming it anyway: that topic's slot says 29, the allowed one
    # in the same request is served by the broker.
    orders = cluster.topic(unique("orders.f"), 1)
    with Conn(proxy.broker_addr(1)) as conn:
        assert sasl_scram_login(conn, "SCRAM-SHA-512", "alice",
                                accounts.passwords["alice"])[0] == "ok"
        conn.send(fetch_v4_request([(orders, 0), (payments, 0)], corr=9))
        corr, body = conn.recv()
    assert corr == 9
    errors_by_topic = parse_fetch_v4_errors(body)
    assert errors_by_topic[payments] == [29], errors_by_topic
    assert 29 not in errors_by_topic[orders], errors_by_topic


def test_acl_consumer_of_two_topics_gets_the_allowed_one(cluster, cluster_proxy_factory, accounts):
    """carol may consume orders.* but not payments; 3 partitions each on 3
    brokers, so the Fetch requests carry both topics."""
    orders, payments = cluster.topic(unique("orders.c"), 3), cluster.topic(unique("payments"), 3)
    kcat_produce(cluster.bootstrap, orders, [(f"k{i}", f"order-{i}") for i in range(30)])
    kcat_produce(cluster.bootstrap, payments, [(f"k{i}", f"pay-{i}") for i in range(30)])
    proxy = start_auth_proxy(cluster_proxy_factory, accounts, **ACLS)
    got, errors = confluent_consume(proxy.bootstrap, accounts.login("carol", "SCRAM-SHA-256"),
                                    [orders, payments], 30, timeout=40, group=unique("carol"),
                                    want_error=KafkaError.TOPIC_AUTHORIZATION_FAILED)
    assert sorted(v for t, v in got if t == orders) == sorted(f"order-{i}" for i in range(30))
    assert not [v for t, v in got if t == payments]
    assert any(e.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED for e in errors), errors


# ---------------------------------------------------------------- mutual TLS

@pytest.mark.parametrize("who", ["good-cert", "no-cert", "rogue-cert"])
def test_mtls_client_certificates(cluster, cluster_proxy_factory, certs, who):
    proxy = cluster_proxy_factory(**tls_listen(certs, client_ca=True))
    login = Login("SSL", ca=certs.ca)
    if who == "good-cert":
        login.cert, login.key = certs.client, certs.client_key
    elif who == "rogue-cert":
        login.cert, login.key = certs.rogue_client, certs.rogue_client_key
    ctx = client_tls_context(certs.ca, login.cert, login.key)
    if who == "good-cert":
        for addr in (proxy.bootstrap, proxy.broker_addr(1)):
            assert not tls_refused(addr, ctx, api_versions_request()), f"{addr} refused {who}"
        assert_roundtrip("kcat", cluster, proxy.bootstrap, login)
        return
    for addr in (proxy.bootstrap, proxy.broker_addr(1)):
        assert tls_refused(addr, ctx, api_versions_request()), f"{addr} served {who}"
    topic = cluster.topic(unique("sec-mtls"), 1)
    p = kcat("-P", "-b", proxy.bootstrap, "-t", topic, "-X", "message.timeout.ms=8000",
             *login.kcat_args(), input="refused\n", check=False, timeout=60)
    assert p.returncode != 0, f"kcat with {who} reported success"
    assert cluster.record_count(topic) == 0


# ---------------------------------------------------------------- non-loopback plaintext

@pytest.fixture
def outside_ip():
    ip = non_loopback_ipv4()
    if not ip:
        pytest.skip("this host has no non-loopback IPv4 address (hostname -I)")
    return ip


def start_open_proxy(factory, accounts, ip, **overrides):
    """eosproxy on 0.0.0.0, advertising ip, so clients come from ip."""
    p = start_auth_proxy(factory, accounts, **{"listen.host": "0.0.0.0",
                                                     "listen.advertised_host": ip, **overrides})
    return p, f"{ip}:{p.port}"


def test_plain_without_tls_refused_from_non_loopback(cluster, cluster_proxy_factory, accounts,
                                                     outside_ip):
    proxy, outside = start_open_proxy(cluster_proxy_factory, accounts, outside_ip)
    with Conn(outside) as c:
        outcome = sasl_plain_login(c, APP, accounts.passwords[APP])
    assert outcome[0] != "ok", "PLAIN over plaintext from a non-loopback peer was accepted"
    assert_login_refused("confluent", cluster, outside, accounts.login(APP, "PLAIN"))
    # The same credentials from loopback are fine: the refusal is the peer's.
    with Conn(f"127.0.0.1:{proxy.port}") as c:
        assert sasl_plain_login(c, APP, accounts.passwords[APP])[0] == "ok"
    # SCRAM never shows the password: allowed from anywhere.
    assert_roundtrip("confluent", cluster, outside, accounts.login(APP, "SCRAM-SHA-256"))


def test_plain_from_non_loopback_with_allow_plaintext(cluster, cluster_proxy_factory, accounts,
                                                      outside_ip):
    _, outside = start_open_proxy(cluster_proxy_factory, accounts, outside_ip,
                                  **{"auth.allow_plaintext": True})
    assert_roundtrip("confluent", cluster, outside, accounts.login(APP, "PLAIN"))


def test_plain_over_tls_from_non_loopback(cluster, cluster_proxy_factory, accounts, certs,
                                          outside_ip):
    _, outside = start_open_proxy(cluster_proxy_factory, accounts, outside_ip, **tls_listen(certs))
    assert_roundtrip("kcat", cluster, outside, accounts.login(APP, "PLAIN", "SASL_SSL", certs))


# ---------------------------------------------------------------- reloads on SIGHUP

def test_certificate_reload_on_sighup(cluster, cluster_proxy_factory, certs, tmp_path):
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    cert, key = str(tls_dir / "server.pem"), str(tls_dir / "server.key")
    shutil.copyfile(certs.server, cert)
    shutil.copyfile(certs.server_key, key)
    os.chmod(key, 0o600)
    proxy = cluster_proxy_factory(**tls_listen(certs, cert=cert, key=key))
    ctx = client_tls_context(certs.ca)
    login = Login("SSL", ca=certs.ca)
    topic = cluster.topic(unique("sec-reload"), 2)

    old = TlsConn(proxy.bootstrap, ctx)
    producer = Producer({"bootstrap.servers": proxy.bootstrap, "acks": "all",
                         "message.timeout.ms": 30000, **login.rdkafka()})
    try:
        assert old.peer_cn() == "eosproxy"
        producer.produce(topic, value=b"before-reload")
        assert producer.flush(30) == 0

        shutil.copyfile(certs.server2, cert)
        shutil.copyfile(certs.server2_key, key)
        proxy.proc.send_signal(signal.SIGHUP)

        def new_cn():
            with TlsConn(proxy.bootstrap, ctx) as c:
                return c.peer_cn() == "eosproxy-rotated"
        wait_until(new_cn, timeout=15, what="a new TLS connection to see the new certificate")

        # The connection opened before the reload is still served.
        old.send(api_versions_request(corr=77))
        assert old.recv()[0] == 77
        old.send(metadata_request(1, corr=78))
        assert old.recv()[0] == 78
        # So is the client that was connected all along.
        producer.produce(topic, value=b"after-reload")
        assert producer.flush(30) == 0
    finally:
        old.close()
    assert proxy.alive()
    stored = sorted(v for _, _, _, v in kcat_consume(cluster.bootstrap, topic))
    assert stored == ["after-reload", "before-reload"]
    # New clients get on with the new certificate.
    assert_roundtrip("kcat", cluster, proxy.bootstrap, login)


def test_users_file_reload_on_sighup(cluster, cluster_proxy_factory, accounts, tmp_path):
    newbie_pw = new_secret("newbie")
    users = write_users_file(tmp_path / "users",
                             [passwd_line(conftest.EOSPROXY_BIN, APP, accounts.passwords[APP])])
    proxy = start_auth_proxy(cluster_proxy_factory, accounts, **{"auth.users_file": users})

    def login(user, pw):
        with Conn(proxy.bootstrap) as c:
            return sasl_plain_login(c, user, pw)[0]

    assert login("newbie", newbie_pw) == "authenticate"
    write_users_file(users, [passwd_line(conftest.EOSPROXY_BIN, "newbie", newbie_pw)])
    proxy.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: login("newbie", newbie_pw) == "ok", timeout=15, what="newbie to log in")
    assert login(APP, accounts.passwords[APP]) == "authenticate", "a removed user still logs in"
    assert proxy.alive()


# ---------------------------------------------------------------- upstream TLS + SASL (chained)

# These run on the mock only: a second eosproxy (the "gateway", TLS listener
# and client logins) stands in for a secured broker, which the mock cannot be
# (it has no TLS and no SASL). Against the real broker's own SASL and TLS
# listeners: test_real_security.py.
UPSTREAM_CHAIN = pytest.mark.mock_only("a chained eosproxy stands in for a secured broker; "
                                       "Kafka's own: test_real_security.py")

def start_gateway(proxy_factory, accounts, certs):
    """eosproxy B in front of the mock: TLS listener and client logins; it
    stands for a secured Kafka cluster."""
    return start_auth_proxy(proxy_factory, accounts, **tls_listen(certs))


def sidecar_overrides(bootstrap, ca, mechanism, verify=True):
    """eosproxy A: logs into B as "sidecar", the password from the
    environment; idem.* topics take the idempotent upgrade (its lanes are
    connections of their own)."""
    return {"upstream.bootstrap": bootstrap,
            "topics": [{"match": "idem.*", "delivery": "idempotent"}],
            "upstream.tls": {"ca_file": ca, "verify": verify},
            "upstream.sasl": {"mechanism": mechanism, "username": "sidecar",
                              "password": "${" + UPSTREAM_PW_ENV + "}"},
            "log.level": "debug"}


@UPSTREAM_CHAIN
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_upstream_tls_and_sasl(mock, proxy_factory, accounts, certs, monkeypatch, mechanism):
    gateway = start_gateway(proxy_factory, accounts, certs)
    monkeypatch.setenv(UPSTREAM_PW_ENV, accounts.passwords["sidecar"])
    sidecar = proxy_factory(**sidecar_overrides(gateway.bootstrap, certs.ca, mechanism))
    assert_roundtrip("kcat", mock, sidecar.bootstrap, Login())
    assert_roundtrip("confluent", mock, sidecar.bootstrap, Login())
    assert_roundtrip("kcat", mock, sidecar.bootstrap, Login(), prefix="idem.kcat")
    m = sidecar.metrics()
    assert m.get_value("eosproxy_upgraded_batches_total") > 0, "no batch took the lanes"
    ups = sum(m.get_value("eosproxy_tls_connections_total", side="upstream", ktls=k) for k in KTLS)
    assert ups > 0, "upstream TLS handshakes not counted"
    assert m.get_value("eosproxy_upstream_errors_total", kind="auth") == 0
    assert m.get_value("eosproxy_upstream_errors_total", kind="tls") == 0
    # B saw the sidecar log in with the configured mechanism.
    assert gateway.metrics().get_value("eosproxy_auth_logins_total", mechanism=mechanism,
                                       result="ok") > 0
    assert_no_secret(sidecar.http_get("/metrics")[1], "/metrics")


def assert_sidecar_cannot_write(mock, sidecar):
    topic = mock.topic(unique("sec-upstream-refused"), 1)
    p = kcat("-P", "-b", sidecar.bootstrap, "-t", topic, "-X", "message.timeout.ms=6000",
             input="must-not-land\n", check=False, timeout=60)
    assert p.returncode != 0, "a client of the sidecar got a delivery"
    assert mock_record_count(mock, topic) == 0
    assert sidecar.http_get("/readyz")[0] != 200


@UPSTREAM_CHAIN
def test_upstream_wrong_password_counts_auth_errors(mock, proxy_factory, unready, accounts,
                                                    certs, monkeypatch):
    gateway = start_gateway(proxy_factory, accounts, certs)
    monkeypatch.setenv(UPSTREAM_PW_ENV, accounts.passwords["bob"])
    sidecar = unready.start(**sidecar_overrides(gateway.bootstrap, certs.ca, "SCRAM-SHA-256"))
    wait_until(lambda: sidecar.metrics().get_value("eosproxy_upstream_errors_total",
                                                   kind="auth") > 0,
               timeout=20, what='eosproxy_upstream_errors_total{kind="auth"} > 0')
    assert_sidecar_cannot_write(mock, sidecar)
    assert_no_secret(sidecar.http_get("/metrics")[1], "/metrics")


@UPSTREAM_CHAIN
def test_upstream_ca_that_did_not_sign_the_broker(mock, proxy_factory, unready, accounts, certs,
                                                  monkeypatch):
    gateway = start_gateway(proxy_factory, accounts, certs)
    monkeypatch.setenv(UPSTREAM_PW_ENV, accounts.passwords["sidecar"])
    sidecar = unready.start(**sidecar_overrides(gateway.bootstrap, certs.rogue_ca, "PLAIN"))
    wait_until(lambda: sidecar.metrics().get_value("eosproxy_upstream_errors_total",
                                                   kind="tls") > 0,
               timeout=20, what='eosproxy_upstream_errors_total{kind="tls"} > 0')
    assert_sidecar_cannot_write(mock, sidecar)
    # The password never left: the TLS handshake failed before SASL.
    assert sidecar.metrics().get_value("eosproxy_upstream_errors_total", kind="auth") == 0


@UPSTREAM_CHAIN
def test_upstream_verify_false_accepts_any_certificate(mock, proxy_factory, accounts, certs,
                                                       monkeypatch):
    gateway = start_gateway(proxy_factory, accounts, certs)
    monkeypatch.setenv(UPSTREAM_PW_ENV, accounts.passwords["sidecar"])
    sidecar = proxy_factory(**sidecar_overrides(gateway.bootstrap, certs.rogue_ca, "PLAIN",
                                                verify=False))
    assert_roundtrip("kcat", mock, sidecar.bootstrap, Login())


@UPSTREAM_CHAIN
def test_upstream_host_name_not_in_certificate(mock, proxy_factory, unready, accounts, certs,
                                               monkeypatch):
    name = socket.gethostname()
    try:
        addrs = {a[4][0] for a in socket.getaddrinfo(name, None, socket.AF_INET)}
    except OSError:
        addrs = set()
    if name == "localhost" or addrs != {"127.0.0.1"}:
        pytest.skip(f"host name {name!r} does not resolve to 127.0.0.1 alone")
    gateway = start_auth_proxy(proxy_factory, accounts, **tls_listen(certs),
                               **{"listen.advertised_host": name})
    monkeypatch.setenv(UPSTREAM_PW_ENV, accounts.passwords["sidecar"])
    sidecar = unready.start(**sidecar_overrides(f"{name}:{gateway.port}", certs.ca, "PLAIN"))
    wait_until(lambda: sidecar.metrics().get_value("eosproxy_upstream_errors_total",
                                                   kind="tls") > 0,
               timeout=20, what=f"a TLS error for {name} (the certificate names localhost and IPs)")
    assert_sidecar_cannot_write(mock, sidecar)


@UPSTREAM_CHAIN
@pytest.mark.parametrize("with_cert", [True, False])
def test_upstream_client_certificate(mock, proxy_factory, unready, accounts, certs, monkeypatch,
                                     with_cert):
    """B wants mutual TLS: A gets in with upstream.tls.cert_file/key_file,
    and without them its handshakes fail."""
    gateway = start_auth_proxy(proxy_factory, accounts, **tls_listen(certs, client_ca=True))
    monkeypatch.setenv(UPSTREAM_PW_ENV, accounts.passwords["sidecar"])
    overrides = sidecar_overrides(gateway.bootstrap, certs.ca, "SCRAM-SHA-512")
    if with_cert:
        overrides["upstream.tls"].update(cert_file=certs.client, key_file=certs.client_key)
        sidecar = proxy_factory(**overrides)
        assert_roundtrip("kcat", mock, sidecar.bootstrap, Login())
        return
    sidecar = unready.start(**overrides)
    wait_until(lambda: sidecar.metrics().get_value("eosproxy_upstream_errors_total",
                                                   kind="tls") > 0,
               timeout=20, what='eosproxy_upstream_errors_total{kind="tls"} > 0')
    assert_sidecar_cannot_write(mock, sidecar)
