"""Helpers for the security tests (test_security.py): test certificates,
users files, secrets that must never reach a log, client settings for SASL
and TLS (librdkafka, kafka-python, kafkajs), hand-encoded SASL frames, TLS
raw connections and record counts read straight from the mock."""

import base64
import hashlib
import hmac
import os
import secrets
import socket
import ssl
import struct
import subprocess
from dataclasses import dataclass

from helpers import Conn, Reader, kstr, request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
MKCERTS = os.path.join(ROOT, "tests", "tools", "mkcerts.sh")
CERT_FILES = ("ca.pem", "ca.key", "server.pem", "server.key", "server2.pem", "server2.key",
              "client.pem", "client.key", "rogue-ca.pem", "rogue-client.pem", "rogue-client.key")

MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
SASL_AUTHENTICATION_FAILED = 58
UNSUPPORTED_SASL_MECHANISM = 33
TOPIC_AUTHORIZATION_FAILED = 29
API_SASL_HANDSHAKE = 17
API_SASL_AUTHENTICATE = 36


# ---------------------------------------------------------------- certificates

class Certs:
    """The files tests/tools/mkcerts.sh writes, as attributes: ca, server,
    server_key, server2, server2_key, client, client_key, rogue_ca,
    rogue_client, rogue_client_key (absolute paths)."""

    def __init__(self, directory):
        self.dir = str(directory)
        for name in CERT_FILES:
            attr = name.replace(".pem", "").replace(".", "_").replace("-", "_")
            setattr(self, attr, os.path.join(self.dir, name))


def make_certs(directory):
    """Runs mkcerts.sh into directory and returns its Certs; AssertionError
    (with the script's output) when it fails or leaves a file out."""
    if not os.access(MKCERTS, os.X_OK):
        raise AssertionError(f"{MKCERTS} is missing or not executable")
    p = subprocess.run(["bash", MKCERTS, str(directory)], capture_output=True, text=True,
                       timeout=120)
    if p.returncode != 0:
        raise AssertionError(f"mkcerts.sh exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    missing = [n for n in CERT_FILES if not os.path.isfile(os.path.join(str(directory), n))]
    if missing:
        raise AssertionError(f"mkcerts.sh did not write {missing}")
    return Certs(directory)


def non_loopback_ipv4():
    """The first non-loopback IPv4 address `hostname -I` prints, or None."""
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for a in out.split():
        if "." in a and not a.startswith("127."):
            return a
    return None


# ---------------------------------------------------------------- secrets

_SECRETS = set()


def new_secret(name):
    """A fresh password for name, remembered for assert_no_secret. It has
    ':' ',' '=' and '!' in it, which PLAIN and SCRAM carry as they are."""
    s = f"{name}:pw,{secrets.token_hex(6)}=!{secrets.token_hex(4)}"
    _SECRETS.add(s)
    return s


def assert_no_secret(text, where):
    leaked = [s for s in _SECRETS if s in text]
    assert not leaked, f"{where} holds {len(leaked)} password(s) used by the tests"


# ---------------------------------------------------------------- users files

_passwd_has_iterations = None


def passwd_line(eosproxy_bin, user, password, iterations=10000):
    """`eosproxy passwd [--iterations N] USER` with the password on stdin;
    returns the users file line it prints. Falls back to the default
    iteration count when the binary does not take --iterations yet."""
    global _passwd_has_iterations
    if _passwd_has_iterations is not False:
        p = subprocess.run([eosproxy_bin, "passwd", "--iterations", str(iterations), user],
                           input=password + "\n", capture_output=True, text=True, timeout=60)
        if p.returncode == 0:
            _passwd_has_iterations = True
            return _one_line(p.stdout, user)
        if _passwd_has_iterations:
            raise AssertionError(f"eosproxy passwd exited {p.returncode}: {p.stderr}")
        _passwd_has_iterations = False
    p = subprocess.run([eosproxy_bin, "passwd", user], input=password + "\n",
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"eosproxy passwd exited {p.returncode}: {p.stderr}"
    return _one_line(p.stdout, user)


def _one_line(out, user):
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(user + ":"), \
        f"eosproxy passwd printed {len(lines)} lines, not one '{user}:...' line"
    return lines[0]


def write_users_file(path, lines):
    """Writes the users file (mode 0600, as eosproxy wants it); returns path."""
    text = "# test users\n" + "".join(ln + "\n" for ln in lines)
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(str(path), 0o600)
    return str(path)


# ---------------------------------------------------------------- client settings

@dataclass
class Login:
    """How a client connects: security protocol (PLAINTEXT, SSL,
    SASL_PLAINTEXT, SASL_SSL), SASL mechanism and credentials, and TLS files."""
    protocol: str = "PLAINTEXT"
    mechanism: str = None
    user: str = None
    password: str = None
    ca: str = None
    cert: str = None
    key: str = None

    @property
    def sasl(self):
        return self.protocol.startswith("SASL")

    @property
    def tls(self):
        return self.protocol in ("SSL", "SASL_SSL")

    def rdkafka(self):
        """librdkafka properties (confluent-kafka, kcat -X)."""
        c = {"security.protocol": self.protocol.lower()}
        if self.sasl:
            c.update({"sasl.mechanisms": self.mechanism, "sasl.username": self.user,
                      "sasl.password": self.password})
        if self.tls:
            c["ssl.ca.location"] = self.ca
            if self.cert:
                c["ssl.certificate.location"] = self.cert
                c["ssl.key.location"] = self.key
        return c

    def kcat_args(self):
        out = []
        for k, v in self.rdkafka().items():
            out += ["-X", f"{k}={v}"]
        return out

    def kafka_python(self):
        """kafka-python 2.0.2 keyword arguments."""
        c = {"security_protocol": self.protocol}
        if self.sasl:
            c.update({"sasl_mechanism": self.mechanism, "sasl_plain_username": self.user,
                      "sasl_plain_password": self.password})
        if self.tls:
            c.update({"ssl_cafile": self.ca, "ssl_check_hostname": True})
            if self.cert:
                c.update({"ssl_certfile": self.cert, "ssl_keyfile": self.key})
        return c

    def kafkajs(self):
        """The sasl and ssl parts of tests/node/sasl_client.js's spec."""
        spec = {"sasl": None, "ssl": None}
        if self.sasl:
            spec["sasl"] = {"mechanism": self.mechanism.lower(), "username": self.user,
                            "password": self.password}
        if self.tls:
            spec["ssl"] = {"ca": self.ca, "cert": self.cert, "key": self.key}
        return spec


# ---------------------------------------------------------------- the mock's own view

def mock_record_count(mock, topic):
    """Records in topic, from the high watermarks the mock itself reports."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": mock.bootstrap, "group.id": "eosproxy-it-watermarks",
                  "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=15)
        parts = md.topics[topic].partitions
        assert parts, f"mock has no partitions for {topic}"
        total = 0
        for p in parts:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=15)
            total += hi - lo
        return total
    finally:
        c.close()


# ---------------------------------------------------------------- raw SASL frames

def _uvarint(n):
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def _read_uvarint(r):
    shift = value = 0
    while True:
        b = r.take(1)[0]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value
        shift += 7
        if shift > 28:
            raise ValueError("varint too long")


def _skip_tags(r):
    for _ in range(_read_uvarint(r)):
        _read_uvarint(r)
        r.take(_read_uvarint(r))


def sasl_handshake_request(mechanism, version=1, corr=1):
    return request(API_SASL_HANDSHAKE, version, corr, kstr(mechanism))


def parse_sasl_handshake(body):
    """(error_code, [mechanisms]) of a SaslHandshake v0/v1 response."""
    r = Reader(body)
    err = r.i16()
    return err, [r.string() for _ in range(r.i32())]


def sasl_authenticate_request(auth_bytes, version=1, corr=2, client_id="eosproxy-tests"):
    """SaslAuthenticate v0..v2 (v2: request header v2 and compact bytes)."""
    if version < 2:
        return request(API_SASL_AUTHENTICATE, version, corr,
                       struct.pack(">i", len(auth_bytes)) + auth_bytes, client_id)
    payload = struct.pack(">hhi", API_SASL_AUTHENTICATE, version, corr) + kstr(client_id)
    payload += b"\x00"  # header tagged fields
    payload += _uvarint(len(auth_bytes) + 1) + auth_bytes + b"\x00"
    return struct.pack(">i", len(payload)) + payload


def parse_sasl_authenticate(version, body):
    """(error_code, error_message, auth_bytes) of a SaslAuthenticate response
    body (after the correlation id; v2's header tags are skipped here)."""
    r = Reader(body)
    if version >= 2:
        _skip_tags(r)  # response header v1
        err = r.i16()
        n = _read_uvarint(r)
        msg = None if n == 0 else r.take(n - 1).decode(errors="replace")
        auth = r.take(_read_uvarint(r) - 1)
        r.take(8)  # session_lifetime_ms
        _skip_tags(r)
        return err, msg, auth
    err = r.i16()
    msg = r.string()
    n = r.i32()
    auth = b"" if n < 0 else r.take(n)
    if version >= 1:
        r.take(8)
    return err, msg, auth


def plain_token(user, password):
    return b"\0" + user.encode() + b"\0" + password.encode()


def sasl_plain_login(conn, user, password, auth_version=1):
    """SaslHandshake v1 PLAIN then one SaslAuthenticate on conn. Returns
    ("ok", 0, None), ("handshake", error_code, mechanisms),
    ("authenticate", error_code, error_message) or ("closed", None, None)
    when eosproxy closed the connection instead of answering."""
    try:
        return _sasl_plain_login(conn, user, password, auth_version)
    except ConnectionError:
        return "closed", None, None


def _sasl_plain_login(conn, user, password, auth_version):
    conn.send(sasl_handshake_request("PLAIN", 1, corr=11))
    corr, body = conn.recv()
    assert corr == 11, f"SaslHandshake answered with correlation id {corr}"
    err, mechs = parse_sasl_handshake(body)
    if err:
        return "handshake", err, mechs
    conn.send(sasl_authenticate_request(plain_token(user, password), auth_version, corr=12))
    corr, body = conn.recv()
    assert corr == 12, f"SaslAuthenticate answered with correlation id {corr}"
    err, msg, _ = parse_sasl_authenticate(auth_version, body)
    if err:
        return "authenticate", err, msg
    return "ok", 0, None


# ---------------------------------------------------------------- SCRAM (client side)

class ScramLogin:
    """A SCRAM-SHA-256/512 client (RFC 5802) for raw connections; no SASLprep
    (the test passwords are ASCII)."""

    def __init__(self, mechanism, user, password):
        self.hash = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}[mechanism]
        self.user, self.password = user, password
        self.nonce = secrets.token_urlsafe(18)
        self.first_bare = f"n={user.replace('=', '=3D').replace(',', '=2C')},r={self.nonce}"
        self.server_signature = None

    def first(self):
        return ("n,," + self.first_bare).encode()

    def final(self, server_first):
        sf = server_first.decode()
        fields = dict(kv.split("=", 1) for kv in sf.split(","))
        assert fields["r"].startswith(self.nonce), "server nonce does not extend ours"
        salt, iters = base64.b64decode(fields["s"]), int(fields["i"])
        salted = hashlib.pbkdf2_hmac(self.hash, self.password.encode(), salt, iters)
        client_key = hmac.new(salted, b"Client Key", self.hash).digest()
        stored = hashlib.new(self.hash, client_key).digest()
        without_proof = f"c=biws,r={fields['r']}"
        auth_msg = f"{self.first_bare},{sf},{without_proof}".encode()
        sig = hmac.new(stored, auth_msg, self.hash).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        server_key = hmac.new(salted, b"Server Key", self.hash).digest()
        self.server_signature = hmac.new(server_key, auth_msg, self.hash).digest()
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final):
        sf = server_final.decode()
        return sf.startswith("v=") and base64.b64decode(sf[2:]) == self.server_signature


def sasl_scram_login(conn, mechanism, user, password, auth_version=1):
    """SaslHandshake v1 + the SCRAM exchange in SaslAuthenticate frames.
    Returns like sasl_plain_login; a server-final with a wrong signature
    fails the test."""
    conn.send(sasl_handshake_request(mechanism, 1, corr=21))
    _, body = conn.recv()
    err, mechs = parse_sasl_handshake(body)
    if err:
        return "handshake", err, mechs
    sc = ScramLogin(mechanism, user, password)
    conn.send(sasl_authenticate_request(sc.first(), auth_version, corr=22))
    _, body = conn.recv()
    err, msg, server_first = parse_sasl_authenticate(auth_version, body)
    if err:
        return "authenticate", err, msg
    conn.send(sasl_authenticate_request(sc.final(server_first), auth_version, corr=23))
    _, body = conn.recv()
    err, msg, server_final = parse_sasl_authenticate(auth_version, body)
    if err:
        return "authenticate", err, msg
    assert sc.verify(server_final), "eosproxy's SCRAM server signature is wrong"
    return "ok", 0, None


# ---------------------------------------------------------------- TLS

def client_tls_context(ca, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


class TlsConn(Conn):
    """A raw client connection over TLS (host names and IPs verified)."""

    def __init__(self, addr, ctx, server_hostname=None, timeout=20.0):
        host, port = addr.split(",")[0].rsplit(":", 1)
        raw = socket.create_connection((host, int(port)), timeout=timeout)
        try:
            self.sock = ctx.wrap_socket(raw, server_hostname=server_hostname or host)
        except Exception:
            raw.close()
            raise
        self.sock.settimeout(timeout)

    def peer_cn(self):
        cert = self.sock.getpeercert()
        for rdn in cert.get("subject", ()):
            for k, v in rdn:
                if k == "commonName":
                    return v
        return None

    def closed_by_peer(self):
        try:
            return super().closed_by_peer()
        except (ssl.SSLError, OSError):
            return True


def tls_refused(addr, ctx, probe_frame, timeout=15.0):
    """True if eosproxy refuses this TLS client: the handshake fails, or the
    connection is closed before it answers probe_frame (with TLS 1.3 the
    server checks the client's certificate after the client's side of the
    handshake is done)."""
    try:
        c = TlsConn(addr, ctx, timeout=timeout)
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    try:
        c.send(probe_frame)
        c.recv()
        return False
    except socket.timeout:
        return False  # neither answered nor closed: not a refusal
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    finally:
        try:
            c.close()
        except OSError:
            pass
