#!/usr/bin/env bash
# The test suite: formatting, lints, every unit, golden, end-to-end and
# agent test. Needs the tools `.ci/run` installs (run that on a fresh
# machine; it calls this script).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${KILN_TESTDATA:-}" ]; then
  for d in ../shared/testdata ../../shared/testdata /work/shared/testdata; do
    if [ -d "$d" ]; then KILN_TESTDATA="$(cd "$d" && pwd)"; break; fi
  done
fi
if [ -z "${KILN_TESTDATA:-}" ] || [ ! -d "$KILN_TESTDATA/pprof" ]; then
  echo "test data not found: set KILN_TESTDATA to the shared testdata directory" >&2
  exit 1
fi
export KILN_TESTDATA

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== build"
cargo build --workspace --all-targets --locked

echo "== web UI unit tests (layout math, colours, formatting, URL state; node --test)"
node --test crates/ui/tests/unit/

echo "== tests"
# Includes the web UI in Chromium (e2e test web_ui_in_chromium, which runs
# crates/ui/tests/e2e.mjs; screenshots in target/ui-e2e).
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --profile ci --locked
else
  cargo test --workspace --locked
fi

echo "== deployment checks: Helm chart, deploy/kubernetes, compose, config examples (deploy/tests)"
./deploy/tests/run.sh

echo "== benches, each run once (criterion test mode, debug build)"
cargo test -p kiln-benches --benches --locked

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== fuzz targets: seed corpus through every target, then a short run of each"
# Needs cargo-fuzz (.ci/run installs it and sets KILN_CARGO_FUZZ);
# KILN_FUZZ_SECONDS sets the time per target (default 10, 0: regression
# only); see docs/fuzzing.md.
if [ -n "${KILN_CARGO_FUZZ:-}" ] || command -v cargo-fuzz >/dev/null 2>&1; then
  ./fuzz/run.sh "${KILN_FUZZ_SECONDS:-10}"
elif [ -n "${CI:-}" ]; then
  echo "cargo-fuzz is not installed (.ci/run installs it)" >&2
  exit 1
else
  echo "cargo-fuzz is not installed: skipped (run .ci/run, or see docs/fuzzing.md)"
fi
