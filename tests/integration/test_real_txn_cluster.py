"""Transactional delivery when the transaction coordinator dies: a real
3-broker cluster (replication factor 3, the transaction log too), a plain
producer streaming into a `transactional` topic through eosproxy, and the
broker that coordinates eosproxy's transactional id killed (kill -9) and
restarted mid-stream. Every acknowledged record is committed; what was
under way is aborted and retried by the client.

Kafka-only: needs a coordinator that moves, which the mock cannot show."""

import re

import pytest

from helpers import unique, wait_until
from kafka_real import ProxyFactory
from test_real_cluster import Writer, kafka3  # noqa: F401 (kafka3: a fixture, started per module)
from test_real_txn import RULES, read_all

pytestmark = [pytest.mark.real_kafka, pytest.mark.real_kafka_cluster]

PARTS = 3


def coordinator(proxy):
    found = re.findall(r"transaction coordinator is broker (\d+)", proxy.log)
    return int(found[-1]) if found else None


def test_coordinator_killed_and_restarted_mid_stream(kafka3, tmp_path):
    factory = ProxyFactory(kafka3, tmp_path)
    try:
        proxy = factory(topics=RULES, **{"upstream.reconnect_backoff_max": "1s",
                                         "transactions.id": unique("coord-kill")})
        topic = kafka3.create_topic(unique("txn.coord"), PARTS)
        w = Writer(proxy.bootstrap, topic, PARTS, "tc",
                   **{"enable.idempotence": False, "retries": 1000000})
        w.start()
        wait_until(lambda: w.count() >= 200, timeout=120, what="200 acknowledged")
        victim = coordinator(proxy)
        assert victim in (1, 2, 3), proxy.log[-2000:]
        kafka3.kill(victim)
        n = w.count()
        wait_until(lambda: w.count() >= n + 200, timeout=180,
                   what="200 more with the coordinator down")
        moved = coordinator(proxy)
        kafka3.restart(victim)
        n = w.count()
        wait_until(lambda: w.count() >= n + 200, timeout=180, what="200 more after the restart")
        w.stopping.set()
        w.join(200)
        assert w.exc is None, w.exc
        got = read_all(kafka3.bootstrap, topic, PARTS, "read_committed", timeout=10)
        missing = w.delivered - set(got)
        assert not missing, f"{len(missing)} acknowledged records are not committed"
        dups = len(got) - len(set(got))
        m = proxy.metrics()
        print(f"coordinator {victim} killed, then {moved}: {len(w.delivered)} acknowledged, "
              f"{dups} written twice, aborted {m.get_value('eosproxy_txn_aborted_total')}, "
              f"commit unknown {m.get_value('eosproxy_txn_commit_unknown_total')}")
        assert moved != victim, "eosproxy found the new coordinator"
        assert m.get_value("eosproxy_txn_coordinator_lookups_total") >= 1
        assert dups <= m.get_value("eosproxy_txn_commit_unknown_total") * 1000, \
            "records written twice only from a commit whose answer was lost"
    finally:
        failures = factory.close()
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)
