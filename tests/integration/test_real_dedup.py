"""Consumer dedup by eventId (Redis) with a real Kafka 4 broker, read
through eosproxy by the Java client (tests/java, part of the real-Kafka
test bed): batches as the broker stores them (compressed by the producer,
Fetch capped at v12 by eosproxy while dedup rules exist), duplicates within
and across partitions. Each eventId reaches the consumer once.

kafka-python's and librdkafka's dedup paths, commits and Redis outages run
on both the mock and this broker in test_dedup.py (`cluster`)."""

import pytest
from confluent_kafka import Producer

from helpers import unique
from kafka_real import run_java
from redis_server import redis_server  # noqa: F401 (fixture)
from test_dedup import dedup_rule, ids_of, records_with_duplicates

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


@pytest.mark.kafka_only("the Java client's jars and harness come with the real-Kafka test "
                        "bed (kafka-python and librdkafka: test_dedup.py, on both kinds)")
@pytest.mark.parametrize("codec", ["gzip", "none"])
def test_java_dedup_each_event_id_once(kafka, kproxy_factory, redis_server, codec):  # noqa: F811
    proxy = kproxy_factory(topics=[dedup_rule("dd-*")], **{"redis.url": redis_server.url})
    parts, n = 3, 90
    topic = kafka.create_topic(unique("dd-real"), parts)
    produce_direct(kafka, topic, records_with_duplicates(parts, n), codec)
    assert kafka.record_count(topic) == n + 2 * (n // 3), "the broker holds every copy"
    want = {f"e{i}" for i in range(n)}
    res = run_java(kafka, "consume", "--bootstrap", proxy.bootstrap, "--topic", topic)
    assert res["error"] is None, res
    ids = ids_of([(0, 0, r["value"].split(":")[0], r["value"]) for r in res["records"]])
    assert set(ids) == want
    assert all(c == 1 for c in ids.values()), \
        f"delivered more than once: {[k for k, c in ids.items() if c > 1]}"
