#!/usr/bin/env bash
# One command for a fresh Debian machine: install Clampdown, start the demo lab, serve on SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system.sh lab
bash scripts/install-python.sh kerberos
lab_dir="${CLAMPDOWN_LAB_DIR:-.lab}"
.venv/bin/clampdown lab up --dir "$lab_dir" --no-next
# A day of domain-controller events for the demo people, so a first hunt finds something.
token=$(.venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin"]["token"])' "$lab_dir/lab.json")
.venv/bin/clampdown --config "$lab_dir/clampdown.toml" --token "$token" ingest lab-day
# The last lines before the server's: where the console is and how to sign in.
.venv/bin/clampdown lab sign-in --dir "$lab_dir"
echo "serving now; Ctrl+C stops the server, \`.venv/bin/clampdown lab down --dir $lab_dir\` the lab"
exec .venv/bin/clampdown --config "$lab_dir/clampdown.toml" serve
