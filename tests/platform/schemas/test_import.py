"""Importing classes, field groups, data types and schemas: ids, composition, and every refusal."""

from __future__ import annotations

import re

import sqlalchemy as sa

from tests.platform.schemas.conftest import (
    BASE,
    EVENT,
    FG_CONTACT,
    FG_PERSON,
    FG_WEB,
    LOOKUP,
    PROFILE,
    enc,
    loyalty_fieldgroup,
    post,
    problem,
    schema_of,
)
from wayline.kernel import tables as kt

UNSUPPORTED = ["if", "then", "else", "oneOf", "anyOf", "not", "patternProperties", "const", "dependencies",
               "propertyNames", "uniqueItems", "minItems", "contains", "$defs", "exclusiveMinimum"]


def test_created_pieces_get_tenant_ids_versions_and_etags(client):
    r = client.post(f"{BASE}/fieldgroups", json=loyalty_fieldgroup())
    assert r.status_code == 201, r.text
    fg = r.json()
    assert re.fullmatch(r"https://ns\.wayline\.dev/wayline/fieldgroups/[0-9a-f]{32}", fg["$id"])
    assert fg["meta:altId"] == "_wayline.fieldgroups." + fg["$id"].rsplit("/", 1)[1]
    assert fg["version"] == 1 and r.headers["etag"] == '"1"' and fg["meta:resourceType"] == "fieldgroups"
    assert r.headers["location"] == f"{BASE}/fieldgroups/{enc(fg['$id'])}"
    for ident in (enc(fg["$id"]), fg["meta:altId"]):
        got = client.get(f"{BASE}/fieldgroups/{ident}")
        assert got.status_code == 200 and got.json() == fg and got.headers["etag"] == '"1"'
    listed = client.get(f"{BASE}/fieldgroups").json()
    assert [i["$id"] for i in listed["items"]] == [fg["$id"]] and listed["next"] is None
    audit = client.get("/audit", params={"resourceType": "fieldgroup"}).json()["items"]
    assert audit[0]["action"] == "create" and audit[0]["after"]["$id"] == fg["$id"] and audit[0]["before"] is None


def test_import_with_definitions_allof_and_refs_to_data_types_composes_one_schema(client):
    address = post(client, "datatypes", {
        "$id": "https://acme.example/datatypes/store-address", "title": "Store address", "type": "object",
        "definitions": {"geo": {"properties": {"lat": {"type": "number", "minimum": -90, "maximum": 90},
                                               "lon": {"type": "number"}}}},
        "allOf": [{"$ref": "https://ns.adobe.com/xdm/common/address"}, {"$ref": "#/definitions/geo"}],
    })
    assert address["meta:altId"] == "_datatypes.store-address"
    fg = post(client, "fieldgroups", {
        "title": "Favourite store", "meta:intendedToExtend": [PROFILE],
        "definitions": {"store": {"properties": {"_wayline": {"type": "object", "properties": {
            "favouriteStore": {"title": "Favourite", "$ref": address["$id"]},
            "visits": {"type": "array", "items": {"type": "string", "format": "date-time"}},
            "scores": {"type": "object", "meta:xdmType": "map", "additionalProperties": {"type": "integer"}},
        }, "required": ["visits"]}}}},
        "allOf": [{"$ref": "#/definitions/store"}],
    })
    schema = post(client, "schemas", schema_of("Shoppers", PROFILE, FG_PERSON, fg["$id"]))
    assert schema["meta:extends"][:3] == [PROFILE, FG_PERSON, fg["$id"]] and address["$id"] in schema["meta:extends"]
    full = client.get(f"{BASE}/schemas/{schema['meta:altId']}", params={"full": "true"}).json()
    ns = full["properties"]["_wayline"]
    store = ns["properties"]["favouriteStore"]
    assert store["title"] == "Favourite" and store["additionalProperties"] is False
    assert set(store["properties"]) >= {"city", "countryCode", "lat", "lon"}
    assert store["properties"]["lat"] == {"type": "number", "minimum": -90, "maximum": 90}
    assert ns["required"] == ["visits"] and ns["properties"]["scores"]["additionalProperties"] == {"type": "integer"}
    assert full["required"] == ["_id"] and full["meta:class"] == PROFILE and full["additionalProperties"] is False
    assert "allOf" not in str(full) and "$ref" not in str(full)
    listed = client.get(f"{BASE}/schemas", headers={"Accept": "application/vnd.adobe.xed-full+json"}).json()
    assert listed["items"][0]["properties"]["_wayline"] == ns


def test_every_unsupported_keyword_is_refused_with_its_pointer(client):
    for keyword in UNSUPPORTED:
        body = loyalty_fieldgroup(tier={"type": "string", keyword: {}})
        p = problem(client.post(f"{BASE}/fieldgroups", json=body), 422)
        where = f"/definitions/loyalty/properties/_wayline/properties/tier/{keyword}"
        assert p["errors"] == [{"pointer": where, "detail": f"unsupported JSON Schema keyword '{keyword}'",
                                "expected": "a keyword the registry supports (see docs/schemas.md)"}], keyword
        assert keyword in p["detail"] and where in p["detail"]
    assert client.get(f"{BASE}/fieldgroups").json()["items"] == []


def test_bad_values_of_supported_keywords_are_refused_all_at_once(client):
    body = loyalty_fieldgroup(
        a={"type": "strung"}, b={"type": "string", "format": "credit-card"}, c={"type": "string", "pattern": "(["},
        d={"type": "integer", "minLength": 2}, e={"type": "array", "items": [{"type": "string"}]},
        f={"type": "object", "additionalProperties": True}, g={"type": "string", "enum": [1, 2]})
    p = problem(client.post(f"{BASE}/fieldgroups", json=body), 422)
    base = "/definitions/loyalty/properties/_wayline/properties"
    assert {e["pointer"] for e in p["errors"]} == {f"{base}/a/type", f"{base}/b/format", f"{base}/c/pattern",
                                                   f"{base}/d/minLength", f"{base}/e/items",
                                                   f"{base}/f/additionalProperties", f"{base}/g/enum"}
    problem(client.post(f"{BASE}/fieldgroups", json=[1]), 422)
    problem(client.post(f"{BASE}/fieldgroups", content=b"{", headers={"content-type": "application/json"}), 400)
    no_title = loyalty_fieldgroup()
    del no_title["title"]
    assert problem(client.post(f"{BASE}/fieldgroups", json=no_title), 422)["errors"][0]["pointer"] == "/title"


def test_unknown_refs_are_refused_naming_them(client):
    missing = "https://acme.example/datatypes/nope"
    body = loyalty_fieldgroup(home={"$ref": missing})
    p = problem(client.post(f"{BASE}/fieldgroups", json=body), 422)
    assert missing in p["detail"]
    assert p["errors"][0]["pointer"] == "/definitions/loyalty/properties/_wayline/properties/home/$ref"
    p = problem(client.post(f"{BASE}/schemas", json=schema_of("s", PROFILE, "https://acme.example/fg/x")), 422)
    assert p["errors"][0]["pointer"] == "/allOf/1/$ref" and "https://acme.example/fg/x" in p["detail"]
    p = problem(client.post(f"{BASE}/fieldgroups", json={**loyalty_fieldgroup(), "allOf": [{"$ref": "#/definitions/x"}]}),
                422)
    assert p["errors"][0]["pointer"] == "/allOf/0/$ref"


def test_refs_must_name_the_right_kind_of_piece(client):
    # A field can only reference a data type; a schema's allOf holds one class and field groups.
    p = problem(client.post(f"{BASE}/fieldgroups", json=loyalty_fieldgroup(x={"$ref": FG_PERSON})), 422)
    assert "field group" in p["detail"]
    p = problem(client.post(f"{BASE}/schemas", json=schema_of("s", PROFILE, EVENT)), 422)
    assert "exactly one class" in p["detail"]
    p = problem(client.post(f"{BASE}/schemas", json=schema_of("s", PROFILE, "https://ns.adobe.com/xdm/common/address")),
                422)
    assert p["errors"][0]["pointer"] == "/allOf/1/$ref"
    p = problem(client.post(f"{BASE}/schemas", json={"title": "no class", "allOf": [{"$ref": FG_PERSON}]}), 422)
    assert "class" in p["detail"]
    p = problem(client.post(f"{BASE}/schemas", json={**schema_of("s", PROFILE), "properties": {"x": {"type": "string"}}}),
                422)
    assert p["errors"][0]["pointer"] == "/properties"


def test_custom_fields_must_live_under_the_tenant_namespace(client):
    body = loyalty_fieldgroup()
    body["definitions"]["loyalty"]["properties"]["loyaltyId"] = {"type": "string"}
    p = problem(client.post(f"{BASE}/fieldgroups", json=body), 422)
    assert p["errors"][0]["pointer"] == "/properties/loyaltyId" and "_wayline" in p["detail"]
    # Other tenants' namespaces are custom fields too.
    body = loyalty_fieldgroup()
    body["definitions"]["loyalty"]["properties"]["_acme"] = {"type": "object", "properties": {"a": {"type": "string"}}}
    problem(client.post(f"{BASE}/fieldgroups", json=body), 422)
    # A custom field slipped into a standard object is refused; a standard field restated is fine.
    body = loyalty_fieldgroup()
    body["definitions"]["loyalty"]["properties"]["person"] = {"type": "object", "properties": {
        "name": {"type": "object", "properties": {"firstName": {"type": "string"}, "nickname": {"type": "string"}}}}}
    p = problem(client.post(f"{BASE}/fieldgroups", json=body), 422)
    assert p["errors"][0]["pointer"] == "/properties/person/properties/name/properties/nickname"
    del body["definitions"]["loyalty"]["properties"]["person"]["properties"]["name"]["properties"]["nickname"]
    post(client, "fieldgroups", body)
    body["definitions"]["loyalty"]["properties"]["person"]["properties"]["name"]["properties"]["firstName"] = {
        "type": "integer"}
    p = problem(client.post(f"{BASE}/fieldgroups", json=body), 422)
    assert "is a string, not a integer" in p["detail"]
    # Custom classes follow the same rule.
    cls = {"title": "Store", "allOf": [{"$ref": "https://ns.adobe.com/xdm/data/record"}, {"$ref": "#/definitions/s"}],
           "definitions": {"s": {"properties": {"storeName": {"type": "string"}}}}}
    problem(client.post(f"{BASE}/classes", json=cls), 422)
    cls["definitions"]["s"]["properties"] = {"_wayline": {"type": "object", "properties": {"storeName": {"type": "string"}}}}
    created = post(client, "classes", cls)
    assert created["meta:extends"] == ["https://ns.adobe.com/xdm/data/record"]


def test_a_class_needs_exactly_one_behavior(client):
    body = {"title": "Nothing", "definitions": {"s": {"properties": {"_wayline": {"type": "object", "properties": {
        "a": {"type": "string"}}}}}}, "allOf": [{"$ref": "#/definitions/s"}]}
    assert "behavior" in problem(client.post(f"{BASE}/classes", json=body), 422)["detail"]


def test_field_groups_only_extend_their_intended_classes(client):
    p = problem(client.post(f"{BASE}/schemas", json=schema_of("s", EVENT, FG_PERSON)), 422)
    assert p["errors"][0]["pointer"] == "/allOf/1/$ref" and "intended to extend" in p["detail"]
    fg = post(client, "fieldgroups", loyalty_fieldgroup(extends=[EVENT]))
    problem(client.post(f"{BASE}/schemas", json=schema_of("s", PROFILE, fg["$id"])), 422)
    post(client, "schemas", schema_of("s", EVENT, fg["$id"], FG_WEB))
    bad = loyalty_fieldgroup(extends=["https://acme.example/classes/none"])
    assert problem(client.post(f"{BASE}/fieldgroups", json=bad), 422)["errors"][0]["pointer"] == \
        "/meta:intendedToExtend/0"
    no_extends = loyalty_fieldgroup()
    del no_extends["meta:intendedToExtend"]
    problem(client.post(f"{BASE}/fieldgroups", json=no_extends), 422)


def test_conflicting_definitions_of_one_field_are_refused(client):
    a = post(client, "fieldgroups", loyalty_fieldgroup(points={"type": "integer"}))
    b = post(client, "fieldgroups", loyalty_fieldgroup(points={"type": "string"}))
    p = problem(client.post(f"{BASE}/schemas", json=schema_of("s", PROFILE, a["$id"], b["$id"])), 422)
    assert p["errors"][0]["pointer"] == "/properties/_wayline/properties/points/type"
    assert "_wayline.points" in p["detail"]


def test_circular_data_types_are_refused(client):
    a = post(client, "datatypes", {"$id": "https://acme.example/dt/a", "title": "A",
                                   "properties": {"x": {"type": "string"}}})
    b = post(client, "datatypes", {"$id": "https://acme.example/dt/b", "title": "B",
                                   "properties": {"a": {"$ref": a["$id"]}}})
    r = client.put(f"{BASE}/datatypes/{enc(a['$id'])}", json={"title": "A", "properties": {"b": {"$ref": b["$id"]}}})
    assert "circular" in problem(r, 422)["detail"]


def test_a_replayed_create_answers_the_existing_piece_and_a_different_body_conflicts(client):
    body = {**loyalty_fieldgroup(), "$id": "https://acme.example/fieldgroups/loyalty"}
    first = client.post(f"{BASE}/fieldgroups", json=body)
    again = client.post(f"{BASE}/fieldgroups", json=body)
    assert first.status_code == 201 and again.status_code == 200 and again.json() == first.json()
    assert len(client.get(f"{BASE}/fieldgroups").json()["items"]) == 1
    problem(client.post(f"{BASE}/fieldgroups", json={**body, "title": "Changed"}), 409)
    problem(client.post(f"{BASE}/datatypes", json={**body, "title": "Loyalty"}), 409)  # same $id, other kind
    problem(client.post(f"{BASE}/classes", json={**body, "$id": PROFILE}), 409)  # a standard $id
    reserved = {**body, "$id": "https://ns.adobe.com/xdm/context/mine"}
    problem(client.post(f"{BASE}/fieldgroups", json=reserved), 422)
    problem(client.post(f"{BASE}/fieldgroups", json={**body, "$id": "not a uri"}), 422)


def test_a_lookup_schema_on_the_record_class(client):
    fg = post(client, "fieldgroups", loyalty_fieldgroup(extends=[LOOKUP], sku={"type": "string"},
                                                        name={"type": "string"}))
    schema = post(client, "schemas", schema_of("Products", LOOKUP, fg["$id"]))
    assert schema["meta:class"] == LOOKUP


def test_meta_class_is_inferred_and_must_agree(client):
    schema = post(client, "schemas", {"title": "People", "allOf": [{"$ref": PROFILE}, {"$ref": FG_CONTACT}]})
    assert schema["meta:class"] == PROFILE
    p = problem(client.post(f"{BASE}/schemas", json={**schema_of("x", PROFILE), "meta:class": EVENT}), 422)
    assert p["errors"][0]["pointer"] == "/meta:class"


def test_roles_reads_for_read_keys_writes_for_admins(client, key_of):
    read = {"Authorization": f"Bearer {key_of('read')}"}
    ingest = {"Authorization": f"Bearer {key_of('ingest')}"}
    problem(client.post(f"{BASE}/fieldgroups", json=loyalty_fieldgroup(), headers=read), 403)
    fg = post(client, "fieldgroups", loyalty_fieldgroup())
    assert client.get(f"{BASE}/fieldgroups/{fg['meta:altId']}", headers=read).status_code == 200
    problem(client.get(f"{BASE}/fieldgroups", headers=ingest), 403)
    problem(client.delete(f"{BASE}/fieldgroups/{fg['meta:altId']}", headers=read), 403)
    problem(client.get(f"{BASE}/widgets"), 404)


def test_changes_are_audited_in_the_same_transaction(client, runtime):
    fg = post(client, "fieldgroups", loyalty_fieldgroup())
    problem(client.post(f"{BASE}/schemas", json=schema_of("s", EVENT, fg["$id"])), 422)
    rows = runtime.store.read_sync(lambda c: c.execute(sa.select(kt.audit_log.c.resource_type)).scalars().all())
    assert rows.count("fieldgroup") == 1 and "schema" not in rows


def test_custom_classes_and_field_groups_that_extend_them_or_a_behavior(client, registry, sandbox_id):
    visit = post(client, "classes", {
        "title": "Store visit", "allOf": [{"$ref": "https://ns.adobe.com/xdm/data/time-series"},
                                          {"$ref": "#/definitions/v"}],
        "definitions": {"v": {"properties": {"_wayline": {"type": "object", "properties": {
            "storeId": {"type": "string"}}}}}}})
    fg = post(client, "fieldgroups", loyalty_fieldgroup(extends=[visit["$id"]], minutes={"type": "integer"}))
    any_event = post(client, "fieldgroups", loyalty_fieldgroup(
        extends=["https://ns.adobe.com/xdm/data/time-series"], channel={"type": "string"}))
    schema = post(client, "schemas", schema_of("Visits", visit["$id"], fg["$id"], any_event["$id"]))
    compiled = registry.compiled(sandbox_id, schema["$id"])
    assert compiled.behavior == "time-series" and compiled.class_uri == visit["$id"]
    assert set(compiled.json_schema["properties"]["_wayline"]["properties"]) == {"storeId", "minutes", "channel"}
    assert compiled.json_schema["required"] == ["_id", "timestamp"]
    problem(client.post(f"{BASE}/schemas", json=schema_of("x", PROFILE, any_event["$id"])), 422)
    post(client, "schemas", schema_of("Events", EVENT, any_event["$id"]))


def test_required_fields_must_be_defined(client):
    body = loyalty_fieldgroup()
    body["definitions"]["loyalty"]["properties"]["_wayline"]["required"] = ["nope"]
    p = problem(client.post(f"{BASE}/fieldgroups", json=body), 422)
    assert p["errors"][0]["pointer"] == "/properties/_wayline/required" and "nope" in p["detail"]
