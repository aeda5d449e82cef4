"""Garbage from clients: eosproxy closes the connection, stays up, and never
forwards what it cannot parse (the mock would wedge for good if it did)."""

import socket
import struct

import pytest

from helpers import (api_versions_request, kcat_roundtrip, kstr, metadata_request,
                     random_bytes, roundtrip, unique)

MAX_FRAME = 1024 * 1024


def closed_by_peer(addr, payload, timeout=20.0):
    """Sends payload, then waits for eosproxy to close: True if it did.

    Whatever eosproxy answers before closing is read and ignored; only a
    connection that stays open until the timeout counts as not closed."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.settimeout(timeout)
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            return True
        try:
            while True:
                if not s.recv(65536):
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def random_frame(seed, n=512):
    """A well-sized frame with a random body and an API key no Kafka has."""
    body = bytearray(random_bytes(seed, n))
    body[0] = 0x80 | body[0]  # api key < 0
    return struct.pack(">i", len(body)) + bytes(body)


def valid_header_random_body(api_key, version, seed, n=300):
    """A real API's request header followed by a random body (seeded, so
    reproducible; the first bytes never form a null array)."""
    body = struct.pack(">hhi", api_key, version, 5) + kstr("eosproxy-tests")
    body += b"\x7f" + random_bytes(seed, n)
    return struct.pack(">i", len(body)) + body


def truncated_metadata():
    """Metadata v1 claiming 3 topics but carrying one and half a name."""
    body = struct.pack(">hhi", 3, 1, 99) + kstr("eosproxy-tests")
    body += struct.pack(">i", 3) + kstr("topic-a") + struct.pack(">h", 40) + b"topic-b"
    return struct.pack(">i", len(body)) + body


def unknown_api_key():
    body = struct.pack(">hhi", 9999, 0, 1) + kstr("eosproxy-tests")
    return struct.pack(">i", len(body)) + body


BAD_INPUTS = {
    "random-bytes": random_bytes(1, 4096),
    "random-frame": random_frame(2),
    "produce-v3-random-body": valid_header_random_body(0, 3, 3),
    "produce-v7-random-body": valid_header_random_body(0, 7, 4),
    "metadata-v1-random-body": valid_header_random_body(3, 1, 5),
    "fetch-v11-random-body": valid_header_random_body(1, 11, 6),
    "joingroup-v5-random-body": valid_header_random_body(11, 5, 7),
    "unknown-api-key": unknown_api_key(),
    "unsupported-version": valid_header_random_body(3, 999, 8, n=0),
    "truncated-metadata": truncated_metadata(),
    "frame-over-max-frame-bytes": struct.pack(">i", MAX_FRAME + 1) + b"\0" * 64,
    "huge-declared-size": struct.pack(">i", 0x7FFFFFF0) + b"\0" * 16,
    "negative-size": struct.pack(">i", -16) + b"\0" * 16,
    "zero-size": struct.pack(">i", 0),
    "http-request": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.fixture
def hardened(proxy_factory, needs_proxy):
    return proxy_factory(**{"listen.max_frame_bytes": MAX_FRAME})


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_garbage_is_closed_and_proxy_survives(mock, hardened, name):
    payload = BAD_INPUTS[name]
    targets = [hardened.bootstrap, hardened.broker_addr(1)]
    closed_before = hardened.metrics().get_value("eosproxy_client_connections_closed_total",
                                                 reason="protocol")
    for addr in targets:
        assert closed_by_peer(addr, payload), f"{name}: {addr} kept the connection open"
        assert hardened.alive(), f"eosproxy died on {name}:\n{hardened.log[-3000:]}"
        # A well-formed client on a new connection is still served.
        corr, _ = roundtrip(addr, api_versions_request(corr=1234))
        assert corr == 1234

    closed_after = hardened.metrics().get_value("eosproxy_client_connections_closed_total",
                                                reason="protocol")
    assert closed_after >= closed_before + len(targets), \
        f"protocol closes counted {closed_before} -> {closed_after}"

    # The cluster behind is healthy (garbage never reached it): a full round trip.
    kcat_roundtrip(hardened.bootstrap, mock.topic(unique("bad"), 2))
    kcat_roundtrip(mock.bootstrap, mock.topic(unique("bad-direct"), 2))


def test_garbage_after_a_good_request_on_same_connection(mock, hardened):
    """A valid request first, then garbage: eosproxy still closes, still works."""
    host, port = hardened.bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=20) as s:
        s.settimeout(20)
        s.sendall(metadata_request(1, corr=3))
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        resp = b""
        while len(resp) < size:
            resp += s.recv(size - len(resp))
        assert struct.unpack(">i", resp[:4])[0] == 3
        s.sendall(unknown_api_key())
        try:
            while s.recv(65536):
                pass
        except ConnectionResetError:
            pass
    assert hardened.alive()
    kcat_roundtrip(hardened.bootstrap, mock.topic(unique("bad2"), 2))
