"""eosproxy's own protocol duties, seen from a raw client: ApiVersions
answered with what both sides support, responses in request order, acks=0,
connection limits, idle timeout, drain on SIGTERM."""

import signal

from helpers import (Conn, api_versions_request, find_coordinator_request, kcat_consume,
                     metadata_request, parse_api_versions, parse_metadata, parse_produce,
                     produce_request, record_batch, unique, wait_until)


def leader_addr(proxy, topic, partition=0):
    """eosproxy's address for the partition's leader, from raw Metadata."""
    with Conn(proxy.bootstrap) as c:
        c.send(metadata_request(1, [topic], corr=1))
        _, _, topics = parse_metadata(1, c.recv()[1])
    leader = dict(topics[topic])[partition]
    return leader, proxy.broker_addr(leader)


# What the 2.0.2 mock serves (TESTBED.md); eosproxy may offer less, never more.
# (ApiVersions itself is left out: eosproxy answers it locally.)
MOCK_MAX = {0: 7, 1: 11, 2: 5, 3: 2, 8: 7, 9: 5, 10: 2, 11: 5, 12: 3, 13: 1, 14: 3}
MOCK_LACKS = {17, 19, 36, 60}  # SaslHandshake, CreateTopics, SaslAuthenticate, DescribeCluster


def test_api_versions_never_exceed_the_cluster(mock, proxy, needs_proxy):
    with Conn(proxy.bootstrap) as c:
        c.send(api_versions_request(corr=11))
        corr, body = c.recv()
    assert corr == 11
    versions = parse_api_versions(body)
    for api in (0, 1, 3, 18):
        assert api in versions, f"API {api} missing from eosproxy's ApiVersions"
    for api, (lo, hi) in versions.items():
        assert lo <= hi
        if api in MOCK_MAX:
            assert hi <= MOCK_MAX[api], f"API {api}: eosproxy offers v{hi}, the cluster only v{MOCK_MAX[api]}"
        assert api not in MOCK_LACKS, f"API {api} offered but the cluster has none"


def test_pipelined_requests_answered_in_order(mock, proxy):
    topic = mock.topic(unique("pipe"), 2)
    _, addr = leader_addr(proxy, topic)
    frames = [
        metadata_request(1, [topic], corr=101),
        api_versions_request(corr=102),  # answered by eosproxy itself
        find_coordinator_request(1, unique("g"), corr=103),
        metadata_request(0, [topic], corr=104),
        api_versions_request(corr=105),
        produce_request(3, topic, 0, record_batch([b"pipelined"]), acks=1, corr=106),
        metadata_request(2, None, corr=107),
    ]
    with Conn(addr) as c:
        c.send(b"".join(frames))
        answers = [c.recv() for _ in frames]
    assert [corr for corr, _ in answers] == list(range(101, 108))
    assert parse_produce(3, answers[5][1]) == [(topic, 0, 0, 0)]
    assert [v for _, _, _, v in kcat_consume(proxy.bootstrap, topic)] == ["pipelined"]


def test_acks0_produce_gets_no_response(mock, proxy, needs_proxy):
    """Like a Kafka broker, eosproxy sends nothing back for acks=0; the next
    request on the connection gets its own answer. (The 2.0.2 mock itself
    does answer acks=0, so this only holds through eosproxy.)"""
    topic = mock.topic(unique("acks0"), 1)
    _, addr = leader_addr(proxy, topic)
    with Conn(addr) as c:
        c.send(produce_request(3, topic, 0, record_batch([b"fire", b"and", b"forget"]), acks=0, corr=7))
        c.send(produce_request(3, topic, 0, record_batch([b"acked"]), acks=1, corr=8))
        corr, body = c.recv()
        assert corr == 8, "the acks=0 request was answered"
        [(name, part, err, base)] = parse_produce(3, body)
        assert (name, part, err, base) == (topic, 0, 0, 3)
    assert [v for _, _, _, v in kcat_consume(proxy.bootstrap, topic)] == ["fire", "and", "forget", "acked"]


def test_max_connections(mock, proxy_factory, needs_proxy):
    proxy = proxy_factory(**{"listen.max_connections": 3})
    conns = [Conn(proxy.bootstrap) for _ in range(3)]
    try:
        for i, c in enumerate(conns):
            c.send(api_versions_request(corr=i))
            assert c.recv()[0] == i
        with Conn(proxy.bootstrap, timeout=20) as extra:
            try:
                extra.send(api_versions_request(corr=99))
            except (BrokenPipeError, ConnectionResetError):
                pass
            assert extra.closed_by_peer(), "a 4th connection was served over max_connections 3"
        assert proxy.metrics().get_value("eosproxy_client_connections_rejected_total") >= 1
        # The admitted ones are unaffected.
        conns[0].send(api_versions_request(corr=50))
        assert conns[0].recv()[0] == 50
    finally:
        conns[2].close()
    # A slot freed is a slot usable again.

    def served():
        with Conn(proxy.bootstrap) as c:
            c.send(api_versions_request(corr=77))
            return c.recv()[0] == 77
    wait_until(served, timeout=20, what="a new connection after one closed")
    for c in conns[:2]:
        c.close()


def test_idle_connections_are_closed(mock, proxy_factory, needs_proxy):
    proxy = proxy_factory(**{"listen.idle_timeout": "1s"})
    with Conn(proxy.bootstrap, timeout=30) as c:
        c.send(api_versions_request(corr=1))
        assert c.recv()[0] == 1
        assert c.closed_by_peer(), "idle connection still open after 30 s (idle_timeout 1s)"
    assert proxy.metrics().get_value("eosproxy_client_connections_closed_total", reason="idle") >= 1


def test_sigterm_answers_in_flight_requests(mock, proxy, needs_proxy):
    """A Produce in flight at SIGTERM still gets its answer, then eosproxy exits 0."""
    topic = mock.topic(unique("drain"), 1)
    leader, addr = leader_addr(proxy, topic)
    mock.cmd(f"rtt {leader} 0 1 0 3000")  # the next Produce on the leader takes 3 s
    with Conn(addr, timeout=30) as c:
        c.send(produce_request(3, topic, 0, record_batch([b"in-flight"]), acks=1, corr=42))
        wait_until(lambda: proxy.metrics().get_value("eosproxy_inflight_requests") >= 1,
                   timeout=10, interval=0.02, what="the produce to be in flight")
        proxy.proc.send_signal(signal.SIGTERM)
        corr, body = c.recv()
        assert corr == 42
        assert parse_produce(3, body) == [(topic, 0, 0, 0)]
        assert c.closed_by_peer()
    assert proxy.wait_exit() == 0
    assert [v for _, _, _, v in kcat_consume(mock.bootstrap, topic)] == ["in-flight"]


def test_acks0_then_acked_produce_to_an_upgraded_topic(mock, proxy_factory, needs_proxy):
    """An acks=0 Produce to an idempotent topic, then an acked one on the
    same connection: the acked one is answered and the connection stays
    open (the acks=0 completion once named the next request's slot and
    closed the client). Every record lands once."""
    proxy = proxy_factory(topics=[{"match": "a0i-*", "delivery": "idempotent"}])
    topic = mock.topic(unique("a0i"), 1)
    _, addr = leader_addr(proxy, topic)
    with Conn(addr) as c:
        for round_ in range(3):
            c.send(produce_request(3, topic, 0, record_batch([f"fire{round_}".encode()]), acks=0,
                                   corr=10 * round_ + 1))
            c.send(produce_request(3, topic, 0, record_batch([f"acked{round_}".encode()]), acks=1,
                                   corr=10 * round_ + 2))
            corr, body = c.recv()
            assert corr == 10 * round_ + 2, "the acks=0 request was answered"
            [(name, part, err, _)] = parse_produce(3, body)
            assert (name, part, err) == (topic, 0, 0)
        c.sock.settimeout(1.0)
        assert not c.closed_by_peer(), "eosproxy closed the connection"
    values = sorted(v for _, _, _, v in kcat_consume(proxy.bootstrap, topic))
    assert values == sorted([f"fire{i}" for i in range(3)] + [f"acked{i}" for i in range(3)])
    assert proxy.metrics().get_value("eosproxy_client_connections_closed_total",
                                     reason="protocol") == 0
