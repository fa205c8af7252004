"""The standard pieces: what ships, how they compose, and the global endpoints that show them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.platform.schemas.conftest import (
    EVENT,
    FG_COMMERCE,
    FG_CONTACT,
    FG_IDENTITY_MAP,
    FG_PERSON,
    FG_WEB,
    LOOKUP,
    PROFILE,
    enc,
    problem,
)
from wayline.platform.schemas import catalog, standard
from wayline.platform.schemas.compiled import compile_schema
from wayline.platform.schemas.compose import Resolver, compose_schema, iter_fields
from wayline.platform.schemas.model import Resource

PROFILE_GROUPS = [FG_IDENTITY_MAP, FG_PERSON, FG_CONTACT, standard.FG_CONSENTS, standard.FG_PUSH,
                  standard.FG_SEGMENTS, standard.FG_TEST_PROFILE, standard.FG_EXT_AUDIT]
EVENT_GROUPS = [FG_WEB, FG_COMMERCE, standard.FG_ORCHESTRATION, standard.FG_EXT_AUDIT]


def compose(cls: str, *groups: str):
    body = {"$id": "https://example.test/s", "title": "s", "allOf": [{"$ref": cls}, *({"$ref": g} for g in groups)]}
    return compose_schema(Resolver(), Resource("https://example.test/s", "schema", body))


def compiled(cls: str, *groups: str):
    c = compose(cls, *groups)
    return compile_schema(uri=c.uri, version=1, title=c.title, class_uri=c.class_uri, behavior=c.behavior,
                          profile_enabled=False, json_schema=c.json_schema)


def fields(tree) -> dict[str, dict]:
    return {".".join(p): node for p, node in iter_fields(tree)}


def test_the_profile_class_and_its_field_groups_have_the_reference_fields():
    c = compose(PROFILE, *PROFILE_GROUPS)
    f = fields(c.tree)
    assert c.tree["required"] == ["_id"] and c.behavior == "record"
    for path in ("_id", "person.name.firstName", "person.name.lastName", "personalEmail.address",
                 "mobilePhone.number", "homeAddress.city", "homeAddress.countryCode", "testProfile",
                 "extSourceSystemAudit.lastUpdatedDate", "pushNotificationDetails.[].token",
                 "pushNotificationDetails.[].appID", "pushNotificationDetails.[].denylisted",
                 "pushNotificationDetails.[].identity.namespace.code", "pushNotificationDetails.[].identity.id",
                 "identityMap.*.[].id", "segmentMembership.*.*.lastQualificationTime"):
        assert path in f, path
    for channel in ("email", "sms", "push"):
        assert f[f"consents.marketing.{channel}.val"]["enum"] == ["y", "n"]
    assert f["pushNotificationDetails.[].platform"]["enum"] == ["apns", "fcm"]
    assert f["segmentMembership.*.*.status"]["enum"] == ["realized", "existing", "exited"]
    assert f["identityMap.*.[].authenticatedState"]["enum"] == ["ambiguous", "authenticated", "loggedOut"]
    assert f["identityMap.*.[].primary"]["type"] == "boolean"
    assert f["testProfile"] == {"title": "Test profile", "type": "boolean", "default": False}
    assert f["extSourceSystemAudit.lastUpdatedDate"]["format"] == "date-time"


def test_the_experience_event_class_requires_id_and_timestamp():
    c = compose(EVENT, *EVENT_GROUPS)
    f = fields(c.tree)
    assert c.tree["required"] == ["_id", "timestamp"] and c.behavior == "time-series"
    assert f["timestamp"]["format"] == "date-time"
    for path in ("eventType", "identityMap", "web.webPageDetails.pageViews.value", "web.webPageDetails.URL",
                 "commerce.order.priceTotal", "commerce.purchases.value", "productListItems.[].SKU",
                 "_experience.campaign.orchestration.eventID", "_experience.campaign.orchestration.originJourneyID"):
        assert path in f, path
    v = compiled(EVENT, *EVENT_GROUPS)
    assert v.validate({"_id": "e1", "timestamp": "2026-01-02T03:04:05.123Z",
                       "_experience": {"campaign": {"orchestration": {"eventID": "abc"}}}}) == []
    errors = v.validate({"eventType": "x"})
    assert {(e["pointerToViolation"], e["keyword"]) for e in errors} == {("", "required")}
    assert len(errors) == 2  # both missing fields are reported


def test_objects_are_closed_but_maps_take_any_key():
    v = compiled(PROFILE, *PROFILE_GROUPS)
    ok = {"_id": "p1", "identityMap": {"Email": [{"id": "a@b.c", "primary": True}], "CRM": [{"id": "42"}]},
          "segmentMembership": {"ups": {"seg-1": {"status": "realized"}}}, "testProfile": True}
    assert v.validate(ok) == []
    bad = {**ok, "person": {"name": {"firstName": "Ann", "nickname": "A"}}, "unknownTop": 1}
    pointers = {e["pointerToViolation"]: e["keyword"] for e in v.validate(bad)}
    assert pointers == {"/person/name/nickname": "additionalProperties", "/unknownTop": "additionalProperties"}


def test_the_lookup_class_is_a_record_class():
    c = compose(LOOKUP, standard.FG_EXT_AUDIT)
    assert c.behavior == "record" and c.tree["required"] == ["_id"]


def test_standard_ids_and_alt_ids_follow_the_reference():
    profile = standard.get(PROFILE)
    assert profile.alt_id == "_xdm.context.profile" and standard.get("_xdm.context.experienceevent").uri == EVENT
    assert standard.get("_xdm.context.profile-person-details").uri == FG_PERSON
    assert {r.kind for r in standard.STANDARD.values()} == {"class", "fieldgroup", "datatype", "behavior"}


def test_docs_list_every_standard_piece_as_generated():
    text = (Path(__file__).resolve().parents[3] / "docs" / "field-groups.md").read_text()
    assert [uri for uri in standard.STANDARD if uri not in text] == []
    assert catalog.markdown() in text, "regenerate docs/field-groups.md: python -m wayline.platform.schemas.catalog"


@pytest.mark.parametrize("kinds,count", [("classes", 3), ("fieldgroups", 11), ("datatypes", 12), ("behaviors", 2)])
def test_global_lists_page_through_every_standard_piece(client, kinds, count):
    seen, cursor = [], None
    while True:
        body = client.get(f"/schemaregistry/global/{kinds}", params={"limit": 4, **({"cursor": cursor} if cursor
                                                                                   else {})}).json()
        seen += [i["$id"] for i in body["items"]]
        cursor = body["next"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == count and seen == sorted(seen)


def test_a_standard_piece_by_id_or_alt_id_with_an_etag(client):
    by_id = client.get(f"/schemaregistry/global/classes/{enc(PROFILE)}")
    by_alt = client.get("/schemaregistry/global/classes/_xdm.context.profile")
    assert by_id.status_code == by_alt.status_code == 200 and by_id.json() == by_alt.json()
    assert by_id.headers["etag"] == '"1"' and by_id.json()["meta:resourceType"] == "classes"
    full = client.get(f"/schemaregistry/global/fieldgroups/{enc(FG_PERSON)}",
                      headers={"Accept": "application/vnd.adobe.xed-full+json"}).json()
    assert full["properties"]["person"]["properties"]["name"]["properties"]["firstName"]["type"] == "string"
    assert "definitions" not in full and "allOf" not in full


def test_unknown_global_pieces_and_kinds_are_404(client):
    problem(client.get("/schemaregistry/global/classes/_xdm.context.nothing"), 404)
    problem(client.get(f"/schemaregistry/global/fieldgroups/{enc(PROFILE)}"), 404)  # a class, not a field group
    problem(client.get("/schemaregistry/global/widgets"), 404)
