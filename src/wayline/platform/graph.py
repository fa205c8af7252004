"""The identity graph as pure data: which identities are one person, and how stitching changes that.

Identities seen together in one record are linked pairwise; a graph is a connected set of linked
identities. A graph holds at most `limit` identities: when a record would grow it past that, the
oldest identities (first in, first out) that the record did not carry are removed — each becomes a
graph of its own — and whatever the removals cut off becomes separate graphs too.

Everything here is deterministic: members and links are kept in sorted order and no result depends
on the order of the inputs, so two processes stitching the same records agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from wayline.platform.identity import Ident

LinkKey = tuple[Ident, Ident]


# Members and links are values: code that changes one's times makes a new one (graphs share them).
@dataclass(slots=True)
class Member:
    first_seen_ms: int
    last_seen_ms: int


@dataclass(slots=True)
class Link:
    first_seen_ms: int
    last_seen_ms: int


@dataclass(slots=True)
class Graph:
    members: dict[Ident, Member] = field(default_factory=dict)
    links: dict[LinkKey, Link] = field(default_factory=dict)  # key (a, b) with a < b

    def copy(self) -> Graph:
        return Graph({i: Member(m.first_seen_ms, m.last_seen_ms) for i, m in self.members.items()},
                     {k: Link(v.first_seen_ms, v.last_seen_ms) for k, v in self.links.items()})

    def components(self) -> list[Graph]:
        """The connected components as separate graphs (copies), ordered by their smallest member."""
        return _split(self.members, self.links)


@dataclass(slots=True)
class StitchResult:
    graph: Graph  # the graph holding the record's identities, after linking and eviction
    evicted: list[Ident]  # removed by the graph limit, oldest first; each is a singleton in `detached`
    detached: list[Graph]  # split off from `graph` by the eviction, ordered by smallest member


def link_key(a: Ident, b: Ident) -> LinkKey:
    return (a, b) if a < b else (b, a)


def fifo_key(ident: Ident, member: Member) -> tuple[int, str, str]:
    """Eviction order: first seen first, ties broken by namespace then value."""
    return (member.first_seen_ms, ident.ns, ident.value)


def stitch(existing: Iterable[Graph], idents: Sequence[Ident], at_ms: int, *,
           limit: int = 50) -> StitchResult:
    """Link one record's identities, seen at `at_ms`, into the graphs that already hold any of them.

    `existing` are the current (disjoint) graphs containing at least one of `idents`; they are not
    modified. Every pair of the record's distinct identities is linked; members and links keep the
    earliest and latest time they were seen. If the union holds more than `limit` identities, the
    oldest ones the record does not carry are removed (ascending first seen, then namespace, then
    value) — only as many as needed for the record's graph to fit, since removing one can cut
    others off into separate graphs, which then no longer count against the record's graph.
    A ValueError when the record has no identity or more than `limit`, or when an existing graph
    holds none of them (the result would not be one connected graph).
    """
    record = sorted(set(idents))
    if not record:
        raise ValueError("a record without identities has nothing to stitch")
    if len(record) > limit:
        raise ValueError(f"a record with {len(record)} identities exceeds the graph limit of {limit}")
    graphs = list(existing)
    if not graphs:  # new identities only (the common case): the record is the graph, already in order
        return StitchResult(Graph({a: Member(at_ms, at_ms) for a in record},
                                  {(a, b): Link(at_ms, at_ms) for n, a in enumerate(record) for b in record[n + 1:]}),
                            [], [])
    in_record = set(record)

    # Members and links are never changed in place (a changed one is replaced), so the result can
    # share the unchanged ones with `existing`; the graphs are disjoint, so their dicts just combine.
    members: dict[Ident, Member] = {}
    links: dict[LinkKey, Link] = {}
    for g in graphs:
        if in_record.isdisjoint(g.members):
            raise ValueError("an existing graph holds none of the record's identities")
        members.update(g.members)
        links.update(g.links)
    grew = len(graphs) != 1  # new keys: the result's order must be made again
    for i, a in enumerate(record):
        m = members.get(a)
        if m is None:
            members[a] = Member(at_ms, at_ms)
            grew = True
        elif at_ms < m.first_seen_ms or at_ms > m.last_seen_ms:
            members[a] = Member(min(m.first_seen_ms, at_ms), max(m.last_seen_ms, at_ms))
        for b in record[i + 1:]:  # record is sorted, so a < b
            lk = links.get((a, b))
            if lk is None:
                links[(a, b)] = Link(at_ms, at_ms)
                grew = True
            elif at_ms < lk.first_seen_ms or at_ms > lk.last_seen_ms:
                links[(a, b)] = Link(min(lk.first_seen_ms, at_ms), max(lk.last_seen_ms, at_ms))

    if len(members) <= limit:
        if grew:
            return StitchResult(Graph(dict(sorted(members.items())), dict(sorted(links.items()))), [], [])
        return StitchResult(Graph(members, links), [], [])

    evicted = _to_evict(members, links, record, limit)
    gone = set(evicted)
    kept_members = {i: m for i, m in members.items() if i not in gone}
    kept_links = {k: v for k, v in links.items() if k[0] not in gone and k[1] not in gone}
    parts = _split(kept_members, kept_links)
    home = next(g for g in parts if record[0] in g.members)
    detached = [g for g in parts if g is not home]
    detached += [_graph({i: members[i]}, {}) for i in evicted]
    detached.sort(key=lambda g: next(iter(g.members)))
    return StitchResult(home, evicted, detached)


def remove(graph: Graph, ident: Ident) -> list[Graph]:
    """Forget one identity (a privacy delete): drop it and its links; the rest as connected graphs.

    A KeyError when `ident` is not a member. The result is ordered by smallest member, possibly empty.
    """
    if ident not in graph.members:
        raise KeyError(ident)
    return _split({i: m for i, m in graph.members.items() if i != ident},
                  {k: v for k, v in graph.links.items() if ident not in k})


# -- internals ------------------------------------------------------------------------------------


def _to_evict(members: dict[Ident, Member], links: dict[LinkKey, Link], record: list[Ident],
              limit: int) -> list[Ident]:
    """The shortest oldest-first prefix of the non-record members whose removal fits the record's graph.

    Removing more members only shrinks the record's component, so the answer is found backwards:
    start with every candidate removed (the record alone fits, as it has at most `limit` identities),
    put candidates back newest first with a union-find, and stop just before the component would
    exceed `limit`. O(members + links), near enough.
    """
    in_record = set(record)
    candidates = sorted((i for i in members if i not in in_record), key=lambda i: fifo_key(i, members[i]))
    neighbours: dict[Ident, list[Ident]] = {i: [] for i in members}
    for a, b in links:
        neighbours[a].append(b)
        neighbours[b].append(a)

    parent: dict[Ident, Ident] = {}
    size: dict[Ident, int] = {}

    def find(x: Ident) -> Ident:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(a: Ident, b: Ident) -> None:
        ra, rb = find(a), find(b)
        if ra == rb:
            return
        if size[ra] < size[rb]:
            ra, rb = rb, ra
        parent[rb] = ra
        size[ra] += size[rb]

    def activate(x: Ident) -> None:
        parent[x], size[x] = x, 1
        for n in neighbours[x]:
            if n in parent:
                union(x, n)

    for x in record:
        activate(x)
    anchor = record[0]
    for k in range(len(candidates) - 1, -1, -1):
        activate(candidates[k])
        if size[find(anchor)] > limit:
            return candidates[:k + 1]
    return []  # only when the union was not connected to begin with


def _graph(members: dict[Ident, Member], links: dict[LinkKey, Link]) -> Graph:
    return Graph({i: Member(members[i].first_seen_ms, members[i].last_seen_ms) for i in sorted(members)},
                 {k: Link(links[k].first_seen_ms, links[k].last_seen_ms) for k in sorted(links)})


def _split(members: dict[Ident, Member], links: dict[LinkKey, Link]) -> list[Graph]:
    neighbours: dict[Ident, list[Ident]] = {i: [] for i in members}
    for a, b in links:
        neighbours[a].append(b)
        neighbours[b].append(a)
    component: dict[Ident, int] = {}
    groups: list[list[Ident]] = []
    for start in sorted(members):
        if start in component:
            continue
        n = len(groups)
        component[start] = n
        group, stack = [start], [start]
        while stack:
            for nb in neighbours[stack.pop()]:
                if nb not in component:
                    component[nb] = n
                    group.append(nb)
                    stack.append(nb)
        groups.append(group)
    group_links: list[list[LinkKey]] = [[] for _ in groups]
    for key in links:
        group_links[component[key[0]]].append(key)
    return [_graph({i: members[i] for i in g}, {k: links[k] for k in ks})
            for g, ks in zip(groups, group_links, strict=True)]
