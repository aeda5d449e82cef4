"""Dead-letter routing on the consumer path (issue 11, items 2, 3 and 7)
with a real Kafka 4.4 broker: consumers that crash on a poison record are
restarted in a loop (dlq_support.crash_loop) through eosproxy, with the
Java client (tests/java/Harness.java poison-consume), librdkafka
(confluent-kafka) and kafka-python 2.0.2, each subscribed in a consumer
group, committing after each record and exiting with code 3 on the record
whose value is POISON.

After max_deliveries deliveries of that record at the same position
without a commit past it, eosproxy writes it to the DLQ topic and leaves
it out of the next Fetch: the consumer gets every other record once and
in order, and the DLQ record carries the original key, value, headers and
timestamp plus Spring Kafka's DLT headers, read back by the Java harness
(dlt-read) with Spring's KafkaHeaders constants and ByteBuffer decoding,
and compared byte for byte with what Spring's own DeadLetterRecordManager
makes of the original record. The same loop straight against Kafka never
gets past the record (the control). A DLQ topic that refuses the writes
(max.message.bytes below the record's size: MESSAGE_TOO_LARGE) keeps the
record in the stream, counted, until the topic is fixed.

Why not min.insync.replicas above the replica count for the refusal: on
this single-broker Kafka 4.4 a topic with min.insync.replicas=2 and one
replica still accepts acks=all writes (checked: the effective minimum is
capped at the replication factor), and the broker auto-creates topics, so
a missing DLQ topic does not fail either.

The mock versions (fast, for CI; pushed Produce errors): test_dlq.py.
"""

import pytest

from dlq_support import (DLQ_FAILURES, DLQ_HIST, DLQ_RECORDS, DLQ_SKIPPED, FQCN, LoopResult,
                         check_dlq_copy, check_dlt_fields, check_moved_past, check_stuck,
                         crash_loop, dlq_rule, expected_by_partition, poison_of, produce,
                         read_topic_ck, run_java_consumer, run_python_consumer, stream)
from helpers import unique
from kafka_real import run_java
from redis_server import redis_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.real_kafka

MAXD = 3
BOUND = MAXD + 5  # runs of the crash loop before a test gives up
DLT_HEADERS = ("kafka_dlt-original-topic", "kafka_dlt-original-partition",
               "kafka_dlt-original-offset", "kafka_dlt-original-timestamp",
               "kafka_dlt-original-timestamp-type")


def start_proxy(kproxy_factory, redis, topic, dedup=False, dlq_topic=None):
    return kproxy_factory(topics=[dlq_rule(topic, dlq_topic, MAXD, dedup)],
                          **{"redis.url": redis.url})


def one_run(kafka, client, bootstrap, topic, group, partitions):
    if client == "java":
        return lambda i: run_java_consumer(kafka, bootstrap, topic, group)
    return lambda i: run_python_consumer(client, bootstrap, topic, group, partitions=partitions)


def layout(partitions):
    """About 20 records; the poison one in the middle of a partition."""
    if partitions == 1:
        return stream(1, 20, poison_partition=0, poison_index=7)
    return stream(3, 7, poison_partition=1, poison_index=3)


def java_dlt_read(kafka, dlq_topic):
    res = run_java(kafka, "dlt-read", "--bootstrap", kafka.bootstrap, "--topic", dlq_topic,
                   "--reference-bootstrap", kafka.bootstrap)
    assert res["error"] is None, f"dlt-read failed: {res['error']}\n{res['stderr'][-3000:]}"
    return res["records"]


def check_java_view(rec, poison, topic, group, exact=True):
    """A DLQ record as Harness dlt-read decoded it: every DLT header value,
    the original key, value, headers and timestamp, and Spring's own
    encoding of the original-* headers (DeadLetterRecordManager) equal to
    eosproxy's byte for byte."""
    assert rec["key"] == poison["key"].decode() and rec["value"] == poison["value"], rec
    assert rec["timestamp"] == poison["timestamp"] and rec["timestamp_type"] == "CreateTime", rec
    own = [[k, v] for k, v in rec["headers"] if not k.startswith("kafka_dlt-")]
    assert own == [[k, v.hex()] for k, v in poison["headers"]], \
        f"original headers {poison['headers']}, DLQ has {own} (hex)"
    names = [k for k, _ in rec["headers"] if k.startswith("kafka_dlt-")]
    assert set(names) >= set(DLT_HEADERS) | {"kafka_dlt-exception-fqcn",
                                             "kafka_dlt-exception-message"}, names
    assert set(names) <= set(DLT_HEADERS) | {"kafka_dlt-exception-fqcn",
                                             "kafka_dlt-exception-message",
                                             "kafka_dlt-original-consumer-group"}, names
    check_dlt_fields(rec["dlt"], rec["dlt_errors"], poison, topic, MAXD, group, exact)
    assert rec["dlt"]["exception_fqcn"] == FQCN
    ref = rec["reference"]
    assert "error" not in ref, ref
    bad = {k: v for k, v in ref.items()
           if k in (*DLT_HEADERS, "key", "value", "timestamp", "headers") and v is not True}
    assert not bad, f"differs from Spring's DeadLetterRecordManager / the original: {ref}"


def check_metrics(proxy, topic, exact=True):
    m = proxy.metrics()
    assert m.get_value(DLQ_RECORDS, topic=topic, reason="redelivered") == 1
    assert m.get_value(DLQ_SKIPPED) >= 1
    if exact:
        assert m.get_value(DLQ_FAILURES) == 0
    assert m.get_value(DLQ_HIST + "_count") >= MAXD - 1
    return m


CASES = [("java", 1, False), ("java", 3, False), ("ck", 1, False), ("ck", 3, False),
         ("kp", 1, False), ("kp", 3, False), ("ck", 1, True), ("kp", 3, True)]


@pytest.mark.parametrize("client,partitions,dedup", CASES,
                         ids=[f"{c}-{p}p-{'event-id' if d else 'position'}" for c, p, d in CASES])
def test_crash_loop_moves_the_poison_record_to_the_dlq(kafka, kproxy_factory, redis_server,
                                                       client, partitions, dedup):
    """The consumer crash-loops on the poison record through eosproxy: it
    crashes max_deliveries times, then the record is in <topic>.DLT (as
    Harness dlt-read and Spring's DeadLetterRecordManager see it) and the
    consumer has every other record once, in order, and finishes."""
    topic = kafka.create_topic(unique(f"rdlq-{client}"), partitions)
    records = produce(kafka.bootstrap, topic, layout(partitions))
    proxy = start_proxy(kproxy_factory, redis_server, topic, dedup=dedup)
    group = unique("g")
    res = LoopResult(crash_loop(one_run(kafka, client, proxy.bootstrap, topic, group, partitions),
                                BOUND))
    dlq = java_dlt_read(kafka, f"{topic}.DLT")
    check_moved_past(res, records, MAXD, dlq, proxy)
    assert len(dlq) == 1, f"one record in the DLQ: {dlq}"
    check_java_view(dlq[0], poison_of(records), topic, group)
    check_metrics(proxy, topic)


@pytest.mark.parametrize("client", ["java", "ck", "kp"])
def test_without_eosproxy_the_loop_never_gets_past(kafka, client):
    """The control: the same loop, the same bound, straight to Kafka: every
    run crashes on the poison record and nothing after it is processed."""
    topic = kafka.create_topic(unique(f"rdlq-direct-{client}"), 1)
    records = produce(kafka.bootstrap, topic, layout(1))
    res = LoopResult(crash_loop(one_run(kafka, client, kafka.bootstrap, topic, unique("g"), 1),
                                BOUND))
    check_stuck(res, records, BOUND)


def set_max_message_bytes(kafka, topic, value):
    from confluent_kafka.admin import ConfigResource
    admin = kafka.admin()
    res = ConfigResource("topic", topic, set_config={"max.message.bytes": str(value)})
    admin.alter_configs([res])[res].result(30)


def test_refused_dlq_writes_keep_the_record_until_the_dlq_accepts(kafka, kproxy_factory,
                                                                 redis_server):
    """The DLQ topic refuses the writes (max.message.bytes 64: the broker
    answers MESSAGE_TOO_LARGE): the poison record keeps being delivered,
    the failures are counted, the DLQ stays empty. Once max.message.bytes
    is raised, the next delivery that would repeat it moves it to the DLQ
    and the consumer past it."""
    dlq_topic = kafka.create_topic(unique("rdlq-refusing"), 1,
                                   config={"max.message.bytes": "64"})
    topic = kafka.create_topic(unique("rdlq-out"), 1)
    records = produce(kafka.bootstrap, topic, layout(1))
    proxy = start_proxy(kproxy_factory, redis_server, topic, dlq_topic=dlq_topic)
    group = unique("g")
    run = one_run(kafka, "ck", proxy.bootstrap, topic, group, 1)

    runs = []
    for i in range(MAXD + 3):  # the max_deliveries crashes, then some with failed writes
        runs.append(run(i))
        assert runs[-1]["outcome"] == "poison", f"moved on while the DLQ refuses: {runs[-1]}"
        if i >= MAXD and proxy.metrics().get_value(DLQ_FAILURES) >= 2:
            break
    m = proxy.metrics()
    assert m.get_value(DLQ_FAILURES) >= 1, "no failed DLQ write counted"
    assert m.get_value(DLQ_RECORDS, topic=topic, reason="redelivered") == 0
    assert kafka.record_count(dlq_topic) == 0
    assert len(runs) >= MAXD + 1, "delivered again after a failed write"

    set_max_message_bytes(kafka, dlq_topic, 1048588)
    runs += crash_loop(run, BOUND)
    res = LoopResult(runs)
    assert res.done, f"never moved past the poison record once the DLQ accepts: {res.outcomes}"
    assert "POISON" not in [v for _, _, v in res.processed]
    assert res.by_partition() == expected_by_partition(records)
    dlq = read_topic_ck(kafka.bootstrap, dlq_topic)
    assert len(dlq) == 1, dlq
    check_dlq_copy(dlq[0], poison_of(records), topic, MAXD, group, exact=False)
    check_metrics(proxy, topic, exact=False)


def test_harness_reads_springs_own_dlt_records(kafka):
    """The reader checked against the writer it imitates: a record
    dead-lettered by Spring's DeadLetterPublishingRecoverer (Harness
    spring-dlt-publish) decodes in dlt-read to the original's topic,
    partition, offset, timestamp, type and group, and matches Spring's
    DeadLetterRecordManager byte for byte (Spring does not keep the
    original timestamp on the DLT record: that one is eosproxy's promise)."""
    topic = kafka.create_topic(unique("rdlq-spring"), 1)
    records = produce(kafka.bootstrap, topic, layout(1))
    poison = poison_of(records)
    dlt = f"{topic}.spring-DLT"
    kafka.create_topic(dlt, 1)
    res = run_java(kafka, "spring-dlt-publish", "--bootstrap", kafka.bootstrap, "--topic", topic,
                   "--partition", poison["partition"], "--offset", poison["offset"], "--dlt", dlt,
                   "--group", "spring-group", "--message", "boom")
    assert res["error"] is None, res
    [rec] = java_dlt_read(kafka, dlt)
    assert rec["dlt_errors"] == []
    d = rec["dlt"]
    assert {k: d.get(k) for k in ("topic", "partition", "offset", "timestamp", "timestamp_type",
                                  "consumer_group")} == \
        {"topic": topic, "partition": poison["partition"], "offset": poison["offset"],
         "timestamp": poison["timestamp"], "timestamp_type": "CreateTime",
         "consumer_group": "spring-group"}, d
    assert d["exception_message"].endswith("boom"), d
    ref = rec["reference"]
    assert all(ref[h] is True for h in DLT_HEADERS), ref
    assert ref["key"] is True and ref["value"] is True and ref["headers"] is True, ref
    # And the Python decoder (test_dlq.py's) reads Spring's encoding the same way.
    from dlq_support import decode_dlt
    [raw] = read_topic_ck(kafka.bootstrap, dlt)
    py, errors = decode_dlt(raw["headers"])
    assert errors == [] and {k: py[k] for k in ("topic", "partition", "offset", "timestamp")} == \
        {k: d[k] for k in ("topic", "partition", "offset", "timestamp")}
