"""ADConnector: resolve users, read their state, disable / enable them, force password resets,
take them out of privileged groups (and put them back)."""

from __future__ import annotations

import asyncio
import secrets
import string
import weakref
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import ldap3  # type: ignore[import-untyped]
from pydantic import BaseModel

from clampdown.connectors.ad import flags, kerberos_policy, privileged
from clampdown.connectors.ad.batch import find_many, missing, read_many
from clampdown.connectors.ad.failures import SUCCESS, operation_failure
from clampdown.connectors.ad.pool import Connection, DirectoryPool
from clampdown.connectors.ad.references import UserQuery, guid_from_bytes, sid_from_bytes, user_query
from clampdown.connectors.ad.settings import ADSettings
from clampdown.connectors.base import FoundUser, action_method
from clampdown.errors import AccountNotFound, PermanentError
from clampdown.model import (
    MULTI_VALUE_SEPARATOR,
    SEALED_DETAIL,
    UNDONE_PREFIX,
    Account,
    AccountState,
    ActionContext,
    ActionOutcome,
    ResidualAccess,
    ResidualStatus,
    StateValue,
)
from clampdown.sealing import seal

_STATE_ATTRIBUTES = [
    "userAccountControl",
    "msDS-User-Account-Control-Computed",
    "pwdLastSet",
    "lastLogonTimestamp",
    "lockoutTime",
    "memberOf",
    "adminCount",
    "sAMAccountName",
    "userPrincipalName",
    "displayName",
]
_ID_ATTRIBUTES = [
    "objectGUID", "objectSid", "sIDHistory", "sAMAccountName", "userPrincipalName", "displayName"
]  # fmt: skip

T = TypeVar("T")
NEEDS_UAC = "Write Property on userAccountControl for descendant User objects"
NEEDS_PWDLASTSET = "Write Property on pwdLastSet for descendant User objects"
NEEDS_RESET = "the Reset Password extended right for descendant User objects"


@dataclass(frozen=True)
class _Entry:
    """One user entry as read just now; values are the raw LDAP strings."""

    dn: str
    values: dict[str, list[str]]

    def int(self, name: str, default: int = 0) -> int:
        found = self.values.get(name)
        return int(found[0]) if found else default


class ADConnector:
    """One Active Directory domain through one least-privilege action account."""

    provider: ClassVar[str] = "ad"
    settings_model: ClassVar[type[BaseModel]] = ADSettings
    # The engine hands this many actions of one type at a time to read_states / perform_batch.
    max_batch: int = 50

    def __init__(self, settings: ADSettings) -> None:
        self.settings = settings
        self.pool = DirectoryPool(settings)
        self._write_limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    @classmethod
    def from_settings(cls, settings: Any) -> ADConnector:
        """Build the connector from a validated `ADSettings`."""
        return cls(settings if isinstance(settings, ADSettings) else ADSettings.model_validate(settings))

    # ---------------------------------------------------------------- lookups

    async def resolve_user(self, reference: str) -> Account:
        """The user named by sAMAccountName, DOMAIN\\name, UPN, objectSid or objectGUID."""
        try:
            query = user_query(reference, self.settings.netbios_domain)
        except ValueError as exc:
            raise AccountNotFound(f"no Active Directory user {reference!r}: {exc}") from None
        base = self.settings.base_dn

        def search(conn: Connection) -> list[dict[str, Any]]:
            conn.search(base, query.ldap_filter, ldap3.SUBTREE, attributes=_ID_ATTRIBUTES, size_limit=2)
            if conn.result["result"] not in (SUCCESS, 4):  # 4: size limit hit, i.e. ambiguous
                raise operation_failure(conn.result, "search for users", base)
            return [e for e in conn.response or [] if e.get("type") == "searchResEntry"]

        found = await self.pool.run(search)
        if not found:
            raise AccountNotFound(f"no Active Directory user with {query.described} under {base}")
        if len(found) > 1:
            raise PermanentError(
                f"{query.described} names more than one user under {base}; use the objectGUID or objectSid",
                code="ambiguous",
            )
        return _account(found[0])

    async def search_users(self, text: str, limit: int) -> list[FoundUser]:
        """Users matching a fragment by ambiguous name resolution or anywhere in their names (search.py)."""
        from clampdown.connectors.ad.search import search_users

        return await search_users(self.pool, self.settings.base_dn, text, limit)

    async def resolve_users(self, references: list[str]) -> list[Account | Exception]:
        """Each reference's user, as `resolve_user` finds it, with one search for them all; a
        reference that names no user or several, or that the search cannot tell apart (a name
        outside ASCII), is looked up alone, so its answer and its error are resolve_user's own."""
        netbios, base = self.settings.netbios_domain, self.settings.base_dn
        queries: dict[int, UserQuery] = {}
        for i, reference in enumerate(references):
            try:
                query = user_query(reference, netbios)
            except ValueError:
                continue  # resolve_user says why, without asking the DC
            if query.batchable:
                queries[i] = query
        found: list[list[dict[str, Any]]] | None = None
        if len(queries) > 1:
            try:
                found = await self.pool.run(
                    lambda conn: find_many(conn, base, list(queries.values()), _ID_ATTRIBUTES)
                )
            except Exception as exc:  # the DC failed the whole search: every item shares the error
                return [exc for _ in references]
        accounts: dict[int, Account] = {}
        if found is not None:
            pairs = zip(queries, found, strict=True)
            accounts = {i: _account(entries[0]) for i, entries in pairs if len(entries) == 1}
        alone = [i for i in range(len(references)) if i not in accounts]
        one_by_one = await _each([self.resolve_user(references[i]) for i in alone])
        answers = dict(zip(alone, one_by_one, strict=True))
        return [accounts[i] if i in accounts else answers[i] for i in range(len(references))]

    async def read_state(self, account: Account) -> AccountState:
        """Enabled, locked out, password age, last logon, groups and adminCount, read just now."""
        entry = await self.pool.run(lambda conn: _read(conn, account, _STATE_ATTRIBUTES))
        return _state(entry)

    async def read_states(self, accounts: list[Account]) -> list[AccountState | Exception]:
        """The state of each account, read in one search."""
        base = self.settings.base_dn
        try:
            found = await self.pool.run(lambda conn: read_many(conn, base, accounts, _STATE_ATTRIBUTES))
        except Exception as exc:  # the DC failed the whole search: every item shares the error
            return [exc for _ in accounts]
        return [_state(_Entry(*found[a.id])) if a.id in found else missing(a, base) for a in accounts]

    async def perform_batch(
        self, method: str, items: list[tuple[Account, ActionContext]]
    ) -> list[ActionOutcome | Exception]:
        """Disable / enable many users with one search for their userAccountControl; other
        actions one by one, concurrently."""
        if method not in ("disable_user", "enable_user"):
            bound = action_method(self, method)
            return await _each([bound(account, context) for account, context in items])
        disabled = method == "disable_user"
        base = self.settings.base_dn
        accounts = [account for account, _ in items]
        try:
            found = await self.pool.run(
                lambda conn: read_many(conn, base, accounts, ["userAccountControl", "adminCount"])
            )
        except Exception as exc:
            return [exc for _ in items]

        writes = self._write_limit()

        async def one(account: Account, context: ActionContext) -> ActionOutcome:
            if reason := _undo_keeps(method, context):
                return ActionOutcome.already(reason)
            if account.id not in found:
                raise missing(account, base)
            entry = _Entry(*found[account.id])
            async with writes:
                return await self.pool.run(lambda conn: _apply_disabled(conn, entry, disabled))

        return await _each([one(account, context) for account, context in items])

    def _write_limit(self) -> asyncio.Semaphore:
        """The writes of batches in the pool at once: half its connections. Handed over all at once,
        a batch's writes would queue in front of every read (the pool's queue is first come, first
        served) while the DC applies them one after the other anyway: the next actions' lookups
        then wait for whole batches of writes instead of running beside them. One per event loop."""
        loop = asyncio.get_running_loop()
        limit = self._write_limits.get(loop)
        if limit is None:
            limit = self._write_limits[loop] = asyncio.Semaphore(max(1, self.settings.pool_size // 2))
        return limit

    async def check(self) -> None:
        """Bind with the action account and read the rootDSE (Samba has no WhoAmI)."""

        def read_root(conn: Connection) -> None:
            conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["defaultNamingContext"])
            if conn.result["result"] != SUCCESS:
                raise operation_failure(conn.result, "read the rootDSE", "the rootDSE")

        await self.pool.run(read_root)

    async def aclose(self) -> None:
        """Unbind the pooled connections."""
        await self.pool.aclose()

    # ---------------------------------------------------------------- actions

    async def disable_user(self, account: Account, context: ActionContext) -> ActionOutcome:
        """Set ACCOUNTDISABLE, keeping every other userAccountControl bit."""
        if reason := _undo_keeps("disable_user", context):
            return ActionOutcome.already(reason)
        return await self.pool.run(lambda conn: _set_disabled(conn, account, True))

    async def enable_user(self, account: Account, context: ActionContext) -> ActionOutcome:
        """Clear ACCOUNTDISABLE, unless the user was already disabled before the action undone."""
        if reason := _undo_keeps("enable_user", context):
            return ActionOutcome.already(reason)
        return await self.pool.run(lambda conn: _set_disabled(conn, account, False))

    async def force_password_reset(self, account: Account, context: ActionContext) -> ActionOutcome:
        """pwdLastSet = 0 (change at next logon); optionally a new random password first."""
        if reason := _undo_keeps("force_password_reset", context):
            return ActionOutcome.already(reason)
        new_password = _random_password() if self.settings.set_random_password else None
        outcome = await self.pool.run(lambda conn: _force_reset(conn, account, new_password))
        if new_password is None or not outcome.changed:
            return outcome
        # The password leaves this method only sealed to the requester's one-time key: the action
        # center, the audit chain, webhooks and logs see a ciphertext at most, never the password.
        if self.settings.hand_new_password_to_caller and context.seal_to:
            sealed = seal(context.seal_to, new_password, f"action:{context.action_id}")
            details = {**outcome.details, SEALED_DETAIL: sealed}
            message = f"{outcome.message}; the new password is sealed for {context.requested_by}"
        else:
            details, message = dict(outcome.details), (
                f"{outcome.message}; the new password was handed to nobody: reset it to give it out"
            )
        return replace(outcome, message=message, details=details)

    async def kerberos_ticket_policy(self) -> kerberos_policy.KerberosTicketPolicy:
        """The domain's ticket lifetimes: the Default Domain Policy's [Kerberos Policy] in SYSVOL."""
        sysvol = self.settings.sysvol_path

        def read(conn: Connection) -> kerberos_policy.KerberosTicketPolicy:
            return kerberos_policy.read_ticket_policy(conn, privileged.read_domain(conn).naming, sysvol)

        return await self.pool.run(read)

    async def kerberos_residual_access(
        self, account: Account, disabled_at: datetime | None = None
    ) -> kerberos_policy.ResidualKerberosAccess:
        """Until when tickets issued before `disabled_at` (default: now) stay valid, with the
        account's last logon and password change; `.message` says it in one sentence."""
        policy = await self.kerberos_ticket_policy()
        entry = await self.pool.run(
            lambda conn: _read(conn, account, ["lastLogon", "lastLogonTimestamp", "pwdLastSet"])
        )
        last_logon = flags.filetime_to_iso(entry.int("lastLogon")) or flags.filetime_to_iso(
            entry.int("lastLogonTimestamp")
        )
        when = disabled_at or datetime.now(UTC)
        return kerberos_policy.residual_access(
            policy, when, last_logon, flags.filetime_to_iso(entry.int("pwdLastSet"))
        )

    async def residual_access(
        self, account: Account, applied: Mapping[str, datetime]
    ) -> list[ResidualAccess]:
        """Kerberos tickets issued before the disable (until the domain's maximum ticket age after
        it) and the privileged groups the account is still in."""
        disabled_at = applied.get("ad.disable_user")
        s = self.settings
        specs, admin_count = list(s.privileged_groups), s.privileged_admin_count_groups
        groups = await self.pool.run(
            lambda conn: _privileged_memberships(conn, account, specs, admin_count)
        )
        found: list[ResidualAccess] = []
        if disabled_at is None:
            found.append(ResidualAccess(
                "ad", account.name, "kerberos_tickets", ResidualStatus.REMAINS,
                "The account is not disabled: it can still get new Kerberos tickets "
                "(ad.disable_user ends that)",
            ))  # fmt: skip
        else:
            tickets = await self.kerberos_residual_access(account, disabled_at)
            found.append(ResidualAccess(
                "ad", account.name, "kerberos_tickets", ResidualStatus.UNTIL, tickets.message,
                until=tickets.tickets_valid_until,
            ))  # fmt: skip
        removed = "ad.remove_privileged_groups" in applied
        if groups:
            found.append(ResidualAccess(
                "ad", account.name, "privileged_groups", ResidualStatus.REMAINS,
                f"Still a member of {len(groups)} privileged group(s)"
                + ("" if removed else " (ad.remove_privileged_groups takes the account out)"),
                items=tuple(g.name for g in groups),
            ))  # fmt: skip
        else:
            found.append(ResidualAccess(
                "ad", account.name, "privileged_groups", ResidualStatus.ENDED,
                "In no privileged group" + (" (removed by ad.remove_privileged_groups)" if removed else ""),
            ))  # fmt: skip
        return found

    def hands_secret(self, method: str) -> bool:
        """Whether `method` makes a secret for the requester: force_password_reset with
        set_random_password and hand_new_password_to_caller."""
        s = self.settings
        return method == "force_password_reset" and s.set_random_password and s.hand_new_password_to_caller

    async def clear_password_reset(self, account: Account, context: ActionContext) -> ActionOutcome:
        """pwdLastSet = -1 (the DC stores now), unless the user already had to change it before;
        as an undo, DONT_EXPIRE_PASSWORD is set again if the reset cleared it."""
        keep = _undo_keeps("clear_password_reset", context)
        restore_flag = _dont_expire_was_cleared(context)
        if keep and not restore_flag:
            return ActionOutcome.already(keep)
        return await self.pool.run(lambda conn: _clear_reset(conn, account, keep, restore_flag))

    async def remove_privileged_groups(self, account: Account, context: ActionContext) -> ActionOutcome:
        """Take the user out of every privileged group it is a direct member of (configured by SID,
        RID or name, adminCount=1, or nested into one), all or none; the result records which."""
        s = self.settings
        specs, admin_count = list(s.privileged_groups), s.privileged_admin_count_groups
        return await self.pool.run(
            lambda conn: _remove_privileged(conn, account, context, specs, admin_count)
        )

    async def restore_privileged_groups(self, account: Account, context: ActionContext) -> ActionOutcome:
        """The undo of remove_privileged_groups: put the user back into exactly the groups it removed."""
        before = context.restore_state
        recorded = before.values.get(UNDONE_PREFIX + "removed_groups") if before else None
        if not isinstance(recorded, list):
            raise PermanentError(
                "ad.restore_privileged_groups runs only as the undo of an ad.remove_privileged_groups "
                "that recorded the groups it removed; add the user to groups by hand otherwise",
                code="nothing_recorded",
            )
        groups = [str(dn) for dn in recorded]
        return await self.pool.run(lambda conn: _restore_privileged(conn, account, groups))


# -------------------------------------------------------------------- blocking parts (pool threads)


def _read(conn: Connection, account: Account, attributes: list[str]) -> _Entry:
    """The account's entry, found by its immutable objectGUID (it may have been moved or renamed)."""
    base = f"<GUID={account.id}>"
    conn.search(base, "(objectClass=user)", ldap3.BASE, attributes=attributes)
    if conn.result["result"] != SUCCESS:
        raise operation_failure(conn.result, "read the user", account.attributes.get("dn", base))
    entries = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
    if not entries:
        raise AccountNotFound(f"{account.name} (objectGUID {account.id}) no longer exists")
    attrs = entries[0]["attributes"]
    values = {k: [str(v) for v in (vs if isinstance(vs, list) else [vs])] for k, vs in attrs.items()}
    return _Entry(entries[0]["dn"], values)


def _replace(conn: Connection, entry: _Entry, changes: dict[str, Any], doing: str, needs: str) -> None:
    ops = {name: [(ldap3.MODIFY_REPLACE, [value])] for name, value in changes.items()}
    if not conn.modify(entry.dn, ops):
        admin_count = entry.int("adminCount")
        raise operation_failure(conn.result, doing, entry.dn, needs=needs, admin_count=admin_count)


def _undo_keeps(method: str, context: ActionContext) -> str | None:
    """Why an undo must leave the user as is: the state before the undone action already was the
    opposite of what it set (e.g. it disabled a user who was disabled already). None otherwise."""
    before = context.restore_state
    if before is None:
        return None
    if method == "enable_user" and before.enabled is False:
        return "the user was disabled before the action being undone"
    if method == "disable_user" and before.enabled is True:
        return "the user was enabled before the action being undone"
    must_change = before.values.get("must_change_password")
    if method == "clear_password_reset" and must_change is True:
        return "the user already had to change the password before the action being undone"
    if method == "force_password_reset" and must_change is False:
        return "the user did not have to change the password before the action being undone"
    return None


async def _each(calls: Sequence[Awaitable[T]]) -> list[T | Exception]:
    """Every call's outcome or its own error, in order."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, Exception):
            raise result  # cancellation and the like end the batch
    return [r for r in results if not isinstance(r, BaseException) or isinstance(r, Exception)]


def _set_disabled(conn: Connection, account: Account, disabled: bool) -> ActionOutcome:
    return _apply_disabled(conn, _read(conn, account, ["userAccountControl", "adminCount"]), disabled)


def _apply_disabled(conn: Connection, entry: _Entry, disabled: bool) -> ActionOutcome:
    """Flip ACCOUNTDISABLE in the userAccountControl just read in `entry`."""
    uac = entry.int("userAccountControl")
    if bool(uac & flags.ACCOUNTDISABLE) == disabled:
        return ActionOutcome.already(f"{entry.dn} is {'disabled' if disabled else 'enabled'}")
    new = uac | flags.ACCOUNTDISABLE if disabled else uac & ~flags.ACCOUNTDISABLE
    doing = "disable the user" if disabled else "enable the user"
    _replace(conn, entry, {"userAccountControl": str(new)}, doing, NEEDS_UAC)
    return ActionOutcome(
        changed=True,
        message=f"{'Disabled' if disabled else 'Enabled'} {entry.dn} (userAccountControl {uac} -> {new})",
        details={"userAccountControl_before": uac, "userAccountControl": new},
    )


def _force_reset(conn: Connection, account: Account, new_password: str | None) -> ActionOutcome:
    entry = _read(conn, account, ["userAccountControl", "pwdLastSet", "adminCount"])
    uac = entry.int("userAccountControl")
    # AD ignores pwdLastSet=0 while DONT_EXPIRE_PASSWORD is set: the flag is cleared in the same
    # modify (atomic), recorded, and set again by the undo (clear_password_reset).
    never_expires = bool(uac & flags.DONT_EXPIRE_PASSWORD)
    if entry.int("pwdLastSet", -1) == 0 and not never_expires and new_password is None:
        return ActionOutcome.already(f"{entry.dn} must already change the password at next logon")
    if new_password is not None:
        # unicodePwd is the password in double quotes, UTF-16LE; setting it makes pwdLastSet "now".
        encoded = f'"{new_password}"'.encode("utf-16-le")
        _replace(conn, entry, {"unicodePwd": encoded}, "reset the password", NEEDS_RESET)
    changes = {"pwdLastSet": "0"}
    needs = NEEDS_PWDLASTSET
    if never_expires:
        changes["userAccountControl"] = str(uac & ~flags.DONT_EXPIRE_PASSWORD)
        needs = f"{NEEDS_PWDLASTSET} and {NEEDS_UAC} (to clear DONT_EXPIRE_PASSWORD)"
    _replace(conn, entry, changes, "force a password change", needs)
    what = "Set a new random password and required" if new_password else "Required"
    message = f"{what} a password change at next logon for {entry.dn} (pwdLastSet = 0)"
    if never_expires:
        message += (
            f"; cleared DONT_EXPIRE_PASSWORD (userAccountControl {uac} -> {changes['userAccountControl']}), "
            "which would make AD ignore it, until the reset is undone"
        )
    return ActionOutcome(
        changed=True,
        message=message,
        details={
            "pwdLastSet": 0,
            "password_set": new_password is not None,
            "dont_expire_cleared": never_expires,
            "userAccountControl_before": uac,
        },
    )


def _dont_expire_was_cleared(context: ActionContext) -> bool:
    """Whether the reset being undone cleared DONT_EXPIRE_PASSWORD: as its result recorded, else
    (a reset that crashed before recording) whether the user had it before."""
    before = context.restore_state
    if before is None:
        return False
    recorded = before.values.get(UNDONE_PREFIX + "dont_expire_cleared")
    if recorded is not None:
        return recorded is True
    return before.values.get("password_never_expires") is True


def _clear_reset(conn: Connection, account: Account, keep: str | None, restore_flag: bool) -> ActionOutcome:
    entry = _read(conn, account, ["pwdLastSet", "userAccountControl", "adminCount"])
    uac = entry.int("userAccountControl")
    changes: dict[str, Any] = {}
    if keep is None and entry.int("pwdLastSet", -1) == 0:
        changes["pwdLastSet"] = "-1"
    if restore_flag and not uac & flags.DONT_EXPIRE_PASSWORD:
        changes["userAccountControl"] = str(uac | flags.DONT_EXPIRE_PASSWORD)
    if not changes:
        return ActionOutcome.already(keep or f"{entry.dn} is not required to change the password")
    needs = NEEDS_PWDLASTSET if "userAccountControl" not in changes else f"{NEEDS_PWDLASTSET} and {NEEDS_UAC}"
    _replace(conn, entry, changes, "clear the forced password change", needs)
    said = []
    if "pwdLastSet" in changes:
        said.append(f"{entry.dn} no longer has to change the password at next logon (pwdLastSet = -1, now)")
    if "userAccountControl" in changes:
        new = changes["userAccountControl"]
        said.append(f"DONT_EXPIRE_PASSWORD set again (userAccountControl {uac} -> {new})")
    return ActionOutcome(
        changed=True,
        message="; ".join(said),
        details={"dont_expire_restored": "userAccountControl" in changes},
    )


def _remove_privileged(
    conn: Connection, account: Account, context: ActionContext, specs: list[str], admin_count: bool
) -> ActionOutcome:
    entry = _read(conn, account, ["memberOf", "primaryGroupID", "adminCount"])
    domain = privileged.read_domain(conn)
    groups = privileged.privileged_groups(conn, domain, specs, admin_count)
    primary = f"{domain.sid}-{entry.int('primaryGroupID')}"
    if any(g.sid == primary for g in groups):
        name = next(g.name for g in groups if g.sid == primary)
        raise PermanentError(
            f"{entry.dn} has {name} as its primary group (primaryGroupID {entry.int('primaryGroupID')}), "
            "which no `member` change removes: set its primary group to Domain Users first. "
            "Nothing was changed",
            code="primary_group",
        )
    removing = privileged.privileged_among(conn, domain, groups, entry.dn)
    if not removing:
        return _removed_earlier(conn, domain, groups, entry, context)
    privileged.change_memberships(conn, entry.dn, removing, add=False)
    warnings: tuple[str, ...] = ()
    if entry.int("adminCount"):
        warnings = (
            "The account keeps adminCount=1 and the AdminSDHolder ACL: leaving the groups does not "
            "reset them, so OU-delegated rights still do not apply to it until both are cleared by hand.",
        )
    return ActionOutcome(
        changed=True,
        message=f"Removed {entry.dn} from {len(removing)} privileged group(s): "
        + ", ".join(g.name for g in removing),
        warnings=warnings,
        details=_groups_detail("removed", removing),
    )


def _removed_earlier(
    conn: Connection, domain: privileged.Domain, groups: list[privileged.Group], entry: _Entry,
    context: ActionContext,
) -> ActionOutcome:
    """No privileged membership now. If the state read before this action's first attempt had
    some, an earlier attempt removed them and ended before recording it: record them now, so the
    undo puts them back."""
    before = context.state_before.values.get("group_dns") if context.state_before else None
    now = {dn.lower() for dn in entry.values.get("memberOf", [])}
    gone = [str(dn) for dn in before or [] if str(dn).lower() not in now] if isinstance(before, list) else []
    earlier = privileged.privileged_among(conn, domain, groups, None, gone)
    if not earlier:
        return ActionOutcome.already(f"{entry.dn} is in no privileged group")
    return ActionOutcome(
        changed=True,
        message=f"{entry.dn} was taken out of {', '.join(g.name for g in earlier)} by an earlier attempt "
        "of this action that ended before recording it",
        details=_groups_detail("removed", earlier),
    )


def _privileged_memberships(
    conn: Connection, account: Account, specs: list[str], admin_count: bool
) -> list[privileged.Group]:
    """The privileged groups (or groups nested into one) the account is a direct member of now."""
    entry = _read(conn, account, ["memberOf"])
    domain = privileged.read_domain(conn)
    groups = privileged.privileged_groups(conn, domain, specs, admin_count)
    return privileged.privileged_among(conn, domain, groups, entry.dn)


def _restore_privileged(conn: Connection, account: Account, recorded: list[str]) -> ActionOutcome:
    entry = _read(conn, account, ["memberOf", "adminCount"])
    now = {dn.lower() for dn in entry.values.get("memberOf", [])}
    found = privileged.read_groups(conn, privileged.read_domain(conn), recorded)
    adding = [found[dn.lower()] for dn in recorded if dn.lower() in found and dn.lower() not in now]
    vanished = [dn for dn in recorded if dn.lower() not in found]
    warnings = tuple(f"{dn} no longer exists: the user was not put back into it" for dn in vanished)
    if not adding:
        outcome = ActionOutcome.already(f"{entry.dn} is back in every group the removal took it out of")
        return replace(outcome, warnings=warnings)
    privileged.change_memberships(conn, entry.dn, adding, add=True)
    return ActionOutcome(
        changed=True,
        message=f"Put {entry.dn} back into {len(adding)} group(s): " + ", ".join(g.name for g in adding),
        warnings=warnings,
        details=_groups_detail("restored", adding),
    )


def _groups_detail(verb: str, groups: list[privileged.Group]) -> dict[str, StateValue]:
    return {
        f"{verb}_groups": [g.dn for g in groups],
        f"{verb}_group_sids": [g.sid for g in groups],
        f"{verb}_group_names": [g.name for g in groups],
    }


def _random_password() -> str:
    """24 random characters from all four classes, to satisfy any complexity policy."""
    classes = [string.ascii_uppercase, string.ascii_lowercase, string.digits, "!#%+-.:=?@_~"]
    chars = [secrets.choice(c) for c in classes]
    chars += [secrets.choice("".join(classes)) for _ in range(20)]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


def _account(found: dict[str, Any]) -> Account:
    raw = found["raw_attributes"]
    attrs = found["attributes"]
    guid = guid_from_bytes(raw["objectGUID"][0])
    sam = _first(attrs.get("sAMAccountName"))
    upn = _first(attrs.get("userPrincipalName"))
    ids = {
        "dn": found["dn"],
        "objectGUID": guid,
        "objectSid": sid_from_bytes(raw["objectSid"][0]),
        "sAMAccountName": sam,
    }
    if upn:
        ids["userPrincipalName"] = upn
    if history := raw.get("sIDHistory"):  # the SIDs of the accounts it was migrated from
        ids["sIDHistory"] = MULTI_VALUE_SEPARATOR.join(sid_from_bytes(value) for value in history)
    return Account(provider="ad", id=guid, name=upn or sam, attributes=ids)


def _first(value: Any) -> str:
    """An attribute's single value: without the schema, ldap3 hands every value as a list."""
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return "" if value is None else str(value)


def _state(entry: _Entry) -> AccountState:
    uac = entry.int("userAccountControl")
    computed = entry.int("msDS-User-Account-Control-Computed")
    enabled = not uac & flags.ACCOUNTDISABLE
    locked = bool(computed & flags.LOCKOUT)
    pwd_last_set = entry.int("pwdLastSet")
    groups = sorted(_rdn_value(dn) for dn in entry.values.get("memberOf", []))
    status = "disabled" if not enabled else "locked_out" if locked else "enabled"
    return AccountState(
        enabled=enabled,
        status=status,
        values={
            "dn": entry.dn,
            "userAccountControl": uac,
            "flags": flag_list(uac | (computed & (flags.LOCKOUT | flags.PASSWORD_EXPIRED))),
            "locked_out": locked,
            "password_expired": bool(computed & flags.PASSWORD_EXPIRED),
            "pwdLastSet": pwd_last_set,
            "must_change_password": pwd_last_set == 0,
            "password_never_expires": bool(uac & flags.DONT_EXPIRE_PASSWORD),
            "password_last_set_at": flags.filetime_to_iso(pwd_last_set),
            "last_logon_at": flags.filetime_to_iso(entry.int("lastLogonTimestamp")),
            "locked_out_at": flags.filetime_to_iso(entry.int("lockoutTime")) if locked else None,
            "groups": groups,
            "group_dns": sorted(entry.values.get("memberOf", [])),
            "adminCount": entry.int("adminCount"),
        },
    )


def flag_list(uac: int) -> list[str]:
    """The userAccountControl flag names, for the user page."""
    return flags.flag_names(uac)


def _rdn_value(dn: str) -> str:
    first = ldap3.utils.dn.parse_dn(dn)[0]
    return str(first[1])
