"""Batch ingestion: create a batch, upload its files, complete it; records take the streaming path.

Lifecycle: `loading` → (COMPLETE) `processing` → `success` | `partial` | `failed`; `loading` →
(ABORT) `aborted`.

Processing reads the batch's files in name order, one item at a time (`fileformats`), decides each
record with `ingestion.prepare` and stores chunks with `ingestion.store_prepared`, one transaction
per chunk, so memory stays bounded by the chunk. Each chunk's transaction also advances
`records_total` by compare-and-set: that column is the checkpoint (records consumed so far). A
processor that dies leaves the batch `processing` under a lease; completing it again once the lease
has ended re-reads the files, skips the records already counted and carries on. So no record and no
failed record is stored twice and the counts stay exact; and of two processors racing on one batch
only one can commit a given chunk (the other's compare-and-set fails and its chunk rolls back).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wayline.kernel.paging import page
from wayline.kernel.problems import Problem, bad_request, conflict, not_found
from wayline.kernel.store import Store, now_ms
from wayline.kernel.tenancy import audit
from wayline.platform import datasets as ds
from wayline.platform import tables as t
from wayline.platform.fieldpaths import check_mapping
from wayline.platform.fileformats import InputFormat

MAX_FILE_BYTES = 512 * 1_048_576  # largest uploaded file (413 beyond); a batch may hold many files
PART_BYTES = 4 * 1_048_576  # files are stored in parts of this size
CHUNK_RECORDS = 1_000  # records per transaction while processing
LEASE_MS = 120_000  # a processor that has not checkpointed for this long is presumed dead
MAX_BATCH_ERRORS = 100  # file-wide messages kept on the batch (each failed record keeps its own)
MAX_ID_CHARS = 500  # records.record_id is VARCHAR(500)
TERMINAL = ("success", "partial", "failed")
STATUSES = ("loading", "processing", *TERMINAL, "aborted")

bt, bf = t.batches, t.batch_files


class Superseded(Exception):
    """Another processor moved the batch on (or it was finished); this one stops."""


@dataclass(frozen=True)
class Batch:
    id: str
    sandbox_id: str
    dataset_id: str
    status: str
    input_format: dict[str, Any]
    mapping: dict[str, str] | None
    total: int
    ok: int
    duplicate: int
    failed: int
    errors: list[dict[str, Any]]
    created_ms: int
    completed_ms: int | None
    lease_until_ms: int | None

    @property
    def fmt(self) -> InputFormat:
        return InputFormat(self.input_format["format"], bool(self.input_format.get("isMultiLineJson")),
                           check_mapping(self.mapping))

    def to_api(self, files: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "datasetId": self.dataset_id, "status": self.status, "inputFormat": self.input_format,
            "counts": {"total": self.total, "ok": self.ok, "duplicate": self.duplicate, "failed": self.failed},
            "errors": self.errors, "created": self.created_ms, "completed": self.completed_ms,
            "relatedObjects": [{"type": "dataSet", "id": self.dataset_id}],
        }
        if self.mapping:
            out["mapping"] = self.mapping
        if files is not None:
            out["files"] = files
        return out


def _batch(row: Any) -> Batch:
    m = row._mapping if hasattr(row, "_mapping") else row
    return Batch(m["id"], m["sandbox_id"], m["dataset_id"], m["status"], m["input_format"], m["mapping"],
                 m["records_total"], m["records_ok"], m["records_duplicate"], m["records_failed"],
                 list(m["errors"] or []), m["created_ms"], m["completed_ms"], m["lease_until_ms"])


def new_batch_id() -> str:
    # Time first, so ids sort by creation and keyset paging lists newest first.
    return f"bt_{now_ms():012x}{secrets.token_hex(6)}"


# -- batches ---------------------------------------------------------------------------------------

def create_batch(conn: Connection, *, sandbox_id: str, dataset_id: str, format: str, multiline: bool = False,
                 mapping: dict[str, str] | None = None, actor: str) -> Batch:
    """A new batch in `loading` for a dataset of the sandbox (404 when there is no such dataset)."""
    ds.get_dataset(conn, sandbox_id, dataset_id)
    if format not in ("json", "csv", "parquet"):
        raise Problem(422, "validation", "Invalid input format", "format is json, csv or parquet")
    if mapping and format == "json":
        raise Problem(422, "validation", "Invalid mapping",
                      "a mapping places CSV or Parquet columns; JSON records are already shaped")
    check_mapping(mapping)
    fmt: dict[str, Any] = {"format": format}
    if format == "json":
        fmt["isMultiLineJson"] = bool(multiline)
    row = {"id": new_batch_id(), "sandbox_id": sandbox_id, "dataset_id": dataset_id, "status": "loading",
           "input_format": fmt, "mapping": mapping or None, "records_total": 0, "records_ok": 0,
           "records_duplicate": 0, "records_failed": 0, "errors": [], "created_ms": now_ms(),
           "completed_ms": None, "lease_until_ms": None}
    conn.execute(bt.insert().values(**row))
    batch = _batch(row)
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="create", resource_type="batch", resource_id=batch.id,
          after=batch.to_api())
    return batch


def get_batch(conn: Connection, sandbox_id: str, batch_id: str, *, lock: bool = False) -> Batch:
    """The batch, or a 404. `lock` holds its row for the transaction (PostgreSQL; SQLite's writer is
    alone anyway), so an upload and a completion of one batch happen one after the other."""
    stmt = sa.select(bt).where(bt.c.id == batch_id, bt.c.sandbox_id == sandbox_id)
    row = conn.execute(stmt.with_for_update() if lock else stmt).first()
    if row is None:
        raise not_found("batch", batch_id)
    return _batch(row)


def list_batches(conn: Connection, sandbox_id: str, *, dataset_id: str | None, status: str | None, limit: int,
                 cursor: str | None) -> dict[str, Any]:
    """Batches of the sandbox, newest first."""
    stmt = sa.select(bt).where(bt.c.sandbox_id == sandbox_id)
    if dataset_id:
        stmt = stmt.where(bt.c.dataset_id == dataset_id)
    if status:
        stmt = stmt.where(bt.c.status == status)
    return page(conn, stmt, bt.c.id, limit=limit, cursor=cursor, descending=True,
                shape=lambda r: _batch(r).to_api())


def list_files(conn: Connection, batch_id: str) -> list[dict[str, Any]]:
    """The batch's uploaded files (not uploads in progress), in processing order."""
    rows = conn.execute(sa.select(bf.c.name, sa.func.sum(bf.c.size).label("size"),
                                  sa.func.count().label("parts"))
                        .where(bf.c.batch_id == batch_id, ~bf.c.name.contains("/"))
                        .group_by(bf.c.name).order_by(bf.c.name)).all()
    return [{"name": r.name, "size": int(r.size), "parts": r.parts} for r in rows]


def describe(conn: Connection, sandbox_id: str, batch_id: str) -> dict[str, Any]:
    files = [{"name": f["name"], "size": f["size"]} for f in list_files(conn, batch_id)]
    return get_batch(conn, sandbox_id, batch_id).to_api(files)


def abort_batch(conn: Connection, *, sandbox_id: str, batch_id: str, actor: str) -> Batch:
    """Abort a batch still loading; its files are kept, nothing is processed. Aborting twice is a no-op."""
    b = get_batch(conn, sandbox_id, batch_id, lock=True)
    if b.status == "aborted":
        return b
    if b.status != "loading":
        raise conflict(f"batch {batch_id} is {b.status}; only a loading batch can be aborted")
    conn.execute(bt.update().where(bt.c.id == batch_id).values(status="aborted", completed_ms=now_ms()))
    after = get_batch(conn, sandbox_id, batch_id)
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="abort", resource_type="batch", resource_id=batch_id,
          before=b.to_api(), after=after.to_api())
    return after


def start_complete(conn: Connection, *, sandbox_id: str, batch_id: str, actor: str) -> tuple[Batch, bool]:
    """Mark the batch `processing` under a lease; (batch, whether the caller must process it now).

    A finished batch, or one another processor holds, is returned as it is: completing is idempotent.
    A `processing` batch whose lease has ended is taken over and resumed from its checkpoint.
    """
    b = get_batch(conn, sandbox_id, batch_id, lock=True)
    now = now_ms()
    if b.status in TERMINAL or (b.status == "processing" and (b.lease_until_ms or 0) > now):
        return b, False
    if b.status == "aborted":
        raise conflict(f"batch {batch_id} was aborted; create a new batch")
    if b.status == "loading" and not list_files(conn, batch_id):
        raise bad_request("no-files", "No files", f"batch {batch_id} has no files; upload at least one first")
    res = conn.execute(bt.update().where(bt.c.id == batch_id, bt.c.status == b.status,
                                         bt.c.lease_until_ms.is_(None) if b.lease_until_ms is None
                                         else bt.c.lease_until_ms == b.lease_until_ms)
                       .values(status="processing", lease_until_ms=now + LEASE_MS))
    if res.rowcount != 1:  # someone else started it a moment ago
        return get_batch(conn, sandbox_id, batch_id), False
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="complete" if b.status == "loading" else "resume",
          resource_type="batch", resource_id=batch_id, before={"status": b.status},
          after={"status": "processing", "resumeAfterRecords": b.total})
    return get_batch(conn, sandbox_id, batch_id), True


# -- uploads ---------------------------------------------------------------------------------------

def check_file_name(name: str) -> None:
    if not name or len(name) > 255 or "/" in name or "\\" in name or any(ord(c) < 32 for c in name) \
            or name in (".", ".."):
        raise bad_request("bad-file-name", "Invalid file name",
                          "a file name is 1-255 characters without '/', '\\' or control characters")


def check_upload(conn: Connection, sandbox_id: str, batch_id: str, dataset_id: str, lock: bool = False) -> Batch:
    """The batch, if a file for `dataset_id` may be uploaded to it now; else the problem saying why."""
    b = get_batch(conn, sandbox_id, batch_id, lock=lock)
    if dataset_id != b.dataset_id:
        ds.get_dataset(conn, sandbox_id, dataset_id)  # an unknown dataset is a 404, a wrong one a 400
        raise bad_request("wrong-dataset", "Wrong dataset",
                          f"batch {batch_id} loads dataset {b.dataset_id}, not {dataset_id}")
    if b.status != "loading":
        raise conflict(f"batch {batch_id} is {b.status}; files can be uploaded only while it is loading")
    return b


def _write_part(conn: Connection, batch_id: str, name: str, part: int, data: bytes) -> None:
    conn.execute(bf.insert().values(batch_id=batch_id, name=name, part=part, size=len(data), data=data,
                                    created_ms=now_ms()))


def _finish_upload(conn: Connection, sandbox_id: str, batch_id: str, dataset_id: str, name: str,
                   staging: str, parts: int) -> dict[str, Any]:
    # Checked again in the swapping transaction: a batch completed during the upload refuses it.
    check_upload(conn, sandbox_id, batch_id, dataset_id, lock=True)
    conn.execute(bf.delete().where(bf.c.batch_id == batch_id, bf.c.name == name))  # PUT replaces
    if parts == 0:  # an empty file is still a file
        _write_part(conn, batch_id, staging, 0, b"")
    conn.execute(bf.update().where(bf.c.batch_id == batch_id, bf.c.name == staging).values(name=name))
    size = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(bf.c.size), 0))
                        .where(bf.c.batch_id == batch_id, bf.c.name == name)).scalar_one()
    return {"name": name, "size": int(size)}


def _discard_upload(conn: Connection, batch_id: str, staging: str) -> None:
    conn.execute(bf.delete().where(bf.c.batch_id == batch_id, bf.c.name == staging))


class _Parts:
    """Cuts a byte stream into stored parts and enforces the size limit as bytes arrive."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.size, self.count, self.buf = max_bytes, 0, 0, bytearray()

    def feed(self, chunk: bytes) -> Iterator[tuple[int, bytes]]:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise Problem(413, "file-too-large", "File too large",
                          f"a batch file is at most {self.max_bytes} bytes; split larger files")
        self.buf += chunk
        while len(self.buf) >= PART_BYTES:
            yield self.count, bytes(self.buf[:PART_BYTES])
            del self.buf[:PART_BYTES]
            self.count += 1

    def rest(self) -> Iterator[tuple[int, bytes]]:
        if self.buf:
            yield self.count, bytes(self.buf)
            self.count += 1
            self.buf = bytearray()


def _staging(name: str) -> str:
    return f"~upload/{secrets.token_hex(8)}/{name}"


async def upload_async(store: Store, *, sandbox_id: str, batch_id: str, dataset_id: str, name: str,
                       chunks: AsyncIterable[bytes], max_bytes: int = MAX_FILE_BYTES) -> dict[str, Any]:
    """Store an uploaded file part by part as it arrives; it appears in the batch only when complete."""
    check_file_name(name)
    await store.read(check_upload, sandbox_id, batch_id, dataset_id)
    staging, parts = _staging(name), _Parts(max_bytes)
    try:
        async for chunk in chunks:
            for i, data in parts.feed(chunk):
                await store.write(_write_part, batch_id, staging, i, data)
        for i, data in parts.rest():
            await store.write(_write_part, batch_id, staging, i, data)
        return await store.write(_finish_upload, sandbox_id, batch_id, dataset_id, name, staging, parts.count)
    except BaseException:
        await store.write(_discard_upload, batch_id, staging)
        raise


def upload_file(store: Store, *, sandbox_id: str, batch_id: str, dataset_id: str, name: str,
                chunks: Iterable[bytes], max_bytes: int = MAX_FILE_BYTES,
                on_bytes: Callable[[int], None] | None = None) -> dict[str, Any]:
    """`upload_async` for callers without an event loop (the CLI)."""
    check_file_name(name)
    store.read_sync(check_upload, sandbox_id, batch_id, dataset_id)
    staging, parts = _staging(name), _Parts(max_bytes)
    try:
        for chunk in chunks:
            for i, data in parts.feed(chunk):
                store.write_blocking(_write_part, batch_id, staging, i, data)
            if on_bytes:
                on_bytes(len(chunk))
        for i, data in parts.rest():
            store.write_blocking(_write_part, batch_id, staging, i, data)
        return store.write_blocking(_finish_upload, sandbox_id, batch_id, dataset_id, name, staging, parts.count)
    except BaseException:
        store.write_blocking(_discard_upload, batch_id, staging)
        raise
