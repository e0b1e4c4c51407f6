"""Resolving many references in one search (the engine's groups): the same answers as one by one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from clampdown.connectors.ad import ADConnector, ADSettings
from clampdown.model import Account
from tests.ad.ad_checks import ScratchUser
from tests.ad.test_resolve import HOSTILE

pytestmark = pytest.mark.samba


@pytest.fixture
async def counted(ad_settings: ADSettings) -> AsyncIterator[tuple[ADConnector, list[str]]]:
    """A connector of its own whose requests to the DC are counted (by the operation's name)."""
    connector = ADConnector(ad_settings)
    calls: list[str] = []
    run = connector.pool.run

    async def counting(operation: Any) -> Any:
        calls.append(operation.__qualname__)
        return await run(operation)

    connector.pool.run = counting  # type: ignore[method-assign]
    yield connector, calls
    await connector.aclose()


async def _one_by_one(ad: ADConnector, references: list[str]) -> list[Account | str]:
    answers: list[Account | str] = []
    for reference in references:
        try:
            answers.append(await ad.resolve_user(reference))
        except Exception as exc:
            answers.append(f"{type(exc).__name__}: {exc}")
    return answers


def _shown(answers: list[Account | Exception]) -> list[Account | str]:
    return [a if isinstance(a, Account) else f"{type(a).__name__}: {a}" for a in answers]


async def test_many_references_in_one_search_answer_as_each_alone(
    counted: tuple[ADConnector, list[str]], ad: ADConnector, make_user: Callable[..., ScratchUser]
) -> None:
    connector, calls = counted
    first, second, third = make_user(), make_user(), make_user()
    ids = (await ad.resolve_user(first.sam)).attributes
    references = [
        first.sam,
        second.sam.upper(),  # AD compares names case-blind
        f"LAB\\{third.sam}",
        second.upn,
        ids["objectSid"],
        ids["objectGUID"],
        "nobody-here-at-all",
        "OTHER\\someone",  # another domain: refused without asking the DC
        first.sam,
        "Zoë-nobody",  # outside ASCII: looked up alone
    ]

    answers = await connector.resolve_users(references)

    assert _shown(answers) == await _one_by_one(ad, references)
    assert [a.attributes["dn"] for a in answers[:3] if isinstance(a, Account)] == [
        first.dn,
        second.dn,
        third.dn,
    ]
    # One search for the seven that name users; the two names not found (one outside ASCII) are
    # looked up alone, so their "not found" is resolve_user's own.
    assert calls.count("ADConnector.resolve_users.<locals>.<lambda>") == 1
    assert calls.count("ADConnector.resolve_user.<locals>.search") == 2


async def test_hostile_references_find_nothing_in_a_batch_either(
    counted: tuple[ADConnector, list[str]], ad: ADConnector, make_user: Callable[..., ScratchUser]
) -> None:
    connector, _ = counted
    user = make_user()
    references = [user.sam, *HOSTILE]
    answers = await connector.resolve_users(references)
    assert _shown(answers) == await _one_by_one(ad, references)
    assert isinstance(answers[0], Account) and all(not isinstance(a, Account) for a in answers[1:])
