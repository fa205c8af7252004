"""One cursor format for every list: `?limit=&cursor=` → `{"items": [...], "next": "…" | null}`.

The cursor is an opaque, URL-safe encoding of the last key seen (keyset paging, never OFFSET).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import orjson
import sqlalchemy as sa

from wayline.kernel.problems import FieldError, Problem


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


def decode_cursor(cursor: str) -> Any:
    try:
        return orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except Exception:
        raise Problem(400, "bad-cursor", "Invalid cursor", "the cursor is not one this API returned",
                      [FieldError("query:/cursor", "not a cursor from a previous page")]) from None


def page(conn: sa.Connection, stmt: sa.Select, key: sa.ColumnElement, *, limit: int, cursor: str | None,
         shape: Callable[[Any], Any], descending: bool = False) -> dict[str, Any]:
    """Run `stmt` one page at a time, ordered by the unique column `key`."""
    if cursor:
        last = decode_cursor(cursor)
        stmt = stmt.where(key < last if descending else key > last)
    stmt = stmt.order_by(key.desc() if descending else key.asc()).limit(limit + 1)
    rows = conn.execute(stmt).mappings().all()
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = encode_cursor(rows[-1][key.name]) if more and rows else None
    return {"items": [shape(r) for r in rows], "next": nxt}
