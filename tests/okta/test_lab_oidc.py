"""The lab's Okta org as Clampdown's identity provider: what `details["oidc"]` offers works as [sso]."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx

from clampdown.auth.oidc import OidcClient
from clampdown.config import SsoSettings
from clampdown_lab.okta_emulator import OktaLabComponent
from clampdown_lab.people import DEMO_PEOPLE


async def sign_in_with_lab_sso(details: dict[str, object], login: str) -> tuple[frozenset[str], str]:
    """Clampdown's OIDC client against the lab org: (roles mapped, the ID token's key id)."""
    sso = SsoSettings.model_validate(details["oidc"])
    sign_in = details["oidc_sign_in"]
    assert isinstance(sign_in, dict)
    password = Path(sign_in["password"]["file"]).read_text(encoding="utf-8").strip()
    client = OidcClient(sso, b"lab-session-secret", sign_in["redirect_uris"][0])
    try:
        url, cookie = await client.start()
        async with httpx.AsyncClient() as browser:
            form = await browser.get(url)
            fields = {
                name: unescape(value)
                for name, value in re.findall(
                    r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form.text
                )
            }
            answer = await browser.post(
                url.split("?")[0], data={**fields, "username": login, "password": password}
            )
        assert answer.status_code == 302, answer.text
        query = dict(parse_qsl(urlsplit(answer.headers["location"]).query))
        identity = (await client.finish(query["code"], query["state"], cookie)).identity
        keys = (await client.discovery())["jwks_uri"]
        kid = httpx.get(keys).json()["keys"][0]["kid"]
        return identity.roles, kid
    finally:
        await client.aclose()


async def test_lab_org_signs_demo_people_in_to_clampdown(tmp_path: Path) -> None:
    component = OktaLabComponent()
    try:
        service = component.up(tmp_path, DEMO_PEOPLE)
        assert service.details["oidc"]["issuer"] == service.url
        roles, kid = await sign_in_with_lab_sso(service.details, "dave.okafor@lab.example.test")
        assert roles == {"Global Administrator"}
        assert (
            service.details["oidc_sign_in"]["users"]["dave.okafor@lab.example.test"]
            == "Clampdown Administrators"
        )
        roles, _ = await sign_in_with_lab_sso(service.details, "alice.martin@lab.example.test")
        assert roles == frozenset()  # Finance: no Clampdown group, refused by Clampdown

        component.down(tmp_path)
        restarted = component.up(tmp_path, DEMO_PEOPLE)  # same secret, password and signing key
        roles, kid_after = await sign_in_with_lab_sso(restarted.details, "frank.li@lab.example.test")
        assert roles == {"Security Operator"} and kid_after == kid
        assert (tmp_path / "okta" / "oidc-client-secret").stat().st_mode & 0o077 == 0
    finally:
        component.down(tmp_path)
