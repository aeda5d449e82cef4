"""The idempotent upgrade (`delivery: idempotent`) with real, non-idempotent
clients, under the faults that make at-least-once clients write duplicates.

The faults are the mock's own (delayed responses, errors pushed before the
append, transport cuts, leader moves): those tests run on the mock only
(marked mock_only). The mock does not drop duplicates of non-transactional
idempotent batches (see /work/shared/TESTBED.md), so "exactly once" there is
eosproxy's own doing: it answers a client's retry of a batch it already has
in flight or has written, and retries upstream failures itself with the same
sequence. The tests without faults run on the mock and on the real Kafka
broker (`cluster`), which checks eosproxy's producer id, epoch and sequences
itself; Kafka's own faults (a stalled broker, a killed one) are in
test_real_upgrade.py and test_real_cluster.py.

Every check reads the topic back DIRECTLY from the cluster (not through
eosproxy) with CRC checking on.
"""

import threading
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from helpers import unique, wait_until

IDEMPOTENT = [{"match": "idem-*", "delivery": "idempotent"}]


# ---------------------------------------------------------------- helpers

def read_topic(bootstrap, topic, partitions, expect=None, timeout=60):
    """Every record of topic, read straight from bootstrap with CRC checks:
    {partition: [value, ...]} in offset order. With expect, polls until at
    least that many records are there (then reads a little longer, so
    late duplicates show up too)."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                      enable_auto_commit=False, check_crcs=True, api_version=(2, 5, 0),
                      request_timeout_ms=30000)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        out = {p: [] for p in range(partitions)}
        deadline = time.monotonic() + timeout
        quiet_until = None
        while time.monotonic() < deadline:
            got = c.poll(timeout_ms=300)
            for tp, recs in got.items():
                out[tp.partition].extend(r.value.decode() for r in recs)
            n = sum(len(v) for v in out.values())
            ends = c.end_offsets(tps)
            at_end = all(c.position(tp) >= ends[tp] for tp in tps)
            if at_end and (expect is None or n >= expect):
                quiet_until = quiet_until or time.monotonic() + 1.0
                if time.monotonic() >= quiet_until:
                    break
            else:
                quiet_until = None
        return out
    finally:
        c.close()


def kp_producer(bootstrap, **extra):
    conf = dict(bootstrap_servers=bootstrap, acks=1, retries=5,
                max_in_flight_requests_per_connection=1, request_timeout_ms=1000,
                retry_backoff_ms=100, api_version=(2, 5, 0), max_block_ms=30000)
    conf.update(extra)
    return KafkaProducer(**conf)


def leader_of(prod, topic, partition):
    def lookup():
        prod._metadata.request_update()
        return prod._metadata.leader_for_partition(TopicPartition(topic, partition))
    wait_until(lambda: prod.partitions_for(topic) and lookup() not in (None, -1), timeout=30,
               what=f"leader of {topic}-{partition}")
    return lookup()


def send_each(prod, topic, values, partition=0, timeout=60):
    """One record per request, waiting for each (one in flight): the shape
    in which a delayed acknowledgement makes kafka-python resend."""
    errors = []
    for v in values:
        try:
            prod.send(topic, value=v.encode(), partition=partition).get(timeout=timeout)
        except Exception as e:  # noqa: BLE001 - recorded, asserted by the caller
            errors.append((v, repr(e)))
    return errors


def assert_exactly_once_in_order(got, want_by_partition):
    for p, want in want_by_partition.items():
        have = got.get(p, [])
        dups = len(have) - len(set(have))
        assert dups == 0, f"partition {p}: {dups} duplicates: {have}"
        assert have == want, f"partition {p}: {have} != {want}"


def delay_produce(mock, broker, count, rtt_ms):
    mock.cmd(f"rtt {broker} 0 {count} 0 {rtt_ms}")


def metric(proxy, name):
    return proxy.metrics().get_value(name)


# ---------------------------------------------------------------- the duplicate made real

@pytest.mark.mock_only("fault injection: the mock's delayed Produce responses (rtt); "
                       "on Kafka: test_real_upgrade's broker stall")
def test_delayed_acks_duplicate_direct_but_exactly_once_through_eosproxy(mock, proxy_factory,
                                                                          needs_proxy):
    values = [f"rec-{i:03d}" for i in range(30)]

    # 1. Direct to the mock: the fault writes duplicates (the test's premise).
    direct_topic = mock.topic(unique("idem-direct"), 1)
    prod = kp_producer(mock.bootstrap)
    try:
        prod.send(direct_topic, value=b"warm", partition=0).get(30)
        leader = leader_of(prod, direct_topic, 0)
        delay_produce(mock, leader, 4, 1600)
        send_each(prod, direct_topic, values)
    finally:
        prod.close(10)
    direct = read_topic(mock.bootstrap, direct_topic, 1, expect=len(values) + 1)[0]
    assert set(direct) == {"warm", *values}
    assert len(direct) > len(values) + 1, f"the fault wrote no duplicate directly: {direct}"

    # 2. The same through eosproxy with `delivery: idempotent`.
    proxy = proxy_factory(topics=IDEMPOTENT)
    topic = mock.topic(unique("idem-kp"), 1)
    prod = kp_producer(proxy.bootstrap)
    try:
        prod.send(topic, value=b"warm", partition=0).get(30)
        leader = leader_of(prod, topic, 0)
        delay_produce(mock, leader, 4, 1600)
        errors = send_each(prod, topic, values)
    finally:
        prod.close(10)
    assert not errors, errors
    got = read_topic(mock.bootstrap, topic, 1, expect=len(values) + 1)
    assert_exactly_once_in_order(got, {0: ["warm", *values]})
    m = proxy.metrics()
    assert m.get_value("eosproxy_upgraded_batches_total") >= len(values) + 1
    assert m.get_value("eosproxy_upgraded_records_total") >= len(values) + 1
    # The client did resend (its request timed out), and eosproxy absorbed it.
    assert m.get_value("eosproxy_client_retries_absorbed_total") >= 1


@pytest.mark.mock_only("fault injection: the mock's delayed Produce responses (rtt) "
                       "on every broker")
def test_linger_batches_across_partitions_exactly_once(mock, proxy_factory, needs_proxy):
    proxy = proxy_factory(topics=IDEMPOTENT)
    parts = 4
    topic = mock.topic(unique("idem-linger"), parts)
    values = {p: [f"p{p}-{i:03d}" for i in range(60)] for p in range(parts)}
    prod = kp_producer(proxy.bootstrap, linger_ms=30, batch_size=4096)
    try:
        prod.send(topic, value=b"warm", partition=0).get(30)
        # Delay the next Produce responses of every broker beyond the
        # client's request timeout.
        for b in range(1, mock.brokers + 1):
            delay_produce(mock, b, 3, 1600)
        futures = []
        for i in range(60):
            for p in range(parts):
                futures.append(prod.send(topic, value=values[p][i].encode(), partition=p))
            if i % 15 == 14:
                prod.flush(60)
        prod.flush(60)
        errors = []
        for f in futures:
            try:
                f.get(timeout=60)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
    finally:
        prod.close(10)
    assert not errors, errors
    values[0] = ["warm", *values[0]]
    got = read_topic(mock.bootstrap, topic, parts, expect=sum(len(v) for v in values.values()))
    for p in range(parts):
        have = got[p]
        assert len(have) == len(set(have)), f"partition {p} has duplicates"
        assert sorted(have) == sorted(values[p]), f"partition {p}: lost or foreign records"
        # With one request in flight the client keeps its order; so must we.
        assert have == values[p], f"partition {p} out of order"


@pytest.mark.mock_only("fault injection: the mock's delayed Produce responses (rtt) "
                       "on every broker")
def test_librdkafka_non_idempotent_exactly_once(mock, proxy_factory, needs_proxy):
    from confluent_kafka import Producer

    proxy = proxy_factory(topics=IDEMPOTENT)
    topic = mock.topic(unique("idem-rdk"), 2)
    conf = {"bootstrap.servers": proxy.bootstrap, "enable.idempotence": False, "acks": "1",
            "retries": 10, "request.timeout.ms": 1000, "message.timeout.ms": 60000,
            "max.in.flight.requests.per.connection": 1, "linger.ms": 5,
            "retry.backoff.ms": 100}
    p = Producer(conf)
    failures = []

    def on_delivery(err, msg):
        if err is not None:
            failures.append(str(err))

    p.produce(topic, b"warm", partition=0, on_delivery=on_delivery)
    assert p.flush(30) == 0
    for b in range(1, mock.brokers + 1):
        delay_produce(mock, b, 3, 1600)
    values = {q: [f"rdk-{q}-{i:03d}" for i in range(50)] for q in range(2)}
    for i in range(50):
        for q in range(2):
            p.produce(topic, values[q][i].encode(), partition=q, on_delivery=on_delivery)
        p.poll(0)
    assert p.flush(90) == 0
    assert not failures, failures
    values[0] = ["warm", *values[0]]
    got = read_topic(mock.bootstrap, topic, 2, expect=101)
    assert_exactly_once_in_order(got, values)


def test_identical_payloads_under_load_are_not_taken_for_retries(cluster, cluster_proxy_factory,
                                                                 needs_proxy):
    """Batches with equal content and timestamps (librdkafka's clock is coarse,
    and payloads repeat) are distinct writes: none may be answered from
    another batch's result. Counted by high watermarks, so the mock's
    retention does not matter; on Kafka, the broker checks eosproxy's
    sequences for all of them besides."""
    from confluent_kafka import Consumer, Producer, TopicPartition as CTP

    proxy = cluster_proxy_factory(topics=IDEMPOTENT)
    topic = cluster.topic(unique("idem-twins"), 3)
    n = 300000
    p = Producer({"bootstrap.servers": proxy.bootstrap, "enable.idempotence": False,
                  "acks": "all", "linger.ms": 5, "message.timeout.ms": 120000,
                  "queue.buffering.max.messages": 1000000})
    failures = []
    payload = b"x" * 1000
    for i in range(n):
        while True:
            try:
                p.produce(topic, payload, on_delivery=lambda err, msg: err and failures.append(err))
                break
            except BufferError:
                p.poll(0.05)
        if i % 10000 == 0:
            p.poll(0)
    assert p.flush(120) == 0
    assert not failures, failures[:3]
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": unique("wm")})
    try:
        total = sum(c.get_watermark_offsets(CTP(topic, q), timeout=10)[1] for q in range(3))
    finally:
        c.close()
    assert total == n, f"{n - total} records acknowledged but not written"


# ---------------------------------------------------------------- upstream faults

@pytest.mark.mock_only("fault injection: the mock's transport errors pushed on Produce "
                       "(err -195)")
def test_transport_cut_while_in_flight_nothing_lost_nothing_duplicated(mock, proxy_factory,
                                                                       needs_proxy):
    proxy = proxy_factory(topics=IDEMPOTENT)
    parts = 3
    topic = mock.topic(unique("idem-cut"), parts)
    prod = kp_producer(proxy.bootstrap, request_timeout_ms=30000, retries=10, linger_ms=5)
    values = {p: [f"cut-{p}-{i:03d}" for i in range(80)] for p in range(parts)}
    try:
        prod.send(topic, value=b"warm", partition=0).get(30)
        retries_before = metric(proxy, "eosproxy_upstream_retries_total")
        futures = []
        for i in range(80):
            if i in (10, 40):
                # The next Produce requests (any broker) drop the connection
                # instead of answering (RD_KAFKA_RESP_ERR__TRANSPORT).
                mock.cmd("err 0 3 -195")
            for p in range(parts):
                futures.append(prod.send(topic, value=values[p][i].encode(), partition=p))
            if i % 10 == 9:
                prod.flush(60)
        prod.flush(60)
        errors = []
        for f in futures:
            try:
                f.get(timeout=60)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
    finally:
        prod.close(10)
    assert not errors, errors
    values[0] = ["warm", *values[0]]
    got = read_topic(mock.bootstrap, topic, parts, expect=sum(len(v) for v in values.values()))
    assert_exactly_once_in_order(got, values)
    # The cuts hit eosproxy's lanes, and eosproxy resent itself.
    assert metric(proxy, "eosproxy_upstream_retries_total") > retries_before


@pytest.mark.mock_only("fault injection: the mock moves a partition's leader on command; "
                       "on Kafka: test_real_cluster's broker kill")
def test_leader_moved_mid_stream_nothing_lost_nothing_duplicated(mock, proxy_factory,
                                                                 needs_proxy):
    proxy = proxy_factory(topics=IDEMPOTENT)
    topic = mock.topic(unique("idem-move"), 1)
    prod = kp_producer(proxy.bootstrap, request_timeout_ms=30000, retries=20,
                       metadata_max_age_ms=1000)
    values = [f"move-{i:03d}" for i in range(120)]
    try:
        prod.send(topic, value=b"warm", partition=0).get(30)
        first = leader_of(prod, topic, 0)
        moved = []
        errors = []

        def mover():
            time.sleep(0.3)
            for target in [b for b in range(1, mock.brokers + 1) if b != first][:2]:
                mock.cmd(f"leader {topic} 0 {target}")
                moved.append(target)
                time.sleep(0.5)

        t = threading.Thread(target=mover)
        t.start()
        for v in values:
            try:
                prod.send(topic, value=v.encode(), partition=0).get(timeout=60)
            except Exception as e:  # noqa: BLE001
                errors.append((v, repr(e)))
            time.sleep(0.01)
        t.join(30)
    finally:
        prod.close(10)
    assert moved, "the leader was never moved"
    assert not errors, errors
    got = read_topic(mock.bootstrap, topic, 1, expect=len(values) + 1)
    assert_exactly_once_in_order(got, {0: ["warm", *values]})


# ---------------------------------------------------------------- pass-through

def test_idempotent_client_passes_through_untouched(cluster, cluster_proxy_factory,
                                                    needs_proxy):
    from confluent_kafka import Producer

    proxy = cluster_proxy_factory(topics=IDEMPOTENT)
    topic = cluster.topic(unique("idem-native"), 2)
    p = Producer({"bootstrap.servers": proxy.bootstrap, "enable.idempotence": True,
                  "linger.ms": 5})
    failures = []

    def on_delivery(err, msg):
        if err is not None:
            failures.append(str(err))

    values = [f"native-{i:03d}" for i in range(40)]
    for i, v in enumerate(values):
        p.produce(topic, v.encode(), partition=i % 2, on_delivery=on_delivery)
    assert p.flush(60) == 0
    assert not failures, failures
    got = read_topic(cluster.bootstrap, topic, 2, expect=len(values))
    assert_exactly_once_in_order(got, {0: values[0::2], 1: values[1::2]})
    # Nothing was upgraded: the client's own producer id went upstream (the
    # wire-level proof is in test_wire_tshark.py).
    assert metric(proxy, "eosproxy_upgraded_batches_total") == 0


def test_old_produce_version_refused_for_idempotent_topic(cluster, cluster_proxy_factory,
                                                          needs_proxy):
    """Produce v2 (message format 1) cannot be upgraded: the client gets
    UNSUPPORTED_FOR_MESSAGE_FORMAT (43), and nothing reaches the topic."""
    import struct
    import zlib

    from helpers import kstr, request, roundtrip

    proxy = cluster_proxy_factory(topics=IDEMPOTENT)
    topic = cluster.topic(unique("idem-v2"), 1)
    prod = kp_producer(proxy.bootstrap)
    try:
        leader = leader_of(prod, topic, 0)
    finally:
        prod.close(10)
    # A v1 message set (magic 1) holding one message.
    value = b"legacy"
    msg_body = struct.pack(">bbq", 1, 0, 0) + struct.pack(">i", -1) + struct.pack(">i", len(value)) + value
    msg = struct.pack(">I", zlib.crc32(msg_body) & 0xffffffff) + msg_body
    mset = struct.pack(">qi", 0, len(msg)) + msg
    body = (struct.pack(">hi", 1, 10000) + struct.pack(">i", 1) + kstr(topic) + struct.pack(">i", 1)
            + struct.pack(">i", 0) + struct.pack(">i", len(mset)) + mset)
    corr, resp = roundtrip(proxy.broker_addr(leader), request(0, 2, 5, body))
    assert corr == 5
    # ProduceResponse v2 body: [topic [partition error base_offset log_append_time]] throttle
    off = 4
    tlen = struct.unpack_from(">h", resp, off)[0]
    off += 2 + tlen + 4 + 4
    err = struct.unpack_from(">h", resp, off)[0]
    assert err == 43, f"ErrorCode {err}"
    assert read_topic(cluster.bootstrap, topic, 1, timeout=5)[0] == []


# ---------------------------------------------------------------- the error table

@pytest.mark.mock_only("fault injection: Produce errors pushed by the mock before the append")
@pytest.mark.parametrize("errors,renews", [
    ([59, 47, 45], True),   # UNKNOWN_PRODUCER_ID, INVALID_PRODUCER_EPOCH, OUT_OF_ORDER: safe reset
    ([19, 20, 7], False),   # NOT_ENOUGH_REPLICAS(_AFTER_APPEND), REQUEST_TIMED_OUT: retried upstream
    ([6, 3], False),        # NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION: leader looked up, same batch resent
])
def test_error_table_rows_lose_and_duplicate_nothing(mock, proxy_factory, needs_proxy, errors,
                                                     renews):
    proxy = proxy_factory(topics=IDEMPOTENT)
    topic = mock.topic(unique("idem-errs"), 2)
    prod = kp_producer(proxy.bootstrap, request_timeout_ms=30000, retries=20)
    values = {p: [f"e-{p}-{i:03d}" for i in range(40)] for p in range(2)}
    try:
        prod.send(topic, value=b"warm", partition=0).get(30)
        before = proxy.metrics()
        failed = []
        for i in range(40):
            if i in (5, 20):
                # The mock fails the next Produce requests before appending.
                for e in errors:
                    mock.cmd(f"err 0 1 {e}")
            for p in range(2):
                try:
                    prod.send(topic, value=values[p][i].encode(), partition=p).get(timeout=60)
                except Exception as e:  # noqa: BLE001
                    failed.append(repr(e))
    finally:
        prod.close(10)
    assert not failed, failed
    values[0] = ["warm", *values[0]]
    got = read_topic(mock.bootstrap, topic, 2, expect=81)
    assert_exactly_once_in_order(got, values)
    after = proxy.metrics()

    def grew(name):
        return after.get_value(name) > before.get_value(name)

    if renews:
        assert grew("eosproxy_producer_id_renewals_total")
        assert grew("eosproxy_sequence_resets_total")
    elif errors[0] == 19:
        assert grew("eosproxy_upstream_retries_total")
        assert not grew("eosproxy_producer_id_renewals_total")
    else:
        assert not grew("eosproxy_producer_id_renewals_total")
