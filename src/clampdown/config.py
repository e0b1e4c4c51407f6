"""Settings: one TOML file plus CLAMPDOWN_* environment variables; the one place config is read.

The file is found by `--config`, then `CLAMPDOWN_CONFIG`, then `./clampdown.toml`. Environment
variables override the file (`CLAMPDOWN_DATABASE__URL`, `CLAMPDOWN_PROVIDERS__OKTA__API_TOKEN`).
Secrets are given as `{env = "NAME"}` or `{file = "/path"}` (or inline, discouraged) and are
held as SecretStr so they never reach a log or an answer.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from clampdown.errors import ConfigError

DEFAULT_CONFIG_NAME = "clampdown.toml"


def _load_secret(value: Any) -> Any:
    """Accept a literal, `{env = NAME}` or `{file = PATH}`; the value read is never echoed."""
    if isinstance(value, dict):
        if set(value) == {"env"}:
            name = str(value["env"])
            if name not in os.environ:
                raise ValueError(f"environment variable {name} is not set")
            return os.environ[name]
        if set(value) == {"file"}:
            path = Path(str(value["file"])).expanduser()
            try:
                return path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None
        raise ValueError('a secret is a string, {env = "NAME"} or {file = "PATH"}')
    return value


Secret = Annotated[SecretStr, BeforeValidator(_load_secret)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(_Section):
    url: str = "sqlite:///clampdown.db"
    echo: bool = False


class EngineSettings(_Section):
    lease_seconds: float = Field(60.0, gt=0)
    max_attempts: int = Field(8, ge=1)
    backoff_base_seconds: float = Field(2.0, gt=0)
    backoff_max_seconds: float = Field(300.0, gt=0)
    claim_batch: int = Field(200, ge=1, le=5000)
    concurrency: int = Field(256, ge=1)  # actions in flight per worker
    default_provider_concurrency: int = Field(32, ge=1)
    provider_concurrency: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)
    # Workers are woken when an action is queued or ends (store.wakeup: in the process, and by
    # NOTIFY on PostgreSQL); they poll only as the fallback, and for retries and timed releases
    # falling due.
    poll_interval_seconds: float = Field(0.5, gt=0)
    # One attempt of one action on its provider (resolve, read, change) must end within this, or it
    # ends as a transient `attempt_timeout` (retried up to max_attempts): a provider that accepts
    # connections and never answers cannot hold an action, nor its slot, for longer.
    attempt_timeout_seconds: float = Field(300.0, gt=0)
    provider_attempt_timeout_seconds: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    embedded_worker: bool | None = None  # default: on for SQLite, off for PostgreSQL
    # Signs the short-lived single sign-on cookie; the same on every instance behind a balancer.
    session_secret: Secret | None = None
    public_url: str | None = None  # how browsers reach this server, for sign-on redirects
    # HTTPS of its own: a PEM certificate (chain) and its private key, both or neither. Behind a
    # reverse proxy that terminates TLS instead, leave them unset and list the proxy below.
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    # The proxies whose X-Forwarded-For and X-Forwarded-Proto are believed (the client's address
    # for throttling and the audit trail; https for Secure cookies); "*" believes anyone.
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("give both tls_cert_file and tls_key_file, or neither")
        return self


class SsoSettings(_Section):
    """OpenID Connect single sign-on with Entra ID or Okta as the identity provider."""

    issuer: str  # discovery at {issuer}/.well-known/openid-configuration
    client_id: str
    client_secret: Secret
    # offline_access asks for a refresh token, with which group membership is checked again.
    scopes: list[str] = Field(
        default_factory=lambda: ["openid", "profile", "email", "groups", "offline_access"]
    )
    # A session in use is checked with the identity provider again after this long: roles follow
    # the groups, and a person the provider no longer signs in (or maps to no role) is signed out.
    recheck_seconds: float = Field(900.0, ge=0)
    roles_claim: str = "groups"  # Okta: groups; Entra ID: roles (app roles) or groups
    username_claim: str = "preferred_username"
    role_mapping: dict[str, list[str]] = Field(default_factory=dict)  # group or app role -> roles
    # Group or app role -> the directories ([providers.NAME]) the person's roles hold in; "*": every
    # one. Empty: every directory for everyone. Set: a person in no mapped group is not let in.
    directory_mapping: dict[str, list[str]] = Field(default_factory=dict)
    ca_file: str | None = None
    tls_verify_disabled_unsafe: bool = False  # only for a lab; never for a real identity provider


class SigninSettings(_Section):
    """Throttling of failed password sign-ins, per account and per source address."""

    account_free_failures: int = Field(3, ge=1)  # failures in the window before back-off starts
    address_free_failures: int = Field(20, ge=1)
    backoff_base_seconds: float = Field(1.0, gt=0)  # doubles with every further failure, up to:
    backoff_max_seconds: float = Field(300.0, gt=0)
    account_lockout_failures: int = Field(10, ge=1)  # then the account is locked for lockout_seconds
    address_lockout_failures: int = Field(100, ge=1)
    lockout_seconds: float = Field(900.0, gt=0)
    window_seconds: float = Field(900.0, gt=0)  # failures older than this are forgotten


class ConsoleSettings(_Section):
    # An incident reference (a ticket id) shown as a link: "{incident}" is replaced by the id,
    # URL-encoded, e.g. "https://tickets.example/browse/{incident}" (views.actions links it with
    # limits.incident_link). Unset: shown as text.
    incident_link: str | None = None

    @field_validator("incident_link")
    @classmethod
    def _incident_link(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("https://", "http://")):
            raise ValueError(f"console.incident_link: {value!r} is not an http(s) address")
        if "{incident}" not in value:  # limits.INCIDENT_PLACEHOLDER, replaced by limits.incident_link
            raise ValueError(
                "console.incident_link: put {incident} where the ticket id goes, e.g. "
                '"https://tickets.example/browse/{incident}"'
            )
        return value


class HuntingSettings(_Section):
    """Advanced hunting: where the DuckDB event store lives, query limits, how often sources and rules run."""

    events_path: Path | None = None  # default: beside a SQLite database, else beside the config file
    query_timeout_seconds: float = Field(30.0, gt=0)
    max_rows: int = Field(10_000, ge=1, le=1_000_000)
    memory_limit: str = "2GB"
    threads: int = Field(2, ge=1)
    pull_interval_seconds: float = Field(60.0, gt=0)
    rules_interval_seconds: float = Field(60.0, gt=0)
    pull_page_size: int = Field(500, ge=1, le=1000)
    scheduled: bool = True  # run API pulls and detection rules inside `clampdown serve`


class WatchSettings(_Section):
    """The containment watch: active containments' accounts read again on a schedule, so a change
    made outside Clampdown (a directory sync, another admin) is seen, audited and, where the
    playbook says so, contained again."""

    enabled: bool = True  # inside `clampdown serve`
    interval_seconds: float = Field(300.0, gt=0)
    concurrency: int = Field(8, ge=1, le=64)  # accounts read at once


class WebhookSettings(_Section):
    """A receiver of events, signed with HMAC-SHA256 of `timestamp.body` under `secret`."""

    name: str
    url: str
    secret: Secret
    events: list[str] = Field(default_factory=lambda: ["*"])  # "action.*", "approval.requested", ...
    ca_file: str | None = None


class SyslogSettings(_Section):
    """RFC 5424 syslog out to a SIEM, the message as JSON or CEF."""

    host: str = "127.0.0.1"
    port: int = Field(514, ge=1, le=65535)
    protocol: Literal["udp", "tcp"] = "udp"
    format: Literal["json", "cef"] = "json"
    # TCP: an event leaves the outbox once the receiver has shown it read it, by closing the stream
    # when the sender half-closes it (rsyslog and syslog-ng do). Off, for a receiver that does not:
    # an event leaves once written, and one that accepts and never reads loses what its buffer takes.
    confirm_delivery: bool = True


def _long_secret(value: SecretStr | None) -> SecretStr | None:
    if value is not None and len(value.get_secret_value()) < 32:
        raise ValueError("give at least 32 random characters, e.g. the output of `openssl rand -hex 32`")
    return value


class AuditSettings(_Section):
    """Anchoring the audit chain: checkpoints of its head signed with a key kept outside the database."""

    checkpoint_key: Annotated[Secret | None, AfterValidator(_long_secret)] = None  # HMAC-SHA256 key
    checkpoint_every_entries: int = Field(500, ge=1)  # a checkpoint once this many entries are new
    checkpoint_interval_seconds: float = Field(60.0, gt=0)  # or once this long has passed with any new


class MetricsSettings(_Section):
    """Who may scrape /metrics and where it is served."""

    token: Secret | None = None  # Prometheus sends it as `Authorization: Bearer ...`
    public: bool = True  # false: /metrics is not on the server's listener (only on `listen`, if set)
    listen: str | None = None  # "127.0.0.1:9464": /metrics on a listener of its own

    @field_validator("listen")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if value is not None:
            host, _, port = value.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("give host:port, e.g. 127.0.0.1:9464")
        return value

    def listen_address(self) -> tuple[str, int] | None:
        """(host, port) of the metrics listener, when one is configured."""
        if self.listen is None:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class SsfReceiverSettings(_Section):
    """A Shared Signals transmitter whose Security Event Tokens Clampdown receives (signals/)."""

    issuer: str  # the transmitter's `iss`; its metadata at /.well-known/ssf-configuration of it
    audience: str  # what the transmitter puts in `aud` for Clampdown
    # Push (RFC 8935): the Authorization: Bearer the transmitter sends with every SET. None: no push.
    bearer: Secret | None = None
    configuration_url: str | None = None  # default: the issuer's /.well-known/ssf-configuration
    iat_past_seconds: float = Field(300.0, gt=0)  # a SET issued longer ago is refused
    iat_future_seconds: float = Field(60.0, ge=0)  # clock skew allowed the other way
    # Other issuers whose iss_sub subjects name accounts of the configured directories (the
    # transmitter's own issuer always does).
    subject_issuers: list[str] = Field(default_factory=list)
    ca_file: str | None = None  # to check the transmitter's TLS certificate
    # Poll (RFC 8936): the transmitter's poll endpoint, asked every poll_interval_seconds (while it
    # has more, at once) with `poll_token` as the bearer; each SET is acknowledged or its error sent.
    poll_url: str | None = None
    poll_token: Secret | None = None
    poll_interval_seconds: float = Field(30.0, gt=0)
    poll_max_events: int = Field(100, ge=1, le=1000)

    @model_validator(mode="after")
    def _delivery(self) -> SsfReceiverSettings:
        if self.bearer is None and self.poll_url is None:
            raise ValueError("give bearer (the transmitter pushes) or poll_url (Clampdown polls), or both")
        return self

    @field_validator("issuer", "configuration_url", "poll_url")
    @classmethod
    def _http_address(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError(f"{value!r} is not an http(s) address")
        return value


class SsfPushStreamSettings(_Section):
    """A push stream the operator declares (SSF 1.0 section 8 lets a receiver create its own through
    the stream management API; a receiver such as Okta's security events providers does not): the
    SETs Clampdown transmits are POSTed to `endpoint_url` (RFC 8935)."""

    endpoint_url: str
    audience: str  # the `aud` of its SETs: the receiver's issuer or URL, as it expects
    authorization_header: Secret | None = None  # sent as Authorization with every SET
    events: list[str] = Field(default_factory=list)  # event type URIs; empty: every supported one
    description: str | None = None

    @field_validator("endpoint_url")
    @classmethod
    def _push_address(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError(f"{value!r} is not an http(s) address")
        return value


class SsfTransmitterSettings(_Section):
    """Clampdown as a Shared Signals transmitter: it publishes its metadata and keys, lets receivers
    manage their streams, and sends signed SETs when a containment completes or is released."""

    # Clampdown's public address: the `iss` of its SETs, where its /.well-known/ssf-configuration and
    # its endpoints are found by receivers.
    issuer: str
    # The private key SETs are signed with (PEM; EC P-256 signs ES256, RSA of 2048 bits or more RS256).
    signing_key_file: str
    # Keys of before a rotation: still published in the JWKS, no longer used to sign.
    previous_key_files: list[str] = Field(default_factory=list)
    default_subjects: Literal["ALL", "NONE"] = "ALL"  # a new stream's subjects until some are added
    min_verification_interval_seconds: int = Field(30, ge=0)
    ca_file: str | None = None  # to check the receivers' TLS certificates (push)
    streams: dict[str, SsfPushStreamSettings] = Field(default_factory=dict)  # declared push streams

    @field_validator("issuer")
    @classmethod
    def _issuer_address(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")) or "?" in value or "#" in value:
            raise ValueError(f"{value!r} is not an http(s) address without query or fragment")
        return value.rstrip("/")


class SsfSettings(_Section):
    """Shared Signals (SSF 1.0, CAEP, RISC): the transmitters Clampdown receives events from, and
    Clampdown's own transmitter."""

    receivers: dict[str, SsfReceiverSettings] = Field(default_factory=dict)
    transmitter: SsfTransmitterSettings | None = None


class ProtectionSettings(_Section):
    """Accounts no action may touch unless a second person approves."""

    accounts: list[str] = Field(default_factory=list)  # break-glass and service accounts: name, UPN or id
    ad_groups: list[str] = Field(
        default_factory=lambda: ["Domain Admins", "Enterprise Admins", "Schema Admins", "Administrators"]
    )
    ad_admin_count: bool = True  # adminCount=1: protected by AdminSDHolder, a privileged account
    entra_roles: list[str] = Field(
        default_factory=lambda: ["Global Administrator", "Privileged Role Administrator"]
    )


class ApprovalSettings(_Section):
    """What waits in awaiting_approval until a second person with the right role approves."""

    actions: list[str] = Field(default_factory=list)
    playbooks: list[str] = Field(default_factory=list)
    targets: list[str] = Field(default_factory=list)
    expires_after_minutes: int = Field(240, ge=1)


class PlaybookStep(_Section):
    action: str
    after: str | None = None  # the step (action id) this one waits for


class PlaybookSettings(_Section):
    description: str = ""
    steps: list[PlaybookStep] = Field(min_length=1)
    # When the watch finds a step undone outside Clampdown while the containment is active:
    # "alert" (audit it and note it on the containment) or "recontain" (also apply it again).
    on_drift: Literal["alert", "recontain"] = "alert"


def _default_playbooks() -> dict[str, PlaybookSettings]:
    # Block sign-in first (AD first, or the next directory sync undoes the Entra suspend), then end
    # sessions and tokens once no new ones can be issued, then take away what the attacker may
    # have added to come back: privileged groups, registered methods and devices, OAuth grants.
    steps = [
        PlaybookStep(action="ad.disable_user"),
        PlaybookStep(action="ad.force_password_reset", after="ad.disable_user"),
        PlaybookStep(action="ad.remove_privileged_groups", after="ad.disable_user"),
        PlaybookStep(action="entra.suspend_user", after="ad.disable_user"),
        PlaybookStep(action="entra.revoke_sessions", after="entra.suspend_user"),
        PlaybookStep(action="entra.mark_compromised"),
        PlaybookStep(action="entra.remove_auth_methods", after="entra.revoke_sessions"),
        PlaybookStep(action="entra.disable_devices", after="entra.revoke_sessions"),
        PlaybookStep(action="okta.suspend_user"),
        PlaybookStep(action="okta.clear_sessions", after="okta.suspend_user"),
        PlaybookStep(action="okta.revoke_grants", after="okta.clear_sessions"),
        PlaybookStep(action="okta.reset_factors", after="okta.clear_sessions"),
    ]
    contain = PlaybookSettings(description="Contain a person everywhere and evict them", steps=steps,
                               on_drift="recontain")  # fmt: skip
    return {"contain": contain}


class Settings(BaseSettings):
    """The whole configuration. Provider sections are validated by their connector classes."""

    model_config = SettingsConfigDict(env_prefix="CLAMPDOWN_", env_nested_delimiter="__", extra="forbid")

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    sso: SsoSettings | None = None
    signin: SigninSettings = Field(default_factory=SigninSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    hunting: HuntingSettings = Field(default_factory=HuntingSettings)
    watch: WatchSettings = Field(default_factory=WatchSettings)
    protection: ProtectionSettings = Field(default_factory=ProtectionSettings)
    approvals: ApprovalSettings = Field(default_factory=ApprovalSettings)
    playbooks: dict[str, PlaybookSettings] = Field(default_factory=_default_playbooks)
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    syslog: SyslogSettings | None = None
    audit: AuditSettings = Field(default_factory=AuditSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    ssf: SsfSettings = Field(default_factory=SsfSettings)
    log_level: str = "WARNING"
    config_path: Path | None = None

    @model_validator(mode="after")
    def _known_directories(self) -> Settings:
        """sso.directory_mapping names configured directories (or "*") only."""
        if self.sso is not None:
            for group, names in self.sso.directory_mapping.items():
                unknown = sorted(set(names) - set(self.providers) - {"*"})
                if unknown or not names:
                    known = ", ".join(sorted(self.providers)) or "none"
                    named = ", ".join(unknown) or "(none given)"
                    raise ValueError(
                        f"sso.directory_mapping[{group!r}]: unknown directory {named}; configured "
                        f'directories: {known}, or "*" for every one'
                    )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file arrives as init kwargs; the environment wins over it.
        return (env_settings, init_settings)


def find_config_file(explicit: str | Path | None) -> Path | None:
    """The config file to read, or None when no file is given and none exists by default."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        return path
    from_env = os.environ.get("CLAMPDOWN_CONFIG")
    if from_env:
        path = Path(from_env).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file not found: {path} (from CLAMPDOWN_CONFIG)")
        return path
    default = Path.cwd() / DEFAULT_CONFIG_NAME
    return default if default.is_file() else None


def describe_validation_error(exc: ValidationError, prefix: str = "") -> list[str]:
    """One line per problem, each naming the setting at fault."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        where = f"{prefix}.{where}" if prefix and where else (prefix or where)
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown setting"
        lines.append(f"{where}: {message}")
    return lines


def load_settings(explicit: str | Path | None = None) -> Settings:
    """Read and validate the configuration; ConfigError names every problem found."""
    path = find_config_file(explicit)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        settings = Settings(**data, config_path=path)
    except ValidationError as exc:
        where = f"{path}: " if path else ""
        raise ConfigError(where + "; ".join(describe_validation_error(exc))) from None
    settings.database.url = resolve_database_url(settings.database.url, path)
    return settings


def resolve_database_url(url: str, config_path: Path | None) -> str:
    """A relative SQLite path is taken relative to the config file, not to the working dir."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and config_path is not None:
        raw = url[len(prefix) :]
        if raw and raw != ":memory:" and not raw.startswith("/"):
            return prefix + str((config_path.parent / raw).resolve())
    return url
