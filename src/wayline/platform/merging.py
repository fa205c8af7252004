"""Profile merging: fragments in, one merged profile out. Pure (no I/O), on the ingestion hot path.

A *fragment* is what one dataset knows about one primary identity; `upsert` folds a dataset's records
about that identity into its fragment, and `merge` combines the fragments of a profile under a merge
policy.

**Attributes.** An attribute is a leaf of a body: a scalar (string, number, boolean, or null, since
a JSON null is a value that was sent) or a whole array. Arrays are taken whole from the winning
fragment, never merged element by element (union fields aside). Objects are not attributes: they
merge key by key, recursively. An attribute is named by its JSON pointer (RFC 6901, `~` and `/`
escaped), e.g. `/person/name/firstName`.

**Union fields** (top level only) merge element-wise across fragments, never whole:

- `identityMap`: per namespace code, the union of the items keyed by their `id`; an item is
  one attribute, pointer `/identityMap/<code>/<id>`, taken whole (`primary`,
  `authenticatedState`) from the fragment that wins that item. Namespaces come out sorted by code and
  items sorted by id.
- `pushNotificationDetails`: the union of the items keyed by their `token`, pointer
  `/pushNotificationDetails/<token>`, sorted by token.

Items without a string key, and union values of the wrong shape (an `identityMap` that is not an
object, a namespace or `pushNotificationDetails` that is not an array), are dropped.

**Winner of an attribute** among the fragments that have it. Its update time in a fragment is
`leaf_ms[pointer]`, else the fragment's `updated_ms`.

- `timestampOrdered`: the greatest update time wins.
- `dataSetPrecedence`: the fragment whose dataset comes first in `order` wins; datasets not listed
  rank after all listed ones; within one rank, the greatest update time wins.
- Ties go to the greatest (dataset id, namespace, identity value), then to the greatest value by its
  canonical JSON (sorted keys), then (for `sources` only) to the greatest record id: the result never
  depends on the order of the fragments.

**Type conflicts.** Where one fragment has an object and another a leaf at the same path, the path is
one attribute: its whole value, object or not, comes from the winner. An object's update time there
is that of its most recently updated attribute (`updated_ms` when it has none).

The merged profile has no top-level `_id` (a record's id, not the person's); `timestamp` and every
other field merge as ordinary attributes. It is made of fresh objects (no aliasing of fragment
bodies). `merge([])` is `{}`. With `explain=True`, `sources` maps the pointer of every attribute of
the merged profile to the fragment that supplied it (`Source.updated_ms` is that attribute's update
time in that fragment).

**Upsert.** A record updates its fragment attribute by attribute: for each attribute the newer update
time wins (the record's attributes all have its `ts_ms`), ties going to the greater value by
canonical JSON; attributes the record does not mention are kept; union fields merge item by item.
The fragment's `updated_ms` is the greatest record time, its `record_id` that of the greatest
(time, record id) (no id ranks lowest), and `leaf_ms` keeps only the attribute times that differ
from `updated_ms` (None when none do); `_id` is kept in fragments as an ordinary attribute.

Guarantees (tested):

- `merge` is independent of the order of the fragments (profile and sources), and unchanged by
  duplicated fragments; merging one fragment gives its body without `_id` (with union fields in
  their sorted form).
- When records agree on which paths are objects (as records validated against one schema do),
  upserting them in any order gives an equal fragment, and merging that fragment with others gives
  the same profile as merging the records as separate fragments of that dataset and identity. Ties
  are broken by value rather than by record id for that reason: a fragment keeps one record id, not
  one per attribute. Across a type conflict, the upsert result can depend on arrival order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

TIMESTAMP_ORDERED = "timestampOrdered"
DATASET_PRECEDENCE = "dataSetPrecedence"
ATTRIBUTE_MERGES = (TIMESTAMP_ORDERED, DATASET_PRECEDENCE)

_IDENTITY_MAP = "identityMap"
_PUSH = "pushNotificationDetails"


class Fragment(NamedTuple):
    """A profile fragment: what one dataset knows about one primary identity. (A named tuple, not a
    frozen dataclass: ingestion builds several per record, and a tuple is built 3x faster.)"""

    dataset_id: str
    ns: str  # namespace code of the fragment's primary identity, e.g. "Email"
    value: str  # the identity value
    body: dict  # the record fields (validated XDM: nested dicts, lists, scalars)
    updated_ms: int  # when the fragment was last updated (record timestamp)
    record_id: str | None = None  # _id of the record that last updated it
    leaf_ms: dict[str, int] | None = None  # attribute pointer -> update time, where not updated_ms


@dataclass(frozen=True, slots=True)
class Policy:
    id: str
    graph: str  # "none" | "pdg" (the caller picks the fragments)
    attribute_merge: str  # "timestampOrdered" | "dataSetPrecedence"
    order: tuple[str, ...] = ()  # dataset ids, highest precedence first (dataSetPrecedence)


@dataclass(frozen=True, slots=True)
class Source:
    dataset_id: str
    ns: str
    value: str
    record_id: str | None
    updated_ms: int  # the attribute's update time in that fragment


@dataclass(slots=True)
class Merged:
    profile: dict
    sources: dict[str, Source] = field(default_factory=dict)  # filled when explain=True


# -- helpers ---------------------------------------------------------------------------------------

def _esc(key: str) -> str:
    """One JSON pointer reference token (RFC 6901)."""
    if "~" in key or "/" in key:
        return key.replace("~", "~0").replace("/", "~1")
    return key


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _copy(v: Any) -> Any:
    if type(v) in _SCALARS:
        return v
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_copy(x) for x in v]
    return v


def _same(v: Any) -> Any:
    return v


def _canon(v: Any) -> bytes:
    """A total order on values for the last tie-break: canonical JSON bytes."""
    try:
        return orjson.dumps(v, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # not JSON (orjson.JSONEncodeError is a TypeError): still deterministic
        return b"\xff" + repr(v).encode()


def _rid_key(rid: str | None) -> tuple[bool, str]:
    return (rid is not None, rid or "")  # no record id ranks lowest


def _attrs(d: dict, ptr: str) -> Iterable[str]:
    """The pointers of the attributes (non-object leaves) inside object `d` at `ptr`."""
    for k, v in d.items():
        p = ptr + "/" + _esc(k)
        if isinstance(v, dict):
            yield from _attrs(v, p)
        else:
            yield p


_MISSING = object()


def _group(entries: list[tuple[int, dict]]) -> dict[str, list[tuple[int, Any]]]:
    """(fragment, object) pairs -> key -> [(fragment, value under that key)], in the entries' order."""
    groups: dict[str, list[tuple[int, Any]]] = {}
    for e in entries:
        i = e[0]
        for k, v in e[1].items():
            g = groups.get(k)
            if g is None:
                groups[k] = [(i, v)]
            else:
                g.append((i, v))
    return groups


class _Run:
    """One merge: fragments indexed by position, with their precedence, identity rank and times."""

    __slots__ = ("_src", "base", "copy", "explain", "frags", "lm", "ptrs", "sources", "strength", "target",
                 "times", "uniform", "upd")

    def __init__(self, frags: list[Fragment], prec: list[int], idrank: list[int], *, explain: bool,
                 times: dict[str, int] | None, target: int, fresh: bool = True) -> None:
        self.frags = frags
        self.copy = _copy if fresh else _same  # not fresh: the result shares values with the fragments
        self.upd = [f.updated_ms for f in frags]
        self.lm = [f.leaf_ms or None for f in frags]
        self.base = [(p, f.updated_ms, r) for p, f, r in zip(prec, frags, idrank, strict=True)]
        self.strength = _ranks(self.base)  # the order of the fragments when no attribute has its own time
        self.uniform = all(lm is None for lm in self.lm)
        self.explain = explain
        self.sources: dict[str, Source] = {}
        self.times = times  # upsert: pointer -> time of the winning attribute, where it is not `target`
        self.target = target
        self._src: dict[tuple[int, int], Source] = {}
        # pointers are needed only to look up per-attribute times or to report attributes
        self.ptrs = explain or times is not None or any(lm is not None for lm in self.lm)

    # -- times and winners

    def _time(self, i: int, ptr: str, v: Any, leaf: bool) -> int:
        lm = self.lm[i]
        if lm is None:
            return self.upd[i]
        if not leaf and isinstance(v, dict):  # an object in a type conflict: its latest attribute
            best = None
            for p in _attrs(v, ptr):
                t = lm.get(p, self.upd[i])
                if best is None or t > best:
                    best = t
            return self.upd[i] if best is None else best
        return lm.get(ptr, self.upd[i])

    def _key(self, i: int, ptr: str | None, v: Any, leaf: bool) -> tuple[int, int, int]:
        if self.lm[i] is None:
            return self.base[i]
        prec, _, rank = self.base[i]
        return (prec, self._time(i, ptr, v, leaf), rank)  # type: ignore[arg-type]

    def winner(self, cands: list[tuple[int, Any]], ptr: str | None, leaf: bool = False) -> tuple[int, Any]:
        """The winning (fragment, value); `cands` lists the fragments in ascending order of `base`."""
        if self.uniform:  # the strongest fragment, unless it ties
            last, s = cands[-1], self.strength
            if s[last[0]] != s[cands[-2][0]]:
                return last
        best = cands[0]
        best_k = self._key(best[0], ptr, best[1], leaf)
        tied: list[tuple[int, Any]] | None = None
        for c in cands[1:]:
            k = self._key(c[0], ptr, c[1], leaf)
            if k > best_k:
                best, best_k, tied = c, k, None
            elif k == best_k:
                if tied is None:
                    tied = [best]
                tied.append(c)
        if tied is not None:
            frags = self.frags
            best = max(tied, key=lambda c: (_canon(c[1]), _rid_key(frags[c[0]].record_id)))
        return best

    # -- recording what supplied what

    def note(self, i: int, ptr: str, v: Any, leaf: bool = False) -> None:
        """Record sources / times for the value `v` that fragment `i` supplies at `ptr`."""
        lm, upd, times = self.lm[i], self.upd[i], self.times
        if not self.explain and (times is None or (lm is None and upd == self.target)):
            return
        ptrs = _attrs(v, ptr) if not leaf and isinstance(v, dict) else (ptr,)
        for p in ptrs:
            t = upd if lm is None else lm.get(p, upd)
            if self.explain:
                s = self._src.get((i, t))
                if s is None:
                    f = self.frags[i]
                    s = self._src[(i, t)] = Source(f.dataset_id, f.ns, f.value, f.record_id, t)
                self.sources[p] = s
            if times is not None and t != self.target:
                times[p] = t

    # -- objects

    def entries(self) -> list[tuple[int, dict]]:
        """The bodies in ascending order of `base`, the order that `winner` expects of candidates."""
        return sorted(((i, f.body) for i, f in enumerate(self.frags)), key=lambda e: self.base[e[0]])

    def top(self, entries: list[tuple[int, dict]], drop_id: bool) -> dict:
        """The merged body: the objects merged key by key, union fields item by item."""
        groups = _group(entries)
        if drop_id:
            groups.pop("_id", None)
        im = groups.pop(_IDENTITY_MAP, None)
        push = groups.pop(_PUSH, None)
        out = self.fill(groups, "" if self.ptrs else None)
        if im is not None and (v := self.identity_map(im)) is not _MISSING:
            out[_IDENTITY_MAP] = v
        if push is not None and (v := self.push_details(push)) is not _MISSING:
            out[_PUSH] = v
        return out

    def fill(self, groups: dict[str, list[tuple[int, Any]]], ptr: str | None) -> dict:
        """The merged object at `ptr`, given what each fragment has under each key (the hot loop)."""
        out: dict[str, Any] = {}
        for k, g in groups.items():
            p = None if ptr is None else ptr + "/" + _esc(k)
            if len(g) == 1:
                i, v = g[0]
            else:
                for c in g:
                    if not isinstance(c[1], dict):  # a leaf somewhere: one attribute, whole value to the winner
                        i, v = self.winner(g, p)
                        break
                else:  # objects everywhere: key by key
                    out[k] = self.fill(_group(g), p)
                    continue
            if p is not None:
                self.note(i, p, v)
            out[k] = self.copy(v)
        return out

    # -- union fields

    def _union(self, buckets: dict[str, list[tuple[int, Any]]], base: str | None) -> list:
        out = []
        for key in sorted(buckets):
            cands = buckets[key]
            p = None if base is None else base + _esc(key)
            i, item = cands[0] if len(cands) == 1 else self.winner(cands, p, leaf=True)
            if p is not None:
                self.note(i, p, item, leaf=True)
            out.append(self.copy(item))
        return out

    def identity_map(self, g: list[tuple[int, Any]]) -> Any:
        by_ns: dict[str, dict[str, list[tuple[int, Any]]]] = {}
        seen = False
        for i, im in g:
            if not isinstance(im, dict):
                continue
            seen = True
            for code, items in im.items():
                if not isinstance(items, list):
                    continue
                b = by_ns.get(code)
                if b is None:
                    b = by_ns[code] = {}
                for it in items:
                    if isinstance(it, dict):
                        key = it.get("id")
                        if isinstance(key, str):
                            c = b.get(key)
                            if c is None:
                                b[key] = [(i, it)]
                            else:
                                c.append((i, it))
        if not seen:
            return _MISSING
        ptrs = self.ptrs
        return {code: self._union(by_ns[code], "/identityMap/" + _esc(code) + "/" if ptrs else None)
                for code in sorted(by_ns)}

    def push_details(self, g: list[tuple[int, Any]]) -> Any:
        b: dict[str, list[tuple[int, Any]]] = {}
        seen = False
        for i, items in g:
            if not isinstance(items, list):
                continue
            seen = True
            for it in items:
                if isinstance(it, dict):
                    key = it.get("token")
                    if isinstance(key, str):
                        c = b.get(key)
                        if c is None:
                            b[key] = [(i, it)]
                        else:
                            c.append((i, it))
        if not seen:
            return _MISSING
        return self._union(b, "/" + _PUSH + "/" if self.ptrs else None)


def _keyed(items: list, field: str) -> dict[str, Any] | None:
    """A union field's items by their key (`id` or `token`), items without a string key dropped;
    None when a key repeats (the caller then needs the general tie-break)."""
    keyed: dict[str, Any] = {}
    for it in items:
        if isinstance(it, dict):
            key = it.get(field)
            if isinstance(key, str):
                if key in keyed:
                    return None
                keyed[key] = it
    return keyed


def _single(body: dict, *, drop_id: bool, fresh: bool) -> dict | None:
    """The merge of one fragment without the general machinery (most merges on the ingestion path:
    a new fragment, a profile of one fragment). None when a union field has a repeated key, which
    needs the general tie-break."""
    out = {}
    for k, v in body.items():
        if k == _IDENTITY_MAP:
            if not isinstance(v, dict):
                continue
            im = {}
            for code in sorted(v):
                items = v[code]
                if not isinstance(items, list):
                    continue
                keyed = _keyed(items, "id")
                if keyed is None:
                    return None
                im[code] = [_copy(keyed[x]) if fresh else keyed[x] for x in sorted(keyed)]
            out[k] = im
        elif k == _PUSH:
            if not isinstance(v, list):
                continue
            keyed = _keyed(v, "token")
            if keyed is None:
                return None
            out[k] = [_copy(keyed[x]) if fresh else keyed[x] for x in sorted(keyed)]
        elif k == "_id" and drop_id:
            continue
        else:
            out[k] = _copy(v) if fresh else v
    return out


def _overlay(bodies: list[dict], drop_id: bool) -> dict | None:
    """The merge of bodies given weakest first, when every attribute's winner is simply the strongest
    fragment that has it (uniform times, no two fragments of equal strength): the common merge of
    ingestion, without the general machinery. Shares values with the bodies. None when a union
    field repeats a key within one body (that needs the general tie-break)."""
    out: dict[str, Any]
    ims: list[Any] = []
    pushes: list[Any] = []
    if len(bodies) == 2:  # the commonest: two fragments, laid over each other by dict unpacking
        weak, strong = bodies
        out = {**weak, **strong}
        for body in bodies:
            if _IDENTITY_MAP in body:
                ims.append(body[_IDENTITY_MAP])
            if _PUSH in body:
                pushes.append(body[_PUSH])
        out.pop(_IDENTITY_MAP, None)
        out.pop(_PUSH, None)
        for k in weak.keys() & strong.keys():
            v, w = weak[k], strong[k]
            if isinstance(v, dict) and isinstance(w, dict) and k != _IDENTITY_MAP and k != _PUSH:
                out[k] = _overlay_pair(v, w)
        if drop_id:
            out.pop("_id", None)
    else:
        out = {}
        multi: dict[str, list[Any]] | None = None
        for body in bodies:
            for k, v in body.items():
                if k == _IDENTITY_MAP:
                    ims.append(v)
                elif k == _PUSH:
                    pushes.append(v)
                else:
                    if k in out:
                        if multi is None:
                            multi = {}
                        seen = multi.get(k)
                        if seen is None:
                            multi[k] = [out[k], v]
                        else:
                            seen.append(v)
                    out[k] = v  # the strongest so far
        if drop_id:
            out.pop("_id", None)
        if multi is not None:
            for k, values in multi.items():
                if k in out and all(isinstance(v, dict) for v in values):  # objects everywhere: key by key
                    out[k] = _overlay_objects(values)
                # else a leaf somewhere: the whole value of the strongest, already in out[k]
    if ims:
        by_ns: dict[str, dict[str, Any]] = {}
        seen_map = False
        for im in ims:
            if not isinstance(im, dict):
                continue
            seen_map = True
            for code, items in im.items():
                if not isinstance(items, list):
                    continue
                mine = _keyed(items, "id")
                if mine is None:
                    return None
                by_ns.setdefault(code, {}).update(mine)  # a stronger fragment's item replaces
        if seen_map:
            out[_IDENTITY_MAP] = {code: [by_ns[code][x] for x in sorted(by_ns[code])] for code in sorted(by_ns)}
    if pushes:
        tokens: dict[str, Any] = {}
        seen_push = False
        for items in pushes:
            if not isinstance(items, list):
                continue
            seen_push = True
            mine = _keyed(items, "token")
            if mine is None:
                return None
            tokens.update(mine)
        if seen_push:
            out[_PUSH] = [tokens[x] for x in sorted(tokens)]
    return out


def _overlay_pair(weak: dict, strong: dict) -> dict:
    """`_overlay_objects` of two objects: the stronger's keys over the weaker's, objects in both merged."""
    out = {**weak, **strong}
    for k in weak.keys() & strong.keys():
        v, w = weak[k], strong[k]
        if isinstance(v, dict) and isinstance(w, dict):
            out[k] = _overlay_pair(v, w)
    return out


def _overlay_objects(objs: list[dict]) -> dict:
    """`_overlay` below the top level: objects weakest first, merged key by key."""
    out: dict[str, Any] = {}
    multi: dict[str, list[Any]] | None = None
    for d in objs:
        for k, v in d.items():
            if k in out:
                if multi is None:
                    multi = {}
                seen = multi.get(k)
                if seen is None:
                    multi[k] = [out[k], v]
                else:
                    seen.append(v)
            out[k] = v
    if multi is not None:
        for k, values in multi.items():
            if all(isinstance(v, dict) for v in values):
                out[k] = _overlay_objects(values)
    return out


def _ranks(keys: list[Any]) -> list[int]:
    """Dense ranks of the keys (equal keys, equal ranks; greater key, greater rank)."""
    order = {k: r for r, k in enumerate(sorted(set(keys)))}
    return [order[k] for k in keys]


# -- the API ---------------------------------------------------------------------------------------

def merge(fragments: Iterable[Fragment], policy: Policy, *, explain: bool = False, fresh: bool = True) -> Merged:
    """The merged profile of `fragments` under `policy` (see the module doc for the rules).

    `fresh=False` lets the result share unchanged values with the fragments' bodies (for a caller
    that only serialises it, like the stored view)."""
    mode = policy.attribute_merge
    if mode not in ATTRIBUTE_MERGES:
        raise ValueError(f"unknown attribute merge {mode!r} in merge policy {policy.id!r} "
                         f"(expected one of {', '.join(ATTRIBUTE_MERGES)})")
    frags = list(fragments)
    if not frags:
        return Merged({}, {})
    if len(frags) == 1 and not explain:
        one = _single(frags[0].body, drop_id=True, fresh=fresh)
        if one is not None:
            return Merged(one, {})
    if mode == DATASET_PRECEDENCE:
        pos: dict[str, int] = {}
        for n, d in enumerate(policy.order):
            pos.setdefault(d, n)
        last = len(policy.order)
        prec = [-pos.get(f.dataset_id, last) for f in frags]
    else:
        prec = [0] * len(frags)
    idrank = _ranks([(f.dataset_id, f.ns, f.value) for f in frags])
    if not explain and all(not f.leaf_ms for f in frags):
        base = [(p, f.updated_ms, r) for p, f, r in zip(prec, frags, idrank, strict=True)]
        if len(set(base)) == len(base):  # no ties: the strongest fragment having an attribute wins it
            out = _overlay([frags[i].body for i in sorted(range(len(frags)), key=base.__getitem__)], drop_id=True)
            if out is not None:
                return Merged(_copy(out) if fresh else out, {})
    run = _Run(frags, prec, idrank, explain=explain, times=None, target=0, fresh=fresh)
    profile = run.top(run.entries(), drop_id=True)
    return Merged(profile, run.sources)


def merged_json(groups: Iterable[Sequence[Any]], policy: Policy) -> list[str]:
    """The JSON text of `merge(group, policy, fresh=False).profile` for each group of fragments, given
    as tuples in `Fragment`'s field order whose `body` and `leaf_ms` may still be JSON text (as
    stored). The stored view's merge: a whole unit's worth at once, so that it can run in another
    process (`prepare_pool`) on what the writer read or wrote, without parsing it there."""
    out = []
    loads, dumps, frag = orjson.loads, orjson.dumps, Fragment
    for group in groups:
        fs = []
        for d, ns, value, body, updated_ms, record_id, leaf_ms in group:
            if type(body) is not dict:
                body = loads(body)
            if leaf_ms is not None and type(leaf_ms) is not dict:
                leaf_ms = loads(leaf_ms) or None
            fs.append(frag(d, ns, value, body, updated_ms, record_id, leaf_ms))
        out.append(dumps(merge(fs, policy, fresh=False).profile).decode())
    return out


def new_fragment(body: dict) -> dict | None:
    """The body of the fragment one record makes where there was none: what `upsert(None, ...)` keeps,
    or None when that needs the general path (a union field repeats a key)."""
    return _single(body, drop_id=False, fresh=False)


def upsert(existing: Fragment | None, *, dataset_id: str, ns: str, value: str, body: dict, ts_ms: int,
           record_id: str | None) -> Fragment:
    """The fragment `existing` (None: a new one) updated by one record (see the module doc)."""
    record = Fragment(dataset_id, ns, value, body, ts_ms, record_id)
    if existing is None:
        one = new_fragment(body)  # shares the record's values: never mutated
        if one is not None:
            return Fragment(dataset_id, ns, value, one, ts_ms, record_id, None)
        frags, upd, rid = [record], ts_ms, record_id
    else:
        if (existing.dataset_id, existing.ns, existing.value) != (dataset_id, ns, value):
            raise ValueError(f"cannot upsert a record of {dataset_id}/{ns}:{value!r} into the fragment of "
                             f"{existing.dataset_id}/{existing.ns}:{existing.value!r}")
        frags = [existing, record]
        upd = max(existing.updated_ms, ts_ms)
        newer = (ts_ms, _rid_key(record_id)) > (existing.updated_ms, _rid_key(existing.record_id))
        rid = record_id if newer else existing.record_id
    times: dict[str, int] = {}
    # Shares values with `existing` and the record, like the new-fragment case: fragments are never mutated.
    run = _Run(frags, [0] * len(frags), [0] * len(frags), explain=False, times=times, target=upd, fresh=False)
    merged = run.top(run.entries(), drop_id=False)
    return Fragment(dataset_id, ns, value, merged, upd, rid, times or None)


def project(profile: dict, fields: Iterable[str]) -> dict:
    """Only the given dotted paths of `profile` (`person.name` keeps that whole object), copied.

    Paths go through objects only; a path that is absent or runs into a non-object is skipped.
    """
    trie: dict[str, Any] = {}
    for f in fields:
        node = trie
        segs = f.split(".")
        for seg in segs[:-1]:
            nxt = node.get(seg)
            if nxt is True:
                break  # a shorter path already keeps the whole subtree
            node = node.setdefault(seg, {})
        else:
            node[segs[-1]] = True
    return _project(profile, trie)


def _project(d: dict, trie: dict[str, Any]) -> dict:
    out: dict[str, Any] = {}
    for k, sub in trie.items():
        if k not in d:
            continue
        v = d[k]
        if sub is True:
            out[k] = _copy(v)
        elif isinstance(v, dict):
            got = _project(v, sub)
            if got:
                out[k] = got
    return out


def array_violations(body: dict, max_items: int = 500) -> list[dict]:
    """One violation per array of `body` (at any depth) with more than `max_items` items."""
    out: list[dict] = []
    if _has_long(body, max_items):  # pointers are built only when there is something to report
        _arrays(body, "", max_items, out)
    return out


def _has_long(v: Any, max_items: int) -> bool:
    stack = [v]
    while stack:
        x = stack.pop()
        if type(x) is dict:
            stack.extend(y for y in x.values() if type(y) is dict or type(y) is list)
        elif type(x) is list:
            if len(x) > max_items:
                return True
            stack.extend(y for y in x if type(y) is dict or type(y) is list)
        elif isinstance(x, (dict, list)):  # subclasses: the careful walk decides
            return True
    return False


def _arrays(v: Any, ptr: str, max_items: int, out: list[dict]) -> None:
    if isinstance(v, dict):
        for k, x in v.items():
            if isinstance(x, (dict, list)):
                _arrays(x, ptr + "/" + _esc(k), max_items, out)
    elif isinstance(v, list):
        if len(v) > max_items:
            out.append({"pointerToViolation": ptr, "schemaLocation": "#", "keyword": "maxItems",
                        "message": f"array has {len(v)} items; a profile fragment allows at most {max_items} "
                                   f"per array"})
        for n, x in enumerate(v):
            if isinstance(x, (dict, list)):
                _arrays(x, f"{ptr}/{n}", max_items, out)
