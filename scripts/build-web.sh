#!/usr/bin/env bash
# Builds the console's bundled front-end (web-src/: the hunting editor and its charts, from the npm
# packages in package-lock.json) into src/clampdown/web/static/dist/. Skipped when the bundle was
# built from these very inputs (a stamp of their hash sits beside it). Needs node and npm
# (scripts/install-system.sh installs them). Usage: scripts/build-web.sh [--force]
set -euo pipefail
cd "$(dirname "$0")/.."
out=src/clampdown/web/static/dist
stamp="$out/.inputs"
inputs=$(cat package.json package-lock.json scripts/build-web.sh web-src/*.js | sha256sum | cut -d' ' -f1)
if [ "${1:-}" != --force ] && [ -f "$out/hunting-editor.js" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$inputs" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "build-web: npm is missing; run scripts/install-system.sh" >&2; exit 1; }
# The exact versions of the lockfile; esbuild's own install script only checks its binary.
[ -d node_modules/esbuild ] && [ node_modules/.package-lock.json -nt package-lock.json ] \
  || npm ci --no-audit --no-fund --loglevel=error
mkdir -p "$out"
node_modules/.bin/esbuild web-src/hunting-editor.js --bundle --minify --format=iife \
  --global-name=clampdownHunt --target=es2020 --legal-comments=linked --log-level=warning \
  --outfile="$out/hunting-editor.js"
echo "$inputs" >"$stamp"
