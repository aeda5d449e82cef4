"""Dead-letter routing on the producer path (issue 11, item 4), on the mock:
the rule's own checks (dedup.require_event_id, json:FIELD) with
dlq.on_produce_error reject and dlq, a broker refusal answered by writing
the batch again one record at a time, and a DLQ that cannot be written.

The producer is confluent-kafka (librdkafka) through eosproxy; what landed
is read straight from the mock (not through eosproxy), headers included.
A broker refuses a batch as a whole, so a partition whose batch holds one
bad record is refused whole with reject: each test keeps the partitions
it compares in batches of their own (one flush, linger).
"""

import struct
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from helpers import unique, wait_until
from redis_server import redis_server  # noqa: F401 (fixture)

NO_ID = "no eventId (dedup.require_event_id)"


def rule(topic, event_id="header:event-id", on_error=None, require=True, delivery="at-least-once",
         dlq_topic=None):
    r = {"match": topic, "delivery": delivery,
         "dedup": {"event_id": event_id, "require_event_id": require}}
    if on_error:
        r["dlq"] = {"on_produce_error": on_error}
        if dlq_topic:
            r["dlq"]["topic"] = dlq_topic
    return r


def produce(bootstrap, topic, records, codec="none", timeout_ms=60000):
    """records: [(partition, key, value, event_id or None)], sent in one
    flush. Returns [(record, KafkaError or None)] in send order."""
    out = [None] * len(records)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 200,
                  "enable.idempotence": False, "compression.codec": codec,
                  "message.timeout.ms": timeout_ms, "retries": 0})
    p.list_topics(topic, timeout=10)

    def report(i):
        return lambda err, msg: out.__setitem__(i, (records[i], err))
    for i, (part, key, val, eid) in enumerate(records):
        headers = [("event-id", eid.encode())] if eid is not None else [("other", b"x")]
        p.produce(topic, value=val.encode() if val is not None else None,
                  key=key.encode() if key else None, partition=part, headers=headers,
                  on_delivery=report(i))
    assert p.flush(timeout_ms / 1000 + 30) == 0, "delivery reports missing"
    return out


def read_all(bootstrap, topic, partitions, expect, timeout=30.0):
    """Every record of topic straight from the cluster: [(partition, key,
    value, {header: value})], waiting until `expect` are there."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("dlqp-read"),
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    got = []
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(got) < expect:
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            got.append((m.partition(), m.key(), m.value(), dict(m.headers() or [])))
        # a little longer, so extra records would show
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            m = c.poll(0.2)
            if m is not None and not m.error():
                got.append((m.partition(), m.key(), m.value(), dict(m.headers() or [])))
    finally:
        c.close()
    return got


def dlq_count(px, topic, reason):
    return px.metrics().get_value("eosproxy_dlq_records_total", topic=topic, reason=reason)


def start(proxy_factory, redis, rules):
    return proxy_factory(topics=rules, **{"redis.url": redis.url})


def test_reject_refuses_the_partition_others_written(mock, proxy_factory, redis_server,
                                                     needs_proxy):
    """require_event_id without a dlq section: the batch holding a record
    without an eventId gets INVALID_RECORD (the whole batch, as a broker
    refuses one); the other partition of the same request is written."""
    topic = mock.topic(unique("dqp-reject"), 2)
    px = start(proxy_factory, redis_server, [rule(topic)])
    recs = [(0, None, f"p0-{i}", f"id-p0-{i}") for i in range(5)]
    recs += [(1, None, "p1-0", "id-p1-0"), (1, None, "p1-bad", None), (1, None, "p1-2", "id-p1-2")]
    res = produce(px.bootstrap, topic, recs)
    for (part, _, val, _), err in res:
        if part == 0:
            assert err is None, (val, err)
        else:
            assert err is not None and err.code() == KafkaError.INVALID_RECORD, (val, err)
    got = read_all(mock.bootstrap, topic, 2, expect=5)
    assert sorted(v.decode() for _, _, v, _ in got) == [f"p0-{i}" for i in range(5)]
    assert all(p == 0 for p, _, _, _ in got)


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_dlq_moves_records_without_event_id(mock, proxy_factory, redis_server, needs_proxy, codec):
    """on_produce_error dlq: the record without an eventId is in the DLQ
    (default name <topic>.DLT) with its key, value, headers and Spring's
    DLT headers; the rest of its batch is in the topic, in order; a batch
    of nothing but such records leaves its partition empty; the client is
    told success for every record."""
    topic = mock.topic(unique("dqp-dlq"), 2)
    dlq = mock.topic(topic + ".DLT", 1)
    px = start(proxy_factory, redis_server, [rule(topic, on_error="dlq")])
    recs = [(0, "k0", "a", "id-a"), (0, "k1", "b", "id-b"), (0, "kbad", "bad", None),
            (0, "k3", "c", "id-c"), (1, "kx", "only-bad-1", None), (1, "ky", "only-bad-2", None)]
    res = produce(px.bootstrap, topic, recs, codec=codec)
    assert all(err is None for _, err in res), res
    got = read_all(mock.bootstrap, topic, 2, expect=3)
    assert [(p, v.decode()) for p, _, v, _ in got] == [(0, "a"), (0, "b"), (0, "c")]
    dead = read_all(mock.bootstrap, dlq, 1, expect=3)
    assert sorted(v.decode() for _, _, v, _ in dead) == ["bad", "only-bad-1", "only-bad-2"]
    for _, key, val, h in dead:
        want_part = 0 if val == b"bad" else 1
        assert key == {b"bad": b"kbad", b"only-bad-1": b"kx", b"only-bad-2": b"ky"}[val]
        assert h["other"] == b"x"  # the original header, kept
        assert h["kafka_dlt-original-topic"] == topic.encode()
        assert struct.unpack(">i", h["kafka_dlt-original-partition"])[0] == want_part
        assert struct.unpack(">q", h["kafka_dlt-original-offset"])[0] == -1
        assert len(h["kafka_dlt-original-timestamp"]) == 8
        assert h["kafka_dlt-original-timestamp-type"] == b"CreateTime"
        assert h["kafka_dlt-exception-message"] == NO_ID.encode()
        assert h["kafka_dlt-exception-fqcn"] == b"eosproxy.DeadLetter"
        assert "kafka_dlt-original-consumer-group" not in h
    assert dlq_count(px, topic, "no_event_id") == 3


def test_json_field_not_json_and_missing_field(mock, proxy_factory, redis_server, needs_proxy):
    """json:orderId: a value that is not JSON goes to the DLQ with the
    reason "value is not JSON", a JSON value without the field with "no
    eventId"; the two good records are in the topic."""
    topic = mock.topic(unique("dqp-json"), 1)
    dlq = mock.topic(unique("dqp-json-dead"), 1)
    px = start(proxy_factory, redis_server,
               [rule(topic, event_id="json:orderId", on_error="dlq", dlq_topic=dlq)])
    recs = [(0, None, '{"orderId": "o1", "n": 1}', "h1"), (0, None, "not json {", "h2"),
            (0, None, '{"other": 2}', "h3"), (0, None, '{"orderId": 42}', "h4")]
    res = produce(px.bootstrap, topic, recs)
    assert all(err is None for _, err in res), res
    got = read_all(mock.bootstrap, topic, 1, expect=2)
    assert [v.decode() for _, _, v, _ in got] == ['{"orderId": "o1", "n": 1}', '{"orderId": 42}']
    dead = read_all(mock.bootstrap, dlq, 1, expect=2)
    reasons = {v.decode(): h["kafka_dlt-exception-message"].decode() for _, _, v, h in dead}
    assert reasons == {"not json {": "value is not JSON (dedup.event_id json:orderId)",
                       '{"other": 2}': NO_ID}
    assert dlq_count(px, topic, "not_json") == 1
    assert dlq_count(px, topic, "no_event_id") == 1


@pytest.mark.parametrize("delivery", ["at-least-once", "idempotent"])
def test_broker_refusal_is_written_again_one_by_one(mock, proxy_factory, redis_server,
                                                    needs_proxy, delivery):
    """The broker refuses a batch (MESSAGE_TOO_LARGE, pushed on the mock):
    eosproxy writes its records again one by one to the same partition; here
    the mock takes them all, so the topic holds every record in order, the
    DLQ none, and the client sees success (pass-through and upgrade
    routes)."""
    topic = mock.topic(unique("dqp-refused"), 1)
    dlq = mock.topic(topic + ".DLT", 1)
    px = start(proxy_factory, redis_server,
               [rule(topic, require=False, on_error="dlq", delivery=delivery)])
    # the topic's leader and the first produce of the upgrade's lane are known first
    produce(px.bootstrap, topic, [(0, None, "warm", "w")])
    mock.cmd("err 0 1 10")
    recs = [(0, None, f"r{i}", f"id{i}") for i in range(6)]
    res = produce(px.bootstrap, topic, recs)
    assert all(err is None for _, err in res), res
    got = read_all(mock.bootstrap, topic, 1, expect=7)
    assert [v.decode() for _, _, v, _ in got] == ["warm"] + [f"r{i}" for i in range(6)]
    assert read_all(mock.bootstrap, dlq, 1, expect=0, timeout=2) == []
    assert "refused by the broker (MESSAGE_TOO_LARGE)" in px.log


def test_dlq_unavailable_client_gets_the_error(mock, proxy_factory, redis_server, needs_proxy):
    """The DLQ's leader fails every write until the writer's 10 s timeout:
    the partition with the record without an eventId is refused
    (INVALID_RECORD) as with reject, and nothing of it is in the topic; the
    other partition is written. Nothing is lost: the client knows."""
    topic = mock.topic(unique("dqp-dlqdown"), 2)
    dlq = mock.topic(topic + ".DLT", 1)
    mock.cmd(f"leader {topic} 0 1")
    mock.cmd(f"leader {topic} 1 1")
    mock.cmd(f"leader {dlq} 0 2")
    px = start(proxy_factory, redis_server, [rule(topic, on_error="dlq")])
    mock.cmd("rtt 2 0 1000 19 0")  # NOT_ENOUGH_REPLICAS for every Produce to broker 2
    recs = [(0, None, "good-0", "g0"), (0, None, "good-1", "g1"),
            (1, None, "p1-ok", "g2"), (1, None, "p1-bad", None)]
    res = produce(px.bootstrap, topic, recs)
    for (part, _, val, _), err in res:
        if part == 0:
            assert err is None, (val, err)
        else:
            assert err is not None and err.code() == KafkaError.INVALID_RECORD, (val, err)
    got = read_all(mock.bootstrap, topic, 2, expect=2)
    assert sorted(v.decode() for _, _, v, _ in got) == ["good-0", "good-1"]
    m = px.metrics()
    assert m.get_value("eosproxy_dlq_write_failures_total") >= 1
    assert dlq_count(px, topic, "no_event_id") == 0
