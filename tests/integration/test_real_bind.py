"""Exactly-once consume-process-produce for unchanged applications
(`transactional.bind_group`, issue 16) against a real Kafka 4.4 broker.

The application is a plain consumer plus a plain producer, neither of them
transactional nor idempotent: it polls an input topic, writes one output
record per input record (value "partition/offset" of the input), flushes,
waits --commit-delay-ms and commits (commitSync). Two of them, run as
processes so that a test can SIGKILL them at any point:

  java        tests/java/Harness.java process-loop (kafka-clients 4.4)
  librdkafka  bind_loop.py (Debian's confluent-kafka 1.7, librdkafka 2.0.2)

Both print progress lines (start, assigned, polled, sent, flushed,
committed, commit-failed, end) and a JSON line; a test kills one right
after a chosen line, for example "flushed" (output written, input not yet
committed: the window the commit delay widens), and starts it again, until
a run ends by itself with every input offset committed ("done").

  - The control: the loop straight against Kafka, killed after "flushed":
    the output read with read_committed holds duplicates.
  - Through eosproxy, the output topic's rule `delivery: transactional`
    with `transactional.bind_group` naming the application's group: the
    same kill and restart loop (six kills, at random points, at least two
    right after "flushed"), and the output read with read_committed
    straight from the broker holds exactly one record per input record;
    read_uncommitted shows the aborted copies, so the window was hit.
    Java as a dynamic group member, librdkafka as a static one
    (group.instance.id), and Java with enable.auto.commit.
  - A rebalance: two instances, each behind its own eosproxy (own
    transactions.id), the second started mid-stream, one of them killed
    later; the survivor finishes; exactly one output per input.
  - An application that writes a bound topic and never commits: its output
    is aborted after transactions.timeout, never visible to read_committed,
    read_committed consumers of the topic move on afterwards, and a
    consumer behind eosproxy (read_uncommitted, raised to read_committed)
    does not get the aborted records either.

Every random choice comes from one seed, printed with the test's summary;
EOSPROXY_BIND_SEED=N replays it.
"""

import collections
import os
import queue
import random
import subprocess
import threading
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from helpers import unique, wait_until

pytestmark = pytest.mark.real_kafka

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"  # Debian's confluent-kafka (librdkafka 2.0.2)
PARTS = 3
COMMIT_DELAY_MS = 200
POLL_RECORDS = 20


def seeded_rng(name):
    seed = int(os.environ.get("EOSPROXY_BIND_SEED") or random.SystemRandom().randrange(1 << 30))
    print(f"{name}: seed {seed} (EOSPROXY_BIND_SEED={seed} replays it)")
    return seed, random.Random(seed)


def bound_rule(topic, group):
    return [{"match": topic, "delivery": "transactional",
             "transactional": {"bind_group": group}}]


# ---------------------------------------------------------------- direct access

def produce_input(bootstrap, topic, n):
    """n records straight to the broker, spread over PARTS partitions;
    returns the outputs the loop must write for them: {"P/OFF"}."""
    want = set()

    def on_delivery(err, msg):
        assert err is None, err
        want.add(f"{msg.partition()}/{msg.offset()}")

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(n):
        p.produce(topic, f"in-{i}".encode(), key=f"k{i % 7}".encode(), partition=i % PARTS,
                  on_delivery=on_delivery)
    assert p.flush(60) == 0
    assert len(want) == n
    return want


def watermarks(bootstrap, topic, partitions, isolation):
    """{partition: end offset} as a consumer of that isolation level sees
    it: the last stable offset for read_committed (librdkafka's ListOffsets
    carries the consumer's isolation level), the high watermark otherwise."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("wm"),
                  "isolation.level": isolation, "enable.auto.commit": False})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=30, cached=False)[1]
                for p in range(partitions)}
    finally:
        c.close()


def wait_stable(bootstrap, topic, partitions, timeout=60):
    """Until no transaction holds the topic open: the last stable offset of
    every partition equals its high watermark."""
    def stable():
        lso = watermarks(bootstrap, topic, partitions, "read_committed")
        hw = watermarks(bootstrap, topic, partitions, "read_uncommitted")
        return lso == hw
    wait_until(stable, timeout=timeout, interval=0.5, what=f"{topic}'s open transactions to end")


def read_values(bootstrap, topic, partitions, isolation, timeout=60):
    """Every value of topic from the start to the end of each partition (an
    end-of-partition event from librdkafka with nothing after it)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("rd"),
                  "isolation.level": isolation, "enable.auto.commit": False,
                  "enable.partition.eof": True})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    out, at_end = [], set()
    deadline = time.monotonic() + timeout
    try:
        while len(at_end) < partitions:
            assert time.monotonic() < deadline, \
                f"{topic} not read to its end in {timeout}s ({len(out)} so far, ends {at_end})"
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                at_end.add(m.partition())
                continue
            at_end.discard(m.partition())
            out.append(m.value().decode())
    finally:
        c.close()
    return out


def read_quiet(bootstrap, topic, partitions, isolation, quiet=3.0):
    """What a consumer gets in `quiet` seconds from the start (for a
    read_committed consumer held up by an open transaction, which sees no
    end of partition)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("rq"),
                  "isolation.level": isolation, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    out, since = [], time.monotonic()
    try:
        while time.monotonic() - since < quiet:
            m = c.poll(0.3)
            if m is not None and not m.error():
                out.append(m.value().decode())
                since = time.monotonic()
    finally:
        c.close()
    return out


def committed_offsets(bootstrap, topic, group, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        return {tp.partition: tp.offset
                for tp in c.committed([TopicPartition(topic, p) for p in range(partitions)],
                                      timeout=30)}
    finally:
        c.close()


# ---------------------------------------------------------------- the application

class Loop:
    """One run of the application (Harness process-loop or bind_loop.py) as
    a process; its progress lines are read by a thread as they come."""

    def __init__(self, kafka, client, bootstrap, inp, out, group, logdir, name,
                 commit_delay_ms=COMMIT_DELAY_MS, instance_id="", auto_commit=False,
                 idle_ms=60000, timeout_ms=150000):
        from kafka_real import JAVA_LOG_CONFIG, _die_with_parent, _java
        args = ["--bootstrap", bootstrap, "--in", inp, "--out", out, "--group", group,
                "--commit-delay-ms", str(commit_delay_ms), "--max-poll-records", str(POLL_RECORDS),
                "--idle-ms", str(idle_ms), "--timeout-ms", str(timeout_ms)]
        if instance_id:
            args += ["--instance-id", instance_id]
        if auto_commit:
            args += ["--auto-commit", "true"]
        if client == "java":
            cmd = [_java(), "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                   f"-Dlog4j2.configurationFile={JAVA_LOG_CONFIG}",
                   "-cp", kafka.harness + os.pathsep + os.path.join(kafka.libs, "*"),
                   "Harness", "process-loop", *args]
        else:
            cmd = [PYTHON, os.path.join(HERE, "bind_loop.py"), *args]
        self.name = name
        self.stderr_path = os.path.join(str(logdir), f"{name}.stderr")
        self.stdout_path = os.path.join(str(logdir), f"{name}.stdout")
        self._err = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(_die_with_parent(cmd), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self._err, text=True,
                                     bufsize=1)
        self.lines = []
        self._q = queue.Queue()
        self.killed_after = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        with open(self.stdout_path, "w") as f:  # kept in tmp_path for a post-mortem
            for line in self.proc.stdout:
                f.write(line)
                f.flush()
                line = line.rstrip("\n")
                self.lines.append(line)
                self._q.put(line)
        self._q.put(None)

    def wait_for(self, pred, timeout=90.0):
        """The first line from now on that pred accepts, or None if the
        process ended first."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.name}: no awaited line in {timeout}s; "
                                     f"last lines {self.lines[-8:]}\n{self.stderr_tail()}")
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self._q.put(None)
                return None
            if pred(line):
                return line

    def wait_count(self, word, n, timeout=90.0):
        """The n-th line starting with word from now on, or None."""
        seen = [0]

        def pred(line):
            if line.split(" ", 1)[0] == word:
                seen[0] += 1
            return seen[0] >= n
        return self.wait_for(pred, timeout)

    def kill(self, why):
        self.proc.kill()
        self.proc.wait(30)
        self.killed_after = why
        self._err.close()

    def result(self, timeout=150.0):
        """The JSON line of a run that ended by itself; fails on any other
        ending."""
        import json
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"{self.name} still running after {timeout}s: "
                                 f"{self.lines[-8:]}\n{self.stderr_tail()}")
        self.wait_for(lambda _: False, 30)  # the reader reached the end
        self._err.close()
        assert code == 0 and self.lines, \
            f"{self.name} exited {code}: {self.lines[-8:]}\n{self.stderr_tail()}"
        return json.loads(self.lines[-1])

    def stderr_tail(self, n=3000):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        if not self._err.closed:
            self._err.close()


@pytest.fixture
def loops():
    started = []
    yield started
    for lp in started:
        lp.close()


def kill_plans(rng, kills, flushed_at_least, words=("flushed", "polled", "sent", "committed",
                                                     "time")):
    """[(word, n)]: kill the run right after its n-th `word` line;
    ("time", seconds): that long after its first assignment, wherever it is."""
    plans = [("flushed", rng.randint(1, 3)) for _ in range(flushed_at_least)]
    while len(plans) < kills:
        word = rng.choice(words)
        plans.append((word, rng.uniform(0.0, 1.5) if word == "time" else rng.randint(1, 3)))
    rng.shuffle(plans)
    return plans


def kill_restart(start, plans):
    """Runs start(i) -> Loop once per plan, each killed as its plan says,
    then once more to its end. Returns (runs, final result)."""
    runs = []
    for i, (word, arg) in enumerate(plans):
        lp = start(i)
        runs.append(lp)
        if word == "time":
            hit = lp.wait_for(lambda line: line.startswith("assigned "))
            if hit is not None:
                time.sleep(arg)
        else:
            hit = lp.wait_count(word, arg)
        if hit is None or lp.proc.poll() is not None:
            raise AssertionError(f"run {i} ended before its kill ({word} {arg}): "
                                 f"{lp.lines[-6:]} (input too small?)\n{lp.stderr_tail()}")
        lp.kill(f"{word} {arg:.2f}" if word == "time" else f"{word} #{arg}")
    lp = start(len(plans))
    runs.append(lp)
    res = lp.result()
    assert res["outcome"] == "done", f"the last run ended {res}: {lp.lines[-8:]}"
    return runs, res


class Outcome:
    """What the loop left behind, read straight from the broker: the
    group's committed offsets of the input and the output as read_committed
    and read_uncommitted consumers see it once no transaction holds it."""

    def __init__(self, kafka, inp, out, group, want):
        self.n = len(want)
        self.ends = watermarks(kafka.bootstrap, inp, PARTS, "read_uncommitted")
        self.committed = committed_offsets(kafka.bootstrap, inp, group, PARTS)
        wait_stable(kafka.bootstrap, out, PARTS)
        self.got = read_values(kafka.bootstrap, out, PARTS, "read_committed")
        self.raw = read_values(kafka.bootstrap, out, PARTS, "read_uncommitted")
        counts = collections.Counter(self.got)
        self.dups = {v: c for v, c in counts.items() if c > 1}
        self.missing = want - set(self.got)
        self.extra = set(self.got) - want

    def describe(self):
        return (f"read_committed {len(self.got)} outputs for {self.n} inputs "
                f"({len(self.dups)} duplicated, {len(self.missing)} missing, {len(self.extra)} "
                f"unexpected), read_uncommitted {len(self.raw)} ({len(self.raw) - len(self.got)} "
                f"aborted)")

    def check_exactly_once(self):
        assert self.committed == self.ends, \
            f"every input record committed: committed {self.committed}, ends {self.ends}"
        assert not self.dups and not self.missing and not self.extra, \
            (f"{self.describe()}: duplicated e.g. {sorted(self.dups.items())[:5]}, missing e.g. "
             f"{sorted(self.missing)[:5]}, unexpected e.g. {sorted(self.extra)[:5]}")


def bind_metrics(proxy):
    m = proxy.metrics()
    names = ("eosproxy_bind_commits_total", "eosproxy_bind_commits_refused_total",
             "eosproxy_bind_rebalance_aborts_total", "eosproxy_bind_expired_total",
             "eosproxy_txn_committed_total", "eosproxy_txn_aborted_total")
    return {n.replace("eosproxy_", ""): int(m.get_value(n)) for n in names}


def commit_failures(runs):
    return sum(1 for lp in runs for line in lp.lines if line.startswith("commit-failed "))


# ---------------------------------------------------------------- the tests

@pytest.mark.parametrize("client", ["java", "librdkafka"])
def test_control_direct_loop_duplicates_output(kafka, tmp_path, loops, client):
    """The control: the same application straight against Kafka, killed
    three times right after its output was flushed and before its commit,
    and restarted: the input is processed again, and its output is in the
    topic twice, for read_committed consumers too."""
    _, rng = seeded_rng(f"control[{client}]")
    inp = kafka.create_topic(unique("bind-in"), PARTS)
    out = kafka.create_topic(unique("bind-out"), PARTS)
    group = unique("bind-g")
    want = produce_input(kafka.bootstrap, inp, 300)

    def start(i):  # a static member: the restarted run takes the killed one's place at once
        loops.append(Loop(kafka, client, kafka.bootstrap, inp, out, group, tmp_path,
                          f"{client}-run{i}", instance_id=f"{group}-1"))
        return loops[-1]

    plans = [("flushed", rng.randint(1, 2)) for _ in range(3)]
    runs, _ = kill_restart(start, plans)
    o = Outcome(kafka, inp, out, group, want)
    print(f"control[{client}]: {len(want)} inputs, {len(runs)} runs ({len(plans)} SIGKILLs after "
          f"'flushed'); {o.describe()}")
    assert o.committed == o.ends, "every input record committed"
    assert not o.missing and not o.extra, "every input has its output"
    assert o.dups and len(o.got) > len(want), "without eosproxy the kills duplicate output"


# client, membership, commits. Java as a dynamic member (a restart waits
# out the killed member's session, then the group rebalances); librdkafka
# as a static one (group.instance.id: a restart rejoins at once, no
# rebalance); Java with enable.auto.commit (commits inside poll(), of what
# earlier polls returned, whose output was flushed before).
CASES = [("java", "dynamic", "commitSync"), ("librdkafka", "static", "commitSync"),
         ("java", "static", "auto-commit")]


@pytest.mark.parametrize("client,membership,commits", CASES,
                         ids=["-".join(c) for c in CASES])
def test_killed_loop_writes_each_output_once(kafka, kproxy_factory, tmp_path, loops, client,
                                             membership, commits):
    """The application behind eosproxy, with bind_group: six SIGKILLs at
    random points (at least two right after "flushed") and restarts, then a
    run to the end. Each input record has exactly one output record for
    read_committed, and the aborted copies the kills left are in the log."""
    name = f"bind[{client}, {membership}, {commits}]"
    seed, rng = seeded_rng(name)
    inp = kafka.create_topic(unique("bind-in"), PARTS)
    out = kafka.create_topic(unique("bind-out"), PARTS)
    group = unique("bind-g")
    proxy = kproxy_factory(topics=bound_rule(out, group), **{"transactions.id": unique("bind"),
                                                              "transactions.timeout": "30s"})
    want = produce_input(kafka.bootstrap, inp, 600)
    auto = commits == "auto-commit"

    def start(i):
        loops.append(Loop(kafka, client, proxy.bootstrap, inp, out, group, tmp_path,
                          f"{client}-run{i}", auto_commit=auto,
                          instance_id=f"{group}-1" if membership == "static" else ""))
        return loops[-1]

    words = ("flushed", "polled", "sent", "time") + (() if auto else ("committed",))
    plans = kill_plans(rng, 6, 2, words)
    t0 = time.monotonic()
    runs, res = kill_restart(start, plans)
    took = time.monotonic() - t0
    o = Outcome(kafka, inp, out, group, want)
    m = bind_metrics(proxy)
    print(f"{name} seed {seed}: {len(want)} inputs, {len(runs)} runs, {len(runs) - 1} restarts "
          f"after SIGKILL ({', '.join(lp.killed_after for lp in runs[:-1])}) in {took:.1f}s; "
          f"{o.describe()}; commit failures the app saw {commit_failures(runs)}; last run "
          f"{res}; metrics {m}")
    o.check_exactly_once()
    assert len(o.raw) > len(o.got), "a kill after 'flushed' left aborted output behind"
    assert m["bind_commits_total"] >= 1


def test_rebalance_and_a_killed_member(kafka, kproxy_factory, tmp_path, loops):
    """Two instances of the application in one group, each behind its own
    eosproxy (its own transactions.id): the Java one alone first, then the
    librdkafka one joins mid-stream (a rebalance), then one of them,
    chosen at random, is killed right after a flush. The survivor takes
    its partitions after the session timeout and finishes; the killed
    one's open transaction is aborted at transactions.timeout. Each input
    has exactly one output for read_committed."""
    seed, rng = seeded_rng("bind-rebalance")
    inp = kafka.create_topic(unique("bind-in"), PARTS)
    out = kafka.create_topic(unique("bind-out"), PARTS)
    group = unique("bind-g")
    want = produce_input(kafka.bootstrap, inp, 900)
    cfg = {"topics": bound_rule(out, group), "transactions.timeout": "10s"}
    pa = kproxy_factory(**cfg, **{"transactions.id": unique("bind-a")})
    pb = kproxy_factory(**cfg, **{"transactions.id": unique("bind-b")})
    t0 = time.monotonic()
    a = Loop(kafka, "java", pa.bootstrap, inp, out, group, tmp_path, "a-java")
    loops.append(a)
    assert a.wait_count("committed", 3) is not None, f"a: {a.lines[-6:]}\n{a.stderr_tail()}"
    b = Loop(kafka, "librdkafka", pb.bootstrap, inp, out, group, tmp_path, "b-librdkafka")
    loops.append(b)
    assert b.wait_count("committed", 2) is not None, f"b: {b.lines[-6:]}\n{b.stderr_tail()}"
    assert a.proc.poll() is None, f"a ended before b had its share: {a.lines[-6:]}"
    victim, survivor = (a, b) if rng.random() < 0.5 else (b, a)
    n = rng.randint(1, 2)
    assert victim.wait_count("flushed", n) is not None, \
        f"{victim.name} ended before its kill: {victim.lines[-6:]} (input too small?)"
    victim.kill(f"flushed #{n}")
    res = survivor.result()
    assert res["outcome"] == "done", f"{survivor.name} ended {res}: {survivor.lines[-8:]}"
    assert any(line.startswith("assigned ") and line.count(",") == PARTS - 1
               for line in survivor.lines), "the survivor took every partition at the end"
    took = time.monotonic() - t0
    o = Outcome(kafka, inp, out, group, want)
    print(f"bind-rebalance seed {seed}: {len(want)} inputs; killed {victim.name} after "
          f"{victim.killed_after}; {survivor.name} finished in {took:.1f}s; {o.describe()}; "
          f"commit failures a {commit_failures([a])}, b {commit_failures([b])}; "
          f"a's eosproxy {bind_metrics(pa)}, b's {bind_metrics(pb)}")
    o.check_exactly_once()
    assert bind_metrics(pa)["bind_commits_total"] >= 1
    assert bind_metrics(pb)["bind_commits_total"] >= 1


def test_output_never_committed_is_aborted_at_the_timeout(kafka, kproxy_factory):
    """A producer writes a bound topic through eosproxy and its group never
    commits. Its records are acknowledged, and stay invisible to
    read_committed while the transaction is open (records written straight
    to the topic after them wait too). At 9/10 of transactions.timeout
    (10 s) eosproxy aborts it: read_committed then gets the direct records
    and none of the application's, and is not held up afterwards."""
    out = kafka.create_topic(unique("bind-out"), PARTS)
    group = unique("bind-g")
    proxy = kproxy_factory(topics=bound_rule(out, group), **{"transactions.id": unique("bind"),
                                                              "transactions.timeout": "10s"})
    reports = {}

    def on_delivery(err, msg):
        reports[msg.value().decode()] = err

    app = Producer({"bootstrap.servers": proxy.bootstrap, "acks": "all", "linger.ms": 5,
                    "enable.idempotence": False})
    t0 = time.monotonic()
    for i in range(60):
        app.produce(out, f"app-{i}".encode(), partition=i % PARTS, on_delivery=on_delivery)
    assert app.flush(30) == 0
    assert len(reports) == 60 and all(e is None for e in reports.values()), \
        [e for e in reports.values() if e][:3]
    direct = Producer({"bootstrap.servers": kafka.bootstrap, "acks": "all", "linger.ms": 0})
    for i in range(6):
        direct.produce(out, f"direct-{i}".encode(), partition=i % PARTS)
    assert direct.flush(30) == 0

    lso = watermarks(kafka.bootstrap, out, PARTS, "read_committed")
    hw = watermarks(kafka.bootstrap, out, PARTS, "read_uncommitted")
    assert all(lso[p] < hw[p] for p in range(PARTS)), f"an open transaction: LSO {lso}, HW {hw}"
    assert read_quiet(kafka.bootstrap, out, PARTS, "read_committed", quiet=2) == [], \
        "nothing visible to read_committed while the transaction is open"
    raw = read_values(kafka.bootstrap, out, PARTS, "read_uncommitted")
    assert sorted(raw) == sorted([f"app-{i}" for i in range(60)] +
                                 [f"direct-{i}" for i in range(6)])

    wait_stable(kafka.bootstrap, out, PARTS, timeout=40)
    aborted_after = time.monotonic() - t0
    wait_until(lambda: bind_metrics(proxy)["bind_expired_total"] >= 1, timeout=10,
               what="eosproxy_bind_expired_total")
    got = read_values(kafka.bootstrap, out, PARTS, "read_committed")
    assert sorted(got) == [f"direct-{i}" for i in range(6)], \
        "the application's records were aborted, the direct ones are visible"
    for i in range(6, 9):
        direct.produce(out, f"direct-{i}".encode(), partition=i % PARTS)
    assert direct.flush(30) == 0
    got = read_values(kafka.bootstrap, out, PARTS, "read_committed")
    assert sorted(got) == [f"direct-{i}" for i in range(9)], "read_committed is not held up"
    print(f"bind-expired: 60 records acknowledged, aborted after {aborted_after:.1f}s "
          f"(transactions.timeout 10s); metrics {bind_metrics(proxy)}")
    assert aborted_after >= 5, "aborted by the timeout, not at once"
    # A consumer behind eosproxy with the default read_uncommitted: its Fetch
    # is raised to read_committed, but the broker leaves filtering the
    # aborted records to the client (the response's AbortedTransactions),
    # which a read_uncommitted client ignores.
    behind = read_values(proxy.bootstrap, out, PARTS, "read_uncommitted")
    leaked = sorted(v for v in behind if v.startswith("app-"))
    assert not leaked and sorted(behind) == sorted(got), \
        (f"a read_uncommitted consumer behind eosproxy got {len(leaked)} aborted records "
         f"(e.g. {leaked[:3]}) besides {len(behind) - len(leaked)} committed ones")
