"""SQL of the registry: rows of `schema_resources` and `schema_descriptors` in and out, nothing more."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wayline.kernel.problems import Problem
from wayline.platform import tables as t
from wayline.platform.schemas.model import Resource

R = t.schema_resources
D = t.schema_descriptors


def _resource(row: Any) -> Resource:
    return Resource(uri=row["uri"], kind=row["kind"], body=dict(row["body"]), version=row["version"],
                    profile_enabled=bool(row["profile_enabled"]), created_ms=row["created_ms"],
                    updated_ms=row["updated_ms"])


def _ident(ident: str) -> sa.ColumnElement[bool]:
    # A `$id`, or the short `meta:altId` (kept in the body; sandboxes hold few resources).
    return sa.or_(R.c.uri == ident, R.c.body["meta:altId"].as_string() == ident)


def fetch(conn: Connection, sandbox_id: str, uri: str) -> Resource | None:
    row = conn.execute(sa.select(R).where(R.c.sandbox_id == sandbox_id, R.c.uri == uri)).mappings().first()
    return _resource(row) if row else None


def find(conn: Connection, sandbox_id: str, ident: str, kind: str | None = None) -> Resource | None:
    """A resource by `$id` or altId (of one kind, when given)."""
    stmt = sa.select(R).where(R.c.sandbox_id == sandbox_id, _ident(ident))
    if kind:
        stmt = stmt.where(R.c.kind == kind)
    rows = conn.execute(stmt).mappings().all()
    exact = [r for r in rows if r["uri"] == ident]
    return _resource((exact or rows)[0]) if rows else None


def alt_id_taken(conn: Connection, sandbox_id: str, alt_id: str) -> str | None:
    return conn.execute(sa.select(R.c.uri).where(R.c.sandbox_id == sandbox_id,
                                                 R.c.body["meta:altId"].as_string() == alt_id)).scalar()


def version_of(conn: Connection, sandbox_id: str, ident: str) -> tuple[str, int, int] | None:
    """(uri, version, updated_ms) of a schema, by `$id` or altId: the compiled cache's freshness check."""
    rows = conn.execute(sa.select(R.c.uri, R.c.version, R.c.updated_ms).where(
        R.c.sandbox_id == sandbox_id, R.c.kind == "schema", _ident(ident))).all()
    exact = [r for r in rows if r.uri == ident]
    row = (exact or rows)[0] if rows else None
    return (row.uri, row.version, row.updated_ms) if row else None


def all_resources(conn: Connection, sandbox_id: str) -> list[Resource]:
    rows = conn.execute(sa.select(R).where(R.c.sandbox_id == sandbox_id).order_by(R.c.uri)).mappings().all()
    return [_resource(r) for r in rows]


def list_stmt(sandbox_id: str, kind: str) -> sa.Select[Any]:
    return sa.select(R).where(R.c.sandbox_id == sandbox_id, R.c.kind == kind)


def as_resource(row: Any) -> Resource:
    return _resource(row)


def insert(conn: Connection, sandbox_id: str, res: Resource) -> None:
    try:
        conn.execute(R.insert().values(sandbox_id=sandbox_id, uri=res.uri, kind=res.kind, title=res.title[:500],
                                       version=res.version, body=res.body, profile_enabled=res.profile_enabled,
                                       created_ms=res.created_ms, updated_ms=res.updated_ms))
    except sa.exc.IntegrityError:  # a concurrent create of the same $id won the race
        raise Problem(409, "conflict", "Conflict", f"{res.uri} was created concurrently; GET it") from None


def update(conn: Connection, sandbox_id: str, res: Resource, expected_version: int) -> None:
    """Compare-and-set on the version, so two concurrent writers cannot both win."""
    done = conn.execute(R.update().where(R.c.sandbox_id == sandbox_id, R.c.uri == res.uri,
                                         R.c.version == expected_version)
                        .values(title=res.title[:500], version=res.version, body=res.body,
                                profile_enabled=res.profile_enabled, updated_ms=res.updated_ms))
    if done.rowcount != 1:
        raise Problem(409, "conflict", "Conflict", f"{res.uri} changed concurrently; read it again and retry")


def bump(conn: Connection, sandbox_id: str, uris: Iterable[str], when: int,
         bodies: dict[str, dict[str, Any]] | None = None) -> None:
    """New versions of resources whose composition changed (a piece they use changed)."""
    for uri in uris:
        values: dict[str, Any] = {"version": R.c.version + 1, "updated_ms": when}
        if bodies and uri in bodies:
            values["body"] = bodies[uri]
        conn.execute(R.update().where(R.c.sandbox_id == sandbox_id, R.c.uri == uri).values(**values))


def delete(conn: Connection, sandbox_id: str, uri: str) -> None:
    conn.execute(R.delete().where(R.c.sandbox_id == sandbox_id, R.c.uri == uri))
    conn.execute(D.delete().where(D.c.sandbox_id == sandbox_id, D.c.schema_uri == uri))


def datasets_using(conn: Connection, sandbox_id: str, idents: Iterable[str]) -> list[str]:
    return list(conn.execute(sa.select(t.datasets.c.id).where(
        t.datasets.c.sandbox_id == sandbox_id, t.datasets.c.schema_uri.in_(list(idents)))).scalars())


# -- descriptors ---------------------------------------------------------------------------------------

def descriptors_of(conn: Connection, sandbox_id: str, schema_uri: str) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(D.c.body).where(D.c.sandbox_id == sandbox_id, D.c.schema_uri == schema_uri)
                        .order_by(D.c.created_ms, D.c.id)).scalars()
    return [dict(b) for b in rows]


def descriptor(conn: Connection, sandbox_id: str, descriptor_id: str) -> dict[str, Any] | None:
    body = conn.execute(sa.select(D.c.body).where(D.c.sandbox_id == sandbox_id, D.c.id == descriptor_id)).scalar()
    return dict(body) if body is not None else None


def descriptors_pointing_at(conn: Connection, sandbox_id: str, schema_uri: str) -> list[str]:
    rows = conn.execute(sa.select(D.c.id, D.c.body).where(D.c.sandbox_id == sandbox_id,
                                                           D.c.type == "xdm:descriptorOneToOne")).all()
    return [r.id for r in rows if r.body.get("xdm:destinationSchema") == schema_uri]


def insert_descriptor(conn: Connection, sandbox_id: str, body: dict[str, Any], when: int) -> None:
    conn.execute(D.insert().values(id=body["@id"], sandbox_id=sandbox_id, schema_uri=body["xdm:sourceSchema"],
                                   type=body["@type"], body=body, created_ms=when))


def delete_descriptor(conn: Connection, sandbox_id: str, descriptor_id: str) -> None:
    conn.execute(D.delete().where(D.c.sandbox_id == sandbox_id, D.c.id == descriptor_id))


def descriptor_list_stmt(sandbox_id: str, schema_uri: str | None, type_: str | None) -> sa.Select[Any]:
    stmt = sa.select(D).where(D.c.sandbox_id == sandbox_id)
    if schema_uri:
        stmt = stmt.where(D.c.schema_uri == schema_uri)
    if type_:
        stmt = stmt.where(D.c.type == type_)
    return stmt
