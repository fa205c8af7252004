"""Whole-definition checks that need the registry: references, kinds, composition, tenant namespace.

Also the views (what GET answers) and the small helpers the write flows share.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection

from wayline.kernel.problems import FieldError, Problem
from wayline.platform.schemas import queries, standard
from wayline.platform.schemas.compose import (
    Resolver,
    check_tenant_fields,
    class_parts,
    close,
    compose_schema,
    expand,
    extends,
    referenced,
    resolve_pointer,
    split_ref,
)
from wayline.platform.schemas.importer import Definition
from wayline.platform.schemas.model import BEHAVIORS, PLURAL, SERVER_KEYS, TITLE, Resource, invalid

# Which kinds a definition's root allOf may pull in; inside fields, only data types.
ROOT_REF_KINDS = {"class": {"behavior"}, "fieldgroup": {"fieldgroup", "datatype"}, "datatype": {"datatype"},
                  "schema": {"class", "fieldgroup"}}


def resolver_for(conn: Connection, sandbox_id: str) -> Resolver:
    return Resolver(lambda uri: queries.fetch(conn, sandbox_id, uri))


def definition(body: dict[str, Any]) -> dict[str, Any]:
    """The part of a stored body the client wrote (for replay comparison)."""
    return {k: v for k, v in body.items() if k not in SERVER_KEYS}


def check_if_match(header: str | None, version: int) -> None:
    """If-Match must name the current version (ETag) when sent; '*' matches any."""
    if header is None or header.strip() == "*":
        return
    tags = [t.strip().removeprefix("W/").strip('"') for t in header.split(",")]
    if str(version) not in tags:
        raise Problem(412, "precondition-failed", "Precondition failed",
                      f"If-Match {header} does not match the current version (ETag \"{version}\"); "
                      "read the resource again and retry")


def validate(resolver: Resolver, d: Definition, res: Resource, tenant_id: str) -> None:
    """Check references, kinds, composition and the tenant namespace; fill meta:class and meta:extends.

    `resolver` must already see `res` as an override. Raises a 422 problem naming each place.
    """
    doc = res.body
    errors: list[FieldError] = []
    root_ptrs = {p for p, _ in d.root_refs}
    behaviors = 0
    for where, ref in d.refs:
        uri, frag = split_ref(ref)
        if not uri:
            if not isinstance(resolve_pointer(doc, frag), dict):
                errors.append(FieldError(where, f"local $ref {ref!r} points at nothing in this definition"))
            continue
        target = resolver.get(uri)
        if target is None or (uri == res.uri and not frag):
            errors.append(FieldError(where, f"unknown $ref {ref!r}: no standard or sandbox piece has this $id"
                                     if target is None else f"$ref {ref!r} refers to the definition itself"))
            continue
        if frag:
            if not isinstance(resolve_pointer(target.body, frag), dict):
                errors.append(FieldError(where, f"$ref {ref!r} points at nothing in {uri}"))
            continue
        allowed = ROOT_REF_KINDS[d.kind] if where in root_ptrs else {"datatype"}
        if target.kind == "behavior":
            behaviors += 1
        if target.kind not in allowed:
            place = "the root allOf" if where in root_ptrs else "a field"
            errors.append(FieldError(where, f"{ref} is a {TITLE[target.kind]}; {place} of a {TITLE[d.kind]} may "
                                     f"reference only {', '.join(TITLE[k] + 's' for k in sorted(allowed))}"))
    if d.kind == "class" and behaviors != 1 and not errors:
        errors.append(FieldError("/allOf", "a class extends exactly one behavior: add {\"$ref\": \""
                                 + "\"} or {\"$ref\": \"".join(BEHAVIORS) + "\"} to allOf"))
    if d.kind == "fieldgroup":
        for i, uri in enumerate(doc.get("meta:intendedToExtend") or []):
            target = resolver.get(uri)
            if target is None or target.kind not in ("class", "behavior"):
                errors.append(FieldError(f"/meta:intendedToExtend/{i}", f"{uri!r} is not a known class or behavior"))
    if errors:
        raise invalid(errors[0].detail if len(errors) == 1 else f"{len(errors)} problems: "
                      + "; ".join(f"{e.detail} (at {e.pointer})" for e in errors[:5]), errors)
    if d.kind == "schema":
        cls, _ = class_parts(resolver, res)
        doc["meta:class"] = cls.uri
        compose_schema(resolver, res)
    else:
        tree = close(expand(resolver, res))
        if d.kind in ("class", "fieldgroup"):
            check_tenant_fields(tree, tenant_id, TITLE[d.kind])
    doc["meta:extends"] = extends(resolver, res)


def dependents(resources: list[Resource], uri: str) -> list[Resource]:
    """Every sandbox resource that uses `uri`, directly or through other pieces."""
    users: dict[str, set[str]] = {}
    for r in resources:
        for ref in set(referenced(r.body)):
            users.setdefault(ref, set()).add(r.uri)
    by_uri = {r.uri: r for r in resources}
    seen: list[str] = []
    todo = sorted(users.get(uri, ()))
    while todo:
        nxt = todo.pop(0)
        if nxt in seen or nxt == uri:
            continue
        seen.append(nxt)
        todo.extend(sorted(users.get(nxt, ())))
    return [by_uri[u] for u in seen if u in by_uri]


def view(res: Resource, *, full: bool = False, resolver: Resolver | None = None) -> dict[str, Any]:
    """What GET answers: the definition plus the registry's metadata; `full` = composed/expanded."""
    if full:
        resolver = resolver or Resolver()
        if res.kind == "schema":
            out = dict(compose_schema(resolver, res).json_schema)
        else:
            tree = expand(resolver, res)
            out = {"$id": res.uri, "meta:altId": res.alt_id, "title": res.title}
            if res.body.get("description"):
                out["description"] = res.body["description"]
            if "meta:intendedToExtend" in res.body:
                out["meta:intendedToExtend"] = res.body["meta:intendedToExtend"]
            out.update({k: v for k, v in tree.items() if k not in ("title", "description")})
    else:
        out = {"$id": res.uri, "meta:altId": res.alt_id, **res.body}
    out["meta:resourceType"] = PLURAL[res.kind]
    out["version"] = res.version
    if res.kind == "schema" and res.profile_enabled:
        out["meta:immutableTags"] = ["union"]
    if not res.standard:
        out["meta:registryMetadata"] = {"repo:createdDate": res.created_ms, "repo:lastModifiedDate": res.updated_ms,
                                        "eTag": str(res.version)}
    return out


def get_resource(conn: Connection, sandbox_id: str, kind: str, ident: str) -> Resource:
    res = queries.find(conn, sandbox_id, ident, kind)
    if res is None:
        raise not_found(kind, ident)
    return res


def not_found(kind: str, ident: str) -> Problem:
    hint = " (it is a standard piece: see /schemaregistry/global)" if standard.get(ident) else ""
    return Problem(404, "not-found", "Not found", f"{TITLE.get(kind, kind)} {ident!r} does not exist in this "
                   f"sandbox{hint}")


def in_use(what: str, users: list[str]) -> Problem:
    shown = ", ".join(users[:10]) + (" …" if len(users) > 10 else "")
    return Problem(409, "in-use", "In use", f"{what} is in use by {shown}; remove those uses first",
                   extra={"usedBy": users})


def wrap_dependent(dep: Resource, fn: Callable[[], Any]) -> Any:
    """Run a check on a resource that uses the one being changed; say which resource broke."""
    try:
        return fn()
    except Problem as p:
        if p.status != 422:
            raise
        raise Problem(422, p.slug, p.title, f"the change would break {TITLE[dep.kind]} {dep.title!r} ({dep.uri}) "
                      f"that uses it: {p.detail}", p.errors, extra={"brokenResource": dep.uri}) from None
