#!/usr/bin/env bash
# Fuzzing in CI and by hand: fuzz/run.sh [seconds-per-target] [target...]
#
# 1. builds every target with cargo-fuzz (libFuzzer + AddressSanitizer,
#    optimised, debug assertions on), on the stable toolchain with
#    RUSTC_BOOTSTRAP=1 (cargo-fuzz passes -Z flags to rustc);
# 2. builds the corpus (seed-corpus.sh: committed seeds + shared test data);
# 3. regression: runs every corpus input of every target through every
#    target, once;
# 4. fuzzes each target for the given seconds (default 20; 0 skips this
#    step), one target at a time.
#
# Memory is bounded: one allocation above -malloc_limit_mb or a resident
# size above -rss_limit_mb is a failure, like a panic or an input that takes
# longer than -timeout seconds. Crashing inputs are written to
# fuzz/artifacts/<target>/; reproduce one with
#   ${KILN_FUZZ_TARGET_DIR:-fuzz/target}/x86_64-unknown-linux-gnu/release/<target> <file>
# Uses $KILN_CARGO_FUZZ (the cargo-fuzz binary .ci/run installs) or
# cargo-fuzz from PATH, and builds into $KILN_FUZZ_TARGET_DIR (default
# fuzz/target; .ci/run keeps it in ~/.cache so that CI reuses it).
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-20}
shift || true
all=(pprof jfr folded speedscope legacy_tree otlp connect_json selector ingest_params decompress)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi

cargo_fuzz=${KILN_CARGO_FUZZ:-$(command -v cargo-fuzz || true)}
if [ -z "$cargo_fuzz" ]; then
  echo "cargo-fuzz not found: run .ci/run, or cargo install --locked cargo-fuzz@0.13.2" >&2
  exit 1
fi

# Limits every run shares: 512 MiB for one allocation (the largest a parser
# may legitimately make under fuzz/src/lib.rs's limits is far below), 2 GiB
# resident, 10 s for one input.
limits=(-rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10)
started=$(date +%s)

echo "== fuzz: build (cargo-fuzz, RUSTC_BOOTSTRAP=1)"
target_dir=${KILN_FUZZ_TARGET_DIR:-$PWD/target}
RUSTC_BOOTSTRAP=1 "$cargo_fuzz" fuzz build -O --debug-assertions --target-dir "$target_dir"
bin=$target_dir/x86_64-unknown-linux-gnu/release
built=$(date +%s)

./seed-corpus.sh >/dev/null
dirs=()
for t in "${all[@]}"; do dirs+=("corpus/$t"); done

failed=()
echo "== fuzz: regression, every corpus input through every target"
for t in "${targets[@]}"; do
  mkdir -p "artifacts/$t"
  if ! "$bin/$t" "${limits[@]}" -runs=0 -artifact_prefix="artifacts/$t/" "${dirs[@]}" \
    >"artifacts/$t/regression.log" 2>&1; then
    echo "FAILED: $t (regression); log: fuzz/artifacts/$t/regression.log"
    tail -40 "artifacts/$t/regression.log"
    failed+=("$t:regression")
  else
    echo "ok: $t ($(grep -o 'INITED.*' "artifacts/$t/regression.log" | head -1))"
  fi
done
regressed=$(date +%s)

if [ "$seconds" -gt 0 ]; then
  echo "== fuzz: ${seconds}s per target"
  for t in "${targets[@]}"; do
    dict=()
    [ -f "dict/$t.dict" ] && dict=(-dict="dict/$t.dict")
    if ! "$bin/$t" "${limits[@]}" "${dict[@]}" -max_total_time="$seconds" -max_len=65536 \
      -seed=1 -print_final_stats=1 -artifact_prefix="artifacts/$t/" "corpus/$t" \
      >"artifacts/$t/fuzz.log" 2>&1; then
      echo "FAILED: $t (fuzzing); log: fuzz/artifacts/$t/fuzz.log"
      tail -60 "artifacts/$t/fuzz.log"
      failed+=("$t:fuzz")
    else
      echo "ok: $t ($(grep -E 'stat::number_of_executed_units' "artifacts/$t/fuzz.log" | awk '{print $2}') runs, $(grep -E 'stat::peak_rss_mb' "artifacts/$t/fuzz.log" | awk '{print $2}') MB peak RSS)"
    fi
  done
fi
finished=$(date +%s)
echo "== fuzz: build $((built - started))s, regression $((regressed - built))s, fuzzing $((finished - regressed))s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz failures: ${failed[*]}" >&2
  exit 1
fi
