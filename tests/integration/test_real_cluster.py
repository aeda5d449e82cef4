"""eosproxy in front of a real 3-broker Kafka cluster (three combined
controller+broker nodes, replication factor 3), started once for this file
only: every broker served on its own eosproxy port, and a broker killed
(kill -9) and restarted while producers write through eosproxy and a
consumer reads through it. What the producers were told was written is
then read straight from the cluster: nothing lost, nothing twice, in order
per partition.

These tests need three brokers (leaders that move, replicas that take
over); the mock cannot kill a real broker's process either. Everything else
runs against the single broker, which starts faster."""

import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer

from helpers import kcat_metadata, kcat_roundtrip, unique
from kafka_real import ProxyFactory, start_cluster
from test_idempotent import IDEMPOTENT, assert_exactly_once_in_order, read_topic
from test_real_upgrade import eosproxy_producers

pytestmark = [pytest.mark.real_kafka, pytest.mark.real_kafka_cluster]


@pytest.fixture(scope="module")
def kafka3(tmp_path_factory, certs):
    cluster = start_cluster(tmp_path_factory, certs, 3)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def k3proxy_factory(kafka3, tmp_path):
    f = ProxyFactory(kafka3, tmp_path)
    try:
        yield f
    finally:
        failures = f.close()
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


def test_three_brokers_each_on_its_own_port(kafka3, k3proxy_factory):
    proxy = k3proxy_factory()
    topic = kafka3.create_topic(unique("real3-md"), 6)
    md = kcat_metadata(proxy.bootstrap, topic)
    assert sorted(b["id"] for b in md["brokers"]) == [1, 2, 3]
    for b in md["brokers"]:
        assert b["name"] == proxy.broker_addr(b["id"]), b
    parts = [t for t in md["topics"] if t["topic"] == topic][0]["partitions"]
    assert {p["leader"] for p in parts} == {1, 2, 3}, "leaders spread over the brokers"
    assert all(len(p["replicas"]) == 3 for p in parts)
    kcat_roundtrip(proxy.bootstrap, topic, n=90)


class Writer(threading.Thread):
    """Produces one record every few ms until stopped; keeps what the
    client was told was written, per partition in the order it was sent."""

    def __init__(self, bootstrap, topic, partitions, prefix, **conf):
        super().__init__(daemon=True)
        self.topic, self.partitions, self.prefix = topic, partitions, prefix
        self.conf = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                     "message.timeout.ms": 120000, "retry.backoff.ms": 100, **conf}
        self.stopping = threading.Event()
        self.sent = {p: [] for p in range(partitions)}
        self.delivered = set()
        self.errors = []
        self.exc = None

    def on_delivery(self, err, msg):
        if err:
            self.errors.append(str(err))
        else:
            self.delivered.add(msg.value().decode())

    def run(self):
        try:
            p = Producer(self.conf)
            i = 0
            while not self.stopping.is_set():
                part = i % self.partitions
                v = f"{self.prefix}-{i}"
                p.produce(self.topic, value=v.encode(), partition=part,
                          on_delivery=self.on_delivery)
                self.sent[part].append(v)
                i += 1
                p.poll(0.005)
            left = p.flush(150)
            assert left == 0, f"{left} records never acknowledged"
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.exc = e

    def count(self):
        return len(self.delivered)


def leader_of(kafka3, topic, partition):
    """The leader of a partition, as a running node reports it."""
    from flexible import metadata_v12
    node = next(n for n in kafka3.nodes if n.alive())
    md = metadata_v12(f"127.0.0.1:{node.ports['PLAINTEXT']}", [topic])
    return md["topics"][topic]["partitions"][partition]


class Reader(threading.Thread):
    """A consumer group member reading through eosproxy until stopped."""

    def __init__(self, bootstrap, topic):
        super().__init__(daemon=True)
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("real3-g"),
                           "auto.offset.reset": "earliest", "session.timeout.ms": 10000,
                           "heartbeat.interval.ms": 500})
        self.topic = topic
        self.seen = set()
        self.stopping = threading.Event()
        self.exc = None

    def run(self):
        try:
            self.c.subscribe([self.topic])
            while not self.stopping.is_set():
                m = self.c.poll(0.2)
                if m is None:
                    continue
                if m.error():
                    if m.error().fatal():
                        raise KafkaException(m.error())
                    continue  # transport errors while a broker is down
                self.seen.add(m.value().decode())
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.exc = e
        finally:
            self.c.close()


PARTS = 3


@pytest.fixture(scope="module")
def kill_cycle(kafka3, tmp_path_factory):
    """One broker killed (kill -9) and restarted while three clients work
    through eosproxy, each on a topic of its own: an idempotent librdkafka
    producer (passed through), a non-idempotent one into an `idempotent`
    topic (upgraded: eosproxy's producer id and sequences; eosproxy asks the
    cluster for the new leader and resends there with the same sequences),
    and a consumer group member reading what a producer writes straight to
    the cluster. The victim leads a partition of every topic. The tests
    below judge the outcome."""
    factory = ProxyFactory(kafka3, tmp_path_factory.mktemp("kill-cycle"))
    try:
        proxy = factory(topics=IDEMPOTENT, **{"upstream.reconnect_backoff_max": "1s",
                                              "log.level": "debug"})
        topics = {"passed": kafka3.create_topic(unique("real3-kill"), PARTS),
                  "upgraded": kafka3.create_topic(unique("idem-kill"), PARTS),
                  "consumed": kafka3.create_topic(unique("real3-cons"), PARTS)}
        writers = {
            "passed": Writer(proxy.bootstrap, topics["passed"], PARTS, "passed",
                             **{"enable.idempotence": True}),
            "upgraded": Writer(proxy.bootstrap, topics["upgraded"], PARTS, "upgraded",
                               **{"enable.idempotence": False, "retries": 1000000,
                                  "max.in.flight.requests.per.connection": 1}),
            "consumed": Writer(kafka3.bootstrap, topics["consumed"], PARTS, "consumed",
                               **{"enable.idempotence": True}),
        }
        reader = Reader(proxy.bootstrap, topics["consumed"])
        leaders = {name: {leader_of(kafka3, t, p) for p in range(PARTS)}
                   for name, t in topics.items()}
        victim = next(n for n in (1, 2, 3) if all(n in ls for ls in leaders.values()))
        for w in writers.values():
            w.start()
        reader.start()
        stalled = {}  # phase -> writers that made no progress in it

        def more(n, phase, timeout=180):
            """Waits until every writer has n more records acknowledged; the
            ones that did not are noted (their tests fail), not raised here,
            so that one stuck route does not hide the others' outcome."""
            base = {k: w.count() for k, w in writers.items()}
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if all(w.count() >= base[k] + n for k, w in writers.items()):
                    return
                time.sleep(0.2)
            stalled[phase] = {k: (base[k], w.count(), w.errors[:3]) for k, w in writers.items()
                              if w.count() < base[k] + n}

        try:
            more(200, "before the kill", timeout=120)
            kafka3.kill(victim)
            # The partitions the victim did not lead keep going meanwhile.
            more(200, "with a broker down")
            moved = all(leader_of(kafka3, t, p) != victim for t in topics.values()
                        for p in range(PARTS))
            kafka3.restart(victim)
            more(200, "after the restart")
        finally:
            for w in writers.values():
                w.stopping.set()
            for w in writers.values():
                w.join(200)
        want = {v for vals in writers["consumed"].sent.values() for v in vals}
        deadline = time.monotonic() + 120
        while not (want <= reader.seen or reader.exc) and time.monotonic() < deadline:
            time.sleep(0.2)
        reader.stopping.set()
        reader.join(60)
        yield {"proxy": proxy, "topics": topics, "writers": writers, "reader": reader,
               "moved": moved, "victim": victim, "stalled": stalled}
    finally:
        failures = factory.close()
        for n in kafka3.nodes:
            if not n.alive():
                n.start()
    assert not failures, "\n\n".join(failures)


def assert_kept_going(cycle, name):
    stuck = {phase: who[name] for phase, who in cycle["stalled"].items() if name in who}
    assert not stuck, f"{name}: no progress (records before, after, errors): {stuck}"


def assert_exactly_once(kafka3, cycle, name):
    w = cycle["writers"][name]
    assert_kept_going(cycle, name)
    assert cycle["moved"], f"leadership did not move off broker {cycle['victim']}"
    assert w.exc is None, w.exc
    assert not w.errors, w.errors[:10]
    total = sum(len(v) for v in w.sent.values())
    assert w.count() == total, "every record acknowledged"
    got = read_topic(kafka3.bootstrap, cycle["topics"][name], PARTS, expect=total, timeout=120)
    assert_exactly_once_in_order(got, w.sent)


def test_broker_kill_idempotent_client_exactly_once(kafka3, kill_cycle):
    assert_exactly_once(kafka3, kill_cycle, "passed")


def test_broker_kill_upgraded_client_exactly_once(kafka3, kill_cycle):
    assert_exactly_once(kafka3, kill_cycle, "upgraded")
    assert eosproxy_producers(kill_cycle["proxy"].log), "eosproxy logged no producer id"


def test_broker_kill_consumer_gets_everything(kafka3, kill_cycle):
    w, r = kill_cycle["writers"]["consumed"], kill_cycle["reader"]
    assert_kept_going(kill_cycle, "consumed")
    assert w.exc is None and not w.errors, (w.exc, w.errors[:10])
    assert r.exc is None, r.exc
    want = {v for vals in w.sent.values() for v in vals}
    assert want <= r.seen, f"{len(want - r.seen)} of {len(want)} records never reached the consumer"
