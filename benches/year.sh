#!/usr/bin/env bash
# The one-year benchmark (issue 5): a year of one service, one profile every
# 10 s (3,153,600 profiles), written straight into blocks and roll-ups by
# `kiln bench year generate` and registered in a real `kiln`, whose
# compactor then merges the day tiers; then flame-graph queries
# (SelectMergeStacktraces, max_nodes 8192) over the year, 30 days, 7 days,
# the last 24 h and the last hour through a fresh `kiln` process's HTTP
# API, with exact totals checked and the server's peak RSS per window.
#
# Two states are measured:
#   A  the last day is still raw (24 hour blocks; the day job has not run:
#      compactor.day_grace is set very long), so "24h" and "1h" read raw
#      data and the year and 30 days include a day of raw data;
#   B  after the day job of the last day (default configuration): every
#      window is answered from roll-up tiers.
#
#   benches/year.sh                         # ~35 min on 2 cores (200 hits per profile), plus the release build
#   HITS=2000 RAW_DAYS=29 benches/year.sh   # denser profiles, raw days to the 30-day retention (~2 h)
#   DAYS=30 benches/year.sh                 # a shorter dataset
#   REUSE=1 benches/year.sh                 # query an existing $DATA again
#
# Environment: CARGO_TARGET_DIR (default /root/.cache/kiln-bench-target),
# KILN_BIN (use this binary, no build), OUT (default
# $CARGO_TARGET_DIR/bench-results), DATA (default /root/.cache/kiln-year-data;
# removed first unless REUSE=1), DAYS (365), RAW_DAYS (6), HITS (200, mean
# samples per profile), ITERATIONS (10),
# GEN_FLAGS (extra flags for `kiln bench year generate`), KEEP_DATA=1 keeps
# $DATA at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/kiln-bench-target}
OUT=${OUT:-$CARGO_TARGET_DIR/bench-results}
DATA=${DATA:-/root/.cache/kiln-year-data}
DAYS=${DAYS:-365}
RAW_DAYS=${RAW_DAYS:-6}
HITS=${HITS:-200}
ITERATIONS=${ITERATIONS:-10}
GEN_FLAGS=${GEN_FLAGS:-}
mkdir -p "$OUT"
SERVER_PID=""
LOG="$OUT/year-server.log"
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [ -z "${KEEP_DATA:-}" ] && [ -z "${REUSE:-}" ]; then rm -rf "$DATA"; fi
}
trap cleanup EXIT

log() { echo "== $*" | tee -a "$OUT/year-summary.txt"; }
: > "$OUT/year-summary.txt"
log "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); load $(cut -d' ' -f1-3 /proc/loadavg)"
log "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

if [ -n "${KILN_BIN:-}" ]; then
  BIN=$KILN_BIN
else
  log "release build (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  cargo build --release --locked -p kiln-server --bin kiln 2>&1 | tail -2
  BIN=$CARGO_TARGET_DIR/release/kiln
fi
log "binary: $BIN"

# Starts kiln on free loopback ports with data in $DATA and extra
# environment "$@"; sets SERVER_PID, HTTP, GRPC.
start_server() {
  : > "$LOG"
  env "$@" KILN_LOG__LEVEL=warn,kiln_server=info,kiln_compactor=info "$BIN" \
    --http-addr 127.0.0.1:0 --grpc-addr 127.0.0.1:0 --data-dir "$DATA" 2>>"$LOG" &
  SERVER_PID=$!
  for _ in $(seq 1 600); do
    if grep -q 'kiln listening' "$LOG"; then break; fi
    sleep 0.1
  done
  HTTP=$(grep -o 'http_addr=[0-9.:]*' "$LOG" | head -1 | cut -d= -f2)
  GRPC=$(grep -o 'grpc_addr=[0-9.:]*' "$LOG" | head -1 | cut -d= -f2)
  for _ in $(seq 1 600); do
    if curl -sf "http://$HTTP/ready" >/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "kiln did not become ready:" >&2; cat "$LOG" >&2; exit 1
}

stop_server() {
  kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
}

# Waits until the block index has not changed for $1 seconds.
settle() {
  local quiet=$1 last="" same=0
  while [ "$same" -lt "$quiet" ]; do
    local now
    now=$("$BIN" blocks ls --metastore "$GRPC" | md5sum)
    if [ "$now" = "$last" ]; then same=$((same + 5)); else same=0; last=$now; fi
    sleep 5
  done
}

# Queries every window of the manifest on a fresh server; $1 = label.
measure() {
  log "queries ($1): $ITERATIONS per window, fresh process (pid $SERVER_PID)"
  "$BIN" blocks ls --metastore "$GRPC" > "$OUT/year-blocks-$1.txt"
  tail -1 "$OUT/year-blocks-$1.txt" | tee -a "$OUT/year-summary.txt"
  awk 'NR > 1 && $4 ~ /^[0-9]+$/ { n[$4]++ } END { for (l in n) printf "level %s: %d blocks\n", l, n[l] }' \
    "$OUT/year-blocks-$1.txt" | sort | tee -a "$OUT/year-summary.txt"
  "$BIN" bench year query --url "http://$HTTP" --manifest "$DATA/year.json" \
    --iterations "$ITERATIONS" --pid "$SERVER_PID" | tee "$OUT/year-query-$1.txt" | tee -a "$OUT/year-summary.txt"
  "$BIN" bench year query --url "http://$HTTP" --manifest "$DATA/year.json" \
    --iterations 3 --pid "$SERVER_PID" --json > "$OUT/year-query-$1.json"
  log "server CPU time so far: $(awk '{printf "%.1f s", ($14 + $15) / 100}' "/proc/$SERVER_PID/stat")"
}

NO_DAY_JOB=(KILN_COMPACTOR__DAY_GRACE=100000h)
if [ -z "${REUSE:-}" ]; then
  rm -rf "$DATA"
  mkdir -p "$DATA"
  start_server "${NO_DAY_JOB[@]}"
  log "generate: $DAYS days, raw days $RAW_DAYS ($(date -u +%FT%TZ))"
  # shellcheck disable=SC2086
  /usr/bin/time -v "$BIN" bench year generate --metastore "$GRPC" --data-dir "$DATA" \
    --days "$DAYS" --raw-days "$RAW_DAYS" --hits "$HITS" --manifest "$DATA/year.json" --settle 30s $GEN_FLAGS \
    2> "$OUT/year-generate.txt"
  grep -E '^(wrote|block index|done)|Elapsed|Maximum resident|User time|System time' "$OUT/year-generate.txt" | tee -a "$OUT/year-summary.txt"
  grep 'compaction job committed' "$LOG" > "$OUT/year-compaction-jobs.txt" || true
  log "compaction jobs during generation: $(wc -l < "$OUT/year-compaction-jobs.txt"); server CPU $(awk '{printf "%.1f s", ($14 + $15) / 100}' "/proc/$SERVER_PID/stat")"
  stop_server
fi
log "on disk: $(du -sh "$DATA/blocks" | cut -f1) in $(find "$DATA/blocks" -name '*.block' | wc -l) objects"

# State A: the last day still raw.
start_server "${NO_DAY_JOB[@]}"
measure A
stop_server

# State B: the compactor runs the last day's day job (and merges its tiers).
if [ -z "${SKIP_B:-}" ]; then
  start_server
  log "day job of the last day (state B)"
  settle 30
  grep 'compaction job committed' "$LOG" | tee -a "$OUT/year-summary.txt" || true
  stop_server
  start_server
  measure B
  stop_server
fi
log "on disk at the end: $(du -sh "$DATA/blocks" | cut -f1)"
