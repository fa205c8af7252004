"""Properties of the stored graph and profiles, through the real ingestion path, on both databases.

- The same records in any order give the same graphs and the same merged profiles.
- The stored (incrementally updated) view equals the profile recomputed from the fragments, and
  equals a from-scratch rebuild, after any sequence of ingests, links and deletes.
- A deleted profile leaves no identity, fragment, record or event behind.
"""

from __future__ import annotations

import itertools

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.platform.profiling import pdg_default, person, profile, purchase, setup_profiles
from wayline.platform import tables as t

POOL = [("Email", "a@x.io"), ("Email", "b@x.io"), ("CRMID", "1"), ("CRMID", "2"), ("Phone", "+3")]
TIMES = ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]

record = st.fixed_dictionaries({
    "dataset": st.sampled_from(["crm", "loyalty", "events"]),
    "idents": st.lists(st.sampled_from(range(len(POOL))), min_size=1, max_size=3, unique=True),
    "ts": st.sampled_from(TIMES),
    "gender": st.none() | st.sampled_from(["male", "female"]),
    "points": st.none() | st.integers(0, 3),
    "tags": st.none() | st.lists(st.sampled_from(["x", "y"]), max_size=2),
})

_run = itertools.count()
SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _ingest(client, s, recs, tag: str, order) -> None:
    for n in order:
        r = recs[n]
        im: dict = {}
        for k, i in enumerate(r["idents"]):
            ns, v = POOL[i]
            im.setdefault(ns, []).append({"id": f"{tag}{v}", "primary": k == 0})
        rid = f"{tag}r{n}"
        if r["dataset"] == "events":
            body = purchase(rid, r["ts"], im, total=float(r["points"] or 0))
            ds = s.events
        else:
            fields: dict = {}
            if r["gender"]:
                fields["person"] = {"gender": r["gender"]}
            wl = {k: r[k] for k in ("points", "tags") if r[k] is not None}
            if wl:
                fields["_wayline"] = wl
            body = person(rid, r["ts"], im, **fields)
            ds = s.crm if r["dataset"] == "crm" else s.loyalty
        resp = client.post(f"/datasets/{ds}/records", json=body)
        assert resp.status_code == 200 and resp.json().get("validation") != "failed", resp.text


def _state(client, tag: str) -> dict:
    """Graphs (as sets of pool indices) and merged profiles, with the tag taken out of every value."""
    out = {}
    for i, (ns, v) in enumerate(POOL):
        g = client.get("/identity/graph", params={"namespace": ns, "id": f"{tag}{v}"})
        if g.status_code == 404:
            continue
        members = frozenset((m["namespace"]["code"], m["id"].removeprefix(tag)) for m in g.json()["members"])
        p = profile(client, ns, f"{tag}{v}")
        entity = p.json()["entity"] if p.status_code == 200 else None
        if entity is not None:
            computed = profile(client, ns, f"{tag}{v}", explain="true").json()
            assert computed["entity"] == entity, "stored view differs from the fragments merged now"
            entity = _untag(entity, tag)
        out[POOL[i]] = (members, entity, p.json().get("eventCount") if p.status_code == 200 else None)
    return out


def _untag(entity: dict, tag: str) -> dict:
    e = dict(entity)
    if "identityMap" in e:
        e["identityMap"] = {ns: [{**x, "id": x["id"].removeprefix(tag)} for x in items]
                            for ns, items in e["identityMap"].items()}
        # which identity was primary depends on the record, not on the order: keep only the ids
        e["identityMap"] = {ns: sorted(x["id"] for x in items) for ns, items in e["identityMap"].items()}
    e.pop("extSourceSystemAudit", None)
    return e


@pytest.fixture
def world(client):
    s = setup_profiles(client)
    pdg_default(client)
    return s


@SETTINGS
@given(recs=st.lists(record, min_size=1, max_size=6), perm=st.randoms(use_true_random=False))
def test_any_ingestion_order_gives_the_same_graphs_and_profiles(client, world, recs, perm):
    run = next(_run)
    order = list(range(len(recs)))
    _ingest(client, world, recs, f"o{run}-", order)
    perm.shuffle(order)
    _ingest(client, world, recs, f"p{run}-", order)
    first, second = _state(client, f"o{run}-"), _state(client, f"p{run}-")
    assert first == second
    # transitivity: two pool identities share a graph iff a chain of records links them
    parent = list(range(len(POOL)))

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x
    for r in recs:
        for i in r["idents"][1:]:
            parent[find(i)] = find(r["idents"][0])
    for i, key in enumerate(POOL):
        if key in first:
            expect = {POOL[j] for j in range(len(POOL)) if find(j) == find(i) and POOL[j] in first}
            assert set(first[key][0]) == expect


@SETTINGS
@given(recs=st.lists(record, min_size=1, max_size=6),
       deletes=st.lists(st.tuples(st.sampled_from(["identity", "profile"]), st.sampled_from(range(len(POOL))),
                                  st.integers(0, 5)), max_size=2))
def test_stored_view_matches_a_rebuild_after_ingests_and_deletes(client, runtime, world, recs, deletes):
    run = next(_run)
    tag = f"d{run}-"
    done = 0
    for kind, who, after in sorted(deletes, key=lambda d: d[2]):
        upto = min(after, len(recs))
        _ingest(client, world, recs, tag, range(done, upto))
        done = max(done, upto)
        ns, v = POOL[who]
        path = "/identity/graph" if kind == "identity" else "/profiles"
        params = {"namespace": ns, "id": f"{tag}{v}"} if kind == "identity" else {"entityIdNS": ns,
                                                                                  "entityId": f"{tag}{v}"}
        r = client.delete(path, params=params)
        assert r.status_code in (200, 404), r.text
    _ingest(client, world, recs, tag, range(done, len(recs)))
    before = _state(client, tag)  # also checks view == fragments merged now, for every identity

    sandbox = client.get("/sandbox").json()["sandbox"]["id"]

    def view(c):
        return {r.key: (r.body, r.event_count) for r in c.execute(sa.select(t.profile_view).where(
            t.profile_view.c.sandbox_id == sandbox))}
    stored = runtime.store.read_sync(view)
    assert stored or not recs
    runtime.profiles.rebuild(sandbox_id=sandbox, chunk=3)
    assert runtime.store.read_sync(view) == stored
    assert _state(client, tag) == before


@SETTINGS
@given(recs=st.lists(record, min_size=1, max_size=6), who=st.sampled_from(range(len(POOL))))
def test_a_deleted_profile_leaves_nothing_behind(client, runtime, world, recs, who):
    run = next(_run)
    tag = f"x{run}-"
    _ingest(client, world, recs, tag, range(len(recs)))
    ns, v = POOL[who]
    g = client.get("/identity/graph", params={"namespace": ns, "id": f"{tag}{v}"})
    r = client.delete("/profiles", params={"entityIdNS": ns, "entityId": f"{tag}{v}"})
    if g.status_code == 404:
        assert r.status_code == 404
        return
    assert r.status_code == 200, r.text
    gone = {(m["namespace"]["code"], m["id"]) for m in g.json()["members"]}
    for ns2, v2 in gone:
        assert client.get("/identity/graph", params={"namespace": ns2, "id": v2}).status_code == 404
        assert profile(client, ns2, v2).status_code == 404

    def leftovers(c):
        ids = c.execute(sa.select(t.identities.c.id).where(
            sa.tuple_(t.identities.c.ns, t.identities.c.value).in_(list(gone)))).scalars().all()
        recs_left = c.execute(sa.select(sa.func.count()).select_from(t.records).where(
            t.records.c.record_id.in_([f"{tag}r{n}" for n in range(len(recs))]),
            t.records.c.body.isnot(None))).scalar_one()
        owned = c.execute(sa.select(sa.func.count()).select_from(t.profile_records).where(
            t.profile_records.c.record_id.like(f"{tag}%"))).scalar_one()
        return ids, recs_left, owned
    ids, recs_left, owned = runtime.store.read_sync(leftovers)
    assert ids == []
    # records whose primary identity survived (in another graph) stay; those of the deleted graph go
    survivors = [n for n, r in enumerate(recs) if (POOL[r["idents"][0]][0], f"{tag}{POOL[r['idents'][0]][1]}")
                 not in gone]
    assert owned == len(survivors) and recs_left == len(survivors)


# -- the stored graph against the pure core ---------------------------------------------------------

GRAPH_POOL = [("CRMID", "1"), ("CRMID", "2"), ("Email", "a@x.io"), ("Email", "b@x.io"), ("Phone", "+3"),
              ("Phone", "+4"), ("Email", "c@x.io"), ("Phone", "+5")]
GRAPH_LIMIT = 4
linked = st.fixed_dictionaries({
    "idents": st.lists(st.sampled_from(range(len(GRAPH_POOL))), min_size=1, max_size=3, unique=True),
    "ts": st.sampled_from(TIMES),
})


def _linked(idents: list[int], day: int) -> dict:
    return {"idents": idents, "ts": TIMES[day]}


@settings(SETTINGS, max_examples=40)
@given(batches=st.lists(st.lists(linked, min_size=1, max_size=5), min_size=1, max_size=4))
# a stored graph with links merges into one with a smaller id, in a later unit, within the limit
@example(batches=[[_linked([4, 5], 0)], [_linked([0, 2], 1)], [_linked([2, 4], 2)]])
# a stored link seen again later, then in between
@example(batches=[[_linked([0, 2], 0)], [_linked([2, 0], 2)], [_linked([0, 2], 1)]])
# an eviction after a merge in the same unit, then the evicting graph is linked again
@example(batches=[[_linked([0], 0), _linked([0, 1, 2], 0), _linked([0, 1, 3, 4], 0), _linked([0], 0)]])
# a stored graph read whole for an eviction: stored links kept, moved, or gone with the evicted
@example(batches=[[_linked([0, 2], 0), _linked([4, 6], 0)], [_linked([1, 4], 1)], [_linked([2, 4, 5], 2)]])
def test_stored_graphs_equal_the_pure_core_across_units_and_evictions(client, runtime, world, batches):
    """Records posted several to a request (one unit of work each) under a small graph limit: the
    identities, links and their times as stored equal `graph.stitch` applied record by record."""
    from datetime import datetime

    from wayline.platform import graph as core
    from wayline.platform.identity import Ident

    runtime.settings.limits.identity_graph_limit = GRAPH_LIMIT
    tag = f"g{next(_run)}-"
    of: dict = {}  # the reference: Ident -> its Graph
    n = 0
    for batch in batches:
        body = []
        for r in batch:
            idents = [Ident(GRAPH_POOL[i][0], f"{tag}{GRAPH_POOL[i][1]}") for i in r["idents"]]
            im: dict = {}
            for k, i in enumerate(idents):
                im.setdefault(i.ns, []).append({"id": i.value, "primary": k == 0})
            body.append(person(f"{tag}r{n}", r["ts"], im))
            n += 1
            ms = int(datetime.fromisoformat(r["ts"]).timestamp() * 1000)
            current = {id(of[i]): of[i] for i in idents if i in of}
            res = core.stitch(list(current.values()), idents, ms, limit=GRAPH_LIMIT)
            for g in (res.graph, *res.detached):
                for i in g.members:
                    of[i] = g
        resp = client.post(f"/datasets/{world.crm}/records", json=body)
        assert resp.status_code == 200 and resp.json().get("validation") != "failed", resp.text

    expect_graphs = {frozenset(g.members) for g in of.values()}
    expect_members = {i: (m.first_seen_ms, m.last_seen_ms) for g in of.values() for i, m in g.members.items()}
    expect_links = {k: (v.first_seen_ms, v.last_seen_ms) for g in of.values() for k, v in g.links.items()}

    def stored(c):
        rows = c.execute(sa.select(t.identities).where(t.identities.c.value.like(f"{tag}%"))).all()
        ids = {r.id: r for r in rows}
        links = c.execute(sa.select(t.identity_links).where(t.identity_links.c.a_id.in_(list(ids)))).all()
        return ids, links

    ids, links = runtime.store.read_sync(stored)
    ident = {k: Ident(r.ns, r.value) for k, r in ids.items()}
    by_graph: dict = {}
    for k, r in ids.items():
        by_graph.setdefault(r.graph_id, set()).add(k)
    assert {frozenset(ident[k] for k in ks) for ks in by_graph.values()} == expect_graphs
    assert all(gid == min(ks) for gid, ks in by_graph.items()), "a graph's id is its smallest member id"
    assert {ident[k]: (r.first_seen_ms, r.last_seen_ms) for k, r in ids.items()} == expect_members
    got_links = {}
    for x in links:
        assert x.b_id in ids and ids[x.a_id].graph_id == ids[x.b_id].graph_id == x.graph_id, x
        a, b = ident[x.a_id], ident[x.b_id]
        got_links[(a, b) if a < b else (b, a)] = (x.first_seen_ms, x.last_seen_ms)
    assert got_links == expect_links
