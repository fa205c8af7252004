"""Processing a completed batch: its files → records and failed records, chunk by chunk, resumable.

See `batches` for the lifecycle. The one rule here: a chunk's records, its failed records, the
batch's counts and its checkpoint (`records_total`) change in one transaction, guarded by a
compare-and-set on the checkpoint, so a chunk is stored exactly once however often processing is
interrupted, resumed or raced.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection

from wayline.config import Limits
from wayline.kernel.problems import Problem
from wayline.kernel.store import Store, now_ms
from wayline.platform import tables as t
from wayline.platform.batches import (
    CHUNK_RECORDS,
    LEASE_MS,
    MAX_BATCH_ERRORS,
    MAX_ID_CHARS,
    Batch,
    Superseded,
    get_batch,
    list_files,
)
from wayline.platform.datasets import Dataset
from wayline.platform.fieldpaths import type_lookup
from wayline.platform.fileformats import Item, read_items, violation
from wayline.platform.ingestion import Prepared, prepare, store_prepared
from wayline.platform.profiles import ViewMerger

bt, bf = t.batches, t.batch_files
log = structlog.get_logger("wayline.batches")
Progress = Callable[[int, int], None]  # (records consumed, bytes consumed) of the whole batch


@dataclass
class _Chunk:
    prepared: list[Prepared]
    errors: list[dict[str, Any]]


def process_batch(store: Store, batch: Batch, *, dataset: Dataset, compiled: Any, limits: Limits,
                  chunk: int = CHUNK_RECORDS, on_progress: Progress | None = None,
                  views: ViewMerger | None = None) -> Batch:
    """Process a batch that `start_complete` put in `processing`; returns it finished.

    Runs on the calling thread (never an event loop's): reads and parses here, writes on the store's
    writer threads. Resumes from the batch's checkpoint. If another processor has taken the batch
    over, stops and returns the batch as it is. `views` (the server's prepare pool) merges the stored
    profiles of a profile dataset's chunks in another process, as for streamed records.
    """
    type_at = type_lookup(getattr(compiled, "json_schema", None))
    files = store.read_sync(list_files, batch.id)
    done, position, before = batch.total, 0, 0
    current = _Chunk([], [])
    # Chunks are decided and written one after the other: overlapping the two on a second thread was
    # measured and gained nothing (both are Python work under the GIL), so the simple loop stays.
    try:
        for f in files:
            parts = _parts(store, batch, f["name"], f["parts"])
            for item in read_items(batch.fmt, f["name"], parts, type_at):
                position += 1
                if position <= done:  # stored by an earlier run
                    continue
                current.prepared.append(_decide(item, dataset, compiled, limits, batch.id))
                if item.error:
                    current.errors.append({"code": "file-format", "file": f["name"], "message": item.error})
                if len(current.prepared) >= chunk:
                    done = _commit(store, batch, done, current, finish=False, limits=limits, views=views)
                    current = _Chunk([], [])
                    if on_progress:
                        on_progress(done, before + item.pos)
            before += f["size"]
        _commit(store, batch, done, current, finish=True, limits=limits, views=views)
        if on_progress:
            on_progress(position, before)
    except Superseded:
        pass
    except BaseException:
        # Let a re-completion resume at once instead of waiting for the lease to end.
        try:
            store.write_blocking(_release, batch.id)
        except (sa.exc.SQLAlchemyError, RuntimeError, OSError):
            log.warning("could not release the batch lease", batch_id=batch.id)
        raise
    return store.read_sync(get_batch, batch.sandbox_id, batch.id)


def _parts(store: Store, batch: Batch, name: str, count: int) -> Iterator[bytes]:
    for i in range(count):
        data = store.read_sync(lambda c, i=i: c.execute(sa.select(bf.c.data).where(
            bf.c.batch_id == batch.id, bf.c.name == name, bf.c.part == i)).scalar_one())
        yield bytes(data)


def _decide(item: Item, dataset: Dataset, compiled: Any, limits: Limits, batch_id: str) -> Prepared:
    """The streaming path's decision for one item; unreadable and oversized items become failures."""
    entity = item.entity
    rid = entity.get("_id") if isinstance(entity, dict) else None
    rid = rid if isinstance(rid, str) and rid else None
    if item.violations:
        return Prepared(dataset, batch_id, entity, False, item.violations, record_id=_fits(rid),
                        batch_id=batch_id, raw=item.raw)
    if rid is not None and len(rid) > MAX_ID_CHARS:
        return Prepared(dataset, batch_id, entity, False,
                        [violation(f"_id is {len(rid)} characters; at most {MAX_ID_CHARS}", "maxLength", "/_id")],
                        batch_id=batch_id)
    try:
        return prepare(dataset, compiled, entity, limits, xaction_id=batch_id, batch_id=batch_id)
    except Problem as exc:
        if exc.status != 413:
            raise
        # Refused by the streaming API; in a batch it was accepted with the file, so it is kept.
        return Prepared(dataset, batch_id, entity, False, [violation(exc.detail, "maxSize")], record_id=_fits(rid),
                        batch_id=batch_id)


def _fits(rid: str | None) -> str | None:
    return rid if rid is None or len(rid) <= MAX_ID_CHARS else None


def _commit(store: Store, batch: Batch, done: int, chunk: _Chunk, *, finish: bool, limits: Limits,
            views: ViewMerger | None = None) -> int:
    """Store one chunk; on a storage error, record by record, keeping what cannot be stored as failed."""
    try:
        return store.write_blocking(_store_chunk, batch, done, chunk.prepared, chunk.errors, finish, limits, views)
    except Superseded:
        raise
    except sa.exc.SQLAlchemyError as exc:
        log.warning("a chunk could not be stored; storing it record by record", batch_id=batch.id,
                    error=str(exc).splitlines()[0][:200])
    for i, p in enumerate(chunk.prepared):
        errors = chunk.errors if i == 0 else []
        try:
            done = store.write_blocking(_store_chunk, batch, done, [p], errors, False, limits)
        except Superseded:
            raise
        except sa.exc.SQLAlchemyError as exc:
            done = store.write_blocking(_store_chunk, batch, done, [_unstorable(p, exc)], errors, False, limits)
    return store.write_blocking(_store_chunk, batch, done, [], [], True, limits) if finish else done


def _unstorable(p: Prepared, exc: Exception) -> Prepared:
    # The database refused the record itself (e.g. PostgreSQL and a NUL character). Keep it as JSON
    # text, which escapes what the database refused, so it can still be read, corrected and replayed.
    text = orjson.dumps(p.entity).decode() if p.raw is None else p.raw.replace("\x00", "\ufffd")
    msg = "the database refused the record: " + str(getattr(exc, "orig", exc)).splitlines()[0][:300]
    return Prepared(p.dataset, p.xaction_id, None, False, [*p.violations, violation(msg, "storage")],
                    record_id=_fits(p.record_id), batch_id=p.batch_id, raw=text)


def _store_chunk(conn: Connection, batch: Batch, done: int, prepared: list[Prepared], errors: list[dict[str, Any]],
                 finish: bool, limits: Limits, views: ViewMerger | None = None) -> int:
    now = now_ms()
    res = conn.execute(bt.update().where(bt.c.id == batch.id, bt.c.status == "processing",
                                         bt.c.records_total == done)
                       .values(records_total=done + len(prepared), lease_until_ms=now + LEASE_MS))
    if res.rowcount != 1:
        raise Superseded(batch.id)
    stored = store_prepared(conn, batch.sandbox_id, prepared, now, limits, views=views) if prepared else []
    ok = sum(1 for s in stored if s.ok and not s.duplicate)
    dup = sum(1 for s in stored if s.ok and s.duplicate)
    row = conn.execute(sa.select(bt).where(bt.c.id == batch.id)).mappings().one()
    values: dict[str, Any] = {"records_ok": row["records_ok"] + ok, "records_duplicate": row["records_duplicate"] + dup,
                              "records_failed": row["records_failed"] + len(stored) - ok - dup}
    all_errors = list(row["errors"] or [])
    if errors and len(all_errors) < MAX_BATCH_ERRORS:
        all_errors += errors[:MAX_BATCH_ERRORS - len(all_errors)]
        values["errors"] = all_errors
    if finish:
        total, failed = done + len(prepared), values["records_failed"]
        if total == 0:
            status = "failed"
            all_errors.append({"code": "no-records", "message": "the batch's files hold no records"})
        else:
            status = "success" if failed == 0 else "failed" if failed == total else "partial"
        if failed:
            all_errors.append({"code": "records-failed",
                               "message": f"{failed} of {total} record(s) failed; they are kept in the dataset's "
                                          f"failed records (GET /batches/{batch.id}/failed)"})
        values.update(status=status, completed_ms=now, lease_until_ms=None, errors=all_errors)
    conn.execute(bt.update().where(bt.c.id == batch.id).values(**values))
    return done + len(prepared)


def _release(conn: Connection, batch_id: str) -> None:
    conn.execute(bt.update().where(bt.c.id == batch_id, bt.c.status == "processing").values(lease_until_ms=0))


def in_background(job: Callable[[], Batch], batch_id: str) -> threading.Thread:
    """Run a batch's processing on its own thread. A daemon: a process that stops mid-batch leaves it
    `processing` under a lease, and completing it again once the lease ends resumes it."""

    def run() -> None:
        try:
            job()
        except Exception:  # a thread has nobody to raise to: log it (the lease is released)
            log.exception("batch processing failed", batch_id=batch_id)

    thread = threading.Thread(target=run, name=f"wl-batch-{batch_id}", daemon=True)
    thread.start()
    return thread
