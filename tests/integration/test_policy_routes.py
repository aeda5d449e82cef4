"""Topic policy on the producer path: at-most-once answers at once and still
writes; message format < 2 cannot be upgraded and is refused with a Kafka
error in the partition's slot; unmatched topics pass through untouched."""

import pytest

from confluent_kafka import Producer
from kafka import KafkaProducer
from kafka.errors import KafkaError

from helpers import kcat_consume, unique, wait_until

RULES = [
    {"match": "logs.*", "delivery": "at-most-once"},
    {"match": "pay.*", "delivery": "idempotent"},
]


def confluent_produce(bootstrap, topic, values, acks="1"):
    reports = []
    p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5,
                  "enable.idempotence": False, "message.timeout.ms": 30000})
    for v in values:
        p.produce(topic, v.encode(), on_delivery=lambda err, msg: reports.append((err, msg)))
    assert p.flush(30) == 0
    return reports


def test_at_most_once_answers_at_once_and_writes(mock, proxy_factory, needs_proxy):
    px = proxy_factory(topics=RULES)
    topic = mock.topic(unique("logs.app"), 2)
    values = [f"log-{i}" for i in range(300)]
    reports = confluent_produce(px.bootstrap, topic, values)
    assert len(reports) == len(values)
    assert all(err is None for err, _ in reports)
    # eosproxy answered without waiting for the broker: base offsets are -1
    # (librdkafka reports the first record of each batch with no offset).
    first = {}
    for _, msg in reports:
        first.setdefault(msg.partition(), msg)
    assert all(msg.offset() is None for msg in first.values())
    # The records still reach the topic (forwarded with acks=0).
    got = wait_until(lambda: (lambda r: r if len(r) >= len(values) else None)(
        kcat_consume(px.bootstrap, topic)), timeout=30, what="at-most-once records")
    assert sorted(v for _, _, _, v in got) == sorted(values)
    m = px.metrics()
    assert m.get_value("eosproxy_produce_requests_total", route="at_most_once") >= 1


def test_unmatched_topic_passes_through_with_offsets(mock, proxy_factory, needs_proxy):
    px = proxy_factory(topics=RULES)
    topic = mock.topic(unique("plain"), 2)
    reports = confluent_produce(px.bootstrap, topic, [f"v{i}" for i in range(50)])
    assert all(err is None and msg.offset() >= 0 for err, msg in reports)
    m = px.metrics()
    assert m.get_value("eosproxy_produce_requests_total", route="pass") >= 1
    assert m.get_value("eosproxy_produce_requests_total", route="at_most_once") == 0


def test_old_message_format_refused_for_idempotent_topic(mock, proxy_factory, needs_proxy):
    px = proxy_factory(topics=RULES)
    topic = mock.topic(unique("pay.old"), 1)
    # api_version (0, 10) makes kafka-python use Produce v2 / message format 1.
    prod = KafkaProducer(bootstrap_servers=px.bootstrap, api_version=(0, 10), acks=1,
                         retries=0, request_timeout_ms=10000, max_block_ms=20000)
    try:
        fut = prod.send(topic, b"old-format")
        prod.flush(20)
        with pytest.raises(KafkaError) as exc:
            fut.get(timeout=20)
    finally:
        prod.close(5)
    assert "UnsupportedForMessageFormat" in type(exc.value).__name__ or \
        "43" in str(exc.value), exc.value
    # Nothing was written.
    assert kcat_consume(px.bootstrap, topic) == []
    m = px.metrics()
    assert m.get_value("eosproxy_produce_requests_total", route="refused_format") >= 1
    assert px.alive()


def test_acks0_produce_passes_and_connections_survive(mock, proxy_factory, needs_proxy):
    """acks=0 gets no response from a broker; librdkafka's mock answers it
    anyway, and eosproxy must not mistake that for an out-of-order reply."""
    px = proxy_factory(topics=RULES)
    topic = mock.topic(unique("acks0"), 2)
    pairs = [(f"k{i}", f"v{i}") for i in range(200)]
    from helpers import kcat_produce
    kcat_produce(px.bootstrap, topic, pairs[:100], extra=("-X", "acks=0"))
    kcat_produce(px.bootstrap, topic, pairs[100:], extra=("-X", "acks=0", "-X", "linger.ms=0"))
    got = wait_until(lambda: (lambda r: r if len(r) >= len(pairs) else None)(
        kcat_consume(px.bootstrap, topic)), timeout=30, what="acks=0 records")
    assert sorted(v for _, _, _, v in got) == sorted(v for _, v in pairs)
    m = px.metrics()
    assert m.get_value("eosproxy_client_connections_closed_total", reason="upstream") == 0
    assert m.get_value("eosproxy_upstream_errors_total", kind="protocol") == 0
