"""Transactional delivery on the mock: the quick runs and the faults only
the mock can inject (errors pushed onto the coordinator's and the
partitions' requests). The mock writes no transaction markers and does not
filter aborted records, so what read_committed consumers see is checked
against real Kafka (test_real_txn.py); here the clients' view is."""

import pytest

from helpers import kcat_consume, unique
from test_faults import Recorder, producer

RULES = [{"match": "txn.*", "delivery": "transactional"}]
FIND_COORDINATOR, ADD_PARTITIONS, END_TXN = 10, 24, 26
PRODUCE = 0
NOT_COORDINATOR, CONCURRENT_TRANSACTIONS, NOT_ENOUGH_REPLICAS = 16, 51, 19


def send(bootstrap, topic, values, partitions, **conf):
    rec = Recorder()
    p = producer(bootstrap, **{"enable.idempotence": False, **conf})
    for i, v in enumerate(values):
        p.produce(topic, value=v.encode(), partition=i % partitions, on_delivery=rec)
    assert p.flush(120) == 0, "every delivery report came"
    return rec


def test_plain_producer_through_transactions(mock, proxy_factory):
    proxy = proxy_factory(topics=RULES)
    topic = mock.topic(unique("txn.mock"), 3)
    values = [f"t-{i}" for i in range(300)]
    rec = send(proxy.bootstrap, topic, values, 3)
    assert not rec.failed and len(rec.ok) == 300
    stored = [v for _, _, _, v in kcat_consume(mock.bootstrap, topic)]
    assert sorted(stored) == sorted(values)
    m = proxy.metrics()
    assert m.get_value("eosproxy_txn_committed_total") >= 1
    assert m.get_value("eosproxy_txn_batches_total") >= 3
    assert m.get_value("eosproxy_txn_commit_duration_seconds_count") >= 1


@pytest.mark.parametrize("api,code", [(ADD_PARTITIONS, CONCURRENT_TRANSACTIONS),
                                      (END_TXN, NOT_COORDINATOR),
                                      (FIND_COORDINATOR, 15)])
def test_coordinator_errors_are_retried(mock, proxy_factory, api, code):
    """Retriable coordinator answers are ridden out: the clients see only
    success, and nothing is written twice."""
    proxy = proxy_factory(topics=RULES)
    topic = mock.topic(unique("txn.coord"), 2)
    mock.cmd(f"err {api} 3 {code}")
    values = [f"c-{i}" for i in range(100)]
    rec = send(proxy.bootstrap, topic, values, 2)
    assert not rec.failed and len(rec.ok) == 100
    stored = [v for _, _, _, v in kcat_consume(mock.bootstrap, topic)]
    assert sorted(stored) == sorted(values)
    m = proxy.metrics()
    assert m.get_value("eosproxy_txn_aborted_total") == 0
    if api == END_TXN:
        assert m.get_value("eosproxy_txn_coordinator_lookups_total") >= 1


def test_refused_batch_fails_the_transaction_and_the_client_retries(mock, proxy_factory):
    """A partition refuses eosproxy's batch: the transaction is given up,
    the clients get a retriable error, retry, and are then told success."""
    proxy = proxy_factory(topics=RULES)
    topic = mock.topic(unique("txn.refused"), 2)
    send(proxy.bootstrap, topic, ["warm-up"], 1)  # coordinator and producer id are ready
    mock.cmd(f"err {PRODUCE} 1 {NOT_ENOUGH_REPLICAS}")
    values = [f"r-{i}" for i in range(50)]
    rec = send(proxy.bootstrap, topic, values, 2, **{"retry.backoff.ms": 100})
    assert not rec.failed and len(rec.ok) == 50, "the retries were told success"
    m = proxy.metrics()
    assert m.get_value("eosproxy_txn_aborted_total") >= 1
    assert m.get_value("eosproxy_producer_id_renewals_total") >= 1, "the epoch was bumped"
    assert proxy.alive()
