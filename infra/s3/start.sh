#!/usr/bin/env bash
# An S3-compatible server for development and the lake's tests: Adobe's S3Mock (Apache-2.0), the
# Spring Boot executable jar `com.adobe.testing:s3mock:<version>:jar:exec` from Maven Central,
# fetched once into <repo>/.cache/s3mock (like infra/kafka/start.sh does for Kafka). Java 17+.
#
#   bash infra/s3/start.sh --jar     fetch only; print the jar's path (the tests start it themselves)
#   bash infra/s3/start.sh           start it in the background on 127.0.0.1:$S3_PORT (idempotent)
#   bash infra/s3/stop.sh            stop it
#
# Env (all optional):
#   S3_PORT              HTTP port (default 9590); the server also opens an HTTPS port, S3_PORT + 1
#   S3_BUCKETS           buckets created at start, comma-separated (default: lake)
#   SHOPSTREAM_S3_HOME   cache folder (default <repo>/.cache/s3mock)
#   S3MOCK_VERSION       default 5.2.0 (runs on Java 17)
#   S3_START_TIMEOUT     seconds to wait for readiness (default 120)
# Credentials: S3Mock accepts any (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY to anything).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/../.." && pwd)"
CACHE="${SHOPSTREAM_S3_HOME:-${REPO_ROOT}/.cache/s3mock}"
VERSION="${S3MOCK_VERSION:-5.2.0}"
JAR="${CACHE}/s3mock-${VERSION}-exec.jar"
PORT="${S3_PORT:-9590}"
TIMEOUT="${S3_START_TIMEOUT:-120}"

log() { printf '[s3mock:%s] %s\n' "${PORT}" "$*" >&2; }
die() { printf '[s3mock:%s] ERROR: %s\n' "${PORT}" "$*" >&2; exit 1; }

# --- the jar, from Maven Central (one fetch at a time per cache) ------------------------------
mkdir -p "${CACHE}"
if [[ ! -s "${JAR}" ]]; then
  exec 9>"${CACHE}/.fetch.lock"
  flock 9
  if [[ ! -s "${JAR}" ]]; then
    command -v mvn >/dev/null || die "Maven ('mvn') is needed to fetch S3Mock (Debian: apt-get install maven)"
    log "fetching com.adobe.testing:s3mock:${VERSION}:jar:exec from Maven Central into ${CACHE} ..."
    tmp="${CACHE}/fetch.tmp.$$"
    rm -rf "${tmp}"
    if ! mvn -B -q dependency:copy -Dartifact="com.adobe.testing:s3mock:${VERSION}:jar:exec" -DoutputDirectory="${tmp}" -Dmdep.overWriteReleases=true >"${CACHE}/maven.log" 2>&1; then
      tail -n 30 "${CACHE}/maven.log" >&2
      rm -rf "${tmp}"
      die "Maven could not fetch S3Mock ${VERSION} (full output: ${CACHE}/maven.log)"
    fi
    mv "${tmp}/s3mock-${VERSION}-exec.jar" "${JAR}"
    rm -rf "${tmp}"
  fi
  flock -u 9
  exec 9>&-
fi
if [[ "${1:-}" == "--jar" ]]; then
  printf '%s\n' "${JAR}"
  exit 0
fi

# --- start in the background -----------------------------------------------------------------
JAVA="${JAVA_HOME:+${JAVA_HOME}/bin/}java"
command -v "${JAVA}" >/dev/null || die "no java (Java 17+ is needed)"
RUN_DIR="${CACHE}/run-${PORT}"
PID_FILE="${RUN_DIR}/s3mock.pid"
mkdir -p "${RUN_DIR}/data"
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [[ -f "${PID_FILE}" ]] && kill -0 "$(cat "${PID_FILE}")" 2>/dev/null; then
  log "already running (pid $(cat "${PID_FILE}"))"
  exit 0
fi
port_open "${PORT}" && die "127.0.0.1:${PORT} is in use by another process; pick another S3_PORT"
# shellcheck disable=SC2046
setsid nohup "${JAVA}" $(bash "${SCRIPT_DIR}/jvm-args.sh") -jar "${JAR}" $(bash "${SCRIPT_DIR}/jvm-args.sh" --app "${PORT}" "${RUN_DIR}/data" "${S3_BUCKETS:-lake}") \
  </dev/null >"${RUN_DIR}/s3mock.out" 2>&1 &
echo $! >"${PID_FILE}"
start=$(date +%s)
until port_open "${PORT}"; do
  kill -0 "$(cat "${PID_FILE}")" 2>/dev/null || { tail -n 40 "${RUN_DIR}/s3mock.out" >&2; die "S3Mock exited during startup"; }
  (($(date +%s) - start < TIMEOUT)) || { tail -n 40 "${RUN_DIR}/s3mock.out" >&2; die "not ready after ${TIMEOUT}s"; }
  sleep 0.25
done
log "ready on http://127.0.0.1:${PORT} (pid $(cat "${PID_FILE}"))"
