#!/usr/bin/env bash
# Run a real single-node Apache Kafka broker (KRaft, broker+controller in one JVM) from
# jars resolved on Maven Central: no Docker, no tarball download. See README.md.
#
#   infra/kafka/kafka.sh install                       # jars -> $SPANSTREAM_CACHE/kafka/<v>/libs
#   infra/kafka/kafka.sh start [--port N] [--data-dir D] [--sasl-ssl-port N --tls-dir T]
#   infra/kafka/kafka.sh run [options of start]        # the same broker in the foreground
#   infra/kafka/kafka.sh status [--data-dir D]
#   infra/kafka/kafka.sh stop [--data-dir D]
#   infra/kafka/kafka.sh libs                          # print the libs dir (for other tools)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
CACHE="${SPANSTREAM_CACHE:-$REPO/.cache}"
LIBS="$CACHE/kafka/$KAFKA_VERSION/libs"
PORT="${PORT:-9092}"
DATA_DIR="${DATA_DIR:-$REPO/data/kafka}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"
# C1-only JIT and serial GC need about half the CPU to get ready (README.md: start time).
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:--XX:TieredStopAtLevel=1 -XX:+UseSerialGC}"
READY_TIMEOUT="${READY_TIMEOUT:-60}"
AUTO_CREATE_TOPICS="${AUTO_CREATE_TOPICS:-false}"
# A second listener, SASL_SSL (SCRAM-SHA-256/512 and PLAIN, client certificates required),
# when --tls-dir names a directory holding ca.pem, broker.pem (PKCS#8 key + certificate)
# and users (one name=password a line; SCRAM credentials at first format, PLAIN always).
SASL_SSL_PORT="${SASL_SSL_PORT:-}"
TLS_DIR="${TLS_DIR:-}"

die() { echo "kafka.sh: $*" >&2; exit 1; }

usage() { sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

parse_opts() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --port) PORT="$2"; shift 2 ;;
      --data-dir) DATA_DIR="$2"; shift 2 ;;
      --sasl-ssl-port) SASL_SSL_PORT="$2"; shift 2 ;;
      --tls-dir) TLS_DIR="$2"; shift 2 ;;
      *) die "unknown option '$1' (see: kafka.sh help)" ;;
    esac
  done
  DATA_DIR="$(mkdir -p "$DATA_DIR" && cd "$DATA_DIR" && pwd)"
  PID_FILE="$DATA_DIR/broker.pid"
  LOG_FILE="$DATA_DIR/broker.log"
  CONF_FILE="$DATA_DIR/server.properties"
}

cmd_install() {
  if [[ -f "$LIBS/.complete" ]]; then
    echo "kafka $KAFKA_VERSION jars already in $LIBS"
    return
  fi
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
  local tmp="$LIBS.tmp.$$"
  rm -rf "$tmp"
  local out
  # Maven's output is noise when it works and the whole story when it does not.
  if ! out="$(mvn -q -B -f "$HERE/pom.xml" dependency:copy-dependencies \
    -Dkafka.version="$KAFKA_VERSION" -DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1)"; then
    echo "$out" >&2
    rm -rf "$tmp"
    die "mvn could not resolve kafka_2.13:$KAFKA_VERSION"
  fi
  touch "$tmp/.complete"
  # Rename last so a concurrent or interrupted install never leaves a half-filled libs dir.
  rm -rf "$LIBS" && mv "$tmp" "$LIBS"
  echo "kafka $KAFKA_VERSION jars installed in $LIBS"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

running_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE")"
  # A zombie (killed, not yet reaped by init) is not a running broker.
  [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" =~ ^[^Z] ]] && echo "$pid"
}

# The users file's name=password lines (the listener's own users).
users() { grep -E '^[^=#]+=' "$TLS_DIR/users" || true; }

# The PLAIN login module's user_<name>="<password>" list, from the users file.
plain_users() {
  local name password out=""
  while IFS='=' read -r name password; do
    out+=" user_${name}=\"${password}\""
  done < <(users)
  echo "$out"
}

write_config() {
  local cport="$1" listeners advertised
  listeners="PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$cport"
  advertised="PLAINTEXT://127.0.0.1:$PORT"
  if [[ -n "$TLS_DIR" ]]; then
    [[ -n "$SASL_SSL_PORT" ]] || die "--tls-dir needs --sasl-ssl-port"
    for f in ca.pem broker.pem users; do
      [[ -r "$TLS_DIR/$f" ]] || die "--tls-dir $TLS_DIR: $f missing"
    done
    listeners+=",SASL_SSL://127.0.0.1:$SASL_SSL_PORT"
    advertised+=",SASL_SSL://127.0.0.1:$SASL_SSL_PORT"
  fi
  # The config may hold the PLAIN users' passwords: only the broker's user reads it
  # (made private before anything is written; truncating keeps the mode).
  : >"$CONF_FILE" && chmod 600 "$CONF_FILE"
  cat >"$CONF_FILE" <<EOF
# Written by infra/kafka/kafka.sh start; rewritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
log.dirs=$DATA_DIR/logs
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
# One broker: internal topics cannot have more replicas; few offsets partitions start faster.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Tests and workers join groups one by one; waiting 3 s for more members only slows them.
group.initial.rebalance.delay.ms=0
# Topics come from topics/topics.yaml (spanstream topics apply); Faust creates its own
# internal topics through the admin API, so broker-side auto-creation is not needed.
auto.create.topics.enable=$AUTO_CREATE_TOPICS
EOF
  [[ -n "$TLS_DIR" ]] || return 0
  cat >>"$CONF_FILE" <<EOF
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$(plain_users);
listener.name.sasl_ssl.ssl.client.auth=required
ssl.keystore.type=PEM
ssl.keystore.location=$TLS_DIR/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.pem
EOF
}

format_storage() {
  [[ -f "$DATA_DIR/logs/meta.properties" ]] && return
  # A cluster id is 16 random bytes in URL-safe base64 without padding (22 chars).
  # One in 64 starts with '-', which the tool's argument parser reads as an option: draw again.
  local cluster_id="-"
  while [[ "$cluster_id" == -* ]]; do
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
  done
  # SCRAM credentials live in the cluster metadata: the format writes the first ones.
  local scram=() name password
  if [[ -n "$TLS_DIR" ]]; then
    while IFS='=' read -r name password; do
      for mechanism in SCRAM-SHA-256 SCRAM-SHA-512; do
        scram+=(--add-scram "$mechanism=[name=$name,password=$password]")
      done
    done < <(users)
  fi
  java -cp "$LIBS/*" kafka.tools.StorageTool format -t "$cluster_id" -c "$CONF_FILE" \
    "${scram[@]}" >>"$LOG_FILE" 2>&1 || die "storage format failed; see $LOG_FILE"
}

# True when the broker answers a Metadata (v4) request listing at least one broker.
metadata_ok() {
  local hex
  hex="$( (exec 3<>"/dev/tcp/127.0.0.1/$PORT" || exit 1
    # size=17, api_key=3, version=4, correlation=1, client_id="ss", topics=null, no auto-create
    printf '\x00\x00\x00\x11\x00\x03\x00\x04\x00\x00\x00\x01\x00\x02ss\xff\xff\xff\xff\x00' >&3
    timeout 2 head -c 16 <&3 | od -An -tx1 | tr -d ' \n') 2>/dev/null)" || return 1
  # bytes 12..15 of the response: number of brokers
  [[ ${#hex} -eq 32 && $((16#${hex:24:8})) -gt 0 ]]
}

check_installed() {
  [[ -f "$LIBS/.complete" ]] || die "kafka $KAFKA_VERSION jars missing in $LIBS: run infra/kafka/kafka.sh install"
  command -v java >/dev/null || die "java not found (Kafka $KAFKA_VERSION needs Java 17+)"
}

# The broker's JVM command line (after write_config and format_storage).
java_command() {
  # shellcheck disable=SC2206  # JVM options are word lists on purpose
  JAVA_CMD=(java $KAFKA_HEAP_OPTS $KAFKA_JVM_OPTS -Djava.awt.headless=true
    -Dorg.slf4j.simpleLogger.showDateTime=true
    "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS"
    -cp "$LIBS/*" kafka.Kafka "$CONF_FILE")
}

# The broker in the foreground (the caller captures its output and signals it):
# this shell's pid is the JVM's after exec, so status and stop work on it too.
cmd_run() {
  parse_opts "$@"
  check_installed
  if pid="$(running_pid)"; then
    die "kafka already running (pid $pid) in $DATA_DIR"
  fi
  write_config "$(free_port)"
  format_storage
  java_command
  echo $$ >"$PID_FILE"
  exec "${JAVA_CMD[@]}" </dev/null
}

cmd_start() {
  parse_opts "$@"
  check_installed
  if pid="$(running_pid)"; then
    echo "kafka already running (pid $pid) on 127.0.0.1:$PORT; log $LOG_FILE"
    return
  fi
  local started=$SECONDS
  write_config "$(free_port)"
  format_storage
  java_command
  nohup "${JAVA_CMD[@]}" >>"$LOG_FILE" 2>&1 </dev/null &
  echo $! >"$PID_FILE"
  local deadline=$((SECONDS + READY_TIMEOUT))
  until metadata_ok; do
    if ! running_pid >/dev/null; then
      tail -n 20 "$LOG_FILE" >&2
      die "broker exited during startup; log: $LOG_FILE"
    fi
    if [[ $SECONDS -ge $deadline ]]; then
      kill -KILL "$(cat "$PID_FILE")" 2>/dev/null || true
      rm -f "$PID_FILE"
      die "broker not ready after ${READY_TIMEOUT}s (killed it); log: $LOG_FILE"
    fi
    sleep 0.2
  done
  echo "kafka $KAFKA_VERSION ready on 127.0.0.1:$PORT in $((SECONDS - started))s (pid $(cat "$PID_FILE"))"
  echo "log: $LOG_FILE  data: $DATA_DIR/logs"
}

cmd_stop() {
  parse_opts "$@"
  local pid
  if ! pid="$(running_pid)"; then
    echo "kafka not running (no live pid in $PID_FILE)"
    rm -f "$PID_FILE"
    return
  fi
  kill -TERM "$pid"
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    if [[ $SECONDS -ge $deadline ]]; then
      echo "kafka (pid $pid) ignored SIGTERM for 30s; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    sleep 0.2
  done
  rm -f "$PID_FILE"
  echo "kafka stopped (pid $pid)"
}

cmd_status() {
  parse_opts "$@"
  local pid
  if pid="$(running_pid)"; then
    local port
    port="$(sed -n 's|^advertised.listeners=PLAINTEXT://127.0.0.1:\([0-9]*\).*|\1|p' "$CONF_FILE")"
    PORT="$port"
    if metadata_ok; then
      echo "kafka running (pid $pid) on 127.0.0.1:$port; log $LOG_FILE"
    else
      echo "kafka process $pid alive but not answering on 127.0.0.1:$port; log $LOG_FILE"
      return 1
    fi
  else
    echo "kafka not running (data dir $DATA_DIR)"
    return 3
  fi
}

case "${1:-help}" in
  install) shift; cmd_install "$@" ;;
  start) shift; cmd_start "$@" ;;
  run) shift; cmd_run "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  status) shift; cmd_status "$@" ;;
  libs) echo "$LIBS" ;;
  help | -h | --help) usage ;;
  *) usage >&2; exit 2 ;;
esac
