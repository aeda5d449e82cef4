#!/usr/bin/env bash
# Direct-vs-eosproxy benchmark against a 3-broker librdkafka mock cluster.
#
#   bash tests/bench/run.sh          (or: make bench)
#
# Starts build/mockcluster and build/eosproxy (a temporary config, free
# ports), then runs each case direct and through eosproxy, alternating the
# order every round to cancel the machine's noise, and prints the medians as
# a Markdown table. Every run writes to a fresh topic (the mock keeps only
# about 5 MB per partition).
#
# Knobs (environment): ROUNDS (5), COUNT_1K (1000000), COUNT_100 (3000000),
# COUNT_LAT (5000), PARTITIONS (6), EOSPROXY_BIN, MOCKCLUSTER_BIN, BENCH_BIN.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

ROUNDS=${ROUNDS:-5}
COUNT_1K=${COUNT_1K:-1000000}
COUNT_100=${COUNT_100:-3000000}
COUNT_LAT=${COUNT_LAT:-5000}
PARTITIONS=${PARTITIONS:-6}
EOSPROXY_BIN=${EOSPROXY_BIN:-$ROOT/build/eosproxy}
MOCKCLUSTER_BIN=${MOCKCLUSTER_BIN:-$ROOT/build/mockcluster}
BENCH_BIN=${BENCH_BIN:-$ROOT/build/bench}
PY=/usr/bin/python3

for b in "$MOCKCLUSTER_BIN" "$BENCH_BIN"; do
    [ -x "$b" ] || { echo "bench: $b is missing (run: make build/mockcluster build/bench)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/eosproxy-bench.XXXXXX)
MOCKPID=""
PROXY_PID=""
cleanup() {
    set +e
    if [ -n "$PROXY_PID" ] && kill -0 "$PROXY_PID" 2>/dev/null; then
        kill -TERM "$PROXY_PID"
        for _ in $(seq 100); do kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PROXY_PID" 2>/dev/null
    fi
    if [ -n "$MOCKPID" ] && kill -0 "$MOCKPID" 2>/dev/null; then
        kill -TERM "$MOCKPID"
        for _ in $(seq 50); do kill -0 "$MOCKPID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$MOCKPID" 2>/dev/null
    fi
    if [ "${KEEP_WORK:-0}" = 1 ]; then
        echo "bench: logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- mock cluster (a coprocess, so that its stdin stays open for commands)
coproc MOCK { exec "$MOCKCLUSTER_BIN" --brokers 3 2>"$WORK/mock.log"; }
MOCKPID=$MOCK_PID
MOCK_IN=${MOCK[1]}
MOCK_OUT=${MOCK[0]}
read -r -t 20 word BOOTSTRAP <&"$MOCK_OUT" || { echo "bench: mockcluster did not start" >&2; cat "$WORK/mock.log" >&2; exit 1; }
[ "$word" = BOOTSTRAP ] || { echo "bench: unexpected mockcluster output: $word" >&2; exit 1; }

mock_cmd() {
    local answer
    echo "$*" >&"$MOCK_IN"
    read -r -t 20 answer <&"$MOCK_OUT" || { echo "bench: mockcluster: no answer to '$*'" >&2; exit 1; }
    [ "$answer" = OK ] || { echo "bench: mockcluster: '$*': $answer" >&2; exit 1; }
}

# ---- free ports: a bootstrap port, an admin port and base+1..base+3 for the brokers
read -r LISTEN_PORT ADMIN_PORT BROKER_BASE < <($PY - <<'EOF'
import socket, random
held = []
def free(port=0):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); held.append(s); return s.getsockname()[1]
a, b = free(), free()
for _ in range(200):
    base = random.randint(10000, 32000)
    try:
        for n in range(0, 4): free(base + n)
        break
    except OSError:
        continue
print(a, b, base)
EOF
)

# ---- eosproxy
PROXY=""
PROXY_NOTE=""
PROXY_FAILED=0
if [ ! -x "$EOSPROXY_BIN" ]; then
    PROXY_NOTE="eosproxy MISSING: $EOSPROXY_BIN does not exist (run make build/eosproxy); only the direct half ran"
else
    cat >"$WORK/bench.yaml" <<EOF
service: bench
listen:
  host: 127.0.0.1
  port: $LISTEN_PORT
  advertised_host: 127.0.0.1
  broker_port_base: $BROKER_BASE
upstream:
  bootstrap: "$BOOTSTRAP"
admin:
  listen: "127.0.0.1:$ADMIN_PORT"
log:
  level: warn
  format: text
topics:
  - match: "bench-tpidem-*"
    delivery: idempotent
EOF
    "$EOSPROXY_BIN" -c "$WORK/bench.yaml" >"$WORK/proxy.log" 2>&1 &
    PROXY_PID=$!
    for _ in $(seq 200); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$ADMIN_PORT/readyz" 2>/dev/null; then
            PROXY="127.0.0.1:$LISTEN_PORT"
            break
        fi
        kill -0 "$PROXY_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$PROXY" ]; then
        PROXY_NOTE="eosproxy FAILED to become ready (its log tail is on stderr); only the direct half ran"
        PROXY_FAILED=1
        tail -n 30 "$WORK/proxy.log" >&2 || true
    fi
fi
[ -n "$PROXY_NOTE" ] && echo "bench: $PROXY_NOTE" >&2

# ---- runs
SEQ=0
run_case() { # round case target bootstrap -> appends the JSON line to $WORK/results
    local round=$1 case=$2 target=$3 bs=$4 topic args
    SEQ=$((SEQ + 1))
    topic="bench-$case-$target-$SEQ"
    mock_cmd topic "$topic" "$PARTITIONS"
    case $case in
        tp1k) args=(--mode throughput --size 1024 --count "$COUNT_1K" --acks all --linger-ms 5) ;;
        tp100) args=(--mode throughput --size 100 --count "$COUNT_100" --acks all --linger-ms 5) ;;
        # A non-idempotent producer; through eosproxy its topic is `delivery: idempotent`.
        tpidem) args=(--mode throughput --size 1024 --count "$COUNT_1K" --acks all --linger-ms 5 --idempotence false) ;;
        lat) args=(--mode latency --size 100 --count "$COUNT_LAT" --acks all) ;;
    esac
    local out
    if [ "$target" = eosproxy ] && ! kill -0 "$PROXY_PID" 2>/dev/null; then
        wait "$PROXY_PID" && rc=0 || rc=$?
        echo "bench: eosproxy DIED (exit status $rc) before $case; its log:" >&2
        tail -n 40 "$WORK/proxy.log" >&2
        PROXY_PID=""; KEEP_WORK=1
        exit 1
    fi
    if ! out=$("$BENCH_BIN" --bootstrap "$bs" --topic "$topic" "${args[@]}" 2>"$WORK/bench.err"); then
        echo "bench: FAILED: $case via $target (bench stderr, last lines):" >&2
        tail -n 5 "$WORK/bench.err" >&2
        if [ "$target" = eosproxy ]; then
            if kill -0 "$PROXY_PID" 2>/dev/null; then
                echo "bench: eosproxy is still running; its log:" >&2
            else
                wait "$PROXY_PID" && rc=0 || rc=$?
                echo "bench: eosproxy DIED (exit status $rc); its log:" >&2
                PROXY_PID=""
            fi
            tail -n 40 "$WORK/proxy.log" >&2
        fi
        KEEP_WORK=1
        exit 1
    fi
    echo "  $case $target: $out" >&2
    printf '{"round":%d,"case":"%s","target":"%s","result":%s}\n' "$round" "$case" "$target" "$out" >>"$WORK/results"
}

START=$(date +%s)
for r in $(seq "$ROUNDS"); do
    echo "bench: round $r/$ROUNDS" >&2
    for c in tp1k tp100 tpidem lat; do
        if [ -z "$PROXY" ]; then
            run_case "$r" "$c" direct "$BOOTSTRAP"
        elif [ $((r % 2)) = 1 ]; then
            run_case "$r" "$c" direct "$BOOTSTRAP"
            run_case "$r" "$c" eosproxy "$PROXY"
        else
            run_case "$r" "$c" eosproxy "$PROXY"
            run_case "$r" "$c" direct "$BOOTSTRAP"
        fi
    done
done
ELAPSED=$(($(date +%s) - START))

PROXY_EXIT=""
if [ -n "$PROXY_PID" ] && kill -0 "$PROXY_PID" 2>/dev/null; then
    kill -TERM "$PROXY_PID"
    set +e
    wait "$PROXY_PID"
    PROXY_EXIT=$?
    set -e
    PROXY_PID=""
fi

# ---- table
VERSION=""
[ -x "$EOSPROXY_BIN" ] && VERSION=$("$EOSPROXY_BIN" --version 2>&1 | head -n1 || true)
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
export ROUNDS COUNT_1K COUNT_100 COUNT_LAT PARTITIONS ELAPSED PROXY_NOTE VERSION CPU PROXY_EXIT
$PY - "$WORK/results" <<'EOF'
import json, os, statistics, sys, subprocess, datetime, platform
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(case, target, key):
    v = [r["result"][key] for r in rows if r["case"] == case and r["target"] == target]
    return statistics.median(v) if v else None
def paired(case, key, op):
    """Median over rounds of op(eosproxy, direct), each pair measured back to back."""
    by = {}
    for r in rows:
        if r["case"] == case:
            by.setdefault(r["round"], {})[r["target"]] = r["result"][key]
    v = [op(p["eosproxy"], p["direct"]) for p in by.values() if len(p) == 2]
    return statistics.median(v) if v else None
env = os.environ
print()
print("## eosproxy benchmark: direct vs through eosproxy (librdkafka mock, 3 brokers)")
print()
print(f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
print(f"- machine: {os.cpu_count()} CPUs (nproc {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()}), {env['CPU']}, kernel {platform.release()}")
print(f"- eosproxy: {env['VERSION'] or 'n/a'}")
print(f"- method: {env['ROUNDS']} rounds, direct and eosproxy back to back in alternating order; "
      "direct/eosproxy columns are medians, ratio and added latency are medians of the per-round pairs; producer acks=all, "
      f"fresh {env['PARTITIONS']}-partition topic per run; throughput linger.ms=5 "
      f"({env['COUNT_1K']} x 1 KB, {env['COUNT_100']} x 100 B records); latency: {env['COUNT_LAT']} x 100 B, one in flight")
if env.get("PROXY_NOTE"):
    print(f"- **{env['PROXY_NOTE']}**")
print()
print("| case | direct | eosproxy | ratio |")
print("|---|---|---|---|")
def fmt(x, unit):
    return "n/a" if x is None else f"{x:,.0f} {unit}"
for case, label, size in (("tp1k", "throughput, 1 KB records", 1024), ("tp100", "throughput, 100 B records", 100),
                          ("tpidem", "throughput, 1 KB, non-idempotent client, `delivery: idempotent` via eosproxy", 1024)):
    d, p = med(case, "direct", "mb_per_s"), med(case, "eosproxy", "mb_per_s")
    dr, pr = med(case, "direct", "records_per_s"), med(case, "eosproxy", "records_per_s")
    ds = "n/a" if d is None else f"{d:,.0f} MB/s ({dr/1e3:,.0f} k rec/s)"
    ps = "n/a" if p is None else f"{p:,.0f} MB/s ({pr/1e3:,.0f} k rec/s)"
    ratio = paired(case, "mb_per_s", lambda a, b: a / b)
    ratio = "n/a" if ratio is None else f"{ratio:.2f}"
    print(f"| {label} | {ds} | {ps} | {ratio} |")
d50, d99 = med("lat", "direct", "p50_us"), med("lat", "direct", "p99_us")
p50, p99 = med("lat", "eosproxy", "p50_us"), med("lat", "eosproxy", "p99_us")
ds = "n/a" if d50 is None else f"p50 {d50:,.0f} µs / p99 {d99:,.0f} µs"
ps = "n/a" if p50 is None else f"p50 {p50:,.0f} µs / p99 {p99:,.0f} µs"
a50 = paired("lat", "p50_us", lambda a, b: a - b)
a99 = paired("lat", "p99_us", lambda a, b: a - b)
ratio = "n/a" if a50 is None else f"{a50:+,.0f} µs p50 / {a99:+,.0f} µs p99"
print(f"| latency, 100 B, one at a time | {ds} | {ps} | {ratio} |")
print()
print(f"Run time: {env['ELAPSED']} s.", end="")
if env.get("PROXY_EXIT"):
    print(f" eosproxy exit code after SIGTERM: {env['PROXY_EXIT']}.", end="")
print()
EOF
# ---- consumer dedup (needs redis-server; its own mock, eosproxy and Redis)
if [ "$PROXY_FAILED" = 0 ] && [ -x "$EOSPROXY_BIN" ] && command -v redis-server >/dev/null; then
    echo "bench: consumer dedup" >&2
    echo
    echo "| case | pass-through topic | dedup topic | ratio |"
    echo "|---|---|---|---|"
    EOSPROXY_BIN="$EOSPROXY_BIN" MOCKCLUSTER_BIN="$MOCKCLUSTER_BIN" $PY tests/bench/dedup.py
fi

if [ -f "$WORK/proxy.log" ] && grep -qE 'AddressSanitizer|LeakSanitizer|runtime error' "$WORK/proxy.log"; then
    echo "bench: eosproxy's log has a sanitizer report:" >&2
    grep -m1 -A30 -E 'AddressSanitizer|LeakSanitizer|runtime error' "$WORK/proxy.log" >&2
    exit 1
fi
if [ -n "$PROXY_EXIT" ] && [ "$PROXY_EXIT" != 0 ]; then
    echo "bench: eosproxy exited $PROXY_EXIT after SIGTERM (expected 0); its log:" >&2
    tail -n 30 "$WORK/proxy.log" >&2
    exit 1
fi
if [ "$PROXY_FAILED" = 1 ]; then
    echo "bench: eosproxy did not start, so the table has no eosproxy column" >&2
    exit 1
fi
