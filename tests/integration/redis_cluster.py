"""Real Redis topologies for the dedup tests: a local Redis Cluster (3
masters, 3 replicas) and a Sentinel setup (1 master, 1 replica, 2
Sentinels), each from redis-server processes on free ports, stopped at
teardown whatever happened.

    with RedisCluster(tmp_path) as c:
        c.url                       # "redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3"
        c.masters()                 # [Node], from CLUSTER NODES
        c.kill(node)                # kill -9
        c.wait_ok(without=node)     # cluster_state:ok and a master per slot on every live node
        c.keys("eosproxy:*")        # KEYS on every master
        c.migrate_slots(src, dst, slots)   # CLUSTER SETSLOT MIGRATING/IMPORTING + MIGRATE

    with RedisSentinel(tmp_path) as s:
        s.url                       # "redis+sentinel://127.0.0.1:S1,127.0.0.1:S2/mymaster"
        s.failover()                # SENTINEL FAILOVER, waits until the replica is master

Redis Cluster's bus port is set with --cluster-port (Redis 7), so every
port comes from conftest.free_port and nothing collides with other runs.
The fixtures `redis_cluster` and `redis_sentinel` yield started ones.
"""

import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import free_port
from redis_server import _read_reply

REDIS_BIN = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
SLOTS = 16384


def command(port, *args, timeout=5.0):
    """One command to 127.0.0.1:port over a fresh connection; the decoded
    reply (bytes, int, None, list), or RuntimeError for an error reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        s.sendall(out)
        return _read_reply(s.makefile("rb"))


def pipeline(port, commands, timeout=10.0):
    """Several commands in one write; their replies (error replies as
    RuntimeError objects, not raised)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        out = b""
        for args in commands:
            out += b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
        s.sendall(out)
        f = s.makefile("rb")
        replies = []
        for _ in commands:
            try:
                replies.append(_read_reply(f))
            except RuntimeError as e:
                replies.append(e)
        return replies


def info(port, section):
    """INFO section as a dict."""
    text = command(port, "INFO", section).decode()
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except (OSError, RuntimeError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def crc16(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key):
    """Redis Cluster's hash slot of key (bytes or str), {hash tags} honoured."""
    key = key.encode() if isinstance(key, str) else key
    s = key.find(b"{")
    if s >= 0:
        e = key.find(b"}", s + 1)
        if e > s + 1:
            key = key[s + 1:e]
    return crc16(key) % SLOTS


class RedisProc:
    """One redis-server (a cluster node, a plain node or a Sentinel)."""

    def __init__(self, tmp_path, name, args):
        self.port = free_port()
        self.dir = tmp_path / f"{name}-{self.port}"
        self.dir.mkdir()
        self.log_path = self.dir / "redis.log"
        self.extra = args
        self.proc = None

    def start(self, conf=None, sentinel=False):
        args = [REDIS_BIN] + ([str(conf)] if conf else []) + (["--sentinel"] if sentinel else [])
        args += ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                 "--logfile", str(self.log_path)] + self.extra
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: command(self.port, "PING", timeout=1.0) == b"PONG", 10,
                 f"redis-server on {self.port}: {self.tail()}")
        return self

    def tail(self):
        try:
            return self.log_path.read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def cmd(self, *args, timeout=5.0):
        return command(self.port, *args, timeout=timeout)


class Node:
    """A cluster node as CLUSTER NODES describes it."""

    def __init__(self, line):
        f = line.split()
        self.id = f[0]
        self.port = int(f[1].split("@")[0].rsplit(":", 1)[1])
        self.flags = set(f[2].split(","))
        self.master_id = f[3] if f[3] != "-" else None
        self.slots = []
        for r in f[8:]:
            if r.startswith("["):
                continue  # a slot being migrated or imported
            a, _, b = r.partition("-")
            self.slots.append((int(a), int(b or a)))

    @property
    def is_master(self):
        return "master" in self.flags and "fail" not in self.flags

    def __repr__(self):
        return f"<Node {self.port} {','.join(sorted(self.flags))} {self.slots}>"


class RedisCluster:
    """3 masters and 3 replicas on 127.0.0.1, made with redis-cli --cluster
    create. node_timeout is short so a killed master's replica takes over
    within a few seconds."""

    def __init__(self, tmp_path, masters=3, replicas=1, node_timeout_ms=1000):
        self.tmp_path = tmp_path
        self.nmasters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.procs = []

    def start(self):
        for i in range(self.nmasters * (1 + self.replicas)):
            bus = free_port()
            p = RedisProc(self.tmp_path, f"rc{i}", [
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(self.node_timeout_ms), "--cluster-port", str(bus),
                "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction",
                "--repl-diskless-sync-delay", "0"])
            self.procs.append(p)
            p.start()
        hosts = [f"127.0.0.1:{p.port}" for p in self.procs]
        out = subprocess.run([REDIS_CLI, "--cluster", "create", *hosts, "--cluster-replicas",
                              str(self.replicas), "--cluster-yes"], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, f"redis-cli --cluster create failed: {out.stdout}{out.stderr}"
        self.wait_ok()
        self.wait_replicas_synced()
        return self

    def wait_replicas_synced(self, timeout=30):
        """Every live replica has finished its sync with its master (a
        replica that never synced cannot be promoted)."""
        def synced():
            for p in self.live():
                rep = info(p.port, "replication")
                if rep.get("role") == "slave" and rep.get("master_link_status") != "up":
                    return False
            return True
        wait_for(synced, timeout, "every replica in sync")

    @property
    def url(self):
        seeds = ",".join(f"127.0.0.1:{p.port}" for p in self.procs[:3])
        return f"redis+cluster://{seeds}"

    def live(self):
        return [p for p in self.procs if p.alive()]

    def proc(self, port):
        return next(p for p in self.procs if p.port == port)

    def nodes(self, via=None):
        via = via or self.live()[0]
        text = via.cmd("CLUSTER", "NODES").decode()
        return [Node(line) for line in text.splitlines() if line.strip()]

    def masters(self):
        return [n for n in self.nodes() if n.is_master and n.slots]

    def master_of_slot(self, slot):
        for n in self.masters():
            if any(a <= slot <= b for a, b in n.slots):
                return n
        return None

    def _ok_on(self, p):
        text = p.cmd("CLUSTER", "INFO").decode()
        if "cluster_state:ok" not in text:
            return False
        covered = 0
        for n in self.nodes(via=p):
            if n.is_master and self.proc(n.port).alive():
                covered += sum(b - a + 1 for a, b in n.slots)
        return covered == SLOTS

    def wait_ok(self, timeout=30):
        """Every live node says cluster_state:ok and sees every slot served
        by a live master."""
        wait_for(lambda: all(self._ok_on(p) for p in self.live()), timeout,
                 "cluster_state:ok with every slot on a live master")

    def kill(self, node):
        self.proc(node.port).kill()

    def keys(self, pattern="*"):
        out = []
        for n in self.masters():
            out += self.proc(n.port).cmd("KEYS", pattern)
        return out

    def get(self, key):
        return self.proc(self.master_of_slot(key_slot(key)).port).cmd("GET", key)

    def begin_migration(self, src, dst, slots):
        """Slots to IMPORTING on dst and MIGRATING on src: from here on,
        src answers ASK for keys it does not hold in these slots."""
        pipeline(dst.port, [("CLUSTER", "SETSLOT", s, "IMPORTING", src.id) for s in slots])
        pipeline(src.port, [("CLUSTER", "SETSLOT", s, "MIGRATING", dst.id) for s in slots])

    def finish_migration(self, src, dst, slots):
        """Moves the keys left in slots from src to dst (MIGRATE), then
        gives the slots to dst on every master: MOVED from here on."""
        sp = self.proc(src.port)
        for s in slots:
            for _ in range(1000):
                keys = sp.cmd("CLUSTER", "GETKEYSINSLOT", s, 1000)
                if not keys:
                    break
                sp.cmd("MIGRATE", "127.0.0.1", dst.port, "", 0, 5000, "KEYS", *keys)
        for n in [dst, src] + [m for m in self.masters() if m.id not in (src.id, dst.id)]:
            pipeline(n.port, [("CLUSTER", "SETSLOT", s, "NODE", dst.id) for s in slots])

    def stop(self):
        for p in self.procs:
            p.stop()

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()


class RedisSentinel:
    """A master, its replica and two Sentinels (quorum 1) watching it as
    `mymaster`."""

    NAME = "mymaster"

    def __init__(self, tmp_path, sentinels=2):
        self.tmp_path = tmp_path
        self.nsentinels = sentinels
        self.nodes = []
        self.sentinels = []

    def start(self):
        common = ["--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction"]
        master = RedisProc(self.tmp_path, "sm", common).start()
        replica = RedisProc(self.tmp_path, "sr", common + [
            "--replicaof", "127.0.0.1", str(master.port)]).start()
        self.nodes = [master, replica]
        wait_for(lambda: info(replica.port, "replication").get("master_link_status") == "up", 20,
                 "the replica in sync")
        for i in range(self.nsentinels):
            s = RedisProc(self.tmp_path, f"sen{i}", [])
            conf = s.dir / "sentinel.conf"
            conf.write_text(
                f"sentinel monitor {self.NAME} 127.0.0.1 {master.port} 1\n"
                f"sentinel down-after-milliseconds {self.NAME} 1000\n"
                f"sentinel failover-timeout {self.NAME} 5000\n")
            s.start(conf=conf, sentinel=True)
            self.sentinels.append(s)
        wait_for(self._replica_known, 30, "the Sentinels to know the replica")
        return self

    def _replica_known(self):
        for s in self.sentinels:
            reps = s.cmd("SENTINEL", "REPLICAS", self.NAME)
            ok = [r for r in reps if b"slave" in dict(zip(r[::2], r[1::2])).get(b"flags", b"")
                  and b"disconnected" not in dict(zip(r[::2], r[1::2])).get(b"flags", b"")]
            if not ok:
                return False
        return True

    @property
    def url(self):
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.NAME}"

    def master_port(self):
        host, port = self.sentinels[0].cmd("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.NAME)
        return int(port)

    def master(self):
        port = self.master_port()
        return next(n for n in self.nodes if n.port == port)

    def failover(self, timeout=30):
        """SENTINEL FAILOVER; waits until the other node says it is master
        and every Sentinel names it. Returns the new master."""
        old = self.master_port()
        new = next(n for n in self.nodes if n.port != old)
        self.sentinels[0].cmd("SENTINEL", "FAILOVER", self.NAME)
        wait_for(lambda: new.cmd("ROLE")[0] == b"master"
                 and all(int(s.cmd("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.NAME)[1])
                         == new.port for s in self.sentinels), timeout, "the failover")
        return new

    def stop(self):
        for p in self.sentinels + self.nodes:
            p.stop()

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()


@pytest.fixture
def redis_cluster(tmp_path):
    with RedisCluster(tmp_path) as c:
        yield c


@pytest.fixture
def redis_sentinel(tmp_path):
    with RedisSentinel(tmp_path) as s:
        yield s
