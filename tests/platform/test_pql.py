"""PQL front-end: every documented form → the expected IR, static checks and error positions."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wayline.kernel.expr import ir
from wayline.kernel.problems import FieldError
from wayline.platform import pql
from wayline.platform.pql import PQLError

# -- helpers ------------------------------------------------------------------------------------------


def F(path: str, type: str = "any", elem: str = "any") -> ir.Field:
    return ir.Field("profile", tuple(path.split(".")), type, elem)  # type: ignore[arg-type]


def E(path: str, type: str = "any", elem: str = "any") -> ir.Field:
    return ir.Field("event", tuple(path.split(".")), type, elem)  # type: ignore[arg-type]


def S(v: str) -> ir.Lit:
    return ir.Lit(v, "string")


def I(v: int) -> ir.Lit:
    return ir.Lit(v, "integer")


NOW = ir.Now()
TODAY = ir.Trunc(ir.Now(), "day")

SCHEMA: dict[tuple[str, tuple[str, ...]], tuple[str, str]] = {
    ("profile", ("person", "name", "firstName")): ("string", "any"),
    ("profile", ("person", "name", "lastName")): ("string", "any"),
    ("profile", ("person", "birthDate")): ("date", "any"),
    ("profile", ("person", "birthMonth")): ("integer", "any"),
    ("profile", ("person", "birthYear")): ("integer", "any"),
    ("profile", ("person", "age")): ("integer", "any"),
    ("profile", ("person", "favoriteColors")): ("list", "string"),
    ("profile", ("homeAddress",)): ("object", "any"),
    ("profile", ("homeAddress", "countryCode")): ("string", "any"),
    ("profile", ("homeAddress", "city")): ("string", "any"),
    ("profile", ("personalEmail", "address")): ("string", "any"),
    ("profile", ("mobilePhone", "number")): ("string", "any"),
    ("profile", ("consents", "marketing", "email", "val")): ("string", "any"),
    ("profile", ("testProfile",)): ("boolean", "any"),
    ("profile", ("loyalty", "points")): ("integer", "any"),
    ("profile", ("_wayline", "loyalty", "points")): ("integer", "any"),
    ("profile", ("_wayline", "loyalty", "tier")): ("string", "any"),
    ("profile", ("_wayline", "lastPurchase")): ("datetime", "any"),
    ("profile", ("_wayline", "signupDate")): ("date", "any"),
    ("profile", ("_wayline", "lifetimeValue")): ("decimal", "any"),
    ("profile", ("_wayline", "tags")): ("list", "string"),
    ("event", ("eventType",)): ("string", "any"),
    ("event", ("timestamp",)): ("datetime", "any"),
    ("event", ("commerce", "order", "priceTotal")): ("decimal", "any"),
    ("event", ("commerce", "order", "currencyCode")): ("string", "any"),
    ("event", ("commerce", "purchases", "value")): ("integer", "any"),
    ("event", ("web", "webPageDetails", "URL")): ("string", "any"),
    ("event", ("_wayline", "points")): ("integer", "any"),
}


def schema(root: str, path: tuple[str, ...]) -> tuple[str, str] | None:
    return SCHEMA.get((root, path))


SEGMENTS = {"seg-gold", "6f6b1c2e-5a4e-4d4b-9d1e-1b2c3d4e5f60"}


def compile_(text: str) -> ir.Expr:
    return pql.compile(text, schema, segment_exists=SEGMENTS.__contains__)


def error(text: str, *, check: bool = False) -> PQLError:
    with pytest.raises(PQLError) as info:
        compile_(text) if check else pql.parse(text)
    return info.value


# -- every form → IR -----------------------------------------------------------------------------------

T = E("timestamp")
BD = F("person.birthDate")

FORMS: list[tuple[str, ir.Expr]] = [
    # comparisons, literals
    ('person.name.firstName = "Ann"', ir.Cmp("=", F("person.name.firstName"), S("Ann"))),
    ("loyalty.points >= 500", ir.Cmp(">=", F("loyalty.points"), I(500))),
    ("_wayline.loyalty.points < 10", ir.Cmp("<", F("_wayline.loyalty.points"), I(10))),
    ("a != 1", ir.Cmp("!=", F("a"), I(1))),
    ("a <= -2", ir.Cmp("<=", F("a"), I(-2))),
    ("a > 2.5", ir.Cmp(">", F("a"), ir.Lit(2.5, "decimal"))),
    ("a = -0.25", ir.Cmp("=", F("a"), ir.Lit(-0.25, "decimal"))),
    ("testProfile = true", ir.Cmp("=", F("testProfile"), ir.Lit(True, "boolean"))),
    ("testProfile != false", ir.Cmp("!=", F("testProfile"), ir.Lit(False, "boolean"))),
    ("true", ir.Lit(True, "boolean")),
    ('a = "say \\"hi\\"\\n\\u00e9\\\\"', ir.Cmp("=", F("a"), S('say "hi"\né\\'))),
    ('a.matches("^\\d+$")', ir.Call("matches", (F("a"), S("^\\d+$")))),
    ("person.birthDate = date(2020, 3, 14)", ir.Cmp("=", BD, ir.Lit(date(2020, 3, 14), "date"))),
    ("x < date(2020, 3, 14, 10, 30, 5)", ir.Cmp("<", F("x"), ir.Lit(datetime(2020, 3, 14, 10, 30, 5, tzinfo=UTC),
                                                                    "datetime"))),
    ("x < now", ir.Cmp("<", F("x"), NOW)),
    ("x < today", ir.Cmp("<", F("x"), TODAY)),
    ("x >= yesterday", ir.Cmp(">=", F("x"), ir.Shift(TODAY, -1, "day"))),
    ("x < tomorrow", ir.Cmp("<", F("x"), ir.Shift(TODAY, 1, "day"))),
    # null
    ("a = null", ir.Not(ir.Exists(F("a")))),
    ("null != a", ir.Exists(F("a"))),
    ("person.homeAddress.isNull()", ir.Not(ir.Exists(F("person.homeAddress")))),
    ("person.homeAddress.isNotNull()", ir.Exists(F("person.homeAddress"))),
    # boolean logic and precedence: not > and > or
    ("a = 1 and b = 2", ir.And((ir.Cmp("=", F("a"), I(1)), ir.Cmp("=", F("b"), I(2))))),
    ("a = 1 and b = 2 and c = 3", ir.And((ir.Cmp("=", F("a"), I(1)), ir.Cmp("=", F("b"), I(2)),
                                          ir.Cmp("=", F("c"), I(3))))),
    ("a = 1 or b = 2 and c = 3", ir.Or((ir.Cmp("=", F("a"), I(1)),
                                        ir.And((ir.Cmp("=", F("b"), I(2)), ir.Cmp("=", F("c"), I(3))))))),
    ("(a = 1 or b = 2) and c = 3", ir.And((ir.Or((ir.Cmp("=", F("a"), I(1)), ir.Cmp("=", F("b"), I(2)))),
                                           ir.Cmp("=", F("c"), I(3))))),
    ("(a = 1 and b = 2) and c = 3", ir.And((ir.Cmp("=", F("a"), I(1)), ir.Cmp("=", F("b"), I(2)),
                                            ir.Cmp("=", F("c"), I(3))))),
    ("not a = 1 and b = 2", ir.And((ir.Not(ir.Cmp("=", F("a"), I(1))), ir.Cmp("=", F("b"), I(2))))),
    ('not (homeAddress.countryISO = "CA")', ir.Not(ir.Cmp("=", F("homeAddress.countryISO"), S("CA")))),
    ("!(a = 1)", ir.Not(ir.Cmp("=", F("a"), I(1)))),
    ("not not a = 1", ir.Not(ir.Not(ir.Cmp("=", F("a"), I(1))))),
    # arithmetic: * / % bind tighter than + -, left-associative
    ("a + b * 2 > 10", ir.Cmp(">", ir.Arith("+", F("a"), ir.Arith("*", F("b"), I(2))), I(10))),
    ("a - b - c = 0", ir.Cmp("=", ir.Arith("-", ir.Arith("-", F("a"), F("b")), F("c")), I(0))),
    ("(a + b) / 2 >= 1", ir.Cmp(">=", ir.Arith("/", ir.Arith("+", F("a"), F("b")), I(2)), I(1))),
    ("person.age % 5 = 0", ir.Cmp("=", ir.Arith("%", F("person.age"), I(5)), I(0))),
    ("-a < 0", ir.Cmp("<", ir.Arith("-", I(0), F("a")), I(0))),
    # in / notIn / intersects / includes
    ('homeAddress.countryCode in ["FR", "DE"]',
     ir.In(F("homeAddress.countryCode"), ir.ListLit((S("FR"), S("DE")), "string"))),
    ("person.birthMonth notIn [3, 6, 9]",
     ir.In(F("person.birthMonth"), ir.ListLit((I(3), I(6), I(9)), "integer"), negate=True)),
    ("a in [1, 2.5]", ir.In(F("a"), ir.ListLit((I(1), ir.Lit(2.5, "decimal")), "decimal"))),
    ("a in [-1]", ir.In(F("a"), ir.ListLit((I(-1),), "integer"))),
    ("a in []", ir.In(F("a"), ir.ListLit((), "any"))),
    ('"x" in tags', ir.In(S("x"), F("tags"))),
    ('person.favoriteColors.intersects(["red", "blue"])',
     ir.Intersects(F("person.favoriteColors"), ir.ListLit((S("red"), S("blue")), "string"))),
    ('person.favoriteColors.includes("red")', ir.In(S("red"), F("person.favoriteColors"))),
    ("tags.count() > 2", ir.Cmp(">", ir.Call("size", (F("tags"),)), I(2))),
    # string methods
    ('a.contains("x")', ir.Call("contains", (F("a"), S("x")))),
    ('a.startsWith("x")', ir.Call("startsWith", (F("a"), S("x")))),
    ('a.endsWith(".com")', ir.Call("endsWith", (F("a"), S(".com")))),
    ('a.endsWith(".COM", true)', ir.Call("endsWith", (F("a"), S(".COM")))),
    ('a.contains("Ab", false)', ir.Call("contains", (ir.Call("lower", (F("a"),)), S("ab")))),
    ('a.startsWith(b, false)', ir.Call("startsWith", (ir.Call("lower", (F("a"),)), ir.Call("lower", (F("b"),))))),
    ('a.equals("Ann")', ir.Cmp("=", F("a"), S("Ann"))),
    ('a.equals("Ann", true)', ir.Cmp("=", F("a"), S("Ann"))),
    ('a.equals("Ann", false)', ir.Call("equalsIgnoreCase", (F("a"), S("Ann")))),
    ('a.notEqualTo("Ann")', ir.And((ir.Exists(F("a")), ir.Not(ir.Cmp("=", F("a"), S("Ann")))))),
    ('a.doesNotContain("x")', ir.And((ir.Exists(F("a")), ir.Not(ir.Call("contains", (F("a"), S("x"))))))),
    ('a.doesNotStartWith("x")', ir.And((ir.Exists(F("a")), ir.Not(ir.Call("startsWith", (F("a"), S("x"))))))),
    ('a.doesNotEndWith("X", false)', ir.And((ir.Exists(F("a")), ir.Not(
        ir.Call("endsWith", (ir.Call("lower", (F("a"),)), S("x"))))))),
    ('person.name.matches("^[Jj]ohn")', ir.Call("matches", (F("person.name"), S("^[Jj]ohn")))),
    # date parts
    ("person.birthDate.getMonth() = 6", ir.Cmp("=", ir.Call("month", (BD,)), I(6))),
    ("person.birthDate.getYear() in [1991, 1992]",
     ir.In(ir.Call("year", (BD,)), ir.ListLit((I(1991), I(1992)), "integer"))),
    ("person.birthDate.getDayOfMonth() <= 15", ir.Cmp("<=", ir.Call("dayOfMonth", (BD,)), I(15))),
    ("x.getDayOfWeek() = 7", ir.Cmp("=", ir.Call("dayOfWeek", (F("x"),)), I(7))),
    ("x.getHour() < 12", ir.Cmp("<", ir.Call("hour", (F("x"),)), I(12))),
    ("person.birthMonth = currentMonth()", ir.Cmp("=", F("person.birthMonth"), ir.Call("month", (NOW,)))),
    ("a = currentYear()", ir.Cmp("=", F("a"), ir.Call("year", (NOW,)))),
    ("a = currentDayOfMonth()", ir.Cmp("=", F("a"), ir.Call("dayOfMonth", (NOW,)))),
    # occurs <cmp> n unit before|after|from <time>
    ("x occurs <= 3 days before now", ir.And((ir.Cmp(">=", F("x"), ir.Shift(NOW, -3, "day")),
                                              ir.Cmp("<=", F("x"), NOW)))),
    ("x occurs < 7 days before now", ir.And((ir.Cmp(">", F("x"), ir.Shift(NOW, -7, "day")),
                                             ir.Cmp("<=", F("x"), NOW)))),
    ("x occurs > 1 week before now", ir.Cmp("<", F("x"), ir.Shift(NOW, -1, "week"))),
    ("x occurs >= 2 hours before now", ir.Cmp("<=", F("x"), ir.Shift(NOW, -2, "hour"))),
    ("x occurs = 3 hours before now", ir.Cmp("=", F("x"), ir.Shift(NOW, -3, "hour"))),
    ("x occurs != 3 days before today", ir.Cmp("!=", F("x"), ir.Shift(TODAY, -3, "day"))),
    ("person.birthDate occurs = 3 days before today", ir.Cmp("=", BD, ir.Shift(TODAY, -3, "day"))),
    ("x occurs <= 2 days after now", ir.And((ir.Cmp("<=", F("x"), ir.Shift(NOW, 2, "day")),
                                             ir.Cmp(">=", F("x"), NOW)))),
    ("x occurs < 30 minutes from now", ir.And((ir.Cmp("<", F("x"), ir.Shift(NOW, 30, "minute")),
                                               ir.Cmp(">=", F("x"), NOW)))),
    ("x occurs > 1 year after today", ir.Cmp(">", F("x"), ir.Shift(TODAY, 1, "year"))),
    ("x occurs >= 10 seconds after now", ir.Cmp(">=", F("x"), ir.Shift(NOW, 10, "second"))),
    ("x occurs <= 1 month before now", ir.And((ir.Cmp(">=", F("x"), ir.Shift(NOW, -1, "month")),
                                               ir.Cmp("<=", F("x"), NOW)))),
    ("x occurs > 2 decades before now", ir.Cmp("<", F("x"), ir.Shift(NOW, -20, "year"))),
    ("x occurs > 1 century before now", ir.Cmp("<", F("x"), ir.Shift(NOW, -100, "year"))),
    ("x occurs = 0 days before today", ir.Cmp("=", F("x"), TODAY)),
    ("x occurs <= 1 day before yesterday", ir.And((
        ir.Cmp(">=", F("x"), ir.Shift(ir.Shift(TODAY, -1, "day"), -1, "day")),
        ir.Cmp("<=", F("x"), ir.Shift(TODAY, -1, "day"))))),
    ("x occurs < 2 weeks before this month", ir.And((
        ir.Cmp(">", F("x"), ir.Shift(ir.Trunc(NOW, "month"), -2, "week")),
        ir.Cmp("<=", F("x"), ir.Trunc(NOW, "month"))))),
    ("x occurs <= 3 days before date(2020, 3, 14)", ir.And((
        ir.Cmp(">=", F("x"), ir.Shift(ir.Lit(datetime(2020, 3, 14, tzinfo=UTC), "datetime"), -3, "day")),
        ir.Cmp("<=", F("x"), ir.Lit(datetime(2020, 3, 14, tzinfo=UTC), "datetime"))))),
    # occurs before|after <time>
    ("x occurs before today", ir.Cmp("<", F("x"), TODAY)),
    ("x occurs after today", ir.Cmp(">=", F("x"), ir.Shift(TODAY, 1, "day"))),
    ("x occurs before now", ir.Cmp("<", F("x"), NOW)),
    ("x occurs after now", ir.Cmp(">", F("x"), NOW)),
    ("x occurs before date(2020, 1, 1)", ir.Cmp("<", F("x"), ir.Lit(date(2020, 1, 1), "date"))),
    ("x occurs after date(2020, 1, 1)", ir.Cmp(">", F("x"), ir.Lit(date(2020, 1, 1), "date"))),
    ("x occurs before last month", ir.Cmp("<", F("x"), ir.Shift(ir.Trunc(NOW, "month"), -1, "month"))),
    ("x occurs after this year", ir.Cmp(">=", F("x"), ir.Shift(ir.Trunc(NOW, "year"), 1, "year"))),
    # occurs (on) <time>
    ("x occurs today", ir.And((ir.Cmp(">=", F("x"), TODAY), ir.Cmp("<", F("x"), ir.Shift(TODAY, 1, "day"))))),
    ("x occurs on today", ir.And((ir.Cmp(">=", F("x"), TODAY), ir.Cmp("<", F("x"), ir.Shift(TODAY, 1, "day"))))),
    ("x occurs yesterday", ir.And((ir.Cmp(">=", F("x"), ir.Shift(TODAY, -1, "day")), ir.Cmp("<", F("x"), TODAY)))),
    ("x occurs tomorrow", ir.And((ir.Cmp(">=", F("x"), ir.Shift(TODAY, 1, "day")),
                                  ir.Cmp("<", F("x"), ir.Shift(TODAY, 2, "day"))))),
    ("x occurs this month", ir.And((ir.Cmp(">=", F("x"), ir.Trunc(NOW, "month")),
                                    ir.Cmp("<", F("x"), ir.Shift(ir.Trunc(NOW, "month"), 1, "month"))))),
    ("x occurs last month", ir.And((ir.Cmp(">=", F("x"), ir.Shift(ir.Trunc(NOW, "month"), -1, "month")),
                                    ir.Cmp("<", F("x"), ir.Trunc(NOW, "month"))))),
    ("x occurs this year", ir.And((ir.Cmp(">=", F("x"), ir.Trunc(NOW, "year")),
                                   ir.Cmp("<", F("x"), ir.Shift(ir.Trunc(NOW, "year"), 1, "year"))))),
    ("x occurs last year", ir.And((ir.Cmp(">=", F("x"), ir.Shift(ir.Trunc(NOW, "year"), -1, "year")),
                                   ir.Cmp("<", F("x"), ir.Trunc(NOW, "year"))))),
    ("x occurs last week", ir.And((ir.Cmp(">=", F("x"), ir.Shift(ir.Trunc(NOW, "week"), -1, "week")),
                                   ir.Cmp("<", F("x"), ir.Trunc(NOW, "week"))))),
    ("x occurs next day", ir.And((ir.Cmp(">=", F("x"), ir.Shift(ir.Trunc(NOW, "day"), 1, "day")),
                                  ir.Cmp("<", F("x"), ir.Shift(ir.Trunc(NOW, "day"), 2, "day"))))),
    ("x occurs on date(2019, 12, 31)", ir.Cmp("=", F("x"), ir.Lit(date(2019, 12, 31), "date"))),
    ("x occurs date(2019, 12, 31)", ir.Cmp("=", F("x"), ir.Lit(date(2019, 12, 31), "date"))),
    ("x occurs on now", ir.Cmp("=", F("x"), NOW)),
    # occurs between <time> and <time>: both ends included, a day-long end in full
    ("x occurs between date(2015, 1, 8) and date(2017, 7, 1)", ir.And((
        ir.Cmp(">=", F("x"), ir.Lit(date(2015, 1, 8), "date")), ir.Cmp("<=", F("x"), ir.Lit(date(2017, 7, 1), "date"))))),
    ("x occurs between yesterday and today", ir.And((
        ir.Cmp(">=", F("x"), ir.Shift(TODAY, -1, "day")), ir.Cmp("<", F("x"), ir.Shift(TODAY, 1, "day"))))),
    ("x occurs between date(2020, 1, 1) and now and y = 1", ir.And((  # one flat And
        ir.Cmp(">=", F("x"), ir.Lit(date(2020, 1, 1), "date")), ir.Cmp("<=", F("x"), NOW),
        ir.Cmp("=", F("y"), I(1))))),
    # events
    ('xEvent[eventType = "commerce.purchases"].count() > 0',
     ir.Cmp(">", ir.Agg("count", ir.Events(ir.Cmp("=", E("eventType"), S("commerce.purchases")))), I(0))),
    ("xEvent.count() = 0", ir.Cmp("=", ir.Agg("count", ir.Events(None)), I(0))),
    ('xEvent[(timestamp occurs < 7 days before now) and eventType = "commerce.purchases"].count() > 0',
     ir.Cmp(">", ir.Agg("count", ir.Events(ir.And((
         ir.Cmp(">", T, ir.Shift(NOW, -7, "day")), ir.Cmp("<=", T, NOW),
         ir.Cmp("=", E("eventType"), S("commerce.purchases")))))), I(0))),
    ('xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal) > 100',
     ir.Cmp(">", ir.Agg("sum", ir.Events(ir.Cmp("=", E("eventType"), S("commerce.purchases"))),
                        E("commerce.order.priceTotal")), I(100))),
    ("xEvent.average(commerce.order.priceTotal) >= 20",
     ir.Cmp(">=", ir.Agg("avg", ir.Events(None), E("commerce.order.priceTotal")), I(20))),
    ("xEvent[a = 1].min(b) < 5", ir.Cmp("<", ir.Agg("min", ir.Events(ir.Cmp("=", E("a"), I(1))), E("b")), I(5))),
    ("xEvent.max(timestamp) occurs before today", ir.Cmp("<", ir.Agg("max", ir.Events(None), T), TODAY)),
    ("xEvent.sum(a * 2) > 1", ir.Cmp(">", ir.Agg("sum", ir.Events(None), ir.Arith("*", E("a"), I(2))), I(1))),
    ('select X from xEvent where X.eventType = "web.webpagedetails.pageViews"',
     ir.Agg("any", ir.Events(ir.Cmp("=", E("eventType"), S("web.webpagedetails.pageViews"))))),
    ("select X from xEvent where X.a = 1 and X.b = 2",
     ir.Agg("any", ir.Events(ir.And((ir.Cmp("=", E("a"), I(1)), ir.Cmp("=", E("b"), I(2))))))),
    ("exists E from xEvent where E.commerce.order.priceTotal > 50",
     ir.Agg("any", ir.Events(ir.Cmp(">", E("commerce.order.priceTotal"), I(50))))),
    ("exists E from xEvent: E.a > 50", ir.Agg("any", ir.Events(ir.Cmp(">", E("a"), I(50))))),
    ("forall E from xEvent where E.a > 50", ir.Agg("all", ir.Events(None), ir.Cmp(">", E("a"), I(50)))),
    ("(select X from xEvent where X.a = 1) and b = 2",
     ir.And((ir.Agg("any", ir.Events(ir.Cmp("=", E("a"), I(1)))), ir.Cmp("=", F("b"), I(2))))),
    # segments of segments
    ('inSegment("seg-gold")', ir.InSegment("seg-gold")),
    ('inSegment("a") and not inSegment("b")', ir.And((ir.InSegment("a"), ir.Not(ir.InSegment("b"))))),
    # keywords are plain names after a dot; whitespace and newlines are free
    ("person.in.date.year = 1", ir.Cmp("=", F("person.in.date.year"), I(1))),
    ("a\n  =\n\t1", ir.Cmp("=", F("a"), I(1))),
]


@pytest.mark.parametrize(("text", "expected"), FORMS, ids=[t for t, _ in FORMS])
def test_form_parses_to_ir(text: str, expected: ir.Expr) -> None:
    assert pql.parse(text) == expected


# -- static checks ---------------------------------------------------------------------------------------

def test_check_fills_field_types_and_returns_a_new_tree() -> None:
    parsed = pql.parse('person.name.firstName = "Ann" and xEvent[eventType = "x"].sum(commerce.order.priceTotal) > 1'
                       ' and _wayline.tags.intersects(["a"])')
    checked = pql.check(parsed, schema)
    assert checked == ir.And((
        ir.Cmp("=", F("person.name.firstName", "string"), S("Ann")),
        ir.Cmp(">", ir.Agg("sum", ir.Events(ir.Cmp("=", E("eventType", "string"), S("x"))),
                           E("commerce.order.priceTotal", "decimal")), I(1)),
        ir.Intersects(F("_wayline.tags", "list", "string"), ir.ListLit((S("a"),), "string"))))
    assert all(f.type == "any" for f in ir.walk(parsed) if isinstance(f, ir.Field))  # the input is untouched


def test_object_fields_only_test_presence() -> None:
    assert compile_("homeAddress.isNull()") == ir.Not(ir.Exists(F("homeAddress")))
    assert compile_("homeAddress = null") == ir.Not(ir.Exists(F("homeAddress")))
    e = error("homeAddress = 1", check=True)
    assert (e.line, e.column) == (1, 13)
    types = {("m",): ("map", "any"), ("u",): ("any", "any"), ("objs",): ("list", "object")}
    for text in ('m = "x"', 'u.contains("x")', '"x" in objs', 'objs.intersects(["x"])'):
        with pytest.raises(PQLError):
            pql.compile(text, lambda root, path: types.get(path))
    assert pql.compile("u.isNotNull() and objs.count() > 1", lambda root, path: types.get(path)) == ir.And((
        ir.Exists(F("u")), ir.Cmp(">", ir.Call("size", (F("objs", "list"),)), I(1))))


@pytest.mark.parametrize(("text", "line", "column", "words"), [
    ('person.name.firstNme = "Ann"', 1, 1, "unknown field 'person.name.firstNme'"),
    ('testProfile = true and\n  xEvent[eventTyp = "x"].count() > 0', 2, 10, "unknown event field 'eventTyp'"),
    ("select X from xEvent where X.nope = 1", 1, 28, "unknown event field 'nope'"),
    ("person.name.firstName = 5", 1, 23, "cannot compare 'person.name.firstName' (string) with 5 (integer)"),
    ('loyalty.points >= "500"', 1, 16, "cannot compare 'loyalty.points' (integer) with \"500\" (string)"),
    ('person.age.contains("x")', 1, 1, "'contains' needs a string, but 'person.age' is integer"),
    ('person.age.equals("x", false)', 1, 1, "'equals' needs a string, but 'person.age' is integer"),
    ("xEvent.sum(eventType) > 1", 1, 12, "'sum' needs a number, but event field 'eventType' is string"),
    ("xEvent.average(eventType) > 1", 1, 16, "'average' needs a number"),
    ('inSegment("nope")', 1, 1, "unknown segment 'nope'"),
    ("person.age occurs today", 1, 1, "'occurs' needs a date or datetime, but 'person.age' is integer"),
    ('person.birthMonth in ["3"]', 1, 19, "'in' looks for 'person.birthMonth' (integer) in a list of string"),
    ("person.birthMonth in 3", 1, 19, "'in' needs a list"),
    ("person.favoriteColors.intersects([1])", 1, 23, "'intersects' compares lists of string with a list of integer"),
    ("person.name.firstName.getMonth() = 1", 1, 1, "'getMonth' needs a date or a datetime"),
    ("testProfile < true", 1, 13, "booleans compare only with '=' or '!='"),
    ("person.age + person.name.firstName > 1", 1, 14, "'+' needs numbers, but 'person.name.firstName' is string"),
    ("person.age", 1, 1, "a segment condition must be true or false, but 'person.age' is integer"),
    ("person.age and true", 1, 1, "'and' needs conditions (true or false)"),
    ("not person.age", 1, 5, "'not' needs a condition"),
    ("xEvent[timestamp].count() > 0", 1, 8, "'xEvent[...]' needs a condition (true or false)"),
    ("person.favoriteColors < [1]", 1, 23, "cannot compare"),
    ("_wayline.lifetimeValue % 2 = 0", 1, 1, "'%' needs integers, but '_wayline.lifetimeValue' is decimal"),
    ('xEvent.sum(timestamp) > 1', 1, 12, "'sum' needs a number, but event field 'timestamp' is datetime"),
])
def test_check_errors_point_at_the_offender(text: str, line: int, column: int, words: str) -> None:
    e = error(text, check=True)
    assert words in e.message, e.message
    assert (e.line, e.column) == (line, column), e.detail


def test_check_after_parse_keeps_positions() -> None:
    parsed = pql.parse("a = 1 and\n   nope.nope = 2")
    with pytest.raises(PQLError) as info:
        pql.check(parsed, lambda root, path: ("integer", "any") if path == ("a",) else None)
    assert (info.value.line, info.value.column) == (2, 4)
    assert info.value.detail == "line 2, column 4: unknown field 'nope.nope'"


def test_check_of_a_tree_built_elsewhere_has_no_position() -> None:
    with pytest.raises(PQLError) as info:
        pql.check(ir.Cmp("=", F("nope"), I(1)), schema)
    assert (info.value.line, info.value.column) == (0, 0)
    assert info.value.detail == "unknown field 'nope'"


def test_unknown_segment_is_only_checked_when_asked() -> None:
    assert pql.compile('inSegment("anything")', schema) == ir.InSegment("anything")


def test_to_field_errors() -> None:
    e = error('person.name.firstName = "Ann', check=False)
    [fe] = e.to_field_errors()
    assert fe == FieldError("/expression/value", e.detail, "'\"'")
    assert fe.detail.startswith("line 1, column 25: unterminated string")
    [fe] = error("a =").to_field_errors("/condition")
    assert fe.pointer == "/condition" and "a value, a field or '('" in fe.detail


# -- parse errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "line", "column", "words"), [
    # missing quote
    ('person.name.firstName = "Ann', 1, 25, "unterminated string"),
    # unknown operator
    ('person.name.firstName == "Ann"', 1, 23, "'==' is not an operator; compare with '='"),
    ("a = 1 && b = 2", 1, 7, "write 'and' instead of '&&'"),
    ("a <> 1", 1, 3, "write '!=' instead of '<>'"),
    ("a = 'x'", 1, 5, "strings use double quotes"),
    ("a @ 1", 1, 3, "unexpected character '@'"),
    # trailing and
    ("a = 1 and", 1, 10, "expected a value, a field or '(' after 'and', found the end"),
    ("a = 1 and\n", 1, 10, "expected a value, a field or '(' after 'and', found the end"),
    # bad unit
    ("x.timestamp occurs <= 3 fortnights before now", 1, 25, "unknown time unit 'fortnights'"),
    ("x occurs <= 3 milliseconds before now", 1, 15, "unknown time unit 'milliseconds'"),
    ("x occurs this fortnight", 1, 15, "expected day, week, month or year after 'this', found 'fortnight'"),
    ("x occurs <= 3", 1, 14, "expected a time unit"),
    ("x occurs <= 3 days now", 1, 20, "expected one of 'before', 'after' or 'from' after 'days', found 'now'"),
    ("x occurs soon", 1, 10, "expected a time"),
    # xEvent[ unclosed
    ('xEvent[eventType = "x"', 1, 23, "expected ']' after '\"x\"', found the end"),
    ('xEvent[eventType = "x".count() > 0', 1, 32, "found '>'"),
    # unknown methods and functions
    ('person.name.foo("x")', 1, 13, "unknown method 'foo'; expected one of contains"),
    ("xEvent.total(a) > 1", 1, 8, "unknown event aggregate 'total'"),
    ("upper(a) = 1", 1, 1, "unknown function 'upper'"),
    # other shapes
    ("", 1, 1, "the condition is empty"),
    ("a < b < c", 1, 7, "expected one of '+', '-', 'and', 'or' or the end after 'b', found '<'"),
    ('person.name "Ann"', 1, 13, "after 'person.name', found '\"Ann\"'"),
    ("a = (1", 1, 7, "expected ')' after '1', found the end"),
    ("a = 1)", 1, 6, "expected the end after '1', found ')'"),
    ("x in [1, 2", 1, 11, "expected one of ']' or ','"),
    ('x in [1, "a"]', 1, 6, "a list holds values of one type, not integer and string"),
    ("x in [a, 1]", 1, 7, "a list holds literal values"),
    ("a = 1\n and b = = 2", 2, 10, "expected a value, a field or '(' after '=', found '='"),
    ("date(2020, 2, 30) = x", 1, 1, "not a valid date"),
    ("date(2020, 2) = x", 1, 1, "date(...) takes 3 numbers"),
    ("a < null", 1, 3, "null can only be compared with '=' or '!='"),
    ("a.contains(\"x\", 1)", 1, 17, "the second argument of contains is true"),
    ('a.matches("(")', 1, 11, "unsupported regular expression '('"),
    ('a.matches("(?i)^john")', 1, 11, "'(?' extensions are not supported"),
    ('a.matches("\\w+")', 1, 11, "unsupported regular expression"),
    ("inSegment(a)", 1, 1, "inSegment takes one segment id in double quotes"),
    ("xEvent > 1", 1, 1, "xEvent is read through an aggregate"),
    ("xEvent.a = 1", 1, 8, "xEvent is read through an aggregate"),
    ("xEvent[a = 1] = 1", 1, 1, "an event filter is followed by an aggregate"),
    ("xEvent[xEvent.count() > 1].count() > 1", 1, 8, "xEvent cannot be used inside an event condition"),
    ('xEvent[inSegment("a")].count() > 1', 1, 8, "inSegment cannot be used inside an event condition"),
    ("select X from xEvent where eventType = 1", 1, 28, "event fields are written X.<field>"),
    ("select X from xEvent where X = 1", 1, 28, "'X' is a whole event"),
    ("a = 1 and select X from xEvent where X.a = 1", 1, 11, "put 'select X from xEvent where ...' in parentheses"),
    ("xEvent.count(a) > 1", 1, 14, "count() takes no arguments"),
    ("xEvent.sum() > 1", 1, 8, "sum(...) takes one event field"),
    ("a.isNull(1)", 1, 10, "isNull() takes no arguments"),
    ("a.count().b = 1", 1, 11, "'b' cannot be read from a computed value"),
])
def test_parse_errors_say_where_and_what(text: str, line: int, column: int, words: str) -> None:
    e = error(text)
    assert words in e.message, e.message
    assert (e.line, e.column) == (line, column), e.detail
    assert e.detail == f"line {line}, column {column}: {e.message}"


def test_expected_lists_are_machine_readable() -> None:
    e = error("a = 1 and")
    assert "a field" in e.expected and "'('" in e.expected and "'not'" in e.expected
    assert error("x occurs <= 3 fortnights before now").expected[0] == "second(s)"


def test_not_a_string() -> None:
    with pytest.raises(PQLError):
        pql.parse(None)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('ab.xEvent[]()"=<>!and or not in 1 2.5 occurs days before now,\\\n')),
               max_size=40))
def test_any_text_parses_or_raises_pql_error(text: str) -> None:
    try:
        pql.parse(text)
    except PQLError as e:
        assert e.line >= 1 and e.column >= 1, e.detail


# -- a corpus of realistic definitions (the reference's examples and common audiences) -----------------

CORPUS = [
    'person.name.firstName = "Ann"',
    "loyalty.points >= 500",
    'homeAddress.countryCode in ["FR", "DE"]',
    "person.birthMonth notIn [3, 6, 9]",
    'person.favoriteColors.intersects(["red", "blue", "green"])',
    'person.favoriteColors.includes("red")',
    'personalEmail.address.endsWith(".com")',
    'personalEmail.address.contains("2010@gm")',
    'person.name.firstName.startsWith("Jo")',
    'person.name.firstName.equals("ann", false)',
    'person.name.lastName.matches("^(Mc|Mac)[A-Z]")',
    'mobilePhone.number.matches("^\\+33[0-9]{9}$")',
    'personalEmail.address.doesNotEndWith("@example.com")',
    "mobilePhone.number.isNotNull() and homeAddress.isNull()",
    'consents.marketing.email.val = "y" and testProfile != true',
    "person.birthDate.getMonth() = currentMonth()",
    "person.birthDate.getYear() in [1991, 1992, 1993, 1994, 1995]",
    "person.birthDate occurs = 3 days before today",
    "person.birthDate occurs between date(1980, 1, 1) and date(1989, 12, 31)",
    "_wayline.lastPurchase occurs <= 30 days before now",
    "_wayline.lastPurchase occurs before today",
    "_wayline.lastPurchase occurs last month",
    "_wayline.lastPurchase occurs this year or _wayline.lastPurchase occurs last year",
    "_wayline.lifetimeValue / 12 > 50.5 and _wayline.loyalty.points % 2 = 0",
    '_wayline.loyalty.tier in ["gold", "platinum"] and not inSegment("seg-gold")',
    'xEvent[(timestamp occurs < 7 days before now) and eventType = "commerce.purchases"].count() > 0',
    'xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal) > 100',
    ('xEvent[eventType = "commerce.purchases" and timestamp occurs last month].average(commerce.order.priceTotal)'
    " >= 25.0"),
    'xEvent[eventType = "commerce.purchases"].max(timestamp) occurs > 90 days before now',
    ('xEvent[eventType = "web.webpagedetails.pageViews"].count() >= 3 and xEvent[eventType = '
    '"commerce.purchases"].count() = 0'),
    'select X from xEvent where X.eventType = "web.webpagedetails.pageViews"',
    'select X from xEvent where X.eventType = "commerce.purchases" and X.timestamp occurs < 1 week before now',
    ('(select X from xEvent where X.web.webPageDetails.URL.contains("/checkout")) and\n'
    '  not (select X from xEvent where X.eventType = "commerce.purchases")'),
    "forall E from xEvent where E._wayline.points > 0",
    'inSegment("6f6b1c2e-5a4e-4d4b-9d1e-1b2c3d4e5f60") or homeAddress.city = "Lyon"',
]


@pytest.mark.parametrize("text", CORPUS)
def test_corpus_compiles(text: str) -> None:
    checked = compile_(text)
    assert all(f.type != "any" for f in ir.walk(checked) if isinstance(f, ir.Field) and f.path != ("homeAddress",))


def test_the_back_ends_accept_every_compiled_tree() -> None:
    typing = pytest.importorskip("wayline.kernel.expr.check")
    for text in CORPUS:
        expr = compile_(text)
        assert typing.Typer(expr).root == "boolean", text


def test_compile_is_parse_then_check() -> None:
    for text in CORPUS:
        assert compile_(text) == pql.check(pql.parse(text), schema, segment_exists=SEGMENTS.__contains__)


def test_long_or_chains_are_flat_and_deep_nesting_is_an_error() -> None:
    chain = " or ".join(f'homeAddress.city = "c{i}"' for i in range(2000))
    assert len(compile_(chain).items) == 2000  # type: ignore[attr-defined]
    e = error("(" * 5000 + "a = 1" + ")" * 5000)
    assert "nested too deeply" in e.message


def test_positions_survive_discarded_nodes() -> None:
    # negative literals and day references build and drop helper nodes; no position may leak to others
    e = error("-1 = -2 and yesterday < today and _wayline.lastPurchase occurs before yesterday and\n nope = 1",
              check=True)
    assert (e.line, e.column, e.message) == (2, 2, "unknown field 'nope'")


# -- end to end: PQL → IR → the interpreter ---------------------------------------------------------

ANN = {
    "person": {"name": {"firstName": "Ann", "lastName": "McDonald"}, "birthDate": "1990-03-15",
               "favoriteColors": ["red", "green"]},
    "homeAddress": {"countryCode": "FR", "city": "Lyon"},
    "personalEmail": {"address": "Ann@Example.com"},
    "_wayline": {"loyalty": {"points": 700, "tier": "gold"}, "lastPurchase": "2026-03-16T09:00:00Z",
                 "lifetimeValue": 1200.5, "signupDate": "2026-03-15"},
    "testProfile": False,
}
ANN_EVENTS = [
    {"_id": "e1", "timestamp": "2026-03-17T10:00:00Z", "eventType": "commerce.purchases",
     "commerce": {"order": {"priceTotal": 60.0}}},
    {"_id": "e2", "timestamp": "2026-02-10T10:00:00Z", "eventType": "commerce.purchases",
     "commerce": {"order": {"priceTotal": 80.0}}},
    {"_id": "e3", "timestamp": "2026-03-18T11:00:00Z", "eventType": "web.webpagedetails.pageViews",
     "web": {"webPageDetails": {"URL": "https://shop.example/checkout"}}},
]
NOW_AT = datetime(2026, 3, 18, 12, 0, tzinfo=UTC)  # a Wednesday

END_TO_END = [
    ('person.name.firstName = "Ann"', True),
    ('personalEmail.address.equals("ann@example.com", false)', True),
    ('personalEmail.address.equals("ann@example.com")', False),
    ('personalEmail.address.endsWith(".COM", false)', True),
    ('personalEmail.address.doesNotContain("EXAMPLE", false)', False),
    ('homeAddress.countryCode in ["FR", "DE"]', True),
    ('homeAddress.countryCode notIn ["FR", "DE"]', False),
    ("person.birthDate.getMonth() = currentMonth()", True),
    ("_wayline.signupDate occurs = 3 days before today", True),  # a date field: that whole day
    ("_wayline.signupDate occurs = 2 days before today", False),
    ("_wayline.signupDate occurs <= 3 days before now", True),
    ("_wayline.signupDate occurs < 3 days before today", False),
    ("person.birthDate occurs = 3 days before today", False),  # 1990: dates compare with their year
    ("_wayline.lastPurchase occurs <= 3 days before now", True),
    ("_wayline.lastPurchase occurs <= 2 days before now", False),  # 03-16 09:00 is before 03-16 12:00
    ("_wayline.lastPurchase occurs > 2 days before now", True),
    ("_wayline.lastPurchase occurs this month", True),
    ("_wayline.lastPurchase occurs last month", False),
    ("_wayline.lastPurchase occurs before today", True),
    ("_wayline.lastPurchase occurs yesterday", False),
    ("_wayline.lastPurchase occurs between date(2026, 3, 1) and date(2026, 3, 16)", True),
    ("_wayline.lastPurchase occurs on date(2026, 3, 16)", True),
    ("_wayline.lastPurchase occurs this week", True),  # the week began on Monday 03-16
    ('xEvent[eventType = "commerce.purchases"].count() = 2', True),
    (('xEvent[eventType = "commerce.purchases" and timestamp occurs < 7 days before now]'
      ".sum(commerce.order.priceTotal) = 60"), True),
    ('xEvent[eventType = "commerce.purchases"].average(commerce.order.priceTotal) = 70', True),
    ("xEvent[timestamp occurs last month].count() = 1", True),
    ("xEvent.max(timestamp) occurs today", True),
    ('select X from xEvent where X.web.webPageDetails.URL.contains("/checkout")', True),
    ('select X from xEvent where X.eventType = "commerce.purchases" and X.timestamp occurs today', False),
    ("forall E from xEvent where E.timestamp occurs this year", True),
    ('inSegment("seg-gold")', True),
    ('inSegment("6f6b1c2e-5a4e-4d4b-9d1e-1b2c3d4e5f60")', False),
    ("mobilePhone.number.isNull()", True),
    ('mobilePhone.number.doesNotContain("33")', False),
    ('not (mobilePhone.number = "1")', True),
    ("_wayline.loyalty.points % 2 = 0 and _wayline.lifetimeValue / 2 > 600", True),
    ('person.favoriteColors.intersects(["blue", "red"])', True),
    ('person.name.lastName.matches("^(Mc|Mac)[A-Z]")', True),
]


@pytest.mark.parametrize(("text", "expected"), END_TO_END, ids=[t for t, _ in END_TO_END])
def test_end_to_end_with_the_interpreter(text: str, expected: bool) -> None:
    interp = pytest.importorskip("wayline.kernel.expr.interp")
    ctx = interp.Context(ANN, ANN_EVENTS, NOW_AT, payload=None, segments=frozenset({"seg-gold"}))
    assert interp.evaluate(compile_(text), ctx) is expected
