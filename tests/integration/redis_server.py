"""A real redis-server for the dedup tests: started on a free port with no
persistence (--save "" --appendonly no), killable with SIGKILL and
restartable on the same port, stopped at teardown whatever happened.

    with RedisServer(tmp_path) as r:
        r.url            # "redis://127.0.0.1:PORT/0"
        r.cli("KEYS", "*")
        r.kill()         # kill -9
        r.pause()        # SIGSTOP: a hung Redis; r.resume() continues it
        r.start()        # again, same port (empty: nothing was saved)

The fixture `redis_server` yields one started server.
"""

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import free_port

REDIS_BIN = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    def __init__(self, tmp_path, port=None, maxmemory_policy="noeviction"):
        self.tmp_path = tmp_path
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.maxmemory_policy = maxmemory_policy
        self.proc = None
        self.log_path = tmp_path / f"redis-{self.port}.log"
        self.starts = 0

    def start(self, timeout=10.0):
        assert self.proc is None or self.proc.poll() is not None, "redis-server already running"
        args = [REDIS_BIN, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.tmp_path),
                "--maxmemory-policy", self.maxmemory_policy, "--logfile", str(self.log_path)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited {self.proc.returncode}: "
                                   f"{self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                if self.ping():
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not answer PING")

    def kill(self):
        """kill -9: no shutdown, nothing saved."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def pause(self):
        """SIGSTOP: connections stay open, nothing is answered (a hung Redis)."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused server cannot exit

        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # ------------------------------------------------------------ RESP client

    def command(self, *args, timeout=5.0):
        """One command over a fresh connection; returns the decoded reply
        (bytes, int, None, list) or raises RuntimeError for an error reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            out = b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            f = s.makefile("rb")
            return _read_reply(f)

    def ping(self):
        return self.command("PING", timeout=1.0) == b"PONG"

    def cli(self, *args):
        return self.command(*args)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _read_reply(f):
    line = f.readline()
    if not line:
        raise OSError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RuntimeError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        if n < 0:
            return None
        return [_read_reply(f) for _ in range(n)]
    raise OSError(f"bad RESP line {line!r}")


@pytest.fixture
def redis_server(tmp_path):
    r = RedisServer(tmp_path)
    r.start()
    try:
        yield r
    finally:
        r.stop()
