#!/usr/bin/env bash
# Regenerates the plain manifests in deploy/kubernetes/{single-binary,microservices}
# from the Helm chart's default values (see deploy/tests/chart_render.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${KILN_DEPLOY_VENV:-$HOME/.cache/kiln-tools/deploy-venv}"
[ -x "$venv/bin/python" ] || deploy/tests/install.sh
export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" deploy/tests/chart_render.py generate
