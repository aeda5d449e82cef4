"""A current kafka-python (3.x, from PyPI, in the venv of
tests/kafka/fetch.sh) through eosproxy to a real Kafka 4 broker: a plain
producer and a consumer group on a pass-through, an idempotent and a
transactional topic. What it was told is written is in the topic once,
read back with a read_committed consumer straight from the broker.

Kafka-only: the PyPI venv comes with the real-Kafka test bed, and the
transactional route needs a real coordinator."""

import json
import os
import subprocess

import pytest

from helpers import unique
from kafka_real import ck2_python
from test_real_txn import read_all

pytestmark = pytest.mark.real_kafka

HERE = os.path.dirname(os.path.abspath(__file__))
RULES = [{"match": "kp3.idem.*", "delivery": "idempotent"},
         {"match": "kp3.txn.*", "delivery": "transactional"}]


def test_kafka_python3_plain_idempotent_and_transactional(kafka, kproxy_factory):
    py = ck2_python()
    venv = os.path.dirname(os.path.dirname(py))
    assert any(f.startswith(".kafka-python-3") for f in os.listdir(venv)), \
        "tests/kafka/fetch.sh did not install kafka-python 3.x (run it to see why)"
    proxy = kproxy_factory(topics=RULES)
    topics = [kafka.create_topic(unique(p), 3) for p in ("kp3.plain", "kp3.idem.t", "kp3.txn.t")]
    p = subprocess.run([py, os.path.join(HERE, "kp3_client.py"), proxy.bootstrap, unique("kp3-g"),
                        *topics], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-4000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["version"].startswith("3."), res["version"]
    want = sorted(f"kp3-{i}" for i in range(300))
    for t in topics:
        r = res["topics"][t]
        assert sorted(r["acked"]) == want, f"{t}: every record acknowledged"
        assert sorted(r["consumed"]) == want, f"{t}: the group read each record once"
        assert sorted(read_all(kafka.bootstrap, t, 3, "read_committed", timeout=5)) == want, \
            f"{t}: in the topic once"
    m = proxy.metrics()
    assert m.get_value("eosproxy_produce_requests_total", route="upgrade") > 0
    assert m.get_value("eosproxy_produce_requests_total", route="transaction") > 0
    assert m.get_value("eosproxy_txn_committed_total") >= 1
