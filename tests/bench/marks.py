"""What Redis pays per unique eventId for candidate layouts of dedup's
marks (issue 13, item 1), measured on one local redis-server before the
redesign is chosen. Each layout goes through the same life: N unique
eventIds claimed in responses of BATCH records spread over PARTS
partitions (a claim must return what the eventId held before), then the
consumer's commit past all of them. Prints one Markdown row per layout:
Redis memory per eventId (INFO memory), top-level commands sent per
eventId (what eosproxy would send), commands run inside Redis per eventId
(INFO commandstats, scripts' calls included) and Redis server CPU per
eventId (INFO cpu). COUNT_MARKS sets N (1,000,000).

Layouts:
  key      today: one key per eventId, SET NX GET PX pending_ttl at the
           claim, SET "d" PX ttl at the commit.
  key+wm   one key per eventId holding its position, SET NX GET PX ttl
           at the claim; the commit writes one watermark per partition
           (done = claimed below the partition's committed watermark).
  keyc+wm  key+wm with the shortest key and value a key can have: a
           14-byte binary key, a 10-byte binary value (the per-key floor).
  hash     fields in hashes bucketed by eventId hash within a ttl window
           (12-byte binary field, 10-byte binary value), one script per
           hash tag group per response; the claim checks the previous
           window too; the commit sets "d" in one script per group.
  hash+wm  the hash layout with the watermark commit: no per-record
           write at the commit.
  hashn+wm the same fields without a script: HSETNX in the window and
           HGET in the previous one per record, pipelined (a duplicate
           would need one HGET more); watermark commit.
"""

import hashlib
import os
import pathlib
import socket
import struct
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

from redis_cluster import info  # noqa: E402
from redis_server import RedisServer, _read_reply  # noqa: E402

N = int(os.environ.get("COUNT_MARKS", "1000000"))
BATCH = 500  # records per Fetch response
PARTS = 40
TAGS = int(os.environ.get("MARKS_TAGS", "256"))  # hash tag groups (a script's keys share one slot)
BUCKETS = max(TAGS, N // 100)  # about 100 fields per hash: listpack encoding
TTL_MS = 7 * 86400 * 1000

CLAIM = """
local out = {}
for i = 1, #ARGV / 3 do
  local k, f, v = KEYS[tonumber(ARGV[3*i-2])], ARGV[3*i-1], ARGV[3*i]
  if redis.call('HSETNX', k, f, v) == 1 then
    local prev = redis.call('HGET', k .. ':prev', f)
    out[i] = prev or false
  else
    out[i] = redis.call('HGET', k, f)
  end
end
for _, k in ipairs(KEYS) do redis.call('PEXPIRE', k, 2 * %d, 'NX') end
return out
""" % TTL_MS

DONE = """
for i = 1, #ARGV / 2 do
  redis.call('HSET', KEYS[tonumber(ARGV[2*i-1])], ARGV[2*i], 'd')
end
return 0
"""


class Conn:
    """One pipelining connection speaking RESP."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")

    def run(self, commands):
        out = bytearray()
        for args in commands:
            out += b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)
        return [_read_reply(self.f) for _ in commands]


def stats(port):
    mem = int(info(port, "memory")["used_memory"])
    cpu = sum(float(v) for k, v in info(port, "cpu").items()
              if k in ("used_cpu_sys", "used_cpu_user"))
    calls = 0
    for k, v in info(port, "commandstats").items():
        if k.startswith("cmdstat_") and k[8:] not in ("info", "config", "flushall", "script"):
            calls += int(dict(f.split("=") for f in v.split(","))["calls"])
    return mem, calls, cpu


def eid(i):
    return f"{i:08x}-7c1e-4b5a-9f3d-{i * 2654435761 % (1 << 48):012x}".encode()


def pos(i):
    return i % PARTS, i // PARTS


def in_batches(c, ids, cmds_for):
    """Runs cmds_for(lo, hi), the commands for ids[lo:hi], one response's
    worth at a time; returns how many commands were sent."""
    sent = 0
    for lo in range(0, len(ids), BATCH):
        cmds = cmds_for(lo, min(lo + BATCH, len(ids)))
        c.run(cmds)
        sent += len(cmds)
    return sent


def commit_watermarks(c):
    """The commit past everything as one watermark per partition; returns
    how many commands were sent."""
    cmds = [("HSET", "eosproxy:svc:@committed", f"orders/{p}", N) for p in range(PARTS)]
    c.run(cmds)
    return len(cmds)


def key_layout(c, ids, watermark):
    def claims(lo, hi):
        return [("SET", b"eosproxy:svc:" + ids[i], b"p:orders:%d:%d:1" % pos(i), "NX", "GET", "PX",
                 TTL_MS if watermark else 3600000) for i in range(lo, hi)]
    sent = in_batches(c, ids, claims)
    if watermark:
        return sent + commit_watermarks(c)
    return sent + in_batches(c, ids, lambda lo, hi: [
        ("SET", b"eosproxy:svc:" + x, "d", "PX", TTL_MS) for x in ids[lo:hi]])


def compact_layout(c, ids):
    return in_batches(c, ids, lambda lo, hi: [
        ("SET", b"e:" + field(ids[i])[0], struct.pack(">HQ", *pos(i)), "NX", "GET", "PX", TTL_MS)
        for i in range(lo, hi)]) + commit_watermarks(c)


def field(x):
    d = hashlib.blake2b(x, digest_size=16).digest()
    bucket = int.from_bytes(d[12:16], "little") % BUCKETS
    return d[:12], bucket


def groups(ids, lo, hi):
    """{tag: [(bucket key, field, i)]} for ids[lo:hi]."""
    g = {}
    for i in range(lo, hi):
        f, bucket = field(ids[i])
        key = b"eosproxy:svc:{%d}:%d:w1" % (bucket % TAGS, bucket)
        g.setdefault(bucket % TAGS, []).append((key, f, i))
    return g


def script_call(sha, entries, per):
    keys, index, argv = [], {}, []
    for key, f, i in entries:
        if key not in index:
            index[key] = len(keys) + 1
            keys.append(key)
        argv += [index[key], f] + per(i)
    return ("EVALSHA", sha, len(keys), *keys, *argv)


def hash_layout(c, ids, watermark):
    claim, done = c.run([("SCRIPT", "LOAD", CLAIM), ("SCRIPT", "LOAD", DONE)])
    sent = in_batches(c, ids, lambda lo, hi: [
        script_call(claim, e, lambda i: [struct.pack(">HQ", *pos(i))])
        for e in groups(ids, lo, hi).values()])
    if watermark:
        return sent + commit_watermarks(c)
    return sent + in_batches(c, ids, lambda lo, hi: [
        script_call(done, e, lambda i: []) for e in groups(ids, lo, hi).values()])


def native_layout(c, ids):
    def claims(lo, hi):
        cmds = []
        for e in groups(ids, lo, hi).values():
            for key, f, i in e:
                cmds.append(("HSETNX", key, f, struct.pack(">HQ", *pos(i))))
                cmds.append(("HGET", key + b":prev", f))
        return cmds
    return in_batches(c, ids, claims) + commit_watermarks(c)


def main():
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="eosproxy-marks-bench."))
    redis = RedisServer(tmp).start()
    try:
        c = Conn(redis.port)
        ids = [eid(i) for i in range(N)]
        print(f"\nmark layouts, {N:,} unique eventIds of 36 bytes, responses of {BATCH} "
              f"records over {PARTS} partitions, {BUCKETS:,} hash buckets in {TAGS} tags "
              "(one redis-server)\n")
        print("| layout | memory per eventId | commands sent per eventId "
              "| commands run per eventId | Redis CPU per eventId |")
        print("|---|---|---|---|---|")
        for name, fn in (("key", lambda c, ids: key_layout(c, ids, False)),
                         ("key+wm", lambda c, ids: key_layout(c, ids, True)),
                         ("keyc+wm", compact_layout),
                         ("hash", lambda c, ids: hash_layout(c, ids, False)),
                         ("hash+wm", lambda c, ids: hash_layout(c, ids, True)),
                         ("hashn+wm", native_layout)):
            c.run([("FLUSHALL",), ("CONFIG", "RESETSTAT")])
            mem0, calls0, cpu0 = stats(redis.port)
            sent = fn(c, ids)
            mem1, calls1, cpu1 = stats(redis.port)
            print(f"| {name} | {(mem1 - mem0) / N:.0f} B | {sent / N:.2f} "
                  f"| {(calls1 - calls0) / N:.2f} | {(cpu1 - cpu0) * 1e6 / N:.2f} µs |", flush=True)
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
