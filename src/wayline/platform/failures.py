"""Failed records: kept with their errors, listed, corrected and replayed, or deliberately discarded."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wayline.config import Limits
from wayline.kernel.paging import page
from wayline.kernel.problems import Problem, not_found
from wayline.kernel.store import now_ms
from wayline.kernel.tenancy import audit
from wayline.platform import tables as t
from wayline.platform.datasets import Dataset
from wayline.platform.ingestion import prepare, store_prepared

STATUSES = ("failed", "replayed", "discarded")


def shape(r: Any) -> dict[str, Any]:
    out = {"id": r["id"], "datasetId": r["dataset_id"], "batchId": r["batch_id"], "xactionId": r["xaction_id"],
           "recordId": r["record_id"], "status": r["status"], "errors": r["errors"], "received": r["received_ms"],
           "resolved": r["resolved_ms"]}
    if r["raw"] is not None:
        out["raw"] = r["raw"]
    else:
        out["record"] = r["body"]
    return out


def list_failed(conn: Connection, dataset_id: str, *, status: str | None, batch_id: str | None, limit: int,
                cursor: str | None) -> dict[str, Any]:
    stmt = sa.select(t.failed_records).where(t.failed_records.c.dataset_id == dataset_id)
    if status:
        stmt = stmt.where(t.failed_records.c.status == status)
    if batch_id:
        stmt = stmt.where(t.failed_records.c.batch_id == batch_id)
    return page(conn, stmt, t.failed_records.c.id, limit=limit, cursor=cursor, shape=shape)


def get_failed(conn: Connection, dataset_id: str, failed_id: int) -> dict[str, Any]:
    row = conn.execute(sa.select(t.failed_records).where(t.failed_records.c.id == failed_id,
                                                         t.failed_records.c.dataset_id == dataset_id)).mappings().first()
    if row is None:
        raise not_found("failed record", failed_id)
    return shape(row)


def correct(conn: Connection, *, sandbox_id: str, dataset_id: str, failed_id: int, record: Any,
            actor: str) -> dict[str, Any]:
    """Replace a failed record's body with a corrected one (it is then replayed by `replay`)."""
    before = get_failed(conn, dataset_id, failed_id)
    if before["status"] != "failed":
        raise Problem(409, "conflict", "Conflict", f"failed record {failed_id} is already {before['status']}")
    conn.execute(t.failed_records.update().where(t.failed_records.c.id == failed_id)
                 .values(body=record, raw=None))
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="correct", resource_type="failedRecord",
          resource_id=str(failed_id), before=before, after={**before, "record": record})
    return get_failed(conn, dataset_id, failed_id)


def discard(conn: Connection, *, sandbox_id: str, dataset_id: str, failed_id: int, actor: str) -> dict[str, Any]:
    before = get_failed(conn, dataset_id, failed_id)
    conn.execute(t.failed_records.update().where(t.failed_records.c.id == failed_id)
                 .values(status="discarded", resolved_ms=now_ms()))
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="discard", resource_type="failedRecord",
          resource_id=str(failed_id), before=before)
    return get_failed(conn, dataset_id, failed_id)


def replay(conn: Connection, *, dataset: Dataset, compiled: Any, limits: Limits, ids: list[int] | None,
           batch_id: str | None, actor: str, chunk: int = 500) -> dict[str, Any]:
    """Validate failed records again (as corrected); those now valid are stored, the rest keep failing.

    Returns counts and the ids that still fail. Each record is resolved in the caller's transaction,
    so a replay is all-or-nothing and can be run again safely.
    """
    stmt = sa.select(t.failed_records).where(t.failed_records.c.dataset_id == dataset.id,
                                             t.failed_records.c.status == "failed")
    if ids is not None:
        stmt = stmt.where(t.failed_records.c.id.in_(ids))
    if batch_id:
        stmt = stmt.where(t.failed_records.c.batch_id == batch_id)
    rows = conn.execute(stmt.order_by(t.failed_records.c.id)).mappings().all()
    if ids is not None:
        missing = set(ids) - {r["id"] for r in rows}
        if missing:
            raise Problem(404, "not-found", "Not found",
                          f"no failed record(s) {sorted(missing)} waiting in dataset {dataset.id}")
    replayed, duplicate, still = 0, 0, []
    ts = now_ms()
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        prepared = []
        for r in part:
            try:
                p = prepare(dataset, compiled, r["body"] if r["raw"] is None else None, limits,
                            xaction_id=r["xaction_id"] or f"replay-{r['id']}", batch_id=r["batch_id"],
                            raw=r["raw"])
            except Problem as exc:  # still too large: keep it failing with that reason
                still.append(r["id"])
                conn.execute(t.failed_records.update().where(t.failed_records.c.id == r["id"]).values(
                    errors=[{"pointerToViolation": "", "schemaLocation": "#", "keyword": "maxSize",
                             "message": exc.detail}]))
                continue
            if p.ok:
                prepared.append((r["id"], p))
            else:
                still.append(r["id"])
                conn.execute(t.failed_records.update().where(t.failed_records.c.id == r["id"])
                             .values(errors=p.violations))
        if prepared:
            results = store_prepared(conn, dataset.sandbox_id, [p for _, p in prepared], ts, limits)
            duplicate += sum(1 for s in results if s.duplicate)
            replayed += len(results)
            conn.execute(t.failed_records.update()
                         .where(t.failed_records.c.id.in_([fid for fid, _ in prepared]))
                         .values(status="replayed", resolved_ms=ts))
    if rows:
        audit(conn, sandbox_id=dataset.sandbox_id, actor=actor, action="replay", resource_type="failedRecord",
              resource_id=dataset.id, after={"replayed": replayed, "stillFailing": len(still)})
    return {"considered": len(rows), "replayed": replayed, "duplicates": duplicate, "stillFailing": still}
