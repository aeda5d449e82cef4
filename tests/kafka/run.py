#!/usr/bin/python3
"""run.py - `make run-kafka`: eosproxy on 127.0.0.1:9092 in front of a local
real Apache Kafka broker (one combined KRaft broker+controller from
tests/kafka/.cache, started here with its data in a scratch directory).

    /usr/bin/python3 tests/kafka/run.py EOSPROXY_BIN [CONFIG]

CONFIG defaults to conf/demo.yaml; its upstream section is replaced by the
broker's PLAINTEXT listener. Broker node 1 is served on broker_port_base + 1.
Ctrl-C (or SIGTERM) stops eosproxy, then the broker, and removes the scratch
directory. The broker also listens on SASL_PLAINTEXT, SSL and SASL_SSL (the
addresses and the test users are printed) for trying upstream.tls and
upstream.sasl by hand.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from kafka_real import LISTENERS, KafkaCluster  # noqa: E402


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    eosproxy = sys.argv[1]
    conf_path = sys.argv[2] if len(sys.argv) == 3 else os.path.join(ROOT, "conf", "demo.yaml")
    with open(conf_path) as f:
        cfg = yaml.safe_load(f)
    work = tempfile.mkdtemp(prefix="eosproxy-run-kafka-")
    cluster = KafkaCluster(work, nodes=1)
    proxy = None

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        print(f"run-kafka: starting Apache Kafka (data in {work}) ...", flush=True)
        cluster.start()
        for name in LISTENERS:
            print(f"run-kafka: broker {name:15} {cluster.listener(name)}")
        print("run-kafka: users (PLAIN and SCRAM): "
              + ", ".join(f"{u}/{pw}" for u, pw in cluster.users.items())
              + f"; CA {cluster.certs.ca}", flush=True)
        cfg["upstream"] = {"bootstrap": cluster.bootstrap}
        path = os.path.join(work, "eosproxy.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        listen = cfg.get("listen", {})
        print(f"run-kafka: eosproxy on {listen.get('host', '127.0.0.1')}:{listen.get('port', 9092)}"
              " (Ctrl-C stops everything)", flush=True)
        proxy = subprocess.Popen([eosproxy, "-c", path])
        return proxy.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if proxy and proxy.poll() is None:
            proxy.send_signal(signal.SIGTERM)
            try:
                proxy.wait(30)
            except subprocess.TimeoutExpired:
                proxy.kill()
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
