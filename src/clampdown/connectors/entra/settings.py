"""The `[providers.entra]` settings: which tenant and app, its credential, and where Graph is."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from clampdown.config import Secret


class EntraSettings(BaseModel):
    """One Entra ID tenant reached through an app registration (client credentials).

    Give `client_secret` or `certificate_path` (a PEM file holding the private key and the
    certificate registered on the app). `authority_host`, `graph_url` and `graph_scope` make a
    sovereign cloud, or the lab's emulator, a matter of configuration.
    """

    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    client_secret: Secret | None = None
    certificate_path: Path | None = None
    certificate_password: Secret | None = None
    authority_host: str = "https://login.microsoftonline.com"
    graph_url: str = "https://graph.microsoft.com/v1.0"
    graph_scope: str = "https://graph.microsoft.com/.default"
    # MSAL validates an unfamiliar authority host with login.microsoftonline.com; set false for an
    # authority you know (ADFS-like private hosts, the lab's emulator), as MSAL documents.
    instance_discovery: bool = True
    ca_bundle: Path | None = None  # extra CA file to trust (a TLS-inspecting proxy, the lab)
    timeout_seconds: float = Field(30.0, gt=0)
    max_connections: int = Field(32, ge=1)
    # Client-side pacing of all Graph HTTP requests of this worker; None: rely on 429 + Retry-After.
    requests_per_second: float | None = Field(None, gt=0)
    # Identity Protection allows about one request per second per tenant and its 429 names no wait.
    identity_protection_interval_seconds: float = Field(1.0, ge=0)
    # How long one call may wait on 429s (Retry-After, or backoff when Graph names no wait) before
    # it reports TransientError and leaves the retry to the engine.
    throttle_patience_seconds: float = Field(60.0, ge=0)
    max_transient_retries: int = Field(3, ge=0)  # 5xx answers, per request or sub-request
    batch_size: int = Field(20, ge=1, le=20)  # Graph's $batch limit
    # State snapshots take risk from the tenant's at-risk list, read at most this often.
    risk_cache_seconds: float = Field(30.0, ge=0)
    risk_batch_size: int = Field(60, ge=1, le=60)  # userIds per confirmCompromised / dismiss
    # entra.remove_auth_methods removes only the methods registered this many hours before it runs
    # (those an attacker added); None: every method but the password.
    remove_auth_methods_registered_within_hours: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_credential(self) -> EntraSettings:
        if (self.client_secret is None) == (self.certificate_path is None):
            raise ValueError("give exactly one credential: client_secret or certificate_path")
        return self
