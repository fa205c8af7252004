"""The platform's facade: what the other products and the platform's own API call.

Journeys use only this module and `wayline.platform.contracts`, never the platform's tables.
"""

from __future__ import annotations

from typing import Any

from wayline.config import Settings
from wayline.kernel.problems import Problem
from wayline.kernel.store import Coalescer, Store, now_ms
from wayline.platform import datasets as ds
from wayline.platform import failures, ingestion
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
        self._intake = Coalescer(store, lambda conn, items: ingestion.store_prepared(conn, "", items, now_ms()))

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
