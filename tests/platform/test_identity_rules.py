"""Identity namespaces and value rules: every rule a record's identities must follow."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wayline.kernel.problems import Problem
from wayline.platform.identity import (
    STANDARD,
    TYPES,
    Found,
    Ident,
    Namespace,
    check_custom_namespace,
    check_value,
    extract,
    normalise,
)
from wayline.platform.schemas.compiled import IdentityField

ECID = "1" * 38
CRM = Namespace("CRMID", 100_001, "CRM id", "CROSS_DEVICE", custom=True)
NAMESPACES = {**STANDARD, CRM.code: CRM}


def imap(**by_code: list[dict]) -> dict:
    return {"identityMap": by_code}


def item(value, primary: bool | None = None, state: str | None = None) -> dict:
    out = {"id": value}
    if primary is not None:
        out["primary"] = primary
    if state is not None:
        out["authenticatedState"] = state
    return out


def run(entity: dict, fields: tuple[IdentityField, ...] = (), **kw):
    return extract(entity, fields, NAMESPACES, **kw)


def pointers(violations: list[dict]) -> list[str]:
    return [v["pointerToViolation"] for v in violations]


# -- namespaces -----------------------------------------------------------------------------------


def test_standard_namespaces_have_the_reference_codes_ids_and_types():
    assert {c: (n.id, n.type) for c, n in STANDARD.items()} == {
        "ECID": (4, "COOKIE"), "Email": (6, "EMAIL"), "Phone": (7, "PHONE"), "WAID": (8, "COOKIE"),
        "TNTID": (9, "COOKIE"), "AdCloud": (411, "COOKIE"), "GAID": (20914, "DEVICE"),
        "IDFA": (20915, "DEVICE")}
    assert STANDARD["ECID"].name == "Experience Cloud ID"
    assert all(not n.custom and n.type in TYPES for n in STANDARD.values())
    assert STANDARD["Email"].to_api() == {"code": "Email", "id": 6, "name": "Email", "idType": "EMAIL",
                                          "custom": False, "description": STANDARD["Email"].description}


def test_a_good_custom_namespace_body_is_cleaned():
    body = {"code": "CRM_id2", "name": "  CRM id ", "idType": "CROSS_DEVICE"}
    fields = check_custom_namespace(body, {"Loyalty"})
    assert fields == {"code": "CRM_id2", "name": "CRM id", "idType": "CROSS_DEVICE", "description": ""}
    ns = Namespace(fields["code"], 100_002, fields["name"], fields["idType"], True, fields["description"])
    assert ns.to_api() == {"code": "CRM_id2", "id": 100_002, "name": "CRM id", "idType": "CROSS_DEVICE",
                           "custom": True, "description": ""}
    assert check_custom_namespace({"code": "x" * 64, "name": "n" * 200, "idType": "NON_PEOPLE",
                                   "description": "stores"}, set())["description"] == "stores"


@pytest.mark.parametrize("body, where", [
    ({"name": "CRM", "idType": "CROSS_DEVICE"}, "/code"),
    ({"code": "", "name": "CRM", "idType": "CROSS_DEVICE"}, "/code"),
    ({"code": "x" * 65, "name": "CRM", "idType": "CROSS_DEVICE"}, "/code"),
    ({"code": "crm-id", "name": "CRM", "idType": "CROSS_DEVICE"}, "/code"),
    ({"code": "crm id", "name": "CRM", "idType": "CROSS_DEVICE"}, "/code"),
    ({"code": "crmé", "name": "CRM", "idType": "CROSS_DEVICE"}, "/code"),
    ({"code": 7, "name": "CRM", "idType": "CROSS_DEVICE"}, "/code"),
    ({"code": "email", "name": "Mail", "idType": "EMAIL"}, "/code"),
    ({"code": "ECID", "name": "Mine", "idType": "COOKIE"}, "/code"),
    ({"code": "CRM", "idType": "CROSS_DEVICE"}, "/name"),
    ({"code": "CRM", "name": "   ", "idType": "CROSS_DEVICE"}, "/name"),
    ({"code": "CRM", "name": "n" * 201, "idType": "CROSS_DEVICE"}, "/name"),
    ({"code": "CRM", "name": "CRM"}, "/idType"),
    ({"code": "CRM", "name": "CRM", "idType": "cross_device"}, "/idType"),
    ({"code": "CRM", "name": "CRM", "idType": "PERSON"}, "/idType"),
    ({"code": "CRM", "name": "CRM", "idType": "COOKIE", "description": 3}, "/description"),
    ({"code": "CRM", "name": "CRM", "idType": "COOKIE", "type": "COOKIE"}, "/type"),
])
def test_bad_custom_namespace_bodies_are_422_at_the_field(body, where):
    with pytest.raises(Problem) as err:
        check_custom_namespace(body, set())
    assert (err.value.status, err.value.slug) == (422, "validation")
    assert [e.pointer for e in err.value.errors] == [where]


def test_every_bad_namespace_field_is_reported_at_once_and_a_non_object_is_refused():
    with pytest.raises(Problem) as err:
        check_custom_namespace({"code": "a-b", "name": "", "idType": "X"}, set())
    assert [e.pointer for e in err.value.errors] == ["/code", "/name", "/idType"]
    with pytest.raises(Problem) as err:
        check_custom_namespace(["CRM"], set())
    assert err.value.status == 422 and err.value.errors[0].pointer == ""


def test_a_duplicate_namespace_code_is_a_conflict_regardless_of_case():
    body = {"code": "crmid", "name": "CRM", "idType": "CROSS_DEVICE"}
    with pytest.raises(Problem) as err:
        check_custom_namespace(body, {"Loyalty", "CRMID"})
    assert (err.value.status, err.value.slug) == (409, "conflict")
    assert "CRMID" in err.value.detail


# -- values ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("ns, value, fragment", [
    ("Email", "", "empty"),
    ("Email", "  ", "empty"),
    ("CRMID", "\t\n", "empty"),
    ("Email", "null", "not an identity value"),
    ("Email", "NULL", "not an identity value"),
    ("Phone", " Null ", "not an identity value"),
    ("CRMID", "anonymous", "not an identity value"),
    ("CRMID", "ANONYMOUS", "not an identity value"),
    ("CRMID", "invalid", "not an identity value"),
    ("CRMID", "Invalid", "not an identity value"),
    ("CRMID", "x" * 1025, "at most 1,024"),
    ("ECID", "1" * 37, "38 digits"),
    ("ECID", "1" * 39, "38 digits"),
    ("ECID", "1" * 37 + "a", "38 digits"),
    ("ECID", " " + "1" * 38, "38 digits"),
    ("ECID", "\u0661" * 38, "38 digits"),  # Arabic-Indic digits are digits, but not ASCII ones
    ("Email", None, "a string"),
    ("Email", 42, "a string"),
    ("Email", True, "a string"),
    ("Email", ["a@b.c"], "a string"),
    ("Email", {"id": "a@b.c"}, "a string"),
])
def test_bad_values_are_refused_with_a_reason(ns, value, fragment):
    message = check_value(ns, value)
    assert message is not None and fragment in message


@pytest.mark.parametrize("ns, value", [
    ("ECID", ECID), ("Email", "a@b.c"), ("CRMID", "x" * 1024), ("Phone", "+33 1 23 45 67 89"),
    ("CRMID", "nullable"), ("CRMID", "0"), ("TNTID", "1" * 37),
])
def test_good_values_pass(ns, value):
    assert check_value(ns, value) is None


def test_only_emails_are_normalised():
    assert normalise("Email", "  Ann@Example.COM ") == "ann@example.com"
    assert normalise("CRMID", " AbC ") == " AbC "
    assert normalise("Phone", "+33 1") == "+33 1"


# -- extract --------------------------------------------------------------------------------------


def test_a_plain_identity_map_yields_its_identities_in_document_order_first_made_primary():
    found, violations = run(imap(ECID=[item(ECID, state="ambiguous")], Email=[item("a@b.c"), item("d@e.f")]))
    assert violations == []
    assert found == [
        Found(Ident("ECID", ECID), True, "ambiguous", "/identityMap/ECID/0/id"),
        Found(Ident("Email", "a@b.c"), False, "ambiguous", "/identityMap/Email/0/id"),
        Found(Ident("Email", "d@e.f"), False, "ambiguous", "/identityMap/Email/1/id"),
    ]


def test_the_marked_primary_comes_first_and_keeps_its_state():
    found, violations = run(imap(ECID=[item(ECID)], CRMID=[item("c-1", primary=True, state="authenticated")]))
    assert violations == []
    assert [(f.ident, f.primary, f.authenticated_state) for f in found] == [
        (Ident("CRMID", "c-1"), True, "authenticated"), (Ident("ECID", ECID), False, "ambiguous")]


def test_descriptor_fields_come_first_then_the_identity_map():
    fields = (IdentityField(("personalEmail", "address"), "Email", False),
              IdentityField(("_acme", "crmId"), "CRMID", True),
              IdentityField(("mobilePhone", "number"), "Phone", False))
    entity = {"personalEmail": {"address": "Ann@B.c"}, "_acme": {"crmId": "c-9"},
              "mobilePhone": {"number": None}, **imap(ECID=[item(ECID)])}
    found, violations = run(entity, fields)
    assert violations == []
    assert [(f.ident, f.primary, f.authenticated_state, f.pointer) for f in found] == [
        (Ident("CRMID", "c-9"), True, None, "/_acme/crmId"),
        (Ident("Email", "ann@b.c"), False, None, "/personalEmail/address"),
        (Ident("ECID", ECID), False, "ambiguous", "/identityMap/ECID/0/id"),
    ]


def test_absent_descriptor_fields_and_no_identity_map_give_nothing():
    fields = (IdentityField(("personalEmail", "address"), "Email", True),)
    assert run({"personalEmail": "not an object"}, fields) == ([], [])
    assert run({}, fields) == ([], [])
    assert run({"identityMap": None}) == ([], [])
    assert run(imap()) == ([], [])


def test_emails_are_normalised_then_deduplicated_primary_if_any_occurrence_is():
    fields = (IdentityField(("personalEmail", "address"), "Email", False),)
    entity = {"personalEmail": {"address": " ANN@b.c "},
              **imap(ECID=[item(ECID)], Email=[item("ann@B.C", primary=True, state="authenticated"),
                                               item("Ann@b.c")])}
    found, violations = run(entity, fields)
    assert violations == []
    assert found == [Found(Ident("Email", "ann@b.c"), True, "authenticated", "/personalEmail/address"),
                     Found(Ident("ECID", ECID), False, "ambiguous", "/identityMap/ECID/0/id")]


def test_non_email_values_are_case_sensitive_and_exact_duplicates_count_once():
    found, violations = run(imap(CRMID=[item("Abc"), item("abc"), item("Abc")]))
    assert violations == []
    assert [f.ident.value for f in found] == ["Abc", "abc"]


@pytest.mark.parametrize("value", ["", "  ", "null", "NULL", "anonymous", "invalid", "x" * 1025, 5])
def test_a_bad_identity_map_value_is_a_violation_at_its_pointer(value):
    found, violations = run(imap(ECID=[item(ECID)], CRMID=[item("ok"), item(value)]))
    assert pointers(violations) == ["/identityMap/CRMID/1/id"]
    assert violations[0]["keyword"] == "identity" and violations[0]["schemaLocation"] == "#"
    assert [f.ident.value for f in found] == [ECID, "ok"]  # the caller discards the record anyway


@pytest.mark.parametrize("value", ["1" * 37, "1" * 39, "1" * 37 + "x"])
def test_a_malformed_ecid_is_a_violation(value):
    _, violations = run(imap(ECID=[item(value)]))
    assert pointers(violations) == ["/identityMap/ECID/0/id"]
    assert "38 digits" in violations[0]["message"]


def test_a_bad_descriptor_field_value_is_a_violation_at_the_field():
    fields = (IdentityField(("personalEmail", "address"), "Email", True),)
    _, violations = run({"personalEmail": {"address": "anonymous"}}, fields)
    assert pointers(violations) == ["/personalEmail/address"]


def test_malformed_identity_map_items_are_violations():
    _, violations = run(imap(CRMID=[{"primary": True}, "c-1"], Email="a@b.c"))
    assert pointers(violations) == ["/identityMap/CRMID/0/id", "/identityMap/CRMID/1", "/identityMap/Email"]
    _, violations = run({"identityMap": ["a"]})
    assert pointers(violations) == ["/identityMap"]


def test_an_unknown_namespace_is_a_violation_that_says_how_to_create_it():
    found, violations = run(imap(Loyalty=[item("L1")], ECID=[item(ECID)]))
    assert pointers(violations) == ["/identityMap/Loyalty"]
    assert "unknown identity namespace 'Loyalty'" in violations[0]["message"]
    assert "POST /identity/namespaces" in violations[0]["message"]
    assert [f.ident for f in found] == [Ident("ECID", ECID)]


def test_a_wrong_case_namespace_gets_a_hint_and_a_descriptor_namespace_must_exist_too():
    _, violations = run(imap(email=[item("a@b.c")]))
    assert "did you mean 'Email'" in violations[0]["message"]
    fields = (IdentityField(("loyaltyId",), "Loyalty", True),)
    _, violations = run({"loyaltyId": "L1"}, fields)
    assert pointers(violations) == ["/loyaltyId"]
    assert "unknown identity namespace" in violations[0]["message"]


def test_a_namespace_code_with_a_slash_is_escaped_in_the_pointer():
    _, violations = run(imap(**{"a/b": [item("x")]}))
    assert pointers(violations) == ["/identityMap/a~1b"]


def test_more_than_twenty_identities_is_one_violation_and_twenty_is_fine():
    found, violations = run(imap(CRMID=[item(f"c-{i}") for i in range(20)]))
    assert violations == [] and len(found) == 20
    found, violations = run(imap(CRMID=[item(f"c-{i}") for i in range(21)]))
    assert pointers(violations) == ["/identityMap"]
    assert "21" in violations[0]["message"] and "20" in violations[0]["message"]
    # duplicates are counted once
    found, violations = run(imap(CRMID=[item(f"c-{i % 20}") for i in range(40)]))
    assert violations == [] and len(found) == 20


def test_a_record_linking_more_than_the_graph_limit_at_once_is_a_violation():
    entity = imap(CRMID=[item(f"c-{i}") for i in range(6)])
    _, violations = run(entity, max_per_record=10, graph_limit=5)
    assert len(violations) == 1 and "graph limit of 5" in violations[0]["message"]
    _, violations = run(entity, max_per_record=5, graph_limit=5)
    assert len(violations) == 2
    fields = tuple(IdentityField((f"f{i}",), "CRMID", False) for i in range(3))
    _, violations = run({f"f{i}": f"v{i}" for i in range(3)}, fields, max_per_record=2)
    assert pointers(violations) == [""]  # no identityMap: the record itself


def test_two_different_primaries_are_a_violation_at_the_second():
    found, violations = run(imap(ECID=[item(ECID, primary=True)], CRMID=[item("c-1", primary=True)]))
    assert pointers(violations) == ["/identityMap/CRMID/0/primary"]
    assert "ECID" in violations[0]["message"] and "/identityMap/ECID/0/id" in violations[0]["message"]
    assert found[0].ident == Ident("ECID", ECID)
    fields = (IdentityField(("_acme", "crmId"), "CRMID", True),)
    _, violations = run({"_acme": {"crmId": "c-1"}, **imap(ECID=[item(ECID, primary=True)])}, fields)
    assert pointers(violations) == ["/identityMap/ECID/0/primary"]


def test_the_same_primary_twice_is_one_primary():
    fields = (IdentityField(("_acme", "crmId"), "CRMID", True),)
    found, violations = run({"_acme": {"crmId": "c-1"}, **imap(CRMID=[item("c-1", primary=True)])}, fields)
    assert violations == []
    assert found == [Found(Ident("CRMID", "c-1"), True, "ambiguous", "/_acme/crmId")]


def test_primary_must_be_true_not_truthy():
    found, violations = run(imap(ECID=[item(ECID)], CRMID=[{"id": "c-1", "primary": "true"}]))
    assert violations == [] and found[0].ident.ns == "ECID"


def test_every_problem_of_a_record_is_reported():
    _, violations = run(imap(Foo=[item("x")], ECID=[item("123")], Email=[item("null")]))
    assert pointers(violations) == ["/identityMap/Foo", "/identityMap/ECID/0/id", "/identityMap/Email/0/id"]
    assert {v["keyword"] for v in violations} == {"identity"}


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["CRMID", "Email", "ECID", "Phone"]),
       st.one_of(st.text(max_size=14), st.text(alphabet=" \t\n\u00a0\u3000nulLanoymsivdNUL0123456789", max_size=14),
                 st.from_regex(r"[ \t]*[0-9]{38}[ \t]*", fullmatch=True), st.text(min_size=1020, max_size=1030)))
def test_extract_refuses_exactly_what_check_value_refuses(ns, value):
    # extract decides the common case inline; it must agree with the full rules on every value
    _, violations = run(imap(**{ns: [item(value)]}))
    assert bool(violations) == (check_value(ns, value) is not None)
