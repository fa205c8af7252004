"""The catalogue of standard pieces as Markdown: docs/field-groups.md embeds it, and a test keeps them equal.

Regenerate with `python -m wayline.platform.schemas.catalog`.
"""

from __future__ import annotations

from typing import Any

from wayline.platform.schemas import standard
from wayline.platform.schemas.compose import Resolver, expand, iter_fields
from wayline.platform.schemas.model import BEHAVIORS

SECTIONS = (("behavior", "Behaviors"), ("class", "Classes"), ("fieldgroup", "Field groups"), ("datatype", "Data types"))


def _type(node: dict[str, Any]) -> str:
    kind = "map" if isinstance(node.get("additionalProperties"), dict) else node.get("type") or "object"
    notes = []
    if "enum" in node:
        notes.append("enum " + " \\| ".join(map(str, node["enum"])))
    if "format" in node:
        notes.append(node["format"])
    if "pattern" in node:
        notes.append(f"pattern `{node['pattern']}`")
    if "minimum" in node or "maximum" in node:
        notes.append(f"{node.get('minimum', '')}..{node.get('maximum', '')}")
    if "default" in node:
        notes.append(f"default {str(node['default']).lower()}")
    return kind + (f" ({', '.join(notes)})" if notes else "")


def markdown() -> str:
    """Every standard piece: ids, what it extends, required fields and every field path with its type."""
    resolver = Resolver()
    lines: list[str] = []
    for kind, title in SECTIONS:
        lines += [f"## {title}", ""]
        for res in standard.of_kind(kind):
            tree = expand(resolver, res)
            lines += [f"### {res.title}", "", f"- `$id`: `{res.uri}`", f"- altId: `{res.alt_id}`"]
            if kind == "fieldgroup":
                ext = res.body.get("meta:intendedToExtend") or []
                lines.append("- extends: " + (", ".join(f"`{e}`" for e in ext) if ext else "any class"))
            if kind == "class":
                behavior = next(m["$ref"] for m in res.body["allOf"] if m["$ref"] in BEHAVIORS)
                lines.append(f"- behavior: `{behavior}`")
            if tree.get("required"):
                lines.append("- required: " + ", ".join(f"`{r}`" for r in tree["required"]))
            if res.body.get("description"):
                lines.append(f"- {res.body['description']}")
            lines += ["", "| field | type |", "|---|---|"]
            for path, node in iter_fields(tree):
                lines.append(f"| `{'.'.join(path).replace('.[]', '[]')}` | {_type(node)} |")
            lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
