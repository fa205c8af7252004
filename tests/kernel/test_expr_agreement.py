"""The back-ends agree: for random well-typed conditions over random profiles and events, the SQL
compiled for SQLite and for PostgreSQL selects exactly the profiles the interpreter selects.

A fixed schema of every type (nested paths, lists, dates, datetimes, decimals, an object); profiles
where each field is missing, null, of its type or (sometimes) of another type; 0-6 events each;
expressions up to depth 4 using every node kind. Values come from small domains so that equalities,
boundaries (month ends, midnight, offsets, fractions) and bad data are met often.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from wayline.kernel.expr import interp, ir
from wayline.kernel.expr import sql as exprsql
from wayline.kernel.store import normalise_url

NOW = datetime(2024, 3, 31, 21, 30, 15, 250000, tzinfo=UTC)  # a Sunday, a month's last day, late evening
SEGMENTS = ("s1", "s2", "s3")

# -- the schema ----------------------------------------------------------------------------------------

PROFILE_FIELDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("name",): ("string", "any"),
    ("person", "name", "first"): ("string", "any"),
    ("loyalty", "points"): ("integer", "any"),
    ("loyalty", "tier"): ("string", "any"),
    ("score",): ("decimal", "any"),
    ("vip",): ("boolean", "any"),
    ("birthDate",): ("date", "any"),
    ("lastSeen",): ("datetime", "any"),
    ("signup", "at"): ("datetime", "any"),
    ("tags",): ("list", "string"),
    ("lucky",): ("list", "integer"),
    ("holidays",): ("list", "date"),
    ("address",): ("any", "any"),
}
EVENT_FIELDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("timestamp",): ("datetime", "any"),
    ("eventType",): ("string", "any"),
    ("value",): ("decimal", "any"),
    ("qty",): ("integer", "any"),
    ("day",): ("date", "any"),
}
EVENT_TYPES = ("buy", "view", "click")

# -- values --------------------------------------------------------------------------------------------

texts = st.one_of(st.sampled_from(["", "a", "A", "ab", "Ab", "abc", "b", "ba", "é", "É", "Z", "a\nb", "a.c",
                                   "10", "9", "buy", "view"]),
                  st.text(alphabet="aAbB.é\n-1 ", max_size=4))
ints = st.one_of(st.integers(-3, 3), st.sampled_from([10, -10, 100, 1000, -1000]))
decimals = st.one_of(st.integers(-16, 16).map(lambda n: n / 4), st.integers(-3, 3))
days = st.dates(date(2023, 12, 1), date(2024, 5, 31))


@st.composite
def date_texts(draw: Any) -> str:
    if draw(st.integers(0, 9)) == 0:  # a bad date: invalid day, wrong shape
        return draw(st.sampled_from(["2024-02-30", "2023-02-29", "2024-04-31", "2024-13-01", "2024-1-05",
                                     "20240105", "2024-03-31T00:00:00Z", "x"]))
    return draw(days).isoformat()


@st.composite
def datetime_texts(draw: Any) -> str:
    if draw(st.integers(0, 11)) == 0:
        return draw(st.sampled_from(["2024-02-30T10:00:00Z", "2024-03-31T24:00:00Z", "2024-03-31T10:00Z",
                                     "2024-03-31t10:00:00Z", "2024-03-31T10:00:00+24:00", "2024-03-31 10:00:00Z",
                                     "2024-03-31T10:00:00.Z", "2024-03-31T10:00:00.1234567890Z", "2024-03-31",
                                     "2024-03-31T10:00:00+0200", "tomorrow"]))
    d = draw(st.one_of(days, st.sampled_from([date(2024, 3, 31), date(2024, 3, 24), date(2024, 2, 29),
                                              date(2024, 3, 1), date(2024, 4, 1)])))
    h, m, s = draw(st.sampled_from([(0, 0, 0), (23, 59, 59), (21, 30, 15), (12, 0, 0)]) | st.tuples(
        st.integers(0, 23), st.integers(0, 59), st.integers(0, 59)))
    frac = draw(st.sampled_from(["", "", ".25", ".250", ".2", ".999", ".0001", ".123456789", ".9999999"]))
    tz = draw(st.sampled_from(["Z", "Z", "", "+02:00", "-05:30", "+14:00", "-23:59", "+00:00"]))
    return f"{d.isoformat()}T{h:02d}:{m:02d}:{s:02d}{frac}{tz}"


def junk() -> st.SearchStrategy[Any]:
    """A value of another type than the field's (bad data the schema should have caught)."""
    return st.sampled_from(["5", 5, 2.5, 3.0, True, False, ["a"], {"k": 1}, "2024-03-31", "x"])


VALUES: dict[str, st.SearchStrategy[Any]] = {
    "string": texts, "integer": st.one_of(ints, st.sampled_from([2.0, -1.0])), "decimal": decimals,
    "boolean": st.booleans(), "date": date_texts(), "datetime": datetime_texts(),
    "any": st.sampled_from([{"city": "x"}, {}, [], "flat", 0]),
}


def stored(t: str, elem: str) -> st.SearchStrategy[Any]:
    if t == "list":
        each = st.one_of(VALUES[elem], st.none(), junk()) if elem != "any" else VALUES["any"]
        return st.lists(each, max_size=4)
    return VALUES[t]


def _set(body: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for k in path[:-1]:
        body = body.setdefault(k, {})
        if not isinstance(body, dict):
            return
    body[path[-1]] = value


@st.composite
def documents(draw: Any, fields: dict[tuple[str, ...], tuple[str, str]]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for path, (t, elem) in fields.items():
        kind = draw(st.sampled_from(["value"] * 6 + ["missing", "missing", "null", "junk"]))
        if kind == "missing":
            continue
        value = None if kind == "null" else draw(junk()) if kind == "junk" else draw(stored(t, elem))
        _set(body, path, value)
    return body


@st.composite
def events(draw: Any) -> dict[str, Any]:
    ev = draw(documents(EVENT_FIELDS))
    if draw(st.integers(0, 3)):
        ev["eventType"] = draw(st.sampled_from(EVENT_TYPES))
    return ev


profiles = st.tuples(documents(PROFILE_FIELDS), st.lists(events(), max_size=6),
                     st.frozensets(st.sampled_from(SEGMENTS[:2])))
worlds = st.lists(profiles, min_size=1, max_size=10)

# -- expressions ---------------------------------------------------------------------------------------

SCALARS = ("string", "integer", "decimal", "boolean", "date", "datetime", "duration")
PATTERNS = ["^a", "b$", "a.c", "^[a-cA-C]+$", "A|é", "\\.", "^$", "[^a]", "a{2}", "(ab)+", "\\d", "^.b", "a$",
            "é", "[\\-.]"]


def lit(t: str) -> st.SearchStrategy[ir.Expr]:
    values = {
        "string": texts, "integer": ints, "decimal": decimals.map(float), "boolean": st.booleans(),
        "date": days, "duration": st.sampled_from([0, 1000, 3_600_000, 86_400_000, -86_400_000, 7 * 86_400_000]),
        "datetime": st.builds(lambda d, h: datetime(d.year, d.month, d.day, h, tzinfo=UTC), days,
                              st.sampled_from([0, 12, 23])),
    }[t]
    return values.map(lambda v: ir.Lit(v, t))  # type: ignore[arg-type]


def fields_of(t: str, elem: str | None, ev: bool) -> list[ir.Expr]:
    out: list[ir.Expr] = []
    roots = [("profile", PROFILE_FIELDS)] + ([("event", EVENT_FIELDS)] if ev else [])
    for root, fields in roots:
        for path, (ft, fe) in fields.items():
            if ft == t and (elem is None or fe == elem):
                out.append(ir.Field(root, path, ft, fe))  # type: ignore[arg-type]
    return out


@st.composite
def expr(draw: Any, t: str, depth: int, ev: bool) -> ir.Expr:
    """A well-typed expression of type t (scalar, "boolean" or "list:<elem>")."""
    leaf = depth <= 0 or draw(st.integers(0, 7)) == 0

    def sub(tt: str, *, events_scope: bool = ev) -> ir.Expr:
        return draw(expr(tt, depth - 1, events_scope))

    if t.startswith("list:"):
        elem = t[5:]
        options = fields_of("list", elem, ev)
        if leaf or not options or draw(st.booleans()):
            items = draw(st.lists(st.one_of(lit(elem), st.just(ir.Lit(None, "null"))) if leaf
                                  else st.deferred(lambda: expr(elem, depth - 1, ev)), max_size=3))
            return ir.ListLit(tuple(items), elem)  # type: ignore[arg-type]
        return draw(st.sampled_from(options))
    fields = fields_of(t, None, ev)
    if leaf:
        choices: list[st.SearchStrategy[ir.Expr]] = [lit(t)] if t in SCALARS else []
        if fields:
            choices.append(st.sampled_from(fields))
        if t == "datetime":
            choices.append(st.just(ir.Now()))
        if t == "boolean":
            choices.append(st.sampled_from(SEGMENTS).map(ir.InSegment))
        return draw(st.one_of(choices))
    if t == "boolean":
        kind = draw(st.sampled_from(["cmp"] * 6 + ["and", "or", "not", "exists", "in", "intersects", "string",
                                                   "string", "matches", "any", "all", "segment", "field"]))
        if kind == "cmp":
            ct = draw(st.sampled_from(SCALARS + ("list:string", "list:date", "mixed_num", "mixed_time")))
            ops = ["=", "!="] if ct in ("boolean", "list:string", "list:date") else ["=", "!=", "<", "<=", ">", ">="]
            if ct == "mixed_num":
                a, b = sub("integer"), sub("decimal")
            elif ct == "mixed_time":
                a, b = sub("date"), sub("datetime")
            else:
                a, b = sub(ct), sub(ct)
            if draw(st.booleans()):
                a, b = b, a
            return ir.Cmp(draw(st.sampled_from(ops)), a, b)  # type: ignore[arg-type]
        if kind in ("and", "or"):
            items = tuple(sub("boolean") for _ in range(draw(st.integers(0, 3))))
            return ir.And(items) if kind == "and" else ir.Or(items)
        if kind == "not":
            return ir.Not(sub("boolean"))
        if kind == "exists":
            target = draw(st.sampled_from(SCALARS[:-1] + ("list:string", "any")))
            if target == "any":
                return ir.Exists(ir.Field("profile", ("address",), "any"))
            return ir.Exists(sub(target))
        if kind == "in":
            et = draw(st.sampled_from(["string", "integer", "date"]))
            item = sub(draw(st.sampled_from(["datetime", "date"]))) if et == "date" else sub(et)
            return ir.In(item, sub("list:" + et), negate=draw(st.booleans()))
        if kind == "intersects":
            et = draw(st.sampled_from(["string", "integer", "date"]))
            return ir.Intersects(sub("list:" + et), sub("list:" + et))
        if kind == "string":  # mostly field-versus-literal, where case and prefixes matter
            fn = draw(st.sampled_from(["contains", "startsWith", "endsWith", "equalsIgnoreCase"]))
            hay = draw(st.sampled_from(fields_of("string", None, ev))) if draw(st.booleans()) else sub("string")
            needle = draw(lit("string")) if draw(st.booleans()) else sub("string")
            return ir.Call(fn, (hay, needle))
        if kind == "matches":
            return ir.Call("matches", (sub("string"), ir.Lit(draw(st.sampled_from(PATTERNS)), "string")))
        if kind in ("any", "all"):
            where = draw(st.none() | st.deferred(lambda: expr("boolean", depth - 1, True)))
            value = draw(st.none() | st.deferred(lambda: expr("boolean", depth - 1, True)))
            return ir.Agg(kind, ir.Events(where), value)  # type: ignore[arg-type]
        if kind == "segment":
            return ir.InSegment(draw(st.sampled_from(SEGMENTS)))
        return draw(st.sampled_from(fields_of("boolean", None, ev)))
    # scalar values
    options = ["leaf"]
    if t == "string":
        options += ["case", "agg_minmax"]
    if t == "integer":
        options += ["length", "part", "part", "part", "size", "arith", "arith", "count", "sum", "agg_minmax"]
    if t == "decimal":
        options += ["arith", "arith", "div", "div", "avg", "sum", "agg_minmax"]
    if t == "datetime":
        options += ["now", "shift", "shift", "trunc", "trunc", "plus", "agg_minmax"]
    if t == "duration":
        options += ["diff", "arith"]
    if t == "date":
        options += ["agg_minmax"]
    kind = draw(st.sampled_from(options))
    if kind == "leaf":
        return draw(st.one_of([lit(t), *([st.sampled_from(fields)] if fields else [])]))
    if kind == "case":
        return ir.Call(draw(st.sampled_from(["lower", "upper"])), (sub("string"),))
    if kind == "length":
        return ir.Call("length", (sub("string"),))
    if kind == "part":
        fn = draw(st.sampled_from(["year", "month", "dayOfMonth", "dayOfWeek", "hour"]))
        return ir.Call(fn, (sub("datetime" if fn == "hour" else draw(st.sampled_from(["date", "datetime"]))),))
    if kind == "size":
        return ir.Call("size", (sub(draw(st.sampled_from(["list:string", "list:integer", "list:date"]))),))
    if kind == "arith":
        if t == "duration":
            return ir.Arith(draw(st.sampled_from(["+", "-"])), sub("duration"), sub("duration"))
        ops = ["+", "-", "*", "%"] if t == "integer" else ["+", "-", "*"]
        op = draw(st.sampled_from(ops))
        if t == "integer" or op == "%":
            return ir.Arith(op, sub("integer"), sub("integer"))  # type: ignore[arg-type]
        return ir.Arith(op, sub("decimal"), sub(draw(st.sampled_from(["integer", "decimal"]))))  # type: ignore[arg-type]
    if kind == "div":
        return ir.Arith("/", sub(draw(st.sampled_from(["integer", "decimal"]))),
                        sub(draw(st.sampled_from(["integer", "decimal"]))))
    if kind == "now":
        return ir.Now()
    if kind == "shift":
        unit = draw(st.sampled_from(["second", "minute", "hour", "day", "week", "month", "year"]))
        amount = draw(st.sampled_from([-13, -7, -2, -1, 0, 1, 2, 12, 30]))
        return ir.Shift(sub(draw(st.sampled_from(["datetime", "date"]))), amount, unit)  # type: ignore[arg-type]
    if kind == "trunc":
        unit = draw(st.sampled_from(["day", "week", "month", "year"]))
        return ir.Trunc(sub(draw(st.sampled_from(["datetime", "date"]))), unit)  # type: ignore[arg-type]
    if kind == "plus":
        base = sub(draw(st.sampled_from(["datetime", "date"])))
        if draw(st.booleans()):
            return ir.Arith("+", sub("duration"), base)
        return ir.Arith(draw(st.sampled_from(["+", "-"])), base, sub("duration"))
    if kind == "diff":
        return ir.Arith("-", sub(draw(st.sampled_from(["datetime", "date"]))),
                        sub(draw(st.sampled_from(["datetime", "date"]))))
    where = draw(st.none() | st.deferred(lambda: expr("boolean", depth - 1, True)))
    if kind == "count":
        return ir.Agg("count", ir.Events(where))
    value_type = {"sum": t, "avg": draw(st.sampled_from(["integer", "decimal"])), "agg_minmax": t}[kind]
    value = draw(expr(value_type, depth - 1, True))
    agg = {"agg_minmax": draw(st.sampled_from(["min", "max"]))}.get(kind, kind)
    return ir.Agg(agg, ir.Events(where), value)  # type: ignore[arg-type]


conditions = st.deferred(lambda: expr("boolean", 4, False))
CONDITION_LISTS = st.lists(conditions, min_size=1, max_size=30)
EXAMPLES = int(os.environ.get("WAYLINE_EXPR_EXAMPLES", "100"))  # per database, ~18 conditions each; raise for a long run

# -- readable failures ---------------------------------------------------------------------------------


def show(n: ir.Expr) -> str:
    """A compact, PQL-like rendering of a tree, for failure messages."""
    if isinstance(n, ir.Lit):
        return "null" if n.value is None else repr(n.value.isoformat() if hasattr(n.value, "isoformat") else n.value)
    if isinstance(n, ir.ListLit):
        return "[" + ", ".join(show(i) for i in n.items) + "]"
    if isinstance(n, ir.Field):
        return ("ev." if n.root == "event" else "") + ".".join(n.path)
    if isinstance(n, ir.Now):
        return "now"
    if isinstance(n, ir.Shift):
        return f"shift({show(n.base)}, {n.amount} {n.unit})"
    if isinstance(n, ir.Trunc):
        return f"trunc({show(n.base)}, {n.unit})"
    if isinstance(n, (ir.Cmp, ir.Arith)):
        return f"({show(n.left)} {n.op} {show(n.right)})"
    if isinstance(n, (ir.And, ir.Or)):
        word = " and " if isinstance(n, ir.And) else " or "
        return "(" + word.join(show(i) for i in n.items) + ")" if n.items else str(isinstance(n, ir.And)).lower()
    if isinstance(n, ir.Not):
        return f"not {show(n.item)}"
    if isinstance(n, ir.Exists):
        return f"exists({show(n.item)})"
    if isinstance(n, ir.In):
        return f"({show(n.item)} {'notIn' if n.negate else 'in'} {show(n.items)})"
    if isinstance(n, ir.Intersects):
        return f"({show(n.left)} intersects {show(n.right)})"
    if isinstance(n, ir.Call):
        return f"{n.fn}({', '.join(show(a) for a in n.args)})"
    if isinstance(n, ir.Agg):
        where = show(n.source.where) if n.source.where is not None else ""
        return f"xEvent[{where}].{n.kind}({show(n.value) if n.value is not None else ''})"
    if isinstance(n, ir.InSegment):
        return f"inSegment({n.segment_id!r})"
    return repr(n)


# -- fixed edge cases (every example also holds these)  ----------------------------------------------------------------

EDGE_BODIES = [  # raw JSON texts: what a database holds, bad data included
    '{"lastSeen": "2024-03-31T10:00:00Z", "birthDate": "2024-02-29", "loyalty": {"points": 5}, "score": 2.5}',
    '{"lastSeen": "2024-03-31T12:00:00+02:00", "birthDate": "2023-02-29", "loyalty": {"points": 5.0}}',
    '{"lastSeen": "2024-03-31T10:00:00.123456789Z", "loyalty": {"points": 2.5}, "score": 1e400}',
    '{"lastSeen": "2024-03-31T10:00:00.9999999+00:00", "loyalty": {"points": 100000000000000000000}}',
    '{"lastSeen": "2024-03-31T23:30:00-02:00", "loyalty": {"points": 9223372036854775807}, "score": 3}',
    '{"lastSeen": "0001-01-01T00:00:00+00:01", "loyalty": {"points": 9223372036854775808}}',
    '{"lastSeen": "9999-12-31T23:59:59-00:01", "loyalty": {"points": -9223372036854775808}}',
    '{"lastSeen": "0001-01-01T00:00:00Z", "loyalty": {"points": 1e3}, "vip": true}',
    '{"lastSeen": "9999-12-31T23:59:59.999Z", "loyalty": {"points": true}, "vip": 1}',
    '{"lastSeen": "2024-02-29T23:00:00-23:59", "loyalty": {"points": "5"}, "vip": "true"}',
    '{"lastSeen": "2024-03-31T10:00:00+23:60", "birthDate": "0001-01-01"}',
    '{"lastSeen": "2024-03-31T24:00:00Z", "birthDate": "9999-12-31"}',
    '{"lastSeen": "2024-03-31T10:00:00.1234567890Z", "birthDate": "0000-12-31"}',
    '{"lastSeen": "２０２４-03-31T10:00:00Z", "birthDate": "２０２４-03-31"}',
    '{"lastSeen": "1969-12-31T23:59:59.999Z", "birthDate": "1969-12-31", "name": "a\\nb"}',
    '{"lastSeen": 1711879200000, "birthDate": 19813, "name": ["a"], "tags": "a"}',
    '{"lastSeen": null, "tags": [], "lucky": [1, 1.0, 1.5, "1", true, null], "holidays": ["2024-03-31", "x"]}',
    '{"tags": ["a", "b"], "lucky": [3], "holidays": ["2024-03-31T00:00:00Z"], "address": {"city": "x"}}',
    '{"tags": ["b", "a"], "person": {"name": "not an object"}, "address": null, "name": "É"}',
    '{"tags": {"0": "a"}, "person": {"name": {"first": "Ann"}}, "address": [], "name": "é"}',
    '{"name": "Ann", "person": {"name": {"first": "ann"}}, "loyalty": {"tier": "ANN"}, "tags": ["Ann", "ann"]}',
    '{"name": "aB.c", "person": {"name": {"first": "Ab"}}, "loyalty": {"tier": "ab"}, "tags": ["AB", "b"]}',
    '{"name": "a\\nb", "person": {"name": {"first": "A"}}, "loyalty": {"tier": "b\\n"}, "lucky": [-3, 1000]}',
    '{"name": "Éa", "person": {"name": {"first": "éA"}}, "loyalty": {"tier": "z", "points": -7}}',
    '{"name": "10", "person": {"name": {"first": "9"}}, "loyalty": {"tier": "", "points": 1000}}',
    '{"name": "buy", "person": {"name": {"first": "BUY"}}, "loyalty": {"tier": "view"}, "score": -0.25}',
    '{}', '[]', '"a string"', 'null',
]
LAST_SEEN, BIRTH = ir.Field("profile", ("lastSeen",), "datetime"), ir.Field("profile", ("birthDate",), "date")
POINTS, SCORE = ir.Field("profile", ("loyalty", "points"), "integer"), ir.Field("profile", ("score",), "decimal")
TAGS = ir.Field("profile", ("tags",), "list", "string")
EDGE_CONDITIONS: list[ir.Expr] = [
    ir.Exists(LAST_SEEN), ir.Exists(BIRTH), ir.Exists(POINTS), ir.Exists(SCORE), ir.Exists(TAGS),
    ir.Exists(ir.Field("profile", ("lucky",), "list", "integer")),
    ir.Exists(ir.Field("profile", ("address",), "any")), ir.Exists(ir.Field("profile", ("vip",), "boolean")),
    ir.Field("profile", ("vip",), "boolean"),
    ir.Cmp("=", LAST_SEEN, ir.Lit(datetime(2024, 3, 31, 10, tzinfo=UTC), "datetime")),
    ir.Cmp(">", LAST_SEEN, ir.Lit(datetime(2024, 3, 31, 10, 0, 0, 123000, tzinfo=UTC), "datetime")),
    ir.Cmp("=", LAST_SEEN, ir.Lit(date(2024, 3, 31), "date")),
    ir.Cmp("<", ir.Shift(LAST_SEEN, -1, "second"), ir.Lit(datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC), "datetime")),
    ir.Exists(ir.Shift(LAST_SEEN, 1, "month")), ir.Exists(ir.Shift(LAST_SEEN, -1, "day")),
    ir.Exists(ir.Arith("+", LAST_SEEN, ir.Lit(86_400_000, "duration"))),
    ir.Cmp("=", ir.Call("hour", (LAST_SEEN,)), ir.Lit(23, "integer")),
    ir.Cmp("=", ir.Call("dayOfWeek", (BIRTH,)), ir.Lit(3, "integer")),
    ir.Cmp("=", ir.Trunc(LAST_SEEN, "week"), ir.Lit(datetime(2024, 3, 25, tzinfo=UTC), "datetime")),
    ir.Cmp("=", POINTS, ir.Lit(5, "integer")), ir.Cmp(">", POINTS, ir.Lit(1000, "integer")),
    ir.Cmp("<", POINTS, ir.Lit(0, "integer")), ir.Cmp(">", SCORE, ir.Lit(2, "integer")),
    ir.Cmp("=", ir.Arith("/", POINTS, ir.Lit(0, "integer")), ir.Lit(None, "null")),
    ir.Exists(ir.Arith("/", SCORE, ir.Arith("-", POINTS, POINTS))),
    ir.In(ir.Lit("a", "string"), TAGS), ir.In(ir.Lit("a", "string"), TAGS, negate=True),
    ir.In(ir.Lit(1, "integer"), ir.Field("profile", ("lucky",), "list", "integer")),
    ir.In(ir.Lit(1, "integer"), ir.Field("profile", ("lucky",), "list", "integer"), negate=True),
    ir.In(LAST_SEEN, ir.Field("profile", ("holidays",), "list", "date")),
    ir.Cmp("=", TAGS, ir.ListLit((ir.Lit("a", "string"), ir.Lit("b", "string")), "string")),
    ir.Cmp("!=", TAGS, ir.ListLit((ir.Lit("a", "string"), ir.Lit("b", "string")), "string")),
    ir.Cmp(">", ir.Call("size", (TAGS,)), ir.Lit(1, "integer")),
    ir.Call("matches", (ir.Field("profile", ("name",), "string"), ir.Lit("^a.b$", "string"))),
    ir.Call("equalsIgnoreCase", (ir.Field("profile", ("name",), "string"), ir.Lit("é", "string"))),
    ir.Cmp("=", ir.Field("profile", ("person", "name", "first"), "string"), ir.Field("payload", ("who",), "string")),
    ir.Cmp("=", ir.Agg("count", ir.Events(ir.Cmp(">", ir.Agg("count", ir.Events()), ir.Lit(1, "integer")))),
           ir.Lit(0, "integer")),
    ir.Cmp("=", ir.Agg("max", ir.Events(), POINTS), POINTS),
]


# -- the property --------------------------------------------------------------------------------------

def _engine(db_url: str) -> sa.Engine:
    engine = sa.create_engine(normalise_url(db_url))
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", lambda conn, _rec: exprsql.install_sqlite_functions(conn))
    return engine


def _create(conn: sa.Connection) -> None:
    doc = "jsonb" if conn.dialect.name == "postgresql" else "text"
    conn.exec_driver_sql(f"CREATE TABLE xa_profiles (key integer PRIMARY KEY, body {doc} NOT NULL)")
    conn.exec_driver_sql(f"CREATE TABLE xa_events (id integer PRIMARY KEY, key integer NOT NULL, body {doc})")
    conn.exec_driver_sql("CREATE INDEX ix_xa_events_key ON xa_events (key)")
    conn.exec_driver_sql("CREATE TABLE xa_members (key integer NOT NULL, segment text NOT NULL)")


LAYOUT = exprsql.Layout(
    profile_body="p.body",
    events="SELECT e.body AS body FROM xa_events e WHERE e.key = p.key",
    in_segment=lambda param: f"EXISTS (SELECT 1 FROM xa_members m WHERE m.key = p.key AND m.segment = :{param})")


EDGE_EVENTS = [  # raw JSON texts, dealt to the fixed profiles in turn
    '{"timestamp": "2024-03-31T21:30:15.250Z", "eventType": "buy", "value": 2.5, "qty": 2, "day": "2024-03-31"}',
    '{"timestamp": "2024-03-24T21:30:15.25Z", "eventType": "view", "value": 1e400, "qty": 2.0}',
    '{"timestamp": "2024-03-31T23:30:00-02:00", "eventType": "buy", "qty": 9223372036854775807}',
    '{"timestamp": "2024-02-30T10:00:00Z", "eventType": "click", "value": -0.25, "day": "2024-02-30"}',
    '{"timestamp": "2024-03-01T00:00:00+14:00", "value": "3", "qty": true}',
    '{"eventType": null, "day": "2024-02-29"}', '[]', '{}',
]


def world_rows(world: list[tuple[dict, list[dict], frozenset[str]]]) -> list[tuple[str, list[str], frozenset[str]]]:
    """The fixed edge profiles (with events dealt to them), then the example's random ones, as JSON."""
    fixed = [(body, [EDGE_EVENTS[j % len(EDGE_EVENTS)] for j in range(k % 4 * 2, k % 4 * 3)],
              frozenset(SEGMENTS[: k % 3])) for k, body in enumerate(EDGE_BODIES)]
    return fixed + [(json.dumps(body, ensure_ascii=False), [json.dumps(e, ensure_ascii=False) for e in evs], segs)
                    for body, evs, segs in world]


def _as_context(text: str, events_: list[str], segs: frozenset[str]) -> interp.Context:
    # what a read of the stored JSON gives; a body that is not an object has no fields (events keep theirs)
    body = json.loads(text)
    return interp.Context(body if isinstance(body, dict) else {}, [json.loads(e) for e in events_], NOW,
                          segments=segs)


def _load(conn: sa.Connection, world: list[tuple[dict, list[dict], frozenset[str]]]) -> list[interp.Context]:
    for table in ("xa_profiles", "xa_events", "xa_members"):
        conn.exec_driver_sql(f"DELETE FROM {table}")
    cast = "CAST(:b AS jsonb)" if conn.dialect.name == "postgresql" else ":b"
    rows, evs, members, contexts = [], [], [], []
    for key, (text, events_, segs) in enumerate(world_rows(world)):
        rows.append({"k": key, "b": text})
        evs += [{"i": len(evs) + j, "k": key, "b": e} for j, e in enumerate(events_)]
        members += [{"k": key, "s": s} for s in sorted(segs)]
        contexts.append(_as_context(text, events_, segs))
    conn.execute(sa.text(f"INSERT INTO xa_profiles (key, body) VALUES (:k, {cast})"), rows)
    if evs:
        conn.execute(sa.text(f"INSERT INTO xa_events (id, key, body) VALUES (:i, :k, {cast})"), evs)
    if members:
        conn.execute(sa.text("INSERT INTO xa_members (key, segment) VALUES (:k, :s)"), members)
    return contexts


def test_sql_selects_exactly_the_profiles_the_interpreter_selects(db_url):
    engine = _engine(db_url)
    with engine.begin() as conn:
        _create(conn)

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(world=worlds, exprs=CONDITION_LISTS)
    def agree(world: list[tuple[dict, list[dict], frozenset[str]]], exprs: list[ir.Expr]) -> None:
        with engine.begin() as conn:
            contexts = _load(conn, world)
            for e in exprs:
                fn = interp.compile_predicate(e)
                want = {k for k, ctx in enumerate(contexts) if fn(ctx)}
                cond, params = exprsql.compile_condition(e, dialect=conn.dialect.name, layout=LAYOUT, now=NOW)
                got = set(conn.execute(sa.text(f"SELECT p.key FROM xa_profiles p WHERE {cond}"), params).scalars())
                if got != want:
                    rows = world_rows(world)
                    lines = [f"{conn.dialect.name} disagrees with the interpreter on: {show(e)}"]
                    for k in sorted(got ^ want):
                        body, evs, segs = rows[k]
                        lines.append(f"profile {k}: interpreter={k in want} sql={k in got}\n  body={body}\n"
                                     f"  events=[{', '.join(evs)}]\n  segments={sorted(segs)}")
                    note(f"SQL: {cond}\nparams: {params}")
                    raise AssertionError("\n".join(lines))

    try:
        agree()
    finally:
        engine.dispose()


def test_the_generators_make_every_node_kind():
    """The property above only proves something if the trees use every node, function and aggregate."""
    seen: set[str] = set()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(CONDITION_LISTS)
    def collect(exprs: list[ir.Expr]) -> None:
        for n in (n for e in exprs for n in ir.walk(e)):
            seen.add(type(n).__name__)
            if isinstance(n, ir.Call):
                seen.add("call:" + n.fn)
            if isinstance(n, ir.Agg):
                seen.add("agg:" + n.kind)
            if isinstance(n, (ir.Cmp, ir.Arith)):
                seen.add(f"{type(n).__name__}:{n.op}")

    collect()
    kinds = {"Lit", "ListLit", "Field", "Now", "Shift", "Trunc", "Cmp", "And", "Or", "Not", "Exists", "Arith",
             "In", "Intersects", "Call", "Events", "Agg", "InSegment"}
    calls = {"call:" + f for f in ir.FUNCTIONS}
    aggs = {"agg:" + k for k in ("count", "sum", "avg", "min", "max", "any", "all")}
    ops = {f"Arith:{o}" for o in "+-*/%"} | {f"Cmp:{o}" for o in ("=", "!=", "<", "<=", ">", ">=")}
    assert kinds | calls | aggs | ops <= seen, sorted((kinds | calls | aggs | ops) - seen)


def test_edge_values_read_the_same_on_both_back_ends(db_url):
    engine = _engine(db_url)
    try:
        with engine.begin() as conn:
            _create(conn)
            cast = "CAST(:b AS jsonb)" if conn.dialect.name == "postgresql" else ":b"
            conn.execute(sa.text(f"INSERT INTO xa_profiles (key, body) VALUES (:k, {cast})"),
                         [{"k": k, "b": b} for k, b in enumerate(EDGE_BODIES)])
            conn.execute(sa.text(f"INSERT INTO xa_events (id, key, body) VALUES (:i, :k, {cast})"),
                         [{"i": i, "k": i % 3, "b": '{"eventType": "buy"}'} for i in range(4)])
            payload = {"who": "Ann"}
            contexts = [interp.Context(json.loads(b) if isinstance(json.loads(b), dict) else {},
                                       [{"eventType": "buy"}] * sum(1 for i in range(4) if i % 3 == k), NOW,
                                       payload=payload) for k, b in enumerate(EDGE_BODIES)]
            for e in EDGE_CONDITIONS:
                fn = interp.compile_predicate(e)
                want = {k for k, ctx in enumerate(contexts) if fn(ctx)}
                cond, params = exprsql.compile_condition(e, dialect=conn.dialect.name, layout=LAYOUT, now=NOW,
                                                         payload=payload)
                got = set(conn.execute(sa.text(f"SELECT p.key FROM xa_profiles p WHERE {cond}"), params).scalars())
                assert got == want, (show(e), {k: EDGE_BODIES[k] for k in got ^ want})
    finally:
        engine.dispose()


def test_sqlite_functions_never_raise_on_bad_input():
    """A raising SQLite function would fail a whole batch query: bad input is NULL instead."""
    from wayline.kernel.expr.dialect_sqlite import SQLITE_FUNCTIONS

    junk = [None, "x", "", 1.5, 10**30, -(10**30), b"\x00", "2024-02-30T00:00:00Z", 2**62]
    for nargs, fn in SQLITE_FUNCTIONS.values():
        for args in ([j] * nargs for j in junk):
            fn(*args)  # no exception
    last = 253402300799999  # 9999-12-31T23:59:59.999Z
    assert SQLITE_FUNCTIONS["wayline_instant"][1]("1970-01-01T00:00:01Z") == 1000
    assert SQLITE_FUNCTIONS["wayline_shift"][1](last, 1, "day") is None
    assert SQLITE_FUNCTIONS["wayline_add"][1](last, 1) is None


def test_layout_events_may_be_a_from_fragment(tmp_path):
    engine = _engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as conn:
        _create(conn)
        conn.exec_driver_sql("INSERT INTO xa_profiles VALUES (1, '{}'), (2, '{}')")
        conn.exec_driver_sql("""INSERT INTO xa_events VALUES (1, 1, '{"eventType": "buy"}')""")
        layout = exprsql.Layout(profile_body="p.body", events="xa_events e WHERE e.key = p.key")
        cond, params = exprsql.compile_condition(ir.Agg("any", ir.Events()), dialect="sqlite", layout=layout, now=NOW)
        assert conn.execute(sa.text(f"SELECT p.key FROM xa_profiles p WHERE {cond}"), params).scalars().all() == [1]
    engine.dispose()
