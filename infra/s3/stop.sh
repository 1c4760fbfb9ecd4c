#!/usr/bin/env bash
# Stops the S3Mock that infra/s3/start.sh started on S3_PORT (default 9590).
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${SHOPSTREAM_S3_HOME:-$(cd "${SCRIPT_DIR}/../.." && pwd)/.cache/s3mock}"
PID_FILE="${CACHE}/run-${S3_PORT:-9590}/s3mock.pid"
if [[ -f "${PID_FILE}" ]] && kill -0 "$(cat "${PID_FILE}")" 2>/dev/null; then
  kill "$(cat "${PID_FILE}")"
  for _ in $(seq 1 40); do kill -0 "$(cat "${PID_FILE}")" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$(cat "${PID_FILE}")" 2>/dev/null || true
  echo "[s3mock] stopped"
fi
rm -f "${PID_FILE}"
