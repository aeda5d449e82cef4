"""Upstream faults injected into the mock (tests/mockcluster commands):
clients going through eosproxy ride them out like they would against the
brokers themselves, and eosproxy stays up."""

import time

import pytest
from confluent_kafka import Producer
from kafka import KafkaProducer
from kafka.errors import KafkaError

from helpers import kcat_consume, kcat_metadata, unique, wait_until

PRODUCE = 0


class Recorder:
    def __init__(self):
        self.ok, self.failed = [], []

    def __call__(self, err, msg):
        if err:
            self.failed.append(err)
        else:
            self.ok.append((msg.partition(), msg.offset(), msg.value().decode()))


def producer(bootstrap, **conf):
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                     "message.timeout.ms": 90000, "retry.backoff.ms": 200,
                     "reconnect.backoff.max.ms": 1000, **conf})


def leader_of(proxy, topic, partition):
    md = kcat_metadata(proxy.bootstrap, topic)
    parts = md["topics"][0]["partitions"]
    return next(p["leader"] for p in parts if p["partition"] == partition)


def assert_all_stored_once(mock, topic, values):
    stored = [v for _, _, _, v in kcat_consume(mock.bootstrap, topic)]
    assert sorted(stored) == sorted(values), \
        f"stored {len(stored)} records, {len(set(stored))} distinct; produced {len(values)}"


def test_broker_drops_produce_connection(mock, proxy):
    """The broker drops the connection on two Produce requests: the client
    reconnects through eosproxy and every record lands once (the mock drops
    before appending, so a duplicate would be eosproxy's doing)."""
    topic = mock.topic(unique("flt-drop"), 2)
    before = proxy.metrics().get_value("eosproxy_upstream_errors_total", kind="closed") \
        if proxy.admin_url else 0
    mock.cmd(f"err {PRODUCE} 2 -195")
    rec = Recorder()
    p = producer(proxy.bootstrap)
    values = [f"drop-{i}" for i in range(200)]
    for i, v in enumerate(values):
        p.produce(topic, key=f"k{i % 4}".encode(), value=v.encode(), on_delivery=rec)
    assert p.flush(120) == 0
    assert not rec.failed, rec.failed
    assert len(rec.ok) == 200
    assert_all_stored_once(mock, topic, values)
    assert proxy.alive()
    if proxy.admin_url:
        assert proxy.metrics().get_value("eosproxy_upstream_errors_total", kind="closed") > before


def test_broker_down_then_up(mock, proxy):
    """The partition leader refuses connections for a while; records sent
    meanwhile are delivered once it is back."""
    topic = mock.topic(unique("flt-down"), 1)
    rec = Recorder()
    p = producer(proxy.bootstrap)
    p.produce(topic, value=b"before-0", on_delivery=rec)  # connections and metadata are up
    assert p.flush(60) == 0 and rec.ok
    leader = leader_of(proxy, topic, 0)

    mock.cmd(f"down {leader}")
    values = [f"during-{i}" for i in range(50)]
    for v in values:
        p.produce(topic, value=v.encode(), on_delivery=rec)
    deadline = time.monotonic() + 3  # let the client try (and fail) against the downed broker
    while time.monotonic() < deadline:
        p.poll(0.1)
    assert len(rec.ok) == 1, "records were acknowledged while their leader was down"
    assert proxy.alive()
    if proxy.admin_url:
        assert proxy.metrics().get_value("eosproxy_upstream_errors_total", kind="connect") > 0
    mock.cmd(f"up {leader}")
    assert p.flush(120) == 0
    assert not rec.failed, rec.failed

    stored = [v for _, _, _, v in kcat_consume(proxy.bootstrap, topic)]
    assert stored[0] == "before-0"
    assert set(stored[1:]) == set(values), "records sent while the broker was down are missing"
    # One partition: at-least-once allows a resend, but never reordering of what landed first.
    firsts = list(dict.fromkeys(stored[1:]))
    assert firsts == values


def test_partition_leader_moves(mock, proxy, needs_proxy):
    """The leader moves to another broker mid-stream: the client is told
    NOT_LEADER, re-reads metadata through eosproxy, and follows the leader
    to the new broker's eosproxy port."""
    topic = mock.topic(unique("flt-leader"), 1)
    mock.cmd(f"leader {topic} 0 1")
    rec = Recorder()
    p = producer(proxy.bootstrap, **{"topic.metadata.refresh.interval.ms": 1000})
    first = [f"on-1-{i}" for i in range(50)]
    for v in first:
        p.produce(topic, value=v.encode(), on_delivery=rec)
    assert p.flush(60) == 0

    mock.cmd(f"leader {topic} 0 3")
    wait_until(lambda: leader_of(proxy, topic, 0) == 3, timeout=30, what="leader 3 in metadata")
    md = kcat_metadata(proxy.bootstrap, topic)
    addr = {b["id"]: b["name"] for b in md["brokers"]}[3]
    assert addr == proxy.broker_addr(3)

    second = [f"on-3-{i}" for i in range(50)]
    for v in second:
        p.produce(topic, value=v.encode(), on_delivery=rec)
    assert p.flush(90) == 0
    assert not rec.failed, rec.failed
    stored = [v for _, _, _, v in kcat_consume(proxy.bootstrap, topic)]
    assert stored == first + second


def test_slow_broker_responses_keep_order(mock, proxy):
    """The leader answers Produce slowly; pipelined requests still get their
    own responses, in order, and every record lands once."""
    topic = mock.topic(unique("flt-slow"), 1)
    rec = Recorder()
    p = producer(proxy.bootstrap, **{"linger.ms": 0, "max.in.flight": 5, "batch.num.messages": 5})
    p.produce(topic, value=b"warm", on_delivery=rec)
    assert p.flush(60) == 0
    leader = leader_of(proxy, topic, 0)
    mock.cmd(f"rtt {leader} {PRODUCE} 10 0 300")
    values = [f"slow-{i}" for i in range(100)]
    for v in values:
        p.produce(topic, value=v.encode(), on_delivery=rec)
    assert p.flush(120) == 0
    assert not rec.failed, rec.failed
    stored = [v for _, _, _, v in kcat_consume(proxy.bootstrap, topic)]
    assert stored == ["warm"] + values
    offsets = [o for _, o, v in sorted(rec.ok, key=lambda r: r[1])]
    assert offsets == list(range(101))


def test_broker_error_reaches_the_client_unchanged(mock, proxy):
    """A non-retriable Produce error from the broker (MESSAGE_TOO_LARGE, 10)
    is what the client sees, and nothing is written."""
    topic = mock.topic(unique("flt-err"), 1)
    kp = KafkaProducer(bootstrap_servers=proxy.bootstrap, acks=1, retries=0,
                       request_timeout_ms=30000, max_block_ms=30000)
    try:
        kp.send(topic, b"ok-first").get(timeout=30)
        mock.cmd(f"err {PRODUCE} 1 10")
        with pytest.raises(KafkaError) as exc:
            kp.send(topic, b"refused").get(timeout=30)
        assert type(exc.value).__name__ == "MessageSizeTooLargeError", repr(exc.value)
        kp.send(topic, b"ok-after").get(timeout=30)
    finally:
        kp.close(10)
    stored = [v for _, _, _, v in kcat_consume(proxy.bootstrap, topic)]
    assert stored == ["ok-first", "ok-after"]


def test_consumer_survives_fetch_connection_drops(mock, proxy):
    """Fetch connections dropped by the broker: the consumer reconnects via
    eosproxy and reads everything."""
    from confluent_kafka import Consumer
    topic = mock.topic(unique("flt-fetch"), 2)
    rec = Recorder()
    p = producer(proxy.bootstrap)
    values = [f"fetch-{i}" for i in range(300)]
    for i, v in enumerate(values):
        p.produce(topic, key=f"k{i % 5}".encode(), value=v.encode(), on_delivery=rec)
    assert p.flush(60) == 0
    mock.cmd("err 1 3 -195")  # the next 3 Fetch requests lose their connection
    c = Consumer({"bootstrap.servers": proxy.bootstrap, "group.id": unique("flt-fetch-g"),
                  "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                  "heartbeat.interval.ms": 500})
    c.subscribe([topic])
    got = []
    try:
        deadline = time.monotonic() + 90
        while len(got) < len(values) and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m.value().decode())
    finally:
        c.close()
    assert sorted(set(got)) == sorted(values)
    assert proxy.alive()
