"""Shared pieces of the dead-letter tests (test_dlq.py on the mock,
test_real_dlq.py on real Kafka 4.4): the topic rule, a record stream with
one poison record, consumers that crash on it and the loop that restarts
them, and the DLT headers decoded as Spring Kafka reads them.

The crash-looping consumer processes records one by one and commits each
before the next (so it never sees a record twice unless it crashed on it).
On the record whose value is POISON it "crashes": it exits with code 3
without committing that record (it closes its client first, which leaves
the group, so that the restart joins at once instead of waiting for a
session timeout; what eosproxy sees is the same: a delivery and no commit).
It exits 0 once it owns every partition and reached their ends. Three
implementations with one output, a JSON line
{"records": [{partition, offset, value}], "outcome": "done"|"poison"|
"timeout"|"error", "poison": {...}|null, "error": ...}:

  Java       tests/java/Harness.java poison-consume (kafka-clients 4.4)
  librdkafka this file, --client ck (confluent-kafka, Debian's librdkafka)
  kafka-python this file, --client kp (Debian's kafka-python 2.0.2)

    /usr/bin/python3 dlq_support.py poison-consume --client ck|kp \\
        --bootstrap B --topic T --group G [--partitions N] [--timeout S] [--assign]

With --assign the consumer assigns itself every partition instead of
subscribing: it still starts from group G's committed offsets and commits
in G, but joins no group. The mock's group join takes 3 to 9 s per restart
(test_dlq.py uses --assign there); a real broker rebalances a group whose
only member left at once, so test_real_dlq.py subscribes.

crash_loop() restarts one of them until it is done or a bound of runs is
reached, and returns every run's output.
"""

import argparse
import json
import os
import re
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
POISON = "POISON"
EXIT_DONE, EXIT_POISON, EXIT_TIMEOUT, EXIT_ERROR = 0, 3, 4, 5

# Spring Kafka's KafkaHeaders.DLT_* (spring-kafka 4.1; the Java harness uses
# the constants themselves).
DLT_TOPIC = "kafka_dlt-original-topic"
DLT_PARTITION = "kafka_dlt-original-partition"
DLT_OFFSET = "kafka_dlt-original-offset"
DLT_TIMESTAMP = "kafka_dlt-original-timestamp"
DLT_TIMESTAMP_TYPE = "kafka_dlt-original-timestamp-type"
DLT_GROUP = "kafka_dlt-original-consumer-group"
DLT_FQCN = "kafka_dlt-exception-fqcn"
DLT_MESSAGE = "kafka_dlt-exception-message"
FQCN = "eosproxy.DeadLetter"


DLQ_RECORDS = "eosproxy_dlq_records_total"
DLQ_FAILURES = "eosproxy_dlq_write_failures_total"
DLQ_SKIPPED = "eosproxy_dlq_skipped_total"
DLQ_HIST = "eosproxy_dlq_redelivery_count"


def dlq_rule(match, topic=None, max_deliveries=3, dedup=False):
    """A topic rule with a dlq section (and a dedup one, eventIds in the
    event-id header, if dedup)."""
    dlq = {"max_deliveries": max_deliveries}
    if topic:
        dlq["topic"] = topic
    rule = {"match": match, "delivery": "at-least-once", "dlq": dlq}
    if dedup:
        rule["dedup"] = {"event_id": "header:event-id", "ttl": "1h"}
    return rule


# ---------------------------------------------------------------- the stream

def stream(partitions, per_partition, poison_partition=0, poison_index=7, tag="r"):
    """[{partition, key, value, headers, timestamp}]: per_partition records
    in each partition, one of them (poison_partition, poison_index) the
    poison record, with extra headers (a text one and a binary one) so the
    DLQ copy can be checked to keep them, in order."""
    out = []
    n = 0
    # Known timestamps (the DLQ copy must keep them), a minute old: not much
    # older, or the broker's time retention (7 days) deletes the records
    # within minutes, and the consumer's position jumps to the new log
    # start (seen with a fixed 2023 base: "done" with nothing processed).
    ts_base = int(time.time() * 1000) - 60_000
    for i in range(per_partition):
        for p in range(partitions):
            poison = p == poison_partition and i == poison_index
            headers = [("event-id", f"{tag}-e{p}-{i}".encode())]
            if poison:
                headers += [("trace-id", b"trace-poison"), ("bin", b"\x00\x01\xfe\xff")]
            out.append({"partition": p, "key": f"key-{p}-{i}".encode(),
                        "value": POISON if poison else f"{tag}-{p}-{i}",
                        "headers": headers, "timestamp": ts_base + n})
            n += 1
    return out


def produce(bootstrap, topic, records):
    """Writes records (from stream()) straight to the cluster, acks=all, in
    one flush; fills in each one's offset. Returns records."""
    from confluent_kafka import Producer
    errors = []
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 200,
                  "message.timeout.ms": 60000})
    p.list_topics(topic, timeout=30)

    def report(rec):
        def cb(err, msg):
            if err:
                errors.append(err)
            else:
                rec["offset"] = msg.offset()
        return cb

    for r in records:
        p.produce(topic, key=r["key"], value=r["value"].encode(), partition=r["partition"],
                  headers=r["headers"], timestamp=r["timestamp"], on_delivery=report(r))
    assert p.flush(60) == 0, "records not delivered to the cluster"
    assert not errors, errors
    return records


def poison_of(records):
    [p] = [r for r in records if r["value"] == POISON]
    return p


def expected_by_partition(records):
    """{partition: [values in offset order]} of every record but the poison."""
    out = {}
    for r in sorted(records, key=lambda r: (r["partition"], r["offset"])):
        if r["value"] != POISON:
            out.setdefault(r["partition"], []).append(r["value"])
    return out


# ---------------------------------------------------------------- the loop

def crash_loop(run_once, bound):
    """Runs run_once(i) -> output dict until an outcome "done" or bound
    runs; an outcome other than done/poison fails at once."""
    runs = []
    for i in range(bound):
        res = run_once(i)
        runs.append(res)
        if res.get("outcome") == "done":
            break
        assert res.get("outcome") == "poison", \
            f"run {i} of the crash loop ended {res.get('outcome')!r}: {res}"
    return runs


class LoopResult:
    def __init__(self, runs):
        self.runs = runs
        self.outcomes = [r["outcome"] for r in runs]
        self.poison_runs = self.outcomes.count("poison")
        self.done = bool(runs) and runs[-1]["outcome"] == "done"
        self.processed = [(r["partition"], r["offset"], r["value"])
                          for run in runs for r in run["records"]]

    def by_partition(self):
        out = {}
        for p, _, v in self.processed:
            out.setdefault(p, []).append(v)
        return out

    def __repr__(self):
        return "<LoopResult " + ", ".join(
            f"{r['outcome']}({len(r['records'])} processed"
            + "".join(f", {k} {r[k]}" for k in ("committed_at_start", "positions", "end")
                      if r.get(k) is not None) + ")" for r in self.runs) + ">"


def run_python_consumer(client, bootstrap, topic, group, timeout=40, assign=False, partitions=1):
    """One run of this file's poison consumer in its own process (a real
    exit). Returns its JSON output with "exit" added. assign: see main()."""
    p = subprocess.run([sys.executable, os.path.join(HERE, "dlq_support.py"), "poison-consume",
                        "--client", client, "--bootstrap", bootstrap, "--topic", topic,
                        "--group", group, "--timeout", str(timeout),
                        "--partitions", str(partitions)]
                       + (["--assign"] if assign else []),
                       capture_output=True, text=True, timeout=timeout + 60)
    return _parse_run(p, f"dlq_support.py poison-consume --client {client}")


def run_java_consumer(cluster, bootstrap, topic, group, timeout_ms=40000, hard=False):
    """One run of Harness poison-consume (kafka_real.run_java insists on
    exit 0; this one takes the crash's exit code). hard: the JVM halts on
    the poison record (no close, no LeaveGroup), and the consumer is a
    static member (group.instance.id), so that its restart takes its place
    at once. The tests use the default (close, then exit 3)."""
    from kafka_real import JAVA_LOG_CONFIG, _die_with_parent, _java
    cmd = [_java(), "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
           f"-Dlog4j2.configurationFile={JAVA_LOG_CONFIG}",
           "-cp", cluster.harness + os.pathsep + os.path.join(cluster.libs, "*"),
           "Harness", "poison-consume", "--bootstrap", bootstrap, "--topic", topic,
           "--group", group, "--timeout-ms", str(timeout_ms)]
    if hard:
        cmd += ["--crash", "halt", "--instance-id", f"{group}-static"]
    p = subprocess.run(_die_with_parent(cmd), capture_output=True, text=True,
                       timeout=timeout_ms / 1000 + 90)
    return _parse_run(p, "Harness poison-consume")


def _parse_run(p, what):
    lines = p.stdout.strip().splitlines()
    try:
        res = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise AssertionError(f"{what} exited {p.returncode} without its JSON line:\n"
                             f"{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
    want = {"done": EXIT_DONE, "poison": EXIT_POISON, "timeout": EXIT_TIMEOUT}.get(
        res.get("outcome"), EXIT_ERROR)
    assert p.returncode == want, \
        f"{what} said {res.get('outcome')} but exited {p.returncode}:\n{p.stderr[-3000:]}"
    res["exit"] = p.returncode
    res["stderr"] = p.stderr[-3000:]
    return res


# ---------------------------------------------------------------- checks

def check_moved_past(loop, records, max_deliveries, dlq=None, proxy=None):
    """Through eosproxy: the loop ended, the consumer crashed on the poison
    exactly max_deliveries times, and processed every other record once,
    in offset order per partition. dlq: what the DLQ holds, and proxy:
    eosproxy, for the messages."""
    poison = poison_of(records)
    where = ""
    if dlq is not None:
        where = "\nthe DLQ holds: " + (", ".join(
            f"{(r.get('dlt') or {}).get('partition')}@{(r.get('dlt') or {}).get('offset')}="
            f"{r.get('value')!r}" for r in dlq) or "nothing")
    if proxy is not None:
        m = proxy.metrics()
        where += "\neosproxy's dedup/dlq counters: " + ", ".join(
            f"{name}{dict(labels) if labels else ''}={int(v)}"
            for (name, labels), v in sorted(m.items())
            if v and (name.startswith("eosproxy_dedup_records") or name.startswith("eosproxy_dlq_"))
            and "_bucket" not in name)
        where += "\neosproxy's dlq log lines:\n" + "\n".join(
            line for line in proxy.log.splitlines() if " dlq" in line)[-3000:]
    assert loop.done, f"the consumer never got past the poison record: {loop}{where}"
    assert loop.poison_runs == max_deliveries, \
        f"crashed on the poison {loop.poison_runs} times, max_deliveries is {max_deliveries}: " \
        f"{loop.outcomes}{where}"
    for run in loop.runs:
        if run["outcome"] == "poison":
            assert (run["poison"]["partition"], run["poison"]["offset"]) == \
                (poison["partition"], poison["offset"]), run["poison"]
    assert POISON not in [v for _, _, v in loop.processed]
    got = loop.by_partition()
    want = expected_by_partition(records)
    assert got == want, "every other record exactly once and in order, per partition:\n" \
        f"got  {got}\nwant {want}{where}"
    seen = [(p, o) for p, o, _ in loop.processed]
    assert len(seen) == len(set(seen)), "a record was processed twice"


def check_stuck(loop, records, bound):
    """Straight to Kafka: every one of the bound runs crashed on the poison,
    and nothing after it in its partition was ever processed."""
    poison = poison_of(records)
    assert len(loop.runs) == bound and loop.outcomes == ["poison"] * bound, \
        f"{loop}: processed {loop.processed}"
    after = [(p, o, v) for p, o, v in loop.processed
             if p == poison["partition"] and o > poison["offset"]]
    assert after == [], f"got past the poison without eosproxy: {after}"
    before = [r["value"] for r in records
              if r["partition"] == poison["partition"] and r["offset"] < poison["offset"]]
    assert loop.by_partition().get(poison["partition"], []) == before


# ---------------------------------------------------------------- DLT headers

def decode_dlt(headers):
    """(fields, errors): the DLT headers of [(name, bytes)] decoded as
    Spring reads them (last header of each name; partition a 4-byte
    big-endian int, offset and timestamp 8-byte big-endian longs, the rest
    UTF-8)."""
    last = {}
    counts = {}
    for k, v in headers or []:
        last[k] = v
        counts[k] = counts.get(k, 0) + 1
    out, errors = {}, []
    for name, key in ((DLT_TOPIC, "topic"), (DLT_TIMESTAMP_TYPE, "timestamp_type"),
                      (DLT_GROUP, "consumer_group"), (DLT_FQCN, "exception_fqcn"),
                      (DLT_MESSAGE, "exception_message")):
        if name in last:
            try:
                out[key] = last[name].decode("utf-8")
            except (AttributeError, UnicodeDecodeError) as e:
                errors.append(f"{name}: {e}")
    for name, key, fmt in ((DLT_PARTITION, "partition", ">i"), (DLT_OFFSET, "offset", ">q"),
                           (DLT_TIMESTAMP, "timestamp", ">q")):
        if name in last:
            v = last[name]
            if v is None or len(v) != struct.calcsize(fmt):
                errors.append(f"{name} is {None if v is None else len(v)} bytes")
            else:
                out[key] = struct.unpack(fmt, v)[0]
    errors += [f"{k} appears {n} times" for k, n in counts.items()
               if k.startswith("kafka_dlt-") and n > 1]
    return out, errors


def expect_dlt(poison, topic):
    """The DLT fields a dead-letter copy of poison must carry (the message
    and the consumer group are checked apart)."""
    return {"topic": topic, "partition": poison["partition"], "offset": poison["offset"],
            "timestamp": poison["timestamp"], "timestamp_type": "CreateTime",
            "exception_fqcn": FQCN}


def deliveries_in(message):
    """N of eosproxy's reason "delivered N times without a commit past it"."""
    m = re.match(r"delivered (\d+) times without a commit", message or "")
    assert m, f"exception message {message!r} is not eosproxy's redelivery reason"
    return int(m.group(1))


def check_dlt_fields(dlt, errors, poison, topic, max_deliveries, group, exact=True):
    """exact: the message must name max_deliveries deliveries (else at least
    that many: failed DLQ writes let the record be delivered again).

    The consumer group header is written where eosproxy knows the group:
    here it always does, since the crash-looping consumer committed the
    records before the poison one through it."""
    assert errors == [], errors
    want = expect_dlt(poison, topic)
    got = {k: dlt.get(k) for k in want}
    assert got == want, f"DLT headers: got {got}, want {want}"
    n = deliveries_in(dlt.get("exception_message"))
    if exact:
        assert n == max_deliveries, dlt["exception_message"]
    else:
        assert n >= max_deliveries, dlt["exception_message"]
    assert dlt.get("consumer_group") == group, \
        f"kafka_dlt-original-consumer-group: want {group} (it committed through eosproxy): {dlt}"


def read_topic_ck(bootstrap, topic, timeout=30):
    """Every record of topic (confluent-kafka, from the beginning to the
    high watermarks): [{partition, offset, key, value, headers, timestamp,
    timestamp_type}], headers as [(name, bytes)]."""
    from confluent_kafka import Consumer, TopicPartition, TIMESTAMP_CREATE_TIME
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "eosproxy-it-dlq-read",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        md = c.list_topics(topic, timeout=20)
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            return []
        parts = sorted(t.partitions)
        hi = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=20)[1] for p in parts}
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        out = []
        pos = {p: 0 for p in parts}
        deadline = time.monotonic() + timeout
        while any(pos[p] < hi[p] for p in parts):
            assert time.monotonic() < deadline, f"reading {topic}: at {pos}, ends {hi}"
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            ts_type, ts = m.timestamp()
            out.append({"partition": m.partition(), "offset": m.offset(), "key": m.key(),
                        "value": m.value(), "headers": list(m.headers() or []),
                        "timestamp": ts,
                        "timestamp_type": "CreateTime" if ts_type == TIMESTAMP_CREATE_TIME
                        else "LogAppendTime"})
            pos[m.partition()] = m.offset() + 1
        return out
    finally:
        c.close()


def check_dlq_copy(rec, poison, topic, max_deliveries, group, exact=True):
    """A DLQ record read by read_topic_ck: the poison's key, value, headers
    (in order, before the DLT ones) and timestamp, and the DLT headers."""
    assert rec["key"] == poison["key"], rec
    assert rec["value"] == poison["value"].encode(), rec
    assert rec["timestamp"] == poison["timestamp"], rec
    own = [(k, v) for k, v in rec["headers"] if not k.startswith("kafka_dlt-")]
    assert own == poison["headers"], f"original headers {poison['headers']}, DLQ has {own}"
    dlt, errors = decode_dlt(rec["headers"])
    check_dlt_fields(dlt, errors, poison, topic, max_deliveries, group, exact)


# ---------------------------------------------------------------- the consumers

def _ck_consume(a, out):
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
    c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": a.group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "enable.partition.eof": True, "session.timeout.ms": 6000,
                  "heartbeat.interval.ms": 500, "socket.timeout.ms": 30000})
    try:
        deadline = time.monotonic() + a.timeout
        parts = set()
        while len(parts) < a.partitions:  # metadata may lag a new topic
            assert time.monotonic() < deadline, f"partitions of the topic: {parts}"
            md = c.list_topics(a.topic, timeout=10)
            parts = set(md.topics[a.topic].partitions) if a.topic in md.topics else set()
        out["partitions"] = sorted(parts)  # for messages
        if a.assign:  # from the group's committed offsets, no group membership
            c.assign([TopicPartition(a.topic, p) for p in sorted(parts)])
        else:
            c.subscribe([a.topic])
        at_end = set()
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(m.partition())
                    if at_end >= parts:
                        out.update(outcome="done")
                        return EXIT_DONE
                    continue
                raise KafkaException(m.error())
            at_end.discard(m.partition())
            rec = {"partition": m.partition(), "offset": m.offset(),
                   "value": m.value().decode()}
            if rec["value"] == a.poison:
                out.update(outcome="poison", poison=rec)
                return EXIT_POISON  # close() below commits nothing (auto commit off)
            c.commit(message=m, asynchronous=False)
            out["records"].append(rec)
        return EXIT_TIMEOUT
    finally:
        c.close()


def _kp_consume(a, out):
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata
    c = KafkaConsumer(bootstrap_servers=a.bootstrap, group_id=a.group,
                      auto_offset_reset="earliest", enable_auto_commit=False, check_crcs=True,
                      fetch_max_wait_ms=200, api_version_auto_timeout_ms=10000)
    try:
        deadline = time.monotonic() + a.timeout
        parts = None
        while not parts or len(parts) < a.partitions:  # metadata may lag a new topic
            assert time.monotonic() < deadline, f"partitions of the topic: {parts}"
            parts = c.partitions_for_topic(a.topic)
            if not parts or len(parts) < a.partitions:
                c._client.cluster.request_update()
                c._client.poll(timeout_ms=100)
        tps = {TopicPartition(a.topic, p) for p in parts}
        end = c.end_offsets(list(tps))
        out["end"] = {tp.partition: end[tp] for tp in tps}  # for messages
        if a.assign:  # from the group's committed offsets, no group membership
            c.assign(sorted(tps))
        else:
            c.subscribe([a.topic])
        while time.monotonic() < deadline:
            for tp, msgs in c.poll(timeout_ms=200).items():
                for m in msgs:
                    rec = {"partition": m.partition, "offset": m.offset,
                           "value": m.value.decode()}
                    if rec["value"] == a.poison:
                        out.update(outcome="poison", poison=rec)
                        return EXIT_POISON
                    c.commit({tp: OffsetAndMetadata(m.offset + 1, None)})
                    out["records"].append(rec)
            if c.assignment() >= tps and all(c.position(tp) >= end[tp] for tp in tps):
                out.update(outcome="done")
                return EXIT_DONE
        return EXIT_TIMEOUT
    finally:
        c.close(autocommit=False)  # leaves the group, commits nothing


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["poison-consume"])
    ap.add_argument("--client", choices=["ck", "kp"], required=True)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--poison", default=POISON)
    ap.add_argument("--timeout", type=float, default=40.0)
    ap.add_argument("--assign", action="store_true")
    ap.add_argument("--partitions", type=int, default=1,
                    help="the topic's partition count: waited for in the metadata")
    a = ap.parse_args(argv)
    out = {"records": [], "outcome": "timeout", "poison": None, "error": None}
    try:
        code = (_ck_consume if a.client == "ck" else _kp_consume)(a, out)
    except Exception as e:  # noqa: BLE001 - reported, the test judges
        out.update(outcome="error", error={"type": type(e).__name__, "message": str(e)})
        code = EXIT_ERROR
    if code == EXIT_TIMEOUT:
        out["outcome"] = "timeout"
    print(json.dumps(out), flush=True)
    os._exit(code)  # no interpreter teardown: the "crash" is an exit with 3


if __name__ == "__main__":
    main(sys.argv[1:])
