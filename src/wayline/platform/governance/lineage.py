"""Which labels data carries: field labels of schemas and field groups, and the labels of datasets,
fields and other entities named in an evaluation.

A field group's field labels apply in every schema that includes it (directly or through another
field group); a dataset's labels apply to every field of it. Stored paths a piece no longer has are
ignored, so changing a schema never leaves a label on a field that is not there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wayline.kernel.problems import FieldError, Problem, pointer
from wayline.kernel.tenancy import audit
from wayline.platform import datasets as ds
from wayline.platform import tables as pt
from wayline.platform.governance import checks, fields
from wayline.platform.governance import tables as t
from wayline.platform.governance.evaluate import Discovered, sort_labels
from wayline.platform.governance.fields import Path
from wayline.platform.governance.model import EntityRef
from wayline.platform.governance.store import check_if_match, known_labels
from wayline.platform.schemas import queries, standard
from wayline.platform.schemas.checks import resolver_for
from wayline.platform.schemas.compose import Resolver, compose_schema, expand, extends
from wayline.platform.schemas.model import Resource

F = t.governance_field_labels
KINDS = ("schema", "fieldgroup")


def class_uri(name: str) -> str:
    """`_xdm.context.profile` (a merge policy's or segment's schema name) → the class `$id`."""
    return "https://ns.adobe.com/xdm/" + name[5:].replace(".", "/") if name.startswith("_xdm.") else name


# -- the pieces labels sit on -----------------------------------------------------------------------

def piece(conn: Connection, sandbox_id: str, ident: str) -> Resource:
    """A schema or field group of the sandbox, or a standard field group, by `$id` or altId (else 404)."""
    for kind in KINDS:
        found = queries.find(conn, sandbox_id, ident, kind)
        if found is not None:
            return found
    std = standard.get(ident)
    if std is not None and std.kind == "fieldgroup":
        return std
    raise Problem(404, "not-found", "Not found", f"no schema or field group {ident!r} in this sandbox")


@dataclass
class Tree:
    uri: str
    kind: str
    title: str
    tree: dict[str, Any]
    class_uri: str = ""
    fieldgroups: tuple[str, ...] = ()  # every field group a schema includes, transitively


def tree_of(resolver: Resolver, res: Resource) -> Tree:
    if res.kind == "schema":
        composed = compose_schema(resolver, res)
        groups = tuple(u for u in extends(resolver, res) if (g := resolver.get(u)) is not None
                       and g.kind == "fieldgroup")
        return Tree(res.uri, res.kind, res.title, composed.tree, composed.class_uri, groups)
    return Tree(res.uri, res.kind, res.title, expand(resolver, res))


def _stored(conn: Connection, sandbox_id: str, uris: Iterable[str]) -> dict[str, Any]:
    rows = conn.execute(sa.select(F).where(F.c.sandbox_id == sandbox_id, F.c.resource_uri.in_(list(uris)))).all()
    return {r.resource_uri: r for r in rows}


def _as_map(raw: Mapping[str, Any] | None, tree: dict[str, Any]) -> dict[Path, frozenset[str]]:
    out: dict[Path, frozenset[str]] = {}
    for where, labels in (raw or {}).items():
        path = fields.canonical(tree, fields.parse(where))
        if path is not None and labels:
            out[path] = out.get(path, frozenset()) | frozenset(labels)
    return out


def _api_map(m: Mapping[Path, frozenset[str]]) -> dict[str, list[str]]:
    return {fields.format_path(p): sort_labels(ls) for p, ls in sorted(m.items())}


# -- field labels: read and write -------------------------------------------------------------------

def field_labels_view(conn: Connection, sandbox_id: str, ident: str) -> dict[str, Any]:
    """A piece's own field labels; for a schema also those of its field groups and the effective map."""
    resolver = resolver_for(conn, sandbox_id)
    tr = tree_of(resolver, piece(conn, sandbox_id, ident))
    rows = _stored(conn, sandbox_id, [tr.uri, *tr.fieldgroups])
    own = rows.get(tr.uri)
    out: dict[str, Any] = {"resource": tr.uri, "kind": tr.kind, "title": tr.title,
                           "version": own.version if own else 0,
                           "labels": _api_map(_as_map(own.labels if own else None, tr.tree))}
    if tr.kind == "schema":
        inherited = [(u, _as_map(rows[u].labels, tr.tree)) for u in tr.fieldgroups if u in rows]
        out["fieldGroups"] = [{"resource": u, "labels": _api_map(m)} for u, m in inherited if m]
        out["effectiveLabels"] = _api_map(fields.merge(_as_map(own.labels if own else None, tr.tree),
                                                       *(m for _, m in inherited)))
    return out


def list_field_labels(conn: Connection, sandbox_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(F).where(F.c.sandbox_id == sandbox_id).order_by(F.c.resource_uri)).all()
    return [{"resource": r.resource_uri, "kind": r.kind, "version": r.version, "labels": r.labels} for r in rows
            if r.labels]


def check_field_labels(body: Any, tree: dict[str, Any], known: set[str]) -> dict[str, list[str]]:
    """`{"labels": {path: [labels]}}` checked against the piece's fields and the known labels."""
    errors: list[FieldError] = []
    raw = body.get("labels") if isinstance(body, dict) else None
    if not isinstance(raw, dict):
        raise checks.problem("Invalid field labels", [FieldError("/labels", "an object of field path → label "
                                                                 "names", '{"/person/name": ["I1"]}')])
    for k in body:
        if k not in ("labels", "resource", "kind", "title", "version", "fieldGroups", "effectiveLabels"):
            errors.append(FieldError(pointer([k]), "unknown field", "labels"))
    out: dict[Path, list[str]] = {}
    for where, labels in raw.items():
        at = pointer(["labels", where])
        try:
            path = fields.canonical(tree, fields.parse(where))
        except ValueError as exc:
            errors.append(FieldError(at, str(exc), "/person/name"))
            continue
        if path is None:
            errors.append(FieldError(at, f"no field {where!r} in this resource", "a field path of the resource"))
            continue
        good = checks.label_list(labels, known, at, errors)
        out[path] = list(dict.fromkeys([*out.get(path, []), *good]))
    if errors:
        raise checks.problem("Invalid field labels", errors)
    return {fields.format_path(p): sort_labels(ls) for p, ls in sorted(out.items()) if ls}


def put_field_labels(conn: Connection, *, sandbox_id: str, ident: str, body: Any, actor: str, now: int,
                     if_match: str | None = None) -> dict[str, Any]:
    """Replace the field labels of one schema or field group."""
    tr = tree_of(resolver_for(conn, sandbox_id), piece(conn, sandbox_id, ident))
    before = _stored(conn, sandbox_id, [tr.uri]).get(tr.uri)
    check_if_match(if_match, before.version if before else 0)
    labels = check_field_labels(body, tr.tree, known_labels(conn, sandbox_id))
    if before is None:
        conn.execute(F.insert().values(sandbox_id=sandbox_id, resource_uri=tr.uri, kind=tr.kind, labels=labels,
                                       version=1, updated_ms=now))
    else:
        conn.execute(F.update().where(F.c.sandbox_id == sandbox_id, F.c.resource_uri == tr.uri)
                     .values(labels=labels, version=before.version + 1, updated_ms=now))
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="update", resource_type="fieldLabels",
          resource_id=tr.uri, before=before.labels if before else None, after=labels)
    return field_labels_view(conn, sandbox_id, tr.uri)


# -- what data carries ------------------------------------------------------------------------------

@dataclass
class SchemaLabels:
    """A schema's fields and its effective field labels (its own and its field groups')."""

    uri: str
    class_uri: str
    tree: dict[str, Any]
    labels: dict[Path, frozenset[str]]

    def at(self, path: Any) -> frozenset[str] | None:
        """Labels of a field (ancestors and descendants included), or None when the schema lacks it."""
        found = fields.canonical(self.tree, fields.parse(path))
        return None if found is None else fields.labels_at(self.labels, found)

    def labelled(self) -> tuple[tuple[str, frozenset[str]], ...]:
        return tuple((fields.format_path(p), ls) for p, ls in sorted(self.labels.items()))


@dataclass
class Lookup:
    """Reads for one evaluation or lineage call, each schema composed once."""

    conn: Connection
    sandbox_id: str
    _schemas: dict[str, SchemaLabels] = field(default_factory=dict)
    _resolver: Resolver | None = None

    def schema(self, ident: str) -> SchemaLabels:
        hit = self._schemas.get(ident)
        if hit is not None:
            return hit
        res = queries.find(self.conn, self.sandbox_id, ident, "schema")
        if res is None:
            raise Problem(404, "not-found", "Not found", f"schema {ident!r} does not exist in this sandbox")
        self._resolver = self._resolver or resolver_for(self.conn, self.sandbox_id)
        tr = tree_of(self._resolver, res)
        rows = _stored(self.conn, self.sandbox_id, [tr.uri, *tr.fieldgroups])
        merged = fields.merge(*(_as_map(rows[u].labels, tr.tree) for u in (tr.uri, *tr.fieldgroups) if u in rows))
        out = SchemaLabels(tr.uri, tr.class_uri, tr.tree, merged)
        self._schemas[ident] = self._schemas[tr.uri] = out
        return out

    def dataset(self, dataset_id: str) -> ds.Dataset:
        return ds.get_dataset(self.conn, self.sandbox_id, dataset_id)

    def profile_datasets(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(id, schema $id, labels) of the sandbox's profile-enabled datasets."""
        d = pt.datasets.c
        rows = self.conn.execute(sa.select(d.id, d.schema_uri, d.labels).where(
            d.sandbox_id == self.sandbox_id, d.profile_enabled.is_(True)).order_by(d.created_ms, d.id)).all()
        return [(r.id, r.schema_uri, tuple(r.labels or ())) for r in rows]

    def labels_for_fields(self, *, schema_uri: str | None, dataset_id: str | None, schema_class: str | None,
                          paths: list[Any], where: str | list[str] = "/paths") -> dict[Any, set[str]]:
        """Labels of each path: of one schema, of one dataset (plus the dataset's labels), or of every
        profile-enabled dataset of a class (the union a segment reads; a path gets the labels of each
        dataset whose schema has it)."""
        if sum(x is not None for x in (schema_uri, dataset_id, schema_class)) != 1:
            raise ValueError("give exactly one of schema_uri, dataset_id, schema_class")
        at = where if isinstance(where, list) else [f"{where}/{i}" for i in range(len(paths))]
        errors: list[FieldError] = []
        out: dict[Any, set[str]] = {}
        if schema_class is not None:
            wanted = class_uri(schema_class)
            sources = [(self.schema(uri), set(labels)) for _, uri, labels in self.profile_datasets()]
            sources = [(s, own) for s, own in sources if s.class_uri == wanted]
            for i, path in enumerate(paths):
                out[path] = set()
                try:
                    parts = fields.parse(path)
                except ValueError as exc:
                    errors.append(FieldError(at[i], f"not a field path: {exc}", "/person/name"))
                    continue
                for sl, own in sources:  # a dataset whose schema lacks the field adds nothing to it
                    found = sl.at(parts)
                    if found is not None:
                        out[path] |= found | own
        else:
            own: set[str] = set()
            if dataset_id is not None:
                d = self.dataset(dataset_id)
                own, schema_uri = set(d.labels), d.schema_uri
            sl = self.schema(schema_uri)  # type: ignore[arg-type]
            for i, path in enumerate(paths):
                found = self._at(sl, path, at[i], errors)
                out[path] = set(found or ()) | own
        if errors:
            raise checks.problem("Unknown field", errors)
        return out

    @staticmethod
    def _at(sl: SchemaLabels, path: Any, where: str, errors: list[FieldError]) -> frozenset[str] | None:
        try:
            found = sl.at(path)
        except ValueError as exc:
            errors.append(FieldError(where, f"not a field path: {exc}", "/person/name"))
            return None
        if found is None:
            errors.append(FieldError(where, f"schema {sl.uri} has no field {path!r}", "a field of the schema"))
        return found

    def discover(self, entity: EntityRef, where: str) -> Discovered:
        """The labels of one entity (a dataset, a field of a dataset or schema)."""
        if entity.entity_type == "dataSet":
            d = self._dataset_or_404(entity.entity_id, f"{where}/entityId")
            sl = self.schema(d.schema_uri)
            if entity.paths:
                found = self.labels_for_fields(schema_uri=sl.uri, dataset_id=None, schema_class=None,
                                               paths=list(entity.paths), where=f"{where}/entityMeta/fields")
                labelled = tuple((str(p), frozenset(ls)) for p, ls in found.items())
            else:
                labelled = sl.labelled()
            own = frozenset(d.labels)
            every = own.union(*(ls for _, ls in labelled))
            return Discovered("dataSet", d.id, every, own=own, fields=labelled)
        if entity.entity_type == "field":
            path = entity.paths[0] if entity.paths else None
            if path is None:
                raise checks.problem("Invalid entity", [FieldError(f"{where}/path", "a field entity names its path",
                                                                   "/person/name")])
            target = self._field_target(entity.entity_id, f"{where}/entityId")
            found = self.labels_for_fields(**target, schema_class=None, paths=[path], where=[f"{where}/path"])
            return Discovered("field", entity.entity_id, frozenset(found[path]), path=str(path))
        raise checks.problem("Invalid entity", [FieldError(f"{where}/entityType", f"unknown entity type "
                                                           f"{entity.entity_type!r}", "dataSet or field")])

    def _dataset_or_404(self, dataset_id: str, where: str) -> ds.Dataset:
        try:
            return self.dataset(dataset_id)
        except Problem as p:
            # No echo of the id: a bulk answer carries this text under a 2xx status.
            raise Problem(404, "not-found", "Not found", "no dataset with this id in this sandbox",
                          [FieldError(where, "no such dataset in this sandbox")]) from p

    def _field_target(self, ident: str, where: str) -> dict[str, str | None]:
        """A field entity's id is a dataset id or a schema `$id` / altId."""
        d = self.conn.execute(sa.select(pt.datasets.c.id).where(pt.datasets.c.sandbox_id == self.sandbox_id,
                                                                pt.datasets.c.id == ident)).scalar()
        if d is not None:
            return {"dataset_id": d, "schema_uri": None}
        if queries.find(self.conn, self.sandbox_id, ident, "schema") is not None:
            return {"dataset_id": None, "schema_uri": ident}
        raise Problem(404, "not-found", "Not found", "no dataset or schema with this id in this sandbox",
                      [FieldError(where, "no such dataset or schema in this sandbox")])

