"""Server profiles of `clampdown login`: where a server is and the token to reach it, per name.

`$XDG_CONFIG_HOME/clampdown` (else `~/.config/clampdown`) holds `profiles.toml` (the servers, their
CA files, who logged in, which profile is current) and one file per profile's token under `tokens/`,
the folder readable by its owner only (0700) and each file 0600: a token is never written to
`profiles.toml`, so that one can be shown or copied. Light on purpose: every command may read it.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clampdown.errors import InvalidInput

PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
DEFAULT_PROFILE = "default"


@dataclass(frozen=True)
class SavedProfile:
    """One profile: the server, the CA file to trust, who logged in, and their token (if any)."""

    name: str
    url: str
    ca_file: Path | None = None
    username: str | None = None
    expires_at: str | None = None
    token: str | None = None


def home() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME", "").strip() or str(Path.home() / ".config")
    return Path(base) / "clampdown"


def check_name(name: str) -> str:
    if not PROFILE_NAME.fullmatch(name):
        raise InvalidInput(
            f"--profile: '{name[:80]}' is not a profile name (letters, digits, . _ -; up to 64)"
        )
    return name


def _read() -> dict[str, Any]:
    path = home() / "profiles.toml"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from None


def _write(data: dict[str, Any]) -> None:
    import tomli_w

    folder = home()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / "profiles.toml"
    partial = path.with_suffix(".tmp")
    partial.write_text(tomli_w.dumps(data), encoding="utf-8")
    partial.replace(path)


def _token_file(name: str) -> Path:
    return home() / "tokens" / name


def load(name: str) -> SavedProfile | None:
    """The profile called `name`, with its token if it is logged in; None if there is none."""
    entry = _read().get("profiles", {}).get(check_name(name))
    if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
        return None
    try:
        token = _token_file(name).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        token = None
    ca = entry.get("ca_file")
    return SavedProfile(
        name=name,
        url=entry["url"],
        ca_file=Path(ca) if isinstance(ca, str) else None,
        username=entry.get("username"),
        expires_at=entry.get("expires_at"),
        token=token,
    )


def current() -> str | None:
    """The profile `clampdown login` made current, if any."""
    name = _read().get("current")
    return name if isinstance(name, str) and PROFILE_NAME.fullmatch(name) else None


def names() -> list[str]:
    return sorted(_read().get("profiles", {}))


def save(profile: SavedProfile, *, make_current: bool = True) -> None:
    """Write the profile (its token to its own 0600 file) and make it the current one."""
    data = _read()
    entry: dict[str, Any] = {"url": profile.url}
    for key in ("username", "expires_at"):
        if getattr(profile, key):
            entry[key] = getattr(profile, key)
    if profile.ca_file:
        entry["ca_file"] = str(profile.ca_file.resolve())
    data.setdefault("profiles", {})[check_name(profile.name)] = entry
    if make_current:
        data["current"] = profile.name
    _write(data)
    if profile.token:
        tokens = home() / "tokens"
        tokens.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = _token_file(profile.name)
        path.unlink(missing_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(profile.token + "\n")


def forget_token(name: str) -> None:
    """Logged out: the token file goes; the profile (the server, the CA) stays for the next login."""
    _token_file(check_name(name)).unlink(missing_ok=True)
    data = _read()
    entry = data.get("profiles", {}).get(name)
    if isinstance(entry, dict):
        entry.pop("expires_at", None)
        _write(data)
