"""What clients are told about the cluster: only eosproxy's addresses."""

import pytest
from kafka import KafkaConsumer

from helpers import (find_coordinator_request, metadata_request, parse_find_coordinator,
                     parse_metadata, roundtrip, unique, wait_until, api_versions_request)


@pytest.mark.parametrize("version", [0, 1, 2])
def test_raw_metadata_names_only_eosproxy(mock, proxy, needs_proxy, version):
    topic = mock.topic(unique("md"), 4)
    corr, body = roundtrip(proxy.bootstrap, metadata_request(version, [topic], corr=41))
    assert corr == 41
    brokers, _, topics = parse_metadata(version, body)

    assert sorted(b[0] for b in brokers) == [1, 2, 3]
    for node, host, port in brokers:
        assert (host, port) == (proxy.advertised_host, proxy.broker_port_base + node)
        assert port not in mock.ports
    assert sorted(p for p, _ in topics[topic]) == [0, 1, 2, 3]
    assert {leader for _, leader in topics[topic]} <= {1, 2, 3}


def test_every_advertised_broker_port_answers(mock, proxy, needs_proxy):
    _, body = roundtrip(proxy.bootstrap, metadata_request(1))
    brokers, _, _ = parse_metadata(1, body)
    for node, host, port in brokers:
        corr, resp = roundtrip(f"{host}:{port}", api_versions_request(corr=7 + node))
        assert corr == 7 + node
        assert int.from_bytes(resp[:2], "big", signed=True) == 0, f"ApiVersions error from node {node}"
        # And the metadata seen through a broker port is rewritten the same way.
        _, body2 = roundtrip(f"{host}:{port}", metadata_request(1))
        assert sorted(parse_metadata(1, body2)[0]) == sorted(brokers)


@pytest.mark.parametrize("version", [0, 1, 2])
def test_find_coordinator_points_at_eosproxy(mock, proxy, needs_proxy, version):
    group = unique("fc")

    def ask():
        _, body = roundtrip(proxy.bootstrap, find_coordinator_request(version, group, corr=5))
        err, node, host, port = parse_find_coordinator(version, body)
        return (node, host, port) if err == 0 else None

    node, host, port = wait_until(ask, timeout=20, what="FindCoordinator without error")
    assert node in (1, 2, 3)
    assert (host, port) == (proxy.advertised_host, proxy.broker_port_base + node)


def test_kafka_python_cluster_view(mock, proxy, needs_proxy):
    topic = mock.topic(unique("md-kp"), 2)
    c = KafkaConsumer(bootstrap_servers=proxy.bootstrap, request_timeout_ms=30000)
    try:
        assert c.partitions_for_topic(topic) == {0, 1}
        brokers = c._client.cluster.brokers()
        addrs = sorted((b.nodeId, b.host, b.port) for b in brokers)
    finally:
        c.close()
    assert addrs == [(n, proxy.advertised_host, proxy.broker_port_base + n) for n in (1, 2, 3)]
