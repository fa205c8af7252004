"""Which changes a schema enabled for profile may take: additive ones only.

Profiles merge fragments written under every past version of a schema, so a version may not make
stored data invalid or change its meaning. Compared on the composed trees (old, new), breaking is:
removing a field, changing its type, adding a required field (anywhere, also inside a new object),
closing a map, and narrowing a constraint (fewer enum values, a new or different format or pattern,
a higher minimum, a lower maximum, tighter lengths). Everything else (new optional fields, looser
constraints, new titles and descriptions) is additive.
"""

from __future__ import annotations

from typing import Any

from wayline.kernel.problems import FieldError, pointer
from wayline.platform.schemas.model import pointer_field


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[FieldError]:
    """Every breaking difference between two composed trees, each with the pointer of the place."""
    out: list[FieldError] = []
    _compare(old, new, (), out)
    return out


def _compare(old: dict[str, Any], new: dict[str, Any], at: tuple[str, ...], out: list[FieldError]) -> None:
    name = pointer_field(at)
    here = pointer(list(at))
    if old.get("type") != new.get("type"):
        out.append(FieldError(here, f"field {name!r} changed type from {old.get('type')} to {new.get('type')}",
                              str(old.get("type"))))
        return
    _constraints(old, new, at, out)
    old_props, new_props = old.get("properties") or {}, new.get("properties") or {}
    for key, child in old_props.items():
        if key not in new_props:
            out.append(FieldError(pointer([*at, "properties", key]),
                                  f"field {pointer_field((*at, 'properties', key))!r} was removed"))
        else:
            _compare(child, new_props[key], (*at, "properties", key), out)
    for key, child in new_props.items():
        if key not in old_props:
            _new_required(child, (*at, "properties", key), out)
    added = [r for r in new.get("required") or [] if r not in (old.get("required") or [])]
    for key in added:
        out.append(FieldError(pointer([*at, "required"]),
                              f"field {pointer_field((*at, 'properties', key))!r} became required"))
    if isinstance(old.get("items"), dict) and isinstance(new.get("items"), dict):
        _compare(old["items"], new["items"], (*at, "items"), out)
    old_map, new_map = old.get("additionalProperties"), new.get("additionalProperties")
    if isinstance(old_map, dict):
        if not isinstance(new_map, dict):
            out.append(FieldError(here, f"map {name!r} no longer accepts its keys"))
        else:
            _compare(old_map, new_map, (*at, "additionalProperties"), out)


def _new_required(node: dict[str, Any], at: tuple[str, ...], out: list[FieldError]) -> None:
    for key in node.get("required") or []:
        out.append(FieldError(pointer([*at, "required"]),
                              f"new field {pointer_field((*at, 'properties', key))!r} is required"))
    for key, child in (node.get("properties") or {}).items():
        _new_required(child, (*at, "properties", key), out)
    for sub in ("items", "additionalProperties"):
        if isinstance(node.get(sub), dict):
            _new_required(node[sub], (*at, sub), out)


def _constraints(old: dict[str, Any], new: dict[str, Any], at: tuple[str, ...], out: list[FieldError]) -> None:
    name = pointer_field(at)

    def narrowed(key: str, why: str) -> None:
        out.append(FieldError(pointer([*at, key]), f"field {name!r}: {why}", repr(old.get(key))))

    if "enum" in new:
        if "enum" not in old:
            narrowed("enum", f"an enum {new['enum']} was added")
        else:
            gone = [v for v in old["enum"] if v not in new["enum"]]
            if gone:
                narrowed("enum", f"enum values {gone} were removed")
    for key in ("format", "pattern"):
        if key in new and new[key] != old.get(key):
            narrowed(key, f"{key} changed from {old.get(key)!r} to {new[key]!r}")
    for key in ("minimum", "minLength"):
        if key in new and (key not in old or new[key] > old[key]):
            narrowed(key, f"{key} rose from {old.get(key)!r} to {new[key]!r}")
    for key in ("maximum", "maxLength"):
        if key in new and (key not in old or new[key] < old[key]):
            narrowed(key, f"{key} fell from {old.get(key)!r} to {new[key]!r}")
