"""Data governance: labels, marketing actions, policies, field labels and evaluation.

The pure parts (evaluation, deny-expression checks, field paths) are tested directly, with a
property test; the rest through the API on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.platform.profiling import FG_PERSON, setup_profiles
from wayline.kernel.problems import Problem
from wayline.platform.governance import checks, core, fields
from wayline.platform.governance.evaluate import closure, evaluate, holds
from wayline.platform.governance.model import Policy

G = "/dulepolicy"
KNOWN = set(core.LABELS_BY_NAME)


def _policy(deny: dict, action: str = "emailTargeting", status: str = "ENABLED", pid: str = "p1") -> Policy:
    return Policy(pid, pid, "", status, (f"{G}/marketingActions/core/{action}",), deny)


def _pointers(r) -> list[str]:
    return [e["pointer"] for e in r.json().get("errors", [])]


# -- pure: evaluation -------------------------------------------------------------------------------

def test_c4_implies_c5_c6_c7_and_nothing_else_does():
    assert closure(["C4"]) == {"C4", "C5", "C6", "C7"}
    assert closure(["C5", "I1"]) == {"C5", "I1"}
    assert closure([]) == frozenset()


def test_a_policy_is_violated_only_when_enabled_for_the_action_and_its_expression_holds():
    deny = {"operator": "OR", "operands": [{"label": "C5"}]}
    on = _policy(deny, "crossSiteTargeting")
    ref = f"{G}/marketingActions/core/crossSiteTargeting"
    # C4 implies C5: the C5 policy is violated by data labelled only C4
    ev = evaluate(ref, ["C4"], [on])
    assert [p.id for p in ev.violated_policies] == ["p1"] and not ev.allowed
    assert ev.to_api()["duleLabels"] == ["C4", "C5", "C6", "C7"]
    assert ev.to_api()["violatedPolicies"][0]["matchedLabels"] == ["C5"]
    assert evaluate(ref, ["C3"], [on]).allowed
    assert evaluate(f"{G}/marketingActions/core/analytics", ["C4"], [on]).allowed  # another action
    for status in ("DISABLED", "DRAFT"):
        assert evaluate(ref, ["C4"], [_policy(deny, "crossSiteTargeting", status)]).allowed
    assert not evaluate(ref, ["C4"], [_policy(deny, "crossSiteTargeting", "DRAFT")], include_draft=True).allowed


def test_nested_and_or_expressions():
    deny = {"operator": "AND", "operands": [{"label": "I1"},
                                            {"operator": "OR", "operands": [{"label": "C2"}, {"label": "C12"}]}]}
    assert holds(deny, frozenset({"I1", "C12"}))
    assert holds(deny, frozenset({"I1", "C2", "S1"}))
    assert not holds(deny, frozenset({"I1"}))
    assert not holds(deny, frozenset({"C2", "C12"}))


_leaf = st.sampled_from(["C1", "C2", "C4", "C5", "I1", "S1"]).map(lambda x: {"label": x})
_expr = st.recursive(_leaf, lambda inner: st.builds(
    lambda op, xs: {"operator": op, "operands": xs}, st.sampled_from(["AND", "OR"]),
    st.lists(inner, min_size=1, max_size=3)), max_leaves=8)
_labels = st.frozensets(st.sampled_from(["C1", "C2", "C3", "C4", "C5", "C7", "I1", "I2", "S1"]))


@given(_expr, _labels, _labels)
def test_more_labels_never_lift_a_violation(expr, a, b):
    # AND/OR without negation is monotone: adding labels to data can only add violations.
    assert checks.check_deny(expr, KNOWN) == []
    if holds(expr, closure(a)):
        assert holds(expr, closure(a | b))


@given(_labels)
def test_closure_is_idempotent_and_contains_its_input(labels):
    assert closure(closure(labels)) == closure(labels) >= labels


# -- pure: checks and field paths -------------------------------------------------------------------

def test_malformed_deny_trees_name_each_place():
    errs = checks.check_deny({"operator": "XOR", "operands": [{"label": "C1"}, {"label": "nope"},
                                                              {"operator": "AND", "operands": []},
                                                              {"label": "c2"}, "C3", {"label": "C1", "x": 1}]},
                             KNOWN)
    by = {e.pointer: e.detail for e in errs}
    assert set(by) == {"/deny/operator", "/deny/operands/1/label", "/deny/operands/2/operands",
                       "/deny/operands/3/label", "/deny/operands/4", "/deny/operands/5/x"}
    assert "did you mean 'C2'" in by["/deny/operands/3/label"]  # labels are case-sensitive
    assert [e.pointer for e in checks.check_deny(None, KNOWN)] == ["/deny"]
    assert [e.pointer for e in checks.check_deny({"operator": "OR"}, KNOWN)] == ["/deny/operands"]
    deep: dict = {"label": "C1"}
    for _ in range(12):
        deep = {"operator": "AND", "operands": [deep]}
    assert any("nest" in e.detail for e in checks.check_deny(deep, KNOWN))


def test_field_paths_in_every_spelling():
    tree = {"properties": {
        "person": {"properties": {"name": {"properties": {"firstName": {"type": "string"}}}}},
        "identityMap": {"additionalProperties": {"type": "array", "items": {"properties": {"id": {}}}}},
        "push": {"type": "array", "items": {"properties": {"token": {"type": "string"}}}}}}
    for spelling in ("/person/name/firstName", "person.name.firstName", ("person", "name", "firstName"),
                     "/properties/person/properties/name/properties/firstName"):
        assert fields.canonical(tree, fields.parse(spelling)) == ("person", "name", "firstName")
    assert fields.canonical(tree, fields.parse("/identityMap/Email/0/id")) == ("identityMap", "*", "id")
    assert fields.canonical(tree, fields.parse("identityMap.Email[0].id")) == ("identityMap", "*", "id")
    assert fields.canonical(tree, fields.parse("/push/3/token")) == ("push", "token")
    assert fields.canonical(tree, fields.parse("/push/token")) == ("push", "token")
    assert fields.canonical(tree, fields.parse("/person/age")) is None
    with pytest.raises(ValueError):
        fields.parse("/")
    labelled = {("person",): frozenset({"I2"}), ("person", "name", "firstName"): frozenset({"I1"}),
                ("push",): frozenset({"C9"})}
    assert fields.labels_at(labelled, ("person", "name")) == {"I1", "I2"}  # ancestor and descendant
    assert fields.labels_at(labelled, ("identityMap",)) == frozenset()


# -- API: labels and marketing actions --------------------------------------------------------------

def test_core_vocabulary(client):
    labels = client.get(f"{G}/labels/core").json()["items"]
    assert [x["name"] for x in labels] == [f"C{i}" for i in range(1, 13)] + ["I1", "I2", "S1", "S2"]
    assert {x["category"] for x in labels} == {"Contract", "Identity", "Sensitive"}
    assert client.get(f"{G}/labels/core/C4").json()["friendlyName"] == "No targeting"
    assert client.get(f"{G}/labels/core/c4").status_code == 404
    actions = [a["name"] for a in client.get(f"{G}/marketingActions/core").json()["items"]]
    assert len(actions) == 10 and "singleIdentityPersonalization" in actions
    policies = client.get(f"{G}/policies/core").json()["items"]
    assert policies and {p["status"] for p in policies} == {"DISABLED"} and all(p["core"] for p in policies)


def test_custom_labels(client, key_of):
    r = client.post(f"{G}/labels/custom", json={"name": "PII_Partner", "friendlyName": "Partner PII",
                                                "description": "from partners"})
    assert r.status_code == 201, r.text
    assert r.json()["category"] == "Custom" and r.headers["ETag"] == '"1"'
    assert r.headers["Location"] == f"{G}/labels/custom/PII_Partner"
    for name in ("pii_partner", "c1", "C12"):  # unique ignoring case, core names included
        dup = client.post(f"{G}/labels/custom", json={"name": name})
        assert dup.status_code == 409 and _pointers(dup) == ["/name"], dup.text
    bad = client.post(f"{G}/labels/custom", json={"name": "has space", "category": "Contract", "x": 1})
    assert bad.status_code == 422 and set(_pointers(bad)) == {"/name", "/category", "/x"}
    put = client.put(f"{G}/labels/custom/PII_Partner", json={"friendlyName": "Partner data"},
                     headers={"If-Match": '"1"'})
    assert put.status_code == 200 and put.json()["friendlyName"] == "Partner data" and put.json()["version"] == 2
    stale = client.put(f"{G}/labels/custom/PII_Partner", json={"friendlyName": "x"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    rename = client.put(f"{G}/labels/custom/PII_Partner", json={"name": "Other"})
    assert rename.status_code == 422 and _pointers(rename) == ["/name"]
    assert client.put(f"{G}/labels/custom/Nope", json={}).status_code == 404
    assert [x["name"] for x in client.get(f"{G}/labels/custom").json()["items"]] == ["PII_Partner"]
    reader = {"Authorization": f"Bearer {key_of('read')}"}
    assert client.get(f"{G}/labels/custom/PII_Partner", headers=reader).status_code == 200
    assert client.post(f"{G}/labels/custom", json={"name": "X"}, headers=reader).status_code == 403
    assert client.delete(f"{G}/labels/custom/PII_Partner", headers=reader).status_code == 403
    assert client.delete(f"{G}/labels/custom/PII_Partner").status_code == 204
    assert client.get(f"{G}/labels/custom/PII_Partner").status_code == 404
    audit = client.get("/audit", params={"resourceType": "label"}).json()["items"]
    assert [a["action"] for a in audit] == ["delete", "update", "create"]


def test_custom_marketing_actions(client):
    r = client.post(f"{G}/marketingActions/custom", json={"name": "smsTargeting", "description": "SMS"})
    assert r.status_code == 201, r.text
    assert r.json()["ref"] == f"{G}/marketingActions/custom/smsTargeting"
    assert client.post(f"{G}/marketingActions/custom", json={"name": "EmailTargeting"}).status_code == 409
    assert client.get(f"{G}/marketingActions/custom/smsTargeting").json()["description"] == "SMS"
    assert client.get(f"{G}/marketingActions/core/smsTargeting").status_code == 404
    up = client.put(f"{G}/marketingActions/custom/smsTargeting", json={"name": "smsTargeting", "description": "x"})
    assert up.status_code == 200 and up.json()["version"] == 2
    assert client.delete(f"{G}/marketingActions/custom/smsTargeting", headers={"If-Match": '"1"'}).status_code == 412
    assert client.delete(f"{G}/marketingActions/custom/smsTargeting").status_code == 204


# -- API: policies ------------------------------------------------------------------------------------

def _deny(*labels: str, op: str = "OR") -> dict:
    return {"operator": op, "operands": [{"label": x} for x in labels]}


def test_custom_policies_start_disabled_and_are_checked(client):
    body = {"name": "No partner data in email", "marketingActionRefs": ["emailTargeting"],
            "deny": _deny("C2", "I1", op="AND"), "status": "ENABLED"}
    r = client.post(f"{G}/policies/custom", json=body)
    assert r.status_code == 201, r.text
    p = r.json()
    assert p["status"] == "DISABLED"  # every policy starts disabled, whatever was posted
    assert p["marketingActionRefs"] == [f"{G}/marketingActions/core/emailTargeting"]
    assert r.headers["Location"] == f"{G}/policies/custom/{p['id']}"
    draft = client.post(f"{G}/policies/custom", json={**body, "status": "DRAFT"}).json()
    assert draft["status"] == "DRAFT"
    bad = client.post(f"{G}/policies/custom", json={
        "name": "", "status": "ON", "marketingActionRefs": ["emailTargeting", "nope", f"{G}/marketingActions/custom/x"],
        "deny": {"operator": "OR", "operands": [{"label": "C1"}, {"label": "Z9"}, {"operator": "NOT", "operands": []}]}})
    assert bad.status_code == 422
    assert set(_pointers(bad)) == {"/name", "/status", "/marketingActionRefs/1", "/marketingActionRefs/2",
                                   "/deny/operands/1/label", "/deny/operands/2/operator",
                                   "/deny/operands/2/operands"}, bad.text
    assert bad.headers["content-type"] == "application/problem+json"
    assert client.post(f"{G}/policies/custom", json={**body, "marketingActionRefs": []}).status_code == 422
    # enable by JSON Patch, then by merge patch; replace by PUT; If-Match guards
    pid = p["id"]
    on = client.patch(f"{G}/policies/custom/{pid}", json=[{"op": "replace", "path": "/status", "value": "ENABLED"}],
                      headers={"If-Match": '"1"'})
    assert on.status_code == 200 and on.json()["status"] == "ENABLED" and on.headers["ETag"] == '"2"'
    assert client.patch(f"{G}/policies/custom/{pid}", json={"status": "DISABLED"},
                        headers={"If-Match": '"1"'}).status_code == 412
    broken = client.patch(f"{G}/policies/custom/{pid}", json={"deny": {"operator": "OR", "operands": []}})
    assert broken.status_code == 422 and _pointers(broken) == ["/deny/operands"]
    put = client.put(f"{G}/policies/custom/{pid}", json={**on.json(), "name": "renamed"})  # GET → edit → PUT
    assert put.status_code == 200 and put.json()["name"] == "renamed" and put.json()["status"] == "ENABLED"
    listed = client.get(f"{G}/policies/custom", params={"status": "ENABLED"}).json()["items"]
    assert [x["id"] for x in listed] == [pid]
    # a label or action a policy uses cannot be deleted
    client.post(f"{G}/labels/custom", json={"name": "Partner"})
    client.post(f"{G}/marketingActions/custom", json={"name": "smsTargeting"})
    client.put(f"{G}/policies/custom/{pid}", json={**body, "marketingActionRefs": ["smsTargeting"],
                                                    "deny": _deny("Partner")})
    used = client.delete(f"{G}/labels/custom/Partner")
    assert used.status_code == 409 and used.json()["usedBy"] == [f"policy {pid}"]
    assert client.delete(f"{G}/marketingActions/custom/smsTargeting").status_code == 409
    assert client.delete(f"{G}/policies/custom/{pid}").status_code == 204
    assert client.delete(f"{G}/labels/custom/Partner").status_code == 204
    assert client.get(f"{G}/policies/custom/{pid}").status_code == 404
    actions = [a["action"] for a in client.get("/audit", params={"resourceType": "policy"}).json()["items"]]
    assert actions[0] == "delete" and "enable" in actions and actions[-1] == "create"


def test_core_policies_are_enabled_per_sandbox(client, other_sandbox_key):
    pid = "core-restrict-email-targeting"
    r = client.patch(f"{G}/policies/core/{pid}", json={"status": "ENABLED"})
    assert r.status_code == 200 and r.json()["status"] == "ENABLED", r.text
    assert client.get(f"{G}/policies/core/{pid}").json()["status"] == "ENABLED"
    dev = {"Authorization": f"Bearer {other_sandbox_key}"}
    assert client.get(f"{G}/policies/core/{pid}", headers=dev).json()["status"] == "DISABLED"
    off = client.patch(f"{G}/policies/core/{pid}", json=[{"op": "replace", "path": "/status", "value": "DISABLED"}])
    assert off.json()["status"] == "DISABLED"
    bad = client.patch(f"{G}/policies/core/{pid}", json={"status": "ENABLED", "deny": {}})
    assert bad.status_code == 422 and _pointers(bad) == ["/deny"]
    assert client.patch(f"{G}/policies/core/{pid}", json={"status": "on"}).status_code == 422
    assert client.patch(f"{G}/policies/core/nope", json={"status": "ENABLED"}).status_code == 404
    audit = client.get("/audit", params={"resourceType": "corePolicy"}).json()["items"]
    assert [a["action"] for a in audit] == ["disable", "enable"]


# -- API: evaluation ------------------------------------------------------------------------------------

def test_evaluation_by_labels(client):
    url = f"{G}/marketingActions/core/crossSiteTargeting/constraints"
    before = client.get(url, params={"duleLabels": "C4"}).json()
    assert before["violatedPolicies"] == [] and before["duleLabels"] == ["C4", "C5", "C6", "C7"]
    client.patch(f"{G}/policies/core/core-restrict-cross-site-targeting", json={"status": "ENABLED"})
    after = client.get(url, params={"duleLabels": "C4,I1"}).json()
    assert [p["id"] for p in after["violatedPolicies"]] == ["core-restrict-cross-site-targeting"]
    assert after["marketingActionRef"] == f"{G}/marketingActions/core/crossSiteTargeting"
    assert client.get(url, params={"duleLabels": "C1"}).json()["violatedPolicies"] == []
    unknown = client.get(url, params={"duleLabels": "C1,c5"})
    assert unknown.status_code == 422 and _pointers(unknown) == ["query:/duleLabels/1"]
    assert client.get(f"{G}/marketingActions/core/nope/constraints").status_code == 404
    # a custom action with a draft policy: counted only when drafts are asked for
    client.post(f"{G}/marketingActions/custom", json={"name": "smsTargeting"})
    client.post(f"{G}/policies/custom", json={"name": "sms", "status": "DRAFT",
                                               "marketingActionRefs": [f"{G}/marketingActions/custom/smsTargeting"],
                                               "deny": _deny("S1")})
    sms = f"{G}/marketingActions/custom/smsTargeting/constraints"
    assert client.get(sms, params={"duleLabels": "S1"}).json()["violatedPolicies"] == []
    drafted = client.get(sms, params={"duleLabels": "S1", "includeDraft": "true"}).json()
    assert [p["name"] for p in drafted["violatedPolicies"]] == ["sms"]


def _labelled_setup(client):
    s = setup_profiles(client)
    r = client.patch(f"/catalog/dataSets/{s.crm}", json={"labels": ["C2"]})
    assert r.status_code == 200, r.text
    fg = client.put(f"{G}/fieldLabels/{quote(FG_PERSON, safe='')}", json={"labels": {"/person/name": ["I1"]}})
    assert fg.status_code == 200, fg.text
    sc = client.put(f"{G}/fieldLabels/{quote(s.profile_schema, safe='')}",
                    json={"labels": {"personalEmail.address": ["I1"], "/homeAddress": ["S2"]}})
    assert sc.status_code == 200, sc.text
    return s


def test_field_labels(client):
    s = _labelled_setup(client)
    fg = client.get(f"{G}/fieldLabels/{quote(FG_PERSON, safe='')}")
    assert fg.json()["labels"] == {"/person/name": ["I1"]} and fg.headers["ETag"] == '"1"'
    view = client.get(f"{G}/fieldLabels/{quote(s.profile_schema, safe='')}").json()
    assert view["labels"] == {"/homeAddress": ["S2"], "/personalEmail/address": ["I1"]}
    assert view["fieldGroups"] == [{"resource": FG_PERSON, "labels": {"/person/name": ["I1"]}}]
    assert view["effectiveLabels"] == {"/homeAddress": ["S2"], "/person/name": ["I1"],
                                       "/personalEmail/address": ["I1"]}
    listed = client.get(f"{G}/fieldLabels").json()["items"]
    assert {x["resource"] for x in listed} == {FG_PERSON, s.profile_schema}
    bad = client.put(f"{G}/fieldLabels/{quote(s.profile_schema, safe='')}",
                     json={"labels": {"/person/name": ["I1", "Q7"], "/person/shoeSize": ["I2"], "/": ["I1"]}})
    assert bad.status_code == 422
    assert set(_pointers(bad)) == {"/labels/~1person~1name/1", "/labels/~1person~1shoeSize", "/labels/~1"}
    stale = client.put(f"{G}/fieldLabels/{quote(FG_PERSON, safe='')}", json={"labels": {}},
                       headers={"If-Match": '"7"'})
    assert stale.status_code == 412
    assert client.get(f"{G}/fieldLabels/{quote('https://example.com/nope', safe='')}").status_code == 404
    # a label used on a field cannot be deleted
    client.post(f"{G}/labels/custom", json={"name": "Loyalty"})
    client.put(f"{G}/fieldLabels/{quote(s.profile_schema, safe='')}", json={"labels": {"/_wayline/points": ["Loyalty"]}})
    assert client.delete(f"{G}/labels/custom/Loyalty").status_code == 409
    assert client.get("/audit", params={"resourceType": "fieldLabels"}).json()["items"][0]["after"] == {
        "/_wayline/points": ["Loyalty"]}


def test_evaluation_by_entities(client):
    s = _labelled_setup(client)
    policy = client.post(f"{G}/policies/custom", json={
        "name": "No identifiable partner data out", "marketingActionRefs": ["exportToThirdParty"],
        "deny": {"operator": "AND", "operands": [{"label": "I1"}, {"operator": "OR", "operands": [
            {"label": "C2"}, {"label": "C12"}]}]}}).json()
    client.patch(f"{G}/policies/custom/{policy['id']}", json={"status": "ENABLED"})
    url = f"{G}/marketingActions/core/exportToThirdParty/constraints"
    # the whole CRM dataset: its C2 and its schema's I1 fields
    r = client.post(url, json=[{"entityType": "dataSet", "entityId": s.crm}])
    assert r.status_code == 200, r.text
    out = r.json()
    assert [p["id"] for p in out["violatedPolicies"]] == [policy["id"]]
    assert out["violatedPolicies"][0]["matchedLabels"] == ["C2", "I1"]
    found = out["discoveredLabels"][0]
    assert found["entityType"] == "dataSet" and found["labels"] == ["C2", "I1", "S2"]
    assert found["dataSetLabels"]["dataSet"]["labels"] == ["C2"]
    assert {"path": "/person/name", "labels": ["I1"]} in found["dataSetLabels"]["fields"]
    # only some fields of it: loyalty points carry no I1
    some = client.post(url, json=[{"entityType": "dataSet", "entityId": s.crm,
                                   "entityMeta": {"fields": ["/_wayline/points"]}}]).json()
    assert some["violatedPolicies"] == [] and some["duleLabels"] == ["C2"]
    # a field of the dataset (dataset labels apply) and of the loyalty dataset (no C2 there)
    one = client.post(url, json=[{"entityType": "field", "entityId": s.crm, "path": "/person/name/firstName"}]).json()
    assert one["duleLabels"] == ["C2", "I1"] and len(one["violatedPolicies"]) == 1
    other = client.post(url, json=[{"entityType": "field", "entityId": s.loyalty, "path": "person.name"}]).json()
    assert other["duleLabels"] == ["I1"] and other["violatedPolicies"] == []
    # a field of a schema, plus labels, in the object form
    mixed = client.post(url, json={"labels": ["C12"], "entityList": [
        {"entityType": "field", "entityId": s.profile_schema, "path": "/personalEmail/address"}]}).json()
    assert mixed["duleLabels"] == ["C12", "I1"] and len(mixed["violatedPolicies"]) == 1
    bad = client.post(url, json=[{"entityType": "journey", "entityId": "x"},
                                 {"entityType": "field", "entityId": s.crm},
                                 {"entityType": "field", "entityId": s.crm, "path": "/person/shoeSize"}])
    assert bad.status_code == 422 and set(_pointers(bad)) == {"/0/entityType", "/1/path"}
    unknown_field = client.post(url, json=[{"entityType": "field", "entityId": s.crm, "path": "/person/shoeSize"}])
    assert unknown_field.status_code == 422 and _pointers(unknown_field) == ["/0/path"]
    missing = client.post(url, json=[{"entityType": "dataSet", "entityId": "ds_nope"}])
    assert missing.status_code == 404 and _pointers(missing) == ["/0/entityId"]


def test_bulk_evaluation(client):
    s = _labelled_setup(client)
    client.patch(f"{G}/policies/core/core-restrict-data-export", json={"status": "ENABLED"})
    client.patch(f"{G}/policies/core/core-restrict-email-targeting", json={"status": "ENABLED"})
    ok = client.post(f"{G}/bulk-eval", json=[
        {"evalRef": f"https://wayline.example{G}/marketingActions/core/exportToThirdParty/constraints",
         "entityList": [{"entityType": "dataSet", "entityId": s.crm}]},
        {"marketingActionRef": f"{G}/marketingActions/core/emailTargeting", "labels": ["C4"]},
        {"marketingAction": "emailTargeting", "labels": ["C5"]},
    ])
    assert ok.status_code == 200, ok.text
    items = ok.json()["items"]
    assert [[p["id"] for p in x["violatedPolicies"]] for x in items] == [
        ["core-restrict-data-export"], ["core-restrict-email-targeting"], []]
    mixed = client.post(f"{G}/bulk-eval", json=[
        {"marketingAction": "emailTargeting", "labels": ["C4"]},
        {"marketingAction": "nope", "labels": []},
        {"marketingAction": "emailTargeting", "labels": ["C4", "bad"]},
        {"labels": ["C1"]},
        {"marketingAction": "analytics", "entityList": [{"entityType": "dataSet", "entityId": "ds_nope"}]},
    ])
    assert mixed.status_code == 207
    got = mixed.json()["items"]
    assert [x["status"] for x in got] == [200, 404, 422, 422, 404]
    assert got[2]["errors"][0]["pointer"] == "/2/labels/1"
    assert got[3]["errors"][0]["pointer"] == "/3"
    assert got[4]["errors"][0]["pointer"] == "/4/entityList/0/entityId"
    assert client.post(f"{G}/bulk-eval", json=[]).status_code == 422
    assert client.post(f"{G}/bulk-eval", json={"x": 1}).status_code == 422


def test_another_sandbox_sees_none_of_it(client, other_sandbox_key):
    s = _labelled_setup(client)
    client.post(f"{G}/labels/custom", json={"name": "ProdOnly"})
    client.post(f"{G}/marketingActions/custom", json={"name": "prodAction"})
    pid = client.post(f"{G}/policies/custom", json={"name": "p", "marketingActionRefs": ["prodAction"],
                                                     "deny": _deny("ProdOnly")}).json()["id"]
    dev = {"Authorization": f"Bearer {other_sandbox_key}"}
    for method, url in [("GET", f"{G}/labels/custom/ProdOnly"), ("PUT", f"{G}/labels/custom/ProdOnly"),
                        ("DELETE", f"{G}/labels/custom/ProdOnly"), ("GET", f"{G}/marketingActions/custom/prodAction"),
                        ("DELETE", f"{G}/marketingActions/custom/prodAction"),
                        ("GET", f"{G}/marketingActions/custom/prodAction/constraints"),
                        ("GET", f"{G}/policies/custom/{pid}"), ("PATCH", f"{G}/policies/custom/{pid}"),
                        ("DELETE", f"{G}/policies/custom/{pid}"),
                        ("GET", f"{G}/fieldLabels/{quote(s.profile_schema, safe='')}"),
                        ("PUT", f"{G}/fieldLabels/{quote(s.profile_schema, safe='')}")]:
        r = client.request(method, url, headers=dev, json={} if method in ("PUT", "PATCH") else None)
        assert r.status_code == 404, f"{method} {url}: {r.status_code} {r.text}"
    assert client.get(f"{G}/labels/custom", headers=dev).json()["items"] == []
    assert client.get(f"{G}/policies/custom", headers=dev).json()["items"] == []
    # prod's label is unknown in dev, and prod's datasets are not found
    used = client.post(f"{G}/labels/custom", headers=dev, json={"name": "prodonly"})
    assert used.status_code == 201  # names are per sandbox
    assert client.get(f"{G}/marketingActions/core/analytics/constraints", headers=dev,
                      params={"duleLabels": "ProdOnly"}).status_code == 422
    r = client.post(f"{G}/marketingActions/core/analytics/constraints", headers=dev,
                    json=[{"entityType": "dataSet", "entityId": s.crm}])
    assert r.status_code == 404
    r = client.post(f"{G}/marketingActions/core/analytics/constraints", headers=dev,
                    json=[{"entityType": "field", "entityId": s.profile_schema, "path": "/person/name"}])
    assert r.status_code == 404
    assert client.get(f"{G}/labels/custom/ProdOnly").status_code == 200  # prod unchanged


# -- the facade: what segments and journeys call ----------------------------------------------------------

def test_lineage_and_evaluation_through_the_facade(client, runtime):
    s = _labelled_setup(client)
    gov = runtime.governance
    sid = client.get("/sandbox").json()["sandbox"]["id"]
    run = asyncio.run
    by_schema = run(gov.labels_for_fields(sandbox_id=sid, schema_uri=s.profile_schema,
                                          paths=["/person/name/firstName", "person", ("homeAddress", "city"),
                                                 "/_wayline/points"]))
    assert by_schema == {"/person/name/firstName": {"I1"}, "person": {"I1"}, ("homeAddress", "city"): {"S2"},
                         "/_wayline/points": set()}
    by_dataset = run(gov.labels_for_fields(sandbox_id=sid, dataset_id=s.crm, paths=["/_wayline/points"]))
    assert by_dataset == {"/_wayline/points": {"C2"}}
    # the union a profile segment reads: the CRM dataset's C2 joins every field its schema has
    union = run(gov.labels_for_fields(sandbox_id=sid, schema_class="_xdm.context.profile",
                                      paths=[("person", "name", "lastName"), "/commerce/order", "/nope"]))
    assert union == {("person", "name", "lastName"): {"I1", "C2"}, "/commerce/order": set(), "/nope": set()}
    events = run(gov.labels_for_fields(sandbox_id=sid, schema_class="https://ns.adobe.com/xdm/context/experienceevent",
                                       paths=["/commerce/order/priceTotal"]))
    assert events == {"/commerce/order/priceTotal": set()}
    with pytest.raises(Problem) as unknown:
        run(gov.labels_for_fields(sandbox_id=sid, dataset_id=s.crm, paths=["/person/shoeSize"]))
    assert unknown.value.status == 422 and unknown.value.errors[0].pointer == "/paths/0"
    with pytest.raises(ValueError):
        run(gov.labels_for_fields(sandbox_id=sid, paths=["/person"]))

    client.patch(f"{G}/policies/core/core-restrict-data-export", json={"status": "ENABLED"})
    ev = run(gov.evaluate(sandbox_id=sid, action="exportToThirdParty", datasets=[s.loyalty],
                          fields=[{"datasetId": s.crm, "path": "/_wayline/points"}]))
    assert not ev.allowed and [p.id for p in ev.violated_policies] == ["core-restrict-data-export"]
    assert run(gov.evaluate(sandbox_id=sid, action="exportToThirdParty", labels=["I1"])).allowed
    seg = run(gov.evaluate(sandbox_id=sid, action=f"{G}/marketingActions/core/exportToThirdParty",
                           extra={"segment:seg-1": {"C12"}}))
    assert not seg.allowed and seg.to_api()["discoveredLabels"] == [
        {"entityType": "segment", "entityId": "seg-1", "labels": ["C12"]}]
    with pytest.raises(Problem) as missing:
        run(gov.evaluate(sandbox_id=sid, action="noSuchAction"))
    assert missing.value.status == 404
    assert run(gov.check_labels(sandbox_id=sid, labels=["C1", "C1", "I2"])) == ("C1", "I2")
    with pytest.raises(Problem) as bad:
        run(gov.check_labels(sandbox_id=sid, labels=["C1", "Q"]))
    assert bad.value.errors[0].pointer == "/labels/1"


def test_a_plugged_in_entity_type(client, runtime):
    segments = {"seg-1": ["C4"]}

    async def segment_labels(*, sandbox_id: str, entity_id: str):
        return segments.get(entity_id)

    runtime.governance.register_entity_type("segment", segment_labels)
    client.patch(f"{G}/policies/core/core-restrict-onsite-advertising", json={"status": "ENABLED"})
    url = f"{G}/marketingActions/core/onsiteAdvertising/constraints"
    r = client.post(url, json=[{"entityType": "segment", "entityId": "seg-1"}])
    assert r.status_code == 200, r.text
    assert [p["id"] for p in r.json()["violatedPolicies"]] == ["core-restrict-onsite-advertising"]  # C4 ⇒ C6
    missing = client.post(url, json=[{"entityType": "segment", "entityId": "seg-2"}])
    assert missing.status_code == 404 and _pointers(missing) == ["/0/entityId"]
