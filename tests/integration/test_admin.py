"""The admin endpoint: /healthz, /readyz, /metrics."""

from helpers import kcat_consume, kcat_produce, unique, wait_until


def test_health_and_ready(proxy, needs_proxy):
    assert proxy.http_get("/healthz")[0] == 200
    assert proxy.http_get("/readyz")[0] == 200
    assert proxy.http_get("/no-such-page")[0] == 404


def test_metrics_count_requests_by_api(mock, proxy, needs_proxy):
    status, body, headers = proxy.http_get("/metrics")
    assert status == 200
    assert headers.get("Content-Type", "").startswith("text/plain")
    before = proxy.metrics()
    assert before.get_value("eosproxy_ready") == 1
    assert before.get_value("eosproxy_upstream_brokers") == 3

    topic = mock.topic(unique("adm"), 2)
    kcat_produce(proxy.bootstrap, topic, [(f"k{i}", f"v{i}") for i in range(20)])
    assert len(kcat_consume(proxy.bootstrap, topic)) == 20

    after = proxy.metrics()
    for api in ("ApiVersions", "Metadata", "Produce", "Fetch"):
        b = before.get_value("eosproxy_requests_total", api=api)
        a = after.get_value("eosproxy_requests_total", api=api)
        assert a > b, f"eosproxy_requests_total{{api=\"{api}\"}} did not grow: {b} -> {a}"
    assert after.get_value("eosproxy_client_connections_accepted_total") > \
        before.get_value("eosproxy_client_connections_accepted_total")
    assert after.get_value("eosproxy_request_bytes_total") > before.get_value("eosproxy_request_bytes_total")
    assert after.get_value("eosproxy_response_bytes_total") > before.get_value("eosproxy_response_bytes_total")
    # The latency histogram counted the produce requests.
    assert after.get_value("eosproxy_request_duration_seconds_count", api="Produce") >= 1


def test_event_loop_lag_is_measured(proxy, needs_proxy):
    """The loop's lag timer turns while eosproxy runs: the histogram's count
    grows and its buckets are cumulative up to +Inf = count."""
    wait_until(lambda: proxy.metrics().get_value("eosproxy_event_loop_lag_seconds_count") >= 5,
               timeout=20, what="event-loop lag samples")
    m = proxy.metrics()
    count = m.get_value("eosproxy_event_loop_lag_seconds_count")
    assert m.get_value("eosproxy_event_loop_lag_seconds_bucket", le="+Inf") == count
    assert "loopwatch: the process aborts if its event loop stalls for 30000 ms" in proxy.log
