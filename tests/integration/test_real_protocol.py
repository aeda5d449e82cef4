"""The protocol as a Kafka 4 broker speaks it, through eosproxy: the
flexible versions the broker offers (the mock offers none), with frames
encoded by hand (flexible.py); the versions Kafka 4 removed (KIP-896),
which eosproxy must never offer; and admin APIs passing through to the
broker (CreateTopics, DeleteTopics, DescribeConfigs, CreatePartitions)."""

import struct

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic
from kafka.record.default_records import DefaultRecordBatchBuilder

import flexible
from helpers import Conn, kcat_consume, request, unique, wait_until
from test_idempotent import IDEMPOTENT
from test_real_upgrade import assert_written_by_eosproxy

pytestmark = pytest.mark.real_kafka


def eosproxy_addr(proxy, node_id):
    return (proxy.advertised_host, proxy.broker_port_base + node_id)


def test_api_versions_within_what_the_broker_serves(kafka, kproxy):
    """eosproxy answers ApiVersions v3 (flexible) itself: every range it
    offers is inside the broker's (so no client is told to use a version
    Kafka 4 removed), and the flexible versions both sides know are there."""
    broker = flexible.api_versions(kafka.bootstrap)
    mine = flexible.api_versions(kproxy.bootstrap)
    assert mine, "eosproxy offered no API"
    for key, (lo, hi) in mine.items():
        assert key in broker, f"API {key} offered, but the broker has none"
        blo, bhi = broker[key]
        assert blo <= lo <= hi <= bhi, f"API {key}: eosproxy {lo}..{hi}, broker {blo}..{bhi}"
    # Flexible versions of both sides that clients use (at least these).
    want = {0: 9, 1: 12, 3: 12, 10: 4, 18: 3, 60: 1, 22: 4, 19: 7, 20: 6, 32: 4}
    for key, hi in want.items():
        assert mine[key][1] >= hi, f"API {key}: max {mine[key][1]}, expected {hi} or more"
    # KIP-896 removed these; eosproxy's table starts lower, the offer must not.
    assert mine[1][0] >= 4 and mine[2][0] >= 1 and mine[8][0] >= 2 and mine[19][0] >= 2


def test_removed_version_refused_by_eosproxy_not_forwarded(kafka, kproxy):
    """OffsetCommit v1 (removed in Kafka 4) is in eosproxy's codec table but
    not in what it negotiated with this broker: the connection is closed
    with a log line, as for any version it did not offer."""
    body = struct.pack(">h", 1) + b"g" + struct.pack(">i", -1) + struct.pack(">h", 0)
    body += struct.pack(">i", 0)  # no topics
    with Conn(kproxy.bootstrap) as c:
        c.send(request(8, 1, 7, body))
        assert c.closed_by_peer()
    wait_until(lambda: "version not offered in ApiVersions (api OffsetCommit v1" in kproxy.log,
               timeout=10, what="eosproxy's log line")


def test_metadata_v12(kafka, kproxy):
    topic = kafka.create_topic(unique("real-md12"), 3)
    direct = flexible.metadata_v12(kafka.bootstrap, [topic])
    md = flexible.metadata_v12(kproxy.bootstrap, [topic])
    assert [(n, h, p) for n, h, p in md["brokers"]] == \
        [(n, *eosproxy_addr(kproxy, n)) for n, _, _ in direct["brokers"]]
    assert md["cluster_id"] == direct["cluster_id"] and md["controller"] == direct["controller"]
    assert md["topics"] == direct["topics"]
    assert md["topics"][topic]["error"] == 0 and len(md["topics"][topic]["partitions"]) == 3
    # All topics (null topic array) too.
    assert topic in flexible.metadata_v12(kproxy.bootstrap)["topics"]
    # And by topic id alone (the name is null in the request).
    tid = direct["topics"][topic]["id"]
    by_id = flexible.metadata_v12(kproxy.bootstrap, topic_ids=[tid])
    assert by_id["topics"] == md["topics"]


def test_find_coordinator_v4_batched(kafka, kproxy):
    groups = [unique("real-fc-a"), unique("real-fc-b"), unique("real-fc-c")]

    def found():
        got = flexible.find_coordinator_v4(kproxy.bootstrap, groups)
        return got if all(err == 0 for *_, err in got) else None

    got = wait_until(found, timeout=60, what="every coordinator")  # the offsets topic may be new
    assert [g[0] for g in got] == groups
    for key, node, host, port, err in got:
        assert (host, port) == eosproxy_addr(kproxy, node), f"{key}: {host}:{port} of node {node}"


@pytest.mark.parametrize("version", [0, 1])
def test_describe_cluster(kafka, kproxy, version):
    direct = flexible.describe_cluster(kafka.bootstrap, version)
    got = flexible.describe_cluster(kproxy.bootstrap, version)
    assert got["error"] == 0
    assert got["cluster_id"] == direct["cluster_id"] and got["controller"] == direct["controller"]
    assert got["brokers"] == [(n, *eosproxy_addr(kproxy, n)) for n, _, _ in direct["brokers"]]


def batch(values):
    b = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 24)
    for i, v in enumerate(values):
        b.append(i, 1_700_000_000_000 + i, None, v.encode(), [])
    return bytes(b.build())


def test_produce_v9_and_fetch_v12(kafka, kproxy):
    topic = kafka.create_topic(unique("real-p9"), 1)
    addr = "%s:%d" % eosproxy_addr(kproxy, 1)
    assert flexible.produce_v9(addr, topic, 0, batch(["a", "b", "c"])) == [(0, 0, 0)]
    assert flexible.produce_v9(addr, topic, 0, batch(["d"])) == [(0, 0, 3)]
    err, hw, records = flexible.fetch_v12(addr, topic, 0)
    assert (err, hw) == (0, 4)
    assert flexible.batch_values(records) == [b"a", b"b", b"c", b"d"]
    assert [v for *_, v in kcat_consume(kafka.bootstrap, topic)] == ["a", "b", "c", "d"]


def test_produce_v9_upgraded(kafka, kproxy_factory):
    """A flexible Produce into an `idempotent` topic: eosproxy upgrades it
    and answers in v9; the broker holds the records under its producer id."""
    proxy = kproxy_factory(topics=IDEMPOTENT)
    topic = kafka.create_topic(unique("idem-p9"), 1)
    addr = "%s:%d" % eosproxy_addr(proxy, 1)
    assert flexible.produce_v9(addr, topic, 0, batch(["x", "y"])) == [(0, 0, 0)]
    assert flexible.produce_v9(addr, topic, 0, batch(["z"])) == [(0, 0, 2)]
    err, hw, records = flexible.fetch_v12(addr, topic, 0)
    assert (err, hw) == (0, 3)
    assert flexible.batch_values(records) == [b"x", b"y", b"z"]
    assert_written_by_eosproxy(kafka, proxy, topic, 1, {0: ["x", "y", "z"]})


# ---------------------------------------------------------------- admin APIs

def test_admin_create_describe_alter_delete_topics(kafka, kproxy):
    """confluent-kafka's AdminClient through eosproxy: the broker does the
    work (checked directly on the broker), the answers come back."""
    a = AdminClient({"bootstrap.servers": kproxy.bootstrap})
    topic = unique("real-admin")
    fs = a.create_topics([NewTopic(topic, 2, 1, config={"retention.ms": "3600000"})],
                         operation_timeout=60, request_timeout=60)
    fs[topic].result(90)
    kafka.wait_topic(topic, 2)
    direct = flexible.metadata_v12(kafka.bootstrap, [topic])
    assert len(direct["topics"][topic]["partitions"]) == 2

    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    cfg = a.describe_configs([res], request_timeout=60)[res].result(90)
    assert cfg["retention.ms"].value == "3600000"

    a.create_partitions([NewPartitions(topic, 4)], operation_timeout=60,
                        request_timeout=60)[topic].result(90)
    kafka.wait_topic(topic, 4)

    a.delete_topics([topic], operation_timeout=60, request_timeout=60)[topic].result(90)
    wait_until(lambda: topic not in flexible.metadata_v12(kafka.bootstrap)["topics"],
               timeout=60, what=f"{topic} gone from the broker")


def test_admin_create_topic_that_exists_is_refused(kafka, kproxy):
    topic = kafka.create_topic(unique("real-admin-dup"), 1)
    a = AdminClient({"bootstrap.servers": kproxy.bootstrap})
    fs = a.create_topics([NewTopic(topic, 1, 1)], operation_timeout=60, request_timeout=60)
    with pytest.raises(Exception) as e:
        fs[topic].result(90)
    assert "TOPIC_ALREADY_EXISTS" in str(e.value) or "already exists" in str(e.value)


def test_kafka_python_admin(kafka, kproxy):
    from kafka.admin import KafkaAdminClient, NewTopic as KNewTopic
    a = KafkaAdminClient(bootstrap_servers=kproxy.bootstrap, request_timeout_ms=60000)
    try:
        topic = unique("real-kpadmin")
        a.create_topics([KNewTopic(topic, 3, 1)])
        kafka.wait_topic(topic, 3)
        assert topic in a.list_topics()
        a.delete_topics([topic])
        wait_until(lambda: topic not in flexible.metadata_v12(kafka.bootstrap)["topics"],
                   timeout=60, what=f"{topic} gone from the broker")
    finally:
        a.close()
