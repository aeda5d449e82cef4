"""Hand-encoded flexible (KIP-482) Kafka requests and their responses, for
the real-broker protocol tests (test_real_protocol.py): ApiVersions v3,
Metadata v12, FindCoordinator v4, DescribeCluster v0/v1, Produce v9 and
Fetch v12. Written from Kafka's message specs, independent of eosproxy's
codec and of any client library."""

import struct
import uuid

from helpers import Conn

API_PRODUCE, API_FETCH, API_METADATA = 0, 1, 3
API_FIND_COORDINATOR, API_API_VERSIONS, API_DESCRIBE_CLUSTER = 10, 18, 60


# ---------------------------------------------------------------- writing

def uvarint(n):
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def cstr(s):
    """COMPACT_(NULLABLE_)STRING."""
    if s is None:
        return b"\x00"
    b = s.encode()
    return uvarint(len(b) + 1) + b


def cbytes(b):
    if b is None:
        return b"\x00"
    return uvarint(len(b) + 1) + b


def carray(items):
    """COMPACT_ARRAY of already encoded items (None: null)."""
    if items is None:
        return b"\x00"
    return uvarint(len(items) + 1) + b"".join(items)


TAGS = b"\x00"  # an empty TAGGED_FIELDS section


def flex_request(api_key, version, corr, body, client_id="eosproxy-it-flex"):
    """Request header v2 (client id is a plain nullable STRING, then tags)."""
    cid = client_id.encode()
    payload = struct.pack(">hhih", api_key, version, corr, len(cid)) + cid + TAGS + body
    return struct.pack(">i", len(payload)) + payload


# ---------------------------------------------------------------- reading

class Flex:
    def __init__(self, data):
        self.b = data
        self.i = 0

    def take(self, n):
        if self.i + n > len(self.b):
            raise ValueError(f"truncated at {self.i} (+{n}) of {len(self.b)}")
        v = self.b[self.i:self.i + n]
        self.i += n
        return v

    def _unpack(self, fmt, n):
        return struct.unpack(fmt, self.take(n))[0]

    def i8(self):
        return self._unpack(">b", 1)

    def i16(self):
        return self._unpack(">h", 2)

    def i32(self):
        return self._unpack(">i", 4)

    def i64(self):
        return self._unpack(">q", 8)

    def bool(self):
        return self.i8() != 0

    def uuid(self):
        return uuid.UUID(bytes=self.take(16))

    def uvarint(self):
        shift = value = 0
        while True:
            b = self.take(1)[0]
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
            if shift > 28:
                raise ValueError("varint too long")

    def cstr(self):
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1).decode()

    def cbytes(self):
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1)

    def carray(self, item):
        n = self.uvarint()
        return None if n == 0 else [item(self) for _ in range(n - 1)]

    def tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())

    def end(self):
        assert self.i == len(self.b), f"{len(self.b) - self.i} bytes left over"


def exchange(addr, frame, flexible_response_header=True, timeout=30.0):
    """Sends one request on a new connection; returns (corr, Flex of the
    body), with response header v1's tags already read."""
    with Conn(addr, timeout=timeout) as c:
        c.send(frame)
        corr, body = c.recv()
    r = Flex(body)
    if flexible_response_header:
        r.tags()
    return corr, r


# ---------------------------------------------------------------- APIs

def api_versions(addr, corr=1):
    """ApiVersions v3: {api_key: (min, max)}. Its response header is v0."""
    body = cstr("eosproxy-it") + cstr("1.0") + TAGS
    got, r = exchange(addr, flex_request(API_API_VERSIONS, 3, corr, body),
                      flexible_response_header=False)
    assert got == corr
    err = r.i16()
    assert err == 0, f"ApiVersions v3 error {err}"
    keys = r.carray(lambda x: (x.i16(), x.i16(), x.i16(), x.tags())[:3])
    r.i32()  # throttle
    r.tags()
    r.end()
    return {k: (lo, hi) for k, lo, hi in keys}


def metadata_v12(addr, topics=None, auto_create=False, corr=2, topic_ids=None):
    """{"brokers": [(id, host, port)], "cluster_id", "controller",
    "topics": {name: {"error", "id", "partitions": {index: leader}}}}.
    topic_ids: ask by topic id (null names) instead of by name."""
    items = None if topics is None else [
        b"\x00" * 16 + cstr(t) + TAGS for t in topics]
    if topic_ids is not None:
        items = [tid.bytes + cstr(None) + TAGS for tid in topic_ids]
    body = carray(items) + struct.pack(">bb", auto_create, 0) + TAGS
    got, r = exchange(addr, flex_request(API_METADATA, 12, corr, body))
    assert got == corr
    r.i32()  # throttle
    brokers = r.carray(lambda x: (x.i32(), x.cstr(), x.i32(), x.cstr(), x.tags())[:3])
    out = {"brokers": brokers, "cluster_id": r.cstr(), "controller": r.i32(), "topics": {}}

    def partition(x):
        err, index, leader = x.i16(), x.i32(), x.i32()
        x.i32()  # leader epoch
        for _ in range(3):  # replicas, isr, offline replicas
            x.carray(lambda y: y.i32())
        x.tags()
        return index, leader, err

    def topic(x):
        err, name, tid = x.i16(), x.cstr(), x.uuid()
        x.bool()
        parts = x.carray(partition)
        x.i32()  # authorized operations
        x.tags()
        out["topics"][name] = {"error": err, "id": tid,
                               "partitions": {i: leader for i, leader, _ in parts}}

    r.carray(topic)
    r.tags()
    r.end()
    return out


def find_coordinator_v4(addr, keys, key_type=0, corr=3):
    """[(key, node_id, host, port, error)] of a batched FindCoordinator v4."""
    body = struct.pack(">b", key_type) + carray([cstr(k) for k in keys]) + TAGS
    got, r = exchange(addr, flex_request(API_FIND_COORDINATOR, 4, corr, body))
    assert got == corr
    r.i32()

    def coord(x):
        v = (x.cstr(), x.i32(), x.cstr(), x.i32(), x.i16())
        x.cstr()
        x.tags()
        return v

    out = r.carray(coord)
    r.tags()
    r.end()
    return out


def describe_cluster(addr, version, corr=4):
    """{"error", "cluster_id", "controller", "brokers": [(id, host, port)]}."""
    body = struct.pack(">b", 0) + (struct.pack(">b", 1) if version >= 1 else b"") + TAGS
    got, r = exchange(addr, flex_request(API_DESCRIBE_CLUSTER, version, corr, body))
    assert got == corr
    r.i32()
    err = r.i16()
    r.cstr()
    if version >= 1:
        r.i8()  # endpoint type
    cluster_id, controller = r.cstr(), r.i32()
    brokers = r.carray(lambda x: (x.i32(), x.cstr(), x.i32(), x.cstr(), x.tags())[:3])
    r.i32()
    r.tags()
    r.end()
    return {"error": err, "cluster_id": cluster_id, "controller": controller, "brokers": brokers}


def produce_v9(addr, topic, partition, batch, acks=-1, corr=5):
    """[(partition, error, base_offset)] of a Produce v9 of one batch."""
    part = struct.pack(">i", partition) + cbytes(batch) + TAGS
    body = cstr(None) + struct.pack(">hi", acks, 30000)
    body += carray([cstr(topic) + carray([part]) + TAGS]) + TAGS
    got, r = exchange(addr, flex_request(API_PRODUCE, 9, corr, body))
    assert got == corr

    def presp(x):
        index, err, base = x.i32(), x.i16(), x.i64()
        x.i64()
        x.i64()
        x.carray(lambda y: (y.i32(), y.cstr(), y.tags()))
        x.cstr()
        x.tags()
        return index, err, base

    out = []

    def tresp(x):
        name = x.cstr()
        assert name == topic, name
        out.extend(x.carray(presp))
        x.tags()

    r.carray(tresp)
    r.i32()
    r.tags()
    r.end()
    return out


def fetch_v12(addr, topic, partition, offset=0, isolation=0, corr=6):
    """(error, high_watermark, records bytes) of a Fetch v12 of one partition."""
    p = struct.pack(">iiqiqi", partition, -1, offset, -1, -1, 1 << 20) + TAGS
    body = struct.pack(">iiiibii", -1, 500, 1, 1 << 20, isolation, 0, -1)
    body += carray([cstr(topic) + carray([p]) + TAGS]) + carray([]) + cstr("") + TAGS
    got, r = exchange(addr, flex_request(API_FETCH, 12, corr, body))
    assert got == corr
    r.i32()
    top_err = r.i16()
    r.i32()
    assert top_err == 0, f"Fetch v12 error {top_err}"
    out = []

    def presp(x):
        index, err, hw = x.i32(), x.i16(), x.i64()
        x.i64()
        x.i64()
        x.carray(lambda y: (y.i64(), y.i64(), y.tags()))
        x.i32()
        records = x.cbytes()
        x.tags()
        out.append((index, err, hw, records or b""))

    def tresp(x):
        x.cstr()
        x.carray(presp)
        x.tags()

    r.carray(tresp)
    r.tags()
    r.end()
    assert len(out) == 1
    return out[0][1:]


def batch_values(records):
    """Values of every record in the v2 batches of a Fetch's records."""
    from kafka.record.memory_records import MemoryRecords
    mr = MemoryRecords(records)
    out = []
    while True:
        batch = mr.next_batch()
        if batch is None:
            return out
        out += [r.value for r in batch]
