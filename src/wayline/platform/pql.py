"""PQL, the segment definition language: text → expression IR, with static checks against a schema.

`parse` reads the syntax (docs/pql.md is the grammar, every form with an example) and desugars it into
`wayline.kernel.expr.ir` trees; `check` resolves every field against the schema and rejects operands
of the wrong type; `compile` does both. Anything outside the documented subset is an error that
says where (line, column) and what was expected, never a silently different meaning.

Source positions are not part of the IR: `parse` keeps them in a side table keyed by node identity
(held with the tree, for the last few hundred trees parsed), so `check` on a tree that came from
`parse` can still point at the offending field or operator. `compile` passes them directly.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from wayline.kernel.expr import ir
from wayline.kernel.expr.regex import PatternError, check_pattern
from wayline.kernel.problems import FieldError

FieldType = tuple[str, str]
FieldTypeFn = Callable[[str, tuple[str, ...]], FieldType | None]
Pos = tuple[int, int, str]  # line, column, what stands there ("=", "occurs", "contains", a field path)
Positions = dict[int, Pos]  # id(node) → Pos

__all__ = ["FieldType", "PQLError", "check", "compile", "parse", "parse_with_positions"]


class PQLError(Exception):
    """A parse or check error: where (1-based line and column; 0 when unknown) and what was expected."""

    def __init__(self, message: str, *, line: int = 0, column: int = 0, expected: Iterable[str] = ()):
        self.line = line
        self.column = column
        self.message = message
        self.expected = list(expected)
        super().__init__(self.detail)

    @property
    def detail(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}" if self.line else self.message

    def to_field_errors(self, pointer: str = "/expression/value") -> list[FieldError]:
        return [FieldError(pointer, self.detail, ", ".join(self.expected) or None)]


# --------------------------------------------------------------------------------------------- grammar

GRAMMAR = r"""
?start: expr

?expr: or_expr
     | quantifier
quantifier: (SELECT | EXISTS | FORALL) NAME FROM XEVENT (WHERE | COLON) expr

?or_expr: and_expr
        | or_expr OR and_expr -> or_
?and_expr: not_expr
         | and_expr AND not_expr -> and_
?not_expr: predicate
         | NOT not_expr -> not_
         | BANG not_expr -> not_
?predicate: sum
          | sum _cmp sum -> compare
          | sum IN sum -> in_
          | sum NOTIN sum -> in_
          | sum OCCURS occurs_spec -> occurs
_cmp: EQ | NE | LT | LE | GT | GE

?occurs_spec: _cmp INT NAME (BEFORE | AFTER | FROM) time -> occ_rel
            | BEFORE time -> occ_dir
            | AFTER time -> occ_dir
            | ON time -> occ_on
            | time -> occ_on
            | BETWEEN time AND time -> occ_between
time: NOW | TODAY | YESTERDAY | TOMORROW
    | (THIS | LAST | NEXT) NAME
    | NAME LPAR [args] RPAR

?sum: product
    | sum (PLUS | MINUS) product -> arith
?product: unary
        | product (STAR | SLASH | PERCENT) unary -> arith
?unary: postfix
      | MINUS unary -> neg
?postfix: primary
        | postfix DOT NAME -> member
        | postfix DOT NAME LPAR [args] RPAR -> method
        | XEVENT LSQB expr RSQB -> event_filter
?primary: STRING -> string
        | INT -> int
        | DECIMAL -> decimal
        | TRUE -> true
        | FALSE -> false
        | NULL -> null
        | NOW -> now
        | TODAY -> day_ref
        | YESTERDAY -> day_ref
        | TOMORROW -> day_ref
        | NAME -> name
        | NAME LPAR [args] RPAR -> call
        | XEVENT -> xevent
        | LSQB [args] RSQB -> list
        | LPAR expr RPAR -> paren
args: expr (COMMA expr)*

STRING: /"(?:[^"\\\n]|\\.)*"/
DECIMAL.2: /[0-9]+\.[0-9]+/
INT: /[0-9]+/
NAME: /[A-Za-z_][A-Za-z0-9_]*/
EQ: "="
NE: "!="
LT: "<"
LE: "<="
GT: ">"
GE: ">="
BANG: "!"
PLUS: "+"
MINUS: "-"
STAR: "*"
SLASH: "/"
PERCENT: "%"
DOT: "."
COMMA: ","
COLON: ":"
LPAR: "("
RPAR: ")"
LSQB: "["
RSQB: "]"
AND: "and"
OR: "or"
NOT: "not"
IN: "in"
NOTIN: "notIn"
OCCURS: "occurs"
BEFORE: "before"
AFTER: "after"
FROM: "from"
BETWEEN: "between"
ON: "on"
THIS: "this"
LAST: "last"
NEXT: "next"
SELECT: "select"
EXISTS: "exists"
FORALL: "forall"
WHERE: "where"
TRUE: "true"
FALSE: "false"
NULL: "null"
NOW: "now"
TODAY: "today"
YESTERDAY: "yesterday"
TOMORROW: "tomorrow"
XEVENT: "xEvent"

%import common.WS
%ignore WS
"""

_PARSER = Lark(GRAMMAR, parser="lalr", lexer="contextual", propagate_positions=True, maybe_placeholders=True)

# How each terminal reads in an error message, in the order messages list them.
_SHOWN: dict[str, str] = {
    "EQ": "'='", "NE": "'!='", "LT": "'<'", "LE": "'<='", "GT": "'>'", "GE": "'>='", "IN": "'in'",
    "NOTIN": "'notIn'", "OCCURS": "'occurs'", "PLUS": "'+'", "MINUS": "'-'", "STAR": "'*'", "SLASH": "'/'",
    "PERCENT": "'%'", "DOT": "'.'", "AND": "'and'", "OR": "'or'", "RPAR": "')'", "RSQB": "']'", "COMMA": "','",
    "LPAR": "'('", "LSQB": "'['", "COLON": "':'", "BANG": "'!'", "NOT": "'not'", "BEFORE": "'before'",
    "AFTER": "'after'", "FROM": "'from'", "BETWEEN": "'between'", "ON": "'on'", "THIS": "'this'",
    "LAST": "'last'", "NEXT": "'next'", "SELECT": "'select'", "EXISTS": "'exists'", "FORALL": "'forall'",
    "WHERE": "'where'", "TRUE": "'true'", "FALSE": "'false'", "NULL": "'null'", "NOW": "'now'",
    "TODAY": "'today'", "YESTERDAY": "'yesterday'", "TOMORROW": "'tomorrow'", "XEVENT": "'xEvent'",
    "NAME": "a field", "STRING": "a string", "INT": "a number", "DECIMAL": "a number", "$END": "the end",
}
_ORDER = {name: i for i, name in enumerate(_SHOWN)}
_VALUE_START = {"STRING", "INT", "DECIMAL", "TRUE", "FALSE", "NULL", "NOW", "TODAY", "YESTERDAY", "TOMORROW",
                "NAME", "XEVENT", "LSQB", "LPAR", "MINUS", "NOT", "BANG", "SELECT", "EXISTS", "FORALL"}
_TIME_START = {"NOW", "TODAY", "YESTERDAY", "TOMORROW", "THIS", "LAST", "NEXT", "NAME"}
_COMPARISONS = ["EQ", "NE", "LT", "LE", "GT", "GE", "IN", "NOTIN", "OCCURS"]
_ARITHMETIC = ["PLUS", "MINUS", "STAR", "SLASH", "PERCENT"]
_HINTS = {"==": "'==' is not an operator; compare with '='", "&&": "write 'and' instead of '&&'",
          "||": "write 'or' instead of '||'", "<>": "write '!=' instead of '<>'", "'": "strings use double quotes"}


def _expected_words(names: Iterable[str], tokens: list[Token]) -> tuple[str, list[str]]:
    """(a readable phrase, the flat list) for a set of expected terminals, after `tokens`."""
    names = {n for n in names if n in _SHOWN}
    last = tokens[-1].type if tokens else None
    if names == {"NAME"} and last == "INT":
        return "a time unit (" + ", ".join(_UNIT_NAMES) + ")", list(_UNIT_NAMES)
    if names == {"NAME"} and last in ("THIS", "LAST", "NEXT"):
        return "day, week, month or year", list(_PERIODS)
    flat = sorted({_SHOWN[n] for n in names}, key=lambda s: min(_ORDER[n] for n in names if _SHOWN[n] == s))
    parts: list[str] = []
    if {"NAME", "STRING"} <= names:
        parts.append("a value, a field or '('")
        names -= _VALUE_START
    elif {"NOW", "TODAY", "THIS"} <= names:
        parts.append("a time (now, today, yesterday, tomorrow, this/last/next <unit>, date(...))")
        names -= _TIME_START
    cmps = [n for n in _COMPARISONS if n in names]
    if len(cmps) >= 3:
        parts.append("a comparison (" + ", ".join(_SHOWN[n] for n in cmps) + ")")
        names -= set(cmps)
    ariths = [n for n in _ARITHMETIC if n in names]
    if len(ariths) >= 3:
        parts.append("an arithmetic operator (" + ", ".join(_SHOWN[n] for n in ariths) + ")")
        names -= set(ariths)
    seen: set[str] = set()
    for n in sorted(names, key=_ORDER.__getitem__):
        if _SHOWN[n] not in seen:
            seen.add(_SHOWN[n])
            parts.append(_SHOWN[n])
    if not parts:
        return "something else", flat
    if len(parts) == 1:
        return parts[0], flat
    return "one of " + ", ".join(parts[:-1]) + " or " + parts[-1], flat


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _after(tokens: list[Token]) -> str:
    """The text of the last complete token (a whole dotted path when it ends one)."""
    if not tokens:
        return ""
    i = len(tokens) - 1
    if tokens[i].type == "NAME":
        while i >= 2 and tokens[i - 1].type == "DOT" and tokens[i - 2].type in ("NAME", "XEVENT"):
            i -= 2
    return "".join(str(t) for t in tokens[i:])


def _syntax_error(text: str, exc: UnexpectedInput, tokens: list[Token], accepts: set[str] | None
                  ) -> PQLError:
    after = _after(tokens)
    where = f" after '{after}'" if after else ""
    if isinstance(exc, UnexpectedCharacters):
        line, col, ch = exc.line, exc.column, text[exc.pos_in_stream]
        if ch == '"':
            return PQLError('unterminated string: a string starts and ends with \'"\' on one line',
                            line=line, column=col, expected=['\'"\''])
        for bad, hint in _HINTS.items():
            if text.startswith(bad, exc.pos_in_stream):
                return PQLError(hint, line=line, column=col, expected=[])
        phrase, flat = _expected_words(accepts or exc.allowed or (), tokens)
        return PQLError(f"unexpected character {ch!r}; expected {phrase}{where}", line=line, column=col,
                        expected=flat)
    assert isinstance(exc, UnexpectedToken)
    tok = exc.token
    quantifier = tok if tok.type in ("SELECT", "EXISTS", "FORALL") else None
    if tokens and str(tokens[-1]) in ("select", "exists", "forall") and tok.type == "NAME":
        quantifier = tokens[-1]  # read as a field name where a quantifier cannot start
    if quantifier is not None:
        return PQLError(f"put '{quantifier} X from xEvent where ...' in parentheses to combine it with other "
                        "conditions (its condition runs to the end)", line=quantifier.line,
                        column=quantifier.column, expected=["'('"])
    if tokens and tokens[-1].type == "NAME" and accepts == {"LPAR"}:  # only a time's `date(` reads so
        return PQLError(f"expected a time (now, today, yesterday, tomorrow, this/last/next <unit> or "
                        f"date(...)), found '{tokens[-1]}'", line=tokens[-1].line, column=tokens[-1].column,
                        expected=["date(...)"])
    if tok.type == "$END":
        line, col = _line_col(text, len(text.rstrip()))
        found = "the end"
    else:
        line, col = tok.line, tok.column
        found = f"'{tok}'"
        prev = tokens[-1] if tokens else None
        if prev is not None and prev.end_pos == tok.start_pos and str(prev) + str(tok) in _HINTS:
            return PQLError(_HINTS[str(prev) + str(tok)], line=prev.line, column=prev.column, expected=[])

    phrase, flat = _expected_words(accepts or exc.expected, tokens)
    if not text.strip():
        return PQLError("the condition is empty; expected a value, a field or '('", line=1, column=1,
                        expected=flat)
    return PQLError(f"expected {phrase}{where}, found {found}", line=line, column=col, expected=flat)


def _syntax_tree(text: str) -> Tree:
    ip = _PARSER.parse_interactive(text)
    seen: list[Token] = []
    try:
        for tok in ip.iter_parse():  # yields each token before the parser takes it
            seen.append(tok)  # noqa: PERF402 - on an error, `seen` must hold the tokens read so far
        return ip.feed_eof(seen[-1] if seen else None)
    except UnexpectedToken as exc:
        prior = seen[:-1] if seen and exc.token is seen[-1] else seen
        raise _syntax_error(text, exc, prior, _accepts(ip)) from None
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc, seen, _accepts(ip)) from None


def _accepts(ip) -> set[str] | None:
    """The terminals that really continue the parse from where it stopped: the table's expected set
    is wider (LALR merges the follow sets of states that look alike)."""
    try:
        return set(ip.accepts()) or None
    except Exception:  # noqa: BLE001 - a better message is a nicety; the table's set is the fallback
        return None


# --------------------------------------------------------------------------------------- text → IR

_STRING_METHODS = ("contains", "startsWith", "endsWith", "doesNotContain", "doesNotStartWith",
                   "doesNotEndWith", "equals", "notEqualTo", "matches")
_DATE_PARTS = {"getYear": "year", "getMonth": "month", "getDayOfMonth": "dayOfMonth",
               "getDayOfWeek": "dayOfWeek", "getHour": "hour"}
_VALUE_METHODS = _STRING_METHODS + tuple(_DATE_PARTS) + ("isNull", "isNotNull", "intersects", "includes",
                                                         "count")
_EVENT_METHODS = {"count": "count", "sum": "sum", "average": "avg", "min": "min", "max": "max"}
_FUNCTIONS = {"date": None, "inSegment": None, "currentYear": "year", "currentMonth": "month",
              "currentDayOfMonth": "dayOfMonth"}
_UNITS: dict[str, tuple[str, int]] = {}
for _u in ("second", "minute", "hour", "day", "week", "month", "year"):
    _UNITS[_u] = _UNITS[_u + "s"] = (_u, 1)
_UNITS.update({"decade": ("year", 10), "decades": ("year", 10), "century": ("year", 100),
               "centuries": ("year", 100), "millennium": ("year", 1000), "millennia": ("year", 1000)})
_UNIT_NAMES = ["second(s)", "minute(s)", "hour(s)", "day(s)", "week(s)", "month(s)", "year(s)", "decade(s)",
               "century/centuries", "millennium/millennia"]
_PERIODS = ("day", "week", "month", "year")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class _Scope:
    """Where a path is read: the profile, or the current event (`xEvent[...]`, or `X.` in select)."""

    event: bool = False
    var: str | None = None  # the select/exists/forall variable; event paths must start with it


_PROFILE = _Scope()


@dataclass(frozen=True)
class _Time:
    """A time reference in `occurs`: an instant (now, a date/datetime literal) or a period [start, end)."""

    start: ir.Expr
    end: ir.Expr | None = None  # None: an instant


def _pos_of(item: Token | Tree) -> tuple[int, int]:
    if isinstance(item, Token):
        return item.line or 0, item.column or 0
    meta = item.meta
    return (meta.line, meta.column) if not meta.empty else (0, 0)


class _Builder:
    """Turns a lark tree into IR, recording where each node came from."""

    def __init__(self) -> None:
        self.positions: Positions = {}
        self._alive: list[ir.Expr] = []  # no id is reused while the table is being built

    def mark(self, node: ir.Expr, at: Token | Tree, what: str = "") -> ir.Expr:
        line, col = _pos_of(at)
        self._alive.append(node)
        self.positions.setdefault(id(node), (line, col, what))
        return node

    def build(self, tree: Tree) -> tuple[ir.Expr, Positions]:
        expr = self.expr(tree, _PROFILE)
        return expr, _only(expr, self.positions)

    def error(self, at: Token | Tree, message: str, expected: Iterable[str] = ()) -> PQLError:
        line, col = _pos_of(at)
        return PQLError(message, line=line, column=col, expected=expected)

    # -- expressions

    def expr(self, t: Tree, scope: _Scope) -> ir.Expr:
        handler = getattr(self, "x_" + t.data, None)
        if handler is None:  # pragma: no cover - every grammar alias has a handler
            raise self.error(t, f"unsupported construct {t.data!r}")
        return handler(t, scope)

    def x_paren(self, t: Tree, scope: _Scope) -> ir.Expr:
        return self.expr(t.children[1], scope)

    def x_or_(self, t: Tree, scope: _Scope) -> ir.Expr:
        return self.mark(ir.Or(tuple(self._flatten(t, "or_", scope))), t.children[1], "or")

    def x_and_(self, t: Tree, scope: _Scope) -> ir.Expr:
        return self.mark(ir.And(tuple(self._flatten(t, "and_", scope))), t.children[1], "and")

    def _flatten(self, t: Tree, data: str, scope: _Scope) -> list[ir.Expr]:
        rights: list[Tree] = []
        while isinstance(t, Tree) and t.data == data:  # a long `a or b or c ...` is a deep left spine
            rights.append(t.children[2])
            t = t.children[0]
        items = [self.expr(t, scope)] + [self.expr(r, scope) for r in reversed(rights)]
        kind = ir.And if data == "and_" else ir.Or
        # `(a and b) and c` is `a and b and c`: one flat node, whatever the parentheses
        return [part for item in items for part in (item.items if isinstance(item, kind) else (item,))]

    def x_not_(self, t: Tree, scope: _Scope) -> ir.Expr:
        return self.mark(ir.Not(self.expr(t.children[1], scope)), t.children[0], "not")

    def x_compare(self, t: Tree, scope: _Scope) -> ir.Expr:
        left_t, op, right_t = t.children
        left, right = self.expr(left_t, scope), self.expr(right_t, scope)
        for a, b in ((left, right), (right, left)):
            if isinstance(b, ir.Lit) and b.type == "null":
                if op.value == "=":
                    return self.mark(ir.Not(self.mark(ir.Exists(a), op, "= null")), op, "= null")
                if op.value == "!=":
                    return self.mark(ir.Exists(a), op, "!= null")
                raise self.error(op, f"null can only be compared with '=' or '!=', not '{op}'",
                                 ["'='", "'!='"])
        return self.mark(ir.Cmp(op.value, left, right), op, str(op))

    def x_in_(self, t: Tree, scope: _Scope) -> ir.Expr:
        item_t, op, items_t = t.children
        item, items = self.expr(item_t, scope), self.expr(items_t, scope)
        return self.mark(ir.In(item, items, negate=op.type == "NOTIN"), op, str(op))

    def x_arith(self, t: Tree, scope: _Scope) -> ir.Expr:
        left_t, op, right_t = t.children
        return self.mark(ir.Arith(op.value, self.expr(left_t, scope), self.expr(right_t, scope)), op, str(op))

    def x_neg(self, t: Tree, scope: _Scope) -> ir.Expr:
        inner = self.expr(t.children[1], scope)
        if isinstance(inner, ir.Lit) and inner.type in ("integer", "decimal"):
            return self.mark(ir.Lit(-inner.value, inner.type), t.children[0])
        zero = self.mark(ir.Lit(0, "integer"), t.children[0])
        return self.mark(ir.Arith("-", zero, inner), t.children[0], "-")

    # -- literals

    def x_string(self, t: Tree, scope: _Scope) -> ir.Expr:
        return self.mark(ir.Lit(_unquote(t.children[0]), "string"), t.children[0])

    def x_int(self, t: Tree, scope: _Scope) -> ir.Expr:
        return self.mark(ir.Lit(int(t.children[0]), "integer"), t.children[0])

    def x_decimal(self, t: Tree, scope: _Scope) -> ir.Expr:
        return self.mark(ir.Lit(float(t.children[0]), "decimal"), t.children[0])

    def x_true(self, t: Tree, scope: _Scope) -> ir.Expr:
        return self.mark(ir.Lit(True, "boolean"), t.children[0])

    def x_false(self, t: Tree, scope: _Scope) -> ir.Expr:
        return self.mark(ir.Lit(False, "boolean"), t.children[0])

    def x_null(self, t: Tree, scope: _Scope) -> ir.Expr:
        return self.mark(ir.Lit(None, "null"), t.children[0], "null")

    def x_now(self, t: Tree, scope: _Scope) -> ir.Expr:
        return self.mark(ir.Now(), t.children[0], "now")

    def x_day_ref(self, t: Tree, scope: _Scope) -> ir.Expr:
        return self.time(t, t.children[0]).start  # today, yesterday, tomorrow: the start of that day

    def x_list(self, t: Tree, scope: _Scope) -> ir.Expr:
        args = t.children[1]
        items = [self.expr(a, scope) for a in args.children if isinstance(a, Tree)] if args else []
        types: set[str] = set()
        for node, a in zip(items, [a for a in args.children if isinstance(a, Tree)] if args else [],
                           strict=True):
            if not isinstance(node, ir.Lit) or node.type == "null":
                raise self.error(a, "a list holds literal values (strings, numbers, booleans, dates)")
            types.add(node.type)
        if types == {"integer", "decimal"}:
            elem = "decimal"
        elif len(types) > 1:
            raise self.error(t, "a list holds values of one type, not " + " and ".join(sorted(types)))
        else:
            elem = next(iter(types), "any")
        return self.mark(ir.ListLit(tuple(items), elem), t.children[0], "list")

    # -- paths, calls, methods

    def x_name(self, t: Tree, scope: _Scope) -> ir.Expr:
        return self.field([t.children[0]], scope)

    def x_member(self, t: Tree, scope: _Scope) -> ir.Expr:
        path = _path(t)
        if path is None:
            target = t.children[0]
            if isinstance(target, Tree) and target.data in ("xevent", "event_filter"):
                raise self.error(t.children[2], "xEvent is read through an aggregate: xEvent[<condition>]"
                                 ".count(), .sum(<field>), .average(...), .min(...), .max(...)",
                                 list(_EVENT_METHODS))
            raise self.error(t.children[2], f"'{t.children[2]}' cannot be read from a computed value; "
                             "only field paths have fields")
        return self.field(path, scope)

    def field(self, path: list[Token], scope: _Scope) -> ir.Expr:
        names = [str(p) for p in path]
        if scope.var is not None:
            if names[0] != scope.var:
                raise self.error(path[0], f"inside 'from xEvent', event fields are written "
                                 f"{scope.var}.<field>; '{'.'.join(names)}' is not one",
                                 [f"{scope.var}.<field>"])
            if len(names) == 1:
                raise self.error(path[0], f"'{scope.var}' is a whole event; read one of its fields, like "
                                 f"{scope.var}.eventType", [f"{scope.var}.<field>"])
            names = names[1:]
        node = ir.Field("event" if scope.event else "profile", tuple(names))
        return self.mark(node, path[0], ".".join(names))

    def x_xevent(self, t: Tree, scope: _Scope) -> ir.Expr:
        raise self.error(t, "xEvent is read through an aggregate: xEvent[<condition>].count() > 0, "
                         ".sum(<field>), .average(...), .min(...), .max(...); or with "
                         "'select X from xEvent where <condition>'", list(_EVENT_METHODS))

    def x_event_filter(self, t: Tree, scope: _Scope) -> ir.Expr:
        raise self.error(t, "an event filter is followed by an aggregate: .count(), .sum(<field>), "
                         ".average(<field>), .min(<field>) or .max(<field>)", list(_EVENT_METHODS))

    def events(self, target: Tree, scope: _Scope) -> ir.Events:
        if scope.event:
            raise self.error(target, "xEvent cannot be used inside an event condition")
        if target.data == "xevent":
            return self.mark(ir.Events(None), target, "xEvent")  # type: ignore[return-value]
        where = self.expr(target.children[2], _Scope(event=True))
        return self.mark(ir.Events(where), target, "xEvent[...]")  # type: ignore[return-value]

    def x_call(self, t: Tree, scope: _Scope) -> ir.Expr:
        name, args_t = t.children[0], t.children[2]
        args_trees = [a for a in args_t.children if isinstance(a, Tree)] if args_t else []
        fn = str(name)
        if fn not in _FUNCTIONS:
            raise self.error(name, f"unknown function '{fn}'; expected one of " + ", ".join(_FUNCTIONS),
                             list(_FUNCTIONS))
        if fn == "date":
            return self.date_literal(t, args_trees)
        if fn == "inSegment":
            if scope.event:
                raise self.error(name, "inSegment cannot be used inside an event condition")
            if len(args_trees) != 1 or not _is_string(args_trees[0]):
                raise self.error(name, 'inSegment takes one segment id in double quotes: inSegment("<id>")',
                                 ["a string"])
            return self.mark(ir.InSegment(_unquote(args_trees[0].children[0])), name, "inSegment")
        if args_trees:
            raise self.error(args_trees[0], f"{fn}() takes no arguments", ["')'"])
        now = self.mark(ir.Now(), name, fn)
        return self.mark(ir.Call(_FUNCTIONS[fn], (now,)), name, fn)

    def date_literal(self, t: Tree, args: list[Tree]) -> ir.Lit:
        nums: list[int] = []
        for a in args:
            if not (isinstance(a, Tree) and a.data == "int"):
                raise self.error(a, "date(...) takes whole numbers: date(year, month, day) or "
                                 "date(year, month, day, hour, minute, second)", ["a number"])
            nums.append(int(a.children[0]))
        if len(nums) not in (3, 6):
            raise self.error(t, f"date(...) takes 3 numbers (a date) or 6 (a UTC date-time), not {len(nums)}",
                             ["date(year, month, day)", "date(year, month, day, hour, minute, second)"])
        try:
            if len(nums) == 3:
                node = ir.Lit(date(*nums), "date")
            else:
                node = ir.Lit(datetime(*nums, tzinfo=UTC), "datetime")
        except ValueError as exc:
            raise self.error(t, f"not a valid date: {exc}") from None
        return self.mark(node, t, "date")  # type: ignore[return-value]

    def x_method(self, t: Tree, scope: _Scope) -> ir.Expr:
        target, _dot, name, _lpar, args_t, _rpar = t.children
        args = [a for a in args_t.children if isinstance(a, Tree)] if args_t else []
        m = str(name)
        if isinstance(target, Tree) and target.data in ("xevent", "event_filter"):
            if m not in _EVENT_METHODS:
                raise self.error(name, f"unknown event aggregate '{m}'; expected one of "
                                 + ", ".join(_EVENT_METHODS), list(_EVENT_METHODS))
            source = self.events(target, scope)
            if m == "count":
                if args:
                    raise self.error(args[0], "count() takes no arguments", ["')'"])
                return self.mark(ir.Agg("count", source), name, "count")
            if len(args) != 1:
                raise self.error(name, f"{m}(...) takes one event field, like {m}(commerce.order.priceTotal)",
                                 ["an event field"])
            value = self.expr(args[0], _Scope(event=True))
            return self.mark(ir.Agg(_EVENT_METHODS[m], source, value), name, m)
        if m not in _VALUE_METHODS:
            raise self.error(name, f"unknown method '{m}'; expected one of " + ", ".join(_VALUE_METHODS),
                             list(_VALUE_METHODS))
        subject = self.expr(target, scope)
        if m in _STRING_METHODS:
            return self.string_method(subject, name, args, scope)
        if args:
            if m in ("intersects", "includes"):
                if len(args) != 1:
                    raise self.error(name, f"{m}(...) takes one argument")
                other = self.expr(args[0], scope)
                if m == "intersects":
                    return self.mark(ir.Intersects(subject, other), name, m)
                return self.mark(ir.In(other, subject), name, m)
            raise self.error(args[0], f"{m}() takes no arguments", ["')'"])
        if m in ("intersects", "includes"):
            raise self.error(name, f"{m}(...) takes one argument")
        if m == "isNull":
            return self.mark(ir.Not(self.mark(ir.Exists(subject), name, m)), name, m)
        if m == "isNotNull":
            return self.mark(ir.Exists(subject), name, m)
        if m == "count":
            return self.mark(ir.Call("size", (subject,)), name, m)
        return self.mark(ir.Call(_DATE_PARTS[m], (subject,)), name, m)

    def string_method(self, subject: ir.Expr, name: Token, args: list[Tree], scope: _Scope) -> ir.Expr:
        m = str(name)
        if m == "matches":
            if len(args) != 1 or not _is_string(args[0]):
                raise self.error(name, 'matches takes one regular expression in double quotes', ["a string"])
            pattern = _unquote(args[0].children[0])
            try:
                check_pattern(pattern)  # the subset every back-end reads the same way
            except PatternError as exc:
                raise self.error(args[0], str(exc)) from None
            arg = self.mark(ir.Lit(pattern, "string"), args[0])
            return self.mark(ir.Call("matches", (subject, arg)), name, m)
        if len(args) not in (1, 2):
            raise self.error(name, f'{m} takes a string and an optional true/false (case-sensitive), '
                             f'like {m}("x") or {m}("x", false)', ["a string"])
        other = self.expr(args[0], scope)
        case_sensitive = True
        if len(args) == 2:
            flag = args[1]
            if not (isinstance(flag, Tree) and flag.data in ("true", "false")):
                raise self.error(flag, f"the second argument of {m} is true (case-sensitive) or false "
                                 "(case-insensitive)", ["'true'", "'false'"])
            case_sensitive = flag.data == "true"
        negate = m in ("doesNotContain", "doesNotStartWith", "doesNotEndWith", "notEqualTo")
        base = {"doesNotContain": "contains", "doesNotStartWith": "startsWith", "doesNotEndWith": "endsWith",
                "notEqualTo": "equals"}.get(m, m)
        if base == "equals":
            test = (self.mark(ir.Cmp("=", subject, other), name, m) if case_sensitive
                    else self.mark(ir.Call("equalsIgnoreCase", (subject, other)), name, m))
        elif case_sensitive:
            test = self.mark(ir.Call(base, (subject, other)), name, m)
        else:
            test = self.mark(ir.Call(base, (self.lower(subject, name), self.lower(other, name))), name, m)
        if not negate:
            return test
        # "does not contain" holds for a present value that lacks the text, not for a missing one
        return self.mark(ir.And((self.mark(ir.Exists(subject), name, m), self.mark(ir.Not(test), name, m))),
                         name, m)

    def lower(self, node: ir.Expr, at: Token) -> ir.Expr:
        if isinstance(node, ir.Lit) and node.type == "string":
            return self.mark(ir.Lit(node.value.translate(_ASCII_LOWER), "string"), at)
        return self.mark(ir.Call("lower", (node,)), at, "lower")

    # -- select / exists / forall

    def x_quantifier(self, t: Tree, scope: _Scope) -> ir.Expr:
        kw, var, _from, xevent, _where, cond = t.children
        if scope.event:
            raise self.error(kw, "xEvent cannot be used inside an event condition")
        where = self.expr(cond, _Scope(event=True, var=str(var)))
        if kw.type == "FORALL":
            source = self.mark(ir.Events(None), xevent, "xEvent")
            return self.mark(ir.Agg("all", source, where), kw, "forall")  # type: ignore[arg-type]
        source = self.mark(ir.Events(where), xevent, "xEvent")
        return self.mark(ir.Agg("any", source), kw, str(kw))  # type: ignore[arg-type]

    # -- occurs

    def time(self, t: Tree, first: Token) -> _Time:
        kind = first.type
        if kind == "NOW":
            return _Time(self.mark(ir.Now(), first, "now"))
        if kind in ("TODAY", "YESTERDAY", "TOMORROW"):
            today = self.mark(ir.Trunc(self.mark(ir.Now(), first, str(first)), "day"), first, str(first))
            offset = {"TODAY": 0, "YESTERDAY": -1, "TOMORROW": 1}[kind]
            return _Time(self.shift(today, offset, "day", first), self.shift(today, offset + 1, "day", first))
        if kind in ("THIS", "LAST", "NEXT"):
            unit_tok = t.children[1]
            unit = str(unit_tok)
            if unit not in _PERIODS:
                raise self.error(unit_tok, f"expected day, week, month or year after '{first}', found '{unit}'",
                                 list(_PERIODS))
            start = self.mark(ir.Trunc(self.mark(ir.Now(), first, str(first)), unit), first, f"{first} {unit}")
            offset = {"THIS": 0, "LAST": -1, "NEXT": 1}[kind]
            return _Time(self.shift(start, offset, unit, first), self.shift(start, offset + 1, unit, first))
        if kind == "NAME":
            if str(first) != "date":
                raise self.error(first, f"expected a time (now, today, yesterday, tomorrow, this/last/next "
                                 f"<unit> or date(...)), found '{first}'", ["date(...)"])
            args = t.children[2]
            return _Time(self.date_literal(t, [a for a in args.children if isinstance(a, Tree)] if args else []))
        raise self.error(first, f"unexpected '{first}'")  # pragma: no cover - the grammar allows no other

    def shift(self, base: ir.Expr, amount: int, unit: str, at: Token) -> ir.Expr:
        return base if amount == 0 else self.mark(ir.Shift(base, amount, unit), at)  # type: ignore[arg-type]

    def time_of(self, t: Tree) -> _Time:
        return self.time(t, t.children[0])

    def x_occurs(self, t: Tree, scope: _Scope) -> ir.Expr:
        subject_t, occ, spec = t.children
        subject = self.expr(subject_t, scope)

        def cmp(op: str, bound: ir.Expr) -> ir.Expr:
            return self.mark(ir.Cmp(op, subject, bound), occ, "occurs")  # type: ignore[arg-type]

        def both(a: ir.Expr, b: ir.Expr) -> ir.Expr:
            return self.mark(ir.And((a, b)), occ, "occurs")

        kind = spec.data
        if kind == "occ_on":
            ref = self.time_of(spec.children[-1])
            if ref.end is None:
                return cmp("=", ref.start)
            return both(cmp(">=", ref.start), cmp("<", ref.end))
        if kind == "occ_dir":
            ref = self.time_of(spec.children[1])
            if spec.children[0].type == "BEFORE":
                return cmp("<", ref.start)
            return cmp(">", ref.start) if ref.end is None else cmp(">=", ref.end)
        if kind == "occ_between":
            lo, hi = self.time_of(spec.children[1]), self.time_of(spec.children[3])
            return both(cmp(">=", lo.start), cmp("<=", hi.start) if hi.end is None else cmp("<", hi.end))
        # occ_rel: <cmp> <n> <unit> before|after|from <time>
        op_tok, n_tok, unit_tok, direction, time_t = spec.children
        if str(unit_tok) not in _UNITS:
            raise self.error(unit_tok, f"unknown time unit '{unit_tok}'; expected one of "
                             + ", ".join(_UNIT_NAMES), _UNIT_NAMES)
        unit, factor = _UNITS[str(unit_tok)]
        n = int(n_tok) * factor
        ref = self.time_of(time_t)
        anchor = ref.start
        if isinstance(anchor, ir.Lit) and anchor.type == "date":  # shift from midnight UTC of that day
            d = anchor.value
            anchor = self.mark(ir.Lit(datetime(d.year, d.month, d.day, tzinfo=UTC), "datetime"), time_t, "date")
        op = str(op_tok)
        if direction.type == "BEFORE":  # distance = anchor - subject, and the subject is not after the anchor
            bound = self.shift(anchor, -n, unit, n_tok)
            rel = {"<": (">", True), "<=": (">=", True), ">": ("<", False), ">=": ("<=", False),
                   "=": ("=", False), "!=": ("!=", False)}[op]
            tail = "<="
        else:  # after / from: distance = subject - anchor, and the subject is not before the anchor
            bound = self.shift(anchor, n, unit, n_tok)
            rel = {"<": ("<", True), "<=": ("<=", True), ">": (">", False), ">=": (">=", False),
                   "=": ("=", False), "!=": ("!=", False)}[op]
            tail = ">="
        near, bounded = rel
        if bounded:
            return both(cmp(near, bound), cmp(tail, anchor))
        return cmp(near, bound)


def _path(t: Tree | Token) -> list[Token] | None:
    if isinstance(t, Tree) and t.data == "name":
        return [t.children[0]]
    if isinstance(t, Tree) and t.data == "member":
        head = _path(t.children[0])
        return None if head is None else head + [t.children[2]]
    return None


def _is_string(t: Tree) -> bool:
    return isinstance(t, Tree) and t.data == "string"


def _unquote(tok: Token) -> str:
    """A double-quoted string's value. Known escapes are decoded; any other backslash is kept, so a
    regular expression can be written as "^\\\\d+$" or "^\\d+$"."""
    body, out, i = str(tok)[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2:i + 6]):
                out.append(chr(int(body[i + 2:i + 6], 16)))
                i += 6
                continue
        out.append(ch)
        i += 1
    return "".join(out)


# ------------------------------------------------------------------------------ position side table

_TOO_DEEP = "the condition is nested too deeply (use fewer parentheses or shorter chains)"

_KEEP = 512
_TABLE: OrderedDict[int, tuple[ir.Expr, Positions]] = OrderedDict()
_TABLE_LOCK = threading.Lock()


def _remember(expr: ir.Expr, positions: Positions) -> None:
    # Holding the tree keeps every node alive, so the ids in `positions` cannot be reused meanwhile.
    with _TABLE_LOCK:
        _TABLE[id(expr)] = (expr, positions)
        _TABLE.move_to_end(id(expr))
        while len(_TABLE) > _KEEP:
            _TABLE.popitem(last=False)


def _only(expr: ir.Expr, positions: Positions) -> Positions:
    """The entries of `positions` for the nodes of `expr` (other ids may be reused once freed)."""
    return {id(n): positions[id(n)] for n in ir.walk(expr) if id(n) in positions}


def _recall(expr: ir.Expr) -> Positions:
    with _TABLE_LOCK:
        hit = _TABLE.get(id(expr))
    return hit[1] if hit is not None and hit[0] is expr else {}


def parse_with_positions(text: str) -> tuple[ir.Expr, Positions]:
    """The IR of `text` and where each node came from (id(node) → (line, column, what))."""
    if not isinstance(text, str):
        raise PQLError("a PQL condition is a string", expected=["a string"])
    tree = _syntax_tree(text)
    try:
        return _Builder().build(tree)
    except RecursionError:
        raise PQLError(_TOO_DEEP, line=1, column=1) from None


def parse(text: str) -> ir.Expr:
    """The IR of a PQL condition, syntax only: fields are left with type "any". Raises PQLError."""
    expr, positions = parse_with_positions(text)
    _remember(expr, positions)
    return expr


# ------------------------------------------------------------------------------------ static checks

_IR_TYPES = {"string", "integer", "decimal", "boolean", "date", "datetime", "duration", "list", "null", "any"}
_SCALARS = {"string", "integer", "decimal", "boolean", "date", "datetime"}
_FIELD_TYPES = _SCALARS | {"list"}
_NUMBERS = {"integer", "decimal"}
_TIMES = {"date", "datetime"}


def _comparable(a: str, b: str) -> bool:
    if a not in _IR_TYPES or b not in _IR_TYPES:  # objects and maps are only tested for presence
        return False
    return a == b or "any" in (a, b) or {a, b} <= _NUMBERS or {a, b} <= _TIMES


def _describe(node: ir.Expr) -> str:
    if isinstance(node, ir.Field):
        return ("event field '" if node.root == "event" else "'") + ".".join(node.path) + "'"
    if isinstance(node, ir.Lit):
        if node.type == "string":
            return '"' + node.value + '"'
        if node.type == "boolean":
            return "true" if node.value else "false"
        return str(node.value)
    if isinstance(node, ir.Agg):
        return f"the event {node.kind}"
    if isinstance(node, ir.Call):
        return f"{node.fn}(...)"
    return "this expression"


class _Checker:
    def __init__(self, field_type: FieldTypeFn, segment_exists: Callable[[str], bool] | None,
                 positions: Positions):
        self.field_type = field_type
        self.segment_exists = segment_exists
        self.positions = positions

    def error(self, node: ir.Expr, message: str, expected: Iterable[str] = (), *, near: ir.Expr | None = None
              ) -> PQLError:
        line, col, _ = self.positions.get(id(node)) or self.positions.get(id(near)) or (0, 0, "")
        return PQLError(message, line=line, column=col, expected=expected)

    def what(self, node: ir.Expr, default: str) -> str:
        pos = self.positions.get(id(node))
        return pos[2] if pos and pos[2] else default

    def need(self, node: ir.Expr, t: str, allowed: set[str], by: ir.Expr, by_default: str, words: str
             ) -> None:
        if t != "any" and t not in allowed:
            raise self.error(node, f"'{self.what(by, by_default)}' needs {words}, but {_describe(node)} is {t}",
                             sorted(allowed), near=by)

    def visit(self, node: ir.Expr) -> tuple[ir.Expr, str, str]:
        """(the checked node, its type, its element type when a list)."""
        if isinstance(node, ir.Lit):
            return node, node.type, "any"
        if isinstance(node, ir.ListLit):
            return node, "list", node.elem_type
        if isinstance(node, ir.Field):
            found = self.field_type(node.root, node.path)
            if found is None:
                kind = "event field" if node.root == "event" else "field"
                raise self.error(node, f"unknown {kind} '{'.'.join(node.path)}'", ["a field of the schema"])
            t, elem = found
            # An object, a map or an unknown type: the field can only be tested for presence.
            t = t if t in _FIELD_TYPES else "object"
            elem = elem if elem in _SCALARS else "object"
            out = ir.Field(node.root, node.path, t if t != "object" else "any",  # type: ignore[arg-type]
                           elem if t == "list" and elem != "object" else "any")  # type: ignore[arg-type]
            return self.moved(node, out), t, elem
        if isinstance(node, ir.Now):
            return node, "datetime", "any"
        if isinstance(node, (ir.Shift, ir.Trunc)):
            base, bt, _ = self.visit(node.base)
            self.need(node.base, bt, _TIMES, node, "time", "a date or datetime")
            out = ir.Shift(base, node.amount, node.unit) if isinstance(node, ir.Shift) else ir.Trunc(base, node.unit)
            return self.moved(node, out), "datetime", "any"
        if isinstance(node, ir.Cmp):
            return self.cmp(node)
        if isinstance(node, (ir.And, ir.Or)):
            items = []
            for item in node.items:
                checked, t, _ = self.visit(item)
                self.need(item, t, {"boolean"}, node, "and" if isinstance(node, ir.And) else "or",
                          "conditions (true or false)")
                items.append(checked)
            return self.moved(node, type(node)(tuple(items))), "boolean", "any"
        if isinstance(node, ir.Not):
            item, t, _ = self.visit(node.item)
            self.need(node.item, t, {"boolean"}, node, "not", "a condition (true or false)")
            return self.moved(node, ir.Not(item)), "boolean", "any"
        if isinstance(node, ir.Exists):
            item, _, _ = self.visit(node.item)
            return self.moved(node, ir.Exists(item)), "boolean", "any"
        if isinstance(node, ir.Arith):
            return self.arith(node)
        if isinstance(node, ir.In):
            return self.in_(node)
        if isinstance(node, ir.Intersects):
            left, lt, le = self.visit(node.left)
            right, rt, re_ = self.visit(node.right)
            self.need(node.left, lt, {"list"}, node, "intersects", "a list")
            self.need(node.right, rt, {"list"}, node, "intersects", "a list")
            if not _comparable(le, re_):
                raise self.error(node, f"'intersects' compares lists of {le} with a list of {re_}", [le])
            return self.moved(node, ir.Intersects(left, right)), "boolean", "any"
        if isinstance(node, ir.Call):
            return self.call(node)
        if isinstance(node, ir.Events):
            if node.where is None:
                return node, "events", "any"
            where, t, _ = self.visit(node.where)
            self.need(node.where, t, {"boolean"}, node, "xEvent[...]", "a condition (true or false)")
            return self.moved(node, ir.Events(where)), "events", "any"
        if isinstance(node, ir.Agg):
            return self.agg(node)
        if isinstance(node, ir.InSegment):
            if self.segment_exists is not None and not self.segment_exists(node.segment_id):
                raise self.error(node, f"unknown segment '{node.segment_id}'", ["the id of an existing segment"])
            return node, "boolean", "any"
        raise TypeError(f"not an expression node: {node!r}")

    def moved(self, old: ir.Expr, new: ir.Expr) -> ir.Expr:
        if id(old) in self.positions:
            self.positions.setdefault(id(new), self.positions[id(old)])
        return new

    def cmp(self, node: ir.Cmp) -> tuple[ir.Expr, str, str]:
        left, lt, le = self.visit(node.left)
        right, rt, re_ = self.visit(node.right)
        what = self.what(node, node.op)
        if what == "occurs":
            self.need(node.left, lt, _TIMES, node, "occurs", "a date or datetime")
        ok = _comparable(lt, rt)
        if ok and "boolean" in (lt, rt) and node.op not in ("=", "!="):
            raise self.error(node, f"booleans compare only with '=' or '!=', not '{node.op}'", ["'='", "'!='"])
        if ok and lt == "list" == rt and (node.op not in ("=", "!=") or not _comparable(le, re_)):
            ok = False
        if not ok or lt in ("events", "null") or rt in ("events", "null"):
            raise self.error(node, f"cannot compare {_describe(node.left)} ({lt}) with "
                             f"{_describe(node.right)} ({rt}) using '{node.op}'", [lt])
        return self.moved(node, ir.Cmp(node.op, left, right)), "boolean", "any"

    def arith(self, node: ir.Arith) -> tuple[ir.Expr, str, str]:
        left, lt, _ = self.visit(node.left)
        right, rt, _ = self.visit(node.right)
        allowed, words = ({"integer"}, "integers") if node.op == "%" else (_NUMBERS, "numbers")
        for side, t in ((node.left, lt), (node.right, rt)):
            self.need(side, t, allowed, node, node.op, words)
        t = "integer" if lt == rt == "integer" and node.op != "/" else "decimal"
        return self.moved(node, ir.Arith(node.op, left, right)), t, "any"

    def in_(self, node: ir.In) -> tuple[ir.Expr, str, str]:
        item, it, _ = self.visit(node.item)
        items, lt, elem = self.visit(node.items)
        what = self.what(node, "notIn" if node.negate else "in")
        if lt != "any" and lt != "list":
            raise self.error(node, f"'{what}' needs a list, like [\"FR\", \"DE\"], but {_describe(node.items)} "
                             f"is {lt}", ["a list"])
        if it in ("list", "events", "null") or not _comparable(it, elem):
            raise self.error(node, f"'{what}' looks for {_describe(node.item)} ({it}) in a list of {elem}",
                             [elem])
        return self.moved(node, ir.In(item, items, node.negate)), "boolean", "any"

    def call(self, node: ir.Call) -> tuple[ir.Expr, str, str]:
        spec = ir.FUNCTIONS.get(node.fn)
        if spec is None:
            raise self.error(node, f"unknown function '{node.fn}'", sorted(ir.FUNCTIONS))
        arg_types, result = spec
        args = []
        for arg, want in zip(node.args, arg_types, strict=True):
            checked, t, _ = self.visit(arg)
            allowed = {"number": _NUMBERS}.get(want, set(want.split("|")))
            if want != "any":
                words = " or ".join("a " + a for a in sorted(allowed))
                self.need(arg, t, allowed, node, node.fn, words)
            args.append(checked)
        if node.fn == "matches" and isinstance(args[1], ir.Lit) and isinstance(args[1].value, str):
            try:
                check_pattern(args[1].value)
            except PatternError as exc:
                raise self.error(node, str(exc)) from None
        return self.moved(node, ir.Call(node.fn, tuple(args))), result, "any"

    def agg(self, node: ir.Agg) -> tuple[ir.Expr, str, str]:
        source, _, _ = self.visit(node.source)
        if node.value is None:
            if node.kind not in ("count", "any"):
                raise self.error(node, f"'{node.kind}' needs a per-event value")
            return self.moved(node, ir.Agg(node.kind, source)), "integer" if node.kind == "count" else "boolean", "any"
        value, t, _ = self.visit(node.value)
        what = self.what(node, node.kind)
        if node.kind in ("any", "all"):
            self.need(node.value, t, {"boolean"}, node, what, "a condition (true or false)")
            result = "boolean"
        elif node.kind in ("sum", "avg"):
            self.need(node.value, t, _NUMBERS, node, what, "a number")
            result = "decimal" if node.kind == "avg" else t
        elif node.kind in ("min", "max"):
            self.need(node.value, t, _NUMBERS | _TIMES | {"string"}, node, what, "a number, string, date or datetime")
            result = t
        else:
            raise self.error(node, f"'{node.kind}' takes no per-event value")
        return self.moved(node, ir.Agg(node.kind, source, value)), result, "any"  # type: ignore[arg-type]


def check(expr: ir.Expr, field_type: FieldTypeFn, *, segment_exists: Callable[[str], bool] | None = None,
          positions: Positions | None = None) -> ir.Expr:
    """`expr` with every field's type resolved by `field_type(root, path)` ("profile" or "event" root).

    Raises PQLError for an unknown field, an operand of the wrong type for its operator or function,
    an `inSegment` of an unknown id (when `segment_exists` is given) and a condition that is not true
    or false. Errors carry the line and column of the offending field or operator when `expr` came
    from `parse` (or `positions` is given), else line and column 0."""
    pos = dict(positions if positions is not None else _recall(expr))
    checker = _Checker(field_type, segment_exists, pos)
    try:
        out, t, _ = checker.visit(expr)
    except RecursionError:
        raise PQLError(_TOO_DEEP) from None
    if t not in ("boolean", "any"):
        raise checker.error(expr, f"a segment condition must be true or false, but {_describe(expr)} is {t}",
                            ["a condition"])
    _remember(out, _only(out, pos))
    return out


def compile(text: str, field_type: FieldTypeFn, *, segment_exists: Callable[[str], bool] | None = None
            ) -> ir.Expr:
    """Parse and check a PQL condition: the typed IR, or a PQLError saying where and what was expected."""
    expr, positions = parse_with_positions(text)
    return check(expr, field_type, segment_exists=segment_exists, positions=positions)
