#!/usr/bin/env bash
# Installs the Debian packages Clampdown's lab and tests need, only those not yet installed.
# Usage: scripts/install-system.sh [lab|test]   (test adds the browser and build headers)
set -euo pipefail
profile="${1:-test}"
packages=(samba samba-dsdb-modules samba-vfs-modules samba-ad-provision krb5-user libkrb5-dev gcc openssl python3-venv)
if [ "$profile" = test ]; then
  packages+=(postgresql chromium)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The console's front-end bundle is built with node and npm (scripts/build-web.sh); a node that is
# already there (any source) is used as it is.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
