"""The one schema base: a view reads its domain object's attributes; nobody copies fields by hand."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, SerializeAsAny, TypeAdapter


class View(BaseModel):
    """Built with `SomeView.model_validate(domain_object)`; dumped as the API's JSON."""

    model_config = ConfigDict(from_attributes=True)


_VIEWS: TypeAdapter[list[SerializeAsAny[View]]] = TypeAdapter(list[SerializeAsAny[View]])


def views_json(views: Sequence[View], indent: int | None = None) -> str:
    """A list of views as the API returns a list: the JSON of each, in order."""
    return _VIEWS.dump_json(list(views), indent=indent).decode()
