"""The Microsoft identity platform v2.0 endpoints of the emulated tenant: instance and tenant
discovery (what MSAL asks first) and the client-credentials token endpoint, accepting a client
secret or a certificate-signed client assertion (RS256 + x5t, or PS256 + x5t#S256)."""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from clampdown_lab.graph_emulator.tenant import AppRecord, Tenant, iso

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_LIFETIME = 3599  # seconds, when the tenant has no organization default lifetime policy


class TokenError(Exception):
    """An OAuth error as the v2.0 endpoint returns it (status, error, AADSTS code and text)."""

    def __init__(self, status: int, error: str, aadsts: int, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.aadsts, self.description = status, error, aadsts, description

    def body(self, tenant: Tenant) -> dict[str, Any]:
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        return {
            "error": self.error,
            "error_description": f"AADSTS{self.aadsts}: {self.description} Trace ID: {trace} "
            f"Correlation ID: {correlation} Timestamp: {iso(tenant.clock.now())}",
            "error_codes": [self.aadsts],
            "timestamp": iso(tenant.clock.now()),
            "trace_id": trace,
            "correlation_id": correlation,
        }


@dataclass(frozen=True)
class Caller:
    """Who a valid access token says is calling."""

    app_id: str
    roles: frozenset[str]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenService:
    """Issues and checks the tenant's access tokens with one RSA signing key."""

    def __init__(self, tenant: Tenant, signing_key: rsa.RSAPrivateKey | None = None) -> None:
        self.tenant = tenant
        self.key = signing_key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_key = self.key.public_key()
        self._verified: dict[str, dict[str, Any]] = {}  # token -> claims; RSA checks are not free

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    # -- discovery ---------------------------------------------------------------------------
    def openid_configuration(self, base_url: str, tenant: str) -> dict[str, Any]:
        """The v2.0 OpenID configuration document MSAL reads before asking for a token."""
        tenant_id = self._tenant_or_raise(tenant)
        root = f"{base_url}/{tenant_id}"
        return {
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base_url}/{tenant_id}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{root}/v2.0",
            "request_uri_parameter_supported": False,
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }

    def instance_discovery(self, base_url: str, authorization_endpoint: str) -> dict[str, Any]:
        """Answer MSAL's authority validation for this host, as login.microsoftonline.com does."""
        # MSAL sends the authorize URL without the port: take the tenant from the path alone.
        tenant = urlsplit(authorization_endpoint).path.strip("/").split("/", 1)[0]
        host = base_url.split("://", 1)[1]
        return {
            "tenant_discovery_endpoint": f"{base_url}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        }

    def jwks(self) -> dict[str, Any]:
        numbers = self.public_key.public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": "emulator",
                    "n": _b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
                    "e": _b64url(numbers.e.to_bytes(3, "big")),
                }
            ]
        }

    def _tenant_or_raise(self, tenant: str) -> str:
        if tenant.lower() not in (self.tenant.tenant_id, self.tenant.domain.lower()):
            raise TokenError(
                400,
                "invalid_tenant",
                90002,
                f"Tenant '{tenant}' not found. Check to make "
                "sure you have the correct tenant ID and are signing into the correct cloud.",
            )
        return self.tenant.tenant_id

    # -- token endpoint ----------------------------------------------------------------------
    def issue(self, tenant: str, form: dict[str, str], token_url: str) -> dict[str, Any]:
        """Handle a client-credentials token request; TokenError as Entra ID would answer."""
        self._tenant_or_raise(tenant)
        if form.get("grant_type") != "client_credentials":
            raise TokenError(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        client_id = form.get("client_id", "")
        app = self.tenant.apps.get(client_id)
        if app is None:
            raise TokenError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant.domain}'.",
            )
        scope = form.get("scope", "")
        if scope.split() != [f"{GRAPH_RESOURCE}/.default"]:
            raise TokenError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier.",
            )
        if "client_secret" in form:
            if form["client_secret"] not in app.secrets:
                raise TokenError(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request "
                    f"is the client secret value, not the client secret ID, for a secret added "
                    f"to app '{client_id}'.",
                )
        elif form.get("client_assertion_type") == ASSERTION_TYPE:
            self._check_assertion(app, form.get("client_assertion", ""), token_url)
        else:
            raise TokenError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' "
                "or 'client_secret'.",
            )
        lifetime = self.lifetime_seconds()
        return {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": self._access_token(app, lifetime),
        }

    def lifetime_seconds(self) -> int:
        """How long an access token issued now lives: the organization default token lifetime
        policy's AccessTokenLifetime, else TOKEN_LIFETIME."""
        policy = self.tenant.access_token_lifetime()
        return int(policy.total_seconds()) if policy is not None else TOKEN_LIFETIME

    def _check_assertion(self, app: AppRecord, assertion: str, token_url: str) -> None:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise TokenError(401, "invalid_client", 50027, "JWT token is invalid or malformed.") from None
        cert = self._matching_certificate(app, header)
        if cert is None:
            raise TokenError(
                401,
                "invalid_client",
                700027,
                "The certificate with identifier used to sign the client assertion is not "
                f"registered on application {app.client_id}.",
            )
        now = self.tenant.clock.now().timestamp()
        try:
            claims = jwt.decode(
                assertion,
                cert.public_key(),  # type: ignore[arg-type]
                algorithms=["RS256", "PS256"],
                audience=token_url,
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.InvalidAudienceError:
            raise TokenError(
                401,
                "invalid_client",
                700212,
                f"No matching federated identity record found for presented assertion "
                f"audience '{token_url}'.",
            ) from None
        except jwt.PyJWTError:
            raise TokenError(
                401, "invalid_client", 700027, "Client assertion failed signature validation."
            ) from None
        if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            raise TokenError(
                401, "invalid_client", 700023, "Client assertion audience claim does not match Realm issuer."
            )
        if not (float(claims.get("nbf", 0)) - 300 <= now <= float(claims.get("exp", 0)) + 300):
            raise TokenError(
                401, "invalid_client", 700024, "Client assertion is not within its valid time range."
            )

    @staticmethod
    def _matching_certificate(app: AppRecord, header: dict[str, Any]) -> x509.Certificate | None:
        for pem in app.certificates:
            cert = x509.load_pem_x509_certificate(pem.encode())
            der = cert.public_bytes(serialization.Encoding.DER)
            if str(header.get("x5t#S256", "")).rstrip("=") == _b64url(hashlib.sha256(der).digest()):
                return cert
            if str(header.get("x5t", "")).rstrip("=") == _b64url(hashlib.sha1(der).digest()):
                return cert
        return None

    def _access_token(self, app: AppRecord, lifetime: int) -> str:
        now = self.tenant.clock.now()
        claims = {
            "aud": GRAPH_RESOURCE,
            "iss": f"https://sts.windows.net/{self.tenant.tenant_id}/",
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=lifetime)).timestamp()),
            "appid": app.client_id,
            "app_displayname": app.display_name,
            "idtyp": "app",
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, "sp:" + app.client_id)),
            "roles": sorted(app.roles),
            "tid": self.tenant.tenant_id,
            "uti": _b64url(uuid.uuid4().bytes),
            "ver": "1.0",
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "emulator"})

    # -- resource side -----------------------------------------------------------------------
    def caller(self, authorization: str | None) -> Caller:
        """The caller a Bearer header names; GraphAuthError when missing, bad or expired."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise GraphAuthError("Access token is empty.")
        token = authorization[7:].strip()
        claims = self._verified.get(token)
        if claims is None:
            try:
                claims = jwt.decode(
                    token,
                    self.public_key,
                    algorithms=["RS256"],
                    audience=GRAPH_RESOURCE,
                    options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
                )
            except jwt.PyJWTError:
                raise GraphAuthError("Invalid signature.") from None
            self._verified[token] = claims
        if claims.get("tid") != self.tenant.tenant_id:
            raise GraphAuthError("Access token validation failure. Invalid audience.")
        if self.tenant.clock.now().timestamp() >= float(claims["exp"]):
            raise GraphAuthError("Lifetime validation failed, the token is expired.")
        # As in Entra ID, the permissions are those consented when the token was issued.
        return Caller(app_id=str(claims.get("appid")), roles=frozenset(claims.get("roles") or ()))


class GraphAuthError(Exception):
    """401 InvalidAuthenticationToken with Graph's message."""
