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
) -> None:
    """Read the action account's effective rights per OU, sample user and privileged group;
    print what is missing."""
    from clampdown.connectors.ad import ADConnector
    from clampdown.connectors.ad.doctor import diagnose_ad

    settings = load()

    async def go() -> tuple[list[str], bool]:
        async with open_runtime(settings, check_schema=False) as rt:
            connector = rt.connectors.get("ad")
            if not isinstance(connector, ADConnector):
                fail("no [providers.ad] section of kind ad in the config", 4)
            report = await diagnose_ad(connector, ous=ou or (), users=user or (), groups=groups)
            return report.lines(), report.ok

    lines, ok = run(go())
    for line in lines:
        render.console.print(line, highlight=False)
    if not ok:
        raise typer.Exit(1)
