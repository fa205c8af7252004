"""Organizations, sandboxes and API keys.

A key is `wl_<prefix>_<secret>`: 256 random bits, shown once. Only its SHA-256 is stored (a slow
hash on every request would cost more than the work; the key is random, not a password). The
prefix is the row id, so verification is one primary-key lookup and a constant-time compare.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wayline.kernel import tables as t
from wayline.kernel.problems import Problem
from wayline.kernel.store import Store, now_ms

ROLES = ("admin", "ingest", "read")
SANDBOX_TYPES = ("production", "development")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key, scoped to exactly one sandbox and one role."""

    key_id: str
    sandbox_id: str
    sandbox_name: str
    org_id: str
    tenant_id: str
    role: str

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}"

    def require(self, *roles: str) -> None:
        if self.role not in roles:
            raise Problem(403, "forbidden", "Forbidden",
                          f"this operation needs role {' or '.join(roles)}; the key has role {self.role}")


@dataclass(frozen=True)
class Sandbox:
    id: str
    org_id: str
    name: str
    type: str
    created_ms: int


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def ensure_organization(conn: Connection, *, name: str, tenant_id: str) -> str:
    row = conn.execute(sa.select(t.organizations.c.id).limit(1)).first()
    if row:
        return row.id
    org_id = "org_" + secrets.token_hex(8)
    conn.execute(t.organizations.insert().values(id=org_id, name=name, tenant_id=tenant_id,
                                                 created_ms=now_ms()))
    return org_id


def create_sandbox(conn: Connection, *, org_id: str, name: str, type: str = "production") -> Sandbox:
    if type not in SANDBOX_TYPES:
        raise Problem(422, "validation", "Invalid sandbox type", f"type must be one of {SANDBOX_TYPES}")
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_" for c in name):
        raise Problem(422, "validation", "Invalid sandbox name",
                      "a sandbox name is 1-64 letters, digits, '-' or '_'")
    exists = conn.execute(sa.select(t.sandboxes.c.id).where(t.sandboxes.c.org_id == org_id,
                                                            t.sandboxes.c.name == name)).first()
    if exists:
        raise Problem(409, "conflict", "Conflict", f"sandbox {name!r} exists")
    sb = Sandbox(id="sbx_" + secrets.token_hex(8), org_id=org_id, name=name, type=type, created_ms=now_ms())
    conn.execute(t.sandboxes.insert().values(id=sb.id, org_id=org_id, name=name, type=type, settings={},
                                             created_ms=sb.created_ms))
    audit(conn, sandbox_id=sb.id, actor="system", action="create", resource_type="sandbox",
          resource_id=sb.id, after={"name": name, "type": type})
    return sb


def get_sandbox(conn: Connection, name: str) -> Sandbox | None:
    row = conn.execute(sa.select(t.sandboxes).where(t.sandboxes.c.name == name)).first()
    return Sandbox(row.id, row.org_id, row.name, row.type, row.created_ms) if row else None


def list_sandboxes(conn: Connection) -> list[Sandbox]:
    rows = conn.execute(sa.select(t.sandboxes).order_by(t.sandboxes.c.created_ms)).all()
    return [Sandbox(r.id, r.org_id, r.name, r.type, r.created_ms) for r in rows]


def create_key(conn: Connection, *, sandbox_id: str, role: str, name: str = "",
               expires_ms: int | None = None, actor: str = "system") -> tuple[str, dict[str, Any]]:
    """Create a key; returns (the key, shown only now; its public description)."""
    if role not in ROLES:
        raise Problem(422, "validation", "Invalid role", f"role must be one of {', '.join(ROLES)}")
    prefix = secrets.token_hex(6)
    key = f"wl_{prefix}_{secrets.token_urlsafe(32)}"
    row = {"id": prefix, "sandbox_id": sandbox_id, "name": name or f"{role} key", "role": role,
           "hash": _hash(key), "created_ms": now_ms(), "expires_ms": expires_ms}
    conn.execute(t.api_keys.insert().values(**row))
    desc = describe_key(row)
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="create", resource_type="apiKey",
          resource_id=prefix, after=desc)
    return key, desc


def describe_key(row: Any) -> dict[str, Any]:
    r = dict(row) if not isinstance(row, dict) else row
    return {"id": r["id"], "name": r["name"], "role": r["role"], "createdMs": r["created_ms"],
            "expiresMs": r.get("expires_ms"), "revokedMs": r.get("revoked_ms"),
            "lastUsedMs": r.get("last_used_ms")}


def list_keys(conn: Connection, sandbox_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(t.api_keys).where(t.api_keys.c.sandbox_id == sandbox_id)
                        .order_by(t.api_keys.c.created_ms)).mappings().all()
    return [describe_key(r) for r in rows]


def revoke_key(conn: Connection, *, sandbox_id: str, key_id: str, actor: str) -> dict[str, Any]:
    row = conn.execute(sa.select(t.api_keys).where(t.api_keys.c.id == key_id,
                                                   t.api_keys.c.sandbox_id == sandbox_id)).mappings().first()
    if row is None:
        raise Problem(404, "not-found", "Not found", f"API key {key_id!r} does not exist in this sandbox")
    when = row["revoked_ms"] or now_ms()
    conn.execute(t.api_keys.update().where(t.api_keys.c.id == key_id).values(revoked_ms=when))
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="revoke", resource_type="apiKey",
          resource_id=key_id, before=describe_key(row), after={**describe_key(row), "revokedMs": when})
    return {**describe_key(row), "revokedMs": when}


def audit(conn: Connection, *, sandbox_id: str | None, actor: str, action: str, resource_type: str,
          resource_id: str, before: Any = None, after: Any = None) -> None:
    """Record a configuration change (who, what, when, before/after) in the same transaction."""
    conn.execute(t.audit_log.insert().values(sandbox_id=sandbox_id, actor=actor, action=action,
                                             resource_type=resource_type, resource_id=resource_id,
                                             before=before, after=after, at_ms=now_ms()))


UNAUTHORIZED = Problem(401, "unauthorized", "Unauthorized",
                       "send an API key as 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
                       headers={"WWW-Authenticate": "Bearer"})


class KeyVerifier:
    """Verifies keys, trusting a verified key for a few seconds to keep lookups off the hot path."""

    def __init__(self, store: Store, cache_seconds: float = 5.0) -> None:
        self.store = store
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def forget(self, key_id: str | None = None) -> None:
        with self._lock:
            if key_id is None:
                self._cache.clear()
            else:
                for k in [k for k, (_, p) in self._cache.items() if p.key_id == key_id]:
                    del self._cache[k]

    def cached(self, key: str) -> Principal | None:
        hit = self._cache.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        return None

    def verify_sync(self, key: str) -> Principal:
        hit = self.cached(key)
        if hit:
            return hit
        parts = key.split("_", 2)
        if len(parts) != 3 or parts[0] != "wl":
            raise UNAUTHORIZED
        principal = self.store.read_sync(self._lookup, parts[1], key)
        with self._lock:
            self._cache[key] = (time.monotonic() + self.cache_seconds, principal)
        last = self._touched.get(principal.key_id, 0.0)
        if time.monotonic() - last > 60:
            self._touched[principal.key_id] = time.monotonic()
            try:
                self.store.run(self._touch, principal.key_id)
            except Exception:  # last use is informational; never fail a request for it
                pass
        return principal

    async def verify(self, key: str) -> Principal:
        hit = self.cached(key)
        if hit:
            return hit
        import asyncio
        return await asyncio.get_running_loop().run_in_executor(None, self.verify_sync, key)

    @staticmethod
    def _touch(conn: Connection, key_id: str) -> None:
        conn.execute(t.api_keys.update().where(t.api_keys.c.id == key_id).values(last_used_ms=now_ms()))

    @staticmethod
    def _lookup(conn: Connection, prefix: str, key: str) -> Principal:
        row = conn.execute(
            sa.select(t.api_keys, t.sandboxes.c.name.label("sandbox_name"), t.sandboxes.c.org_id,
                      t.organizations.c.tenant_id)
            .join(t.sandboxes, t.sandboxes.c.id == t.api_keys.c.sandbox_id)
            .join(t.organizations, t.organizations.c.id == t.sandboxes.c.org_id)
            .where(t.api_keys.c.id == prefix)
        ).mappings().first()
        if row is None or not hmac.compare_digest(row["hash"], _hash(key)):
            raise UNAUTHORIZED
        if row["revoked_ms"] is not None:
            raise Problem(401, "key-revoked", "API key revoked", "this API key was revoked")
        if row["expires_ms"] is not None and row["expires_ms"] <= now_ms():
            raise Problem(401, "key-expired", "API key expired", "this API key has expired")
        return Principal(key_id=row["id"], sandbox_id=row["sandbox_id"], sandbox_name=row["sandbox_name"],
                         org_id=row["org_id"], tenant_id=row["tenant_id"], role=row["role"])
