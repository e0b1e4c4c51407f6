"""Eviction in AD: out of privileged groups and back exactly, a reset that also beats
DONT_EXPIRE_PASSWORD, all read back in Samba as Administrator; the undo through the engine."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import ldap3
import pytest
from ldap3.protocol.microsoft import security_descriptor_control

from clampdown.auth.principal import Principal
from clampdown.catalog import SECURITY_ADMINISTRATOR
from clampdown.config import EngineSettings
from clampdown.connectors.ad import ADConnector
from clampdown.connectors.ad.doctor import diagnose_ad
from clampdown.connectors.ad.failures import bind_data_code
from clampdown.db.database import create_engine
from clampdown.db.migrate import upgrade
from clampdown.engine.worker import Worker
from clampdown.errors import ActionAccountError, PermanentError
from clampdown.model import Action, ActionContext, ActionOutcome, ActionStatus, restore_point
from clampdown.services.actions import ActionService
from clampdown.store.actions import ActionStore
from clampdown_lab.samba import SambaLab
from clampdown_lab.samba.seed import BASE_DN, MANAGED_OU
from tests.ad.ad_checks import ScratchUser, bind_as, context, read_attrs, read_int

pytestmark = pytest.mark.samba

BACKUP_OPERATORS = f"CN=Backup Operators,CN=Builtin,{BASE_DN}"
DOMAIN_ADMINS = f"CN=Domain Admins,CN=Users,{BASE_DN}"
REMOTE_DESKTOP_USERS = f"CN=Remote Desktop Users,CN=Builtin,{BASE_DN}"  # not privileged
MEMBER = "bf9679c0-0de6-11d0-a285-00aa003049e2"
DACL = security_descriptor_control(sdflags=0x04)
DONT_EXPIRE = 0x10000
FAST = EngineSettings(poll_interval_seconds=0.05, backoff_base_seconds=0.01, backoff_max_seconds=0.05)
ANALYST = Principal.from_roles("analyst", frozenset({SECURITY_ADMINISTRATOR}), {})


def _sid_of(admin: Any, sam: str) -> str:
    from clampdown.connectors.ad.references import sid_from_bytes

    admin.search(BASE_DN, f"(sAMAccountName={sam})", attributes=["objectSid"])
    return sid_from_bytes(admin.response[0]["raw_attributes"]["objectSid"][0])


@contextmanager
def member_write(admin: Any, lab: SambaLab, dn: str) -> Iterator[None]:
    """svc-clampdown may write `member` of `dn` for the block; its DACL is put back after."""
    admin.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["nTSecurityDescriptor"], controls=DACL)
    saved = admin.response[0]["raw_attributes"]["nTSecurityDescriptor"][0]
    sddl = f"(OA;;WP;{MEMBER};;{_sid_of(admin, 'svc-clampdown')})"
    smb = lab.samba_dir / "etc" / "smb.conf"
    subprocess.run(
        ["samba-tool", "dsacl", "set", "-s", str(smb), "-H", str(lab.samba_dir / "private" / "sam.ldb"),
         f"--objectdn={dn}", f"--sddl={sddl}"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield
    finally:
        admin.modify(dn, {"nTSecurityDescriptor": [(ldap3.MODIFY_REPLACE, [saved])]}, controls=DACL)
        assert admin.result["result"] == 0, admin.result


@pytest.fixture
def make_group(admin: Any) -> Iterator[Callable[..., str]]:
    """Scratch groups in OU=Managed (deleted after the test)."""
    made: list[str] = []

    def make(admin_count: bool = False) -> str:
        name = f"g-{uuid.uuid4().hex[:10]}"
        dn = f"CN={name},{MANAGED_OU}"
        admin.add(dn, ["top", "group"], {"sAMAccountName": name})
        made.append(dn)
        if admin_count:
            admin.modify(dn, {"adminCount": [(ldap3.MODIFY_REPLACE, ["1"])]})
        return dn

    yield make
    for dn in made:
        admin.delete(dn)


def add_member(admin: Any, group: str, member: str) -> None:
    admin.modify(group, {"member": [(ldap3.MODIFY_ADD, [member])]})
    assert admin.result["result"] == 0, admin.result


def remove_member(admin: Any, group: str, member: str) -> None:
    admin.modify(group, {"member": [(ldap3.MODIFY_DELETE, [member])]})


def groups_of(admin: Any, dn: str) -> set[str]:
    return {str(g).lower() for g in read_attrs(admin, dn, "memberOf").get("memberOf") or []}


def undo_context(outcome: ActionOutcome, before: Any) -> ActionContext:
    """The context an undo gets: the state before the action plus its recorded result."""
    done = Action(1, "x", "ad", "t", ActionStatus.COMPLETED, "pytest", "r", None,  # type: ignore[arg-type]
                  result=outcome.to_json(), state_before=before)  # fmt: skip
    return ActionContext(2, "undo", "pytest", restore_state=restore_point(done))


async def test_remove_then_restore_exactly_the_privileged_groups(
    ad: ADConnector, admin: Any, lab: SambaLab, make_user: Callable[..., ScratchUser],
    make_group: Callable[..., str],
) -> None:  # fmt: skip
    user = make_user()
    protected, nested = make_group(admin_count=True), make_group()
    add_member(admin, BACKUP_OPERATORS, nested)  # nested: a way into Backup Operators
    for group in (BACKUP_OPERATORS, protected, nested, REMOTE_DESKTOP_USERS):
        add_member(admin, group, user.dn)
    try:
        with ExitStack() as grants:
            for group in (BACKUP_OPERATORS, protected, nested):
                grants.enter_context(member_write(admin, lab, group))
            await _remove_and_restore(ad, admin, lab, user, protected, nested)
    finally:
        remove_member(admin, BACKUP_OPERATORS, nested)
        remove_member(admin, BACKUP_OPERATORS, user.dn)
        remove_member(admin, REMOTE_DESKTOP_USERS, user.dn)


async def _remove_and_restore(
    ad: ADConnector, admin: Any, lab: SambaLab, user: ScratchUser, protected: str, nested: str
) -> None:
    account = await ad.resolve_user(user.sam)
    before = await ad.read_state(account)
    outcome = await ad.remove_privileged_groups(account, context())
    assert outcome.changed
    removed = [BACKUP_OPERATORS, protected, nested]
    assert outcome.details["removed_groups"] == sorted(removed, key=str.lower)
    assert "S-1-5-32-551" in outcome.details["removed_group_sids"]  # type: ignore[operator]
    assert groups_of(admin, user.dn) == {REMOTE_DESKTOP_USERS.lower()}
    assert not (await ad.remove_privileged_groups(account, context())).changed

    # Someone adds the user back to one group meanwhile: the restore adds the others only.
    add_member(admin, protected, user.dn)
    restored = await ad.restore_privileged_groups(account, undo_context(outcome, before))
    assert restored.changed
    assert sorted(restored.details["restored_groups"]) == sorted([BACKUP_OPERATORS, nested])  # type: ignore[type-var]
    assert groups_of(admin, user.dn) == {g.lower() for g in [*removed, REMOTE_DESKTOP_USERS]}
    assert not (await ad.restore_privileged_groups(account, undo_context(outcome, before))).changed


async def test_a_group_outside_the_delegation_fails_and_nothing_changes(
    ad: ADConnector, admin: Any, lab: SambaLab, make_user: Callable[..., ScratchUser]
) -> None:
    user = make_user()
    add_member(admin, BACKUP_OPERATORS, user.dn)
    add_member(admin, DOMAIN_ADMINS, user.dn)
    try:
        # Backup Operators sorts first and is removed, then Domain Admins refuses: both stay.
        with member_write(admin, lab, BACKUP_OPERATORS):
            account = await ad.resolve_user(user.sam)
            with pytest.raises(ActionAccountError) as caught:
                await ad.remove_privileged_groups(account, context())
        message = caught.value.message
        assert f"the action account lacks rights on {DOMAIN_ADMINS}" in message and "(LDAP 50)" in message
        assert "Write Property on member" in message and "AdminSDHolder" in message
        assert "changed back, so nothing was changed" in message
        assert groups_of(admin, user.dn) == {BACKUP_OPERATORS.lower(), DOMAIN_ADMINS.lower()}
    finally:
        remove_member(admin, BACKUP_OPERATORS, user.dn)
        remove_member(admin, DOMAIN_ADMINS, user.dn)


async def test_restore_without_a_recorded_removal_is_refused(
    ad: ADConnector, make_user: Callable[..., ScratchUser]
) -> None:
    account = await ad.resolve_user(make_user().sam)
    with pytest.raises(PermanentError) as caught:
        await ad.restore_privileged_groups(account, context())
    assert caught.value.code == "nothing_recorded"


async def test_doctor_checks_member_write_on_each_privileged_group(
    ad: ADConnector, admin: Any, make_group: Callable[..., str]
) -> None:
    protected = make_group(admin_count=True)
    report = await diagnose_ad(ad, groups=True)
    by_dn = {t.target: t for t in report.targets if t.kind == "group"}
    assert DOMAIN_ADMINS in by_dn and BACKUP_OPERATORS in by_dn and protected in by_dn
    admins = by_dn[DOMAIN_ADMINS]
    assert not admins.ok
    both = {"ad.remove_privileged_groups", "ad.restore_privileged_groups"}
    assert {c.action for c in admins.actions} == both
    holder = f"CN=AdminSDHolder,CN=System,{BASE_DN}"
    assert f'dsacls "{holder}" /G "LAB\\svc-clampdown:WP;member"' in admins.grants


async def test_doctor_sees_a_granted_group_as_ok(
    ad: ADConnector, admin: Any, lab: SambaLab, make_group: Callable[..., str]
) -> None:
    group = make_group(admin_count=True)
    with member_write(admin, lab, group):
        report = await diagnose_ad(ad, groups=True)
    (target,) = [t for t in report.targets if t.target == group]
    assert target.ok and not target.grants


async def test_reset_of_never_expiring_password_clears_the_flag_and_the_undo_sets_it(
    ad: ADConnector, admin: Any, lab: SambaLab, make_user: Callable[..., ScratchUser]
) -> None:
    user = make_user(uac=0x200 | DONT_EXPIRE)
    account = await ad.resolve_user(user.sam)
    before = await ad.read_state(account)
    assert bind_as(lab, user.upn, user.password)["result"] == 0

    outcome = await ad.force_password_reset(account, context())
    assert outcome.changed and outcome.details["dont_expire_cleared"] is True
    assert read_int(admin, user.dn, "userAccountControl") == 0x200
    assert read_int(admin, user.dn, "pwdLastSet") == 0
    bound = bind_as(lab, user.upn, user.password)
    assert bound["result"] == 49 and bind_data_code(bound["message"]) == "773"
    assert not (await ad.force_password_reset(account, context())).changed

    undone = await ad.clear_password_reset(account, undo_context(outcome, before))
    assert undone.changed and "DONT_EXPIRE_PASSWORD set again" in undone.message
    assert read_int(admin, user.dn, "userAccountControl") == 0x200 | DONT_EXPIRE
    assert read_int(admin, user.dn, "pwdLastSet") > 0
    assert bind_as(lab, user.upn, user.password)["result"] == 0


async def test_undo_through_the_engine_restores_the_recorded_groups_and_flag(
    ad: ADConnector, admin: Any, lab: SambaLab, make_user: Callable[..., ScratchUser],
    make_group: Callable[..., str], tmp_path: Path,
) -> None:  # fmt: skip
    db = create_engine(f"sqlite:///{tmp_path / 'clampdown.db'}")
    await upgrade(db)
    store = ActionStore(db)
    service = ActionService(store, {"ad": ad})
    user = make_user(uac=0x200 | DONT_EXPIRE)
    group = make_group(admin_count=True)
    add_member(admin, group, user.dn)
    try:
        with member_write(admin, lab, group):
            first = [
                await service.request(kind, user.sam, "INC-16", ANALYST)
                for kind in ("ad.remove_privileged_groups", "ad.force_password_reset")
            ]
            await Worker(store, {"ad": ad}, FAST).run(until_drained=True)
            done = await service.wait([a.id for a in first], timeout=10)
            assert all(a.status is ActionStatus.COMPLETED and a.changed for a in done), done
            assert groups_of(admin, user.dn) == set()
            assert read_int(admin, user.dn, "userAccountControl") == 0x200

            undos = [await service.undo(a.id, ANALYST) for a in done]
            await Worker(store, {"ad": ad}, FAST).run(until_drained=True)
            finished = await service.wait([u.id for u in undos], timeout=10)
            assert all(a.status is ActionStatus.COMPLETED and a.changed for a in finished), finished
        assert groups_of(admin, user.dn) == {group.lower()}
        assert read_int(admin, user.dn, "userAccountControl") == 0x200 | DONT_EXPIRE
    finally:
        remove_member(admin, group, user.dn)
        await db.dispose()


async def test_kerberos_policy_is_read_from_the_default_domain_policy(
    ad: ADConnector, ad_settings: Any, lab: SambaLab, make_user: Callable[..., ScratchUser]
) -> None:
    from datetime import UTC, datetime, timedelta

    from clampdown_lab.samba.seed import LAB_KERBEROS_POLICY, seed_kerberos_policy

    written = seed_kerberos_policy(lab.sysvol)  # what `clampdown lab up` writes
    policy = await ad.kerberos_ticket_policy()
    assert policy.max_ticket_age == timedelta(hours=LAB_KERBEROS_POLICY["MaxTicketAge"])
    assert policy.max_renew_age == timedelta(days=LAB_KERBEROS_POLICY["MaxRenewAge"])
    assert policy.max_service_age == timedelta(minutes=LAB_KERBEROS_POLICY["MaxServiceAge"])
    assert str(written) in policy.source

    user = make_user()
    bind_as(lab, user.upn, user.password)  # a logon the DC records in lastLogon
    account = await ad.resolve_user(user.sam)
    disabled_at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    residual = await ad.kerberos_residual_access(account, disabled_at)
    assert residual.tickets_valid_until == datetime(2026, 12, 1, 13, 30, tzinfo=UTC)
    assert residual.message.startswith(
        "Kerberos tickets issued before the disable stay valid until 2026-12-01T13:30:00+00:00"
    )
    assert residual.password_last_set_at and residual.last_logon_at

    # Without a SYSVOL to read, the answer says it assumed Windows' defaults.
    blind = ADConnector(ad_settings.model_copy(update={"sysvol_path": None}))
    try:
        fallback = await blind.kerberos_ticket_policy()
    finally:
        await blind.aclose()
    assert fallback.max_ticket_age == timedelta(hours=10) and "Windows defaults" in fallback.source


async def test_residual_access_names_tickets_until_the_policy_says_and_groups_left(
    ad: ADConnector, admin: Any, lab: SambaLab, make_user: Callable[..., ScratchUser],
    make_group: Callable[..., str],
) -> None:  # fmt: skip
    from datetime import UTC, datetime, timedelta

    from clampdown.model import ResidualStatus
    from clampdown_lab.samba.seed import LAB_KERBEROS_POLICY, seed_kerberos_policy

    seed_kerberos_policy(lab.sysvol)
    user = make_user()
    protected = make_group(admin_count=True)
    add_member(admin, protected, user.dn)
    account = await ad.resolve_user(user.sam)

    # Nothing applied yet: new tickets can be had, and the privileged group is named.
    found = {r.kind: r for r in await ad.residual_access(account, {})}
    assert found["kerberos_tickets"].status is ResidualStatus.REMAINS
    assert found["privileged_groups"].status is ResidualStatus.REMAINS
    assert found["privileged_groups"].items == (protected.split(",")[0].removeprefix("CN="),)

    # Disabled at a known moment and out of the group: tickets live the lab policy's MaxTicketAge.
    disabled_at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    remove_member(admin, protected, user.dn)
    applied = {"ad.disable_user": disabled_at, "ad.remove_privileged_groups": disabled_at}
    found = {r.kind: r for r in await ad.residual_access(account, applied)}
    tickets = found["kerberos_tickets"]
    assert tickets.status is ResidualStatus.UNTIL
    assert tickets.until == disabled_at + timedelta(hours=LAB_KERBEROS_POLICY["MaxTicketAge"])
    assert "Default Domain Policy" in tickets.detail
    assert found["privileged_groups"].status is ResidualStatus.ENDED
    assert "removed by ad.remove_privileged_groups" in found["privileged_groups"].detail
    assert tickets.at(tickets.until).status is ResidualStatus.ENDED  # type: ignore[arg-type]
