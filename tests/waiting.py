"""Waiting in tests for something another process does: the one polling loop."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(check: Callable[[], Any], what: str, seconds: float = 30, every: float = 0.1) -> Any:
    """What `check` returns once it is truthy; AssertionError naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} ({seconds:g} s)")
        time.sleep(every)
