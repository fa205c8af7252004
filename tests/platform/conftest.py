"""Platform fixtures: a tenant experience-event schema, a dataset on it and an inlet."""

from __future__ import annotations

from typing import Any

import pytest

EVENT_CLASS = "https://ns.adobe.com/xdm/context/experienceevent"


def make_event_schema(client) -> str:
    fg = client.post("/schemaregistry/tenant/fieldgroups", json={
        "title": "Loyalty event fields",
        "type": "object",
        "meta:intendedToExtend": [EVENT_CLASS],
        "definitions": {"loyalty": {"properties": {"_wayline": {"type": "object", "properties": {
            "points": {"type": "integer"}, "tier": {"type": "string", "enum": ["gold", "silver"]}}}}}},
        "allOf": [{"$ref": "#/definitions/loyalty"}],
    })
    assert fg.status_code in (200, 201), fg.text
    schema = client.post("/schemaregistry/tenant/schemas", json={
        "title": "Web events",
        "type": "object",
        "meta:class": EVENT_CLASS,
        "allOf": [{"$ref": EVENT_CLASS}, {"$ref": fg.json()["$id"]}],
    })
    assert schema.status_code in (200, 201), schema.text
    return schema.json()["$id"]


def event(i: int = 0, **extra: Any) -> dict[str, Any]:
    e = {"_id": f"evt-{i}", "timestamp": "2026-11-30T10:00:00Z", "eventType": "web.webpagedetails.pageViews",
         "_wayline": {"points": i, "tier": "gold"}}
    e.update(extra)
    return e


def message(schema_id: str, dataset_id: str | None, entity: Any) -> dict[str, Any]:
    header: dict[str, Any] = {"schemaRef": {"id": schema_id, "contentType": "application/vnd.adobe.xed-full+json;version=1"},
                              "imsOrgId": "org", "source": {"name": "tests"}}
    if dataset_id:
        header["datasetId"] = dataset_id
    return {"header": header, "body": {"xdmMeta": {"schemaRef": header["schemaRef"]}, "xdmEntity": entity}}


@pytest.fixture
def event_schema(client) -> str:
    return make_event_schema(client)


@pytest.fixture
def dataset(client, event_schema) -> dict[str, Any]:
    r = client.post("/catalog/dataSets", json={"name": "web events", "schemaRef": {"id": event_schema}})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def inlet(client, dataset) -> dict[str, Any]:
    r = client.post("/collection/inlets", json={"name": "web", "datasetId": dataset["id"]})
    assert r.status_code == 201, r.text
    return r.json()
