"""Dead-letter routing on the consumer path (issue 11), on librdkafka's mock
cluster: fast, for CI. A consumer that crashes on one poison record is
restarted in a loop (dlq_support.crash_loop); through eosproxy, after
max_deliveries deliveries of the record at the same position without a
commit past it, the record is in the DLQ topic with Spring Kafka's DLT
headers, and the consumer has every other record once and in order.

The clients are librdkafka (confluent-kafka) and kafka-python, each a real
process that exits on the poison record. They assign themselves the
partitions (the group's committed offsets, commits in the group) rather
than subscribe: the mock's group join costs 3 to 9 s per restart. The
subscribing versions run on real Kafka (test_real_dlq.py). The DLQ is read
straight from the mock with confluent-kafka (headers decoded as Spring
does, dlq_support.decode_dlt) and with kcat. DLQ writes are failed with
the mock's pushed Produce errors: the record stays in the stream until a
write succeeds.

Real Kafka 4.4, the Java client and Spring's own decoding of the headers:
test_real_dlq.py.
"""

import pytest

from dlq_support import (DLQ_FAILURES, DLQ_HIST, DLQ_RECORDS, DLQ_SKIPPED, DLT_FQCN, DLT_TOPIC,
                         LoopResult, check_dlq_copy, check_moved_past, check_stuck, crash_loop,
                         decode_dlt, dlq_rule, expected_by_partition, poison_of, produce,
                         read_topic_ck, run_python_consumer, stream)
from helpers import kcat, unique
from redis_server import redis_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.mock_only(
    "the fast CI version; the same loops on real Kafka 4.4, with the Java client and Spring's "
    "decoding, are test_real_dlq.py (fault injection here: the mock's pushed Produce errors)")

MAXD = 3
BOUND = MAXD + 5  # runs of the crash loop before the test gives up
PRODUCE = 0
MESSAGE_TOO_LARGE = 10  # permanent for librdkafka: one failed write per pushed error


def start_proxy(proxy_factory, redis, topic, dedup=False, dlq_topic=None):
    return proxy_factory(topics=[dlq_rule(topic, dlq_topic, MAXD, dedup)],
                         **{"redis.url": redis.url})


def loop(client, bootstrap, topic, group, bound=BOUND, partitions=1):
    return LoopResult(crash_loop(
        lambda i: run_python_consumer(client, bootstrap, topic, group, timeout=30, assign=True,
                                      partitions=partitions),
        bound))


def with_dlt(dlq):
    """read_topic_ck records with their DLT headers decoded (for messages)."""
    return [{**r, "dlt": decode_dlt(r["headers"])[0]} for r in dlq]


def check_metrics(proxy, topic, failures=0):
    m = proxy.metrics()
    assert m.get_value(DLQ_RECORDS, topic=topic, reason="redelivered") == 1
    assert m.get_value(DLQ_SKIPPED) >= 1
    if failures == 0:
        assert m.get_value(DLQ_FAILURES) == 0
    else:
        assert m.get_value(DLQ_FAILURES) >= failures
    # The poison's deliveries 2..max_deliveries at least were counted as redeliveries.
    assert m.get_value(DLQ_HIST + "_count") >= MAXD - 1
    assert m.get_value(DLQ_HIST + "_bucket", le="+Inf") == m.get_value(DLQ_HIST + "_count")


@pytest.mark.parametrize("dedup", [False, True], ids=["by-position", "by-event-id"])
@pytest.mark.parametrize("client", ["ck", "kp"])
def test_crash_loop_moves_the_poison_record_to_the_dlq(mock, proxy_factory, redis_server, client,
                                                       dedup):
    """librdkafka and kafka-python crash-looping on one poison record among
    20: the record goes to <topic>.DLT after max_deliveries, with its key,
    value, headers and timestamp and Spring's DLT headers; the consumer
    gets every other record once, in order. With a dedup section the record
    is known by its eventId, without one by its position."""
    topic = mock.topic(unique("dlq"), 1)
    records = produce(mock.bootstrap, topic, stream(1, 20))
    proxy = start_proxy(proxy_factory, redis_server, topic, dedup=dedup)
    group = unique("g")
    res = loop(client, proxy.bootstrap, topic, group)
    dlq = read_topic_ck(mock.bootstrap, f"{topic}.DLT")
    check_moved_past(res, records, MAXD, with_dlt(dlq), proxy)
    assert len(dlq) == 1, f"one copy in the DLQ, found {dlq}"
    check_dlq_copy(dlq[0], poison_of(records), topic, MAXD, group)
    check_metrics(proxy, topic)


def test_three_partitions_and_kcat_reads_the_dlq(mock, proxy_factory, redis_server):
    """Three partitions, the poison in the middle one: the other partitions
    are consumed as usual, the poison one moves past it. kcat (another
    librdkafka reader) sees the DLT headers too."""
    topic = mock.topic(unique("dlq3"), 3)
    records = produce(mock.bootstrap, topic, stream(3, 7, poison_partition=1, poison_index=3))
    dlq_topic = unique("dead-letters")
    proxy = start_proxy(proxy_factory, redis_server, topic, dlq_topic=dlq_topic)
    group = unique("g")
    res = loop("ck", proxy.bootstrap, topic, group, partitions=3)
    dlq = read_topic_ck(mock.bootstrap, dlq_topic)
    check_moved_past(res, records, MAXD, with_dlt(dlq), proxy)
    assert len(dlq) == 1, dlq
    check_dlq_copy(dlq[0], poison_of(records), topic, MAXD, group)
    check_metrics(proxy, topic)
    out = kcat("-C", "-b", mock.bootstrap, "-t", dlq_topic, "-o", "beginning", "-e", "-q",
               "-f", "%k|%s|%h\\n").stdout
    [line] = out.splitlines()
    key, value, headers = line.split("|", 2)
    assert (key, value) == ("key-1-3", "POISON")
    assert f"{DLT_TOPIC}={topic}" in headers and f"{DLT_FQCN}=eosproxy.DeadLetter" in headers


def test_without_eosproxy_the_loop_stays_stuck(mock):
    """The control: the same loop straight against the mock never gets past
    the poison record within the bound."""
    topic = mock.topic(unique("dlq-direct"), 1)
    records = produce(mock.bootstrap, topic, stream(1, 20))
    res = loop("ck", mock.bootstrap, topic, unique("g"))
    check_stuck(res, records, BOUND)


@pytest.mark.parametrize("dedup", [False, True], ids=["by-position", "by-event-id"])
def test_failed_dlq_writes_keep_the_record_in_the_stream(mock, proxy_factory, redis_server,
                                                         dedup):
    """The first DLQ writes fail (errors pushed on the mock's Produce, which
    only eosproxy's DLQ writer sends here): the poison record keeps being
    delivered, the failures are counted and nothing reaches the DLQ; once
    the writes go through, it moves to the DLQ and the consumer past it."""
    fails = 2
    topic = mock.topic(unique("dlq-fail"), 1)
    records = produce(mock.bootstrap, topic, stream(1, 20))
    proxy = start_proxy(proxy_factory, redis_server, topic, dedup=dedup)
    group = unique("g")
    mock.cmd(f"err {PRODUCE} {fails} {MESSAGE_TOO_LARGE}")
    res = loop("ck", proxy.bootstrap, topic, group, bound=BOUND + fails)
    assert res.done, f"never moved past the poison record: {res.outcomes}\n{proxy.log[-3000:]}"
    assert res.poison_runs >= MAXD + 1, \
        f"the record was not delivered again after a failed DLQ write: {res.outcomes}"
    check_moved_past_after_failures(res, records)
    dlq = read_topic_ck(mock.bootstrap, f"{topic}.DLT")
    assert len(dlq) == 1, f"one copy in the DLQ (failed writes wrote nothing): {dlq}"
    check_dlq_copy(dlq[0], poison_of(records), topic, MAXD, group, exact=False)
    check_metrics(proxy, topic, failures=1)


def check_moved_past_after_failures(res, records):
    """check_moved_past without the exact crash count (failed writes add
    deliveries)."""
    assert "POISON" not in [v for _, _, v in res.processed]
    assert res.by_partition() == expected_by_partition(records)
