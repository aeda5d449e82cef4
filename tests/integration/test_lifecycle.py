"""Process lifecycle: SIGTERM drain, --check, --version."""

import os
import re
import subprocess
import threading

from confluent_kafka import Producer

from conftest import EOSPROXY_BIN, ROOT
from helpers import kcat_consume, unique, wait_until


def test_sigterm_mid_stream_exits_zero_and_acked_records_are_kept(mock, proxy, needs_proxy):
    topic = mock.topic(unique("life"), 3)
    acked, failed = [], []
    stop = threading.Event()

    def on_delivery(err, msg):
        (failed if err else acked).append(msg.value())

    p = Producer({"bootstrap.servers": proxy.bootstrap, "acks": "all", "linger.ms": 2,
                  "message.timeout.ms": 15000, "reconnect.backoff.max.ms": 1000})

    def pump():
        i = 0
        while not stop.is_set():
            try:
                p.produce(topic, key=f"k{i % 5}".encode(), value=f"life-{i}".encode(),
                          on_delivery=on_delivery)
                i += 1
            except BufferError:
                pass
            p.poll(0.001)

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    try:
        wait_until(lambda: len(acked) >= 2000, timeout=60, what="2000 acknowledged records")
        code = proxy.stop()
        assert code == 0, f"exit {code}:\n{proxy.log[-3000:]}"
    finally:
        stop.set()
        t.join(30)
        p.purge()
        p.flush(0)

    # Every record eosproxy acknowledged before it went away is in the topic.
    stored = {v for _, _, _, v in kcat_consume(mock.bootstrap, topic)}
    missing = [v for v in acked if v.decode() not in stored]
    assert not missing, f"{len(missing)} acknowledged records are missing, e.g. {missing[:5]}"


def write(path, text):
    path.write_text(text)
    return str(path)


GOOD = """service: check
listen:
  host: 127.0.0.1
  port: 39092
  broker_port_base: 39100
upstream:
  bootstrap: "127.0.0.1:9"
admin:
  listen: "127.0.0.1:39099"
topics:
  - match: "orders.*"
    delivery: idempotent
  - match: "*"
    delivery: at-least-once
"""


def check(path):
    return subprocess.run([EOSPROXY_BIN, "--check", "-c", path], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "ASAN_OPTIONS": "detect_leaks=1"})


def test_check_accepts_a_good_config(tmp_path):
    p = check(write(tmp_path / "good.yaml", GOOD))
    assert p.returncode == 0, p.stderr
    assert "AddressSanitizer" not in p.stderr + p.stdout


def test_check_accepts_shipped_configs():
    for name in ("demo.yaml", "example.yaml"):
        path = os.path.join(ROOT, "conf", name)
        if os.path.exists(path):
            p = check(path)
            assert p.returncode == 0, f"{name}: {p.stderr}"


def test_check_rejects_bad_configs_with_file_and_line(tmp_path):
    cases = {
        # (file text, line of the error)
        "port.yaml": (GOOD.replace("port: 39092", "port: 99999"), 4),
        "unknown.yaml": (GOOD.replace("  broker_port_base: 39100",
                                      "  broker_port_base: 39100\n  no_such_key: 1"), 6),
        "delivery.yaml": (GOOD.replace("delivery: idempotent", "delivery: exactly-twice"), 12),
    }
    for name, (text, line) in cases.items():
        path = write(tmp_path / name, text)
        p = check(path)
        assert p.returncode != 0, f"{name} was accepted"
        assert f"{name}:{line}" in p.stderr, f"{name}: expected {name}:{line} in stderr: {p.stderr!r}"
        assert "AddressSanitizer" not in p.stderr
    p = check(str(tmp_path / "does-not-exist.yaml"))
    assert p.returncode != 0
    assert "does-not-exist.yaml" in p.stderr


def test_version():
    p = subprocess.run([EOSPROXY_BIN, "--version"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0
    out = p.stdout + p.stderr
    assert re.search(r"\d+\.\d+\.\d+", out), out
    with open(os.path.join(ROOT, "VERSION")) as f:
        assert f.read().strip() in out
