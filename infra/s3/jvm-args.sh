#!/usr/bin/env bash
# The arguments S3Mock is started with, in one place (start.sh and the tests' helper use them).
#   jvm-args.sh                          JVM flags (quick start, small heap)
#   jvm-args.sh --app PORT DATA BUCKETS  application arguments: HTTP on PORT, HTTPS on PORT+1, files in DATA
set -euo pipefail
if [[ "${1:-}" != "--app" ]]; then
  echo "-Xms64m -Xmx384m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto -Djava.awt.headless=true"
  exit 0
fi
PORT="$2"
echo "--server.address=127.0.0.1 --http.port=${PORT} --server.port=$((PORT + 1)) --vectors.http.port=0 --vectors.https.port=0 --com.adobe.testing.s3mock.store.root=$3 --com.adobe.testing.s3mock.store.initial-buckets=$4 --com.adobe.testing.s3mock.store.retain-files-on-exit=false --logging.level.root=WARN --spring.main.banner-mode=off"
