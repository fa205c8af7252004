"""Helpers of the schema registry tests: definitions to POST, URL-encoding of ids, the sandbox id."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

PROFILE = "https://ns.adobe.com/xdm/context/profile"
EVENT = "https://ns.adobe.com/xdm/context/experienceevent"
LOOKUP = "https://ns.wayline.dev/xdm/classes/lookup-record"
FG_PERSON = "https://ns.adobe.com/xdm/context/profile-person-details"
FG_CONTACT = "https://ns.adobe.com/xdm/context/profile-personal-details"
FG_IDENTITY_MAP = "https://ns.adobe.com/xdm/context/identitymap"
FG_WEB = "https://ns.adobe.com/xdm/context/experienceevent-web"
FG_COMMERCE = "https://ns.adobe.com/xdm/context/experienceevent-commerce"
PROBLEM = "application/problem+json"
BASE = "/schemaregistry/tenant"


def enc(ident: str) -> str:
    return quote(ident, safe="")


def loyalty_fieldgroup(extends: list[str] | None = None, **fields: Any) -> dict[str, Any]:
    """A custom field group with its fields under the tenant namespace `_wayline`."""
    props = fields or {"loyaltyId": {"type": "string"}, "points": {"type": "integer", "minimum": 0},
                       "tier": {"type": "string", "enum": ["gold", "silver"]}}
    return {"title": "Loyalty", "type": "object", "meta:intendedToExtend": extends or [PROFILE],
            "definitions": {"loyalty": {"properties": {"_wayline": {"type": "object", "properties": props}}}},
            "allOf": [{"$ref": "#/definitions/loyalty"}]}


def schema_of(title: str, cls: str, *groups: str) -> dict[str, Any]:
    return {"title": title, "type": "object", "meta:class": cls,
            "allOf": [{"$ref": cls}, *({"$ref": g} for g in groups)]}


def post(client, kind: str, body: dict[str, Any], status: int = 201, **kw: Any) -> dict[str, Any]:
    r = client.post(f"{BASE}/{kind}", json=body, **kw)
    assert r.status_code == status, r.text
    return r.json()


def problem(r, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    return r.json()


@pytest.fixture
def sandbox_id(runtime) -> str:
    from wayline.kernel import tenancy

    return runtime.store.read_sync(lambda c: tenancy.get_sandbox(c, "prod").id)


@pytest.fixture
def registry(runtime):
    return runtime.platform.schemas


@pytest.fixture
def profile_schema(client) -> dict[str, Any]:
    """A profile schema: person details, contact details, a loyalty field group (not enabled yet)."""
    fg = post(client, "fieldgroups", loyalty_fieldgroup())
    return post(client, "schemas", schema_of("Loyalty members", PROFILE, FG_PERSON, FG_CONTACT, fg["$id"]))

