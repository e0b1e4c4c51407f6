"""The one schema base: a view reads its domain object's attributes; nobody copies fields by hand."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, SerializeAsAny, TypeAdapter


class View(BaseModel):
    """Built with `SomeView.model_validate(domain_object)`; dumped as the API's JSON."""

    model_config = ConfigDict(from_attributes=True)


_VIEWS: TypeAdapter[list[SerializeAsAny[View]]] = TypeAdapter(list[SerializeAsAny[View]])


# A spreadsheet reads a cell starting with one of these as a formula (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: str) -> str:
    """The cell as text a spreadsheet never evaluates: targets and reasons can come from event data
    an attacker wrote, through detection rules, so a leading formula character gets a quote. Every
    CSV Clampdown writes (the API's export, the CLI's --output csv) passes its cells through here."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def views_json(views: Sequence[View], indent: int | None = None) -> str:
    """A list of views as the API returns a list: the JSON of each, in order."""
    return _VIEWS.dump_json(list(views), indent=indent).decode()
