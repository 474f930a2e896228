"""Time as the request gateway and the tests see it: a monotonic reading and a sleep, nothing else.

Pacing, flood waits and backoff are all "wait until then" decisions. Giving them one small clock object
instead of `time.monotonic` and `asyncio.sleep` lets a test run a Telegram-sized day of rate limits in
seconds (a `ScaledClock` shared by the emitter and the fake Telegram), with the same code as production.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """A monotonic clock in seconds and a way to wait on it."""

    def monotonic(self) -> float:
        """Seconds since an arbitrary origin; never goes back."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        ...

    def to_real(self, seconds: float) -> float:
        """How many real seconds `seconds` of this clock's time take (for timeouts on events)."""
        ...

    def time(self) -> float:
        """Unix seconds on this clock (what budgets kept across restarts are dated by)."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        """`time.monotonic()`."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """`asyncio.sleep(seconds)`."""
        await asyncio.sleep(max(0.0, seconds))

    def to_real(self, seconds: float) -> float:
        """The same seconds."""
        return seconds

    def time(self) -> float:
        """`time.time()`."""
        return time.time()

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()
"""The clock every component uses unless it is given another."""


class ScaledClock:
    """A clock that runs `speed` times faster than the real one (tests and benchmarks).

    Its seconds are real seconds divided by `speed`: a 120 s flood wait passes in 1.2 s at speed 100.
    Everything that shares one instance (the gateway, the fake Telegram's rate limits) agrees on time.
    """

    def __init__(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed!r}")
        self.speed = speed
        self._origin = time.monotonic()
        self._epoch = time.time()

    def monotonic(self) -> float:
        """Scaled seconds since the clock was made."""
        return (time.monotonic() - self._origin) * self.speed

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` scaled seconds."""
        await asyncio.sleep(self.to_real(seconds))

    def to_real(self, seconds: float) -> float:
        """`seconds` divided by the speed."""
        return max(0.0, seconds) / self.speed

    def time(self) -> float:
        """The real time the clock was made, plus its scaled seconds since (one day passes in 1/speed)."""
        return self._epoch + self.monotonic()

    def __repr__(self) -> str:
        return f"ScaledClock(speed={self.speed!r})"
