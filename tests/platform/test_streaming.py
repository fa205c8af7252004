"""Streaming ingestion through /collection, as a client of the reference would use it."""

from __future__ import annotations

from datetime import datetime, timezone

import orjson

from tests.platform.conftest import event, message

PROBLEM = "application/problem+json"


def _records(client, dataset_id):
    return client.get(f"/datasets/{dataset_id}/records", params={"limit": 1000}).json()["items"]


def test_a_valid_message_is_stored_before_the_answer(client, dataset, inlet, event_schema):
    r = client.post(f"/collection/{inlet['id']}", json=message(event_schema, dataset["id"], event(1)))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["inletId"] == inlet["id"] and body["xactionId"] and body["receivedTimeMs"] > 0
    stored = _records(client, dataset["id"])
    assert [s["recordId"] for s in stored] == ["evt-1"]
    assert stored[0]["record"]["_wayline"] == {"points": 1, "tier": "gold"}
    assert stored[0]["timestamp"] == int(datetime(2026, 11, 30, 10, tzinfo=timezone.utc).timestamp() * 1000)
    counts = client.get(f"/catalog/dataSets/{dataset['id']}").json()["counts"]
    assert counts == {"records": 1, "failedRecords": 0, "batches": 0}


def test_the_inlets_default_dataset_is_used_when_the_header_names_none(client, dataset, inlet, event_schema):
    r = client.post(f"/collection/{inlet['id']}", json=message(event_schema, None, event(2)))
    assert r.status_code == 200
    assert [s["recordId"] for s in _records(client, dataset["id"])] == ["evt-2"]


def test_reingesting_the_same_id_is_idempotent(client, dataset, inlet, event_schema):
    for _ in range(3):
        r = client.post(f"/collection/{inlet['id']}", json=message(event_schema, dataset["id"], event(7)))
        assert r.status_code == 200
    assert r.json()["duplicate"] is True
    assert len(_records(client, dataset["id"])) == 1


def test_an_invalid_record_is_kept_in_failed_records_with_every_violation(client, dataset, inlet, event_schema):
    bad = event(3, _wayline={"points": "many", "tier": "bronze"})
    del bad["timestamp"]
    r = client.post(f"/collection/{inlet['id']}", json=message(event_schema, dataset["id"], bad))
    assert r.status_code == 200  # asynchronous validation: accepted, and kept with its errors
    assert r.json()["validation"] == "failed"
    failed = client.get(f"/datasets/{dataset['id']}/failures").json()["items"]
    assert len(failed) == 1 and failed[0]["record"] == bad
    pointers = {v["pointerToViolation"] for v in failed[0]["errors"]}
    assert {"/_wayline/points", "/_wayline/tier"} <= pointers
    assert any(v["keyword"] == "required" for v in failed[0]["errors"])
    assert _records(client, dataset["id"]) == []


def test_sync_validation_answers_400_with_every_violation_and_still_keeps_the_record(client, dataset, inlet,
                                                                                      event_schema):
    bad = event(4, _wayline={"points": "many", "tier": "bronze"})
    r = client.post(f"/collection/{inlet['id']}", params={"syncValidation": "true"},
                    json=message(event_schema, dataset["id"], bad))
    assert r.status_code == 400 and r.headers["content-type"] == PROBLEM
    body = r.json()
    assert {v["pointerToViolation"] for v in body["violations"]} == {"/_wayline/points", "/_wayline/tier"}
    assert {e["pointer"] for e in body["errors"]} == {"/_wayline/points", "/_wayline/tier"}
    fid = body["failedRecordId"]
    assert client.get(f"/datasets/{dataset['id']}/failures/{fid}").json()["record"] == bad


def test_failed_records_can_be_corrected_and_replayed(client, dataset, inlet, event_schema):
    bad = event(5, _wayline={"points": "many"})
    client.post(f"/collection/{inlet['id']}", json=message(event_schema, dataset["id"], bad))
    fid = client.get(f"/datasets/{dataset['id']}/failures").json()["items"][0]["id"]
    r = client.post(f"/datasets/{dataset['id']}/failures/replay", json={})
    assert r.json() == {"considered": 1, "replayed": 0, "duplicates": 0, "stillFailing": [fid]}
    fixed = event(5)
    assert client.put(f"/datasets/{dataset['id']}/failures/{fid}", json=fixed).status_code == 200
    r = client.post(f"/datasets/{dataset['id']}/failures/replay", json={"ids": [fid]})
    assert r.json()["replayed"] == 1
    assert [s["recordId"] for s in _records(client, dataset["id"])] == ["evt-5"]
    assert client.get(f"/datasets/{dataset['id']}/failures").json()["items"] == []
    assert client.get(f"/datasets/{dataset['id']}/failures/{fid}").json()["status"] == "replayed"
    r = client.post(f"/datasets/{dataset['id']}/failures/replay", json={"ids": [fid]})
    assert r.status_code == 404  # nothing is waiting under that id any more


def test_a_failed_record_can_be_discarded_deliberately(client, dataset, inlet, event_schema):
    client.post(f"/collection/{inlet['id']}", json=message(event_schema, dataset["id"], event(6, eventType=5)))
    fid = client.get(f"/datasets/{dataset['id']}/failures").json()["items"][0]["id"]
    assert client.delete(f"/datasets/{dataset['id']}/failures/{fid}").json()["status"] == "discarded"
    audit = client.get("/audit", params={"resourceType": "failedRecord"}).json()["items"]
    assert audit[0]["action"] == "discard"


def test_batch_answers_207_with_a_status_per_message(client, dataset, inlet, event_schema):
    msgs = [message(event_schema, dataset["id"], event(i)) for i in range(5)]
    msgs.append(message(event_schema, dataset["id"], event(99, eventType=1)))  # invalid: kept as failed
    msgs.append({"header": 5})  # broken envelope: refused
    msgs.append(message(event_schema, "ds_nope", event(100)))  # unknown dataset
    msgs.append(message(event_schema, dataset["id"], event(0)))  # duplicate of the first
    r = client.post(f"/collection/batch/{inlet['id']}", json={"messages": msgs})
    assert r.status_code == 207
    res = r.json()["responses"]
    assert [x["status"] for x in res] == [200] * 6 + [400, 404, 200]
    assert res[5]["validation"] == "failed" and res[5]["failedRecordId"]
    assert {e["pointer"] for e in res[6]["errors"]} == {"/messages/6/header", "/messages/6/body"}
    assert res[8]["duplicate"] is True
    assert len(_records(client, dataset["id"])) == 5


def test_bare_records_endpoint(client, dataset):
    r = client.post(f"/datasets/{dataset['id']}/records", json=[event(1), event(2), event(3, eventType=3)])
    assert r.status_code == 207
    assert r.json()["accepted"] == 2 and r.json()["failed"] == 1
    r = client.post(f"/datasets/{dataset['id']}/records", json=event(4))
    assert r.status_code == 200 and r.json()["recordId"] == "evt-4"
    r = client.post(f"/datasets/{dataset['id']}/records", params={"syncValidation": "true"},
                    json=event(5, eventType=3))
    assert r.status_code == 400 and r.json()["errors"][0]["pointer"] == "/eventType"


# -- bad input -------------------------------------------------------------------------------------

def test_malformed_json_is_a_400_problem_with_the_position(client, inlet):
    r = client.post(f"/collection/{inlet['id']}", content=b'{"header": {', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.headers["content-type"] == PROBLEM
    assert r.json()["type"].endswith("/malformed-json") and r.json()["line"] == 1


def test_wrong_content_type_is_415(client, inlet):
    r = client.post(f"/collection/{inlet['id']}", content=b"a,b\n1,2", headers={"content-type": "text/csv"})
    assert r.status_code == 415 and r.headers["content-type"] == PROBLEM


def test_body_over_the_limit_is_413(client, inlet, runtime):
    big = b'{"x": "' + b"a" * (runtime.settings.limits.max_request_bytes + 10) + b'"}'
    r = client.post(f"/collection/{inlet['id']}", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["type"].endswith("/payload-too-large")


def test_too_many_messages_is_413(client, inlet, event_schema, dataset, runtime):
    runtime.settings.limits.max_messages_per_request = 3
    msgs = [message(event_schema, dataset["id"], event(i)) for i in range(4)]
    r = client.post(f"/collection/batch/{inlet['id']}", json={"messages": msgs})
    assert r.status_code == 413 and r.json()["errors"][0]["pointer"] == "/messages"
    assert _records(client, dataset["id"]) == []


def test_unknown_inlet_dataset_and_schema_are_404(client, inlet, dataset, event_schema):
    m = message(event_schema, dataset["id"], event(1))
    assert client.post("/collection/in_nope", json=m).status_code == 404
    assert client.post(f"/collection/{inlet['id']}", json=message(event_schema, "ds_nope", event(1))).status_code == 404
    r = client.post(f"/collection/{inlet['id']}", json=message("https://ns.example/nope", dataset["id"], event(1)))
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM
    assert client.post("/datasets/ds_nope/records", json=event(1)).status_code == 404


def test_a_schema_ref_that_does_not_match_the_dataset_is_refused(client, inlet, dataset):
    profile_schema = client.post("/schemaregistry/tenant/schemas", json={
        "title": "People", "type": "object", "meta:class": "https://ns.adobe.com/xdm/context/profile",
        "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/profile"}]}).json()["$id"]
    r = client.post(f"/collection/{inlet['id']}", json=message(profile_schema, dataset["id"], event(1)))
    assert r.status_code == 400 and r.json()["type"].endswith("/schema-mismatch")
    assert r.json()["errors"][0]["pointer"] == "/header/schemaRef/id"


def test_an_event_over_10kb_is_refused_with_413(client, inlet, dataset, event_schema):
    big = event(1, eventType="x" * 11_000)
    r = client.post(f"/collection/{inlet['id']}", json=message(event_schema, dataset["id"], big))
    assert r.status_code == 413 and r.json()["type"].endswith("/record-too-large")
    assert _records(client, dataset["id"]) == []


def test_rate_limit_answers_429_with_retry_after(client, inlet, dataset, event_schema, runtime):
    from wayline.kernel.web import RateLimiter

    runtime.ingest_limiter = RateLimiter(rate_per_s=0.01, burst=2)
    codes = [client.post(f"/collection/{inlet['id']}", json=message(event_schema, dataset["id"], event(i))).status_code
             for i in range(3)]
    assert codes == [200, 200, 429]
    r = client.post(f"/collection/{inlet['id']}", json=message(event_schema, dataset["id"], event(9)))
    assert r.headers["Retry-After"].isdigit() and r.headers["content-type"] == PROBLEM
    assert len(_records(client, dataset["id"])) == 2  # what was accepted stays


def test_roles_and_sandboxes(client, inlet, dataset, event_schema, key_of, other_sandbox_key):
    m = message(event_schema, dataset["id"], event(1))
    read = {"Authorization": f"Bearer {key_of('read')}"}
    assert client.post(f"/collection/{inlet['id']}", json=m, headers=read).status_code == 403
    ingest = {"Authorization": f"Bearer {key_of('ingest')}"}
    assert client.post(f"/collection/{inlet['id']}", json=m, headers=ingest).status_code == 200
    assert client.post("/catalog/dataSets", json={"name": "x", "schemaRef": {"id": event_schema}},
                       headers=ingest).status_code == 403
    other = {"Authorization": f"Bearer {other_sandbox_key}"}
    assert client.post(f"/collection/{inlet['id']}", json=m, headers=other).status_code == 404
    assert client.get(f"/catalog/dataSets/{dataset['id']}", headers=other).status_code == 404
    assert client.get(f"/datasets/{dataset['id']}/records", headers=other).status_code == 404
    assert client.get(f"/datasets/{dataset['id']}/failures", headers=other).status_code == 404
    assert client.get("/catalog/dataSets", headers=other).json()["items"] == []
    assert client.get("/collection/inlets", headers=other).json()["items"] == []
    assert client.delete(f"/catalog/dataSets/{dataset['id']}", headers=other).status_code == 404


def test_dataset_lifecycle(client, event_schema):
    # labels are case-sensitive and must be known (core, or the sandbox's custom labels)
    r = client.post("/catalog/dataSets", json={"name": "d", "schemaRef": {"id": event_schema}, "labels": ["C2", "c2"]})
    assert r.status_code == 422 and "C2" in r.text and r.json()["errors"][0]["pointer"].startswith("/labels")
    assert client.post("/dulepolicy/labels/custom", json={"name": "pii", "friendlyName": "PII"}).status_code == 201
    r = client.post("/catalog/dataSets", json={"name": "d", "schemaRef": {"id": event_schema}, "labels": ["C2", "pii"]})
    d = r.json()
    assert d["labels"] == ["C2", "pii"] and d["profileEnabled"] is False
    r = client.patch(f"/catalog/dataSets/{d['id']}", json={"name": "renamed", "labels": ["C1"]})
    assert r.json()["name"] == "renamed" and r.json()["labels"] == ["C1"]
    bad = client.patch(f"/catalog/dataSets/{d['id']}", json={"labels": [""]})
    assert bad.status_code == 422 and bad.json()["errors"][0]["pointer"] == "/labels"
    unknown = client.patch(f"/catalog/dataSets/{d['id']}", json={"labels": ["C1", "NOPE"]})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["pointer"] == "/labels/1"
    assert client.post("/catalog/dataSets", json={"name": "d"}).json()["errors"][0]["pointer"] == "/schemaRef"
    r = client.post("/catalog/dataSets", json={"name": "d", "schemaRef": {"id": "https://ns.example/none"}})
    assert r.status_code == 404
    assert client.delete(f"/catalog/dataSets/{d['id']}").status_code == 204
    assert client.get(f"/catalog/dataSets/{d['id']}").status_code == 404


def test_profile_enabled_dataset_needs_a_profile_enabled_schema(client, event_schema):
    r = client.post("/catalog/dataSets", json={"name": "d", "schemaRef": {"id": event_schema},
                                               "tags": {"unifiedProfile": ["enabled:true"]}})
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/profileEnabled"


def test_json_with_a_charset_parameter_and_unicode_is_accepted(client, dataset, inlet, event_schema):
    e = event(8, eventType="web.päge.页面")
    raw = orjson.dumps(message(event_schema, dataset["id"], e))
    r = client.post(f"/collection/{inlet['id']}", content=raw,
                    headers={"content-type": "application/json; charset=utf-8"})
    assert r.status_code == 200
    assert _records(client, dataset["id"])[0]["record"]["eventType"] == "web.päge.页面"


def test_records_the_database_cannot_hold_are_kept_as_failed_not_500(client, dataset, inlet, event_schema):
    nul = event(20, eventType="web.\u0000page")
    long_id = event(21)
    long_id["_id"] = "x" * 600
    r = client.post(f"/collection/batch/{inlet['id']}",
                    json={"messages": [message(event_schema, dataset["id"], e) for e in (nul, long_id)]})
    assert r.status_code == 207
    assert [x.get("validation") for x in r.json()["responses"]] == ["failed", "failed"]
    failed = client.get(f"/datasets/{dataset['id']}/failures").json()["items"]
    by_kw = {v["keyword"]: f for f in failed for v in f["errors"]}
    assert "u0000" in by_kw["storage"]["raw"]  # kept, escaped, replayable after correction
    assert by_kw["maxLength"]["record"]["_id"] == "x" * 600


def test_a_nul_in_a_record_that_is_no_object_or_in_a_header_fails_its_message_only(strict_client, dataset, inlet,
                                                                                  event_schema):
    # no DataError may escape the server (PostgreSQL stores no NUL): strict_client re-raises it
    client = strict_client
    ok = message(event_schema, dataset["id"], event(40))
    bad_header = message(event_schema, dataset["id"] + "\u0000", event(41))
    not_an_object = message(event_schema, dataset["id"], "just a string \u0000")
    r = client.post(f"/collection/batch/{inlet['id']}", json={"messages": [ok, bad_header, not_an_object]})
    assert r.status_code == 207, r.text
    out = r.json()["responses"]
    assert out[0]["status"] == 200 and "validation" not in out[0], out
    assert out[1]["status"] in (404, 422), out  # SQLite finds no such dataset; PostgreSQL cannot look it up
    assert out[2]["status"] == 400, out  # the envelope wants an object: refused before storing
    r = client.post(f"/datasets/{dataset['id']}/records", json=[event(42), ["a list \u0000"]])
    assert r.status_code == 207 and r.json()["accepted"] == 1 and r.json()["failed"] == 1, r.text
    failed = client.get(f"/datasets/{dataset['id']}/failures").json()["items"]
    assert sum("u0000" in (f.get("raw") or "") for f in failed) == 1, failed


def test_the_fast_path_and_the_routed_path_answer_alike(client, dataset, inlet, event_schema):
    fast = client.post(f"/collection/{inlet['id']}", json=message(event_schema, dataset["id"], event(30)))
    routed = client.post(f"/collection/{inlet['id']}", json=message(event_schema, dataset["id"], event(31)),
                         headers={"Idempotency-Key": "k31"})  # an Idempotency-Key takes the routed path
    assert fast.status_code == routed.status_code == 200
    assert set(fast.json()) == set(routed.json()) == {"inletId", "xactionId", "receivedTimeMs"}
    bad_fast = client.post(f"/collection/{inlet['id']}", content=b"{", headers={"content-type": "application/json"})
    bad_routed = client.post(f"/collection/{inlet['id']}", content=b"{",
                             headers={"content-type": "application/json", "Idempotency-Key": "k32"})
    assert bad_fast.json()["type"] == bad_routed.json()["type"] and bad_fast.status_code == 400
    assert bad_fast.headers["content-type"] == "application/problem+json"
    text = client.get("/metrics").text
    assert 'wayline_http_requests_total{method="POST",route="/collection/{inlet_id}",status="200"}' in text
