#!/usr/bin/env bash
# Start a single-node Apache Kafka broker (KRaft: broker + controller in one JVM) on
# 127.0.0.1 for development and CI. Idempotent: if the broker this script started on
# KAFKA_PORT is already running, it says so and exits 0.
#
# Env (all optional):
#   KAFKA_PORT             broker port (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller port (default KAFKA_PORT + 1)
#   SHOPSTREAM_KAFKA_HOME  cache folder for jars and run dirs (default <repo>/.cache/kafka)
#   KAFKA_FRESH=1          wipe this port's data (restarting the broker if it runs)
#   KAFKA_START_TIMEOUT    seconds to wait for readiness (default 120)
#   KAFKA_HEAP_OPTS        JVM heap flags (default "-Xms256m -Xmx512m")
#   KAFKA_EXTRA_CONFIG     lines appended to server.properties (tests that need another broker setting)
#   JAVA_HOME              Java 17+ to use (default: java on PATH)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/../.." && pwd)"
POM="${SCRIPT_DIR}/pom.xml"
CACHE="${SHOPSTREAM_KAFKA_HOME:-${REPO_ROOT}/.cache/kafka}"
LIBS="${CACHE}/libs"

PORT="${KAFKA_PORT:-9092}"
CPORT="${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"

RUN_DIR="${CACHE}/run-${PORT}"
DATA_DIR="${RUN_DIR}/data"
LOG_DIR="${RUN_DIR}/logs"
PID_FILE="${RUN_DIR}/kafka.pid"
PROPS="${RUN_DIR}/server.properties"
LOG4J_CONF="${RUN_DIR}/log4j2.properties"
SERVER_LOG="${LOG_DIR}/server.log"
STDOUT_LOG="${LOG_DIR}/kafka.out"

log() { printf '[kafka:%s] %s\n' "${PORT}" "$*"; }
die() { printf '[kafka:%s] ERROR: %s\n' "${PORT}" "$*" >&2; exit 1; }

is_port() { [[ "$1" =~ ^[0-9]+$ ]] && (($1 > 0 && $1 < 65536)); }
is_port "${PORT}" || die "KAFKA_PORT='${PORT}' is not a valid port"
is_port "${CPORT}" || die "KAFKA_CONTROLLER_PORT='${CPORT}' is not a valid port"
[[ "${PORT}" != "${CPORT}" ]] || die "KAFKA_PORT and KAFKA_CONTROLLER_PORT must differ (both ${PORT})"
[[ "${TIMEOUT}" =~ ^[0-9]+$ ]] || die "KAFKA_START_TIMEOUT='${TIMEOUT}' is not a number of seconds"

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# True if the pid in PID_FILE is a live Kafka broker started with this run dir's config.
broker_alive() {
  local pid
  [[ -f "${PID_FILE}" ]] || return 1
  pid="$(cat "${PID_FILE}" 2>/dev/null || true)"
  [[ "${pid}" =~ ^[0-9]+$ ]] || return 1
  kill -0 "${pid}" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | grep -qF -- "kafka.Kafka ${PROPS}"
}

print_log_tail() {
  local f
  for f in "${SERVER_LOG}" "${STDOUT_LOG}"; do
    if [[ -s "${f}" ]]; then
      printf -- '----- last 40 lines of %s -----\n' "${f}" >&2
      tail -n 40 "${f}" >&2
    fi
  done
  printf -- '-----\n' >&2
}

# ---------------------------------------------------------------------------------------
# (f) Readiness: the port accepts connections and the server log says it has started.
wait_ready() {
  local pid="$1" start_ms elapsed_ms
  start_ms=$(($(date +%s%N) / 1000000))
  while :; do
    if ! kill -0 "${pid}" 2>/dev/null; then
      rm -f "${PID_FILE}"
      print_log_tail
      die "Kafka exited during startup (see log above).
  If the data dir is damaged or from another version, start fresh: KAFKA_FRESH=1 $0"
    fi
    if port_open "${PORT}" && grep -q 'Kafka Server started' "${SERVER_LOG}" 2>/dev/null; then
      break
    fi
    if (($(date +%s%N) / 1000000 - start_ms >= TIMEOUT * 1000)); then
      print_log_tail
      die "Kafka (pid ${pid}) not ready on 127.0.0.1:${PORT} after ${TIMEOUT}s (see log above).
  It is left running: inspect ${SERVER_LOG}, then stop it with
  KAFKA_PORT=${PORT} ${SCRIPT_DIR}/stop.sh and retry, perhaps with KAFKA_FRESH=1
  or a larger KAFKA_START_TIMEOUT."
    fi
    sleep 0.25
  done
  elapsed_ms=$(($(date +%s%N) / 1000000 - start_ms))
  READY_AFTER="$((elapsed_ms / 1000)).$(printf '%03d' $((elapsed_ms % 1000)))s"
}

# ---------------------------------------------------------------------------------------
# One start.sh at a time per port (fd 8 is closed for the broker so it does not keep
# the lock).
mkdir -p "${RUN_DIR}"
exec 8>"${RUN_DIR}/.start.lock"
flock 8

# (g) Already running?
if broker_alive; then
  if [[ "${KAFKA_FRESH:-0}" == "1" ]]; then
    log "KAFKA_FRESH=1: stopping the running broker (pid $(cat "${PID_FILE}")) to start fresh"
    KAFKA_PORT="${PORT}" SHOPSTREAM_KAFKA_HOME="${CACHE}" "${SCRIPT_DIR}/stop.sh"
  else
    log "already running (pid $(cat "${PID_FILE}")) on 127.0.0.1:${PORT}; nothing to do"
    wait_ready "$(cat "${PID_FILE}")"
    exit 0
  fi
fi
rm -f "${PID_FILE}"

# ---------------------------------------------------------------------------------------
# Java 17+
if [[ -n "${JAVA_HOME:-}" ]]; then
  JAVA="${JAVA_HOME}/bin/java"
  [[ -x "${JAVA}" ]] || die "JAVA_HOME=${JAVA_HOME} has no bin/java"
else
  JAVA="$(command -v java || true)"
  [[ -n "${JAVA}" ]] || die "no 'java' on PATH and JAVA_HOME is unset; install Java 17+ (Debian: apt-get install openjdk-17-jre-headless)"
fi
JAVA_VERSION="$("${JAVA}" -version 2>&1 | sed -n 's/.*version "\([0-9][0-9]*\).*/\1/p' | head -n 1)"
[[ -n "${JAVA_VERSION}" && "${JAVA_VERSION}" -ge 17 ]] \
  || die "Kafka 4.x needs Java 17+, but ${JAVA} is version '${JAVA_VERSION:-unknown}'"

# ---------------------------------------------------------------------------------------
# (a) Jars from Maven Central, re-fetched when pom.xml changes.
mkdir -p "${CACHE}"
POM_HASH="$(sha256sum "${POM}" | cut -d' ' -f1)"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "${POM}" | head -n 1)"

libs_ok() { [[ -d "${LIBS}" && -f "${LIBS}/.pom.sha256" && "$(cat "${LIBS}/.pom.sha256")" == "${POM_HASH}" ]]; }

if ! libs_ok; then
  # Serialise fetches: several start.sh (different ports) may share one cache.
  exec 9>"${CACHE}/.fetch.lock"
  flock 9
  if ! libs_ok; then
    command -v mvn >/dev/null || die "Maven ('mvn') is needed to fetch Kafka (Debian: apt-get install maven)"
    log "fetching Apache Kafka ${KAFKA_VERSION} from Maven Central into ${LIBS} ..."
    tmp="${CACHE}/libs.tmp.$$"
    rm -rf "${tmp}"
    if ! mvn -B -f "${POM}" dependency:copy-dependencies \
      -DoutputDirectory="${tmp}" -DincludeScope=runtime >"${CACHE}/maven.log" 2>&1; then
      rm -rf "${tmp}"
      tail -n 40 "${CACHE}/maven.log" >&2
      die "Maven could not fetch Kafka ${KAFKA_VERSION} (full output: ${CACHE}/maven.log).
  Check access to Maven Central and ~/.m2/settings.xml, then run $0 again."
    fi
    printf '%s\n' "${POM_HASH}" >"${tmp}/.pom.sha256"
    rm -rf "${LIBS}"
    mv "${tmp}" "${LIBS}"
    log "fetched $(find "${LIBS}" -name '*.jar' | wc -l) jars"
  fi
  flock -u 9
  exec 9>&-
fi
CP="${LIBS}/*"

# ---------------------------------------------------------------------------------------
# (b) Ports must be free (someone else's broker or service would confuse the tests).
for p in "${PORT}" "${CPORT}"; do
  if port_open "${p}"; then
    die "127.0.0.1:${p} is already in use by a process this script did not start (no live pid in ${PID_FILE}).
  Stop that process, or pick other ports: KAFKA_PORT=<port> [KAFKA_CONTROLLER_PORT=<port>] $0"
  fi
done

# ---------------------------------------------------------------------------------------
# (c) Config, written on every start so edits to this script take effect.
if [[ "${KAFKA_FRESH:-0}" == "1" && -d "${DATA_DIR}" ]]; then
  log "KAFKA_FRESH=1: wiping ${DATA_DIR}"
  rm -rf "${DATA_DIR}"
fi
mkdir -p "${DATA_DIR}" "${LOG_DIR}"

cat >"${PROPS}" <<EOF
# Written by infra/kafka/start.sh on every start; edit the script, not this file.
# Single-node KRaft: this JVM is both broker and the only controller.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:${CPORT}
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:${PORT},CONTROLLER://127.0.0.1:${CPORT}
advertised.listeners=PLAINTEXT://127.0.0.1:${PORT},CONTROLLER://127.0.0.1:${CPORT}
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT

log.dirs=${DATA_DIR}

# One broker: every internal topic must have replication factor 1, or e.g.
# transactions and consumer groups cannot start.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1
# Fewer internal partitions than the default 50: quicker first group/transaction.
offsets.topic.num.partitions=10
transaction.state.log.num.partitions=10

num.partitions=1
auto.create.topics.enable=true
# No deletion by time for topics that do not set retention.ms themselves. Kafka deletes a
# segment (the active one too) once its newest record timestamp is older than retention.ms,
# at a check every 5 minutes; test data carries historical event times (2026-03, even 1970),
# so with the 7-day default a check that fell inside a test deleted records under it.
# Topics that need time retention (windowed changelogs, for example) set retention.ms.
log.retention.ms=-1
delete.topic.enable=true

# Quicker tests.
group.initial.rebalance.delay.ms=0
# Classic-protocol clients (e.g. KafkaJS) may use session timeouts down to 1 s.
group.min.session.timeout.ms=1000
# KIP-848 (consumer protocol) groups: notice dead members in 10 s, heartbeat every 1 s.
group.consumer.min.session.timeout.ms=3000
group.consumer.session.timeout.ms=10000
group.consumer.min.heartbeat.interval.ms=500
group.consumer.heartbeat.interval.ms=1000
# Abort timed-out transactions promptly.
transaction.abort.timed.out.transaction.cleanup.interval.ms=5000

# Small machine (2 cores, shared with the tests).
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=16777216
EOF
if [[ -n "${KAFKA_EXTRA_CONFIG:-}" ]]; then printf '%s\n' "${KAFKA_EXTRA_CONFIG}" >>"${PROPS}"; fi

cat >"${LOG4J_CONF}" <<EOF
# Written by infra/kafka/start.sh. Broker logs go to ${SERVER_LOG}.
status = warn
# Keep logging through the broker's own shutdown hook (clean-shutdown lines).
shutdownHook = disable
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = ${SERVER_LOG}
appender.file.filePattern = ${SERVER_LOG}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3

rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file

# Chatty at INFO; warnings still show.
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
logger.storage.name = org.apache.kafka.storage.internals.log
logger.storage.level = WARN
EOF

# ---------------------------------------------------------------------------------------
# (d) Format storage once (the cluster id lives in meta.properties of the data dir).
if [[ ! -f "${DATA_DIR}/meta.properties" ]]; then
  CLUSTER_ID="$("${JAVA}" -cp "${CP}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
  [[ -n "${CLUSTER_ID}" ]] || die "kafka.tools.StorageTool random-uuid printed nothing"
  log "formatting ${DATA_DIR} (cluster id ${CLUSTER_ID})"
  if ! fmt_out="$("${JAVA}" -cp "${CP}" \
    kafka.tools.StorageTool format --standalone -t "${CLUSTER_ID}" -c "${PROPS}" 2>&1)"; then
    printf '%s\n' "${fmt_out}" >&2
    die "formatting storage failed; try again with KAFKA_FRESH=1"
  fi
fi

# ---------------------------------------------------------------------------------------
# (e) Start in the background, detached from this shell's session so that a caller's
# process-group kill (test runner, CI step) does not take the broker down with it.
if [[ -f "${SERVER_LOG}" ]]; then mv -f "${SERVER_LOG}" "${SERVER_LOG}.prev"; fi
log "starting Kafka ${KAFKA_VERSION} on 127.0.0.1:${PORT} (controller ${CPORT}), logs in ${LOG_DIR}"
# shellcheck disable=SC2086 # HEAP_OPTS is a list of JVM flags
setsid nohup "${JAVA}" ${HEAP_OPTS} \
  -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
  -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
  -Dkafka.logs.dir="${LOG_DIR}" -Dlog4j2.configurationFile="${LOG4J_CONF}" \
  -cp "${CP}" kafka.Kafka "${PROPS}" \
  </dev/null >"${STDOUT_LOG}" 2>&1 8>&- &
PID=$!
printf '%s\n' "${PID}" >"${PID_FILE}"

# ---------------------------------------------------------------------------------------
# (f) Wait for readiness.
wait_ready "${PID}"
log "ready on 127.0.0.1:${PORT} (pid ${PID}) after ${READY_AFTER}"
