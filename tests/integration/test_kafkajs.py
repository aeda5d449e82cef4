"""kafkajs 2.2.4 (pure JavaScript) through eosproxy: plain producer and a
consumer group, on the mock and on the real Kafka broker (`cluster`).
kafkajs's idempotent/transactional producers need a real controller id,
which the mock does not report (TESTBED.md): they run on Kafka only, in
test_real_clients.py."""

import json
import os
import shutil
import subprocess

import pytest

from helpers import unique

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "node")


def run_node(script, *args, timeout=120):
    node = shutil.which("node") or shutil.which("nodejs")
    if not node:
        pytest.fail("node is not installed (make deps)")
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "kafkajs")):
        pytest.fail("kafkajs is not installed in tests/node (make deps)")
    p = subprocess.run([node, script, *args], cwd=NODE_DIR, capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, f"{script} exited {p.returncode}:\n{p.stderr[-4000:]}"
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_kafkajs_roundtrip(cluster, cproxy):
    topic = cluster.topic(unique("kjs"), 3)
    res = run_node("roundtrip.js", cproxy.bootstrap, topic, "300", unique("kjs-g"))
    produced, consumed = res["produced"], res["consumed"]
    assert len(produced) == 300
    assert sorted((m["key"], m["value"]) for m in consumed) == \
        sorted((m["key"], m["value"]) for m in produced)
    # Per partition: dense offsets, and records in the order they were sent.
    order = {m["value"]: i for i, m in enumerate(produced)}
    for part in {m["partition"] for m in consumed}:
        recs = sorted((int(m["offset"]), m["value"]) for m in consumed if m["partition"] == part)
        assert [o for o, _ in recs] == list(range(len(recs)))
        assert [order[v] for _, v in recs] == sorted(order[v] for _, v in recs)
