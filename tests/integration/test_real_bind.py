"""Exactly-once consume-process-produce for unchanged applications
(transactional.bind_group), on a real Kafka 4 broker.

A plain read -> transform -> write loop (bind_loop.py on librdkafka, the
Java harness's process-loop on the Java client) is killed with SIGKILL at
random points and restarted until its group has committed all its input.
Read with read_committed, the output must hold exactly one record per
input record. The same loop straight to the broker, killed the same way,
writes duplicates: the control shows the test can fail."""

import collections
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from helpers import unique, wait_until
from kafka_real import JAVA_LOG_CONFIG, _die_with_parent, _java

pytestmark = pytest.mark.real_kafka

HERE = os.path.dirname(os.path.abspath(__file__))
PARTS = 3
N_IN = 300
COMMIT_DELAY_MS = 300  # the crash window between output written and input committed


def bind_rules(group):
    return [{"match": "bind.out.*", "delivery": "transactional",
             "transactional": {"bind_group": group}}]


def fill(kafka, topic, n):
    p = Producer({"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True})
    for i in range(n):
        p.produce(topic, value=f"in-{i}".encode(), partition=i % PARTS)
    assert p.flush(60) == 0


def committed_all(kafka, group, topic):
    """1 when group's committed offsets reached every partition's end."""
    c = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": group, "log_level": 3})
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTS)]
        done = c.committed(parts, timeout=10)
        ends = [c.get_watermark_offsets(tp, timeout=10)[1] for tp in parts]
        return all(d.offset == e for d, e in zip(done, ends))
    finally:
        c.close()


def read_committed(kafka, topic, bootstrap=None, isolation="read_committed"):
    """Every value of topic as a read_committed consumer sees it, read up to
    the last stable offsets (which are the ends once nothing is open); or
    with another isolation level, through another bootstrap (eosproxy)."""
    c = Consumer({"bootstrap.servers": bootstrap or kafka.bootstrap, "group.id": unique("chk"),
                  "isolation.level": isolation, "enable.partition.eof": True,
                  "auto.offset.reset": "earliest", "log_level": 3})
    c.assign([TopicPartition(topic, p, 0) for p in range(PARTS)])
    out, eof, deadline = [], set(), time.time() + 30
    try:
        while len(eof) < PARTS and time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                eof.add(m.partition())
                continue
            eof.discard(m.partition())
            out.append(m.value().decode())
    finally:
        c.close()
    assert len(eof) == PARTS, "read_committed reached the end of every partition"
    return out


class LoopProc:
    """One run of a loop program, its stdout lines read by a thread."""

    def __init__(self, cmd):
        self.proc = subprocess.Popen(_die_with_parent(cmd), stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self.lines = []
        self.cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cv:
                self.lines.append(line.strip())
                self.cv.notify_all()
        with self.cv:
            self.lines.append(None)  # end of output
            self.cv.notify_all()

    def wait_line(self, prefix, nth, timeout=90):
        """Waits for the nth line starting with prefix; False if the
        process ended first."""
        deadline = time.time() + timeout
        with self.cv:
            while True:
                seen = [l for l in self.lines if l is not None and l.startswith(prefix)]
                if len(seen) >= nth:
                    return True
                if None in self.lines or time.time() > deadline:
                    return False
                self.cv.wait(0.5)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def finish(self, timeout=120):
        self.proc.wait(timeout)


def python_loop(bootstrap, tin, tout, group):
    return [sys.executable, os.path.join(HERE, "bind_loop.py"), bootstrap, tin, tout, group,
            str(COMMIT_DELAY_MS)]


def java_loop(kafka, bootstrap, tin, tout, group):
    return [_java(), "-Xmx192m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            f"-Dlog4j2.configurationFile={JAVA_LOG_CONFIG}",
            "-cp", kafka.harness + os.pathsep + os.path.join(kafka.libs, "*"),
            "Harness", "process-loop", "--bootstrap", bootstrap, "--in", tin, "--out", tout,
            "--group", group, "--commit-delay-ms", str(COMMIT_DELAY_MS)]


def kill_and_restart(kafka, make_cmd, group, tin, kills, rng):
    """Runs the loop until group committed all of tin, killing it with
    SIGKILL up to `kills` times: mostly right after a "flushed" line
    (output written, input not committed: the window that duplicates),
    sometimes after a "committed" line. Returns (kills done, runs); fewer
    kills only if the input ran out first."""
    killed = runs = 0
    while runs < kills + 10:
        runs += 1
        loop = LoopProc(make_cmd())
        if killed < kills:
            prefix = "flushed" if rng.random() < 0.8 else "committed"
            if loop.wait_line(prefix, rng.randint(1, 3)):
                loop.kill()
                killed += 1
                continue
        loop.finish()
        if committed_all(kafka, group, tin):
            return killed, runs
    pytest.fail(f"the loop did not finish its input in {runs} runs ({killed} kills)")


def expected_outputs(n=N_IN):
    return collections.Counter(f"out:in-{i}" for i in range(n))


def test_direct_loop_killed_writes_duplicates(kafka):
    """The control: the same loop straight to the broker, killed in its
    crash window, writes some outputs twice."""
    rng = random.Random(7)
    tin, tout, group = (kafka.topic(unique("bind.in"), PARTS),
                        kafka.topic(unique("bind.out.d"), PARTS), unique("g"))
    fill(kafka, tin, N_IN)
    kills, runs = kill_and_restart(
        kafka, lambda: python_loop(kafka.bootstrap, tin, tout, group), group, tin, 3, rng)
    got = collections.Counter(read_committed(kafka, tout))
    dups = sum(n - 1 for n in got.values() if n > 1)
    print(f"direct: {kills} kills in {runs} runs, {dups} duplicate outputs")
    assert set(got) == set(expected_outputs()), "nothing lost"
    assert dups > 0, "killed in its crash window, the plain loop writes duplicates"


@pytest.mark.parametrize("client", ["librdkafka", "java"])
def test_loop_killed_through_eosproxy_writes_each_output_once(kafka, kproxy_factory, client):
    rng = random.Random(11 if client == "java" else 13)
    group = unique("g")
    proxy = kproxy_factory(topics=bind_rules(group),
                           transactions={"id": unique("bind"), "timeout": "30s"})
    tin, tout = kafka.topic(unique("bind.in"), PARTS), kafka.topic(unique("bind.out.k"), PARTS)
    fill(kafka, tin, N_IN)

    def cmd():
        if client == "java":
            return java_loop(kafka, proxy.bootstrap, tin, tout, group)
        return python_loop(proxy.bootstrap, tin, tout, group)
    kills, runs = kill_and_restart(kafka, cmd, group, tin, 5, rng)
    got = collections.Counter(read_committed(kafka, tout))
    m = proxy.metrics()
    print(f"{client} through eosproxy: {kills} kills in {runs} runs; bound commits "
          f"{m.get_value('eosproxy_bind_commits_total'):.0f}, refused "
          f"{m.get_value('eosproxy_bind_commits_refused_total'):.0f}, rebalance aborts "
          f"{m.get_value('eosproxy_bind_rebalance_aborts_total'):.0f}")
    assert kills >= 3, "the loop was killed in the middle of its work"
    assert got == expected_outputs(), (
        f"missing {sorted(set(expected_outputs()) - set(got))[:10]}, "
        f"twice {[v for v, n in got.items() if n > 1][:10]}")
    assert m.get_value("eosproxy_bind_commits_total") >= 1
    assert m.get_value("eosproxy_bind_rebalance_aborts_total") >= 1, "a kill's output was aborted"


def test_rebalance_between_two_instances(kafka, kproxy_factory):
    """Two instances of the loop, each with its own eosproxy: the second
    joins mid-stream (a rebalance through both eosproxies), then the first
    is killed in its crash window and never comes back. Its sidecar aborts
    the output it left open at 9/10 of transactions.timeout; the survivor
    (restarted as needed) takes over its partitions from the committed
    offsets. Each output once."""
    group = unique("g")
    tin, tout = kafka.topic(unique("bind.in"), PARTS), kafka.topic(unique("bind.out.r"), PARTS)
    fill(kafka, tin, 2 * N_IN)  # long enough for b to join while a still runs
    pa = kproxy_factory(topics=bind_rules(group),
                        transactions={"id": unique("bind-a"), "timeout": "10s"})
    pb = kproxy_factory(topics=bind_rules(group), transactions={"id": unique("bind-b")})
    a = LoopProc(python_loop(pa.bootstrap, tin, tout, group))
    assert a.wait_line("committed", 2), "instance a made progress"
    b = LoopProc(python_loop(pb.bootstrap, tin, tout, group))
    assert b.wait_line("committed", 1), "instance b got partitions after the rebalance"
    done_a = sum(1 for l in a.lines if l and l.startswith("flushed"))
    if a.wait_line("flushed", done_a + 1, timeout=30):
        a.kill()  # output written, its input not committed
    else:
        a.finish()  # a ran out of records first; b has the rest
    b.finish()
    for _ in range(6):
        if committed_all(kafka, group, tin):
            break
        LoopProc(python_loop(pb.bootstrap, tin, tout, group)).finish()
    assert committed_all(kafka, group, tin)
    if pa.metrics().get_value("eosproxy_txn_committed_total") and a.proc.returncode == -9:
        wait_until(lambda: pa.metrics().get_value("eosproxy_bind_expired_total") >= 1
                   or pa.metrics().get_value("eosproxy_bind_rebalance_aborts_total") >= 1,
                   timeout=30, what="a's open output aborted by its eosproxy")
    got = collections.Counter(read_committed(kafka, tout))
    want = expected_outputs(2 * N_IN)
    assert got == want, (f"missing {sorted(set(want) - set(got))[:10]}, "
                         f"twice {[v for v, n in got.items() if n > 1][:10]}")
    stats = {n: {k: p.metrics().get_value(f"eosproxy_bind_{k}_total")
                 for k in ("commits", "rebalance_aborts", "expired")}
             for n, p in (("a", pa), ("b", pb))}
    print(f"rebalance: a exit {a.proc.returncode} (-9: killed in its crash window), {stats}")
    assert stats["b"]["commits"] >= 1


def test_output_never_committed_is_aborted_at_the_timeout(kafka, kproxy_factory):
    """An application that produces to a bound topic and never commits for
    the group: its output is aborted at 9/10 of transactions.timeout, never
    visible, and read_committed consumers are not held back after that."""
    group = unique("g")
    proxy = kproxy_factory(topics=bind_rules(group),
                           transactions={"id": unique("bind-t"), "timeout": "6s"})
    tout = kafka.topic(unique("bind.out.t"), PARTS)
    p = Producer({"bootstrap.servers": proxy.bootstrap, "enable.idempotence": False,
                  "acks": "all"})
    for i in range(30):
        p.produce(tout, value=f"orphan-{i}".encode(), partition=i % PARTS)
    assert p.flush(30) == 0, "acknowledged (written, not committed)"
    wait_until(lambda: proxy.metrics().get_value("eosproxy_bind_expired_total") >= 1,
               timeout=20, what="the bound transaction's expiry")
    direct = Producer({"bootstrap.servers": kafka.bootstrap})
    for part in range(PARTS):
        direct.produce(tout, value=f"later-{part}".encode(), partition=part)
    assert direct.flush(30) == 0
    got = read_committed(kafka, tout)
    assert sorted(got) == [f"later-{q}" for q in range(PARTS)], got
    # A read_uncommitted consumer behind eosproxy: its Fetch is raised to
    # read_committed, and the aborted batches the broker still sends are
    # taken out for it (it would not drop them itself).
    behind = read_committed(kafka, tout, bootstrap=proxy.bootstrap, isolation="read_uncommitted")
    assert sorted(behind) == [f"later-{q}" for q in range(PARTS)], behind
    assert proxy.metrics().get_value("eosproxy_fetch_aborted_batches_dropped_total") >= 1
