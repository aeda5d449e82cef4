"""An unchanged consume-process-produce application on librdkafka
(confluent-kafka), for test_real_bind.py: the same loop as
tests/java/Harness.java's process-loop, with the same arguments, progress
lines and JSON line, run as its own process so that a test can SIGKILL it.

  /usr/bin/python3 bind_loop.py --bootstrap B --in T --out O --group G
      [--max-records N] [--commit-delay-ms MS] [--idle-ms MS]
      [--max-poll-records N] [--auto-commit true|false] [--instance-id ID]
      [--session-timeout-ms MS] [--timeout-ms MS] [--prop key=value ...]

A plain Consumer in group G (subscribe to T, auto.offset.reset earliest,
the default read_uncommitted, enable.auto.commit false) and a plain
Producer (enable.idempotence false, acks all, no transactional.id). Each
consume() of at most --max-poll-records (default 20) records: for each
input record P/OFF (key K) one record to O, partition P % partitions(O),
key K, value "P/OFF"; flush(); sleep --commit-delay-ms; commit(asynchronous
=False). A failed commit is printed and the loop goes on. With
--auto-commit true: enable.auto.offset.store false, the offsets of a batch
are stored after its output was flushed, and librdkafka's auto-commit
(auto.commit.interval.ms 200) commits them.

Progress lines on stdout, each flushed at once:
  start | assigned P,P.. | revoked P,.. | lost P,..
  polled N | sent N | flushed N TOTAL | committed N TOTAL
  commit-failed NAME MESSAGE | end OUTCOME
then one JSON line: {"outcome": done|max|idle|timeout|error, "processed",
"committed", "commit_failures", "error"}. Exit 0, or 5 on a client error
(a failed delivery)."""

import argparse
import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


def progress(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def plist(parts):
    return ",".join(str(tp.partition) for tp in parts) or "-"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--in", dest="inp", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--max-records", type=int, default=0)
    ap.add_argument("--commit-delay-ms", type=int, default=0)
    ap.add_argument("--idle-ms", type=int, default=60000)
    ap.add_argument("--max-poll-records", type=int, default=20)
    ap.add_argument("--auto-commit", default="false", choices=("true", "false"))
    ap.add_argument("--instance-id", default="")
    ap.add_argument("--session-timeout-ms", type=int, default=6000)
    ap.add_argument("--timeout-ms", type=int, default=300000)
    ap.add_argument("--prop", action="append", default=[])
    a = ap.parse_args()
    auto = a.auto_commit == "true"
    extra = dict(kv.split("=", 1) for kv in a.prop)

    cconf = {"bootstrap.servers": a.bootstrap, "group.id": a.group,
             "client.id": "eosproxy-it-ck-loop", "auto.offset.reset": "earliest",
             "enable.auto.commit": auto, "session.timeout.ms": a.session_timeout_ms,
             "heartbeat.interval.ms": 1000}
    if auto:
        cconf.update({"enable.auto.offset.store": False, "auto.commit.interval.ms": 200})
    if a.instance_id:
        cconf["group.instance.id"] = a.instance_id
    cconf.update(extra)
    pconf = {"bootstrap.servers": a.bootstrap, "client.id": "eosproxy-it-ck-loop",
             "enable.idempotence": False, "acks": "all", "linger.ms": 5}

    counts = {"processed": 0, "committed": 0, "commit_failures": 0}
    out = {"outcome": "error", **counts, "error": None}
    deadline = time.monotonic() + a.timeout_ms / 1000
    c = Consumer(cconf)
    p = Producer(pconf)
    try:
        out_parts = len(p.list_topics(a.out, timeout=30).topics[a.out].partitions)
        md = c.list_topics(a.inp, timeout=30)
        tps = [TopicPartition(a.inp, n) for n in sorted(md.topics[a.inp].partitions)]
        end = {tp.partition: c.get_watermark_offsets(tp, timeout=30)[1] for tp in tps}
        c.subscribe([a.inp],
                    on_assign=lambda _c, parts: progress(f"assigned {plist(parts)}"),
                    on_revoke=lambda _c, parts: progress(f"revoked {plist(parts)}"),
                    on_lost=lambda _c, parts: progress(f"lost {plist(parts)}"))
        progress("start")
        last_record = time.monotonic()
        last_check = 0.0
        while True:
            if time.monotonic() > deadline:
                out["outcome"] = "timeout"
                break
            msgs = [m for m in c.consume(a.max_poll_records, 0.2) if not m.error()]
            if not msgs:
                now = time.monotonic()
                if now - last_record > a.idle_ms / 1000:
                    out["outcome"] = "idle"
                    break
                if now - last_check >= 0.5:
                    last_check = now
                    committed = c.committed(tps, timeout=30)
                    if all(max(tp.offset, 0) >= end[tp.partition] for tp in committed):
                        out["outcome"] = "done"
                        break
                continue
            last_record = time.monotonic()
            progress(f"polled {len(msgs)}")
            errors = []

            def on_delivery(err, _msg):
                if err is not None:
                    errors.append(str(err))

            for m in msgs:
                p.produce(a.out, f"{m.partition()}/{m.offset()}".encode(), key=m.key(),
                          partition=m.partition() % out_parts, on_delivery=on_delivery)
            progress(f"sent {len(msgs)}")
            left = p.flush(120)
            if left or errors:
                raise RuntimeError(f"delivery failed: {left} not delivered, errors {errors[:3]}")
            counts["processed"] += len(msgs)
            progress(f"flushed {len(msgs)} {counts['processed']}")
            if a.commit_delay_ms:
                time.sleep(a.commit_delay_ms / 1000)
            if auto:
                top = {}
                for m in msgs:
                    top[m.partition()] = max(top.get(m.partition(), -1), m.offset())
                try:
                    c.store_offsets(offsets=[TopicPartition(a.inp, part, off + 1)
                                             for part, off in top.items()])
                except KafkaException as e:  # partitions revoked meanwhile
                    progress(f"store-failed {e.args[0].name()} {e.args[0].str()}")
            else:
                try:
                    res = c.commit(asynchronous=False)
                    bad = [tp for tp in (res or []) if tp.error]
                    if bad:
                        raise KafkaException(bad[0].error)
                    counts["committed"] += len(msgs)
                    progress(f"committed {len(msgs)} {counts['committed']}")
                except KafkaException as e:
                    counts["commit_failures"] += 1
                    err = e.args[0]
                    progress(f"commit-failed {err.name()} {err.str()}")
            done = counts["processed"] if auto else counts["committed"]
            if a.max_records and done >= a.max_records:
                out["outcome"] = "max"
                break
    except Exception as e:  # noqa: BLE001 - reported as the outcome
        out["outcome"] = "error"
        out["error"] = {"type": type(e).__name__, "message": str(e)}
    finally:
        progress(f"end {out['outcome']}")
        out.update(counts)
        try:
            c.close()
        except Exception:  # noqa: BLE001
            pass
    print(json.dumps(out), flush=True)
    return 5 if out["outcome"] == "error" else 0


if __name__ == "__main__":
    sys.exit(main())
