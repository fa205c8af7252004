"""The platform's facade: what the other products and the platform's own API call.

Journeys use only this module and `wayline.platform.contracts`, never the platform's tables.
"""

from __future__ import annotations

from typing import Any

from wayline.config import Settings
from wayline.kernel.problems import Problem
from wayline.kernel.store import Coalescer, Store, now_ms
from wayline.kernel.tenancy import audit
from wayline.platform import datasets as ds
from wayline.platform import failures, identity, ingestion, merge_policies, merging, profiles
from wayline.platform.datasets import Dataset
from wayline.platform.schemas.registry import SchemaRegistry


class PlatformService:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.limits = settings.limits
        self.schemas = SchemaRegistry(store)
        self.cache = ds.Cache()
        # Concurrent intake requests share one unit of work (measured: writer CPU per single-message
        # request fell by about two thirds in the benchmark's prototype).
        self._intake = Coalescer(store, self._store_intake)

    def _store_intake(self, conn: Any, items: list[ingestion.Prepared]) -> list[ingestion.Stored]:
        return ingestion.store_prepared(conn, "", items, now_ms(), self.limits)

    # -- lookups on the hot path (cached) ------------------------------------------------------------

    def dataset(self, sandbox_id: str, dataset_id: str) -> Dataset:
        """A dataset of the sandbox (cached a few seconds), or a 404 problem."""
        return self.cache.get("dataset", sandbox_id, dataset_id,
                              lambda: self.store.read_sync(ds.get_dataset, sandbox_id, dataset_id))

    def inlet(self, sandbox_id: str, inlet_id: str) -> ds.Inlet:
        return self.cache.get("inlet", sandbox_id, inlet_id,
                              lambda: self.store.read_sync(ds.get_inlet, sandbox_id, inlet_id))

    def compiled_for(self, dataset: Dataset) -> Any:
        return self.schemas.compiled(dataset.sandbox_id, dataset.schema_uri)

    # -- datasets ----------------------------------------------------------------------------------

    async def create_dataset(self, *, sandbox_id: str, name: str, schema_id: str, description: str,
                             profile_enabled: bool, labels: tuple[str, ...], actor: str) -> Dataset:
        compiled = self.schemas.compiled(sandbox_id, schema_id)
        if profile_enabled and not compiled.profile_enabled:
            raise _not_profile_schema(compiled.uri)
        return await self.store.write(lambda c: ds.create_dataset(
            c, sandbox_id=sandbox_id, name=name, schema_uri=compiled.uri, description=description,
            profile_enabled=profile_enabled, labels=labels, actor=actor))

    async def update_dataset(self, *, sandbox_id: str, dataset_id: str, changes: dict[str, Any],
                             actor: str) -> Dataset:
        if changes.get("profile_enabled"):
            current = await self.store.read(ds.get_dataset, sandbox_id, dataset_id)
            compiled = self.schemas.compiled(sandbox_id, current.schema_uri)
            if not compiled.profile_enabled:
                raise _not_profile_schema(compiled.uri)
        out = await self.store.write(lambda c: ds.update_dataset(c, sandbox_id=sandbox_id, dataset_id=dataset_id,
                                                                 changes=changes, actor=actor))
        self.cache.evict("dataset", sandbox_id, dataset_id)
        return out

    async def delete_dataset(self, *, sandbox_id: str, dataset_id: str, actor: str) -> None:
        await self.store.write(lambda c: ds.delete_dataset(c, sandbox_id=sandbox_id, dataset_id=dataset_id,
                                                           actor=actor))
        self.cache.evict("dataset", sandbox_id, dataset_id)

    # -- streaming ingestion -----------------------------------------------------------------------

    def prepare_message(self, sandbox_id: str, inlet: ds.Inlet, message: Any, *, where: str = "",
                        xaction_id: str | None = None) -> ingestion.Prepared:
        """Decide one streaming message (no I/O but cached lookups); raises a problem to refuse it."""
        dataset_id, schema_id, entity = ingestion.envelope_target(message, where)
        dataset_id = dataset_id or inlet.dataset_id
        if dataset_id is None:
            raise Problem(400, "no-dataset", "No dataset",
                          "the message names no header.datasetId and the inlet has no default dataset")
        dataset = self.dataset(sandbox_id, dataset_id)
        compiled = self.compiled_for(dataset)
        if schema_id is not None and schema_id != dataset.schema_uri:
            # An alias or altId of the dataset's schema is fine; an unknown schema is a 404.
            named = self.schemas.compiled(sandbox_id, schema_id).uri
            ingestion.check_schema_ref(dataset, named, where)
        return ingestion.prepare(dataset, compiled, entity, self.limits,
                                 xaction_id=xaction_id or ingestion.new_xaction_id())

    async def store_records(self, sandbox_id: str, prepared: list[ingestion.Prepared]) -> list[ingestion.Stored]:
        """Store decided records durably; returns once committed."""
        if not prepared:
            return []
        return await self._intake.submit(prepared)

    def prepare_records(self, dataset: Dataset, records: list[Any]) -> list[ingestion.Prepared | Problem]:
        compiled = self.compiled_for(dataset)
        out: list[ingestion.Prepared | Problem] = []
        for rec in records:
            try:
                out.append(ingestion.prepare(dataset, compiled, rec, self.limits,
                                             xaction_id=ingestion.new_xaction_id()))
            except Problem as p:
                out.append(p)
        return out

    # -- failed records ------------------------------------------------------------------------------

    async def replay_failed(self, *, sandbox_id: str, dataset_id: str, ids: list[int] | None,
                            batch_id: str | None, actor: str) -> dict[str, Any]:
        dataset = await self.store.read(ds.get_dataset, sandbox_id, dataset_id)
        compiled = self.compiled_for(dataset)
        return await self.store.write(lambda c: failures.replay(c, dataset=dataset, compiled=compiled,
                                                                limits=self.limits, ids=ids, batch_id=batch_id,
                                                                actor=actor))


def _not_profile_schema(uri: str) -> Problem:
    from wayline.kernel.problems import FieldError

    return Problem(422, "validation", "Schema not enabled for profile",
                   f"schema {uri!r} is not enabled for profile; enable it before its datasets",
                   [FieldError("/profileEnabled", "the dataset's schema is not enabled for profile", "false")])


# -- identities and profiles (a second facade section; keyword-only like the rest) ---------------------

class ProfileService:
    """Identities, merge policies and merged profiles of a sandbox."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.limits = settings.limits

    # namespaces
    async def namespaces(self, *, sandbox_id: str) -> list[identity.Namespace]:
        nss = await self.store.read(profiles.namespaces, sandbox_id)
        return sorted(nss.values(), key=lambda n: (n.custom, n.id))

    async def create_namespace(self, *, sandbox_id: str, body: Any, actor: str) -> identity.Namespace:
        return await self.store.write(lambda c: profiles.create_namespace(c, sandbox_id=sandbox_id, body=body,
                                                                          actor=actor, now=now_ms()))

    def ident(self, ns: str, value: str, *, where: str = "query:") -> identity.Ident:
        """An identity named in a request, normalised as ingestion does (Email in lower case)."""
        return identity.Ident(ns, identity.normalise(ns, value))

    # merge policies
    async def merge_policies(self, *, sandbox_id: str) -> list[dict[str, Any]]:
        rows = await self.store.read(merge_policies.list_all, sandbox_id)
        return [merge_policies.to_api(r) for r in rows]

    async def merge_policy(self, *, sandbox_id: str, policy_id: str) -> dict[str, Any]:
        return merge_policies.to_api(await self.store.read(merge_policies.get, sandbox_id, policy_id))

    async def create_merge_policy(self, *, sandbox_id: str, body: Any, actor: str) -> dict[str, Any]:
        row = await self.store.write(lambda c: merge_policies.create(c, sandbox_id=sandbox_id, body=body, actor=actor,
                                                                     now=now_ms()))
        return merge_policies.to_api(row)

    async def update_merge_policy(self, *, sandbox_id: str, policy_id: str, body: Any, actor: str,
                                  partial: bool) -> dict[str, Any]:
        row = await self.store.write(lambda c: merge_policies.update(c, sandbox_id=sandbox_id, policy_id=policy_id,
                                                                     body=body, actor=actor, now=now_ms(),
                                                                     partial=partial))
        return merge_policies.to_api(row)

    async def delete_merge_policy(self, *, sandbox_id: str, policy_id: str, actor: str) -> None:
        await self.store.write(lambda c: merge_policies.delete(c, sandbox_id=sandbox_id, policy_id=policy_id,
                                                               actor=actor))

    def _effective(self, conn: Any, sandbox_id: str, policy_id: str | None) -> profiles.Effective:
        if policy_id:
            return profiles.policy_of(merge_policies.get(conn, sandbox_id, policy_id))
        return profiles.default_policy(conn, sandbox_id)

    # profiles
    async def profile(self, *, sandbox_id: str, ident: identity.Ident, merge_policy_id: str | None = None,
                      explain: bool = False, fields: list[str] | None = None) -> dict[str, Any]:
        def q(c: Any) -> dict[str, Any] | None:
            eff = self._effective(c, sandbox_id, merge_policy_id)
            return profiles.lookup(c, sandbox_id, ident, eff, explain=explain,
                                   max_events=self.limits.max_events_per_profile)

        out = await self.store.read(q)
        if out is None:
            raise Problem(404, "not-found", "Profile not found",
                          f"no profile has the identity {ident.ns}:{ident.value!r} in this sandbox")
        if fields:
            out["entity"] = merging.project(out["entity"], fields)
            if "explanation" in out:
                prefixes = tuple("/" + f.replace(".", "/") for f in fields)
                out["explanation"] = {k: v for k, v in out["explanation"].items()
                                      if any(k == x or k.startswith(x + "/") for x in prefixes)}
        return out

    async def profile_events(self, *, sandbox_id: str, ident: identity.Ident, merge_policy_id: str | None,
                             start_ms: int | None, end_ms: int | None, limit: int,
                             after: tuple[int, str, str] | None) -> tuple[list[dict[str, Any]], Any]:
        def q(c: Any) -> tuple[list[dict[str, Any]], Any] | None:
            eff = self._effective(c, sandbox_id, merge_policy_id)
            return profiles.events(c, sandbox_id, ident, eff, start_ms=start_ms, end_ms=end_ms, limit=limit,
                                   after=after)

        out = await self.store.read(q)
        if out is None:
            raise Problem(404, "not-found", "Profile not found",
                          f"no profile has the identity {ident.ns}:{ident.value!r} in this sandbox")
        return out

    async def identity_graph(self, *, sandbox_id: str, ident: identity.Ident) -> dict[str, Any]:
        out = await self.store.read(profiles.graph_of, sandbox_id, ident)
        if out is None:
            raise Problem(404, "not-found", "Identity not found",
                          f"the identity {ident.ns}:{ident.value!r} is not in this sandbox's identity graph")
        return out

    async def delete_profile(self, *, sandbox_id: str, ident: identity.Ident, merge_policy_id: str | None,
                             actor: str) -> dict[str, Any]:
        def w(c: Any) -> dict[str, Any] | None:
            eff = self._effective(c, sandbox_id, merge_policy_id)
            out = profiles.delete_profile(c, sandbox_id, ident, eff, now=now_ms())
            if out is not None:
                audit(c, sandbox_id=sandbox_id, actor=actor, action="privacy-delete", resource_type="profile",
                      resource_id=out["profileId"], after={"namespace": ident.ns, **out})
            return out

        out = await self.store.write(w)
        if out is None:
            raise Problem(404, "not-found", "Profile not found",
                          f"no profile has the identity {ident.ns}:{ident.value!r} in this sandbox")
        return out

    async def delete_identity(self, *, sandbox_id: str, ident: identity.Ident, actor: str) -> dict[str, Any]:
        def w(c: Any) -> dict[str, Any] | None:
            out = profiles.delete_identity(c, sandbox_id, ident, now=now_ms())
            if out is not None:
                audit(c, sandbox_id=sandbox_id, actor=actor, action="privacy-delete", resource_type="identity",
                      resource_id=out["profileId"], after={"namespace": ident.ns, **out})
            return out

        out = await self.store.write(w)
        if out is None:
            raise Problem(404, "not-found", "Identity not found",
                          f"the identity {ident.ns}:{ident.value!r} is not in this sandbox's identity graph")
        return out

    def rebuild(self, *, sandbox_id: str, chunk: int = 500, on_progress: Any = None) -> int:
        """Recompute the sandbox's stored profiles under its current default policy; returns keys done."""
        after, done = 0, 0
        while True:
            last = self.store.write_blocking(lambda c, a=after: profiles.rebuild_view(c, sandbox_id, after_key=a,
                                                                                      limit=chunk, now=now_ms()))
            if last is None:
                return done
            done += 1
            after = last
            if on_progress:
                on_progress(after)
