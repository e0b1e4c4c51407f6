#!/usr/bin/env bash
# One command for a fresh Debian machine: install what the tests need, lint, type-check, run all tests.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/engine -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system.sh test
bash scripts/install-python.sh test,kerberos
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
.venv/bin/ruff check src tests bench lab
.venv/bin/mypy src
.venv/bin/mypy lab/src
exec .venv/bin/pytest "$@"
