"""Consumer dedup on a Redis Cluster and behind Redis Sentinel (issue 13),
end to end on the mock Kafka: records produced straight to the mock with
an `event-id` header, consumed THROUGH eosproxy, with redis.url naming a
local 3-master/3-replica Redis Cluster or two Sentinels
(redis_cluster.py).

What each test proves is in its docstring. Counts only: no timing
assertions beyond generous deadlines. (`mock` here is the Kafka mock;
`redis_cluster` is Redis.)
"""

import collections
import time

from confluent_kafka import Consumer, KafkaException

from helpers import unique, wait_until
from redis_cluster import key_slot, redis_cluster, redis_sentinel  # noqa: F401 (fixtures)
from redis_server import redis_server  # noqa: F401 (fixture)
from test_dedup import dedup_rule, event_id, ids_of, kp_read, produce
import test_dedup_shared as shared

SCOPE = "eosproxy-it"  # conftest's `service`: the dedup scope


def key_of(eid):
    return f"eosproxy:{SCOPE}:{eid}"


def start_proxy(factory, url, **overrides):
    """eosproxy with dedup on dd-* and redis.url; no in-process cache of
    done eventIds, so every duplicate is a question to Redis."""
    return factory(topics=[dedup_rule("dd-*")],
                   **{"redis.url": url, "redis.cache_entries": 0, **overrides})


class GroupReader:
    """A librdkafka consumer group member reading through eosproxy with
    auto-commit; pump() collects the eventIds delivered, with counts."""

    def __init__(self, proxy, topic):
        self.c = Consumer({"bootstrap.servers": proxy.bootstrap, "group.id": unique("g"),
                           "auto.offset.reset": "earliest", "enable.auto.commit": True,
                           "auto.commit.interval.ms": 300, "session.timeout.ms": 6000,
                           "heartbeat.interval.ms": 500, "fetch.wait.max.ms": 200})
        self.c.subscribe([topic])
        self.got = collections.Counter()

    def pump(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            m = self.c.poll(0.1)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            self.got[event_id(m.headers())] += 1

    def until(self, want, timeout=60):
        """Pumps until every eventId of want arrived (or the deadline)."""
        deadline = time.monotonic() + timeout
        while not want <= set(self.got) and time.monotonic() < deadline:
            self.pump(0.5)

    def close(self):
        self.c.close()


def round_records(r, n=20, parts=2):
    return [(i % parts, f"r{r}-{i}", f"r{r}-{i}") for i in range(n)]


def assert_once(want, got):
    assert want <= set(got), f"lost: {sorted(want - set(got))}"
    twice = {k: n for k, n in got.items() if n > 1}
    assert not twice, f"delivered more than once: {twice}"
    extra = set(got) - want
    assert not extra, f"delivered but never meant to be: {sorted(extra)}"


# ---------------------------------------------------------------- dedup semantics

def test_cluster_duplicates_redelivery_and_commit(mock, proxy_factory, redis_cluster):
    """The dedup suite's semantics on a Redis Cluster: duplicates in one
    batch, in a later batch and in another partition are dropped; a
    consumer that dies before committing gets the same records again; the
    commit marks every eventId done on whichever master serves its slot
    (marks spread over all three), and a re-read delivers nothing."""
    proxy = start_proxy(proxy_factory, redis_cluster.url)
    wait_until(lambda: proxy.metrics().get_value("eosproxy_redis_connected") == 1, timeout=20,
               what="the cluster client ready")
    topic = mock.topic(unique("dd-cl"), 2)
    first = [(i % 2, f"e{i}", f"v{i}") for i in range(30)]
    first[5:5] = [(0, "e4", "dup-in-batch-4")]  # after e4 (partition 0)
    produce(mock, topic, first)
    produce(mock, topic, [(0, "e1", "dup-later-1"), (1, "e2", "dup-other-2"), (0, "n1", "new-1")])
    group = unique("g")

    got = kp_read(proxy.bootstrap, topic, group, 2, proxy=proxy)  # "dies": no commit
    ids = ids_of(got)
    want = {f"e{i}" for i in range(30)} | {"n1"}
    assert set(ids) == want and all(n == 1 for n in ids.values()), got
    assert not any(v.startswith("dup-") for _, _, _, v in got), got

    again = kp_read(proxy.bootstrap, topic, group, 2, commit=True, proxy=proxy)
    assert sorted(again) == sorted(got), "the same records at the same offsets again"
    wait_until(lambda: proxy.metrics().get_value("eosproxy_dedup_commit_marks_total") >= 31,
               timeout=20, what="done marks written after the commit")
    keys = redis_cluster.keys("eosproxy:*")
    assert len(keys) == 31
    assert all(redis_cluster.get(k) == b"d" for k in keys)
    owners = {redis_cluster.master_of_slot(key_slot(k)).port for k in keys}
    assert len(owners) == 3, "eventIds land on every master"

    assert kp_read(proxy.bootstrap, topic, unique("g-new"), 2, proxy=proxy) == []
    m = proxy.metrics()
    assert m.get_value("eosproxy_redis_connected") == 1
    assert m.get_value("eosproxy_dedup_records_redelivered_total") >= 31


def test_cluster_commit_through_another_sidecar(mock, proxy_factory, redis_cluster):
    """The shared delivery index on a Redis Cluster (its key routed like any
    other): e0..e9 read through eosproxy A without a commit, offset 10
    committed through B without reading; past pending_ttl, group G reads
    exactly n0 and n1 out of the copies of e0..e9 plus n0, n1, and B says
    it marked the ten A delivered."""

    class Redis:  # what test_dedup_shared's helpers use of a Redis
        url = redis_cluster.url

        @staticmethod
        def cli(cmd, key):
            assert cmd == "GET"
            return redis_cluster.get(key)

    scope = unique("shared")
    a = proxy_factory(**shared.overrides(Redis, scope))
    b = proxy_factory(**shared.overrides(Redis, scope))
    topic = mock.topic(unique("dd-cross"), 1)
    group = unique("g")
    shared.produce_first(mock, topic)
    got = kp_read(a.bootstrap, topic, group, 1, proxy=a)
    assert sorted(ids_of(got)) == sorted(shared.first_ids()), got
    shared.assert_pending(Redis, scope)
    shared.rd_commit(b.bootstrap, topic, group, shared.N)
    committed_at = time.monotonic()
    shared.wait_settled(Redis, scope, committed_at)
    shared.produce_copies_and_new(mock, topic)
    shared.assert_only_new(shared.rd_read(b.bootstrap, topic, group, 22), "B")
    assert b.metrics().get_value("eosproxy_dedup_shared_marks_total") == shared.N
    assert b.metrics().get_value("eosproxy_dedup_index_failures_total") == 0


# ---------------------------------------------------------------- failover

def test_cluster_master_killed_replica_promoted(mock, proxy_factory, redis_cluster):
    """A master is killed -9 mid-run and its replica promoted: while its
    slots have no master the dedup partitions are held (block), then the
    client follows the new slot map. Every eventId is delivered exactly
    once, and copies of eventIds committed before the kill, produced after
    it, are still dropped (the marks survived on the replica)."""
    proxy = start_proxy(proxy_factory, redis_cluster.url, **{"redis.on_unavailable": "block",
                                                             "redis.block_timeout": "2s",
                                                             "redis.timeout": "500ms"})
    topic = mock.topic(unique("dd-kill"), 2)
    reader = GroupReader(proxy, topic)
    try:
        reader.pump(2)
        produce(mock, topic, round_records(0))
        reader.until({f"r0-{i}" for i in range(20)})
        wait_until(lambda: proxy.metrics().get_value("eosproxy_dedup_commit_marks_total") >= 20,
                   timeout=20, what="round 0 committed and marked done")
        time.sleep(0.5)  # the replicas have the done marks (async replication)
        victim = redis_cluster.master_of_slot(key_slot(key_of("r0-0")))
        redis_cluster.kill(victim)
        for r in (1, 2):
            produce(mock, topic, round_records(r))
            reader.pump(1)
        redis_cluster.wait_ok()
        produce(mock, topic, round_records(3) + [(i % 2, f"r0-{i}", "copy") for i in range(20)])
        want = {f"r{r}-{i}" for r in range(4) for i in range(20)}
        reader.until(want)
        reader.pump(2)  # anything extra would follow
        assert_once(want, reader.got)
    finally:
        reader.close()
    assert victim.port not in [n.port for n in redis_cluster.masters()]
    m = proxy.metrics()
    assert m.get_value("eosproxy_redis_connected") == 1
    assert m.get_value("eosproxy_dedup_records_passed_unfiltered_total") == 0
    assert m.get_value("eosproxy_dedup_records_dropped_total", reason="done") >= 20
    assert "redis cluster: not ready" in proxy.log
    assert "redis cluster: ready" in proxy.log


def test_cluster_resharding_ask_and_moved(mock, proxy_factory, redis_cluster):
    """Slots are migrated from one master to another mid-run: while they
    are MIGRATING, new eventIds in them get ASK (followed with ASKING);
    once they belong to the target, the old owner answers MOVED (followed,
    and the slot map refreshed). Every eventId is delivered once and the
    duplicates whose marks were migrated are dropped."""
    proxy = start_proxy(proxy_factory, redis_cluster.url, **{"log.level": "debug"})
    topic = mock.topic(unique("dd-reshard"), 2)
    src = redis_cluster.master_of_slot(key_slot(key_of("r0-0")))
    dst = next(n for n in redis_cluster.masters() if n.id != src.id)
    # The slots src serves for round 0's and round 1's eventIds.
    ids = [f"r{r}-{i}" for r in (0, 1) for i in range(20)]
    slots = sorted({key_slot(key_of(e)) for e in ids
                    if redis_cluster.master_of_slot(key_slot(key_of(e))).id == src.id})
    assert slots
    reader = GroupReader(proxy, topic)
    try:
        reader.pump(2)
        produce(mock, topic, round_records(0))
        reader.until({f"r0-{i}" for i in range(20)})
        redis_cluster.begin_migration(src, dst, slots)
        produce(mock, topic, round_records(1))  # new keys in MIGRATING slots: ASK
        reader.until({f"r1-{i}" for i in range(20)})
        wait_until(lambda: proxy.metrics().get_value("eosproxy_dedup_commit_marks_total") >= 40,
                   timeout=20, what="rounds 0 and 1 marked done")
        redis_cluster.finish_migration(src, dst, slots)
        produce(mock, topic, round_records(2) + [(i % 2, f"r{r}-{i}", "copy")
                                                 for r in (0, 1) for i in range(20)])
        want = {f"r{r}-{i}" for r in range(3) for i in range(20)}
        reader.until(want)
        reader.pump(2)
        assert_once(want, reader.got)
    finally:
        reader.close()
    assert all(redis_cluster.master_of_slot(s).id == dst.id for s in slots)
    log = proxy.log
    assert "redis cluster: ASK slot" in log
    assert "redis cluster: MOVED slot" in log or log.count("slots moved") >= 2
    assert proxy.metrics().get_value("eosproxy_dedup_records_dropped_total", reason="done") >= 40


# ---------------------------------------------------------------- sentinel

def test_sentinel_failover_mid_run(mock, proxy_factory, redis_sentinel):
    """redis+sentinel://: eosproxy asks the Sentinels for mymaster, checks
    ROLE, and after SENTINEL FAILOVER mid-run follows +switch-master to the
    promoted replica. Every eventId is delivered once; copies of eventIds
    committed before the failover are dropped after it."""
    old = redis_sentinel.master()
    proxy = start_proxy(proxy_factory, redis_sentinel.url, **{"redis.block_timeout": "2s",
                                                              "redis.timeout": "500ms"})
    wait_until(lambda: proxy.metrics().get_value("eosproxy_redis_connected") == 1, timeout=20,
               what="connected to the master")
    assert f"master mymaster is at 127.0.0.1:{old.port}" in proxy.log
    topic = mock.topic(unique("dd-sen"), 2)
    reader = GroupReader(proxy, topic)
    try:
        reader.pump(2)
        produce(mock, topic, round_records(0))
        reader.until({f"r0-{i}" for i in range(20)})
        wait_until(lambda: proxy.metrics().get_value("eosproxy_dedup_commit_marks_total") >= 20,
                   timeout=20, what="round 0 marked done")
        time.sleep(0.5)  # replicated
        produce(mock, topic, round_records(1))
        new = redis_sentinel.failover()
        produce(mock, topic, round_records(2) + [(i % 2, f"r0-{i}", "copy") for i in range(20)])
        want = {f"r{r}-{i}" for r in range(3) for i in range(20)}
        reader.until(want)
        reader.pump(2)
        assert_once(want, reader.got)
    finally:
        reader.close()
    wait_until(lambda: f"master mymaster is at 127.0.0.1:{new.port}" in proxy.log, timeout=20,
               what="eosproxy on the new master")
    assert proxy.metrics().get_value("eosproxy_redis_connected") == 1
    assert new.cmd("GET", key_of("r2-0")) is not None, "marks are written to the new master"


# ---------------------------------------------------------------- misconfiguration

def test_cluster_url_on_a_plain_redis_never_ready(mock, proxy_factory, redis_server):
    """redis+cluster:// naming a Redis without cluster support: eosproxy
    keeps running, says why once (not once per retry), never reports Redis
    connected, and redis.on_unavailable (pass) applies."""
    port = redis_server.url.split(":")[2].split("/")[0]
    proxy = start_proxy(proxy_factory, f"redis+cluster://127.0.0.1:{port}",
                        **{"redis.on_unavailable": "pass"})
    wait_until(lambda: "cluster support disabled" in proxy.log, timeout=20,
               what="the reason in the log")
    topic = mock.topic(unique("dd-plain"), 1)
    produce(mock, topic, [(0, "a", "1"), (0, "b", "2")])
    got = kp_read(proxy.bootstrap, topic, unique("g"), 1, proxy=proxy)
    assert [v for _, _, _, v in got] == ["1", "2"]
    m = proxy.metrics()
    assert m.get_value("eosproxy_redis_connected") == 0
    assert m.get_value("eosproxy_dedup_records_passed_unfiltered_total") >= 2
    assert proxy.log.count("cluster support disabled") == 1
