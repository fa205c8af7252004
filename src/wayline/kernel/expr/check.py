"""Static types of IR trees, shared by the back-ends: both decide what a tree means before evaluating it.

`Typer(expr)` checks a whole tree (scoping of event fields, operand types, function signatures,
regex patterns) and answers `type_of(node)` for every node of it. Types are strings: the scalar
types of the contract, "null", "any" (a field whose schema type is not a scalar: only `Exists` may
use it) and "list:<elem>" for lists. A tree the back-ends could not evaluate identically is refused
with ExprTypeError when it is compiled, never silently.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from wayline.kernel.expr import ir
from wayline.kernel.expr.regex import PatternError, check_pattern

SCALARS = frozenset({"string", "integer", "decimal", "boolean", "date", "datetime", "duration"})
NUMBERS = frozenset({"integer", "decimal"})
TIMES = frozenset({"date", "datetime"})
ORDERED = frozenset({"integer", "decimal", "string", "date", "datetime", "duration"})


class ExprTypeError(TypeError):
    """A tree the back-ends refuse: ill-typed, or outside what they implement identically."""


def elem_of(t: str) -> str | None:
    return t[5:] if t.startswith("list:") else None


def common(a: str, b: str) -> str:
    """The type two equality-comparable values are compared as ("date" when a date meets a datetime)."""
    if a in NUMBERS and b in NUMBERS:
        return "decimal" if "decimal" in (a, b) else "integer"
    if a != b and {a, b} == TIMES:
        return "date"
    return a if a != "null" else b


def eq_compatible(a: str, b: str) -> bool:
    """Whether values of types a and b may be tested for equality (null meets anything)."""
    if "null" in (a, b):
        return True
    if a == b:
        return a != "any"
    return {a, b} <= NUMBERS or {a, b} == TIMES


def _lit_ok(value: object, t: str) -> bool:
    if t == "string":
        return isinstance(value, str)
    if t in ("integer", "duration"):
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "decimal":
        return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)
    if t == "boolean":
        return isinstance(value, bool)
    if t == "date":
        return isinstance(value, date) and not isinstance(value, datetime)
    if t == "datetime":
        return isinstance(value, datetime)
    return False


class Typer:
    """The checked types of one tree's nodes (by identity)."""

    def __init__(self, expr: ir.Expr) -> None:
        self._types: dict[int, str] = {}
        self._nodes: list[ir.Expr] = []  # keeps ids stable while the Typer lives
        self.root = self._visit(expr, 0)

    def type_of(self, node: ir.Expr) -> str:
        return self._types[id(node)]

    def _visit(self, node: ir.Expr, depth: int) -> str:
        t = self._infer(node, depth)
        self._types[id(node)] = t
        self._nodes.append(node)
        return t

    def _cond(self, node: ir.Expr, depth: int, what: str) -> None:
        t = self._visit(node, depth)
        if t not in ("boolean", "null"):
            raise ExprTypeError(f"{what} needs a condition, got {t}: {node!r}")

    def _infer(self, n: ir.Expr, depth: int) -> str:
        if isinstance(n, ir.Lit):
            if n.value is None:
                return "null"
            if n.type not in SCALARS or not _lit_ok(n.value, n.type):
                raise ExprTypeError(f"literal {n.value!r} is not a {n.type}")
            return n.type
        if isinstance(n, ir.ListLit):
            kinds = {self._visit(i, depth) for i in n.items} - {"null"}
            et = n.elem_type
            if et == "any":
                if not kinds:
                    return "list:null"
                et = "decimal" if kinds <= NUMBERS and len(kinds) == 2 else kinds.pop() if len(kinds) == 1 else ""
            if et not in SCALARS or any(k != et and not (k == "integer" and et == "decimal") for k in kinds):
                raise ExprTypeError(f"list items {sorted(kinds)} do not fit a list of {n.elem_type}")
            return "list:" + et
        if isinstance(n, ir.Field):
            if n.root == "event" and depth == 0:
                raise ExprTypeError(f"event field {'.'.join(n.path)} outside an event filter or aggregate")
            if n.root not in ("profile", "event", "payload") or not n.path:
                raise ExprTypeError(f"bad field {n!r}")
            if n.type == "list":
                return "list:" + (n.elem_type if n.elem_type in SCALARS else "any")
            if n.type in SCALARS or n.type == "any":
                return n.type
            raise ExprTypeError(f"field {'.'.join(n.path)} cannot have type {n.type}")
        if isinstance(n, ir.Now):
            return "datetime"
        if isinstance(n, (ir.Shift, ir.Trunc)):
            bt = self._visit(n.base, depth)
            units = ("second", "minute", "hour", "day", "week", "month", "year")
            if isinstance(n, ir.Trunc):
                units = ("day", "week", "month", "year")
            elif not isinstance(n.amount, int) or isinstance(n.amount, bool):
                raise ExprTypeError(f"shift amount must be an integer: {n!r}")
            if n.unit not in units:
                raise ExprTypeError(f"unit {n.unit!r} not allowed here: {n!r}")
            if bt == "null":
                return "null"
            if bt not in TIMES:
                raise ExprTypeError(f"{type(n).__name__} needs a date or datetime, got {bt}")
            return "datetime"
        if isinstance(n, ir.Cmp):
            lt, rt = self._visit(n.left, depth), self._visit(n.right, depth)
            if "null" in (lt, rt):
                return "boolean"
            if n.op not in ("=", "!=", "<", "<=", ">", ">="):
                raise ExprTypeError(f"unknown comparison {n.op!r}")
            le, re_ = elem_of(lt), elem_of(rt)
            if le is not None or re_ is not None:
                ok = le is not None and re_ is not None and n.op in ("=", "!=") and eq_compatible(le, re_)
            elif n.op in ("=", "!="):
                ok = eq_compatible(lt, rt) and lt != "any"
            else:
                ok = eq_compatible(lt, rt) and lt in ORDERED and rt in ORDERED
            if not ok:
                raise ExprTypeError(f"cannot compare {lt} with {rt} using {n.op!r}")
            return "boolean"
        if isinstance(n, (ir.And, ir.Or)):
            for item in n.items:
                self._cond(item, depth, type(n).__name__)
            return "boolean"
        if isinstance(n, ir.Not):
            self._cond(n.item, depth, "Not")
            return "boolean"
        if isinstance(n, ir.Exists):
            if isinstance(n.item, ir.Events):
                raise ExprTypeError("Exists of events: use Agg('any', ...)")
            self._visit(n.item, depth)
            return "boolean"
        if isinstance(n, ir.Arith):
            return self._arith(n, self._visit(n.left, depth), self._visit(n.right, depth))
        if isinstance(n, ir.In):
            it, lt = self._visit(n.item, depth), self._visit(n.items, depth)
            et = elem_of(lt)
            if et is None and lt != "null":
                raise ExprTypeError(f"'in' needs a list, got {lt}")
            if elem_of(it) is not None or it == "any" or (et is not None and not eq_compatible(it, et)):
                raise ExprTypeError(f"'in' looks for a {it} in a list of {et}")
            return "boolean"
        if isinstance(n, ir.Intersects):
            lt, rt = self._visit(n.left, depth), self._visit(n.right, depth)
            le, re_ = elem_of(lt), elem_of(rt)
            if (le is None and lt != "null") or (re_ is None and rt != "null") or (
                    le is not None and re_ is not None and not eq_compatible(le, re_)):
                raise ExprTypeError(f"'intersects' needs two lists of comparable elements, got {lt} and {rt}")
            return "boolean"
        if isinstance(n, ir.Call):
            return self._call(n, depth)
        if isinstance(n, ir.Events):
            raise ExprTypeError("Events is only valid as the source of an Agg")
        if isinstance(n, ir.Agg):
            return self._agg(n, depth)
        if isinstance(n, ir.InSegment):
            if not isinstance(n.segment_id, str):
                raise ExprTypeError("segment id must be a string")
            return "boolean"
        raise ExprTypeError(f"not an expression node: {n!r}")

    @staticmethod
    def _arith(n: ir.Arith, lt: str, rt: str) -> str:
        if "null" in (lt, rt):
            return "null"
        if lt in NUMBERS and rt in NUMBERS:
            if n.op == "/":
                return "decimal"
            if n.op == "%" and not lt == rt == "integer":
                raise ExprTypeError("'%' needs two integers")
            if n.op in ("+", "-", "*", "%"):
                return "integer" if lt == rt == "integer" else "decimal"
        # dates take part as the datetime of their midnight UTC
        lt = "datetime" if lt == "date" else lt
        rt = "datetime" if rt == "date" else rt
        if n.op == "-" and lt == rt == "datetime":
            return "duration"
        if n.op in ("+", "-") and lt == "datetime" and rt == "duration":
            return "datetime"
        if n.op == "+" and lt == "duration" and rt == "datetime":
            return "datetime"
        if n.op in ("+", "-") and lt == rt == "duration":
            return "duration"
        raise ExprTypeError(f"cannot compute {lt} {n.op} {rt}")

    def _call(self, n: ir.Call, depth: int) -> str:
        spec = ir.FUNCTIONS.get(n.fn)
        if spec is None:
            raise ExprTypeError(f"unknown function {n.fn!r}")
        want, result = spec
        if len(n.args) != len(want):
            raise ExprTypeError(f"{n.fn} takes {len(want)} arguments")
        for arg, w in zip(n.args, want, strict=True):
            t = self._visit(arg, depth)
            allowed = set(w.split("|"))
            if t != "null" and t not in allowed and not (w == "list" and elem_of(t) is not None):
                raise ExprTypeError(f"{n.fn} needs {w}, got {t}")
        if n.fn == "matches":
            pat = n.args[1]
            if not isinstance(pat, ir.Lit):
                raise ExprTypeError("the pattern of matches must be a literal")
            if pat.value is not None:
                try:
                    check_pattern(pat.value)
                except PatternError as exc:
                    raise ExprTypeError(str(exc)) from None
        return result

    def _agg(self, n: ir.Agg, depth: int) -> str:
        if not isinstance(n.source, ir.Events):
            raise ExprTypeError("an Agg reads Events")
        if n.source.where is not None:
            self._cond(n.source.where, depth + 1, "Events")
        self._types[id(n.source)] = "events"
        self._nodes.append(n.source)
        if n.value is None:
            if n.kind == "count":
                return "integer"
            if n.kind in ("any", "all"):
                return "boolean"
            raise ExprTypeError(f"{n.kind} needs a per-event value")
        vt = self._visit(n.value, depth + 1)
        if n.kind == "count":
            raise ExprTypeError("count takes no per-event value")
        if n.kind in ("any", "all"):
            if vt not in ("boolean", "null"):
                raise ExprTypeError(f"{n.kind} needs a per-event condition, got {vt}")
            return "boolean"
        if vt == "null":
            return "integer" if n.kind == "sum" else "null"
        if n.kind in ("sum", "avg"):
            if vt not in NUMBERS:
                raise ExprTypeError(f"{n.kind} needs numbers, got {vt}")
            return "decimal" if n.kind == "avg" else vt
        if n.kind in ("min", "max"):
            if vt not in ORDERED:
                raise ExprTypeError(f"{n.kind} needs numbers, strings, dates, datetimes or durations, got {vt}")
            return vt
        raise ExprTypeError(f"unknown aggregate {n.kind!r}")


def depends(node: ir.Expr, *, payload_known: bool = False) -> str:
    """"static" (a constant), "now" (the evaluation instant or the payload only) or "dynamic" (reads
    the profile, its events or its segments)."""
    kind = "static"
    for n in ir.walk(node):
        if isinstance(n, (ir.Agg, ir.Events, ir.InSegment)) or (
                isinstance(n, ir.Field) and n.root in ("profile", "event")):
            return "dynamic"
        if isinstance(n, ir.Now) or (isinstance(n, ir.Field) and not payload_known):
            kind = "now"
    return kind


def cost(node: ir.Expr) -> int:
    """A rough evaluation cost, to test cheap conjuncts and disjuncts first (two-valued logic without
    side effects: the order never changes a result, only the time spent)."""
    if isinstance(node, ir.Agg):
        return 200 + sum(cost(c) for c in ir.children(node)) * 5
    if isinstance(node, ir.InSegment):
        return 30
    if isinstance(node, ir.Field):
        return 8 if node.type in ("date", "datetime") else 2
    if isinstance(node, ir.Call) and node.fn == "matches":
        return 10 + sum(cost(c) for c in node.args)
    if isinstance(node, (ir.Lit, ir.Now)):
        return 0
    return 1 + sum(cost(c) for c in ir.children(node))
