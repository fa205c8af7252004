"""Field paths and the labels on them, pure.

A field label sits on a path of a schema or field group's field tree: `/person/name`. Paths are
stored canonical: array items are transparent (`/pushNotificationDetails/token`) and a map's values
are `*` (`/identityMap/*/id`). Asked-for paths may be JSON pointers (`/identityMap/Email/0/id`),
dotted (`person.name.firstName`), tuples (what the expression language's `fields_used` gives) or
the reference's schema paths (`/properties/person/properties/name`).

A field's labels are those on it, on its ancestors (a label on `/person` covers everything in it)
and on its descendants (reading `/person` reads `/person/name` too).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wayline.kernel.problems import pointer

Path = tuple[str, ...]


def parse(path: str | Path) -> Path:
    """The segments of a path in any accepted spelling (not yet canonical); ValueError when empty."""
    if isinstance(path, tuple):
        parts = [str(p) for p in path]
    elif not isinstance(path, str) or not path.strip("/."):
        raise ValueError("a field path is a non-empty JSON pointer (/person/name) or dotted path (person.name)")
    elif path.startswith("/"):
        parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
    else:
        parts = []
        for seg in path.split("."):
            name, _, rest = seg.partition("[")
            parts.append(name)
            parts += [x.rstrip("]") for x in rest.split("[")] if rest else []
    if len(parts) >= 2 and len(parts) % 2 == 0 and all(p in ("properties", "items") for p in parts[0::2]):
        parts = [p for i, p in enumerate(parts) if i % 2 == 1]  # /properties/a/properties/b → /a/b
    if not parts or any(p == "" for p in parts):
        raise ValueError(f"{path!r} has an empty segment")
    return tuple(parts)


def _items(node: Mapping[str, Any]) -> Mapping[str, Any] | None:
    items = node.get("items")
    return items if isinstance(items, dict) else None


def canonical(tree: Mapping[str, Any], parts: Path) -> Path | None:
    """The canonical form of a path in an expanded field tree, or None when the tree has no such field."""
    node: Mapping[str, Any] = tree
    out: list[str] = []
    for part in parts:
        if part == "[]" or part.isdigit():
            items = _items(node)
            if items is not None:
                node = items
                continue
        while _items(node) is not None and part not in (node.get("properties") or {}):
            node = _items(node)  # type: ignore[assignment]
        props = node.get("properties") or {}
        if part in props and isinstance(props[part], dict):
            node = props[part]
            out.append(part)
            continue
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            node = extra
            out.append("*")
            continue
        return None
    return tuple(out)


def format_path(parts: Path) -> str:
    return pointer(list(parts))


def related(a: Path, b: Path) -> bool:
    """One path is the other or contains it."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def labels_at(field_labels: Mapping[Path, frozenset[str]], path: Path) -> frozenset[str]:
    """The labels of a canonical path: on it, its ancestors and its descendants."""
    out: set[str] = set()
    for where, labels in field_labels.items():
        if related(where, path):
            out |= labels
    return frozenset(out)


def merge(*maps: Mapping[Path, frozenset[str]]) -> dict[Path, frozenset[str]]:
    """Field labels of several pieces (a schema and its field groups) as one map."""
    out: dict[Path, frozenset[str]] = {}
    for m in maps:
        for path, labels in m.items():
            out[path] = out.get(path, frozenset()) | labels
    return out
