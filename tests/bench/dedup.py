"""Consumer dedup benchmark: the same records consumed through eosproxy from
a pass-through topic and from a dedup topic (10% duplicate eventIds), same
confluent-kafka consumer, same run. Prints a Markdown table row and the
Redis round trips per Fetch. Run by tests/bench/run.sh (make bench)."""

import os
import pathlib
import random
import statistics
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
os.environ.setdefault("EOSPROXY_BIN", str(HERE.parents[1] / "build" / "eosproxy"))
os.environ.setdefault("MOCKCLUSTER_BIN", str(HERE.parents[1] / "build" / "mockcluster"))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from conftest import MockCluster, Proxy  # noqa: E402
from redis_server import RedisServer  # noqa: E402

N = int(os.environ.get("COUNT_DEDUP", "100000"))
ROUNDS = int(os.environ.get("ROUNDS_DEDUP", "3"))
PARTS = 4


def produce(bootstrap, topic, ids):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all"})
    for i, eid in enumerate(ids):
        p.produce(topic, value=b"v" * 100, partition=i % PARTS,
                  headers=[("event-id", eid.encode())])
        if i % 10000 == 0:
            p.poll(0)
    assert p.flush(120) == 0


def consume(bootstrap, topic, expect):
    """Seconds to receive expect records from the beginning (new group)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{time.time()}",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 100})
    c.assign([TopicPartition(topic, i, 0) for i in range(PARTS)])
    n, t0 = 0, None
    deadline = time.monotonic() + 120
    while n < expect and time.monotonic() < deadline:
        msgs = c.consume(10000, 0.5)
        if t0 is None and msgs:
            t0 = time.monotonic()
        n += sum(1 for m in msgs if not m.error())
    c.close()
    if n < expect:
        raise SystemExit(f"dedup bench: only {n} of {expect} records from {topic}")
    return time.monotonic() - t0


def main():
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="eosproxy-dedup-bench."))
    mock = MockCluster(tmp)
    redis = RedisServer(tmp).start()
    proxy = Proxy(mock, tmp, "bench", {
        "topics": [{"match": "dd-*", "delivery": "at-least-once",
                    "dedup": {"event_id": "header:event-id"}}],
        "redis.url": redis.url, "log.level": "warn"})
    try:
        rng = random.Random(7)
        ids = []
        for i in range(N):
            dup = ids and rng.random() < 0.10
            ids.append(ids[rng.randrange(len(ids))] if dup else f"id-{i}")
        uniq = len(set(ids))
        for topic in ("dd-bench", "plain-bench"):
            mock.topic(topic, PARTS)
            produce(mock.bootstrap, topic, ids)
        plain, dedup, per_fetch = [], [], []
        for _ in range(ROUNDS):
            plain.append(N / consume(proxy.bootstrap, "plain-bench", N))
            redis.cli("FLUSHALL")
            m0 = proxy.metrics()
            dedup.append(N / consume(proxy.bootstrap, "dd-bench", uniq))
            m1 = proxy.metrics()
            fetches = (m1.get_value("eosproxy_requests_total", api="Fetch")
                       - m0.get_value("eosproxy_requests_total", api="Fetch"))
            trips = (m1.get_value("eosproxy_redis_round_trips_total")
                     - m0.get_value("eosproxy_redis_round_trips_total"))
            per_fetch.append(trips / max(1, fetches))
        p, d = statistics.median(plain), statistics.median(dedup)
        print(f"| consume {N:,} x 100 B, 10% duplicate eventIds (dedup on) vs pass-through topic "
              f"| {p / 1e3:,.0f} k rec/s | {d / 1e3:,.0f} k input rec/s | {d / p:.2f} |")
        print(f"\nDedup: {statistics.median(per_fetch):.2f} Redis round trips per Fetch request "
              f"(median of {ROUNDS}); {uniq:,} of {N:,} eventIds unique.")
    finally:
        proxy.stop()
        redis.stop()
        mock.close()


if __name__ == "__main__":
    main()
