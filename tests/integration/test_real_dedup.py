"""Consumer dedup by eventId (Redis) with a real Kafka 4 broker: batches as
a real broker stores and serves them (compressed by the producer, Fetch
capped at v12 by eosproxy while dedup rules exist), read through eosproxy
by kafka-python, librdkafka and the Java client. Each eventId reaches each
consumer once; after a commit through eosproxy, a new group reads nothing."""

import pytest
from confluent_kafka import Producer

from helpers import unique, wait_until
from kafka_real import run_java
from redis_server import redis_server  # noqa: F401 (fixture)
from test_dedup import dedup_rule, ids_of, kp_read

pytestmark = pytest.mark.real_kafka


def produce_direct(kafka, topic, records, codec):
    """records: [(partition, event_id, value)], straight to the broker."""
    errors = []
    p = Producer({"bootstrap.servers": kafka.bootstrap, "acks": "all", "linger.ms": 200,
                  "compression.codec": codec, "message.timeout.ms": 60000})
    for part, eid, val in records:
        p.produce(topic, value=val.encode(), partition=part, headers=[("event-id", eid.encode())],
                  on_delivery=lambda err, msg: err and errors.append(err))
    assert p.flush(60) == 0
    assert not errors, errors


def records_with_duplicates(parts, n):
    """n distinct eventIds, each written once, a third of them twice more
    (same partition and another one): [(partition, event_id, value)]."""
    out = []
    for i in range(n):
        out.append((i % parts, f"e{i}", f"e{i}:first"))
    for i in range(0, n, 3):
        out.append((i % parts, f"e{i}", f"e{i}:dup-same"))
        out.append(((i + 1) % parts, f"e{i}", f"e{i}:dup-other"))
    return out


def confluent_read(bootstrap, topic, parts, want, timeout=60):
    import time
    from confluent_kafka import Consumer, KafkaException, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("real-dd-ck"),
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    got = []
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(parts)])
        deadline = time.monotonic() + timeout
        settle = None
        while time.monotonic() < deadline:
            m = c.poll(0.3)
            if m is not None:
                if m.error():
                    if m.error().code() == -191:  # _PARTITION_EOF is off; anything else fails
                        continue
                    raise KafkaException(m.error())
                got.append(m.value().decode())
            if len(got) >= want:
                settle = settle or time.monotonic() + 2  # anything extra would follow
                if time.monotonic() >= settle:
                    break
    finally:
        c.close()
    return got


@pytest.mark.parametrize("client,codec", [("kafka-python", "zstd"), ("confluent", "lz4"),
                                          ("java", "gzip"), ("java", "none")])
def test_dedup_each_event_id_once(kafka, kproxy_factory, redis_server, client, codec):  # noqa: F811
    proxy = kproxy_factory(topics=[dedup_rule("dd-*")], **{"redis.url": redis_server.url})
    parts, n = 3, 90
    topic = kafka.create_topic(unique("dd-real"), parts)
    produce_direct(kafka, topic, records_with_duplicates(parts, n), codec)
    assert kafka.record_count(topic) == n + 2 * (n // 3), "the broker holds every copy"
    want = {f"e{i}" for i in range(n)}
    if client == "kafka-python":
        got = kp_read(proxy.bootstrap, topic, unique("real-dd-kp"), parts, proxy=proxy,
                      timeout=60)
        ids = ids_of(got)
    elif client == "confluent":
        ids = ids_of([(0, 0, v.split(":")[0], v) for v in
                      confluent_read(proxy.bootstrap, topic, parts, n)])
    else:
        res = run_java(kafka, "consume", "--bootstrap", proxy.bootstrap, "--topic", topic)
        assert res["error"] is None, res
        ids = ids_of([(0, 0, r["value"].split(":")[0], r["value"]) for r in res["records"]])
    assert set(ids) == want
    assert all(c == 1 for c in ids.values()), \
        f"delivered more than once: {[k for k, c in ids.items() if c > 1]}"


def test_dedup_commit_then_new_group_reads_nothing(kafka, kproxy_factory, redis_server):  # noqa: F811
    proxy = kproxy_factory(topics=[dedup_rule("dd-*")], **{"redis.url": redis_server.url})
    parts = 2
    topic = kafka.create_topic(unique("dd-real-commit"), parts)
    produce_direct(kafka, topic, [(i % parts, f"c{i}", f"c{i}:v") for i in range(30)], "snappy")
    first = kp_read(proxy.bootstrap, topic, unique("real-dd-g"), parts, commit=True, proxy=proxy)
    assert set(ids_of(first)) == {f"c{i}" for i in range(30)}
    wait_until(lambda: proxy.metrics().get_value("eosproxy_dedup_commit_marks_total") >= 30,
               timeout=30, what="done marks after the commit")
    assert kp_read(proxy.bootstrap, topic, unique("real-dd-new"), parts, proxy=proxy) == []
