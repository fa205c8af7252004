"""The regular expressions `matches` accepts: a subset on which Python `re` and PostgreSQL agree.

`matches(s, pattern)` is True when the pattern matches somewhere in `s` (a search, not a full
match; anchor with ^ and $). Accepted syntax, with the same meaning everywhere:

- any character except the metacharacters  \\ . [ ] ( ) { } * + ? ^ $ |  stands for itself;
- a backslash before one of those metacharacters (or before - or /) is that character; \\d is an
  ASCII digit; no other backslash sequence;
- `.` is any character, newline included;
- `[...]` and `[^...]`: characters, ranges `a-z` (by code point) and the escapes above; a literal
  `-` or `[` inside brackets must be escaped;
- groups `( )` (no `(?` extensions), alternation `|` (no empty alternative);
- quantifiers `*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}` (n <= m <= 255) after a character, class or group;
- `^` is the start and `$` the end of the string (never a line).

Case-sensitive. Anything else is refused when the expression is compiled, so a back-end never meets
a pattern it would read differently.
"""

from __future__ import annotations

import re
from functools import lru_cache

_META = set("\\.[](){}*+?^$|")
_ESCAPABLE = _META | {"-", "/"}


class PatternError(ValueError):
    """A pattern outside the supported subset (the message says where and why)."""


def check_pattern(pattern: str) -> str:
    """The Python `re` form of a pattern of the subset (for re.search); raises PatternError."""
    return _Parser(pattern).parse()[0]


def postgres_pattern(pattern: str) -> str:
    """The PostgreSQL (ARE, for `~`) form of a pattern of the subset; raises PatternError."""
    return _Parser(pattern).parse()[1]


@lru_cache(maxsize=1024)
def compiled(pattern: str) -> re.Pattern[str]:
    """The compiled Python regex of a supported pattern (DOTALL: `.` takes newlines, as in PostgreSQL)."""
    return re.compile(check_pattern(pattern), re.DOTALL)


def search(pattern: str, text: str) -> bool:
    return compiled(pattern).search(text) is not None


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.s = pattern
        self.i = 0
        self.out: list[str] = []  # the Python form
        self.pg: list[str] = []  # the PostgreSQL form

    def fail(self, why: str) -> PatternError:
        return PatternError(f"unsupported regular expression {self.s!r} at {self.i}: {why}")

    def peek(self) -> str | None:
        return self.s[self.i] if self.i < len(self.s) else None

    def parse(self) -> tuple[str, str]:
        self.alternation(top=True)
        if self.i != len(self.s):
            raise self.fail("unbalanced ')'")
        return "".join(self.out), "".join(self.pg)

    def emit(self, py: str, pg: str | None = None) -> None:
        self.out.append(py)
        self.pg.append(py if pg is None else pg)

    def alternation(self, *, top: bool) -> None:
        while True:
            if not self.sequence():
                raise self.fail("empty alternative")
            if self.peek() == "|":
                self.emit("|")
                self.i += 1
                continue
            if self.peek() == ")" and top:
                raise self.fail("unbalanced ')'")
            return

    def sequence(self) -> bool:
        n = 0
        while (c := self.peek()) is not None and c not in "|)":
            quantifiable = self.atom()
            n += 1
            if self.peek() in ("*", "+", "?", "{"):
                if not quantifiable:
                    raise self.fail("a quantifier must follow a character, class or group")
                self.quantifier()
        return n > 0

    def atom(self) -> bool:
        c = self.s[self.i]
        if c == "(":
            if self.s.startswith("(?", self.i):
                raise self.fail("'(?' extensions are not supported")
            self.emit("(")
            self.i += 1
            self.alternation(top=False)
            if self.peek() != ")":
                raise self.fail("missing ')'")
            self.emit(")")
            self.i += 1
            return True
        if c == "[":
            self.bracket()
            return True
        if c == "\\":
            self.emit(self.escape(in_bracket=False))
            return True
        if c in "^$":
            self.emit("^" if c == "^" else r"\Z", c)  # Python's $ would also match before a final newline
            self.i += 1
            return False
        if c == ".":
            self.emit(".")
            self.i += 1
            return True
        if c in _META:
            raise self.fail(f"'{c}' must be escaped")
        self.emit(re.escape(c), c)
        self.i += 1
        return True

    def escape(self, *, in_bracket: bool) -> str:
        if self.i + 1 >= len(self.s):
            raise self.fail("trailing backslash")
        c = self.s[self.i + 1]
        self.i += 2
        if c == "d" and not in_bracket:
            return "[0-9]"
        if c not in _ESCAPABLE:
            raise self.fail(f"'\\{c}' is not supported")
        return "\\" + c

    def bracket(self) -> None:
        self.i += 1
        parts = ["["]
        if self.peek() == "^":
            parts.append("^")
            self.i += 1
        items = 0
        while True:
            c = self.peek()
            if c is None:
                raise self.fail("missing ']'")
            if c == "]":
                if items == 0:
                    raise self.fail("empty bracket expression")
                self.i += 1
                break
            lo = self.bracket_char()
            if self.peek() == "-" and self.i + 1 < len(self.s) and self.s[self.i + 1] != "]":
                self.i += 1
                hi = self.bracket_char()
                if ord(hi) < ord(lo):
                    raise self.fail("range out of order")
                parts.append(f"{_bracket_literal(lo)}-{_bracket_literal(hi)}")
            else:
                parts.append(_bracket_literal(lo))
            items += 1
        parts.append("]")
        self.emit("".join(parts))

    def bracket_char(self) -> str:
        c = self.s[self.i]
        if c == "\\":
            return self.escape(in_bracket=True)[1]
        if c in "[-":
            raise self.fail(f"'{c}' inside brackets must be escaped")
        self.i += 1
        return c

    def quantifier(self) -> None:
        c = self.s[self.i]
        if c in "*+?":
            self.emit(c)
            self.i += 1
        else:
            m = re.compile(r"\{([0-9]{1,3})(,([0-9]{1,3})?)?\}").match(self.s, self.i)
            if m is None:
                raise self.fail("a '{' must start a bound like {2}, {2,} or {2,5}")
            lo = int(m[1])
            hi = int(m[3]) if m[3] else None
            if lo > 255 or (hi is not None and (hi > 255 or hi < lo)):
                raise self.fail("bounds must satisfy n <= m <= 255")
            self.emit(m[0])
            self.i = m.end()
        if self.peek() in ("*", "+", "?", "{"):
            raise self.fail("a quantifier cannot follow a quantifier")


def _bracket_literal(c: str) -> str:
    return "\\" + c if c in "\\]^-[" else c
