"""Waiting for asynchronous effects in tests without bare sleeps."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]],
    *,
    within: float = 5.0,
    interval: float = 0.01,
    message: str | None = None,
) -> None:
    """Poll `predicate` until it holds; fail with AssertionError after `within` seconds.

    Live updates, gap recovery (Telethon waits 0.5 s before asking for a difference) and reconnects
    happen in Telethon's background tasks, so tests observe them by polling with a deadline.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        if loop.time() >= deadline:
            raise AssertionError(message or f"condition not met within {within} s")
        await asyncio.sleep(interval)
