"""Profile merging: worked examples, and properties checked against a slow reference implementation."""

from __future__ import annotations

import copy
import functools

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wayline.platform.merging import (
    Fragment,
    Merged,
    Policy,
    Source,
    array_violations,
    merge,
    project,
    upsert,
)

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TS = Policy("ts", "none", "timestampOrdered")


def dsp(*order: str) -> Policy:
    return Policy("dsp", "pdg", "dataSetPrecedence", tuple(order))


def frag(ds: str, body: dict, ms: int, rid: str | None = None, leaf_ms: dict | None = None,
         ns: str = "Email", value: str = "ann@x.com") -> Fragment:
    return Fragment(ds, ns, value, body, ms, rid, leaf_ms)


# -- worked examples -------------------------------------------------------------------------------

CRM = frag("crm", {"_id": "c1", "person": {"name": {"firstName": "Ann", "lastName": "Lee"}},
                   "homeAddress": {"city": "Lyon"}, "loyalty": {"tier": "gold"}}, 1_000, "c1")
WEB = frag("web", {"_id": "w1", "person": {"name": {"firstName": "Annie"}}, "homeAddress": {"city": "Paris"},
                   "mobilePhone": {"number": "+33 6"}}, 2_000, "w1", ns="ECID", value="1" * 38)


def test_timestamp_ordered_takes_each_attribute_from_the_most_recent_fragment() -> None:
    m = merge([CRM, WEB], TS)
    assert m.profile == {"person": {"name": {"firstName": "Annie", "lastName": "Lee"}},
                         "homeAddress": {"city": "Paris"}, "loyalty": {"tier": "gold"},
                         "mobilePhone": {"number": "+33 6"}}
    assert m.sources == {}


def test_dataset_precedence_takes_each_attribute_from_the_first_listed_dataset_that_has_it() -> None:
    m = merge([CRM, WEB], dsp("crm", "web"))
    assert m.profile["person"]["name"] == {"firstName": "Ann", "lastName": "Lee"}
    assert m.profile["homeAddress"] == {"city": "Lyon"}
    assert m.profile["mobilePhone"] == {"number": "+33 6"}  # only web has it
    # an unlisted dataset ranks after every listed one, whatever its times
    assert merge([CRM, WEB], dsp("crm")).profile == m.profile
    assert merge([CRM, WEB], dsp("web")).profile == merge([CRM, WEB], TS).profile
    # within one rank (here: none listed), timestamps decide
    assert merge([CRM, WEB], dsp("other")).profile == merge([CRM, WEB], TS).profile


def test_per_attribute_times_decide_over_the_fragment_time() -> None:
    crm = frag("crm", {"a": 1, "b": 1}, 1_000, leaf_ms={"/b": 3_000})
    web = frag("web", {"a": 2, "b": 2}, 2_000)
    assert merge([crm, web], TS).profile == {"a": 2, "b": 1}


def test_ties_go_to_the_greatest_dataset_namespace_value_then_to_the_greatest_value() -> None:
    a, b = frag("a", {"x": "from a"}, 5), frag("b", {"x": "from b"}, 5)
    assert merge([a, b], TS).profile == merge([b, a], TS).profile == {"x": "from b"}
    e1, e2 = frag("a", {"x": 1}, 5, ns="ECID"), frag("a", {"x": 2}, 5, ns="Email")
    assert merge([e2, e1], TS).profile == {"x": 2}
    same1, same2 = frag("a", {"x": 1, "y": [9]}, 5), frag("a", {"x": 2, "y": [1, 2]}, 5)
    assert merge([same1, same2], TS).profile == merge([same2, same1], TS).profile == {"x": 2, "y": [9]}


def test_identity_map_is_a_union_keyed_by_namespace_and_id() -> None:
    a = frag("a", {"identityMap": {"Email": [{"id": "ann@x.com", "primary": True, "authenticatedState": "ambiguous"}],
                                   "ECID": [{"id": "2" * 38}, {"primary": True}]}}, 1_000)
    b = frag("b", {"identityMap": {"Email": [{"id": "ann@x.com", "primary": False, "authenticatedState": "authenticated"},
                                             {"id": "a2@x.com"}],
                                   "CRMID": [{"id": "c-9"}]}}, 2_000)
    m = merge([b, a], TS, explain=True)
    assert m.profile == {"identityMap": {
        "CRMID": [{"id": "c-9"}],
        "ECID": [{"id": "2" * 38}],  # the item without an id is dropped
        "Email": [{"id": "a2@x.com"}, {"id": "ann@x.com", "primary": False, "authenticatedState": "authenticated"}],
    }}
    assert list(m.profile["identityMap"]) == ["CRMID", "ECID", "Email"]
    assert set(m.sources) == {"/identityMap/CRMID/c-9", "/identityMap/ECID/" + "2" * 38,
                              "/identityMap/Email/a2@x.com", "/identityMap/Email/ann@x.com"}
    assert m.sources["/identityMap/ECID/" + "2" * 38].dataset_id == "a"
    assert m.sources["/identityMap/Email/ann@x.com"].dataset_id == "b"
    # the precedence rule picks the item too
    assert merge([a, b], dsp("a")).profile["identityMap"]["Email"][1]["primary"] is True
    # a per-item time, keyed by the item's pointer
    a2 = frag("a", a.body, 1_000, leaf_ms={"/identityMap/Email/ann@x.com": 5_000})
    assert merge([a2, b], TS).profile["identityMap"]["Email"][1]["primary"] is True


def test_push_notification_details_are_a_union_keyed_by_token() -> None:
    a = frag("a", {"pushNotificationDetails": [{"token": "t2", "platform": "apns", "denylisted": False},
                                               {"platform": "fcm"}]}, 1_000)
    b = frag("b", {"pushNotificationDetails": [{"token": "t2", "platform": "apns", "denylisted": True},
                                               {"token": "t1", "platform": "fcm"}]}, 2_000)
    m = merge([a, b], TS, explain=True)
    assert m.profile == {"pushNotificationDetails": [{"token": "t1", "platform": "fcm"},
                                                     {"token": "t2", "platform": "apns", "denylisted": True}]}
    assert set(m.sources) == {"/pushNotificationDetails/t1", "/pushNotificationDetails/t2"}
    assert merge([a, b], dsp("a")).profile["pushNotificationDetails"][1]["denylisted"] is False


def test_arrays_are_taken_whole_and_null_is_a_value() -> None:
    a = frag("a", {"tags": ["a", "b", "c"], "scores": [{"k": 1}, {"k": 2}], "note": "x"}, 2_000)
    b = frag("b", {"tags": ["z"], "scores": [{"k": 9, "extra": True}], "note": None}, 3_000)
    assert merge([a, b], TS).profile == {"tags": ["z"], "scores": [{"k": 9, "extra": True}], "note": None}
    assert merge([a, b], dsp("a")).profile == {"tags": ["a", "b", "c"], "scores": [{"k": 1}, {"k": 2}], "note": "x"}


def test_record_id_is_dropped_but_timestamp_merges() -> None:
    a = frag("a", {"_id": "r1", "timestamp": "2026-01-01T00:00:00Z", "x": {"_id": "nested ids stay"}}, 1)
    b = frag("b", {"_id": "r2", "timestamp": "2026-02-01T00:00:00Z"}, 2)
    assert merge([a, b], TS).profile == {"timestamp": "2026-02-01T00:00:00Z", "x": {"_id": "nested ids stay"}}


def test_type_conflicts_give_the_whole_value_to_the_winner() -> None:
    leaf = frag("a", {"p": {"q": 5}}, 2_000)
    obj1 = frag("b", {"p": {"q": {"r": 1, "s": 1}}}, 1_000)
    obj2 = frag("c", {"p": {"q": {"t": 2}}}, 3_000)
    for order in ([leaf, obj1, obj2], [obj2, leaf, obj1], [obj1, obj2, leaf]):
        assert merge(order, TS).profile == {"p": {"q": {"t": 2}}}  # not merged with obj1's r, s
        assert merge(order, dsp("a")).profile == {"p": {"q": 5}}
        assert merge(order, dsp("b")).profile == {"p": {"q": {"r": 1, "s": 1}}}
    m = merge([leaf, obj1, obj2], dsp("b"), explain=True)
    assert set(m.sources) == {"/p/q/r", "/p/q/s"} and m.sources["/p/q/r"].dataset_id == "b"
    # an object's time in a conflict is that of its latest attribute
    obj1_later = frag("b", obj1.body, 1_000, leaf_ms={"/p/q/s": 4_000})
    assert merge([leaf, obj1_later, obj2], TS).profile == {"p": {"q": {"r": 1, "s": 1}}}


def test_explain_names_the_fragment_of_each_nested_attribute() -> None:
    crm = frag("crm", CRM.body, 1_000, "c1", leaf_ms={"/loyalty/tier": 500})
    m = merge([crm, WEB], TS, explain=True)
    assert m.sources == {
        "/person/name/firstName": Source("web", "ECID", "1" * 38, "w1", 2_000),
        "/person/name/lastName": Source("crm", "Email", "ann@x.com", "c1", 1_000),
        "/homeAddress/city": Source("web", "ECID", "1" * 38, "w1", 2_000),
        "/loyalty/tier": Source("crm", "Email", "ann@x.com", "c1", 500),
        "/mobilePhone/number": Source("web", "ECID", "1" * 38, "w1", 2_000),
    }
    odd = merge([frag("a", {"a/b": {"c~d": 1}}, 1)], TS, explain=True)
    assert list(odd.sources) == ["/a~1b/c~0d"]


def test_merge_of_nothing_and_fresh_objects() -> None:
    assert merge([], TS) == Merged({}, {})
    assert merge(iter([]), dsp("a"), explain=True).profile == {}
    body = {"a": {"b": [1, {"c": 2}]}, "identityMap": {"Email": [{"id": "x"}]}}
    m = merge([frag("a", body, 1)], TS)
    assert m.profile == body
    m.profile["a"]["b"][1]["c"] = 99
    m.profile["identityMap"]["Email"][0]["id"] = "y"
    assert body == {"a": {"b": [1, {"c": 2}]}, "identityMap": {"Email": [{"id": "x"}]}}


def test_unknown_attribute_merge_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="newestWins"):
        merge([CRM], Policy("p", "none", "newestWins"))
    with pytest.raises(ValueError, match="newestWins"):
        merge([], Policy("p", "none", "newestWins"))


def test_upsert_builds_a_fragment_attribute_by_attribute() -> None:
    kw = {"dataset_id": "crm", "ns": "Email", "value": "ann@x.com"}
    f = upsert(None, **kw, body={"_id": "r1", "a": 1, "n": {"x": 1, "y": 1},
                                 "identityMap": {"Email": [{"id": "b"}, {"id": "a"}, {"no": "id"}]}},
               ts_ms=10, record_id="r1")
    assert f == Fragment("crm", "Email", "ann@x.com", {"_id": "r1", "a": 1, "n": {"x": 1, "y": 1},
                                                       "identityMap": {"Email": [{"id": "a"}, {"id": "b"}]}},
                         10, "r1", None)
    f = upsert(f, **kw, body={"_id": "r2", "n": {"y": 2}, "identityMap": {"Email": [{"id": "c"}]}},
               ts_ms=20, record_id="r2")
    f = upsert(f, **kw, body={"_id": "r0", "a": 0, "n": {"x": 0, "z": 0}}, ts_ms=5, record_id="r0")  # late
    assert f.body == {"_id": "r2", "a": 1, "n": {"x": 1, "y": 2, "z": 0},
                      "identityMap": {"Email": [{"id": "a"}, {"id": "b"}, {"id": "c"}]}}
    assert (f.updated_ms, f.record_id) == (20, "r2")
    assert f.leaf_ms == {"/a": 10, "/n/x": 10, "/n/z": 5, "/identityMap/Email/a": 10, "/identityMap/Email/b": 10}
    # a newer record catches every attribute up: nothing differs from updated_ms any more
    g = upsert(f, **kw, body={"_id": "r3", "a": 3, "n": {"x": 3, "z": 3},
                              "identityMap": {"Email": [{"id": "a"}, {"id": "b"}]}}, ts_ms=30, record_id="r3")
    assert (g.leaf_ms, g.updated_ms, g.record_id) == ({"/n/y": 20, "/identityMap/Email/c": 20}, 30, "r3")
    # same time: the greater record id becomes the fragment's record id; None ranks lowest
    assert upsert(g, **kw, body={}, ts_ms=30, record_id="r2").record_id == "r3"
    assert upsert(g, **kw, body={}, ts_ms=30, record_id="r4").record_id == "r4"
    assert upsert(upsert(None, **kw, body={}, ts_ms=1, record_id=None), **kw, body={}, ts_ms=1,
                  record_id="a").record_id == "a"
    with pytest.raises(ValueError, match="fragment of"):
        upsert(g, dataset_id="web", ns="Email", value="ann@x.com", body={}, ts_ms=1, record_id=None)


def test_project_keeps_only_the_given_paths() -> None:
    profile = {"person": {"name": {"firstName": "Ann", "lastName": "Lee"}, "birthDate": "1990-01-01"},
               "personalEmail": {"address": "ann@x.com"}, "tags": ["a"], "n": 5}
    got = project(profile, ["person.name", "personalEmail.address", "missing.path", "n.deeper", "tags"])
    assert got == {"person": {"name": {"firstName": "Ann", "lastName": "Lee"}},
                   "personalEmail": {"address": "ann@x.com"}, "tags": ["a"]}
    got["person"]["name"]["firstName"] = "X"
    assert profile["person"]["name"]["firstName"] == "Ann"
    assert project(profile, ["person.name.firstName", "person"]) == {"person": profile["person"]}
    assert project(profile, ["person", "person.name.firstName"]) == {"person": profile["person"]}
    assert project(profile, []) == {}


def test_array_violations_name_each_long_array() -> None:
    body = {"ok": [1] * 3, "big": list(range(4)), "nested": {"deep": [{"inner": [0] * 5}], "a/b": [1] * 4}}
    v = array_violations(body, max_items=3)
    assert [x["pointerToViolation"] for x in v] == ["/big", "/nested/deep/0/inner", "/nested/a~1b"]
    assert v[0] == {"pointerToViolation": "/big", "schemaLocation": "#", "keyword": "maxItems",
                    "message": v[0]["message"]}
    assert "4" in v[0]["message"] and "3" in v[0]["message"]
    assert array_violations({"a": [0] * 500}) == []
    assert len(array_violations({"a": [0] * 501})) == 1


# -- a slow reference implementation ---------------------------------------------------------------

def esc(k: str) -> str:
    return k.replace("~", "~0").replace("/", "~1")


def canon(v) -> bytes:
    return orjson.dumps(v, option=orjson.OPT_SORT_KEYS)


def leaves(v, ptr: str) -> list[tuple[str, object]]:
    """(pointer, value) of every attribute under `v` at `ptr` (objects are not attributes)."""
    if isinstance(v, dict):
        return [x for k, sub in v.items() for x in leaves(sub, f"{ptr}/{esc(k)}")]
    return [(ptr, v)]


def time_of(f: Fragment, ptr: str, v, item: bool = False) -> int:
    lm = f.leaf_ms or {}
    if isinstance(v, dict) and not item:
        times = [lm.get(p, f.updated_ms) for p, _ in leaves(v, ptr)]
        return max(times, default=f.updated_ms)
    return lm.get(ptr, f.updated_ms)


def rank_key(policy: Policy, f: Fragment, ptr: str, v, item: bool = False) -> tuple:
    if policy.attribute_merge == "dataSetPrecedence":
        order = list(policy.order)
        prec = -(order.index(f.dataset_id) if f.dataset_id in order else len(order))
    else:
        prec = 0
    return (prec, time_of(f, ptr, v, item), (f.dataset_id, f.ns, f.value), canon(v),
            (f.record_id is not None, f.record_id or ""))


def ref_merge(frags: list[Fragment], policy: Policy) -> tuple[dict, dict[str, Fragment]]:
    """The profile by the rules as written, and the fragment that supplied each attribute."""
    who: dict[str, Fragment] = {}

    def build(ptr: str, cands: list[tuple[Fragment, object]]):
        if all(isinstance(v, dict) for _, v in cands):
            keys = {k for _, v in cands for k in v}
            return {k: build(f"{ptr}/{esc(k)}", [(f, v[k]) for f, v in cands if k in v]) for k in keys}
        f, v = max(cands, key=lambda c: rank_key(policy, c[0], ptr, c[1]))
        for p, _ in leaves(v, ptr):
            who[p] = f
        return copy.deepcopy(v)

    def union(ptr: str, cands: list[tuple[Fragment, list]], key: str) -> list:
        items: dict[str, list[tuple[Fragment, dict]]] = {}
        for f, lst in cands:
            for it in lst:
                if isinstance(it, dict) and isinstance(it.get(key), str):
                    items.setdefault(it[key], []).append((f, it))
        out = []
        for k in sorted(items):
            p = f"{ptr}/{esc(k)}"
            f, it = max(items[k], key=lambda c: rank_key(policy, c[0], p, c[1], item=True))
            who[p] = f
            out.append(copy.deepcopy(it))
        return out

    out: dict = {}
    keys = {k for f in frags for k in f.body} - {"_id"}
    for k in keys:
        cands = [(f, f.body[k]) for f in frags if k in f.body]
        if k == "identityMap":
            maps = [(f, v) for f, v in cands if isinstance(v, dict)]
            codes = sorted({c for _, m in maps for c, lst in m.items() if isinstance(lst, list)})
            out[k] = {c: union(f"/identityMap/{esc(c)}", [(f, m[c]) for f, m in maps
                                                           if isinstance(m.get(c), list)], "id") for c in codes}
        elif k == "pushNotificationDetails":
            out[k] = union("/pushNotificationDetails", [(f, v) for f, v in cands if isinstance(v, list)], "token")
        else:
            out[k] = build(f"/{esc(k)}", cands)
    return out, who


def attribute_pointers(profile: dict) -> set[str]:
    """The attributes of a merged profile, union items counted one by one."""
    out = set()
    for k, v in profile.items():
        if k == "identityMap":
            out |= {f"/identityMap/{esc(c)}/{esc(it['id'])}" for c, lst in v.items() for it in lst}
        elif k == "pushNotificationDetails":
            out |= {f"/pushNotificationDetails/{esc(it['token'])}" for it in v}
        else:
            out |= {p for p, _ in leaves(v, f"/{esc(k)}")}
    return out


def resolve(body: dict, ptr: str):
    """The value at `ptr` in a body, union items found by their key."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in ptr.split("/")[1:]]
    if parts[0] == "identityMap":
        return next(it for it in reversed(body["identityMap"][parts[1]]) if it.get("id") == parts[2])
    if parts[0] == "pushNotificationDetails":
        return next(it for it in reversed(body["pushNotificationDetails"]) if it.get("token") == parts[1])
    return functools.reduce(lambda node, k: node[k], parts, body)


# -- generators ------------------------------------------------------------------------------------

KEYS = ["a", "b", "c", "s/t", "u~v"]
DATASETS = ["d1", "d2", "d3"]
IDENTS = [("Email", "ann@x.com"), ("ECID", "1" * 38), ("Phone", "+33")]
times = st.integers(0, 3)  # a small range: plenty of ties

scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["", "x", "y"]),
                    st.floats(allow_nan=False, allow_infinity=False, width=32))
leaf_values = st.one_of(scalars, st.lists(scalars, max_size=3),
                        st.lists(st.dictionaries(st.sampled_from(KEYS), scalars, max_size=2), max_size=2))
free_bodies = st.recursive(leaf_values, lambda inner: st.dictionaries(st.sampled_from(KEYS), inner, max_size=4),
                           max_leaves=10).filter(lambda v: isinstance(v, dict))

ID_ITEM_POOL = {"Email": ["e1", "e2", "e/3"], "ECID": ["1", "2"]}
identity_maps = st.dictionaries(
    st.sampled_from(sorted(ID_ITEM_POOL)),
    st.just(None), max_size=2,
).flatmap(lambda codes: st.fixed_dictionaries({
    c: st.lists(st.fixed_dictionaries({"id": st.sampled_from(ID_ITEM_POOL[c])},
                                      optional={"primary": st.booleans(),
                                                "authenticatedState": st.sampled_from(["ambiguous", "authenticated"])}),
                max_size=3, unique_by=lambda it: it["id"]).map(lambda lst: sorted(lst, key=lambda it: it["id"]))
    for c in codes}))
push_lists = st.lists(st.fixed_dictionaries({"token": st.sampled_from(["t1", "t2", "t~3"])},
                                            optional={"platform": st.sampled_from(["apns", "fcm"]),
                                                      "denylisted": st.booleans()}),
                      max_size=3, unique_by=lambda it: it["token"]).map(lambda l: sorted(l, key=lambda i: i["token"]))

# Bodies that agree on which paths are objects (as records of one schema do): a fixed shape.
SHAPE = {"_id": None, "timestamp": None, "tags": None, "s/t": None,
         "person": {"name": {"first": None, "last": None}, "age": None}, "u~v": {"w": {"x": None}, "y": None}}


def shaped(shape: dict) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({}, optional={k: leaf_values if sub is None else shaped(sub)
                                               for k, sub in shape.items()})


def with_unions(bodies: st.SearchStrategy[dict]) -> st.SearchStrategy[dict]:
    return st.tuples(bodies, st.one_of(st.none(), identity_maps), st.one_of(st.none(), push_lists)).map(
        lambda t: {**t[0], **({"identityMap": t[1]} if t[1] is not None else {}),
                   **({"pushNotificationDetails": t[2]} if t[2] is not None else {})})


shaped_bodies = with_unions(shaped(SHAPE))
any_bodies = with_unions(st.one_of(free_bodies, shaped(SHAPE))).map(
    lambda b: b if "_id" in b else {**b, "_id": "r"})


@st.composite
def fragments(draw, bodies=any_bodies, per_leaf_times: bool = True) -> Fragment:
    body = draw(bodies)
    ds = draw(st.sampled_from(DATASETS))
    ns, value = draw(st.sampled_from(IDENTS))
    leaf_ms = None
    if per_leaf_times:
        ptrs = sorted(attribute_pointers(body) | {p for p, _ in leaves(body, "")})
        if ptrs:
            leaf_ms = draw(st.dictionaries(st.sampled_from(ptrs), times, max_size=3)) or None
    return Fragment(ds, ns, value, body, draw(times), draw(st.sampled_from([None, "r1", "r2"])), leaf_ms)


policies = st.one_of(st.just(TS), st.permutations(DATASETS).flatmap(
    lambda p: st.integers(0, 3).map(lambda n: dsp(*p[:n]))))


# -- properties ------------------------------------------------------------------------------------

@PROPS
@given(st.lists(fragments(), max_size=4).flatmap(lambda fs: st.tuples(st.just(fs), st.permutations(fs))),
       policies)
def test_merge_does_not_depend_on_the_order_of_the_fragments(pair, policy) -> None:
    frags, shuffled = pair
    a, b = merge(frags, policy, explain=True), merge(shuffled, policy, explain=True)
    assert a.profile == b.profile
    assert a.sources == b.sources
    assert merge(frags + shuffled, policy, explain=True) == a  # duplicated fragments change nothing


@PROPS
@given(st.lists(fragments(), max_size=4), policies)
def test_merge_follows_the_rules(frags, policy) -> None:
    before = copy.deepcopy([f.body for f in frags])
    m = merge(frags, policy, explain=True)
    expected, who = ref_merge(frags, policy)
    assert m.profile == expected
    assert set(m.sources) == attribute_pointers(m.profile) == set(who)
    for ptr, src in m.sources.items():
        f = who[ptr]
        assert (src.dataset_id, src.ns, src.value, src.record_id) == (f.dataset_id, f.ns, f.value, f.record_id)
        # the winner has exactly that value there, at that time
        assert canon(resolve(f.body, ptr)) == canon(resolve(m.profile, ptr))
        assert src.updated_ms == (f.leaf_ms or {}).get(ptr, f.updated_ms)
    assert [f.body for f in frags] == before, "merge must not modify its inputs"


@PROPS
@given(st.lists(fragments(per_leaf_times=False), max_size=4), policies, st.booleans())
def test_the_fast_merge_of_uniform_fragments_follows_the_rules(frags, policy, fresh) -> None:
    # No per-attribute times: merge takes its overlay path unless two fragments are equally strong.
    before = copy.deepcopy([f.body for f in frags])
    m = merge(frags, policy, fresh=fresh)
    assert m.profile == ref_merge(frags, policy)[0]
    assert m.profile == merge(frags, policy, explain=True).profile  # the general path
    assert [f.body for f in frags] == before, "merge must not modify its inputs"
    if fresh:  # nothing of the result is shared with a fragment
        inputs = {id(x) for f in frags for x in containers(f.body)}
        assert not any(id(x) in inputs for x in containers(m.profile))


@pytest.mark.parametrize(("bodies", "expected"), [
    # objects at every level merge key by key, the newest fragment winning each attribute
    ([{"n": {"x": 1, "y": {"a": 1}}}, {"n": {"y": {"b": 2}}}, {"n": {"y": {"a": 3}}}],
     {"n": {"x": 1, "y": {"a": 3, "b": 2}}}),
    # a leaf anywhere makes the path one attribute: the newest fragment's whole value
    ([{"n": {"a": 1, "b": 2}}, {"n": 5}, {"n": {"a": 3}}], {"n": {"a": 3}}),
    ([{"n": 5}, {"n": {"a": 1, "b": 2}}, {"n": {"a": 3}}], {"n": {"a": 3}}),
    ([{"m": {"n": 5}}, {"m": {"n": {"a": 1, "b": 2}}}, {"m": {"n": {"a": 3}, "k": 1}}], {"m": {"n": {"a": 3}, "k": 1}}),
    ([{"n": {"a": 1}}, {"n": {"b": 2}}, {"n": None}], {"n": None}),
])
def test_the_fast_merge_of_three_fragments(bodies, expected) -> None:
    frags = [frag(body=b, ms=100 + n, ds="d1", value=f"v{n}") for n, b in enumerate(bodies)]
    assert merge(frags, TS).profile == expected == merge(frags, TS, explain=True).profile
    assert merge(list(reversed(frags)), TS).profile == expected


def containers(v) -> list:
    out = []
    if isinstance(v, dict):
        out.append(v)
        for x in v.values():
            out += containers(x)
    elif isinstance(v, list):
        out.append(v)
        for x in v:
            out += containers(x)
    return out


@PROPS
@given(fragments(), policies)
def test_merging_one_fragment_gives_its_body_without_id(f, policy) -> None:
    expected = {k: v for k, v in f.body.items() if k != "_id"}
    assert merge([f], policy).profile == expected


@st.composite
def records(draw) -> list[tuple[dict, int, str | None]]:
    return draw(st.lists(st.tuples(shaped_bodies, times, st.sampled_from([None, "r1", "r2", "r3"])),
                         min_size=1, max_size=5))


def fold(recs: list[tuple[dict, int, str | None]], ds: str = "d1") -> Fragment:
    f = None
    for body, ts, rid in recs:
        f = upsert(f, dataset_id=ds, ns="Email", value="ann@x.com", body=body, ts_ms=ts, record_id=rid)
    assert f is not None
    return f


def as_fragments(recs, ds: str = "d1") -> list[Fragment]:
    return [Fragment(ds, "Email", "ann@x.com", body, ts, rid) for body, ts, rid in recs]


@PROPS
@given(records().flatmap(lambda rs: st.tuples(st.just(rs), st.permutations(rs))))
def test_upsert_does_not_depend_on_the_order_of_the_records(pair) -> None:
    recs, shuffled = pair
    a, b = fold(recs), fold(shuffled)
    assert a.body == b.body
    assert (a.leaf_ms, a.updated_ms, a.record_id) == (b.leaf_ms, b.updated_ms, b.record_id)
    assert a.updated_ms == max(ts for _, ts, _ in recs)
    assert a.record_id == max(((ts, rid is not None, rid or ""), rid) for _, ts, rid in recs)[1]
    assert a.leaf_ms is None or (a.leaf_ms and all(t != a.updated_ms for t in a.leaf_ms.values()))
    assert fold(recs + recs) == a  # replaying records changes nothing


@PROPS
@given(records(), st.lists(fragments(bodies=shaped_bodies, per_leaf_times=False), max_size=2), policies)
def test_merging_an_upserted_fragment_is_merging_its_records(recs, others, policy) -> None:
    f = fold(recs)
    separate = merge(as_fragments(recs) + others, policy, explain=True)
    assert merge([f, *others], policy).profile == separate.profile
    # the fragment remembers each attribute's time: the time of the record that won it
    alone = merge(as_fragments(recs), TS, explain=True)
    assert {k: s.updated_ms for k, s in alone.sources.items() if s.updated_ms != f.updated_ms} == \
        {k: t for k, t in (f.leaf_ms or {}).items() if k != "/_id"}
    assert {k: v for k, v in f.body.items() if k != "_id"} == alone.profile
