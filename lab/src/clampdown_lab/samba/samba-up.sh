#!/usr/bin/env bash
# samba-up.sh - Clampdown's Samba AD DC on loopback, for the tests, CI and `clampdown lab up`
# (Debian 12, run as root). Adapted from the measured reference in shared/reference/samba.
#
#   SAMBA_DIR=$PWD/.lab/samba bash samba-up.sh      # install (if needed) + provision (if needed) + start + wait
#   SAMBA_FRESH=1 bash samba-up.sh                  # wipe SAMBA_DIR and provision a new domain
#   SAMBA_DIR=$PWD/.lab/samba-emea SAMBA_ADDRESS=127.0.0.2 REALM=EMEA.EXAMPLE.TEST DOMAIN=EMEA \
#       bash samba-up.sh                            # a second domain beside the first, same ports
#
# Everything lives under $SAMBA_DIR (smb.conf, databases, pid, logs, sockets); /etc/samba and
# /etc/krb5.conf are not touched. Listens on 127.0.0.1 and ::1 only: 88 (kdc), 389, 636, 3268 (ldap), 464 (kpasswd).
# With SAMBA_ADDRESS another loopback address (127.0.0.2 ...) it listens there only (IPv4), so a second
# domain runs beside the first on the same ports; Linux answers the whole 127/8 on lo without configuring it.
# Prints shell-sourceable variables at the end. Idempotent: a running instance from the same dir is reused.
set -euo pipefail

: "${SAMBA_DIR:=$PWD/.lab/samba}"
: "${REALM:=LAB.EXAMPLE.TEST}"
: "${DOMAIN:=LAB}"                       # NetBIOS domain name; must differ from DC_NAME
: "${DC_NAME:=dc1}"                      # DC host name (independent of the machine's hostname)
# ADMIN_PW: default a random one, kept in $SAMBA_DIR/admin.password (mode 600) for the lab's seeding.
: "${SAMBA_MAX_RUNTIME:=7200}"           # samba exits by itself after this many seconds (safety net for CI)
: "${SAMBA_READY_TIMEOUT:=120}"
: "${SAMBA_MODEL:=prefork}"              # prefork (default) or single (one process, less memory)
: "${SAMBA_ADDRESS:=127.0.0.1}"          # the loopback address the DC listens on (and its certificate names)

[ "$(id -u)" = 0 ] || { echo "samba-up: must run as root (binds ports < 1024)" >&2; exit 1; }
realm_lc=$(echo "$REALM" | tr '[:upper:]' '[:lower:]')
conf="$SAMBA_DIR/etc/smb.conf"
t_start=$(date +%s.%N)
case "$SAMBA_ADDRESS" in 127.*) ;; *) echo "samba-up: SAMBA_ADDRESS must be a loopback address (127.x.y.z)" >&2; exit 1;; esac
if [ "$SAMBA_ADDRESS" = 127.0.0.1 ]; then
    # lo's own addresses, 127.0.0.1 and ::1 (each bound alone, not 0.0.0.0: other 127/8 addresses stay free)
    listen=lo; san="DNS:localhost,IP:127.0.0.1,IP:::1"
else
    # An address that is not an interface's: "ADDRESS/8" makes Samba bind it on lo (IPv4 only; ::1 is the first DC's)
    listen="$SAMBA_ADDRESS/8"; san="IP:$SAMBA_ADDRESS"
fi
since() { python3 -c "import sys,time; print(f'{time.time()-float(sys.argv[1]):.1f}s')" "$1"; }

# ---------------------------------------------------------------- 1. packages
# samba: the AD DC daemon + samba_spnupdate; samba-common-bin (dependency): samba-tool;
# samba-dsdb-modules: the DC's ldb modules; samba-ad-provision: provisioning templates (only a Recommends!);
# samba-vfs-modules: provision sets the sysvol ACL through vfs acl_xattr (fails with "acl_xattr.so: cannot open").
pkgs=(samba samba-dsdb-modules samba-vfs-modules samba-ad-provision)
[ "${WITH_KRB5_USER:-0}" = 1 ] && pkgs+=(krb5-user)        # kinit/klist, only if the tests shell out to them
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    t=$(date +%s.%N)
    # Keep maintainer scripts from starting smbd/nmbd/samba-ad-dc (nmbd would broadcast on the LAN).
    made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; made_policy=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    echo "samba-up: installed ${missing[*]} in $(since "$t")" >&2
fi

# ---------------------------------------------------------------- 2. stop a previous instance of this dir
pidfile="$SAMBA_DIR/samba-up.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null && grep -q '^samba' "/proc/$(cat "$pidfile")/comm"; then
    if [ "${SAMBA_FRESH:-0}" = 1 ]; then
        SAMBA_DIR="$SAMBA_DIR" bash "$(dirname "$0")/samba-down.sh"
    else
        echo "samba-up: already running (pid $(cat "$pidfile")), reusing" >&2
        already=1
    fi
fi

if [ "${already:-0}" != 1 ]; then
    # One DC per address: the ports are fixed (88, 389, 636, 464, 3268).
    for port in 88 389 636; do
        if python3 -c "import socket,sys; s=socket.socket(); sys.exit(0 if s.connect_ex(('$SAMBA_ADDRESS',$port))==0 else 1)"; then
            echo "samba-up: port $port on $SAMBA_ADDRESS is already in use (another samba/slapd?)" >&2; exit 1
        fi
    done
fi

# ---------------------------------------------------------------- 3. provision (once per dir)
if [ "${SAMBA_FRESH:-0}" = 1 ]; then rm -rf "$SAMBA_DIR"; fi
if [ ! -f "$SAMBA_DIR/private/sam.ldb" ]; then
    t=$(date +%s.%N)
    rm -rf "$SAMBA_DIR"; mkdir -p "$SAMBA_DIR"/{run,log,tls}; chmod 700 "$SAMBA_DIR"
    D=$SAMBA_DIR
    : "${ADMIN_PW:=$(python3 -c 'import secrets; print("Ad-" + secrets.token_urlsafe(18) + "-9a")')}"
    (umask 077; printf '%s\n' "$ADMIN_PW" > "$D/admin.password")
    # Our own CA and a server certificate whose SANs name the DC and the loopback address, so clients
    # verify the DC with ordinary hostname checks (Samba's self-signed certificate has no SAN).
    (
        cd "$D/tls"; umask 077
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Clampdown lab CA" \
            -keyout ca.key -out ca.pem -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj "/CN=$DC_NAME.$realm_lc" -keyout dc.key -out dc.csr 2>/dev/null
        printf 'subjectAltName=DNS:%s,%s\nextendedKeyUsage=serverAuth\n' "$DC_NAME.$realm_lc" "$san" > dc.ext
        openssl x509 -req -in dc.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
            -extfile dc.ext -out dc.pem 2>/dev/null
        chmod 644 ca.pem dc.pem; rm -f dc.csr dc.ext
    )
    samba-tool domain provision --targetdir="$D" \
        --realm="$REALM" --domain="$DOMAIN" --server-role=dc --dns-backend=NONE --use-rfc2307 \
        --adminpass="$ADMIN_PW" --host-name="$DC_NAME" --host-ip="$SAMBA_ADDRESS" \
        --option="netbios name=$(echo "$DC_NAME" | tr '[:lower:]' '[:upper:]')" \
        --option="interfaces=$listen" --option="bind interfaces only=yes" --option="disable netbios=yes" \
        --option="server services=ldap cldap kdc" \
        --option="ldap server require strong auth=allow_sasl_over_tls" \
        --option="pid directory=$D/run" --option="ncalrpc dir=$D/run/ncalrpc" \
        --option="winbindd socket directory=$D/run/winbindd" --option="ntp signd socket directory=$D/run/ntp_signd" \
        --option="log file=$D/log/samba.log" --option="logging=file" \
        --option="tls enabled=yes" --option="tls keyfile=$D/tls/dc.key" \
        --option="tls certfile=$D/tls/dc.pem" --option="tls cafile=$D/tls/ca.pem" \
        > "$D/log/provision.log" 2>&1 || { tail -30 "$D/log/provision.log" >&2; exit 1; }
    # Settings that provision does not carry into smb.conf: add them to [global] by hand.
    #  old password allowed period = 0: otherwise the PREVIOUS password keeps working for 60 min after a reset/change.
    sed -i 's/^\[global\]$/[global]\n\told password allowed period = 0/' "$conf"
    [ "$(samba-tool testparm -s "$conf" --parameter-name='old password allowed period' 2>/dev/null)" = 0 ] \
        || { echo "samba-up: could not set 'old password allowed period'" >&2; exit 1; }
    # Register ldap/, GC/ ... SPNs for the DC (normally done by the dnsupdate service, which is
    # disabled here because it would send DNS updates to the machine's resolvers). Needed for Kerberos binds.
    samba_spnupdate -s "$conf" >> "$D/log/provision.log" 2>&1
    echo "samba-up: provisioned $REALM in $SAMBA_DIR in $(since "$t")" >&2
fi
mkdir -p "$SAMBA_DIR"/{run,log}

# krb5.conf for clients (KRB5_CONFIG=...): fixed KDC, no DNS, no reverse DNS.
cat > "$SAMBA_DIR/krb5.conf" <<EOF
[libdefaults]
    default_realm = $REALM
    dns_lookup_realm = false
    dns_lookup_kdc = false
    rdns = false
    dns_canonicalize_hostname = false
    udp_preference_limit = 0
[realms]
    $REALM = {
        kdc = $SAMBA_ADDRESS
        admin_server = $SAMBA_ADDRESS
    }
[domain_realm]
    .$realm_lc = $REALM
    $realm_lc = $REALM
EOF

# ---------------------------------------------------------------- 4. start
if [ "${already:-0}" != 1 ]; then
    t=$(date +%s.%N)
    # -F: no daemonizing, so $! is the samba root process. setsid gives it its own session and
    # process group (pgid == pid; samba -F does not do that itself) so teardown can sweep the whole tree.
    setsid nohup samba -s "$conf" -F -M "$SAMBA_MODEL" --maximum-runtime="$SAMBA_MAX_RUNTIME" \
        > "$SAMBA_DIR/log/samba.stdout" 2>&1 < /dev/null &
    echo $! > "$pidfile"
    # Ready = an anonymous rootDSE search on $SAMBA_ADDRESS:389 returns an entry (stdlib only, no ldap3 needed).
    python3 - "$SAMBA_READY_TIMEOUT" "$(cat "$pidfile")" "$SAMBA_ADDRESS" <<'PY' || { tail -30 "$SAMBA_DIR/log/samba.stdout" "$SAMBA_DIR/log/samba.log" >&2 || true; exit 1; }
import os, socket, sys, time
deadline = time.time() + float(sys.argv[1]); pid = int(sys.argv[2]); address = sys.argv[3]
# LDAPv3 SearchRequest: msgid 1, base "", scope base, filter (objectClass=*), no attributes
req = bytes.fromhex("302502010163200400" "0a01000a0100020100020100010100" "870b6f626a656374436c617373" "3000")
while True:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("samba-up: samba exited during startup")
    try:
        with socket.create_connection((address, 389), timeout=2) as s:
            s.sendall(req); s.settimeout(5)
            if b"\x64" in s.recv(65536)[:16]:      # SearchResultEntry
                break
    except OSError:
        pass
    if time.time() > deadline:
        sys.exit("samba-up: LDAP not ready in time")
    time.sleep(0.2)
PY
    echo "samba-up: LDAP ready $(since "$t") after start (pid $(cat "$pidfile"))" >&2
fi

base_dn=$(echo "$realm_lc" | sed 's/^/DC=/; s/\./,DC=/g')
cat <<EOF
SAMBA_DIR=$SAMBA_DIR
SAMBA_PID=$(cat "$pidfile")
AD_REALM=$REALM
AD_DOMAIN=$DOMAIN
AD_BASE_DN=$base_dn
AD_DC_HOSTNAME=$DC_NAME.$realm_lc
AD_ADDRESS=$SAMBA_ADDRESS
AD_LDAP_URL=ldap://$SAMBA_ADDRESS:389
AD_LDAPS_URL=ldaps://$SAMBA_ADDRESS:636
AD_CA_FILE=$SAMBA_DIR/tls/ca.pem
AD_ADMIN_PASSWORD_FILE=$SAMBA_DIR/admin.password
AD_ADMIN_UPN=Administrator@$realm_lc
KRB5_CONFIG=$SAMBA_DIR/krb5.conf
EOF
echo "samba-up: total $(since "$t_start")" >&2
