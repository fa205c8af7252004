"""PATCH bodies: JSON Patch (RFC 6902, the reference's way) or JSON Merge Patch (RFC 7396, the simple way)."""

from __future__ import annotations

import copy
from typing import Any

from wayline.kernel.problems import FieldError
from wayline.platform.schemas.model import invalid

OPS = ("add", "remove", "replace", "test", "move", "copy")


def apply(doc: dict[str, Any], patch: Any) -> dict[str, Any]:
    """The document with the patch applied (a list = JSON Patch, an object = merge patch)."""
    if isinstance(patch, dict):
        return _merge(copy.deepcopy(doc), patch)
    if not isinstance(patch, list):
        raise invalid("a PATCH body is a JSON Patch array or a JSON Merge Patch object",
                      [FieldError("", "neither an array nor an object")], title="Invalid patch")
    out: Any = copy.deepcopy(doc)
    for i, op in enumerate(patch):
        out = _op(out, op, i)
    if not isinstance(out, dict):
        raise invalid("the patch must leave an object", [FieldError("", "not an object")], title="Invalid patch")
    return out


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge(target.get(key), value)
    return target


def _parts(path: Any, where: str) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise invalid(f"{where} is not a JSON pointer", [FieldError(where, "not a JSON pointer", "/a/b")],
                      title="Invalid patch")
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]] if path else []


def _parent(doc: Any, parts: list[str], where: str) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise invalid(f"{where}: the path does not exist", [FieldError(where, "path not found")],
                          title="Invalid patch")
    return node, parts[-1]


def _get(doc: Any, parts: list[str], where: str) -> Any:
    if not parts:
        return doc
    parent, last = _parent(doc, parts, where)
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise invalid(f"{where}: the path does not exist", [FieldError(where, "path not found")], title="Invalid patch")


def _remove(doc: Any, parts: list[str], where: str) -> Any:
    value = _get(doc, parts, where)
    parent, last = _parent(doc, parts, where)
    if isinstance(parent, dict):
        del parent[last]
    else:
        del parent[int(last)]
    return value


def _add(doc: Any, parts: list[str], value: Any, where: str) -> Any:
    if not parts:
        return value
    parent, last = _parent(doc, parts, where)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list) and (last == "-" or (last.isdigit() and int(last) <= len(parent))):
        parent.insert(len(parent) if last == "-" else int(last), value)
    else:
        raise invalid(f"{where}: cannot add there", [FieldError(where, "bad target")], title="Invalid patch")
    return doc


def _op(doc: Any, op: Any, i: int) -> Any:
    where = f"/{i}"
    if not isinstance(op, dict) or op.get("op") not in OPS:
        raise invalid(f"patch operation {i} needs op: one of {', '.join(OPS)}",
                      [FieldError(f"{where}/op", "unknown op", "|".join(OPS))], title="Invalid patch")
    parts = _parts(op.get("path"), f"{where}/path")
    kind = op["op"]
    if kind in ("add", "replace", "test") and "value" not in op:
        raise invalid(f"patch operation {i} ({kind}) needs a value", [FieldError(f"{where}/value", "missing")],
                      title="Invalid patch")
    if kind == "add":
        return _add(doc, parts, copy.deepcopy(op["value"]), f"{where}/path")
    if kind == "remove":
        _remove(doc, parts, f"{where}/path")
        return doc
    if kind == "replace":
        _get(doc, parts, f"{where}/path")
        if not parts:
            return copy.deepcopy(op["value"])
        _remove(doc, parts, f"{where}/path")
        return _add(doc, parts, copy.deepcopy(op["value"]), f"{where}/path")
    if kind == "test":
        if _get(doc, parts, f"{where}/path") != op["value"]:
            raise invalid(f"patch test {i} failed at {op['path']}", [FieldError(f"{where}", "test failed")],
                          title="Invalid patch")
        return doc
    source = _parts(op.get("from"), f"{where}/from")
    value = _remove(doc, source, f"{where}/from") if kind == "move" else copy.deepcopy(_get(doc, source, f"{where}/from"))
    return _add(doc, parts, value, f"{where}/path")
