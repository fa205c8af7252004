"""The SQLite dialect of the SQL compiler (see `sqldialect` for the value representations).

JSON1 functions read the stored JSON; dates and datetimes are read and computed by the interpreter's
own `temporal` code, registered on each connection as deterministic functions (SQLITE_FUNCTIONS,
installed by `sql.install_sqlite_functions`): pure SQL would need several nested subqueries per
datetime, and SQLite's parser allows only a few levels of nesting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wayline.kernel.expr import temporal
from wayline.kernel.expr.check import ExprTypeError
from wayline.kernel.expr.regex import search
from wayline.kernel.expr.sqldialect import I64 as _I64
from wayline.kernel.expr.sqldialect import MAX_DOUBLE as _MAX_DOUBLE
from wayline.kernel.expr.sqldialect import Dialect


class Sqlite(Dialect):

    name = "sqlite"

    def param_sql(self, value: Any, t: str) -> str:
        return ":" + self.params.add(value)

    def null(self, t: str) -> str:
        return "NULL"

    def let(self, values: list[str], body: Callable[..., str]) -> str:
        # Bind only what is costly to repeat (a subquery); nesting depth is scarce in SQLite.
        if all("SELECT" not in v for v in values):
            return body(*values)
        names = [self.fresh() for _ in values]
        cols = ", ".join(f"{v} AS {n}" for v, n in zip(values, names, strict=True))
        return f"(SELECT {body(*names)} FROM (SELECT {cols}))"

    def const(self, value: Any, t: str) -> str:
        """A constant internal value (dates as days, datetimes as ms) in this dialect's form."""
        if value is None:
            return "NULL"
        if t == "boolean":
            return "1" if value else "0"
        if t in ("integer", "duration", "date", "datetime"):
            return str(int(value))
        return self.param_sql(float(value) if t == "decimal" else value, t)

    def in_const(self, x: str, values: list[Any], t: str, negate: bool) -> str:
        """`x` is (not) one of the non-null constants, never null (False when x is null)."""
        import orjson

        vals = [int(v) if t == "boolean" else v for v in values]
        rows = f"(SELECT value FROM json_each({self.param_sql(orjson.dumps(vals).decode(), 'string')}))"
        return f"(({x}) {'NOT IN' if negate else 'IN'} {rows}) IS TRUE"

    # -- JSON ----------------------------------------------------------------------------------

    def path(self, path: tuple[str, ...]) -> str:
        for k in path:
            if '"' in k:
                raise ExprTypeError(f"field name {k!r}: a double quote cannot be addressed in SQLite JSON paths")
        return "$" + "".join(f'."{k}"' for k in path)

    def at(self, doc: str, path: tuple[str, ...]) -> tuple[str, str]:
        """(type SQL, value SQL) of a JSON location."""
        p = self.text(self.path(path))
        return f"json_type({doc}, {p})", f"json_extract({doc}, {p})"

    def at_index(self, doc: str, path: tuple[str, ...], index: int | str) -> tuple[str, str]:
        """Element `index` (an int, or SQL giving one) of the array at path."""
        if isinstance(index, int):
            p = self.text(self.path(path) + f"[{index}]")
        else:
            p = f"{self.text(self.path(path))} || '[' || ({index}) || ']'"
        return f"json_type({doc}, {p})", f"json_extract({doc}, {p})"

    def read(self, h: tuple[str, str], t: str) -> str:
        ty, v = h
        if t == "string":
            return f"CASE WHEN {ty} = 'text' THEN {v} END"
        if t == "boolean":
            return f"CASE {ty} WHEN 'true' THEN 1 WHEN 'false' THEN 0 END"
        if t in ("integer", "duration"):  # an integral number within 64 bits (json_extract is cached per row)
            return f"CASE WHEN {ty} IN ('integer', 'real') AND {v} = CAST({v} AS INTEGER) THEN CAST({v} AS INTEGER) END"
        if t == "decimal":
            return f"CASE WHEN {ty} IN ('integer', 'real') AND abs({v}) <= {_MAX_DOUBLE} THEN CAST({v} AS REAL) END"
        if t == "date":
            return f"wayline_date({v})"  # only a JSON string can parse: numbers, arrays, objects never do
        if t == "datetime":
            return f"wayline_instant({v})"
        if t == "any":
            return f"CASE WHEN {ty} <> 'null' THEN 1 END"
        raise ExprTypeError(f"cannot read a {t}")

    def is_array(self, h: tuple[str, str]) -> str:
        return f"({h[0]} = 'array') IS TRUE"

    def array_length(self, doc: str, path: tuple[str, ...]) -> str:
        p = self.text(self.path(path))
        return f"CASE WHEN json_type({doc}, {p}) = 'array' THEN json_array_length({doc}, {p}) END"

    def elements(self, doc: str, path: tuple[str, ...], alias: str) -> tuple[str, tuple[str, str], str]:
        """(FROM item over the array's elements, element handle, element index SQL); the caller also
        checks is_array (json_each walks objects and scalars too)."""
        return (f"json_each({doc}, {self.text(self.path(path))}) AS {alias}", (f"{alias}.type", f"{alias}.value"),
                f"{alias}.key")

    # -- values --------------------------------------------------------------------------------

    def dt_to_date(self, x: str) -> str:
        return f"wayline_day({x})"

    def date_to_dt(self, x: str) -> str:
        return f"(({x}) * 86400000)"

    def div(self, a: str, b: str) -> str:
        return f"(CAST({a} AS REAL) / ({b}))"  # SQLite gives NULL on division by zero

    def rem(self, a: str, b: str) -> str:
        return f"(({a}) % ({b}))"

    def int_arith(self, a: str, op: str, b: str) -> str:
        # SQLite turns an overflowing integer result into a REAL: that is the null of the contract
        r = f"(({a}) {op} ({b}))"
        return f"CASE WHEN typeof({r}) = 'integer' THEN {r} END"

    def shift(self, x: str, amount: int, unit: str, lo: int, hi: int) -> str:
        return f"wayline_shift({x}, {amount}, '{unit}')"

    def trunc(self, x: str, unit: str) -> str:
        return f"wayline_trunc({x}, '{unit}')"

    def part(self, x: str, fn: str, t: str) -> str:
        return f"wayline_part({self.date_to_dt(x) if t == 'date' else x}, '{fn}')"

    def dt_diff(self, a: str, b: str) -> str:
        return f"(({a}) - ({b}))"

    def dt_add(self, a: str, d: str, sign: int) -> str:
        return f"wayline_add({a}, {'' if sign > 0 else '-'}({d}))"

    # -- strings -------------------------------------------------------------------------------

    def contains(self, a: str, b: str) -> str:
        return f"(instr({a}, {b}) > 0) IS TRUE"

    def starts_with(self, a: str, b: str) -> str:
        return self.let([b], lambda y: f"(substr({a}, 1, length({y})) = {y}) IS TRUE")

    def ends_with(self, a: str, b: str) -> str:
        return self.let([a, b], lambda x, y: (
            f"({x} IS NOT NULL AND (length({y}) = 0 OR substr({x}, -length({y})) = {y})) IS TRUE"))

    def equals_ignore_case(self, a: str, b: str) -> str:
        return f"(({a}) = ({b}) COLLATE NOCASE) IS TRUE"  # NOCASE folds ASCII letters only

    def lower(self, a: str) -> str:
        return f"lower({a})"  # ASCII-only in SQLite builds without ICU

    def upper(self, a: str) -> str:
        return f"upper({a})"

    def matches(self, a: str, pattern: str) -> str:
        return f"(wayline_matches({self.param_sql(pattern, 'string')}, {a}) = 1) IS TRUE"

    # -- aggregates ----------------------------------------------------------------------------

    def agg_sum(self, v: str, t: str) -> str:
        if t == "decimal":
            return f"COALESCE(SUM({v}), 0.0)"
        # SQLite's SUM raises on overflow; this one is exact and null beyond 64 bits (and, being a
        # Python aggregate, NULL over no rows at all)
        return f"CASE WHEN COUNT(*) = 0 THEN 0 ELSE wayline_isum({v}) END"

    def agg_avg(self, v: str) -> str:
        return f"total({v}) / COUNT({v})"  # total() is a double sum that never raises; x / 0 is NULL

    def agg_min_max(self, kind: str, v: str, t: str) -> str:
        return f"{kind.upper()}({v})"


# -- the functions SQLite conditions call (the interpreter's own code) ----------------------------------

def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A SQLite function must never raise (it would fail the whole query): bad input gives NULL."""
    def call(*args: Any) -> Any:
        try:
            return fn(*args)
        except (TypeError, ValueError, OverflowError, KeyError):
            return None
    return call


def _instant(v: Any) -> int | None:
    return temporal.parse_instant(v) if type(v) is str else None


def _date(v: Any) -> int | None:
    return temporal.parse_date(v) if type(v) is str else None


def _day(ms: Any) -> int | None:
    return None if ms is None else int(ms) // temporal.DAY_MS


def _shift(ms: Any, amount: Any, unit: Any) -> int | None:
    return None if ms is None else temporal.shift(int(ms), int(amount), unit)


def _trunc(ms: Any, unit: Any) -> int | None:
    return None if ms is None else temporal.trunc(int(ms), unit)


def _part(ms: Any, fn: Any) -> int | None:
    if ms is None:
        return None
    if fn == "hour":
        return int(ms) % temporal.DAY_MS // 3_600_000
    return temporal.part_of_day(int(ms) // temporal.DAY_MS, fn)


def _add(ms: Any, delta: Any) -> int | None:
    if ms is None or delta is None:
        return None
    out = int(ms) + int(delta)
    return out if temporal.MIN_MS <= out <= temporal.MAX_MS else None


def _matches(pattern: Any, text: Any) -> int | None:
    if type(pattern) is not str or type(text) is not str:
        return None
    return 1 if search(pattern, text) else 0


class IntSum:
    """SUM of integers for SQLite: exact, 0 for no rows, NULL (not an error) beyond 64 bits."""

    def __init__(self) -> None:
        self.total = 0

    def step(self, v: Any) -> None:
        if type(v) is int:
            self.total += v

    def finalize(self) -> int | None:
        return self.total if _I64[0] <= self.total <= _I64[1] else None


SQLITE_FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "wayline_instant": (1, _guard(_instant)), "wayline_date": (1, _guard(_date)), "wayline_day": (1, _guard(_day)),
    "wayline_shift": (3, _guard(_shift)), "wayline_trunc": (2, _guard(_trunc)), "wayline_part": (2, _guard(_part)),
    "wayline_add": (2, _guard(_add)), "wayline_matches": (2, _guard(_matches)),
}
