"""Validation of recorded HTTP exchanges against Okta's official OpenAPI documents (openapi-core)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.templating.paths.finders import APICallPathFinder
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.validation.request.validators import V30RequestBodyValidator

from tests.contracts import contracts_dir

CONTRACTS = contracts_dir() / "okta"
FULL_MANAGEMENT = CONTRACTS / "full" / "management-minimal.yaml"
OAUTH = CONTRACTS / "full" / "oauth-minimal.yaml"
TRIM_TOOL = contracts_dir() / "tools" / "trim_openapi.py"
# The documents' server is https://{yourOktaDomain}; the emulator's loopback URL stands for it.
SPEC_HOST = "https://subdomain.okta.com"
_LIFECYCLE = "/api/v1/users/{id}/lifecycle/"
# The operations of shared/contracts/okta/okta-management-subset.yaml, exactly as its README
# trimmed them from Okta's document (the same tool and list rebuild it byte for byte) ...
SUBSET_OPERATIONS = (
    "/api/v1/users:get,post",
    "/api/v1/users/{id}:get,post,put,delete",
    *(
        f"{_LIFECYCLE}{op}:post"
        for op in (
            "activate", "deactivate", "reactivate", "suspend", "unsuspend", "unlock",
            "expire_password", "reset_password", "reset_factors",
        )
    ),
    "/api/v1/users/{userId}/sessions:delete",
    "/api/v1/logs:get",
)  # fmt: skip
# ... and those the eviction actions added (shared/ is read-only, and its data files are never
# committed here: the extended subset is trimmed from the full document into a cache).
EVICTION_OPERATIONS = (
    f"{_LIFECYCLE}expire_password_with_temp_password:post",
    "/api/v1/users/{userId}/factors:get",
    "/api/v1/users/{userId}/grants:get,delete",
    "/api/v1/users/{userId}/risk:get,put",
)
# ... and those residual access reads: the custom authorization servers' access-token lifetimes.
RESIDUAL_OPERATIONS = (
    "/api/v1/authorizationServers:get",
    "/api/v1/authorizationServers/{authServerId}/policies:get",
    "/api/v1/authorizationServers/{authServerId}/policies/{policyId}/rules:get",
)

# ... and the Shared Signals Framework: Okta as transmitter (SSFTransmitter) and as receiver
# (SSFReceiver, SSFSecurityEventToken).
_PROVIDER = "/api/v1/security-events-providers/{securityEventProviderId}"
SSF_OPERATIONS = (
    "/.well-known/ssf-configuration:get",
    "/api/v1/ssf/stream:get,post,put,patch,delete",
    "/api/v1/ssf/stream/status:get",
    "/api/v1/ssf/stream/verification:post",
    "/api/v1/security-events-providers:get,post",
    f"{_PROVIDER}:get,put,delete",
    f"{_PROVIDER}/lifecycle/activate:post",
    f"{_PROVIDER}/lifecycle/deactivate:post",
    "/security/api/v1/security-events:post",
)


@functools.cache
def management_document() -> Path:
    """Okta's Management document trimmed to the operations Clampdown and the emulator use, built
    once per version of the document and operation list (in the temp dir, replaced atomically)."""
    operations = (*SUBSET_OPERATIONS, *EVICTION_OPERATIONS, *RESIDUAL_OPERATIONS, *SSF_OPERATIONS)
    key = hashlib.sha256(
        FULL_MANAGEMENT.read_bytes() + TRIM_TOOL.read_bytes() + "\n".join(operations).encode()
    )
    target = (
        Path(tempfile.gettempdir()) / "clampdown-contracts" / f"okta-management-{key.hexdigest()[:16]}.yaml"
    )
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run(
            [sys.executable, str(TRIM_TOOL), str(FULL_MANAGEMENT), str(partial), *operations],
            check=True,
            capture_output=True,
        )
        partial.replace(target)
    return target


@functools.cache
def management_api() -> OpenAPI:
    # A SET is posted as `application/secevent+jwt`, a compact JWT: its schema is a string.
    media = {"application/secevent+jwt": lambda value: value.decode("ascii")}
    return OpenAPI.from_file_path(
        str(management_document()), config=Config(extra_media_type_deserializers=media)
    )


@functools.cache
def _schema_validators() -> dict[str, Any]:
    from openapi_schema_validator import OAS30Validator

    components = _raw(FULL_MANAGEMENT)["components"]
    return {
        name: OAS30Validator({"$ref": f"#/components/schemas/{name}", "components": components})
        for name in components["schemas"]
    }


def validate_schema(name: str, instance: Any) -> None:
    """Raise AssertionError if `instance` breaks the schema `name` of Okta's Management document
    (for what travels outside an operation's body: a SET's header and claims)."""
    errors = sorted(_schema_validators()[name].iter_errors(instance), key=str)
    assert not errors, f"{name} breaks the contract: {errors[0].message} at {list(errors[0].absolute_path)}"


@functools.cache
def oauth_api() -> OpenAPI:
    # openapi-spec-validator recurses without end on this document's discriminators; skip it.
    return OpenAPI.from_file_path(str(OAUTH), config=Config(spec_validator_cls=None))


@functools.cache
def _raw(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Exchange:
    """One request and its answer, as seen on the wire."""

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int
    response_headers: dict[str, str]
    response_body: bytes

    @classmethod
    async def capture(cls, response: httpx.Response) -> Exchange:
        await response.aread()
        request = response.request
        return cls(
            request.method,
            str(request.url),
            dict(request.headers),
            request.content,
            response.status_code,
            dict(response.headers),
            response.content,
        )


def _declared_content(document: Path, path_template: str, method: str, status: int) -> dict[str, Any] | None:
    operation = _raw(document)["paths"][path_template][method.lower()]
    response = operation["responses"].get(str(status))
    if response is None:
        return None
    if "$ref" in response:
        response = _raw(document)["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
    return response.get("content")  # type: ignore[no-any-return]


def validate(exchange: Exchange) -> None:
    """Raise AssertionError naming the exchange if its request or its answer breaks the contract."""
    parts = urlsplit(exchange.url)
    is_token = parts.path == "/oauth2/v1/token"
    is_oauth = parts.path.startswith("/oauth2/")
    api = oauth_api() if is_oauth else management_api()
    content_type = exchange.request_headers.get("content-type")
    request = MockRequest(
        SPEC_HOST,
        exchange.method.lower(),
        parts.path,
        args=dict(parse_qsl(parts.query)),
        headers=exchange.request_headers,
        data=exchange.request_body or None,
        content_type=content_type if exchange.request_body else None,
    )
    where = f"{exchange.method} {parts.path}?{parts.query} -> {exchange.status}"
    try:
        if is_token:
            # The token endpoint's `postBody` client authentication is unknown to openapi-core:
            # check the body against the schema, and private_key_jwt by hand.
            V30RequestBodyValidator(api.spec).validate(request)
            form = dict(parse_qsl(exchange.request_body.decode()))
            assert (
                form.get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            )
            assert form.get("client_assertion") and form.get("grant_type") == "client_credentials"
        else:
            with warnings.catch_warnings():  # openapi-core warns of the oauth2 schemes it cannot check
                warnings.filterwarnings("ignore", "Unsupported scheme type")
                api.validate_request(request)
    except Exception as exc:
        raise AssertionError(
            f"request breaks the contract: {where}: {getattr(exc, '__cause__', None) or exc}"
        ) from exc
    document = OAUTH if is_oauth else management_document()
    finder = APICallPathFinder(api.spec)
    template = finder.find(exchange.method.lower(), f"{SPEC_HOST}{parts.path}").path_result.pattern
    declared_content = _declared_content(document, template, exchange.method, exchange.status)
    bodiless = declared_content == {}
    if exchange.status >= 400 and not is_token and not bodiless and _okta_error_schema(declared_content):
        _check_error_body(exchange, where)
    if _oauth_only(document, template, exchange.method):
        # openapi-core does not check oauth2 schemes: these operations take no API token.
        scheme = exchange.request_headers.get("authorization", "").partition(" ")[0]
        assert scheme == "Bearer" or exchange.status in (401, 403), f"not an OAuth 2.0 request: {where}"
    if exchange.status not in _declared_statuses(document, template, exchange.method):
        # Okta's document lists only some errors per operation; the others come from Okta's error
        # catalogue and core API page (S2, S4), and _check_error_body checked the code and status.
        code = json.loads(exchange.response_body).get("errorCode") if not is_token else None
        assert code in _UNDECLARED_ERRORS.get((template, exchange.status), set()) | _ANYWHERE.get(
            exchange.status, set()
        ), f"status not documented: {where}"
        return
    declared = _declared_content(document, template, exchange.method, exchange.status)
    if declared == {}:
        # `content: {}`: the operation answers with no body (openapi-core cannot express this).
        assert exchange.response_body == b"", f"body where none is documented: {where}"
        return
    response = MockResponse(
        exchange.response_body,
        status_code=exchange.status,
        content_type=exchange.response_headers.get("content-type", "").split(";")[0] or None,
        headers=exchange.response_headers,
    )
    try:
        api.validate_response(request, response)
    except Exception as exc:
        cause = getattr(exc, "__cause__", None) or exc
        raise AssertionError(f"answer breaks the contract: {where}: {str(cause)[:600]}") from exc


# Errors Okta documents outside the OpenAPI document: a bad token anywhere, and the paging and
# search errors of listUsers (core-okta-api.md, CONTRACT.md).
# A missing or malformed Authorization header is 403 E0000005 (error catalogue, S2).
_ANYWHERE = {401: {"E0000011"}, 403: {"E0000005"}}
_UNDECLARED_ERRORS = {("/api/v1/users", 400): {"E0000029", "E0000031", "E0000033"}}


@functools.cache
def _error_catalogue() -> dict[str, int]:
    data = json.loads((CONTRACTS / "docs" / "error-codes.json").read_text(encoding="utf-8"))
    return {e["errorCode"]: int(e["statusCode"]) for e in data["errors"]}


def _check_error_body(exchange: Exchange, where: str) -> None:
    """Okta's Error object, with a code Okta's catalogue gives for this HTTP status."""
    body = json.loads(exchange.response_body)
    assert set(body) == {"errorCode", "errorSummary", "errorLink", "errorId", "errorCauses"}, where
    assert all(isinstance(body[k], str) for k in ("errorCode", "errorSummary", "errorLink", "errorId")), where
    assert all(set(c) == {"errorSummary"} for c in body["errorCauses"]), where
    assert _error_catalogue().get(body["errorCode"]) == exchange.status, (
        f"{body['errorCode']} is not HTTP {where}"
    )


def _okta_error_schema(content: dict[str, Any] | None) -> bool:
    """Whether an error answer is Okta's Error object (undeclared ones are; the SET endpoint's
    SecurityEventTokenError is not)."""
    if not content or "application/json" not in content:
        return True
    return content["application/json"].get("schema", {}).get("$ref") == "#/components/schemas/Error"


def _oauth_only(document: Path, template: str, method: str) -> bool:
    security = _raw(document)["paths"][template][method.lower()].get("security")
    return bool(security) and all(set(requirement) == {"oauth2"} for requirement in security)


def _declared_statuses(document: Path, template: str, method: str) -> set[int]:
    responses = _raw(document)["paths"][template][method.lower()]["responses"]
    return {int(code) for code in responses if code.isdigit()}
