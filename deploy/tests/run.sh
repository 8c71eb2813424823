#!/usr/bin/env bash
# Runs the deployment checks (Helm chart, Kubernetes manifests, compose,
# config examples, Dockerfile) with pytest. Needs the venv that install.sh
# makes and the debug `kiln` binary (cargo build --workspace).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${KILN_DEPLOY_VENV:-$HOME/.cache/kiln-tools/deploy-venv}"
if [ ! -x "$venv/bin/python" ]; then
  echo "deploy test tools not found in $venv: run deploy/tests/install.sh (or .ci/run)" >&2
  exit 1
fi
export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider deploy/tests "$@"
