"""kafka-python (pure-Python protocol implementation) through eosproxy.
Every test runs on the mock and on the real Kafka broker (`cluster`)."""

import time

import pytest

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from helpers import unique


def produce(bootstrap, topic, values):
    prod = KafkaProducer(bootstrap_servers=bootstrap, acks=1, retries=3,
                         request_timeout_ms=30000, max_block_ms=30000)
    try:
        futures = [prod.send(topic, key=f"k{i % 7}".encode(), value=v.encode())
                   for i, v in enumerate(values)]
        prod.flush(30)
        return [f.get(timeout=30) for f in futures]
    finally:
        prod.close(10)


def consume_n(consumer, n, timeout=60):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        for recs in consumer.poll(timeout_ms=500).values():
            got.extend(recs)
    return got


def new_consumer(bootstrap, topic, group):
    return KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                         auto_offset_reset="earliest", enable_auto_commit=False,
                         check_crcs=True, session_timeout_ms=10000,
                         heartbeat_interval_ms=1000, request_timeout_ms=30000)


def test_produce_acks1_and_consume_with_crc_check(cluster, cproxy):
    topic = cluster.topic(unique("kp"), 3)
    values = [f"kafka-python-{i}-" + "y" * (i % 200) for i in range(200)]
    metas = produce(cproxy.bootstrap, topic, values)
    assert all(m.offset >= 0 for m in metas)

    c = new_consumer(cproxy.bootstrap, topic, unique("kp-g"))
    try:
        got = consume_n(c, len(values))
        # Nothing beyond what was produced turns up later either.
        got += consume_n(c, 1, timeout=2)
    finally:
        c.close()
    assert sorted(r.value.decode() for r in got) == sorted(values)
    # Per partition, offsets and the producer's order agree.
    for tp in {(r.topic, r.partition) for r in got}:
        recs = sorted((r for r in got if (r.topic, r.partition) == tp), key=lambda r: r.offset)
        idx = [values.index(r.value.decode()) for r in recs]
        assert idx == sorted(idx), f"{tp}: out of order"


def test_group_commit_and_resume(cluster, cproxy):
    topic = cluster.topic(unique("kp-commit"), 2)
    group = unique("kp-group")
    first = [f"first-{i}" for i in range(60)]
    produce(cproxy.bootstrap, topic, first)

    c1 = new_consumer(cproxy.bootstrap, topic, group)
    try:
        got1 = consume_n(c1, len(first))
        assert sorted(r.value.decode() for r in got1) == sorted(first)
        c1.commit()
        committed = {p: c1.committed(TopicPartition(topic, p)) for p in (0, 1)}
    finally:
        c1.close()
    ends = {}
    for r in got1:
        ends[r.partition] = max(ends.get(r.partition, -1), r.offset + 1)
    assert committed == {p: ends.get(p) for p in (0, 1)}, committed

    second = [f"second-{i}" for i in range(40)]
    produce(cproxy.bootstrap, topic, second)

    c2 = new_consumer(cproxy.bootstrap, topic, group)
    try:
        got2 = consume_n(c2, len(second))
        got2 += consume_n(c2, 1, timeout=2)
    finally:
        c2.close()
    # The second member of the group resumes after the commit: only new records.
    assert sorted(r.value.decode() for r in got2) == sorted(second)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_produce_consume_with_crc_check(cluster, cproxy, codec):
    topic = cluster.topic(unique(f"kp-{codec}"), 1)
    prod = KafkaProducer(bootstrap_servers=cproxy.bootstrap, acks=1, compression_type=codec,
                         linger_ms=20, request_timeout_ms=30000, max_block_ms=30000)
    values = [f"{codec}-{i}-".encode() + b"z" * (i * 10) for i in range(100)]
    try:
        futures = [prod.send(topic, v) for v in values]
        prod.flush(30)
        for f in futures:
            f.get(timeout=30)
    finally:
        prod.close(10)
    c = KafkaConsumer(topic, bootstrap_servers=cproxy.bootstrap, auto_offset_reset="earliest",
                      enable_auto_commit=False, check_crcs=True, request_timeout_ms=30000)
    try:
        got = consume_n(c, len(values))
    finally:
        c.close()
    assert [r.value for r in sorted(got, key=lambda r: r.offset)] == values
