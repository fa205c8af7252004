"""API keys, roles, sandbox isolation and problem+json at the installation level."""

from __future__ import annotations

import sqlalchemy as sa

from wayline.kernel import tables as t

PROBLEM = "application/problem+json"


def test_requests_without_a_key_or_with_a_bad_one_get_401_problem(client):
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer nonsense"},
                    {"Authorization": "Bearer wl_abc_def"}):
        r = client.get("/sandbox", headers=headers)
        assert r.status_code == 401
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["type"].endswith("/unauthorized")


def test_the_key_identifies_its_sandbox_and_role(client, runtime):
    r = client.get("/sandbox")
    assert r.status_code == 200
    assert r.json()["sandbox"]["name"] == "prod" and r.json()["role"] == "admin"
    assert client.get("/sandbox", headers={"x-sandbox-name": "dev"}).status_code == 403


def test_keys_are_stored_hashed_shown_once_and_revocable(client, runtime):
    r = client.post("/keys", json={"role": "read", "name": "dashboards"})
    assert r.status_code == 201
    created = r.json()
    key = created["key"]
    stored = runtime.store.read_sync(lambda c: c.execute(sa.select(t.api_keys).where(
        t.api_keys.c.id == created["id"])).mappings().one())
    assert key not in str(dict(stored)) and len(stored["hash"]) == 64
    listed = client.get("/keys").json()["items"]
    assert {k["id"] for k in listed} >= {created["id"]} and all("key" not in k for k in listed)
    assert client.get("/sandbox", headers={"Authorization": f"Bearer {key}"}).json()["role"] == "read"
    assert client.delete(f"/keys/{created['id']}").status_code == 200
    r = client.get("/sandbox", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 401 and r.json()["type"].endswith("/key-revoked")
    audit = client.get("/audit", params={"resourceType": "apiKey"}).json()["items"]
    assert [a["action"] for a in audit][:2] == ["revoke", "create"]


def test_an_expired_key_is_refused(client):
    key = client.post("/keys", json={"role": "read", "expiresMs": 1}).json()["key"]
    r = client.get("/sandbox", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 401 and r.json()["type"].endswith("/key-expired")


def test_roles_are_enforced(client, key_of):
    read = key_of("read")
    r = client.post("/keys", json={"role": "admin"}, headers={"Authorization": f"Bearer {read}"})
    assert r.status_code == 403 and r.headers["content-type"] == PROBLEM


def test_keys_of_another_sandbox_are_invisible(client, other_sandbox_key):
    mine = client.post("/keys", json={"role": "read"}).json()["id"]
    other = {"Authorization": f"Bearer {other_sandbox_key}"}
    assert mine not in {k["id"] for k in client.get("/keys", headers=other).json()["items"]}
    assert client.delete(f"/keys/{mine}", headers=other).status_code == 404
    assert client.get("/audit", headers=other).json()["items"] == [] or all(
        a["resourceId"] != mine for a in client.get("/audit", headers=other).json()["items"])


def test_validation_errors_are_problems_with_field_pointers(client):
    r = client.post("/keys", json={"role": "emperor", "name": 5})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    pointers = {e["pointer"] for e in r.json()["errors"]}
    assert pointers == {"/role", "/name"}


def test_paging_walks_every_item_once(client):
    for i in range(7):
        client.post("/keys", json={"role": "read", "name": f"k{i}"})
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = client.get("/audit", params=params).json()
        seen += [a["id"] for a in body["items"]]
        cursor = body["next"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) >= 8 and seen == sorted(seen, reverse=True)
    r = client.get("/audit", params={"cursor": "!!"})
    assert r.status_code == 400 and r.json()["errors"][0]["pointer"] == "query:/cursor"


def test_health_ready_and_metrics(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    client.get("/sandbox")
    text = client.get("/metrics").text
    assert 'wayline_http_requests_total{method="GET",route="/sandbox",status="200"}' in text


def test_unknown_route_is_a_problem(client):
    r = client.get("/no/such/thing")
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM


def test_a_key_expiry_out_of_range_is_a_422_not_a_server_error(client):
    # found by the API fuzzer: an integer past 64 bits reached the database
    for bad in (-1895535813320602686586880, -1, 253_402_300_800_000):
        r = client.post("/keys", json={"role": "read", "expiresMs": bad})
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, (bad, r.text)
        assert r.json()["errors"][0]["pointer"] == "/expiresMs"
    assert client.post("/keys", json={"role": "read", "expiresMs": 253_402_300_799_999}).status_code == 201


def test_a_value_the_database_cannot_store_is_a_422_not_a_server_error(strict_client, runtime):
    # found by the API fuzzer on PostgreSQL, which stores no NUL in text: a key named "\u0000", a
    # query parameter "%00"
    r = strict_client.post("/keys", json={"role": "read", "name": "a\u0000b"})
    q = strict_client.get("/audit", params={"resourceType": "\u0000"})
    if runtime.store.engine.dialect.name == "postgresql":
        for got in (r, q):
            assert got.status_code == 422 and got.headers["content-type"] == PROBLEM, got.text
            assert got.json()["type"].endswith("/unstorable-value") and "NUL" in got.json()["detail"]
    else:  # SQLite stores and finds it
        assert r.status_code == 201 and q.status_code == 200, (r.text, q.text)


def test_a_json_body_with_a_nul_in_a_string_is_refused_with_its_pointer(client):
    # handler-read bodies are checked before anything is stored, on every database alike
    r = client.post("/identity/namespaces", content=b'{"code": "X\\u0000", "name": "n", "idType": "COOKIE"}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text
    assert r.json()["errors"] == [{"pointer": "/code", "detail": "remove the NUL character (\\u0000)",
                                   "expected": "no-nul"}]
    # deep nesting is walked without recursion
    deep = b'{"code": ' + b"[" * 1000 + b'"\\u0000"' + b"]" * 1000 + b"}"
    r = client.post("/identity/namespaces", content=deep, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"].startswith("/code/0/0/0"), r.text[:300]
    # an escaped backslash followed by "u0000" is no NUL
    r = client.post("/identity/namespaces", content=b'{"code": "X\\\\u0000", "name": "n", "idType": "COOKIE"}',
                    headers={"content-type": "application/json"})
    assert r.status_code != 422 or "NUL" not in r.text, r.text


def test_row_ids_past_64_bits_are_a_422_not_a_server_error(strict_client):
    huge, c = 2**70, strict_client
    for r in (c.get(f"/datasets/ds_x/failures/{huge}"), c.delete(f"/datasets/ds_x/failures/{huge}"),
              c.post("/datasets/ds_x/failures/replay", json={"ids": [huge]})):
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text


def test_a_method_the_path_does_not_serve_is_405_with_every_method_it_does(client):
    r = client.request("OPTIONS", "/catalog/dataSets/ds_nope")  # three routes share the path
    assert r.status_code == 405 and r.headers["content-type"] == PROBLEM
    assert r.headers["allow"] == "DELETE, GET, PATCH"
    # a literal segment is not taken for a numeric parameter of the path beside it
    r = client.put("/datasets/ds_nope/failures/replay", json={})
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert client.get("/datasets/ds_nope/failures/12").status_code == 404


def test_the_api_document_describes_errors_as_problems(client):
    doc = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert doc["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status"]
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["responses"]["default"]["content"] == problem, (method, path)
            if "422" in op["responses"]:
                assert op["responses"]["422"]["content"] == problem, (method, path)
    answer = doc["paths"]["/audit"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer.get("type") == "object"  # documented by the route's return type, not as a string
    assert "text/plain" in doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]


def test_idempotency_key_replays_the_first_answer(client):
    h = {"Idempotency-Key": "create-dash-key"}
    first = client.post("/keys", json={"role": "read", "name": "dash"}, headers=h)
    again = client.post("/keys", json={"role": "read", "name": "dash"}, headers=h)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert sum(1 for k in client.get("/keys").json()["items"] if k["name"] == "dash") == 1
    other = client.post("/keys", json={"role": "admin", "name": "dash"}, headers=h)
    assert other.status_code == 422 and other.json()["type"].endswith("/idempotency-key-reused")


def test_a_failed_request_does_not_burn_its_idempotency_key(client):
    h = {"Idempotency-Key": "k2"}
    assert client.post("/keys", json={"role": "nope"}, headers=h).status_code == 422
    assert client.post("/keys", json={"role": "read"}, headers=h).status_code == 201
