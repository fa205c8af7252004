"""Outbox, inbox, per-key order, parking and durable timers, on both databases."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wayline.kernel import consumers, outbox, timers
from wayline.kernel import tables as t
from wayline.kernel.backbone import Backbone
from wayline.kernel.clock import VirtualClock
from wayline.kernel.consumers import Applier, Outcome, Subscription
from wayline.kernel.store import Store

effects_md = sa.MetaData()
effects = sa.Table("test_effects", effects_md, sa.Column("n", sa.Integer, primary_key=True, autoincrement=True),
                   sa.Column("key", sa.String(100)), sa.Column("seq", sa.Integer), sa.Column("type", sa.String(50)))


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    effects_md.create_all(s.engine)
    yield s
    s.close()


def record(conn, m):
    conn.execute(effects.insert().values(key=m.key, seq=m.seq, type=m.type))


def seen(store):
    rows = store.read_sync(lambda c: c.execute(sa.select(effects.c.key, effects.c.seq, effects.c.type)
                                               .order_by(effects.c.n)).all())
    return [tuple(r) for r in rows]


def add(store, key, n=1, type="e", stream="s"):
    return store.run(lambda c: [outbox.add(c, stream=stream, key=key, type=type, payload={"i": i}, now_ms=1)
                                for i in range(n)])


def test_sequences_continue_per_key_across_many_keys_and_streams(store):
    # More keys than one IN list holds, two streams, a key repeated within one call.
    keys = [f"k{i}" for i in range(1_200)]
    first = store.run(lambda c: outbox.add_many(c, [("s", k, "e", {}) for k in keys] + [("s", "k7", "e", {})]
                                                + [("s2", "k7", "e", {})], now_ms=1))
    assert [m.seq for m in first[:1_200]] == [1] * 1_200
    assert (first[1_200].key, first[1_200].seq, first[1_201].stream, first[1_201].seq) == ("k7", 2, "s2", 1)
    again = store.run(lambda c: outbox.add_many(c, [("s", k, "e", {}) for k in keys], now_ms=2))
    assert [m.seq for m in again] == [3 if k == "k7" else 2 for k in keys]
    # No counter row per key on the write path: only retention leaves marks.
    assert store.read_sync(lambda c: c.execute(sa.select(sa.func.count()).select_from(t.stream_keys)).scalar()) == 0


def test_outbox_messages_exist_only_if_their_transaction_commits(store):
    def fails(conn):
        outbox.add(conn, stream="s", key="k", type="e", payload={}, now_ms=1)
        raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        store.run(fails)
    msgs = add(store, "k", 2) + add(store, "other", 1)
    assert [(m.key, m.seq) for m in msgs] == [("k", 1), ("k", 2), ("other", 1)]
    assert store.read_sync(lambda c: len(outbox.read_after(c, "s", 0, 100))) == 3


def test_each_message_applies_once_in_key_order_whatever_the_delivery(store):
    msgs = add(store, "a", 3) + add(store, "b", 2)
    a = Applier(Subscription("c", "s", record))
    order = [msgs[2], msgs[0], msgs[4], msgs[2], msgs[1], msgs[3], msgs[0]]  # late, early, repeated
    outs = [store.run(lambda c, m=m: a.apply(c, m, now_ms=1)) for m in order]
    assert outs[0] is Outcome.APPLIED  # pulled a1 and a2 from the outbox first
    assert outs[3] is Outcome.DUPLICATE and outs[6] is Outcome.DUPLICATE
    assert seen(store) == [("a", 1, "e"), ("a", 2, "e"), ("a", 3, "e"), ("b", 1, "e"), ("b", 2, "e")]


def test_a_rolled_back_apply_is_applied_again_on_redelivery(store):
    (m,) = add(store, "a", 1)
    a = Applier(Subscription("c", "s", record))

    def crash(conn):
        a.apply(conn, m, now_ms=1)
        raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError):
        store.run(crash)
    assert seen(store) == []
    assert store.run(lambda c: a.apply(c, m, now_ms=1)) is Outcome.APPLIED
    assert seen(store) == [("a", 1, "e")]


def test_a_failing_key_is_parked_visible_and_replayable_without_blocking_others(store):
    broken = {"on": True}

    def handler(conn, m):
        if m.key == "bad" and broken["on"]:
            raise ValueError("cannot apply")
        record(conn, m)

    bb = Backbone(store, VirtualClock())
    bb.subscribe("c", "s", handler, max_attempts=3)
    add(store, "bad", 2)
    add(store, "good", 2)
    bb.run_until_idle()
    assert seen(store) == [("good", 1, "e"), ("good", 2, "e")]
    (p,) = store.read_sync(consumers.parked_keys)
    assert p["key"] == "bad" and p["seq"] == 1 and p["attempts"] == 3 and "cannot apply" in p["error"]
    add(store, "bad", 1)  # arrives while parked: held, in order
    add(store, "good", 1)
    bb.run_until_idle()
    assert ("good", 3, "e") in seen(store) and not any(k == "bad" for k, _, _ in seen(store))
    assert bb.status()["subscriptions"][0]["parked"] == 1
    assert bb.replay("c", "bad") == {"replayed": 0, "parked": True, "found": True}  # still broken
    broken["on"] = False
    assert bb.replay("c", "bad") == {"replayed": 3, "parked": False, "found": True}
    assert [s for s in seen(store) if s[0] == "bad"] == [("bad", 1, "e"), ("bad", 2, "e"), ("bad", 3, "e")]
    assert store.read_sync(consumers.parked_keys) == []


def test_handle_many_applies_a_batch_in_one_call_and_falls_back_per_message_when_it_raises(store):
    broken = {"on": True}
    batches: list[list[tuple[str, int]]] = []

    def handler(conn, m):
        if m.key == "bad" and broken["on"]:
            raise ValueError("cannot apply")
        record(conn, m)

    def many(conn, msgs):
        batches.append([(m.key, m.seq) for m in msgs])
        for m in msgs:  # writes, then fails on the bad key: none of it may stay
            handler(conn, m)

    bb = Backbone(store, VirtualClock())
    bb.subscribe("c", "s", handler, max_attempts=3, handle_many=many)
    add(store, "a", 3)
    add(store, "b", 2)
    bb.run_until_idle()
    assert batches == [[("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2)]]  # one call for the whole batch
    assert seen(store) == [("a", 1, "e"), ("a", 2, "e"), ("a", 3, "e"), ("b", 1, "e"), ("b", 2, "e")]

    add(store, "good", 1)
    add(store, "bad", 2)
    add(store, "good", 1)
    bb.run_until_idle()
    # handle_many raised: its writes were rolled back, the batch went message by message, the bad key parked.
    assert [(k, q) for k, q, _ in seen(store)][5:] == [("good", 1), ("good", 2)]
    (p,) = store.read_sync(consumers.parked_keys)
    assert p["key"] == "bad" and p["seq"] == 1 and p["attempts"] == 3
    broken["on"] = False
    assert bb.replay("c", "bad") == {"replayed": 2, "parked": False, "found": True}
    assert [q for k, q, _ in seen(store) if k == "bad"] == [1, 2]


def test_timers_fire_once_in_due_order_into_their_keys_stream(store):
    clock = VirtualClock()
    bb = Backbone(store, clock)
    bb.subscribe("c", "s", record)
    now = clock.now_ms()
    store.run(lambda c: timers.schedule(c, stream="s", key="k", type="wake", payload={}, due_ms=now + 86_400_000 * 3,
                                        now_ms=now))
    store.run(lambda c: timers.schedule(c, stream="s", key="k", type="nudge", payload={}, due_ms=now + 1000, now_ms=now))
    add(store, "k", 1, type="event")
    bb.advance(1000)
    assert seen(store) == [("k", 1, "event"), ("k", 2, timers.FIRED)]
    bb.advance(86_400_000 * 30)  # thirty days, in milliseconds of test time
    assert seen(store)[-1] == ("k", 3, timers.FIRED)
    assert bb.status()["timers"]["pending"] == 0
    lateness = store.read_sync(lambda c: c.execute(sa.select(t.timers.c.lateness_ms)).scalars().all())
    assert lateness == [0, 0]


def test_an_expired_lease_returns_the_timer_to_the_pool_and_it_fires_once(store):
    clock = VirtualClock()
    now = clock.now_ms()
    tid = store.run(lambda c: timers.schedule(c, stream="s", key="k", type="x", payload={}, due_ms=now, now_ms=now))
    (claimed,) = store.run(lambda c: timers.claim(c, owner="A", now_ms=now, lease_ms=1000, limit=10))
    assert claimed.id == tid
    assert store.run(lambda c: timers.claim(c, owner="B", now_ms=now + 500, lease_ms=1000, limit=10)) == []
    # A stalls; its lease runs out and B takes the timer over.
    (again,) = store.run(lambda c: timers.claim(c, owner="B", now_ms=now + 1500, lease_ms=1000, limit=10))
    assert store.run(lambda c: timers.fire(c, claimed, owner="A", now_ms=now + 1600)) is None
    fired = store.run(lambda c: timers.fire(c, again, owner="B", now_ms=now + 1600))
    assert fired is not None and fired.type == timers.FIRED and fired.payload["timerId"] == tid
    assert store.run(lambda c: timers.fire(c, again, owner="B", now_ms=now + 1700)) is None
    assert store.read_sync(lambda c: c.execute(sa.select(t.timers.c.lateness_ms)).scalar()) == 1600


# -- the property: any delivery, redelivery and crash pattern ends as one in-order run ---------------

deliveries = st.lists(st.tuples(st.integers(0, 11), st.booleans()), min_size=1, max_size=40)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=deliveries)
def test_any_interleaving_of_delivery_redelivery_and_crash_equals_the_in_order_run(store, plan):
    store.run(lambda c: [c.execute(tbl.delete()) for tbl in (effects, t.outbox, t.stream_keys, t.inbox)])
    msgs = add(store, "a", 4) + add(store, "b", 4) + add(store, "c", 4)
    a = Applier(Subscription("prop", "s", record))

    def crash_after(conn, m):
        a.apply(conn, m, now_ms=1)
        raise RuntimeError("crash")

    for index, crash in plan:
        m = msgs[index]
        if crash:
            with pytest.raises(RuntimeError):
                store.run(crash_after, m)
        else:
            store.run(lambda c, m=m: a.apply(c, m, now_ms=1))
    for m in msgs:  # a restart: everything is delivered once more
        store.run(lambda c, m=m: a.apply(c, m, now_ms=1))
    got = seen(store)
    assert sorted(got) == [(m.key, m.seq, "e") for m in msgs]  # each exactly once
    for key in "abc":
        assert [s for k, s, _ in got if k == key] == [1, 2, 3, 4]  # in order per key


def test_two_workers_racing_on_a_keys_first_message_apply_it_once(store):
    """On PostgreSQL the inbox row is created before it is locked; SQLite has one writer anyway."""
    import threading

    (m,) = add(store, "fresh", 1)
    barrier = threading.Barrier(2)
    outs = []

    def worker():
        a = Applier(Subscription("race", "s", record))

        def unit(conn):
            barrier.wait(timeout=10)
            return a.apply(conn, m, now_ms=1)

        try:
            outs.append(store.run(unit))
        except Exception as exc:  # a serialisation failure is a retry, never a second effect
            outs.append(exc)

    if store.is_sqlite:  # BEGIN IMMEDIATE: the second waits for the first; no barrier rendezvous
        barrier = threading.Barrier(1)
    threads = [threading.Thread(target=worker) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=30)
    assert seen(store) == [("fresh", 1, "e")]
    assert sorted(str(o) for o in outs) == sorted([str(Outcome.APPLIED), str(Outcome.DUPLICATE)])


def _outbox_rows(store, stream="s"):
    return store.read_sync(lambda c: c.execute(sa.select(t.outbox.c.key, t.outbox.c.seq).where(
        t.outbox.c.stream == stream).order_by(t.outbox.c.id)).all())


def test_retention_deletes_only_what_every_subscriber_applied_once_it_is_old_enough(store):
    broken = {"on": True}

    def fussy(conn, m):
        if m.key == "bad" and broken["on"]:
            raise ValueError("cannot apply")

    clock = VirtualClock()
    bb = Backbone(store, clock, retention_ms=3_600_000)
    bb.subscribe("c", "s", record)
    bb.subscribe("d", "s", fussy, max_attempts=2)

    def add(store, key, n=1, stream="s"):  # written now, on the virtual clock
        return store.run(lambda c: outbox.add_many(c, [(stream, key, "e", {"i": i}) for i in range(n)],
                                                   now_ms=clock.now_ms()))

    add(store, "a", 3)
    add(store, "bad", 2)
    add(store, "x", 1, stream="nobody-reads-this")
    now = clock.now_ms()
    store.run(lambda c: timers.schedule(c, stream="s", key="a", type="wake", payload={}, due_ms=now + 1000, now_ms=now))
    bb.advance(1000)
    assert [p["key"] for p in store.read_sync(consumers.parked_keys)] == ["bad"]  # d parked it; c applied it
    assert bb.prune_all() == {"messages": 0, "timers": 0}  # everything is younger than the retention

    clock.set(clock.now_ms() + 3_600_001)  # now everything is older than an hour
    assert bb.prune_all() == {"messages": 4, "timers": 1}  # a1-a3 and the timer's message; its timer row
    assert [tuple(r) for r in _outbox_rows(store)] == [("bad", 1), ("bad", 2)]  # d has not applied them
    assert len(_outbox_rows(store, "nobody-reads-this")) == 1  # no subscriber: kept
    assert bb.prune_all() == {"messages": 0, "timers": 0}

    # Numbering goes on after a prune, and the parked key still replays from what was kept.
    (m,) = add(store, "a", 1)
    assert m.seq == 5
    bb.run_until_idle()
    assert [s for k, s, _ in seen(store) if k == "a"] == [1, 2, 3, 4, 5]
    broken["on"] = False
    assert bb.replay("d", "bad") == {"replayed": 2, "parked": False, "found": True}
    clock.set(clock.now_ms() + 3_600_001)
    bb.prune_all()
    assert _outbox_rows(store) == []


def test_retention_waits_for_the_relay_when_a_bus_publishes_the_outbox(store):
    msgs = add(store, "a", 2)
    a = Applier(Subscription("c", "s", record))
    store.run(lambda c: a.apply_batch(c, msgs, now_ms=1))
    late = 10**13
    assert store.run(lambda c: outbox.prune(c, subscribers={"s": ["c"]}, before_ms=late, published=True)) == 0
    store.run(lambda c: outbox.mark_published(c, [msgs[0].id], 2))
    assert store.run(lambda c: outbox.prune(c, subscribers={"s": ["c"]}, before_ms=late, published=True)) == 1
    assert [tuple(r) for r in _outbox_rows(store)] == [("a", 2)]
    # a consumer that never saw the key keeps it, whatever the others did
    assert store.run(lambda c: outbox.prune(c, subscribers={"s": ["c", "new"]}, before_ms=late,
                                            published=False)) == 0
    assert store.run(lambda c: outbox.prune(c, subscribers={"s": ["c"]}, before_ms=late, published=False)) == 1


def test_retention_off_keeps_everything(store):
    clock = VirtualClock()
    bb = Backbone(store, clock, retention_ms=None)
    bb.subscribe("c", "s", record)
    add(store, "a", 2)
    bb.run_until_idle()
    clock.set(clock.now_ms() + 10 * 86_400_000)
    assert bb.prune_all() == {"messages": 0, "timers": 0}
    assert len(_outbox_rows(store)) == 2


def test_the_running_backbone_prunes_on_its_own(store):
    import asyncio
    import time

    bb = Backbone(store, retention_ms=1, prune_every_s=0.05, poll_seconds=0.02)
    bb.subscribe("c", "s", record)
    add(store, "a", 3)  # written at epoch 1 ms: long past the retention

    async def main():
        stop = asyncio.Event()
        task = asyncio.ensure_future(bb.run(stop))
        deadline = time.monotonic() + 20
        while _outbox_rows(store) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(main())
    assert [(k, s) for k, s, _ in seen(store)] == [("a", 1), ("a", 2), ("a", 3)]
    assert _outbox_rows(store) == [] and bb.pruned["messages"] == 3


def test_retention_keeps_what_a_subscriber_of_another_process_has_not_applied(store):
    from wayline.kernel.backbone import SUBSCRIBER_TTL_MS

    clock = VirtualClock()
    here = Backbone(store, clock, retention_ms=3_600_000)  # e.g. the platform's process
    here.subscribe("c", "s", record)
    there = Backbone(store, clock, retention_ms=3_600_000)  # e.g. a worker with another product's consumer
    there.subscribe("d", "s", lambda conn, m: None)
    store.run(there.register)
    store.run(lambda c: outbox.add_many(c, [("s", "a", "e", {}), ("s", "a", "e", {})], now_ms=clock.now_ms()))
    here.run_until_idle()
    clock.set(clock.now_ms() + 3_600_001)
    assert here.prune_all() == {"messages": 0, "timers": 0}  # "d" runs elsewhere and has not applied them
    there.run_until_idle()
    assert here.prune_all() == {"messages": 2, "timers": 0}

    # A subscription not seen for a week is retired: it no longer holds messages back.
    store.run(lambda c: outbox.add_many(c, [("s", "b", "e", {})], now_ms=clock.now_ms()))
    here.run_until_idle()
    clock.set(clock.now_ms() + SUBSCRIBER_TTL_MS + 1)
    assert here.prune_all() == {"messages": 1, "timers": 0}
