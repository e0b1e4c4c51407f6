"""The lab's administrator: a Global Administrator with a console password and an API token,
written into DIR/lab.json so a newcomer (and the tests) can sign in at once."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from clampdown.auth.service import AuthService, Unauthenticated
from clampdown.config import Settings
from clampdown.permissions import GLOBAL_ADMINISTRATOR
from clampdown.services.runtime import open_runtime

LAB_ADMIN = "lab-admin"


async def ensure_lab_admin(settings: Settings, lab_json: Path) -> dict[str, Any]:
    """Create the lab administrator once; keep their password and token while the token works."""
    data = json.loads(lab_json.read_text(encoding="utf-8"))
    previous = data.get("admin") or {}
    async with open_runtime(settings) as rt:
        auth: AuthService = rt.auth
        if await auth.store.user_by_name(LAB_ADMIN) is None:
            password = secrets.token_urlsafe(12)
            await auth.create_user(
                LAB_ADMIN, frozenset({GLOBAL_ADMINISTRATOR}), password, "Lab Administrator"
            )
            previous = {"password": password}
        token = previous.get("token")
        try:
            await auth.authenticate_token(token, "cli")
        except Unauthenticated:
            token = (await auth.create_token(LAB_ADMIN, "lab", None)).token
    admin = {"username": LAB_ADMIN, "password": previous.get("password"), "token": token}
    data["admin"] = admin
    lab_json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.chmod(lab_json, 0o600)  # it holds the lab administrator's password and token
    return admin
