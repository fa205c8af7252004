"""The identity graph and profile store: the query module behind identities and merged profiles.

Ingestion calls `precheck` (identity rules, before a record is accepted as valid) and `apply` (in
the same unit of work as the records): identities are stitched into graphs, record-class records
are upserted into fragments, experience events are indexed by their primary identity, the merged
view of every touched profile is recomputed from its fragments, and one `platform.profile.changed`
event per touched profile goes into the outbox. The decisions are made by the pure cores
(`identity`, `graph`, `merging`); this module loads their inputs and writes their results.

All graph writes run under one lock (`outbox.lock`: PostgreSQL's outbox advisory lock; SQLite has
a single writer), which makes id allocation by `max(id) + 1` safe and keeps graphs consistent
across writer threads and processes. A graph's id is the smallest id of its members.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wayline.config import Limits
from wayline.kernel import outbox
from wayline.kernel.store import discard, fetch_rows, json_column, list_param, raw_sql, write_rows
from wayline.platform import contracts, graph, identity, merging
from wayline.platform import tables as t
from wayline.platform.identity import Ident, new_ident

if TYPE_CHECKING:
    from wayline.platform.ingestion import Prepared

NO_POLICY = merging.Policy(id="", graph="none", attribute_merge="timestampOrdered")
_CHUNK = 400  # ids per IN (...) list
_IDENTITY_COLUMNS = ("id", "sandbox_id", "ns", "value", "graph_id", "first_seen_ms", "last_seen_ms", "event_count")
_LINK_COLUMNS = ("a_id", "b_id", "graph_id", "first_seen_ms", "last_seen_ms")
_FRAGMENT_COLUMNS = ("dataset_id", "identity_id", "sandbox_id", "body", "updated_ms", "leaf_ms", "record_id")
_RECORD_INDEX_COLUMNS = ("identity_id", "is_event", "ts_ms", "dataset_id", "record_id")
_VIEW_COLUMNS = ("sandbox_id", "key", "policy", "body", "event_count", "updated_ms")


# -- namespaces and policies -----------------------------------------------------------------------

def namespaces(conn: Connection, sandbox_id: str) -> dict[str, identity.Namespace]:
    """Standard namespaces and the sandbox's custom ones, by code."""
    out = dict(identity.STANDARD)
    # Raw SQL: this runs for every unit of ingestion, and building the Core select cost more than it.
    for code, nid, name, id_type, description in conn.exec_driver_sql(raw_sql(
            conn, "SELECT code, id, name, id_type, description FROM identity_namespaces WHERE sandbox_id = ?"),
            (sandbox_id,)):
        out[code] = identity.Namespace(code, nid, name, id_type, True, description)
    return out


@dataclass(frozen=True)
class Effective:
    """A merge policy as the store uses it, with the stamp its view rows carry."""

    policy: merging.Policy
    stamp: str


def policy_of(row: Any) -> Effective:
    pol = merging.Policy(id=row.id, graph=row.identity_graph, attribute_merge=row.attribute_merge,
                         order=tuple(row.dataset_order or ()))
    return Effective(pol, f"{row.id}@{row.version}")


def default_policy(conn: Connection, sandbox_id: str) -> Effective:
    """The sandbox's default profile merge policy; with none, no stitching (identity graph 'none')."""
    row = conn.execute(sa.select(t.merge_policies).where(
        t.merge_policies.c.sandbox_id == sandbox_id, t.merge_policies.c.is_default.is_(True),
        t.merge_policies.c.schema_class == PROFILE_CLASS)).first()
    return policy_of(row) if row is not None else Effective(NO_POLICY, "none")


PROFILE_CLASS = "_xdm.context.profile"


# -- ingestion -------------------------------------------------------------------------------------

def precheck(conn: Connection, items: Sequence[Prepared], limits: Limits) -> None:
    """Identity and fragment rules for profile records; a record that breaks one becomes a failure.

    A record whose identities are already set passed these rules in a prepare worker
    (`prepare_pool`), against namespaces read before this unit: namespaces are only ever added, so it
    passes here too, and is not checked again."""
    ns_by_sandbox: dict[str, dict[str, identity.Namespace]] = {}
    for p in items:
        if p.identities is not None:
            continue
        sid = p.dataset.sandbox_id
        nss = ns_by_sandbox.get(sid)
        if nss is None:
            nss = ns_by_sandbox[sid] = namespaces(conn, sid)
        found, violations = record_rules(p, nss, limits)
        if violations:
            p.ok = False
            p.violations = violations
        else:
            p.identities = found


def record_rules(p: Prepared, nss: dict[str, identity.Namespace],
                 limits: Limits) -> tuple[list[identity.Found], list[dict[str, Any]]]:
    """The identities of a valid profile record and the identity and fragment rules it breaks (pure)."""
    found, violations = identity.extract(p.entity, p.identity_fields or (), nss,
                                         max_per_record=limits.max_identities_per_record,
                                         graph_limit=limits.identity_graph_limit)
    if not violations and not found:
        violations = [{"pointerToViolation": "/identityMap", "schemaLocation": "#", "keyword": "identity",
                       "message": "a record of a profile-enabled dataset needs at least one identity "
                                  "(an identityMap entry or an identity field)"}]
    # An array of n items is at least 2n + 1 bytes of JSON: a shorter record has none too long.
    if not p.time_series and (p.blob is None or len(p.blob) > 2 * limits.max_array_items):
        violations += merging.array_violations(p.entity, limits.max_array_items)
    return found, violations


def new_fragment_text(p: Prepared) -> str | None:
    """The JSON of the fragment a valid record makes where its dataset has no fragment of its primary
    identity yet (what `apply` writes then), or None when that takes the general upsert (pure)."""
    body = merging.new_fragment(_normalised(p.entity))
    return None if body is None else _json(body)


_NOT_A_FIELD = frozenset({"_id"})


@dataclass
class _Touch:
    """What happened to one profile in this unit of work."""

    ident: Ident  # the identity the event's ordering key is built from
    changes: set[str] = field(default_factory=set)
    dataset_id: str | None = None
    record_id: str | None = None
    fields: set[str] = field(default_factory=set)
    previous: set[int] = field(default_factory=set)


class _Graphs:
    """The graphs a unit of work touches, loaded once and kept in memory while records are applied.

    Every member of a touched graph is loaded, its links only when the graph limit needs them: an
    eviction needs the whole graph to know what it cuts off, ordinary linking does not. A graph in
    memory therefore holds the links seen in this unit plus, once loaded, its stored ones; `lazy`
    names the stored graphs whose links were not read (they move to the graph's id when written).
    """

    def __init__(self, conn: Connection, sandbox_id: str, idents: Iterable[Ident]) -> None:
        self.conn, self.sandbox_id = conn, sandbox_id
        self.node: dict[Ident, Any] = {}  # Ident -> [id, graph_id, first, last, event_count]
        self.loaded: dict[Ident, tuple[int, int, int, int]] = {}  # Ident -> (graph_id, first, last, events)
        self._keep: list[graph.Graph] = []  # graphs stay alive, so id(Graph) keys are never reused
        self.by_id: dict[int, Ident] = {}
        graphs: dict[int, graph.Graph] = {}
        node, loaded, by_id, member = self.node, self.loaded, self.by_id, graph.Member
        for iid, ns, value, gid, first, last, events in _members_of_graphs(conn, sandbox_id, idents):
            i = new_ident((ns, value))
            by_id[iid] = i
            node[i] = [iid, gid, first, last, events]
            loaded[i] = (gid, first, last, events)
            g = graphs.get(gid)
            if g is None:
                g = graphs[gid] = graph.Graph({}, {})
            g.members[i] = member(first, last)
        self.links0: dict[tuple[int, int], tuple[int, int, int]] = {}  # stored links that were read
        self.of: dict[Ident, graph.Graph] = {}
        self.old_gid: dict[int, int] = {}  # id(Graph) -> graph id it was loaded with
        self.lazy: dict[int, set[int]] = {}  # id(Graph) -> stored graph ids whose links were not read
        for gid, g in graphs.items():
            self._keep.append(g)
            self.old_gid[id(g)] = gid
            self.lazy[id(g)] = {gid}
            for i in g.members:
                self.of[i] = g
        self.loaded_gids = set(graphs)
        self.touch: dict[int, _Touch] = {}  # id(Graph) -> what happened to it
        self.events: list[tuple[int, str, dict[str, Any]]] = []  # (id(Graph), kind, detail)
        self.successor: dict[int, graph.Graph] = {}  # id(Graph) -> the graph a later record made of it

    def _read_links(self, g: graph.Graph) -> None:
        """Complete `g` with the stored links of its lazy graphs (times combined with this unit's)."""
        gids = self.lazy.pop(id(g), None)
        if not gids:
            return
        by_id, links, link = self.by_id, g.links, graph.Link
        for a_id, b_id, gid, first, last in _rows_by_graph(self.conn, t.identity_links, gids):
            self.links0[(a_id, b_id)] = (gid, first, last)
            a, b = by_id[a_id], by_id[b_id]
            key = (a, b) if a < b else (b, a)
            seen = links.get(key)
            links[key] = link(first, last) if seen is None else link(
                min(first, seen.first_seen_ms), max(last, seen.last_seen_ms))

    def stitch(self, idents: list[Ident], at_ms: int, limit: int) -> graph.Graph:
        """Link one record's identities (distinct, primary first) into the graphs of this unit."""
        of = self.of
        current: dict[int, graph.Graph] = {}
        fresh = 0  # identities no graph holds yet
        linked = False  # a new identity joins the first: a new link (a merge is one too)
        for n, i in enumerate(idents):
            g = of.get(i)
            if g is None:
                fresh += 1
                linked = linked or n > 0
            else:
                current[id(g)] = g
        graphs = list(current.values())
        if fresh + sum(len(g.members) for g in graphs) > limit:  # an eviction needs every link involved
            for g in graphs:
                self._read_links(g)
        res = graph.stitch(graphs, idents, at_ms, limit=limit)
        home = res.graph
        touch = self.touch.pop(id(graphs[0]), None) if len(graphs) == 1 else None
        if touch is None:
            touch = _Touch(idents[0])
        lazy: set[int] = set()
        for g in graphs:
            key = id(g)
            self.successor[key] = home
            was_lazy = self.lazy.pop(key, None)
            if was_lazy:
                lazy |= was_lazy
            before = self.touch.pop(key, None)
            if before is not None:
                touch.changes |= before.changes
                touch.previous |= before.previous
                touch.fields |= before.fields
            old = self.old_gid.get(key)
            if old is not None:
                touch.previous.add(old)
        self.touch[id(home)] = touch
        self._keep.append(home)
        if lazy:  # (never after an eviction: its graphs were read whole)
            self.lazy[id(home)] = lazy
        for i in home.members:
            of[i] = home
        if linked or len(graphs) > 1:
            touch.changes.add("link")
        if len(graphs) > 1:
            self.events.append((id(home), "merge", {"graphs": len(graphs)}))
        if res.evicted:
            touch.changes.add("overflow")
            self.events.append((id(home), "evict", {
                "identities": [{"namespace": i.ns, "id": i.value} for i in res.evicted],
                "reason": f"the graph limit of {limit} identities was exceeded; the oldest were removed"}))
        for d in res.detached:
            self._keep.append(d)
            for i in d.members:
                of[i] = d
            dt = self.touch.setdefault(id(d), _Touch(min(d.members)))
            dt.changes.add("unlink")
            dt.previous |= touch.previous
            if len(d.members) > 1 or not any(i in d.members for i in res.evicted):
                self.events.append((id(d), "split", {"members": len(d.members)}))
        return home

    def final(self) -> list[graph.Graph]:
        seen: dict[int, graph.Graph] = {}
        for g in self.of.values():
            seen[id(g)] = g
        return list(seen.values())

    def final_of(self, key: int) -> int:
        """The final graph (its id()) that the graph `key` became through later records of the unit."""
        while key in self.successor:
            key = id(self.successor[key])
        return key

    def write(self, sandbox_id: str, finals: list[graph.Graph], gid_of: dict[int, int]) -> None:
        """Identities and links: what differs from what was read; lazy graphs' links move to their new id."""
        conn, node, loaded = self.conn, self.node, self.loaded
        inserts, updates = [], []
        for g in finals:
            gid = gid_of[id(g)]
            for i, m in g.members.items():
                n = node[i]
                if n[1] is None:
                    inserts.append((n[0], sandbox_id, i.ns, i.value, gid, m.first_seen_ms, m.last_seen_ms, n[4]))
                elif loaded[i] != (gid, m.first_seen_ms, m.last_seen_ms, n[4]):
                    updates.append((gid, m.first_seen_ms, m.last_seen_ms, n[4], n[0]))
        if inserts:
            write_rows(conn, t.identities, _IDENTITY_COLUMNS, inserts, conflict=["id"])
        if updates:
            conn.exec_driver_sql(raw_sql(conn, "UPDATE identities SET graph_id = ?, first_seen_ms = ?, "
                                            "last_seen_ms = ?, event_count = ? WHERE id = ?"), updates)
        moved = [(gid_of[id(g)], old) for g in finals for old in self.lazy.get(id(g), ()) if old != gid_of[id(g)]]
        if moved:
            conn.exec_driver_sql(raw_sql(conn, "UPDATE identity_links SET graph_id = ? WHERE graph_id = ?"), moved)
        links0 = self.links0
        now: dict[tuple[int, int], tuple[int, int, int]] = {}
        rows = []
        for g in finals:
            gid = gid_of[id(g)]
            for (a, b), ln in g.links.items():
                x, y = node[a][0], node[b][0]
                k = (x, y) if x < y else (y, x)
                v = now[k] = (gid, ln.first_seen_ms, ln.last_seen_ms)
                if links0.get(k) != v:  # unread (maybe stored: its times widen), new, or changed
                    rows.append((*k, *v))
        gone = [k for k in links0 if k not in now]
        if gone:
            conn.exec_driver_sql(raw_sql(conn, "DELETE FROM identity_links WHERE a_id = ? AND b_id = ?"), gone)
        write_rows(conn, t.identity_links, _LINK_COLUMNS, rows, conflict=["a_id", "b_id"], update=["graph_id"],
                   widen=("first_seen_ms", "last_seen_ms"))


def apply(conn: Connection, items: Sequence[Prepared], received_ms: int, limits: Limits, *,
          views: ViewMerger | None = None) -> None:
    """Stitch, store fragments and events, refresh the view and emit change events for new records."""
    by_sandbox: dict[str, list[Prepared]] = {}
    for p in items:
        by_sandbox.setdefault(p.dataset.sandbox_id, []).append(p)
    if not by_sandbox:
        return
    outbox.lock(conn)
    for sandbox_id, part in by_sandbox.items():
        _apply_sandbox(conn, sandbox_id, part, received_ms, limits, views)


def _apply_sandbox(conn: Connection, sandbox_id: str, items: list[Prepared], now: int, limits: Limits,
                   views: ViewMerger | None) -> None:
    eff = default_policy(conn, sandbox_id)
    idents = {f.ident for p in items for f in p.identities or ()}
    gs = _Graphs(conn, sandbox_id, idents)
    # 1. the graph, record by record, in memory
    primaries: list[Ident] = []
    for p in items:
        ids = [f.ident for f in p.identities or ()]
        ts = p.ts_ms if p.ts_ms is not None else now
        g = gs.stitch(ids, ts, limits.identity_graph_limit)
        touch = gs.touch[id(g)]
        touch.ident = ids[0]
        touch.changes.add("event" if p.time_series else "fragment")
        touch.dataset_id, touch.record_id = p.dataset.id, p.record_id
        touch.fields.update(p.entity if p.keys is None else p.keys)  # ("_id" is dropped when the event is built)
        primaries.append(ids[0])
    # 2. ids: new identities get max + 1 (safe under the lock); a graph's id is its smallest member id
    new = [i for i in gs.of if i not in gs.node]
    if new:
        next_id = (conn.execute(sa.select(sa.func.max(t.identities.c.id))).scalar() or 0) + 1
        for n, i in enumerate(sorted(new)):
            gs.node[i] = [next_id + n, None, None, None, 0]
    finals = gs.final()
    gid_of: dict[int, int] = {id(g): min(gs.node[i][0] for i in g.members) for g in finals}
    for p, prim in zip(items, primaries):
        if p.time_series:
            gs.node[prim][4] += 1
    # 3. fragments. Every fragment of every loaded member is read once, as text: the upserts parse
    # the few they update, the view merges all of them (maybe in another process).
    frag_items = [(p, gs.node[prim][0]) for p, prim in zip(items, primaries) if not p.time_series]
    loaded_ids = [gs.node[i][0] for i in gs.loaded]
    ident_of_id = {v[0]: k for k, v in gs.node.items()}
    stored = _fragment_rows(conn, loaded_ids) if loaded_ids else []
    stored_at = {(r[0], r[1]): r for r in stored} if frag_items and stored else {}
    # A new fragment whose text a prepare worker worked out is kept as that text (body None) until
    # something needs its body: another record of the unit for it, or a view merged here.
    changed: dict[tuple[str, int], merging.Fragment] = {}
    texts: dict[tuple[str, int], tuple[str, str | None]] = {}
    for p, nid in frag_items:
        key = (p.dataset.id, nid)
        prim = ident_of_id[nid]
        ts = p.ts_ms if p.ts_ms is not None else now
        old = changed.get(key)
        if old is None:
            if key in stored_at:
                old = _fragment(stored_at[key], prim)
            elif p.fragment is not None:
                changed[key] = merging.Fragment(p.dataset.id, prim.ns, prim.value, None, ts, p.record_id)
                texts[key] = (p.fragment, None)
                continue
        elif old.body is None:
            old = old._replace(body=orjson.loads(texts[key][0]))
        f = changed[key] = merging.upsert(old, dataset_id=p.dataset.id, ns=prim.ns, value=prim.value,
                                          body=_normalised(p.entity), ts_ms=ts, record_id=p.record_id)
        texts[key] = (_json(f.body), None if f.leaf_ms is None else _json(f.leaf_ms))
    # 4. the view of every touched profile starts merging (in a worker when one takes it) while the rest is
    # written: identities, links, fragments, the record index, graph events, change events
    touched = [g for g in finals if id(g) in gs.touch]
    if eff.policy.graph == "pdg":
        keys = {gid_of[id(g)]: [gs.node[i][0] for i in g.members] for g in touched}
        vanished = {gid for g in touched for gid in gs.touch[id(g)].previous} - set(gid_of.values())
        vanished |= gs.loaded_gids - set(gid_of.values())
    else:
        keys = {gs.node[prim][0]: [gs.node[prim][0]] for prim in primaries}
        vanished = set()
    as_text = views is not None and views.wants_views(len(keys))
    owned: dict[int, list[tuple[Any, ...]]] = {}
    for d, nid, body, updated_ms, leaf_ms, record_id in stored:
        if (d, nid) not in changed:
            i = ident_of_id[nid]
            owned.setdefault(nid, []).append((d, i.ns, i.value, body, updated_ms, record_id, leaf_ms))
    for (d, nid), f in changed.items():
        body, leaf_ms = texts[(d, nid)] if as_text or f.body is None else (f.body, f.leaf_ms)
        owned.setdefault(nid, []).append((d, f.ns, f.value, body, f.updated_ms, f.record_id, leaf_ms))
    counts = {v[0]: v[4] for v in gs.node.values()}
    finish_views = start_views(conn, sandbox_id, keys, eff, now, vanished=vanished, frags=owned, counts=counts,
                               views=views if as_text else None)
    gs.write(sandbox_id, finals, gid_of)
    write_rows(conn, t.profile_fragments, _FRAGMENT_COLUMNS, [
        (d, nid, sandbox_id, texts[(d, nid)][0], f.updated_ms, texts[(d, nid)][1], f.record_id)
        for (d, nid), f in changed.items()], conflict=["identity_id", "dataset_id"], update=_FRAGMENT_COLUMNS[3:])
    write_rows(conn, t.profile_records, _RECORD_INDEX_COLUMNS, [
        (gs.node[prim][0], p.time_series, p.ts_ms if p.ts_ms is not None else now, p.dataset.id, p.record_id)
        for p, prim in zip(items, primaries)], conflict=_RECORD_INDEX_COLUMNS)
    # 5. graph events
    if gs.events:
        conn.execute(t.graph_events.insert(), [
            {"sandbox_id": sandbox_id, "graph_id": gid_of[gs.final_of(gkey)], "kind": kind, "detail": detail,
             "at_ms": now}
            for gkey, kind, detail in gs.events])
    # 6. one change event per touched profile, and the view written
    messages = []
    for g in touched:
        tch = gs.touch[id(g)]
        gid = gid_of[id(g)]
        event = contracts.profile_changed(
            sandbox_id=sandbox_id, profile_id=str(gid), ns=tch.ident.ns, id=tch.ident.value, changes=sorted(tch.changes),
            dataset_id=tch.dataset_id, record_id=tch.record_id, fields=sorted(tch.fields - _NOT_A_FIELD),
            previous=sorted(str(x) for x in tch.previous if x != gid), at_ms=now)
        messages.append((contracts.PROFILE_STREAM,
                         outbox.identity_key(sandbox_id, gs.node[tch.ident][0], tch.ident.ns, tch.ident.value),
                         contracts.PROFILE_CHANGED, event))
    outbox.add_many(conn, messages, now_ms=now, returning=False)
    finish_views()
    discard(locals())  # what this unit built is freed while the writer commits (store.discard)


# -- the view --------------------------------------------------------------------------------------

class ViewMerger(Protocol):
    """Merges stored views elsewhere (`prepare_pool.PreparePool`): `wants_views(n)` says whether a
    unit of n views is worth sending; `merge_views` starts `merging.merged_json` on them and returns
    what waits for its result."""

    def wants_views(self, n: int) -> bool: ...

    def merge_views(self, groups: list[list[tuple[Any, ...]]], policy: merging.Policy) -> Callable[[], list[str]]: ...


def refresh_view(conn: Connection, sandbox_id: str, keys: dict[int, list[int]], eff: Effective, now: int, *,
                 vanished: Iterable[int] = (), frags: dict[int, list[Any]] | None = None,
                 counts: dict[int, int] | None = None, views: ViewMerger | None = None) -> None:
    """Recompute the view rows of `keys` (key -> member identity ids) from their fragments.

    `frags` and `counts` (by identity id), when given, are every fragment (tuples in `Fragment`'s
    field order, bodies parsed or as stored) and event count of those identities, already in
    memory; otherwise they are read. `views`, when it wants this many, merges them in another
    process."""
    if views is not None and not views.wants_views(len(keys)):
        views = None
    start_views(conn, sandbox_id, keys, eff, now, vanished=vanished, frags=frags, counts=counts, views=views)()


def start_views(conn: Connection, sandbox_id: str, keys: dict[int, list[int]], eff: Effective, now: int, *,
                vanished: Iterable[int] = (), frags: dict[int, list[Any]] | None = None,
                counts: dict[int, int] | None = None, views: ViewMerger | None = None) -> Callable[[], None]:
    """`refresh_view` in two steps: the merges start now (in `views` when given), the rows are
    written by the function returned, so that the caller can write other rows in between."""
    vanished = [k for k in vanished if k not in keys]
    if not keys:
        if vanished:
            _delete_views(conn, sandbox_id, vanished)
        return _nothing
    all_ids = [i for ids in keys.values() for i in ids]
    if frags is None:  # as stored, unparsed, for a merge in another process
        frags = fragments_of(conn, all_ids, parse=views is None)
    if counts is None:
        counts = event_counts(conn, all_ids)
    full: list[tuple[int, int]] = []  # (key, events) of the rows to write, in the order of `groups`
    groups: list[list[Any]] = []
    empty = []
    frags_of, count_of = frags.get, counts.get
    for key, ids in keys.items():
        fs: list[Any] = []
        n = 0
        for i in ids:
            got = frags_of(i)
            if got:
                fs += got
            n += count_of(i, 0)
        if not fs and not n:
            empty.append(key)
            continue
        full.append((key, n))
        groups.append(fs)
    bodies = views.merge_views(groups, eff.policy) if views is not None else None
    if vanished:
        _delete_views(conn, sandbox_id, vanished)

    def finish() -> None:
        merged = bodies() if bodies is not None else merging.merged_json(groups, eff.policy)
        write_rows(conn, t.profile_view, _VIEW_COLUMNS,
                   [(sandbox_id, key, eff.stamp, body, n, now) for (key, n), body in zip(full, merged, strict=True)],
                   conflict=_VIEW_COLUMNS[:2], update=_VIEW_COLUMNS[2:])
        if empty:
            _delete_views(conn, sandbox_id, empty)
    return finish


def _nothing() -> None:
    return None


def _delete_views(conn: Connection, sandbox_id: str, keys: Sequence[int]) -> None:
    conn.exec_driver_sql(raw_sql(conn, "DELETE FROM profile_view WHERE sandbox_id = ? AND key {}"),
                         (sandbox_id, list_param(conn, keys)))


def _fragment_rows(conn: Connection, identity_ids: Sequence[int]) -> list[Any]:
    """The fragments of these identities as stored: (dataset_id, identity_id, body, updated_ms, leaf_ms,
    record_id), body and leaf_ms as JSON text on SQLite (already decoded on PostgreSQL)."""
    return fetch_rows(conn, raw_sql(
        conn, "SELECT dataset_id, identity_id, body, updated_ms, leaf_ms, record_id "
              "FROM profile_fragments WHERE identity_id {}"), (list_param(conn, list(dict.fromkeys(identity_ids))),))


def _fragment(row: Any, ident: Ident) -> merging.Fragment:
    dataset_id, _, body, updated_ms, leaf_ms, record_id = row
    return merging.Fragment(dataset_id, ident.ns, ident.value, json_column(body), updated_ms, record_id,
                            None if leaf_ms is None else json_column(leaf_ms) or None)


def fragments_of(conn: Connection, identity_ids: Sequence[int], *, parse: bool = True) -> dict[int, list[Any]]:
    """Fragments by identity id (each fragment belongs to its primary identity). `parse=False`: as
    tuples in `Fragment`'s field order with `body` and `leaf_ms` as stored (`merging.merged_json`)."""
    out: dict[int, list[Any]] = {}
    fragment = merging.Fragment if parse else _as_stored
    loads = json_column if parse else _same
    ids = list_param(conn, list(dict.fromkeys(identity_ids)))
    for dataset_id, identity_id, body, updated_ms, leaf_ms, record_id, ns, value in conn.exec_driver_sql(raw_sql(
            conn, "SELECT f.dataset_id, f.identity_id, f.body, f.updated_ms, f.leaf_ms, f.record_id, i.ns, i.value "
                  "FROM profile_fragments f JOIN identities i ON i.id = f.identity_id WHERE f.identity_id {}"),
            (ids,)).all():
        out.setdefault(identity_id, []).append(fragment(
            dataset_id, ns, value, loads(body), updated_ms, record_id, loads(leaf_ms) or None))
    return out


def _as_stored(*fields: Any) -> tuple[Any, ...]:
    return fields


def _same(v: Any) -> Any:
    return v


def _json(v: Any) -> str:
    return orjson.dumps(v).decode()


def event_counts(conn: Connection, identity_ids: Sequence[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for part in _chunks(list(dict.fromkeys(identity_ids))):
        for r in conn.execute(sa.select(t.identities.c.id, t.identities.c.event_count)
                              .where(t.identities.c.id.in_(part))):
            out[r.id] = r.event_count
    return out


# -- helpers ---------------------------------------------------------------------------------------

def _normalised(entity: dict[str, Any]) -> dict[str, Any]:
    """The record as its fragment keeps it: identityMap values normalised as the graph has them."""
    im = entity.get("identityMap")
    if not isinstance(im, dict):
        return entity
    fixed: dict[str, Any] | None = None
    for ns, items in im.items():
        if not isinstance(items, list):
            continue
        for n, item in enumerate(items):
            v = item.get("id") if isinstance(item, dict) else None
            if isinstance(v, str):
                norm = identity.normalise(ns, v)
                if norm != v:
                    if fixed is None:
                        fixed = dict(im)
                    if fixed[ns] is items:
                        fixed[ns] = items = list(items)
                    items[n] = {**item, "id": norm}
    return entity if fixed is None else {**entity, "identityMap": fixed}


def _chunks(items: Sequence[Any], n: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), n):
        yield items[start:start + n]


def _members_of_graphs(conn: Connection, sandbox_id: str, idents: Iterable[Ident]) -> list[Any]:
    """Every member (id, ns, value, graph_id, first_seen_ms, last_seen_ms, event_count) of the graphs
    that hold any of these identities, each once. One IN list of values per namespace: a (ns, value)
    tuple IN list makes SQLite and PostgreSQL use only the sandbox prefix of the index (measured:
    134 ms against 0.5 ms per 400 identities at 630k identities)."""
    by_ns: dict[str, list[str]] = {}
    for i in idents:
        by_ns.setdefault(i.ns, []).append(i.value)
    out: dict[int, Any] = {}
    sql = raw_sql(conn, _MEMBERS_SQL)
    for ns, values in sorted(by_ns.items()):
        for r in fetch_rows(conn, sql, (sandbox_id, ns, list_param(conn, values))):
            out[r[0]] = r
    return list(out.values())


_MEMBERS_SQL = ("SELECT id, ns, value, graph_id, first_seen_ms, last_seen_ms, event_count FROM identities "
                "WHERE graph_id IN (SELECT graph_id FROM identities WHERE sandbox_id = ? AND ns = ? AND value {})")


_GRAPH_COLUMNS = {"identity_links": "a_id, b_id, graph_id, first_seen_ms, last_seen_ms"}


def _rows_by_graph(conn: Connection, table: sa.Table, gids: Iterable[int]) -> list[Any]:
    template = f"SELECT {_GRAPH_COLUMNS[table.name]} FROM {table.name} WHERE graph_id {{}}"
    return fetch_rows(conn, raw_sql(conn, template), (list_param(conn, sorted(gids)),))


# -- lookups ---------------------------------------------------------------------------------------

def find_identity(conn: Connection, sandbox_id: str, ident: Ident) -> Any:
    c = t.identities.c
    return conn.execute(sa.select(c.id, c.graph_id, c.ns, c.value).where(
        c.sandbox_id == sandbox_id, c.ns == ident.ns, c.value == ident.value)).first()


def members_of(conn: Connection, graph_id: int) -> list[Any]:
    c = t.identities.c
    return conn.execute(sa.select(c.id, c.ns, c.value, c.first_seen_ms, c.last_seen_ms, c.event_count)
                        .where(c.graph_id == graph_id).order_by(c.id)).all()


def _scope(conn: Connection, node: Any, eff: Effective) -> tuple[int, list[Any]]:
    """The view key and the member identities a policy merges for the identity `node`."""
    if eff.policy.graph == "pdg":
        return node.graph_id, members_of(conn, node.graph_id)
    c = t.identities.c
    return node.id, conn.execute(sa.select(c.id, c.ns, c.value, c.first_seen_ms, c.last_seen_ms, c.event_count)
                                 .where(c.id == node.id)).all()


def lookup(conn: Connection, sandbox_id: str, ident: Ident, eff: Effective, *, explain: bool,
           max_events: int) -> dict[str, Any] | None:
    """The merged profile of the identity under a policy, or None when nothing is known of it."""
    node = find_identity(conn, sandbox_id, ident)
    if node is None:
        return None
    key, members = _scope(conn, node, eff)
    ids = [m.id for m in members]
    events = sum(m.event_count for m in members)
    sources = None
    row = None
    if not explain:
        row = conn.execute(sa.select(t.profile_view.c.policy, t.profile_view.c.body, t.profile_view.c.updated_ms)
                           .where(t.profile_view.c.sandbox_id == sandbox_id, t.profile_view.c.key == key)).first()
    if row is not None and row.policy == eff.stamp:
        body, updated = row.body, row.updated_ms
        frag_count = None
    else:
        frags = [f for fs in fragments_of(conn, ids).values() for f in fs]
        if not frags and not events:
            return None
        merged = merging.merge(frags, eff.policy, explain=explain)
        body, sources = merged.profile, merged.sources
        updated = max((f.updated_ms for f in frags), default=None)
        frag_count = len(frags)
    out: dict[str, Any] = {
        "profileId": str(node.graph_id), "entityId": ident.value, "entityIdNS": {"code": ident.ns},
        "mergePolicy": {"id": eff.policy.id or None, "identityGraph": eff.policy.graph,
                        "attributeMerge": eff.policy.attribute_merge},
        "entity": body, "lastModifiedAt": updated,
        "identities": [{"namespace": {"code": m.ns}, "id": m.value} for m in members],
        "eventCount": events, "eventsOverLimit": events > max_events, "_key": key,
    }
    if explain:
        out["fragmentCount"] = frag_count
        out["explanation"] = {p: {"datasetId": s.dataset_id, "identity": {"namespace": {"code": s.ns}, "id": s.value},
                                  "recordId": s.record_id, "updatedAt": s.updated_ms}
                              for p, s in sorted((sources or {}).items())}
    return out


def events(conn: Connection, sandbox_id: str, ident: Ident, eff: Effective, *, start_ms: int | None,
           end_ms: int | None, limit: int, after: tuple[int, str, str] | None) -> tuple[list[dict[str, Any]], Any] | None:
    """Experience events of the profile, oldest first: (items, cursor of the next page or None), or
    None when the identity is unknown."""
    node = find_identity(conn, sandbox_id, ident)
    if node is None:
        return None
    _, members = _scope(conn, node, eff)
    pr, r = t.profile_records.c, t.records.c
    stmt = (sa.select(pr.ts_ms, pr.dataset_id, pr.record_id, r.body)
            .join(t.records, sa.and_(r.dataset_id == pr.dataset_id, r.record_id == pr.record_id))
            .where(pr.identity_id.in_([m.id for m in members]), pr.is_event.is_(True)))
    if start_ms is not None:
        stmt = stmt.where(pr.ts_ms >= start_ms)
    if end_ms is not None:
        stmt = stmt.where(pr.ts_ms < end_ms)
    if after is not None:
        stmt = stmt.where(sa.tuple_(pr.ts_ms, pr.dataset_id, pr.record_id) > sa.tuple_(*after))
    rows = conn.execute(stmt.order_by(pr.ts_ms, pr.dataset_id, pr.record_id).limit(limit + 1)).all()
    items = [{"timestamp": x.ts_ms, "datasetId": x.dataset_id, "recordId": x.record_id, "entity": x.body}
             for x in rows[:limit]]
    nxt = (rows[limit - 1].ts_ms, rows[limit - 1].dataset_id, rows[limit - 1].record_id) if len(rows) > limit else None
    return items, nxt


def segmentation_events(conn: Connection, sandbox_id: str, ident: Ident, eff: Effective, *,
                        max_events: int) -> list[dict[str, Any]]:
    """The events segmentation sees: the newest `max_events` of the profile, oldest first.

    A profile over the limit keeps all its events (readable through `events`); only the excess, the
    oldest, is left out here.
    """
    node = find_identity(conn, sandbox_id, ident)
    if node is None:
        return []
    _, members = _scope(conn, node, eff)
    pr, r = t.profile_records.c, t.records.c
    rows = conn.execute(sa.select(pr.ts_ms, r.body)
                        .join(t.records, sa.and_(r.dataset_id == pr.dataset_id, r.record_id == pr.record_id))
                        .where(pr.identity_id.in_([m.id for m in members]), pr.is_event.is_(True))
                        .order_by(pr.ts_ms.desc(), pr.dataset_id.desc(), pr.record_id.desc())
                        .limit(max_events)).all()
    return [x.body for x in reversed(rows)]


_EVENTS_OF_KEY = ("SELECT pr.ts_ms, r.body FROM profile_records pr "
                  "JOIN records r ON r.dataset_id = pr.dataset_id AND r.record_id = pr.record_id {join}"
                  "WHERE pr.is_event = ? AND {owner} = ? "
                  "ORDER BY pr.ts_ms DESC, pr.dataset_id DESC, pr.record_id DESC LIMIT ?")
_EVENTS_OF_GRAPH = _EVENTS_OF_KEY.format(join="JOIN identities i ON i.id = pr.identity_id ", owner="i.graph_id")
_EVENTS_OF_IDENTITY = _EVENTS_OF_KEY.format(join="", owner="pr.identity_id")


def events_of_key(conn: Connection, key: int, *, graph: bool, max_events: int) -> list[dict[str, Any]]:
    """Segmentation's events of a stored profile (graph id under pdg, identity id under none):
    the newest `max_events`, oldest first. Raw SQL: streaming segmentation reads them for every
    profile change."""
    rows = fetch_rows(conn, raw_sql(conn, _EVENTS_OF_GRAPH if graph else _EVENTS_OF_IDENTITY),
                      (True, key, max_events))
    return [json_column(body) for _, body in reversed(rows)]


def graph_of(conn: Connection, sandbox_id: str, ident: Ident) -> dict[str, Any] | None:
    node = find_identity(conn, sandbox_id, ident)
    if node is None:
        return None
    members = members_of(conn, node.graph_id)
    by_id = {m.id: m for m in members}
    links = conn.execute(sa.select(t.identity_links).where(t.identity_links.c.graph_id == node.graph_id)
                         .order_by(t.identity_links.c.a_id, t.identity_links.c.b_id)).all()
    ge = t.graph_events.c
    evs = conn.execute(sa.select(ge.kind, ge.detail, ge.at_ms).where(ge.sandbox_id == sandbox_id,
                                                                     ge.graph_id == node.graph_id)
                       .order_by(ge.id.desc()).limit(100)).all()

    def who(m: Any) -> dict[str, Any]:
        return {"namespace": {"code": m.ns}, "id": m.value}

    return {
        "graphId": str(node.graph_id), "size": len(members),
        "members": [{**who(m), "firstSeen": m.first_seen_ms, "lastSeen": m.last_seen_ms} for m in members],
        "links": [{"a": who(by_id[x.a_id]), "b": who(by_id[x.b_id]), "firstSeen": x.first_seen_ms,
                   "lastSeen": x.last_seen_ms} for x in links],
        "events": [{"kind": e.kind, "detail": e.detail, "at": e.at_ms} for e in evs],
    }


# -- privacy deletes -------------------------------------------------------------------------------

def _load_graph(conn: Connection, graph_id: int) -> tuple[graph.Graph, dict[Ident, int]]:
    g = graph.Graph({}, {})
    ids: dict[Ident, int] = {}
    by_id: dict[int, Ident] = {}
    for m in members_of(conn, graph_id):
        i = Ident(m.ns, m.value)
        ids[i], by_id[m.id] = m.id, i
        g.members[i] = graph.Member(m.first_seen_ms, m.last_seen_ms)
    for x in conn.execute(sa.select(t.identity_links).where(t.identity_links.c.graph_id == graph_id)):
        a, b = by_id[x.a_id], by_id[x.b_id]
        g.links[(a, b) if a < b else (b, a)] = graph.Link(x.first_seen_ms, x.last_seen_ms)
    return g, ids


def _erase(conn: Connection, identity_ids: list[int]) -> dict[str, int]:
    """Remove identities and everything keyed by them: records, fragments, record index, links."""
    counts = {"identities": len(identity_ids), "fragments": 0, "records": 0, "events": 0}
    pr = t.profile_records.c
    for part in _chunks(identity_ids):
        recs = conn.execute(sa.select(pr.dataset_id, pr.record_id, pr.is_event).where(pr.identity_id.in_(part))).all()
        for sub in _chunks(recs):
            conn.execute(t.records.delete().where(sa.tuple_(t.records.c.dataset_id, t.records.c.record_id).in_(
                [(x.dataset_id, x.record_id) for x in sub])))
        counts["events"] += sum(1 for x in recs if x.is_event)
        counts["records"] += sum(1 for x in recs if not x.is_event)
        conn.execute(t.profile_records.delete().where(pr.identity_id.in_(part)))
        counts["fragments"] += conn.execute(t.profile_fragments.delete().where(
            t.profile_fragments.c.identity_id.in_(part))).rowcount
        conn.execute(t.identity_links.delete().where(sa.or_(t.identity_links.c.a_id.in_(part),
                                                            t.identity_links.c.b_id.in_(part))))
        conn.execute(t.identities.delete().where(t.identities.c.id.in_(part)))
    return counts


def delete_identity(conn: Connection, sandbox_id: str, ident: Ident, *, now: int) -> dict[str, Any] | None:
    """Privacy delete of one identity: its records and fragments go, the rest of its graph splits."""
    outbox.lock(conn)
    node = find_identity(conn, sandbox_id, ident)
    if node is None:
        return None
    eff = default_policy(conn, sandbox_id)
    g, ids = _load_graph(conn, node.graph_id)
    parts = graph.remove(g, ident)
    counts = _erase(conn, [node.id])
    keys: dict[int, list[int]] = {}
    messages = []
    for comp in parts:
        member_ids = [ids[i] for i in comp.members]
        gid = min(member_ids)
        if gid != node.graph_id:
            for sub in _chunks(member_ids):
                conn.execute(t.identities.update().where(t.identities.c.id.in_(sub)).values(graph_id=gid))
                conn.execute(t.identity_links.update().where(t.identity_links.c.a_id.in_(sub)).values(graph_id=gid))
        conn.execute(t.graph_events.insert().values(sandbox_id=sandbox_id, graph_id=gid, kind="delete", at_ms=now,
                                                    detail={"removedNamespace": ident.ns, "members": len(member_ids)}))
        if eff.policy.graph == "pdg":
            keys[gid] = member_ids
        anchor = min(comp.members)
        event = contracts.profile_changed(
            sandbox_id=sandbox_id, profile_id=str(gid), ns=anchor.ns, id=anchor.value, changes=["unlink"],
            previous=[str(node.graph_id)] if gid != node.graph_id else [], at_ms=now)
        messages.append((contracts.PROFILE_STREAM, outbox.identity_key(sandbox_id, ids[anchor], anchor.ns, anchor.value),
                         contracts.PROFILE_CHANGED, event))
    messages.append(_deleted_event(sandbox_id, node.graph_id, node.id, ident, now))
    vanished = [node.graph_id] if eff.policy.graph == "pdg" else [node.id]
    refresh_view(conn, sandbox_id, keys, eff, now, vanished=vanished)
    outbox.add_many(conn, messages, now_ms=now)
    return {"profileId": str(node.graph_id), "deleted": counts, "remainingGraphs": len(parts)}


def delete_profile(conn: Connection, sandbox_id: str, ident: Ident, eff: Effective, *, now: int) -> dict[str, Any] | None:
    """Privacy delete of a merged profile: under pdg every identity of the graph, under none the one."""
    if eff.policy.graph != "pdg":
        return delete_identity(conn, sandbox_id, ident, now=now)
    outbox.lock(conn)
    node = find_identity(conn, sandbox_id, ident)
    if node is None:
        return None
    member_ids = [m.id for m in members_of(conn, node.graph_id)]
    counts = _erase(conn, member_ids)
    # Graph events name identities: they go too (the audit log keeps that a deletion happened).
    conn.execute(t.graph_events.delete().where(t.graph_events.c.sandbox_id == sandbox_id,
                                               t.graph_events.c.graph_id == node.graph_id))
    view_keys = [node.graph_id] + member_ids
    for part in _chunks(view_keys):
        conn.execute(t.profile_view.delete().where(t.profile_view.c.sandbox_id == sandbox_id,
                                                   t.profile_view.c.key.in_(part)))
    outbox.add_many(conn, [_deleted_event(sandbox_id, node.graph_id, node.id, ident, now)], now_ms=now)
    return {"profileId": str(node.graph_id), "deleted": counts}


def _deleted_event(sandbox_id: str, gid: int, identity_id: int, ident: Ident, now: int) -> tuple[str, str, str, Any]:
    event = contracts.profile_changed(sandbox_id=sandbox_id, profile_id=str(gid), ns=ident.ns, id=ident.value,
                                      changes=["delete"], at_ms=now)
    return (contracts.PROFILE_STREAM, outbox.identity_key(sandbox_id, identity_id, ident.ns, ident.value),
            contracts.PROFILE_CHANGED, event)


# -- rebuilding ------------------------------------------------------------------------------------

def rebuild_view(conn: Connection, sandbox_id: str, *, after_key: int, limit: int, now: int,
                 views: ViewMerger | None = None) -> int | None:
    """Recompute up to `limit` view keys after `after_key` under the current default policy.

    Returns the last key done, or None when the sandbox is finished. Used after the default policy
    changes (`wayline profile rebuild`), and by tests as the from-scratch reference. `views` merges
    them in another process (as `refresh_view`).
    """
    outbox.lock(conn)
    eff = default_policy(conn, sandbox_id)
    c = t.identities.c
    col = c.graph_id if eff.policy.graph == "pdg" else c.id
    rows = conn.execute(sa.select(col.label("key"), c.id).where(c.sandbox_id == sandbox_id, col > after_key)
                        .order_by(col).limit(limit * 4)).all()
    keys: dict[int, list[int]] = {}
    for r in rows:
        if r.key not in keys and len(keys) == limit:
            break
        keys.setdefault(r.key, []).append(r.id)
    if not keys:
        conn.execute(t.profile_view.delete().where(t.profile_view.c.sandbox_id == sandbox_id,
                                                   t.profile_view.c.key > after_key))
        return None
    last = max(keys)
    if len(keys) == limit and len(rows) == limit * 4:
        keys.pop(last)  # its members may continue past the rows read
        last = max(keys) if keys else after_key
    if not keys:  # one graph with more members than we read: read it whole
        last = rows[0].key
        keys = {last: [r.id for r in conn.execute(sa.select(c.id).where(col == last))]}
    stale = conn.execute(sa.select(t.profile_view.c.key).where(
        t.profile_view.c.sandbox_id == sandbox_id, t.profile_view.c.key > after_key,
        t.profile_view.c.key <= last)).scalars().all()
    refresh_view(conn, sandbox_id, keys, eff, now, vanished=[k for k in stale if k not in keys], views=views)
    return last


# -- custom namespaces -----------------------------------------------------------------------------

CUSTOM_NAMESPACE_IDS = 1_000_000  # custom namespace ids start here, clear of the standard ones


def create_namespace(conn: Connection, *, sandbox_id: str, body: Any, actor: str, now: int) -> identity.Namespace:
    from wayline.kernel.tenancy import audit

    existing = namespaces(conn, sandbox_id)
    cols = identity.check_custom_namespace(body, {n.code for n in existing.values() if n.custom})
    nid = max([n.id for n in existing.values() if n.custom] + [CUSTOM_NAMESPACE_IDS - 1]) + 1
    conn.execute(t.identity_namespaces.insert().values(
        sandbox_id=sandbox_id, code=cols["code"], id=nid, name=cols["name"], id_type=cols["idType"],
        description=cols.get("description", ""), created_ms=now))
    ns = identity.Namespace(cols["code"], nid, cols["name"], cols["idType"], True, cols.get("description", ""))
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="create", resource_type="identityNamespace",
          resource_id=ns.code, after=ns.to_api())
    return ns
