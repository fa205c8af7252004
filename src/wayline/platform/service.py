"""The platform's facade: what the other products and the platform's own API call.

Journeys use only this module and `wayline.platform.contracts`, never the platform's tables.
"""

from __future__ import annotations

from typing import Any

from wayline.config import Settings
from wayline.kernel.problems import FieldError, Problem
from wayline.kernel.store import Coalescer, Store, now_ms
from wayline.kernel.tenancy import audit
from wayline.platform import datasets as ds
from wayline.platform import failures, identity, ingestion, merge_policies, merging, profiles
from wayline.platform.datasets import Dataset
from wayline.platform.prepare_pool import PreparePool, prepare_inline
from wayline.platform.schemas.registry import SchemaRegistry


class PlatformService:
    def __init__(self, store: Store, settings: Settings, prepare_pool: PreparePool | None = None) -> None:
        self.store = store
        self.settings = settings
        self.limits = settings.limits
        self.prepare_pool = prepare_pool or PreparePool(0)
        self.schemas = SchemaRegistry(store)
        self.cache = ds.Cache()
        # Concurrent intake requests share one unit of work (measured: writer CPU per single-message
        # request fell by about two thirds in the benchmark's prototype).
        self._intake = Coalescer(store, self._store_intake)

    def _store_intake(self, conn: Any, items: list[ingestion.Prepared]) -> list[ingestion.Stored]:
        return ingestion.store_prepared(conn, "", items, now_ms(), self.limits, views=self.prepare_pool)

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
        def w(c: Any) -> Dataset:
            _known_labels(c, sandbox_id, labels)
            return ds.create_dataset(c, sandbox_id=sandbox_id, name=name, schema_uri=compiled.uri,
                                     description=description, profile_enabled=profile_enabled, labels=labels,
                                     actor=actor)

        return await self.store.write(w)

    async def update_dataset(self, *, sandbox_id: str, dataset_id: str, changes: dict[str, Any],
                             actor: str) -> Dataset:
        if changes.get("profile_enabled"):
            current = await self.store.read(ds.get_dataset, sandbox_id, dataset_id)
            compiled = self.schemas.compiled(sandbox_id, current.schema_uri)
            if not compiled.profile_enabled:
                raise _not_profile_schema(compiled.uri)
        def w(c: Any) -> Dataset:
            if "labels" in changes:
                _known_labels(c, sandbox_id, changes["labels"])
            return ds.update_dataset(c, sandbox_id=sandbox_id, dataset_id=dataset_id, changes=changes, actor=actor)

        out = await self.store.write(w)
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
        return ingestion.prepare_all(dataset, self.compiled_for(dataset), records, self.limits)

    async def prepare_many(self, dataset: Dataset, payload: bytes, *,
                           batch_id: str | None = None) -> list[ingestion.Prepared | Problem]:
        """Decide a JSON array of records of one dataset: in a prepare worker when it is large enough
        (`prepare_pool`: another core; profile records also pass the identity rules there), else here."""
        compiled = self.compiled_for(dataset)
        pool = self.prepare_pool
        if not pool.wanted(len(payload)):
            return prepare_inline(dataset, compiled, payload, self.limits, batch_id=batch_id)
        nss = self.namespaces(dataset.sandbox_id) if dataset.profile_enabled else None
        return await pool.prepare(dataset, compiled, payload, self.limits, namespaces=nss, batch_id=batch_id)

    def namespaces(self, sandbox_id: str) -> dict[str, identity.Namespace]:
        return self.cache.get("namespaces", sandbox_id, "", lambda: self.store.read_sync(profiles.namespaces,
                                                                                         sandbox_id))

    # -- failed records ------------------------------------------------------------------------------

    async def replay_failed(self, *, sandbox_id: str, dataset_id: str, ids: list[int] | None,
                            batch_id: str | None, actor: str) -> dict[str, Any]:
        dataset = await self.store.read(ds.get_dataset, sandbox_id, dataset_id)
        compiled = self.compiled_for(dataset)
        return await self.store.write(lambda c: failures.replay(c, dataset=dataset, compiled=compiled,
                                                                limits=self.limits, ids=ids, batch_id=batch_id,
                                                                actor=actor))


def _known_labels(conn: Any, sandbox_id: str, labels: Any) -> None:
    """Dataset labels must be core labels or the sandbox's custom ones (governance)."""
    from wayline.platform.governance.store import check_dataset_labels

    check_dataset_labels(conn, sandbox_id, list(labels), "/labels")


def _not_profile_schema(uri: str) -> Problem:
    from wayline.kernel.problems import FieldError

    return Problem(422, "validation", "Schema not enabled for profile",
                   f"schema {uri!r} is not enabled for profile; enable it before its datasets",
                   [FieldError("/profileEnabled", "the dataset's schema is not enabled for profile", "false")])


# -- identities and profiles (a second facade section; keyword-only like the rest) ---------------------

class ProfileService:
    """Identities, merge policies and merged profiles of a sandbox."""

    def __init__(self, store: Store, settings: Settings, prepare_pool: PreparePool | None = None) -> None:
        self.store = store
        self.limits = settings.limits
        self.prepare_pool = prepare_pool  # merges a rebuild's profiles in another process

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
            from wayline.platform import membership

            eff = self._effective(c, sandbox_id, merge_policy_id)
            out = profiles.lookup(c, sandbox_id, ident, eff, explain=explain,
                                  max_events=self.limits.max_events_per_profile)
            if out is not None:
                key = out.pop("_key")
                # segment membership is kept per stored profile (the default policy's)
                if eff.stamp == profiles.default_policy(c, sandbox_id).stamp:
                    rows = membership.memberships(c, sandbox_id, [key]).get(key)
                    if rows:
                        out["entity"] = {**out["entity"],
                                         "segmentMembership": membership.segment_membership_map(rows)}
            return out

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
            last = self.store.write_blocking(lambda c, a=after: profiles.rebuild_view(
                c, sandbox_id, after_key=a, limit=chunk, now=now_ms(), views=self.prepare_pool))
            if last is None:
                return done
            done += 1
            after = last
            if on_progress:
                on_progress(after)


class SegmentService:
    """Segment definitions, membership, evaluation jobs, previews and exports of a sandbox."""

    def __init__(self, store: Store, settings: Settings, registry: SchemaRegistry, clock: Any) -> None:
        from wayline.platform import segments

        self.store = store
        self.settings = settings
        self.limits = settings.limits
        self.registry = registry
        self.clock = clock
        self.catalog = segments.Catalog(registry)
        self.streaming = segments.Streaming(self.catalog, self.limits, clock.now_ms)

    def attach(self, backbone: Any) -> None:
        """Subscribe the streaming evaluator and the daily batch run to the event backbone."""
        from wayline.platform import contracts, segments

        backbone.subscribe(segments.Streaming.CONSUMER, contracts.PROFILE_STREAM, self.streaming.handle)
        backbone.subscribe("segments-daily", segments.SCHEDULE_STREAM, self._daily)

    def _daily(self, conn: Any, message: Any) -> None:
        from wayline.platform import segments

        if message.type != "timer.fired":
            return
        sandbox_id = message.payload["payload"]["sandboxId"] if "payload" in message.payload else \
            message.payload["sandboxId"]
        now = self.clock.now_ms()
        jid = segments.create_job(conn, sandbox_id=sandbox_id, kind="evaluate",
                                  request={"segments": "batch-enabled", "trigger": "daily"}, now=now)
        started = now_ms()
        counts = segments.run_evaluation(conn, catalog=self.catalog, sandbox_id=sandbox_id, segment_ids=None,
                                         now=now, max_events=self.limits.max_events_per_profile)
        segments.mark_job(conn, jid, status="succeeded", counts=counts, started_ms=started, finished_ms=now_ms())
        segments.ensure_daily(conn, sandbox_id=sandbox_id, at=self.settings.segments_daily_at, now=now + 60_000)

    async def labels_of(self, *, sandbox_id: str, entity_id: str) -> list[str] | None:
        """A segment's data-usage labels as of now, or None when there is no such segment (governance
        resolves `{"entityType": "segment"}` entities with this)."""
        from wayline.platform import segments

        def q(c: Any) -> list[str] | None:
            try:
                d = segments.get(c, sandbox_id, entity_id)
            except Problem:
                return None
            return segments.labels_now(c, self.registry, d)

        return await self.store.read(q)

    # definitions
    async def definitions(self, *, sandbox_id: str) -> list[dict[str, Any]]:
        from wayline.platform import segments

        return [d.to_api() for d in await self.store.read(segments.list_all, sandbox_id)]

    async def definition(self, *, sandbox_id: str, segment_id: str) -> dict[str, Any]:
        from wayline.platform import segments

        return (await self.store.read(segments.get, sandbox_id, segment_id)).to_api()

    async def create(self, *, sandbox_id: str, body: Any, actor: str) -> dict[str, Any]:
        from wayline.platform import segments

        def w(c: Any) -> Any:
            d = segments.create(c, registry=self.registry, sandbox_id=sandbox_id, body=body, actor=actor,
                                limits=self.limits, now=now_ms())
            if d.evaluation["batch"]["enabled"]:
                segments.ensure_daily(c, sandbox_id=sandbox_id, at=self.settings.segments_daily_at,
                                      now=self.clock.now_ms())
            return d

        d = await self.store.write(w)
        self.catalog.forget(sandbox_id)
        return d.to_api()

    async def update(self, *, sandbox_id: str, segment_id: str, body: Any, actor: str, partial: bool) -> dict[str, Any]:
        from wayline.platform import segments

        d = await self.store.write(lambda c: segments.update(c, registry=self.registry, sandbox_id=sandbox_id,
                                                             segment_id=segment_id, body=body, actor=actor,
                                                             limits=self.limits, now=now_ms(), partial=partial))
        self.catalog.forget(sandbox_id)
        return d.to_api()

    async def delete(self, *, sandbox_id: str, segment_id: str, actor: str) -> None:
        from wayline.platform import segments

        await self.store.write(lambda c: segments.delete(c, sandbox_id=sandbox_id, segment_id=segment_id,
                                                         actor=actor))
        self.catalog.forget(sandbox_id)

    # membership
    async def members(self, *, sandbox_id: str, segment_id: str, statuses: list[str], limit: int,
                      after: int | None) -> tuple[list[dict[str, Any]], int | None]:
        import sqlalchemy as sa

        from wayline.platform import segments
        from wayline.platform import tables as t

        def q(c: Any) -> tuple[list[dict[str, Any]], int | None]:
            segments.get(c, sandbox_id, segment_id)
            m = t.segment_members.c
            stmt = sa.select(m.profile_key, m.status, m.qualified_ms).where(m.segment_id == segment_id,
                                                                            m.status.in_(statuses))
            if after is not None:
                stmt = stmt.where(m.profile_key > after)
            rows = c.execute(stmt.order_by(m.profile_key).limit(limit + 1)).all()
            idents = segments._identities_of(c, [r.profile_key for r in rows[:limit]])
            items = [{"profileId": str(r.profile_key), "status": r.status,
                      "lastQualificationTime": segments._iso(r.qualified_ms),
                      "identity": ({"namespace": {"code": idents[r.profile_key][0]}, "id": idents[r.profile_key][1]}
                                   if r.profile_key in idents else None)} for r in rows[:limit]]
            return items, (rows[limit - 1].profile_key if len(rows) > limit else None)

        return await self.store.read(q)

    async def membership_of(self, *, sandbox_id: str, profile_id: str) -> dict[str, Any]:
        from wayline.platform import segments

        rows = await self.store.read(segments.memberships, sandbox_id, [int(profile_id)])
        return segments.segment_membership_map(rows.get(int(profile_id), {}))

    # evaluation jobs
    def evaluate(self, *, sandbox_id: str, segment_ids: list[str] | None, job_id: str | None = None,
                 on_progress: Any = None) -> dict[str, Any]:
        """Run a batch evaluation now, on the calling thread (CLI, job runner); returns the job."""
        from wayline.platform import segments

        if job_id is None:
            job_id = self.store.write_blocking(lambda c: segments.create_job(
                c, sandbox_id=sandbox_id, kind="evaluate", request={"segments": segment_ids or "batch-enabled"},
                now=now_ms()))
        started = now_ms()
        self.store.write_blocking(lambda c: segments.mark_job(c, job_id, status="processing", started_ms=started))
        try:
            counts = self.store.write_blocking(lambda c: segments.run_evaluation(
                c, catalog=self.catalog, sandbox_id=sandbox_id, segment_ids=segment_ids, now=self.clock.now_ms(),
                max_events=self.limits.max_events_per_profile, on_progress=on_progress))
        except Problem as p:
            errors = [{"title": p.title, "detail": p.detail}]  # bound here: the lambda must not outlive `p`
            self.store.write_blocking(lambda c: segments.mark_job(c, job_id, status="failed", finished_ms=now_ms(),
                                                                  errors=errors))
            raise
        except Exception as exc:
            errors = [{"detail": str(exc)[:500]}]
            self.store.write_blocking(lambda c: segments.mark_job(c, job_id, status="failed", finished_ms=now_ms(),
                                                                  errors=errors))
            raise
        self.store.write_blocking(lambda c: segments.mark_job(c, job_id, status="succeeded", counts=counts,
                                                              finished_ms=now_ms()))
        return self.store.read_sync(lambda c: segments.job_to_api(segments.get_job(c, sandbox_id, job_id)))

    async def start_job(self, *, sandbox_id: str, segment_ids: list[str] | None, wait: bool) -> dict[str, Any]:
        import asyncio

        from wayline.platform import segments

        def prepare(c: Any) -> str:
            if segment_ids:
                for s in segment_ids:
                    segments.get(c, sandbox_id, s)
            return segments.create_job(c, sandbox_id=sandbox_id, kind="evaluate",
                                       request={"segments": segment_ids or "batch-enabled"}, now=now_ms())

        job_id = await self.store.write(prepare)
        task = asyncio.get_running_loop().run_in_executor(
            None, lambda: self._quietly(lambda: self.evaluate(sandbox_id=sandbox_id, segment_ids=segment_ids,
                                                              job_id=job_id)))
        if wait:
            await task
        return await self.job(sandbox_id=sandbox_id, job_id=job_id)

    @staticmethod
    def _quietly(fn: Any) -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001 - the job row records the failure
            pass

    async def job(self, *, sandbox_id: str, job_id: str, kind: str = "evaluate") -> dict[str, Any]:
        from wayline.platform import segments

        return await self.store.read(lambda c: segments.job_to_api(segments.get_job(c, sandbox_id, job_id, kind)))

    # preview
    async def preview(self, *, sandbox_id: str, body: Any, sample: int = 20) -> dict[str, Any]:
        import sqlalchemy as sa

        from wayline.kernel.expr import sql as exprsql
        from wayline.platform import segments

        cols = segments.check_body({"name": "preview", **(body if isinstance(body, dict) else {})}, partial=True)
        if "pql" not in cols:
            raise Problem(422, "validation", "Invalid preview", "give the expression to preview",
                          [FieldError("/expression/value", "required", "string")])

        def q(c: Any) -> dict[str, Any]:
            expr = segments._compile(c, self.registry, sandbox_id, cols["pql"], own_id=None)
            eff = segments._policy(c, sandbox_id, cols.get("merge_policy_id"))
            default = profiles.default_policy(c, sandbox_id)
            if eff.stamp != default.stamp:
                raise Problem(422, "validation", "Preview needs the default merge policy",
                              "previews run over the stored profiles of the sandbox's default merge policy",
                              [FieldError("/mergePolicyId", "not the default policy")])
            from datetime import UTC, datetime

            lay = segments.layout(c, sandbox_id, graph=default.policy.graph == "pdg",
                                  max_events=self.limits.max_events_per_profile)
            cond, params = exprsql.compile_condition(expr, dialect=c.dialect.name, layout=lay,
                                                     now=datetime.fromtimestamp(self.clock.now_ms() / 1000, UTC))
            base = f"FROM profile_view p WHERE p.sandbox_id = :_sandbox AND ({cond})"
            params = {**params, "_sandbox": sandbox_id}
            total = c.execute(sa.text(f"SELECT count(*) {base}"), params).scalar_one()
            rows = c.execute(sa.text(f"SELECT p.key, p.body {base} ORDER BY p.key LIMIT {int(sample)}"), params).all()
            import orjson
            return {"count": total, "sample": [{"profileId": str(r.key),
                                                "entity": r.body if isinstance(r.body, dict) else orjson.loads(r.body)}
                                               for r in rows]}

        return await self.store.read(q)

    # exports
    async def export(self, *, sandbox_id: str, segment_id: str, fmt: str, fields: list[str] | None,
                     marketing_action: str | None) -> dict[str, Any]:
        """Write the segment's members (realized + existing) to a JSON Lines or CSV file, as a job.

        Governance is enforced first: when the segment's labels violate an enabled policy for the
        marketing action, a problem lists the violated policies and nothing is exported."""
        from wayline.platform import segments

        def w(c: Any) -> str:
            d = segments.get(c, sandbox_id, segment_id)
            segments.export_check(c, self.registry, d, marketing_action)
            now = now_ms()
            jid = segments.create_job(c, sandbox_id=sandbox_id, kind="export", now=now, request={
                "segmentId": segment_id, "format": fmt, "fields": fields, "marketingAction": marketing_action})
            data, n = segments.export_rows(c, sandbox_id, segment_id, fmt=fmt, fields=fields)
            segments.mark_job(c, jid, status="succeeded", started_ms=now, finished_ms=now_ms(), output=data,
                              counts={"profiles": n, "bytes": len(data)})
            return jid

        jid = await self.store.write(w)
        return await self.job(sandbox_id=sandbox_id, job_id=jid, kind="export")

    async def export_file(self, *, sandbox_id: str, job_id: str) -> tuple[bytes, str]:
        from wayline.platform import segments

        r = await self.store.read(lambda c: segments.get_job(c, sandbox_id, job_id, "export"))
        return bytes(r.output or b""), r.request.get("format", "jsonl")
