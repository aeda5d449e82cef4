"""Login cost benchmark: how many client connections per second complete a
SASL login against eosproxy, and how long one login takes.

    /usr/bin/python3 tests/bench/logins.py [--bootstrap HOST:PORT,...] [--work DIR]

Run by tests/bench/run.sh (make bench) at the end, with the bench's mock
cluster as --bootstrap; without it, starts build/mockcluster itself.

It makes a users file with `eosproxy passwd` (default iterations), test
certificates with tests/tools/mkcerts.sh, and starts two eosproxy processes
with auth.users_file on loopback: one plaintext, one with listen.tls. Each
login is done by hand on a raw socket, in the order Kafka clients use:
TCP connect (then the TLS handshake), ApiVersions v0, SaslHandshake v1,
SaslAuthenticate v1 until the server says yes. For SCRAM the client
computes PBKDF2 over the password with the salt and iteration count the
server sent, and checks the server's signature, so a SCRAM login includes
the client's PBKDF2 exactly as a real client pays it. Two extra rows reuse
the client's SaltedPassword across logins (no client PBKDF2, which real
clients do not skip) to show what a SCRAM login, and a TLS handshake with
it, cost eosproxy itself.

For each row: logins per second one at a time (SEQ_SECONDS), logins per
second with CONCURRENCY clients at once (CONC_SECONDS), the median time of
one login in the sequential run, and the CPU time eosproxy used per login
over both runs (all its threads, from /proc, so the upstream connection
each login opens is included). Every login must succeed: a refused or
malformed answer ends the benchmark with exit status 1, so no number is
printed for logins that did not happen. Prints a Markdown table.

Knobs (environment): SEQ_SECONDS (3), CONC_SECONDS (4), CONCURRENCY (8),
MAX_LOGINS (3000 per measurement, to stay clear of the ephemeral ports),
EOSPROXY_BIN, MOCKCLUSTER_BIN.
"""

import argparse
import base64
import hashlib
import hmac
import os
import pathlib
import secrets
import select
import shutil
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EOSPROXY_BIN = os.environ.get("EOSPROXY_BIN", str(ROOT / "build" / "eosproxy"))
MOCKCLUSTER_BIN = os.environ.get("MOCKCLUSTER_BIN", str(ROOT / "build" / "mockcluster"))
MKCERTS = ROOT / "tests" / "tools" / "mkcerts.sh"

SEQ_SECONDS = float(os.environ.get("SEQ_SECONDS", "3"))
CONC_SECONDS = float(os.environ.get("CONC_SECONDS", "4"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "8"))
MAX_LOGINS = int(os.environ.get("MAX_LOGINS", "3000"))

USER = "bench"
API_VERSIONS, API_SASL_HANDSHAKE, API_SASL_AUTHENTICATE = 18, 17, 36
MAX_FRAME = 1 << 20  # largest answer accepted during a login
IO_TIMEOUT = 30.0


class LoginError(Exception):
    """A login that did not complete: refused, malformed, or timed out."""


# ---------------------------------------------------------------- wire

class Conn:
    """One Kafka connection, raw: request header v1 (client id "logins"),
    response header v0 (every API used here is non-flexible)."""

    def __init__(self, host, port, tls_ctx=None):
        sock = socket.create_connection((host, port), timeout=IO_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls_ctx is not None:
            try:
                sock = tls_ctx.wrap_socket(sock, server_hostname=host)
            except (ssl.SSLError, OSError):
                sock.close()
                raise
        self.sock = sock
        self.corr = 0

    def close(self):
        self.sock.close()

    def _read(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise LoginError("connection closed by eosproxy")
            buf += chunk
        return bytes(buf)

    def request(self, api_key, version, body):
        """Sends one request and returns the response body after the
        correlation id, which must match."""
        self.corr += 1
        client_id = b"logins"
        hdr = struct.pack(">hhih", api_key, version, self.corr, len(client_id)) + client_id
        self.sock.sendall(struct.pack(">i", len(hdr) + len(body)) + hdr + body)
        (size,) = struct.unpack(">i", self._read(4))
        if size < 4 or size > MAX_FRAME:
            raise LoginError(f"answer of {size} bytes to api {api_key}")
        frame = self._read(size)
        (corr,) = struct.unpack_from(">i", frame)
        if corr != self.corr:
            raise LoginError(f"correlation id {corr}, expected {self.corr}")
        return frame[4:]


class Reader:
    """Bounds-checked reads of a response body."""

    def __init__(self, b):
        self.b, self.off = b, 0

    def take(self, n):
        if n < 0 or self.off + n > len(self.b):
            raise LoginError("truncated answer")
        v = self.b[self.off:self.off + n]
        self.off += n
        return v

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def nstring(self):
        n = self.i16()
        return None if n == -1 else self.take(n).decode("utf-8", "replace")

    def nbytes(self):
        n = self.i32()
        return None if n == -1 else self.take(n)


def kstring(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def api_versions(conn):
    r = Reader(conn.request(API_VERSIONS, 0, b""))
    err = r.i16()
    if err != 0:
        raise LoginError(f"ApiVersions error {err}")


def sasl_handshake(conn, mechanism):
    r = Reader(conn.request(API_SASL_HANDSHAKE, 1, kstring(mechanism)))
    err = r.i16()
    if err != 0:
        raise LoginError(f"SaslHandshake {mechanism}: error {err}")


def sasl_authenticate(conn, token):
    """One SaslAuthenticate v1 round trip; returns the server's auth bytes."""
    r = Reader(conn.request(API_SASL_AUTHENTICATE, 1, struct.pack(">i", len(token)) + token))
    err, msg, auth = r.i16(), r.nstring(), r.nbytes()
    r.take(8)  # SessionLifetimeMs
    if r.off != len(r.b):
        raise LoginError("trailing bytes in SaslAuthenticate response")
    if err != 0:
        raise LoginError(f"SaslAuthenticate error {err}: {msg}")
    if auth is None:
        raise LoginError("SaslAuthenticate response with null auth bytes")
    return auth


# ---------------------------------------------------------------- mechanisms

def login_plain(conn, password, _cache):
    sasl_handshake(conn, "PLAIN")
    sasl_authenticate(conn, b"\0" + USER.encode() + b"\0" + password.encode())


def parse_scram(msg):
    """SCRAM attributes "k=v,k=v" as a dict (the first of each key)."""
    out = {}
    for part in msg.split(","):
        if len(part) < 2 or part[1] != "=":
            raise LoginError(f"malformed SCRAM message {msg[:80]!r}")
        out.setdefault(part[0], part[2:])
    return out


def login_scram256(conn, password, cache):
    """SCRAM-SHA-256 (RFC 5802). cache: None (PBKDF2 every login, as clients
    do) or a dict keyed by (salt, iterations) that keeps SaltedPassword."""
    sasl_handshake(conn, "SCRAM-SHA-256")
    cnonce = base64.b64encode(secrets.token_bytes(24)).decode()
    first_bare = f"n={USER},r={cnonce}"
    server_first = sasl_authenticate(conn, ("n,," + first_bare).encode()).decode()
    a = parse_scram(server_first)
    if "e" in a or not a.get("r", "").startswith(cnonce) or len(a["r"]) == len(cnonce):
        raise LoginError(f"bad server-first {server_first[:80]!r}")
    try:
        salt, iterations = base64.b64decode(a["s"], validate=True), int(a["i"])
    except (KeyError, ValueError) as e:
        raise LoginError(f"bad server-first {server_first[:80]!r}") from e
    if not 4096 <= iterations <= 10_000_000:
        raise LoginError(f"server asks for {iterations} iterations")
    key = (salt, iterations)
    salted = cache.get(key) if cache is not None else None
    if salted is None:
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
        if cache is not None:
            cache[key] = salted
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    final_wo_proof = f"c=biws,r={a['r']}"
    auth_message = f"{first_bare},{server_first},{final_wo_proof}".encode()
    signature = hmac.digest(stored_key, auth_message, "sha256")
    proof = bytes(x ^ y for x, y in zip(client_key, signature))
    final = f"{final_wo_proof},p={base64.b64encode(proof).decode()}"
    server_final = sasl_authenticate(conn, final.encode()).decode()
    f = parse_scram(server_final)
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    want = hmac.digest(server_key, auth_message, "sha256")
    try:
        got = base64.b64decode(f.get("v", ""), validate=True)
    except ValueError as e:
        raise LoginError("bad server-final") from e
    if not hmac.compare_digest(got, want):
        raise LoginError("server signature does not verify")


def one_login(target, login, password, cache):
    """Seconds for one whole login: connect (+TLS), ApiVersions, SASL."""
    t0 = time.perf_counter()
    conn = Conn(target["host"], target["port"], target["tls"])
    try:
        api_versions(conn)
        login(conn, password, cache)
        return time.perf_counter() - t0
    finally:
        conn.close()


# ---------------------------------------------------------------- measurements

def sequential(target, login, password, cache):
    """Logins one after another for SEQ_SECONDS (at least 5): (durations, wall)."""
    durations = []
    t0 = time.perf_counter()
    while len(durations) < 5 or (time.perf_counter() - t0 < SEQ_SECONDS
                                 and len(durations) < MAX_LOGINS):
        durations.append(one_login(target, login, password, cache))
    return durations, time.perf_counter() - t0


def concurrent(target, login, password, cache):
    """CONCURRENCY threads log in over and over for CONC_SECONDS: (logins,
    wall). Each thread finishes the login it has started, and the wall time
    runs until the last one is done. A failed login fails the whole run."""
    lock = threading.Lock()
    state = {"done": 0, "started": 0, "error": None}
    start = time.perf_counter()
    deadline = start + CONC_SECONDS

    def worker():
        while time.perf_counter() < deadline:
            with lock:
                if state["error"] or state["started"] >= MAX_LOGINS:
                    return
                state["started"] += 1
            try:
                one_login(target, login, password, cache)
            except Exception as e:  # noqa: BLE001 - reported by the main thread
                with lock:
                    state["error"] = state["error"] or e
                return
            with lock:
                state["done"] += 1

    threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if state["error"]:
        raise LoginError(f"concurrent run: {state['error']!r}")
    return state["done"], wall


# ---------------------------------------------------------------- processes

def free_ports():
    """A listen port, an admin port and a base with base+1..base+3 free."""
    held = []

    def grab(port=0):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        held.append(s)
        return s.getsockname()[1]

    try:
        listen, admin = grab(), grab()
        for _ in range(200):
            base = secrets.randbelow(22000) + 10000
            try:
                for n in range(4):
                    grab(base + n)
                return listen, admin, base
            except OSError:
                continue
        raise RuntimeError("no free port range")
    finally:
        for s in held:
            s.close()


class Mock:
    """build/mockcluster with 3 brokers, when run.sh did not pass one."""

    def __init__(self, work):
        self.log = open(work / "mock.log", "w")
        self.proc = subprocess.Popen([MOCKCLUSTER_BIN, "--brokers", "3"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("BOOTSTRAP "):
            self.close()
            raise RuntimeError(f"mockcluster did not start (see {work / 'mock.log'})")
        self.bootstrap = line.split(" ", 1)[1].strip()

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Proxy:
    """One eosproxy with auth.users_file on 127.0.0.1, plaintext or TLS."""

    def __init__(self, work, name, bootstrap, users, certs=None):
        port, admin, base = free_ports()
        self.host, self.port, self.admin = "127.0.0.1", port, admin
        self.log_path = work / f"{name}.log"
        conf = work / f"{name}.yaml"
        tls = ""
        if certs:
            tls = (f"  tls:\n    cert_file: {certs / 'server.pem'}\n"
                   f"    key_file: {certs / 'server.key'}\n")
        conf.write_text(
            f"service: {name}\n"
            f"listen:\n  host: 127.0.0.1\n  port: {port}\n  advertised_host: 127.0.0.1\n"
            f"  broker_port_base: {base}\n{tls}"
            f"upstream:\n  bootstrap: \"{bootstrap}\"\n"
            f"admin:\n  listen: \"127.0.0.1:{admin}\"\n"
            f"log:\n  level: warn\n"
            f"auth:\n  users_file: {users}\n")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([EOSPROXY_BIN, "-c", str(conf)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        tail = self.log_path.read_text()[-2000:]
        self.stop()
        raise RuntimeError(f"eosproxy ({name}) did not become ready; log tail:\n{tail}")

    def cpu_seconds(self):
        """CPU time of the process so far: the sum over its threads of
        /proc/PID/task/TID/schedstat (nanoseconds; eosproxy's threads live as
        long as it does), or user + system clock ticks of /proc/PID/stat
        where schedstat is missing."""
        total, seen = 0, False
        for task in pathlib.Path(f"/proc/{self.proc.pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
                seen = True
            except (OSError, ValueError, IndexError):
                pass
        if seen:
            return total / 1e9
        fields = pathlib.Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        """SIGTERM, then its exit status (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.log.close()
                return None
        self.log.close()
        return self.proc.returncode


def make_users(work):
    """A users file for USER (random password, default iterations):
    (path, password, iterations read back from the file)."""
    password = secrets.token_urlsafe(18)
    p = subprocess.run([EOSPROXY_BIN, "passwd", USER], input=password + "\n",
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"eosproxy passwd exited {p.returncode}: {p.stderr.strip()}")
    line = p.stdout.strip()
    path = work / "users"
    path.write_text(line + "\n")
    path.chmod(0o600)
    fields = line.split(":")[1].split("$")  # pbkdf2-sha256$ITER$SALT$HASH
    if len(fields) != 4 or fields[0] != "pbkdf2-sha256":
        raise RuntimeError(f"unexpected users line format: {fields[0]!r}")
    return path, password, int(fields[1])


def make_certs(work, certs):
    if certs is None:
        certs = work / "certs"
        p = subprocess.run(["bash", str(MKCERTS), str(certs)], capture_output=True, text=True,
                           timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"mkcerts.sh exited {p.returncode}: {p.stderr.strip()}")
    for f in ("ca.pem", "server.pem", "server.key"):
        if not (certs / f).is_file():
            raise RuntimeError(f"{certs / f} is missing")
    return certs


def client_pbkdf2_ms(password, iterations, n=5):
    """Median ms of one PBKDF2-HMAC-SHA256 in this process (the SCRAM client's part)."""
    t = []
    for _ in range(n):
        t0 = time.perf_counter()
        hashlib.pbkdf2_hmac("sha256", password.encode(), secrets.token_bytes(16), iterations)
        t.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(t)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", help="mock cluster bootstrap (default: start build/mockcluster)")
    ap.add_argument("--work", help="directory for configs and logs (default: a temporary one)")
    ap.add_argument("--certs", help="directory mkcerts.sh has filled (default: make one)")
    args = ap.parse_args()
    for b in (EOSPROXY_BIN,) + (() if args.bootstrap else (MOCKCLUSTER_BIN,)):
        if not os.access(b, os.X_OK):
            sys.exit(f"logins: {b} is missing (make build/eosproxy build/mockcluster)")

    own_work = args.work is None
    work = pathlib.Path(args.work or tempfile.mkdtemp(prefix="eosproxy-logins."))
    work.mkdir(parents=True, exist_ok=True)
    mock, proxies, failed = None, {}, False
    try:
        certs = make_certs(work, pathlib.Path(args.certs) if args.certs else None)
        users, password, iterations = make_users(work)
        if args.bootstrap:
            bootstrap = args.bootstrap
        else:
            mock = Mock(work)
            bootstrap = mock.bootstrap
        proxies["plain"] = Proxy(work, "logins-plain", bootstrap, users)
        proxies["tls"] = Proxy(work, "logins-tls", bootstrap, users, certs)
        tls_ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        targets = {
            "plain": {"host": "127.0.0.1", "port": proxies["plain"].port, "tls": None,
                      "proxy": proxies["plain"]},
            "tls": {"host": "127.0.0.1", "port": proxies["tls"].port, "tls": tls_ctx,
                    "proxy": proxies["tls"]},
        }
        rows = (
            ("PLAIN, plaintext (loopback)", "plain", login_plain, False),
            ("SCRAM-SHA-256, plaintext", "plain", login_scram256, False),
            ("PLAIN over TLS", "tls", login_plain, False),
            ("SCRAM-SHA-256 over TLS", "tls", login_scram256, False),
            ("SCRAM-SHA-256, plaintext, client reuses its SaltedPassword "
             "(eosproxy's side only)", "plain", login_scram256, True),
            ("SCRAM-SHA-256 over TLS, client reuses its SaltedPassword", "tls", login_scram256,
             True),
        )
        pbkdf2 = client_pbkdf2_ms(password, iterations)
        results = []
        for label, tname, login, reuse in rows:
            print(f"logins: {label}", file=sys.stderr)
            cache = {} if reuse else None
            if reuse:  # fill the cache outside the timed runs
                one_login(targets[tname], login, password, cache)
            cpu0 = targets[tname]["proxy"].cpu_seconds()
            durations, wall = sequential(targets[tname], login, password, cache)
            n, cwall = concurrent(targets[tname], login, password, cache)
            cpu = targets[tname]["proxy"].cpu_seconds() - cpu0
            results.append((label, len(durations) / wall, len(durations), n / cwall, n,
                            statistics.median(durations) * 1e3,
                            cpu / (len(durations) + n) * 1e3))
        exits = {k: p.stop() for k, p in proxies.items()}
        proxies = {}
    except (LoginError, OSError, RuntimeError, subprocess.SubprocessError) as e:
        print(f"logins: FAILED: {e}", file=sys.stderr)
        failed = True
    finally:
        for p in proxies.values():
            p.stop()
        if mock:
            mock.close()
    if failed:
        print(f"logins: logs kept in {work}", file=sys.stderr)
        return 1

    print()
    print(f"| login ({USER}; users file from `eosproxy passwd`, {iterations:,} PBKDF2 iterations) "
          f"| one at a time | {CONCURRENCY} clients at once | one login, median "
          "| eosproxy CPU per login |")
    print("|---|---|---|---|---|")
    for label, seq_rate, seq_n, conc_rate, conc_n, med_ms, cpu_ms in results:
        print(f"| {label} | {seq_rate:,.1f} logins/s ({seq_n}) | {conc_rate:,.1f} logins/s "
              f"({conc_n}) | {med_ms:,.2f} ms | {cpu_ms:,.2f} ms |")
    print()
    print(f"A login: TCP connect (+ TLS handshake), ApiVersions v0, SaslHandshake v1, "
          f"SaslAuthenticate v1 until accepted (SCRAM: server signature checked); logins "
          f"counted in parentheses. One at a time: {SEQ_SECONDS:g} s; {CONCURRENCY} clients "
          f"(threads of one Python process): {CONC_SECONDS:g} s. Client and eosproxy share the "
          f"machine's {os.cpu_count()} CPUs, so rows whose client does little (reused "
          f"SaltedPassword) are bounded by the Python client too; eosproxy CPU per login is "
          f"the CPU time of eosproxy's threads (/proc schedstat) over both runs of the row, "
          f"divided by their logins. The SCRAM client's PBKDF2-HMAC-SHA256 "
          f"({iterations:,} iterations) took {pbkdf2:,.1f} ms (median of 5, this process). "
          f"eosproxy exit codes after SIGTERM: plaintext {exits['plain']}, TLS {exits['tls']}.")
    bad = {k: v for k, v in exits.items() if v != 0}
    for name in ("logins-plain", "logins-tls"):
        text = (work / f"{name}.log").read_text()
        if "AddressSanitizer" in text or "runtime error" in text:
            print(f"logins: {name}.log has a sanitizer report", file=sys.stderr)
            bad[name] = "sanitizer"
        lines = [l for l in text.splitlines() if l.strip()]
        if lines:
            print(f"logins: {name}.log has {len(lines)} lines, the last: {lines[-1][:200]}",
                  file=sys.stderr)
    if bad:
        print(f"logins: FAILED: {bad}; logs kept in {work}", file=sys.stderr)
        return 1
    if own_work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
