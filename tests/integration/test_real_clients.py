"""The core produce/consume path through eosproxy to a real Apache Kafka 4
broker (kafka_real.py), with every client of the matrix: kcat,
kafka-python, confluent-kafka and kafkajs, including kafkajs's idempotent
and transactional producers (they cannot run against the mock) and
transactions with read_committed consumers, whose markers and filtering
only a real broker has."""

import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from kafka import KafkaConsumer, KafkaProducer

from helpers import kcat_consume, kcat_metadata, kcat_roundtrip, unique
from test_kafkajs import run_node

pytestmark = pytest.mark.real_kafka


def only_eosproxy_addresses(md, proxy):
    """kcat -L -J output names only eosproxy's listeners."""
    ports = {b["name"].rsplit(":", 1)[1] for b in md["brokers"]}
    want = {str(proxy.broker_port_base + b["id"]) for b in md["brokers"]}
    return ports == want and all(b["name"].startswith(proxy.advertised_host + ":")
                                 for b in md["brokers"])


def test_kcat_roundtrip_and_metadata(kafka, kproxy):
    topic = kafka.create_topic(unique("real-kcat"), 3)
    got = kcat_roundtrip(kproxy.bootstrap, topic, n=60)
    assert {p for p, _, _, _ in got} == {0, 1, 2}, "keys spread over the 3 partitions"
    md = kcat_metadata(kproxy.bootstrap, topic)
    assert only_eosproxy_addresses(md, kproxy), md["brokers"]
    assert [len(t["partitions"]) for t in md["topics"] if t["topic"] == topic] == [3]
    assert kafka.record_count(topic) == 60


def kp_produce(bootstrap, topic, values, **extra):
    prod = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=3,
                         request_timeout_ms=30000, max_block_ms=60000, **extra)
    try:
        futures = [prod.send(topic, key=f"k{i % 7}".encode(), value=v.encode())
                   for i, v in enumerate(values)]
        prod.flush(60)
        return [f.get(timeout=60) for f in futures]
    finally:
        prod.close(10)


def kp_consume(bootstrap, topic, group, n, timeout=90):
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                      auto_offset_reset="earliest", enable_auto_commit=False, check_crcs=True,
                      session_timeout_ms=10000, heartbeat_interval_ms=1000,
                      request_timeout_ms=30000)
    got = []
    try:
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                got.extend(recs)
        c.commit()
    finally:
        c.close()
    return got


@pytest.mark.parametrize("compression", [None, "gzip", "lz4", "zstd"])
def test_kafka_python_roundtrip(kafka, kproxy, compression):
    topic = kafka.create_topic(unique("real-kp"), 3)
    values = [f"kp-{i}-" + "x" * (i % 100) for i in range(150)]
    metas = kp_produce(kproxy.bootstrap, topic, values, compression_type=compression)
    assert all(m.offset >= 0 for m in metas)
    got = kp_consume(kproxy.bootstrap, topic, unique("real-kp-g"), len(values))
    assert sorted(r.value.decode() for r in got) == sorted(values)
    for part in {r.partition for r in got}:
        idx = [values.index(r.value.decode()) for r in sorted(
            (r for r in got if r.partition == part), key=lambda r: r.offset)]
        assert idx == sorted(idx), f"partition {part}: out of order"
    assert kafka.record_count(topic) == len(values)


def ck_produce(bootstrap, topic, values, **conf):
    errors, delivered = [], []

    def on_delivery(err, msg):
        (errors.append(err) if err else
         delivered.append((msg.partition(), msg.offset(), msg.value().decode())))

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 60000,
                  "linger.ms": 5, **conf})
    for i, v in enumerate(values):
        p.produce(topic, key=f"k{i % 7}".encode(), value=v.encode(), on_delivery=on_delivery)
        p.poll(0)
    assert p.flush(90) == 0, "records not delivered"
    assert not errors, errors
    return delivered


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


@pytest.mark.parametrize("idempotence", [False, True])
def test_confluent_roundtrip(kafka, kproxy, idempotence):
    topic = kafka.create_topic(unique("real-ck"), 3)
    values = [f"ck-{i}" for i in range(300)]
    ck_produce(kproxy.bootstrap, topic, values, **{"enable.idempotence": idempotence,
                                                   "compression.type": "snappy"})
    got = ck_consume(kproxy.bootstrap, unique("real-ck-g"), topic, len(values))
    assert sorted(m.value().decode() for m in got) == sorted(values)
    assert kafka.record_count(topic) == len(values)


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


def test_kafkajs_roundtrip(kafka, kproxy):
    topic = kafka.create_topic(unique("real-kjs"), 3)
    res = run_node("roundtrip.js", kproxy.bootstrap, topic, "300", unique("real-kjs-g"))
    assert sorted(m["value"] for m in res["consumed"]) == \
        sorted(m["value"] for m in res["produced"])
    assert kafka.record_count(topic) == 300


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


def test_kcat_reads_records_written_straight_to_the_broker(kafka, kproxy):
    """Records written straight to the broker (not through eosproxy) read
    back through it: offsets, keys and values as the broker holds them."""
    topic = kafka.create_topic(unique("real-direct"), 2)
    ck_produce(kafka.bootstrap, topic, [f"direct-{i}" for i in range(40)])
    got = kcat_consume(kproxy.bootstrap, topic)
    assert sorted(v for _, _, _, v in got) == sorted(f"direct-{i}" for i in range(40))
    for part in (0, 1):
        offs = sorted(o for p, o, _, _ in got if p == part)
        assert offs == list(range(len(offs)))


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
