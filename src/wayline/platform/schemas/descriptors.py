"""Descriptors: facts about a schema's fields kept beside the schema (identities, relationships).

Identity: `{"@type": "xdm:descriptorIdentity", "xdm:sourceSchema", "xdm:sourceProperty": "/personalEmail/address",
"xdm:namespace": "Email", "xdm:isPrimary": true}`. One-to-one relationship: `{"@type":
"xdm:descriptorOneToOne", "xdm:sourceSchema", "xdm:sourceProperty", "xdm:destinationSchema",
"xdm:destinationProperty"}`. Whether a namespace code exists is the identity service's business;
here it is only a non-empty code.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from wayline.kernel.problems import FieldError, Problem
from wayline.platform.schemas.compiled import IdentityField, Relationship
from wayline.platform.schemas.compose import Composed
from wayline.platform.schemas.model import PROFILE_CLASS, invalid

IDENTITY = "xdm:descriptorIdentity"
ONE_TO_ONE = "xdm:descriptorOneToOne"
TYPES = (IDENTITY, ONE_TO_ONE)
_COMMON = {"@id", "@type", "xdm:sourceSchema", "xdm:sourceVersion", "xdm:sourceProperty", "meta:containerId"}
KEYS = {IDENTITY: _COMMON | {"xdm:namespace", "xdm:property", "xdm:isPrimary"},
        ONE_TO_ONE: _COMMON | {"xdm:destinationSchema", "xdm:destinationVersion", "xdm:destinationProperty",
                               "xdm:destinationNamespace"}}
_ID = re.compile(r"^[A-Za-z0-9_\-]{1,40}$")


def parse(body: Any) -> dict[str, Any]:
    """Shape checks of a submitted descriptor; returns it normalised (ids not yet resolved)."""
    if not isinstance(body, dict):
        raise invalid("a descriptor is a JSON object", [FieldError("", "not an object", "object")],
                      title="Invalid descriptor")
    errors: list[FieldError] = []
    kind = body.get("@type")
    if kind not in TYPES:
        raise invalid(f"unsupported descriptor @type {kind!r}; supported: {', '.join(TYPES)}",
                      [FieldError("/@type", "unsupported descriptor type", "|".join(TYPES))],
                      title="Invalid descriptor")
    for key in body:
        if key not in KEYS[kind]:
            errors.append(FieldError(f"/{key}", f"unknown field {key!r} for a {kind}"))
    for key in ("xdm:sourceSchema", "xdm:sourceProperty") + (
            ("xdm:namespace",) if kind == IDENTITY else ("xdm:destinationSchema",)):
        if not isinstance(body.get(key), str) or not body[key].strip():
            errors.append(FieldError(f"/{key}", f"{key} is required", "non-empty string"))
    for key in ("xdm:sourceProperty", "xdm:destinationProperty"):
        if isinstance(body.get(key), str) and not body[key].startswith("/"):
            errors.append(FieldError(f"/{key}", f"{key} is a path like /personalEmail/address", "/a/b"))
    if "xdm:isPrimary" in body and not isinstance(body["xdm:isPrimary"], bool):
        errors.append(FieldError("/xdm:isPrimary", "xdm:isPrimary is true or false", "boolean"))
    if "@id" in body and not (isinstance(body["@id"], str) and _ID.match(body["@id"])):
        errors.append(FieldError("/@id", "an @id is 1-40 letters, digits, '-' or '_'"))
    if errors:
        raise invalid("; ".join(f"{e.detail} (at {e.pointer})" for e in errors), errors, title="Invalid descriptor")
    out = {k: v for k, v in body.items() if k != "meta:containerId"}
    out.setdefault("xdm:sourceVersion", 1)
    if kind == IDENTITY:
        out.setdefault("xdm:property", "xdm:code")
        out.setdefault("xdm:isPrimary", False)
    return out


def new_id() -> str:
    return secrets.token_hex(16)


def path_of(prop: str) -> tuple[str, ...]:
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in prop.strip("/").split("/") if p)


def field_at(tree: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    """The field at a path of object properties (not through arrays or maps), or None."""
    node: dict[str, Any] | None = tree
    for name in path:
        node = (node.get("properties") or {}).get(name) if node is not None else None
        if node is None:
            return None
    return node


def _string_field(tree: dict[str, Any], prop: str, where: str, schema: str) -> tuple[str, ...]:
    path = path_of(prop)
    node = field_at(tree, path) if path else None
    if node is None:
        raise invalid(f"{where} {prop!r} is not a field of schema {schema} (paths go through objects, "
                      "not arrays or maps)", [FieldError(f"/{where}", "no such field")], title="Invalid descriptor")
    if node.get("type") != "string":
        raise invalid(f"{where} {prop!r} is a {node.get('type')}; identity and relationship fields are strings",
                      [FieldError(f"/{where}", "not a string field", "string")], title="Invalid descriptor")
    return path


def check_identity(desc: dict[str, Any], source: Composed, existing: list[dict[str, Any]]) -> None:
    """Source property must be a string field; at most one primary identity per schema."""
    path = _string_field(source.tree, desc["xdm:sourceProperty"], "xdm:sourceProperty", source.uri)
    if desc.get("xdm:isPrimary"):
        for other in existing:
            if (other.get("@type") == IDENTITY and other.get("xdm:isPrimary")
                    and path_of(other["xdm:sourceProperty"]) != path):
                raise Problem(409, "conflict", "Primary identity exists",
                              f"schema {source.uri} already has a primary identity "
                              f"({other['xdm:sourceProperty']}, descriptor {other['@id']}); a schema has at most one")


def check_relationship(desc: dict[str, Any], source: Composed, destination: Composed,
                       destination_descriptors: list[dict[str, Any]]) -> None:
    """A one-to-one relationship joins a string field to a lookup (record-class) schema's key."""
    _string_field(source.tree, desc["xdm:sourceProperty"], "xdm:sourceProperty", source.uri)
    if destination.behavior != "record" or destination.class_uri == PROFILE_CLASS:
        raise invalid(f"the destination {destination.uri} is not a lookup schema: its class must be a record class "
                      "other than XDM Individual Profile", [FieldError("/xdm:destinationSchema", "not a lookup schema")],
                      title="Invalid descriptor")
    if desc.get("xdm:destinationProperty"):
        _string_field(destination.tree, desc["xdm:destinationProperty"], "xdm:destinationProperty",
                      destination.uri)
    elif not any(d.get("@type") == IDENTITY and d.get("xdm:isPrimary") for d in destination_descriptors):
        raise invalid("give xdm:destinationProperty, or mark a primary identity on the destination schema",
                      [FieldError("/xdm:destinationProperty", "required when the destination has no primary identity")],
                      title="Invalid descriptor")


def same_target(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two descriptors of the same kind about the same field (a replay, or a conflicting duplicate)."""
    return (a.get("@type") == b.get("@type") and a.get("xdm:sourceSchema") == b.get("xdm:sourceSchema")
            and path_of(a.get("xdm:sourceProperty", "")) == path_of(b.get("xdm:sourceProperty", "")))


def identities(descs: list[dict[str, Any]]) -> tuple[IdentityField, ...]:
    return tuple(IdentityField(path_of(d["xdm:sourceProperty"]), d["xdm:namespace"], bool(d.get("xdm:isPrimary")))
                 for d in descs if d.get("@type") == IDENTITY)


def relationships(descs: list[dict[str, Any]]) -> tuple[Relationship, ...]:
    return tuple(Relationship(path_of(d["xdm:sourceProperty"]), d["xdm:destinationSchema"],
                              path_of(d["xdm:destinationProperty"]) if d.get("xdm:destinationProperty") else None)
                 for d in descs if d.get("@type") == ONE_TO_ONE)
