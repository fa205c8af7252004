"""Merge policies: how a profile's fragments become one profile (stitching and attribute precedence).

Body as in the reference: `{name, schema: {name: "_xdm.context.profile"}, default, identityGraph:
{type: none|pdg}, attributeMerge: {type: timestampOrdered|dataSetPrecedence, order: [datasetIds]}}`.
At most one default per schema class and sandbox: making one default un-defaults the other. With
no default, profiles are neither stitched nor merged across identities (identity graph "none").
"""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wayline.kernel.problems import FieldError, Problem, not_found
from wayline.kernel.tenancy import audit
from wayline.platform import tables as t

CLASSES = ("_xdm.context.profile", "_xdm.context.experienceevent")
GRAPHS = ("none", "pdg")
MERGES = ("timestampOrdered", "dataSetPrecedence")
_KEYS = {"name", "schema", "default", "identityGraph", "attributeMerge", "id", "version", "updated", "created",
         "imsOrgId", "sandbox"}


def to_api(row: Any) -> dict[str, Any]:
    am: dict[str, Any] = {"type": row.attribute_merge}
    if row.attribute_merge == "dataSetPrecedence":
        am["order"] = list(row.dataset_order or [])
    return {"id": row.id, "name": row.name, "schema": {"name": row.schema_class}, "default": bool(row.is_default),
            "identityGraph": {"type": row.identity_graph}, "attributeMerge": am, "version": row.version,
            "created": row.created_ms, "updated": row.updated_ms}


def check(body: Any, *, known_datasets: set[str], partial: bool = False) -> dict[str, Any]:
    """The policy's columns from a request body, or a 422 naming every bad field."""
    if not isinstance(body, dict):
        raise Problem(422, "validation", "Invalid merge policy", "the body is a JSON object",
                      [FieldError("/", "expected an object", "object")])
    errors: list[FieldError] = []
    out: dict[str, Any] = {}
    for k in body:
        if k not in _KEYS:
            errors.append(FieldError(f"/{k}", "unknown field", ", ".join(sorted(_KEYS - {"id", "version"}))))
    if "name" in body or not partial:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            errors.append(FieldError("/name", "a name of 1 to 200 characters is required", "string"))
        else:
            out["name"] = name.strip()
    if "schema" in body or not partial:
        schema = body.get("schema")
        cls = schema.get("name") if isinstance(schema, dict) else None
        if cls not in CLASSES:
            errors.append(FieldError("/schema/name", f"one of {', '.join(CLASSES)}", "|".join(CLASSES)))
        else:
            out["schema_class"] = cls
    if "default" in body:
        if not isinstance(body["default"], bool):
            errors.append(FieldError("/default", "true or false", "boolean"))
        else:
            out["is_default"] = body["default"]
    elif not partial:
        out["is_default"] = False
    if "identityGraph" in body or not partial:
        ig = body.get("identityGraph")
        kind = ig.get("type") if isinstance(ig, dict) else None
        if kind not in GRAPHS:
            errors.append(FieldError("/identityGraph/type", "none or pdg", "none|pdg"))
        else:
            out["identity_graph"] = kind
    if "attributeMerge" in body or not partial:
        am = body.get("attributeMerge")
        kind = am.get("type") if isinstance(am, dict) else None
        if kind not in MERGES:
            errors.append(FieldError("/attributeMerge/type", "timestampOrdered or dataSetPrecedence", "|".join(MERGES)))
        else:
            out["attribute_merge"] = kind
            order = am.get("order", [])
            if kind == "dataSetPrecedence":
                if not isinstance(order, list) or not order or not all(isinstance(x, str) for x in order):
                    errors.append(FieldError("/attributeMerge/order", "dataSetPrecedence needs a list of dataset ids",
                                             "array of string"))
                else:
                    for n, ds_id in enumerate(order):
                        if ds_id not in known_datasets:
                            errors.append(FieldError(f"/attributeMerge/order/{n}",
                                                     f"no profile-enabled dataset {ds_id!r} in this sandbox"))
                    if len(set(order)) != len(order):
                        errors.append(FieldError("/attributeMerge/order", "a dataset is listed twice"))
                    out["dataset_order"] = list(order)
            else:
                if order:
                    errors.append(FieldError("/attributeMerge/order", "only dataSetPrecedence takes an order"))
                out["dataset_order"] = []
    if errors:
        raise Problem(422, "validation", "Invalid merge policy", f"{len(errors)} field(s) are not valid", errors)
    return out


def profile_datasets(conn: Connection, sandbox_id: str) -> set[str]:
    return set(conn.execute(sa.select(t.datasets.c.id).where(t.datasets.c.sandbox_id == sandbox_id,
                                                             t.datasets.c.profile_enabled.is_(True))).scalars())


def get(conn: Connection, sandbox_id: str, policy_id: str) -> Any:
    row = conn.execute(sa.select(t.merge_policies).where(t.merge_policies.c.sandbox_id == sandbox_id,
                                                         t.merge_policies.c.id == policy_id)).first()
    if row is None:
        raise not_found("merge policy", policy_id)
    return row


def list_all(conn: Connection, sandbox_id: str) -> list[Any]:
    return conn.execute(sa.select(t.merge_policies).where(t.merge_policies.c.sandbox_id == sandbox_id)
                        .order_by(t.merge_policies.c.created_ms, t.merge_policies.c.id)).all()


def _undefault_others(conn: Connection, sandbox_id: str, schema_class: str, keep: str, now: int) -> None:
    mp = t.merge_policies.c
    conn.execute(t.merge_policies.update().where(mp.sandbox_id == sandbox_id, mp.schema_class == schema_class,
                                                 mp.is_default.is_(True), mp.id != keep)
                 .values(is_default=False, version=mp.version + 1, updated_ms=now))


def create(conn: Connection, *, sandbox_id: str, body: Any, actor: str, now: int) -> Any:
    cols = check(body, known_datasets=profile_datasets(conn, sandbox_id))
    pid = "mp_" + secrets.token_hex(8)
    conn.execute(t.merge_policies.insert().values(id=pid, sandbox_id=sandbox_id, version=1, created_ms=now,
                                                  updated_ms=now, **cols))
    if cols["is_default"]:
        _undefault_others(conn, sandbox_id, cols["schema_class"], pid, now)
    row = get(conn, sandbox_id, pid)
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="create", resource_type="mergePolicy", resource_id=pid,
          after=to_api(row))
    return row


def update(conn: Connection, *, sandbox_id: str, policy_id: str, body: Any, actor: str, now: int,
           partial: bool) -> Any:
    before = get(conn, sandbox_id, policy_id)
    cols = check(body, known_datasets=profile_datasets(conn, sandbox_id), partial=partial)
    if "attribute_merge" in cols and cols["attribute_merge"] == "timestampOrdered":
        cols["dataset_order"] = []
    conn.execute(t.merge_policies.update().where(t.merge_policies.c.id == policy_id)
                 .values(version=before.version + 1, updated_ms=now, **cols))
    row = get(conn, sandbox_id, policy_id)
    if row.is_default:
        _undefault_others(conn, sandbox_id, row.schema_class, policy_id, now)
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="update", resource_type="mergePolicy",
          resource_id=policy_id, before=to_api(before), after=to_api(row))
    return row


def delete(conn: Connection, *, sandbox_id: str, policy_id: str, actor: str) -> None:
    before = get(conn, sandbox_id, policy_id)
    conn.execute(t.merge_policies.delete().where(t.merge_policies.c.id == policy_id))
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="delete", resource_type="mergePolicy",
          resource_id=policy_id, before=to_api(before))
