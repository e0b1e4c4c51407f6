"""An incident reference: the ticket ids it takes and refuses (limits.clean_incident), the link
template it is put into ([console] incident_link) and how its id is encoded there."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from clampdown.config import ConsoleSettings
from clampdown.errors import InvalidInput
from clampdown.limits import MAX_INCIDENT, clean_incident, incident_link


@pytest.mark.parametrize("given", ["INC-42", "SEC-1234", "CS0012345", "jira:OPS-7", "case#12", "a/b_c.d"])
def test_ticket_ids_are_taken_as_given(given: str) -> None:
    assert clean_incident(f"  {given} ") == given


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ("INC 42", "not a ticket id"),
        ("<script>", "not a ticket id"),
        ("-INC", "not a ticket id"),
        ("INC-\x00", "NUL"),
        ("X" * (MAX_INCIDENT + 1), f"longer than {MAX_INCIDENT}"),
    ],
)
def test_anything_else_is_refused_naming_the_field(given: str, words: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        clean_incident(given)
    assert refused.value.message.startswith("incident:") and words in refused.value.message


def test_no_incident_is_none() -> None:
    assert clean_incident(None) is None and clean_incident("   ") is None


def test_the_link_template_puts_the_id_url_encoded() -> None:
    template = "https://tickets.example/browse/{incident}?from=clampdown"
    assert incident_link(template, "INC-42") == "https://tickets.example/browse/INC-42?from=clampdown"
    assert (
        incident_link(template, "case#12/a") == "https://tickets.example/browse/case%2312%2Fa?from=clampdown"
    )
    assert incident_link(None, "INC-42") is None and incident_link(template, None) is None
    assert ConsoleSettings(incident_link=template).incident_link == template


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("tickets.example/{incident}", "not an http(s) address"),
        ("https://tickets.example/", "put {incident}"),
    ],
)
def test_a_template_must_be_an_address_with_the_placeholder(template: str, words: str) -> None:
    with pytest.raises(ValidationError, match=words.replace("(", r"\(").replace(")", r"\)")):
        ConsoleSettings(incident_link=template)
