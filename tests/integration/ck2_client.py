"""A current confluent-kafka (2.x, with its own librdkafka 2.x) for
test_real_clients.py; it runs under the venv tests/kafka/fetch.sh makes,
not under /usr/bin/python3 (whose Debian confluent-kafka is 1.7).

    VENV/bin/python ck2_client.py BOOTSTRAP TOPIC GROUP

An idempotent producer writes 200 records; a transactional producer
commits 30 and aborts 20; a read_committed consumer in GROUP reads the
topic until 230 records arrived (then 2 s more). Prints one JSON line:
{"version", "libversion", "produced", "committed", "aborted", "consumed"}.
"""

import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, libversion, version


def main(bootstrap, topic, group):
    v = version() if callable(version) else version
    out = {"version": v[0] if isinstance(v, tuple) else str(v), "libversion": libversion()[0],
           "produced": [],
           "committed": [], "aborted": [], "consumed": []}
    errors = []

    def on_delivery(err, msg):
        if err:
            errors.append(str(err))

    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for i in range(200):
        v = f"ck2-{i}"
        p.produce(topic, key=f"k{i % 7}".encode(), value=v.encode(), on_delivery=on_delivery)
        out["produced"].append(v)
        p.poll(0)
    if p.flush(60) or errors:
        raise RuntimeError(f"idempotent producer: {errors or 'not all delivered'}")

    t = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"ck2-{topic}",
                  "linger.ms": 5})
    t.init_transactions(60)
    for prefix, n, commit in (("ck2c", 30, True), ("ck2a", 20, False)):
        t.begin_transaction()
        vals = [f"{prefix}-{i}" for i in range(n)]
        for v in vals:
            t.produce(topic, value=v.encode(), on_delivery=on_delivery)
        t.flush(60)
        if commit:
            t.commit_transaction(60)
            out["committed"] += vals
        else:
            t.abort_transaction(60)
            out["aborted"] += vals
    if errors:
        raise RuntimeError(f"transactional producer: {errors}")

    want = len(out["produced"]) + len(out["committed"])
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "isolation.level": "read_committed", "session.timeout.ms": 10000})
    c.subscribe([topic])
    deadline = time.monotonic() + 90
    settle = None
    while time.monotonic() < deadline:
        m = c.poll(0.3)
        if m is not None:
            if m.error():
                raise KafkaException(m.error())
            out["consumed"].append(m.value().decode())
        if len(out["consumed"]) >= want:
            settle = settle or time.monotonic() + 2
            if time.monotonic() >= settle:
                break
    c.commit(asynchronous=False)
    c.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:4])
