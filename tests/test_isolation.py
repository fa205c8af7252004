"""A key can neither read nor write another sandbox's data — checked on every route of the API.

The routes come from the OpenAPI document, so a new router is covered the day it is added: the
test fails until its parameters have a value below. Resources are made in `prod`; a `dev` admin key
then calls every route with valid requests naming them. Routes with a path parameter must answer
404 (never 2xx, and never 403, which would leak that the resource exists); lists must show nothing
of prod's; and afterwards prod's data is unchanged.
"""

from __future__ import annotations

import re
import urllib.parse

import orjson

from tests.platform.conftest import event, message

PUBLIC = {"/healthz", "/readyz", "/metrics"}
GLOBAL = {"/schemaregistry/global/{kinds}", "/schemaregistry/global/{kinds}/{ident}"}  # the same for all


def _prod(client):
    from tests.platform.conftest import make_event_schema

    schema = make_event_schema(client)
    fieldgroups = client.get("/schemaregistry/tenant/fieldgroups").json()["items"]
    ds = client.post("/catalog/dataSets", json={"name": "prod data", "schemaRef": {"id": schema}}).json()
    inlet = client.post("/collection/inlets", json={"name": "prod inlet", "datasetId": ds["id"]}).json()
    client.post(f"/collection/{inlet['id']}", json=message(schema, ds["id"], event(1)))
    client.post(f"/collection/{inlet['id']}", json=message(schema, ds["id"], event(2, eventType=7)))
    failed = client.get(f"/datasets/{ds['id']}/failures").json()["items"][0]["id"]
    batch = client.post("/batches", json={"datasetId": ds["id"], "inputFormat": {"format": "json"}}).json()
    key = client.post("/keys", json={"role": "read"}).json()["id"]
    from tests.platform.profiling import ids as idmap
    from tests.platform.profiling import pdg_default, person, purchase, put, setup_profiles

    ps = setup_profiles(client)
    policy = pdg_default(client)["id"]
    put(client, ps.crm, person("p1", "2026-01-01T00:00:00Z", idmap(Email="prod@x.io", CRMID="prod-1")))
    put(client, ps.events, purchase("e1", "2026-01-02T00:00:00Z", idmap(Email="prod@x.io")))
    segment = client.post("/segment/definitions", json={
        "name": "prod segment", "expression": {"type": "PQL", "format": "pql/text", "value": "_wayline.points >= 0"}})
    assert segment.status_code == 201, segment.text
    job = client.post("/segment/jobs?wait=true", json={"segments": [{"segmentId": "*"}]}).json()
    export = client.post("/segment/exports", json={"segmentId": segment.json()["id"]}).json()
    return {"schema": schema, "policy": policy, "segment": segment.json()["id"], "job": job["id"],
            "export": export["id"], "fieldgroup": fieldgroups[0]["$id"], "dataset": ds["id"], "inlet": inlet["id"],
            "failed": failed, "batch": batch["id"], "key": key,
            "sandbox": client.get("/sandbox").json()["sandbox"]["id"]}


def _snapshot(client, ids):
    return orjson.dumps([
        client.get(f"/catalog/dataSets/{ids['dataset']}").json(),
        client.get(f"/datasets/{ids['dataset']}/records").json(),
        client.get(f"/datasets/{ids['dataset']}/failures", params={"status": "all"}).json(),
        client.get(f"/batches/{ids['batch']}").json(),
        client.get("/schemaregistry/tenant/schemas", params={"full": "true"}).json(),
        client.get("/collection/inlets").json(),
        [k for k in client.get("/keys").json()["items"] if k["id"] == ids["key"]],
        client.get("/config/mergePolicies").json(),
        client.get("/identity/namespaces").json(),
        client.get("/profiles", params={"entityIdNS": "Email", "entityId": "prod@x.io", "explain": "true"}).json(),
        client.get("/profiles/events", params={"entityIdNS": "Email", "entityId": "prod@x.io"}).json(),
        client.get("/identity/graph", params={"namespace": "Email", "id": "prod@x.io"}).json(),
        client.get("/segment/definitions").json(),
        client.get(f"/segment/definitions/{ids['segment']}/members").json(),
        client.get(f"/segment/jobs/{ids['job']}").json(),
    ])


def test_every_route_keeps_sandboxes_apart(client, other_sandbox_key):
    ids = _prod(client)
    q = urllib.parse.quote
    values = {
        "key_id": ids["key"], "inlet_id": ids["inlet"], "dataset_id": ids["dataset"], "failed_id": str(ids["failed"]),
        "batch_id": ids["batch"], "file_name": "f.jsonl", "descriptor_id": "does-not-leak",
        "kinds": "schemas", "ident": q(ids["schema"], safe=""), "policy_id": ids["policy"], "code": "CRMID",
        "segment_id": ids["segment"], "job_id": ids["job"],
        "name": "prodOnly",
    }
    # Routes that name a person by query: prod's person, asked for from dev, is not found.
    person = {"/identity/graph": "namespace=Email&id=prod%40x.io",
              "/profiles": "entityIdNS=Email&entityId=prod%40x.io",
              "/profiles/events": "entityIdNS=Email&entityId=prod%40x.io"}
    schema_body = {"title": "x", "type": "object", "meta:class": "https://ns.adobe.com/xdm/context/experienceevent",
                   "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/experienceevent"},
                             {"$ref": ids["fieldgroup"]}]}
    bodies = {
        ("post", "/keys"): {"role": "admin"},
        ("post", "/collection/inlets"): {"name": "mine", "datasetId": ids["dataset"]},
        ("post", "/collection/{inlet_id}"): message(ids["schema"], ids["dataset"], event(3)),
        ("post", "/collection/batch/{inlet_id}"): {"messages": [message(ids["schema"], ids["dataset"], event(4))]},
        ("post", "/catalog/dataSets"): {"name": "mine", "schemaRef": {"id": ids["schema"]}},
        ("patch", "/catalog/dataSets/{dataset_id}"): {"name": "stolen"},
        ("post", "/datasets/{dataset_id}/records"): event(5),
        ("put", "/datasets/{dataset_id}/failures/{failed_id}"): event(2),
        ("post", "/datasets/{dataset_id}/failures/replay"): {},
        ("post", "/batches"): {"datasetId": ids["dataset"], "inputFormat": {"format": "json"}},
        ("post", "/schemaregistry/tenant/descriptors"): {
            "@type": "xdm:descriptorIdentity", "xdm:sourceSchema": ids["schema"],
            "xdm:sourceProperty": "/_wayline/tier", "xdm:namespace": "Email", "xdm:isPrimary": False},
        ("post", "/schemaregistry/tenant/{kinds}"): schema_body,
        ("put", "/schemaregistry/tenant/{kinds}/{ident}"): schema_body,
        ("patch", "/schemaregistry/tenant/{kinds}/{ident}"): [{"op": "replace", "path": "/title", "value": "y"}],
        ("post", "/backbone/parked/replay"): {"consumer": "test", "key": f"{ids['sandbox']}|Email|a@b.c"},
        ("post", "/dulepolicy/labels/custom"): {"name": "devLabel"},
        ("put", "/dulepolicy/labels/custom/{name}"): {"friendlyName": "stolen"},
        ("post", "/dulepolicy/marketingActions/custom"): {"name": "devAction"},
        ("put", "/dulepolicy/marketingActions/custom/{name}"): {"description": "stolen"},
        ("patch", "/dulepolicy/policies/core/{policy_id}"): {"status": "ENABLED"},
        ("post", "/dulepolicy/policies/custom"): {"name": "dev", "marketingActionRefs": ["emailTargeting"],
                                                 "deny": {"operator": "OR", "operands": [{"label": "C4"}]}},
        ("put", "/dulepolicy/policies/custom/{policy_id}"): {"name": "stolen", "marketingActionRefs": ["analytics"],
                                                             "deny": {"operator": "OR", "operands": [{"label": "C8"}]}},
        ("patch", "/dulepolicy/policies/custom/{policy_id}"): {"status": "ENABLED"},
        ("post", "/dulepolicy/marketingActions/core/{name}/constraints"): [
            {"entityType": "dataSet", "entityId": ids["dataset"]}],
        ("post", "/dulepolicy/marketingActions/custom/{name}/constraints"): [
            {"entityType": "dataSet", "entityId": ids["dataset"]}],
        ("post", "/dulepolicy/bulk-eval"): [{"marketingAction": "analytics", "entityList": [
                                                {"entityType": "dataSet", "entityId": ids["dataset"]}]},
                                            {"marketingAction": "analytics", "entityList": [
                                                {"entityType": "field", "entityId": ids["schema"],
                                                 "path": "/_wayline/points"}]}],
        ("put", "/dulepolicy/fieldLabels/{ident}"): {"labels": {"/_wayline/points": ["C1"]}},
    }
    before = _snapshot(client, ids)
    other = {"Authorization": f"Bearer {other_sandbox_key}"}
    spec = client.get("/openapi.json").json()
    checked = 0
    for path, ops in spec["paths"].items():
        if path in PUBLIC or path in GLOBAL:
            continue
        for method in ops:
            url = path
            for name, value in values.items():
                url = url.replace("{" + name + "}", value)
            assert "{" not in url, f"give {path}'s parameters a value in this test"
            body = bodies.get((method, path))
            kwargs: dict = {"headers": other}
            if method == "put" and "/files/" in path:
                kwargs["content"] = b'{"_id": "a", "timestamp": "2026-01-01T00:00:00Z"}\n'
            elif body is not None:
                kwargs["json"] = body
            elif method in ("post", "put", "patch"):
                kwargs["json"] = {}
            if path == "/batches/{batch_id}" and method == "post":
                url += "?action=COMPLETE&wait=true"
            if path in person:
                url += "?" + person[path]
            r = client.request(method.upper(), url, **kwargs)
            checked += 1
            text = r.text
            asked = urllib.parse.unquote(url) + orjson.dumps(kwargs.get("json")).decode()
            for secret in (ids["dataset"], ids["inlet"], ids["batch"], ids["schema"], ids["key"], ids["policy"],
                           "prod@x.io", "prod-1", ids["segment"], ids["job"], ids["export"]):
                # An error may echo what was asked for; nothing may show prod's ids otherwise.
                assert secret not in text or (r.status_code >= 400 and secret in asked), \
                    f"{method.upper()} {path} shows prod's {secret}: {text[:300]}"
            if set(re.findall(r"{(\w+)}", path)) - {"kinds"} or path in person:  # names one of prod's resources
                assert r.status_code == 404, f"{method.upper()} {path} answered {r.status_code}: {text[:300]}"
            else:
                assert r.status_code < 500, f"{method.upper()} {path}: {text[:300]}"
    assert checked >= 30
    assert _snapshot(client, ids) == before
