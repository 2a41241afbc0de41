#!/usr/bin/env bash
# Install everything spanstream needs on a fresh Debian machine, idempotently:
#   - Debian packages: Java 17 + Maven (Kafka jars), Go (Collector build), clickhouse-server
#     (the only server apt offers, 18.16: used to test the native-protocol adapter);
#   - the Python venv in .venv with spanstream and its dev tools;
#   - Apache Kafka jars from Maven Central (infra/kafka/kafka.sh install);
#   - the OpenTelemetry Collector and telemetrygen from Go modules (infra/collector/build.sh),
#     unless SPANSTREAM_SKIP_COLLECTOR=1;
#   - Prometheus Alertmanager from Go modules (infra/alertmanager/build.sh), for the alert
#     delivery tests, unless SPANSTREAM_SKIP_ALERTMANAGER=1.
#   - Prometheus' promtool from Go modules (infra/prometheus/build.sh: the SLO rule tests),
#     unless SPANSTREAM_SKIP_PROMTOOL=1.
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

step "python venv (.venv)"
PY="${PYTHON:-python3}"
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# constraints.txt pins every package (direct and transitive) at the versions CI tested.
.venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'

step "kafka jars (Maven Central)"
bash infra/kafka/kafka.sh install

if [[ "${SPANSTREAM_SKIP_COLLECTOR:-0}" != "1" && -f infra/collector/build.sh ]]; then
  step "opentelemetry collector + telemetrygen (Go modules; first build takes several minutes)"
  bash infra/collector/build.sh
fi

if [[ "${SPANSTREAM_SKIP_ALERTMANAGER:-0}" != "1" && -f infra/alertmanager/build.sh ]]; then
  step "prometheus alertmanager (Go modules; first build takes several minutes)"
  bash infra/alertmanager/build.sh
fi

if [[ "${SPANSTREAM_SKIP_PROMTOOL:-0}" != "1" && -f infra/prometheus/build.sh ]]; then
  step "promtool (Go modules; first build takes several minutes)"
  bash infra/prometheus/build.sh
fi
echo
echo "bootstrap done"
