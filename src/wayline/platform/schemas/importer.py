"""Reading an XDM-style JSON Schema a client POSTs: which keywords are allowed, where, with what values.

Everything is checked before anything is resolved, and every problem is reported at once, each with
the JSON pointer (into the submitted document) of the place it stands. A keyword the registry does
not implement (`if`, `oneOf`, `patternProperties`, …) is refused rather than ignored: ignoring it
would accept records the author meant to refuse.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from wayline.kernel.problems import FieldError, Problem, pointer
from wayline.platform.schemas.formats import FORMATS
from wayline.platform.schemas.model import ALT_ID_RE, SERVER_KEYS, check_uri, invalid

TYPES = ("string", "integer", "number", "boolean", "object", "array")
ANNOTATIONS = frozenset({"title", "description", "default", "examples"})
STRUCTURAL = frozenset({"$ref", "allOf", "type", "properties", "required", "items", "enum", "format", "minimum",
                        "maximum", "minLength", "maxLength", "pattern", "additionalProperties"})
ROOT_ONLY = frozenset({"$id", "$schema", "definitions"})
STRING_ONLY = ("format", "pattern", "minLength", "maxLength")
NUMBER_ONLY = ("minimum", "maximum")
_BAD_NAME = re.compile(r"[./~\[\]\s]")


@dataclass
class Definition:
    """A submitted definition, checked and normalised (server-managed keys dropped)."""

    kind: str
    doc: dict[str, Any]
    refs: list[tuple[str, str]] = field(default_factory=list)  # (pointer of the $ref, the reference)
    root_refs: list[tuple[str, str]] = field(default_factory=list)  # $refs directly in the root allOf


def parse(kind: str, body: Any) -> Definition:
    """Check a submitted class / field group / data type / schema; a 422 lists every problem."""
    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object (an XDM-style JSON Schema)",
                      [FieldError("", "not an object", "object")])
    doc = {k: copy.deepcopy(v) for k, v in body.items() if k not in SERVER_KEYS}
    errors: list[FieldError] = []
    refs: list[tuple[str, str]] = []
    _walk(doc, (), errors, refs, root=True)
    title = doc.get("title")
    if not isinstance(title, str) or not title.strip():
        errors.append(FieldError("/title", "a title is required", "non-empty string"))
    if "$id" in doc:
        try:
            check_uri(doc["$id"])
        except Problem as exc:
            errors.append(FieldError("/$id", exc.detail, "https://…"))
    if doc.setdefault("type", "object") != "object":
        errors.append(FieldError("/type", f"a {kind} is an object", "object"))
    alt = doc.get("meta:altId")
    if alt is not None and (not isinstance(alt, str) or not ALT_ID_RE.match(alt)):
        errors.append(FieldError("/meta:altId", "an altId looks like _tenant.schemas.name", "_a.b.c"))
    root_refs = [(f"/allOf/{i}/$ref", m["$ref"]) for i, m in enumerate(doc.get("allOf") or [])
                 if isinstance(m, dict) and isinstance(m.get("$ref"), str)]
    _kind_rules(kind, doc, errors)
    if errors:
        raise _problem(errors)
    return Definition(kind, doc, refs, root_refs)


def _problem(errors: list[FieldError]) -> Problem:
    if len(errors) == 1:
        return invalid(f"{errors[0].detail} (at {errors[0].pointer or '/'})", errors)
    return invalid(f"{len(errors)} problems in the definition: "
                   + "; ".join(f"{e.detail} (at {e.pointer or '/'})" for e in errors[:5])
                   + ("; …" if len(errors) > 5 else ""), errors)


def _kind_rules(kind: str, doc: dict[str, Any], errors: list[FieldError]) -> None:
    if kind == "fieldgroup":
        ext = doc.get("meta:intendedToExtend")
        if not isinstance(ext, list) or not all(isinstance(x, str) for x in ext):
            errors.append(FieldError("/meta:intendedToExtend",
                                     "a field group lists the classes it may extend ([] for any class)",
                                     "array of class $ids"))
    elif kind == "schema":
        for key in ("properties", "definitions", "items", "additionalProperties", "required", "$ref"):
            if key in doc:
                errors.append(FieldError(f"/{key}", f"a schema is one class plus field groups: '{key}' is not "
                                         "allowed here; define fields in a field group", "allOf of $refs"))
        members = doc.get("allOf")
        if not isinstance(members, list) or not members:
            errors.append(FieldError("/allOf", "a schema needs allOf: [{$ref: class}, {$ref: field group}, …]",
                                     "non-empty array"))
        else:
            for i, m in enumerate(members):
                if not isinstance(m, dict) or set(m) - ANNOTATIONS - {"$ref", "type", "meta:xdmType"} \
                        or "$ref" not in m:
                    errors.append(FieldError(f"/allOf/{i}", "each allOf member of a schema is a {$ref: …}",
                                             "{\"$ref\": \"…\"}"))
        if "meta:class" in doc and not isinstance(doc["meta:class"], str):
            errors.append(FieldError("/meta:class", "meta:class is the $id of a class", "string"))


def _walk(node: Any, at: tuple[Any, ...], errors: list[FieldError], refs: list[tuple[str, str]],
          root: bool = False) -> None:
    """Check one schema node (and everything below it)."""
    here = pointer(list(at))
    if not isinstance(node, dict):
        errors.append(FieldError(here, "a schema here must be a JSON object", "object"))
        return
    for key, value in node.items():
        where = pointer([*at, key])
        if key.startswith("meta:"):
            continue
        if key in ROOT_ONLY and not root:
            errors.append(FieldError(where, f"'{key}' is only allowed at the root of a definition"))
            continue
        if key not in STRUCTURAL and key not in ANNOTATIONS and key not in ROOT_ONLY:
            errors.append(FieldError(where, f"unsupported JSON Schema keyword '{key}'",
                                     "a keyword the registry supports (see docs/schemas.md)"))
            continue
        _check_keyword(node, key, value, at, errors, refs)


def _check_keyword(node: dict[str, Any], key: str, value: Any, at: tuple[Any, ...], errors: list[FieldError],
                   refs: list[tuple[str, str]]) -> None:
    where = pointer([*at, key])
    typ = node.get("type")

    def bad(detail: str, expected: str | None = None) -> None:
        errors.append(FieldError(where, detail, expected))

    if key == "type":
        if value not in TYPES:
            bad(f"type must be one of {', '.join(TYPES)}", "|".join(TYPES))
    elif key in ("title", "description"):
        if not isinstance(value, str):
            bad(f"{key} must be a string", "string")
    elif key == "examples":
        if not isinstance(value, list):
            bad("examples must be an array", "array")
    elif key == "$ref":
        if not isinstance(value, str) or not value:
            bad("$ref must be a non-empty string", "string")
        else:
            refs.append((where, value))
    elif key == "$schema":
        if not isinstance(value, str):
            bad("$schema must be a string", "string")
    elif key == "allOf":
        if not isinstance(value, list) or not value:
            bad("allOf must be a non-empty array of schemas", "array")
        else:
            for i, member in enumerate(value):
                _walk(member, (*at, key, i), errors, refs)
    elif key in ("properties", "definitions"):
        if not isinstance(value, dict):
            bad(f"{key} must be an object of named schemas", "object")
        else:
            if key == "properties" and typ not in (None, "object"):
                bad(f"properties belong to objects, not to type {typ}")
            for name, child in value.items():
                if not name or _BAD_NAME.search(name):
                    errors.append(FieldError(pointer([*at, key, name]),
                                             f"invalid field name {name!r}: no '.', '/', '~', brackets or spaces"))
                    continue
                _walk(child, (*at, key, name), errors, refs)
    elif key == "required":
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value) or len(set(value)) != len(value):
            bad("required must be an array of distinct field names", "array of strings")
    elif key == "items":
        if isinstance(value, list):
            bad("tuple-form items (an array of schemas) is not supported; give one schema", "object")
        else:
            if typ not in (None, "array"):
                bad(f"items belongs to arrays, not to type {typ}")
            _walk(value, (*at, key), errors, refs)
    elif key == "additionalProperties":
        if value is False:
            return
        if not isinstance(value, dict) or not value:
            bad("additionalProperties is a map's value schema (or false); free-form objects (true, {}) are "
                "not supported: unknown fields would be kept silently", "schema object")
        else:
            _walk(value, (*at, key), errors, refs)
    elif key == "enum":
        if (not isinstance(value, list) or not value
                or not all(isinstance(v, (str, int, float, bool)) and v is not None for v in value)):
            bad("enum must be a non-empty array of strings, numbers or booleans", "array")
        elif len({repr(v) for v in value}) != len(value):
            bad("enum values must be distinct")
        elif typ is not None and not all(_is_type(v, typ) for v in value):
            bad(f"every enum value must be of type {typ}")
    elif key == "format":
        if value not in FORMATS:
            bad(f"unsupported format {value!r}; supported: {', '.join(sorted(FORMATS))}", "|".join(sorted(FORMATS)))
    elif key == "pattern":
        try:
            re.compile(value)
        except (re.error, TypeError) as exc:
            bad(f"pattern is not a valid regular expression: {exc}", "regular expression")
    elif key in ("minimum", "maximum"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            bad(f"{key} must be a number", "number")
    elif key in ("minLength", "maxLength"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            bad(f"{key} must be a non-negative integer", "integer >= 0")
    if key in STRING_ONLY and typ not in (None, "string"):
        bad(f"{key} applies to strings, not to type {typ}")
    if key in NUMBER_ONLY and typ not in (None, "integer", "number"):
        bad(f"{key} applies to numbers, not to type {typ}")
    if key == "default" and typ is not None and not _is_type(value, typ):
        bad(f"the default must be of type {typ}")


def _is_type(value: Any, typ: str) -> bool:
    if typ == "string":
        return isinstance(value, str)
    if typ == "boolean":
        return isinstance(value, bool)
    if typ == "integer":
        return not isinstance(value, bool) and (isinstance(value, int)
                                                or (isinstance(value, float) and value.is_integer()))
    if typ == "number":
        return not isinstance(value, bool) and isinstance(value, (int, float))
    if typ == "object":
        return isinstance(value, dict)
    if typ == "array":
        return isinstance(value, list)
    return False
