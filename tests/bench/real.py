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

Each run is checked, or the script exits 1 with `bench-real: FAILED:` and
the reason: the tool exits 0 and prints its summary; the broker's own
watermarks hold every record produced (exactly as many for idem through
eosproxy); eosproxy's metrics show the Produce or Fetch requests of each run
through it, the upgraded records of idem and none of plain; eosproxy exits 0
on SIGTERM with no sanitizer report. Every process started here (broker,
eosproxy, tools) is stopped also on failure; the scratch directory is removed
on success and kept (without the broker's data) on failure. Prints a Markdown
table of medians and of the medians of the per-round eosproxy/direct ratios.

Knobs (environment): REAL_ROUNDS (3), REAL_COUNT (200000 records per
producer run), REAL_WARMUP (REAL_COUNT/5: the first records of a producer
run, left out of its steady-state numbers), REAL_COUNT_CONSUME (400000),
REAL_PARTITIONS (6), REAL_CLIENT_HEAP (512m, each tool's JVM),
EOSPROXY_KAFKA_HEAP (the broker's heap, 1g here), REAL_TIMEOUT (300 s per
tool run), EOSPROXY_BIN (build/eosproxy).
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


def produce(cluster, bootstrap, topic, count, warmup, props, proxy=None):
    out, err = java_tool(cluster, "org.apache.kafka.tools.ProducerPerformance", proxy=proxy, args=[
        "--bootstrap-server", bootstrap, "--topic", topic, "--num-records", str(count),
        "--warmup-records", str(warmup), "--record-size", str(SIZE), "--throughput", "-1",
        "--reporting-interval", str(10**9), "--command-property", *PRODUCER_PROPS, *props])
    lines = {bool(m.group(2)): m for m in PERF_LINE.finditer(out)}
    m = lines.get(warmup > 0)
    if m is None or int(lines[False].group(1)) != count:
        raise Failure(f"ProducerPerformance printed no summary of {count} records sent to "
                      f"{topic}; stdout:\n{_tail(out)}\nstderr:\n{_tail(err)}")
    return {"records_per_s": float(m.group(3)), "mb_per_s": float(m.group(4)),
            "avg_ms": float(m.group(5)), "p50_ms": float(m.group(7)), "p99_ms": float(m.group(9))}


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


def metric(proxy, name, **labels):
    if not proxy.alive():
        raise Failure(f"eosproxy exited {proxy.proc.returncode}; its log:\n{_tail(proxy.log, 4000)}")
    return proxy.metrics().get_value(name, **labels)


# ---------------------------------------------------------------- one run

class Bench:
    def __init__(self, cluster, proxy):
        self.cluster, self.proxy = cluster, proxy
        self.seq = 0
        self.results = []  # {"round", "case", "target", "result"}
        self.upgraded = {"plain": 0, "idem": 0}

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


def paired(results, case, key):
    """Median over rounds of eosproxy/direct, each pair measured back to back."""
    by = {}
    for r in results:
        if r["case"] == case:
            by.setdefault(r["round"], {})[r["target"]] = r["result"][key]
    v = [p["eosproxy"] / p["direct"] for p in by.values()
         if len(p) == 2 and p["direct"] > 0]
    return statistics.median(v) if v else None


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
    print(f"Run time: {info['elapsed']:.0f} s (broker start included). {info['checks']}")


# ---------------------------------------------------------------- main

def main():
    if not os.access(EOSPROXY_BIN, os.X_OK):
        log(f"FAILED: EOSPROXY_BIN {EOSPROXY_BIN} is missing (make build/eosproxy)")
        return 1
    work = pathlib.Path(tempfile.mkdtemp(prefix="eosproxy-bench-real."))
    cluster = proxy = None
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

        log(f"filling rb-cons with {COUNT_CONSUME:,} x 1 KB records (direct)")
        create_topic(cluster, "rb-cons")
        produce(cluster, cluster.bootstrap, "rb-cons", COUNT_CONSUME, 0, ["enable.idempotence=true"])
        check_count(cluster, "rb-cons", COUNT_CONSUME, exact=True, target="direct")

        bench = Bench(cluster, proxy)
        for rnd in range(1, ROUNDS + 1):
            log(f"round {rnd}/{ROUNDS}")
            order = ("direct", "eosproxy") if rnd % 2 else ("eosproxy", "direct")
            for case in ("plain", "idem", "cons"):
                for target in order:
                    bench.run(rnd, case, target)

        code = proxy.stop()
        text = proxy.log
        bad = [m for m in SANITIZER_MARKS if m in text]
        info["load1"] = " ".join(open("/proc/loadavg").read().split()[:3])
        info["elapsed"] = time.monotonic() - start
        info["checks"] = (
            f"Checks passed: every producer run's records counted on the broker (exactly "
            f"{COUNT:,} per idem run); eosproxy upgraded {bench.upgraded['idem']:,.0f} records in "
            f"the idem runs through it and {bench.upgraded['plain']:,.0f} in the plain ones; eosproxy "
            f"saw the Produce/Fetch requests of every run through it; its exit code after SIGTERM: "
            f"{code}.")
        print_table(bench.results, info)
        if bad or code != 0:
            raise Failure(f"eosproxy exited {code} after SIGTERM (expected 0)"
                          + (f", its log has {bad}" if bad else "") + f"; its log:\n{_tail(text)}")
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
        if proxy is not None:
            try:
                proxy.stop()
            finally:
                if proxy.proc.poll() is None:
                    proxy.proc.kill()
                    proxy.proc.wait(10)
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
