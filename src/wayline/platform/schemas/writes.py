"""The registry's changes, each a unit of work on one connection (run it with `store.write`).

Every change is audited with before/after. Every change to a piece bumps the version of everything
that uses it, so the compiled cache (keyed by version) sees it in every process. A schema enabled for
profile, and every piece it uses, takes additive changes only (see evolution.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy.engine import Connection

from wayline.kernel.problems import FieldError, Problem
from wayline.kernel.store import now_ms
from wayline.kernel.tenancy import audit
from wayline.platform.schemas import descriptors as dsc
from wayline.platform.schemas import importer, patching, queries, standard
from wayline.platform.schemas.checks import (
    check_if_match,
    definition,
    dependents,
    get_resource,
    in_use,
    resolver_for,
    validate,
    view,
    wrap_dependent,
)
from wayline.platform.schemas.compose import Resolver, close, compose_schema, expand, extends, referenced
from wayline.platform.schemas.evolution import breaking_changes
from wayline.platform.schemas.model import (
    SERVER_KEYS,
    TITLE,
    UNION_TAG,
    Resource,
    derive_alt_id,
    invalid,
    is_reserved,
    new_uri,
)


def _wants_profile(body: Any) -> bool:
    tags = body.get("meta:immutableTags") if isinstance(body, dict) else None
    return isinstance(tags, list) and UNION_TAG in tags


def create(conn: Connection, *, sandbox_id: str, tenant_id: str, actor: str, kind: str,
           body: Any) -> tuple[dict[str, Any], bool]:
    """Create a piece; (its view, True). The same `$id` with the same definition: (the existing one, False)."""
    d = importer.parse(kind, body)
    doc = d.doc
    uri = doc.get("$id") or new_uri(tenant_id, kind)
    if standard.get(uri):
        raise Problem(409, "conflict", "Conflict", f"{uri} is a standard piece; give your {TITLE[kind]} its own $id")
    if is_reserved(uri):
        raise invalid(f"$id {uri!r} is in a namespace reserved for standard pieces",
                      [FieldError("/$id", "reserved namespace")])
    doc["$id"] = uri
    doc.setdefault("meta:altId", derive_alt_id(uri))
    when = now_ms()
    res = Resource(uri=uri, kind=kind, body=doc, version=1, created_ms=when, updated_ms=when)
    resolver = resolver_for(conn, sandbox_id)
    existing = resolver.get(uri)
    validate(resolver.with_override(res), d, res, tenant_id)
    if existing is not None:
        if existing.kind == kind and definition(existing.body) == definition(doc):
            if _wants_profile(body) and not existing.profile_enabled:
                existing = _enable(conn, sandbox_id, actor, existing)
            return view(existing), False
        raise Problem(409, "conflict", "Conflict", f"a {TITLE[existing.kind]} with $id {uri} already exists with "
                      "a different definition; PUT to change it")
    taken = queries.alt_id_taken(conn, sandbox_id, res.alt_id) or (standard.get(res.alt_id) and res.alt_id)
    if taken:
        raise Problem(409, "conflict", "Conflict", f"meta:altId {res.alt_id!r} is already used by {taken}")
    queries.insert(conn, sandbox_id, res)
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="create", resource_type=kind, resource_id=uri,
          after=doc)
    if _wants_profile(body):
        res = _enable(conn, sandbox_id, actor, res)
    return view(res), True


def update(conn: Connection, *, sandbox_id: str, tenant_id: str, actor: str, kind: str, ident: str, body: Any,
           if_match: str | None = None) -> dict[str, Any]:
    """Replace a piece's definition (PUT); honours If-Match; additive only when profile uses it."""
    existing = get_resource(conn, sandbox_id, kind, ident)
    check_if_match(if_match, existing.version)
    return _replace(conn, sandbox_id, tenant_id, actor, existing, body, _wants_profile(body))


def patch(conn: Connection, *, sandbox_id: str, tenant_id: str, actor: str, kind: str, ident: str, body: Any,
          if_match: str | None = None) -> dict[str, Any]:
    """JSON Patch or merge patch on the GET view; adding "union" to meta:immutableTags enables profile."""
    existing = get_resource(conn, sandbox_id, kind, ident)
    check_if_match(if_match, existing.version)
    patched = patching.apply(view(existing), body)
    enable = _wants_profile(patched)
    if existing.profile_enabled and not enable:
        raise invalid("a schema enabled for profile stays enabled: 'union' cannot be removed from "
                      "meta:immutableTags", [FieldError("/meta:immutableTags", "cannot disable profile")])
    return _replace(conn, sandbox_id, tenant_id, actor, existing,
                    {k: v for k, v in patched.items() if k not in SERVER_KEYS}, enable)


def _replace(conn: Connection, sandbox_id: str, tenant_id: str, actor: str, existing: Resource, body: Any,
             enable: bool) -> dict[str, Any]:
    d = importer.parse(existing.kind, body)
    doc = d.doc
    if doc.setdefault("$id", existing.uri) != existing.uri:
        raise invalid("$id cannot change", [FieldError("/$id", f"this resource's $id is {existing.uri}")])
    if doc.setdefault("meta:altId", existing.alt_id) != existing.alt_id:
        raise invalid("meta:altId cannot change", [FieldError("/meta:altId", f"it is {existing.alt_id}")])
    if enable and existing.kind != "schema":
        raise invalid("only schemas are enabled for profile", [FieldError("/meta:immutableTags", "not a schema")])
    when = now_ms()
    res = replace(existing, body=doc, version=existing.version + 1, updated_ms=when)
    old = resolver_for(conn, sandbox_id)
    new = old.with_override(res)
    validate(new, d, res, tenant_id)
    if definition(doc) == definition(existing.body):
        if enable and not existing.profile_enabled:
            return view(_enable(conn, sandbox_id, actor, existing))
        return view(existing)
    users = dependents(queries.all_resources(conn, sandbox_id), existing.uri)
    _still_valid(conn, sandbox_id, old, new, existing, res)
    for user in users:  # every piece using this one must still compose, additively if profile uses it
        wrap_dependent(user, lambda u=user: _still_valid(conn, sandbox_id, old, new, u, u))
    queries.update(conn, sandbox_id, res, existing.version)
    queries.bump(conn, sandbox_id, [u.uri for u in users], when,
                 {u.uri: {**u.body, "meta:extends": extends(new, u)} for u in users})
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="update", resource_type=existing.kind,
          resource_id=existing.uri, before=existing.body, after=doc)
    if enable and not res.profile_enabled:
        res = _enable(conn, sandbox_id, actor, res)
    return view(res)


def _still_valid(conn: Connection, sandbox_id: str, old: Resolver, new: Resolver, before: Resource,
                 after: Resource) -> None:
    """A piece (or a piece using it) must still compose; profile schemas must change additively only."""
    if after.kind != "schema":
        close(expand(new, after))
        return
    composed = compose_schema(new, after)
    if before.profile_enabled:
        previous = compose_schema(old, before)
        if previous.class_uri != composed.class_uri:
            raise invalid(f"schema {after.title!r} is enabled for profile: its class cannot change",
                          [FieldError("/meta:class", f"stays {previous.class_uri}")], title="Breaking change")
        broken = breaking_changes(previous.tree, composed.tree)
        if broken:
            raise invalid(f"schema {after.title!r} is enabled for profile, so only additive changes are "
                          f"accepted: " + "; ".join(e.detail for e in broken), broken, title="Breaking change")
    for desc in queries.descriptors_of(conn, sandbox_id, after.uri):
        path = dsc.path_of(desc["xdm:sourceProperty"])
        node = dsc.field_at(composed.tree, path)
        if node is None or node.get("type") != "string":
            raise invalid(f"descriptor {desc['@id']} marks {desc['xdm:sourceProperty']}, which would no longer be "
                          "a string field; delete the descriptor first",
                          [FieldError(desc["xdm:sourceProperty"], "field used by a descriptor")])


def enable_profile(conn: Connection, *, sandbox_id: str, actor: str, ident: str) -> dict[str, Any]:
    """Enable a schema for profile (needs a primary identity: a descriptor, or the identityMap)."""
    res = get_resource(conn, sandbox_id, "schema", ident)
    return view(res if res.profile_enabled else _enable(conn, sandbox_id, actor, res))


def _enable(conn: Connection, sandbox_id: str, actor: str, res: Resource) -> Resource:
    composed = compose_schema(resolver_for(conn, sandbox_id), res)
    descs = queries.descriptors_of(conn, sandbox_id, res.uri)
    primary = any(d.get("@type") == dsc.IDENTITY and d.get("xdm:isPrimary") for d in descs)
    if not primary and "identityMap" not in composed.tree.get("properties", {}):
        raise invalid(f"schema {res.title!r} needs a primary identity before it is enabled for profile: create a "
                      "primary identity descriptor (xdm:isPrimary true) or add the IdentityMap field group",
                      [FieldError("/meta:immutableTags", "no primary identity")], title="No primary identity")
    done = replace(res, profile_enabled=True, version=res.version + 1, updated_ms=now_ms())
    queries.update(conn, sandbox_id, done, res.version)
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="enable", resource_type="schema", resource_id=res.uri,
          before={"profileEnabled": False}, after={"profileEnabled": True})
    return done


def delete(conn: Connection, *, sandbox_id: str, actor: str, kind: str, ident: str,
           if_match: str | None = None) -> None:
    """Delete a piece nobody uses (no other piece, dataset or relationship); its descriptors go with it."""
    res = get_resource(conn, sandbox_id, kind, ident)
    check_if_match(if_match, res.version)
    users = [r.uri for r in queries.all_resources(conn, sandbox_id)
             if r.uri != res.uri and (res.uri in set(referenced(r.body))
                                      or res.uri in (r.body.get("meta:intendedToExtend") or []))]
    if kind == "schema":
        users += [f"dataset {i}" for i in queries.datasets_using(conn, sandbox_id, [res.uri, res.alt_id])]
        users += [f"descriptor {i}" for i in queries.descriptors_pointing_at(conn, sandbox_id, res.uri)]
    if users:
        raise in_use(f"{TITLE[kind]} {res.uri}", users)
    queries.delete(conn, sandbox_id, res.uri)
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="delete", resource_type=kind, resource_id=res.uri,
          before=res.body)


# -- descriptors ------------------------------------------------------------------------------------

def _schema_for(conn: Connection, sandbox_id: str, ident: str, where: str) -> Resource:
    res = queries.find(conn, sandbox_id, ident, "schema")
    if res is None:
        raise invalid(f"{where} {ident!r} is not a schema of this sandbox", [FieldError(f"/{where}", "unknown schema")],
                      title="Invalid descriptor")
    return res


def create_descriptor(conn: Connection, *, sandbox_id: str, actor: str, body: Any) -> tuple[dict[str, Any], bool]:
    """Create an identity or one-to-one descriptor; a replay of the same one answers it (False)."""
    desc = dsc.parse(body)
    source = _schema_for(conn, sandbox_id, desc["xdm:sourceSchema"], "xdm:sourceSchema")
    desc["xdm:sourceSchema"] = source.uri
    resolver = resolver_for(conn, sandbox_id)
    composed = compose_schema(resolver, source)
    existing = queries.descriptors_of(conn, sandbox_id, source.uri)
    if desc["@type"] == dsc.ONE_TO_ONE:
        dest = _schema_for(conn, sandbox_id, desc["xdm:destinationSchema"], "xdm:destinationSchema")
        desc["xdm:destinationSchema"] = dest.uri
        dsc.check_relationship(desc, composed, compose_schema(resolver, dest),
                               queries.descriptors_of(conn, sandbox_id, dest.uri))
    for other in existing:
        if other["@id"] == desc.get("@id") or dsc.same_target(other, desc):
            if {k: v for k, v in other.items() if k != "@id"} == {k: v for k, v in desc.items() if k != "@id"} \
                    and desc.get("@id", other["@id"]) == other["@id"]:
                return other, False
            raise Problem(409, "conflict", "Conflict", f"descriptor {other['@id']} already describes "
                          f"{other['xdm:sourceProperty']} of {source.uri} differently; delete it first")
    if "@id" in desc and queries.descriptor(conn, sandbox_id, desc["@id"]) is not None:
        raise Problem(409, "conflict", "Conflict", f"descriptor @id {desc['@id']} is taken")
    if desc["@type"] == dsc.IDENTITY:
        dsc.check_identity(desc, composed, existing)
    desc.setdefault("@id", dsc.new_id())
    when = now_ms()
    queries.insert_descriptor(conn, sandbox_id, desc, when)
    queries.bump(conn, sandbox_id, [source.uri], when)  # identities are part of the compiled schema
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="create", resource_type="descriptor",
          resource_id=desc["@id"], after=desc)
    return desc, True


def delete_descriptor(conn: Connection, *, sandbox_id: str, actor: str, descriptor_id: str) -> None:
    """Delete a descriptor; not the primary identity of a profile schema that has no identityMap."""
    desc = queries.descriptor(conn, sandbox_id, descriptor_id)
    if desc is None:
        raise Problem(404, "not-found", "Not found", f"descriptor {descriptor_id!r} does not exist in this sandbox")
    source = queries.fetch(conn, sandbox_id, desc["xdm:sourceSchema"])
    if source is not None and source.profile_enabled and desc.get("xdm:isPrimary"):
        composed = compose_schema(resolver_for(conn, sandbox_id), source)
        if "identityMap" not in composed.tree.get("properties", {}):
            raise invalid(f"descriptor {descriptor_id} is the primary identity of {source.uri}, which is enabled for "
                          "profile; a profile schema keeps its primary identity",
                          [FieldError("/xdm:isPrimary", "primary identity of a profile schema")])
    queries.delete_descriptor(conn, sandbox_id, descriptor_id)
    if source is not None:
        queries.bump(conn, sandbox_id, [source.uri], now_ms())
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="delete", resource_type="descriptor",
          resource_id=descriptor_id, before=desc)

