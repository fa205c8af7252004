"""Segment membership rows of profiles: read by segments and by profile lookups (no evaluation here)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from wayline.kernel.store import fetch_rows, list_param, raw_sql

IN = ("realized", "existing")


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_MEMBERSHIPS = ("SELECT profile_key, segment_id, status, qualified_ms FROM segment_members "
                "WHERE sandbox_id = ? AND profile_key {}")


def memberships(conn: Connection, sandbox_id: str, keys: Sequence[int]) -> dict[int, dict[str, tuple[str, int]]]:
    """key -> segment id -> (status, qualified_ms). Raw SQL: streaming segmentation reads this for
    every profile change."""
    out: dict[int, dict[str, tuple[str, int]]] = {}
    if keys:
        for key, sid, status, ms in fetch_rows(conn, raw_sql(conn, _MEMBERSHIPS),
                                               (sandbox_id, list_param(conn, list(keys)))):
            out.setdefault(key, {})[sid] = (status, ms)
    return out


def segment_membership_map(rows: dict[str, tuple[str, int]]) -> dict[str, Any]:
    """The XDM `segmentMembership` map of a profile: {"ups": {id: {status, lastQualificationTime}}}."""
    return {"ups": {sid: {"status": st, "lastQualificationTime": iso(ms)} for sid, (st, ms) in sorted(rows.items())}}
