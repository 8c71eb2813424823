#!/usr/bin/env bash
# Installs the real profiling agents that the end-to-end agent tests drive
# (crates/server/tests/e2e/agents*.rs). `.ci/run` calls it before the test
# suite; run it by hand once on a new machine. It is idempotent: a step whose
# result is already in place is skipped, so a rerun takes a few seconds.
#
# What goes where (the tests look in the same places):
#   $KILN_AGENTS_HOME (default $HOME/.cache/kiln-agents)
#     venv/                    Python venv with pyroscope-io and py-spy
#     target-rust-2/           cargo target dir of tests/agents/rust-2
#     target-rust-0.5/         cargo target dir of tests/agents/rust-0.5
#   tests/agents/node/node_modules   @pyroscope/nodejs (npm ci, lock file committed)
#   Debian packages: golang-go, and a JDK 17, Node.js/npm, python3 and curl
#   when the machine lacks them.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
home="${KILN_AGENTS_HOME:-$HOME/.cache/kiln-agents}"
mkdir -p "$home"

PYROSCOPE_IO_VERSION=1.4.0
PY_SPY_VERSION=0.4.3

# Wall-clock microseconds (bash 5).
now_us() { echo "${EPOCHREALTIME/./}"; }
seconds_since() { local d=$(($(now_us) - $1)); printf '%d.%01d' $((d / 1000000)) $((d % 1000000 / 100000)); }
all_started=$(now_us)
step_started=$all_started
step() {
  step_started=$(now_us)
  echo "-- $*"
}
done_step() {
  echo "   $1 ($(seconds_since "$step_started")s)"
}

step "Debian packages"
need=()
command -v go >/dev/null 2>&1 || need+=(golang-go)
{ command -v java >/dev/null 2>&1 && command -v javac >/dev/null 2>&1 && command -v jfr >/dev/null 2>&1; } ||
  need+=(openjdk-17-jdk-headless)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# Debian's own python3 needs python3-venv for `python3 -m venv`.
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3 python3-venv)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo "   installing: ${need[*]}"
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  done_step "installed ${need[*]}"
else
  done_step "all present"
fi

step "Python venv: pyroscope-io $PYROSCOPE_IO_VERSION, py-spy $PY_SPY_VERSION"
venv="$home/venv"
want="pyroscope-io==$PYROSCOPE_IO_VERSION py-spy==$PY_SPY_VERSION"
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.kiln-installed" 2>/dev/null)" = "$want" ]; then
  done_step "already installed"
else
  rm -rf "$venv"
  python3 -m venv "$venv"
  # shellcheck disable=SC2086 # $want is a list of requirements
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $want
  "$venv/bin/python" -c "import pyroscope"
  "$venv/bin/py-spy" --version >/dev/null
  echo "$want" >"$venv/.kiln-installed"
  done_step "installed"
fi

step "npm: @pyroscope/nodejs (tests/agents/node, from package-lock.json)"
node_dir="$here/node"
lock_sum="$(sha256sum "$node_dir/package-lock.json" | cut -d' ' -f1)"
if [ -d "$node_dir/node_modules/@pyroscope/nodejs" ] &&
  [ "$(cat "$node_dir/node_modules/.kiln-installed" 2>/dev/null)" = "$lock_sum" ]; then
  done_step "already installed"
else
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$lock_sum" >"$node_dir/node_modules/.kiln-installed"
  done_step "installed"
fi

# The Rust agents are small cargo projects outside Kiln's workspace, each
# with its own committed Cargo.lock and target dir, so reruns are no-ops.
for agent in rust-2 rust-0.5; do
  step "cargo build tests/agents/$agent"
  cargo build --quiet --locked \
    --manifest-path "$here/$agent/Cargo.toml" \
    --target-dir "$home/target-$agent"
  done_step "built"
done

echo "-- agents ready in $home ($(seconds_since "$all_started")s)"
