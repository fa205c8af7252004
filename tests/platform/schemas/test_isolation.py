"""A key of another sandbox never sees or changes this sandbox's registry."""

from __future__ import annotations

import pytest

from tests.platform.schemas.conftest import BASE, PROFILE, enc, loyalty_fieldgroup, post, problem, schema_of
from wayline.kernel.problems import Problem


def test_another_sandbox_neither_sees_nor_changes_the_registry(client, other_sandbox_key, runtime, sandbox_id):
    other = {"Authorization": f"Bearer {other_sandbox_key}"}
    fg = post(client, "fieldgroups", {**loyalty_fieldgroup(), "$id": "https://acme.example/fieldgroups/loyalty"})
    schema = post(client, "schemas", schema_of("Members", PROFILE, fg["$id"]))
    desc = client.post("/schemaregistry/tenant/descriptors", json={
        "@type": "xdm:descriptorIdentity", "xdm:sourceSchema": schema["$id"],
        "xdm:sourceProperty": "/_wayline/loyaltyId", "xdm:namespace": "CRM", "xdm:isPrimary": True}).json()
    for kinds in ("fieldgroups", "schemas", "classes", "datatypes", "descriptors"):
        assert client.get(f"{BASE}/{kinds}", headers=other).json()["items"] == []
    for kinds, res in (("fieldgroups", fg), ("schemas", schema)):
        for ident in (enc(res["$id"]), res["meta:altId"]):
            problem(client.get(f"{BASE}/{kinds}/{ident}", headers=other), 404)
            problem(client.put(f"{BASE}/{kinds}/{ident}", json=loyalty_fieldgroup(), headers=other), 404)
            problem(client.patch(f"{BASE}/{kinds}/{ident}", json={"title": "x"}, headers=other), 404)
            problem(client.delete(f"{BASE}/{kinds}/{ident}", headers=other), 404)
    problem(client.get(f"/schemaregistry/tenant/descriptors/{desc['@id']}", headers=other), 404)
    problem(client.delete(f"/schemaregistry/tenant/descriptors/{desc['@id']}", headers=other), 404)
    # The other sandbox cannot reference this sandbox's pieces, nor describe its schemas...
    r = client.post(f"{BASE}/schemas", json=schema_of("Mine", PROFILE, fg["$id"]), headers=other)
    assert fg["$id"] in problem(r, 422)["detail"]
    r = client.post("/schemaregistry/tenant/descriptors", headers=other, json={**desc, "@id": "x"})
    problem(r, 422)
    # ...but may define its own piece under the same $id, independently.
    mine = client.post(f"{BASE}/fieldgroups", json={**loyalty_fieldgroup(points={"type": "string"}),
                                                    "$id": fg["$id"]}, headers=other)
    assert mine.status_code == 201
    assert client.get(f"{BASE}/fieldgroups/{enc(fg['$id'])}").json() == fg  # unchanged here
    assert client.get("/schemaregistry/global/classes", headers=other).status_code == 200  # standard: shared
    assert all(a["resourceId"] != fg["$id"] or a["after"]["definitions"] != fg["definitions"]
               for a in client.get("/audit", headers=other).json()["items"])
    other_sandbox = next(s for s in _sandboxes(runtime) if s != sandbox_id)
    with pytest.raises(Problem):
        runtime.platform.schemas.compiled(other_sandbox, schema["$id"])


def _sandboxes(runtime) -> list[str]:
    from wayline.kernel import tenancy

    return [s.id for s in runtime.store.read_sync(tenancy.list_sandboxes)]
