"""`eosproxy dlq list|show|replay` (proxy/dlqtool/) against the real Kafka 4
broker. Dead-letter records are written straight to the DLQ topics with
confluent_kafka, carrying Spring Kafka's kafka_dlt-* headers as the
dead-letter engine writes them, and the tool runs as its own process with
a config naming the broker.

What is checked: list counts and picks the config's DLQ topics; show
decodes every header; replay writes each record once to its original
topic and partition with the eosproxy-replayed-from header; a replay killed
with SIGKILL in the middle of a transaction, or stopped by --max-records,
and run again leaves every record exactly once for read_committed readers;
--dry-run writes nothing; bad input exits 2 with a clear message."""

import os
import select
import signal
import struct
import subprocess
import time

import pytest
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import EOSPROXY_BIN, SANITIZER_MARKS
from helpers import unique

pytestmark = pytest.mark.real_kafka

NOW = int(time.time() * 1000)
REPLAYED = "eosproxy-replayed-from"


def dlt_headers(topic, partition, offset, i, group=b"billing", extra=()):
    return [("kafka_dlt-original-topic", topic.encode()),
            ("kafka_dlt-original-partition", struct.pack(">i", partition)),
            ("kafka_dlt-original-offset", struct.pack(">q", offset)),
            ("kafka_dlt-original-timestamp", struct.pack(">q", NOW - 60000 + i)),
            ("kafka_dlt-original-timestamp-type", b"CreateTime"),
            ("kafka_dlt-original-consumer-group", group),
            ("kafka_dlt-exception-fqcn", b"eosproxy.DeadLetter"),
            ("kafka_dlt-exception-message", f"reason {i}".encode()),
            ("eventId", f"e-{i}".encode()), *extra]


def write_dlq(kafka, dlq, source, n, dlq_partitions=3, src_partitions=2):
    """n dead letters of source in dlq: record i in DLQ partition i % 3
    (dead-lettered at NOW - 1000 + i, so later ones are newer), from source
    partition i % 2, offset 1000 + i, key k-i, value v-i."""
    p = Producer({"bootstrap.servers": kafka.bootstrap, "linger.ms": 20})
    for i in range(n):
        p.produce(dlq, key=f"k-{i}".encode(), value=f"v-{i}".encode(),
                  partition=i % dlq_partitions, timestamp=NOW - 1000 + i,
                  headers=dlt_headers(source, i % src_partitions, 1000 + i, i))
        if i % 1000 == 999:
            p.poll(0)
    assert p.flush(60) == 0


def read_all(kafka, topic, isolation="read_committed"):
    """[(partition, key, value, timestamp, headers)] of every record in topic."""
    c = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": unique("dlqt-read"),
                  "enable.auto.commit": False, "isolation.level": isolation,
                  "enable.partition.eof": True})
    try:
        parts = list(c.list_topics(topic, timeout=30).topics[topic].partitions)
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        out, eof, deadline = [], set(), time.monotonic() + 60
        while len(eof) < len(parts) and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    eof.add(m.partition())
                continue
            out.append((m.partition(), m.key(), m.value(), m.timestamp()[1], m.headers() or []))
        assert len(eof) == len(parts), f"did not reach the end of {topic}"
        return out
    finally:
        c.close()


class Tool:
    """Runs `eosproxy dlq ...` with a config naming the broker."""

    def __init__(self, kafka, tmp_path, rules, upstream=None):
        cfg = {"upstream": upstream or {"bootstrap": kafka.bootstrap},
               "redis": {"url": "redis://127.0.0.1:1/0"}, "topics": rules}
        self.config = tmp_path / f"{unique('dlqtool')}.yaml"
        self.config.write_text(yaml.safe_dump(cfg, sort_keys=False))

    def args(self, *args):
        return [EOSPROXY_BIN, "dlq", args[0], "-c", str(self.config), *args[1:]]

    def run(self, *args, timeout=180):
        p = subprocess.run(self.args(*args), capture_output=True, text=True, timeout=timeout)
        no_sanitizer(p.stderr)
        return p


def no_sanitizer(text):
    for mark in SANITIZER_MARKS:
        assert mark not in text, f"sanitizer report:\n{text[-6000:]}"


def rules(prefix, explicit_dlq=None):
    out = [{"match": f"{prefix}*", "delivery": "at-least-once", "dlq": {"max_deliveries": 3}}]
    if explicit_dlq:
        out.insert(0, {"match": f"pay-{prefix}", "delivery": "at-least-once",
                       "dlq": {"topic": explicit_dlq}})
    return out


def topics(kafka, prefix, src_partitions=2):
    source = kafka.create_topic(f"{prefix}-orders", src_partitions)
    dlq = kafka.create_topic(f"{source}.DLT", 3)
    return source, dlq


def test_list_counts_and_the_config_dlq_topics(kafka, tmp_path):
    prefix = unique("dlqt")
    source, dlq = topics(kafka, prefix)
    explicit = kafka.create_topic(f"{prefix}-dead-payments", 1)
    stranger = kafka.create_topic(f"other-{prefix}.DLT", 1)  # no rule matches "other-*"
    write_dlq(kafka, dlq, source, 10)
    write_dlq(kafka, explicit, f"pay-{prefix}", 4, dlq_partitions=1)
    write_dlq(kafka, stranger, "other", 2, dlq_partitions=1)
    tool = Tool(kafka, tmp_path, rules(prefix, explicit_dlq=explicit))

    p = tool.run("list")
    assert p.returncode == 0, p.stderr
    assert f"{dlq}: 3 partitions, 10 records, 0 replayed" in p.stdout
    assert f"{explicit}: 1 partition, 4 records" in p.stdout
    assert stranger not in p.stdout
    assert p.stdout.index(explicit) < p.stdout.index(dlq), "sorted by name"
    # The newest 5 (default) of the DLQ: reasons 5..9, original topic/partition/offset.
    block = p.stdout.split(f"{dlq}:")[1]
    for i in range(5, 10):
        assert f"{source}/{i % 2}/{1000 + i}" in block and f"reason {i}" in block
    assert "reason 4" not in block.split(explicit)[0]

    p = tool.run("list", dlq, "--newest", "2")
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("reason ") == 2 and "reason 9" in p.stdout
    p = tool.run("list", stranger)  # a TOPIC is listed whether the config names it or not
    assert p.returncode == 0 and f"{stranger}: 1 partition, 2 records" in p.stdout


def test_show_decodes_every_header(kafka, tmp_path):
    prefix = unique("dlqt")
    source, dlq = topics(kafka, prefix)
    big = bytes(range(256)) * 20  # 5120 bytes, binary
    p = Producer({"bootstrap.servers": kafka.bootstrap})
    p.produce(dlq, key=b"order-42", value=b'{"id": 42}', partition=1,
              headers=dlt_headers(source, 1, 4242, 7, extra=[("blob", b"\x00\x01\xff")]))
    p.produce(dlq, key=None, value=big, partition=1, headers=dlt_headers(source, 0, 5, 8))
    assert p.flush(30) == 0
    tool = Tool(kafka, tmp_path, rules(prefix))

    out = tool.run("show", dlq, "0", "--partition", "1")
    assert out.returncode == 0, out.stderr
    s = out.stdout
    assert f"topic:      {dlq}" in s and "partition:  1" in s and "offset:     0" in s
    assert "key:        8 bytes, text\norder-42\n" in s
    assert 'value:      10 bytes, text\n{"id": 42}\n' in s
    assert "headers:    10" in s
    ts = NOW - 60000 + 7
    for line in (f'kafka_dlt-original-topic = "{source}"',
                 "kafka_dlt-original-partition = 1 (int32)",
                 "kafka_dlt-original-offset = 4242 (int64)",
                 f"kafka_dlt-original-timestamp = {ts} (",
                 'kafka_dlt-original-timestamp-type = "CreateTime"',
                 'kafka_dlt-original-consumer-group = "billing"',
                 'kafka_dlt-exception-fqcn = "eosproxy.DeadLetter"',
                 'kafka_dlt-exception-message = "reason 7"',
                 'eventId = "e-7"',
                 "blob = 00 01 ff (3 bytes, hex)"):
        assert line in s, f"{line!r} not in:\n{s}"
    dead = s.split("dead letter:")[1]
    for field in (f"original topic:      {source}", "original partition:  1",
                  "original offset:     4242", f"original timestamp:  {ts} (",
                  "CreateTime)", "consumer group:      billing", "reason:              reason 7"):
        assert field in dead, f"{field!r} not in:\n{dead}"

    out = tool.run("show", dlq, "1", "--partition", "1")
    assert out.returncode == 0, out.stderr
    assert "key:        (null)" in out.stdout
    assert "5120 bytes, binary (hex), first 4096 shown (--full shows all)" in out.stdout
    assert "  00000ff0  " in out.stdout and "  00001000  " not in out.stdout
    full = tool.run("show", dlq, "1", "--partition", "1", "--full")
    assert "  000013f0  " in full.stdout and "first 4096" not in full.stdout

    bad = tool.run("show", dlq, "2", "--partition", "1")
    assert bad.returncode == 2 and "offset 2 is not in" in bad.stderr and "0..1" in bad.stderr
    bad = tool.run("show", dlq, "0", "--partition", "3")
    assert bad.returncode == 2 and "there is no partition 3" in bad.stderr


def check_replayed_once(kafka, source, dlq, n):
    """Every DLQ record i exactly once in source (read_committed), in its
    original partition, with its key, value, original timestamp, its own
    headers and the replay header, without the kafka_dlt-* headers."""
    got = read_all(kafka, source)
    keys = [k for _, k, _, _, _ in got]
    assert len(got) == n, f"{len(got)} records in {source}, want {n}"
    assert sorted(keys) == sorted(f"k-{i}".encode() for i in range(n)), "each record once"
    for part, key, value, ts, headers in got:
        i = int(key.decode()[2:])
        assert value == f"v-{i}".encode()
        assert part == i % 2
        assert ts == NOW - 60000 + i
        names = [h for h, _ in headers]
        assert not [h for h in names if h.startswith("kafka_dlt-")], names
        assert dict(headers)["eventId"] == f"e-{i}".encode()
        assert [v for h, v in headers if h == REPLAYED] == [f"{dlq}/{i % 3}/{i // 3}".encode()]


def test_replay_writes_each_record_once_and_dry_run_writes_nothing(kafka, tmp_path):
    prefix = unique("dlqt")
    source, dlq = topics(kafka, prefix)
    write_dlq(kafka, dlq, source, 60)
    tool = Tool(kafka, tmp_path, rules(prefix))
    metrics = tmp_path / "dlq.prom"

    dry = tool.run("replay", dlq, "--dry-run", "--metrics-file", str(metrics))
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("would write ") == 60
    assert f"would write {dlq}/1/0 -> {source} [1] timestamp {NOW - 60000 + 1}" in dry.stdout
    assert "dry run, would replay 60 records" in dry.stdout
    assert kafka.record_count(source) == 0, "--dry-run wrote nothing"
    assert not metrics.exists(), "--dry-run writes no metrics"

    p = tool.run("replay", dlq, "--commit-every", "7", "--metrics-file", str(metrics))
    assert p.returncode == 0, p.stderr
    assert f"{dlq}: replayed 60 records" in p.stdout and "0 already replayed" in p.stdout
    assert "progress 0:20 1:20 2:20" in p.stdout
    assert f"replayed 60/60 (60 committed)" in p.stderr, "the progress line"
    check_replayed_once(kafka, source, dlq, 60)
    assert f'eosproxy_dlq_replayed_total{{topic="{dlq}"}} 60\n' in metrics.read_text()
    assert "# TYPE eosproxy_dlq_replayed_total counter" in metrics.read_text()

    again = tool.run("replay", dlq, "--metrics-file", str(metrics))
    assert again.returncode == 0, again.stderr
    assert "replayed 0 records" in again.stdout and "60 already replayed" in again.stdout
    check_replayed_once(kafka, source, dlq, 60)
    assert f'eosproxy_dlq_replayed_total{{topic="{dlq}"}} 60\n' in metrics.read_text()
    listed = tool.run("list", dlq, "--newest", "0")
    assert "60 records, 60 replayed" in listed.stdout

    # --from below the progress replays nothing without --again ...
    p = tool.run("replay", dlq, "--partition", "0", "--from", "3", "--to", "4")
    assert "replayed 0 records" in p.stdout and "2 already replayed" in p.stdout
    # ... and with it, once more; the progress is given back when the range completes.
    p = tool.run("replay", dlq, "--partition", "0", "--from", "3", "--to", "4", "--again",
                 "--metrics-file", str(metrics))
    assert p.returncode == 0, p.stderr
    assert "replayed 2 records" in p.stdout and "progress 0:20" in p.stdout
    assert f'eosproxy_dlq_replayed_total{{topic="{dlq}"}} 62\n' in metrics.read_text()
    keys = sorted(k for _, k, _, _, _ in read_all(kafka, source))
    assert len(keys) == 62 and keys.count(b"k-9") == 2 and keys.count(b"k-12") == 2
    assert "replayed 0 records" in tool.run("replay", dlq).stdout


def test_replay_stopped_by_max_records_resumes_exactly_once(kafka, tmp_path):
    prefix = unique("dlqt")
    source, dlq = topics(kafka, prefix)
    write_dlq(kafka, dlq, source, 100)
    tool = Tool(kafka, tmp_path, rules(prefix))
    for done in (30, 60, 90):
        p = tool.run("replay", dlq, "--max-records", "30", "--commit-every", "7")
        assert p.returncode == 0, p.stderr
        assert "replayed 30 records" in p.stdout and "stopped at --max-records 30" in p.stdout
        assert f"{done - 30} already replayed" in p.stdout
        assert len(read_all(kafka, source)) == done
    p = tool.run("replay", dlq, "--max-records", "30")
    assert "replayed 10 records" in p.stdout and "stopped" not in p.stdout
    check_replayed_once(kafka, source, dlq, 100)


def test_replay_killed_mid_transaction_and_rerun_exactly_once(kafka, tmp_path):
    """SIGKILL while a transaction holds records already in the original
    topic's log: the rerun aborts it, resumes at the committed progress,
    and read_committed readers see every record once."""
    prefix = unique("dlqt")
    source, dlq = topics(kafka, prefix)
    n = 3000
    write_dlq(kafka, dlq, source, n)
    tool = Tool(kafka, tmp_path, rules(prefix))
    # 400 records/s, a transaction per 1000: killed at >= 1100, the second
    # transaction is open with 100..500 records written and not committed.
    proc = subprocess.Popen(tool.args("replay", dlq, "--rate", "400", "--commit-every", "1000"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen, deadline, stderr = 0, time.monotonic() + 60, ""
    try:
        while seen < 1100 and time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([proc.stderr], [], [], 1.0)
            if not ready:
                continue
            line = proc.stderr.readline()
            stderr += line
            if " replayed " in line and "/" in line:
                seen = int(line.split(" replayed ")[1].split("/")[0])
        assert seen >= 1100, f"no progress to 1100 records in 60 s:\n{stderr}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, "it was still running when killed"
    committed = len(read_all(kafka, source))
    uncommitted = len(read_all(kafka, source, "read_uncommitted"))
    assert committed == 1000, f"the first transaction only: {committed}"
    assert uncommitted > committed, "the kill left records of an open transaction in the log"

    p = tool.run("replay", dlq)
    assert p.returncode == 0, p.stderr
    assert f"replayed {n - 1000} records" in p.stdout and "1000 already replayed" in p.stdout
    check_replayed_once(kafka, source, dlq, n)
    assert len(read_all(kafka, source, "read_uncommitted")) > n, "the aborted copies stay in the log"


def test_replay_of_records_without_an_original_topic_or_to_a_missing_topic(kafka, tmp_path):
    prefix = unique("dlqt")
    source, dlq = topics(kafka, prefix)
    p = Producer({"bootstrap.servers": kafka.bootstrap})
    p.produce(dlq, key=b"k-0", value=b"v-0", partition=0, headers=dlt_headers(source, 0, 1, 0))
    p.produce(dlq, key=b"lost", value=b"?", partition=0, headers=[("eventId", b"x")])
    p.produce(dlq, key=b"k-1", value=b"v-1", partition=0, headers=dlt_headers(source, 1, 2, 1))
    assert p.flush(30) == 0
    tool = Tool(kafka, tmp_path, rules(prefix))
    r = tool.run("replay", dlq)
    assert r.returncode == 1, "a record was left behind"
    assert f"{dlq}/0/1 has no kafka_dlt-original-topic header; left in place" in r.stderr
    assert "replayed 2 records" in r.stdout and "1 without kafka_dlt-original-topic" in r.stdout
    assert sorted(k for _, k, _, _, _ in read_all(kafka, source)) == [b"k-0", b"k-1"]

    # A record whose original topic is gone stops the replay; what came
    # before it is committed, and a rerun stops at the same record.
    gone = unique("dlqt-gone")
    dlq2 = kafka.create_topic(f"{prefix}-x.DLT", 1)
    p.produce(dlq2, key=b"good", value=b"g", partition=0, headers=dlt_headers(source, 0, 3, 2))
    assert p.flush(30) == 0
    write_dlq(kafka, dlq2, gone, 3, dlq_partitions=1)
    for _ in range(2):
        r = tool.run("replay", dlq2)
        assert r.returncode == 1
        assert f"original topic {gone} of {dlq2}/0/1 does not exist" in r.stderr
        assert "progress 0:1" in r.stdout
    assert sorted(k for _, k, _, _, _ in read_all(kafka, source)) == [b"good", b"k-0", b"k-1"]


def test_bad_input_exits_2_with_a_message(kafka, tmp_path):
    prefix = unique("dlqt")
    tool = Tool(kafka, tmp_path, rules(prefix))

    def run(*args):
        p = subprocess.run([EOSPROXY_BIN, "dlq", *args], capture_output=True, text=True,
                           timeout=120)
        no_sanitizer(p.stderr)
        return p

    cfg = str(tool.config)
    cases = [
        (("frobnicate",), "unknown subcommand 'frobnicate'"),
        ((), "usage: eosproxy dlq list"),
        (("list",), "-c FILE is required"),
        (("show", "-c", cfg, "t"), "wrong number of arguments"),
        (("show", "-c", cfg, "t", "x"), "OFFSET must be a number"),
        (("replay", "-c", cfg), "wrong number of arguments"),
        (("replay", "-c", cfg, "t", "--bogus"), "unknown option --bogus"),
        (("replay", "-c", cfg, "t", "--from"), "missing value for --from"),
        (("replay", "-c", cfg, "t", "--rate", "0"), "--rate takes a number"),
        (("replay", "-c", cfg, "t", "--from", "5", "--to", "4"), "--from 5 is after --to 4"),
        (("list", "-c", str(tmp_path / "nope.yaml")), "nope.yaml"),
        (("list", "-c", cfg, f"{prefix}-missing.DLT"), f"topic {prefix}-missing.DLT not found"),
        (("show", "-c", cfg, f"{prefix}-missing.DLT", "0"), "not found in the cluster"),
        (("replay", "-c", cfg, f"{prefix}-missing.DLT"), "not found in the cluster"),
    ]
    for args, want in cases:
        p = run(*args)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert want in p.stderr, (args, p.stderr)
    # Looking a topic up does not create it.
    from confluent_kafka.admin import AdminClient
    md = AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=30)
    assert f"{prefix}-missing.DLT" not in md.topics

    mock_cfg = tmp_path / "mock.yaml"
    mock_cfg.write_text(yaml.safe_dump({"upstream": {"mock_brokers": 3}}))
    p = run("list", "-c", str(mock_cfg))
    assert p.returncode == 2 and "need a real cluster" in p.stderr

    for sub in ("list", "show", "replay"):
        p = run(sub, "--help")
        assert p.returncode == 0 and f"usage: eosproxy dlq {sub}" in p.stdout
        assert "examples:" in p.stdout and "exit:" in p.stdout
    p = run("--help")
    assert p.returncode == 0 and "eosproxy dlq replay" in p.stdout
    main = subprocess.run([EOSPROXY_BIN, "--help"], capture_output=True, text=True, timeout=30)
    assert "eosproxy dlq" in main.stdout
