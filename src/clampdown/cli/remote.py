"""The CLI's client of a running Clampdown's REST API (`--server URL` or $CLAMPDOWN_URL).

A command given a server asks it over /api/v1 instead of opening the database, reads the answers
into the same views the API serves (so tables and --json print exactly as in local mode), and turns
every failure into the ClampdownError local mode would raise: the CLI's exit codes stay the same.
httpx and the views are imported here only, when a command talks to a server.

`RemoteApi` takes the server, the token and the CA file from one `ServerProfile`: given as options
or variables, or saved by `clampdown login` (clampdown.cli.profiles).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from clampdown.cli.context import no_credentials, profile, server, state, token
from clampdown.errors import (
    ClampdownError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    StoreUnavailable,
    TooManyAttempts,
)
from clampdown.model import ActionStatus

if TYPE_CHECKING:
    from clampdown.views import (
        ActOnResultsView,
        BulkView,
        ContainmentView,
        PlanItemView,
        QueryResultView,
        WorkerView,
    )
    from clampdown.views.actions import ActionView
    from clampdown.views.people import PeopleSearchView
    from clampdown.views.playbooks import PlaybookRunView

API = "/api/v1"
PAGE = 1000  # the API's largest page of actions (limits.MAX_PAGE)
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
POLL_SECONDS = 0.1
UNREACHABLE = "server_unreachable"

_ERRORS: dict[int, type[ClampdownError]] = {
    400: InvalidInput,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: InvalidInput,
    503: StoreUnavailable,
}


@dataclass(frozen=True)
class ServerProfile:
    """Where the server is and how to reach it: its base URL, the API token, a CA file to trust."""

    url: str
    token: str | None = None
    ca_file: Path | None = None

    @classmethod
    def from_options(cls) -> ServerProfile | None:
        """The profile given by --server/--token/--ca-file (or their variables); None when no server."""
        url = server()
        if url is None:
            return None
        url = url.rstrip("/")
        if not url.startswith(("https://", "http://")) or len(url.split("://", 1)[1]) == 0:
            raise InvalidInput(f"--server: '{url}' is not a URL like https://clampdown.example:8080")
        ca = state.ca_file or (Path(v) if (v := os.environ.get("CLAMPDOWN_CA_FILE")) else None)
        if ca is None and (saved := profile()) is not None:
            ca = saved.ca_file  # the CA file given at `clampdown login`
        return cls(url=url, token=token(), ca_file=ca)


def _verify(profile: ServerProfile) -> ssl.SSLContext | bool:
    """TLS is verified always: against the system's roots, or the CA file given."""
    if profile.ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(profile.ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise InvalidInput(f"--ca-file: cannot read {profile.ca_file}: {exc}") from None


def _message(response: httpx.Response) -> tuple[str, str | None]:
    """The server's own message and code from its one error shape, else the status line."""
    try:
        error = response.json().get("error") or {}
        return str(error["message"]), error.get("code")
    except (ValueError, KeyError, AttributeError, TypeError):
        return f"the server answered {response.status_code} {response.reason_phrase}", None


def error_for(response: httpx.Response) -> ClampdownError:
    """The error local mode raises for the same failure, from an API answer that is not 2xx."""
    message, code = _message(response)
    status = response.status_code
    if status == 401:
        return ClampdownError(f"the server refused the token: {message}", code="unauthenticated")
    if status == 429:
        retry = response.headers.get("Retry-After", "")
        return TooManyAttempts(message, int(retry) if retry.isdigit() else 60)
    return _ERRORS.get(status, ClampdownError)(message, code=code)


@contextmanager
def _translated(url: str) -> Iterator[None]:
    """httpx's exceptions become one clear ClampdownError (exit 5): nothing above sees httpx."""
    try:
        yield
    except httpx.ConnectError as exc:
        cause = exc.__context__ or exc.__cause__
        if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
            raise StoreUnavailable(
                f"cannot trust the server {url}: its TLS certificate does not verify ({exc}); "
                "give its CA with --ca-file",
                code=UNREACHABLE,
            ) from None
        raise StoreUnavailable(f"cannot reach the server {url}: {exc}", code=UNREACHABLE) from None
    except httpx.TimeoutException:
        raise StoreUnavailable(f"the server {url} did not answer in time", code=UNREACHABLE) from None
    except httpx.HTTPError as exc:
        raise StoreUnavailable(
            f"talking to the server {url} failed: {type(exc).__name__}: {exc}", code=UNREACHABLE
        ) from None


def action_view(data: Mapping[str, Any]) -> ActionView:
    """An action as the API shows it, read back into its view: the `error` object the view
    computes is read into the fields it is computed from, so the view dumps the same JSON again."""
    from clampdown.views.actions import ActionView

    error = data.get("error") or {}
    return ActionView.model_validate(
        {**data, "error_code": error.get("code"), "error_message": error.get("message")}
    )


class RemoteApi:
    """The API calls the CLI makes, each answering what the matching service call answers."""

    def __init__(self, profile: ServerProfile, client: httpx.AsyncClient) -> None:
        self.profile = profile
        self._client = client

    async def _call(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", None) or {})
        if auth:
            if not self.profile.token:
                raise no_credentials()
            headers["Authorization"] = f"Bearer {self.profile.token}"
        with _translated(self.profile.url):
            response = await self._client.request(method, API + path, headers=headers, **kwargs)
        if not response.is_success:
            raise error_for(response)
        if response.status_code == 204:
            return None  # done, nothing to say (DELETE /session, DELETE /me/token)
        try:
            return response.json()
        except ValueError:
            raise StoreUnavailable(
                f"the server {self.profile.url} answered {path} with something that is not JSON: "
                "is it a Clampdown server?",
                code=UNREACHABLE,
            ) from None

    async def me(self) -> dict[str, Any]:
        """GET /me: who the token belongs to, their roles and directories."""
        found: dict[str, Any] = await self._call("GET", "/me")
        return found

    async def revoke_own_token(self) -> None:
        """DELETE /me/token: the token this client holds ends now (`clampdown logout`)."""
        await self._call("DELETE", "/me/token")

    async def own_token(self, username: str, password: str, name: str, days: int) -> tuple[str, str | None]:
        """Sign in with the password (the client keeps the session cookie), have the server make a
        token of the person's own (POST /me/tokens with the session's CSRF token), sign out; the
        token and when it ends."""
        signed = await self._call(
            "POST", "/session", auth=False, json={"username": username, "password": password}
        )
        csrf = {"X-CSRF-Token": signed.get("csrf_token") or ""}
        try:
            issued = await self._call("POST", "/me/tokens", auth=False, headers=csrf,
                                      json={"name": name, "expires_in_days": days})  # fmt: skip
        finally:
            with contextlib.suppress(ClampdownError):  # the session is not needed again; a token is
                await self._call("DELETE", "/session", auth=False, headers=csrf)
        return str(issued["token"]), issued.get("expires_at")

    async def catalog(self) -> list[dict[str, Any]]:
        """GET /catalog: the action types, as `ActionDefinition.to_json` shows them."""
        found: list[dict[str, Any]] = await self._call("GET", "/catalog", auth=False)
        return found

    async def list_actions(self, params: Sequence[tuple[str, str]], limit: int) -> list[ActionView]:
        """GET /actions, newest first, following the cursor until `limit` actions or the end."""
        found: list[ActionView] = []
        cursor: str | None = None
        while len(found) < limit:
            page_params = [*params, ("limit", str(min(PAGE, limit - len(found))))]
            if cursor:
                page_params.append(("cursor", cursor))
            page = await self._call("GET", "/actions", params=page_params)
            found += [action_view(item) for item in page["items"]]
            cursor = page.get("next_cursor")
            if not cursor or not page["items"]:
                break
        return found[:limit]

    async def get_action(self, action_id: int) -> ActionView:
        """GET /actions/{id}."""
        return action_view(await self._call("GET", f"/actions/{action_id}"))

    async def request_action(
        self,
        action_type: str,
        target: str,
        reason: str | None,
        *,
        request_approval: bool = False,
        until: datetime | None = None,
        instance: str | None = None,
        idempotency_key: str | None = None,
        incident: str | None = None,
    ) -> tuple[ActionView, str | None]:
        """POST /actions: the action queued, and the one-time key of the secret it will make, if any."""
        body = {
            "type": action_type,
            "target": target,
            "reason": reason or "",
            "request_approval": request_approval,
            "until": until.isoformat() if until else None,
            "instance": instance,
            "incident": incident,
        }
        answer = await self._call("POST", "/actions", json=body, headers=_idempotency(idempotency_key))
        key = answer.pop("secret_key", None)
        return action_view(answer), key

    async def wait(self, action_id: int, timeout: float) -> ActionView:
        """The action once it ends, or as it is when `timeout` seconds have passed."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            action = await self.get_action(action_id)
            if ActionStatus(action.status).is_final or asyncio.get_running_loop().time() >= deadline:
                return action
            await asyncio.sleep(POLL_SECONDS)

    async def wait_many(self, action_ids: Sequence[int], batch_id: str, timeout: float) -> list[ActionView]:
        """The actions of one batch once they all end (or as they are at `timeout`): one listing
        of the batch per round, not one request per action."""
        deadline = asyncio.get_running_loop().time() + timeout
        wanted = set(action_ids)
        while True:
            listed = await self.list_actions([("batch", batch_id)], max(len(wanted), 1) * 4)
            found = {a.id: a for a in listed if a.id in wanted}
            missing = wanted - found.keys()
            found.update({i: await self.get_action(i) for i in missing})  # beyond the batch: one by one
            done = all(ActionStatus(a.status).is_final for a in found.values())
            if done or asyncio.get_running_loop().time() >= deadline:
                return [found[i] for i in action_ids]
            await asyncio.sleep(POLL_SECONDS)

    async def run_playbook(
        self,
        name: str,
        target: str,
        reason: str | None,
        *,
        until: datetime | None = None,
        request_approval: bool = False,
        dry_run: bool = False,
        incident: str | None = None,
    ) -> PlaybookRunView:
        """POST /playbooks/{name}/run: contain (or release) a person, or only the plan."""
        from clampdown.views.playbooks import PlaybookRunView

        body = {
            "target": target,
            "reason": reason or "",
            "until": until.isoformat() if until else None,
            "request_approval": request_approval,
            "dry_run": dry_run,
            "incident": incident,
        }
        answer = await self._call("POST", f"/playbooks/{name}/run", json=body)
        actions = [action_view(item) for item in answer.get("actions", [])]
        return PlaybookRunView.model_validate({**answer, "actions": actions})

    async def open_secret(self, action_id: int, secret_key: str) -> str:
        """POST /actions/{id}/secret: the secret the action made for the caller, once."""
        answer = await self._call("POST", f"/actions/{action_id}/secret", json={"secret_key": secret_key})
        return str(answer["secret"])

    async def request_bulk(
        self, action_type: str, targets: Sequence[str], reason: str | None, *, instance: str | None,
        incident: str | None, idempotency_key: str | None,
    ) -> BulkView:  # fmt: skip
        """POST /actions/bulk: one action per distinct target under one batch id."""
        from clampdown.views import BulkView

        body = {"type": action_type, "targets": list(targets), "reason": reason or "", "instance": instance,
                "incident": incident}  # fmt: skip
        answer = await self._call("POST", "/actions/bulk", json=body, headers=_idempotency(idempotency_key))
        actions = [action_view(item) for item in answer.get("actions", [])]
        return BulkView.model_validate({**answer, "actions": actions})

    async def plan(
        self, action_type: str, targets: Sequence[str], reason: str | None, instance: str | None
    ) -> list[PlanItemView]:
        """POST /actions/plan: what each target would go through; nothing changes."""
        from clampdown.views import PlanItemView

        body = {"type": action_type, "targets": list(targets), "reason": reason or "", "instance": instance}
        return [
            PlanItemView.model_validate(item) for item in await self._call("POST", "/actions/plan", json=body)
        ]

    async def undo(self, action_id: int, reason: str | None, request_approval: bool) -> ActionView:
        """POST /actions/{id}/undo: the inverse queued now."""
        body = {"reason": reason, "request_approval": request_approval}
        return action_view(await self._call("POST", f"/actions/{action_id}/undo", json=body))

    async def cancel(self, action_id: int) -> ActionView:
        """POST /actions/{id}/cancel."""
        return action_view(await self._call("POST", f"/actions/{action_id}/cancel"))

    async def pending(self) -> list[ActionView]:
        """GET /approvals: requests awaiting a second person."""
        return [action_view(item) for item in await self._call("GET", "/approvals")]

    async def decide(
        self, approve: bool, action_ids: Sequence[int], batch_id: str | None, note: str | None
    ) -> list[ActionView]:
        """POST /approvals: approve or reject waiting requests."""
        body = {"approve": approve, "action_ids": list(action_ids), "batch_id": batch_id, "note": note}
        return [action_view(item) for item in await self._call("POST", "/approvals", json=body)]

    async def containments(
        self, states: Sequence[str], person: str | None, limit: int
    ) -> list[ContainmentView]:
        """GET /containments, newest first."""
        params = [("state", s) for s in states] + [("limit", str(limit))]
        if person:
            params.append(("person", person))
        return [containment_view(item) for item in await self._call("GET", "/containments", params=params)]

    async def containment(self, containment_id: int) -> ContainmentView:
        """GET /containments/{id}: its steps and, while open, what may still work."""
        return containment_view(await self._call("GET", f"/containments/{containment_id}"))

    async def workers(self) -> list[WorkerView]:
        """GET /workers."""
        from clampdown.views import WorkerView

        return [WorkerView.model_validate(item) for item in await self._call("GET", "/workers")]

    async def search_people(self, text: str, page: int, page_size: int, wait: float) -> PeopleSearchView:
        """GET /users/search: people from a fragment, across the directories the caller sees."""
        from clampdown.views.people import PeopleSearchView

        params = {"query": text, "page": page, "page_size": page_size, "wait": wait}
        return PeopleSearchView.model_validate(await self._call("GET", "/users/search", params=params))

    async def hunt(self, query: str, language: str | None, max_rows: int | None) -> QueryResultView:
        """POST /hunting/query: one read-only query (its errors name the line and column)."""
        from clampdown.views import QueryResultView

        body = {"query": query, "language": language, "max_rows": max_rows}
        data = await self._call("POST", "/hunting/query", json=body)
        return QueryResultView.model_validate({**data, "elapsed_seconds": data["elapsed_ms"] / 1000})

    async def act_on_results(
        self, query: str, language: str | None, column: str, action: str, reason: str | None,
        idempotency_key: str | None,
    ) -> ActOnResultsView:  # fmt: skip
        """POST /hunting/act: the query run and the action queued on each distinct account found."""
        from clampdown.views import ActOnResultsView

        body = {
            "query": query,
            "language": language,
            "column": column,
            "action": action,
            "reason": reason or "",
        }
        data = await self._call("POST", "/hunting/act", json=body, headers=_idempotency(idempotency_key))
        bulk = {"batch_id": data["batch_id"], "refused": data.get("refused", []),
                "actions": [action_view(item) for item in data.get("actions", [])]}  # fmt: skip
        return ActOnResultsView.model_validate({"bulk": bulk, "targets": data["targets"]})


def _idempotency(key: str | None) -> dict[str, str] | None:
    """The Idempotency-Key header, when the caller gave a key: the same key never queues twice."""
    return {"Idempotency-Key": key} if key else None


def containment_view(data: Mapping[str, Any]) -> ContainmentView:
    """A containment as the API shows it, read back into its view (its state is computed)."""
    from clampdown.views import ContainmentView

    actions = [action_view(item) for item in data.get("actions", [])]
    return ContainmentView.model_validate({**data, "effective_state": data["state"], "actions": actions})


@asynccontextmanager
async def connect(profile: ServerProfile) -> AsyncIterator[RemoteApi]:
    """A client of the server for the length of one command."""
    async with httpx.AsyncClient(
        base_url=profile.url, verify=_verify(profile), timeout=TIMEOUT, follow_redirects=False
    ) as client:
        yield RemoteApi(profile, client)
