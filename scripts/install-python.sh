#!/usr/bin/env bash
# Creates .venv and installs Clampdown into it (editable) with the given extras, and the lab
# (./lab, the separate distribution clampdown-lab: `clampdown lab ...`, the emulators, the demo people).
# Usage: scripts/install-python.sh [EXTRAS]   e.g. test,kerberos
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
# The console's editor and charts (npm packages, bundled into the package; skipped when up to date).
bash scripts/build-web.sh
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
if [ -n "$extras" ]; then
  .venv/bin/python -m pip install -q -e ".[$extras]" -e ./lab
else
  .venv/bin/python -m pip install -q -e . -e ./lab
fi
