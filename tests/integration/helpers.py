"""Shared helpers for eosproxy's integration tests: polling, kcat, raw Kafka
frames (hand-encoded, so the tests do not trust a client library to tell
what is on the wire)."""

import json
import random
import socket
import struct
import subprocess
import time
import uuid


def wait_until(cond, timeout=20.0, interval=0.1, what="condition"):
    """Polls cond() until it returns a truthy value; returns that value."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last_exc = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                         + (f" (last error: {last_exc!r})" if last_exc else ""))


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------- kcat

def kcat(*args, input=None, timeout=60, check=True):
    p = subprocess.run(["kcat", *args], input=input, capture_output=True, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"kcat {' '.join(args)} exited {p.returncode}:\n{p.stderr}")
    return p


def kcat_produce(bootstrap, topic, pairs, extra=()):
    """Produces (key, value) pairs, keyed, acks=all; fails if any is not delivered."""
    data = "".join(f"{k}\t{v}\n" for k, v in pairs)
    kcat("-P", "-b", bootstrap, "-t", topic, "-K", "\t", "-X", "acks=all",
         "-X", "message.timeout.ms=30000", *extra, input=data)


def kcat_consume(bootstrap, topic, extra=()):
    """Reads the whole topic: list of (partition, offset, key, value)."""
    p = kcat("-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q",
             "-f", "%p\t%o\t%k\t%s\n", *extra)
    out = []
    for line in p.stdout.splitlines():
        part, off, key, val = line.split("\t", 3)
        out.append((int(part), int(off), key, val))
    return out


def kcat_metadata(bootstrap, topic=None):
    args = ["-L", "-J", "-b", bootstrap]
    if topic:
        args += ["-t", topic]
    return json.loads(kcat(*args).stdout)


def kcat_roundtrip(bootstrap, topic, n=20):
    """Produces n keyed records and checks they all read back, in order per key."""
    pairs = [(f"k{i % 5}", f"rt-{i}") for i in range(n)]
    kcat_produce(bootstrap, topic, pairs)
    got = kcat_consume(bootstrap, topic)
    assert sorted(v for _, _, _, v in got) == sorted(v for _, v in pairs)
    for key in {k for k, _ in pairs}:
        want = [v for k, v in pairs if k == key]
        seen = [v for _, _, k, v in sorted(got, key=lambda r: (r[0], r[1])) if k == key]
        assert seen == want, f"key {key}: order {seen} != {want}"
    return got


# ---------------------------------------------------------------- raw Kafka frames

def kstr(s):
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def request(api_key, version, corr, body=b"", client_id="eosproxy-tests"):
    """A complete non-flexible request frame (size prefix, header v1, body)."""
    payload = struct.pack(">hhi", api_key, version, corr) + kstr(client_id) + body
    return struct.pack(">i", len(payload)) + payload


class Reader:
    def __init__(self, data):
        self.b = data
        self.i = 0

    def take(self, n):
        if self.i + n > len(self.b):
            raise ValueError("truncated response")
        v = self.b[self.i:self.i + n]
        self.i += n
        return v

    def i8(self):
        return struct.unpack(">b", self.take(1))[0]

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def string(self):
        n = self.i16()
        return None if n < 0 else self.take(n).decode()


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def roundtrip(addr, frame, timeout=15.0):
    """Sends one request frame, returns (correlation_id, response body)."""
    host, port = addr.split(",")[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(frame)
        size = struct.unpack(">i", recv_exact(s, 4))[0]
        data = recv_exact(s, size)
    return struct.unpack(">i", data[:4])[0], data[4:]


def metadata_request(version, topics=None, corr=1):
    """Metadata v0..v2; topics None = all topics (v1+), [] on v0 also = all."""
    if topics is None:
        body = struct.pack(">i", -1 if version >= 1 else 0)
    else:
        body = struct.pack(">i", len(topics)) + b"".join(kstr(t) for t in topics)
    return request(3, version, corr, body)


def parse_metadata(version, body):
    """Returns (brokers [(node, host, port)], controller_id, topics {name: [(part, leader)]})."""
    r = Reader(body)
    brokers = []
    for _ in range(r.i32()):
        node, host, port = r.i32(), r.string(), r.i32()
        if version >= 1:
            r.string()  # rack
        brokers.append((node, host, port))
    if version >= 2:
        r.string()  # cluster id
    controller = r.i32() if version >= 1 else None
    topics = {}
    for _ in range(r.i32()):
        r.i16()  # error
        name = r.string()
        if version >= 1:
            r.i8()  # is_internal
        parts = []
        for _ in range(r.i32()):
            r.i16()
            pid, leader = r.i32(), r.i32()
            r.take(4 * r.i32())  # replicas
            r.take(4 * r.i32())  # isr
            parts.append((pid, leader))
        topics[name] = parts
    return brokers, controller, topics


def find_coordinator_request(version, key, corr=1):
    body = kstr(key)
    if version >= 1:
        body += struct.pack(">b", 0)  # key type: group
    return request(10, version, corr, body)


def parse_find_coordinator(version, body):
    """Returns (error_code, node_id, host, port)."""
    r = Reader(body)
    if version >= 1:
        r.i32()  # throttle
    err = r.i16()
    if version >= 1:
        r.string()  # error message
    return err, r.i32(), r.string(), r.i32()


def api_versions_request(corr=1):
    return request(18, 0, corr)


def random_bytes(seed, n):
    return bytes(random.Random(seed).getrandbits(8) for _ in range(n))


def record_batch(values, key=None):
    """A v2 record batch (magic 2, no compression, no producer id)."""
    from kafka.record.default_records import DefaultRecordBatchBuilder
    b = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 24)
    ts = int(time.time() * 1000)
    for i, v in enumerate(values):
        b.append(i, ts, key, v, [])
    return bytes(b.build())


def produce_request(version, topic, partition, batch, acks=1, timeout_ms=30000, corr=1):
    """Produce v3..v7 for one partition."""
    body = kstr(None) + struct.pack(">hi", acks, timeout_ms)
    body += struct.pack(">i", 1) + kstr(topic)
    body += struct.pack(">i", 1) + struct.pack(">ii", partition, len(batch)) + batch
    return request(0, version, corr, body)


def parse_produce(version, body):
    """[(topic, partition, error_code, base_offset)] of a Produce v3..v7 response."""
    r = Reader(body)
    out = []
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            part, err = r.i32(), r.i16()
            base = struct.unpack(">q", r.take(8))[0]
            r.take(8)  # log append time
            if version >= 5:
                r.take(8)  # log start offset
            out.append((name, part, err, base))
    return out


def parse_api_versions(body):
    """{api_key: (min, max)} of an ApiVersions v0..v2 response (error checked)."""
    r = Reader(body)
    err = r.i16()
    assert err == 0, f"ApiVersions error {err}"
    out = {}
    for _ in range(r.i32()):
        k, lo, hi = r.i16(), r.i16(), r.i16()
        out[k] = (lo, hi)
    return out


class Conn:
    """One raw client connection: send frames, read whole responses."""

    def __init__(self, addr, timeout=20.0):
        host, port = addr.split(",")[0].rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.settimeout(timeout)

    def send(self, frame):
        self.sock.sendall(frame)

    def recv(self):
        """(correlation id, body) of the next response."""
        size = struct.unpack(">i", recv_exact(self.sock, 4))[0]
        data = recv_exact(self.sock, size)
        return struct.unpack(">i", data[:4])[0], data[4:]

    def closed_by_peer(self):
        """True once the peer closed (reads and drops anything before that)."""
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
