#!/usr/bin/env bash
# Installs the browser the dashboard's end-to-end test drives (packages/dashboard/test/dashboard.e2e.test.ts):
# Debian's chromium, through apt (playwright's own browser downloads cannot be reached here).
# Idempotent: does nothing when /usr/bin/chromium exists. .ci/run calls it before `npm test`.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "› chromium is installed: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else echo "✖ installing chromium needs root (apt-get install chromium)" >&2; exit 1; fi
fi
echo "› installing chromium (Debian package) for the dashboard's browser test …"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "› $(/usr/bin/chromium --version 2>/dev/null | head -1)"
