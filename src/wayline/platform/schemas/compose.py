"""Composition: from `$ref`s and `allOf`s to one self-contained, closed JSON Schema.

`expand` inlines every `$ref` (to a standard piece, a sandbox's piece or a local `#/definitions/…`)
and merges every `allOf` into one tree of plain schemas. Two pieces may define the same field only
if they agree on its type and constraints; the first piece's title and description win. `close`
then makes every object refuse unknown fields, except maps (objects whose `additionalProperties` is
a schema), so nothing unknown is ever kept silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from wayline.kernel.problems import FieldError, pointer
from wayline.platform.schemas import standard
from wayline.platform.schemas.model import BEHAVIORS, TITLE, Resource, invalid, pointer_field

DRAFT = "http://json-schema.org/draft-07/schema#"
# Keys that describe a resource, not a field: never copied into the composed tree.
RESOURCE_KEYS = frozenset({"$id", "$schema", "definitions", "meta:altId", "meta:intendedToExtend", "meta:extends",
                           "meta:class", "meta:resourceType", "meta:abstract", "meta:extensible", "meta:license",
                           "meta:status", "meta:createdDate", "meta:titleId", "meta:descriptionId"})
ANNOTATION_KEYS = frozenset({"title", "description", "examples", "default"})
CONSTRAINTS = ("type", "format", "pattern", "minimum", "maximum", "minLength", "maxLength", "enum")


class Resolver:
    """Finds pieces by `$id`: pending definitions first, then the standard pieces, then the sandbox's."""

    def __init__(self, fetch: Callable[[str], Resource | None] | None = None,
                 overrides: dict[str, Resource] | None = None) -> None:
        self._fetch = fetch
        self.overrides = dict(overrides or {})
        self._seen: dict[str, Resource | None] = {}

    def get(self, uri: str) -> Resource | None:
        if uri in self.overrides:
            return self.overrides[uri]
        std = standard.STANDARD.get(uri)
        if std is not None:
            return std
        if uri not in self._seen:
            self._seen[uri] = self._fetch(uri) if self._fetch else None
        return self._seen[uri]

    def with_override(self, res: Resource) -> Resolver:
        other = Resolver(self._fetch, {**self.overrides, res.uri: res})
        other._seen = {k: v for k, v in self._seen.items() if k != res.uri}
        return other


def split_ref(ref: str) -> tuple[str, str]:
    """('https://…/x', '/definitions/y') of 'https://…/x#/definitions/y'; ('', …) for a local ref."""
    uri, _, frag = ref.partition("#")
    return uri, frag


def resolve_pointer(doc: Any, frag: str) -> Any:
    node = doc
    if not frag:
        return node
    for raw in frag.lstrip("/").split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def expand(resolver: Resolver, res: Resource) -> dict[str, Any]:
    """The resource as one tree: refs inlined, allOf merged, definitions gone (not yet closed)."""
    return _expand(resolver, res.body, res, (), frozenset({(res.uri, "")}))


def _expand(resolver: Resolver, node: dict[str, Any], res: Resource, out: tuple[str, ...],
            trail: frozenset[tuple[str, str]]) -> dict[str, Any]:
    own: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("$ref", "allOf") or key in RESOURCE_KEYS:
            continue
        if key == "properties":
            own["properties"] = {name: _expand(resolver, child, res, (*out, "properties", name), trail)
                                 for name, child in value.items()}
        elif key == "items" and isinstance(value, dict):
            own["items"] = _expand(resolver, value, res, (*out, "items"), trail)
        elif key == "additionalProperties" and isinstance(value, dict):
            own["additionalProperties"] = _expand(resolver, value, res, (*out, "additionalProperties"), trail)
        elif key == "required":
            own["required"] = list(value)
        elif isinstance(value, (dict, list)):
            own[key] = _copy(value)
        else:
            own[key] = value
    result = own
    if "$ref" in node:
        result = merge(result, _follow(resolver, node["$ref"], res, out, trail), out)
    for member in node.get("allOf") or []:
        result = merge(result, _expand(resolver, member, res, out, trail), out)
    return result


def _follow(resolver: Resolver, ref: str, res: Resource, out: tuple[str, ...],
            trail: frozenset[tuple[str, str]]) -> dict[str, Any]:
    uri, frag = split_ref(ref)
    target = res if not uri else resolver.get(uri)
    if target is None:
        raise invalid(f"unknown $ref {ref!r} (used by {res.uri})",
                      [FieldError(pointer(list(out)), f"unknown $ref {ref!r}")])
    key = (target.uri, frag)
    if key in trail:
        raise invalid(f"circular $ref {ref!r}: a piece cannot contain itself",
                      [FieldError(pointer(list(out)), f"circular $ref {ref!r}")])
    node = resolve_pointer(target.body, frag)
    if not isinstance(node, dict):
        raise invalid(f"$ref {ref!r} points at nothing in {target.uri}",
                      [FieldError(pointer(list(out)), f"unresolvable $ref {ref!r}")])
    return _expand(resolver, node, target, out, trail | {key})


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def merge(a: dict[str, Any], b: dict[str, Any], at: tuple[str, ...]) -> dict[str, Any]:
    """Merge two expanded schemas of the same place; disagreeing constraints are a 422."""
    out = dict(a)
    for key, value in b.items():
        if key not in out:
            out[key] = value
        elif key == "properties":
            props = dict(out["properties"])
            for name, child in value.items():
                props[name] = merge(props[name], child, (*at, "properties", name)) if name in props else child
            out["properties"] = props
        elif key == "required":
            out["required"] = out["required"] + [r for r in value if r not in out["required"]]
        elif key in ("items", "additionalProperties") and isinstance(value, dict) and isinstance(out[key], dict):
            out[key] = merge(out[key], value, (*at, key))
        elif key in ANNOTATION_KEYS or key.startswith("meta:"):
            continue  # the first piece's title and description win
        elif out[key] != value:
            raise invalid(f"field {pointer_field(at)!r} is defined twice with different {key}: "
                          f"{out[key]!r} and {value!r}",
                          [FieldError(pointer([*at, key]), f"conflicting {key}: {out[key]!r} vs {value!r}")],
                          title="Conflicting field definitions")
    return out


def close(node: dict[str, Any], at: tuple[str, ...] = ()) -> dict[str, Any]:
    """Make objects refuse unknown fields (maps keep their value schema); check arrays and required."""
    if "properties" in node or "additionalProperties" in node:
        node.setdefault("type", "object")
    if "items" in node:
        node.setdefault("type", "array")
    if node.get("type") == "object":
        ap = node.get("additionalProperties")
        props = node.get("properties") if isinstance(ap, dict) else node.setdefault("properties", {})
        for name, child in (props or {}).items():
            close(child, (*at, "properties", name))
        if isinstance(ap, dict):
            close(ap, (*at, "additionalProperties"))
        else:
            node["additionalProperties"] = False
        missing = [r for r in node.get("required", []) if r not in (props or {})]
        if missing:
            raise invalid(f"required field(s) {missing} of {pointer_field(at)!r} are not defined",
                          [FieldError(pointer([*at, "required"]), f"required but not defined: {missing}")])
    elif node.get("type") == "array":
        if not isinstance(node.get("items"), dict):
            raise invalid(f"array {pointer_field(at)!r} has no items schema",
                          [FieldError(pointer(list(at)), "an array needs 'items'")])
        close(node["items"], (*at, "items"))
    elif "type" not in node and not node.get("enum"):
        raise invalid(f"field {pointer_field(at)!r} has no type",
                      [FieldError(pointer(list(at)), "a field needs a type (or a $ref to a data type)")])
    return node


@dataclass(frozen=True)
class Composed:
    """A schema composed into one closed JSON Schema."""

    uri: str
    alt_id: str
    title: str
    class_uri: str
    behavior: str
    fieldgroups: tuple[str, ...]
    tree: dict[str, Any]
    json_schema: dict[str, Any]


def class_parts(resolver: Resolver, res: Resource) -> tuple[Resource, list[tuple[int, Resource]]]:
    """The class and the field groups (with their allOf index) of a schema; a 422 if they don't fit."""
    cls: Resource | None = None
    groups: list[tuple[int, Resource]] = []
    errors: list[FieldError] = []
    for i, member in enumerate(res.body.get("allOf") or []):
        ref = member.get("$ref", "")
        uri, frag = split_ref(ref)
        target = resolver.get(uri) if uri and not frag else None
        where = f"/allOf/{i}/$ref"
        if target is None:
            errors.append(FieldError(where, f"unknown $ref {ref!r}: not a class or field group in this registry"))
        elif target.kind == "class":
            if cls is not None:
                errors.append(FieldError(where, f"a schema has exactly one class; {cls.uri} is already its class"))
            cls = target
        elif target.kind == "fieldgroup":
            groups.append((i, target))
        else:
            errors.append(FieldError(where, f"{ref} is a {TITLE[target.kind]}; a schema's allOf holds one class "
                                     "and field groups"))
    if cls is None and not errors:
        errors.append(FieldError("/allOf", "a schema needs a class: add {\"$ref\": \"<class $id>\"} to allOf"))
    declared = res.body.get("meta:class")
    if cls is not None and declared and declared != cls.uri:
        errors.append(FieldError("/meta:class", f"meta:class {declared!r} is not the class in allOf ({cls.uri})"))
    if errors:
        raise invalid("; ".join(e.detail for e in errors), errors)
    assert cls is not None
    for i, fg in groups:
        allowed = fg.body.get("meta:intendedToExtend") or []
        if allowed and cls.uri not in allowed and behavior_uri(cls) not in allowed:
            errors.append(FieldError(f"/allOf/{i}/$ref", f"field group {fg.title!r} ({fg.uri}) is intended to "
                                     f"extend {allowed}, not the class {cls.title!r} ({cls.uri})"))
    if errors:
        raise invalid("; ".join(e.detail for e in errors), errors, title="Field group does not fit the class")
    return cls, groups


def behavior_uri(cls: Resource) -> str:
    for member in cls.body.get("allOf") or []:
        if member.get("$ref") in BEHAVIORS:
            return str(member["$ref"])
    return ""


def behavior_of(cls: Resource) -> str:
    return BEHAVIORS.get(behavior_uri(cls), "record")


def compose_schema(resolver: Resolver, res: Resource) -> Composed:
    """Compose a schema: its class and field groups, refs inlined, merged and closed."""
    cls, groups = class_parts(resolver, res)
    tree = close(expand(resolver, res))
    json_schema: dict[str, Any] = {"$schema": DRAFT, "$id": res.uri, "title": res.title}
    if res.body.get("description"):
        json_schema["description"] = res.body["description"]
    json_schema.update({"meta:altId": res.alt_id, "meta:class": cls.uri, "meta:behaviorType": behavior_of(cls)})
    json_schema.update({k: v for k, v in tree.items() if k not in ("title", "description")})
    return Composed(res.uri, res.alt_id, res.title, cls.uri, behavior_of(cls), tuple(g.uri for _, g in groups),
                    tree, json_schema)


def referenced(body: Any) -> Iterator[str]:
    """The `$id`s of every other piece a definition refers to (not local `#/…` refs)."""
    if isinstance(body, dict):
        for key, value in body.items():
            if key == "$ref" and isinstance(value, str):
                uri, _ = split_ref(value)
                if uri:
                    yield uri
            elif not key.startswith("meta:") or key == "meta:class":
                yield from referenced(value)
    elif isinstance(body, list):
        for value in body:
            yield from referenced(value)


def extends(resolver: Resolver, res: Resource) -> list[str]:
    """Every piece the resource uses, transitively, in first-use order (the reference's meta:extends)."""
    seen: list[str] = []
    todo = list(referenced(res.body))
    while todo:
        uri = todo.pop(0)
        if uri in seen or uri == res.uri:
            continue
        seen.append(uri)
        target = resolver.get(uri)
        if target is not None:
            todo.extend(referenced(target.body))
    return seen


def iter_fields(node: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every field of an expanded tree: ('person','name','firstName'); '[]' = array items, '*' = map values."""
    for name, child in (node.get("properties") or {}).items():
        here = (*path, name)
        yield here, child
        yield from _below(child, here)


def _below(node: dict[str, Any], path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    yield from iter_fields(node, path)
    if isinstance(node.get("items"), dict):
        yield (*path, "[]"), node["items"]
        yield from _below(node["items"], (*path, "[]"))
    if isinstance(node.get("additionalProperties"), dict):
        yield (*path, "*"), node["additionalProperties"]
        yield from _below(node["additionalProperties"], (*path, "*"))


def _type(node: dict[str, Any]) -> str | None:
    if "type" in node:
        return str(node["type"])
    if "properties" in node or "additionalProperties" in node:
        return "object"
    return "array" if "items" in node else None


_STANDARD_PATHS: dict[tuple[str, ...], str | None] | None = None


def standard_paths() -> dict[tuple[str, ...], str | None]:
    """Every field path any standard class, behavior or field group defines, with its type."""
    global _STANDARD_PATHS
    if _STANDARD_PATHS is None:
        paths: dict[tuple[str, ...], str | None] = {}
        resolver = Resolver()
        for res in standard.STANDARD.values():
            if res.kind in ("class", "fieldgroup", "behavior"):
                for path, node in iter_fields(expand(resolver, res)):
                    paths.setdefault(path, _type(node))
        _STANDARD_PATHS = paths
    return _STANDARD_PATHS


def check_tenant_fields(tree: dict[str, Any], tenant_id: str, what: str) -> None:
    """Custom fields live under `_<tenantId>`; outside it only standard fields (same type) are allowed."""
    ns = f"_{tenant_id}"
    known = standard_paths()
    errors: list[FieldError] = []
    for name, node in (tree.get("properties") or {}).items():
        if name == ns:
            if _type(node) != "object":
                errors.append(FieldError(f"/properties/{name}", f"the tenant namespace {ns} must be an object"))
            continue
        for path, child in [((name,), node), *((((name,) + p), c) for p, c in _below(node, ()))]:
            std_type = known.get(path, "missing")
            if std_type == "missing":
                errors.append(FieldError(_schema_pointer(path), f"custom field {'.'.join(path)!r} is outside the "
                                         f"tenant namespace: a {what} puts its own fields under {ns}"))
                break
            if std_type is not None and _type(child) not in (None, std_type):
                errors.append(FieldError(_schema_pointer(path), f"standard field {'.'.join(path)!r} is a "
                                         f"{std_type}, not a {_type(child)}"))
                break
    if errors:
        raise invalid(errors[0].detail if len(errors) == 1 else
                      f"{len(errors)} fields are outside the tenant namespace {ns}: "
                      + ", ".join(e.pointer for e in errors), errors, title="Field outside the tenant namespace")


def _schema_pointer(path: tuple[str, ...]) -> str:
    parts: list[str] = []
    for p in path:
        parts += ["items"] if p == "[]" else ["additionalProperties"] if p == "*" else ["properties", p]
    return pointer(parts)
