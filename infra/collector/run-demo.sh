#!/usr/bin/env bash
# Live traffic through the real Collector: otelcol-spanstream with
# infra/collector/otelcol-kafka.yaml on the default OTLP ports (127.0.0.1:4317 gRPC,
# :4318 HTTP), in the background, fed by telemetrygen (one process per service)
# sending a steady stream for N seconds. Both come from infra/collector/build.sh.
#
#   infra/collector/run-demo.sh --check           exit 0 when both binaries are built, else 1
#   infra/collector/run-demo.sh [--seconds N] [--rate R] [--services "a b c"] [--keep]
#                                                 start the Collector (unless ours already
#                                                 runs), send for N s (default 60), wait,
#                                                 then stop the Collector (--keep: leave it)
#   infra/collector/run-demo.sh --collector-only  start the Collector and leave it running
#   infra/collector/run-demo.sh --status | --stop
#
# Reads SPANSTREAM_KAFKA (default 127.0.0.1:9092) and SPANSTREAM_INPUT_TOPIC
# (otlp_spans), like the worker, and every other variable the config reads
# (README.md beside this file), e.g. SPANSTREAM_COLLECTOR_COMPRESSION=zstd. The
# topic must exist (`spanstream topics apply`): the config never auto-creates it.
# Pid and log files: data/collector/ (SPANSTREAM_COLLECTOR_RUN_DIR), i.e.
# otelcol.pid, otelcol.log, telemetrygen-<service>.log.
#
# Exit codes: 0 ok; 1 not built (--check) or a failure; 2 bad usage.
set -euo pipefail

VERSION="v0.155.0"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
OUT="${SPANSTREAM_CACHE:-$REPO/.cache}/collector/$VERSION"
OTELCOL="$OUT/dist/otelcol-spanstream"
TELEMETRYGEN="$OUT/bin/telemetrygen"
CONFIG="$HERE/otelcol-kafka.yaml"
RUN_DIR="${SPANSTREAM_COLLECTOR_RUN_DIR:-$REPO/data/collector}"
PID_FILE="$RUN_DIR/otelcol.pid"
LOG_FILE="$RUN_DIR/otelcol.log"

export SPANSTREAM_KAFKA="${SPANSTREAM_KAFKA:-127.0.0.1:9092}"
export SPANSTREAM_INPUT_TOPIC="${SPANSTREAM_INPUT_TOPIC:-otlp_spans}"
GRPC="${SPANSTREAM_OTLP_GRPC:-127.0.0.1:4317}"
HEALTH="${SPANSTREAM_COLLECTOR_HEALTH:-127.0.0.1:13133}"
METRICS="127.0.0.1:${SPANSTREAM_COLLECTOR_METRICS_PORT:-8888}"

SECONDS_TO_SEND=60
RATE=20 # spans per second per service
SERVICES="frontend checkout cart"
CHILD_SPANS=3
KEEP=0
MODE=run

say() { printf '[run-demo] %s\n' "$*"; }
die() { printf '[run-demo] error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

while (($#)); do
    case "$1" in
        --check) MODE=check ;;
        --status) MODE=status ;;
        --stop) MODE=stop ;;
        --collector-only) MODE=collector ;;
        --keep) KEEP=1 ;;
        --seconds) SECONDS_TO_SEND="${2:?--seconds needs a value}"; shift ;;
        --rate) RATE="${2:?--rate needs a value}"; shift ;;
        --services) SERVICES="${2:?--services needs a value}"; shift ;;
        -h | --help) usage ;;
        *) printf '[run-demo] unknown argument: %s\n' "$1" >&2; usage ;;
    esac
    shift
done
[[ "$SECONDS_TO_SEND" =~ ^[0-9]+$ ]] || die "--seconds must be a whole number, got '$SECONDS_TO_SEND'"

built() { [[ -x "$OTELCOL" && -x "$TELEMETRYGEN" ]]; }

# A TCP port that accepts a connection right now (bash's /dev/tcp, no nc needed).
port_open() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }

our_pid() {
    local pid
    [[ -f "$PID_FILE" ]] || return 1
    pid="$(cat "$PID_FILE")"
    # Only a live otelcol-spanstream counts: a stale file may name a reused pid.
    [[ -n "$pid" && "$(cat "/proc/$pid/comm" 2>/dev/null)" == otelcol-spans* ]] || return 1
    echo "$pid"
}

metric() { # sum of one of the Collector's own Prometheus metrics
    curl -fsS "http://$METRICS/metrics" 2>/dev/null |
        awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $NF } END { printf "%d", s }'
}

start_collector() {
    local pid
    if pid="$(our_pid)"; then
        say "Collector already running (pid $pid, log $LOG_FILE)"
        return
    fi
    port_open "$GRPC" && die "$GRPC is already in use (another Collector?): stop it, or set SPANSTREAM_OTLP_GRPC"
    mkdir -p "$RUN_DIR"
    say "starting the OpenTelemetry Collector: $OTELCOL --config $CONFIG"
    say "  OTLP gRPC $GRPC, HTTP ${SPANSTREAM_OTLP_HTTP:-127.0.0.1:4318} -> Kafka $SPANSTREAM_KAFKA topic $SPANSTREAM_INPUT_TOPIC" \
        "(compression ${SPANSTREAM_COLLECTOR_COMPRESSION:-lz4}); log $LOG_FILE"
    # setsid: its own session, so a Ctrl-C meant for a foreground job does not reach it.
    setsid "$OTELCOL" --config "$CONFIG" >>"$LOG_FILE" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$PID_FILE"
    local deadline=$((SECONDS + 30))
    until curl -fsS "http://$HEALTH/" >/dev/null 2>&1 && port_open "$GRPC"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$LOG_FILE" >&2
            rm -f "$PID_FILE"
            die "the Collector exited during start (log above)"
        fi
        ((SECONDS < deadline)) || { stop_collector; die "the Collector not ready after 30 s: see $LOG_FILE"; }
        sleep 0.2
    done
    say "Collector running: pid $pid, health http://$HEALTH/, metrics http://$METRICS/metrics"
}

stop_collector() {
    local pid
    pid="$(our_pid)" || { rm -f "$PID_FILE"; return 0; }
    say "stopping the Collector (pid $pid; SIGTERM drains its batch and queue into Kafka)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while kill -0 "$pid" 2>/dev/null; do
        ((SECONDS < deadline)) || { say "still running after 20 s: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; break; }
        sleep 0.2
    done
    rm -f "$PID_FILE"
}

gen_pids=()
stop_generators() {
    local pid
    for pid in "${gen_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${gen_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    gen_pids=()
}

send() {
    local service spans_per_s
    spans_per_s=$((RATE * $(wc -w <<<"$SERVICES")))
    say "starting telemetrygen for ${SECONDS_TO_SEND}s: services [$SERVICES], $RATE spans/s each" \
        "(~$spans_per_s spans/s; traces of 1 root 'lets-go' + $CHILD_SPANS children 'okey-dokey-<i>') -> $GRPC"
    for service in $SERVICES; do
        "$TELEMETRYGEN" traces --otlp-endpoint "$GRPC" --otlp-insecure \
            --duration "${SECONDS_TO_SEND}s" --rate "$RATE" --child-spans "$CHILD_SPANS" \
            --service "$service" --telemetry-attributes 'demo.source="telemetrygen"' \
            >"$RUN_DIR/telemetrygen-$service.log" 2>&1 &
        gen_pids+=($!)
    done
    local failed=0 pid logs=()
    for pid in "${gen_pids[@]}"; do wait "$pid" || failed=1; done
    gen_pids=()
    for service in $SERVICES; do logs+=("$RUN_DIR/telemetrygen-$service.log"); done
    local traces
    traces="$(sed -n 's/.*traces generated.*"traces": *\([0-9]*\).*/\1/p' "${logs[@]}" |
        awk '{ s += $1 } END { printf "%d", s }')"
    # The OTel SDK logs failed exports while telemetrygen still exits 0.
    if ((failed)) || grep -qE 'traces export: |failed to stop' "${logs[@]}"; then
        say "telemetrygen reported export errors: see ${logs[*]}"
        failed=1
    fi
    say "telemetrygen done: $traces traces ($((traces * (CHILD_SPANS + 1))) spans);" \
        "the Collector accepted $(metric otelcol_receiver_accepted_spans), exported to Kafka $(metric otelcol_exporter_sent_spans) so far"
    return "$failed"
}

case "$MODE" in
    check)
        built && exit 0
        echo "[run-demo] not built: $OTELCOL / $TELEMETRYGEN (run infra/collector/build.sh)" >&2
        exit 1
        ;;
    status)
        if pid="$(our_pid)"; then
            say "Collector running: pid $pid, accepted $(metric otelcol_receiver_accepted_spans) spans," \
                "exported $(metric otelcol_exporter_sent_spans), log $LOG_FILE"
        else
            say "Collector not running (no live pid in $PID_FILE)"
            exit 1
        fi
        exit 0
        ;;
    stop)
        stop_collector
        exit 0
        ;;
esac

built || die "not built: $OTELCOL / $TELEMETRYGEN (run infra/collector/build.sh)"
mkdir -p "$RUN_DIR"
if [[ "$MODE" == collector ]]; then
    start_collector
    exit 0
fi
started_here=1
our_pid >/dev/null && started_here=0
cleanup() {
    stop_generators
    if ((KEEP)) || ((started_here == 0)); then
        pid="$(our_pid)" && say "Collector left running (pid $pid): infra/collector/run-demo.sh --stop"
    else
        stop_collector
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
start_collector
send
