"""The one lifecycle every adapter shares: idempotent `start`/`stop`, and `async with` around them."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Service:
    """Base of adapters with I/O (sinks, sources, servers): `async with x:` starts and stops `x`."""

    async def start(self) -> None:
        """Acquire what the adapter needs (idempotent)."""

    async def stop(self) -> None:
        """Release it (idempotent)."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
