"""The identity graph: stitching records, the graph limit and privacy deletes, by example and by property."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wayline.platform.graph import Graph, Link, Member, StitchResult, link_key, remove, stitch
from wayline.platform.identity import Ident

POOL = [Ident(ns, str(v)) for ns in ("CRMID", "ECID") for v in range(5)]
BIG_POOL = [Ident(ns, str(v)) for ns in ("CRMID", "ECID", "Email") for v in range(6)]
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def cid(name: str) -> Ident:
    return Ident("CRMID", name)


def canon(graph: Graph) -> tuple:
    """Everything a graph holds, in a comparable form."""
    return (tuple((i, m.first_seen_ms, m.last_seen_ms) for i, m in sorted(graph.members.items())),
            tuple((k, v.first_seen_ms, v.last_seen_ms) for k, v in sorted(graph.links.items())))


def is_connected(graph: Graph) -> bool:
    return len(graph.components()) <= 1


class Store:
    """What the caller keeps: every graph, found by any of its members."""

    def __init__(self, limit: int = 50) -> None:
        self.limit = limit
        self.by_member: dict[Ident, Graph] = {}

    def ingest(self, idents: list[Ident], at_ms: int) -> StitchResult:
        existing = list({id(g): g for i in idents if (g := self.by_member.get(i)) is not None}.values())
        before = {i for g in existing for i in g.members}
        snapshot = [canon(g) for g in existing]
        result = stitch(existing, idents, at_ms, limit=self.limit)
        assert [canon(g) for g in existing] == snapshot, "stitch must not modify its inputs"
        after = [result.graph, *result.detached]
        assert {i for g in after for i in g.members} == before | set(idents), "no identity is lost"
        for g in after:
            for i in g.members:
                self.by_member[i] = g
        return result

    def graphs(self) -> list[Graph]:
        return list({id(g): g for g in self.by_member.values()}.values())

    def partition(self) -> frozenset[frozenset[Ident]]:
        return frozenset(frozenset(g.members) for g in self.graphs())

    def state(self) -> frozenset:
        return frozenset(canon(g) for g in self.graphs())


def cliques_partition(records: list[tuple[int, list[Ident]]]) -> frozenset[frozenset[Ident]]:
    parent: dict[Ident, Ident] = {}

    def find(x: Ident) -> Ident:
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    for _, idents in records:
        for i in idents:
            parent[find(i)] = find(idents[0])
    groups: dict[Ident, set[Ident]] = {}
    for x in list(parent):
        groups.setdefault(find(x), set()).add(x)
    return frozenset(frozenset(g) for g in groups.values())


def record_lists(pool: list[Ident], max_size: int, max_records: int = 12):
    deltas = st.integers(0, 3)
    rec = st.lists(st.sampled_from(pool), min_size=1, max_size=max_size)
    return st.lists(st.tuples(deltas, rec), min_size=1, max_size=max_records).map(
        lambda rs: [(sum(d for d, _ in rs[:n + 1]), idents) for n, (_, idents) in enumerate(rs)])


# -- by example -----------------------------------------------------------------------------------


def test_one_identity_makes_a_member_and_no_link():
    r = stitch([], [cid("a")], 10)
    assert r == StitchResult(Graph({cid("a"): Member(10, 10)}, {}), [], [])
    r2 = stitch([r.graph], [cid("a")], 20)
    assert r2.graph.members == {cid("a"): Member(10, 20)} and r2.graph.links == {}


def test_a_record_links_its_identities_pairwise_and_bumps_what_exists():
    g = stitch([], [cid("b"), cid("a")], 10).graph
    assert g.links == {(cid("a"), cid("b")): Link(10, 10)}
    g2 = stitch([g], [cid("c"), cid("a"), cid("b"), cid("a")], 20).graph
    assert g2.members == {cid("a"): Member(10, 20), cid("b"): Member(10, 20), cid("c"): Member(20, 20)}
    assert g2.links == {(cid("a"), cid("b")): Link(10, 20), (cid("a"), cid("c")): Link(20, 20),
                        (cid("b"), cid("c")): Link(20, 20)}
    assert list(g2.members) == sorted(g2.members) and list(g2.links) == sorted(g2.links)
    assert g.members[cid("a")] == Member(10, 10), "the input graph is untouched"


def test_a_record_joins_two_graphs():
    g1 = stitch([], [cid("a"), cid("b")], 1).graph
    g2 = stitch([], [cid("c"), cid("d")], 2).graph
    r = stitch([g2, g1], [cid("d"), cid("a")], 3)
    assert set(r.graph.members) == {cid("a"), cid("b"), cid("c"), cid("d")}
    assert set(r.graph.links) == {(cid("a"), cid("b")), (cid("c"), cid("d")), (cid("a"), cid("d"))}
    assert r.evicted == [] and r.detached == []


def test_an_older_record_arriving_late_moves_first_seen_back():
    g = stitch([], [cid("a"), cid("b")], 50).graph
    g = stitch([g], [cid("a"), cid("b")], 20).graph
    assert g.members[cid("a")] == Member(20, 50) and g.links[(cid("a"), cid("b"))] == Link(20, 50)


def test_the_oldest_identity_is_evicted_first_and_never_one_of_the_record():
    g = Graph()
    for t, name in enumerate("abcd"):
        g = stitch([g] if g.members else [], [cid("a"), cid(name)], t).graph
    r = stitch([g], [cid("a"), cid("e")], 10, limit=4)
    # "a" is the oldest but is in the record; "b" (t=1) is the oldest other
    assert r.evicted == [cid("b")]
    assert set(r.graph.members) == {cid("a"), cid("c"), cid("d"), cid("e")}
    assert r.detached == [Graph({cid("b"): Member(1, 1)}, {})]
    assert all(cid("b") not in k for k in r.graph.links)


def test_ties_in_first_seen_evict_by_namespace_then_value():
    g = stitch([], [Ident("X", "1"), Ident("A", "2"), Ident("A", "1")], 0).graph
    r = stitch([g], [Ident("X", "1"), Ident("Z", "9")], 1, limit=2)
    assert r.evicted == [Ident("A", "1"), Ident("A", "2")]


def test_an_eviction_that_cuts_the_graph_detaches_the_far_side_and_evicts_no_more_than_needed():
    # chain: e - d - c - b - a ; "c" is the oldest, and removing it cuts a and b off
    g = Graph()
    for t, (x, y) in enumerate([("c", "d"), ("b", "c"), ("a", "b"), ("d", "e")]):
        existing = list({id(h): h for h in [g] if set(h.members) & {cid(x), cid(y)}}.values())
        g = stitch(existing, [cid(x), cid(y)], t).graph
    assert g.members[cid("c")].first_seen_ms == 0
    r = stitch([g], [cid("e"), cid("f")], 9, limit=5)
    assert r.evicted == [cid("c")]  # the union had 6; one eviction, which also cut a-b off
    assert set(r.graph.members) == {cid("d"), cid("e"), cid("f")}
    assert [set(d.members) for d in r.detached] == [{cid("a"), cid("b")}, {cid("c")}]
    assert r.detached[0].links == {(cid("a"), cid("b")): Link(2, 2)}


def test_merging_two_full_graphs_evicts_the_oldest_until_the_record_graph_fits():
    left = stitch([], [cid(f"l{i}") for i in range(4)], 1).graph  # a clique: no cut points
    right = stitch([], [cid(f"r{i}") for i in range(4)], 2).graph
    r = stitch([left, right], [cid("l0"), cid("r0")], 3, limit=4)
    assert r.evicted == [cid("l1"), cid("l2"), cid("l3"), cid("r1")]
    assert set(r.graph.members) == {cid("l0"), cid("r0"), cid("r2"), cid("r3")}
    assert [set(d.members) for d in r.detached] == [{i} for i in r.evicted]


def test_bad_calls_are_value_errors():
    with pytest.raises(ValueError, match="graph limit"):
        stitch([], [cid(str(i)) for i in range(5)], 0, limit=4)
    with pytest.raises(ValueError, match="nothing to stitch"):
        stitch([], [], 0)
    other = stitch([], [cid("z")], 0).graph
    with pytest.raises(ValueError, match="none of the record"):
        stitch([other], [cid("a")], 1)
    assert len(stitch([], [cid("a")] * 9, 0, limit=1).graph.members) == 1  # duplicates count once


def test_remove_splits_and_keeps_the_rest():
    g = Graph()
    for t, (x, y) in enumerate([("a", "b"), ("b", "c"), ("c", "d")]):
        g = stitch([g] if g.members else [], [cid(x), cid(y)], t).graph
    parts = remove(g, cid("b"))
    assert [set(p.members) for p in parts] == [{cid("a")}, {cid("c"), cid("d")}]
    assert parts[1].links == {(cid("c"), cid("d")): Link(2, 2)}
    assert remove(Graph({cid("a"): Member(0, 0)}, {}), cid("a")) == []
    with pytest.raises(KeyError):
        remove(g, cid("zz"))
    assert set(g.members) == {cid("a"), cid("b"), cid("c"), cid("d")}, "the input graph is untouched"


def test_copy_is_deep_enough():
    g = stitch([], [cid("a"), cid("b")], 1).graph
    c = g.copy()
    c.members[cid("a")].last_seen_ms = 99
    c.links[(cid("a"), cid("b"))].last_seen_ms = 99
    assert g.members[cid("a")].last_seen_ms == 1 and g.links[(cid("a"), cid("b"))].last_seen_ms == 1
    assert c != g and g.copy() == g


# -- properties -----------------------------------------------------------------------------------


@PROPS
@given(records=record_lists(POOL, 4), seed=st.randoms(use_true_random=False))
def test_stitching_partitions_identities_like_the_union_of_record_cliques_in_any_order(records, seed):
    store = Store()
    for t, idents in records:
        store.ingest(idents, t)
    assert store.partition() == cliques_partition(records)
    assert all(is_connected(g) for g in store.graphs())

    shuffled = list(records)
    seed.shuffle(shuffled)
    other = Store()
    for t, idents in shuffled:
        other.ingest(list(reversed(idents)), t)
    # with first seen = earliest and last seen = latest, even the times agree, not just the partition
    assert other.state() == store.state()

    links = {link_key(a, b) for _, idents in records for a in idents for b in idents if a != b}
    assert {k for g in store.graphs() for k in g.links} == links
    for g in store.graphs():
        for i, m in g.members.items():
            times = [t for t, idents in records if i in idents]
            assert (m.first_seen_ms, m.last_seen_ms) == (min(times), max(times))


@PROPS
@given(prefix=record_lists(POOL, 3), a=st.lists(st.sampled_from(POOL), min_size=1, max_size=4),
       b=st.lists(st.sampled_from(POOL), min_size=1, max_size=4))
def test_a_then_b_links_like_b_then_a(prefix, a, b):
    def run(order: list[list[Ident]]) -> tuple:
        store = Store()
        for t, idents in prefix:
            store.ingest(idents, t)
        end = prefix[-1][0]
        for n, idents in enumerate(order):
            store.ingest(idents, end + 1 + n)
        return (store.partition(), {k for g in store.graphs() for k in g.links},
                {i for g in store.graphs() for i in g.members})

    assert run([a, b]) == run([b, a])


@PROPS
@given(records=record_lists(BIG_POOL, 4, max_records=25))
def test_with_a_small_limit_graphs_stay_small_connected_and_evict_the_oldest(records):
    limit = 4
    store = Store(limit)
    for t, idents in records:
        existing = {id(g): g for i in idents if (g := store.by_member.get(i)) is not None}
        union = {i: m for g in existing.values() for i, m in g.members.items()}
        result = store.ingest(idents, t)
        assert set(idents) <= set(result.graph.members), "the record's identities stay together"
        assert not set(result.evicted) & set(idents)
        for e in result.evicted:
            assert store.by_member[e].members.keys() == {e} and not store.by_member[e].links
        kept = [i for i in union if i not in idents and i not in result.evicted]
        if result.evicted:
            # first in, first out: no kept identity is older than an evicted one
            newest_evicted = max((union[e].first_seen_ms, e.ns, e.value) for e in result.evicted)
            assert all((union[i].first_seen_ms, i.ns, i.value) > newest_evicted for i in kept)
            # and no more were evicted than needed: putting the last one back would overflow the graph
            keep = (set(union) | set(idents)) - set(result.evicted[:-1])
            links = {k for g in existing.values() for k in g.links} | {
                link_key(a, b) for a in idents for b in idents if a != b}
            undo = Graph({i: Member(0, 0) for i in keep},
                         {k: Link(0, 0) for k in links if k[0] in keep and k[1] in keep})
            home = next(c for c in undo.components() if idents[0] in c.members)
            assert len(home.members) > limit
        assert (result.graph.members.keys() | {i for d in result.detached for i in d.members}) == \
            set(union) | set(idents)
        for g in store.graphs():
            assert len(g.members) <= limit
            assert is_connected(g)
            assert all(a < b and a in g.members and b in g.members for a, b in g.links)


@PROPS
@given(records=record_lists(BIG_POOL, 4, max_records=12), data=st.data())
def test_stitch_does_not_depend_on_the_order_of_its_inputs(records, data):
    store = Store(5)
    for t, idents in records[:-1]:
        store.ingest(idents, t)
    t, idents = records[-1]
    existing = list({id(g): g for i in idents if (g := store.by_member.get(i)) is not None}.values())
    r1 = stitch(existing, idents, t, limit=5)
    r2 = stitch(data.draw(st.permutations(existing)), data.draw(st.permutations(idents)), t, limit=5)
    assert canon(r1.graph) == canon(r2.graph)
    assert r1.evicted == r2.evicted
    assert [canon(g) for g in r1.detached] == [canon(g) for g in r2.detached]
    assert list(r1.graph.members) == list(r2.graph.members)


@st.composite
def graphs(draw) -> Graph:
    members = draw(st.lists(st.sampled_from(BIG_POOL), min_size=1, max_size=12, unique=True))
    pairs = [link_key(a, b) for n, a in enumerate(members) for b in members[n + 1:]]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=20)) if pairs else []
    return Graph({i: Member(n, n + 5) for n, i in enumerate(members)},
                 {k: Link(n, n + 1) for n, k in enumerate(chosen)})


@PROPS
@given(g=graphs(), data=st.data())
def test_remove_leaves_connected_disjoint_components_with_exactly_the_other_links(g, data):
    gone = data.draw(st.sampled_from(sorted(g.members)))
    before = canon(g)
    parts = remove(g, gone)
    assert canon(g) == before
    seen: set[Ident] = set()
    for p in parts:
        assert is_connected(p) and p.members
        assert not seen & p.members.keys()
        seen |= p.members.keys()
        assert all(p.members[i] == g.members[i] for i in p.members)
        assert all(a in p.members and b in p.members for a, b in p.links)
    assert seen == g.members.keys() - {gone}
    assert ({k: v for p in parts for k, v in p.links.items()}
            == {k: v for k, v in g.links.items() if gone not in k})
    assert [min(p.members) for p in parts] == sorted(min(p.members) for p in parts)


@PROPS
@given(g=graphs())
def test_components_cover_the_graph(g):
    parts = g.components()
    assert sum(len(p.members) for p in parts) == len(g.members)
    assert {k for p in parts for k in p.links} == g.links.keys()
    assert all(is_connected(p) for p in parts)
    assert [min(p.members) for p in parts] == sorted(min(p.members) for p in parts)


def test_a_full_sized_graph_stitches_quickly():
    rng = random.Random(7)
    store = Store(50)
    pool = [cid(f"p{n}") for n in range(400)]
    for t in range(2000):
        store.ingest(rng.sample(pool, rng.randint(1, 6)), t)
    assert all(len(g.members) <= 50 and is_connected(g) for g in store.graphs())
