"""The Graph resources eviction acts on, for the emulated tenant: a user's directory roles
(`memberOf` cast to directoryRole), registered devices (cast to device) and `PATCH /devices/{id}`,
and authentication methods (list all, delete one of a kind), with Graph's permission checks."""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from clampdown_lab.graph_emulator import odata
from clampdown_lab.graph_emulator.graph_api import GraphFault, GraphResponse
from clampdown_lab.graph_emulator.tenant import (
    DIRECTORY_ROLES,
    METHOD_KINDS,
    PASSWORD_METHOD_ID,
    DeviceRecord,
    object_id,
)

if TYPE_CHECKING:
    from clampdown_lab.graph_emulator.graph_api import GraphApi, GraphRequest

READ_DEVICES = frozenset(
    {"Device.Read.All", "Device.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
WRITE_DEVICES = frozenset({"Device.ReadWrite.All", "Directory.ReadWrite.All"})
READ_METHODS = frozenset({"UserAuthenticationMethod.Read.All", "UserAuthenticationMethod.ReadWrite.All"})
WRITE_METHODS = frozenset({"UserAuthenticationMethod.ReadWrite.All"})
DEVICE_FIELDS = frozenset(DeviceRecord.__dataclass_fields__) - {"registeredUsers"}
_KINDS = "|".join(METHOD_KINDS)


def routes() -> list[tuple[str, re.Pattern[str], tuple[str, ...], Any]]:
    """(method, path pattern, throttle scopes, handler) for GraphApi's table."""
    return [
        (
            "GET",
            re.compile(r"/users/([^/]+)/memberOf/microsoft\.graph\.directoryRole"),
            ("directory",),
            member_of_roles,
        ),
        (
            "GET",
            re.compile(r"/users/([^/]+)/registeredDevices/microsoft\.graph\.device"),
            ("directory",),
            registered_devices,
        ),
        ("GET", re.compile(r"/devices/([^/]+)"), ("directory",), get_device),
        ("PATCH", re.compile(r"/devices/([^/]+)"), ("directory", "directory_writes"), patch_device),
        ("GET", re.compile(r"/users/([^/]+)/authentication/methods"), ("directory",), list_methods),
        (
            "DELETE",
            re.compile(rf"/users/([^/]+)/authentication/({_KINDS})/([^/]+)"),
            ("directory", "directory_writes"),
            delete_method,
        ),
    ]


def _json(status: int, body: Any) -> GraphResponse:
    return GraphResponse(status, body, {"Content-Type": "application/json"})


def _fault(status: int, code: str, message: str) -> GraphFault:
    return GraphFault(status, code, message)


def member_of_roles(api: GraphApi, request: GraphRequest, match: re.Match[str]) -> GraphResponse:
    """The directory roles the user is a direct member of."""
    api._require(
        request,
        frozenset({"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}),
    )
    user = api._user(match.group(1))
    roles = [
        {
            "@odata.type": "#microsoft.graph.directoryRole",
            "id": object_id("role", name),
            "displayName": name,
            "roleTemplateId": DIRECTORY_ROLES[name],
            "description": None,
            "deletedDateTime": None,
        }
        for name in api.tenant.role_members.get(user.id, [])
    ]
    return api._page(request, _selected(roles, request), "directoryRoles", 100, 999)


def _device_json(device: DeviceRecord) -> dict[str, Any]:
    data = {k: v for k, v in asdict(device).items() if k in DEVICE_FIELDS}
    return {"@odata.type": "#microsoft.graph.device"} | data


def registered_devices(api: GraphApi, request: GraphRequest, match: re.Match[str]) -> GraphResponse:
    """The devices registered to the user. (Graph's page lists no application permission for this
    relationship; the emulator accepts the device-reading ones, as tenants answer them.)"""
    api._require(request, READ_DEVICES)
    user = api._user(match.group(1))
    devices = [_device_json(d) for d in api.tenant.devices.values() if user.id in d.registeredUsers]
    return api._page(request, _selected(devices, request), "devices", 100, 999)


def _selected(items: list[dict[str, Any]], request: GraphRequest) -> list[dict[str, Any]]:
    """Only the `$select`ed properties (and the id and type), as Graph answers."""
    select = odata.parse_select(request.query.get("$select"))
    if not select:
        return items
    for name in select:
        if items and name not in items[0]:
            raise _fault(400, "Request_BadRequest", f"Could not find a property named '{name}'.")
    keep = {*select, "id", "@odata.type"}
    return [{k: v for k, v in item.items() if k in keep} for item in items]


def _device(api: GraphApi, key: str) -> DeviceRecord:
    device = api.tenant.devices.get(key.lower())
    if device is None:
        raise _fault(
            404,
            "Request_ResourceNotFound",
            f"Resource '{key}' does not exist or one of its queried "
            "reference-property objects are not present.",
        )
    return device


def get_device(api: GraphApi, request: GraphRequest, match: re.Match[str]) -> GraphResponse:
    api._require(request, READ_DEVICES)
    device = _device(api, match.group(1))
    return _json(
        200, {"@odata.context": f"{request.base_url}/$metadata#devices/$entity"} | _device_json(device)
    )


def patch_device(api: GraphApi, request: GraphRequest, match: re.Match[str]) -> GraphResponse:
    """accountEnabled only. An app may change it on Windows devices alone: for any other operating
    system Graph lets an application update only extensionAttributes (device-update docs)."""
    body = request.body
    if not isinstance(body, dict) or not body:
        raise _fault(400, "Request_BadRequest", "Empty Payload. JSON content expected.")
    for name, value in body.items():
        if name != "accountEnabled":
            code = "read-only and cannot be set" if name in DEVICE_FIELDS else "not supported by the emulator"
            raise _fault(400, "Request_BadRequest", f"Property '{name}' is {code}.")
        if not isinstance(value, bool):
            raise _fault(
                400,
                "Request_BadRequest",
                f"Cannot convert the literal '{value}' to the expected type 'Edm.Boolean'.",
            )
    api._require(request, WRITE_DEVICES)
    device = _device(api, match.group(1))
    if not device.operatingSystem.lower().startswith("windows"):
        raise _fault(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
    device.accountEnabled = bool(body["accountEnabled"])
    api.dirty = True
    return GraphResponse(204)


def list_methods(api: GraphApi, request: GraphRequest, match: re.Match[str]) -> GraphResponse:
    """Every method of the user: the password first, then the registered ones."""
    api._require(request, READ_METHODS, "accessDenied")
    user = api._user(match.group(1))
    items: list[dict[str, Any]] = [
        {
            "@odata.type": "#microsoft.graph.passwordAuthenticationMethod",
            "id": PASSWORD_METHOD_ID,
            "password": None,
            "createdDateTime": user.createdDateTime,
        }
    ]
    for method in api.tenant.auth_methods.get(user.id, []):
        items.append(
            {
                "@odata.type": METHOD_KINDS[method.kind],
                "id": method.id,
                "createdDateTime": method.createdDateTime,
            }
            | method.properties
        )
    return api._page(request, items, f"users('{user.id}')/authentication/methods", 100, 999)


def delete_method(api: GraphApi, request: GraphRequest, match: re.Match[str]) -> GraphResponse:
    api._require(request, WRITE_METHODS, "accessDenied")
    user = api._user(match.group(1))
    kind, method_id = match.group(2), match.group(3)
    methods = api.tenant.auth_methods.get(user.id, [])
    found = next((m for m in methods if m.id == method_id.lower() and m.kind == kind), None)
    if found is None:
        raise _fault(404, "itemNotFound", f"The {kind} method '{method_id}' was not found for this user.")
    methods.remove(found)
    api.dirty = True
    return GraphResponse(204)
