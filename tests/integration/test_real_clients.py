"""Clients through eosproxy to a real Apache Kafka 4 broker (kafka_real.py)
doing what only a real broker supports: kafkajs's idempotent and
transactional producers (the mock reports no controller id), transactions
with read_committed consumers (the mock writes no markers and filters
nothing), and a current confluent-kafka 2.x (newer protocol versions than
the mock serves).

The plain produce/consume paths of kcat, kafka-python, confluent-kafka and
kafkajs run on both the mock and this broker in test_kcat.py,
test_kafka_python.py, test_confluent.py and test_kafkajs.py (`cluster`)."""

import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from kafka import KafkaProducer

from helpers import unique
from test_kafkajs import run_node

pytestmark = pytest.mark.real_kafka


def kp_produce(bootstrap, topic, values, **extra):
    """kafka-python, acks=all (test_real_txn.py uses it)."""
    prod = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=3,
                         request_timeout_ms=30000, max_block_ms=60000, **extra)
    try:
        futures = [prod.send(topic, key=f"k{i % 7}".encode(), value=v.encode())
                   for i, v in enumerate(values)]
        prod.flush(60)
        return [f.get(timeout=60) for f in futures]
    finally:
        prod.close(10)


def ck_consume(bootstrap, group, topic, n, timeout=90, settle=0.0, **conf):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                  "heartbeat.interval.ms": 500, **conf})
    got = []
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            got.append(m)
        end = time.monotonic() + settle  # whatever should not be there
        while time.monotonic() < end:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m)
    finally:
        c.close()
    return got


@pytest.mark.kafka_only("the mock writes no transaction markers and filters nothing")
def test_confluent_transactions_read_committed(kafka, kproxy):
    """librdkafka's transactional producer through eosproxy; the broker
    writes the markers, and a read_committed consumer through eosproxy sees
    the committed records only, a read_uncommitted one sees all."""
    topic = kafka.create_topic(unique("real-ck-txn"), 2)
    p = Producer({"bootstrap.servers": kproxy.bootstrap, "transactional.id": unique("ck-txn"),
                  "transaction.timeout.ms": 60000, "linger.ms": 5})
    p.init_transactions(60)
    committed, aborted = [], []
    for n, (prefix, commit) in enumerate([("c1", True), ("a1", False), ("c2", True)]):
        vals = [f"{prefix}-{i}" for i in range(15)]
        p.begin_transaction()
        for i, v in enumerate(vals):
            p.produce(topic, key=f"k{i}".encode(), value=v.encode())
        p.flush(60)
        if commit:
            p.commit_transaction(60)
            committed += vals
        else:
            p.abort_transaction(60)
            aborted += vals
    rc = ck_consume(kproxy.bootstrap, unique("real-ck-rc"), topic, len(committed), settle=2,
                    **{"isolation.level": "read_committed"})
    assert sorted(m.value().decode() for m in rc) == sorted(committed)
    ru = ck_consume(kproxy.bootstrap, unique("real-ck-ru"), topic, len(committed) + len(aborted),
                    settle=2, **{"isolation.level": "read_uncommitted"})
    assert sorted(m.value().decode() for m in ru) == sorted(committed + aborted)


@pytest.mark.kafka_only("kafkajs's idempotent producer needs the controller id the mock "
                        "does not report")
def test_kafkajs_idempotent_and_transactional_producers(kafka, kproxy):
    topic = kafka.create_topic(unique("real-kjs-txn"), 3)
    res = run_node("txn.js", kproxy.bootstrap, topic, unique("real-kjs-txn-g"), timeout=240)
    seen = [m["value"] for m in res["consumed"]]
    assert sorted(seen) == sorted(res["idempotent"] + res["committed"]), \
        "a read_committed kafkajs consumer sees every committed record once, nothing aborted"
    assert not set(seen) & set(res["aborted"])
    # The broker holds the aborted records too (behind an abort marker).
    total = len(res["idempotent"]) + len(res["committed"]) + len(res["aborted"])
    assert kafka.record_count(topic) >= total


@pytest.mark.kafka_only("transactions with read_committed, and the newer protocol versions "
                        "librdkafka 2.x asks for, which the mock does not serve")
def test_current_confluent_kafka(kafka, kproxy):
    """confluent-kafka 2.x from PyPI (tests/kafka/fetch.sh's venv), whose
    librdkafka asks for newer protocol versions than Debian's 2.0.2:
    idempotent and transactional producers, a read_committed group."""
    import json
    import subprocess
    from kafka_real import ck2_python
    topic = kafka.create_topic(unique("real-ck2"), 3)
    p = subprocess.run([ck2_python(), "ck2_client.py", kproxy.bootstrap, topic,
                        unique("real-ck2-g")], capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, f"ck2_client.py exited {p.returncode}:\n{p.stderr[-4000:]}"
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["version"].startswith("2."), res["version"]
    assert sorted(res["consumed"]) == sorted(res["produced"] + res["committed"])
    assert not set(res["consumed"]) & set(res["aborted"])
