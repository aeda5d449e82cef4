#!/usr/bin/env bash
# Direct-vs-eosproxy benchmark against a 3-broker librdkafka mock cluster.
#
#   bash tests/bench/run.sh          (or: make bench)
#
# Starts build/mockcluster and build/eosproxy (a temporary config, free
# ports), then runs each case direct and through eosproxy, alternating the
# order every round to cancel the machine's noise, and prints the medians as
# a Markdown table, then eosproxy's own CPU time per byte relayed (from
# /proc/<pid>/stat: hardware cycle counters are often not readable in a
# VM) and as cycles at the nominal clock. Every run writes to a fresh topic
# (the mock keeps only about 5 MB per partition).
#
# What security costs: a second eosproxy in front of the same mock has
# listen.tls (tests/tools/mkcerts.sh certificates), auth.users_file (made
# with `eosproxy passwd`, default iterations) and auth.acls allowing the
# bench-* topics to user "bench". The 1 KB throughput case runs through both
# eosproxy processes in alternating order, the same client with SASL_SSL and
# SCRAM-SHA-256 on the second. A produce to a topic outside the ACL must be
# refused, and the second eosproxy's metrics must show the SCRAM logins,
# the TLS handshakes and that refusal, or the run fails. At the end,
# tests/bench/logins.py measures logins per second (PLAIN, SCRAM-SHA-256).
#
# Last, tests/bench/real.py runs Kafka's own ProducerPerformance and
# ConsumerPerformance direct and through eosproxy against a real Apache
# Kafka 4 broker (tests/kafka/.cache, fetched on first use) and prints its
# own table; a failed case there fails this script.
#
# Knobs (environment): ROUNDS (5), COUNT_1K (1000000), COUNT_100 (3000000),
# COUNT_LAT (5000), PARTITIONS (6), EOSPROXY_BIN, MOCKCLUSTER_BIN, BENCH_BIN;
# logins.py reads SEQ_SECONDS, CONC_SECONDS, CONCURRENCY (see its header);
# BENCH_REAL (1; 0 skips the real-Kafka part), which reads REAL_ROUNDS,
# REAL_COUNT, REAL_COUNT_CONSUME and more (see tests/bench/real.py's header).
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
SEC_PID=""
stop_pid() { # pid: SIGTERM, up to 10 s, then SIGKILL
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 0
    kill -TERM "$1"
    for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null
}
cleanup() {
    set +e
    stop_pid "$PROXY_PID"
    stop_pid "$SEC_PID"
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

# ---- free ports, for each eosproxy (plaintext, secure): a bootstrap port,
# an admin port and base+1..base+3 for the brokers
read -r LISTEN_PORT ADMIN_PORT BROKER_BASE SEC_PORT SEC_ADMIN SEC_BASE < <($PY - <<'EOF'
import socket, random
held = []
def free(port=0):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); held.append(s); return s.getsockname()[1]
def base():
    for _ in range(200):
        b = random.randint(10000, 32000)
        try:
            for n in range(0, 4): free(b + n)
            return b
        except OSError:
            continue
    raise SystemExit("bench: no free port range")
out = []
for _ in range(2):
    out += [free(), free(), base()]
print(*out)
EOF
)

# Waits until the eosproxy with pid $1 answers /readyz on admin port $2: 0,
# or 1 if it exited or 20 s passed.
wait_ready() {
    for _ in $(seq 200); do
        curl -fsS -o /dev/null "http://127.0.0.1:$2/readyz" 2>/dev/null && return 0
        kill -0 "$1" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

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
    if wait_ready "$PROXY_PID" "$ADMIN_PORT"; then
        PROXY="127.0.0.1:$LISTEN_PORT"
    else
        PROXY_NOTE="eosproxy FAILED to become ready (its log tail is on stderr); only the direct half ran"
        PROXY_FAILED=1
        tail -n 30 "$WORK/proxy.log" >&2 || true
    fi
fi
[ -n "$PROXY_NOTE" ] && echo "bench: $PROXY_NOTE" >&2

# ---- the secure eosproxy: TLS listener, SASL users, ACLs (only with the first one)
SECURE=""
SEC_FAILED=0
SEC_USER=bench
SEC_ITERATIONS=""
SEC_X=()
if [ -n "$PROXY" ]; then
    SEC_PASSWORD=$($PY -c 'import secrets; print(secrets.token_urlsafe(18))')
    if ! bash tests/tools/mkcerts.sh "$WORK/certs" >"$WORK/mkcerts.log" 2>&1; then
        echo "bench: mkcerts.sh FAILED:" >&2
        cat "$WORK/mkcerts.log" >&2
        SEC_FAILED=1
    elif ! printf '%s\n' "$SEC_PASSWORD" | "$EOSPROXY_BIN" passwd "$SEC_USER" >"$WORK/users" 2>"$WORK/passwd.err"; then
        echo "bench: eosproxy passwd FAILED: $(cat "$WORK/passwd.err")" >&2
        SEC_FAILED=1
    else
        chmod 600 "$WORK/users"
        SEC_ITERATIONS=$(cut -d: -f2 "$WORK/users" | cut -d'$' -f2)
        cat >"$WORK/secure.yaml" <<EOF
service: bench-secure
listen:
  host: 127.0.0.1
  port: $SEC_PORT
  advertised_host: 127.0.0.1
  broker_port_base: $SEC_BASE
  tls:
    cert_file: $WORK/certs/server.pem
    key_file: $WORK/certs/server.key
upstream:
  bootstrap: "$BOOTSTRAP"
admin:
  listen: "127.0.0.1:$SEC_ADMIN"
log:
  level: warn
  format: text
auth:
  users_file: $WORK/users
  acls:
    - user: $SEC_USER
      produce: ["bench-*"]
EOF
        "$EOSPROXY_BIN" -c "$WORK/secure.yaml" >"$WORK/secure.log" 2>&1 &
        SEC_PID=$!
        if wait_ready "$SEC_PID" "$SEC_ADMIN"; then
            SECURE="127.0.0.1:$SEC_PORT"
            SEC_X=(-X security.protocol=SASL_SSL -X sasl.mechanisms=SCRAM-SHA-256
                -X "sasl.username=$SEC_USER" -X "sasl.password=$SEC_PASSWORD"
                -X "ssl.ca.location=$WORK/certs/ca.pem")
        else
            echo "bench: the secure eosproxy FAILED to become ready; its log tail:" >&2
            tail -n 30 "$WORK/secure.log" >&2 || true
            SEC_FAILED=1
        fi
    fi
fi

# ---- runs
SEQ=0
# The pid and the log of target's eosproxy (nothing for direct).
target_pid() { case $1 in eosproxy) echo "$PROXY_PID" ;; secure) echo "$SEC_PID" ;; esac; }
target_log() { case $1 in eosproxy) echo "$WORK/proxy.log" ;; secure) echo "$WORK/secure.log" ;; esac; }
# After a wait on target's eosproxy: its pid is no longer ours to signal.
forget_pid() { case $1 in eosproxy) PROXY_PID="" ;; secure) SEC_PID="" ;; esac; }
# CPU time (user + system, clock ticks) pid has used so far; 0 without a pid.
cpu_ticks() { if [ -n "$1" ]; then awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; else echo 0; fi; }

run_case() { # round case target bootstrap -> appends the JSON line to $WORK/results
    local round=$1 case=$2 target=$3 bs=$4 topic args pid log ticks0
    pid=$(target_pid "$target")
    log=$(target_log "$target")
    SEQ=$((SEQ + 1))
    topic="bench-$case-$target-$SEQ"
    mock_cmd topic "$topic" "$PARTITIONS"
    case $case in
        # tpsec: the same 1 KB case, through the plaintext or the secure eosproxy.
        tp1k | tpsec) args=(--mode throughput --size 1024 --count "$COUNT_1K" --acks all --linger-ms 5) ;;
        tp100) args=(--mode throughput --size 100 --count "$COUNT_100" --acks all --linger-ms 5) ;;
        # A non-idempotent producer; through eosproxy its topic is `delivery: idempotent`.
        tpidem) args=(--mode throughput --size 1024 --count "$COUNT_1K" --acks all --linger-ms 5 --idempotence false) ;;
        lat) args=(--mode latency --size 100 --count "$COUNT_LAT" --acks all) ;;
    esac
    [ "$target" = secure ] && args+=("${SEC_X[@]}")
    local out
    ticks0=$(cpu_ticks "$pid")
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" && rc=0 || rc=$?
        echo "bench: $target eosproxy DIED (exit status $rc) before $case; its log:" >&2
        tail -n 40 "$log" >&2
        forget_pid "$target"
        KEEP_WORK=1
        exit 1
    fi
    if ! out=$("$BENCH_BIN" --bootstrap "$bs" --topic "$topic" "${args[@]}" 2>"$WORK/bench.err"); then
        echo "bench: FAILED: $case via $target (bench stderr, last lines):" >&2
        tail -n 5 "$WORK/bench.err" >&2
        if [ -n "$pid" ]; then
            if kill -0 "$pid" 2>/dev/null; then
                echo "bench: $target eosproxy is still running; its log:" >&2
            else
                wait "$pid" && rc=0 || rc=$?
                echo "bench: $target eosproxy DIED (exit status $rc); its log:" >&2
                forget_pid "$target"
            fi
            tail -n 40 "$log" >&2
        fi
        KEEP_WORK=1
        exit 1
    fi
    echo "  $case $target: $out" >&2
    printf '{"round":%d,"case":"%s","target":"%s","cpu_ticks":%d,"result":%s}\n' "$round" "$case" "$target" \
        $(($(cpu_ticks "$pid") - ticks0)) "$out" >>"$WORK/results"
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
    # What security costs: the 1 KB case through the plaintext and the secure eosproxy.
    if [ -n "$SECURE" ]; then
        if [ $((r % 2)) = 1 ]; then
            run_case "$r" tpsec eosproxy "$PROXY"
            run_case "$r" tpsec secure "$SECURE"
        else
            run_case "$r" tpsec secure "$SECURE"
            run_case "$r" tpsec eosproxy "$PROXY"
        fi
    fi
done
ELAPSED=$(($(date +%s) - START))

# ---- the secure eosproxy did what its row says: an ACL probe, then its metrics
SEC_CHECK=""
if [ -n "$SECURE" ]; then
    SEQ=$((SEQ + 1))
    probe="denied-$SEQ" # outside the ACL's bench-*
    mock_cmd topic "$probe" "$PARTITIONS"
    if "$BENCH_BIN" --bootstrap "$SECURE" --topic "$probe" --mode throughput --size 100 \
        --count 1 --warmup 1 --timeout-s 20 "${SEC_X[@]}" >/dev/null 2>"$WORK/probe.err"; then
        echo "bench: FAILED: a produce to $probe (outside auth.acls) through the secure eosproxy succeeded" >&2
        SEC_FAILED=1
    elif ! grep -qi 'authoriz' "$WORK/probe.err"; then
        echo "bench: FAILED: the ACL probe failed, but not with an authorization error:" >&2
        tail -n 5 "$WORK/probe.err" >&2
        SEC_FAILED=1
    fi
    metrics=$(curl -fsS "http://127.0.0.1:$SEC_ADMIN/metrics" || true)
    metric() { # exact series name -> its value in $metrics, or 0
        printf '%s\n' "$metrics" | awk -v n="$1" '$1 == n { v = $2 } END { print v + 0 }'
    }
    SEC_LOGINS=$(metric 'eosproxy_auth_logins_total{mechanism="SCRAM-SHA-256",result="ok"}')
    SEC_TLS=$(metric eosproxy_tls_handshakes_total)
    # The probe's topic is refused in Metadata (the client then never
    # produces), or in Produce if the client sends it anyway.
    SEC_DENIED=$(($(metric 'eosproxy_acl_denied_total{api="Metadata"}') + \
        $(metric 'eosproxy_acl_denied_total{api="Produce"}')))
    SEC_CHECK="secure eosproxy's metrics after the row: SCRAM-SHA-256 logins $SEC_LOGINS,"
    SEC_CHECK+=" TLS handshakes $SEC_TLS, topics refused by auth.acls (Metadata + Produce) $SEC_DENIED"
    SEC_CHECK+=" (a probe to a topic outside bench-*, which must fail)"
    echo "bench: $SEC_CHECK" >&2
    if [ "$SEC_LOGINS" -lt "$ROUNDS" ] || [ "$SEC_TLS" -lt "$ROUNDS" ] || [ "$SEC_DENIED" -lt 1 ]; then
        echo "bench: FAILED: these counts do not show TLS, SCRAM and the ACL at work" >&2
        SEC_FAILED=1
    fi
fi

PROXY_EXIT=""
if [ -n "$PROXY_PID" ] && kill -0 "$PROXY_PID" 2>/dev/null; then
    kill -TERM "$PROXY_PID"
    set +e
    wait "$PROXY_PID"
    PROXY_EXIT=$?
    set -e
    PROXY_PID=""
fi
SEC_EXIT=""
if [ -n "$SECURE" ] && [ -n "$SEC_PID" ] && kill -0 "$SEC_PID" 2>/dev/null; then
    kill -TERM "$SEC_PID"
    set +e
    wait "$SEC_PID"
    SEC_EXIT=$?
    set -e
    SEC_PID=""
fi

# ---- table
VERSION=""
[ -x "$EOSPROXY_BIN" ] && VERSION=$("$EOSPROXY_BIN" --version 2>&1 | head -n1 || true)
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
CPU_MHZ=$(awk -F: '/^cpu MHz/ { print $2 + 0; exit }' /proc/cpuinfo)
CLK_TCK=$(getconf CLK_TCK)
export ROUNDS COUNT_1K COUNT_100 COUNT_LAT PARTITIONS ELAPSED PROXY_NOTE VERSION CPU PROXY_EXIT CPU_MHZ CLK_TCK
export SECURE SEC_FAILED SEC_EXIT SEC_CHECK SEC_ITERATIONS
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
# eosproxy's own CPU time per byte it relayed (from /proc/<pid>/stat; this
# machine's hardware counters are not readable, so cycles are CPU time at
# the nominal clock rate).
cpu = []
for case, label, target, count, size in (
        ("tp1k", "1 KB records", "eosproxy", env["COUNT_1K"], 1024),
        ("tp100", "100 B records", "eosproxy", env["COUNT_100"], 100),
        ("tpidem", "1 KB, upgraded to idempotent", "eosproxy", env["COUNT_1K"], 1024),
        ("tpsec", "1 KB, SASL_SSL (secure eosproxy)", "secure", env["COUNT_1K"], 1024)):
    v = [r["cpu_ticks"] / float(env["CLK_TCK"]) for r in rows
         if r["case"] == case and r["target"] == target and "cpu_ticks" in r]
    if v:
        s = statistics.median(v)
        nbytes = int(count) * size
        mhz = float(env.get("CPU_MHZ") or 0)
        cyc = f"{s * mhz * 1e6 / nbytes:.2f}" if mhz else "n/a"
        cpu.append(f"| {label} | {s:.2f} s | {s * 1e9 / nbytes:.2f} ns | {cyc} |")
if cpu:
    print(f"eosproxy's own CPU (user + system, medians; cycles at {env.get('CPU_MHZ') or '?'} MHz):")
    print()
    print("| case | CPU time per run | per byte of record payload | cycles per byte |")
    print("|---|---|---|---|")
    print("\n".join(cpu))
    print()
print(f"Run time: {env['ELAPSED']} s.", end="")
if env.get("PROXY_EXIT"):
    print(f" eosproxy exit code after SIGTERM: {env['PROXY_EXIT']}.", end="")
print()
if env.get("SECURE") or env.get("SEC_FAILED") == "1":
    print()
    print(f"**What security costs** (same client, same mock, same run; {env['ROUNDS']} rounds, the pair "
          "back to back in alternating order; columns are medians, the ratio is the median of the "
          "per-round pairs):")
    print()
    if env.get("SEC_FAILED") == "1":
        print("- **the secure eosproxy FAILED (see stderr); its row is missing or not to be trusted**")
    if env.get("SECURE"):
        iters = env["SEC_ITERATIONS"]
        iters = f"{int(iters):,}" if iters.isdigit() else repr(iters)
        print(f"- secure eosproxy: listen.tls (tests/tools/mkcerts.sh, EC P-256), auth.users_file "
              f"(`eosproxy passwd`, {iters} iterations), auth.acls (user bench: produce bench-*); "
              "client: bench.c with security.protocol=SASL_SSL, sasl.mechanisms=SCRAM-SHA-256; "
              "the mock behind it is plaintext")
        print(f"- {env['SEC_CHECK']}")
        if env.get("SEC_EXIT"):
            print(f"- secure eosproxy exit code after SIGTERM: {env['SEC_EXIT']}")
    print()
    print("| case | 1 KB produce, plaintext through eosproxy "
          "| 1 KB produce, SASL_SSL + SCRAM-SHA-256 + ACL through eosproxy | ratio |")
    print("|---|---|---|---|")
    def paired2(case, key, a, b):
        """Median over rounds of (a / b), each pair measured back to back."""
        by = {}
        for r in rows:
            if r["case"] == case:
                by.setdefault(r["round"], {})[r["target"]] = r["result"][key]
        v = [p[a] / p[b] for p in by.values() if a in p and b in p]
        return statistics.median(v) if v else None
    cells = []
    for target in ("eosproxy", "secure"):
        mb, rec = med("tpsec", target, "mb_per_s"), med("tpsec", target, "records_per_s")
        cells.append("n/a" if mb is None else f"{mb:,.0f} MB/s ({rec/1e3:,.0f} k rec/s)")
    ratio = paired2("tpsec", "mb_per_s", "secure", "eosproxy")
    ratio = "n/a" if ratio is None else f"{ratio:.2f}"
    print(f"| throughput, 1 KB records, acks=all, linger.ms=5 | {cells[0]} | {cells[1]} | {ratio} |")
EOF
# ---- consumer dedup (needs redis-server; its own mock, eosproxy and Redis)
if [ "$PROXY_FAILED" = 0 ] && [ -x "$EOSPROXY_BIN" ] && command -v redis-server >/dev/null; then
    echo "bench: consumer dedup" >&2
    echo
    echo "| case | pass-through topic | dedup topic | ratio |"
    echo "|---|---|---|---|"
    EOSPROXY_BIN="$EOSPROXY_BIN" MOCKCLUSTER_BIN="$MOCKCLUSTER_BIN" $PY tests/bench/dedup.py
fi

# ---- login cost (its own two eosproxy processes with auth, in front of this mock)
LOGINS_FAILED=0
if [ "$PROXY_FAILED" = 0 ] && [ -x "$EOSPROXY_BIN" ]; then
    echo "bench: logins" >&2
    certs=()
    [ -f "$WORK/certs/ca.pem" ] && certs=(--certs "$WORK/certs")
    if ! EOSPROXY_BIN="$EOSPROXY_BIN" $PY tests/bench/logins.py --bootstrap "$BOOTSTRAP" \
        --work "$WORK/logins" "${certs[@]}"; then
        LOGINS_FAILED=1
        KEEP_WORK=1
    fi
fi

# ---- against a real Apache Kafka broker (its own broker and eosproxy)
REAL_FAILED=0
if [ "${BENCH_REAL:-1}" != 0 ]; then
    if [ "$PROXY_FAILED" = 0 ] && [ -x "$EOSPROXY_BIN" ]; then
        echo "bench: real Kafka broker (tests/bench/real.py; BENCH_REAL=0 skips it)" >&2
        EOSPROXY_BIN="$EOSPROXY_BIN" $PY tests/bench/real.py || REAL_FAILED=1
    else
        echo "bench: the real-Kafka part did not run: no working eosproxy" >&2
    fi
fi

for log in proxy secure; do
    if [ -f "$WORK/$log.log" ] && grep -qE 'AddressSanitizer|LeakSanitizer|runtime error' "$WORK/$log.log"; then
        echo "bench: $log eosproxy's log has a sanitizer report:" >&2
        grep -m1 -A30 -E 'AddressSanitizer|LeakSanitizer|runtime error' "$WORK/$log.log" >&2
        exit 1
    fi
done
if [ -n "$PROXY_EXIT" ] && [ "$PROXY_EXIT" != 0 ]; then
    echo "bench: eosproxy exited $PROXY_EXIT after SIGTERM (expected 0); its log:" >&2
    tail -n 30 "$WORK/proxy.log" >&2
    exit 1
fi
if [ -n "$SEC_EXIT" ] && [ "$SEC_EXIT" != 0 ]; then
    echo "bench: the secure eosproxy exited $SEC_EXIT after SIGTERM (expected 0); its log:" >&2
    tail -n 30 "$WORK/secure.log" >&2
    exit 1
fi
if [ "$SEC_FAILED" = 1 ]; then
    echo "bench: the secure eosproxy's row FAILED (see above)" >&2
    KEEP_WORK=1
    exit 1
fi
if [ "$LOGINS_FAILED" = 1 ]; then
    echo "bench: tests/bench/logins.py FAILED (see above)" >&2
    exit 1
fi
if [ "$REAL_FAILED" = 1 ]; then
    echo "bench: tests/bench/real.py (real Kafka broker) FAILED (see above)" >&2
    exit 1
fi
if [ "$PROXY_FAILED" = 1 ]; then
    echo "bench: eosproxy did not start, so the table has no eosproxy column" >&2
    exit 1
fi
