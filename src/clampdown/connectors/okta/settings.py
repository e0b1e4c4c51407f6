"""The `[providers.okta]` section: the org, how Clampdown authenticates, and how it paces."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from clampdown.config import Secret

DEFAULT_SCOPES = ("okta.users.read", "okta.users.manage")


class OktaSettings(BaseModel):
    """Either `api_token` (SSWS) or `client_id` + `private_key` (OAuth service app) is required."""

    model_config = ConfigDict(extra="forbid")

    org_url: str = Field(description="https://{yourOktaDomain}, no path")
    api_token: Secret | None = None
    client_id: str | None = None
    private_key: Secret | None = Field(None, description="PEM private key of the service app (RSA or EC)")
    key_id: str | None = Field(None, description="kid of the key in the app's JWKS")
    scopes: list[str] = Field(default_factory=lambda: list(DEFAULT_SCOPES))
    clear_sessions: bool = Field(True, description="Also clear the user's sessions on suspend and deactivate")
    revoke_oauth_tokens: bool = Field(True, description="Clear sessions with oauthTokens=true")
    user_risk: bool = Field(
        False,
        description="The org has Identity Threat Protection: read each user's risk with its state "
        "(okta.userRisk.read), so undoing okta.set_risk restores the level before",
    )
    expire_with_temp_password: bool = Field(
        False,
        description="okta.expire_password also replaces the password by a temporary one and revokes "
        "the sessions (expire_password_with_temp_password), so a stolen password stops working",
    )
    hand_temp_password_to_caller: bool = Field(
        False,
        description="Seal that temporary password for the requester, who opens it once "
        "(POST /api/v1/actions/{id}/secret); otherwise nobody gets it",
    )
    max_concurrency: int = Field(16, ge=1, le=75, description="Requests in flight; Okta's org limit is 15-75")
    rate_limit_reserve: float = Field(
        0.0, ge=0.0, lt=1.0, description="Share of each rate-limit window left unused for other API clients"
    )
    max_throttle_wait_seconds: float = Field(
        180.0, gt=0, description="How long one request may wait for rate limits before it fails as transient"
    )
    retries: int = Field(
        2, ge=0, le=10, description="Quick retries of a request after a 5xx or a dropped connection"
    )
    timeout_seconds: float = Field(30.0, gt=0)
    deactivate_wait_seconds: float = Field(60.0, gt=0, description="How long to wait for DEPROVISIONED")
    verify_tls: bool = True

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> OktaSettings:
        oauth = self.client_id is not None or self.private_key is not None
        if self.api_token is not None and oauth:
            raise ValueError("give either api_token or client_id + private_key, not both")
        if self.api_token is None and not (self.client_id and self.private_key):
            raise ValueError("give api_token (SSWS) or client_id + private_key (OAuth service app)")
        if not self.org_url.startswith(("https://", "http://")):
            raise ValueError("org_url must start with https://")
        self.org_url = self.org_url.rstrip("/")
        return self
