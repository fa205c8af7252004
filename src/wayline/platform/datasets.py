"""Datasets (records bound to one schema) and inlets (streaming endpoints), with a read-through cache.

The ingestion hot path looks a dataset up on every message; the cache keeps that off the database
and re-reads an entry at most every `ttl` seconds, so changes made by other processes are seen.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wayline.kernel.problems import FieldError, Problem, not_found
from wayline.kernel.store import now_ms
from wayline.kernel.tenancy import audit
from wayline.platform import tables as t


@dataclass(frozen=True)
class Dataset:
    id: str
    sandbox_id: str
    name: str
    description: str
    schema_uri: str
    profile_enabled: bool
    labels: tuple[str, ...]
    created_ms: int
    updated_ms: int

    def to_api(self, counts: dict[str, int] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "name": self.name, "description": self.description,
            "schemaRef": {"id": self.schema_uri, "contentType": "application/vnd.adobe.xed-full+json;version=1"},
            "profileEnabled": self.profile_enabled, "labels": list(self.labels),
            "created": self.created_ms, "updated": self.updated_ms,
        }
        if counts is not None:
            out["counts"] = counts
        return out


@dataclass(frozen=True)
class Inlet:
    id: str
    sandbox_id: str
    name: str
    dataset_id: str | None
    source_name: str
    created_ms: int

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "datasetId": self.dataset_id, "sourceName": self.source_name,
                "created": self.created_ms, "url": f"/collection/{self.id}"}


def _dataset(row: Any) -> Dataset:
    m = getattr(row, "_mapping", row)
    return Dataset(m["id"], m["sandbox_id"], m["name"], m["description"], m["schema_uri"],
                   bool(m["profile_enabled"]), tuple(m["labels"] or ()), m["created_ms"], m["updated_ms"])


def _inlet(row: Any) -> Inlet:
    return Inlet(row.id, row.sandbox_id, row.name, row.dataset_id, row.source_name, row.created_ms)


def check_labels(labels: Any, where: str = "/labels") -> tuple[str, ...]:
    if not isinstance(labels, list) or not all(isinstance(x, str) and x.strip() == x and x for x in labels):
        raise Problem(422, "validation", "Invalid labels", "labels are a list of non-empty strings",
                      [FieldError(where, "expected a list of non-empty strings", "array of string")])
    return tuple(dict.fromkeys(labels))  # case-sensitive, de-duplicated, order kept


# -- datasets -------------------------------------------------------------------------------------

def create_dataset(conn: Connection, *, sandbox_id: str, name: str, schema_uri: str, description: str = "",
                   profile_enabled: bool = False, labels: tuple[str, ...] = (), actor: str) -> Dataset:
    ts = now_ms()
    ds = Dataset("ds_" + secrets.token_hex(10), sandbox_id, name, description, schema_uri, profile_enabled,
                 labels, ts, ts)
    conn.execute(t.datasets.insert().values(id=ds.id, sandbox_id=sandbox_id, name=name, description=description,
                                            schema_uri=schema_uri, profile_enabled=profile_enabled,
                                            labels=list(labels), created_ms=ts, updated_ms=ts))
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="create", resource_type="dataset",
          resource_id=ds.id, after=ds.to_api())
    return ds


def get_dataset(conn: Connection, sandbox_id: str, dataset_id: str) -> Dataset:
    row = conn.execute(sa.select(t.datasets).where(t.datasets.c.id == dataset_id,
                                                   t.datasets.c.sandbox_id == sandbox_id)).first()
    if row is None:
        raise not_found("dataset", dataset_id)
    return _dataset(row)


def list_datasets(conn: Connection, sandbox_id: str, *, limit: int, cursor: str | None) -> dict[str, Any]:
    from wayline.kernel.paging import page

    stmt = sa.select(t.datasets).where(t.datasets.c.sandbox_id == sandbox_id)
    return page(conn, stmt, t.datasets.c.id, limit=limit, cursor=cursor, shape=lambda r: _dataset(r).to_api())


def dataset_counts(conn: Connection, dataset_id: str) -> dict[str, int]:
    records = conn.execute(sa.select(sa.func.count()).select_from(t.records)
                           .where(t.records.c.dataset_id == dataset_id)).scalar_one()
    failed = conn.execute(sa.select(sa.func.count()).select_from(t.failed_records)
                          .where(t.failed_records.c.dataset_id == dataset_id,
                                 t.failed_records.c.status == "failed")).scalar_one()
    batches = conn.execute(sa.select(sa.func.count()).select_from(t.batches)
                           .where(t.batches.c.dataset_id == dataset_id)).scalar_one()
    return {"records": records, "failedRecords": failed, "batches": batches}


def update_dataset(conn: Connection, *, sandbox_id: str, dataset_id: str, changes: dict[str, Any],
                   actor: str) -> Dataset:
    before = get_dataset(conn, sandbox_id, dataset_id)
    values = {k: (list(v) if isinstance(v, tuple) else v) for k, v in changes.items()}
    values["updated_ms"] = now_ms()
    conn.execute(t.datasets.update().where(t.datasets.c.id == dataset_id).values(**values))
    after = get_dataset(conn, sandbox_id, dataset_id)
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="update", resource_type="dataset",
          resource_id=dataset_id, before=before.to_api(), after=after.to_api())
    return after


def delete_dataset(conn: Connection, *, sandbox_id: str, dataset_id: str, actor: str) -> None:
    """A deliberate, audited deletion of the dataset and everything ingested into it."""
    before = get_dataset(conn, sandbox_id, dataset_id)
    for table in (t.records, t.failed_records):
        conn.execute(table.delete().where(table.c.dataset_id == dataset_id))
    batch_ids = sa.select(t.batches.c.id).where(t.batches.c.dataset_id == dataset_id)
    conn.execute(t.batch_files.delete().where(t.batch_files.c.batch_id.in_(batch_ids)))
    conn.execute(t.batches.delete().where(t.batches.c.dataset_id == dataset_id))
    conn.execute(t.inlets.update().where(t.inlets.c.dataset_id == dataset_id).values(dataset_id=None))
    conn.execute(t.datasets.delete().where(t.datasets.c.id == dataset_id))
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="delete", resource_type="dataset",
          resource_id=dataset_id, before=before.to_api())


def datasets_using_schema(conn: Connection, sandbox_id: str, schema_uri: str) -> list[str]:
    return list(conn.execute(sa.select(t.datasets.c.id).where(t.datasets.c.sandbox_id == sandbox_id,
                                                              t.datasets.c.schema_uri == schema_uri)).scalars())


# -- inlets ---------------------------------------------------------------------------------------

def create_inlet(conn: Connection, *, sandbox_id: str, name: str, dataset_id: str | None, source_name: str,
                 actor: str) -> Inlet:
    if dataset_id is not None:
        get_dataset(conn, sandbox_id, dataset_id)
    inlet = Inlet("in_" + secrets.token_hex(16), sandbox_id, name, dataset_id, source_name, now_ms())
    conn.execute(t.inlets.insert().values(**asdict(inlet)))
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="create", resource_type="inlet",
          resource_id=inlet.id, after=inlet.to_api())
    return inlet


def get_inlet(conn: Connection, sandbox_id: str, inlet_id: str) -> Inlet:
    row = conn.execute(sa.select(t.inlets).where(t.inlets.c.id == inlet_id,
                                                 t.inlets.c.sandbox_id == sandbox_id)).first()
    if row is None:
        raise not_found("inlet", inlet_id)
    return _inlet(row)


def list_inlets(conn: Connection, sandbox_id: str) -> list[Inlet]:
    rows = conn.execute(sa.select(t.inlets).where(t.inlets.c.sandbox_id == sandbox_id)
                        .order_by(t.inlets.c.created_ms)).all()
    return [_inlet(r) for r in rows]


def delete_inlet(conn: Connection, *, sandbox_id: str, inlet_id: str, actor: str) -> None:
    before = get_inlet(conn, sandbox_id, inlet_id)
    conn.execute(t.inlets.delete().where(t.inlets.c.id == inlet_id))
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="delete", resource_type="inlet",
          resource_id=inlet_id, before=before.to_api())


@dataclass
class Cache:
    """Dataset and inlet lookups for the hot path; entries live `ttl` seconds, writes evict at once."""

    ttl: float = 2.0
    _items: dict[tuple[str, str, str], tuple[float, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, kind: str, sandbox_id: str, ident: str, load: Any) -> Any:
        k = (kind, sandbox_id, ident)
        hit = self._items.get(k)
        now = time.monotonic()
        if hit and hit[0] > now:
            return hit[1]
        value = load()
        with self._lock:
            self._items[k] = (now + self.ttl, value)
        return value

    def evict(self, kind: str, sandbox_id: str, ident: str) -> None:
        with self._lock:
            self._items.pop((kind, sandbox_id, ident), None)
