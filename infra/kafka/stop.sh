#!/usr/bin/env bash
# Stop the Kafka broker that infra/kafka/start.sh started on KAFKA_PORT (default 9092).
# Only the pid recorded in <cache>/run-<port>/kafka.pid is signalled, and only if that
# process really is that broker: SIGTERM, up to 30 s for a clean shutdown, then SIGKILL.
#
# Env: KAFKA_PORT (default 9092), SHOPSTREAM_KAFKA_HOME (default <repo>/.cache/kafka),
#      KAFKA_STOP_TIMEOUT (seconds before SIGKILL, default 30).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/../.." && pwd)"
CACHE="${SHOPSTREAM_KAFKA_HOME:-${REPO_ROOT}/.cache/kafka}"
PORT="${KAFKA_PORT:-9092}"
TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
RUN_DIR="${CACHE}/run-${PORT}"
PID_FILE="${RUN_DIR}/kafka.pid"
PROPS="${RUN_DIR}/server.properties"

log() { printf '[kafka:%s] %s\n' "${PORT}" "$*"; }

[[ "${PORT}" =~ ^[0-9]+$ ]] || { log "ERROR: KAFKA_PORT='${PORT}' is not a valid port" >&2; exit 1; }
[[ "${TIMEOUT}" =~ ^[0-9]+$ ]] || { log "ERROR: KAFKA_STOP_TIMEOUT='${TIMEOUT}' is not a number" >&2; exit 1; }

if [[ ! -f "${PID_FILE}" ]]; then
  log "no broker running (no ${PID_FILE})"
  exit 0
fi

PID="$(cat "${PID_FILE}" 2>/dev/null || true)"
is_our_broker() {
  kill -0 "${PID}" 2>/dev/null \
    && tr '\0' ' ' <"/proc/${PID}/cmdline" 2>/dev/null | grep -qF -- "kafka.Kafka ${PROPS}"
}

if ! [[ "${PID}" =~ ^[0-9]+$ ]] || ! is_our_broker; then
  log "no broker running (stale pid file '${PID:-empty}' removed)"
  rm -f "${PID_FILE}"
  exit 0
fi

# After the signal, wait for the pid itself to go away (not just for its command line to
# vanish, which happens early while the JVM is still exiting). A zombie counts as gone.
pid_running() {
  local state
  state="$(ps -o stat= -p "${PID}" 2>/dev/null || true)"
  [[ -n "${state}" && "${state}" != Z* ]]
}

log "stopping broker (pid ${PID}) ..."
kill -TERM "${PID}" 2>/dev/null || true
deadline=$((SECONDS + TIMEOUT))
while pid_running && ((SECONDS < deadline)); do
  sleep 0.2
done
if pid_running; then
  log "still running after ${TIMEOUT}s; sending SIGKILL"
  kill -KILL "${PID}" 2>/dev/null || true
  for _ in $(seq 1 50); do
    pid_running || break
    sleep 0.1
  done
fi
if pid_running; then
  log "ERROR: pid ${PID} survived SIGKILL" >&2
  exit 1
fi
rm -f "${PID_FILE}"
log "stopped"
