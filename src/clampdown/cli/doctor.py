"""`clampdown doctor ad`: what the AD action account can and cannot do, before anything is tried."""

from __future__ import annotations

from typing import Annotated

import typer

from clampdown.cli import render
from clampdown.cli.context import load
from clampdown.cli.errors import fail, run
from clampdown.services.runtime import open_runtime

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
    from clampdown.connectors.instances import instances_of

    settings = load()

    async def go() -> tuple[list[str], bool]:
        async with open_runtime(settings, check_schema=False) as rt:
            names = instances_of(rt.connectors, "ad")
            if instance is not None:
                if instance not in names:
                    known = ", ".join(names) or "none"
                    fail(f"'{instance}' is not a configured AD directory (configured: {known})", 4)
                names = [instance]
            if not names:
                fail('no AD directory in the config: a [providers.NAME] section of kind "ad"', 4)
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

    lines, ok = run(go())
    for line in lines:
        render.console.print(line, highlight=False, markup=False)
    if not ok:
        raise typer.Exit(1)
