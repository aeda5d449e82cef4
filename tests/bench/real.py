#!/usr/bin/python3
"""real.py - direct-vs-eosproxy benchmark against a REAL Apache Kafka broker.

    /usr/bin/python3 tests/bench/real.py      (run.sh calls it at its end;
                                               BENCH_REAL=0 skips it there)

Starts one real Apache Kafka 4 broker (a combined KRaft broker+controller,
from tests/kafka/.cache, through tests/integration/kafka_real.py's
KafkaCluster) and one eosproxy in front of it (conftest.Proxy, as
kafka_real.py's ProxyFactory does). Its topic rules: `rb-idem-*` is
`delivery: idempotent`, everything else `at-least-once` (pass-through).
Then it runs Kafka's own perf tools from the cache's jars, each case once
straight to the broker and once through eosproxy, back to back, in an order
that alternates every round:

  plain  ProducerPerformance, 1 KB records, acks=all, linger.ms=5,
         enable.idempotence=false, to a fresh pass-through topic
  idem   the same producer to a fresh `rb-idem-*` topic; through eosproxy
         with enable.idempotence=false (eosproxy upgrades it), direct with
         enable.idempotence=true (the client's own idempotence)
  cons   ConsumerPerformance: a fresh group reads REAL_COUNT_CONSUME 1 KB
         records from the start of one topic, filled once (direct) before
         the rounds
  txn    case 4, both routes through eosproxy: the plain producer
         (enable.idempotence=false) to a fresh `rb-txn-*` topic
         (`delivery: transactional`: eosproxy writes it in its own
         transactions) and to a fresh `rb-idem-*` topic (`delivery:
         idempotent`), back to back; once unthrottled (REAL_COUNT_TXN
         records), once throttled to REAL_TXN_RATE records/s
         (REAL_COUNT_TXN_LAT records), since unthrottled latency is mostly
         time queued in the saturated client. It has an eosproxy of its own
         (transactions.linger REAL_TXN_LINGER): a transactional rule caps the
         Fetch versions eosproxy offers at v12, which would change cons.
  bind   case 5, both routes through case 4's eosproxy: a consume-
         transform-produce loop (confluent-kafka, librdkafka) reads
         REAL_COUNT_BIND 1 KB records of `rb-bin` (filled once, direct) from
         offset 0 (assigned, no rebalance), writes one 1 KB record per input,
         flushes and commits synchronously every REAL_BIND_BATCH inputs.
         Route "bound": group `rb-bind` whose output topic `rb-bout-*` has
         transactional.bind_group (each commit is a transaction with the
         output); route "plain": another group to an at-least-once topic.

Each run is checked, or the script exits 1 with `bench-real: FAILED:` and
the reason: the tool exits 0 and prints its summary; the broker's own
watermarks hold every record produced (exactly as many for idem through
eosproxy); eosproxy's metrics show the Produce or Fetch requests of each run
through it, the upgraded records of idem and none of plain; eosproxy exits 0
on SIGTERM with no sanitizer report. Case 4: the idempotent route's records
are all upgraded and counted exactly by watermarks; the transactional
route's are counted exactly by a read_committed consumer (its offsets also
hold the commit markers, which must number between one and
REAL_PARTITIONS per committed transaction), all its Produce requests went
the transaction route, and eosproxy_txn_aborted_total and
eosproxy_txn_commit_unknown_total did not rise. Every process started here
(broker, eosproxies, tools) is stopped also on failure; the scratch
directory is removed on success and kept (without the broker's data) on
failure. Prints a Markdown table of medians and of the medians of the
per-round eosproxy/direct ratios; case 4 gets a table of its own
(transactional/idempotent throughput ratio, added latency, and from
eosproxy's /metrics transactions per second and batches, client requests
and records per transaction). No timing is asserted: a target missed is
printed as such.

Case 5 checks: the bound route's output read_committed holds exactly
REAL_COUNT_BIND records and eosproxy_bind_commits_total rose by the
commits made; the plain route's output holds at least as many, and no bound
commit was counted.

Knobs (environment): REAL_CASES (plain,idem,cons,txn,bind: which cases
run), REAL_COUNT_BIND (20000), REAL_BIND_BATCH (500),
REAL_ROUNDS (3), REAL_COUNT (200000 records per producer run), REAL_WARMUP
(REAL_COUNT/5: the first records of a producer run, left out of its
steady-state numbers), REAL_COUNT_CONSUME (400000), REAL_COUNT_TXN (20000,
case 4 unthrottled), REAL_WARMUP_TXN (REAL_COUNT_TXN/5), REAL_TXN_RATE
(2000 records/s, case 4 throttled; 0 skips those runs), REAL_COUNT_TXN_LAT
(10000), REAL_WARMUP_TXN_LAT (REAL_COUNT_TXN_LAT/4), REAL_TXN_LINGER (10ms,
eosproxy's transactions.linger), REAL_TXN_POOL (eosproxy's transactions.pool;
unset: its default), REAL_PARTITIONS (6), REAL_CLIENT_HEAP
(512m, each tool's JVM), EOSPROXY_KAFKA_HEAP (the broker's heap, 1g here),
REAL_TIMEOUT (300 s per tool run), EOSPROXY_BIN (build/eosproxy).
Only case 4, quickly:
    REAL_CASES=txn REAL_ROUNDS=1 EOSPROXY_BIN=build/eosproxy tests/bench/real.py
"""

import datetime
import gc
import os
import pathlib
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
os.environ.setdefault("EOSPROXY_BIN", str(ROOT / "build" / "eosproxy"))
os.environ.setdefault("EOSPROXY_KAFKA_HEAP", "1g")  # read by kafka_real at import

from conftest import SANITIZER_MARKS, Proxy, free_port  # noqa: E402
from kafka_real import JAVA_LOG_CONFIG, KafkaCluster, _die_with_parent, _java  # noqa: E402

ROUNDS = int(os.environ.get("REAL_ROUNDS", "3"))
COUNT = int(os.environ.get("REAL_COUNT", "200000"))
WARMUP = int(os.environ.get("REAL_WARMUP", str(COUNT // 5)))
COUNT_CONSUME = int(os.environ.get("REAL_COUNT_CONSUME", "400000"))
PARTITIONS = int(os.environ.get("REAL_PARTITIONS", "6"))
CLIENT_HEAP = os.environ.get("REAL_CLIENT_HEAP", "512m")
BROKER_HEAP = os.environ["EOSPROXY_KAFKA_HEAP"]
TIMEOUT = float(os.environ.get("REAL_TIMEOUT", "300"))
EOSPROXY_BIN = os.environ["EOSPROXY_BIN"]
SIZE = 1024
PRODUCER_PROPS = ["acks=all", "linger.ms=5"]
CASES = [c.strip() for c in os.environ.get("REAL_CASES", "plain,idem,cons,txn").split(",")
         if c.strip()]
COUNT_TXN = int(os.environ.get("REAL_COUNT_TXN", "20000"))
WARMUP_TXN = int(os.environ.get("REAL_WARMUP_TXN", str(COUNT_TXN // 5)))
TXN_RATE = int(os.environ.get("REAL_TXN_RATE", "2000"))  # records/s of the throttled runs; 0: none
COUNT_TXN_LAT = int(os.environ.get("REAL_COUNT_TXN_LAT", "10000"))
WARMUP_TXN_LAT = int(os.environ.get("REAL_WARMUP_TXN_LAT", str(COUNT_TXN_LAT // 4)))
TXN_LINGER = os.environ.get("REAL_TXN_LINGER", "10ms")  # eosproxy's transactions.linger
TXN_POOL = os.environ.get("REAL_TXN_POOL", "")  # eosproxy's transactions.pool ("": its default)
COUNT_BIND = int(os.environ.get("REAL_COUNT_BIND", "20000"))
BIND_BATCH = int(os.environ.get("REAL_BIND_BATCH", "500"))
BIND_GROUP = "rb-bind"


class Failure(Exception):
    pass


def log(msg):
    print(f"bench-real: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the tools

def java_tool(cluster, cls, args, proxy=None):
    """Runs a Kafka tool class from the cache's jars; (stdout, stderr). With
    proxy (a run through eosproxy), fails as soon as eosproxy is gone."""
    name = cls.rsplit(".", 1)[-1]
    cmd = [_java(), f"-Xmx{CLIENT_HEAP}", f"-Dlog4j2.configurationFile={JAVA_LOG_CONFIG}",
           "-cp", os.path.join(cluster.libs, "*"), cls, *args]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(_die_with_parent(cmd), stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        try:
            deadline = time.monotonic() + TIMEOUT
            while p.poll() is None:
                if proxy is not None and not proxy.alive():
                    raise Failure(f"eosproxy exited {proxy.proc.returncode} during {name}; "
                                  f"its log:\n{_tail(proxy.log, 4000)}")
                if time.monotonic() > deadline:
                    err.seek(0)
                    raise Failure(f"{name} did not finish in {TIMEOUT:.0f} s (REAL_TIMEOUT); "
                                  f"its stderr:\n{_tail(err.read())}")
                time.sleep(0.2)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(30)
        out.seek(0)
        err.seek(0)
        o, e = out.read(), err.read()
    if p.returncode != 0:
        raise Failure(f"{name} exited {p.returncode}; stdout:\n{_tail(o)}\nstderr:\n{_tail(e)}")
    return o, e


def _tail(s, n=2500):
    if isinstance(s, bytes):
        s = s.decode(errors="replace")
    return (s or "")[-n:]


# 300000 records sent, 46787.27 records/sec (45.69 MB/sec), 528.92 ms avg latency,
# 1329.00 ms max latency, 459 ms 50th, 1175 ms 95th, 1284 ms 99th, 1307 ms 99.9th.
PERF_LINE = re.compile(
    r"^(\d+) (steady state )?records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), "
    r"([\d.]+) ms avg latency, ([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, "
    r"(\d+) ms 99th", re.M)


def produce(cluster, bootstrap, topic, count, warmup, props, proxy=None, throughput=-1):
    """The steady-state numbers of one ProducerPerformance run (the whole
    run's rate too: total_records_per_s). throughput: records/s, -1 none."""
    out, err = java_tool(cluster, "org.apache.kafka.tools.ProducerPerformance", proxy=proxy, args=[
        "--bootstrap-server", bootstrap, "--topic", topic, "--num-records", str(count),
        "--warmup-records", str(warmup), "--record-size", str(SIZE),
        "--throughput", str(throughput),
        "--reporting-interval", str(10**9), "--command-property", *PRODUCER_PROPS, *props])
    lines = {bool(m.group(2)): m for m in PERF_LINE.finditer(out)}
    m = lines.get(warmup > 0)
    if m is None or int(lines[False].group(1)) != count:
        raise Failure(f"ProducerPerformance printed no summary of {count} records sent to "
                      f"{topic}; stdout:\n{_tail(out)}\nstderr:\n{_tail(err)}")
    return {"records_per_s": float(m.group(3)), "mb_per_s": float(m.group(4)),
            "avg_ms": float(m.group(5)), "p50_ms": float(m.group(7)), "p99_ms": float(m.group(9)),
            "total_records_per_s": float(lines[False].group(3))}


def consume(cluster, bootstrap, topic, count, group, proxy=None):
    out, err = java_tool(cluster, "org.apache.kafka.tools.ConsumerPerformance", proxy=proxy, args=[
        "--bootstrap-server", bootstrap, "--topic", topic, "--num-records", str(count),
        "--group", group, "--timeout", "30000"])
    rows = [[c.strip() for c in l.split(",")] for l in out.splitlines() if l.count(",") >= 9]
    if len(rows) < 2 or rows[0][0] != "start.time":
        raise Failure(f"ConsumerPerformance printed no result for {topic}; stdout:\n{_tail(out)}\n"
                      f"stderr:\n{_tail(err)}")
    r = dict(zip(rows[0], rows[-1]))
    got = int(r["data.consumed.in.nMsg"])
    if got < count:
        raise Failure(f"ConsumerPerformance read {got} of {count} records of {topic} "
                      f"(--timeout 30 s between records); stderr:\n{_tail(err)}")
    return {"mb_per_s": float(r["fetch.MB.sec"]), "records_per_s": float(r["fetch.nMsg.sec"]),
            "total_mb_per_s": float(r["MB.sec"]), "join_ms": float(r["rebalance.time.ms"])}


# ---------------------------------------------------------------- the broker

def admin(cluster):
    """An AdminClient on the broker that keeps librdkafka's info lines
    (a handle's background queue purged at its end) off stderr."""
    from confluent_kafka.admin import AdminClient
    return AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": 4})


def create_topic(cluster, name):
    from confluent_kafka.admin import NewTopic
    a = admin(cluster)  # the futures die with their handle: keep it
    a.create_topics([NewTopic(name, PARTITIONS, 1)], operation_timeout=60,
                    request_timeout=60)[name].result(90)
    del a
    gc.collect()  # no handle left connected to the broker when it stops
    cluster.wait_topic(name, PARTITIONS)


def delete_topic(cluster, name):
    a = admin(cluster)
    try:
        a.delete_topics([name], operation_timeout=60, request_timeout=60)[name].result(90)
    except Exception as e:  # the data would only take disk space: say so, go on
        log(f"warning: could not delete topic {name}: {e}")
    del a
    gc.collect()


def check_count(cluster, topic, count, exact, target):
    n = cluster.record_count(topic)
    if n < count or (exact and n != count):
        want = f"exactly {count}" if exact else f"at least {count}"
        raise Failure(f"topic {topic} ({target}) holds {n} records on the broker, {want} expected")
    return n


def committed_count(cluster, topic, timeout=60.0):
    """(records a read_committed consumer reads from the start of topic,
    the sum of its watermarks). Offsets of a transactional topic also count
    its control records (a commit marker per partition per transaction), so
    the records are counted by reading them. The markers are written after
    EndTxn is answered: it reads until every partition's end of partition
    (for read_committed, the last stable offset, which librdkafka reports
    with each end-of-partition event) has reached its high watermark."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
    c = Consumer({"bootstrap.servers": cluster.bootstrap,
                  "group.id": f"rb-count-{uuid.uuid4().hex}",
                  "isolation.level": "read_committed", "enable.auto.commit": False,
                  "enable.partition.eof": True, "log_level": 4})
    try:
        parts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)]
        c.assign(parts)
        n, end = 0, {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in c.consume(10000, 0.5):
                if m.error() is None:
                    n += 1
                elif m.error().code() == KafkaError._PARTITION_EOF:
                    end[m.partition()] = m.offset()
                else:
                    raise Failure(f"counting {topic} read_committed: {m.error()}")
            if len(end) < PARTITIONS:
                continue
            hi = {p.partition: c.get_watermark_offsets(p, timeout=30, cached=False)[1]
                  for p in parts}
            if all(end[p] >= hi[p] for p in hi):
                return n, sum(hi.values())
        raise Failure(f"counting {topic} read_committed: its last stable offsets did not reach "
                      f"the high watermarks in {timeout:.0f} s ({n} records read, ends {end})")
    finally:
        c.close()


def metric(proxy, name, **labels):
    if not proxy.alive():
        raise Failure(f"eosproxy exited {proxy.proc.returncode}; its log:\n{_tail(proxy.log, 4000)}")
    return proxy.metrics().get_value(name, **labels)


# ---------------------------------------------------------------- one run

TXN_METRICS = ("eosproxy_txn_begun_total", "eosproxy_txn_committed_total",
               "eosproxy_txn_aborted_total", "eosproxy_txn_commit_unknown_total",
               "eosproxy_txn_batches_total", "eosproxy_txn_requests_total",
               "eosproxy_txn_commit_duration_seconds_sum",
               "eosproxy_txn_commit_duration_seconds_count", "eosproxy_upgraded_records_total")


def snapshot(proxy):
    """The counters case 4 reads, in one /metrics scrape."""
    if not proxy.alive():
        raise Failure(f"eosproxy exited {proxy.proc.returncode}; its log:\n{_tail(proxy.log, 4000)}")
    m = proxy.metrics()
    s = {n: m.get_value(n) for n in TXN_METRICS}
    for route in ("upgrade", "transaction"):
        s[route] = m.get_value("eosproxy_produce_requests_total", route=route)
    return s


class Bench:
    def __init__(self, cluster, proxy, tproxy=None):
        self.cluster, self.proxy, self.tproxy = cluster, proxy, tproxy
        self.seq = 0
        self.results = []  # {"round", "case", "target", "result"}
        self.upgraded = {"plain": 0, "idem": 0}
        self.txn = {"committed": 0, "records": 0, "markers": 0}

    def run_txn(self, rnd, case, route):
        """Case 4, both routes through the second eosproxy (tproxy): case
        "txn" unthrottled, "txnlat" at TXN_RATE records/s; route
        "idempotent" or "transactional"."""
        c, p = self.cluster, self.tproxy
        self.seq += 1
        txn = route == "transactional"
        count, warmup, rate = ((COUNT_TXN, WARMUP_TXN, -1) if case == "txn"
                               else (COUNT_TXN_LAT, WARMUP_TXN_LAT, TXN_RATE))
        topic = f"rb-txn-{self.seq}" if txn else f"rb-idem-t{self.seq}"
        create_topic(c, topic)
        m0 = snapshot(p)
        res = produce(c, p.bootstrap, topic, count, warmup, ["enable.idempotence=false"],
                      proxy=p, throughput=rate)
        m1 = snapshot(p)
        d = {k: m1[k] - m0[k] for k in m0}
        what = (f"{res['mb_per_s']:.1f} MB/s, {res['records_per_s']:,.0f} rec/s, latency avg "
                f"{res['avg_ms']:.0f} / p50 {res['p50_ms']:.0f} / p99 {res['p99_ms']:.0f} ms")
        if txn:
            if d["eosproxy_txn_aborted_total"] or d["eosproxy_txn_commit_unknown_total"]:
                raise Failure(f"{case} transactional: eosproxy aborted "
                              f"{d['eosproxy_txn_aborted_total']:.0f} transactions "
                              f"({d['eosproxy_txn_commit_unknown_total']:.0f} with the commit "
                              f"unknown); 0 expected; its log:\n{_tail(p.log, 4000)}")
            k = d["eosproxy_txn_committed_total"]
            if k <= 0 or d["transaction"] <= 0 or d["upgrade"] != 0:
                raise Failure(f"{case} transactional: eosproxy committed {k:.0f} transactions, "
                              f"routed {d['transaction']:.0f} Produce requests to transactions "
                              f"and {d['upgrade']:.0f} to the idempotent upgrade")
            n, hw = committed_count(c, topic)
            markers = hw - n
            if n != count:
                raise Failure(f"topic {topic} (transactional) holds {n} committed records on the "
                              f"broker (read_committed), exactly {count} expected")
            # One commit marker per partition per transaction (offsets they take).
            if not k <= markers <= k * PARTITIONS:
                raise Failure(f"topic {topic} (transactional): {markers} offsets of control "
                              f"records for {k:.0f} committed transactions over {PARTITIONS} "
                              "partitions")
            self.txn["committed"] += k
            self.txn["records"] += n
            self.txn["markers"] += markers
            secs = count / res["total_records_per_s"]
            res.update(txn_per_s=k / secs,
                       batches_per_txn=d["eosproxy_txn_batches_total"] / k,
                       requests_per_txn=d["eosproxy_txn_requests_total"] / k,
                       records_per_txn=count / k,
                       commit_ms=1e3 * d["eosproxy_txn_commit_duration_seconds_sum"]
                       / max(1, d["eosproxy_txn_commit_duration_seconds_count"]))
            what += (f"; {n} committed records (read_committed) + {markers} markers on the broker; "
                     f"eosproxy: {k:.0f} transactions ({res['txn_per_s']:,.1f}/s), "
                     f"{res['batches_per_txn']:.1f} batches, {res['requests_per_txn']:.1f} "
                     f"requests, {res['records_per_txn']:,.0f} records per transaction, commit "
                     f"{res['commit_ms']:.1f} ms avg, 0 aborted")
        else:
            n = check_count(c, topic, count, exact=True, target="idempotent route")
            up = d["eosproxy_upgraded_records_total"]
            if up < count or d["upgrade"] <= 0 or d["transaction"] != 0 \
                    or d["eosproxy_txn_begun_total"] != 0:
                raise Failure(f"{case} idempotent: eosproxy upgraded {up:.0f} records "
                              f"({count} expected) in {d['upgrade']:.0f} Produce requests; "
                              f"{d['transaction']:.0f} went to transactions")
            what += f", {n} records on the broker; eosproxy upgraded {up:.0f} records"
        delete_topic(c, topic)
        log(f"  round {rnd} {case} {route}: {what}")
        self.results.append({"round": rnd, "case": case, "target": route, "result": res})

    def run_bind(self, rnd, route):
        """Case 5: the consume-transform-produce loop through tproxy, route
        "bound" (its commits bind the output) or "plain"."""
        from confluent_kafka import Consumer, Producer, TopicPartition
        c, p = self.cluster, self.tproxy
        self.seq += 1
        bound = route == "bound"
        out = f"rb-bout-{self.seq}" if bound else f"rb-pout-{self.seq}"
        group = BIND_GROUP if bound else f"rb-plain-{self.seq}"
        create_topic(c, out)
        k0 = metric(p, "eosproxy_bind_commits_total")
        cons = Consumer({"bootstrap.servers": p.bootstrap, "group.id": group,
                         "enable.auto.commit": False, "log_level": 4})
        prod = Producer({"bootstrap.servers": p.bootstrap, "enable.idempotence": False,
                         "acks": "all", "linger.ms": 5, "log_level": 4})
        cons.assign([TopicPartition("rb-bin", q, 0) for q in range(PARTITIONS)])
        value, done, commits = b"x" * SIZE, 0, 0
        t0 = time.monotonic()
        try:
            while done < COUNT_BIND:
                if time.monotonic() - t0 > TIMEOUT:
                    raise Failure(f"case 5 {route}: {done} of {COUNT_BIND} inputs processed in "
                                  f"{TIMEOUT:.0f} s")
                msgs = [m for m in cons.consume(min(BIND_BATCH, COUNT_BIND - done), 1.0)
                        if m.error() is None]
                if not msgs:
                    continue
                for m in msgs:
                    prod.produce(out, value=value, key=m.value()[:16])
                    prod.poll(0)
                if prod.flush(60) != 0:
                    raise Failure(f"case 5 {route}: output not acknowledged within 60 s")
                cons.commit(asynchronous=False)
                done += len(msgs)
                commits += 1
            secs = time.monotonic() - t0
        finally:
            cons.close()
        k = metric(p, "eosproxy_bind_commits_total") - k0
        if bound:
            n, _ = committed_count(c, out)
            if n != COUNT_BIND or k < commits:
                raise Failure(f"case 5 bound: {n} output records read_committed ({COUNT_BIND} "
                              f"expected), {k:.0f} bound commits counted for {commits} commits")
        else:
            n = check_count(c, out, COUNT_BIND, exact=False, target="case 5 plain")
            if k:
                raise Failure(f"case 5 plain: eosproxy counted {k:.0f} bound commits")
        delete_topic(c, out)
        res = {"records_per_s": done / secs, "mb_per_s": done * SIZE / secs / 2**20,
               "commit_ms": 1e3 * secs / commits, "commits": commits}
        log(f"  round {rnd} bind {route}: {res['records_per_s']:,.0f} inputs/s, {commits} commits "
            f"({res['commit_ms']:.1f} ms per batch of {BIND_BATCH}), {n} outputs on the broker"
            + (f", {k:.0f} bound commits" if bound else ""))
        self.results.append({"round": rnd, "case": "bind", "target": route, "result": res})

    def run(self, rnd, case, target):
        c, p = self.cluster, self.proxy
        bootstrap = c.bootstrap if target == "direct" else p.bootstrap
        self.seq += 1
        via = target == "eosproxy"
        if via:
            req0 = {a: metric(p, "eosproxy_requests_total", api=a) for a in ("Produce", "Fetch")}
            up0 = metric(p, "eosproxy_upgraded_records_total")
        if case == "cons":
            res = consume(c, bootstrap, "rb-cons", COUNT_CONSUME,
                          f"rb-cons-{target}-{self.seq}-{uuid.uuid4().hex[:8]}",
                          proxy=p if via else None)
            what = (f"{res['mb_per_s']:.1f} MB/s fetch, {res['records_per_s']:,.0f} rec/s, "
                    f"join {res['join_ms']:.0f} ms")
        else:
            topic = f"rb-{case}-{target}-{self.seq}"
            create_topic(c, topic)
            # idem: the client's own idempotence direct; through eosproxy a
            # non-idempotent client whose topic eosproxy makes idempotent.
            idem = case == "idem" and not via
            res = produce(c, bootstrap, topic, COUNT, WARMUP,
                          [f"enable.idempotence={'true' if idem else 'false'}"],
                          proxy=p if via else None)
            n = check_count(c, topic, COUNT, exact=(case == "idem"), target=target)
            delete_topic(c, topic)
            what = (f"{res['mb_per_s']:.1f} MB/s, {res['records_per_s']:,.0f} rec/s, latency avg "
                    f"{res['avg_ms']:.0f} / p50 {res['p50_ms']:.0f} / p99 {res['p99_ms']:.0f} ms, "
                    f"{n} records on the broker")
        if via:
            api = "Fetch" if case == "cons" else "Produce"
            reqs = metric(p, "eosproxy_requests_total", api=api) - req0[api]
            if reqs <= 0:
                raise Failure(f"{case} through eosproxy: eosproxy counted no {api} request")
            up = metric(p, "eosproxy_upgraded_records_total") - up0
            if case == "idem" and up < COUNT:
                raise Failure(f"idem through eosproxy: eosproxy upgraded {up:.0f} records, "
                              f"{COUNT} expected")
            if case != "idem" and up != 0:
                raise Failure(f"{case} through eosproxy: eosproxy upgraded {up:.0f} records "
                              "of a pass-through topic")
            if case in self.upgraded:
                self.upgraded[case] += up
            what += f"; eosproxy: {reqs:.0f} {api} requests"
        log(f"  round {rnd} {case} {target}: {what}")
        self.results.append({"round": rnd, "case": case, "target": target, "result": res})


# ---------------------------------------------------------------- the table

def med(results, case, target, key):
    v = [r["result"][key] for r in results if r["case"] == case and r["target"] == target]
    return statistics.median(v) if v else None


def paired(results, case, key, a="eosproxy", b="direct", op=lambda x, y: x / y):
    """Median over rounds of op(a, b) (eosproxy/direct by default), each
    pair measured back to back."""
    by = {}
    for r in results:
        if r["case"] == case:
            by.setdefault(r["round"], {})[r["target"]] = r["result"][key]
    v = []
    for p in by.values():
        if a in p and b in p:
            try:
                v.append(op(p[a], p[b]))
            except ZeroDivisionError:
                pass
    return statistics.median(v) if v else None


def linger_ms(s):
    """REAL_TXN_LINGER in ms, as eosproxy reads it ("10ms", "1s", "1m"; a
    bare number is ms); None when it is not one of those."""
    m = re.fullmatch(r"\s*(\d+)\s*(ms|s|m)?\s*", s)
    return m and int(m.group(1)) * {"ms": 1, "s": 1000, "m": 60000, None: 1}[m.group(2)]


def fmt_ratio(x):
    return "n/a" if x is None else f"{x:.2f}"


def print_table(results, info):
    R = results
    print()
    print(f"## eosproxy benchmark: direct vs through eosproxy (real Apache Kafka {info['kafka']}, "
          "1 broker)")
    print()
    print(f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"- machine: {os.cpu_count()} CPUs (nproc {info['nproc']}), {info['cpu']}, kernel "
          f"{platform.release()}; load average {info['load0']} at the start, {info['load1']} at "
          "the end (the host is shared with other work)")
    print(f"- eosproxy: {info['version']}; rules `rb-idem-*` delivery: idempotent, everything else "
          "at-least-once (pass-through); log level warn")
    print(f"- broker: Apache Kafka {info['kafka']}, one combined KRaft broker+controller on "
          f"loopback (tests/integration/kafka_real.py: heap {BROKER_HEAP}, SerialGC, C1 only, "
          f"2 network and 2 I/O threads), fresh {PARTITIONS}-partition topic per producer run; "
          f"clients: Kafka's ProducerPerformance / ConsumerPerformance ({info['java']}, heap "
          f"{CLIENT_HEAP})")
    print(f"- method: {ROUNDS} rounds, direct and eosproxy back to back in alternating order; "
          "direct/eosproxy columns are medians, ratios are medians of the per-round "
          "eosproxy/direct pairs; producer: "
          f"{COUNT:,} x 1 KB records per run, {', '.join(PRODUCER_PROPS)}, other settings the Java "
          f"client's defaults (batch.size 16 KB), unthrottled; numbers are the tool's steady-state "
          f"line (the first {WARMUP:,} records left out), so latency is mostly time queued in the "
          f"saturated client; consumer: {COUNT_CONSUME:,} x 1 KB records from the start of one "
          f"{PARTITIONS}-partition topic, fresh group, MB/s and rec/s of the fetch phase (group "
          "join excluded; its time is given); MB = 2^20 bytes, as the tools print")
    print()
    print("| case | direct | eosproxy | ratio (eosproxy/direct) |")
    print("|---|---|---|---|")

    def tp(case, target):
        mb, rec = med(R, case, target, "mb_per_s"), med(R, case, target, "records_per_s")
        return "n/a" if mb is None else f"{mb:,.1f} MB/s ({rec / 1e3:,.1f} k rec/s)"

    def lat(case, target):
        a = [med(R, case, target, k) for k in ("avg_ms", "p50_ms", "p99_ms")]
        return "n/a" if a[0] is None else f"avg {a[0]:,.0f} / p50 {a[1]:,.0f} / p99 {a[2]:,.0f} ms"

    def lat_ratio(case):
        return " / ".join(fmt_ratio(paired(R, case, k)) for k in ("avg_ms", "p50_ms", "p99_ms"))

    labels = {
        "plain": "1. producer, 1 KB, acks=all, enable.idempotence=false, pass-through topic "
                 "(`at-least-once`)",
        "idem": "2. producer, 1 KB, acks=all; **direct: enable.idempotence=true**; via eosproxy: "
                "enable.idempotence=false to a `delivery: idempotent` topic (eosproxy upgrades)",
    }
    for case in ("plain", "idem"):
        print(f"| {labels[case]}: throughput | {tp(case, 'direct')} | {tp(case, 'eosproxy')} "
              f"| {fmt_ratio(paired(R, case, 'mb_per_s'))} |")
        print(f"| {labels[case].split(',')[0]}: latency under load | {lat(case, 'direct')} "
              f"| {lat(case, 'eosproxy')} | {lat_ratio(case)} |")

    def cons(target):
        mb, rec = med(R, "cons", target, "mb_per_s"), med(R, "cons", target, "records_per_s")
        j = med(R, "cons", target, "join_ms")
        return ("n/a" if mb is None
                else f"{mb:,.1f} MB/s ({rec / 1e3:,.1f} k rec/s); group join {j:,.0f} ms")
    print(f"| 3. consumer, {COUNT_CONSUME:,} x 1 KB, fresh group (ConsumerPerformance) | "
          f"{cons('direct')} | {cons('eosproxy')} | {fmt_ratio(paired(R, 'cons', 'mb_per_s'))} |")
    print()
    if any(r["case"] == "txn" for r in R):
        print_txn_table(R)
    if any(r["case"] == "bind" for r in R):
        print_bind_table(R)
    print(f"Run time: {info['elapsed']:.0f} s (broker start included"
          + (f"; case 4 {info['txn_secs']:.0f} s" if "txn_secs" in info else "")
          + f"). {info['checks']}")


def print_txn_table(R):
    T, I = "transactional", "idempotent"
    lg = linger_ms(TXN_LINGER)
    budget = None if lg is None else lg + 5

    def diff(case, key):
        return paired(R, case, key, T, I, op=lambda x, y: x - y)

    def verdict(ok):
        return "n/a" if ok is None else ("met" if ok else "**missed**")

    def tp(case, route):
        mb, rec = med(R, case, route, "mb_per_s"), med(R, case, route, "records_per_s")
        return "n/a" if mb is None else f"{mb:,.1f} MB/s ({rec / 1e3:,.1f} k rec/s)"

    def lat(case, route):
        a = [med(R, case, route, k) for k in ("avg_ms", "p50_ms", "p99_ms")]
        return "n/a" if a[0] is None else f"avg {a[0]:,.1f} / p50 {a[1]:,.0f} / p99 {a[2]:,.0f} ms"

    def added(case):
        d = [diff(case, k) for k in ("avg_ms", "p50_ms", "p99_ms")]
        return ("n/a" if d[2] is None else
                f"added avg {d[0]:+,.1f} / p50 {d[1]:+,.0f} / **p99 {d[2]:+,.0f} ms**")

    def p99_ok(case):
        d = diff(case, "p99_ms")
        return None if d is None or budget is None else d <= budget

    ratio = paired(R, "txn", "mb_per_s", T, I)
    print(f"Case 4: the transactional route vs the idempotent route, both through one eosproxy "
          f"of their own (rules `rb-txn-*` delivery: transactional, `rb-idem-*` delivery: "
          f"idempotent; transactions.linger {TXN_LINGER}"
          f"{f', transactions.pool {TXN_POOL}' if TXN_POOL else ''}, other `transactions` settings the "
          f"defaults). ProducerPerformance with enable.idempotence=false, "
          f"{', '.join(PRODUCER_PROPS)}, fresh {PARTITIONS}-partition topic per run; the two "
          "routes back to back in alternating order each round; columns are medians, the last "
          "column medians of the per-round pairs; latencies as the tool prints them (whole ms "
          "except avg).")
    print()
    print("| case 4 | idempotent route | transactional route | transactional vs idempotent "
          "| target |")
    print("|---|---|---|---|---|")
    head = f"4. unthrottled, {COUNT_TXN:,} x 1 KB (first {WARMUP_TXN:,} left out)"
    print(f"| {head}: throughput | {tp('txn', I)} | {tp('txn', T)} | ratio {fmt_ratio(ratio)} "
          f"| ≥ 0.80: {verdict(None if ratio is None else ratio >= 0.80)} |")
    print(f"| 4. unthrottled: latency under load (mostly queueing in the saturated client) "
          f"| {lat('txn', I)} | {lat('txn', T)} | {added('txn')} "
          f"| p99 added ≤ linger + 5 ms = {budget} ms: {verdict(p99_ok('txn'))} |")
    if any(r["case"] == "txnlat" for r in R):
        def kept(route):
            """The rate reached; says so when a run fell behind the throttle
            (its latency is then queueing again, not the route's own)."""
            v = [r["result"]["records_per_s"] for r in R
                 if r["case"] == "txnlat" and r["target"] == route]
            slow = sum(x < 0.95 * TXN_RATE for x in v)
            return (f"{statistics.median(v):,.0f} rec/s"
                    + (f" (**{slow} of {len(v)} runs below {TXN_RATE:,}: saturated, latency "
                       "is queueing**)" if slow else ""))
        print(f"| 4. throttled to {TXN_RATE:,} rec/s, {COUNT_TXN_LAT:,} x 1 KB (first "
              f"{WARMUP_TXN_LAT:,} left out): latency | {lat('txnlat', I)}; {kept(I)} "
              f"| {lat('txnlat', T)}; {kept(T)} | {added('txnlat')} "
              f"| p99 added ≤ {budget} ms: {verdict(p99_ok('txnlat'))} |")
    print()

    def txns(case):
        def m(k):
            return med(R, case, T, k)
        return (f"{m('txn_per_s'):,.1f} transactions/s, {m('batches_per_txn'):,.1f} batches, "
                f"{m('requests_per_txn'):,.1f} client Produce requests and "
                f"{m('records_per_txn'):,.0f} records per transaction, commit "
                f"{m('commit_ms'):,.1f} ms on average (first upstream request to EndTxn answered)")
    line = ("Transactions (eosproxy's /metrics over each transactional run, medians): "
            f"unthrottled {txns('txn')}")
    if any(r["case"] == "txnlat" for r in R):
        line += f"; at {TXN_RATE:,} rec/s {txns('txnlat')}"
    print(line + "; eosproxy_txn_aborted_total rose by 0 in every run (checked).")
    print()


def print_bind_table(R):
    def row(route):
        r, b = med(R, "bind", route, "records_per_s"), med(R, "bind", route, "commit_ms")
        return "n/a" if r is None else f"{r:,.0f} inputs/s; {b:,.1f} ms per batch"
    print(f"Case 5: a consume-transform-produce loop (confluent-kafka / librdkafka): "
          f"{COUNT_BIND:,} x 1 KB inputs read from offset 0 (assigned), one 1 KB output each, "
          f"flush and commitSync every {BIND_BATCH} inputs, both routes through case 4's "
          "eosproxy, back to back in alternating order each round; medians.")
    print()
    print("| case 5 | plain (at-least-once output) | bound (bind_group) | bound/plain |")
    print("|---|---|---|---|")
    print(f"| 5. loop throughput | {row('plain')} | {row('bound')} "
          f"| {fmt_ratio(paired(R, 'bind', 'records_per_s', 'bound', 'plain'))} |")
    print()


# ---------------------------------------------------------------- main

def main():
    if not os.access(EOSPROXY_BIN, os.X_OK):
        log(f"FAILED: EOSPROXY_BIN {EOSPROXY_BIN} is missing (make build/eosproxy)")
        return 1
    unknown = set(CASES) - {"plain", "idem", "cons", "txn", "bind"}
    if unknown:
        log(f"FAILED: REAL_CASES names {sorted(unknown)}; the cases are plain, idem, cons, txn, "
            "bind")
        return 1
    work = pathlib.Path(tempfile.mkdtemp(prefix="eosproxy-bench-real."))
    cluster = proxy = tproxy = None
    ok = False
    start = time.monotonic()

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    info = {"nproc": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
            "load0": " ".join(open("/proc/loadavg").read().split()[:3])}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")),
                               platform.processor() or "unknown CPU")
        v = subprocess.run([EOSPROXY_BIN, "--version"], capture_output=True, text=True)
        info["version"] = (v.stdout.strip().splitlines() or ["version unknown"])[0]
        log(f"starting Apache Kafka (broker heap {BROKER_HEAP}; scratch {work})")
        cluster = KafkaCluster(work / "kafka", nodes=1, free_port=free_port)
        cluster.start()
        info["kafka"] = os.path.basename(os.path.dirname(cluster.libs)).removeprefix("kafka-")
        jv = subprocess.run([_java(), "-version"], capture_output=True, text=True).stderr
        info["java"] = (jv.splitlines() or ["java"])[0].replace('"', "")
        proxy = Proxy(cluster, work, "eosproxy", {
            "service": "bench-real", "log.level": "warn",
            "topics": [{"match": "rb-idem-*", "delivery": "idempotent"},
                       {"match": "*", "delivery": "at-least-once"}]})
        proxy._wait_ready()
        if "txn" in CASES or "bind" in CASES:
            # Case 4 has an eosproxy of its own: a transactional rule caps the
            # Fetch versions eosproxy offers (v12), which would change case 3.
            tproxy = Proxy(cluster, work, "eosproxy-txn", {
                "service": "bench-real-txn", "log.level": "warn",
                "transactions": {"id": f"bench-real-{uuid.uuid4().hex[:8]}",
                                 "linger": TXN_LINGER,
                                 **({"pool": int(TXN_POOL)} if TXN_POOL else {})},
                "topics": [{"match": "rb-txn-*", "delivery": "transactional"},
                           {"match": "rb-bout-*", "delivery": "transactional",
                            "transactional": {"bind_group": BIND_GROUP}},
                           {"match": "rb-idem-*", "delivery": "idempotent"},
                           {"match": "*", "delivery": "at-least-once"}]})
            tproxy._wait_ready()

        if "cons" in CASES:
            log(f"filling rb-cons with {COUNT_CONSUME:,} x 1 KB records (direct)")
            create_topic(cluster, "rb-cons")
            produce(cluster, cluster.bootstrap, "rb-cons", COUNT_CONSUME, 0,
                    ["enable.idempotence=true"])
            check_count(cluster, "rb-cons", COUNT_CONSUME, exact=True, target="direct")

        if "bind" in CASES:
            log(f"filling rb-bin with {COUNT_BIND:,} x 1 KB records (direct)")
            create_topic(cluster, "rb-bin")
            produce(cluster, cluster.bootstrap, "rb-bin", COUNT_BIND, 0,
                    ["enable.idempotence=true"])

        bench = Bench(cluster, proxy, tproxy)
        for rnd in range(1, ROUNDS + 1):
            log(f"round {rnd}/{ROUNDS}")
            order = ("direct", "eosproxy") if rnd % 2 else ("eosproxy", "direct")
            for case in ("plain", "idem", "cons"):
                if case in CASES:
                    for target in order:
                        bench.run(rnd, case, target)
            if "txn" in CASES:
                t0 = time.monotonic()
                routes = (("idempotent", "transactional") if rnd % 2
                          else ("transactional", "idempotent"))
                for case in ("txn", "txnlat") if TXN_RATE > 0 else ("txn",):
                    for route in routes:
                        bench.run_txn(rnd, case, route)
                info["txn_secs"] = info.get("txn_secs", 0) + time.monotonic() - t0
            if "bind" in CASES:
                for route in ("plain", "bound") if rnd % 2 else ("bound", "plain"):
                    bench.run_bind(rnd, route)

        codes, bad, bad_logs = {}, [], ""
        for name, px in (("eosproxy", proxy), ("eosproxy (case 4)", tproxy)):
            if px is not None:
                codes[name] = px.stop()
                text = px.log
                marks = [m for m in SANITIZER_MARKS if m in text]
                bad += [f"{name}: {m}" for m in marks]
                if codes[name] != 0 or marks:
                    bad_logs += f"\n{name}:\n{_tail(text)}"
        info["load1"] = " ".join(open("/proc/loadavg").read().split()[:3])
        info["elapsed"] = time.monotonic() - start
        t = bench.txn
        info["checks"] = (
            "Checks passed: "
            + (f"every producer run's records counted on the broker (exactly "
               f"{COUNT:,} per idem run); eosproxy upgraded {bench.upgraded['idem']:,.0f} records "
               f"in the idem runs through it and {bench.upgraded['plain']:,.0f} in the plain ones; "
               f"eosproxy saw the Produce/Fetch requests of every run through it"
               if {"plain", "idem", "cons"} & set(CASES) else "cases 1-3 not run")
            + (f"; case 4: every idempotent-route run's records upgraded and counted exactly on "
               f"the broker, every transactional-route run's records counted exactly by a "
               f"read_committed consumer ({t['records']:,.0f} records in {t['committed']:,.0f} "
               f"committed transactions, whose {t['markers']:,.0f} commit markers take the rest "
               f"of the offsets), none aborted" if "txn" in CASES else "")
            + "; exit codes after SIGTERM: "
            + ", ".join(f"{n} {c}" for n, c in codes.items()) + ".")
        print_table(bench.results, info)
        if bad or any(codes.values()):
            raise Failure(f"exit codes after SIGTERM {codes} (expected 0)"
                          + (f", logs have {bad}" if bad else "") + f"; logs:{bad_logs}")
        ok = True
        return 0
    except Failure as e:
        log(f"FAILED: {e}")
        return 1
    except AssertionError as e:  # from KafkaCluster / conftest.Proxy (start-up)
        log(f"FAILED: {e}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        for px in (proxy, tproxy):
            if px is not None:
                try:
                    px.stop()
                finally:
                    if px.proc.poll() is None:
                        px.proc.kill()
                        px.proc.wait(10)
        if cluster is not None:
            cluster.stop()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            if cluster is not None:  # keep the logs, not gigabytes of records
                for n in cluster.nodes:
                    shutil.rmtree(n.data_dir, ignore_errors=True)
            log(f"logs kept in {work}")


if __name__ == "__main__":
    sys.exit(main())
