"""The schema registry's facade: reads, writes (units of work) and the compiled-schema cache.

Read and write methods take a Connection, so callers choose how to run them (`store.read(...)`,
`store.write(...)`, `store.run(...)`). After a write commits, call `invalidate(sandbox_id)`: the API
does. `compiled()` is synchronous and thread-safe; it is the ingestion hot path.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy.engine import Connection

from wayline.kernel.paging import decode_cursor, encode_cursor, page
from wayline.kernel.problems import Problem
from wayline.kernel.store import Store
from wayline.platform.schemas import descriptors as dsc
from wayline.platform.schemas import queries, standard, writes
from wayline.platform.schemas.checks import get_resource, not_found, resolver_for, view
from wayline.platform.schemas.compiled import CompiledSchema, compile_schema
from wayline.platform.schemas.compose import Resolver, compose_schema


class SchemaRegistry:
    """Classes, field groups, data types, schemas and descriptors of every sandbox, plus the standard pieces."""

    def __init__(self, store: Store, *, recheck_seconds: float = 2.0) -> None:
        self.store = store
        self.recheck_seconds = recheck_seconds
        self._entries: dict[tuple[str, str], tuple[CompiledSchema, float, int]] = {}
        self._by_version: dict[tuple[str, str, int, int], CompiledSchema] = {}
        self._generation: dict[str, int] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}

    # -- standard pieces ---------------------------------------------------------------------------

    def list_global(self, kind: str, *, limit: int = 100, cursor: str | None = None,
                    full: bool = False) -> dict[str, Any]:
        """A page of the standard pieces of a kind, ordered by `$id`."""
        items = standard.of_kind(kind)
        if cursor:
            last = decode_cursor(cursor)
            items = [r for r in items if r.uri > last]
        more = len(items) > limit
        items = items[:limit]
        return {"items": [view(r, full=full) for r in items],
                "next": encode_cursor(items[-1].uri) if more and items else None}

    def get_global(self, kind: str, ident: str, *, full: bool = False) -> dict[str, Any]:
        res = standard.get(ident)
        if res is None or res.kind != kind:
            raise Problem(404, "not-found", "Not found", f"no standard {kind} {ident!r}")
        return view(res, full=full)

    # -- the sandbox's pieces (reads) --------------------------------------------------------------

    def list_resources(self, conn: Connection, *, sandbox_id: str, kind: str, limit: int = 100,
                       cursor: str | None = None, full: bool = False) -> dict[str, Any]:
        """A page of the sandbox's pieces of a kind (`full`: composed / expanded), ordered by `$id`."""
        resolver = resolver_for(conn, sandbox_id)
        return page(conn, queries.list_stmt(sandbox_id, kind), queries.R.c.uri, limit=limit, cursor=cursor,
                    shape=lambda row: view(queries.as_resource(row), full=full, resolver=resolver))

    def get(self, conn: Connection, *, sandbox_id: str, kind: str, ident: str, full: bool = False) -> dict[str, Any]:
        """One piece by `$id` or altId (404 if the sandbox has none); `version` is its ETag."""
        res = get_resource(conn, sandbox_id, kind, ident)
        return view(res, full=full, resolver=resolver_for(conn, sandbox_id))

    # -- the sandbox's pieces (writes: units of work) ----------------------------------------------

    def create(self, conn: Connection, *, sandbox_id: str, tenant_id: str, actor: str, kind: str,
               body: Any) -> tuple[dict[str, Any], bool]:
        """Create a class / field group / data type / schema; returns (view, created)."""
        self._dirty(sandbox_id)
        return writes.create(conn, sandbox_id=sandbox_id, tenant_id=tenant_id, actor=actor, kind=kind, body=body)

    def update(self, conn: Connection, *, sandbox_id: str, tenant_id: str, actor: str, kind: str, ident: str,
               body: Any, if_match: str | None = None) -> dict[str, Any]:
        """Replace a definition (PUT), checked against If-Match and the profile evolution rules."""
        self._dirty(sandbox_id)
        return writes.update(conn, sandbox_id=sandbox_id, tenant_id=tenant_id, actor=actor, kind=kind, ident=ident,
                             body=body, if_match=if_match)

    def patch(self, conn: Connection, *, sandbox_id: str, tenant_id: str, actor: str, kind: str, ident: str,
              body: Any, if_match: str | None = None) -> dict[str, Any]:
        """JSON Patch (list) or merge patch (object); `meta:immutableTags: ["union"]` enables profile."""
        self._dirty(sandbox_id)
        return writes.patch(conn, sandbox_id=sandbox_id, tenant_id=tenant_id, actor=actor, kind=kind, ident=ident,
                            body=body, if_match=if_match)

    def enable_profile(self, conn: Connection, *, sandbox_id: str, actor: str, ident: str) -> dict[str, Any]:
        """Enable a schema for profile; it needs a primary identity (descriptor or identityMap)."""
        self._dirty(sandbox_id)
        return writes.enable_profile(conn, sandbox_id=sandbox_id, actor=actor, ident=ident)

    def delete(self, conn: Connection, *, sandbox_id: str, actor: str, kind: str, ident: str,
               if_match: str | None = None) -> None:
        """Delete a piece nothing uses (409 otherwise)."""
        self._dirty(sandbox_id)
        writes.delete(conn, sandbox_id=sandbox_id, actor=actor, kind=kind, ident=ident, if_match=if_match)

    # -- descriptors ---------------------------------------------------------------------------------

    def list_descriptors(self, conn: Connection, *, sandbox_id: str, schema: str | None = None,
                         type_: str | None = None, limit: int = 100, cursor: str | None = None) -> dict[str, Any]:
        schema_uri = None
        if schema:
            found = queries.find(conn, sandbox_id, schema, "schema")
            schema_uri = found.uri if found else schema
        return page(conn, queries.descriptor_list_stmt(sandbox_id, schema_uri, type_), queries.D.c.id,
                    limit=limit, cursor=cursor, shape=lambda row: dict(row["body"]))

    def get_descriptor(self, conn: Connection, *, sandbox_id: str, descriptor_id: str) -> dict[str, Any]:
        desc = queries.descriptor(conn, sandbox_id, descriptor_id)
        if desc is None:
            raise Problem(404, "not-found", "Not found", f"descriptor {descriptor_id!r} does not exist in this sandbox")
        return desc

    def create_descriptor(self, conn: Connection, *, sandbox_id: str, actor: str,
                          body: Any) -> tuple[dict[str, Any], bool]:
        """Create an identity / one-to-one descriptor; returns (descriptor, created)."""
        self._dirty(sandbox_id)
        return writes.create_descriptor(conn, sandbox_id=sandbox_id, actor=actor, body=body)

    def delete_descriptor(self, conn: Connection, *, sandbox_id: str, actor: str, descriptor_id: str) -> None:
        self._dirty(sandbox_id)
        writes.delete_descriptor(conn, sandbox_id=sandbox_id, actor=actor, descriptor_id=descriptor_id)

    # -- compiled schemas (the hot path) -------------------------------------------------------------

    def compiled(self, sandbox_id: str, uri: str) -> CompiledSchema:
        """The compiled schema of `uri` (a `$id` or altId): compiled once per version and reused.

        Within `recheck_seconds` of the last check it answers from memory; after that it reads the
        stored version (one indexed row) so changes made by other processes are seen. Raises a 404
        problem when the sandbox has no such schema.
        """
        key = (sandbox_id, uri)
        gen = self._generation.get(sandbox_id, 0)
        hit = self._entries.get(key)
        if hit is not None and hit[2] == gen and time.monotonic() - hit[1] < self.recheck_seconds:
            return hit[0]
        with self._key_lock(key):
            gen = self._generation.get(sandbox_id, 0)
            hit = self._entries.get(key)
            if hit is not None and hit[2] == gen and time.monotonic() - hit[1] < self.recheck_seconds:
                return hit[0]
            found = self.store.read_sync(queries.version_of, sandbox_id, uri)
            if found is None:
                with self._lock:  # unknown ids must not accumulate (ids come from client messages)
                    self._entries.pop(key, None)
                    self._key_locks.pop(key, None)
                raise not_found("schema", uri)
            compiled = self._by_version.get((sandbox_id, *found))
            if compiled is None:
                compiled, stamp = self.store.read_sync(self._build, sandbox_id, found[0])
                with self._lock:
                    for old in [k for k in self._by_version if k[:2] == (sandbox_id, compiled.uri)]:
                        del self._by_version[old]
                    self._by_version[(sandbox_id, compiled.uri, compiled.version, stamp)] = compiled
            self._entries[key] = (compiled, time.monotonic(), gen)
            return compiled

    def invalidate(self, sandbox_id: str | None = None) -> None:
        """Forget what was checked (all sandboxes, or one); call after a write through this registry commits."""
        with self._lock:
            every = list(self._generation) + [k[0] for k in list(self._entries)]
            for sid in {sandbox_id} if sandbox_id else set(every):
                self._generation[sid] = self._generation.get(sid, 0) + 1

    def _dirty(self, sandbox_id: str) -> None:
        # Also before the commit: a reader between now and the commit sees the old version and keeps
        # it only until the caller's invalidate() after the commit.
        self.invalidate(sandbox_id)

    def _key_lock(self, key: tuple[str, str]) -> threading.Lock:
        lock = self._key_locks.get(key)
        if lock is None:
            with self._lock:
                lock = self._key_locks.setdefault(key, threading.Lock())
        return lock

    @staticmethod
    def _build(conn: Connection, sandbox_id: str, uri: str) -> tuple[CompiledSchema, int]:
        res = queries.fetch(conn, sandbox_id, uri)
        if res is None:
            raise not_found("schema", uri)
        resolver: Resolver = resolver_for(conn, sandbox_id)
        composed = compose_schema(resolver, res)
        descs = queries.descriptors_of(conn, sandbox_id, uri)
        compiled = compile_schema(uri=res.uri, version=res.version, title=res.title, class_uri=composed.class_uri,
                                  behavior=composed.behavior, profile_enabled=res.profile_enabled,
                                  json_schema=composed.json_schema, identities=dsc.identities(descs),
                                  alt_id=res.alt_id, relationships=dsc.relationships(descs))
        return compiled, res.updated_ms
