"""Helpers for identity and profile tests: profile-enabled schemas, datasets and records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PROFILE = "https://ns.adobe.com/xdm/context/profile"
EVENT = "https://ns.adobe.com/xdm/context/experienceevent"
FG_IDENTITY_MAP = "https://ns.adobe.com/xdm/context/identitymap"
FG_PERSON = "https://ns.adobe.com/xdm/context/profile-person-details"
FG_CONTACT = "https://ns.adobe.com/xdm/context/profile-personal-details"
FG_PUSH = "https://ns.adobe.com/xdm/context/profile-push-notification-details"
FG_EXT_AUDIT = "https://ns.adobe.com/xdm/common/external-source-system-audit-details"
FG_COMMERCE = "https://ns.adobe.com/xdm/context/experienceevent-commerce"
BASE = "/schemaregistry/tenant"


def _ok(r: Any, *codes: int) -> Any:
    assert r.status_code in (codes or (200, 201)), r.text
    return r.json()


@dataclass
class Setup:
    profile_schema: str
    event_schema: str
    crm: str        # profile dataset
    loyalty: str    # second profile dataset
    events: str     # experience event dataset
    inlet: str


def setup_profiles(client: Any, *, crm_namespace: bool = True) -> Setup:
    """Two profile datasets and an event dataset, all enabled for profile; a custom CRMID namespace."""
    if crm_namespace:
        _ok(client.post("/identity/namespaces", json={"code": "CRMID", "name": "CRM id", "idType": "CROSS_DEVICE"}))
    fg = _ok(client.post(f"{BASE}/fieldgroups", json={
        "title": "Loyalty", "type": "object", "meta:intendedToExtend": [PROFILE],
        "definitions": {"l": {"properties": {"_wayline": {"type": "object", "properties": {
            "points": {"type": "integer"}, "tier": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}}}}}}},
        "allOf": [{"$ref": "#/definitions/l"}]}))
    ps = _ok(client.post(f"{BASE}/schemas", json={
        "title": "People", "type": "object", "meta:class": PROFILE,
        "allOf": [{"$ref": g} for g in (PROFILE, FG_IDENTITY_MAP, FG_PERSON, FG_CONTACT, FG_PUSH, FG_EXT_AUDIT,
                                        fg["$id"])]}))
    _ok(client.patch(f"{BASE}/schemas/{ps['meta:altId']}", json={"meta:immutableTags": ["union"]}))
    es = _ok(client.post(f"{BASE}/schemas", json={
        "title": "Purchases", "type": "object", "meta:class": EVENT,
        "allOf": [{"$ref": EVENT}, {"$ref": FG_COMMERCE}]}))
    _ok(client.patch(f"{BASE}/schemas/{es['meta:altId']}", json={"meta:immutableTags": ["union"]}))
    crm = _ok(client.post("/catalog/dataSets", json={"name": "crm", "schemaRef": {"id": ps["$id"]},
                                                      "profileEnabled": True}))
    loy = _ok(client.post("/catalog/dataSets", json={"name": "loyalty", "schemaRef": {"id": ps["$id"]},
                                                      "profileEnabled": True}))
    evs = _ok(client.post("/catalog/dataSets", json={"name": "purchases", "schemaRef": {"id": es["$id"]},
                                                      "profileEnabled": True}))
    inlet = _ok(client.post("/collection/inlets", json={"name": "people"}))
    return Setup(ps["$id"], es["$id"], crm["id"], loy["id"], evs["id"], inlet["id"])


def pdg_default(client: Any, **extra: Any) -> dict[str, Any]:
    body = {"name": "stitched", "schema": {"name": "_xdm.context.profile"}, "default": True,
            "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "timestampOrdered"}, **extra}
    return _ok(client.post("/config/mergePolicies", json=body), 201)


def ids(**by_ns: Any) -> dict[str, list[dict[str, Any]]]:
    """identityMap from keyword arguments: ids(Email="a@b.c", CRMID=["1", "2"]); the first is primary."""
    out: dict[str, list[dict[str, Any]]] = {}
    first = True
    for ns, values in by_ns.items():
        for v in values if isinstance(values, list) else [values]:
            out.setdefault(ns, []).append({"id": v, "primary": first})
            first = False
    return out


def person(rid: str, ts: str, identity_map: dict[str, Any], **fields: Any) -> dict[str, Any]:
    rec = {"_id": rid, "identityMap": identity_map,
           "extSourceSystemAudit": {"lastUpdatedDate": ts}}
    rec.update(fields)
    return rec


def purchase(rid: str, ts: str, identity_map: dict[str, Any], total: float = 10.0) -> dict[str, Any]:
    return {"_id": rid, "timestamp": ts, "eventType": "commerce.purchases", "identityMap": identity_map,
            "commerce": {"order": {"priceTotal": total}}}


def put(client: Any, dataset: str, *records: dict[str, Any], status: int = 200) -> Any:
    r = client.post(f"/datasets/{dataset}/records", json=list(records))
    assert r.status_code == status, r.text
    return r.json()


def profile(client: Any, ns: str, value: str, **params: Any) -> Any:
    return client.get("/profiles", params={"entityIdNS": ns, "entityId": value, **params})
