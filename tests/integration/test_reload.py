"""Live config reload (issue 14): SIGHUP and POST /reload apply new topic
rules while a client keeps streaming through eosproxy; a broken file is
refused with its file:line and the running rules stay; keys that need a
restart say so.

What a user sees is checked: records that arrive, duplicates a consumer
does or does not get, the producer's delivery reports, connections that
were never closed.
"""

import signal
import threading
import time
import urllib.request

import yaml
from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as CTopicPartition

from helpers import unique, wait_until
from redis_server import redis_server  # noqa: F401 (fixture)

RELOADS = "eosproxy_config_reload_total"


def post(proxy, path):
    req = urllib.request.Request(proxy.admin_url + path, data=b"", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def rewrite(proxy, **changes):
    """Writes the running config file again with changes ("topics"=[...],
    "listen.port"=...)."""
    cfg = yaml.safe_load(proxy.config_path.read_text())
    for key, val in changes.items():
        node = cfg
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = val
    proxy.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def produce_dups(bootstrap, topic, ids):
    """Each eventId twice, straight to the cluster."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 50})
    for eid in ids:
        for copy in range(2):
            p.produce(topic, value=f"{eid}/{copy}".encode(), partition=0,
                      headers=[("eventId", eid.encode())])
    assert p.flush(30) == 0


def consume_values(bootstrap, topic, want_at_least, seconds=20.0):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("g"),
                  "enable.auto.commit": False, "fetch.wait.max.ms": 100})
    c.assign([CTopicPartition(topic, 0, 0)])
    got = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            for m in c.consume(num_messages=1000, timeout=0.3):
                if not m.error():
                    got.append(m.value().decode())
            if len(got) >= want_at_least:
                # a moment more for anything that would come on top
                for m in c.consume(num_messages=1000, timeout=1.0):
                    if not m.error():
                        got.append(m.value().decode())
                break
    finally:
        c.close()
    return got


class Streamer:
    """One producer sending through eosproxy for the whole test, on one
    connection per broker: its delivery reports must all be successes."""

    def __init__(self, bootstrap, topic):
        self.p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                           "message.timeout.ms": 30000})
        self.topic = topic
        self.sent = 0
        self.ok = 0
        self.errors = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def report(self, err, msg):
        if err:
            self.errors.append(str(err))
        else:
            self.ok += 1

    def run(self):
        while not self.stop.is_set():
            self.p.produce(self.topic, value=f"s{self.sent}".encode(), on_delivery=self.report)
            self.sent += 1
            self.p.poll(0.01)
        self.p.flush(30)

    def finish(self):
        self.stop.set()
        self.thread.join(60)
        return self.sent, self.ok, self.errors


def test_rule_change_by_sighup_and_post_while_streaming(mock, redis_server, proxy_factory):
    """A dedup rule added by SIGHUP takes effect for new Fetch responses
    while a producer streams through eosproxy without an error or a closed
    connection; a broken file posted to /reload is refused with its line
    and the running rules stay; a restart-only key is reported as such."""
    rule = {"match": "rl-*", "delivery": "at-least-once"}
    proxy = proxy_factory(topics=[rule], **{"redis.url": redis_server.url})
    stream_topic = mock.topic(unique("stream"), 1)
    streamer = Streamer(proxy.bootstrap, stream_topic)
    try:
        wait_until(lambda: streamer.ok >= 50, timeout=30, what="the streamer's first records")
        closed_before = sum(v for (name, _), v in proxy.metrics().items()
                            if name == "eosproxy_client_connections_closed_total")

        # Before: no dedup, a consumer gets both copies of each eventId.
        t1 = mock.topic(unique("rl-before"), 1)
        produce_dups(mock.bootstrap, t1, [f"{t1}:{i}" for i in range(10)])
        assert len(consume_values(proxy.bootstrap, t1, 20)) == 20

        # SIGHUP with a dedup rule: duplicates are dropped from then on.
        rewrite(proxy, topics=[dict(rule, dedup={"event_id": "header:eventId", "ttl": "1h"})])
        proxy.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: proxy.metrics().get_value(RELOADS, result="ok") >= 1, timeout=20,
                   what="the SIGHUP reload")
        t2 = mock.topic(unique("rl-after"), 1)
        produce_dups(mock.bootstrap, t2, [f"{t2}:{i}" for i in range(10)])
        got = consume_values(proxy.bootstrap, t2, 10)
        assert sorted(got) == sorted(f"{t2}:{i}/0" for i in range(10)), got

        # A broken file: refused with file:line, the dedup rule stays.
        good = proxy.config_path.read_text()
        proxy.config_path.write_text(good.replace("delivery: at-least-once",
                                                  "delivery: exactly-twice"))
        status, body = post(proxy, "/reload")
        assert status == 400, body
        assert f"{proxy.config_path}:" in body and "delivery" in body, body
        assert proxy.metrics().get_value(RELOADS, result="refused") == 1
        t3 = mock.topic(unique("rl-kept"), 1)
        produce_dups(mock.bootstrap, t3, [f"{t3}:{i}" for i in range(5)])
        assert len(consume_values(proxy.bootstrap, t3, 5)) == 5

        # A restart-only key changed: applied rules, the key reported.
        proxy.config_path.write_text(good)
        rewrite(proxy, **{"listen.max_inflight": 64})
        status, body = post(proxy, "/reload")
        assert status == 200 and "listen.max_inflight" in body, body
        assert "take effect only after a restart: listen.max_inflight" in proxy.log
        assert proxy.metrics().get_value(RELOADS, result="ok") == 2
        status, _, _ = proxy.http_get("/reload")
        assert status == 405

        wait_until(lambda: streamer.ok >= streamer.sent - 100, timeout=30,
                   what="the streamer keeping up")
    finally:
        sent, ok, errors = streamer.finish()
    assert not errors, errors[:5]
    assert ok == sent, f"{sent} sent, {ok} acknowledged"
    closed_after = sum(v for (name, _), v in proxy.metrics().items()
                       if name == "eosproxy_client_connections_closed_total")
    # The test's own consumers closed their connections; the streamer's
    # connections were never closed by eosproxy (no "upstream"/"protocol").
    m = proxy.metrics()
    assert m.get_value("eosproxy_client_connections_closed_total", reason="protocol") == 0
    assert m.get_value("eosproxy_client_connections_closed_total", reason="upstream") == 0
    assert closed_after >= closed_before
    c = Consumer({"bootstrap.servers": mock.bootstrap, "group.id": unique("g"),
                  "enable.auto.commit": False})
    try:
        lo, hi = c.get_watermark_offsets(CTopicPartition(stream_topic, 0), timeout=10)
    finally:
        c.close()
    assert hi - lo == sent, f"{hi - lo} records in the topic, {sent} sent"


def test_reload_adds_the_first_idempotent_rule(mock, proxy_factory):
    """A reload that makes a topic idempotent starts the upgrade engine:
    a plain producer's next records are written under eosproxy's producer
    id (counted), and they all land once."""
    proxy = proxy_factory(topics=[{"match": "other", "delivery": "at-least-once"}])
    topic = mock.topic(unique("rl-idem"), 1)
    rewrite(proxy, topics=[{"match": "rl-idem-*", "delivery": "idempotent"}])
    status, body = post(proxy, "/reload")
    assert status == 200 and body.strip() == "reloaded", body
    p = Producer({"bootstrap.servers": proxy.bootstrap, "acks": "all", "linger.ms": 5,
                  "enable.idempotence": False})
    for i in range(100):
        p.produce(topic, value=f"v{i}".encode(), partition=0)
    assert p.flush(30) == 0
    assert proxy.metrics().get_value("eosproxy_upgraded_records_total") == 100
    got = consume_values(proxy.bootstrap, topic, 100)
    assert sorted(got) == sorted(f"v{i}" for i in range(100))
