"""Dead-letter routing on the producer path against real Apache Kafka 4
(issue 11, item 4): a broker that really refuses a record (a topic with a
small max.message.bytes), the rule's own checks with Spring's DLT headers,
and a DLQ the broker refuses too.

The producer is confluent-kafka (librdkafka) through eosproxy; the topics
are read straight from the broker. Helpers are test_dlq_produce's.
"""

import struct

import pytest
from confluent_kafka import KafkaError

from helpers import unique
from redis_server import redis_server  # noqa: F401 (fixture)
from test_dlq_produce import NO_ID, produce, read_all, rule

pytestmark = pytest.mark.real_kafka

BIG = 5000  # over the topic's max.message.bytes below, under the DLQ's default


def start(kproxy_factory, redis, rules):
    return kproxy_factory(topics=rules, **{"redis.url": redis.url})


@pytest.mark.parametrize("delivery", ["at-least-once", "idempotent"])
def test_too_large_record_to_dlq_rest_of_batch_written(kafka, kproxy_factory, redis_server,
                                                       delivery):
    """A batch with one record over max.message.bytes (2000): the broker
    refuses the whole batch (MESSAGE_TOO_LARGE); eosproxy writes its records
    one by one, the small ones land in the topic in order, the large one is
    refused again and goes to <topic>.DLT with the reason; the client is
    told success for all."""
    topic = kafka.create_topic(unique("rdqp-large"), 1, config={"max.message.bytes": "2000"})
    dlq = kafka.create_topic(topic + ".DLT", 1)
    px = start(kproxy_factory, redis_server,
               [rule(topic, require=False, on_error="dlq", delivery=delivery)])
    big = "L" * BIG
    recs = [(0, "k0", "s0", "e0"), (0, "k1", "s1", "e1"), (0, "kbig", big, "ebig"),
            (0, "k3", "s3", "e3")]
    res = produce(px.bootstrap, topic, recs)
    assert all(err is None for _, err in res), res
    got = read_all(kafka.bootstrap, topic, 1, expect=3)
    assert [v.decode() for _, _, v, _ in got] == ["s0", "s1", "s3"]
    dead = read_all(kafka.bootstrap, dlq, 1, expect=1)
    assert len(dead) == 1
    _, key, val, h = dead[0]
    assert key == b"kbig" and val == big.encode()
    assert h["event-id"] == b"ebig"
    assert h["kafka_dlt-original-topic"] == topic.encode()
    assert struct.unpack(">i", h["kafka_dlt-original-partition"])[0] == 0
    assert struct.unpack(">q", h["kafka_dlt-original-offset"])[0] == -1
    assert h["kafka_dlt-exception-message"] == b"refused by the broker: MESSAGE_TOO_LARGE (10)"
    m = px.metrics()
    assert m.get_value("eosproxy_dlq_records_total", topic=topic, reason="refused") == 1


def test_require_event_id_dlq_on_kafka(kafka, kproxy_factory, redis_server):
    """require_event_id with on_produce_error dlq on a real broker: the
    record without an eventId is in the DLQ with the Spring headers and the
    reason, the rest of the batch in the topic (a re-encoded batch the
    broker accepts), the client sees success."""
    topic = kafka.create_topic(unique("rdqp-noid"), 2)
    dlq = kafka.create_topic(topic + ".DLT", 1)
    px = start(kproxy_factory, redis_server, [rule(topic, on_error="dlq")])
    recs = [(0, None, "a", "ia"), (0, None, "nobody", None), (0, None, "b", "ib"),
            (1, None, "c", "ic")]
    res = produce(px.bootstrap, topic, recs, codec="lz4")
    assert all(err is None for _, err in res), res
    got = read_all(kafka.bootstrap, topic, 2, expect=3)
    assert sorted((p, v.decode()) for p, _, v, _ in got) == [(0, "a"), (0, "b"), (1, "c")]
    dead = read_all(kafka.bootstrap, dlq, 1, expect=1)
    assert [v for _, _, v, _ in dead] == [b"nobody"]
    h = dead[0][3]
    assert h["kafka_dlt-exception-message"] == NO_ID.encode()
    assert h["kafka_dlt-original-timestamp-type"] == b"CreateTime"


def test_dlq_refused_too_client_gets_the_error(kafka, kproxy_factory, redis_server):
    """The DLQ itself refuses the dead letter (its max.message.bytes is
    smaller than the record with its DLT headers): the client gets
    INVALID_RECORD for that partition, as with reject, and the topic holds
    nothing of it; nothing is lost silently."""
    topic = kafka.create_topic(unique("rdqp-dlqfull"), 1)
    dlq = kafka.create_topic(unique("rdqp-tiny"), 1, config={"max.message.bytes": "200"})
    px = start(kproxy_factory, redis_server, [rule(topic, on_error="dlq", dlq_topic=dlq)])
    recs = [(0, None, "x" * 300, None), (0, None, "ok", "id")]
    res = produce(px.bootstrap, topic, recs)
    for _, err in res:
        assert err is not None and err.code() == KafkaError.INVALID_RECORD, res
    assert read_all(kafka.bootstrap, topic, 1, expect=0, timeout=3) == []
    assert read_all(kafka.bootstrap, dlq, 1, expect=0, timeout=3) == []
    assert px.metrics().get_value("eosproxy_dlq_write_failures_total") >= 1
