"""Eviction in Entra ID: what keeps an attacker in once the account is suspended and its sessions
revoked. A password change at next sign-in, the authentication methods they registered (FIDO2
keys, Authenticator, phones, temporary access passes) and the devices registered to the user
(a device can hold a primary refresh token), each one user at a time or many per `$batch`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from clampdown.clock import Clock
from clampdown.connectors.entra.client import GraphClient, GraphReply, SubRequest, object_path
from clampdown.connectors.entra.settings import EntraSettings
from clampdown.errors import ActionAccountError, PermanentError, ProviderError
from clampdown.model import Account, AccountState, ActionContext, ActionOutcome

Outcomes = list[ActionOutcome | Exception]
Items = list[tuple[Account, ActionContext]]
ErrorOf = Callable[[GraphReply, str, str], ProviderError]

# The authentication method types removed, by @odata.type: (navigation property, word for people).
REMOVABLE = {
    "#microsoft.graph.fido2AuthenticationMethod": ("fido2Methods", "FIDO2 security key"),
    "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod": (
        "microsoftAuthenticatorMethods",
        "Microsoft Authenticator",
    ),
    "#microsoft.graph.phoneAuthenticationMethod": ("phoneMethods", "phone"),
    "#microsoft.graph.temporaryAccessPassAuthenticationMethod": (
        "temporaryAccessPassMethods",
        "temporary access pass",
    ),
}
PASSWORD_TYPE = "#microsoft.graph.passwordAuthenticationMethod"
DEVICE_SELECT = "id,deviceId,displayName,accountEnabled,operatingSystem,trustType"
# The undo_with key naming the devices entra.disable_devices disabled (their object ids).
DISABLED_DEVICES = "disabledDevices"
# The role an app must hold to disable, or reset the password of, a user in a privileged role.
PRIVILEGED_HOLDER = "Privileged Authentication Administrator"
# Built-in roles whose holders Entra ID protects so (role template ids, as Graph names them).
PRIVILEGED_ROLES = {
    "62e90394-69f5-4237-9190-012177145e10": "Global Administrator",
    "e8611ab8-c189-46e8-94e1-60213ab1f814": "Privileged Role Administrator",
    "7be44c8a-adaf-4e2a-84d6-ab2649e08a13": "Privileged Authentication Administrator",
    "194ae4cb-b126-40b2-bd5b-6091b380977d": "Security Administrator",
    "fe930be7-5e62-47db-91af-98c3a49a38b1": "User Administrator",
    "c4e39bd9-1100-46d3-8c65-fb160da0071f": "Authentication Administrator",
    "729827e3-9c14-49f7-bb1b-9608f156bbb8": "Helpdesk Administrator",
    "966707d0-3269-4727-9be2-8c3a10f19b9d": "Password Administrator",
    "29232cdf-9323-42fd-ade2-1d097af3e4de": "Exchange Administrator",
    "f28a1f50-f6e7-4571-818b-6a12f2af6b6c": "SharePoint Administrator",
    "3a2c62db-5318-420d-8d74-23affee5d9d5": "Intune Administrator",
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3": "Application Administrator",
    "158c047a-c907-4556-b7ef-446551a6b5f7": "Cloud Application Administrator",
    "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9": "Conditional Access Administrator",
}
SYNCED_PASSWORD = (
    "{upn} is synchronized from on-premises Active Directory: its password belongs to AD, and a "
    "change forced in Entra ID would not reach the password people sign in with. Force the reset "
    "in AD instead (ad.force_password_reset)."
)


@dataclass(frozen=True)
class RemovedMethod:
    """One authentication method removed, as an analyst needs it to re-register the real ones."""

    kind: str
    id: str
    name: str
    created: str

    def line(self) -> str:
        return f"{self.kind} | {self.id} | {self.name} | {self.created}"


def method_word(method: dict[str, Any]) -> str:
    """What people call an authentication method's type ("FIDO2 security key", "password")."""
    kind_type = str(method.get("@odata.type"))
    if kind_type == PASSWORD_TYPE:
        return "password"
    if kind_type in REMOVABLE:
        return REMOVABLE[kind_type][1]
    return kind_type.removeprefix("#microsoft.graph.").removesuffix("AuthenticationMethod")


def _method_name(method: dict[str, Any], kind: str) -> str:
    if kind == "phone":
        return f"{method.get('phoneType') or 'phone'} {method.get('phoneNumber') or ''}".strip()
    if kind == "temporary access pass":
        return f"usable once: {method.get('isUsableOnce')}, from {method.get('startDateTime')}"
    return str(method.get("displayName") or "(no name)")


def _moment(text: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class Writes:
    """The writes one user's action needs, and how their answers become its outcome."""

    requests: list[SubRequest]
    finish: Callable[[list[GraphReply]], ActionOutcome]


Plan = Writes | ActionOutcome | Exception


class Eviction:
    """The eviction actions of one Entra connector (its Graph client and error mapping)."""

    def __init__(self, graph: GraphClient, settings: EntraSettings, error: ErrorOf, clock: Clock) -> None:
        self.graph, self.settings, self.error, self.clock = graph, settings, error, clock

    async def _write_all(self, plans: list[Plan]) -> Outcomes:
        """Every user's writes in one go (`$batch`es across users), then each user's outcome."""
        flat = [r for p in plans if isinstance(p, Writes) for r in p.requests]
        replies = iter(await self.graph.run_many(flat) if flat else [])
        results: Outcomes = []
        for plan in plans:
            if not isinstance(plan, Writes):
                results.append(plan)
                continue
            mine = [next(replies) for _ in plan.requests]
            try:
                results.append(plan.finish(mine))
            except ProviderError as exc:
                results.append(exc)
        return results

    # -- privileged-user protection ----------------------------------------------------------
    async def explain_denied(
        self, reply: GraphReply, operation: str, account: Account, doing: str
    ) -> ProviderError:
        """The error for a refused change to a user: when the user holds a directory role, the
        app needs a role above it (Graph says only "Insufficient privileges"), so name that."""
        generic = self.error(reply, operation, account.name)
        if reply.status != 403:
            return generic
        roles_reply = await self.graph.send(
            "GET",
            object_path(account.id, "/memberOf/microsoft.graph.directoryRole"),
            params={"$select": "id,displayName,roleTemplateId"},
        )
        held = (roles_reply.body or {}).get("value", []) if roles_reply.ok else []
        roles = [
            str(r.get("displayName"))
            for r in held
            if r.get("roleTemplateId") in PRIVILEGED_ROLES
            or r.get("displayName") in PRIVILEGED_ROLES.values()
        ]
        if not roles:  # no privileged role: the application permission is what is missing
            return generic
        return ActionAccountError(
            f"Entra ID refused to {doing} {account.name}: the user holds the privileged directory role "
            f"{', '.join(roles)}, and Entra ID's privileged-user protection lets only an app that itself "
            f"holds the {PRIVILEGED_HOLDER} (or Global Administrator) directory role do that, whatever its "
            f"application permissions. Assign that role to the service principal of app "
            f"{self.settings.client_id}, or have a person holding it act. ({generic})",
            provider_request_id=generic.provider_request_id,
        )

    # -- password ----------------------------------------------------------------------------
    async def force_password_reset(self, items: Items, states: list[AccountState | Exception]) -> Outcomes:
        """passwordProfile.forceChangePasswordNextSignIn=true; a user synced from AD (by its state
        in `states`) is refused: its password is AD's (ad.force_password_reset)."""
        results: Outcomes = []
        todo: list[int] = []
        for index, ((account, _), state) in enumerate(zip(items, states, strict=True)):
            if isinstance(state, Exception):
                results.append(state)
            elif state.values.get("onPremisesSyncEnabled"):
                results.append(
                    PermanentError(SYNCED_PASSWORD.format(upn=account.name), code="synced_from_ad")
                )
            else:
                results.append(ActionOutcome(changed=True, message=""))
                todo.append(index)
        body = {"passwordProfile": {"forceChangePasswordNextSignIn": True}}
        requests = [SubRequest("PATCH", object_path(items[i][0].id), body) for i in todo]
        replies = await self.graph.run_many(requests) if requests else []
        for index, reply in zip(todo, replies, strict=True):
            account = items[index][0]
            if not reply.ok:
                results[index] = await self.explain_denied(
                    reply, "force_password_reset", account, "force a password change for"
                )
                continue
            results[index] = ActionOutcome(
                changed=True,
                message=f"{account.name} must change the password at the next sign-in to Entra ID; "
                "sessions already issued last until revoked (entra.revoke_sessions)",
                provider_request_id=reply.headers.get("request-id"),
                details={"forceChangePasswordNextSignIn": True},
            )
        return results

    # -- authentication methods --------------------------------------------------------------
    @staticmethod
    def methods_request(account: Account) -> SubRequest:
        """The read of every authentication method of `account` (the password included)."""
        return SubRequest("GET", object_path(account.id, "/authentication/methods"))

    @staticmethod
    def method_name(method: dict[str, Any]) -> str:
        """One method as an analyst reads it: "FIDO2 security key 'YubiKey 5'", "password"."""
        word = method_word(method)
        if word == "password" or str(method.get("@odata.type")) not in REMOVABLE:
            name = method.get("displayName")
            return f"{word} '{name}'" if name else word
        return f"{word} '{_method_name(method, word)}'"

    async def collection(self, reply: GraphReply) -> list[dict[str, Any]]:
        """Every item of a collection answer, following @odata.nextLink (on the Graph URL only)."""
        items: list[dict[str, Any]] = list(reply.body.get("value", []))
        link = reply.body.get("@odata.nextLink")
        while link:
            page = await self.graph.send("GET", self.graph.follow(str(link)))
            if not page.ok:
                raise self.error(page, "read_next_page", "a collection")
            items.extend(page.body.get("value", []))
            link = page.body.get("@odata.nextLink")
        return items

    def _since(self) -> datetime | None:
        hours = self.settings.remove_auth_methods_registered_within_hours
        return None if hours is None else self.clock.now() - timedelta(hours=hours)

    async def remove_auth_methods(self, items: Items) -> Outcomes:
        """Delete every FIDO2 key, Authenticator, phone and temporary access pass of each user
        (or only those registered within the configured window); the password stays."""
        lists = await self.graph.run_many([self.methods_request(a) for a, _ in items])
        plans: list[Plan] = []
        for (account, _), reply in zip(items, lists, strict=True):
            try:
                plans.append(await self._plan_removal(account, reply))
            except ProviderError as exc:
                plans.append(exc)
        return await self._write_all(plans)

    async def _plan_removal(self, account: Account, listed: GraphReply) -> Plan:
        if not listed.ok:
            raise self.error(listed, "remove_auth_methods", account.name)
        since = self._since()
        doomed: list[tuple[str, RemovedMethod]] = []
        kept: list[str] = []
        for method in await self.collection(listed):
            kind_type = str(method.get("@odata.type"))
            if kind_type == PASSWORD_TYPE:
                continue
            if kind_type not in REMOVABLE:
                kept.append(f"{kind_type.removeprefix('#microsoft.graph.')} {method.get('id')}")
                continue
            path, word = REMOVABLE[kind_type]
            created = _moment(method.get("createdDateTime"))
            if since is not None and (created is None or created < since):
                continue
            removed = RemovedMethod(
                word, str(method["id"]), _method_name(method, word), str(method.get("createdDateTime"))
            )
            doomed.append((path, removed))
        warnings = (
            [
                f"{account.name} also has methods this action does not remove: {', '.join(kept)}; "
                "review them in the Entra admin center"
            ]
            if kept
            else []
        )
        if not doomed:
            window = "" if since is None else f" registered since {since.isoformat(timespec='seconds')}"
            outcome = ActionOutcome.already(f"{account.name} has no authentication method to remove{window}")
            return ActionOutcome(False, outcome.message, warnings=tuple(warnings))
        requests = [
            SubRequest("DELETE", object_path(account.id, f"/authentication/{path}/{m.id}"))
            for path, m in doomed
        ]

        def finish(replies: list[GraphReply]) -> ActionOutcome:
            return self._removed(account, [m for _, m in doomed], replies, warnings)

        return Writes(requests, finish)

    def _removed(
        self, account: Account, doomed: list[RemovedMethod], replies: list[GraphReply], warnings: list[str]
    ) -> ActionOutcome:
        done: list[RemovedMethod] = []
        failure: ProviderError | None = None
        for gone, reply in zip(doomed, replies, strict=True):
            if reply.ok or reply.status == 404:  # 404: gone already, which is what was wanted
                done.append(gone)
            else:
                failure = failure or self.error(reply, "remove_auth_methods", account.name)
                warnings.append(f"could not remove {gone.kind} {gone.id} ({gone.name}): {failure}")
        if not done and failure is not None:
            raise failure
        message = (
            f"Removed {len(done)} authentication method(s) of {account.name}: "
            + "; ".join(f"{m.kind} '{m.name}' (registered {m.created})" for m in done)
            + ". The password stays; the user re-registers the real methods (details list each one)"
        )
        return ActionOutcome(
            changed=True,
            message=message,
            warnings=tuple(warnings),
            details={
                "removedMethods": [m.line() for m in done],
                "removedColumns": "type | id | name | createdDateTime",
            },
        )

    # -- devices -----------------------------------------------------------------------------
    @staticmethod
    def devices_request(account: Account) -> SubRequest:
        """The read of the devices registered to `account`."""
        return SubRequest(
            "GET",
            object_path(account.id, f"/registeredDevices/microsoft.graph.device?$select={DEVICE_SELECT}"),
        )

    async def disable_devices(self, items: Items) -> Outcomes:
        """accountEnabled=false on every enabled device registered to each user; the outcome names
        them, and the undo (entra.enable_devices) enables exactly those."""
        lists = await self.graph.run_many([self.devices_request(a) for a, _ in items])
        plans: list[Plan] = []
        for (account, _), reply in zip(items, lists, strict=True):
            try:
                plans.append(await self._plan_disable(account, reply))
            except ProviderError as exc:
                plans.append(exc)
        return await self._write_all(plans)

    async def _plan_disable(self, account: Account, listed: GraphReply) -> Plan:
        if not listed.ok:
            raise self.error(listed, "disable_devices", account.name)
        devices = await self.collection(listed)
        enabled = [d for d in devices if d.get("accountEnabled")]
        windows = [d for d in enabled if str(d.get("operatingSystem") or "").lower().startswith("windows")]
        warnings = [
            f"{d.get('displayName')} ({d.get('operatingSystem')}, {d.get('id')}) left enabled: Graph lets an "
            "app change only the extensionAttributes of a non-Windows device; disable it in the Entra "
            "admin center (Cloud Device Administrator) or retire it in Intune"
            for d in enabled
            if d not in windows
        ]
        if not windows:
            outcome = ActionOutcome.already(f"{account.name} has no enabled Windows device in Entra ID")
            return ActionOutcome(False, outcome.message, warnings=tuple(warnings))
        requests = [
            SubRequest("PATCH", "/devices/" + str(d["id"]), {"accountEnabled": False}) for d in windows
        ]
        return Writes(requests, lambda replies: self._disabled(account, windows, replies, warnings))

    def _disabled(
        self, account: Account, windows: list[dict[str, Any]], replies: list[GraphReply], warnings: list[str]
    ) -> ActionOutcome:
        disabled: list[dict[str, Any]] = []
        failure: ProviderError | None = None
        for device, reply in zip(windows, replies, strict=True):
            if reply.ok:
                disabled.append(device)
            elif reply.status != 404:  # 404: deleted meanwhile, nothing left to disable
                failure = failure or self.error(reply, "disable_devices", account.name)
                warnings.append(f"could not disable {device.get('displayName')} ({device['id']}): {failure}")
        if not disabled and failure is not None:
            raise failure
        names = [f"{d.get('displayName')} ({d.get('operatingSystem')}, {d['id']})" for d in disabled]
        warnings += [
            f"{d.get('displayName')} ({d['id']}) is hybrid joined (synchronized from AD): disable its "
            "computer account in AD too, or a directory sync may enable it again"
            for d in disabled
            if d.get("trustType") == "ServerAd"
        ]
        return ActionOutcome(
            changed=bool(disabled),
            message=f"Disabled {len(disabled)} device(s) of {account.name} in Entra ID: {', '.join(names)}; "
            "their primary refresh tokens no longer sign anyone in",
            warnings=tuple(warnings),
            details={"disabledDevices": names},
            undo_with={DISABLED_DEVICES: [str(d["id"]) for d in disabled]},
        )

    async def enable_devices(self, items: Items) -> Outcomes:
        """accountEnabled=true on exactly the devices the entra.disable_devices being undone disabled."""
        plans: list[Plan] = []
        for account, context in items:
            restore = context.restore_state
            ids = restore.values.get(DISABLED_DEVICES) if restore is not None else None
            if not isinstance(ids, list):
                plans.append(
                    PermanentError(
                        "entra.enable_devices enables only the devices an entra.disable_devices action "
                        f"disabled; run it as the undo of that action (actions undo <id>) for {account.name}",
                        code="nothing_to_restore",
                    )
                )
                continue
            plans.append(self._plan_enable(account, [str(i) for i in ids]))
        return await self._write_all(plans)

    def _plan_enable(self, account: Account, ids: list[str]) -> Plan:
        if not ids:
            return ActionOutcome.already(f"the action being undone disabled no device of {account.name}")
        requests = [
            SubRequest("PATCH", "/devices/" + device_id, {"accountEnabled": True}) for device_id in ids
        ]
        return Writes(requests, lambda replies: self._enabled(account, ids, replies))

    def _enabled(self, account: Account, ids: list[str], replies: list[GraphReply]) -> ActionOutcome:
        enabled: list[str] = []
        gone: list[str] = []
        warnings: list[str] = []
        failure: ProviderError | None = None
        for device_id, reply in zip(ids, replies, strict=True):
            if reply.ok:
                enabled.append(device_id)
            elif reply.status == 404:
                gone.append(device_id)
            else:
                failure = failure or self.error(reply, "enable_devices", account.name)
                warnings.append(f"could not enable device {device_id}: {failure}")
        if not enabled and failure is not None:
            raise failure
        if gone:
            warnings.append(f"device(s) {', '.join(gone)} no longer exist in Entra ID")
        return ActionOutcome(
            changed=bool(enabled),
            message=f"Enabled again the {len(enabled)} device(s) of {account.name} that the undone "
            "action disabled",
            warnings=tuple(warnings),
            details={"enabledDevices": enabled},
        )
