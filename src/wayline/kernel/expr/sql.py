"""The SQL back-end: a condition becomes one SQL boolean over a stored profile row, for SQLite and
PostgreSQL, with the semantics of the contract in `ir` (the same answers as the interpreter).

    cond, params = compile_condition(expr, dialect="sqlite", layout=Layout(
        profile_body="p.body",
        events="SELECT e.body AS body FROM events e WHERE e.key = p.key",
        in_segment=lambda param: f"EXISTS (SELECT 1 FROM members m WHERE m.key = p.key AND m.segment = :{param})"),
        now=now)
    keys = conn.execute(sa.text(f"SELECT p.key FROM profiles p WHERE {cond}"), params).scalars().all()

The SQL is for `sqlalchemy.text` (`:name` parameters). It is never NULL (two-valued logic) and
raises on no data: a value not of its field's type reads as NULL, as the contract says. Constant
subtrees (literals, `Now()`, windows like `Shift(Now(), -7, "day")`) are computed by the
interpreter at compile time and bound, so both back-ends share one implementation of them.
Event aggregates are correlated subqueries over `layout.events`.

On SQLite, conditions call a few registered functions (dates and datetimes, calendar math,
`matches`: the interpreter's own code): `install_sqlite_functions` must run on every connection (the
Store's engine does it on connect); without it such a condition fails with "no such function".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from wayline.kernel.expr import interp, ir, temporal
from wayline.kernel.expr.check import TIMES, ExprTypeError, Typer, common, cost, elem_of
from wayline.kernel.expr.dialect_sqlite import SQLITE_FUNCTIONS, IntSum
from wayline.kernel.expr.sqldialect import Dialect, Params, dialect_for

__all__ = ["ExprTypeError", "Layout", "compile_condition", "install_sqlite_functions"]


@dataclass(frozen=True)
class Layout:
    """Where the compiled SQL finds things; the caller chooses the tables.

    - `profile_body`: SQL of the current profile's JSON body (TEXT JSON on SQLite, jsonb on
      PostgreSQL), e.g. "p.body".
    - `events`: the current profile's experience events, as a SELECT with a JSON column `body`
      correlated to the profile row ("SELECT e.body AS body FROM events e WHERE e.key = p.key"), or
      as a FROM fragment holding a `body` column ("events e WHERE e.key = p.key").
    - `in_segment(param)`: SQL boolean "the profile is in the segment whose id is bound as :param"
      (status realized or existing); None when the caller has no memberships (inSegment is refused).
    """

    profile_body: str
    events: str
    in_segment: Callable[[str], str] | None = None

    def events_from(self, alias: str) -> str:
        ev = self.events.strip()
        if ev[:6].upper() == "SELECT":
            return f"({ev}) AS {alias}"
        return f"(SELECT body FROM {ev}) AS {alias}"


def compile_condition(expr: ir.Expr, *, dialect: str, layout: Layout, now: datetime,
                      payload: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """A never-NULL SQL boolean for the condition `expr`, and its bound parameters.

    `dialect` is "sqlite" or "postgresql" (a SQLAlchemy dialect name). `now` is the evaluation
    instant; `payload` (optional) makes payload fields constants. Raises ExprTypeError for a tree
    the back-ends do not evaluate (ill-typed, a field of unknown type outside `Exists`, a regex
    outside the supported subset, payload fields without a payload, inSegment without
    `layout.in_segment`)."""
    c = _Compiler(expr, dialect, layout, now, payload)
    if c.typer.root not in ("boolean", "null"):
        raise ExprTypeError(f"not a condition: the expression is a {c.typer.root}")
    return c.cond(expr, ()), c.params.values


def install_sqlite_functions(dbapi_connection: Any) -> None:
    """Register the functions compiled SQLite conditions call: reading dates and datetimes, calendar
    math and `matches`, with the interpreter's own implementation (deterministic, never raising).
    Call it on every new sqlite3 connection (a SQLAlchemy "connect" event listener)."""
    for name, (nargs, fn) in SQLITE_FUNCTIONS.items():
        dbapi_connection.create_function(name, nargs, fn, deterministic=True)
    dbapi_connection.create_aggregate("wayline_isum", 1, IntSum)


Scope = tuple[str, ...]  # event aliases, innermost last
_FALSE, _TRUE = "FALSE", "TRUE"


class _List:
    """A list operand: constant values, SQL items (a ListLit of non-constants) or a JSON array."""

    def __init__(self, kind: str, *, values: tuple[Any, ...] = (), items: list[str] | None = None,
                 doc: str = "", path: tuple[str, ...] = ()) -> None:
        self.kind, self.values, self.items, self.doc, self.path = kind, values, items or [], doc, path

    def static_len(self) -> int | None:
        return len(self.values) if self.kind == "const" else len(self.items) if self.kind == "items" else None


class _Compiler:
    def __init__(self, expr: ir.Expr, dialect: str, layout: Layout, now: datetime,
                 payload: dict[str, Any] | None) -> None:
        self.typer = Typer(expr)
        self.params = Params()
        self.d: Dialect = dialect_for(dialect, self.params)
        self.layout = layout
        self.payload_known = payload is not None
        self.consts = interp.Compiler(self.typer)
        self.ctx = interp.Context(profile={}, events=(), now=now, payload=payload)
        self._const: dict[int, bool] = {}
        self._aliases = 0

    def t(self, n: ir.Expr) -> str:
        return self.typer.type_of(n)

    def is_const(self, n: ir.Expr) -> bool:
        k = self._const.get(id(n))
        if k is None:
            if isinstance(n, (ir.Agg, ir.Events, ir.InSegment)):
                k = False
            elif isinstance(n, ir.Field):
                if n.root == "payload" and not self.payload_known:
                    raise ExprTypeError("payload fields need the payload (compile_condition(..., payload=...))")
                k = n.root == "payload"
            else:
                k = all(self.is_const(c) for c in ir.children(n))
            self._const[id(n)] = k
        return k

    def const_value(self, n: ir.Expr) -> Any:
        return self.consts.value(n)(self.ctx)

    # -- conditions (never NULL) ---------------------------------------------------------------

    def cond(self, n: ir.Expr, scope: Scope) -> str:
        t = self.t(n)
        if t == "null":
            return _FALSE
        if self.is_const(n):
            return _TRUE if self.const_value(n) is True else _FALSE
        d = self.d
        if isinstance(n, ir.Field):
            return d.is_true(self.value(n, scope))
        if isinstance(n, ir.Cmp):
            return self._cmp(n, scope)
        if isinstance(n, ir.And):
            parts = [self.cond(i, scope) for i in sorted(n.items, key=cost)]
            return "(" + " AND ".join(parts) + ")" if parts else _TRUE
        if isinstance(n, ir.Or):
            parts = [self.cond(i, scope) for i in sorted(n.items, key=cost)]
            return "(" + " OR ".join(parts) + ")" if parts else _FALSE
        if isinstance(n, ir.Not):
            return f"NOT ({self.cond(n.item, scope)})"
        if isinstance(n, ir.Exists):
            return self._exists(n.item, scope)
        if isinstance(n, ir.In):
            return self._in(n, scope)
        if isinstance(n, ir.Intersects):
            return self._intersects(n, scope)
        if isinstance(n, ir.Call):
            return self._predicate(n, scope)
        if isinstance(n, ir.Agg):
            return self._agg(n, scope)
        if isinstance(n, ir.InSegment):
            if self.layout.in_segment is None:
                raise ExprTypeError("inSegment needs a layout with in_segment")
            return d.is_true(self.layout.in_segment(self.params.add(n.segment_id)))
        raise ExprTypeError(f"not a condition: {n!r}")

    def _exists(self, item: ir.Expr, scope: Scope) -> str:
        t = self.t(item)
        if t == "null":
            return _FALSE
        if elem_of(t) is not None:
            lst = self.lst(item, scope)
            if lst.kind == "json":
                return self.d.is_array(self.d.at(lst.doc, lst.path))
            return _TRUE
        return f"({self.value(item, scope)}) IS NOT NULL"

    def _cmp(self, n: ir.Cmp, scope: Scope) -> str:
        lt, rt = self.t(n.left), self.t(n.right)
        if "null" in (lt, rt):
            return _FALSE
        if elem_of(lt) is not None:
            return self._list_eq(n, scope)
        com = common(lt, rt)
        a, b = self.as_type(n.left, com, scope), self.as_type(n.right, com, scope)
        test = self.d.cmp(a, n.op, b, com)
        prefilter = self._date_prefilter(n, scope)
        return f"({prefilter} AND {test})" if prefilter else test

    def _date_prefilter(self, n: ir.Cmp, scope: Scope) -> str | None:
        """For a stored date or datetime compared with a constant: a cheap test on the text that every
        matching value passes, so most rows skip the full parse. A valid text starts with its local
        date, within a day of its UTC date; an invalid one fails the full test anyway."""
        field, other, op = n.left, n.right, n.op
        if not isinstance(field, ir.Field):
            field, other, op = n.right, n.left, {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
        if (not isinstance(field, ir.Field) or field.root == "payload" or field.type not in TIMES
                or op == "!=" or not self.is_const(other)):
            return None
        value, ot = self.const_value(other), self.t(other)
        if value is None:
            return None
        day = value // temporal.DAY_MS if ot == "datetime" else value  # the constant's (UTC) date
        slack = 1 if field.type == "datetime" else 0
        text = self.d.at(self.doc(field, scope), field.path)[1]
        if self.d.name == "postgresql":
            text += ' COLLATE "C"'
        tests = []
        if op in (">", ">=", "=") and day - slack > temporal.MIN_DAY:
            tests.append(f"{text} >= '{temporal.to_date(day - slack).isoformat()}'")
        if op in ("<", "<=", "=") and day + slack + 1 <= temporal.MAX_DAY:
            tests.append(f"{text} < '{temporal.to_date(day + slack + 1).isoformat()}'")
        return f"({' AND '.join(tests)}) IS TRUE" if tests else None

    def as_type(self, n: ir.Expr, com: str, scope: Scope) -> str:
        """A scalar operand, a datetime turned into its UTC date when compared as dates."""
        sql = self.value(n, scope)
        return self.d.dt_to_date(sql) if com == "date" and self.t(n) == "datetime" else sql

    # -- lists ---------------------------------------------------------------------------------

    def lst(self, n: ir.Expr, scope: Scope) -> _List:
        if self.is_const(n):
            v = self.const_value(n)
            return _List("const", values=v) if v is not None else _List("null")
        if isinstance(n, ir.ListLit):
            return _List("items", items=[self.value(i, scope) for i in n.items])
        if isinstance(n, ir.Field):
            return _List("json", doc=self.doc(n, scope), path=n.path)
        raise ExprTypeError(f"not a list operand: {n!r}")

    def elem_conv(self, et: str, com: str) -> Callable[[str], str]:
        if com == "date" and et == "datetime":
            return self.d.dt_to_date
        return lambda s: s

    def const_elems(self, lst: _List, et: str, com: str) -> list[Any]:
        vals = [v for v in lst.values if v is not None]
        if com == "date" and et == "datetime":
            vals = [v // temporal.DAY_MS for v in vals]
        return list(dict.fromkeys(vals))

    def member(self, x: str, lst: _List, et: str, com: str, negate: bool) -> str:
        """x (already of type com, maybe NULL) is (not) an element of lst; never NULL."""
        d = self.d
        if lst.kind == "null":
            return _FALSE
        if lst.kind == "const":
            vals = self.const_elems(lst, et, com)
            if not vals:
                return f"({x}) IS NOT NULL" if negate else _FALSE
            return d.in_const(x, vals, com, negate)
        conv = self.elem_conv(et, com)
        if lst.kind == "items":
            def any_item(xv: str) -> str:
                hits = [d.cmp(xv, "=", conv(i), com) for i in lst.items]
                return "(" + " OR ".join(hits) + ")" if hits else _FALSE
            if negate:
                return d.let([x], lambda xv: f"(({xv}) IS NOT NULL AND NOT {any_item(xv)})")
            return d.let([x], any_item)
        alias = self.alias("_j")
        source, h, _ = d.elements(lst.doc, lst.path, alias)
        is_array = d.is_array(d.at(lst.doc, lst.path))

        def exists(xv: str) -> str:
            if d.name == "postgresql" and et == "string":  # jsonb `?`: a top-level string element
                return f"(({d.at(lst.doc, lst.path)[0]}) ? ({xv})) IS TRUE"
            return f"EXISTS (SELECT 1 FROM {source} WHERE {d.cmp(conv(d.read(h, et)), '=', xv, com)})"
        if negate:
            return d.let([x], lambda xv: f"(({xv}) IS NOT NULL AND {is_array} AND NOT {exists(xv)})")
        return d.let([x], lambda xv: f"({is_array} AND {exists(xv)})")

    def _in(self, n: ir.In, scope: Scope) -> str:
        it, lt = self.t(n.item), self.t(n.items)
        et = elem_of(lt)
        if it == "null" or et is None:
            return _FALSE
        com = common(it, et)
        return self.member(self.as_type(n.item, com, scope), self.lst(n.items, scope), et, com, n.negate)

    def _intersects(self, n: ir.Intersects, scope: Scope) -> str:
        le, re_ = elem_of(self.t(n.left)), elem_of(self.t(n.right))
        if le is None or re_ is None or "null" in (le, re_):
            return _FALSE
        com = common(le, re_)
        a, b = self.lst(n.left, scope), self.lst(n.right, scope)
        if a.kind == "const" or (a.kind == "items" and b.kind == "json"):
            a, b, le, re_ = b, a, re_, le
        if "null" in (a.kind, b.kind):
            return _FALSE
        d = self.d
        if a.kind == "items":  # any item of a is in b
            conv = self.elem_conv(le, com)
            parts = [self.member(conv(i), b, re_, com, False) for i in a.items]
            return "(" + " OR ".join(parts) + ")" if parts else _FALSE
        alias = self.alias("_j")
        source, h, _ = d.elements(a.doc, a.path, alias)
        x = self.elem_conv(le, com)(d.read(h, le))
        if b.kind == "const":
            vals = self.const_elems(b, re_, com)
            if not vals:
                return _FALSE
            test = d.in_const(x, vals, com, False)
            return f"({d.is_array(d.at(a.doc, a.path))} AND EXISTS (SELECT 1 FROM {source} WHERE {test}))"
        if b.kind == "items":
            return (f"({d.is_array(d.at(a.doc, a.path))} AND EXISTS (SELECT 1 FROM {source} WHERE "
                    f"{self.member(x, b, re_, com, False)}))")
        alias_b = self.alias("_j")
        source_b, hb, _ = d.elements(b.doc, b.path, alias_b)
        y = self.elem_conv(re_, com)(d.read(hb, re_))
        return (f"({d.is_array(d.at(a.doc, a.path))} AND {d.is_array(d.at(b.doc, b.path))} AND EXISTS "
                f"(SELECT 1 FROM {source} CROSS JOIN {source_b} WHERE {d.cmp(x, '=', y, com)}))")

    def _list_eq(self, n: ir.Cmp, scope: Scope) -> str:
        d = self.d
        le, re_ = elem_of(self.t(n.left)) or "null", elem_of(self.t(n.right)) or "null"
        com = common(le, re_)
        a, b = self.lst(n.left, scope), self.lst(n.right, scope)
        if "null" in (a.kind, b.kind):
            return _FALSE
        if a.kind == "json" and b.kind != "json":
            a, b, le, re_ = b, a, re_, le

        def length(x: _List) -> str:
            k = x.static_len()
            return str(k) if k is not None else d.array_length(x.doc, x.path)

        def elem(x: _List, et: str, i: int) -> str:
            conv = self.elem_conv(et, com)
            if x.kind == "const":
                v = x.values[i]
                return d.const(None if v is None else v // temporal.DAY_MS if conv is d.dt_to_date else v, com)
            if x.kind == "items":
                return conv(x.items[i])
            return conv(d.read(d.at_index(x.doc, x.path, i), et))

        k = a.static_len()
        if k is not None:  # a has a known length: compare position by position
            if b.static_len() is not None and b.static_len() != k:
                eq = _FALSE
            else:
                parts = [] if b.kind != "json" else [f"({length(b)} = {k}) IS TRUE"]
                parts += [d.cmp(elem(a, le, i), "=", elem(b, re_, i), com) for i in range(k)]
                eq = "(" + " AND ".join(parts) + ")" if parts else _TRUE
        else:
            alias = self.alias("_j")
            source, h, idx = d.elements(a.doc, a.path, alias)
            x = self.elem_conv(le, com)(d.read(h, le))
            y = self.elem_conv(re_, com)(d.read(d.at_index(b.doc, b.path, idx), re_))
            eq = (f"(({length(a)} = {length(b)}) IS TRUE AND NOT EXISTS (SELECT 1 FROM {source} "
                  f"WHERE NOT {d.cmp(x, '=', y, com)}))")
        if n.op == "=":
            return eq
        return f"(({length(a)}) IS NOT NULL AND ({length(b)}) IS NOT NULL AND NOT {eq})"

    # -- values (may be NULL) ------------------------------------------------------------------

    def doc(self, n: ir.Field, scope: Scope) -> str:
        if n.root == "event":
            return f"{scope[-1]}.body"
        return self.layout.profile_body

    def alias(self, prefix: str) -> str:
        self._aliases += 1
        return f"{prefix}{self._aliases}"

    def value(self, n: ir.Expr, scope: Scope) -> str:
        t = self.t(n)
        d = self.d
        if elem_of(t) is not None:
            raise ExprTypeError(f"a list is not a scalar value here: {n!r}")
        if self.is_const(n):
            return d.const(self.const_value(n), t if t != "null" else "string")
        if t == "null":
            return d.null("string")
        if isinstance(n, ir.Field):
            return d.read(d.at(self.doc(n, scope), n.path), t)
        if isinstance(n, ir.Shift):
            bounds = _shift_bounds(n.amount, n.unit)
            if bounds is None:  # no base lands in range
                return d.null("datetime")
            return d.shift(self.as_datetime(n.base, scope), n.amount, n.unit, *bounds)
        if isinstance(n, ir.Trunc):
            return d.trunc(self.as_datetime(n.base, scope), n.unit)
        if isinstance(n, ir.Arith):
            return self._arith(n, scope)
        if isinstance(n, ir.Call) and t != "boolean":
            return self._function(n, scope)
        if isinstance(n, ir.Agg) and t != "boolean":
            return self._agg(n, scope)
        if t == "boolean":
            return self.cond(n, scope)
        raise ExprTypeError(f"cannot compile {n!r}")

    def as_datetime(self, n: ir.Expr, scope: Scope) -> str:
        sql = self.value(n, scope)
        return self.d.date_to_dt(sql) if self.t(n) == "date" else sql

    def _arith(self, n: ir.Arith, scope: Scope) -> str:
        d = self.d
        lt, rt = self.t(n.left), self.t(n.right)
        if lt in ("integer", "decimal") and rt in ("integer", "decimal"):
            a, b = self.value(n.left, scope), self.value(n.right, scope)
            if n.op == "/":
                return d.div(a, b)
            if n.op == "%":
                return d.rem(a, b)
            if lt == rt == "integer":
                return d.int_arith(a, n.op, b)
            return f"(({a}) {n.op} ({b}))"
        a = self.as_datetime(n.left, scope) if lt in TIMES else self.value(n.left, scope)
        b = self.as_datetime(n.right, scope) if rt in TIMES else self.value(n.right, scope)
        if lt in TIMES and rt in TIMES:
            return d.dt_diff(a, b)
        if lt in TIMES:
            return d.dt_add(a, b, 1 if n.op == "+" else -1)
        if rt in TIMES:
            return d.dt_add(b, a, 1)
        return d.int_arith(a, n.op, b)  # duration +/- duration

    def _predicate(self, n: ir.Call, scope: Scope) -> str:
        d = self.d
        types = [self.t(a) for a in n.args]
        if "null" in types:
            return _FALSE
        if n.fn == "matches":
            return d.matches(self.value(n.args[0], scope), n.args[1].value)  # type: ignore[union-attr]
        a, b = (self.value(x, scope) for x in n.args)
        if n.fn == "contains":
            return d.contains(a, b)
        if n.fn == "startsWith":
            return d.starts_with(a, b)
        if n.fn == "endsWith":
            return d.ends_with(a, b)
        if n.fn == "equalsIgnoreCase":
            return d.equals_ignore_case(a, b)
        raise ExprTypeError(f"not a predicate: {n.fn}")

    def _function(self, n: ir.Call, scope: Scope) -> str:
        d = self.d
        (arg,) = n.args
        at = self.t(arg)
        if at == "null":
            return d.null(self.t(n))
        if n.fn == "size":
            lst = self.lst(arg, scope)
            return str(lst.static_len()) if lst.kind != "json" else d.array_length(lst.doc, lst.path)
        x = self.value(arg, scope)
        if n.fn == "lower":
            return d.lower(x)
        if n.fn == "upper":
            return d.upper(x)
        if n.fn == "length":
            return f"length({x})"
        return d.part(x, n.fn, at)

    def _agg(self, n: ir.Agg, scope: Scope) -> str:
        d = self.d
        alias = self.alias("_e")
        inner = (*scope, alias)
        source = self.layout.events_from(alias)
        conds = [self.cond(n.source.where, inner)] if n.source.where is not None else []

        def where(*more: str) -> str:
            parts = conds + list(more)
            return " WHERE " + " AND ".join(parts) if parts else ""
        if n.kind == "count":
            return f"(SELECT COUNT(*) FROM {source}{where()})"
        if n.kind == "any":
            more = [self.cond(n.value, inner)] if n.value is not None else []
            return f"EXISTS (SELECT 1 FROM {source}{where(*more)})"
        if n.kind == "all":
            if n.value is None:
                return _TRUE
            return f"NOT EXISTS (SELECT 1 FROM {source}{where('NOT (' + self.cond(n.value, inner) + ')')})"
        vt = self.t(n.value)  # type: ignore[arg-type]
        if vt == "null":
            return "0" if n.kind == "sum" else d.null("string")
        v = self.value(n.value, inner)  # type: ignore[arg-type]
        if not _reads_event(n.value):  # type: ignore[arg-type]
            # An aggregate of outer columns only would belong to the outer query: tie it to the event.
            v = f"CASE WHEN ({alias}.body IS NULL) IS NOT NULL THEN {v} END"
        if n.kind == "sum":
            agg = d.agg_sum(v, self.t(n))
        elif n.kind == "avg":
            agg = d.agg_avg(v)
        else:
            agg = d.agg_min_max(n.kind, v, vt)
        return f"(SELECT {agg} FROM {source}{where()})"


def _shift_bounds(amount: int, unit: str) -> tuple[int, int] | None:
    """[lo, hi) of the instants (ms) that `Shift(_, amount, unit)` keeps within 0001-9999, or None.
    Back-ends test the base against these before shifting, so no database ever overflows."""
    step = temporal.FIXED_UNIT_MS.get(unit)
    if step is not None:
        lo, hi = temporal.MIN_MS - amount * step, temporal.MAX_MS + 1 - amount * step
    else:
        months = amount * 12 if unit == "year" else amount

        def start(index: int) -> int:  # the first instant of month `index` (year * 12 + month - 1)
            if index < 12:
                return temporal.MIN_MS
            if index >= 120_000:
                return temporal.MAX_MS + 1
            return temporal.days_of(datetime(index // 12, index % 12 + 1, 1).date()) * temporal.DAY_MS
        lo, hi = start(12 - months), start(120_000 - months)
    lo, hi = max(lo, temporal.MIN_MS), min(hi, temporal.MAX_MS + 1)
    return (lo, hi) if lo < hi else None


def _reads_event(node: ir.Expr) -> bool:
    """Whether a per-event value reads the current event (nested aggregates have their own)."""
    if isinstance(node, ir.Field):
        return node.root == "event"
    if isinstance(node, ir.Agg):
        return False
    return any(_reads_event(c) for c in ir.children(node))
