"""What the SQL compiler's dialects share: bound parameters and the `Dialect` interface.

One subclass per database (`dialect_sqlite`, `dialect_postgres`) turns typed JSON reads, time,
strings and aggregates into SQL. Each represents a typed value its own way, for speed and exactness:

| type     | SQLite                         | PostgreSQL                |
|----------|--------------------------------|---------------------------|
| string   | TEXT (BINARY order)            | text (COLLATE "C" order)  |
| integer  | INTEGER                        | bigint                    |
| decimal  | REAL                           | float8                    |
| boolean  | 1 / 0                          | boolean                   |
| date     | INTEGER days since 1970-01-01  | date                      |
| datetime | INTEGER ms since the epoch     | timestamp (UTC, whole ms) |
| duration | INTEGER ms                     | bigint ms                 |

A typed read of a JSON value is NULL when the value does not have the type (the contract's "a value
not of the field's type is null"); no read, cast or function of a dialect raises on bad data.

A value used several times is bound once (`let`) only where that pays: SQLite binds subqueries
(its parser allows little nesting, so nothing else); PostgreSQL runs a bound subquery as a per-row
SubPlan, slower than recomputing, so it inlines all but very long values.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

MAX_DOUBLE = "1.7976931348623157e308"
I64 = (-(1 << 63), (1 << 63) - 1)
_SAFE_LITERAL = re.compile(r"[A-Za-z0-9_$.\"\[\] @#&*+,;=!?/~^%-]*")  # no quote, no ':' bind look-alike
_SIMPLE = re.compile(r"-?[0-9]+|:?[A-Za-z_][A-Za-z0-9_.]*|'[^']*'")


class Params:
    """Bound parameters of one compiled condition (`:wl_<n>` names, for sqlalchemy.text)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> str:
        name = f"wl_{len(self.values)}"
        self.values[name] = value
        return name


class Dialect(ABC):
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

    @abstractmethod
    def param_sql(self, value: Any, t: str) -> str:
        """Per database (dialect_sqlite, dialect_postgres)."""

    @abstractmethod
    def null(self, t: str) -> str:
        """Per database (dialect_sqlite, dialect_postgres)."""

    # -- generic helpers -----------------------------------------------------------------------

    @staticmethod
    def is_true(cond: str) -> str:
        return f"({cond}) IS TRUE"

    @staticmethod
    def simple(sql: str) -> bool:
        return bool(_SIMPLE.fullmatch(sql))

    @abstractmethod
    def let(self, values: list[str], body: Callable[..., str]) -> str:
        """Per database (dialect_sqlite, dialect_postgres)."""

    def cmp(self, a: str, op: str, b: str, t: str) -> str:
        """`a op b` as a never-null boolean (values of type t, or both numbers)."""
        op = "<>" if op == "!=" else op
        return f"(({a}) {op} ({b})) IS TRUE"


def dialect_for(name: str, params: Params) -> Dialect:
    if name == "sqlite":
        from wayline.kernel.expr.dialect_sqlite import Sqlite

        return Sqlite(params)
    if name in ("postgresql", "postgres"):
        from wayline.kernel.expr.dialect_postgres import Postgres

        return Postgres(params)
    raise ValueError(f"no SQL dialect {name!r} (sqlite or postgresql)")


__all__ = ["I64", "MAX_DOUBLE", "Dialect", "Params", "dialect_for"]
