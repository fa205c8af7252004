"""The expression IR: one typed tree for conditions over a profile, its events and an event payload.

Front-ends (PQL for segments, the journey condition syntax later) build it; back-ends evaluate it
(the interpreter, one profile in memory) or compile it (SQL, many profiles at once). Nothing here
knows PQL or SQL. Every back-end must give the same answer for every tree; the semantics below are
the contract, and a property test holds the back-ends to it.

Values and types
- Types: string, integer, decimal, boolean, date (YYYY-MM-DD), datetime (an instant, ISO 8601 with
  an offset; no offset means UTC), duration (milliseconds, only as a literal or a difference), list
  (of one element type), and null. Integers and decimals compare and add as numbers.
- A field that is missing, or null, is null. A field whose stored value does not have the type the
  schema gives it is treated as null (schemas validate records, so this only happens with bad data).
  Precisely, a stored JSON value is read as:
  - string: a JSON string (never containing U+0000, which PostgreSQL cannot store);
  - integer (and duration): a JSON number with an integral value within 64 bits (5, 5.0 and 1e3
    are integers; 2.5, "5" and true are not);
  - decimal: a JSON number, as an IEEE 754 double; one too large for a double is null;
  - boolean: JSON true or false (never 0/1);
  - date: a string `YYYY-MM-DD`, a real calendar day in the years 0001-9999;
  - datetime: a string `YYYY-MM-DDTHH:MM:SS`, then optionally `.` and 1-9 digits (truncated to the
    millisecond), then `Z`, `+HH:MM`, `-HH:MM` (hours 00-23, minutes 00-59) or nothing (UTC). `T` and
    `Z` upper case; calendar-valid fields (no hour 24, no second 60); the instant must fall in the
    years 0001-9999 UTC. Anything else (a space for `T`, `+0200`, a date alone) is null;
  - list: a JSON array, each element read as the element type (a bad element is a null element);
  - a field of type "any" (an object, or a type the schema does not give) may only be tested with
    `Exists`: present and not JSON null.
- Back-ends refuse, when compiling, a tree they could not evaluate identically (ill-typed, a field of
  type "any" outside `Exists`, a `matches` pattern outside the supported subset): `check.Typer`.

Null and booleans: two-valued logic
- Every boolean-valued node is True or False, never null. A comparison, `In`, a string predicate or
  an arithmetic comparison with a null operand is False. `Not(x)` is the negation of x's
  (two-valued) result. `And([])` is True, `Or([])` is False.
- `Exists(x)` is True when x is not null (for a list: not null; an empty list exists).
- Arithmetic and functions with a null operand give null; division by zero gives null.
- `In`/notIn and `Intersects` are False when the item or a list is null; a null list element never
  matches (so `x notIn [1, null]` is True for x = 2).

Comparisons
- Numbers compare numerically; strings by Unicode code point (binary), case-sensitive unless the
  function says otherwise; booleans only with = and !=; dates as dates; datetimes as instants
  (millisecond precision); a date compared with a datetime is the datetime's UTC date.
- `=` on lists is element-wise equality of equal-length lists (a null element makes it False);
  `!=` on lists is True when both lists are non-null and not `=`.
- Booleans in conditions: a null boolean field is False where a condition is expected (`And`, `Not`,
  an event filter), and null as a value (`evaluate`).

Arithmetic
- `+ - *` on two integers give an integer, otherwise a decimal (double); `/` is always a decimal
  division (7 / 2 = 3.5); `%` takes two integers and keeps the sign of the dividend (-7 % 3 = -1).
  An integer result (arithmetic, a sum) beyond 64 bits is null. Decimals are doubles: results beyond
  the double range are outside the contract (PostgreSQL raises an error); decimal sums and averages
  summed in another order may differ in the last bits (the interpreter sums in the order of the
  events it is given, SQL in scan order), as may averages of integers whose sum passes 2^53.
- Time: datetime - datetime is a duration; datetime +/- duration and duration + datetime are a
  datetime; duration +/- duration is a duration. A date operand is its midnight UTC datetime. A
  datetime result outside the years 0001-9999 is null.

Time
- `Now()` is the evaluation instant given to the back-end (never read from a clock by a back-end).
- `Shift(t, amount, unit)` moves a datetime by whole units (second, minute, hour, day, week =
  7 days, month, year; month and year clamp the day to the month's last day). `Trunc(t, unit)`
  truncates to the start of the unit (day, week starting Monday, month, year) in UTC. Both read a
  date as its midnight UTC and give a datetime; a result outside the years 0001-9999 is null.
- Date parts (`Call("year"|"month"|"dayOfMonth"|"dayOfWeek"|"hour", [t])`) are read in UTC;
  dayOfWeek is 1 = Monday … 7 = Sunday.

Strings
- `lower`, `upper` and `equalsIgnoreCase` fold ASCII letters only ("É" stays "É"); `length` counts
  code points; `contains`/`startsWith`/`endsWith` with "" are True on any non-null string.
- `matches(s, pattern)` is True when the pattern matches somewhere in s (a search; anchor with ^ and
  $, where $ is the end of the string). The pattern must be a literal of the subset documented in
  `regex` (on which Python and PostgreSQL agree); `regex.check_pattern` tells a front-end why not.

Events
- `Events(where)` is the profile's experience events (each an XDM experience event object) for
  which `where` holds; inside it, `Field("event", path)` reads the current event. `Agg` reduces
  them: count (integer, 0 for none), sum (0 for none; nulls skipped; integer for integer values,
  else decimal), avg (decimal)/min/max (null for none; nulls skipped; min and max take numbers,
  strings, dates, datetimes and durations), any (True when at least one event matches `value`, or any
  event at all when value is None), all (True when every event satisfies `value`; True for none).
- Inside `Events(where)`, profile fields, payload fields and `InSegment` may be used too; an `Agg`
  inside `where` has its own events (its `Field("event", ...)` reads its own current event).
- Event order never changes a result (but for the last bits of decimal sums, see Arithmetic).

Segments
- `InSegment(id)` is True when the profile is in that segment (status realized or existing) at
  evaluation time, as the back-end is told.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, Union

Type = Literal["string", "integer", "decimal", "boolean", "date", "datetime", "duration", "list", "null", "any"]
Root = Literal["profile", "event", "payload"]
CmpOp = Literal["=", "!=", "<", "<=", ">", ">="]
ArithOp = Literal["+", "-", "*", "/", "%"]
Unit = Literal["second", "minute", "hour", "day", "week", "month", "year"]
AggKind = Literal["count", "sum", "avg", "min", "max", "any", "all"]

# Functions a `Call` may name, with (argument types, result type). "any" matches every type;
# "number" matches integer and decimal. Back-ends implement exactly these.
FUNCTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    # string predicates (False on null)
    "contains": (("string", "string"), "boolean"),
    "startsWith": (("string", "string"), "boolean"),
    "endsWith": (("string", "string"), "boolean"),
    "equalsIgnoreCase": (("string", "string"), "boolean"),  # ASCII case folding
    "matches": (("string", "string"), "boolean"),  # regex (the common subset of Python re and POSIX ERE)
    # string functions (null on null)
    "lower": (("string",), "string"),  # ASCII
    "upper": (("string",), "string"),  # ASCII
    "length": (("string",), "integer"),  # code points
    # date parts (null on null), read in UTC
    "year": (("datetime|date",), "integer"),
    "month": (("datetime|date",), "integer"),
    "dayOfMonth": (("datetime|date",), "integer"),
    "dayOfWeek": (("datetime|date",), "integer"),
    "hour": (("datetime",), "integer"),
    # lists
    "size": (("list",), "integer"),  # null on null
}


@dataclass(frozen=True, slots=True)
class Lit:
    """A literal. `value` is str | int | float | bool | date | datetime (aware, UTC) | None;
    durations are int milliseconds with type "duration"."""

    value: Any
    type: Type


@dataclass(frozen=True, slots=True)
class ListLit:
    items: tuple[Expr, ...]
    elem_type: Type


@dataclass(frozen=True, slots=True)
class Field:
    """A value read from the profile, the current event (inside `Events`) or the payload.

    `type` is what the schema says the field holds (filled by the front-end's static check; "any"
    when unknown, which back-ends may refuse)."""

    root: Root
    path: tuple[str, ...]
    type: Type = "any"
    elem_type: Type = "any"  # for lists


@dataclass(frozen=True, slots=True)
class Now:
    pass


@dataclass(frozen=True, slots=True)
class Shift:
    base: Expr
    amount: int
    unit: Unit


@dataclass(frozen=True, slots=True)
class Trunc:
    base: Expr
    unit: Literal["day", "week", "month", "year"]


@dataclass(frozen=True, slots=True)
class Cmp:
    op: CmpOp
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Expr


@dataclass(frozen=True, slots=True)
class Exists:
    item: Expr


@dataclass(frozen=True, slots=True)
class Arith:
    op: ArithOp
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class In:
    """`item in items` (False when item is null); `negate` gives notIn (also False on null)."""

    item: Expr
    items: Expr  # a ListLit or a list-valued Field
    negate: bool = False


@dataclass(frozen=True, slots=True)
class Intersects:
    """True when the two lists share an element."""

    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Call:
    fn: str  # a key of FUNCTIONS
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Events:
    """The profile's experience events for which `where` holds (all of them when None)."""

    where: Expr | None = None


@dataclass(frozen=True, slots=True)
class Agg:
    kind: AggKind
    source: Events
    value: Expr | None = None  # the per-event value (sum/avg/min/max) or condition (any/all)


@dataclass(frozen=True, slots=True)
class InSegment:
    segment_id: str


Expr = Union[Lit, ListLit, Field, Now, Shift, Trunc, Cmp, And, Or, Not, Exists, Arith, In, Intersects, Call,
             Events, Agg, InSegment]


def walk(node: Expr):
    """Every node of the tree, depth first (parents before children)."""
    yield node
    for child in children(node):
        yield from walk(child)


def children(node: Expr) -> tuple[Expr, ...]:
    if isinstance(node, (Lit, Field, Now, InSegment)):
        return ()
    if isinstance(node, ListLit):
        return node.items
    if isinstance(node, (Shift, Trunc)):
        return (node.base,)
    if isinstance(node, (Cmp, Arith, Intersects)):
        return (node.left, node.right)
    if isinstance(node, (And, Or)):
        return node.items
    if isinstance(node, (Not, Exists)):
        return (node.item,)
    if isinstance(node, In):
        return (node.item, node.items)
    if isinstance(node, Call):
        return node.args
    if isinstance(node, Events):
        return (node.where,) if node.where is not None else ()
    if isinstance(node, Agg):
        return (node.source,) + ((node.value,) if node.value is not None else ())
    raise TypeError(f"not an expression node: {node!r}")


def fields_used(node: Expr) -> set[tuple[Root, tuple[str, ...]]]:
    """(root, path) of every field the expression reads: what governance lineage needs."""
    return {(n.root, n.path) for n in walk(node) if isinstance(n, Field)}


def segments_used(node: Expr) -> set[str]:
    return {n.segment_id for n in walk(node) if isinstance(n, InSegment)}


def uses_events(node: Expr) -> bool:
    return any(isinstance(n, Events) for n in walk(node))


__all__ = ["And", "Agg", "Arith", "Call", "Cmp", "Events", "Exists", "Expr", "FUNCTIONS", "Field", "In",
           "InSegment", "Intersects", "ListLit", "Lit", "Not", "Now", "Or", "Shift", "Trunc", "children",
           "date", "datetime", "fields_used", "segments_used", "uses_events", "walk"]
