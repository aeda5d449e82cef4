"""transactional.bind_group on the mock: a plain consume-transform-produce
loop through eosproxy, whose output commits with the group's offset
commits (the quick runs, and the coordinator errors only the mock can
inject). The mock neither writes transaction markers nor filters aborted
records, and its TxnOffsetCommit stores no offsets, so exactly-once as a
read_committed consumer sees it, the committed offsets, and SIGKILL of the
application are checked on real Kafka (test_real_bind.py). Here: what the
application sees (its commits answered, refused, read again)."""

import subprocess
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

from helpers import unique, wait_until
from test_faults import Recorder, producer

TXN_OFFSET_COMMIT = 28
ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, COORDINATOR_LOAD_IN_PROGRESS = 22, 25, 14


def rules(group):
    return [{"match": "bout.*", "delivery": "transactional",
             "transactional": {"bind_group": group}}]


def fill(mock, topic, n, partitions):
    rec = Recorder()
    p = producer(mock.bootstrap)
    for i in range(n):
        p.produce(topic, value=f"in-{i}".encode(), partition=i % partitions, on_delivery=rec)
    assert p.flush(60) == 0 and len(rec.ok) == n


def consumer(bootstrap, group, **conf):
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "session.timeout.ms": 6000, "heartbeat.interval.ms": 500, **conf})


def committed(mock, group, topic, partitions):
    c = consumer(mock.bootstrap, group)
    try:
        parts = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in parts}
    finally:
        c.close()


def process(proxy, group, tin, tout, want, commit_errors=None, deadline=60):
    """Consumes tin through proxy, writes one output per input to tout,
    flushes, commits synchronously. Returns the inputs processed (a record
    processed again after a refused commit counts twice)."""
    c = consumer(proxy.bootstrap, group)
    p = producer(proxy.bootstrap, **{"enable.idempotence": False})
    c.subscribe([tin])
    done, end = [], time.time() + deadline
    try:
        while time.time() < end and len(set(done)) < want:
            msgs = [m for m in c.consume(50, 1.0) if not m.error()]
            if not msgs:
                continue
            for m in msgs:
                p.produce(tout, value=b"out-" + m.value())
            assert p.flush(30) == 0
            try:
                c.commit(asynchronous=False)
            except KafkaException as e:
                if commit_errors is None:
                    raise
                commit_errors.append(e.args[0].code())
                continue  # not committed: the consumer reads them again
            done += [m.value() for m in msgs]
    finally:
        c.close()
    return done


def test_output_commits_with_the_group_offsets(mock, proxy_factory):
    group = unique("g")
    proxy = proxy_factory(topics=rules(group))
    tin, tout = mock.topic(unique("bin"), 3), mock.topic(unique("bout.x"), 3)
    fill(mock, tin, 120, 3)
    done = process(proxy, group, tin, tout, 120)
    assert len(done) == 120, "each commit was answered with success, nothing read again"
    m = proxy.metrics()
    assert m.get_value("eosproxy_bind_commits_total") >= 1, "commits went into transactions"
    assert m.get_value("eosproxy_txn_committed_total") >= 1
    assert m.get_value("eosproxy_bind_commits_refused_total") == 0


def test_commit_without_output_passes_through(mock, proxy_factory):
    """A group that has produced nothing bound commits as it always did."""
    group = unique("g")
    proxy = proxy_factory(topics=rules(group))
    tin = mock.topic(unique("bin"), 2)
    fill(mock, tin, 20, 2)
    c = consumer(proxy.bootstrap, group)
    c.subscribe([tin])
    got = 0
    end = time.time() + 30
    while got < 20 and time.time() < end:
        got += len([m for m in c.consume(50, 1.0) if not m.error()])
    c.commit(asynchronous=False)
    c.close()
    assert committed(mock, group, tin, 2) == {0: 10, 1: 10}
    assert proxy.metrics().get_value("eosproxy_bind_commits_total") == 0


def test_group_coordinator_refusal_sends_the_consumer_back(mock, proxy_factory):
    """TxnOffsetCommit refused (ILLEGAL_GENERATION from the group
    coordinator): the output is aborted, the application's commit fails,
    it reads the input again and commits it with new output."""
    group = unique("g")
    proxy = proxy_factory(topics=rules(group))
    tin, tout = mock.topic(unique("bin"), 2), mock.topic(unique("bout.r"), 2)
    fill(mock, tin, 60, 2)
    mock.cmd(f"err {TXN_OFFSET_COMMIT} 1 {ILLEGAL_GENERATION}")
    errors = []
    done = process(proxy, group, tin, tout, 60, commit_errors=errors)
    assert len(set(done)) == 60
    assert errors and set(errors) <= {ILLEGAL_GENERATION}, errors
    m = proxy.metrics()
    assert m.get_value("eosproxy_bind_commits_refused_total") >= 1
    assert m.get_value("eosproxy_producer_id_renewals_total") >= 1, "the output was aborted"


def test_retriable_group_coordinator_errors_are_ridden_out(mock, proxy_factory):
    group = unique("g")
    proxy = proxy_factory(topics=rules(group))
    tin, tout = mock.topic(unique("bin"), 2), mock.topic(unique("bout.t"), 2)
    fill(mock, tin, 40, 2)
    mock.cmd(f"err {TXN_OFFSET_COMMIT} 3 {COORDINATOR_LOAD_IN_PROGRESS}")
    done = process(proxy, group, tin, tout, 40)
    assert len(done) == 40, "no commit failed"
    m = proxy.metrics()
    assert m.get_value("eosproxy_bind_commits_refused_total") == 0
    assert m.get_value("eosproxy_bind_commits_total") >= 1


def test_leaving_without_a_commit_aborts_the_output(mock, proxy_factory):
    """The application writes output and leaves the group without
    committing: the output is aborted (a new epoch), nothing is committed."""
    group = unique("g")
    proxy = proxy_factory(topics=rules(group))
    tin, tout = mock.topic(unique("bin"), 1), mock.topic(unique("bout.l"), 1)
    fill(mock, tin, 10, 1)
    c = consumer(proxy.bootstrap, group)
    p = producer(proxy.bootstrap, **{"enable.idempotence": False})
    c.subscribe([tin])
    msgs, end = [], time.time() + 30
    while not msgs and time.time() < end:
        msgs = [m for m in c.consume(10, 1.0) if not m.error()]
    for m in msgs:
        p.produce(tout, value=b"out-" + m.value())
    assert p.flush(30) == 0
    c.close()  # LeaveGroup, no commit
    wait_until(lambda: proxy.metrics().get_value("eosproxy_bind_rebalance_aborts_total") >= 1,
               timeout=10, what="the rebalance abort")
    wait_until(lambda: proxy.metrics().get_value("eosproxy_producer_id_renewals_total") >= 1,
               timeout=10, what="the abort (a new epoch)")
    assert proxy.metrics().get_value("eosproxy_bind_commits_total") == 0


def test_bind_group_needs_a_transactional_rule(tmp_path):
    """--check refuses bind_group on a rule that is not transactional."""
    from conftest import EOSPROXY_BIN
    path = tmp_path / "bad.yaml"
    path.write_text("upstream: {mock_brokers: 1}\ntopics:\n  - match: a\n    delivery: idempotent\n"
                    "    transactional: {bind_group: g}\n")
    r = subprocess.run([EOSPROXY_BIN, "-c", str(path), "--check"], capture_output=True, text=True)
    assert r.returncode != 0
    assert "topics[0].transactional.bind_group: needs delivery: transactional" in r.stderr
