#!/usr/bin/env bash
# Produces the numbers of docs/benchmarks.md: release build, criterion
# micro benches, ingest load at a few concurrency levels against a real
# `kiln` (1 s flush), on-disk bytes, peak RSS, query latency, and the merge
# comparison with `go tool pprof -proto`. Everything runs on this machine
# (loopback only) and is bounded in time. Raw outputs go to $OUT.
#
#   benches/run.sh                  # everything (~25 min on 2 cores, plus the build)
#   SKIP_CRITERION=1 benches/run.sh # only the server-level measurements
#
# Environment: CARGO_TARGET_DIR (default /root/.cache/kiln-bench-target, kept
# apart from the debug target dir), KILN_TESTDATA (shared test data),
# OUT (default $CARGO_TARGET_DIR/bench-results), KILN_BIN (use this binary, no build),
# INGEST_SECONDS (default 30),
# COMPACT_WAIT (default 20 s idle before reading the index), CONCURRENCY (default "16 64 256": with a 1 s flush each request waits about a second, so throughput needs many in flight), MERGE_N (default 300).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/kiln-bench-target}
OUT=${OUT:-$CARGO_TARGET_DIR/bench-results}
INGEST_SECONDS=${INGEST_SECONDS:-30}
CONCURRENCY=${CONCURRENCY:-"16 64 256"}
MERGE_N=${MERGE_N:-300}
if [ -z "${KILN_TESTDATA:-}" ]; then
  for d in ../shared/testdata ../../shared/testdata /work/shared/testdata; do
    if [ -d "$d" ]; then KILN_TESTDATA="$(cd "$d" && pwd)"; break; fi
  done
fi
export KILN_TESTDATA
mkdir -p "$OUT"
WORK=$(mktemp -d /root/.cache/kiln-bench-run.XXXXXX 2>/dev/null || mktemp -d)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "== $*" | tee -a "$OUT/summary.txt"; }
: > "$OUT/summary.txt"
log "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
log "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
log "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

if [ -n "${KILN_BIN:-}" ]; then
  BIN=$KILN_BIN   # a binary built elsewhere (e.g. to try the script quickly)
  log "binary: $BIN"
else
  log "release build (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  cargo build --release --locked -p kiln-server --bin kiln 2>&1 | tail -2
  BIN=$CARGO_TARGET_DIR/release/kiln
fi

if [ -z "${SKIP_CRITERION:-}" ]; then
  # The release profile (not `bench`, which adds debug info) reuses the
  # dependencies just built for kiln instead of building them a third time.
  log "criterion benches (cargo bench --profile release -p kiln-benches)"
  cargo bench --locked --profile release -p kiln-benches 2>&1 | tee "$OUT/criterion.txt" | grep -E '^[a-z_]+/|time:|thrpt:' || true
fi

# Starts kiln on free loopback ports with data in $1 and the roles in $2
# (default: all); sets SERVER_PID, HTTP, GRPC.
start_server() {
  local data=$1 target=${2:-all}
  : > "$WORK/server.log"
  # The tenant's ingestion rate and series limits (Pyroscope's defaults:
  # 4 MB/s, 5000 series) would cap the load this script measures.
  KILN_LIMITS__INGESTION_RATE_MB=0 KILN_LIMITS__MAX_SERIES=0 \
  KILN_LOG__LEVEL=warn,kiln_server=info "$BIN" --target "$target" --http-addr 127.0.0.1:0 --grpc-addr 127.0.0.1:0 \
    --data-dir "$data" 2>"$WORK/server.log" &
  SERVER_PID=$!
  for _ in $(seq 1 300); do
    if grep -q 'kiln listening' "$WORK/server.log"; then break; fi
    sleep 0.1
  done
  HTTP=$(grep -o 'http_addr=[0-9.:]*' "$WORK/server.log" | head -1 | cut -d= -f2)
  GRPC=$(grep -o 'grpc_addr=[0-9.:]*' "$WORK/server.log" | head -1 | cut -d= -f2)
  for _ in $(seq 1 300); do
    if curl -sf "http://$HTTP/ready" >/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "kiln did not become ready:" >&2; cat "$WORK/server.log" >&2; exit 1
}

stop_server() {
  kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
}

# Peak resident set size of the server so far, in KiB.
peak_rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status"; }

# CPU seconds (user + system) the server has used so far. Other processes
# (the load generator, builds) share the cores, so throughput per server
# CPU-second is the figure that does not depend on what else runs.
server_cpu_s() {
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$SERVER_PID/stat"
}

json_field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# The ingest runs measure the write path into durable segments: a process
# with the distributor, ingester and metastore roles (the compactor and the
# query roles idle in --target=all would add their background work to the
# server CPU). Compaction then runs in a --target=all process on the same data.
WRITE_PATH=distributor,ingester,metastore
log "ingest: kiln bench ingest for ${INGEST_SECONDS}s at concurrency $CONCURRENCY (push API, gzipped pprof, default flush: 100 ms linger, 1 s interval; --target $WRITE_PATH)"
printf '%-6s %10s %12s %10s %9s %9s %9s %9s %7s %12s %12s %8s %8s %12s %6s\n' \
  conc profiles/s MB/s_uncomp MB/s/core p50_ms p90_ms p99_ms max_ms errors gzip_bytes segment_bytes rss_MiB server_s MB/server_s load1 | tee -a "$OUT/summary.txt"
for c in $CONCURRENCY; do
  data="$WORK/ingest-$c"
  start_server "$data" "$WRITE_PATH"
  "$BIN" bench ingest --url "http://$HTTP" --duration "${INGEST_SECONDS}s" --concurrency "$c" \
    --services 4 --series 8 --variants 16 --stacks 1000 --json > "$OUT/ingest-c$c.json" || true
  rss=$(peak_rss_kib)
  cpu=$(server_cpu_s)
  load1=$(cut -d' ' -f1 /proc/loadavg)
  segments=$("$BIN" blocks ls --metastore "$GRPC" | awk 'NF > 8 && $4 == "0" {n++} END {print n + 0}')
  stop_server
  # Segments written (level 0 objects), then what the index holds after
  # COMPACT_WAIT s of a --target=all process (whose compactor merges them)
  # on the same data.
  disk=$("$BIN" blocks ls --data-dir "$data" | awk 'NF > 8 && $4 == "0" {s += $7} END {print s + 0}')
  echo "c=$c segments written: $segments" >> "$OUT/summary.txt"
  start_server "$data"
  sleep "${COMPACT_WAIT:-20}"
  "$BIN" blocks ls --metastore "$GRPC" > "$OUT/blocks-c$c.txt"
  live=$(awk 'NF > 8 && $4 ~ /^[0-9]+$/ {s += $7} END {print s + 0}' "$OUT/blocks-c$c.txt")
  levels=$(awk 'NF > 8 && $4 ~ /^[0-9]+$/ {n[$4]++} END {for (l in n) printf "L%s:%d ", l, n[l]}' "$OUT/blocks-c$c.txt")
  echo "c=$c live blocks after ${COMPACT_WAIT:-20}s: $live bytes ($levels)" >> "$OUT/summary.txt"
  echo "$live" > "$OUT/ingest-c$c.live"
  stop_server
  r=$(cat "$OUT/ingest-c$c.json")
  printf '%-6s %10.1f %12.2f %10.2f %9.1f %9.1f %9.1f %9.1f %7s %12s %12s %8.0f %8.1f %12.2f %6s\n' "$c" \
    "$(echo "$r" | json_field 'd["profiles_per_s"]')" \
    "$(echo "$r" | json_field 'd["mb_per_s"]')" \
    "$(echo "$r" | json_field "d['mb_per_s']/$(nproc)")" \
    "$(echo "$r" | json_field 'd["latency_ms"]["p50"]')" \
    "$(echo "$r" | json_field 'd["latency_ms"]["p90"]')" \
    "$(echo "$r" | json_field 'd["latency_ms"]["p99"]')" \
    "$(echo "$r" | json_field 'd["latency_ms"]["max"]')" \
    "$(echo "$r" | json_field 'd["errors"]')" \
    "$(echo "$r" | json_field 'd["profile_bytes_sent"]')" \
    "$disk" "$(echo "$rss / 1024" | bc -l)" "$cpu" \
    "$(echo "$r" | json_field "d['uncompressed_bytes']/1e6/$cpu")" "$load1" | tee -a "$OUT/summary.txt"
  echo "$disk" > "$OUT/ingest-c$c.disk"
  echo "$rss" > "$OUT/ingest-c$c.rss"
done

# Query latency on the data of the highest concurrency run, in a fresh
# process (its peak RSS is the querier's plus the idle roles').
last=$(echo $CONCURRENCY | awk '{print $NF}')
log "query: kiln bench query on the data of the c=$last run (fresh process)"
start_server "$WORK/ingest-$last"
rss_idle=$(peak_rss_kib)
"$BIN" bench query --url "http://$HTTP" \
  --selector 'process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="api-0"}' \
  --ranges 1h,24h --iterations 20 | tee "$OUT/query.txt" | tee -a "$OUT/summary.txt"
"$BIN" bench query --url "http://$HTTP" \
  --selector 'process_cpu:cpu:nanoseconds:cpu:nanoseconds{}' \
  --ranges 1h --iterations 10 | tee -a "$OUT/query.txt" | tee -a "$OUT/summary.txt"
log "peak RSS: query process $(( $(peak_rss_kib) / 1024 )) MiB (after start, before queries: $(( rss_idle / 1024 )) MiB)"
stop_server

# Merge comparison: N real Go CPU profiles (copies of the three in the
# shared test data) merged by Kiln (upload + one query) and by go tool pprof.
log "merge: $MERGE_N real Go CPU pprof files, kiln (upload + one SelectMergeProfile) vs go tool pprof -proto"
if ! command -v go >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null
fi
files="$WORK/merge-in"
mkdir -p "$files"
srcs=("$KILN_TESTDATA/pprof/cpu.pb.gz" "$KILN_TESTDATA/captured/go1.19-runtime-pprof.cpu.pb.gz" "$KILN_TESTDATA/pprof/cpu_go_truncated_1.pb.gz")
for i in $(seq 1 "$MERGE_N"); do
  cp "${srcs[$(( i % 3 ))]}" "$files/p$i.pb.gz"
done
log "input: $(du -sb "$files" | cut -f1) bytes gzipped in $MERGE_N files"
t0=$(date +%s.%N)
go tool pprof -proto "$files"/*.pb.gz > "$WORK/go-merged.pb.gz" 2>"$WORK/go.err"
t1=$(date +%s.%N)
go_s=$(echo "$t1 - $t0" | bc -l)
start_server "$WORK/merge-data"
t0=$(date +%s.%N)
"$BIN" upload --url "http://$HTTP" --service merge --concurrency 64 "$files" > "$WORK/upload.txt" 2>/dev/null
t1=$(date +%s.%N)
"$BIN" query --url "http://$HTTP" --output pprof --out "$WORK/kiln-merged.pb.gz" \
  'process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="merge"}'
t2=$(date +%s.%N)
# The merge alone, on stored data: best of 5 queries.
best=999
for _ in 1 2 3 4 5; do
  q0=$(date +%s.%N)
  "$BIN" query --url "http://$HTTP" --output pprof --out "$WORK/kiln-merged.pb.gz" \
    'process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="merge"}'
  q1=$(date +%s.%N)
  best=$(echo "q=$q1 - $q0; if (q < $best) q else $best" | bc -l)
done
stop_server
merge_disk=$(find "$WORK/merge-data/blocks" -name '*.block' -printf '%s\n' | awk '{s+=$1} END {print s+0}')
log "merge data on disk: $merge_disk bytes of segments for $(du -sb "$files" | cut -f1) bytes of gzipped pprof"
upload_s=$(echo "$t1 - $t0" | bc -l)
query_s=$(echo "$t2 - $t1" | bc -l)
total_s=$(echo "$t2 - $t0" | bc -l)
{
  printf 'go tool pprof -proto:          %8.3f s\n' "$go_s"
  printf 'kiln upload (%s files):       %8.3f s\n' "$MERGE_N" "$upload_s"
  printf 'kiln first merge query:        %8.3f s\n' "$query_s"
  printf 'kiln upload + query:           %8.3f s  (%.2fx go tool pprof)\n' "$total_s" "$(echo "$go_s / $total_s" | bc -l)"
  printf 'kiln merge query (best of 5):  %8.3f s  (%.2fx go tool pprof)\n' "$best" "$(echo "$go_s / $best" | bc -l)"
} | tee "$OUT/merge.txt" | tee -a "$OUT/summary.txt"
# Both merges must agree on the CPU total.
python3 - "$WORK/go-merged.pb.gz" "$WORK/kiln-merged.pb.gz" <<'PY' | tee -a "$OUT/summary.txt"
import gzip, sys
def varint(b, i):
    v = s = 0
    while True:
        x = b[i]; i += 1; v |= (x & 0x7f) << s; s += 7
        if x < 0x80: return v, i
def fields(b):
    i = 0
    while i < len(b):
        k, i = varint(b, i); f, t = k >> 3, k & 7
        if t == 0: v, i = varint(b, i); yield f, v
        elif t == 2:
            n, i = varint(b, i); yield f, b[i:i+n]; i += n
        elif t == 1: yield f, b[i:i+8]; i += 8
        elif t == 5: yield f, b[i:i+4]; i += 4
def totals(path):
    b = gzip.open(path).read()
    strings, types, sums = [], [], []
    samples = []
    for f, v in fields(b):
        if f == 6: strings.append(v.decode())
        elif f == 1: types.append(dict(fields(v)))
        elif f == 2: samples.append(v)
    sums = [0] * len(types)
    for s in samples:
        vals = []
        for f, v in fields(s):
            if f == 2:
                if isinstance(v, bytes):
                    j = 0
                    while j < len(v): x, j = varint(v, j); vals.append(x)
                else: vals.append(v)
        for k, x in enumerate(vals[:len(sums)]): sums[k] += x
    return {strings[t.get(1, 0)]: sums[k] for k, t in enumerate(types)}
g, k = totals(sys.argv[1]), totals(sys.argv[2])
print(f"cpu total: go tool pprof {g.get('cpu')}, kiln {k.get('cpu')} ({'equal' if g.get('cpu') == k.get('cpu') else 'DIFFERENT'})")
PY
log "done; raw outputs in $OUT"
