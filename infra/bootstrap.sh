#!/usr/bin/env bash
# Install everything spanstream needs on a fresh Debian machine, idempotently:
#   - Debian packages: Java 17 + Maven (Kafka jars), Go (Collector build), clickhouse-server
#     (the only server apt offers, 18.16: used to test the native-protocol adapter);
#   - the Python venv in .venv with spanstream and its dev tools;
#   - Apache Kafka jars from Maven Central (infra/kafka/kafka.sh install);
#   - the OpenTelemetry Collector and telemetrygen from Go modules (infra/collector/build.sh),
#     unless SPANSTREAM_SKIP_COLLECTOR=1;
#   - Prometheus Alertmanager from Go modules (infra/alertmanager/build.sh), for the alert
#     delivery tests, unless SPANSTREAM_SKIP_ALERTMANAGER=1;
#   - Prometheus' promtool from Go modules (infra/prometheus/build.sh: the SLO rule tests),
#     unless SPANSTREAM_SKIP_PROMTOOL=1.
# The Go builds start in the background as soon as Go is installed (their module
# downloads overlap pip's and Maven's), each logging to .cache/logs/<name>.log; the
# script waits for them at the end and shows the log of any that failed.
# Re-running it is cheap: each step checks what is already there.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
step() { printf '\n== %s\n' "$*"; }

need_apt=()
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
command -v go >/dev/null || [[ -x /usr/local/go/bin/go ]] || need_apt+=(golang-go)
# server.sh waits for the server with clickhouse-client, so both are needed.
[[ -x /usr/sbin/clickhouse-server ]] || need_apt+=(clickhouse-server)
[[ -x /usr/bin/clickhouse-client ]] || need_apt+=(clickhouse-client)
if ((${#need_apt[@]})); then
  step "apt: ${need_apt[*]}"
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi
# The Debian package starts a system service on install; our tests run their own server.
if command -v service >/dev/null && service clickhouse-server status >/dev/null 2>&1; then
  service clickhouse-server stop >/dev/null 2>&1 || true
fi

LOGS="${SPANSTREAM_CACHE:-$REPO/.cache}/logs"
go_builds=()
start_go_build() { # name script skip-variable
  local name=$1 script=$2 skip=$3
  [[ "${!skip:-0}" == "1" || ! -f "$script" ]] && return 0
  mkdir -p "$LOGS"
  step "$name: building from Go modules in the background (log: $LOGS/$name.log)"
  bash "$script" >"$LOGS/$name.log" 2>&1 &
  go_builds+=("$name:$!")
}
start_go_build collector infra/collector/build.sh SPANSTREAM_SKIP_COLLECTOR
start_go_build alertmanager infra/alertmanager/build.sh SPANSTREAM_SKIP_ALERTMANAGER
start_go_build promtool infra/prometheus/build.sh SPANSTREAM_SKIP_PROMTOOL

step "python venv (.venv)"
PY="${PYTHON:-python3}"
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# constraints.txt pins every package (direct and transitive) at the versions CI tested.
.venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'

step "kafka jars (Maven Central)"
bash infra/kafka/kafka.sh install

failed=0
for entry in "${go_builds[@]}"; do
  name=${entry%%:*}
  step "$name: waiting for its build (first builds take several minutes)"
  if wait "${entry##*:}"; then
    tail -n 1 "$LOGS/$name.log"
  else
    echo "$name: build failed; the end of $LOGS/$name.log:" >&2
    tail -n 30 "$LOGS/$name.log" >&2
    failed=1
  fi
done
((failed == 0)) || exit 1
echo
echo "bootstrap done"
