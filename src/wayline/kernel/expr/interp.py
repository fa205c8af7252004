"""The interpreter: one profile (with its events, a payload, its segments) in memory, no I/O.

A tree is checked (`check.Typer`) and compiled once into nested closures `f(ctx, event)`; evaluating
it is then a few closure calls per node. Constant subtrees are computed at compile time; subtrees
that depend only on the evaluation instant (`Shift(Now(), -1, "month")`) once per Context. Inside,
dates are days and datetimes milliseconds since the epoch (`temporal`), as in the SQL back-end.

The semantics are the contract in `ir`; the SQL compiler (`sql`) implements the same, and
tests/kernel/test_expr_agreement.py holds the two to it.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from wayline.kernel.expr import ir, temporal
from wayline.kernel.expr.check import NUMBERS, ExprTypeError, Typer, common, cost, elem_of
from wayline.kernel.expr.regex import compiled as compiled_regex

__all__ = ["Context", "ExprTypeError", "compile_fn", "compile_predicate", "evaluate", "matches"]

Fn = Callable[..., Any]  # (ctx, event=None) -> internal value


@dataclass(frozen=True, slots=True)
class Context:
    """What one evaluation sees. `profile` and `events` are JSON-shaped (dicts, lists, str, numbers,
    bools, None); datetimes in them are ISO 8601 strings, as stored."""

    profile: dict[str, Any]
    events: Sequence[dict[str, Any]]
    now: datetime  # aware UTC (naive is read as UTC)
    payload: dict[str, Any] | None = None
    segments: frozenset[str] = frozenset()  # segment ids the profile is in (realized or existing)
    _now_ms: int = field(init=False, repr=False, compare=False, default=0)
    _memo: dict[int, Any] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_now_ms", temporal.instant_of(self.now))


def compile_fn(expr: ir.Expr) -> Callable[[Context], Any]:
    """A function giving the value of `expr` on a Context (a bool for conditions; a field's value may
    be None). Dates come back as `date`, datetimes as aware UTC `datetime`."""
    typer = Typer(expr)
    fn = Compiler(typer).value(expr)
    out = _OUT.get(typer.root) or (_list_out(elem_of(typer.root)) if elem_of(typer.root) else None)
    if out is None:
        return fn
    return lambda ctx: _ext(fn(ctx), out)


def compile_predicate(expr: ir.Expr) -> Callable[[Context], bool]:
    """The two-valued result of a condition: what segment membership and journey conditions use."""
    typer = Typer(expr)
    if typer.root not in ("boolean", "null"):
        raise ExprTypeError(f"not a condition: the expression is a {typer.root}")
    return Compiler(typer).cond(expr)


def evaluate(expr: ir.Expr, ctx: Context) -> Any:
    """The value of any node (bool for conditions). Compiles once per expression object."""
    return _cached(expr, compile_fn)(ctx)


def matches(expr: ir.Expr, ctx: Context) -> bool:
    """A condition's result (False when it is a null-valued boolean field)."""
    return _cached(expr, compile_predicate)(ctx)


_CACHE: dict[tuple[int, Any], tuple[ir.Expr, Callable[[Context], Any]]] = {}


def _cached(expr: ir.Expr, make: Callable[[ir.Expr], Callable[[Context], Any]]) -> Callable[[Context], Any]:
    hit = _CACHE.get((id(expr), make))
    if hit is not None and hit[0] is expr:
        return hit[1]
    fn = make(expr)
    if len(_CACHE) > 4096:
        _CACHE.clear()
    _CACHE[(id(expr), make)] = (expr, fn)
    return fn


# -- external values ---------------------------------------------------------------------------------

_OUT: dict[str, Callable[[Any], Any]] = {"datetime": temporal.to_datetime, "date": temporal.to_date}


def _list_out(elem: str | None) -> Callable[[Any], Any]:
    conv = _OUT.get(elem or "")
    return lambda v: [None if x is None else conv(x) for x in v] if conv else list(v)


def _ext(v: Any, conv: Callable[[Any], Any]) -> Any:
    return None if v is None else conv(v)


# -- reading JSON values as typed values ---------------------------------------------------------------

_I64 = 1 << 63
_MAX_DOUBLE = 1.7976931348623157e308


def _as_string(v: Any) -> Any:
    return v if type(v) is str else None


def _as_integer(v: Any) -> Any:
    t = type(v)
    if t is int:
        return v if -_I64 <= v < _I64 else None
    if t is float and v.is_integer() and -_I64 <= v < _I64:
        return int(v)
    return None


def _as_decimal(v: Any) -> Any:
    """A JSON number as a double; one that does not fit a double (or NaN) is null."""
    t = type(v)
    if t is float:
        return v if -_MAX_DOUBLE <= v <= _MAX_DOUBLE else None
    if t is int:
        try:
            return float(v)
        except OverflowError:
            return None
    return None


def _as_boolean(v: Any) -> Any:
    return v if type(v) is bool else None


def _as_date(v: Any) -> Any:
    return temporal.parse_date(v) if type(v) is str else None


def _as_datetime(v: Any) -> Any:
    return temporal.parse_instant(v) if type(v) is str else None


def _as_any(v: Any) -> Any:
    return v


_READ: dict[str, Callable[[Any], Any]] = {
    "string": _as_string, "integer": _as_integer, "duration": _as_integer, "decimal": _as_decimal,
    "boolean": _as_boolean, "date": _as_date, "datetime": _as_datetime, "any": _as_any}


def _reader(t: str) -> Callable[[Any], Any]:
    elem = elem_of(t)
    if elem is None:
        return _READ[t]
    each = _READ[elem]
    return lambda v: tuple(map(each, v)) if type(v) is list else None


def _lit(value: Any, t: str) -> Any:
    if value is None:
        return None
    if t == "datetime":
        return temporal.instant_of(value)
    if t == "date":
        return temporal.days_of(value)
    if t == "decimal":
        return float(value)
    return value


# -- the compiler ------------------------------------------------------------------------------------

_SLOTS = itertools.count()
_MISSING = object()
_CMP = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
        ">=": operator.ge}
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _const(v: Any) -> Fn:
    return lambda c, e=None: v


class Compiler:
    """Closures for the nodes of a checked tree (the SQL compiler uses it to compute constants)."""

    def __init__(self, typer: Typer) -> None:
        self.typer = typer
        self.kinds: dict[int, str] = {}  # id(node) -> static | now | dynamic
        self.values: dict[int, Any] = {}  # id(node) -> value, for static nodes

    def t(self, node: ir.Expr) -> str:
        return self.typer.type_of(node)

    def is_static(self, node: ir.Expr) -> bool:
        return self.kinds.get(id(node)) == "static"

    # every node goes through here
    def value(self, node: ir.Expr) -> Fn:
        fn, kind = self._node(node)
        self.kinds[id(node)] = kind
        if kind == "static":
            v = fn(None, None)
            self.values[id(node)] = v
            return _const(v)
        if kind == "now" and not _cheap(node):
            key = next(_SLOTS)
            inner = fn

            def fn(c: Context, e: Any = None) -> Any:
                m = c._memo
                v = m.get(key, _MISSING)
                if v is _MISSING:
                    v = m[key] = inner(c, e)
                return v
        return fn

    def cond(self, node: ir.Expr) -> Fn:
        """A closure that always returns a bool (a null boolean is False)."""
        fn = self.value(node)
        if self.t(node) == "null":
            return _const(False)
        if isinstance(node, ir.Field):
            return lambda c, e=None: fn(c, e) is True
        return fn

    def _node(self, n: ir.Expr) -> tuple[Fn, str]:
        if isinstance(n, ir.Lit):
            v = _lit(n.value, self.t(n))
            return _const(v), "static"
        if isinstance(n, ir.ListLit):
            return self._list(n)
        if isinstance(n, ir.Field):
            return _field(n.root, n.path, _reader(self.t(n))), "now" if n.root == "payload" else "dynamic"
        if isinstance(n, ir.Now):
            return (lambda c, e=None: c._now_ms), "now"
        if isinstance(n, ir.Shift):
            return self._shift(n), self._kind(n.base)
        if isinstance(n, ir.Trunc):
            base, unit = self._time(n.base), n.unit
            return (lambda c, e=None: None if (b := base(c, e)) is None else temporal.trunc(b, unit)), \
                self._kind(n.base)
        if isinstance(n, ir.Cmp):
            return self._cmp(n), self._kind(n.left, n.right)
        if isinstance(n, ir.And):
            fns = [self.cond(i) for i in sorted(n.items, key=cost)]
            return _and(fns), self._kind(*n.items)
        if isinstance(n, ir.Or):
            fns = [self.cond(i) for i in sorted(n.items, key=cost)]
            return _or(fns), self._kind(*n.items)
        if isinstance(n, ir.Not):
            f = self.cond(n.item)
            return (lambda c, e=None: not f(c, e)), self._kind(n.item)
        if isinstance(n, ir.Exists):
            f = self.value(n.item)
            return (lambda c, e=None: f(c, e) is not None), self._kind(n.item)
        if isinstance(n, ir.Arith):
            return self._arith(n), self._kind(n.left, n.right)
        if isinstance(n, ir.In):
            return self._in(n), self._kind(n.item, n.items)
        if isinstance(n, ir.Intersects):
            return self._intersects(n), self._kind(n.left, n.right)
        if isinstance(n, ir.Call):
            return self._call(n), self._kind(*n.args)
        if isinstance(n, ir.Agg):
            return self._agg(n), "dynamic"
        if isinstance(n, ir.InSegment):
            sid = n.segment_id
            return (lambda c, e=None: sid in c.segments), "dynamic"
        raise ExprTypeError(f"cannot evaluate {n!r}")

    def _kind(self, *nodes: ir.Expr) -> str:
        kinds = {self.kinds[id(x)] for x in nodes}
        return "dynamic" if "dynamic" in kinds else "now" if "now" in kinds else "static"

    # -- values ------------------------------------------------------------------------------------

    def _list(self, n: ir.ListLit) -> tuple[Fn, str]:
        elem = elem_of(self.t(n)) or "null"
        conv = float if elem == "decimal" else None
        fns = [self.value(i) for i in n.items]
        if conv is not None:
            return (lambda c, e=None: tuple(None if (v := f(c, e)) is None else conv(v) for f in fns)), \
                self._kind(*n.items)
        return (lambda c, e=None: tuple(f(c, e) for f in fns)), self._kind(*n.items)

    def _time(self, node: ir.Expr) -> Fn:
        """A date or datetime operand as milliseconds (a date is its midnight UTC)."""
        f = self.value(node)
        if self.t(node) == "date":
            return lambda c, e=None: None if (d := f(c, e)) is None else d * temporal.DAY_MS
        return f

    def _shift(self, n: ir.Shift) -> Fn:
        base, amount, unit = self._time(n.base), n.amount, n.unit
        step = temporal.FIXED_UNIT_MS.get(unit)
        if step is not None:
            delta, lo, hi = amount * step, temporal.MIN_MS, temporal.MAX_MS

            def fixed(c: Context, e: Any = None) -> Any:
                b = base(c, e)
                if b is None:
                    return None
                b += delta
                return b if lo <= b <= hi else None
            return fixed
        shift = temporal.shift
        return lambda c, e=None: None if (b := base(c, e)) is None else shift(b, amount, unit)

    def _operands(self, left: ir.Expr, right: ir.Expr) -> tuple[Fn, Fn]:
        """Both sides, a datetime turned into its UTC date when the other side is a date."""
        lt, rt = self.t(left), self.t(right)
        lf, rf = self.value(left), self.value(right)
        if common(lt, rt) == "date":
            lf, rf = (_to_day(lf) if lt == "datetime" else lf), (_to_day(rf) if rt == "datetime" else rf)
        return lf, rf

    def _cmp(self, n: ir.Cmp) -> Fn:
        lt, rt = self.t(n.left), self.t(n.right)
        if "null" in (lt, rt):
            self.value(n.left), self.value(n.right)
            return _const(False)
        if elem_of(lt) is not None:
            return self._list_eq(n)
        lf, rf = self._operands(n.left, n.right)
        op = _CMP[n.op]
        if self.is_static(n.right):
            k = rf(None)
            if k is None:
                return _const(False)
            return lambda c, e=None: (a := lf(c, e)) is not None and op(a, k)
        return lambda c, e=None: (a := lf(c, e)) is not None and (b := rf(c, e)) is not None and op(a, b)

    def _list_eq(self, n: ir.Cmp) -> Fn:
        le, re_ = elem_of(self.t(n.left)), elem_of(self.t(n.right))
        lf, rf = self.value(n.left), self.value(n.right)
        if common(le or "null", re_ or "null") == "date":
            lf = _days_of_list(lf) if le == "datetime" else lf
            rf = _days_of_list(rf) if re_ == "datetime" else rf

        def eq(c: Context, e: Any = None) -> Any:
            a, b = lf(c, e), rf(c, e)
            if a is None or b is None:
                return None
            return len(a) == len(b) and all(x is not None and y is not None and x == y for x, y in zip(a, b))
        if n.op == "=":
            return lambda c, e=None: eq(c, e) is True
        return lambda c, e=None: eq(c, e) is False

    def _arith(self, n: ir.Arith) -> Fn:
        t = self.t(n)
        lt, rt = self.t(n.left), self.t(n.right)
        if t == "null":
            self.value(n.left), self.value(n.right)
            return _const(None)
        if lt in NUMBERS and rt in NUMBERS:
            lf, rf = self.value(n.left), self.value(n.right)
            op = n.op
            if op == "/":
                return lambda c, e=None: (None if (a := lf(c, e)) is None or (b := rf(c, e)) is None or b == 0
                                          else a / b)
            if op == "%":
                return lambda c, e=None: (None if (a := lf(c, e)) is None or (b := rf(c, e)) is None or b == 0
                                          else _rem(a, b))
            f = {"+": operator.add, "-": operator.sub, "*": operator.mul}[op]
            if t == "integer":  # an integer result beyond 64 bits is null
                return lambda c, e=None: (None if (a := lf(c, e)) is None or (b := rf(c, e)) is None
                                          or not -_I64 <= (r := f(a, b)) < _I64 else r)
            return lambda c, e=None: None if (a := lf(c, e)) is None or (b := rf(c, e)) is None else f(a, b)
        lf = self._time(n.left) if lt in ("date", "datetime") else self.value(n.left)
        rf = self._time(n.right) if rt in ("date", "datetime") else self.value(n.right)
        sign = 1 if n.op == "+" else -1
        lo, hi = (temporal.MIN_MS, temporal.MAX_MS) if t == "datetime" else (-(1 << 63), (1 << 63) - 1)

        def timed(c: Context, e: Any = None) -> Any:
            a, b = lf(c, e), rf(c, e)
            if a is None or b is None:
                return None
            r = a + sign * b
            return r if lo <= r <= hi else None
        return timed

    def _in(self, n: ir.In) -> Fn:
        it, lt = self.t(n.item), self.t(n.items)
        et = elem_of(lt)
        if it == "null" or et is None:
            self.value(n.item), self.value(n.items)
            return _const(False)
        xf, lf = self.value(n.item), self.value(n.items)
        if common(it, et) == "date":
            xf = _to_day(xf) if it == "datetime" else xf
            lf = _days_of_list(lf) if et == "datetime" else lf
        neg = n.negate
        if self.is_static(n.items):
            items = lf(None)
            if items is None:
                return _const(False)
            s = frozenset(x for x in items if x is not None)
            if neg:
                return lambda c, e=None: (x := xf(c, e)) is not None and x not in s
            return lambda c, e=None: (x := xf(c, e)) is not None and x in s
        if neg:
            return lambda c, e=None: (x := xf(c, e)) is not None and (v := lf(c, e)) is not None and x not in v
        return lambda c, e=None: (x := xf(c, e)) is not None and (v := lf(c, e)) is not None and x in v

    def _intersects(self, n: ir.Intersects) -> Fn:
        le, re_ = elem_of(self.t(n.left)), elem_of(self.t(n.right))
        lf, rf = self.value(n.left), self.value(n.right)
        if le is None or re_ is None:
            return _const(False)
        if common(le, re_) == "date":
            lf = _days_of_list(lf) if le == "datetime" else lf
            rf = _days_of_list(rf) if re_ == "datetime" else rf

        def hit(c: Context, e: Any = None) -> bool:
            a, b = lf(c, e), rf(c, e)
            if a is None or b is None:
                return False
            s = {y for y in b if y is not None}
            return any(x is not None and x in s for x in a)
        return hit

    def _call(self, n: ir.Call) -> Fn:
        fn = n.fn
        types = [self.t(a) for a in n.args]
        if fn == "matches":
            sf = self.value(n.args[0])
            pattern = n.args[1].value  # type: ignore[union-attr]  (the typer demands a Lit)
            self.value(n.args[1])
            if pattern is None or types[0] == "null":
                return _const(False)
            search = compiled_regex(pattern).search
            return lambda c, e=None: (s := sf(c, e)) is not None and search(s) is not None
        args = [self.value(a) for a in n.args]
        if fn in ("contains", "startsWith", "endsWith", "equalsIgnoreCase"):
            if "null" in types:
                return _const(False)
            a, b = args
            test: Callable[[str, str], bool] = {
                "contains": lambda x, y: y in x, "startsWith": str.startswith, "endsWith": str.endswith,
                "equalsIgnoreCase": lambda x, y: x.translate(_ASCII_LOWER) == y.translate(_ASCII_LOWER)}[fn]
            return lambda c, e=None: (x := a(c, e)) is not None and (y := b(c, e)) is not None and test(x, y)
        (a,) = args
        if fn in ("lower", "upper"):
            table = _ASCII_LOWER if fn == "lower" else _ASCII_UPPER
            return lambda c, e=None: None if (x := a(c, e)) is None else x.translate(table)
        if fn in ("length", "size"):
            return lambda c, e=None: None if (x := a(c, e)) is None else len(x)
        if fn == "hour":
            return lambda c, e=None: None if (x := a(c, e)) is None else x % temporal.DAY_MS // 3_600_000
        days = a if types[0] == "date" else _to_day(a)
        part = temporal.part_of_day
        return lambda c, e=None: None if (d := days(c, e)) is None else part(d, fn)

    def _agg(self, n: ir.Agg) -> Fn:
        where = self.cond(n.source.where) if n.source.where is not None else None
        kind = n.kind
        if kind == "count":
            if where is None:
                return lambda c, e=None: len(c.events)
            return lambda c, e=None: sum(1 for ev in c.events if where(c, ev))
        if kind in ("any", "all"):
            test = self.cond(n.value) if n.value is not None else None
            if kind == "any":
                if test is None:
                    test = where or (lambda c, e=None: True)
                elif where is not None:
                    w, v = where, test
                    test = lambda c, e=None: w(c, e) and v(c, e)
                return lambda c, e=None: any(test(c, ev) for ev in c.events)
            if test is None:
                return _const(True)
            if where is None:
                return lambda c, e=None: all(test(c, ev) for ev in c.events)
            return lambda c, e=None: all(test(c, ev) for ev in c.events if where(c, ev))
        val = self.value(n.value)  # type: ignore[arg-type]
        if where is None:
            def values(c: Context) -> list[Any]:
                return [v for ev in c.events if (v := val(c, ev)) is not None]
        else:
            def values(c: Context) -> list[Any]:
                return [v for ev in c.events if where(c, ev) and (v := val(c, ev)) is not None]
        if kind == "sum":
            if self.t(n) == "decimal":
                return lambda c, e=None: sum(values(c), 0.0)
            return lambda c, e=None: r if -_I64 <= (r := sum(values(c), 0)) < _I64 else None
        if kind == "avg":
            return lambda c, e=None: sum(vs) / len(vs) if (vs := values(c)) else None
        pick = min if kind == "min" else max
        return lambda c, e=None: pick(vs) if (vs := values(c)) else None


def _cheap(node: ir.Expr) -> bool:
    """Not worth a per-Context memo: the instant itself, a fixed shift of it, a payload field."""
    if isinstance(node, (ir.Now, ir.Field)):
        return True
    return isinstance(node, ir.Shift) and node.unit in temporal.FIXED_UNIT_MS and isinstance(node.base, ir.Now)


def _field(root: str, path: tuple[str, ...], read: Callable[[Any], Any]) -> Fn:
    if root == "profile":
        if len(path) == 1:
            (k0,) = path
            return lambda c, e=None: None if (v := c.profile.get(k0)) is None else read(v)
        if len(path) == 2:
            k0, k1 = path
            return lambda c, e=None: (None if type(v := c.profile.get(k0)) is not dict or (v := v.get(k1)) is None
                                      else read(v))
        return lambda c, e=None: _walk(c.profile, path, read)
    if root == "event":
        if len(path) == 1:
            (k0,) = path
            return lambda c, e=None: None if type(e) is not dict or (v := e.get(k0)) is None else read(v)
        return lambda c, e=None: _walk(e, path, read)
    return lambda c, e=None: _walk(c.payload, path, read)


def _walk(v: Any, path: tuple[str, ...], read: Callable[[Any], Any]) -> Any:
    for k in path:
        if type(v) is not dict:
            return None
        v = v.get(k)
    return None if v is None else read(v)


def _to_day(f: Fn) -> Fn:
    return lambda c, e=None: None if (v := f(c, e)) is None else v // temporal.DAY_MS


def _days_of_list(f: Fn) -> Fn:
    return lambda c, e=None: None if (v := f(c, e)) is None else tuple(
        None if x is None else x // temporal.DAY_MS for x in v)


def _rem(a: int, b: int) -> int:
    """The remainder with the sign of the dividend (as SQL's %), not Python's floored one."""
    r = abs(a) % abs(b)
    return -r if a < 0 else r


def _and(fns: list[Fn]) -> Fn:
    if not fns:
        return _const(True)
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        f, g = fns
        return lambda c, e=None: f(c, e) and g(c, e)
    return lambda c, e=None: all(f(c, e) for f in fns)


def _or(fns: list[Fn]) -> Fn:
    if not fns:
        return _const(False)
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        f, g = fns
        return lambda c, e=None: f(c, e) or g(c, e)
    return lambda c, e=None: any(f(c, e) for f in fns)
