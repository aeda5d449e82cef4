#!/usr/bin/env bash
# fetch.sh - Apache Kafka for the test bed, fetched once into a git-ignored
# cache (tests/kafka/.cache), and the Java test harness compiled against it.
#
#   tests/kafka/.cache/kafka-<version>/libs/     the broker (kafka_2.13), its
#                                                 runtime jars, kafka-clients
#   tests/kafka/.cache/kafka-<version>/harness/  tests/java/*.java, compiled
#   tests/kafka/.cache/venv-confluent-<version>/  a Python venv with a current
#                                                 confluent-kafka and kafka-python 3.x (PyPI,
#                                                 its own librdkafka 2.x)
#
# Needs java (17+), javac and mvn on PATH (tests/tools/deps.sh installs them).
# The jars come from Maven Central through `mvn dependency:copy-dependencies`
# on tests/kafka/pom.xml (Maven keeps its own copy in ~/.m2). Each step is
# skipped when its result is already there and newer than its inputs; a
# failed or interrupted step leaves nothing half-made behind. Prints the
# libs directory on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
[ -n "$version" ] || { echo "fetch.sh: no kafka.version in pom.xml" >&2; exit 1; }
dest="$here/.cache/kafka-$version"
libs="$dest/libs"
harness="$dest/harness"
mkdir -p "$dest"

# One run at a time (make and pytest may both call this).
exec 9>"$dest/.lock"
flock 9

for tool in java javac mvn; do
    command -v "$tool" >/dev/null || { echo "fetch.sh: $tool is not installed (tests/tools/deps.sh)" >&2; exit 1; }
done

if [ ! -f "$libs/.complete" ] || [ "$here/pom.xml" -nt "$libs/.complete" ]; then
    echo "fetch.sh: Apache Kafka $version from Maven Central into ${libs#"$root"/}" >&2
    tmp=$(mktemp -d "$dest/.libs.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    if ! mvn -B -f "$here/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$tmp" >"$dest/mvn.log" 2>&1; then
        tail -n 40 "$dest/mvn.log" >&2
        echo "fetch.sh: mvn failed (whole log: ${dest#"$root"/}/mvn.log)" >&2
        exit 1
    fi
    ls "$tmp"/kafka_2.13-"$version".jar "$tmp"/kafka-clients-"$version".jar >/dev/null
    touch "$tmp/.complete"
    rm -rf "$libs"
    mv "$tmp" "$libs"
    trap - EXIT
fi

srcs=$(ls "$root"/tests/java/*.java)
stale=0
[ -f "$harness/.complete" ] || stale=1
for s in $srcs "$libs/.complete"; do
    if [ "$s" -nt "$harness/.complete" ]; then stale=1; fi
done
if [ "$stale" = 1 ]; then
    echo "fetch.sh: javac tests/java -> ${harness#"$root"/}" >&2
    tmp=$(mktemp -d "$dest/.harness.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    # shellcheck disable=SC2086
    javac -nowarn -encoding UTF-8 --release 17 -cp "$libs/*" -d "$tmp" $srcs >&2
    touch "$tmp/.complete"
    rm -rf "$harness"
    mv "$tmp" "$harness"
    trap - EXIT
fi

# A newer Python client than Debian's confluent-kafka 1.7 (librdkafka 2.0.2).
ck_version=2.16.1
venv="$here/.cache/venv-confluent-$ck_version"
if [ ! -f "$venv/.complete" ]; then
    echo "fetch.sh: confluent-kafka $ck_version from PyPI into ${venv#"$root"/}" >&2
    rm -rf "$venv"
    if ! { /usr/bin/python3 -m venv "$venv" &&
        "$venv/bin/pip" install -q --disable-pip-version-check "confluent-kafka==$ck_version"; } >&2; then
        rm -rf "$venv"
        # Only test_current_confluent_kafka needs it: that test fails, not the rest.
        echo "fetch.sh: WARNING: could not make the confluent-kafka venv" >&2
    else
        touch "$venv/.complete"
    fi
fi
# And a current kafka-python (3.x; Debian's is 2.0.2), in the same venv.
kp_version=3.0.12
if [ -f "$venv/.complete" ] && [ ! -f "$venv/.kafka-python-$kp_version" ]; then
    echo "fetch.sh: kafka-python $kp_version from PyPI into ${venv#"$root"/}" >&2
    if "$venv/bin/pip" install -q --disable-pip-version-check "kafka-python==$kp_version" >&2; then
        touch "$venv/.kafka-python-$kp_version"
    else
        # Only test_real_kafka_python3.py needs it: that test fails, not the rest.
        echo "fetch.sh: WARNING: could not install kafka-python $kp_version" >&2
    fi
fi
echo "$libs"
