"""A current kafka-python (3.x, from PyPI) for test_real_kafka_python3.py;
it runs under the venv tests/kafka/fetch.sh makes, not under
/usr/bin/python3 (whose Debian kafka-python is 2.0.2).

    VENV/bin/python kp3_client.py BOOTSTRAP GROUP TOPIC [TOPIC ...]

For each topic: a plain producer (acks=all, idempotence off, gzip) sends 300
keyed records and waits for every acknowledgement; then a consumer in
GROUP (read_uncommitted, as kafka-python's default) reads the topic from the
start until 300 records arrived. Prints one JSON line:
{"version", "topics": {TOPIC: {"acked": [...], "consumed": [...]}}}.
"""

import json
import sys
import time

import kafka
from kafka import KafkaConsumer, KafkaProducer


def produce(bootstrap, topic, n):
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False,
                      compression_type="gzip", linger_ms=5, request_timeout_ms=30000,
                      max_block_ms=60000)
    try:
        futures = [(f"kp3-{i}", p.send(topic, key=f"k{i % 5}".encode(), value=f"kp3-{i}".encode()))
                   for i in range(n)]
        p.flush(60)
        return [v for v, f in futures if f.get(timeout=60) is not None]
    finally:
        p.close(10)


def consume(bootstrap, group, topic, n, timeout=60):
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      consumer_timeout_ms=1000)
    out, deadline = [], time.time() + timeout
    try:
        while len(out) < n and time.time() < deadline:
            for m in c:
                out.append(m.value.decode())
        return out
    finally:
        c.close()


def main(bootstrap, group, topics):
    res = {"version": kafka.__version__, "topics": {}}
    for t in topics:
        acked = produce(bootstrap, t, 300)
        res["topics"][t] = {"acked": acked, "consumed": consume(bootstrap, f"{group}-{t}", t, 300)}
    print(json.dumps(res))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
