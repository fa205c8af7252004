"""The governance facade: what the `/dulepolicy` API, the segments service and journeys call.

Keyword-only methods carrying plain values (labels, policies, evaluations), never rows. Problems
(404, 409, 412, 422 with JSON pointers) are raised as `wayline.kernel.problems.Problem`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from wayline.config import Settings
from wayline.kernel.problems import FieldError, Problem
from wayline.kernel.store import Store, now_ms
from wayline.platform.governance import checks, core, lineage, store
from wayline.platform.governance.evaluate import Discovered, Evaluation, evaluate
from wayline.platform.governance.model import Action, EntityRef, Label, Policy

# An entity type plugged in by another concept (segments): its labels by id, or None when unknown.
EntityResolver = Callable[..., "Awaitable[Iterable[str] | None] | Iterable[str] | None"]


@dataclass(frozen=True)
class EvalRequest:
    """One evaluation of a bulk call: an action and labels and/or entities."""

    action: str
    labels: tuple[str, ...] = ()
    entities: tuple[EntityRef, ...] = ()
    include_draft: bool = False
    labels_at: str = "/labels"  # JSON pointers of the labels and entities in the caller's request
    entities_at: str = "/entities"


class GovernanceService:
    """Data-usage labels, marketing actions, policies and their evaluation, per sandbox."""

    def __init__(self, store_: Store, settings: Settings) -> None:
        self.store = store_
        self.settings = settings
        self._resolvers: dict[str, EntityResolver] = {}

    def register_entity_type(self, entity_type: str, resolver: EntityResolver) -> None:
        """Let evaluations name entities of another concept (e.g. "segment"): `resolver(sandbox_id=…,
        entity_id=…)` (sync or async) answers the entity's labels, or None when it does not exist."""
        self._resolvers[entity_type] = resolver

    @property
    def entity_types(self) -> tuple[str, ...]:
        return ("dataSet", "field", *self._resolvers)

    # -- labels -------------------------------------------------------------------------------------

    def core_labels(self) -> list[Label]:
        return list(core.LABELS)

    async def custom_labels(self, *, sandbox_id: str, limit: int = 100, cursor: str | None = None) -> dict[str, Any]:
        """A page of the sandbox's custom labels, in the API's shape."""
        return await self.store.read(lambda c: store.list_custom_labels(c, sandbox_id, limit=limit, cursor=cursor))

    async def custom_label(self, *, sandbox_id: str, name: str) -> Label:
        return await self.store.read(store.get_custom_label, sandbox_id, name)

    async def create_label(self, *, sandbox_id: str, body: Any, actor: str) -> Label:
        return await self.store.write(lambda c: store.create_label(c, sandbox_id=sandbox_id, body=body, actor=actor,
                                                                   now=now_ms()))

    async def update_label(self, *, sandbox_id: str, name: str, body: Any, actor: str,
                           if_match: str | None = None) -> Label:
        return await self.store.write(lambda c: store.update_label(c, sandbox_id=sandbox_id, name=name, body=body,
                                                                   actor=actor, now=now_ms(), if_match=if_match))

    async def delete_label(self, *, sandbox_id: str, name: str, actor: str, if_match: str | None = None) -> None:
        """Delete a custom label nothing uses (409 naming the users otherwise)."""
        await self.store.write(lambda c: store.delete_label(c, sandbox_id=sandbox_id, name=name, actor=actor,
                                                            if_match=if_match))

    async def known_labels(self, *, sandbox_id: str) -> set[str]:
        """Every label the sandbox may use: core and custom."""
        return await self.store.read(store.known_labels, sandbox_id)

    async def check_labels(self, *, sandbox_id: str, labels: Any, where: str = "/labels") -> tuple[str, ...]:
        """Labels checked against the known ones (case-sensitive), de-duplicated, or a 422 with a pointer
        per unknown label (`/labels/1`). Inside a unit of work use `store.check_dataset_labels(conn, …)`."""
        return await self.store.read(store.check_dataset_labels, sandbox_id, labels, where)

    # -- marketing actions ----------------------------------------------------------------------------

    def core_actions(self) -> list[Action]:
        return list(core.ACTIONS)

    async def custom_actions(self, *, sandbox_id: str, limit: int = 100, cursor: str | None = None) -> dict[str, Any]:
        return await self.store.read(lambda c: store.list_custom_actions(c, sandbox_id, limit=limit, cursor=cursor))

    async def action(self, *, sandbox_id: str, name: str, core_action: bool) -> Action:
        return await self.store.read(lambda c: store.get_action(c, sandbox_id, name, core_action=core_action))

    async def create_action(self, *, sandbox_id: str, body: Any, actor: str) -> Action:
        return await self.store.write(lambda c: store.create_action(c, sandbox_id=sandbox_id, body=body, actor=actor,
                                                                    now=now_ms()))

    async def update_action(self, *, sandbox_id: str, name: str, body: Any, actor: str,
                            if_match: str | None = None) -> Action:
        return await self.store.write(lambda c: store.update_action(c, sandbox_id=sandbox_id, name=name, body=body,
                                                                    actor=actor, now=now_ms(), if_match=if_match))

    async def delete_action(self, *, sandbox_id: str, name: str, actor: str, if_match: str | None = None) -> None:
        """Delete a custom marketing action no policy names (409 otherwise)."""
        await self.store.write(lambda c: store.delete_action(c, sandbox_id=sandbox_id, name=name, actor=actor,
                                                             if_match=if_match))

    # -- policies -------------------------------------------------------------------------------------

    async def core_policies(self, *, sandbox_id: str) -> list[Policy]:
        """The core policies with this sandbox's statuses."""
        return await self.store.read(store.core_policies, sandbox_id)

    async def core_policy(self, *, sandbox_id: str, policy_id: str) -> Policy:
        return await self.store.read(store.get_core_policy, sandbox_id, policy_id)

    async def set_core_policy_status(self, *, sandbox_id: str, policy_id: str, body: Any, actor: str,
                                     if_match: str | None = None) -> Policy:
        """Enable or disable a core policy in one sandbox (`{"status": …}` or one JSON Patch op)."""
        return await self.store.write(lambda c: store.set_core_status(c, sandbox_id=sandbox_id, policy_id=policy_id,
                                                                      body=body, actor=actor, now=now_ms(),
                                                                      if_match=if_match))

    async def custom_policies(self, *, sandbox_id: str, limit: int = 100, cursor: str | None = None,
                              status: str | None = None) -> dict[str, Any]:
        return await self.store.read(lambda c: store.list_custom_policies(c, sandbox_id, limit=limit, cursor=cursor,
                                                                          status=status))

    async def custom_policy(self, *, sandbox_id: str, policy_id: str) -> Policy:
        return await self.store.read(store.get_custom_policy, sandbox_id, policy_id)

    async def create_policy(self, *, sandbox_id: str, body: Any, actor: str) -> Policy:
        """Create a custom policy; it starts DISABLED (DRAFT when the body asks for DRAFT)."""
        return await self.store.write(lambda c: store.create_policy(c, sandbox_id=sandbox_id, body=body, actor=actor,
                                                                    now=now_ms()))

    async def update_policy(self, *, sandbox_id: str, policy_id: str, body: Any, actor: str, partial: bool,
                            if_match: str | None = None) -> Policy:
        """Replace (partial=False) or patch (JSON Patch or merge patch) a custom policy."""
        return await self.store.write(lambda c: store.update_policy(
            c, sandbox_id=sandbox_id, policy_id=policy_id, body=body, actor=actor, now=now_ms(), partial=partial,
            if_match=if_match))

    async def delete_policy(self, *, sandbox_id: str, policy_id: str, actor: str, if_match: str | None = None) -> None:
        await self.store.write(lambda c: store.delete_policy(c, sandbox_id=sandbox_id, policy_id=policy_id,
                                                             actor=actor, if_match=if_match))

    # -- field labels ---------------------------------------------------------------------------------

    async def field_labels(self, *, sandbox_id: str, resource: str) -> dict[str, Any]:
        """The field labels of a schema or field group (`$id` or altId); a schema's answer also lists its
        field groups' labels and the effective map."""
        return await self.store.read(lineage.field_labels_view, sandbox_id, resource)

    async def all_field_labels(self, *, sandbox_id: str) -> list[dict[str, Any]]:
        return await self.store.read(lineage.list_field_labels, sandbox_id)

    async def put_field_labels(self, *, sandbox_id: str, resource: str, body: Any, actor: str,
                               if_match: str | None = None) -> dict[str, Any]:
        """Replace a schema's or field group's field labels: `{"labels": {"/person/name": ["I1"]}}`."""
        return await self.store.write(lambda c: lineage.put_field_labels(
            c, sandbox_id=sandbox_id, ident=resource, body=body, actor=actor, now=now_ms(), if_match=if_match))

    # -- lineage and evaluation -----------------------------------------------------------------------

    async def labels_for_fields(self, *, sandbox_id: str, schema_uri: str | None = None,
                                dataset_id: str | None = None, schema_class: str | None = None,
                                paths: list[Any]) -> dict[Any, set[str]]:
        """The labels of each field path, keyed by the path as given.

        Give exactly one of: `schema_uri` (a schema's `$id` or altId: its field labels and its field
        groups'), `dataset_id` (the same for the dataset's schema, plus the dataset's own labels), or
        `schema_class` (`_xdm.context.profile` or a class `$id`: the union a segment reads, i.e. every
        profile-enabled dataset of that class, each adding its labels to the paths its schema has).
        A path's labels include those on its ancestors and descendants. Paths are JSON pointers
        (`/person/name`), dotted (`person.name`) or tuples (`("person", "name")`, as
        `kernel.expr.ir.fields_used` gives them). An unknown field is a 422 (not in union mode, where
        it just has no labels); an unknown schema or dataset a 404.
        """
        return await self.store.read(lambda c: lineage.Lookup(c, sandbox_id).labels_for_fields(
            schema_uri=schema_uri, dataset_id=dataset_id, schema_class=schema_class, paths=list(paths)))

    async def evaluate(self, *, sandbox_id: str, action: str, labels: Iterable[str] = (),
                       datasets: Iterable[str] = (), fields: Iterable[Mapping[str, Any]] = (),
                       extra: Mapping[str, Iterable[str]] | None = None, include_draft: bool = False) -> Evaluation:
        """Evaluate a marketing action against labels and the labels of entities.

        `action`: a name (`emailTargeting`) or ref (`/dulepolicy/marketingActions/custom/x`), 404 when
        unknown. `labels`: label names (422 when unknown). `datasets`: dataset ids (each with all its
        field labels). `fields`: `{"datasetId" | "schemaId": …, "path": "/person/name"}`. `extra`:
        labels of other entities by id, e.g. `{"segment:<id>": labels}` (the part before ':' is the
        entity type; without one it is "entity"). The answer's `allowed` is True when no policy is
        violated; `violated_policies` lists those that are.
        """
        entities: list[EntityRef | Discovered] = [EntityRef("dataSet", d) for d in datasets]
        for i, f in enumerate(fields):
            ident = f.get("datasetId") or f.get("schemaId")
            if not ident or not f.get("path"):
                raise checks.problem("Invalid field", [FieldError(f"/fields/{i}", "{datasetId | schemaId, path}")])
            entities.append(EntityRef("field", str(ident), (f["path"],)))
        for key, found in (extra or {}).items():
            kind, sep, ident = key.partition(":")
            entities.append(Discovered(kind, ident, frozenset(found)) if sep else
                            Discovered("entity", key, frozenset(found)))
        req = EvalRequest(action, tuple(labels), (), include_draft)
        return await self.store.read(lambda c: self._evaluate(c, sandbox_id, req, entities))

    async def evaluate_request(self, *, sandbox_id: str, request: EvalRequest) -> Evaluation:
        """One evaluation as the API states it (entities of any registered type)."""
        entities = await self._plug(sandbox_id, request)
        return await self.store.read(lambda c: self._evaluate(c, sandbox_id, request, entities))

    async def evaluate_many(self, *, sandbox_id: str, requests: list[EvalRequest]) -> list[Evaluation | Problem]:
        """Many evaluations in one read; each answers an evaluation or the problem that stopped it."""
        prepared: list[list[EntityRef | Discovered] | Problem] = []
        for r in requests:
            try:
                prepared.append(await self._plug(sandbox_id, r))
            except Problem as p:
                prepared.append(p)

        def q(c: Connection) -> list[Evaluation | Problem]:
            out: list[Evaluation | Problem] = []
            for r, ents in zip(requests, prepared, strict=True):
                if isinstance(ents, Problem):
                    out.append(ents)
                    continue
                try:
                    out.append(self._evaluate(c, sandbox_id, r, ents))
                except Problem as p:
                    out.append(p)
            return out

        return await self.store.read(q)

    async def _plug(self, sandbox_id: str, request: EvalRequest) -> list[EntityRef | Discovered]:
        """Entities of plugged-in types resolved (outside any transaction); the rest left for the read."""
        out: list[EntityRef | Discovered] = []
        for i, e in enumerate(request.entities):
            resolver = self._resolvers.get(e.entity_type)
            if resolver is None:
                out.append(e)
                continue
            found = resolver(sandbox_id=sandbox_id, entity_id=e.entity_id)
            if inspect.isawaitable(found):
                found = await found
            if found is None:
                raise Problem(404, "not-found", "Not found", f"no {e.entity_type} with this id in this sandbox",
                              [FieldError(f"{request.entities_at}/{i}/entityId", f"no such {e.entity_type}")])
            out.append(Discovered(e.entity_type, e.entity_id, frozenset(found)))
        return out

    @staticmethod
    def _evaluate(conn: Connection, sandbox_id: str, req: EvalRequest,
                  entities: list[EntityRef | Discovered]) -> Evaluation:
        ref = store.resolve_action_ref(conn, sandbox_id, req.action)
        labels = checks.check_labels(list(req.labels), store.known_labels(conn, sandbox_id), req.labels_at)
        lookup = lineage.Lookup(conn, sandbox_id)
        found = [e if isinstance(e, Discovered) else lookup.discover(e, f"{req.entities_at}/{i}")
                 for i, e in enumerate(entities)]
        return evaluate(ref, labels, store.all_policies(conn, sandbox_id), include_draft=req.include_draft,
                        discovered=found)
