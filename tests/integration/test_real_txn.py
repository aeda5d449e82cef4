"""Transactional delivery against a real Kafka 4 broker: producers that know
nothing of transactions write `delivery: transactional` topics through
eosproxy, which wraps their requests in transactions of its own; consumers
behind eosproxy read committed data only.

Kafka-only: the mock has no transaction coordinator semantics that matter
here (no markers, no read_committed filtering, no fencing)."""

import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from helpers import unique, wait_until
from kafka_real import run_java
from test_kafkajs import run_node
from test_real_clients import kp_produce

pytestmark = pytest.mark.real_kafka

RULES = [{"match": "txn.*", "delivery": "transactional"}]


def produce(bootstrap, records, **conf):
    """records: [(topic, partition, value)]. Non-idempotent librdkafka
    producer. Returns {value: error or None} from the delivery reports."""
    reports = {}

    def on_delivery(err, msg):
        reports[msg.value().decode()] = err

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20,
                  "enable.idempotence": False, "message.timeout.ms": 60000, **conf})
    for topic, part, value in records:
        p.produce(topic, value.encode(), partition=part, on_delivery=on_delivery)
    assert p.flush(90) == 0, "every delivery report came"
    return reports


def read_all(bootstrap, topic, partitions, isolation, timeout=20.0):
    """Every value in topic from the start, read with the given isolation
    level until `timeout` passes with nothing new."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("g"),
                  "enable.auto.commit": False, "isolation.level": isolation,
                  "auto.offset.reset": "earliest", "enable.partition.eof": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out, quiet_since = [], time.time()
    try:
        while time.time() - quiet_since < timeout:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            out.append(m.value().decode())
            quiet_since = time.time()
    finally:
        c.close()
    return out


def test_request_across_partitions_commits_together(kafka, kproxy_factory):
    """Records of several partitions of two topics, sent by a plain
    producer, are all acknowledged, all visible to read_committed, and
    written in eosproxy's transactions (not the client's producer id)."""
    proxy = kproxy_factory(topics=RULES, **{"transactions.id": unique("eos-txn")})
    a = kafka.create_topic(unique("txn.a"), 2)
    b = kafka.create_topic(unique("txn.b"), 1)
    records = [(t, p, f"{t}-{p}-{i}") for i in range(100) for t, p in ((a, 0), (a, 1), (b, 0))]
    reports = produce(proxy.bootstrap, records)
    assert all(e is None for e in reports.values()), [e for e in reports.values() if e][:3]
    got = read_all(kafka.bootstrap, a, 2, "read_committed") + \
        read_all(kafka.bootstrap, b, 1, "read_committed")
    assert sorted(got) == sorted(v for _, _, v in records), "each record exactly once"
    m = proxy.metrics()
    assert m.get_value("eosproxy_txn_committed_total") >= 1
    assert m.get_value("eosproxy_txn_aborted_total") == 0
    assert m.get_value("eosproxy_produce_requests_total", route="transaction") >= 1
    batches = kafka.read_batches(a, 2)
    pids = {pid for _, pid, _, _, values in batches if values}
    # transactions.pool (default 2): one producer id per transactional id.
    assert 1 <= len(pids) <= 2 and -1 not in pids, f"eosproxy's producer ids wrote them: {pids}"


def test_pool_keeps_each_partition_in_order(kafka, kproxy_factory):
    """transactions.pool (two ids by default): one transaction commits
    while the next is written, on connections of its own. A plain producer
    with five requests in flight to one partition still finds its records
    there once each, in the order it sent them, written under both ids."""
    proxy = kproxy_factory(topics=RULES, **{"transactions.linger": "2ms"})
    topic = kafka.create_topic(unique("txn.order"), 1)
    pad = "x" * 500
    values = [f"o-{i:05d}-{pad}" for i in range(20000)]
    reports = produce(proxy.bootstrap, [(topic, 0, v) for v in values],
                      **{"linger.ms": 2, "batch.size": 65536,
                         "max.in.flight.requests.per.connection": 5})
    assert all(e is None for e in reports.values()), [e for e in reports.values() if e][:3]
    got = read_all(kafka.bootstrap, topic, 1, "read_committed", timeout=5)
    assert len(got) == len(values) and set(got) == set(values), "each record once"
    moved = [(i, v[:7]) for i, v in enumerate(got) if v != values[i]]
    assert not moved, f"records out of the order sent: {moved[:5]}"
    pids = {pid for _, pid, _, _, vals in kafka.read_batches(topic, 1) if vals}
    assert len(pids) == 2 and -1 not in pids, f"both ids of the pool wrote: {pids}"


@pytest.mark.parametrize("client", ["java", "kafka-python", "kafkajs"])
def test_plain_clients_write_transactionally(kafka, kproxy_factory, client):
    """The Java client (idempotence off), kafka-python and kafkajs's plain
    producer, none of them transactional, write a `transactional` topic:
    everything they were told is written is committed, once."""
    proxy = kproxy_factory(topics=RULES)
    topic = kafka.create_topic(unique("txn.client"), 3)
    n = 300
    if client == "java":
        res = run_java(kafka, "produce", "--bootstrap", proxy.bootstrap, "--topic", topic,
                       "--count", n, "--partitions", 3, "--prefix", "j", "--idempotence", "false",
                       "--acks", "all")
        assert res["error"] is None, res["stderr"][-3000:]
        acked = [r["value"] for r in res["acked"]]
    elif client == "kafka-python":
        values = [f"kp-{i}" for i in range(n)]
        kp_produce(proxy.bootstrap, topic, values)
        acked = values
    else:
        # roundtrip.js also consumes through eosproxy: read_committed upgraded.
        res = run_node("roundtrip.js", proxy.bootstrap, topic, str(n), unique("kjs-txn-g"))
        acked = [r["value"] for r in res["produced"]]
        assert sorted(r["value"] for r in res["consumed"]) == sorted(acked)
    assert len(acked) == n
    got = read_all(kafka.bootstrap, topic, 3, "read_committed", timeout=8)
    assert sorted(got) == sorted(acked), "every acknowledged record committed, once"
    m = proxy.metrics()
    assert m.get_value("eosproxy_txn_committed_total") >= 1
    assert m.get_value("eosproxy_txn_aborted_total") == 0


def test_consumer_behind_eosproxy_reads_committed_only(kafka, kproxy_factory):
    """A read_uncommitted consumer behind eosproxy does not see the records
    of an open transaction (its Fetch is raised to read_committed); a
    direct read_uncommitted consumer does."""
    proxy = kproxy_factory(topics=RULES)
    topic = kafka.create_topic(unique("txn.open"), 1)
    tp = Producer({"bootstrap.servers": kafka.bootstrap, "transactional.id": unique("open"),
                   "linger.ms": 0})
    tp.init_transactions(30)
    tp.begin_transaction()
    for i in range(20):
        tp.produce(topic, f"open-{i}".encode(), partition=0)
    tp.flush(30)
    try:
        direct = read_all(kafka.bootstrap, topic, 1, "read_uncommitted", timeout=5)
        assert len(direct) == 20, "the direct read_uncommitted consumer sees the open records"
        behind = read_all(proxy.bootstrap, topic, 1, "read_uncommitted", timeout=5)
        assert behind == [], "behind eosproxy the open transaction is invisible"
        assert proxy.metrics().get_value("eosproxy_fetch_read_committed_total") > 0
    finally:
        tp.commit_transaction(30)
    behind = read_all(proxy.bootstrap, topic, 1, "read_uncommitted", timeout=5)
    assert sorted(behind) == sorted(f"open-{i}" for i in range(20)), "visible once committed"


def test_refused_partition_aborts_the_whole_transaction(kafka, kproxy_factory):
    """One partition refuses its batch (RECORD_TOO_LARGE via the topic's
    max.message.bytes): every request in that transaction fails, none of
    its records is visible, and the clients' retries land once."""
    proxy = kproxy_factory(topics=RULES, **{"transactions.linger": "1s"})
    ok_topic = kafka.create_topic(unique("txn.ok"), 2)
    small = kafka.create_topic(unique("txn.small"), 1, config={"max.message.bytes": "2000"})
    big = "x" * 5000
    records = [(ok_topic, p, f"ok-{p}-{i}") for p in (0, 1) for i in range(10)]
    records.append((small, 0, big))
    reports = produce(proxy.bootstrap, records, **{"retries": 0, "linger.ms": 50})
    assert reports[big] is not None, "the oversized record was refused"
    failed = [v for v, e in reports.items() if e is not None and v != big]
    assert failed, "its transaction's other records were answered with an error too"
    m = proxy.metrics()
    assert m.get_value("eosproxy_txn_aborted_total") >= 1
    visible = read_all(kafka.bootstrap, ok_topic, 2, "read_committed", timeout=5)
    assert not set(visible) & set(failed), "nothing of the aborted transaction is visible"
    # The clients retry what failed: every record then lands exactly once.
    retry = [(ok_topic, int(v.split("-")[1]), v) for v in failed]
    reports = produce(proxy.bootstrap, retry)
    assert all(e is None for e in reports.values())
    visible = read_all(kafka.bootstrap, ok_topic, 2, "read_committed", timeout=5)
    assert sorted(visible) == sorted(v for t, _, v in records if t == ok_topic)


def test_second_sidecar_with_the_same_id_fences_the_first(kafka, kproxy_factory, tmp_path):
    """Two live sidecars with one transactions.id: the newer one takes the
    id; the older one says so in its log and metrics and refuses
    transactional writes rather than flapping."""
    tid = unique("shared-id")
    first = kproxy_factory(topics=RULES, **{"transactions.id": tid})
    topic = kafka.create_topic(unique("txn.fence"), 1)
    assert all(e is None for e in produce(first.bootstrap, [(topic, 0, "one")]).values())
    second = kproxy_factory(topics=RULES, **{"transactions.id": tid})
    assert all(e is None for e in produce(second.bootstrap, [(topic, 0, "two")]).values())
    reports = produce(first.bootstrap, [(topic, 0, "three")], **{"message.timeout.ms": 20000})
    assert reports["three"] is not None, "the fenced sidecar refuses the write"
    wait_until(lambda: first.metrics().get_value("eosproxy_txn_fenced") == 1, timeout=30,
               what="eosproxy_txn_fenced on the first sidecar")
    assert "FENCED" in first.log
    assert second.metrics().get_value("eosproxy_txn_fenced") == 0
    # The alert fires on what the fenced sidecar exports, and only it.
    import ops_support as ops
    a = ops.Scrape(first)
    b = ops.Scrape(first)
    ops.promtool_test(tmp_path, "txn-fenced", ops.sustained(a, b),
                      ops.expected(a, b, {"EosproxyTransactionalIdFenced": [{}]}))
    got = read_all(kafka.bootstrap, topic, 1, "read_committed", timeout=5)
    assert sorted(got) == ["one", "two"]


class Stream(threading.Thread):
    """Produces numbered records through a bootstrap until stopped; keeps
    which ones were acknowledged."""

    def __init__(self, bootstrap, topic, partitions):
        super().__init__(daemon=True)
        self.topic, self.partitions = topic, partitions
        self.p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                           "enable.idempotence": False, "message.timeout.ms": 120000,
                           "retry.backoff.ms": 200, "reconnect.backoff.max.ms": 500})
        self.stopping = threading.Event()
        self.sent, self.acked, self.errors = [], set(), []

    def on_delivery(self, err, msg):
        if err:
            self.errors.append(str(err))
        else:
            self.acked.add(msg.value().decode())

    def run(self):
        i = 0
        while not self.stopping.is_set():
            v = f"s-{i}"
            try:
                self.p.produce(self.topic, v.encode(), partition=i % self.partitions,
                               on_delivery=self.on_delivery)
                self.sent.append(v)
                i += 1
            except BufferError:
                pass
            self.p.poll(0.002)
        self.p.flush(150)


def test_sigkill_mid_stream_keeps_every_acknowledged_record(kafka, kproxy_factory):
    """eosproxy killed with SIGKILL while a plain producer streams through
    it, then started again on the same ports with the same id: every
    acknowledged record is visible once committed; what was in flight is
    either retried into a later transaction or aborted. Records written
    twice can come only from the documented window (a commit whose answer
    died with the process); the test reports how many."""
    tid = unique("kill-id")
    first = kproxy_factory(topics=RULES, **{"transactions.id": tid})
    topic = kafka.create_topic(unique("txn.kill"), 3)
    s = Stream(first.bootstrap, topic, 3)
    s.start()
    wait_until(lambda: len(s.acked) >= 300, timeout=60, what="300 records acknowledged")
    first.proc.kill()
    first.proc.wait(10)
    kproxy_factory.started.remove(first)  # killed on purpose: no clean exit to check
    second = kproxy_factory(topics=RULES, **{
        "transactions.id": tid, "listen.port": first.port,
        "listen.broker_port_base": first.broker_port_base})
    n = len(s.acked)
    wait_until(lambda: len(s.acked) >= n + 300, timeout=120, what="300 more after the restart")
    s.stopping.set()
    s.join(180)
    got = read_all(kafka.bootstrap, topic, 3, "read_committed", timeout=10)
    missing = s.acked - set(got)
    assert not missing, f"{len(missing)} acknowledged records are not visible"
    dups = len(got) - len(set(got))
    print(f"sigkill: {len(s.acked)} acknowledged, {len(got)} visible, {dups} written twice "
          f"(the commit-answer window), {len(s.errors)} delivery errors")
    assert set(got) <= set(s.sent)
    assert second.metrics().get_value("eosproxy_txn_committed_total") >= 1
