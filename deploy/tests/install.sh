#!/usr/bin/env bash
# Installs the Python tools of the deployment checks (requirements.txt: Helm
# SDK, kubernetes-validate, yamllint, jsonschema, pytest) into a venv at
# $KILN_DEPLOY_VENV (default ~/.cache/kiln-tools/deploy-venv). `.ci/run`
# calls it; it is idempotent (skips when requirements.txt is unchanged).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${KILN_DEPLOY_VENV:-$HOME/.cache/kiln-tools/deploy-venv}"
stamp="$venv/.requirements.txt"
if [ -x "$venv/bin/python" ] && cmp -s "$here/requirements.txt" "$stamp"; then
  echo "deploy test tools already installed in $venv"
  exit 0
fi
t0=$(date +%s)
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
cp "$here/requirements.txt" "$stamp"
echo "deploy test tools installed in $venv in $(( $(date +%s) - t0 ))s"
