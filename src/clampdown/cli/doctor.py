"""`clampdown doctor ad|entra|okta`: what each action account can and cannot do, before anything is
tried. The checks live in the connector packages; this module picks the directories and prints."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, Protocol

import typer

from clampdown.cli import render
from clampdown.cli.context import load, open_runtime
from clampdown.cli.errors import fail, run

doctor_app = typer.Typer(
    help="Check action accounts' rights before an incident needs them.", no_args_is_help=True
)


@doctor_app.command("ad")
def doctor_ad(
    ou: Annotated[
        list[str] | None, typer.Option("--ou", help="OU DN to check; repeat. Default: managed_ous.")
    ] = None,
    user: Annotated[list[str] | None, typer.Option("--user", help="Sample user to check; repeat.")] = None,
    groups: Annotated[
        bool | None,
        typer.Option(
            "--groups/--no-groups",
            help="Check Write member on each privileged group. Default: when no --ou or --user is given.",
        ),
    ] = None,
    instance: Annotated[
        str | None, typer.Option(help="The AD directory to check ([providers.NAME]); default: every one.")
    ] = None,
) -> None:
    """Read the action account's effective rights per OU, sample user and privileged group, in
    each configured AD directory; print what is missing."""
    from clampdown.connectors.ad import ADConnector
    from clampdown.connectors.ad.doctor import diagnose_ad

    settings = load(server_side=True)

    async def go() -> tuple[list[str], bool]:
        async with open_runtime(settings, check_schema=False) as rt:
            names = _pick(rt.connectors, "ad", "AD", instance)
            lines, ok = [], True
            for name in names:
                connector = rt.connectors[name]
                if not isinstance(connector, ADConnector):
                    lines.append(f"[providers.{name}]: not an LDAP directory, nothing to check")
                    continue
                report = await diagnose_ad(connector, ous=ou or (), users=user or (), groups=groups)
                lines += ([f"[providers.{name}]"] if len(names) > 1 else []) + report.lines()
                ok = ok and report.ok
            return lines, ok

    _print(*run(go()))


def _print(lines: list[str], ok: bool) -> None:
    for line in lines:
        render.console.print(line, highlight=False, markup=False, soft_wrap=True)
    if not ok:
        raise typer.Exit(1)


class _Report(Protocol):
    @property
    def ok(self) -> bool: ...

    def lines(self) -> list[str]: ...


def _pick(connectors: Mapping[str, Any], kind: str, title: str, instance: str | None) -> list[str]:
    """The instance names of `kind` to check: `instance`, or every one; exit 4 naming the configured."""
    from clampdown.connectors.instances import instances_of

    names = instances_of(connectors, kind)
    if instance is not None:
        if instance not in names:
            known = ", ".join(names) or "none"
            fail(f"'{instance}' is not a configured {title} directory (configured: {known})", 4)
        return [instance]
    if not names:
        fail(f'no {title} directory in the config: a \\[providers.NAME] section of kind "{kind}"', 4)
    return names


def _check_each(
    kind: str, title: str, cls: type, instance: str | None, diagnose: Callable[[Any], Awaitable[_Report]]
) -> None:
    """Run `diagnose` on each directory of `kind` (a header per directory when there are several)."""
    settings = load(server_side=True)

    async def go() -> tuple[list[str], bool]:
        async with open_runtime(settings, check_schema=False) as rt:
            names = _pick(rt.connectors, kind, title, instance)
            lines, ok = [], True
            for name in names:
                connector = rt.connectors[name]
                header = [f"[providers.{name}]"] if len(names) > 1 else []
                if not isinstance(connector, cls):
                    lines.append(f"[providers.{name}]: not a {title} connector, nothing to check")
                    continue
                report = await diagnose(connector)
                lines += header + report.lines()
                ok = ok and report.ok
            return lines, ok

    _print(*run(go()))


_INSTANCE_HELP = "The {} directory to check ([providers.NAME]); default: every one."


@doctor_app.command("entra")
def doctor_entra(
    instance: Annotated[str | None, typer.Option(help=_INSTANCE_HELP.format("Entra ID"))] = None,
) -> None:
    """Read the application permissions granted to the app registration of each configured Entra
    tenant (from its own token) and compare them with what each Entra action calls; print what is
    missing and what cannot be checked from an app token."""
    from clampdown.connectors.entra import EntraConnector
    from clampdown.connectors.entra.doctor import diagnose_entra

    _check_each("entra", "Entra ID", EntraConnector, instance, diagnose_entra)


@doctor_app.command("okta")
def doctor_okta(
    instance: Annotated[str | None, typer.Option(help=_INSTANCE_HELP.format("Okta"))] = None,
) -> None:
    """Read which Okta org answers, the scopes granted to the service app (or the API token owner's
    admin roles) of each configured org, and compare them with what each Okta action calls; print
    what is missing."""
    from clampdown.connectors.okta import OktaConnector
    from clampdown.connectors.okta.doctor import diagnose_okta

    _check_each("okta", "Okta", OktaConnector, instance, diagnose_okta)
