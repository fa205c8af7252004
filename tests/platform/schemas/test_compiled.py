"""Compiled schemas: every violation with its pointer, compiled once per version, fresh after changes."""

from __future__ import annotations

import threading
import time

import pytest

from tests.platform.schemas.conftest import (
    BASE,
    EVENT,
    FG_COMMERCE,
    FG_WEB,
    PROFILE,
    enc,
    loyalty_fieldgroup,
    post,
    schema_of,
)
from wayline.kernel.problems import Problem
from wayline.platform.schemas import registry as registry_module
from wayline.platform.schemas.registry import SchemaRegistry


@pytest.fixture
def event_schema(client) -> dict:
    fg = post(client, "fieldgroups", loyalty_fieldgroup(extends=[EVENT]))
    return post(client, "schemas", schema_of("Web events", EVENT, FG_WEB, FG_COMMERCE, fg["$id"]))


def test_a_compiled_schema_describes_itself(registry, sandbox_id, event_schema, profile_schema):
    event = registry.compiled(sandbox_id, event_schema["$id"])
    assert (event.uri, event.version, event.title, event.class_uri, event.behavior, event.profile_enabled) == (
        event_schema["$id"], 1, "Web events", EVENT, "time-series", False)
    assert event.alt_id == event_schema["meta:altId"] and event.identities == () and event.has_identity_map
    assert event.json_schema["properties"]["web"]["additionalProperties"] is False
    profile = registry.compiled(sandbox_id, profile_schema["meta:altId"])
    assert profile.behavior == "record" and profile.class_uri == PROFILE and not profile.has_identity_map


def test_validate_reports_every_violation_with_its_pointer(registry, sandbox_id, event_schema):
    compiled = registry.compiled(sandbox_id, event_schema["$id"])
    good = {"_id": "e1", "timestamp": "2026-11-30T10:00:00Z", "eventType": "commerce.purchases",
            "identityMap": {"Email": [{"id": "a@b.c", "authenticatedState": "authenticated", "primary": True}]},
            "commerce": {"order": {"priceTotal": 19.9, "currencyCode": "EUR"}, "purchases": {"value": 1}},
            "productListItems": [{"SKU": "s-1", "quantity": 2}], "_wayline": {"points": 3, "tier": "gold"}}
    assert compiled.validate(good) == []
    bad = {"_id": 7, "timestamp": "30/11/2026", "identityMap": {"Email": [{"authenticatedState": "maybe"}]},
           "commerce": {"order": {"priceTotal": "19.90", "currencyCode": "eur"}},
           "productListItems": [{"SKU": "s-1"}, {"quantity": 1.5, "colour": "red"}],
           "_wayline": {"points": -1, "tier": "platinum", "extra": True}}
    found = {(v["pointerToViolation"], v["keyword"]) for v in compiled.validate(bad)}
    assert found == {
        ("/_id", "type"), ("/timestamp", "format"), ("/identityMap/Email/0", "required"),
        ("/identityMap/Email/0/authenticatedState", "enum"), ("/commerce/order/priceTotal", "type"),
        ("/commerce/order/currencyCode", "pattern"), ("/productListItems/1/quantity", "type"),
        ("/productListItems/1/colour", "additionalProperties"), ("/_wayline/points", "minimum"),
        ("/_wayline/tier", "enum"), ("/_wayline/extra", "additionalProperties"),
    }
    one = next(v for v in compiled.validate(bad) if v["pointerToViolation"] == "/_wayline/tier")
    assert one["schemaLocation"] == "#/properties/_wayline/properties/tier/enum" and "platinum" in one["message"]
    assert set(one) == {"pointerToViolation", "schemaLocation", "keyword", "message"}
    assert compiled.validate([1])[0]["keyword"] == "type"
    assert compiled.validate({"_id": "x", "timestamp": "2026-02-30T10:00:00Z"})[0]["keyword"] == "format"
    assert good["_wayline"] == {"points": 3, "tier": "gold"}  # validation never fills defaults in


def test_compiled_once_per_version_and_renewed_after_a_change(client, registry, sandbox_id, event_schema,
                                                               monkeypatch):
    calls = []
    real = registry_module.compile_schema
    monkeypatch.setattr(registry_module, "compile_schema", lambda **kw: calls.append(kw["uri"]) or real(**kw))
    first = registry.compiled(sandbox_id, event_schema["$id"])
    assert registry.compiled(sandbox_id, event_schema["$id"]) is first
    assert registry.compiled(sandbox_id, event_schema["meta:altId"]) is first  # by altId: the same object
    registry.recheck_seconds = 0  # a recheck that finds the same version keeps the compiled schema
    assert registry.compiled(sandbox_id, event_schema["$id"]) is first and len(calls) == 1
    registry.recheck_seconds = 60
    body = client.get(f"{BASE}/schemas/{enc(event_schema['$id'])}").json()
    body["allOf"].append({"$ref": "https://ns.adobe.com/experience/campaign/orchestration/eventid"})
    assert client.put(f"{BASE}/schemas/{enc(event_schema['$id'])}", json=body).status_code == 200
    second = registry.compiled(sandbox_id, event_schema["$id"])  # invalidated by the write, despite 60 s
    assert second is not first and second.version == 2 and len(calls) == 2
    assert "_experience" in second.json_schema["properties"] and "_experience" not in first.json_schema["properties"]
    assert registry.compiled(sandbox_id, event_schema["meta:altId"]) is second


def test_another_process_sees_a_change_within_the_recheck_interval(runtime, client, sandbox_id, event_schema):
    other = SchemaRegistry(runtime.store, recheck_seconds=60)  # as if in another process: no invalidation
    before = other.compiled(sandbox_id, event_schema["$id"])
    fg_id = event_schema["allOf"][-1]["$ref"]
    fg = client.get(f"{BASE}/fieldgroups/{enc(fg_id)}").json()
    fg["definitions"]["loyalty"]["properties"]["_wayline"]["properties"]["since"] = {"type": "string"}
    assert client.put(f"{BASE}/fieldgroups/{enc(fg_id)}", json=fg).status_code == 200
    assert other.compiled(sandbox_id, event_schema["$id"]) is before  # still within the interval
    other.recheck_seconds = 0  # the interval has passed (no sleeping: a slow machine must not flip this)
    after = other.compiled(sandbox_id, event_schema["$id"])
    assert after.version == before.version + 1
    assert after.validate({"_id": "1", "timestamp": "2026-01-01T00:00:00Z", "_wayline": {"since": "x"}}) == []


def test_concurrent_first_calls_compile_once(registry, sandbox_id, event_schema, monkeypatch):
    calls = []
    real = registry_module.compile_schema

    def slow(**kw):
        calls.append(1)
        time.sleep(0.05)
        return real(**kw)

    monkeypatch.setattr(registry_module, "compile_schema", slow)
    results = []
    threads = [threading.Thread(target=lambda: results.append(registry.compiled(sandbox_id, event_schema["$id"])))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len({id(r) for r in results}) == 1 and len(results) == 6


def test_unknown_schemas_are_a_404_problem(registry, sandbox_id, event_schema):
    for ident in ("https://acme.example/schemas/none", "_wayline.schemas.none", EVENT,
                  event_schema["allOf"][-1]["$ref"]):  # a class or a field group is not a schema
        with pytest.raises(Problem) as info:
            registry.compiled(sandbox_id, ident)
        assert info.value.status == 404 and info.value.slug == "not-found"
    with pytest.raises(Problem):
        registry.compiled("sbx_other", event_schema["$id"])


def test_a_deleted_schema_is_gone_from_the_cache(client, registry, sandbox_id, event_schema):
    registry.compiled(sandbox_id, event_schema["$id"])
    assert client.delete(f"{BASE}/schemas/{event_schema['meta:altId']}").status_code == 204
    with pytest.raises(Problem):
        registry.compiled(sandbox_id, event_schema["$id"])


def test_validation_is_fast(registry, sandbox_id, event_schema):
    compiled = registry.compiled(sandbox_id, event_schema["$id"])
    record = {"_id": "e1", "timestamp": "2026-11-30T10:00:00Z", "eventType": "web.webpagedetails.pageViews",
              "identityMap": {"ECID": [{"id": "1" * 38, "primary": True}]},
              "web": {"webPageDetails": {"name": "home", "URL": "https://shop.example/", "pageViews": {"value": 1}}},
              "_wayline": {"points": 3}}
    n = 5000
    start = time.perf_counter()
    for _ in range(n):
        compiled.validate(record)
    per_record_us = (time.perf_counter() - start) / n * 1e6
    assert per_record_us < 200, per_record_us  # a smoke bound; bench_validation.py measures properly
