#!/usr/bin/env bash
# `make demo`: start the private services, migrate, run the worker, upload the Palo Alto
# app as the Python application does (tar.gz, Celery parse_run on the default queue),
# wait for the run to finish and print it. The services stay up (`make demo-stop`).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${CWORKER_BIN:-$REPO/build/cworker}
PY=/usr/bin/python3
APP_DIR=$REPO/tests/testdata/splunk_ta_paloalto
TIMEOUT=${DEMO_TIMEOUT:-90}

STATE=${CWORKER_STATE_DIR:-$REPO/.state} # services.sh honours the same variable
WORKER_PID=$STATE/demo-worker.pid
WORKER_LOG=$STATE/demo-worker.log
export STORAGE_BACKEND=local
export STORAGE_PATH=$STATE/demo-storage

say() { echo "demo: $*"; }

[ -x "$BIN" ] || {
  say "no worker binary at $BIN (run make)"
  exit 1
}
[ -d "$APP_DIR" ] || {
  say "no test app at $APP_DIR (tests/testdata is part of the repository)"
  exit 1
}

bash "$REPO/tests/env/services.sh" start
eval "$(bash "$REPO/tests/env/services.sh" env)"
mkdir -p "$STORAGE_PATH"

say "applying migrations"
"$BIN" migrate --migrations-dir "$REPO/migrations"

stop_worker() {
  [ -s "$WORKER_PID" ] || return 0
  local pid
  pid=$(cat "$WORKER_PID")
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q cworker; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "worker $pid ignored SIGTERM for 10s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$WORKER_PID"
}

stop_worker # one left from an earlier demo
say "starting worker (log: $WORKER_LOG)"
CELERY_QUEUES=celery CONCURRENCY=2 setsid "$BIN" run >"$WORKER_LOG" 2>&1 </dev/null &
echo $! >"$WORKER_PID"
trap stop_worker EXIT

cd "$REPO/tests/py"
out=$($PY producer.py submit --src "$APP_DIR" --format tar.gz --top Splunk_TA_paloalto \
  --type APP_BUNDLE)
run_id=$($PY -c 'import json,sys; print(json.load(sys.stdin)["run_id"])' <<<"$out")
say "uploaded Splunk_TA_paloalto.tar.gz as run $run_id; parse_run published via Celery"

status=
deadline=$((SECONDS + TIMEOUT))
while [ $SECONDS -lt $deadline ]; do
  status=$(psql "$DATABASE_URL" -XAtqc "SELECT status FROM ingestion_runs WHERE id = $run_id")
  case "$status" in COMPLETE | FAILED) break ;; esac
  if ! kill -0 "$(cat "$WORKER_PID")" 2>/dev/null; then
    say "the worker exited; last lines of $WORKER_LOG:"
    tail -n 30 "$WORKER_LOG" | sed 's/^/    /'
    exit 1
  fi
  sleep 0.3
done
if [ "$status" != COMPLETE ] && [ "$status" != FAILED ]; then
  say "run $run_id still '$status' after ${TIMEOUT}s; last lines of $WORKER_LOG:"
  tail -n 30 "$WORKER_LOG" | sed 's/^/    /'
  exit 1
fi

echo
psql "$DATABASE_URL" -Xq -P footer=off <<EOF
\pset border 1
SELECT id AS run, type, status, retry_count AS retries,
       round((metrics->>'duration_seconds')::numeric, 3) || ' s' AS took,
       coalesce(error_message, '-') AS error
  FROM ingestion_runs WHERE id = $run_id;
SELECT key AS metric, value FROM json_each((SELECT metrics FROM ingestion_runs WHERE id = $run_id));
SELECT conf_type, count(*) AS stanzas, count(DISTINCT source_path) AS files
  FROM stanzas WHERE run_id = $run_id GROUP BY conf_type ORDER BY conf_type;
EOF

stop_worker
trap - EXIT
say "worker stopped; RabbitMQ and PostgreSQL keep running (make demo-stop stops them)"
[ "$status" = COMPLETE ]
