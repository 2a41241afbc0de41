#!/usr/bin/env bash
# The main job on the embedded default (chdb), on one machine, no Docker:
#
#   1. a real Kafka broker (infra/kafka/kafka.sh) on 127.0.0.1:9092, topics from topics/topics.yaml;
#   2. one `spanstream worker` writing to the embedded ClickHouse in data/chdb;
#   3. traffic: 30 minutes of synthetic history with a latency spike on `checkout` and an error
#      burst on `payment` 5 minutes before the end (`spanstream generate`, simulated time, sent
#      in seconds; the burst burns the SLO of infra/slo/demo-slos.yaml and pages), then live
#      traffic: the real OpenTelemetry Collector fed by telemetrygen when they are built
#      (infra/collector/build.sh), else the built-in generator in real time;
#   4. it prints the alerts as they arrive, then what landed in ClickHouse, then stops
#      everything (DEMO_KEEP=1 leaves Kafka and the worker running).
#
# Usage: make demo   (or: bash infra/demo.sh after make bootstrap)
# Env: DEMO_SECONDS (live phase, default 60), DEMO_KEEP (0), SPANSTREAM_WINDOW_SECONDS
# (10 here so a demo shows alerts in minutes; the product default is 60).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
SS=.venv/bin/spanstream
DATA="$REPO/data"
DEMO_SECONDS="${DEMO_SECONDS:-60}"
DEMO_KEEP="${DEMO_KEEP:-0}"
HISTORY_SECONDS=1800
SPIKE_START=$((HISTORY_SECONDS - 360))  # seconds into the history
SPIKE_SECONDS=120
export SPANSTREAM_KAFKA="${SPANSTREAM_KAFKA:-127.0.0.1:9092}"
export SPANSTREAM_CLICKHOUSE="${SPANSTREAM_CLICKHOUSE:-chdb:$DATA/chdb}"
export SPANSTREAM_WINDOW_SECONDS="${SPANSTREAM_WINDOW_SECONDS:-10}"
export SPANSTREAM_ALLOWED_LATENESS_SECONDS="${SPANSTREAM_ALLOWED_LATENESS_SECONDS:-5}"
export SPANSTREAM_SLO_FILE="${SPANSTREAM_SLO_FILE:-$REPO/infra/slo/demo-slos.yaml}"
mkdir -p "$DATA"

step() { printf '\n== %s\n' "$*"; }
pids=()
cleanup() {
  [[ "$DEMO_KEEP" == "1" ]] && { echo "left running (DEMO_KEEP=1): worker, Kafka"; return; }
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  bash infra/kafka/kafka.sh stop --data-dir "$DATA/kafka" >/dev/null 2>&1 || true
  echo "stopped; data kept in $DATA (rm -rf data to start over)"
}
trap cleanup EXIT

step "Kafka on $SPANSTREAM_KAFKA"
port="${SPANSTREAM_KAFKA##*:}"
bash infra/kafka/kafka.sh status --data-dir "$DATA/kafka" >/dev/null 2>&1 ||
  bash infra/kafka/kafka.sh start --port "$port" --data-dir "$DATA/kafka"
$SS topics apply

step "worker (store $SPANSTREAM_CLICKHOUSE, ${SPANSTREAM_WINDOW_SECONDS}s windows), log: data/worker.log"
$SS worker --datadir "$DATA/faust" >"$DATA/worker.log" 2>&1 &
pids+=($!)
deadline=$((SECONDS + 90))
until $SS query "SELECT 1" >/dev/null 2>&1; do
  kill -0 "${pids[0]}" 2>/dev/null || { tail -20 "$DATA/worker.log"; exit 1; }
  ((SECONDS < deadline)) || { echo "worker not ready after 90 s" >&2; exit 1; }
  sleep 0.5
done
echo "worker ready: http://127.0.0.1:6066/query, metrics http://127.0.0.1:9464/metrics"

step "alerts (spanstream alerts tail), in the background"
$SS alerts tail --from-beginning >"$DATA/alerts.txt" 2>/dev/null &
pids+=($!)

step "history: ${HISTORY_SECONDS}s of synthetic traffic, a latency spike on checkout, errors on payment"
start=$(($(date +%s) - HISTORY_SECONDS))
$SS generate --rate 5 --start-time "$start" --duration "$HISTORY_SECONDS" \
  --anomaly "latency_spike:service=checkout,start=$SPIKE_START,duration=$SPIKE_SECONDS,factor=6" \
  --anomaly "error_burst:service=payment,start=$SPIKE_START,duration=$SPIKE_SECONDS,rate=0.3"

step "live traffic for ${DEMO_SECONDS}s"
# The generator goes on in real time so the history's series stay alive (an operation that
# stops is a traffic drop, and would alert).
$SS generate --rate 5 --duration "$DEMO_SECONDS" --seed 2 --progress-seconds 15 &
live=$!
if bash infra/collector/run-demo.sh --check >/dev/null 2>&1; then
  echo "running: the real OpenTelemetry Collector (otelcol-spanstream) fed by telemetrygen,"
  echo "         beside spanstream generate in real time"
  bash infra/collector/run-demo.sh --seconds "$DEMO_SECONDS"
else
  echo "running: spanstream generate in real time (the Collector is not built: infra/collector/build.sh)"
fi
wait "$live"

step "waiting for the window stage to close the spike's windows (it catches up on the history)"
spike_end=$((start + SPIKE_START + SPIKE_SECONDS))
closed_sql="SELECT toUnixTimestamp(max(WindowEnd)) FROM spanstream_red_metrics WHERE ServiceName = 'checkout'"
deadline=$((SECONDS + 300))
while :; do
  closed="$($SS query "$closed_sql" 2>/dev/null | tr -dc '0-9')"
  ((${closed:-0} >= spike_end + 60)) && break
  ((SECONDS < deadline)) || { echo "windows not closed after 300 s (see data/worker.log)"; break; }
  echo "  checkout windows closed up to $(date -u -d "@${closed:-0}" +%H:%M:%S), spike ends $(date -u -d "@$spike_end" +%H:%M:%S)"
  sleep 5
done

step "alerts so far (data/alerts.txt): anomalies, and SLO burn alerts (\"SLO payment-availability ...\")"
cat "$DATA/alerts.txt" || true

step "ClickHouse (spanstream query ...)"
$SS query "SELECT ServiceName, count() AS spans, uniq(TraceId) AS traces FROM otel_traces GROUP BY 1 ORDER BY 2 DESC"
$SS query "SELECT ServiceName, SpanName, count() AS windows, sum(Requests), sum(Errors), round(max(DurationP99Ms), 1) FROM spanstream_red_metrics GROUP BY 1, 2 ORDER BY 4 DESC LIMIT 8"
$SS query "SELECT AlertId, max(Version), any(Summary) FROM spanstream_anomalies GROUP BY 1 LIMIT 5"
echo "SLO burn (spanstream_slo_burn, the windows around the error burst on payment):"
$SS query "SELECT Slo, WindowStart, Good, Total, BurnRates, round(BudgetRemaining, 4) AS budget, Firing FROM spanstream_slo_burn FINAL WHERE Slo = 'payment-availability' AND WindowStart >= toDateTime($((start + SPIKE_START - 30))) ORDER BY WindowStart LIMIT 16"
