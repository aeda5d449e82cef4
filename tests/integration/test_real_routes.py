"""Delivery routes on the producer path against a real Kafka 4 broker,
which (unlike the mock) sends no response at all to an acks=0 Produce:
at-most-once (eosproxy rewrites acks to 0 and answers the client itself),
and a client's own acks=0 passed through (kafka-python here; librdkafka's is
test_kcat.py's acks=0 test, which runs on both the mock and this broker)."""

import pytest
from confluent_kafka import Producer
from kafka import KafkaProducer

from helpers import kcat_consume, unique, wait_until

pytestmark = pytest.mark.real_kafka

RULES = [{"match": "logs.*", "delivery": "at-most-once"}]


def confluent_produce(bootstrap, topic, values, acks):
    reports = []
    p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5,
                  "enable.idempotence": False, "message.timeout.ms": 60000})
    for v in values:
        p.produce(topic, v.encode(), on_delivery=lambda err, msg: reports.append(err))
    assert p.flush(60) == 0
    return reports


def stored(kafka, topic):
    return sorted(v for _, _, _, v in kcat_consume(kafka.bootstrap, topic))


@pytest.mark.kafka_only("the broker does not answer acks=0; the mock does")
def test_at_most_once_answers_and_the_broker_holds_the_records(kafka, kproxy_factory):
    proxy = kproxy_factory(topics=RULES)
    topic = kafka.create_topic(unique("logs.real"), 2)
    values = [f"log-{i}" for i in range(300)]
    reports = confluent_produce(proxy.bootstrap, topic, values, acks="all")
    assert reports == [None] * len(values), "every record reported delivered"
    wait_until(lambda: kafka.record_count(topic) == len(values), timeout=60,
               what="every at-most-once record in the broker")
    assert stored(kafka, topic) == sorted(values)
    assert proxy.metrics().get_value("eosproxy_produce_requests_total", route="at_most_once") > 0
    # The connection still works afterwards: no response was waited for.
    more = [f"log-more-{i}" for i in range(10)]
    assert confluent_produce(proxy.bootstrap, topic, more, acks="1") == [None] * 10
    wait_until(lambda: kafka.record_count(topic) == len(values) + 10, timeout=60,
               what="the later records too")


@pytest.mark.kafka_only("the broker does not answer acks=0; the mock does")
def test_kafka_python_acks0_passes_through(kafka, kproxy):
    topic = kafka.create_topic(unique("real-acks0"), 2)
    values = [f"a0-{i}" for i in range(200)]
    p = KafkaProducer(bootstrap_servers=kproxy.bootstrap, acks=0, linger_ms=5)
    try:
        for v in values:
            p.send(topic, v.encode())
        p.flush(60)
    finally:
        p.close(10)
    wait_until(lambda: kafka.record_count(topic) == len(values), timeout=60,
               what="every acks=0 record in the broker")
    assert stored(kafka, topic) == sorted(values)
    assert kproxy.alive()
