"""kcat (librdkafka 2.0.2) through eosproxy: produce, consume, metadata.
Every test runs on the mock and on the real Kafka broker (`cluster`)."""

import pytest

from helpers import wait_until, kcat, kcat_consume, kcat_metadata, kcat_produce, unique


def test_keyed_roundtrip_exact_content_and_order(cluster, cproxy):
    topic = cluster.topic(unique("kcat"), 4)
    pairs = [(f"user-{i % 13}", f"event-{i:04d}|" + "x" * (i % 50)) for i in range(300)]
    kcat_produce(cproxy.bootstrap, topic, pairs)

    got = kcat_consume(cproxy.bootstrap, topic)

    # Exactly the records produced, each once.
    assert sorted((k, v) for _, _, k, v in got) == sorted(pairs)
    # A key lives in one partition, offsets are dense from 0, and the
    # per-partition order is the order they were produced in.
    by_part = {}
    for part, off, key, val in got:
        by_part.setdefault(part, []).append((off, key, val))
    key_part = {}
    for part, recs in by_part.items():
        recs.sort()
        assert [o for o, _, _ in recs] == list(range(len(recs))), f"partition {part} offsets"
        for _, key, _ in recs:
            assert key_part.setdefault(key, part) == part, f"key {key} in two partitions"
        want = [(k, v) for k, v in pairs if key_part.get(k) == part]
        assert [(k, v) for _, k, v in recs] == want, f"partition {part} order"
    assert len(by_part) > 1, "13 keys should spread over several of the 4 partitions"


def test_consume_what_was_produced_directly(cluster, cproxy):
    """Records written straight to the cluster read back identically via eosproxy."""
    topic = cluster.topic(unique("kcat-direct"), 2)
    pairs = [(f"k{i}", f"direct-{i}") for i in range(50)]
    kcat_produce(cluster.bootstrap, topic, pairs)
    via_proxy = kcat_consume(cproxy.bootstrap, topic)
    direct = kcat_consume(cluster.bootstrap, topic)
    assert sorted(via_proxy) == sorted(direct)
    assert len(direct) == 50


def test_metadata_lists_only_eosproxy_addresses(cluster, cproxy, needs_proxy):
    topic = cluster.topic(unique("kcat-md"), 3)
    md = kcat_metadata(cproxy.bootstrap, topic)

    brokers = {b["id"]: b["name"] for b in md["brokers"]}
    assert sorted(brokers) == cluster.node_ids
    for node, name in brokers.items():
        assert name == f"{cproxy.advertised_host}:{cproxy.broker_port_base + node}", md
    assert [t["topic"] for t in md["topics"]] == [topic]
    assert len(md["topics"][0]["partitions"]) == 3

    # None of the cluster's own ports leak anywhere in what the client sees.
    whole = kcat("-L", "-b", cproxy.bootstrap).stdout
    for port in cluster.ports:
        assert f":{port}" not in whole, f"{cluster.kind} port {port} leaked:\n{whole}"


def test_advertised_host_is_what_clients_are_given(cluster, cluster_proxy_factory, needs_proxy):
    """listen.advertised_host (not the listen address) names the brokers."""
    proxy = cluster_proxy_factory(**{"listen.advertised_host": "localhost"})
    topic = cluster.topic(unique("kcat-adv"), 2)
    md = kcat_metadata(proxy.bootstrap, topic)
    assert sorted(b["name"] for b in md["brokers"]) == \
        [f"localhost:{proxy.broker_port_base + n}" for n in cluster.node_ids]
    # Clients follow those names and still get their records through.
    kcat_produce(proxy.bootstrap, topic, [("a", "1"), ("b", "2")])
    assert sorted(v for _, _, _, v in kcat_consume(proxy.bootstrap, topic)) == ["1", "2"]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_roundtrip(cluster, cproxy, codec):
    topic = cluster.topic(unique(f"kcat-{codec}"), 2)
    pairs = [(f"k{i % 3}", f"{codec}-{i}-" + "abc" * (i % 40)) for i in range(400)]
    kcat_produce(cproxy.bootstrap, topic, pairs, extra=("-z", codec, "-X", "linger.ms=20"))
    got = kcat_consume(cproxy.bootstrap, topic)
    assert sorted((k, v) for _, _, k, v in got) == sorted(pairs)
    for key in ("k0", "k1", "k2"):
        seen = [v for _, _, k, v in sorted(got) if k == key]
        assert seen == [v for k, v in pairs if k == key]


def test_large_records(cluster, cproxy):
    """Records near librdkafka's default message.max.bytes (1 MB) pass intact."""
    topic = cluster.topic(unique("kcat-big"), 1)
    pairs = [(f"big{i}", chr(ord("a") + i) * (900_000 + i)) for i in range(5)]
    kcat_produce(cproxy.bootstrap, topic, pairs)
    got = kcat_consume(cproxy.bootstrap, topic, extra=("-X", "fetch.message.max.bytes=2000000"))
    assert [(k, v) for _, _, k, v in got] == pairs


def test_acks0_producer_loses_nothing_on_a_healthy_cluster(cluster, cproxy):
    """acks=0 may lose records when something fails; with nothing failing,
    every record lands, as it does when kcat talks to the cluster directly."""
    topic = cluster.topic(unique("kcat-acks0"), 1)
    data = "".join(f"v{i}\n" for i in range(20000))
    kcat("-P", "-b", cproxy.bootstrap, "-t", topic, "-X", "acks=0", "-X", "linger.ms=1",
         "-X", "batch.num.messages=100", input=data)
    # acks=0 gives no moment at which the writes are known to be done: the
    # last ones may still be on their way through eosproxy when kcat exits.
    def all_stored():
        got = [v for _, _, _, v in kcat_consume(cluster.bootstrap, topic)]
        return got if len(got) >= 20000 else None
    try:
        stored = wait_until(all_stored, timeout=15, interval=0.5, what="20000 acks=0 records")
    except AssertionError:
        stored = [v for _, _, _, v in kcat_consume(cluster.bootstrap, topic)]
    assert len(stored) == 20000, f"only {len(stored)} of 20000 acks=0 records were stored"
    assert stored == [f"v{i}" for i in range(20000)]
