"""SQL text for the expression compiler, one class per database: typed JSON reads, time, strings.

Each dialect represents a typed value its own way, chosen for speed and exactness:

| type     | SQLite                         | PostgreSQL                |
|----------|--------------------------------|---------------------------|
| string   | TEXT (BINARY order)            | text (COLLATE "C" order)  |
| integer  | INTEGER                        | bigint                    |
| decimal  | REAL                           | float8                    |
| boolean  | 1 / 0                          | boolean                   |
| date     | INTEGER days since 1970-01-01  | date                      |
| datetime | INTEGER ms since the epoch     | timestamp (UTC, whole ms) |
(SQLite reads and computes dates and datetimes with the interpreter's `temporal` functions,
registered on the connection: see `SQLITE_FUNCTIONS`.)
| duration | INTEGER ms                     | bigint ms                 |

A typed read of a JSON value is NULL when the value does not have the type (the contract's "a value
not of the field's type is null"); no read, cast or function here can raise on bad data.

A value used several times is bound once (`let`) only where that pays: SQLite binds subqueries
(its parser allows little nesting, so nothing else); PostgreSQL runs a bound subquery as a per-row
SubPlan, slower than recomputing, so it inlines all but very long values.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from wayline.kernel.expr import temporal
from wayline.kernel.expr.check import ExprTypeError
from wayline.kernel.expr.regex import postgres_pattern, search

PG_TYPES = {"string": "text", "integer": "bigint", "duration": "bigint", "decimal": "float8",
            "boolean": "boolean", "date": "date", "datetime": "timestamp"}
_SAFE_LITERAL = re.compile(r"[A-Za-z0-9_$.\"\[\] @#&*+,;=!?/~^%-]*")  # no quote, no ':' bind look-alike
_SIMPLE = re.compile(r"-?[0-9]+|:?[A-Za-z_][A-Za-z0-9_.]*|'[^']*'")
_UPPER, _LOWER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"
_MAX_DOUBLE = "1.7976931348623157e308"
_I64 = (-(1 << 63), (1 << 63) - 1)


class Params:
    """Bound parameters of one compiled condition (`:wl_<n>` names, for sqlalchemy.text)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> str:
        name = f"wl_{len(self.values)}"
        self.values[name] = value
        return name


class Dialect:
    name = ""
    TRUE, FALSE = "TRUE", "FALSE"

    def __init__(self, params: Params) -> None:
        self.params = params
        self._names = 0

    def fresh(self, prefix: str = "_b") -> str:
        self._names += 1
        return f"{prefix}{self._names}"

    def text(self, s: str) -> str:
        """A SQL string literal (a bound parameter when the text could confuse quoting or binds)."""
        if _SAFE_LITERAL.fullmatch(s):
            return f"'{s}'"
        return self.param_sql(s, "string")

    def param_sql(self, value: Any, t: str) -> str:
        raise NotImplementedError

    def null(self, t: str) -> str:
        raise NotImplementedError

    # -- generic helpers -----------------------------------------------------------------------

    @staticmethod
    def is_true(cond: str) -> str:
        return f"({cond}) IS TRUE"

    @staticmethod
    def simple(sql: str) -> bool:
        return bool(_SIMPLE.fullmatch(sql))

    def let(self, values: list[str], body: Callable[..., str]) -> str:
        raise NotImplementedError

    def cmp(self, a: str, op: str, b: str, t: str) -> str:
        """`a op b` as a never-null boolean (values of type t, or both numbers)."""
        op = "<>" if op == "!=" else op
        return f"(({a}) {op} ({b})) IS TRUE"

    def range_checked(self, x: str, lo: str, hi: str) -> str:
        return self.let([x], lambda v: f"CASE WHEN {v} BETWEEN {lo} AND {hi} THEN {v} END")


class Sqlite(Dialect):
    """SQLite: JSON1 functions for reading, and for dates and times the interpreter's own `temporal`
    code, registered as deterministic functions (`install_functions`). Pure SQL would need several
    nested subqueries per datetime, and SQLite's parser allows only a few levels of nesting."""

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
        return f"COALESCE(SUM({v}), {'0.0' if t == 'decimal' else '0'})"

    def agg_avg(self, v: str) -> str:
        return f"CAST(SUM({v}) AS REAL) / COUNT({v})"

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


SQLITE_FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "wayline_instant": (1, _guard(_instant)), "wayline_date": (1, _guard(_date)), "wayline_day": (1, _guard(_day)),
    "wayline_shift": (3, _guard(_shift)), "wayline_trunc": (2, _guard(_trunc)), "wayline_part": (2, _guard(_part)),
    "wayline_add": (2, _guard(_add)), "wayline_matches": (2, _guard(_matches)),
}


class Postgres(Dialect):
    name = "postgresql"

    def param_sql(self, value: Any, t: str) -> str:
        return f"CAST(:{self.params.add(value)} AS {PG_TYPES.get(t, t)})"

    def null(self, t: str) -> str:
        return f"CAST(NULL AS {PG_TYPES.get(t, 'text')})"

    def let(self, values: list[str], body: Callable[..., str]) -> str:
        # Inline: a bound subquery runs as a per-row SubPlan, slower than recomputing a short
        # expression. Very long values (deep nesting) are bound, so the text does not explode.
        if all(self.simple(v) or len(v) < 1500 for v in values):
            return body(*values)
        names = [self.fresh() for _ in values]
        cols = ", ".join(f"{v} AS {n}" for v, n in zip(values, names, strict=True))
        return f"(SELECT {body(*names)} FROM (SELECT {cols}) AS {self.fresh('_s')})"

    def const(self, value: Any, t: str) -> str:
        if value is None:
            return self.null(t)
        if t == "boolean":
            return "TRUE" if value else "FALSE"
        if t in ("integer", "duration"):
            return f"CAST({int(value)} AS bigint)"
        if t == "date":
            return f"DATE '{temporal.to_date(value).isoformat()}'"
        if t == "datetime":
            return f"TIMESTAMP '{_naive(value).isoformat(sep=' ', timespec='milliseconds')}'"
        return self.param_sql(float(value) if t == "decimal" else value, t)

    def in_const(self, x: str, values: list[Any], t: str, negate: bool) -> str:
        conv: Callable[[Any], Any] = {"date": temporal.to_date, "datetime": _naive, "decimal": float}.get(
            t, lambda v: v)
        arr = self.param_sql([conv(v) for v in values], PG_TYPES[t] + "[]")
        return f"(({x}) <> ALL({arr})) IS TRUE" if negate else f"(({x}) = ANY({arr})) IS TRUE"

    # -- JSON ----------------------------------------------------------------------------------

    def path(self, path: tuple[str, ...]) -> str:
        return "ARRAY[" + ", ".join(self.text(k) for k in path) + "]::text[]"

    def at(self, doc: str, path: tuple[str, ...]) -> tuple[str, str]:
        """(jsonb SQL, text SQL) of a JSON location."""
        if len(path) == 1:
            k = self.text(path[0])
            return f"({doc} -> {k})", f"({doc} ->> {k})"
        p = self.path(path)
        return f"({doc} #> {p})", f"({doc} #>> {p})"

    def at_index(self, doc: str, path: tuple[str, ...], index: int | str) -> tuple[str, str]:
        j, _ = self.at(doc, path)
        return f"({j} -> CAST({index} AS integer))", f"({j} ->> CAST({index} AS integer))"

    def read(self, h: tuple[str, str], t: str) -> str:
        j, s = h
        if t == "string":
            return f"CASE WHEN jsonb_typeof({j}) = 'string' THEN {s} END"
        if t == "boolean":
            return f"CASE WHEN jsonb_typeof({j}) = 'boolean' THEN CAST({j} AS boolean) END"
        if t in ("integer", "duration"):
            n = f"CAST({j} AS numeric)"
            return (f"CASE WHEN jsonb_typeof({j}) = 'number' THEN CASE WHEN {n} = trunc({n}) "
                    f"AND {n} BETWEEN {_I64[0]} AND {_I64[1]} THEN CAST({n} AS bigint) END END")
        if t == "decimal":
            return (f"CASE WHEN jsonb_typeof({j}) = 'number' THEN CASE WHEN abs(CAST({j} AS numeric)) <= "
                    f"{_MAX_DOUBLE} THEN CAST({j} AS float8) END END")
        if t == "date":
            return self._date_of_text(s)
        if t == "datetime":
            return self._instant_of_text(s)
        if t == "any":
            return f"CASE WHEN jsonb_typeof({j}) <> 'null' THEN 1 END"
        raise ExprTypeError(f"cannot read a {t}")

    @staticmethod
    def _day_ok(t: str) -> str:
        d = f"substr({t}, 9, 2) COLLATE \"C\""
        y = f"CAST(left({t}, 4) AS integer)"
        dim = (f"CASE substr({t}, 6, 2) WHEN '02' THEN CASE WHEN {y} % 4 = 0 AND ({y} % 100 <> 0 OR {y} % 400 = 0) "
               f"THEN '29' ELSE '28' END WHEN '04' THEN '30' WHEN '06' THEN '30' WHEN '09' THEN '30' "
               f"WHEN '11' THEN '30' ELSE '31' END")
        return f"({d} <= '28' OR {d} <= {dim})"

    def _date_of_text(self, t: str) -> str:
        return (f"CASE WHEN {t} ~ '^[0-9]{{4}}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$' "
                f"AND left({t}, 4) <> '0000' THEN CASE WHEN {self._day_ok(t)} THEN CAST({t} AS date) END END")

    def _instant_of_text(self, t: str) -> str:
        rx = (r"'^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
              r"(\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?$'")
        frac = (f"CASE WHEN substr({t}, 20, 1) = '.' THEN CAST(rpad(split_part(split_part(split_part("
                f"substr({t}, 21, 3), 'Z', 1), '+', 1), '-', 1), 3, '0') AS integer) ELSE 0 END")
        minutes = f"(CAST(substr({t}, length({t}) - 4, 2) AS integer) * 60 + CAST(right({t}, 2) AS integer))"
        off = f"CASE substr({t}, length({t}) - 5, 1) WHEN '+' THEN -{minutes} WHEN '-' THEN {minutes} ELSE 0 END"
        ts = (f"(CAST(left({t}, 19) AS timestamp) + ({frac}) * INTERVAL '1 millisecond' "
              f"+ ({off}) * INTERVAL '1 minute')")
        return (f"CASE WHEN {t} ~ {rx} AND left({t}, 4) <> '0000' THEN CASE WHEN {self._day_ok(t)} "
                f"AND (left({t}, 10) NOT IN ('0001-01-01', '9999-12-31') OR {ts} BETWEEN {_TS_MIN} AND {_TS_MAX}) "
                f"THEN {ts} END END")

    def is_array(self, h: tuple[str, str]) -> str:
        return f"(jsonb_typeof({h[0]}) = 'array') IS TRUE"

    def array_length(self, doc: str, path: tuple[str, ...]) -> str:
        j, _ = self.at(doc, path)
        return f"CASE WHEN jsonb_typeof({j}) = 'array' THEN CAST(jsonb_array_length({j}) AS bigint) END"

    def elements(self, doc: str, path: tuple[str, ...], alias: str) -> tuple[str, tuple[str, str], str]:
        j, _ = self.at(doc, path)
        source = (f"jsonb_array_elements(CASE WHEN jsonb_typeof({j}) = 'array' THEN {j} END) "
                  f"WITH ORDINALITY AS {alias}(v, n)")
        return source, (f"{alias}.v", f"({alias}.v #>> '{{}}')"), f"({alias}.n - 1)"

    # -- values --------------------------------------------------------------------------------

    def dt_to_date(self, x: str) -> str:
        return f"CAST({x} AS date)"

    def date_to_dt(self, x: str) -> str:
        return f"CAST({x} AS timestamp)"

    def div(self, a: str, b: str) -> str:
        return f"(CAST({a} AS float8) / NULLIF(CAST({b} AS float8), 0))"

    def rem(self, a: str, b: str) -> str:
        return f"(({a}) % NULLIF({b}, 0))"

    def cmp(self, a: str, op: str, b: str, t: str) -> str:
        if t == "string" and op not in ("=", "!="):
            return f"(({a}) COLLATE \"C\" {op} ({b})) IS TRUE"
        return super().cmp(a, op, b, t)

    def shift(self, x: str, amount: int, unit: str, lo: int, hi: int) -> str:
        if unit == "week":
            amount, unit = amount * 7, "day"
        elif unit == "year":
            amount, unit = amount * 12, "month"
        def shifted(v: str) -> str:
            tests = ([f"{v} >= {self.const(lo, 'datetime')}"] if lo > temporal.MIN_MS else []) + (
                [f"{v} < {self.const(hi, 'datetime')}"] if hi <= temporal.MAX_MS else [])
            moved = f"{v} + INTERVAL '{amount} {unit}s'"
            return f"CASE WHEN {' AND '.join(tests)} THEN {moved} END" if tests else f"({moved})"
        return self.let([x], shifted)

    def trunc(self, x: str, unit: str) -> str:
        return f"date_trunc('{unit}', {x})"

    def part(self, x: str, fn: str, t: str) -> str:
        field = {"year": "YEAR", "month": "MONTH", "dayOfMonth": "DAY", "dayOfWeek": "ISODOW", "hour": "HOUR"}[fn]
        return f"CAST(EXTRACT({field} FROM {x}) AS bigint)"

    def dt_diff(self, a: str, b: str) -> str:
        return f"CAST(EXTRACT(EPOCH FROM ({a}) - ({b})) * 1000 AS bigint)"

    def dt_add(self, a: str, d: str, sign: int) -> str:
        # Range-checked on the epoch first, so the timestamp arithmetic cannot overflow; whole days
        # and the rest apart, so the interval arithmetic is exact.
        op = "+" if sign > 0 else "-"
        return self.let([a, d], lambda x, v: (
            f"CASE WHEN EXTRACT(EPOCH FROM {x}) * 1000 {op} ({v}) BETWEEN {temporal.MIN_MS} AND {temporal.MAX_MS} "
            f"THEN {x} {op} (({v}) / 86400000) * INTERVAL '1 day' {op} (({v}) % 86400000) * INTERVAL '1 millisecond' "
            f"END"))

    # -- strings -------------------------------------------------------------------------------

    def contains(self, a: str, b: str) -> str:
        return f"(strpos({a}, {b}) > 0) IS TRUE"

    def starts_with(self, a: str, b: str) -> str:
        return f"starts_with({a}, {b}) IS TRUE"

    def ends_with(self, a: str, b: str) -> str:
        return self.let([b], lambda y: f"(right({a}, length({y})) = {y}) IS TRUE")

    def equals_ignore_case(self, a: str, b: str) -> str:
        return f"({self.lower(a)} = {self.lower(b)}) IS TRUE"

    def lower(self, a: str) -> str:
        return f"translate({a}, '{_UPPER}', '{_LOWER}')"  # ASCII only, whatever the database's locale

    def upper(self, a: str) -> str:
        return f"translate({a}, '{_LOWER}', '{_UPPER}')"

    def matches(self, a: str, pattern: str) -> str:
        return f"(({a}) ~ {self.param_sql(postgres_pattern(pattern), 'string')}) IS TRUE"

    # -- aggregates ----------------------------------------------------------------------------

    def agg_sum(self, v: str, t: str) -> str:
        if t == "decimal":
            return f"COALESCE(SUM({v}), 0)"
        return f"CAST(COALESCE(SUM({v}), 0) AS bigint)"

    def agg_avg(self, v: str) -> str:
        return f"CAST(SUM({v}) AS float8) / NULLIF(COUNT({v}), 0)"

    def agg_min_max(self, kind: str, v: str, t: str) -> str:
        if t == "string":
            return f"{kind.upper()}(({v}) COLLATE \"C\")"
        return f"{kind.upper()}({v})"


_TS_MIN = "TIMESTAMP '0001-01-01 00:00:00'"
_TS_MAX = "TIMESTAMP '9999-12-31 23:59:59.999'"


def _naive(ms: int) -> datetime:
    return datetime(1970, 1, 1) + timedelta(milliseconds=ms)


def dialect_for(name: str, params: Params) -> Dialect:
    if name == "sqlite":
        return Sqlite(params)
    if name in ("postgresql", "postgres"):
        return Postgres(params)
    raise ValueError(f"no SQL dialect {name!r} (sqlite or postgresql)")


__all__ = ["Dialect", "Params", "Postgres", "Sqlite", "date", "dialect_for"]
