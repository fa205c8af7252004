"""Identity and relationship descriptors."""

from __future__ import annotations

from tests.platform.schemas.conftest import LOOKUP, PROFILE, loyalty_fieldgroup, post, problem, schema_of

D = "/schemaregistry/tenant/descriptors"


def create(client, body: dict) -> dict:
    r = client.post(D, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def identity(schema: str, prop: str, ns: str = "Email", primary: bool = False, **extra) -> dict:
    return {"@type": "xdm:descriptorIdentity", "xdm:sourceSchema": schema, "xdm:sourceVersion": 1,
            "xdm:sourceProperty": prop, "xdm:namespace": ns, "xdm:property": "xdm:code", "xdm:isPrimary": primary,
            **extra}


def test_identity_descriptors_mark_fields_and_reach_the_compiled_schema(client, registry, sandbox_id,
                                                                          profile_schema):
    uri = profile_schema["$id"]
    r = client.post(D, json=identity(uri, "/personalEmail/address", primary=True))
    assert r.status_code == 201, r.text
    email = r.json()
    assert len(email["@id"]) == 32 and r.headers["location"] == f"{D}/{email['@id']}"
    crm = create(client, identity(profile_schema["meta:altId"], "/_wayline/loyaltyId", "CRM"))
    assert crm["xdm:sourceSchema"] == uri  # the altId is resolved to the $id
    compiled = registry.compiled(sandbox_id, uri)
    assert compiled.version == 3  # each descriptor is a new version of its schema
    assert {(i.path, i.namespace, i.primary) for i in compiled.identities} == {
        (("personalEmail", "address"), "Email", True), (("_wayline", "loyaltyId"), "CRM", False)}
    assert compiled.primary_identity.namespace == "Email"
    assert client.get(f"{D}/{email['@id']}").json() == email
    listed = client.get(D, params={"schema": profile_schema["meta:altId"]}).json()["items"]
    assert {d["@id"] for d in listed} == {email["@id"], crm["@id"]}
    assert client.get(D, params={"@type": "xdm:descriptorOneToOne"}).json()["items"] == []
    assert client.delete(f"{D}/{crm['@id']}").status_code == 204
    problem(client.get(f"{D}/{crm['@id']}"), 404)
    assert [i.namespace for i in registry.compiled(sandbox_id, uri).identities] == ["Email"]
    actions = [a["action"] for a in client.get("/audit", params={"resourceType": "descriptor"}).json()["items"]]
    assert actions == ["delete", "create", "create"]


def test_a_schema_has_at_most_one_primary_identity(client, profile_schema):
    uri = profile_schema["$id"]
    create(client, identity(uri, "/personalEmail/address", primary=True))
    p = problem(client.post(D, json=identity(uri, "/mobilePhone/number", "Phone", primary=True)), 409)
    assert "primary" in p["detail"]
    create(client, identity(uri, "/mobilePhone/number", "Phone"))


def test_a_replayed_descriptor_answers_the_first_and_a_different_one_on_the_same_field_conflicts(client,
                                                                                                 profile_schema):
    body = identity(profile_schema["$id"], "/personalEmail/address", primary=True)
    first = client.post(D, json=body)
    again = client.post(D, json=body)
    assert (first.status_code, again.status_code) == (201, 200) and again.json() == first.json()
    problem(client.post(D, json={**body, "xdm:namespace": "Other"}), 409)
    with_id = identity(profile_schema["$id"], "/mobilePhone/number", "Phone", **{"@id": "phone-1"})
    assert create(client, with_id)["@id"] == "phone-1"
    assert client.post(D, json=with_id).status_code == 200


def test_bad_descriptors_are_refused_with_pointers(client, profile_schema):
    uri = profile_schema["$id"]
    cases = [
        (identity(uri, "/personalEmail/nothing"), "/xdm:sourceProperty"),
        (identity(uri, "/_wayline/points"), "/xdm:sourceProperty"),  # an integer, not a string
        (identity(uri, "/person/name"), "/xdm:sourceProperty"),  # an object
        (identity(uri, "personalEmail/address"), "/xdm:sourceProperty"),  # not a path
        (identity("https://acme.example/schemas/none", "/personalEmail/address"), "/xdm:sourceSchema"),
        (identity(uri, "/personalEmail/address", ns=""), "/xdm:namespace"),
        (identity(uri, "/personalEmail/address", isPrimary="yes"), "/isPrimary"),
        ({**identity(uri, "/personalEmail/address"), "xdm:isPrimary": "yes"}, "/xdm:isPrimary"),
        ({"@type": "xdm:descriptorLabel", "xdm:sourceSchema": uri}, "/@type"),
    ]
    for body, where in cases:
        p = problem(client.post(D, json=body), 422)
        assert where in {e["pointer"] for e in p["errors"]}, (body, p)
    problem(client.post(D, json=[]), 422)
    assert client.get(D).json()["items"] == []


def test_a_one_to_one_relationship_points_at_a_lookup_schema(client, profile_schema):
    products_fg = post(client, "fieldgroups", loyalty_fieldgroup(extends=[LOOKUP], sku={"type": "string"}))
    products = post(client, "schemas", schema_of("Products", LOOKUP, products_fg["$id"]))
    rel = {"@type": "xdm:descriptorOneToOne", "xdm:sourceSchema": profile_schema["$id"],
           "xdm:sourceProperty": "/_wayline/loyaltyId", "xdm:destinationSchema": products["meta:altId"],
           "xdm:destinationProperty": "/_wayline/sku"}
    created = create(client, rel)
    assert created["xdm:destinationSchema"] == products["$id"]
    # A relationship to a profile schema is not a lookup; a destination field must exist and be a string.
    other = post(client, "schemas", schema_of("Other people", PROFILE))
    problem(client.post(D, json={**rel, "xdm:destinationSchema": other["$id"], "xdm:destinationProperty": "/_id"}), 422)
    problem(client.post(D, json={**rel, "xdm:sourceProperty": "/personalEmail/address",
                                 "xdm:destinationProperty": "/_wayline/nope"}), 422)
    problem(client.post(D, json={k: v for k, v in rel.items() if k != "xdm:destinationProperty"}
                        | {"xdm:sourceProperty": "/personalEmail/address"}), 422)
    # The destination cannot be deleted while a relationship points at it.
    p = problem(client.delete(f"/schemaregistry/tenant/schemas/{products['meta:altId']}"), 409)
    assert created["@id"] in p["detail"]


def test_deleting_a_schema_deletes_its_descriptors(client, profile_schema):
    d = create(client, identity(profile_schema["$id"], "/personalEmail/address"))
    assert client.delete(f"/schemaregistry/tenant/schemas/{profile_schema['meta:altId']}").status_code == 204
    problem(client.get(f"{D}/{d['@id']}"), 404)
