#!/usr/bin/env bash
# Regenerate docs/screenshots: every console page at 1280x800 in Chromium, on the lab (the Samba AD
# DC under .lab, reused if running; this run's own Okta and Graph emulators and database).
set -euo pipefail
cd "$(dirname "$0")/.."
export CLAMPDOWN_SCREENSHOTS="$PWD/docs/screenshots"
mkdir -p "$CLAMPDOWN_SCREENSHOTS"
# The hunting editor's pictures (completion, a timechart) come from its own browser test, the
# overview's from its test (every number checked against the list its link opens), the README's
# hunt grouped by UPN from the identity test (acting on that row in AD, Entra ID and Okta), Shared
# Signals' from its test (memory directories, a transmitter signing here).
exec .venv/bin/python -m pytest tests/web/test_screenshots.py tests/web/test_hunting_editor.py \
  tests/web/test_overview.py tests/web/test_hunting_identities.py tests/web/test_signals_page.py \
  -q -p no:cacheprovider "$@"
