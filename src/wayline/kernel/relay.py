"""The relay: copies committed outbox rows to the bus, in id order, then marks them published.

A round reads the oldest unpublished rows, publishes them (header `Nats-Msg-Id` = outbox id), waits
for JetStream's acknowledgements and marks the acknowledged rows published. A crash between publish
and mark only means the next round publishes them again, and JetStream drops the copies (within its
duplicate window; later, the consumers' inbox skips them). A row is never marked before the bus has
stored it, so a lost publish is retried, never forgotten.

Several relays may run (one per worker); on PostgreSQL one of them leads at a time through a
session advisory lock held on a connection of its own, so rows are not published once per worker.
The lock goes with the connection: a crashed leader's successor takes over within `leader_check_s`.
Leadership is an economy, not a guarantee: two relays at once only cause duplicates JetStream drops.

On PostgreSQL each relay also LISTENs on the outbox's NOTIFY channel (one connection each; a relay
that does not lead ignores what it hears): every transaction that writes the outbox notifies at
commit, so rows written by any process are relayed at once. Polling stays as the safety net (every
`poll_seconds` while not listening, every `listening_poll_s` while listening).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import sqlalchemy as sa

from wayline.kernel import outbox
from wayline.kernel.bus import Bus
from wayline.kernel.clock import Clock, pause
from wayline.kernel.store import Store

log = logging.getLogger("wayline.relay")

_PG_RELAY_LOCK = 0x57795265  # "WyRe"


class Relay:
    def __init__(self, store: Store, bus: Bus, *, clock: Clock | None = None, batch: int = 1000,
                 poll_seconds: float = 0.02, ack_timeout_s: float = 5.0, exclusive: bool = True,
                 leader_check_s: float = 1.0, listening_poll_s: float = 0.5) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock or Clock()
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.ack_timeout_s = ack_timeout_s
        self.exclusive = exclusive and not store.is_sqlite
        self.leader_check_s = leader_check_s
        self.listening_poll_s = listening_poll_s
        self.listening = False  # connected and LISTENing for the outbox's NOTIFY
        self.notifications = 0
        self.published = 0  # rows marked published by this relay
        self.rounds = 0
        self.incomplete = 0  # rounds in which the bus did not acknowledge everything
        self.last_read = 0
        self._wake: asyncio.Event | None = None
        self._lock_conn: Any = None
        self._checked = 0.0

    def notify(self) -> None:
        """Rows were added to the outbox: relay now rather than at the next poll."""
        if self._wake is not None:
            self._wake.set()

    async def relay_once(self) -> int:
        """One round: publish the oldest unpublished rows; returns how many were marked published."""
        rows = await self.store.read(outbox.unpublished, self.batch)
        self.last_read = len(rows)
        if not rows:
            return 0
        self.rounds += 1
        acked = await self.bus.publish(rows, timeout=self.ack_timeout_s)
        if len(acked) < len(rows):
            self.incomplete += 1
        if acked:
            await self.store.write(outbox.mark_published, acked, self.clock.now_ms())
            self.published += len(acked)
        return len(acked)

    async def drain(self, timeout_s: float = 30.0) -> int:
        """Relay until nothing is left unpublished (tests, benchmarks, shutdown)."""
        deadline = time.monotonic() + timeout_s
        total = 0
        while True:
            n = await self.relay_once()
            total += n
            if n == 0 and not await self.store.read(outbox.unpublished, 1):
                return total
            if time.monotonic() > deadline:
                raise TimeoutError(f"outbox not drained after {timeout_s}s ({total} published)")
            if n == 0:
                await asyncio.sleep(0.1)

    # -- leadership (PostgreSQL) -------------------------------------------------------------------

    def _try_lead_sync(self) -> bool:
        if self._lock_conn is None:
            conn = self.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": _PG_RELAY_LOCK}).scalar()
            except Exception:
                conn.close()
                raise
            if not got:
                conn.close()
                return False
            self._lock_conn = conn
            log.info("relay: leading")
            return True
        try:
            self._lock_conn.execute(sa.text("SELECT 1"))
            return True
        except Exception:
            log.warning("relay: lost the leader connection", exc_info=True)
            self._release_sync()
            return False

    def _release_sync(self) -> None:
        conn, self._lock_conn = self._lock_conn, None
        if conn is not None:
            try:
                conn.close()  # ends the session, and with it the lock
            except Exception:
                pass

    async def _lead(self) -> bool:
        if not self.exclusive:
            return True
        now = time.monotonic()
        if self._lock_conn is not None and now - self._checked < self.leader_check_s:
            return True
        self._checked = now
        try:
            return await asyncio.to_thread(self._try_lead_sync)
        except Exception:
            log.warning("relay: cannot take the leader lock", exc_info=True)
            return False

    # -- listening (PostgreSQL) --------------------------------------------------------------------

    async def _listen(self, stop: asyncio.Event) -> None:
        """Wake the relay on every NOTIFY of the outbox channel; reconnects with backoff."""
        import psycopg

        conninfo = "postgresql://" + self.store.url.split("://", 1)[1]
        backoff = 0.1
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {outbox.CHANNEL}")
                    self.listening, backoff = True, 0.1
                    self.notify()  # rows committed before LISTEN took effect
                    async for _ in conn.notifies():
                        self.notifications += 1
                        self.notify()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("relay: not listening for outbox notifications", exc_info=True)
            finally:
                self.listening = False
            await pause(stop, backoff)
            backoff = min(backoff * 2, 2.0)

    # -- running -----------------------------------------------------------------------------------

    async def _wait(self, stop: asyncio.Event, seconds: float) -> None:
        assert self._wake is not None
        if self._wake.is_set():
            self._wake.clear()
            return
        waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        self._wake.clear()

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set; survives bus and database outages (retrying with backoff)."""
        self._wake = asyncio.Event()
        backoff = 0.05
        listener = None if self.store.is_sqlite else asyncio.ensure_future(self._listen(stop))
        try:
            while not stop.is_set():
                if not await self._lead():
                    await pause(stop, self.leader_check_s)  # notifications are the leader's business
                    continue
                try:
                    n = await self.relay_once()
                except Exception:
                    log.warning("relay round failed", exc_info=True)
                    n, self.last_read = 0, -1
                if n < self.last_read or self.last_read < 0:  # the bus or the database is failing
                    await self._wait(stop, backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                backoff = 0.05
                if n == 0:
                    await self._wait(stop, self.listening_poll_s if self.listening else self.poll_seconds)
        finally:
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)
            if self._lock_conn is not None:
                await asyncio.to_thread(self._release_sync)
