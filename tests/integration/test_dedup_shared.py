"""Consumer dedup when the commit does not go through the eosproxy that
delivered: records delivered by one eosproxy and committed through another
one of the same scope, or through the same eosproxy after a restart, must
become done all the same.

The story in every test: eventIds e0..e9 are delivered to a consumer of
group G through eosproxy A, without a commit. The commit of offset 10 then
reaches the cluster through ANOTHER eosproxy (a second sidecar, or A's
replacement after A stopped or was killed). Once the marks of e0..e9 are
no longer pending (done, or expired after a short `redis.pending_ttl`) and
pending_ttl has passed since the commit, copies of e0..e9 are produced
after them, with two new eventIds n0, n1. A consumer of G reading from the
committed offset must get exactly n0 and n1: the copies are duplicates of
records G consumed and committed. If the commit
was only honoured by the eosproxy that delivered (delivered eventIds kept in
its memory alone), e0..e9 stay pending until pending_ttl and then come back
as new: the duplicates a user sees, which these tests catch.

Records are produced straight to the cluster (test_dedup.produce, header
`event-id`); consumers are kafka-python (CRC checks on) and librdkafka
(confluent-kafka). Every test runs on the mock and on the real Kafka broker
(`cluster`): one partition, single-member groups with manual assignment,
which both serve alike. Assertions are on the records the consumers got,
with generous deadlines and no timing assertions.
"""

import time

import pytest
from confluent_kafka import Consumer, KafkaException
from confluent_kafka import TopicPartition as CTopicPartition
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

import conftest
from helpers import unique, wait_until
from redis_server import redis_server  # noqa: F401 (fixture)
from test_dedup import event_id, ids_of, kp_consumer, kp_read, produce

# Short, so that a pending mark left behind expires within the test; long
# enough that the delivery -> commit step of every test fits in it many
# times over (a commit seen while the marks are still pending must win).
PENDING_TTL_S = 3
PENDING_TTL = f"{PENDING_TTL_S}s"
N = 10  # e0..e9 at offsets 0..9, committed offset N


def overrides(redis, scope):
    """One rule, one scope, one Redis: what every eosproxy of a test runs."""
    rule = {"match": "dd-*", "delivery": "at-least-once",
            "dedup": {"event_id": "header:event-id", "ttl": "1h", "scope": scope}}
    return {"topics": [rule], "redis.url": redis.url, "redis.pending_ttl": PENDING_TTL}


def mark_key(scope, eid):
    return f"eosproxy:{scope}:{eid}"


def marks(redis, scope, ids):
    return {eid: redis.cli("GET", mark_key(scope, eid)) for eid in ids}


def first_ids():
    return [f"e{i}" for i in range(N)]


def assert_pending(redis, scope):
    """e0..e9 are pending right after their delivery: the setup (scope, key
    names) is what the tests believe it is."""
    m = marks(redis, scope, first_ids())
    assert all(v is not None and v.startswith(b"p:") for v in m.values()), \
        f"e0..e9 not pending after their delivery: {m}"


def wait_settled(redis, scope, committed_at):
    """Waits until no mark of e0..e9 is pending any more (each is done, or
    expired after pending_ttl: the commit went unnoticed), and until
    pending_ttl has passed since the commit, so that a done mark written
    with the pending mark's lifetime would be gone too. Then the copies
    produced next meet Redis's final word on e0..e9."""
    def settled():
        m = marks(redis, scope, first_ids())
        return all(v is None or not v.startswith(b"p:") for v in m.values())
    wait_until(settled, timeout=60, interval=0.2, what="e0..e9 no longer pending")
    time.sleep(max(0.0, committed_at + PENDING_TTL_S + 0.5 - time.monotonic()))


def produce_first(cluster, topic):
    produce(cluster, topic, [(0, eid, f"{eid}:first") for eid in first_ids()])


def produce_copies_and_new(cluster, topic):
    """Offsets 10..21: copies of e0..e9, then n0 and n1."""
    produce(cluster, topic, [(0, eid, f"{eid}:copy") for eid in first_ids()]
            + [(0, "n0", "n0:new"), (0, "n1", "n1:new")])


def assert_only_new(got, through):
    """got: [(partition, offset, event_id, value)] read in group G from the
    committed offset."""
    ids = sorted(r[2] for r in got)
    assert ids == ["n0", "n1"], \
        f"group G read through {through} got {ids} ({len(got)} records), want exactly " \
        f"n0, n1: the copies of e0..e9 were committed duplicates: {got}"
    assert [(r[1], r[3]) for r in sorted(got)] == [(20, "n0:new"), (21, "n1:new")], got


def kp_commit(consumer, topic, offset):
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.commit({tp: OffsetAndMetadata(offset, "")})


def kp_committed(bootstrap, topic, group):
    c = kp_consumer(bootstrap, group)
    try:
        return c.committed(TopicPartition(topic, 0))
    finally:
        c.close()


# ---------------------------------------------------------------- librdkafka

def rd_consumer(bootstrap, group):
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "auto.offset.reset": "earliest", "enable.auto.commit": False,
                     "check.crcs": True, "fetch.wait.max.ms": 200})


def rd_read(bootstrap, topic, group, end, timeout=40.0):
    """librdkafka in group G, partition 0 assigned at its committed offset,
    read until its position reaches end (the high watermark). Returns
    [(partition, offset, event_id, value)]."""
    c = rd_consumer(bootstrap, group)
    got = []
    try:
        c.assign([CTopicPartition(topic, 0)])  # no offset: the committed one
        deadline = time.monotonic() + timeout
        while c.position([CTopicPartition(topic, 0)])[0].offset < end:
            assert time.monotonic() < deadline, \
                f"librdkafka stuck at {c.position([CTopicPartition(topic, 0)])} < {end}: {got}"
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            got.append((m.partition(), m.offset(), event_id(m.headers()), m.value().decode()))
    finally:
        c.close()
    return got


def rd_commit(bootstrap, topic, group, offset):
    """Commits offset for partition 0 in group, reading nothing."""
    c = rd_consumer(bootstrap, group)
    try:
        res = c.commit(offsets=[CTopicPartition(topic, 0, offset)], asynchronous=False)
        assert all(tp.error is None for tp in res), res
    finally:
        c.close()


# ---------------------------------------------------------------- tests

def test_commit_through_another_sidecar_kafka_python(cluster, redis_server,
                                                     cluster_proxy_factory, needs_proxy):
    """Two sidecars of one scope: kafka-python reads e0..e9 through A and
    does not commit; a consumer of the same group commits offset 10 through
    B without reading (the commit crosses sidecars). Past pending_ttl,
    copies of e0..e9 plus n0, n1 are produced: group G, reading from its
    committed offset through B and then through A, gets exactly n0 and n1
    each time."""
    scope = unique("shared")
    a = cluster_proxy_factory(**overrides(redis_server, scope))
    b = cluster_proxy_factory(**overrides(redis_server, scope))
    topic = cluster.topic(unique("dd-cross"), 1)
    group = unique("g")
    produce_first(cluster, topic)

    committer = kp_consumer(b.bootstrap, group)  # connected before the read
    try:
        got = kp_read(a.bootstrap, topic, group, 1, proxy=a)
        assert sorted(ids_of(got)) == sorted(first_ids()), got
        assert_pending(redis_server, scope)
        kp_commit(committer, topic, N)
        committed_at = time.monotonic()
    finally:
        committer.close()
    assert kp_committed(a.bootstrap, topic, group) == N

    wait_settled(redis_server, scope, committed_at)
    produce_copies_and_new(cluster, topic)
    assert_only_new(kp_read(b.bootstrap, topic, group, 1, proxy=b), "B (the committer)")
    assert_only_new(kp_read(a.bootstrap, topic, group, 1, proxy=a), "A (the deliverer)")


def test_commit_through_another_sidecar_librdkafka(cluster, redis_server,
                                                   cluster_proxy_factory, needs_proxy):
    """The same as the kafka-python test with librdkafka: read e0..e9
    through A without a commit, commit offset 10 through B without reading;
    past pending_ttl, group G reads exactly n0 and n1 out of the copies of
    e0..e9 plus n0, n1, through B and through A."""
    scope = unique("shared")
    a = cluster_proxy_factory(**overrides(redis_server, scope))
    b = cluster_proxy_factory(**overrides(redis_server, scope))
    topic = cluster.topic(unique("dd-cross-rd"), 1)
    group = unique("g")
    produce_first(cluster, topic)

    got = rd_read(a.bootstrap, topic, group, N)
    assert sorted(ids_of(got)) == sorted(first_ids()), got
    assert_pending(redis_server, scope)
    rd_commit(b.bootstrap, topic, group, N)
    committed_at = time.monotonic()

    wait_settled(redis_server, scope, committed_at)
    produce_copies_and_new(cluster, topic)
    end = N + N + 2
    assert_only_new(rd_read(b.bootstrap, topic, group, end), "B (the committer)")
    assert_only_new(rd_read(a.bootstrap, topic, group, end), "A (the deliverer)")


def start_on_same_ports(factory, old, cfg):
    """A new eosproxy from the factory, listening where old did (bootstrap
    and broker ports; eosproxy binds with SO_REUSEADDR), so that clients
    connected to old reconnect to it. The factory hands every eosproxy
    fresh ports, so listen.port and listen.broker_port_base are overridden
    and the new Proxy's attributes pointed at them; its admin port (which
    the factory's readiness wait polls) stays its own."""
    p = factory(**cfg, **{"listen.port": old.port,
                          "listen.broker_port_base": old.broker_port_base})
    p.port, p.bootstrap, p.broker_port_base = old.port, old.bootstrap, old.broker_port_base
    return p


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_sidecar_restarted_between_delivery_and_commit(cluster, redis_server,
                                                       cluster_proxy_factory, needs_proxy,
                                                       tmp_path, stop):
    """One sidecar A: kafka-python reads e0..e9 through it without a
    commit and keeps its KafkaConsumer; A goes away (SIGTERM, a clean stop,
    or SIGKILL, a crash) and a new eosproxy with the same config and Redis
    takes its ports; the same consumer object reconnects and commits offset
    10 through it. Past pending_ttl, group G reads exactly n0 and n1 out of
    the copies of e0..e9 plus n0, n1."""
    scope = unique("shared")
    cfg = overrides(redis_server, scope)
    if stop == "sigterm":
        a = cluster_proxy_factory(**cfg)  # teardown checks its exit 0 too
    else:  # outside the factory, whose teardown wants exit 0 of everyone
        a = conftest.Proxy(cluster, tmp_path, "eosproxy-killed", cfg)
    try:
        if stop == "sigkill":
            a._wait_ready()
        topic = cluster.topic(unique("dd-restart"), 1)
        group = unique("g")
        produce_first(cluster, topic)

        c = kp_consumer(a.bootstrap, group)
        try:
            got = kp_read(a.bootstrap, topic, group, 1, consumer=c, proxy=a)
            assert sorted(ids_of(got)) == sorted(first_ids()), got
            assert_pending(redis_server, scope)
            if stop == "sigterm":
                assert a.stop() == 0, a.log[-3000:]
            else:
                a.proc.kill()
                a.proc.wait(10)
                a._log.close()
            again = start_on_same_ports(cluster_proxy_factory, a, cfg)
            kp_commit(c, topic, N)
            committed_at = time.monotonic()
        finally:
            c.close()
    finally:
        if stop == "sigkill" and a.proc.poll() is None:
            a.proc.kill()
            a.proc.wait(10)
            a._log.close()
    assert kp_committed(again.bootstrap, topic, group) == N

    wait_settled(redis_server, scope, committed_at)
    produce_copies_and_new(cluster, topic)
    assert_only_new(kp_read(again.bootstrap, topic, group, 1, proxy=again), "the new eosproxy")
