"""The bus port, and its scale-out adapter: NATS JetStream.

The outbox table is the durable log; the bus carries copies of its rows to the workers that apply
them. The relay (relay.py) publishes committed outbox rows; consumer runners (nats_consumer.py) pull
them, apply them through the inbox and acknowledge. The bus only has to deliver at least once.

Naming, with the default prefix `wayline` (a test or a second installation on one NATS server picks
another prefix):

- each backbone stream `s` is one JetStream stream `wayline_s`, subjects `wayline.s.*`;
- a message of key `k` is published to `wayline.s.<16 hex digits of blake2b(k)>`;
- each subscription (consumer `c` on stream `s`) is one durable pull consumer `c` on `wayline_s`,
  explicit acks, no delivery limit (parking after N attempts is the Applier's business);
- the header `Nats-Msg-Id` is the outbox id, so JetStream drops a re-publish within the stream's
  duplicate window (10 minutes by default); a re-publish after that is skipped by the inbox anyway.

Names that are not valid NATS tokens are rewritten (`[^A-Za-z0-9_-]` → `_`) with a short hash of the
original appended, so two different names never meet.

The body is the whole message (id, stream, key, seq, type, payload, created_ms) as JSON: keys and
types may hold any character, which headers may not.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

import nats
import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api
from nats.js.client import JetStreamContext

from wayline.kernel.outbox import Message

log = logging.getLogger("wayline.bus")

MSG_ID = "Nats-Msg-Id"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def token(name: str) -> str:
    """`name` as a NATS subject token / stream / consumer name; distinct names stay distinct."""
    if not name:
        raise ValueError("empty name")
    safe = _UNSAFE.sub("_", name)
    if safe != name:
        safe += "-" + hashlib.blake2b(name.encode(), digest_size=3).hexdigest()
    return safe


def key_hash(key: str) -> str:
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


def encode(msg: Message) -> bytes:
    return orjson.dumps([msg.id, msg.stream, msg.key, msg.seq, msg.type, msg.payload, msg.created_ms])


def decode(data: bytes) -> Message:
    mid, stream, key, seq, type_, payload, created = orjson.loads(data)
    return Message(mid, stream, key, seq, type_, payload, created)


class Bus(Protocol):
    """What the relay and the consumer runners need of a bus."""

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def ensure_stream(self, stream: str) -> None: ...

    async def ensure_consumer(self, stream: str, consumer: str) -> None: ...

    async def publish(self, messages: Sequence[Message], *, timeout: float = 5.0) -> list[int]: ...


class NatsBus:
    """NATS JetStream. One connection; streams and durable pull consumers are created on demand."""

    def __init__(self, url: str = "nats://127.0.0.1:4222", *, prefix: str = "wayline", ack_wait_s: float = 30.0,
                 duplicate_window_s: float = 600.0, max_age_s: float = 7 * 86_400.0, storage: str = "file",
                 max_ack_pending: int = 20_000, name: str | None = None, connect_timeout_s: float = 30.0,
                 request_timeout_s: float = 5.0) -> None:
        self.url = url
        self.prefix = token(prefix)
        self.ack_wait_s = ack_wait_s
        self.duplicate_window_s = duplicate_window_s
        self.max_age_s = max_age_s
        self.storage = api.StorageType.FILE if storage == "file" else api.StorageType.MEMORY
        self.max_ack_pending = max_ack_pending
        self.name = name
        self.connect_timeout_s = connect_timeout_s
        self.request_timeout_s = request_timeout_s
        self.nc: NATS | None = None
        self.js: JetStreamContext | None = None
        self._streams: set[str] = set()
        self._consumers: set[tuple[str, str]] = set()
        self._ensure_lock: asyncio.Lock | None = None
        self._acks: dict[str, _PublishBatch] = {}
        self._ack_sub: Any = None
        self._ack_sub_nc: Any = None
        self._ack_prefix = ""
        self._calls = 0
        self.disconnects = 0
        self.reconnects = 0

    # -- names -------------------------------------------------------------------------------------

    def stream_name(self, stream: str) -> str:
        """The JetStream stream that carries backbone stream `stream`."""
        return f"{self.prefix}_{token(stream)}"

    def subjects(self, stream: str) -> str:
        return f"{self.prefix}.{token(stream)}.*"

    def subject(self, stream: str, key: str) -> str:
        return f"{self.prefix}.{token(stream)}.{key_hash(key)}"

    @staticmethod
    def durable_name(consumer: str) -> str:
        return token(consumer)

    # -- connection --------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def connect(self) -> None:
        """Connect (retrying until `connect_timeout_s`); later losses reconnect for ever."""
        if self.nc is not None and not self.nc.is_closed:
            return
        deadline = time.monotonic() + self.connect_timeout_s
        delay = 0.1
        while True:
            try:
                self.nc = await nats.connect(
                    self.url, name=self.name, connect_timeout=2, allow_reconnect=True,
                    max_reconnect_attempts=-1, reconnect_time_wait=0.25, ping_interval=5,
                    max_outstanding_pings=3, error_cb=self._on_error, disconnected_cb=self._on_disconnect,
                    reconnected_cb=self._on_reconnect)
                break
            except Exception as exc:
                if time.monotonic() + delay > deadline:
                    raise ConnectionError(f"NATS at {self.url} does not answer: {exc!r}") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        self.js = self.nc.jetstream(timeout=self.request_timeout_s)
        self._ensure_lock = asyncio.Lock()

    async def close(self) -> None:
        nc, self.nc, self.js = self.nc, None, None
        self._ack_sub = self._ack_sub_nc = None
        self._streams.clear()
        self._consumers.clear()
        if nc is not None and not nc.is_closed:
            try:
                await nc.close()
            except Exception:  # closing a connection that is already gone
                log.debug("closing NATS", exc_info=True)

    async def _on_error(self, exc: Exception) -> None:
        log.debug("NATS: %r", exc)

    async def _on_disconnect(self) -> None:
        self.disconnects += 1
        log.info("NATS disconnected")

    async def _on_reconnect(self) -> None:
        self.reconnects += 1
        log.info("NATS reconnected")

    def _nc(self) -> NATS:
        if self.nc is None:
            raise RuntimeError("the bus is not connected")
        return self.nc

    def _js(self) -> JetStreamContext:
        if self.js is None:
            raise RuntimeError("the bus is not connected")
        return self.js

    # -- streams and consumers ---------------------------------------------------------------------

    async def ensure_stream(self, stream: str) -> None:
        """Create the JetStream stream of `stream` unless it exists (idempotent, cached)."""
        if stream in self._streams:
            return
        js = self._js()
        assert self._ensure_lock is not None
        async with self._ensure_lock:
            if stream in self._streams:
                return
            name = self.stream_name(stream)
            try:
                await js.stream_info(name)
            except nats.js.errors.NotFoundError:
                cfg = api.StreamConfig(name=name, subjects=[self.subjects(stream)],
                                       retention=api.RetentionPolicy.LIMITS, storage=self.storage,
                                       max_age=self.max_age_s, duplicate_window=self.duplicate_window_s,
                                       num_replicas=1, discard=api.DiscardPolicy.OLD,
                                       description=f"wayline backbone stream {stream!r}")
                try:
                    await js.add_stream(cfg)
                except nats.js.errors.BadRequestError:  # created meanwhile by another worker
                    await js.stream_info(name)
            self._streams.add(stream)

    async def ensure_consumer(self, stream: str, consumer: str) -> None:
        """Create the durable pull consumer of subscription (`consumer`, `stream`) unless it exists."""
        if (stream, consumer) in self._consumers:
            return
        await self.ensure_stream(stream)
        js = self._js()
        sname, durable = self.stream_name(stream), self.durable_name(consumer)
        try:
            await js.consumer_info(sname, durable)
        except nats.js.errors.NotFoundError:
            cfg = api.ConsumerConfig(name=durable, durable_name=durable, ack_policy=api.AckPolicy.EXPLICIT,
                                     deliver_policy=api.DeliverPolicy.ALL, ack_wait=self.ack_wait_s,
                                     max_deliver=-1, max_ack_pending=self.max_ack_pending,
                                     max_waiting=512, description=f"wayline subscription {consumer!r}")
            try:
                await js.add_consumer(sname, cfg)
            except nats.js.errors.BadRequestError:
                await js.consumer_info(sname, durable)
        self._consumers.add((stream, consumer))

    def forget(self) -> None:
        """Forget what was ensured (after the server lost its state): the next calls ensure again."""
        self._streams.clear()
        self._consumers.clear()

    # -- publishing --------------------------------------------------------------------------------

    async def publish(self, messages: Sequence[Message], *, timeout: float = 5.0) -> list[int]:
        """Publish `messages` in order; returns the ids JetStream acknowledged (stored or dropped as
        duplicates) within `timeout`. Ids not returned were perhaps stored, perhaps not: publish again.

        (Plain publishes with a reply subject of ours, the acks read by one subscription: the client's
        publish_async costs a semaphore, a random token and a parsed dataclass per message.)"""
        nc = self._nc()
        for stream in {m.stream for m in messages}:
            await self.ensure_stream(stream)
        await self._ensure_ack_sub()
        self._calls += 1
        batch = _PublishBatch()
        base = f"{self._ack_prefix}{self._calls}_"
        sent = 0
        for m in messages:
            token = f"{self._calls}_{m.id}"
            batch.pending.add(token)
            self._acks[token] = batch
            try:
                await nc.publish(self.subject(m.stream, m.key), encode(m), reply=base + str(m.id),
                                 headers={MSG_ID: str(m.id)})
            except Exception as exc:  # the buffer is full while disconnected, the connection closed
                batch.pending.discard(token)
                self._acks.pop(token, None)
                log.info("publishing stopped after %d of %d: %r", sent, len(messages), exc)
                break
            sent += 1
        try:
            if batch.pending:
                await asyncio.wait_for(batch.done.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            for token in batch.pending:
                self._acks.pop(token, None)
        if batch.failed:
            log.info("publish failed for %d messages, e.g. %s", len(batch.failed), batch.failed[0])
        if batch.no_stream:
            self.forget()
        return batch.acked

    async def _ensure_ack_sub(self) -> None:
        nc = self._nc()
        if self._ack_sub is None or self._ack_sub_nc is not nc:
            self._ack_prefix = nc.new_inbox() + "."
            self._ack_sub = await nc.subscribe(self._ack_prefix + "*", cb=self._on_ack, pending_msgs_limit=1_000_000,
                                               pending_bytes_limit=1 << 30)
            self._ack_sub_nc = nc

    async def _on_ack(self, msg: Msg) -> None:
        token = msg.subject[len(self._ack_prefix):]
        batch = self._acks.pop(token, None)
        if batch is None:
            return  # the publish call timed out already
        batch.pending.discard(token)
        status = msg.headers.get("Status") if msg.headers else None
        data = msg.data
        if status == "503":
            batch.failed.append(f"{token}: no stream")
            batch.no_stream = True
        elif status or b'"error"' in data:
            batch.failed.append(f"{token}: {status or ''} {data[:300]!r}")
        else:
            batch.acked.append(int(token.rsplit("_", 1)[1]))
        if not batch.pending:
            batch.done.set()

    def puller(self, stream: str, consumer: str, *, batch: int = 256, expires_s: float = 5.0) -> Puller:
        """A pull client of the durable consumer of (`consumer`, `stream`); see Puller."""
        return Puller(self, stream, consumer, batch=batch, expires_s=expires_s)

    # -- inspection --------------------------------------------------------------------------------

    async def stream_info(self, stream: str) -> api.StreamInfo:
        return await self._js().stream_info(self.stream_name(stream))

    async def stream_messages(self, stream: str) -> int:
        """How many messages the JetStream stream of `stream` holds."""
        info = await self.stream_info(stream)
        return info.state.messages

    async def consumer_status(self, stream: str, consumer: str) -> dict[str, int]:
        """Lag as JetStream sees it: pending (not yet delivered), ack pending, redelivered."""
        info = await self._js().consumer_info(self.stream_name(stream), self.durable_name(consumer))
        return {"pending": info.num_pending or 0, "ackPending": info.num_ack_pending or 0,
                "redelivered": info.num_redelivered or 0, "waiting": info.num_waiting or 0}

    async def delete_stream(self, stream: str) -> bool:
        """Delete the JetStream stream of `stream` (and its consumers); False if there was none."""
        self._streams.discard(stream)
        self._consumers = {sc for sc in self._consumers if sc[0] != stream}
        try:
            return await self._js().delete_stream(self.stream_name(stream))
        except nats.js.errors.NotFoundError:
            return False

    async def delete_prefix_streams(self) -> int:
        """Delete every JetStream stream of this bus's prefix (tests, benchmarks)."""
        js = self._js()
        names: list[str] = []
        offset = 0
        while True:
            page = await js.streams_info(offset)
            names += [i.config.name for i in page if i.config.name and i.config.name.startswith(self.prefix + "_")]
            if not page:
                break
            offset += len(page)
        for name in names:
            try:
                await js.delete_stream(name)
            except nats.js.errors.NotFoundError:
                pass
        self.forget()
        return len(names)


def attempt_of(msg: Msg) -> int:
    """How many times JetStream has delivered this message (1 on the first delivery).

    From the reply subject, `$JS.ACK.<stream>.<consumer>.<delivered>.…` (9 tokens) or, with a domain
    and account, `$JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.…` (12 or more)."""
    tokens = msg.reply.split(".")
    return int(tokens[4] if len(tokens) == 9 else tokens[6])


class _PublishBatch:
    __slots__ = ("acked", "done", "failed", "no_stream", "pending")

    def __init__(self) -> None:
        self.pending: set[str] = set()
        self.acked: list[int] = []
        self.failed: list[str] = []
        self.no_stream = False
        self.done = asyncio.Event()


class Puller:
    """Pulls from a durable JetStream consumer, keeping one pull request open.

    A request asks for up to `batch` messages and lives `expires_s`; JetStream sends messages as they
    become available, so `fetch` returns as soon as there are any (it does not wait for a full batch).
    A request that ends (all delivered, expired: status 408, or refused: 409) is replaced at the next
    fetch; one that went quiet for longer than it could live (the server restarted) is replaced too.
    Messages are acked by their reply subjects as usual; nothing here decides what is applied.
    """

    def __init__(self, bus: NatsBus, stream: str, consumer: str, *, batch: int = 256, expires_s: float = 5.0) -> None:
        self.bus = bus
        self.stream = stream
        self.consumer = consumer
        self.batch = batch
        self.expires_s = expires_s
        self.buffer: deque[Msg] = deque()
        self.sub: Any = None
        self.inbox = ""
        self._nc: Any = None
        self._open = 0  # messages the open request may still deliver (0: no request open)
        self._since = 0.0  # when the open request was made or last heard from
        self._reconnects = 0
        self._refused = 0.0  # when the server last refused a request (409)
        self._ready = asyncio.Event()
        self.error: str | None = None

    async def start(self) -> None:
        await self.bus.ensure_consumer(self.stream, self.consumer)
        nc = self.bus._nc()
        self._nc = nc
        self.inbox = nc.new_inbox()
        self.sub = await nc.subscribe(self.inbox, cb=self._on_msg, pending_msgs_limit=1_000_000,
                                      pending_bytes_limit=1 << 30)
        self._next = (f"$JS.API.CONSUMER.MSG.NEXT.{self.bus.stream_name(self.stream)}."
                      f"{self.bus.durable_name(self.consumer)}")
        self._open = 0

    async def close(self) -> None:
        sub, self.sub = self.sub, None
        self._open = 0
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception:  # the connection is gone already
                log.debug("unsubscribe", exc_info=True)

    async def _on_msg(self, msg: Msg) -> None:
        self._since = time.monotonic()
        status = msg.headers.get("Status") if msg.headers else None
        if status is None:
            self.buffer.append(msg)
            self._open -= 1
        elif status == "100":
            return  # heartbeat
        else:  # 404, 408: the request ended; 409: refused (max waiting, consumer deleted, …)
            if status == "409":
                desc = msg.headers.get("Description", "")
                if "deleted" in desc.lower():
                    self.error = f"409 {desc}"
                self._refused = self._since
            self._open = 0
        self._ready.set()

    async def _request(self) -> None:
        n = self.batch - len(self.buffer)
        if n <= 0:
            return
        self._open = n
        self._since = time.monotonic()
        self._reconnects = self.bus.reconnects
        await self._nc.publish(self._next, orjson.dumps({"batch": n, "expires": int(self.expires_s * 1e9)}),
                               reply=self.inbox)

    async def fetch(self, max_msgs: int | None = None, timeout: float = 1.0) -> list[Msg]:
        """Up to `max_msgs` messages: those already here, else the first to arrive within `timeout`."""
        if self.sub is None or self._nc is not self.bus.nc:
            await self.close()
            await self.start()
        if self.error:
            error, self.error = self.error, None
            raise RuntimeError(f"the consumer refused a pull: {error}")
        max_msgs = max_msgs or self.batch
        deadline = time.monotonic() + timeout
        while not self.buffer:
            now = time.monotonic()
            if self._open > 0 and (now - self._since > self.expires_s + 1.0 or self._reconnects != self.bus.reconnects):
                self._open = 0  # lost with a restarted server or a broken connection
            if self._open <= 0 and now - self._refused > 0.2:  # (not straight back after a refusal)
                await self._request()
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            self._ready.clear()
            if self.buffer:
                break
            try:
                await asyncio.wait_for(self._ready.wait(), min(left, 0.2) if self._open <= 0 else left)
            except TimeoutError:
                if time.monotonic() >= deadline:
                    return []
        out = [self.buffer.popleft() for _ in range(min(max_msgs, len(self.buffer)))]
        if self._open <= 0 and time.monotonic() - self._refused > 0.2:
            await self._request()  # the next batch travels while this one is applied
        return out
