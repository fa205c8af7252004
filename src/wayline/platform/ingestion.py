"""Streaming ingestion: envelope → dataset → size and schema checks → durable storage.

Every record is decided in memory first (`prepare`), then one unit of work stores the whole request
(`store_prepared`): valid records into `records` (a repeated `_id` is a no-op), invalid ones into
`failed_records` with every violation, so nothing that was accepted is lost. A 2xx is sent only
after that unit has committed.
"""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wayline.config import Limits
from wayline.kernel import outbox
from wayline.kernel.problems import FieldError, Problem
from wayline.kernel.store import RawJSON, insert_ignore, row_chunks
from wayline.platform import profiles
from wayline.platform import tables as t
from wayline.platform.datasets import Dataset

# Built once; sort_by_parameter_order makes RETURNING follow the input rows on both databases.
_INSERT_FAILED = t.failed_records.insert().returning(t.failed_records.c.id, sort_by_parameter_order=True)
MAX_ID_CHARS = 500  # the records.record_id column
_DEFAULT_LIMITS = Limits()


_XACTION_PREFIX = secrets.token_hex(4)
_xaction_counter = itertools.count(1)


def new_xaction_id() -> str:
    # A per-process random prefix and a counter: unique, and no os.urandom per message (the syscall
    # releases the GIL to the busy writer thread and the event loop waits for it back; measured).
    return f"{int(time.time() * 1000):x}-{_XACTION_PREFIX}{next(_xaction_counter):x}"


def parse_time_ms(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    if dt.tzinfo is None:  # a time without an offset is read as UTC
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def record_time_ms(entity: dict[str, Any], time_series: bool) -> int | None:
    """The time a record speaks for: `timestamp` for events; the source's last update for records."""
    if time_series:
        return parse_time_ms(entity.get("timestamp"))
    audit = entity.get("extSourceSystemAudit")
    if isinstance(audit, dict) and "lastUpdatedDate" in audit:
        return parse_time_ms(audit["lastUpdatedDate"])
    return parse_time_ms(entity.get("timestamp"))


@dataclass
class Prepared:
    """One record, decided: `ok` goes to records, otherwise to failed records with `violations`."""

    dataset: Dataset
    xaction_id: str
    entity: Any
    ok: bool
    violations: list[dict[str, Any]] = field(default_factory=list)
    record_id: str | None = None
    ts_ms: int | None = None
    batch_id: str | None = None
    raw: str | None = None
    blob: bytes | None = None  # the entity as JSON, from the size check: serialised once
    # Profile-enabled datasets only: the schema's identity fields, and (after profiles.precheck) the
    # record's identities, primary first.
    identity_fields: tuple[Any, ...] | None = None
    time_series: bool = False
    identities: list[Any] | None = None
    # The JSON of the fragment the record makes where its dataset has none for its primary identity
    # yet (`profiles.new_fragment_text`), when a prepare worker worked it out with the identities.
    fragment: str | None = None
    # The entity's top-level keys, when a prepare worker sent them (the writer names a change's fields
    # by them without parsing the entity: `prepare_pool` parses it from `blob` only when it is read).
    keys: tuple[str, ...] | None = None


class Stored(NamedTuple):
    """What happened to one record (a tuple: one is made for every record stored)."""

    xaction_id: str
    record_id: str | None
    ok: bool
    duplicate: bool = False
    failed_record_id: int | None = None
    violations: list[dict[str, Any]] = []  # never mutated: each failure passes its own list


def envelope_target(message: Any, where: str = "") -> tuple[str | None, str | None, Any]:
    """(datasetId, schemaRef id, xdmEntity) of a streaming message, or a 400 naming the bad field."""
    errors: list[FieldError] = []
    if not isinstance(message, dict):
        raise Problem(400, "bad-message", "Invalid message", "a message is a JSON object",
                      [FieldError(where or "/", "expected an object with header and body", "object")])
    header, body = message.get("header"), message.get("body")
    if not isinstance(header, dict):
        errors.append(FieldError(f"{where}/header", "missing or not an object", "object"))
    if not isinstance(body, dict):
        errors.append(FieldError(f"{where}/body", "missing or not an object", "object"))
    elif not isinstance(body.get("xdmEntity"), dict):
        errors.append(FieldError(f"{where}/body/xdmEntity", "missing or not an object", "object"))
    if errors:
        raise Problem(400, "bad-message", "Invalid message", "the message envelope is incomplete", errors)
    ref = header.get("schemaRef")
    schema_id = ref.get("id") if isinstance(ref, dict) else None
    meta = body.get("xdmMeta")
    meta_ref = meta.get("schemaRef") if isinstance(meta, dict) else None
    meta_id = meta_ref.get("id") if isinstance(meta_ref, dict) else None
    if schema_id and meta_id and schema_id != meta_id:
        raise Problem(400, "schema-mismatch", "Schema mismatch",
                      "header.schemaRef.id and body.xdmMeta.schemaRef.id differ",
                      [FieldError(f"{where}/body/xdmMeta/schemaRef/id", f"expected {schema_id!r}", schema_id)])
    dataset_id = header.get("datasetId")
    if dataset_id is not None and not isinstance(dataset_id, str):
        raise Problem(400, "bad-message", "Invalid message", "header.datasetId is a string",
                      [FieldError(f"{where}/header/datasetId", "expected a string", "string")])
    return dataset_id, schema_id or meta_id, body["xdmEntity"]


def check_schema_ref(dataset: Dataset, schema_id: str | None, where: str = "") -> None:
    if schema_id is not None and schema_id != dataset.schema_uri:
        raise Problem(400, "schema-mismatch", "Schema mismatch",
                      f"dataset {dataset.id} holds records of schema {dataset.schema_uri!r}, not {schema_id!r}",
                      [FieldError(f"{where}/header/schemaRef/id", "does not match the dataset's schema",
                                  dataset.schema_uri)])


def prepare(dataset: Dataset, compiled: Any, entity: Any, limits: Limits, *, xaction_id: str,
            batch_id: str | None = None, raw: str | None = None) -> Prepared:
    """Decide one record. Oversized records raise a 413 problem: they are refused, not accepted."""
    time_series = compiled.behavior == "time-series"
    if entity is not None:
        blob = orjson.dumps(entity)
        size = len(blob)
        cap = limits.max_event_bytes if time_series else limits.max_profile_record_bytes
        if size > cap:
            kind = "experience event" if time_series else "record"
            raise Problem(413, "record-too-large", "Record too large",
                          f"the {kind} is {size} bytes; the limit is {cap} bytes")
    if entity is not None and b"\\u0000" in blob:
        # PostgreSQL cannot store NUL in JSON or text: keep the record (an object or not) as its escaped
        # JSON text.
        v = [{"pointerToViolation": "", "schemaLocation": "#", "keyword": "storage",
              "message": "the record contains a NUL character (\\u0000), which cannot be stored as JSON"}]
        return Prepared(dataset, xaction_id, None, False, v, batch_id=batch_id, raw=blob.decode())
    if not isinstance(entity, dict):
        v = [{"pointerToViolation": "", "schemaLocation": "#", "keyword": "type",
              "message": raw_error(raw) if entity is None else "a record is a JSON object"}]
        if raw is not None and "\x00" in raw:  # unparsed text kept as it came, but for what no database stores
            raw = raw.replace("\x00", "\ufffd")
        return Prepared(dataset, xaction_id, entity, False, v, batch_id=batch_id, raw=raw)
    violations = compiled.validate(entity)
    rid = entity.get("_id")
    rid = rid if isinstance(rid, str) and rid else None
    if rid is not None and len(rid) > MAX_ID_CHARS:
        violations = [*violations, {"pointerToViolation": "/_id", "schemaLocation": "#/properties/_id",
                                    "keyword": "maxLength", "message": f"an _id is at most {MAX_ID_CHARS} characters"}]
        rid = None
    if not violations and rid is None:
        violations = [{"pointerToViolation": "/_id", "schemaLocation": "#/properties/_id", "keyword": "required",
                       "message": "every record needs a non-empty string _id"}]
    if violations:
        return Prepared(dataset, xaction_id, entity, False, violations, record_id=rid, batch_id=batch_id)
    return Prepared(dataset, xaction_id, entity, True, record_id=rid,
                    ts_ms=record_time_ms(entity, time_series), batch_id=batch_id, blob=blob,
                    identity_fields=compiled.identities if dataset.profile_enabled else None,
                    time_series=time_series)


def prepare_all(dataset: Dataset, compiled: Any, records: list[Any], limits: Limits, *,
                batch_id: str | None = None) -> list[Prepared | Problem]:
    """`prepare` each record, each with its own transaction id; a refused record is its problem."""
    out: list[Prepared | Problem] = []
    for rec in records:
        try:
            out.append(prepare(dataset, compiled, rec, limits, xaction_id=new_xaction_id(), batch_id=batch_id))
        except Problem as p:
            out.append(p)
    return out


_RECORD_COLUMNS = ("sandbox_id", "dataset_id", "record_id", "ts_ms", "batch_id", "xaction_id", "body", "received_ms")


def _insert_records(conn: Connection, good: list[Prepared], received_ms: int) -> set[tuple[str, str]]:
    """Insert valid records, ignoring repeated (dataset, _id); returns the (dataset, _id) pairs that are new.

    On SQLite, RETURNING costs one GIL hand-off per row while the event loop is busy (measured: 3,500
    rows/s against 19,400 without), so it inserts without it and, only when the count comes up short,
    asks which rows carry this request's transaction ids.
    """
    if conn.dialect.name != "sqlite":
        rows = [{"sandbox_id": p.dataset.sandbox_id, "dataset_id": p.dataset.id, "record_id": p.record_id,
                 "ts_ms": p.ts_ms, "batch_id": p.batch_id, "xaction_id": p.xaction_id,
                 "body": RawJSON(p.blob.decode()) if p.blob is not None else p.entity,
                 "received_ms": received_ms} for p in good]
        return set(insert_ignore(conn, t.records, rows, ["dataset_id", "record_id"]))
    inserted = 0
    for part in row_chunks(good, len(_RECORD_COLUMNS)):
        sql = _SQLITE_INSERT.get(len(part))
        if sql is None:
            one = "(" + ", ".join("?" * len(_RECORD_COLUMNS)) + ")"
            sql = (f"INSERT INTO records ({', '.join(_RECORD_COLUMNS)}) VALUES {', '.join([one] * len(part))} "
                   "ON CONFLICT (dataset_id, record_id) DO NOTHING")
            _SQLITE_INSERT[len(part)] = sql
        params = []
        for p in part:
            ds = p.dataset
            params += (ds.sandbox_id, ds.id, p.record_id, p.ts_ms, p.batch_id, p.xaction_id,
                       p.blob.decode() if p.blob is not None else _json(p.entity), received_ms)
        inserted += conn.exec_driver_sql(sql, tuple(params)).rowcount
    keys = {(p.dataset.id, p.record_id or "") for p in good}
    if inserted == len(good):
        return keys
    mine = {p.xaction_id for p in good}
    found = conn.execute(sa.select(t.records.c.dataset_id, t.records.c.record_id, t.records.c.xaction_id).where(
        sa.tuple_(t.records.c.dataset_id, t.records.c.record_id).in_(list(keys)))).all()
    return {(d, r) for d, r, x in found if x in mine}


_SQLITE_INSERT: dict[int, str] = {}


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def raw_error(raw: str | None) -> str:
    return "the line is not valid JSON" if raw is not None else "the record is missing"


def store_prepared(conn: Connection, sandbox_id: str, items: list[Prepared], received_ms: int,
                   limits: Limits = _DEFAULT_LIMITS, *, views: profiles.ViewMerger | None = None) -> list[Stored]:
    """Store records in the caller's transaction; returns what happened to each.

    Each row takes its sandbox from its dataset, so requests of several sandboxes can share a call.
    Records of profile-enabled datasets also go to the identity graph and the profile store
    (`profiles.apply`), in the same transaction: a record is in its dataset and in its profile, or
    in neither.
    """
    profiled = [p for p in items if p.ok and p.identity_fields is not None]
    if profiled:
        outbox.lock(conn)  # before any row lock, so graph writers always lock in the same order
        profiles.precheck(conn, profiled, limits)  # an identity rule broken turns the record into a failure
    good = [p for p in items if p.ok]
    new: set[tuple[str, str]] = set()
    if good:
        new = _insert_records(conn, good, received_ms)
    failed_ids: dict[int, int] = {}
    bad = [(i, p) for i, p in enumerate(items) if not p.ok]
    if bad:
        rows = [{"sandbox_id": p.dataset.sandbox_id, "dataset_id": p.dataset.id, "batch_id": p.batch_id,
                 "xaction_id": p.xaction_id, "record_id": p.record_id,
                 "body": p.entity if p.raw is None else None, "raw": p.raw, "errors": p.violations,
                 "status": "failed", "received_ms": received_ms} for _, p in bad]
        ids = conn.execute(_INSERT_FAILED, rows if len(rows) > 1 else rows[0]).scalars().all()
        failed_ids = {i: fid for (i, _), fid in zip(bad, ids)}
    out = []
    seen: set[tuple[str, str]] = set()
    fresh: list[Prepared] = []
    for i, p in enumerate(items):
        if p.ok:
            key = (p.dataset.id, p.record_id or "")
            dup = key not in new or key in seen
            seen.add(key)
            if not dup and p.identities is not None:
                fresh.append(p)
            out.append(Stored(p.xaction_id, p.record_id, True, duplicate=dup))
        else:
            out.append(Stored(p.xaction_id, p.record_id, False, failed_record_id=failed_ids[i],
                              violations=p.violations))
    if fresh:
        profiles.apply(conn, fresh, received_ms, limits, views=views)
    return out


def violations_problem(violations: list[dict[str, Any]], failed_record_id: int | None) -> Problem:
    errors = [FieldError(v.get("pointerToViolation") or "/", v.get("message", ""), v.get("keyword"))
              for v in violations]
    return Problem(400, "record-invalid", "Record failed validation",
                   f"{len(violations)} violation(s); the record is kept in the dataset's failed records",
                   errors, extra={"violations": violations, "failedRecordId": failed_record_id})


def too_many_messages(n: int, cap: int) -> Problem:
    return Problem(413, "too-many-messages", "Too many messages", f"{n} messages in one request; the limit is {cap}",
                   [FieldError("/messages", f"at most {cap} items", f"<= {cap} items")])


def count_records(conn: Connection, dataset_id: str) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(t.records)
                        .where(t.records.c.dataset_id == dataset_id)).scalar_one()
