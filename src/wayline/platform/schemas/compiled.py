"""A composed schema compiled for validating records, once per version.

The fast path is the fastjsonschema validator alone: a valid record costs one generated-function
call. Only an invalid record takes the slow path, where jsonschema's iter_errors lists every
violation (fastjsonschema stops at the first), in the reference's shape:
`{pointerToViolation, schemaLocation, keyword, message}`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import fastjsonschema
import jsonschema

from wayline.kernel.problems import pointer
from wayline.platform.schemas.formats import FORMATS, format_checker

_CHECKER = format_checker()


@dataclass(frozen=True)
class IdentityField:
    """A field marked as an identity by a descriptor: where it is, its namespace code, primary or not."""

    path: tuple[str, ...]
    namespace: str
    primary: bool


@dataclass(frozen=True)
class Relationship:
    """A one-to-one relationship descriptor: this field joins the destination (lookup) schema."""

    path: tuple[str, ...]
    destination_schema: str
    destination_path: tuple[str, ...] | None


@dataclass(frozen=True, eq=False)
class CompiledSchema:
    """One version of a schema, composed and compiled. Treat `json_schema` as read-only."""

    uri: str
    version: int
    title: str
    class_uri: str
    behavior: str  # "time-series" (experience events) or "record"
    profile_enabled: bool
    json_schema: dict[str, Any]
    identities: tuple[IdentityField, ...] = ()
    alt_id: str = ""
    relationships: tuple[Relationship, ...] = ()
    has_identity_map: bool = False
    _fast: Callable[[Any], Any] = field(default=lambda r: r, repr=False)
    _slow: Any = field(default=None, repr=False)

    @property
    def primary_identity(self) -> IdentityField | None:
        return next((i for i in self.identities if i.primary), None)

    def validate(self, record: Any) -> list[dict[str, Any]]:
        """[] when the record is valid; otherwise every violation, each with its JSON pointer."""
        try:
            self._fast(record)
            return []
        except fastjsonschema.JsonSchemaValueException as first:
            return self._violations(record, first)

    def _violations(self, record: Any, first: fastjsonschema.JsonSchemaValueException) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for err in self._slow.iter_errors(record):
            where = list(err.absolute_path)
            location = "#" + pointer(list(err.absolute_schema_path))
            if err.validator == "additionalProperties" and isinstance(err.instance, dict):
                # One violation per unknown field, pointing at the field itself.
                known = (err.schema.get("properties") or {}) if isinstance(err.schema, dict) else {}
                for key in err.instance:
                    if key not in known:
                        out.append({"pointerToViolation": pointer([*where, key]), "schemaLocation": location,
                                    "keyword": "additionalProperties",
                                    "message": f"unknown field {key!r}: the schema has no such field"})
                continue
            out.append({"pointerToViolation": pointer(where), "schemaLocation": location,
                        "keyword": str(err.validator), "message": err.message})
        if not out:
            # The two libraries should agree; if they don't, still never call an invalid record valid.
            path = [p for p in (first.path or [])[1:]]
            out.append({"pointerToViolation": pointer(path), "schemaLocation": "#",
                        "keyword": str(first.rule or "invalid"), "message": first.message})
        out.sort(key=lambda v: (v["pointerToViolation"], v["keyword"]))
        return out


def _validation_copy(node: Any) -> Any:
    """The schema without annotations: smaller generated code, nothing that could fill defaults in."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in ("title", "description", "examples", "default", "$id") or key.startswith("meta:"):
                continue
            if key == "properties":
                out[key] = {name: _validation_copy(child) for name, child in value.items()}
            else:
                out[key] = _validation_copy(value)
        return out
    if isinstance(node, list):
        return [_validation_copy(v) for v in node]
    return node


def compile_schema(*, uri: str, version: int, title: str, class_uri: str, behavior: str, profile_enabled: bool,
                   json_schema: dict[str, Any], identities: tuple[IdentityField, ...] = (), alt_id: str = "",
                   relationships: tuple[Relationship, ...] = ()) -> CompiledSchema:
    """Compile a composed schema (fastjsonschema for the fast path, jsonschema for the reasons)."""
    plain = _validation_copy(json_schema)
    fast = fastjsonschema.compile(plain, formats=dict(FORMATS), use_default=False)
    slow = jsonschema.Draft7Validator(plain, format_checker=_CHECKER)
    return CompiledSchema(uri=uri, version=version, title=title, class_uri=class_uri, behavior=behavior,
                          profile_enabled=profile_enabled, json_schema=json_schema, identities=identities,
                          alt_id=alt_id, relationships=relationships,
                          has_identity_map="identityMap" in (json_schema.get("properties") or {}),
                          _fast=fast, _slow=slow)
