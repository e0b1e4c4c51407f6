"""Faults tests inject into the emulator: error answers, slow answers and dropped connections."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal["status", "delay", "drop_before", "drop_after", "foreign_links"]


@dataclass
class Fault:
    """Applies to the next `count` requests matching `method` and the `path` regex.

    status: answer `status` with an Okta-shaped error body, the request is not performed.
    delay: wait `delay` seconds, then perform the request normally.
    drop_before: close the connection without performing the request.
    drop_after: perform the request, then close the connection before the answer is complete.
    foreign_links: perform the request, but point the links of its `Link` header at `link_base`
    (another host), as a hostile or compromised endpoint could.
    """

    kind: FaultKind
    path: str = ".*"
    method: str = "*"
    count: int = 1
    status: int = 500
    delay: float = 0.0
    link_base: str = ""
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method)) and re.fullmatch(self.path, path) is not None


@dataclass
class FaultPlan:
    """The faults waiting to fire, in the order they were added."""

    faults: list[Fault] = field(default_factory=list)

    def add(self, fault: Fault) -> None:
        self.faults.append(fault)

    def clear(self) -> None:
        self.faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """The first pending fault for this request, counted as fired."""
        for fault in self.faults:
            if fault.hits < fault.count and fault.matches(method, path):
                fault.hits += 1
                return fault
        return None
