#!/usr/bin/env bash
# A local ClickHouse server process for tests of the native (clickhouse-driver)
# store: Debian's clickhouse-server (18.16, too old for spanstream's schema:
# no DateTime64, Map or insert_deduplication_token) started as a plain
# process, never the system service, with a generated config in a data dir.
#
#   infra/clickhouse/server.sh install
#   infra/clickhouse/server.sh start  --data-dir DIR [--port 9000] [--http-port 8123]
#   infra/clickhouse/server.sh run    --data-dir DIR [...]  # the same server in the foreground
#   infra/clickhouse/server.sh stop   --data-dir DIR
#   infra/clickhouse/server.sh status --data-dir DIR
#
# start waits until the server answers SELECT 1 (READY_TIMEOUT seconds, default 60).
set -euo pipefail

SERVER_BIN=${CLICKHOUSE_SERVER_BIN:-/usr/sbin/clickhouse-server}
CLIENT_BIN=${CLICKHOUSE_CLIENT_BIN:-/usr/bin/clickhouse-client}
READY_TIMEOUT=${READY_TIMEOUT:-60}
STOP_TIMEOUT=${STOP_TIMEOUT:-30}

die() { echo "server.sh: $*" >&2; exit 1; }

command=${1:-}; shift || true
data_dir=""; port=9000; http_port=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --data-dir) data_dir=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --http-port) http_port=$2; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done
http_port=${http_port:-$((port + 1))}

install() {
  if [[ -x $SERVER_BIN && -x $CLIENT_BIN ]]; then
    echo "clickhouse-server already installed: $SERVER_BIN"; return
  fi
  [[ $(id -u) -eq 0 ]] || die "installing needs root (apt-get install clickhouse-server)"
  apt-get update -qq
  # The package's postinst tries to start the system service; without an
  # init system that fails harmlessly, and we never use that service.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server clickhouse-client
}

pid_of() { [[ -f $data_dir/server.pid ]] && cat "$data_dir/server.pid" || true; }

alive() {
  local pid; pid=$(pid_of)
  [[ -n $pid ]] && [[ -d /proc/$pid ]] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null
}

write_config() {
  local dir; dir=$(cd "$data_dir" && pwd)
  mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/log"
  cat > "$dir/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>information</level><log>$dir/log/server.log</log><errorlog>$dir/log/server.err.log</errorlog></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>$port</tcp_port>
  <http_port>$http_port</http_port>
  <path>$dir/data/</path>
  <tmp_path>$dir/tmp/</tmp_path>
  <user_files_path>$dir/user_files/</user_files_path>
  <users_config>$dir/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <timezone>UTC</timezone>
</yandex>
XML
  cat > "$dir/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
XML
}

prepare() {
  [[ -n $data_dir ]] || die "$command needs --data-dir"
  [[ -x $SERVER_BIN ]] || die "$SERVER_BIN missing: run $0 install"
  mkdir -p "$data_dir"
}

# The server in the foreground (the caller captures its output and signals it):
# this shell's pid is the server's after exec, so status and stop work on it too.
run() {
  prepare
  if alive; then die "already running (pid $(pid_of))"; fi
  write_config
  echo $$ > "$data_dir/server.pid"
  exec "$SERVER_BIN" --config-file="$data_dir/config.xml" < /dev/null
}

start() {
  prepare
  if alive; then echo "already running (pid $(pid_of))"; return; fi
  write_config
  setsid "$SERVER_BIN" --config-file="$data_dir/config.xml" \
    >"$data_dir/log/stdout.log" 2>&1 < /dev/null &
  echo $! > "$data_dir/server.pid"
  local deadline=$((SECONDS + READY_TIMEOUT))
  until "$CLIENT_BIN" --host 127.0.0.1 --port "$port" --query "SELECT 1" >/dev/null 2>&1; do
    alive || die "server exited during start; see $data_dir/log/server.err.log"
    (( SECONDS < deadline )) || die "no answer on 127.0.0.1:$port after ${READY_TIMEOUT}s"
    sleep 0.2
  done
  echo "clickhouse-server pid $(pid_of) on 127.0.0.1:$port (http $http_port)"
}

stop() {
  [[ -n $data_dir ]] || die "stop needs --data-dir"
  alive || { rm -f "$data_dir/server.pid"; return; }
  local pid; pid=$(pid_of)
  kill -TERM "$pid"
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while alive; do
    if (( SECONDS >= deadline )); then kill -KILL "$pid"; fi
    sleep 0.1
  done
  rm -f "$data_dir/server.pid"
}

case $command in
  install) install ;;
  start) start ;;
  run) run ;;
  stop) stop ;;
  status) if alive; then echo "running (pid $(pid_of))"; else echo "stopped"; exit 3; fi ;;
  *) die "usage: $0 install|start|run|stop|status [--data-dir DIR] [--port N] [--http-port N]" ;;
esac
