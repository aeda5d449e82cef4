"""eosproxy's own security against a real Kafka 4 broker, which speaks
SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) and TLS itself (the mock has
neither, so test_security.py chains two eosproxy instances instead):
eosproxy logs into the broker's SASL_SSL listener with certificate
verification on, for its metadata connection, every client's connection
and the idempotent upgrade's lanes; wrong credentials, an unknown user and
a wrong CA are refused with a clear log line and nothing is written; and
the whole chain, a client logging into eosproxy over TLS and eosproxy into
the broker, carries records end to end."""

import conftest
import pytest

from helpers import kcat, unique, wait_until
from kafka_real import run_java
from security import Login, assert_no_secret
from test_security import Accounts, Unready, assert_roundtrip, tls_listen

pytestmark = pytest.mark.real_kafka

UPSTREAM_PW_ENV = "EOSPROXY_IT_KAFKA_PASSWORD"
IDEM = [{"match": "idem.*", "delivery": "idempotent"}]


@pytest.fixture
def kunready(kafka, tmp_path):
    """eosproxy instances that are not expected to get ready (they cannot
    log into the broker); stopped and checked at teardown all the same."""
    u = Unready(kafka, tmp_path)
    failures = []
    try:
        yield u
    finally:
        failures += conftest.stop_checked(u.started)
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


@pytest.fixture(autouse=True)
def no_secret_in_logs(tmp_path):
    yield
    for f in sorted(tmp_path.glob("*.log")):
        assert_no_secret(f.read_text(errors="replace"), f.name)


def upstream(kafka, listener, mechanism=None, ca=None, user="sidecar", verify=True):
    o = {"upstream.bootstrap": kafka.listener(listener), "topics": IDEM, "log.level": "debug"}
    if listener in ("SSL", "SASL_SSL"):
        o["upstream.tls"] = {"ca_file": ca or kafka.certs.ca, "verify": verify}
    if mechanism:
        o["upstream.sasl"] = {"mechanism": mechanism, "username": user,
                              "password": "${" + UPSTREAM_PW_ENV + "}"}
    return o


def assert_works(kafka, proxy):
    assert_roundtrip("kcat", kafka, proxy.bootstrap, Login())
    assert_roundtrip("confluent", kafka, proxy.bootstrap, Login())
    # The upgrade's lanes are connections of their own: they log in too.
    assert_roundtrip("kcat", kafka, proxy.bootstrap, Login(), prefix="idem.kcat")
    m = proxy.metrics()
    assert m.get_value("eosproxy_upgraded_batches_total") > 0, "no batch took the lanes"
    assert m.get_value("eosproxy_upstream_errors_total", kind="auth") == 0
    assert m.get_value("eosproxy_upstream_errors_total", kind="tls") == 0


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_upstream_sasl_ssl(kafka, kproxy_factory, monkeypatch, mechanism):
    monkeypatch.setenv(UPSTREAM_PW_ENV, kafka.users["sidecar"])
    proxy = kproxy_factory(**upstream(kafka, "SASL_SSL", mechanism))
    assert_works(kafka, proxy)
    assert f"mechanism {mechanism}" in proxy.log or mechanism in proxy.log


def test_upstream_sasl_plaintext_scram(kafka, kproxy_factory, monkeypatch):
    monkeypatch.setenv(UPSTREAM_PW_ENV, kafka.users["sidecar"])
    proxy = kproxy_factory(**upstream(kafka, "SASL_PLAINTEXT", "SCRAM-SHA-512"))
    assert_works(kafka, proxy)


def test_upstream_ssl_without_sasl(kafka, kproxy_factory):
    proxy = kproxy_factory(**upstream(kafka, "SSL"))
    assert_works(kafka, proxy)


def assert_refused(kafka, proxy, metric_kind, log_words):
    wait_until(lambda: proxy.metrics().get_value("eosproxy_upstream_errors_total",
                                                 kind=metric_kind) > 0,
               timeout=60, what=f'eosproxy_upstream_errors_total{{kind="{metric_kind}"}} > 0')
    wait_until(lambda: all(w in proxy.log for w in log_words), timeout=10,
               what=f"a log line with {log_words}")
    assert proxy.http_get("/readyz")[0] != 200
    topic = kafka.create_topic(unique("real-sec-refused"), 1)
    p = kcat("-P", "-b", proxy.bootstrap, "-t", topic, "-X", "message.timeout.ms=6000",
             input="must-not-land\n", check=False, timeout=60)
    assert p.returncode != 0, "a client of eosproxy got a delivery"
    assert kafka.record_count(topic) == 0


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_upstream_wrong_password_refused(kafka, kunready, monkeypatch, mechanism):
    monkeypatch.setenv(UPSTREAM_PW_ENV, kafka.users["app"])  # another user's password
    proxy = kunready.start(**upstream(kafka, "SASL_SSL", mechanism))
    assert_refused(kafka, proxy, "auth", ["sidecar", mechanism])
    assert proxy.metrics().get_value("eosproxy_upstream_errors_total", kind="tls") == 0


def test_upstream_unknown_user_refused(kafka, kunready, monkeypatch):
    monkeypatch.setenv(UPSTREAM_PW_ENV, kafka.users["sidecar"])
    proxy = kunready.start(**upstream(kafka, "SASL_SSL", "SCRAM-SHA-256", user="nobody"))
    assert_refused(kafka, proxy, "auth", ["nobody"])


def test_upstream_wrong_ca_refused(kafka, kunready, monkeypatch):
    monkeypatch.setenv(UPSTREAM_PW_ENV, kafka.users["sidecar"])
    proxy = kunready.start(**upstream(kafka, "SASL_SSL", "SCRAM-SHA-512", ca=kafka.certs.rogue_ca))
    assert_refused(kafka, proxy, "tls", ["certificate"])
    # The handshake failed before any SASL: the password never left.
    assert proxy.metrics().get_value("eosproxy_upstream_errors_total", kind="auth") == 0


def test_upstream_plaintext_to_a_sasl_listener_is_not_ready(kafka, kunready):
    """No upstream.sasl against a SASL listener: the broker closes the
    unauthenticated connection, eosproxy stays unready and writes nothing."""
    proxy = kunready.start(**upstream(kafka, "SASL_PLAINTEXT"))
    assert_refused(kafka, proxy, "closed", ["connection closed before the broker answered",
                                           "upstream.tls and upstream.sasl"])


@pytest.fixture(scope="module")
def accounts(tmp_path_factory):
    return Accounts(tmp_path_factory.mktemp("users"))


def java_roundtrip(kafka, bootstrap, login):
    """The Java client (SaslAuthenticate v2, flexible) logs into eosproxy."""
    module = {"PLAIN": "plain.PlainLoginModule"}.get(login.mechanism, "scram.ScramLoginModule")
    jaas = (f"org.apache.kafka.common.security.{module} required "
            f'username="{login.user}" password="{login.password}";')
    props = {"security.protocol": login.protocol, "sasl.mechanism": login.mechanism,
             "sasl.jaas.config": jaas}
    if login.tls:
        props.update({"ssl.truststore.type": "PEM", "ssl.truststore.location": login.ca})
    topic = kafka.create_topic(unique("real-sec-java"), 2)
    prod = run_java(kafka, "produce", "--bootstrap", bootstrap, "--topic", topic,
                    "--count", 40, "--prefix", "sec", props=props)
    assert prod["error"] is None, prod
    cons = run_java(kafka, "consume", "--bootstrap", bootstrap, "--topic", topic, props=props)
    assert cons["error"] is None, cons
    assert sorted(r["value"] for r in cons["records"]) == sorted(f"sec-{i}" for i in range(40))
    assert kafka.record_count(topic) == 40


@pytest.mark.parametrize("client", ["kcat", "kafkajs", "java"])
def test_end_to_end_client_login_tls_and_upstream_login_tls(kafka, kproxy_factory, accounts,
                                                            monkeypatch, client):
    """A client logs into eosproxy with SCRAM over TLS; eosproxy logs into
    the broker as itself with SCRAM over TLS. Records land in the broker."""
    monkeypatch.setenv(UPSTREAM_PW_ENV, kafka.users["sidecar"])
    proxy = kproxy_factory(**upstream(kafka, "SASL_SSL", "SCRAM-SHA-512"),
                           **tls_listen(kafka.certs), **{"auth.users_file": accounts.file})
    login = accounts.login("alice", "SCRAM-SHA-256", "SASL_SSL", kafka.certs)
    if client == "java":
        java_roundtrip(kafka, proxy.bootstrap, login)
    else:
        assert_roundtrip(client, kafka, proxy.bootstrap, login)
    assert proxy.metrics().get_value("eosproxy_auth_logins_total", mechanism="SCRAM-SHA-256",
                                     result="ok") > 0


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_java_client_login_plaintext(kafka, kproxy_factory, accounts, mechanism):
    proxy = kproxy_factory(**{"auth.users_file": accounts.file})
    login = accounts.login("bob", mechanism, "SASL_PLAINTEXT")
    java_roundtrip(kafka, proxy.bootstrap, login)
    assert proxy.metrics().get_value("eosproxy_auth_logins_total", mechanism=mechanism,
                                     result="ok") > 0


def test_upstream_plaintext_to_a_tls_listener_is_not_ready(kafka, kunready):
    overrides = upstream(kafka, "PLAINTEXT")
    overrides["upstream.bootstrap"] = kafka.listener("SSL")
    proxy = kunready.start(**overrides)
    assert_refused(kafka, proxy, "protocol", ["the broker answered with TLS",
                                             "this listener wants upstream.tls"])


def test_upstream_tls_to_a_plaintext_listener_is_not_ready(kafka, kunready):
    overrides = upstream(kafka, "SSL")
    overrides["upstream.bootstrap"] = kafka.listener("PLAINTEXT")
    proxy = kunready.start(**overrides)
    assert_refused(kafka, proxy, "tls", ["TLS handshake failed"])


def test_acl_metadata_v12_by_topic_id_reveals_no_denied_topic(kafka, kproxy_factory, accounts):
    """Metadata v10+ can name topics by id alone (null names), which only a
    real broker serves. A user must not learn a denied topic that way."""
    import flexible
    from security import sasl_plain_login
    from helpers import Conn
    allowed = kafka.create_topic(unique("orders.id"), 1)
    denied = kafka.create_topic(unique("payments.id"), 1)
    ids = {t: flexible.metadata_v12(kafka.bootstrap, [t])["topics"][t]["id"]
           for t in (allowed, denied)}
    proxy = kproxy_factory(**{"auth.users_file": accounts.file, "auth.acls": [
        {"user": "alice", "produce": ["orders.*"], "consume": ["orders.*"]}]})
    with Conn(proxy.bootstrap) as c:
        assert sasl_plain_login(c, "alice", accounts.passwords["alice"])[0] == "ok"
        items = [tid.bytes + flexible.cstr(None) + flexible.TAGS for tid in ids.values()]
        body = flexible.carray(items) + b"\x00\x00" + flexible.TAGS
        c.send(flexible.flex_request(3, 12, 31, body))
        corr, resp = c.recv()
    assert corr == 31
    r = flexible.Flex(resp)
    r.tags()
    r.i32()
    r.carray(lambda x: (x.i32(), x.cstr(), x.i32(), x.cstr(), x.tags()))
    r.cstr()
    r.i32()
    seen = {}

    def topic(x):
        err, name, tid = x.i16(), x.cstr(), x.uuid()
        x.bool()
        parts = x.carray(lambda y: (y.i16(), y.i32(), y.i32(), y.i32(), y.carray(lambda z: z.i32()),
                                    y.carray(lambda z: z.i32()), y.carray(lambda z: z.i32()),
                                    y.tags()))
        x.i32()
        x.tags()
        seen[tid] = (err, name, len(parts or []))

    r.carray(topic)
    leaked = {tid: v for tid, v in seen.items() if tid == ids[denied] and v[0] == 0}
    assert not leaked, f"alice learned the denied topic by its id: {leaked}"
    assert all(v[1] != denied for v in seen.values() if v[0] == 0), seen
