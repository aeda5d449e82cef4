"""kcat (librdkafka 2.0.2) through eosproxy: produce, consume, metadata."""

from helpers import kcat, kcat_consume, kcat_metadata, kcat_produce, unique


def test_keyed_roundtrip_exact_content_and_order(mock, proxy):
    topic = mock.topic(unique("kcat"), 4)
    pairs = [(f"user-{i % 13}", f"event-{i:04d}|" + "x" * (i % 50)) for i in range(300)]
    kcat_produce(proxy.bootstrap, topic, pairs)

    got = kcat_consume(proxy.bootstrap, topic)

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


def test_consume_what_was_produced_directly(mock, proxy):
    """Records written straight to the cluster read back identically via eosproxy."""
    topic = mock.topic(unique("kcat-direct"), 2)
    pairs = [(f"k{i}", f"direct-{i}") for i in range(50)]
    kcat_produce(mock.bootstrap, topic, pairs)
    via_proxy = kcat_consume(proxy.bootstrap, topic)
    direct = kcat_consume(mock.bootstrap, topic)
    assert sorted(via_proxy) == sorted(direct)
    assert len(direct) == 50


def test_metadata_lists_only_eosproxy_addresses(mock, proxy, needs_proxy):
    topic = mock.topic(unique("kcat-md"), 3)
    md = kcat_metadata(proxy.bootstrap, topic)

    brokers = {b["id"]: b["name"] for b in md["brokers"]}
    assert sorted(brokers) == [1, 2, 3]
    for node, name in brokers.items():
        assert name == f"{proxy.host}:{proxy.broker_port_base + node}", md
    assert [t["topic"] for t in md["topics"]] == [topic]
    assert len(md["topics"][0]["partitions"]) == 3

    # None of the mock's own ports leak anywhere in what the client sees.
    whole = kcat("-L", "-b", proxy.bootstrap).stdout
    for port in mock.ports:
        assert f":{port}" not in whole, f"mock port {port} leaked:\n{whole}"
