"""Time, as a port: the system clock in production, a virtual clock in tests.

Journeys wait days; tests don't. Everything that asks "what time is it" or schedules by time goes
through a Clock, so a test can move time forward and run all that became due, deterministically.
"""

from __future__ import annotations

import asyncio
import time


class Clock:
    """The system clock."""

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class VirtualClock(Clock):
    """A clock that moves only when told to. `sleep` returns at once (time is driven by the test)."""

    def __init__(self, start_ms: int = 1_767_225_600_000) -> None:  # 2026-01-01T00:00:00Z
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def set(self, ms: int) -> None:
        if ms < self._now:
            raise ValueError("a virtual clock does not go back")
        self._now = ms

    def advance(self, ms: int) -> int:
        self.set(self._now + ms)
        return self._now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds` of wall time, or less if `stop` is set meanwhile (the background loops' sleep)."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass
