#!/usr/bin/env bash
# Runs every fuzz target built by `make fuzz` for a while, one process at a time, and
# prints libFuzzer's final statistics per target. Exits non-zero when any target found a
# crash (its reproducer is under <build>/artifacts/).
#   usage: run.sh <build dir> <seconds per target>
set -uo pipefail

BUILD=$(mkdir -p "${1:?build dir}" && cd "$1" && pwd)
SECONDS_PER_TARGET=${2:?seconds per target}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
APP="$REPO/tests/testdata/splunk_ta_paloalto"
CORPUS="$BUILD/corpus"
ART="$BUILD/artifacts"
LOGS="$BUILD/logs"

# target:max_len:dictionary ("" for none)
TARGETS=(
  "celery_message:16384:$HERE/json.dict"
  "mq_json:16384:$HERE/json.dict"
  "kombu_json:16384:$HERE/json.dict"
  "conf_parser:16384:"
  "archive_reader:131072:"
)

mkdir -p "$CORPUS" "$ART" "$LOGS"

# Seeds: generated binary ones, .conf files and archives of the Splunk test app (each
# prefixed with the target's option bytes: two for conf_parser, one for archive_reader).
"$BUILD/fuzz/seed_gen" "$CORPUS" || exit 1
if [ -d "$APP" ]; then
  mkdir -p "$CORPUS/conf_parser" "$CORPUS/archive_reader"
  for f in "$APP"/default/*.conf; do
    { printf '\0\0'; cat "$f"; } >"$CORPUS/conf_parser/app_$(basename "$f")"
  done
  tmp=$(mktemp -d "$BUILD/seed.XXXXXX")
  (cd "$APP/.." && tar -cf "$tmp/app.tar" splunk_ta_paloalto/default/app.conf \
      splunk_ta_paloalto/default/inputs.conf splunk_ta_paloalto/default/tags.conf &&
    tar -czf "$tmp/app.tar.gz" splunk_ta_paloalto &&
    tar -cjf "$tmp/app.tar.bz2" splunk_ta_paloalto/default &&
    tar -cJf "$tmp/app.tar.xz" splunk_ta_paloalto/default &&
    zip -qr "$tmp/app.zip" splunk_ta_paloalto)
  cp "$APP/default/app.conf" "$tmp/app.conf"
  for f in "$tmp"/*; do
    { printf '\0'; cat "$f"; } >"$CORPUS/archive_reader/$(basename "$f")"
  done
  rm -rf "$tmp"
else
  echo "fuzz: $APP not found: conf_parser and archive_reader start from the committed seeds only"
fi

status=0
summary=()
for spec in "${TARGETS[@]}"; do
  IFS=: read -r name max_len dict <<<"$spec"
  bin="$BUILD/fuzz/fuzz_$name"
  mkdir -p "$CORPUS/$name"
  seeds=()
  [ -d "$HERE/corpus/$name" ] && seeds+=("$HERE/corpus/$name")
  opts=(-max_total_time="$SECONDS_PER_TARGET" -max_len="$max_len" -timeout=10
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$ART/$name-")
  [ -n "$dict" ] && opts+=(-dict="$dict")
  echo "== fuzz_$name (${SECONDS_PER_TARGET}s, max_len $max_len)"
  "$bin" "${opts[@]}" "$CORPUS/$name" "${seeds[@]}" >"$LOGS/$name.log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOGS/$name.log" | tail -1)
  verdict=ok
  if [ $rc -ne 0 ]; then
    verdict="CRASH (rc $rc, see $LOGS/$name.log and $ART/$name-*)"
    grep -m5 -E 'ERROR: |SUMMARY: |runtime error|fuzz_[a-z_]+: ' "$LOGS/$name.log"
    status=1
  fi
  summary+=("$(printf '%-16s %12s execs  %s' "$name" "${execs:-?}" "$verdict")")
done

echo "== fuzz summary (executions per target)"
printf '%s\n' "${summary[@]}"
exit $status
