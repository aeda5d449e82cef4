"""Dedup on topics of small, well-compressed records (issue 9).

A compressed Fetch response can hold far more records than its size
suggests. eosproxy once sized a hash table from the response's byte length;
150 tiny snappy/lz4/zstd records filled it and the event loop spun for
ever: no client of the sidecar was served again, /healthz hung, SIGTERM was
ignored. These tests run the user's scenario as a user would (records
produced straight to the mock, consumed through eosproxy with a
`header:eventId` dedup rule) and check what the consumer saw, and that
eosproxy still answers afterwards.
"""

import time

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as CTopicPartition

from helpers import unique
from redis_server import redis_server  # noqa: F401 (fixture)
from test_dedup import kp_read

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
ROUNDS = 50


def rule():
    return {"match": "ddc-*", "delivery": "at-least-once",
            "dedup": {"event_id": "header:eventId", "ttl": "1h"}}


def produce_tiny(bootstrap, topic, n, codec, dup_every=0):
    """n records v0..v{n-1} with eventIds <topic>:e0.. to partition 0 in one
    flush (so they form as few batches as librdkafka allows); with
    dup_every, every dup_every-th record repeats the previous eventId.
    (eventIds are per topic: dedup's scope spans every topic of a rule.)"""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 1000,
                  "batch.num.messages": 1000000, "batch.size": 64 << 20,
                  "compression.codec": codec, "message.timeout.ms": 60000})
    p.list_topics(topic, timeout=10)
    ids = []
    for i in range(n):
        k = i - 1 if dup_every and i and i % dup_every == 0 else i
        eid = f"{topic}:e{k}"
        ids.append(eid)
        p.produce(topic, value=f"v{i}".encode(), partition=0, headers=[("eventId", eid.encode())])
    assert p.flush(60) == 0, "records not delivered to the mock"
    return ids


def event_id(msg):
    return dict(msg.headers() or []).get("eventId", b"").decode()


def read_all(consumer, topic, want, deadline_s=60.0):
    """Reads partition 0 of topic from the start until `want` records came
    (or the deadline); returns the eventIds in order."""
    consumer.assign([CTopicPartition(topic, 0, 0)])
    got = []
    deadline = time.monotonic() + deadline_s
    while len(got) < want and time.monotonic() < deadline:
        for m in consumer.consume(num_messages=10000, timeout=0.5):
            assert not m.error(), m.error()
            got.append(event_id(m))
    # A moment more: anything delivered twice would arrive now.
    for m in consumer.consume(num_messages=10000, timeout=0.2):
        if not m.error():
            got.append(event_id(m))
    consumer.unassign()
    return got


def assert_serving(proxy):
    status, body, _ = proxy.http_get("/healthz", timeout=10.0)
    assert status == 200 and body.strip() == "ok", f"/healthz answered {status} {body!r}"
    assert proxy.alive()


@pytest.mark.parametrize("codec", CODECS)
def test_150_tiny_records_every_codec_50_rounds(mock, redis_server, proxy_factory, codec):
    """The issue's scenario, 50 rounds in a row: 150 records v0..v149 with
    distinct eventIds, compressed, consumed through eosproxy by librdkafka;
    every round delivers each record exactly once, in order, and eosproxy
    keeps answering /healthz."""
    proxy = proxy_factory(topics=[rule()], **{"redis.url": redis_server.url})
    consumer = Consumer({"bootstrap.servers": proxy.bootstrap, "group.id": unique("g"),
                         "enable.auto.commit": False, "fetch.wait.max.ms": 100,
                         "session.timeout.ms": 6000})
    try:
        for r in range(ROUNDS):
            topic = mock.topic(unique(f"ddc-{codec}-{r}"), 1)
            ids = produce_tiny(mock.bootstrap, topic, 150, codec)
            got = read_all(consumer, topic, 150)
            assert got == ids, f"round {r}: {len(got)} records, first {got[:5]} ... last {got[-5:]}"
            assert_serving(proxy)
    finally:
        consumer.close()
    m = proxy.metrics()
    assert m.get_value("eosproxy_dedup_records_checked_total") >= ROUNDS * 150


@pytest.mark.parametrize("codec", ["snappy", "lz4", "zstd"])
def test_kafka_python_reads_tiny_compressed_records_once(mock, redis_server, proxy_factory,
                                                         codec):
    """The same with kafka-python (Fetch v4, CRCs checked), the client of
    the original report, with one record in ten a duplicate eventId: each
    eventId arrives once."""
    proxy = proxy_factory(topics=[rule()], **{"redis.url": redis_server.url})
    topic = mock.topic(unique(f"ddc-kp-{codec}"), 1)
    ids = produce_tiny(mock.bootstrap, topic, 150, codec, dup_every=10)
    got = kp_read(proxy.bootstrap, topic, unique("g"), 1, proxy=proxy)
    seen = [r[3] for r in got]  # values: v<i> of the first record of each eventId
    want = [f"v{i}" for i, eid in enumerate(ids) if eid not in ids[:i]]
    assert seen == want, f"{len(seen)} records: {seen[:10]}..."
    assert_serving(proxy)


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_20000_records_in_one_batch(mock, redis_server, proxy_factory, codec):
    """One batch of 20,000 tiny records (a ratio far beyond the old table's
    guess) with one in five a duplicate eventId: every distinct eventId is
    delivered once, and eosproxy serves another client meanwhile."""
    proxy = proxy_factory(topics=[rule()], **{"redis.url": redis_server.url})
    topic = mock.topic(unique(f"ddc-big-{codec}"), 1)
    ids = produce_tiny(mock.bootstrap, topic, 20000, codec, dup_every=5)
    want = list(dict.fromkeys(ids))
    consumer = Consumer({"bootstrap.servers": proxy.bootstrap, "group.id": unique("g"),
                         "enable.auto.commit": False, "fetch.wait.max.ms": 100})
    try:
        got = read_all(consumer, topic, len(want), deadline_s=120.0)
    finally:
        consumer.close()
    assert got == want, f"{len(got)} of {len(want)} records; duplicates: {len(got) - len(set(got))}"
    assert_serving(proxy)
