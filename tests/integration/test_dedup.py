"""Consumer dedup by eventId in Redis (issue 4), end to end: records are
produced straight to the cluster (confluent-kafka, with an `event-id`
header), consumed THROUGH eosproxy by kafka-python (CRC checks on),
librdkafka (confluent-kafka) and kafkajs, with a real redis-server
(redis_server.py) that the outage tests kill -9 and restart.

Every test runs on the mock and on the real Kafka broker (`cluster`): the
faults here are Redis's, not the cluster's. On Kafka, the batches are the
broker's own (as stored, compressed by the producer) and transactions write
real markers.

What each test proves is in its docstring. Counts only, no timing
assertions beyond generous deadlines.
"""

import collections
import json
import os
import shutil
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka import TopicPartition as CTopicPartition
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from helpers import unique, wait_until
from redis_server import RedisServer, redis_server  # noqa: F401 (fixture)

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "node")
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
FETCH = ("eosproxy_requests_total", {"api": "Fetch"})


def dedup_rule(match):
    return {"match": match, "delivery": "at-least-once",
            "dedup": {"event_id": "header:event-id", "ttl": "1h"}}


def start_proxy(factory, redis, match="dd-*", **overrides):
    return factory(topics=[dedup_rule(match)], **{"redis.url": redis.url, **overrides})


def produce(cluster, topic, records, codec="none"):
    """records: [(partition, event_id or None, value)], sent straight to the
    cluster in one flush (so each partition's records form one batch)."""
    errors = []
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 1000,
                  "batch.num.messages": 100000, "compression.codec": codec,
                  "message.timeout.ms": 30000})
    p.list_topics(topic, timeout=10)  # leaders known first: fewer split batches
    for part, eid, val in records:
        headers = [("event-id", eid.encode())] if eid is not None else None
        p.produce(topic, value=val.encode(), partition=part, headers=headers,
                  on_delivery=lambda err, msg: err and errors.append(err))
    assert p.flush(60) == 0, "records not delivered to the cluster"
    assert not errors, errors


def event_id(headers):
    for k, v in headers or []:
        if k == "event-id":
            return v.decode() if isinstance(v, bytes) else v
    return None


# ---------------------------------------------------------------- kafka-python

def kp_consumer(bootstrap, group):
    return KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                         enable_auto_commit=False, check_crcs=True, fetch_max_wait_ms=200,
                         request_timeout_ms=30000, api_version_auto_timeout_ms=10000)


KEPT0 = "eosproxy_dedup_records_kept_offset0_total"


def kp_read(bootstrap, topic, group, partitions, commit=False, timeout=40.0, consumer=None,
            proxy=None):
    """Reads every partition up to its high watermark (kafka-python, CRCs
    checked). Returns [(partition, offset, event_id, value)]; fails if a
    partition's position does not reach its high watermark by the deadline.

    kafka-python cannot step past a fully filtered batch that ends at offset
    0 (see must_keep_batch in dedup.c): eosproxy delivers that lone duplicate
    and counts it. With proxy given, such offset-0 records are left out of
    the result, as many as the counter grew by (and no more)."""
    kept0 = proxy.metrics().get_value(KEPT0) if proxy else 0
    got = _kp_read(bootstrap, topic, group, partitions, commit, timeout, consumer)
    if proxy:
        n = int(proxy.metrics().get_value(KEPT0) - kept0)
        at0 = [r for r in got if r[1] == 0]
        assert n <= len(at0), f"{n} kept at offset 0 but only {at0} read"
        drop = at0[:n] if n else []
        got = [r for r in got if r not in drop]
    return got


def _kp_read(bootstrap, topic, group, partitions, commit, timeout, consumer):
    c = consumer or kp_consumer(bootstrap, group)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    try:
        c.assign(tps)
        end = c.end_offsets(tps)
        got = []
        deadline = time.monotonic() + timeout
        while True:
            for tp, msgs in c.poll(timeout_ms=200).items():
                got += [(m.partition, m.offset, event_id(m.headers), m.value.decode()) for m in msgs]
            if all(c.position(tp) >= end[tp] for tp in tps):
                break
            assert time.monotonic() < deadline, \
                f"kafka-python stuck: positions {[c.position(tp) for tp in tps]} < {end}"
        if commit:
            c.commit({tp: OffsetAndMetadata(c.position(tp), "") for tp in tps})
        return got
    finally:
        if consumer is None:
            c.close()


def ids_of(records):
    return collections.Counter(r[2] for r in records)


def dropped(proxy):
    m = proxy.metrics()
    return sum(m.get_value("eosproxy_dedup_records_dropped_total", reason=r)
               for r in ("done", "in_flight", "same_response"))


# ---------------------------------------------------------------- tests

def test_duplicates_within_batch_same_partition_and_across_partitions(cluster,
                                                                      cluster_proxy_factory,
                                                                      redis_server):
    """Each eventId reaches the consumer once: duplicates inside one batch,
    in a later batch of the same partition and in another partition are
    dropped; a record without an eventId passes."""
    proxy = start_proxy(cluster_proxy_factory, redis_server)
    topic = cluster.topic(unique("dd-dup"), 2)
    first = [(0, f"e{i}", f"v{i}") for i in range(10)]
    first[4:4] = [(0, "e3", "dup-in-batch-3")]
    first.append((0, "e5", "dup-in-batch-5"))
    produce(cluster, topic, first)
    produce(cluster, topic, [(0, "e1", "dup-same-partition-1"), (0, "e7", "dup-same-partition-7"),
                          (0, "n1", "new-1"), (0, None, "no-event-id")])
    produce(cluster, topic, [(1, "e2", "dup-other-partition-2"), (1, "e8", "dup-other-partition-8"),
                          (1, "n2", "new-2")])

    got = kp_read(proxy.bootstrap, topic, unique("g"), 2, proxy=proxy)
    ids = ids_of(got)
    want = {f"e{i}" for i in range(10)} | {"n1", "n2", None}
    assert set(ids) == want, got
    assert all(n == 1 for n in ids.values()), f"delivered more than once: {ids}"
    # The two in-batch copies lose to the first occurrence in the batch.
    assert not any(v.startswith("dup-in-batch") for _, _, _, v in got), got
    assert not any(v.startswith("dup-same-partition") for _, _, _, v in got), got

    m = proxy.metrics()
    assert m.get_value("eosproxy_dedup_records_dropped_total", reason="same_response") >= 2
    assert dropped(proxy) >= 6
    assert m.get_value("eosproxy_dedup_records_without_event_id_total") >= 1
    assert m.get_value("eosproxy_dedup_records_checked_total") >= 18
    assert m.get_value("eosproxy_redis_round_trips_total") >= 1
    assert m.get_value("eosproxy_redis_connected") == 1


def test_redelivered_before_commit_nothing_after_commit(cluster, redis_server,
                                                        cluster_proxy_factory):
    """A consumer that dies before committing gets the same records again
    (pending at the same position); once committed, a re-read from the
    beginning by a new group delivers nothing."""
    proxy = start_proxy(cluster_proxy_factory, redis_server)
    topic = cluster.topic(unique("dd-commit"), 2)
    records = [(i % 2, f"c{i}", f"v{i}") for i in range(20)]
    produce(cluster, topic, records)
    group = unique("g")

    first = kp_read(proxy.bootstrap, topic, group, 2, proxy=proxy)  # "dies": no commit
    assert set(ids_of(first)) == {f"c{i}" for i in range(20)}
    again = kp_read(proxy.bootstrap, topic, group, 2, commit=True, proxy=proxy)
    assert sorted(again) == sorted(first), "the same records at the same offsets again"
    m = proxy.metrics()
    assert m.get_value("eosproxy_dedup_records_redelivered_total") >= 20

    wait_until(lambda: proxy.metrics().get_value("eosproxy_dedup_commit_marks_total") >= 20,
               timeout=20, what="done marks written after the commit")
    keys = redis_server.cli("KEYS", "eosproxy:*")
    assert len(keys) == 20
    assert all(redis_server.cli("GET", k) == b"d" for k in keys)
    ttl = redis_server.cli("PTTL", keys[0])
    assert 3_000_000 < ttl <= 3_600_000, "done marks carry the rule's ttl (1h)"

    reread = kp_read(proxy.bootstrap, topic, unique("g-new"), 2, proxy=proxy)
    assert reread == [], f"re-read after commit delivered {reread}"
    # And a seek back in the committed group itself, too.
    c = kp_consumer(proxy.bootstrap, group)
    try:
        c.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        c.seek_to_beginning()
        assert kp_read(proxy.bootstrap, topic, group, 2, consumer=c, proxy=proxy) == []
    finally:
        c.close()


@pytest.mark.parametrize("codec", CODECS)
def test_codecs_filtered_batches_pass_crc_checks(cluster, redis_server, cluster_proxy_factory,
                                                 codec):
    """Batches of every codec are decoded, filtered (10% duplicates),
    recompressed and re-signed: kafka-python with check_crcs=True reads
    each eventId once, with the kept records' offsets unchanged."""
    proxy = start_proxy(cluster_proxy_factory, redis_server)
    topic = cluster.topic(unique(f"dd-{codec}"), 1)
    records = [(0, f"z{i % 45}", f"{codec}-{i}-" + "x" * (i % 7 * 30)) for i in range(50)]
    produce(cluster, topic, records, codec=codec)
    got = kp_read(proxy.bootstrap, topic, unique("g"), 1, proxy=proxy)
    ids = ids_of(got)
    assert set(ids) == {f"z{i}" for i in range(45)} and all(n == 1 for n in ids.values()), ids
    # Kept records keep their offsets: record i sits at offset i.
    assert all(val.startswith(f"{codec}-{off}-") for _, off, _, val in got), got
    assert dropped(proxy) >= 5


def records_with_duplicates(parts, n):
    """n distinct eventIds, each written once, a third of them twice more
    (same partition and another one): [(partition, event_id, value)]."""
    out = []
    for i in range(n):
        out.append((i % parts, f"e{i}", f"e{i}:first"))
    for i in range(0, n, 3):
        out.append((i % parts, f"e{i}", f"e{i}:dup-same"))
        out.append(((i + 1) % parts, f"e{i}", f"e{i}:dup-other"))
    return out


def confluent_read(bootstrap, topic, parts, want, timeout=60):
    """librdkafka assigned every partition from offset 0: the values read,
    once want arrived and 2 more seconds passed (anything extra would follow)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("dd-ck"),
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    got = []
    try:
        c.assign([CTopicPartition(topic, p, 0) for p in range(parts)])
        deadline = time.monotonic() + timeout
        settle = None
        while time.monotonic() < deadline:
            m = c.poll(0.3)
            if m is not None:
                if m.error():
                    if m.error().code() == -191:  # _PARTITION_EOF is off; anything else fails
                        continue
                    raise KafkaException(m.error())
                got.append(m.value().decode())
            if len(got) >= want:
                settle = settle or time.monotonic() + 2  # anything extra would follow
                if time.monotonic() >= settle:
                    break
    finally:
        c.close()
    return got


def test_librdkafka_assigned_partitions_each_event_id_once(cluster, redis_server,
                                                          cluster_proxy_factory):
    """librdkafka assigned three partitions reads each eventId once from lz4
    batches: a third of them written twice more, in the same partition and
    in another one."""
    proxy = start_proxy(cluster_proxy_factory, redis_server)
    parts, n = 3, 90
    topic = cluster.topic(unique("dd-ck"), parts)
    produce(cluster, topic, records_with_duplicates(parts, n), codec="lz4")
    assert cluster.record_count(topic) == n + 2 * (n // 3), "the cluster holds every copy"
    ids = ids_of([(0, 0, v.split(":")[0], v)
                  for v in confluent_read(proxy.bootstrap, topic, parts, n)])
    assert set(ids) == {f"e{i}" for i in range(n)}
    assert all(c == 1 for c in ids.values()), \
        f"delivered more than once: {[k for k, c in ids.items() if c > 1]}"


def seed_duplicate_tail(cluster, proxy, topic, n=10):
    """Batch A (ids t0..t9) read and committed through eosproxy, then batch
    B with the same ids: for any new group, both batches are entirely
    duplicates, B being the partition's tail. Returns the high watermark."""
    produce(cluster, topic, [(0, f"t{i}", f"a{i}") for i in range(n)])
    kp_read(proxy.bootstrap, topic, unique("seed"), 1, commit=True, proxy=proxy)
    wait_until(lambda: proxy.metrics().get_value("eosproxy_dedup_commit_marks_total") >= n,
               timeout=20, what="done marks")
    produce(cluster, topic, [(0, f"t{i}", f"b{i}") for i in range(n)])
    return 2 * n


def fetch_count(proxy):
    return proxy.metrics().get_value(FETCH[0], **FETCH[1])


def assert_no_spin(proxy, keep_polling, seconds=3.0, bound=60):
    """While a client idles at the filtered tail, eosproxy sees a modest
    number of Fetch requests (a spinning client makes hundreds a second)."""
    before = fetch_count(proxy)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        keep_polling()
    n = fetch_count(proxy) - before
    print(f"idle Fetch requests in {seconds}s: {n}")
    assert n <= bound, f"{n} Fetch requests in {seconds}s while idle at the tail: spinning"
    return n


def test_kafka_python_steps_past_duplicate_only_tail(cluster, redis_server, cluster_proxy_factory):
    proxy = start_proxy(cluster_proxy_factory, redis_server)
    topic = cluster.topic(unique("dd-tail-kp"), 1)
    hw = seed_duplicate_tail(cluster, proxy, topic)
    c = kp_consumer(proxy.bootstrap, unique("g"))
    tp = TopicPartition(topic, 0)
    try:
        assert kp_read(proxy.bootstrap, topic, None, 1, consumer=c, proxy=proxy) == []
        assert c.position(tp) == hw
        got = []
        assert_no_spin(proxy, lambda: got.extend(c.poll(timeout_ms=100).get(tp, [])))
        assert got == []
        produce(cluster, topic, [(0, f"later{i}", f"later{i}") for i in range(5)])
        deadline = time.monotonic() + 30
        while len(got) < 5 and time.monotonic() < deadline:
            got += c.poll(timeout_ms=200).get(tp, [])
        assert [m.value.decode() for m in got] == [f"later{i}" for i in range(5)]
        assert [m.offset for m in got] == list(range(hw, hw + 5))
    finally:
        c.close()


def test_librdkafka_steps_past_duplicate_only_tail(cluster, redis_server, cluster_proxy_factory):
    proxy = start_proxy(cluster_proxy_factory, redis_server)
    topic = cluster.topic(unique("dd-tail-rd"), 1)
    hw = seed_duplicate_tail(cluster, proxy, topic)
    c = Consumer({"bootstrap.servers": proxy.bootstrap, "group.id": unique("g"),
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "check.crcs": True, "fetch.wait.max.ms": 500})
    got = []

    def poll():
        m = c.poll(0.1)
        if m is not None:
            if m.error():
                raise KafkaException(m.error())
            got.append(m)

    try:
        c.assign([CTopicPartition(topic, 0, 0)])
        wait_until(lambda: (poll(), c.position([CTopicPartition(topic, 0)])[0].offset == hw)[1],
                   timeout=30, interval=0, what="librdkafka position at the high watermark")
        assert got == []
        assert_no_spin(proxy, poll)
        assert got == []
        produce(cluster, topic, [(0, f"later{i}", f"later{i}") for i in range(5)])
        wait_until(lambda: (poll(), len(got) >= 5)[1], timeout=30, interval=0, what="later records")
        assert [m.value().decode() for m in got] == [f"later{i}" for i in range(5)]
        assert [m.offset() for m in got] == list(range(hw, hw + 5))
    finally:
        c.close()


def test_kafkajs_steps_past_duplicate_only_tail(cluster, redis_server, cluster_proxy_factory):
    node = shutil.which("node") or shutil.which("nodejs")
    if not node or not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "kafkajs")):
        pytest.fail("node or kafkajs missing (make deps)")
    proxy = start_proxy(cluster_proxy_factory, redis_server)
    topic = cluster.topic(unique("dd-tail-js"), 1)
    hw = seed_duplicate_tail(cluster, proxy, topic)
    p = subprocess.Popen([node, "dedup_consume.js", proxy.bootstrap, topic, unique("g"), "5",
                          "60000", "idle"], cwd=NODE_DIR, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line == "idle\n", f"kafkajs never committed past the tail: {line!r} " \
                                 f"{p.stderr.read() if p.poll() is not None else ''}"
        assert_no_spin(proxy, lambda: time.sleep(0.1))
        produce(cluster, topic, [(0, f"later{i}", f"later{i}") for i in range(5)])
        out, err = p.communicate(timeout=90)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    res = json.loads(out.strip().splitlines()[-1])
    assert [r["value"] for r in res["records"]] == [f"later{i}" for i in range(5)], res
    assert [int(r["offset"]) for r in res["records"]] == list(range(hw, hw + 5))
    assert int(res["committed"]["0"]) == hw + 5, res


def outage_run(cluster, proxy, redis, topic, policy):
    """Produces 5 rounds of 20 new eventIds over 2 partitions while a
    librdkafka consumer group reads through eosproxy; Redis is killed -9
    after round 2 and restarted (empty) after round 3 has waited past
    block_timeout. Returns the eventIds received, with their counts."""
    c = Consumer({"bootstrap.servers": proxy.bootstrap, "group.id": unique("g"),
                  "auto.offset.reset": "earliest", "enable.auto.commit": True,
                  "auto.commit.interval.ms": 300, "session.timeout.ms": 6000,
                  "heartbeat.interval.ms": 500, "fetch.wait.max.ms": 200})
    c.subscribe([topic])
    got = collections.Counter()

    def pump(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            m = c.poll(0.1)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            got[event_id(m.headers())] += 1

    def round_(r):
        produce(cluster, topic, [(i % 2, f"r{r}-{i}", f"r{r}-{i}") for i in range(20)])

    try:
        pump(2)
        for r in range(5):
            round_(r)
            pump(2)
            if r == 1:
                redis.kill()
                assert not redis.alive()
            if r == 2:
                pump(3)  # past block_timeout (2s) with round 2 held or passed
                redis.start()
        want = {f"r{r}-{i}" for r in range(5) for i in range(20)}
        deadline = time.monotonic() + 60
        while not want <= set(got) and time.monotonic() < deadline:
            pump(0.5)
        return want, got
    finally:
        c.close()


def test_redis_killed_and_restarted_block(cluster, redis_server, cluster_proxy_factory):
    """on_unavailable: block: records produced while Redis is down are held,
    answered with a retriable error after block_timeout, and delivered once
    Redis is back; nothing is lost and eosproxy keeps running."""
    proxy = start_proxy(cluster_proxy_factory, redis_server, **{"redis.on_unavailable": "block",
                                                        "redis.block_timeout": "2s",
                                                        "redis.timeout": "500ms"})
    topic = cluster.topic(unique("dd-block"), 2)
    want, got = outage_run(cluster, proxy, redis_server, topic, "block")
    assert want <= set(got), f"lost: {sorted(want - set(got))}"
    m = proxy.metrics()
    assert m.get_value("eosproxy_dedup_error_partitions_total") >= 1
    assert m.get_value("eosproxy_dedup_records_passed_unfiltered_total") == 0
    assert m.get_value("eosproxy_redis_errors_total", kind="closed") >= 1
    assert m.get_value("eosproxy_redis_connected") == 1
    assert "connection lost" in proxy.log


def test_redis_killed_and_restarted_pass(cluster, redis_server, cluster_proxy_factory):
    """on_unavailable: pass: records read while Redis is down are delivered
    unfiltered (counted); nothing is lost; dedup resumes after the restart."""
    proxy = start_proxy(cluster_proxy_factory, redis_server, **{"redis.on_unavailable": "pass",
                                                        "redis.timeout": "500ms"})
    topic = cluster.topic(unique("dd-pass"), 2)
    want, got = outage_run(cluster, proxy, redis_server, topic, "pass")
    assert want <= set(got), f"lost: {sorted(want - set(got))}"
    m = proxy.metrics()
    assert m.get_value("eosproxy_dedup_records_passed_unfiltered_total") >= 20
    assert m.get_value("eosproxy_dedup_error_partitions_total") == 0
    assert m.get_value("eosproxy_redis_connected") == 1
    # Dedup works again after the restart.
    produce(cluster, topic, [(0, "r4-0", "dup-after-restart")])
    reread = kp_read(proxy.bootstrap, topic, unique("g2"), 2, proxy=proxy)
    assert "dup-after-restart" not in {v for _, _, _, v in reread}


def test_hung_redis_round_trip_timeout(cluster, redis_server, cluster_proxy_factory):
    """A Redis that stops answering (SIGSTOP) fails the round trip after
    redis.timeout; eosproxy drops the connection, answers the retriable
    error after block_timeout, and delivers everything once Redis answers
    again (SIGCONT)."""
    proxy = start_proxy(cluster_proxy_factory, redis_server, **{"redis.block_timeout": "1s",
                                                        "redis.timeout": "300ms"})
    topic = cluster.topic(unique("dd-hung"), 1)
    produce(cluster, topic, [(0, f"h{i % 8}", f"v{i}") for i in range(10)])
    redis_server.pause()
    resume = threading.Timer(4.0, redis_server.resume)
    resume.start()
    try:
        got = kp_read(proxy.bootstrap, topic, unique("g"), 1, timeout=60, proxy=proxy)
    finally:
        resume.cancel()
        redis_server.resume()
    ids = ids_of(got)
    assert set(ids) == {f"h{i}" for i in range(8)} and all(n == 1 for n in ids.values()), got
    m = proxy.metrics()
    assert m.get_value("eosproxy_redis_errors_total", kind="timeout") >= 1
    assert m.get_value("eosproxy_dedup_error_partitions_total") >= 1
    assert "exceeded redis.timeout" in proxy.log


def test_lone_duplicate_at_offset_zero(cluster, redis_server, cluster_proxy_factory):
    """The one place dedup yields: a partition whose first batch is a lone
    duplicate at offset 0. kafka-python (Fetch v4) cannot step past it when
    filtered, so eosproxy delivers it (counted) instead of letting it spin;
    librdkafka (Fetch v11) gets the empty control batch and steps past."""
    proxy = start_proxy(cluster_proxy_factory, redis_server)
    topic = cluster.topic(unique("dd-zero"), 1)
    produce(cluster, topic, [(0, "zero", "only")])
    kp_read(proxy.bootstrap, topic, unique("seed"), 1, commit=True)
    wait_until(lambda: proxy.metrics().get_value("eosproxy_dedup_commit_marks_total") >= 1,
               timeout=20, what="the done mark")
    before = fetch_count(proxy)
    got = kp_read(proxy.bootstrap, topic, unique("g"), 1)
    assert got == [(0, 0, "zero", "only")]
    assert proxy.metrics().get_value(KEPT0) == 1
    assert fetch_count(proxy) - before < 100, "kafka-python spun on offset 0"
    c = Consumer({"bootstrap.servers": proxy.bootstrap, "group.id": unique("g"),
                  "enable.auto.commit": False})
    try:
        c.assign([CTopicPartition(topic, 0, 0)])
        msgs = []
        wait_until(lambda: (msgs.extend(m for m in [c.poll(0.1)] if m is not None),
                            c.position([CTopicPartition(topic, 0)])[0].offset == 1)[1],
                   timeout=30, interval=0, what="librdkafka past offset 0")
        assert msgs == []
    finally:
        c.close()
    assert proxy.metrics().get_value(KEPT0) == 1


def test_warns_unless_noeviction(cluster, cluster_proxy_factory, tmp_path):
    """eosproxy warns at start-up when Redis may evict dedup marks."""
    r = RedisServer(tmp_path, maxmemory_policy="allkeys-lru").start()
    try:
        proxy = start_proxy(cluster_proxy_factory, r)
        wait_until(lambda: "maxmemory-policy is allkeys-lru" in proxy.log, timeout=10,
                   what="the noeviction warning")
    finally:
        r.stop()


def test_non_dedup_topics_untouched(cluster, redis_server, cluster_proxy_factory):
    """A topic without a dedup rule keeps its duplicates and is never
    checked (the zero-copy path)."""
    proxy = start_proxy(cluster_proxy_factory, redis_server)
    topic = cluster.topic(unique("plain"), 1)
    produce(cluster, topic, [(0, "same", f"v{i}") for i in range(6)])
    got = kp_read(proxy.bootstrap, topic, unique("g"), 1, proxy=proxy)
    assert len(got) == 6
    m = proxy.metrics()
    assert m.get_value("eosproxy_dedup_records_checked_total") == 0
    assert m.get_value("eosproxy_dedup_responses_total") == 0


@pytest.mark.parametrize("outcome", ["abort", "commit"])
def test_transactional_offsets_count_only_when_the_transaction_commits(
        cluster, redis_server, cluster_proxy_factory, outcome):
    """Offsets sent with send_offsets_to_transaction make records done only
    if EndTxn commits; after an abort they stay pending, so a re-read from
    the beginning delivers them again (same positions)."""
    from confluent_kafka import Consumer

    proxy = start_proxy(cluster_proxy_factory, redis_server)
    topic = cluster.topic(unique("dd-txn"), 1)
    produce(cluster, topic, [(0, f"t{i}", f"v{i}") for i in range(10)])
    group = unique("g-txn")
    c = Consumer({"bootstrap.servers": proxy.bootstrap, "group.id": group,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    try:
        c.subscribe([topic])
        got = []
        deadline = time.monotonic() + 40
        while len(got) < 10 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m)
        assert len(got) == 10, f"consumed {len(got)} of 10"
        p = Producer({"bootstrap.servers": proxy.bootstrap, "transactional.id": unique("tx"),
                      "transaction.timeout.ms": 30000})
        p.init_transactions(30)
        p.begin_transaction()
        p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 30)
        if outcome == "commit":
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
    finally:
        c.close()
    reread = kp_read(proxy.bootstrap, topic, unique("g-new"), 1, proxy=proxy)
    if outcome == "commit":
        wait_until(lambda: proxy.metrics().get_value("eosproxy_dedup_commit_marks_total") >= 10,
                   timeout=20, what="done marks after the transaction committed")
        assert kp_read(proxy.bootstrap, topic, unique("g-new2"), 1, proxy=proxy) == []
    else:
        assert sorted(ids_of(reread)) == sorted(f"t{i}" for i in range(10))
        assert proxy.metrics().get_value("eosproxy_dedup_txn_aborted_commits_total") >= 1
