"""Wire conformance of the idempotent upgrade, judged by an independent
decoder: tshark's Kafka dissector reads the eosproxy -> broker traffic
captured on loopback.

- every batch eosproxy writes for an upgraded topic carries eosproxy's
  producer id and epoch (from its log), never the client's -1;
- per partition, base sequences run from 0 without gaps (a retry repeats
  a sequence, it never skips or reuses one for other records);
- no frame is malformed;
- then kafka-python with check_crcs=True reads every record back directly
  from the mock, each exactly once: the rewritten CRC-32C is right.
And a client that is idempotent itself keeps its own producer id.
"""

import re
import shutil
import signal
import subprocess
import time

import pytest
from helpers import unique, wait_until
from test_idempotent import IDEMPOTENT, delay_produce, kp_producer, read_topic

TSHARK = shutil.which("tshark")


class Capture:
    """tshark writing the traffic to the mock's broker ports to a file."""

    def __init__(self, tmp_path, ports):
        if not TSHARK:
            pytest.skip("tshark is not installed")
        self.ports = ports
        self.path = tmp_path / "lanes.pcapng"
        self.err_path = tmp_path / "tshark.err"
        filt = " or ".join(f"tcp port {p}" for p in ports)
        self._err = open(self.err_path, "w")
        self.proc = subprocess.Popen([TSHARK, "-i", "lo", "-f", filt, "-w", str(self.path)],
                                     stdout=subprocess.DEVNULL, stderr=self._err)
        try:
            wait_until(lambda: self.proc.poll() is not None or "Capturing on" in self.err(),
                       timeout=20, what="tshark to start capturing")
        except AssertionError:
            self.stop()
            pytest.skip(f"tshark cannot capture here: {self.err()[-500:]}")
        if self.proc.poll() is not None:
            pytest.skip(f"tshark cannot capture here: {self.err()[-500:]}")
        # "Capturing on" is printed a moment before packets are really
        # taken; a stream whose start is missed cannot be cut into frames.
        time.sleep(1.5)

    def err(self):
        self._err.flush()
        return self.err_path.read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            time.sleep(1.0)  # let the last packets reach the capture
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._err.close()

    def _decode_args(self):
        args = []
        for p in self.ports:
            args += ["-d", f"tcp.port=={p},kafka"]
        return args

    def read(self, display_filter, fields):
        """Rows of fields (each a list of occurrences) of matching packets."""
        cmd = [TSHARK, "-r", str(self.path), *self._decode_args(), "-Y", display_filter,
               "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,", "-E", "separator=\t"]
        for f in fields:
            cmd += ["-e", f]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        rows = []
        for line in out.stdout.splitlines():
            cols = line.split("\t")
            rows.append([c.split(",") if c else [] for c in cols])
        return rows

    def count(self, display_filter):
        return len(self.read(display_filter, ["frame.number"]))


def produce_batches(rows):
    """(producer_id, epoch, partition, base_sequence, record_count) for every
    batch in Produce request rows of fields pid, epoch, seq, last_delta,
    partition (one topic per capture, one batch per partition)."""
    out = []
    for pids, epochs, seqs, deltas, parts in rows:
        assert len(pids) == len(epochs) == len(seqs) == len(deltas) == len(parts), \
            f"unaligned batch fields: {pids} {epochs} {seqs} {deltas} {parts}"
        for pid, ep, seq, d, part in zip(pids, epochs, seqs, deltas, parts):
            out.append((int(pid), int(ep), int(part), int(seq), int(d) + 1))
    return out


BATCH_FIELDS = ["kafka.producer_id", "kafka.producer_epoch", "kafka.batch_base_sequence",
                "kafka.batch_last_offset_delta", "kafka.partition_id"]


def eosproxy_producers(log):
    return {(int(a), int(b)) for a, b in
            re.findall(r"upgrade: producer id (\d+) epoch (\d+)", log)}


def test_upgraded_batches_on_the_wire(mock, proxy_factory, needs_proxy, tmp_path):
    proxy = proxy_factory(topics=IDEMPOTENT)
    parts = 3
    topic = mock.topic(unique("idem-wire"), parts)
    cap = Capture(tmp_path, mock.ports)
    values = {p: [f"wire-{p}-{i:03d}-" + "z" * (i % 37) for i in range(80)] for p in range(parts)}
    try:
        prod = kp_producer(proxy.bootstrap, linger_ms=10, batch_size=2048)
        try:
            prod.send(topic, value=b"warm", partition=0).get(30)
            # Some acknowledgements late: the client resends, eosproxy may
            # retry; neither may show on the wire as a new sequence.
            delay_produce(mock, 1, 2, 1500)
            futures = []
            for i in range(80):
                for p in range(parts):
                    futures.append(prod.send(topic, value=values[p][i].encode(), partition=p))
                if i % 20 == 19:
                    prod.flush(60)
            prod.flush(60)
            for f in futures:
                f.get(timeout=60)
        finally:
            prod.close(10)
    finally:
        cap.stop()

    producers = eosproxy_producers(proxy.log)
    assert producers, f"eosproxy logged no producer id:\n{proxy.log[-3000:]}"
    assert cap.count("_ws.malformed") == 0, "tshark found malformed frames"
    batches = produce_batches(cap.read("kafka.api_key == 0 && kafka.producer_id", BATCH_FIELDS))
    assert batches, f"no Produce batch decoded; tshark: {cap.err()[-500:]}"
    for pid, ep, part, seq, n in batches:
        assert (pid, ep) in producers, f"batch with producer {pid}/{ep}, not eosproxy's {producers}"
    # Sequences per (producer, epoch, partition): from 0, each batch starts
    # where the previous one ended; a resend repeats a batch exactly.
    seen = {}
    for pid, ep, part, seq, n in batches:
        runs = seen.setdefault((pid, ep, part), [])
        if runs and runs[-1] == (seq, n):
            continue  # a resend of the same batch
        expect = runs[-1][0] + runs[-1][1] if runs else 0
        assert seq == expect, f"partition {part}: base sequence {seq}, expected {expect}: {runs}"
        runs.append((seq, n))
    total = sum(n for runs in seen.values() for _, n in runs)
    want_total = 1 + sum(len(v) for v in values.values())
    assert total == want_total, f"{total} records in distinct batches, produced {want_total}"

    # The CRC-checking consumer, straight from the mock.
    values[0] = ["warm", *values[0]]
    got = read_topic(mock.bootstrap, topic, parts, expect=want_total)
    for p in range(parts):
        assert got[p] == values[p], f"partition {p} differs"


def test_idempotent_client_keeps_its_producer_id_on_the_wire(mock, proxy_factory, needs_proxy,
                                                             tmp_path):
    from confluent_kafka import Producer

    proxy = proxy_factory(topics=IDEMPOTENT)
    topic = mock.topic(unique("idem-own"), 2)
    cap = Capture(tmp_path, mock.ports)
    try:
        p = Producer({"bootstrap.servers": proxy.bootstrap, "enable.idempotence": True,
                      "linger.ms": 5})
        failures = []
        for i in range(30):
            p.produce(topic, f"own-{i}".encode(), partition=i % 2,
                      on_delivery=lambda err, msg: err and failures.append(str(err)))
            if i % 10 == 9:
                assert p.flush(60) == 0
        assert not failures, failures
    finally:
        cap.stop()
    assert cap.count("_ws.malformed") == 0
    batches = produce_batches(cap.read("kafka.api_key == 0 && kafka.producer_id", BATCH_FIELDS))
    assert batches
    pids = {b[0] for b in batches}
    assert -1 not in pids
    assert len(pids) == 1, f"one client, one producer id: {pids}"
    assert not (pids & {pid for pid, _ in eosproxy_producers(proxy.log)})
    got = read_topic(mock.bootstrap, topic, 2, expect=30)
    assert sorted(got[0] + got[1]) == sorted(f"own-{i}" for i in range(30))
