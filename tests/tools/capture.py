#!/usr/bin/python3
"""capture.py - a recording TCP relay for Kafka frames.

Listens on a local port, relays every connection to an upstream broker and
writes each request and response frame (without its 4-byte size prefix) to
OUTDIR as <n>-<dir>-<api>-v<ver>.bin, where n is a global sequence number,
dir is "req" or "resp", api is Kafka's API name and ver the API version.
Responses are named after the request with the same correlation id on the
same connection.

    /usr/bin/python3 tests/tools/capture.py LISTEN UPSTREAM OUTDIR

LISTEN is a port on 127.0.0.1 or unix:PATH; UPSTREAM is HOST:PORT or
unix:PATH. Unix sockets let the relay sit between network namespaces: the
mock cluster advertises its real ports, so to record every connection run
the client in `unshare -n` with a relay on the advertised port forwarding to
unix:PATH, and a second relay outside listening on unix:PATH.

Used to record golden frames from real clients (see tests/unit/golden).
"""
import os
import socket
import struct
import sys
import threading

API_NAMES = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit",
    9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat",
    13: "LeaveGroup", 14: "SyncGroup", 15: "DescribeGroups", 16: "ListGroups",
    17: "SaslHandshake", 18: "ApiVersions", 19: "CreateTopics", 20: "DeleteTopics",
    22: "InitProducerId", 23: "OffsetForLeaderEpoch", 24: "AddPartitionsToTxn",
    25: "AddOffsetsToTxn", 26: "EndTxn", 28: "TxnOffsetCommit", 32: "DescribeConfigs",
    36: "SaslAuthenticate", 37: "CreatePartitions", 42: "DeleteGroups",
    60: "DescribeCluster",
}

seq_lock = threading.Lock()
seq = [0]


def next_seq():
    with seq_lock:
        seq[0] += 1
        return seq[0]


def save(outdir, direction, api, ver, frame):
    name = "%04d-%s-%s-v%d.bin" % (next_seq(), direction,
                                   API_NAMES.get(api, "api%d" % api), ver)
    with open(os.path.join(outdir, name), "wb") as f:
        f.write(frame)


class Frames:
    """Cuts a byte stream into size-prefixed frames."""

    def __init__(self):
        self.buf = b""

    def feed(self, data):
        self.buf += data
        out = []
        while len(self.buf) >= 4:
            (n,) = struct.unpack(">i", self.buf[:4])
            if n < 0 or len(self.buf) < 4 + n:
                break
            out.append(self.buf[4:4 + n])
            self.buf = self.buf[4 + n:]
        return out


def pump(src, dst, on_frame):
    frames = Frames()
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            for fr in frames.feed(data):
                on_frame(fr)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def connect(upstream):
    if upstream.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(upstream[5:])
        return s
    host, _, port = upstream.rpartition(":")
    return socket.create_connection((host, int(port)))


def listen(spec):
    if spec.startswith("unix:"):
        path = spec[5:]
        if os.path.exists(path):
            os.unlink(path)
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(path)
    else:
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", int(spec)))
    ls.listen(16)
    return ls


def handle(client, upstream, outdir):
    try:
        server = connect(upstream)
    except OSError as e:
        print("upstream connect failed:", e, file=sys.stderr)
        client.close()
        return
    inflight = {}  # correlation id -> (api, ver)
    lock = threading.Lock()

    def on_request(fr):
        if len(fr) < 8:
            return
        api, ver, corr = struct.unpack(">hhi", fr[:8])
        with lock:
            inflight[corr] = (api, ver)
        save(outdir, "req", api, ver, fr)

    def on_response(fr):
        if len(fr) < 4:
            return
        (corr,) = struct.unpack(">i", fr[:4])
        with lock:
            api, ver = inflight.pop(corr, (-1, -1))
        save(outdir, "resp", api, ver, fr)

    t = threading.Thread(target=pump, args=(server, client, on_response), daemon=True)
    t.start()
    pump(client, server, on_request)
    t.join()
    client.close()
    server.close()


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    spec, upstream, outdir = sys.argv[1:4]
    os.makedirs(outdir, exist_ok=True)
    ls = listen(spec)
    print("capture: %s -> %s into %s" % (spec, upstream, outdir), flush=True)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c, upstream, outdir), daemon=True).start()


if __name__ == "__main__":
    main()
