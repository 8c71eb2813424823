#!/usr/bin/env bash
# Installs the real profiling agents the agent tests drive (called by .ci/run).
set -euo pipefail
echo "(agent installs not written yet)"
