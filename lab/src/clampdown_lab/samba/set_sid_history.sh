#!/usr/bin/env bash
# set_sid_history.sh USERNAME SID... - make the sIDHistory of USERNAME in the domain of $SAMBA_DIR
# exactly these SIDs, as a cross-forest migration (ADMT) leaves it: the objectSid the person had in
# the source forest. Run as root while samba runs or not.
#
# Over LDAP the DC refuses it even for Administrator ("53 unwillingToPerform: sidHistory cannot be
# created or changed over LDAP", as Windows does outside DsAddSidHistory); a write to the local sam.ldb
# with the system session is accepted, so this uses Samba's own Python bindings (hence /usr/bin/python3,
# where Debian's python3-samba lives, not the caller's virtualenv). Clients read it back over LDAP.
set -euo pipefail
: "${SAMBA_DIR:=$PWD/.lab/samba}"
[ $# -ge 2 ] || { echo "usage: set_sid_history.sh USERNAME SID..." >&2; exit 2; }
/usr/bin/python3 - "$SAMBA_DIR" "$@" <<'PY'
import sys

import ldb
from samba.auth import system_session
from samba.dcerpc import security
from samba.ndr import ndr_pack
from samba.param import LoadParm
from samba.samdb import SamDB

samba_dir, username, sids = sys.argv[1], sys.argv[2], sys.argv[3:]
lp = LoadParm()
lp.load(f"{samba_dir}/etc/smb.conf")
db = SamDB(url=f"{samba_dir}/private/sam.ldb", session_info=system_session(), lp=lp)
found = db.search(db.domain_dn(), ldb.SCOPE_SUBTREE,
                  f"(&(objectClass=user)(sAMAccountName={ldb.binary_encode(username)}))", ["dn"])
if len(found) != 1:
    sys.exit(f"set-sid-history: no user {username} in {db.domain_dn()}")
message = ldb.Message(found[0].dn)
message["sIDHistory"] = ldb.MessageElement(
    [ndr_pack(security.dom_sid(sid)) for sid in sids], ldb.FLAG_MOD_REPLACE, "sIDHistory")
db.modify(message)
print(f"set-sid-history: {username} has sIDHistory {' '.join(sids)}", file=sys.stderr)
PY
