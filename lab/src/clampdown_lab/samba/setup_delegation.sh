#!/usr/bin/env bash
# setup_delegation.sh - once per provisioned domain: OU=Managed and OU=Other, and the action account
# svc-clampdown holding only what Clampdown's AD actions need, on OU=Managed only (least privilege).
# Writes $SAMBA_DIR/svc-clampdown.password and svc-clampdown.keytab (mode 600). Idempotent (marker file).
set -euo pipefail
: "${SAMBA_DIR:=$PWD/.lab/samba}"
: "${REALM:=LAB.EXAMPLE.TEST}"
: "${SVC_NAME:=svc-clampdown}"
marker="$SAMBA_DIR/.delegation-done"
[ -f "$marker" ] && { echo "setup-delegation: already done" >&2; exit 0; }
S=(-s "$SAMBA_DIR/etc/smb.conf" -H "$SAMBA_DIR/private/sam.ldb")   # local ldb access (works while samba runs)
B=$(echo "$REALM" | tr '[:upper:]' '[:lower:]' | sed 's/^/DC=/; s/\./,DC=/g')

# min-pwd-age=0 lets tests change a password twice in a row; lockout after 5 bad passwords.
samba-tool domain passwordsettings set "${S[@]}" --account-lockout-threshold=5 --min-pwd-age=0 >/dev/null
for ou in Managed Other; do
    samba-tool ou list "${S[@]}" | grep -qx "OU=$ou" || samba-tool ou create "OU=$ou,$B" "${S[@]}" >/dev/null
done

pwfile="$SAMBA_DIR/$SVC_NAME.password"
if ! samba-tool user show "$SVC_NAME" "${S[@]}" >/dev/null 2>&1; then
    pw=$(python3 -c 'import secrets; print("Svc-" + secrets.token_urlsafe(18) + "-7b")')
    (umask 077; printf '%s\n' "$pw" > "$pwfile")
    samba-tool user create "$SVC_NAME" "$pw" --description="Clampdown action account" "${S[@]}" >/dev/null
    samba-tool user setexpiry "$SVC_NAME" --noexpiry "${S[@]}" >/dev/null   # a service account, as in production
fi
SID=$(samba-tool user show "$SVC_NAME" --attributes=objectSid "${S[@]}" | awk '/^objectSid/{print $2}')

USER_CLASS=bf967aba-0de6-11d0-a285-00aa003049e2      # schemaIDGUID of class user
RESET_PW=00299570-246d-11d0-a768-00aa006e0529        # extended right User-Force-Change-Password
UAC=bf967a68-0de6-11d0-a285-00aa003049e2             # attribute userAccountControl
PWDLASTSET=bf967a0a-0de6-11d0-a285-00aa003049e2      # attribute pwdLastSet
LOCKOUTTIME=28630ebf-41d5-11d1-a9c1-0000f80367c1     # attribute lockoutTime
# CIIO: inherited by (only) the descendant user objects, not set on the OU itself.
samba-tool dsacl set "${S[@]}" --objectdn="OU=Managed,$B" --sddl="\
(OA;CIIO;CR;$RESET_PW;$USER_CLASS;$SID)\
(OA;CIIO;WP;$UAC;$USER_CLASS;$SID)\
(OA;CIIO;WP;$PWDLASTSET;$USER_CLASS;$SID)\
(OA;CIIO;WP;$LOCKOUTTIME;$USER_CLASS;$SID)" >/dev/null

# The keytab a Linux service uses to bind with Kerberos (GSSAPI), as it would with a gMSA's keys.
rm -f "$SAMBA_DIR/$SVC_NAME.keytab"
(umask 077; samba-tool domain exportkeytab "$SAMBA_DIR/$SVC_NAME.keytab" --principal="$SVC_NAME@$REALM" \
    -s "$SAMBA_DIR/etc/smb.conf" >/dev/null)
touch "$marker"
echo "setup-delegation: $SVC_NAME ($SID) delegated on OU=Managed,$B" >&2
