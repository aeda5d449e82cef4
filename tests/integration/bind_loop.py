"""bind_loop.py - an unchanged consume-transform-produce application on
librdkafka (confluent-kafka), run as its own process so that a test can
kill it with SIGKILL (test_real_bind.py).

    bind_loop.py BOOTSTRAP IN OUT GROUP [COMMIT_DELAY_MS] [IDLE_MS]

A consumer of GROUP (subscribe, auto-commit off) and a plain producer
(idempotence off, acks=all, no transactional id). For each batch it
consumes: every record is written to OUT (key: its topic/partition/offset,
value "out:" + its value), the producer is flushed, the line "flushed N" is
printed (N records so far), COMMIT_DELAY_MS are slept (the window where a
crash duplicates the output), the offsets are committed synchronously and
the line "committed N" is printed. It exits 0 once it has had partitions
and saw no record for IDLE_MS (default 4000)."""

import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer


def main():
    bootstrap, tin, tout, group = sys.argv[1:5]
    delay = int(sys.argv[5]) / 1000 if len(sys.argv) > 5 else 0.0
    idle = int(sys.argv[6]) / 1000 if len(sys.argv) > 6 else 4.0
    assigned = []
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
                  "log_level": 3})
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": False, "acks": "all",
                  "linger.ms": 5, "log_level": 3})
    c.subscribe([tin], on_assign=lambda cons, parts: assigned.append(len(parts)))
    n, last = 0, None
    while True:
        msgs = [m for m in c.consume(25, 0.2) if m.error() is None]
        now = time.monotonic()
        if not msgs:
            if assigned and last is None:
                last = now
            if last is not None and now - last >= idle:
                break
            continue
        last = now
        for m in msgs:
            p.produce(tout, key=f"{m.topic()}/{m.partition()}/{m.offset()}",
                      value=b"out:" + m.value())
        if p.flush(60) != 0:
            sys.exit("output not acknowledged within 60 s")
        n += len(msgs)
        print(f"flushed {n}", flush=True)
        if delay:
            time.sleep(delay)
        try:
            c.commit(asynchronous=False)
        except KafkaException as e:
            # Refused (the group rebalanced, or eosproxy aborted the output):
            # the records come again, as for any consumer.
            print(f"commit failed {e.args[0].code()}", flush=True)
            continue
        print(f"committed {n}", flush=True)
    c.close()


if __name__ == "__main__":
    main()
