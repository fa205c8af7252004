"""Segment membership rows of profiles: read by segments and by profile lookups (no evaluation here)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wayline.platform import tables as t

IN = ("realized", "existing")


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def memberships(conn: Connection, sandbox_id: str, keys: Sequence[int]) -> dict[int, dict[str, tuple[str, int]]]:
    """key -> segment id -> (status, qualified_ms)."""
    out: dict[int, dict[str, tuple[str, int]]] = {}
    m = t.segment_members.c
    for start in range(0, len(keys), 400):
        part = list(keys[start:start + 400])
        for r in conn.execute(sa.select(m.profile_key, m.segment_id, m.status, m.qualified_ms).where(
                m.sandbox_id == sandbox_id, m.profile_key.in_(part))):
            out.setdefault(r.profile_key, {})[r.segment_id] = (r.status, r.qualified_ms)
    return out


def segment_membership_map(rows: dict[str, tuple[str, int]]) -> dict[str, Any]:
    """The XDM `segmentMembership` map of a profile: {"ups": {id: {status, lastQualificationTime}}}."""
    return {"ups": {sid: {"status": st, "lastQualificationTime": iso(ms)} for sid, (st, ms) in sorted(rows.items())}}
