"""Worked examples of the expression contract (`wayline.kernel.expr.ir`), on the interpreter.

One test per rule of the contract; test_expr_agreement.py then holds the SQL back-end to the same
answers on random trees."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from wayline.kernel.expr import ir, temporal
from wayline.kernel.expr.check import ExprTypeError
from wayline.kernel.expr.interp import Context, compile_fn, compile_predicate, evaluate, matches
from wayline.kernel.expr.regex import PatternError, check_pattern, postgres_pattern

NOW = datetime(2024, 3, 31, 12, 0, 0, 123000, tzinfo=UTC)  # a Sunday, the last day of a month


def P(*path: str, t: str = "string", et: str = "any") -> ir.Field:
    return ir.Field("profile", path, t, et)  # type: ignore[arg-type]


def E(*path: str, t: str = "string") -> ir.Field:
    return ir.Field("event", path, t)  # type: ignore[arg-type]


def L(value, t: str) -> ir.Lit:
    return ir.Lit(value, t)  # type: ignore[arg-type]


def S(value: str) -> ir.Lit:
    return ir.Lit(value, "string")


def I(value: int) -> ir.Lit:
    return ir.Lit(value, "integer")


def D(value: float) -> ir.Lit:
    return ir.Lit(value, "decimal")


NULL = ir.Lit(None, "null")
TRUE, FALSE = ir.Lit(True, "boolean"), ir.Lit(False, "boolean")


def val(expr: ir.Expr, profile: dict | None = None, events: list | None = None, **kw):
    return evaluate(expr, Context(profile or {}, events or [], kw.pop("now", NOW), **kw))


def ok(expr: ir.Expr, profile: dict | None = None, events: list | None = None, **kw) -> bool:
    result = matches(expr, Context(profile or {}, events or [], kw.pop("now", NOW), **kw))
    assert isinstance(result, bool)
    return result


def dt(*args: int, tz=UTC) -> datetime:
    return datetime(*args, tzinfo=tz)


# -- literals, fields, typed reads ---------------------------------------------------------------------

def test_literals_and_list_literals_evaluate_to_themselves():
    assert val(S("x")) == "x" and val(I(3)) == 3 and val(D(2.5)) == 2.5 and val(TRUE) is True
    assert val(L(date(2024, 1, 2), "date")) == date(2024, 1, 2)
    assert val(L(dt(2024, 1, 2, 3, 4, 5), "datetime")) == dt(2024, 1, 2, 3, 4, 5)
    assert val(L(90_000, "duration")) == 90_000
    assert val(NULL) is None
    assert val(ir.ListLit((I(1), I(2)), "integer")) == [1, 2]
    assert val(ir.ListLit((L(date(2024, 1, 2), "date"),), "date")) == [date(2024, 1, 2)]


def test_a_naive_datetime_literal_is_utc_and_precision_is_the_millisecond():
    assert val(L(datetime(2024, 1, 2, 3, 4, 5, 678999), "datetime")) == dt(2024, 1, 2, 3, 4, 5) + timedelta(
        milliseconds=678)


def test_fields_read_nested_paths_the_current_event_and_the_payload():
    profile = {"person": {"name": {"first": "Ann"}}, "points": 5}
    assert val(P("person", "name", "first"), profile) == "Ann"
    assert val(P("points", t="integer"), profile) == 5
    assert val(P("person", "missing"), profile) is None
    assert val(P("points", "deeper"), profile) is None  # a scalar has no children
    assert val(ir.Field("payload", ("order", "id"), "string"), payload={"order": {"id": "o1"}}) == "o1"
    assert val(ir.Field("payload", ("order", "id"), "string")) is None  # no payload: null
    events = [{"eventType": "buy"}, {"eventType": "view"}]
    count_buys = ir.Agg("count", ir.Events(ir.Cmp("=", E("eventType"), S("buy"))))
    assert val(count_buys, events=events) == 1


@pytest.mark.parametrize(("t", "stored", "read"), [
    ("string", "x", "x"), ("string", 5, None), ("string", True, None), ("string", ["x"], None),
    ("integer", 5, 5), ("integer", 5.0, 5), ("integer", 2.5, None), ("integer", "5", None),
    ("integer", True, None), ("integer", 2 ** 63, None), ("integer", -(2 ** 63), -(2 ** 63)),
    ("integer", 1e20, None),
    ("decimal", 2.5, 2.5), ("decimal", 2, 2.0), ("decimal", "2.5", None), ("decimal", False, None),
    ("decimal", float("inf"), None),
    ("boolean", True, True), ("boolean", 1, None), ("boolean", "true", None),
    ("date", "2024-02-29", date(2024, 2, 29)), ("date", "2023-02-29", None), ("date", "2024-2-29", None),
    ("date", "2024-02-29T00:00:00Z", None), ("date", "0000-01-01", None), ("date", 20240229, None),
    ("date", "2024-13-01", None), ("date", " 2024-01-01", None),
])
def test_a_value_not_of_the_fields_type_reads_as_null(t, stored, read):
    assert val(P("f", t=t), {"f": stored}) == read


@pytest.mark.parametrize(("text", "instant"), [
    ("2024-03-31T10:00:00Z", dt(2024, 3, 31, 10)),
    ("2024-03-31T10:00:00", dt(2024, 3, 31, 10)),  # no offset: UTC
    ("2024-03-31T12:00:00+02:00", dt(2024, 3, 31, 10)),
    ("2024-03-31T04:30:00-05:30", dt(2024, 3, 31, 10)),
    ("2024-03-31T10:00:00.5Z", dt(2024, 3, 31, 10) + timedelta(milliseconds=500)),
    ("2024-03-31T10:00:00.123456789Z", dt(2024, 3, 31, 10) + timedelta(milliseconds=123)),  # truncated
    ("2024-03-31T10:00:00.9999999+00:00", dt(2024, 3, 31, 10) + timedelta(milliseconds=999)),
    ("2024-02-29T23:00:00-23:59", dt(2024, 3, 1, 22, 59)),
    ("0001-01-01T00:00:00Z", dt(1, 1, 1)),
    ("9999-12-31T23:59:59.999Z", dt(9999, 12, 31, 23, 59, 59) + timedelta(milliseconds=999)),
])
def test_datetime_texts_are_read_as_instants(text, instant):
    assert val(P("t", t="datetime"), {"t": text}) == instant


@pytest.mark.parametrize("text", [
    "2024-02-30T00:00:00Z", "2023-02-29T00:00:00Z", "2024-03-31T24:00:00Z", "2024-03-31T10:60:00Z",
    "2024-03-31T10:00:60Z", "2024-03-31t10:00:00Z", "2024-03-31T10:00:00z", "2024-03-31 10:00:00Z",
    "2024-03-31T10:00Z", "2024-03-31", "2024-03-31T10:00:00.Z", "2024-03-31T10:00:00.1234567890Z",
    "2024-03-31T10:00:00+24:00", "2024-03-31T10:00:00+0200", "2024-03-31T10:00:00+02", "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-00:01", "2024-03-31T10:00:00Z ", "２０２４-03-31T10:00:00Z",
    "",
])
def test_texts_outside_the_datetime_grammar_read_as_null(text):
    assert val(P("t", t="datetime"), {"t": text}) is None


def test_lists_read_each_element_by_the_element_type():
    assert val(P("l", t="list", et="integer"), {"l": [1, "2", 3.0, None, True]}) == [1, None, 3, None, None]
    assert val(P("l", t="list", et="date"), {"l": ["2024-01-01", "x"]}) == [date(2024, 1, 1), None]
    assert val(P("l", t="list", et="string"), {"l": "not a list"}) is None


# -- null and two-valued logic -----------------------------------------------------------------------

def test_comparisons_with_a_null_operand_are_false_and_not_negates_that():
    for op in ("=", "!=", "<", "<=", ">", ">="):
        c = ir.Cmp(op, P("x", t="integer"), I(1))
        assert ok(c, {}) is False
        assert ok(ir.Not(c), {}) is True
        assert ok(ir.Cmp(op, P("x", t="integer"), NULL), {"x": 1}) is False
    assert ok(ir.Cmp("=", NULL, NULL)) is False


def test_and_or_of_nothing_and_short_circuit():
    assert ok(ir.And(())) is True and ok(ir.Or(())) is False
    assert ok(ir.And((TRUE, TRUE, ir.Cmp("=", I(1), I(1))))) is True
    assert ok(ir.Or((FALSE, ir.Cmp("=", P("x"), S("a"))))) is False


def test_a_null_boolean_field_is_false_as_a_condition_but_null_as_a_value():
    assert ok(P("vip", t="boolean"), {}) is False
    assert ok(ir.Not(P("vip", t="boolean")), {}) is True
    assert val(P("vip", t="boolean"), {}) is None
    assert ok(ir.Cmp("!=", P("vip", t="boolean"), TRUE), {}) is False
    assert ok(ir.Cmp("=", P("vip", t="boolean"), FALSE), {"vip": False}) is True


def test_exists():
    assert ok(ir.Exists(P("x")), {"x": "a"}) is True
    assert ok(ir.Exists(P("x")), {"x": None}) is False
    assert ok(ir.Exists(P("x")), {}) is False
    assert ok(ir.Exists(P("x", t="integer")), {"x": "a"}) is False  # wrong type: null
    assert ok(ir.Exists(P("l", t="list", et="string")), {"l": []}) is True  # an empty list exists
    assert ok(ir.Exists(P("l", t="list", et="string")), {"l": {}}) is False
    assert ok(ir.Exists(P("address", t="any")), {"address": {"city": "x"}}) is True  # objects: presence
    assert ok(ir.Exists(P("address", t="any")), {"address": None}) is False
    assert ok(ir.Exists(ir.Cmp("=", P("x"), S("a"))), {}) is True  # a condition is never null


# -- comparisons ---------------------------------------------------------------------------------------

def test_numbers_compare_numerically_across_integer_and_decimal():
    assert ok(ir.Cmp("=", P("i", t="integer"), D(2.0)), {"i": 2}) is True
    assert ok(ir.Cmp("<", P("d", t="decimal"), I(3)), {"d": 2.75}) is True
    assert ok(ir.Cmp(">=", P("i", t="integer"), P("d", t="decimal")), {"i": 3, "d": 3}) is True


def test_strings_compare_by_code_point_and_case_sensitively():
    assert ok(ir.Cmp("<", S("B"), P("s")), {"s": "a"}) is True  # 'B' (66) < 'a' (97)
    assert ok(ir.Cmp("<", P("s"), S("é")), {"s": "z"}) is True  # 'z' (122) < 'é' (233)
    assert ok(ir.Cmp("=", P("s"), S("ann")), {"s": "Ann"}) is False
    assert ok(ir.Cmp("<", P("s"), S("ab")), {"s": "a"}) is True  # a prefix sorts first


def test_booleans_and_dates_and_datetimes_compare():
    assert ok(ir.Cmp("=", P("b", t="boolean"), TRUE), {"b": True}) is True
    assert ok(ir.Cmp("<", P("d", t="date"), L(date(2024, 3, 1), "date")), {"d": "2024-02-29"}) is True
    same = {"a": "2024-03-31T12:00:00+02:00", "b": "2024-03-31T10:00:00Z"}
    assert ok(ir.Cmp("=", P("a", t="datetime"), P("b", t="datetime")), same) is True


def test_a_date_compared_with_a_datetime_uses_the_datetimes_utc_date():
    day = L(date(2024, 3, 31), "date")
    late = {"t": "2024-03-31T23:30:00-02:00"}  # 2024-04-01T01:30Z: UTC date is April 1st
    assert ok(ir.Cmp("=", P("t", t="datetime"), day), late) is False
    assert ok(ir.Cmp("<", day, P("t", t="datetime")), late) is True
    assert ok(ir.Cmp("=", day, P("t", t="datetime")), {"t": "2024-03-31T23:59:59.999Z"}) is True


def test_list_equality_is_element_wise_on_equal_lengths():
    lst = ir.ListLit((S("a"), S("b")), "string")
    tags = P("tags", t="list", et="string")
    assert ok(ir.Cmp("=", tags, lst), {"tags": ["a", "b"]}) is True
    assert ok(ir.Cmp("=", tags, lst), {"tags": ["b", "a"]}) is False
    assert ok(ir.Cmp("=", tags, lst), {"tags": ["a", "b", "c"]}) is False
    assert ok(ir.Cmp("!=", tags, lst), {"tags": ["a"]}) is True
    assert ok(ir.Cmp("!=", tags, lst), {}) is False  # null list: both False
    assert ok(ir.Cmp("=", tags, lst), {}) is False
    assert ok(ir.Cmp("=", tags, lst), {"tags": ["a", 5]}) is False  # a null element equals nothing
    assert ok(ir.Cmp("!=", tags, lst), {"tags": ["a", 5]}) is True
    assert ok(ir.Cmp("=", tags, ir.ListLit((), "string")), {"tags": []}) is True


# -- arithmetic ----------------------------------------------------------------------------------------

def test_arithmetic_on_numbers():
    assert val(ir.Arith("+", I(2), I(3))) == 5
    assert val(ir.Arith("*", I(2), D(1.5))) == 3.0
    assert val(ir.Arith("/", I(7), I(2))) == 3.5  # always a decimal division
    assert val(ir.Arith("%", I(7), I(3))) == 1
    assert val(ir.Arith("%", I(-7), I(3))) == -1  # the sign of the dividend
    assert val(ir.Arith("%", I(7), I(-3))) == 1


def test_division_by_zero_and_null_operands_give_null():
    assert val(ir.Arith("/", I(1), I(0))) is None
    assert val(ir.Arith("/", D(1.0), D(0.0))) is None
    assert val(ir.Arith("%", I(1), I(0))) is None
    assert val(ir.Arith("+", P("x", t="integer"), I(1)), {}) is None
    assert val(ir.Arith("+", I(1), NULL)) is None
    assert ok(ir.Cmp("=", ir.Arith("/", P("x", t="integer"), I(0)), NULL), {"x": 1}) is False


def test_time_arithmetic_uses_durations_in_milliseconds():
    a, b = P("a", t="datetime"), P("b", t="datetime")
    profile = {"a": "2024-03-31T10:00:01Z", "b": "2024-03-31T10:00:00Z"}
    assert val(ir.Arith("-", a, b), profile) == 1000
    assert val(ir.Arith("+", b, L(1000, "duration")), profile) == dt(2024, 3, 31, 10, 0, 1)
    assert val(ir.Arith("-", ir.Now(), L(60_000, "duration"))) == NOW - timedelta(minutes=1)
    assert val(ir.Arith("-", P("d", t="date"), L(date(2024, 3, 30), "date")), {"d": "2024-03-31"}) == 86_400_000
    assert val(ir.Arith("+", L(dt(9999, 12, 31), "datetime"), L(86_400_000, "duration"))) is None  # out of range


# -- time ----------------------------------------------------------------------------------------------

def test_now_is_the_evaluation_instant():
    assert val(ir.Now()) == NOW.replace(microsecond=123000)
    fn = compile_fn(ir.Shift(ir.Now(), -1, "month"))
    assert fn(Context({}, [], dt(2024, 3, 31))) == dt(2024, 2, 29)
    assert fn(Context({}, [], dt(2024, 5, 31))) == dt(2024, 4, 30)  # memo is per Context


@pytest.mark.parametrize(("base", "amount", "unit", "result"), [
    (dt(2024, 1, 31, 10), 1, "month", dt(2024, 2, 29, 10)),  # clamps to the month's last day
    (dt(2023, 1, 31), 1, "month", dt(2023, 2, 28)),
    (dt(2024, 3, 31), -1, "month", dt(2024, 2, 29)),
    (dt(2024, 3, 31), 13, "month", dt(2025, 4, 30)),
    (dt(2024, 2, 29), 1, "year", dt(2025, 2, 28)),
    (dt(2024, 2, 29), 4, "year", dt(2028, 2, 29)),
    (dt(2024, 3, 31), -2, "week", dt(2024, 3, 17)),
    (dt(2024, 3, 31), 1, "day", dt(2024, 4, 1)),
    (dt(2024, 3, 31), -90, "minute", dt(2024, 3, 30, 22, 30)),
    (dt(2024, 3, 31), 30, "second", dt(2024, 3, 31, 0, 0, 30)),
    (dt(2024, 3, 31), 36, "hour", dt(2024, 4, 1, 12)),
    (dt(9999, 12, 1), 1, "month", None),  # past 9999: null
    (dt(1, 1, 1), -1, "second", None),
])
def test_shift(base, amount, unit, result):
    assert val(ir.Shift(L(base, "datetime"), amount, unit)) == result


def test_shift_and_trunc_read_a_date_as_its_midnight_utc():
    assert val(ir.Shift(L(date(2024, 1, 31), "date"), 1, "month")) == dt(2024, 2, 29)
    assert val(ir.Trunc(P("d", t="date"), "month"), {"d": "2024-03-31"}) == dt(2024, 3, 1)
    assert val(ir.Shift(NULL, 1, "day")) is None


@pytest.mark.parametrize(("base", "unit", "result"), [
    (dt(2024, 3, 31, 13, 14, 15), "day", dt(2024, 3, 31)),
    (dt(2024, 3, 31, 13), "week", dt(2024, 3, 25)),  # a Sunday: back to Monday
    (dt(2024, 3, 25, 0), "week", dt(2024, 3, 25)),  # a Monday stays
    (dt(1969, 12, 31, 23), "week", dt(1969, 12, 29)),  # before the epoch too
    (dt(2024, 3, 31, 13), "month", dt(2024, 3, 1)),
    (dt(2024, 3, 31, 13), "year", dt(2024, 1, 1)),
    (dt(2024, 4, 1, 1, tz=timezone(timedelta(hours=3))), "day", dt(2024, 3, 31)),  # in UTC
])
def test_trunc(base, unit, result):
    assert val(ir.Trunc(L(base, "datetime"), unit)) == result


@pytest.mark.parametrize(("fn", "text", "part"), [
    ("year", "2024-01-01T01:00:00+02:00", 2023),  # 2023-12-31T23:00Z
    ("month", "2024-03-01T00:30:00+01:00", 2),
    ("dayOfMonth", "2024-03-01T00:30:00+01:00", 29),
    ("hour", "2024-03-01T00:30:00+01:00", 23),
    ("dayOfWeek", "2024-03-25T10:00:00Z", 1),  # Monday
    ("dayOfWeek", "2024-03-31T10:00:00Z", 7),  # Sunday
    ("dayOfWeek", "1969-12-31T10:00:00Z", 3),  # Wednesday, before the epoch
])
def test_date_parts_are_read_in_utc(fn, text, part):
    assert val(ir.Call(fn, (P("t", t="datetime"),)), {"t": text}) == part


def test_date_parts_of_a_date_and_of_null():
    assert val(ir.Call("dayOfWeek", (P("d", t="date"),)), {"d": "2024-03-31"}) == 7
    assert val(ir.Call("year", (P("d", t="date"),)), {"d": "1990-05-17"}) == 1990
    assert val(ir.Call("month", (P("d", t="date"),)), {}) is None


# -- lists: in, notIn, intersects, size ----------------------------------------------------------------

def test_in_and_not_in_are_false_when_the_item_is_null():
    lst = ir.ListLit((S("FR"), S("DE")), "string")
    c = P("country")
    assert ok(ir.In(c, lst), {"country": "FR"}) is True
    assert ok(ir.In(c, lst), {"country": "IT"}) is False
    assert ok(ir.In(c, lst, negate=True), {"country": "IT"}) is True
    assert ok(ir.In(c, lst), {}) is False
    assert ok(ir.In(c, lst, negate=True), {}) is False
    assert ok(ir.In(NULL, lst)) is False


def test_null_elements_never_match_and_a_null_list_matches_nothing():
    with_null = ir.ListLit((S("FR"), NULL), "string")
    assert ok(ir.In(P("c"), with_null), {"c": "IT"}) is False
    assert ok(ir.In(P("c"), with_null, negate=True), {"c": "IT"}) is True
    tags = P("tags", t="list", et="string")
    assert ok(ir.In(S("a"), tags), {}) is False
    assert ok(ir.In(S("a"), tags, negate=True), {}) is False
    assert ok(ir.In(S("a"), tags, negate=True), {"tags": []}) is True
    assert ok(ir.In(S("5"), tags), {"tags": [5]}) is False  # 5 is not a string: null element


def test_in_with_numbers_and_dates():
    assert ok(ir.In(P("n", t="integer"), ir.ListLit((D(1.0), D(2.5)), "decimal")), {"n": 1}) is True
    days = ir.ListLit((L(date(2024, 3, 31), "date"),), "date")
    assert ok(ir.In(P("t", t="datetime"), days), {"t": "2024-03-31T23:00:00Z"}) is True
    assert ok(ir.In(P("t", t="datetime"), days), {"t": "2024-03-31T23:00:00-02:00"}) is False


def test_intersects_and_size():
    tags = P("tags", t="list", et="string")
    assert ok(ir.Intersects(tags, ir.ListLit((S("x"), S("y")), "string")), {"tags": ["y", "z"]}) is True
    assert ok(ir.Intersects(tags, ir.ListLit((S("x"),), "string")), {"tags": ["y"]}) is False
    assert ok(ir.Intersects(tags, ir.ListLit((), "string")), {"tags": ["y"]}) is False
    assert ok(ir.Intersects(tags, P("other", t="list", et="string")), {"tags": ["a"], "other": ["b", "a"]})
    assert ok(ir.Intersects(tags, tags), {"tags": [None]}) is False
    assert val(ir.Call("size", (tags,)), {"tags": ["a", 1]}) == 2
    assert val(ir.Call("size", (tags,)), {"tags": "a"}) is None


# -- strings -------------------------------------------------------------------------------------------

def test_string_predicates():
    s = P("s")
    profile = {"s": "Hello.World"}
    assert ok(ir.Call("contains", (s, S("o.W"))), profile) is True
    assert ok(ir.Call("contains", (s, S(""))), profile) is True
    assert ok(ir.Call("startsWith", (s, S("Hell"))), profile) is True
    assert ok(ir.Call("startsWith", (s, S("hell"))), profile) is False
    assert ok(ir.Call("endsWith", (s, S("World"))), profile) is True
    assert ok(ir.Call("endsWith", (s, S(""))), profile) is True
    assert ok(ir.Call("endsWith", (s, S("xHello.World"))), profile) is False
    assert ok(ir.Call("contains", (s, S("x"))), {}) is False
    assert ok(ir.Not(ir.Call("contains", (s, S("x")))), {}) is True


def test_equals_ignore_case_folds_ascii_only():
    eq = ir.Call("equalsIgnoreCase", (P("s"), S("ANN")))
    assert ok(eq, {"s": "ann"}) is True
    assert ok(eq, {"s": "an"}) is False
    assert ok(ir.Call("equalsIgnoreCase", (P("s"), S("É"))), {"s": "é"}) is False
    assert ok(eq, {}) is False


def test_lower_upper_length():
    assert val(ir.Call("lower", (P("s"),)), {"s": "ÀbC"}) == "Àbc"  # ASCII only
    assert val(ir.Call("upper", (P("s"),)), {"s": "àbc"}) == "àBC"
    assert val(ir.Call("length", (P("s"),)), {"s": "né"}) == 2  # code points
    assert val(ir.Call("length", (P("s"),)), {}) is None


@pytest.mark.parametrize(("pattern", "text", "hit"), [
    ("^A", "Ann", True), ("nn$", "Ann", True), ("^nn", "Ann", False), ("n", "Ann", True),  # a search
    ("a$", "a\n", False),  # $ is the end of the string, not before a final newline
    ("a.b", "a\nb", True),  # . takes a newline
    ("^[A-Z][a-z]+$", "Ann", True), ("[^a-z]", "ann", False), ("\\d{3}", "ab123", True),
    ("\\d", "٣", False),  # ASCII digits only
    ("(ab|cd)+x", "cdabx", True), ("a{2,3}", "ba", False), ("\\.", "a.b", True), ("\\.", "ab", False),
    ("[\\]]", "a]", True), ("[a\\-z]", "-", True), ("é+", "ée", True), ("A", "a", False),
])
def test_matches(pattern, text, hit):
    assert ok(ir.Call("matches", (P("s"), S(pattern))), {"s": text}) is hit


def test_matches_on_null_is_false():
    assert ok(ir.Call("matches", (P("s"), S("x"))), {}) is False
    assert ok(ir.Call("matches", (P("s"), NULL)), {"s": "x"}) is False


@pytest.mark.parametrize("pattern", [
    "(?i)a", "\\w", "\\s", "\\b", "a**", "a{1", "a{2,1}", "a{300}", "[]", "[a-]", "[z-a]", "()", "a|", "|a",
    "(a", "a)", "*a", "^*", "\\1", "[[:alpha:]]", "a{,2}", "\\",
])
def test_patterns_outside_the_subset_are_refused(pattern):
    with pytest.raises(PatternError):
        check_pattern(pattern)
    with pytest.raises(ExprTypeError):
        compile_predicate(ir.Call("matches", (P("s"), S(pattern))))


def test_supported_patterns_translate_for_python_and_postgresql():
    assert check_pattern("^a\\d$") == "^a[0-9]\\Z"
    assert postgres_pattern("^a\\d$") == "^a[0-9]$"
    assert postgres_pattern("[\\]a-c]") == "[\\]a-c]"


# -- events --------------------------------------------------------------------------------------------

EVENTS = [
    {"timestamp": "2024-03-30T10:00:00Z", "eventType": "buy", "value": 10.5, "qty": 2},
    {"timestamp": "2024-03-01T10:00:00Z", "eventType": "buy", "value": 3, "qty": None},
    {"timestamp": "2024-03-29T10:00:00Z", "eventType": "view"},
    {"timestamp": "not a time", "eventType": "buy", "value": "x", "qty": 1},
]
BUY = ir.Cmp("=", E("eventType"), S("buy"))
LAST_WEEK = ir.Cmp(">=", E("timestamp", t="datetime"), ir.Shift(ir.Now(), -7, "day"))


def test_count_in_a_window_with_an_event_type_filter():
    assert val(ir.Agg("count", ir.Events(ir.And((LAST_WEEK, BUY)))), events=EVENTS) == 1
    assert val(ir.Agg("count", ir.Events(BUY)), events=EVENTS) == 3
    assert val(ir.Agg("count", ir.Events()), events=EVENTS) == 4


def test_sum_avg_min_max_skip_nulls():
    value, qty = E("value", t="decimal"), E("qty", t="integer")
    assert val(ir.Agg("sum", ir.Events(BUY), value), events=EVENTS) == 13.5
    assert val(ir.Agg("sum", ir.Events(), qty), events=EVENTS) == 3
    assert val(ir.Agg("avg", ir.Events(), qty), events=EVENTS) == 1.5
    assert val(ir.Agg("avg", ir.Events(BUY), value), events=EVENTS) == 6.75
    assert val(ir.Agg("min", ir.Events(), value), events=EVENTS) == 3.0
    assert val(ir.Agg("max", ir.Events(), E("timestamp", t="datetime")), events=EVENTS) == dt(2024, 3, 30, 10)
    assert val(ir.Agg("min", ir.Events(), E("eventType")), events=EVENTS) == "buy"


@pytest.mark.parametrize(("kind", "value", "empty"), [
    ("count", None, 0), ("sum", E("qty", t="integer"), 0), ("sum", E("value", t="decimal"), 0.0),
    ("avg", E("qty", t="integer"), None), ("min", E("qty", t="integer"), None),
    ("max", E("timestamp", t="datetime"), None), ("any", None, False), ("any", BUY, False), ("all", BUY, True),
])
def test_aggregates_over_no_events(kind, value, empty):
    assert val(ir.Agg(kind, ir.Events(), value), events=[]) == empty
    assert val(ir.Agg(kind, ir.Events(ir.Cmp("=", E("eventType"), S("none"))), value), events=EVENTS) == empty


def test_any_and_all():
    assert ok(ir.Agg("any", ir.Events(BUY)), events=EVENTS) is True
    assert ok(ir.Agg("any", ir.Events(), ir.Cmp(">", E("qty", t="integer"), I(1))), events=EVENTS) is True
    assert ok(ir.Agg("any", ir.Events(BUY), ir.Cmp("=", E("eventType"), S("view"))), events=EVENTS) is False
    assert ok(ir.Agg("all", ir.Events(BUY), ir.Exists(E("value", t="decimal"))), events=EVENTS) is False
    assert ok(ir.Agg("all", ir.Events(LAST_WEEK), ir.Exists(E("eventType"))), events=EVENTS) is True


def test_event_order_never_changes_a_result():
    exprs = [ir.Agg(k, ir.Events(BUY), E("value", t="decimal")) for k in ("sum", "avg", "min", "max")]
    for expr in exprs:
        assert val(expr, events=EVENTS) == val(expr, events=EVENTS[::-1])


def test_profile_fields_and_nested_aggregates_inside_an_event_filter():
    same_type = ir.Cmp("=", E("eventType"), P("favourite"))
    assert val(ir.Agg("count", ir.Events(same_type)), {"favourite": "view"}, events=EVENTS) == 1
    # events of a type that occurs more than once
    repeated = ir.Cmp(">", ir.Agg("count", ir.Events(ir.Cmp("=", E("eventType"), S("buy")))), I(2))
    assert val(ir.Agg("count", ir.Events(repeated)), events=EVENTS) == 4


# -- segments ------------------------------------------------------------------------------------------

def test_in_segment():
    assert ok(ir.InSegment("s1"), segments=frozenset({"s1"})) is True
    assert ok(ir.InSegment("s2"), segments=frozenset({"s1"})) is False
    assert ok(ir.InSegment("s1")) is False


# -- static checks -------------------------------------------------------------------------------------

@pytest.mark.parametrize("expr", [
    E("eventType"),  # an event field outside an event filter
    ir.Cmp("=", P("x", t="any"), S("a")),  # a field of unknown type, outside Exists
    ir.Cmp("<", P("b", t="boolean"), TRUE),
    ir.Cmp("=", P("s"), I(1)),
    ir.Arith("%", D(1.5), I(1)),
    ir.Arith("+", P("s"), I(1)),
    ir.In(P("s"), ir.ListLit((I(1),), "integer")),
    ir.Call("hour", (P("d", t="date"),)),
    ir.Call("nope", (P("s"),)),
    ir.Call("matches", (P("s"), P("p"))),  # the pattern must be a literal
    ir.And((P("s"),)),
    ir.Agg("sum", ir.Events(), E("eventType")),
    ir.Agg("avg", ir.Events()),
    ir.Events(),
    ir.Trunc(P("t", t="datetime"), "hour"),  # type: ignore[arg-type]
    ir.ListLit((I(1), S("a")), "any"),
    ir.Lit("x", "integer"),
])
def test_trees_the_back_ends_cannot_evaluate_identically_are_refused(expr):
    with pytest.raises(ExprTypeError):
        compile_fn(expr)


def test_compile_predicate_refuses_a_value():
    with pytest.raises(ExprTypeError):
        compile_predicate(I(1))


def test_compile_fn_gives_external_values_and_conditions_as_bools():
    fn = compile_fn(ir.Cmp(">", P("p", t="integer"), I(1)))
    assert fn(Context({"p": 2}, [], NOW)) is True
    lst = compile_fn(P("l", t="list", et="datetime"))
    assert lst(Context({"l": ["2024-01-01T00:00:00Z", "x"]}, [], NOW)) == [dt(2024, 1, 1), None]


def test_temporal_helpers_round_trip():
    for ms in (0, -1, 1, temporal.MIN_MS, temporal.MAX_MS, 1_711_886_400_123):
        assert temporal.instant_of(temporal.to_datetime(ms)) == ms
    assert temporal.parse_instant("1970-01-01T00:00:00Z") == 0
    assert temporal.parse_date("1969-12-31") == -1
