"""The PostgreSQL dialect of the SQL compiler (see `sqldialect` for the value representations).

Pure SQL over jsonb: dates and datetimes are validated by a regular expression (and a days-in-month
test) before any cast, so bad data is NULL and never an error; then held as date / timestamp (UTC,
whole milliseconds). Time arithmetic is range-checked before it is done, so it cannot overflow.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from wayline.kernel.expr import temporal
from wayline.kernel.expr.check import ExprTypeError
from wayline.kernel.expr.regex import postgres_pattern
from wayline.kernel.expr.sqldialect import I64 as _I64
from wayline.kernel.expr.sqldialect import MAX_DOUBLE as _MAX_DOUBLE
from wayline.kernel.expr.sqldialect import Dialect

PG_TYPES = {"string": "text", "integer": "bigint", "duration": "bigint", "decimal": "float8",
            "boolean": "boolean", "date": "date", "datetime": "timestamp"}
_UPPER, _LOWER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"


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

    def int_arith(self, a: str, op: str, b: str) -> str:
        # in numeric, so that an overflow is the contract's null rather than an error
        r = f"(CAST({a} AS numeric) {op} ({b}))"
        return f"CASE WHEN {r} BETWEEN {_I64[0]} AND {_I64[1]} THEN CAST({r} AS bigint) END"

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
        total = f"COALESCE(SUM({v}), 0)"  # numeric: exact, never raises
        return f"CASE WHEN {total} BETWEEN {_I64[0]} AND {_I64[1]} THEN CAST({total} AS bigint) END"

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
