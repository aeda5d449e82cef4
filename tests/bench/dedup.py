"""Consumer dedup benchmark: the same records consumed through eosproxy from
a pass-through topic and from a dedup topic (10% duplicate eventIds), same
confluent-kafka consumer, same run, on one redis-server and on a local
Redis Cluster of 3 masters. Prints Markdown table rows, the Redis round
trips per Fetch, and what Redis pays per unique eventId once a committing
consumer has read them all: memory (INFO memory), commands (INFO
commandstats) and server CPU (INFO cpu). Run by tests/bench/run.sh (make
bench); COUNT_DEDUP sets the records (100,000)."""

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
from redis_cluster import RedisCluster, info, pipeline  # noqa: E402
from redis_server import RedisServer  # noqa: E402

N = int(os.environ.get("COUNT_DEDUP", "100000"))
ROUNDS = int(os.environ.get("ROUNDS_DEDUP", "3"))
# librdkafka's mock keeps about 5 MB per partition: at most 25,000 of these
# records each, or the oldest are gone before they are read.
PARTS = max(4, -(-N // 25000))


def produce(bootstrap, topic, ids):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all"})
    for i, eid in enumerate(ids):
        p.produce(topic, value=b"v" * 100, partition=i % PARTS,
                  headers=[("event-id", eid.encode())])
        if i % 10000 == 0:
            p.poll(0)
    assert p.flush(120) == 0


def dedup_proxy(mock, tmp, name, redis_url):
    """An eosproxy in front of mock whose dd-* topics are deduplicated in
    redis_url."""
    return Proxy(mock, tmp, name, {
        "topics": [{"match": "dd-*", "delivery": "at-least-once",
                    "dedup": {"event_id": "header:event-id"}}],
        "redis.url": redis_url, "log.level": "warn"})


def consume(bootstrap, topic, expect, commit=False):
    """Seconds to receive expect records from the beginning (new group);
    with commit, the positions reached are committed at the end."""
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
    took = time.monotonic() - t0 if t0 else 0.0
    if commit and n >= expect:
        c.commit(asynchronous=False)
    c.close()
    if n < expect:
        raise SystemExit(f"dedup bench: only {n} of {expect} records from {topic}")
    return took


def redis_stats(ports):
    """(used_memory bytes, {command: calls}, server CPU seconds) summed over
    ports; commands a script runs count under their own names too."""
    mem, cpu, calls = 0, 0.0, {}
    for port in ports:
        mem += int(info(port, "memory")["used_memory"])
        cpu += sum(float(v) for k, v in info(port, "cpu").items()
                   if k in ("used_cpu_sys", "used_cpu_user"))
        for k, v in info(port, "commandstats").items():
            if k.startswith("cmdstat_"):
                n = int(dict(f.split("=") for f in v.split(","))["calls"])
                calls[k[8:]] = calls.get(k[8:], 0) + n
    return mem, calls, cpu


def redis_cost(proxy, topic, uniq, ports):
    """What Redis holds and spent for the dedup of topic read once by a
    committing consumer, per unique eventId: (bytes, commands sent, CPU µs,
    the commands run). Only on a fresh eosproxy (fresh_cost): deliveries
    of an earlier uncommitted read of the partition would be marked by
    this commit too (tracking is per scope, not per group), and a read
    after it would find them all done in the in-process cache."""
    for port in ports:
        pipeline(port, [("FLUSHALL",), ("CONFIG", "RESETSTAT")])
    mem0, _, cpu0 = redis_stats(ports)
    marks0 = proxy.metrics().get_value("eosproxy_dedup_commit_marks_total")
    consume(proxy.bootstrap, topic, uniq, commit=True)
    deadline = time.monotonic() + 120
    while proxy.metrics().get_value("eosproxy_dedup_commit_marks_total") - marks0 < uniq:
        if time.monotonic() > deadline:
            raise SystemExit("dedup bench: done marks not all written after the commit")
        time.sleep(0.2)
    time.sleep(1.0)  # the index sweep's answer
    mem1, calls, cpu1 = redis_stats(ports)
    for own in ("info", "config", "flushall"):
        calls.pop(own, None)
    top = sorted((c for c in calls if calls[c] >= 0.005 * uniq), key=lambda c: -calls[c])
    what = ", ".join(f"{c.upper()} {calls[c] / uniq:.2f}" for c in top)
    sent = calls.get("eval", 0) + calls.get("set", 0)  # what eosproxy sends itself
    return (mem1 - mem0) / uniq, sent / uniq, (cpu1 - cpu0) * 1e6 / uniq, what


def main():
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="eosproxy-dedup-bench."))
    mock = MockCluster(tmp)
    redis = RedisServer(tmp).start()
    proxy = dedup_proxy(mock, tmp, "bench", redis.url)
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
        proxy.stop()
        cost = fresh_cost(mock, tmp, "bench-cost", redis.url, [redis.port], uniq)
        cplain, cdedup, ccost = cluster_rounds(mock, tmp, uniq)
        p, d = statistics.median(plain), statistics.median(dedup)
        print(f"| consume {N:,} x 100 B, 10% duplicate eventIds (dedup on) vs pass-through topic "
              f"| {p / 1e3:,.0f} k rec/s | {d / 1e3:,.0f} k input rec/s | {d / p:.2f} |")
        print(f"| the same, Redis Cluster of 3 masters (local) "
              f"| {cplain / 1e3:,.0f} k rec/s | {cdedup / 1e3:,.0f} k input rec/s "
              f"| {cdedup / cplain:.2f} |")
        print(f"\nDedup: {statistics.median(per_fetch):.2f} Redis round trips per Fetch request "
              f"(median of {ROUNDS}); {uniq:,} of {N:,} eventIds unique.")
        print("\n| Redis per unique eventId, read once and committed | memory | commands sent "
              "| server CPU | commands run (INFO commandstats, scripts' own included) |"
              "\n|---|---|---|---|---|")
        for name, (b, c, u, w) in (("one redis-server", cost),
                                   ("Redis Cluster, 3 masters", ccost)):
            print(f"| {name} | {b:,.0f} B | {c:.2f} | {u:.1f} µs | {w} |")
    finally:
        proxy.stop()
        redis.stop()
        mock.close()


def cluster_rounds(mock, tmp, uniq):
    """Pass-through and dedup rounds through an eosproxy whose Redis is a
    local cluster of 3 masters (no replicas: their CPU is not dedup's),
    and its per-eventId cost. Medians of ROUNDS."""
    cluster = RedisCluster(tmp, masters=3, replicas=0).start()
    proxy = dedup_proxy(mock, tmp, "bench-cluster", cluster.url)
    try:
        ports = [n.port for n in cluster.masters()]
        plain, dedup = [], []
        for _ in range(ROUNDS):
            plain.append(N / consume(proxy.bootstrap, "plain-bench", N))
            for port in ports:
                pipeline(port, [("FLUSHALL",)])
            dedup.append(N / consume(proxy.bootstrap, "dd-bench", uniq))
        proxy.stop()
        cost = fresh_cost(mock, tmp, "bench-cluster-cost", cluster.url, ports, uniq)
        return statistics.median(plain), statistics.median(dedup), cost
    finally:
        proxy.stop()
        cluster.stop()


def fresh_cost(mock, tmp, name, url, ports, uniq):
    """redis_cost through a new eosproxy: nothing tracked or cached from
    the rounds (their reads were never committed)."""
    proxy = dedup_proxy(mock, tmp, name, url)
    try:
        return redis_cost(proxy, "dd-bench", uniq, ports)
    finally:
        proxy.stop()


if __name__ == "__main__":
    main()
