"""The Java client (org.apache.kafka:kafka-clients 4.x, the reference
implementation) through eosproxy to a real broker, driven by
tests/java/Harness.java: producers with idempotence off and on, a
transactional producer with read_committed and read_uncommitted
consumers, a two-member consumer group that rebalances, and the admin
client's describeCluster."""

import pytest

from helpers import unique
from kafka_real import run_java
from test_idempotent import IDEMPOTENT, read_topic
from test_real_upgrade import assert_written_by_eosproxy

pytestmark = pytest.mark.real_kafka


def ok(res):
    assert res["error"] is None, f"Java client failed: {res['error']}\n{res['stderr'][-3000:]}"
    return res


def values_by_partition(acked, parts):
    out = {p: [] for p in range(parts)}
    for r in sorted(acked, key=lambda r: (r["partition"], r["offset"])):
        out[r["partition"]].append(r["value"])
    return out


@pytest.mark.parametrize("idempotence", ["false", "true"])
def test_java_producer_and_consumer(kafka, kproxy, idempotence):
    topic = kafka.create_topic(unique("real-java"), 3)
    prod = ok(run_java(kafka, "produce", "--bootstrap", kproxy.bootstrap, "--topic", topic,
                       "--count", 500, "--prefix", "j", "--idempotence", idempotence))
    assert len(prod["acked"]) == 500
    cons = ok(run_java(kafka, "consume", "--bootstrap", kproxy.bootstrap, "--topic", topic))
    assert sorted(r["value"] for r in cons["records"]) == sorted(f"j-{i}" for i in range(500))
    # Each record where the producer was told it is.
    assert sorted((r["partition"], r["offset"], r["value"]) for r in cons["records"]) == \
        sorted((r["partition"], r["offset"], r["value"]) for r in prod["acked"])
    assert kafka.record_count(topic) == 500


def test_java_non_idempotent_producer_upgraded(kafka, kproxy_factory):
    """enable.idempotence=false into an `idempotent` topic: written once,
    under eosproxy's producer id, as the broker's log shows."""
    proxy = kproxy_factory(topics=IDEMPOTENT)
    topic = kafka.create_topic(unique("idem-java"), 3)
    prod = ok(run_java(kafka, "produce", "--bootstrap", proxy.bootstrap, "--topic", topic,
                       "--count", 300, "--partitions", 3, "--idempotence", "false",
                       "--acks", "1"))
    want = values_by_partition(prod["acked"], 3)
    assert sum(len(v) for v in want.values()) == 300
    got = read_topic(kafka.bootstrap, topic, 3, expect=300)
    assert got == want
    assert_written_by_eosproxy(kafka, proxy, topic, 3, want)


def test_java_transactions_read_committed_and_uncommitted(kafka, kproxy):
    topic = kafka.create_topic(unique("real-java-txn"), 3)
    prod = ok(run_java(kafka, "produce", "--bootstrap", kproxy.bootstrap, "--topic", topic,
                       "--transactional-id", unique("java-txn"), "--prefix", "tx",
                       "--transactions", "commit:40,abort:25,commit:10,abort:5"))
    assert len(prod["committed"]) == 50 and len(prod["aborted"]) == 30
    rc = ok(run_java(kafka, "consume", "--bootstrap", kproxy.bootstrap, "--topic", topic,
                     "--isolation", "read_committed"))
    assert sorted(r["value"] for r in rc["records"]) == sorted(prod["committed"])
    ru = ok(run_java(kafka, "consume", "--bootstrap", kproxy.bootstrap, "--topic", topic,
                     "--isolation", "read_uncommitted"))
    assert sorted(r["value"] for r in ru["records"]) == sorted(prod["committed"] + prod["aborted"])


def test_java_consumer_group_rebalances(kafka, kproxy):
    parts = 4
    topic = kafka.create_topic(unique("real-java-grp"), parts)
    res = ok(run_java(kafka, "group", "--bootstrap", kproxy.bootstrap, "--topic", topic,
                      "--group", unique("java-grp"), "--partitions", parts, "--count", 200))
    assert res["a_alone"] == list(range(parts))
    a, b = res["both"]["a"], res["both"]["b"]
    assert a and b and not set(a) & set(b) and sorted(a + b) == list(range(parts))
    assert res["after_leave"] == list(range(parts))
    consumed = res["consumed"]["a"] + res["consumed"]["b"]
    assert set(consumed) == set(res["produced"]) and len(res["produced"]) == 400
    # Commits on revocation: nothing is handed out twice across the rebalances.
    assert len(consumed) == len(set(consumed)), "a record was consumed twice"
    assert res["consumed"]["b"], "b got records while it was a member"


def test_java_admin_describe_cluster(kafka, kproxy):
    res = ok(run_java(kafka, "cluster", "--bootstrap", kproxy.bootstrap))
    assert res["nodes"] == [{"id": 1, "host": kproxy.advertised_host,
                             "port": kproxy.broker_port_base + 1}]
    assert res["controller"]["id"] in (1, -1)
    assert res["cluster_id"] == kafka.cluster_id
