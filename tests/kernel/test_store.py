from __future__ import annotations

import asyncio
import threading
import time
import weakref

import pytest
import sqlalchemy as sa

from wayline.kernel import tables as t
from wayline.kernel.store import Store, discard, fetch_rows, insert_ignore


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    yield s
    s.close()


def _add(conn, org_id: str) -> str:
    conn.execute(t.organizations.insert().values(id=org_id, name="n", tenant_id="x", created_ms=1))
    return org_id


def _fail_after_insert(conn, org_id: str) -> None:
    conn.execute(t.organizations.insert().values(id=org_id, name="n", tenant_id="x", created_ms=1))
    raise ValueError("boom")


def _ids(store: Store) -> set[str]:
    return set(store.read_sync(lambda c: c.execute(sa.select(t.organizations.c.id)).scalars().all()))


def test_concurrent_units_commit_together_and_a_failing_one_rolls_back_alone(store):
    async def main():
        ok = [store.write(_add, f"o{i}") for i in range(50)]
        bad = [store.write(_fail_after_insert, f"bad{i}") for i in range(5)]
        results = await asyncio.gather(*ok, *bad, return_exceptions=True)
        return results

    results = asyncio.run(main())
    assert results[:50] == [f"o{i}" for i in range(50)]
    assert all(isinstance(r, ValueError) for r in results[50:])
    assert _ids(store) == {f"o{i}" for i in range(50)}
    assert max(store.group_sizes) > 1  # they did share transactions


def test_a_unit_that_fails_alone_leaves_nothing(store):
    with pytest.raises(ValueError):
        store.write_blocking(_fail_after_insert, "solo")
    assert _ids(store) == set()
    assert store.write_blocking(_add, "after") == "after"
    assert _ids(store) == {"after"}


def test_insert_ignore_counts_only_new_rows(store):
    store.run(_add, "o1")

    def unit(conn):
        rows = [{"id": "o1", "name": "again", "tenant_id": "x", "created_ms": 2},
                {"id": "o2", "name": "new", "tenant_id": "x", "created_ms": 2}]
        return insert_ignore(conn, t.organizations, rows, ["id"])

    assert store.run(unit) == [("o2",)]
    names = store.read_sync(lambda c: dict(c.execute(sa.select(t.organizations.c.id, t.organizations.c.name)).all()))
    assert names == {"o1": "n", "o2": "new"}


def test_coalescer_merges_concurrent_calls_and_isolates_a_failing_one(store):
    from wayline.kernel.store import Coalescer

    calls = []

    def unit(conn, ids):
        calls.append(list(ids))
        for i in ids:
            if i.startswith("bad"):
                raise ValueError(i)
            _add(conn, i)
        return [f"ok:{i}" for i in ids]

    co = Coalescer(store, unit)

    async def main():
        return await asyncio.gather(co.submit(["a", "b"]), co.submit(["c"]), co.submit(["bad1"]),
                                    return_exceptions=True)

    results = asyncio.run(main())
    assert results[0] == ["ok:a", "ok:b"] and results[1] == ["ok:c"] and isinstance(results[2], ValueError)
    assert calls[0] == ["a", "b", "c", "bad1"]  # tried together first, then one by one
    assert _ids(store) == {"a", "b", "c"}


def test_sqlite_wal_is_checkpointed_in_the_background_not_by_the_writer(store):
    if not store.is_sqlite:
        pytest.skip("the WAL and its checkpoints are SQLite's")
    import time

    from wayline.kernel.store import WAL_AUTOCHECKPOINT_PAGES

    async def writes():
        for i in range(20):
            await store.write(_add, f"org-{i}")

    asyncio.run(writes())
    deadline = time.monotonic() + 10
    while store.checkpoints == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.checkpoints >= 1  # the checkpointer thread copied the WAL into the database
    assert store.read_sync(lambda c: c.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()) == \
        WAL_AUTOCHECKPOINT_PAGES  # the writer only checkpoints past this ceiling
    assert len(_ids(store) & {f"org-{i}" for i in range(20)}) == 20
    store.close()
    assert store._checkpointer is None  # stopped with the store


def test_sqlite_reads_through_a_memory_map_when_asked(db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("mmap_size is SQLite's")
    mapped, plain = Store(db_url, mmap_mb=64), Store(db_url)
    try:
        assert mapped.read_sync(lambda c: c.exec_driver_sql("PRAGMA mmap_size").scalar()) == 64 << 20
        assert plain.read_sync(lambda c: c.exec_driver_sql("PRAGMA mmap_size").scalar()) == 0
    finally:
        mapped.close()
        plain.close()


def test_row_chunks_cover_the_rows_in_order_in_few_shapes():
    from wayline.kernel.store import row_chunks

    for n in (0, 1, 7, 333, 512, 1000, 1537):
        rows = list(range(n))
        parts = list(row_chunks(rows, 8))
        assert [x for p in parts for x in p] == rows
        assert all(len(p) & (len(p) - 1) == 0 and len(p) <= 512 for p in parts)  # powers of two
        assert len(parts) <= n // 512 + 10
        plain = list(row_chunks(rows, 8, shapes=False))  # PostgreSQL: the fewest statements
        assert [x for p in plain for x in p] == rows and len(plain) == -(-n // 512)
    assert {len(p) for p in row_chunks(list(range(3000)), 200)} == {128, 32, 16, 8}  # 30,000 // 200 -> 128 a chunk
    assert sorted({len(p) for n in range(1, 600) for p in row_chunks(list(range(n)), 8)}) == [1 << k for k in range(10)]


class _Payload:
    """Something a unit of work is given, whose freeing can be watched."""


def test_the_writer_lets_go_of_a_unit_once_it_is_answered(store):
    # The records of a request are freed by the request once it has its answer, not kept by the
    # writer until the next unit arrives (they would then be freed on the writer's thread).
    freed = threading.Event()

    async def main():
        payload = _Payload()
        weakref.finalize(payload, freed.set)
        assert await store.write(lambda _c, p: "stored", payload) == "stored"
        del payload
        await asyncio.sleep(0)

    asyncio.run(main())
    assert freed.wait(5), "the writer still holds the unit's arguments while it waits for the next unit"


def test_discard_frees_on_the_reaper_thread():
    freed_on: list[str] = []
    payload = _Payload()
    weakref.finalize(payload, lambda: freed_on.append(threading.current_thread().name))
    discard(payload, [payload])
    del payload
    for _ in range(500):
        if freed_on:
            break
        time.sleep(0.01)
    assert freed_on == ["wl-reaper"]


def test_fetch_rows_reads_inside_the_unit_s_transaction(store):
    """`fetch_rows` (the writer's raw reads: the driver's cursor on SQLite) sees what its own unit
    wrote and has not committed, as plain tuples; a unit that fails leaves nothing to see later."""
    mark = "?" if store.engine.dialect.name == "sqlite" else "%s"
    sql = f"SELECT id, name FROM organizations WHERE id IN ({mark}, {mark}) ORDER BY id"

    def unit(conn):
        _add(conn, "f1")
        return fetch_rows(conn, sql, ("f1", "f2"))

    assert [tuple(r) for r in store.write_blocking(unit)] == [("f1", "n")]

    def failing(conn):
        _add(conn, "f2")
        seen.append([tuple(r) for r in fetch_rows(conn, sql, ("f1", "f2"))])
        raise ValueError("boom")

    seen: list = []
    with pytest.raises(ValueError):
        store.write_blocking(failing)
    assert seen == [[("f1", "n"), ("f2", "n")]]
    assert [tuple(r) for r in store.read_sync(lambda c: fetch_rows(c, sql, ("f1", "f2")))] == [("f1", "n")]
