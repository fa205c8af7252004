"""Updates, If-Match, profile enablement and the additive-only rule, deletes of pieces in use."""

from __future__ import annotations

import copy

import sqlalchemy as sa

from tests.platform.schemas.conftest import (
    BASE,
    FG_CONTACT,
    FG_IDENTITY_MAP,
    FG_PERSON,
    PROFILE,
    enc,
    loyalty_fieldgroup,
    post,
    problem,
    schema_of,
)
from wayline.kernel.store import now_ms
from wayline.platform import tables as pt

ENABLE = [{"op": "add", "path": "/meta:immutableTags", "value": ["union"]}]


def _fields(fg: dict) -> dict:
    return fg["definitions"]["loyalty"]["properties"]["_wayline"]["properties"]


def _put(client, kind: str, res: dict, body: dict, **headers):
    return client.put(f"{BASE}/{kind}/{enc(res['$id'])}", json=body, headers=headers)


def enabled_profile_schema(client) -> tuple[dict, dict]:
    fg = post(client, "fieldgroups", loyalty_fieldgroup())
    schema = post(client, "schemas", schema_of("Members", PROFILE, FG_IDENTITY_MAP, FG_PERSON, fg["$id"]))
    r = client.patch(f"{BASE}/schemas/{schema['meta:altId']}", json=ENABLE)
    assert r.status_code == 200, r.text
    assert r.json()["meta:immutableTags"] == ["union"]
    return fg, r.json()


def test_put_replaces_a_definition_and_honours_if_match(client):
    fg = post(client, "fieldgroups", loyalty_fieldgroup())
    changed = loyalty_fieldgroup(loyaltyId={"type": "string"}, since={"type": "string", "format": "date"})
    p = problem(_put(client, "fieldgroups", fg, changed, **{"If-Match": '"7"'}), 412)
    assert p["type"].endswith("/precondition-failed")
    r = _put(client, "fieldgroups", fg, changed, **{"If-Match": '"1"'})
    assert r.status_code == 200 and r.json()["version"] == 2 and r.headers["etag"] == '"2"'
    assert "since" in _fields(client.get(f"{BASE}/fieldgroups/{fg['meta:altId']}").json())
    problem(_put(client, "fieldgroups", fg, changed, **{"If-Match": '"1"'}), 412)
    assert _put(client, "fieldgroups", fg, changed, **{"If-Match": "*"}).json()["version"] == 2  # no change
    problem(_put(client, "fieldgroups", fg, {**changed, "$id": "https://acme.example/other"}), 422)
    problem(client.put(f"{BASE}/fieldgroups/_wayline.fieldgroups.none", json=changed), 404)
    audit = client.get("/audit", params={"resourceType": "fieldgroup"}).json()["items"][0]
    assert audit["action"] == "update" and "since" not in str(audit["before"]) and "since" in str(audit["after"])


def test_a_get_view_can_be_put_back_unchanged(client):
    fg = post(client, "fieldgroups", loyalty_fieldgroup())
    got = client.get(f"{BASE}/fieldgroups/{fg['meta:altId']}")
    again = _put(client, "fieldgroups", fg, got.json(), **{"If-Match": got.headers["etag"]})
    assert again.status_code == 200 and again.json()["version"] == 1


def test_enabling_profile_needs_a_primary_identity(client):
    schema = post(client, "schemas", schema_of("People", PROFILE, FG_CONTACT))
    p = problem(client.patch(f"{BASE}/schemas/{schema['meta:altId']}", json=ENABLE), 422)
    assert "primary identity" in p["detail"]
    r = client.post("/schemaregistry/tenant/descriptors", json={
        "@type": "xdm:descriptorIdentity", "xdm:sourceSchema": schema["$id"],
        "xdm:sourceProperty": "/personalEmail/address", "xdm:namespace": "Email", "xdm:isPrimary": True})
    assert r.status_code == 201
    # The simple way: a merge patch.
    r = client.patch(f"{BASE}/schemas/{schema['meta:altId']}", json={"meta:immutableTags": ["union"]})
    assert r.status_code == 200 and r.json()["meta:immutableTags"] == ["union"]
    # The profile schema keeps its primary identity, and stays enabled.
    problem(client.delete(f"/schemaregistry/tenant/descriptors/{r.json() and _primary(client, schema)}"), 422)
    problem(client.patch(f"{BASE}/schemas/{schema['meta:altId']}", json={"meta:immutableTags": []}), 422)
    assert client.get("/audit", params={"resourceType": "schema"}).json()["items"][0]["action"] == "enable"
    fg = post(client, "fieldgroups", loyalty_fieldgroup())
    problem(client.patch(f"{BASE}/fieldgroups/{fg['meta:altId']}", json=ENABLE), 422)  # only schemas


def _primary(client, schema) -> str:
    return client.get("/schemaregistry/tenant/descriptors", params={"schema": schema["$id"]}).json()["items"][0]["@id"]


def test_a_profile_schema_refuses_each_breaking_change_to_a_field_group_it_uses(client, registry, sandbox_id):
    fg, schema = enabled_profile_schema(client)
    base = client.get(f"{BASE}/fieldgroups/{fg['meta:altId']}").json()
    cases = {
        "removed": (lambda f: f.pop("tier"), "/properties/_wayline/properties/tier", "was removed"),
        "retyped": (lambda f: f.update(points={"type": "string"}), "/properties/_wayline/properties/points",
                    "changed type"),
        "new required": (lambda f: f.update(since={"type": "string"}), "/properties/_wayline/required",
                         "became required"),
        "narrowed enum": (lambda f: f.update(tier={"type": "string", "enum": ["gold"]}),
                          "/properties/_wayline/properties/tier/enum", "removed"),
        "tighter minimum": (lambda f: f.update(points={"type": "integer", "minimum": 10}),
                            "/properties/_wayline/properties/points/minimum", "rose"),
    }
    for name, (change, where, words) in cases.items():
        body = copy.deepcopy(base)
        change(_fields(body))
        if name == "new required":
            body["definitions"]["loyalty"]["properties"]["_wayline"]["required"] = ["since"]
        p = problem(_put(client, "fieldgroups", fg, body), 422)
        assert where in {e["pointer"] for e in p["errors"]}, (name, p)
        assert words in p["detail"] and schema["$id"] in p["detail"], name
        assert p["brokenResource"] == schema["$id"]
    before = registry.compiled(sandbox_id, schema["$id"])
    additive = copy.deepcopy(base)
    _fields(additive).update(since={"type": "string", "format": "date"},
                             tier={"type": "string", "enum": ["gold", "silver", "bronze"]},
                             points={"type": "integer", "minimum": 0, "title": "Points balance"})
    r = _put(client, "fieldgroups", fg, additive, **{"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    after = registry.compiled(sandbox_id, schema["$id"])
    assert after.version == before.version + 1 and after is not before  # users of the piece get new versions
    assert after.validate({"_id": "p", "_wayline": {"since": "2024-02-29", "tier": "bronze"}}) == []


def test_a_profile_schema_refuses_breaking_changes_to_itself_and_its_data_types(client):
    dt = post(client, "datatypes", {"title": "Card", "properties": {"number": {"type": "string"},
                                                                    "expires": {"type": "string"}}})
    fg = post(client, "fieldgroups", loyalty_fieldgroup(card={"$ref": dt["$id"]}))
    schema = post(client, "schemas", schema_of("Card holders", PROFILE, FG_IDENTITY_MAP, FG_PERSON, fg["$id"]))
    assert client.patch(f"{BASE}/schemas/{schema['meta:altId']}", json=ENABLE).status_code == 200
    p = problem(_put(client, "datatypes", dt, {"title": "Card", "properties": {"number": {"type": "string"}}}), 422)
    assert p["errors"][0]["pointer"] == "/properties/_wayline/properties/card/properties/expires"
    # Dropping a field group from the schema removes its fields.
    p = problem(client.patch(f"{BASE}/schemas/{schema['meta:altId']}",
                             json=[{"op": "remove", "path": "/allOf/2"}]), 422)
    assert "/properties/person" in {e["pointer"] for e in p["errors"]}
    # Adding a field group is additive.
    r = client.patch(f"{BASE}/schemas/{schema['meta:altId']}",
                     json=[{"op": "add", "path": "/allOf/-", "value": {"$ref": FG_CONTACT}}])
    assert r.status_code == 200, r.text
    assert r.json()["meta:immutableTags"] == ["union"]
    problem(client.patch(f"{BASE}/schemas/{schema['meta:altId']}", json=[{"op": "bogus", "path": "/x"}]), 422)
    problem(client.patch(f"{BASE}/schemas/{schema['meta:altId']}", json=[{"op": "remove", "path": "/nope/x"}]), 422)


def test_schemas_not_enabled_for_profile_take_any_change(client):
    fg = post(client, "fieldgroups", loyalty_fieldgroup())
    post(client, "schemas", schema_of("Members", PROFILE, fg["$id"]))
    r = _put(client, "fieldgroups", fg, loyalty_fieldgroup(points={"type": "string"}))
    assert r.status_code == 200 and r.json()["version"] == 2


def test_a_change_that_breaks_a_schema_using_the_piece_is_refused_even_without_profile(client):
    fg = post(client, "fieldgroups", loyalty_fieldgroup())
    schema = post(client, "schemas", schema_of("Members", PROFILE, fg["$id"]))
    p = problem(_put(client, "fieldgroups", fg, {**loyalty_fieldgroup(), "meta:intendedToExtend": [
        "https://ns.adobe.com/xdm/context/experienceevent"]}), 422)
    assert schema["$id"] in p["detail"]
    d = client.post("/schemaregistry/tenant/descriptors", json={
        "@type": "xdm:descriptorIdentity", "xdm:sourceSchema": schema["$id"], "xdm:sourceProperty": "/_wayline/tier",
        "xdm:namespace": "Tier"})
    assert d.status_code == 201
    p = problem(_put(client, "fieldgroups", fg, loyalty_fieldgroup(loyaltyId={"type": "string"})), 422)
    assert "descriptor" in p["detail"]


def test_pieces_in_use_cannot_be_deleted(client, runtime, sandbox_id):
    fg = post(client, "fieldgroups", loyalty_fieldgroup())
    schema = post(client, "schemas", schema_of("Members", PROFILE, fg["$id"]))
    p = problem(client.delete(f"{BASE}/fieldgroups/{enc(fg['$id'])}"), 409)
    assert schema["$id"] in p["detail"] and p["usedBy"] == [schema["$id"]]
    runtime.store.run(lambda c: c.execute(pt.datasets.insert().values(
        id="ds_1", sandbox_id=sandbox_id, name="members", description="", schema_uri=schema["$id"],
        profile_enabled=False, labels=[], created_ms=now_ms(), updated_ms=now_ms())))
    p = problem(client.delete(f"{BASE}/schemas/{schema['meta:altId']}"), 409)
    assert "dataset ds_1" in p["detail"]
    runtime.store.run(lambda c: c.execute(sa.delete(pt.datasets)))
    problem(client.delete(f"{BASE}/schemas/{schema['meta:altId']}", headers={"If-Match": '"9"'}), 412)
    assert client.delete(f"{BASE}/schemas/{schema['meta:altId']}", headers={"If-Match": '"1"'}).status_code == 204
    assert client.delete(f"{BASE}/fieldgroups/{fg['meta:altId']}").status_code == 204
    problem(client.get(f"{BASE}/fieldgroups/{fg['meta:altId']}"), 404)
    problem(client.delete(f"{BASE}/fieldgroups/{fg['meta:altId']}"), 404)
    actions = [(a["action"], a["resourceType"]) for a in client.get("/audit").json()["items"][:2]]
    assert actions == [("delete", "fieldgroup"), ("delete", "schema")]


def test_a_class_named_by_a_field_group_cannot_be_deleted(client):
    cls = post(client, "classes", {"title": "Store", "allOf": [{"$ref": "https://ns.adobe.com/xdm/data/record"}]})
    fg = post(client, "fieldgroups", loyalty_fieldgroup(extends=[cls["$id"]]))
    p = problem(client.delete(f"{BASE}/classes/{cls['meta:altId']}"), 409)
    assert p["usedBy"] == [fg["$id"]] and p["type"].endswith("/in-use")
