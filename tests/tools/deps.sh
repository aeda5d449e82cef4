#!/usr/bin/env bash
# Installs what eosproxy needs to build, run and test, when it is missing.
# Debian packages via apt-get (as root), kafkajs via npm into tests/node,
# Apache Kafka (broker and Java client) from Maven Central into
# tests/kafka/.cache (tests/kafka/fetch.sh), for the real-broker tests.
set -euo pipefail
cd "$(dirname "$0")/../.."

APT_PKGS="build-essential pkg-config clang libclang-rt-14-dev libevent-dev libhiredis-dev
 librdkafka-dev libssl-dev libyaml-dev zlib1g-dev libsnappy-dev liblz4-dev libzstd-dev
 kcat python3-kafka python3-confluent-kafka python3-pytest python3-yaml python3-snappy
 python3-lz4 python3-zstandard redis-server redis-tools nodejs npm openssl hostname
 prometheus docker-compose python3-venv"
# The real-Kafka tests: the broker and the Java harness run on Java 17.
APT_PKGS="$APT_PKGS openjdk-17-jdk-headless maven python3-venv"

missing=""
for p in $APT_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    # node/npm may come from elsewhere (a nodesource or image install): accept them on PATH.
    filtered=""
    for p in $missing; do
        case "$p" in
            nodejs) command -v node >/dev/null || filtered="$filtered $p" ;;
            npm) command -v npm >/dev/null || filtered="$filtered $p" ;;
            *) filtered="$filtered $p" ;;
        esac
    done
    missing="$filtered"
fi
if [ -n "$missing" ]; then
    echo "deps: installing:$missing"
    if [ "$(id -u)" != 0 ]; then
        echo "deps: not root; install these Debian packages first:$missing" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ ! -d tests/node/node_modules/kafkajs ]; then
    echo "deps: npm install (tests/node)"
    (cd tests/node && npm install --no-audit --no-fund --silent)
fi
# Java 17 and mvn come from Debian above; the jars only once (fetch.sh
# does nothing when its cache is complete; Maven keeps them in ~/.m2 too).
bash tests/kafka/fetch.sh >/dev/null
echo "deps: ok"
