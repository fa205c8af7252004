"""Segments (audiences): definitions, membership, streaming and batch evaluation, exports.

A definition's PQL is compiled once into the shared IR (`wayline.kernel.expr.ir`), checked against
the sandbox's profile and event fields. Two evaluators share that IR:

- streaming (continuous definitions): a backbone consumer of `platform.profile.changed` re-evaluates,
  with the interpreter, every continuous definition the change can affect, on the merged profile, and
  writes membership changes and `platform.segment.qualification` events in the consumer's own
  transaction (exactly once, per profile in order);
- batch: one SQL query per definition over the stored profiles (`profile_view`), compiled by
  `wayline.kernel.expr.sql`, then the differences with the current membership are written.

Membership per (segment, profile): realized (entered at the last evaluation that changed it),
existing (was in, still in), exited (left). Queries default to realized + existing.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wayline.config import Limits
from wayline.kernel import outbox
from wayline.kernel.expr import interp, ir
from wayline.kernel.expr import sql as exprsql
from wayline.kernel.problems import FieldError, Problem, not_found
from wayline.kernel.store import fetch_rows, json_column, raw_sql, write_rows
from wayline.kernel.tenancy import audit
from wayline.platform import contracts, membership, pql, profiles
from wayline.platform import tables as t

IN = membership.IN
_EVAL_KEYS = ("batch", "continuous", "synchronous")
_KEYS = {"name", "description", "expression", "evaluationInfo", "mergePolicyId", "schema", "id", "version",
         "created", "updated", "labels", "ttlInDays", "imsOrgId", "sandbox"}


# -- field types from the sandbox's schemas ----------------------------------------------------------

def _type_of(node: dict[str, Any]) -> tuple[str, str] | None:
    kind = node.get("type")
    if kind == "string":
        fmt = node.get("format")
        return ("datetime" if fmt == "date-time" else "date" if fmt == "date" else "string", "any")
    if kind == "integer":
        return ("integer", "any")
    if kind == "number":
        return ("decimal", "any")
    if kind == "boolean":
        return ("boolean", "any")
    if kind == "array":
        items = node.get("items") if isinstance(node.get("items"), dict) else {}
        inner = _type_of(items) if items.get("type") != "object" else ("object", "any")
        return ("list", inner[0] if inner else "any")
    return None


def _walk_fields(node: dict[str, Any], at: tuple[str, ...], out: dict[tuple[str, ...], tuple[str, str]]) -> None:
    props = node.get("properties")
    if isinstance(props, dict):
        if at:
            out.setdefault(at, ("object", "any"))  # an object can be tested for presence
        for name, child in props.items():
            if isinstance(child, dict):
                _walk_fields(child, (*at, name), out)
        return
    if node.get("type") == "object" and at:  # a map (identityMap, segmentMembership): presence only
        out.setdefault(at, ("object", "any"))
        return
    typ = _type_of(node)
    if typ is not None and at:
        out.setdefault(at, typ)


@dataclass
class FieldTypes:
    profile: dict[tuple[str, ...], tuple[str, str]]
    event: dict[tuple[str, ...], tuple[str, str]]

    def __call__(self, root: str, path: tuple[str, ...]) -> tuple[str, str] | None:
        table = self.event if root == "event" else self.profile
        return table.get(tuple(path))


def field_types(conn: Connection, registry: Any, sandbox_id: str) -> FieldTypes:
    """Types of every field of the sandbox's profile-enabled schemas, profile and event side."""
    uris = conn.execute(sa.select(t.datasets.c.schema_uri).where(
        t.datasets.c.sandbox_id == sandbox_id, t.datasets.c.profile_enabled.is_(True)).distinct()).scalars().all()
    out = FieldTypes({}, {})
    for uri in sorted(uris):
        compiled = registry.compiled(sandbox_id, uri)
        _walk_fields(compiled.json_schema, (), out.event if compiled.behavior == "time-series" else out.profile)
    return out


# -- definitions -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Definition:
    id: str
    sandbox_id: str
    name: str
    description: str
    pql: str
    evaluation: dict[str, Any]
    continuous: bool
    merge_policy_id: str | None
    depends_on: tuple[str, ...]
    labels: tuple[str, ...]
    version: int
    created_ms: int
    updated_ms: int

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description,
                "expression": {"type": "PQL", "format": "pql/text", "value": self.pql},
                "evaluationInfo": self.evaluation, "mergePolicyId": self.merge_policy_id,
                "schema": {"name": profiles.PROFILE_CLASS}, "dependencies": list(self.depends_on),
                "labels": list(self.labels), "version": self.version, "created": self.created_ms,
                "updated": self.updated_ms}


def _definition(r: Any) -> Definition:
    return Definition(r.id, r.sandbox_id, r.name, r.description, r.expression["value"], r.evaluation,
                      bool(r.continuous), r.merge_policy_id, tuple(r.depends_on or ()), tuple(r.labels or ()),
                      r.version, r.created_ms, r.updated_ms)


def get(conn: Connection, sandbox_id: str, segment_id: str) -> Definition:
    r = conn.execute(sa.select(t.segment_definitions).where(t.segment_definitions.c.sandbox_id == sandbox_id,
                                                            t.segment_definitions.c.id == segment_id)).first()
    if r is None:
        raise not_found("segment definition", segment_id)
    return _definition(r)


def list_all(conn: Connection, sandbox_id: str) -> list[Definition]:
    return [_definition(r) for r in conn.execute(
        sa.select(t.segment_definitions).where(t.segment_definitions.c.sandbox_id == sandbox_id)
        .order_by(t.segment_definitions.c.created_ms, t.segment_definitions.c.id))]


def _invalid(errors: list[FieldError]) -> Problem:
    return Problem(422, "validation", "Invalid segment definition", f"{len(errors)} field(s) are not valid", errors)


def check_body(body: Any, *, partial: bool) -> dict[str, Any]:
    """The definition's fields from a request body (without compiling its PQL)."""
    if not isinstance(body, dict):
        raise _invalid([FieldError("/", "expected an object", "object")])
    errors: list[FieldError] = []
    out: dict[str, Any] = {}
    for k in body:
        if k not in _KEYS:
            errors.append(FieldError(f"/{k}", "unknown field"))
    if "name" in body or not partial:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 500:
            errors.append(FieldError("/name", "a name of 1 to 500 characters is required", "string"))
        else:
            out["name"] = name.strip()
    if "description" in body:
        if not isinstance(body["description"], str):
            errors.append(FieldError("/description", "a string", "string"))
        else:
            out["description"] = body["description"]
    if "expression" in body or not partial:
        e = body.get("expression")
        if not isinstance(e, dict):
            errors.append(FieldError("/expression", "an object {type: PQL, format: pql/text, value}", "object"))
        else:
            if e.get("type", "PQL") != "PQL":
                errors.append(FieldError("/expression/type", "only PQL", "PQL"))
            if e.get("format", "pql/text") != "pql/text":
                errors.append(FieldError("/expression/format", "only pql/text", "pql/text"))
            if not isinstance(e.get("value"), str) or not e["value"].strip():
                errors.append(FieldError("/expression/value", "the PQL text", "string"))
            else:
                out["pql"] = e["value"]
    if "evaluationInfo" in body or not partial:
        ev = body.get("evaluationInfo", {"batch": {"enabled": True}})
        if not isinstance(ev, dict) or any(k not in _EVAL_KEYS for k in ev) or not all(
                isinstance(v, dict) and isinstance(v.get("enabled", False), bool) for v in ev.values()):
            errors.append(FieldError("/evaluationInfo", "{batch|continuous|synchronous: {enabled: bool}}", "object"))
        else:
            out["evaluation"] = {k: {"enabled": bool(ev.get(k, {}).get("enabled", False))} for k in _EVAL_KEYS}
    if "mergePolicyId" in body:
        mp = body["mergePolicyId"]
        if mp is not None and not isinstance(mp, str):
            errors.append(FieldError("/mergePolicyId", "a merge policy id or null", "string"))
        else:
            out["merge_policy_id"] = mp or None
    if "schema" in body:
        s = body["schema"]
        if not isinstance(s, dict) or s.get("name") != profiles.PROFILE_CLASS:
            errors.append(FieldError("/schema/name", f"segments are of {profiles.PROFILE_CLASS}",
                                     profiles.PROFILE_CLASS))
    if errors:
        raise _invalid(errors)
    return out


def _compile(conn: Connection, registry: Any, sandbox_id: str, text: str, *, own_id: str | None) -> ir.Expr:
    types = field_types(conn, registry, sandbox_id)
    known = set(conn.execute(sa.select(t.segment_definitions.c.id).where(
        t.segment_definitions.c.sandbox_id == sandbox_id)).scalars())
    try:
        return pql.compile(text, types, segment_exists=lambda sid: sid in known and sid != own_id)
    except pql.PQLError as exc:
        raise Problem(422, "validation", "Invalid PQL", str(exc.message if hasattr(exc, "message") else exc),
                      exc.to_field_errors("/expression/value")) from None


def _check_cycles(conn: Connection, sandbox_id: str, own_id: str, depends: set[str]) -> None:
    graph = {d.id: set(d.depends_on) for d in list_all(conn, sandbox_id)}
    graph[own_id] = depends
    seen: set[str] = set()
    stack = list(depends)
    while stack:
        sid = stack.pop()
        if sid == own_id:
            raise Problem(422, "validation", "Segment cycle",
                          f"segment {own_id} would depend on itself through inSegment()",
                          [FieldError("/expression/value", "inSegment() must not lead back to this segment")])
        if sid not in seen:
            seen.add(sid)
            stack.extend(graph.get(sid, ()))


EVENT_CLASS = "_xdm.context.experienceevent"


def segment_labels(conn: Connection, sandbox_id: str, expr: ir.Expr, merge_policy_id: str | None) -> list[str]:
    """The data-usage labels a segment carries: those of every field it reads (and their datasets'),
    and C10 (no stitched-identity activation) when its merge policy uses the private graph."""
    from wayline.platform.governance import lineage

    out: set[str] = set()
    if _policy(conn, sandbox_id, merge_policy_id).policy.graph == "pdg":
        out.add("C10")
    used = ir.fields_used(expr)
    look = lineage.Lookup(conn, sandbox_id)
    for root, cls in (("profile", profiles.PROFILE_CLASS), ("event", EVENT_CLASS)):
        paths = [path for r, path in used if r == root and path]
        if paths:
            for found in look.labels_for_fields(schema_uri=None, dataset_id=None, schema_class=cls,
                                                paths=paths).values():
                out |= set(found)
    return sorted(out)


def labels_now(conn: Connection, registry: Any, d: Definition) -> list[str]:
    """A saved segment's labels as of now (field labels may have changed since it was saved)."""
    return segment_labels(conn, d.sandbox_id, _compile(conn, registry, d.sandbox_id, d.pql, own_id=d.id),
                          d.merge_policy_id)


def export_check(conn: Connection, registry: Any, d: Definition, action: str | None) -> None:
    """Governance at export/activation: refuse, listing the violated policies, when any is violated."""
    from wayline.platform.governance.evaluate import Discovered
    from wayline.platform.governance.service import EvalRequest, GovernanceService

    req = EvalRequest(action or "exportToThirdParty", (), (), False)
    result = GovernanceService._evaluate(conn, d.sandbox_id, req,
                                         [Discovered("segment", d.id, frozenset(labels_now(conn, registry, d)))])
    if not result.allowed:
        api = result.to_api()
        raise Problem(422, "policy-violation", "Data-usage policy violated",
                      f"exporting segment {d.id} for {action!r} violates {len(result.violated_policies)} "
                      "enabled policy(ies); nothing was exported",
                      [FieldError("/marketingAction", "violates enabled data-usage policies")],
                      extra={"violatedPolicies": api.get("violatedPolicies", []),
                             "duleLabels": api.get("duleLabels", [])})


def _policy(conn: Connection, sandbox_id: str, merge_policy_id: str | None) -> profiles.Effective:
    if merge_policy_id:
        from wayline.platform import merge_policies

        return profiles.policy_of(merge_policies.get(conn, sandbox_id, merge_policy_id))
    return profiles.default_policy(conn, sandbox_id)


def create(conn: Connection, *, registry: Any, sandbox_id: str, body: Any, actor: str, limits: Limits,
           now: int) -> Definition:
    cols = check_body(body, partial=False)
    sid = "seg_" + secrets.token_hex(8)
    expr = _compile(conn, registry, sandbox_id, cols["pql"], own_id=sid)
    if cols.get("merge_policy_id"):
        _policy(conn, sandbox_id, cols["merge_policy_id"])  # 404 for an unknown policy
    _check_limits(conn, sandbox_id, continuous=cols["evaluation"]["continuous"]["enabled"], limits=limits,
                  exclude=None)
    conn.execute(t.segment_definitions.insert().values(
        id=sid, sandbox_id=sandbox_id, name=cols["name"], description=cols.get("description", ""),
        expression={"type": "PQL", "format": "pql/text", "value": cols["pql"]}, evaluation=cols["evaluation"],
        continuous=cols["evaluation"]["continuous"]["enabled"], merge_policy_id=cols.get("merge_policy_id"),
        depends_on=sorted(ir.segments_used(expr)),
        labels=segment_labels(conn, sandbox_id, expr, cols.get("merge_policy_id")),
        version=1, created_ms=now, updated_ms=now))
    d = get(conn, sandbox_id, sid)
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="create", resource_type="segment", resource_id=sid,
          after=d.to_api())
    return d


def update(conn: Connection, *, registry: Any, sandbox_id: str, segment_id: str, body: Any, actor: str,
           limits: Limits, now: int, partial: bool) -> Definition:
    before = get(conn, sandbox_id, segment_id)
    cols = check_body(body, partial=partial)
    text = cols.get("pql", before.pql)
    expr = _compile(conn, registry, sandbox_id, text, own_id=segment_id)
    depends = set(ir.segments_used(expr))
    _check_cycles(conn, sandbox_id, segment_id, depends)
    evaluation = cols.get("evaluation", before.evaluation)
    policy_id = cols.get("merge_policy_id", before.merge_policy_id)
    if policy_id:
        _policy(conn, sandbox_id, policy_id)
    if evaluation["continuous"]["enabled"] and not before.continuous:
        _check_limits(conn, sandbox_id, continuous=True, limits=limits, exclude=segment_id)
    conn.execute(t.segment_definitions.update().where(t.segment_definitions.c.id == segment_id).values(
        name=cols.get("name", before.name), description=cols.get("description", before.description),
        expression={"type": "PQL", "format": "pql/text", "value": text}, evaluation=evaluation,
        continuous=evaluation["continuous"]["enabled"], merge_policy_id=policy_id, depends_on=sorted(depends),
        labels=segment_labels(conn, sandbox_id, expr, policy_id), version=before.version + 1, updated_ms=now))
    after = get(conn, sandbox_id, segment_id)
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="update", resource_type="segment",
          resource_id=segment_id, before=before.to_api(), after=after.to_api())
    return after


def delete(conn: Connection, *, sandbox_id: str, segment_id: str, actor: str) -> None:
    before = get(conn, sandbox_id, segment_id)
    users = [d.id for d in list_all(conn, sandbox_id) if segment_id in d.depends_on]
    if users:
        raise Problem(409, "conflict", "Segment in use",
                      f"segment {segment_id} is used by inSegment() in {', '.join(users)}; change those first")
    conn.execute(t.segment_members.delete().where(t.segment_members.c.segment_id == segment_id))
    conn.execute(t.segment_definitions.delete().where(t.segment_definitions.c.id == segment_id))
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="delete", resource_type="segment",
          resource_id=segment_id, before=before.to_api())


def _check_limits(conn: Connection, sandbox_id: str, *, continuous: bool, limits: Limits,
                  exclude: str | None) -> None:
    c = t.segment_definitions.c
    q = sa.select(sa.func.count()).select_from(t.segment_definitions).where(c.sandbox_id == sandbox_id)
    if exclude:
        q = q.where(c.id != exclude)
    if exclude is None and conn.execute(q).scalar_one() >= limits.max_segments:
        raise Problem(422, "limit", "Too many segments",
                      f"a sandbox holds at most {limits.max_segments} segment definitions (limits.max_segments)")
    if continuous and conn.execute(q.where(c.continuous.is_(True))).scalar_one() >= limits.max_continuous_segments:
        raise Problem(422, "limit", "Too many streaming segments",
                      f"a sandbox holds at most {limits.max_continuous_segments} continuous definitions "
                      "(limits.max_continuous_segments); evaluate this one in batch",
                      [FieldError("/evaluationInfo/continuous/enabled", "over the streaming limit", "false")])


# -- compiled definitions, cached ------------------------------------------------------------------

@dataclass(frozen=True)
class Compiled:
    d: Definition
    expr: ir.Expr
    fn: Callable[[Any], Any]
    top_fields: frozenset[str]   # top-level profile attributes read
    events: bool
    segments: frozenset[str]


class Catalog:
    """Compiled definitions per sandbox, re-read when any definition of the sandbox changed."""

    def __init__(self, registry: Any, ttl: float = 1.0) -> None:
        self.registry = registry
        self.ttl = ttl
        self._lock = threading.Lock()
        self._by_sandbox: dict[str, tuple[float, Any, list[Compiled]]] = {}

    def get(self, conn: Connection, sandbox_id: str) -> list[Compiled]:
        now = time.monotonic()
        hit = self._by_sandbox.get(sandbox_id)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[2]
        c = t.segment_definitions.c
        stamp = tuple(conn.execute(sa.select(sa.func.count(), sa.func.max(c.updated_ms), sa.func.sum(c.version))
                                   .where(c.sandbox_id == sandbox_id)).one())
        if hit is not None and hit[1] == stamp:
            self._by_sandbox[sandbox_id] = (now, stamp, hit[2])
            return hit[2]
        defs = list_all(conn, sandbox_id)
        types = field_types(conn, self.registry, sandbox_id) if defs else None
        out = []
        for d in _topological(defs):
            try:
                expr = pql.compile(d.pql, types)
            except pql.PQLError:
                continue  # a field it used was removed from every schema: skip it, never guess
            out.append(Compiled(d, expr, interp.compile_fn(expr),
                                frozenset(p[0] for root, p in ir.fields_used(expr) if root == "profile" and p),
                                ir.uses_events(expr), frozenset(ir.segments_used(expr))))
        with self._lock:
            self._by_sandbox[sandbox_id] = (now, stamp, out)
        return out

    def forget(self, sandbox_id: str) -> None:
        self._by_sandbox.pop(sandbox_id, None)


def _topological(defs: Sequence[Definition]) -> list[Definition]:
    """Definitions with every inSegment() dependency before its users."""
    by_id = {d.id: d for d in defs}
    out: list[Definition] = []
    state: dict[str, int] = {}

    def visit(d: Definition) -> None:
        if state.get(d.id) == 2:
            return
        state[d.id] = 1
        for dep in d.depends_on:
            if dep in by_id and state.get(dep) != 1:
                visit(by_id[dep])
        state[d.id] = 2
        out.append(d)
    for d in defs:
        visit(d)
    return out


# -- membership --------------------------------------------------------------------------------------

_iso = membership.iso
memberships = membership.memberships
segment_membership_map = membership.segment_membership_map


def _transition(prev: tuple[str, int] | None, inside: bool, now: int) -> tuple[str, int] | None:
    """The new (status, qualified_ms), or None when nothing changes."""
    if inside:
        if prev is None or prev[0] == "exited":
            return ("realized", now)
        return ("existing", prev[1]) if prev[0] == "realized" else None
    if prev is not None and prev[0] in IN:
        return ("exited", now)
    return None


def _qualification(sandbox_id: str, segment_id: str, key: int, ident: tuple[str, str], status: str,
                   at: str) -> tuple[str, str, str, Any]:
    """The outbox message of a membership that moved (`at`: the qualification time, ISO 8601)."""
    return (contracts.SEGMENT_STREAM, outbox.ordering_key(sandbox_id, ident[0], ident[1]),
            contracts.SEGMENT_QUALIFICATION,
            contracts.segment_qualification(sandbox_id=sandbox_id, segment_id=segment_id, profile_id=str(key),
                                            ns=ident[0], id=ident[1], status=status, at=at))


def _write(conn: Connection, sandbox_id: str, changes: list[tuple[str, int, str, int]]) -> None:
    """(segment id, key, status, qualified_ms) rows."""
    write_rows(conn, t.segment_members, _MEMBER_COLUMNS, [(s, k, sandbox_id, st, ms) for s, k, st, ms in changes],
               conflict=_MEMBER_COLUMNS[:2], update=_MEMBER_COLUMNS[3:])


_MEMBER_COLUMNS = ("segment_id", "profile_key", "sandbox_id", "status", "qualified_ms")


# -- streaming ---------------------------------------------------------------------------------------

_STRUCTURAL = {"link", "unlink", "overflow", "delete"}


class Streaming:
    """The backbone consumer of profile changes that keeps continuous segments up to date."""

    CONSUMER = "segments"

    def __init__(self, catalog: Catalog, limits: Limits, now_ms: Callable[[], int]) -> None:
        self.catalog = catalog
        self.limits = limits
        self.now_ms = now_ms

    def handle(self, conn: Connection, message: Any) -> None:
        p = message.payload
        if message.type != contracts.PROFILE_CHANGED:
            return
        self.apply(conn, p["sandboxId"], int(p["profileId"]), set(p["changes"]), set(p.get("fields") or ()),
                   [int(x) for x in p.get("previousProfileIds") or ()],
                   (p["identity"]["namespace"], p["identity"]["id"]))

    def apply(self, conn: Connection, sandbox_id: str, key: int, changes: set[str], fields: set[str],
              previous: list[int], ident: tuple[str, str]) -> int:
        """Re-evaluate what the change can affect; returns the number of membership changes."""
        now = self.now_ms()
        defs = [c for c in self.catalog.get(conn, sandbox_id) if c.d.continuous]
        mem = memberships(conn, sandbox_id, [key, *previous])
        current = dict(mem.get(key, {}))
        # Profiles merged into this one: their memberships become this profile's (the person stays in).
        for old in previous:
            for sid, (st, ms) in mem.get(old, {}).items():
                if st in IN and (sid not in current or current[sid][0] == "exited"):
                    current[sid] = (st, ms)
        if previous:
            conn.execute(t.segment_members.delete().where(t.segment_members.c.sandbox_id == sandbox_id,
                                                          t.segment_members.c.profile_key.in_(previous)))
        if not defs:
            return 0
        structural = bool(changes & _STRUCTURAL) or bool(previous)
        affected = [c for c in defs if structural or c.segments or (c.events and "event" in changes)
                    or (c.top_fields & fields) or ("fragment" in changes and not fields)]
        if not affected:
            return 0
        profile, events = None, []
        if "delete" not in changes:
            profile, events = _load(conn, sandbox_id, key, need_events=any(c.events for c in affected),
                                    max_events=self.limits.max_events_per_profile)
        inside_now = {sid for sid, (st, _) in current.items() if st in IN}
        out: list[tuple[str, int, str, int]] = []
        messages = []
        when = datetime.fromtimestamp(now / 1000, UTC)
        at = _iso(now)
        ctx: interp.Context | None = None  # one for the change, new only when inSegment() must see this round's moves
        for c in affected:  # in dependency order, so inSegment() sees this round's results
            if profile is None:
                inside = False
            else:
                if ctx is None or (c.segments and ctx.segments != inside_now):
                    ctx = interp.Context(profile=profile, events=events, now=when, segments=frozenset(inside_now))
                inside = bool(c.fn(ctx))
            prev = current.get(c.d.id)
            nxt = _transition(prev, inside, now)
            if inside:
                inside_now.add(c.d.id)
            else:
                inside_now.discard(c.d.id)
            if nxt is None:
                continue
            out.append((c.d.id, key, nxt[0], nxt[1]))
            if nxt[0] in ("realized", "exited"):
                messages.append(_qualification(sandbox_id, c.d.id, key, ident, nxt[0], at))
        # carried-over memberships of merged profiles that no re-evaluation touched
        for sid, (st, ms) in current.items():
            if sid not in {o[0] for o in out} and sid not in mem.get(key, {}):
                out.append((sid, key, st, ms))
        _write(conn, sandbox_id, out)
        outbox.add_many(conn, messages, now_ms=now)
        return len(messages)


def _load(conn: Connection, sandbox_id: str, key: int, *, need_events: bool,
          max_events: int) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    rows = fetch_rows(conn, raw_sql(conn, "SELECT body FROM profile_view WHERE sandbox_id = ? AND key = ?"),
                      (sandbox_id, key))
    if not rows:
        return None, []
    events = profiles.events_of_key(conn, key, graph=_graph_keyed(conn, sandbox_id),
                                    max_events=max_events) if need_events else []
    return json_column(rows[0][0]), events


_KEYED: dict[str, tuple[float, bool]] = {}


def _graph_keyed(conn: Connection, sandbox_id: str) -> bool:
    """Whether the sandbox's stored profiles are keyed by graph (default policy pdg); re-read each second."""
    hit = _KEYED.get(sandbox_id)
    now = time.monotonic()
    if hit is not None and now - hit[0] < 1.0:
        return hit[1]
    keyed = profiles.default_policy(conn, sandbox_id).policy.graph == "pdg"
    _KEYED[sandbox_id] = (now, keyed)
    return keyed


# -- batch -------------------------------------------------------------------------------------------

def layout(conn: Connection, sandbox_id: str, *, graph: bool, max_events: int) -> exprsql.Layout:
    """Where compiled SQL finds the stored profiles, their events and memberships."""
    owner = "i.graph_id" if graph else "i.id"
    events = ("SELECT r.body AS body FROM identities i "
              "JOIN profile_records pr ON pr.identity_id = i.id AND pr.is_event = {true} "
              "JOIN records r ON r.dataset_id = pr.dataset_id AND r.record_id = pr.record_id "
              f"WHERE {owner} = p.key")
    true = "1" if conn.dialect.name == "sqlite" else "true"
    return exprsql.Layout(
        profile_body="p.body",
        events=events.replace("{true}", true),
        in_segment=lambda param: ("EXISTS (SELECT 1 FROM segment_members m WHERE m.profile_key = p.key "
                                  f"AND m.segment_id = :{param} AND m.status IN ('realized', 'existing'))"))


def evaluate_batch(conn: Connection, sandbox_id: str, compiled: Compiled, *, now: int, max_events: int,
                   emit: bool | None = None) -> dict[str, int]:
    """Evaluate one definition over every stored profile of the sandbox and write the changes.

    Set-based: the qualifying keys go into a temporary table and membership moves with three
    statements (exits, realized → existing, entries), so the database does the work per row.
    Qualification events go out for definitions that are also continuous (`emit` None), as journeys
    start from streaming audiences; a batch-only audience is read through its members (as the
    reference's "read audience")."""
    emit = compiled.d.continuous if emit is None else emit
    eff = _policy(conn, sandbox_id, compiled.d.merge_policy_id)
    default = profiles.default_policy(conn, sandbox_id)
    when = datetime.fromtimestamp(now / 1000, UTC)
    pg = conn.dialect.name == "postgresql"
    conn.exec_driver_sql("CREATE TEMP TABLE IF NOT EXISTS wl_qualifying (key BIGINT PRIMARY KEY)")
    conn.exec_driver_sql("DELETE FROM wl_qualifying")
    if eff.stamp == default.stamp:
        lay = layout(conn, sandbox_id, graph=default.policy.graph == "pdg", max_events=max_events)
        cond, params = exprsql.compile_condition(compiled.expr, dialect=conn.dialect.name, layout=lay, now=when)
        conn.execute(sa.text("INSERT INTO wl_qualifying (key) SELECT p.key FROM profile_view p "
                             f"WHERE p.sandbox_id = :_sandbox AND ({cond})"), {**params, "_sandbox": sandbox_id})
    else:
        keys = sorted(_evaluate_on_read(conn, sandbox_id, compiled, eff, when, max_events))
        if keys:
            conn.execute(sa.text("INSERT INTO wl_qualifying (key) VALUES (:k)"), [{"k": k} for k in keys])
    args = {"s": compiled.d.id, "sb": sandbox_id, "now": now}
    # The keys that moved are fetched only when events go out for them; otherwise the database counts
    # them (RETURNING and fetching half a million keys cost more than writing their rows).
    exited = _moved(conn, _EXIT_SQL, (now, compiled.d.id), keys=emit)
    conn.execute(sa.text("UPDATE segment_members SET status = 'existing' WHERE segment_id = :s AND status = 'realized' "
                         "AND profile_key IN (SELECT key FROM wl_qualifying)"), args)
    entered = _moved(conn, _ENTER_SQL, (compiled.d.id, sandbox_id, now, now), keys=emit)
    if emit and (entered or exited):
        changed = [(k, "realized") for k in entered] + [(k, "exited") for k in exited]
        idents = _identities_of(conn, [k for k, _ in changed])
        at = _iso(now)
        outbox.add_many(conn, [_qualification(sandbox_id, compiled.d.id, k, idents.get(k, ("", str(k))), st, at)
                               for k, st in changed], now_ms=now)
    counts = {"realized": 0, "existing": 0, "exited": 0}
    for st, n in conn.execute(sa.text("SELECT status, count(*) FROM segment_members WHERE segment_id = :s "
                                      "GROUP BY status"), args).all():
        counts[st] = n
    counts["entered"] = entered if isinstance(entered, int) else len(entered)
    counts["left"] = exited if isinstance(exited, int) else len(exited)
    counts["profiles"] = counts["realized"] + counts["existing"]
    if pg:
        conn.exec_driver_sql("DELETE FROM wl_qualifying")
    return counts


_EXIT_SQL = ("UPDATE segment_members SET status = 'exited', qualified_ms = ? WHERE segment_id = ? "
             "AND status IN ('realized', 'existing') AND profile_key NOT IN (SELECT key FROM wl_qualifying)")
_ENTER_SQL = ("INSERT INTO segment_members (segment_id, profile_key, sandbox_id, status, qualified_ms) "
              "SELECT ?, key, ?, 'realized', ? FROM wl_qualifying WHERE true "
              "ON CONFLICT (segment_id, profile_key) DO UPDATE SET status = 'realized', qualified_ms = ? "
              "WHERE segment_members.status = 'exited'")


def _moved(conn: Connection, sql: str, params: tuple[Any, ...], *, keys: bool) -> list[int] | int:
    """Run a membership move: the profile keys it moved (`keys`), or how many."""
    if keys:
        return [k for (k,) in fetch_rows(conn, raw_sql(conn, sql + " RETURNING profile_key"), params)]
    return conn.exec_driver_sql(raw_sql(conn, sql), params).rowcount


def _evaluate_on_read(conn: Connection, sandbox_id: str, compiled: Compiled, eff: profiles.Effective,
                      when: datetime, max_events: int) -> set[int]:
    """A definition whose merge policy is not the default one: merge every profile on read (slow path)."""
    from wayline.platform import merging

    graph = eff.policy.graph == "pdg"
    c = t.identities.c
    col = c.graph_id if graph else c.id
    out: set[int] = set()
    keys = conn.execute(sa.select(col).where(c.sandbox_id == sandbox_id).distinct()).scalars().all()
    for key in keys:
        ids = conn.execute(sa.select(c.id).where(col == key)).scalars().all()
        frags = [f for fs in profiles.fragments_of(conn, ids).values() for f in fs]
        body = merging.merge(frags, eff.policy).profile
        events = profiles.events_of_key(conn, key, graph=graph, max_events=max_events) if compiled.events else []
        segs = frozenset(s for s, (st, _) in memberships(conn, sandbox_id, [key]).get(key, {}).items() if st in IN)
        if compiled.fn(interp.Context(profile=body, events=events, now=when, segments=segs)):
            out.add(key)
    return out


def _identities_of(conn: Connection, keys: Iterable[int]) -> dict[int, tuple[str, str]]:
    """The identity a profile key is named after (a graph's id is its smallest member's id)."""
    out: dict[int, tuple[str, str]] = {}
    keys = list(keys)
    for start in range(0, len(keys), 400):
        for r in conn.execute(sa.select(t.identities.c.id, t.identities.c.ns, t.identities.c.value)
                              .where(t.identities.c.id.in_(keys[start:start + 400]))):
            out[r.id] = (r.ns, r.value)
    return out


# -- jobs ---------------------------------------------------------------------------------------------

def create_job(conn: Connection, *, sandbox_id: str, kind: str, request: dict[str, Any], now: int) -> str:
    jid = "job_" + secrets.token_hex(8)
    conn.execute(t.segment_jobs.insert().values(id=jid, sandbox_id=sandbox_id, kind=kind, status="queued",
                                                request=request, counts={}, errors=[], created_ms=now))
    return jid


def job_to_api(r: Any) -> dict[str, Any]:
    out = {"id": r.id, "kind": r.kind, "status": r.status.upper(), "request": r.request, "counts": r.counts,
           "errors": r.errors, "created": r.created_ms, "started": r.started_ms, "finished": r.finished_ms,
           "durationMs": (r.finished_ms - r.started_ms) if r.finished_ms and r.started_ms else None}
    if r.kind == "export" and r.status == "succeeded":
        out["file"] = f"/segment/exports/{r.id}/file"
    return out


def get_job(conn: Connection, sandbox_id: str, job_id: str, kind: str | None = None) -> Any:
    q = sa.select(t.segment_jobs).where(t.segment_jobs.c.sandbox_id == sandbox_id, t.segment_jobs.c.id == job_id)
    if kind:
        q = q.where(t.segment_jobs.c.kind == kind)
    r = conn.execute(q).first()
    if r is None:
        raise not_found("job", job_id)
    return r


def mark_job(conn: Connection, job_id: str, **values: Any) -> None:
    conn.execute(t.segment_jobs.update().where(t.segment_jobs.c.id == job_id).values(**values))


# -- the daily batch run ------------------------------------------------------------------------------

SCHEDULE_STREAM = "platform.segment-schedule"
DAILY = "segments.daily"


def next_daily_ms(at: str, now_ms: int) -> int:
    hh, mm = (int(x) for x in at.split(":"))
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    due = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
    if due <= now:
        due = due.fromtimestamp(due.timestamp() + 86_400, UTC)
    return int(due.timestamp() * 1000)


def ensure_daily(conn: Connection, *, sandbox_id: str, at: str, now: int) -> None:
    """Make sure the sandbox's daily batch evaluation is scheduled (a durable timer)."""
    if not at:
        return
    from wayline.kernel import timers
    from wayline.kernel.tables import timers as tt

    key = f"{sandbox_id}|daily"
    pending = conn.execute(sa.select(tt.c.id).where(tt.c.stream == SCHEDULE_STREAM, tt.c.key == key,
                                                    tt.c.fired_ms.is_(None))).first()
    if pending is None:
        timers.schedule(conn, stream=SCHEDULE_STREAM, key=key, type=DAILY, payload={"sandboxId": sandbox_id},
                        due_ms=next_daily_ms(at, now), now_ms=now)


def run_evaluation(conn: Connection, *, catalog: Catalog, sandbox_id: str, segment_ids: Sequence[str] | None,
                   now: int, max_events: int, on_progress: Callable[[str, int, int], None] | None = None,
                   ) -> dict[str, Any]:
    """Batch-evaluate the given definitions (None: every batch-enabled one) in dependency order."""
    compiled = catalog.get(conn, sandbox_id)
    known = {c.d.id for c in compiled}
    if segment_ids is not None:
        missing = [s for s in segment_ids if s not in known]
        if missing:
            raise not_found("segment definition", missing[0])
        chosen = [c for c in compiled if c.d.id in set(segment_ids)]
    else:
        chosen = [c for c in compiled if c.d.evaluation.get("batch", {}).get("enabled")]
    counts: dict[str, Any] = {}
    for n, c in enumerate(chosen):
        started = time.perf_counter()
        counts[c.d.id] = evaluate_batch(conn, sandbox_id, c, now=now, max_events=max_events)
        counts[c.d.id]["seconds"] = round(time.perf_counter() - started, 3)
        if on_progress:
            on_progress(c.d.id, n + 1, len(chosen))
    return counts


# -- exports ------------------------------------------------------------------------------------------

def export_rows(conn: Connection, sandbox_id: str, segment_id: str, *, fmt: str,
                fields: list[str] | None) -> tuple[bytes, int]:
    """The segment's members with their stored profiles, as JSON Lines or CSV bytes."""
    import csv
    import io

    import orjson

    from wayline.platform import merging

    m, v = t.segment_members.c, t.profile_view.c
    rows = conn.execute(sa.select(m.profile_key, m.status, m.qualified_ms, v.body)
                        .join(t.profile_view, sa.and_(v.sandbox_id == m.sandbox_id, v.key == m.profile_key))
                        .where(m.segment_id == segment_id, m.status.in_(IN)).order_by(m.profile_key)).all()
    idents = _identities_of(conn, [r.profile_key for r in rows])
    out = io.BytesIO()
    if fmt == "csv":
        cols = fields or ["personalEmail.address", "person.name.firstName", "person.name.lastName"]
        text = io.StringIO()
        wr = csv.writer(text)
        wr.writerow(["profileId", "namespace", "id", "status", "lastQualificationTime", *cols])
        for r in rows:
            ns, val = idents.get(r.profile_key, ("", ""))
            vals = []
            for f in cols:
                node: Any = r.body
                for part in f.split("."):
                    node = node.get(part) if isinstance(node, dict) else None
                vals.append("" if node is None else node if isinstance(node, str) else orjson.dumps(node).decode())
            wr.writerow([r.profile_key, ns, val, r.status, _iso(r.qualified_ms), *vals])
        return text.getvalue().encode(), len(rows)
    for r in rows:
        ns, val = idents.get(r.profile_key, ("", ""))
        entity = merging.project(r.body, fields) if fields else r.body
        out.write(orjson.dumps({"profileId": str(r.profile_key), "identity": {"namespace": {"code": ns}, "id": val},
                                "status": r.status, "lastQualificationTime": _iso(r.qualified_ms),
                                "entity": entity}) + b"\n")
    return out.getvalue(), len(rows)
