"""Field paths: where a CSV or Parquet column goes in an XDM record, and what type it has there.

A mapping `{column: "field.path"}` places each column's value at a dotted path (`person.name.firstName`,
`identityMap.Email[0].id`), building the objects and arrays on the way; the compiled schema says which
JSON type lives at a path, so text cells can be read as that type.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

from wayline.kernel.problems import FieldError, Problem

Path = tuple[str | int, ...]
TypeAt = Callable[[Path], "str | None"]

_SEGMENT = re.compile(r"^([^.\[\]]+)((?:\[\d+\])*)$")


def parse_path(path: str) -> Path:
    """`identityMap.Email[0].id` → ("identityMap", "Email", 0, "id"); a ValueError when malformed."""
    if not isinstance(path, str) or not path:
        raise ValueError("a field path is a non-empty string")
    out: list[str | int] = []
    for seg in path.split("."):
        m = _SEGMENT.match(seg)
        if m is None:
            raise ValueError(f"{path!r} is not a dotted field path (like person.name.firstName or "
                             f"identityMap.Email[0].id)")
        out.append(m.group(1))
        out += [int(i) for i in re.findall(r"\[(\d+)\]", m.group(2))]
    if out[0] in ("", None) or isinstance(out[0], int):
        raise ValueError(f"{path!r} must start with a field name")
    return tuple(out)


def check_mapping(mapping: Any) -> dict[str, Path]:
    """A mapping `{column: "field.path"}` checked and parsed, or a 422 problem naming each bad entry."""
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise Problem(422, "validation", "Invalid mapping", "mapping is an object of column → field path",
                      [FieldError("/mapping", "expected an object", "object")])
    errors, out = [], {}
    for col, path in mapping.items():
        try:
            out[col] = parse_path(path)
        except ValueError as exc:
            errors.append(FieldError(f"/mapping/{col}", str(exc), "dotted field path"))
    paths = sorted(out.items(), key=lambda kv: len(kv[1]))
    for i, (col, p) in enumerate(paths):
        for other, q in paths[i + 1:]:
            if q[:len(p)] == p:  # one value would have to be both a leaf and an object
                errors.append(FieldError(f"/mapping/{other}", f"is inside {col!r}'s field", "distinct fields"))
    if errors:
        raise Problem(422, "validation", "Invalid mapping", f"{len(errors)} mapping entr(ies) are invalid", errors)
    return out


def set_path(record: dict[str, Any], path: Path, value: Any) -> None:
    """Put `value` at `path`, building the objects and arrays on the way."""
    node: Any = record
    for here, nxt in itertools.pairwise(path):
        empty: Any = [] if isinstance(nxt, int) else {}
        if isinstance(here, int):
            while len(node) <= here:
                node.append(None)
            if node[here] is None:
                node[here] = empty
            node = node[here]
        else:
            node = node.setdefault(here, empty)
    last = path[-1]
    if isinstance(last, int):
        while len(node) <= last:
            node.append(None)
    node[last] = value


def type_lookup(json_schema: dict[str, Any] | None) -> TypeAt:
    """`path → "integer" | "number" | "boolean" | other | None` read from a compiled JSON schema."""
    root = json_schema or {}
    cache: dict[Path, str | None] = {}

    def resolve(node: Any) -> Any:
        for _ in range(32):  # a $ref cycle ends here instead of looping
            ref = node.get("$ref") if isinstance(node, dict) else None
            if not (isinstance(ref, str) and ref.startswith("#/")):
                return node
            target: Any = root
            for part in ref[2:].split("/"):
                target = target.get(part.replace("~1", "/").replace("~0", "~"), {}) \
                    if isinstance(target, dict) else {}
            node = target
        return node

    def branches(node: Any) -> list[Any]:
        node = resolve(node)
        if not isinstance(node, dict):
            return []
        out = [node]
        for k in ("allOf", "anyOf", "oneOf"):
            for sub in node.get(k) or ():
                out += branches(sub)
        return out

    def child(node: Any, part: str | int) -> Any:
        for b in branches(node):
            if isinstance(part, int):
                if isinstance(b.get("items"), dict):
                    return b["items"]
                continue
            props = b.get("properties")
            if isinstance(props, dict) and part in props:
                return props[part]
        for b in branches(node):
            if isinstance(part, str) and isinstance(b.get("additionalProperties"), dict):
                return b["additionalProperties"]
            for pat, sub in (b.get("patternProperties") or {}).items():
                if isinstance(part, str) and re.search(pat, part):
                    return sub
        return None

    def at(path: Path) -> str | None:
        if path in cache:
            return cache[path]
        node: Any = root
        for part in path:
            node = child(node, part)
            if node is None:
                break
        found = None
        for b in branches(node) if node is not None else ():
            ty = b.get("type")
            ty = next((x for x in ty if x != "null"), None) if isinstance(ty, list) else ty
            if isinstance(ty, str):
                found = ty
                break
        cache[path] = found
        return found

    return at


_TRUE, _FALSE = {"true", "t", "yes", "y", "1"}, {"false", "f", "no", "n", "0"}


def coerce(cell: str, ty: str | None) -> Any:
    """A CSV cell as the schema's type at its path; left a string when it does not read as one (the
    schema check then names the field, so the record fails with a pointer rather than here)."""
    try:
        if ty == "integer":
            return int(cell.strip())
        if ty == "number":
            v = float(cell.strip())
            return int(v) if v.is_integer() and "." not in cell and "e" not in cell.lower() else v
    except ValueError:
        return cell
    if ty == "boolean":
        low = cell.strip().lower()
        return True if low in _TRUE else False if low in _FALSE else cell
    return cell
