"""Batch ingestion through /batches, as a client of the reference would use it, on both databases."""

from __future__ import annotations

import io
import threading
import time
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from tests.platform.conftest import event
from wayline.platform import batch_processing, batches
from wayline.platform import tables as pt

PROBLEM = "application/problem+json"


def jsonl(records: list[Any]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def new_batch(client, dataset_id: str, fmt: str = "json", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"datasetId": dataset_id, "inputFormat": {"format": fmt}}
    if "multiline" in extra:
        body["inputFormat"]["isMultiLineJson"] = extra.pop("multiline")
    body.update(extra)
    r = client.post("/batches", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def put(client, batch_id: str, dataset_id: str, name: str, data: bytes):
    return client.put(f"/batches/{batch_id}/datasets/{dataset_id}/files/{name}", content=data,
                      headers={"Content-Type": "application/octet-stream"})


def complete(client, batch_id: str, wait: bool = True):
    return client.post(f"/batches/{batch_id}", params={"action": "COMPLETE", "wait": str(wait).lower()})


def load(client, dataset_id: str, files: dict[str, bytes], fmt: str = "json", **extra: Any) -> dict[str, Any]:
    b = new_batch(client, dataset_id, fmt, **extra)
    for name, data in files.items():
        r = put(client, b["id"], dataset_id, name, data)
        assert r.status_code == 200, r.text
    r = complete(client, b["id"])
    assert r.status_code == 200, r.text
    return r.json()


def records(client, dataset_id: str) -> list[dict[str, Any]]:
    return client.get(f"/datasets/{dataset_id}/records", params={"limit": 1000}).json()["items"]


def failed_rows(runtime, batch_id: str) -> int:
    f = pt.failed_records
    return runtime.store.read_sync(lambda c: c.execute(sa.select(sa.func.count()).select_from(f)
                                                       .where(f.c.batch_id == batch_id)).scalar_one())


# -- formats ---------------------------------------------------------------------------------------

def test_a_json_lines_batch_is_created_uploaded_completed_and_stored(client, runtime, dataset):
    b = new_batch(client, dataset["id"])
    assert b["status"] == "loading" and b["inputFormat"] == {"format": "json", "isMultiLineJson": False}
    r = put(client, b["id"], dataset["id"], "part-1.jsonl", jsonl([event(i) for i in range(3)]))
    assert r.status_code == 200 and r.json()["size"] > 0
    assert [f["name"] for f in client.get(f"/batches/{b['id']}").json()["files"]] == ["part-1.jsonl"]
    done = complete(client, b["id"]).json()
    assert done["status"] == "success"
    assert done["counts"] == {"total": 3, "ok": 3, "duplicate": 0, "failed": 0}
    assert done["completed"] >= done["created"]
    stored = records(client, dataset["id"])
    assert [s["recordId"] for s in stored] == ["evt-0", "evt-1", "evt-2"]
    assert {s["batchId"] for s in stored} == {b["id"]}
    assert client.get(f"/catalog/dataSets/{dataset['id']}").json()["counts"]["batches"] == 1
    listed = client.get("/batches", params={"datasetId": dataset["id"]}).json()
    assert [x["id"] for x in listed["items"]] == [b["id"]] and listed["next"] is None
    from wayline.kernel import tables as kt

    audit = runtime.store.read_sync(lambda c: c.execute(
        sa.select(kt.audit_log.c.action).where(kt.audit_log.c.resource_type == "batch",
                                               kt.audit_log.c.resource_id == b["id"])
        .order_by(kt.audit_log.c.id)).scalars().all())
    assert audit == ["create", "complete"]


def test_multiline_json_files_are_processed_in_name_order_and_known_ids_are_duplicates(client, dataset):
    load(client, dataset["id"], {"a.jsonl": jsonl([event(1)])})
    files = {"b.json": orjson.dumps([event(3), event(4)], option=orjson.OPT_INDENT_2),
             "a.json": orjson.dumps(event(1), option=orjson.OPT_INDENT_2)}
    done = load(client, dataset["id"], files, multiline=True)
    assert done["status"] == "success"
    assert done["counts"] == {"total": 3, "ok": 2, "duplicate": 1, "failed": 0}
    assert [s["recordId"] for s in records(client, dataset["id"])] == ["evt-1", "evt-3", "evt-4"]


def test_a_large_file_is_stored_in_parts_and_streamed_back(client, runtime, dataset, monkeypatch):
    monkeypatch.setattr(batches, "PART_BYTES", 100)
    b = new_batch(client, dataset["id"])
    data = jsonl([event(i) for i in range(20)])
    assert put(client, b["id"], dataset["id"], "big.jsonl", data).json()["size"] == len(data)
    f = pt.batch_files
    parts = runtime.store.read_sync(lambda c: c.execute(sa.select(sa.func.count()).select_from(f)
                                                        .where(f.c.batch_id == b["id"])).scalar_one())
    assert parts == -(-len(data) // 100)
    assert complete(client, b["id"]).json()["counts"]["ok"] == 20


def test_csv_with_a_nested_mapping_coerces_by_the_schemas_types(client, dataset):
    data = (b"id,when,kind,points,tier\n"
            b"c1,2026-11-30T10:00:00Z,web.webpagedetails.pageViews,12,gold\n"
            b"c2,2026-11-30T11:00:00Z,web.webpagedetails.pageViews,,silver\n"
            b"c3,2026-11-30T12:00:00Z,web.webpagedetails.pageViews,lots,gold\n")
    mapping = {"id": "_id", "when": "timestamp", "kind": "eventType", "points": "_wayline.points",
               "tier": "_wayline.tier"}
    done = load(client, dataset["id"], {"events.csv": data}, "csv", mapping=mapping)
    assert done["status"] == "partial" and done["mapping"] == mapping
    assert done["counts"] == {"total": 3, "ok": 2, "duplicate": 0, "failed": 1}
    stored = {s["recordId"]: s["record"] for s in records(client, dataset["id"])}
    assert stored["c1"]["_wayline"] == {"points": 12, "tier": "gold"}  # an integer, as the schema says
    assert stored["c2"]["_wayline"] == {"tier": "silver"}  # an empty cell is absent
    (bad,) = client.get(f"/batches/{done['id']}/failed").json()["items"]
    assert bad["recordId"] == "c3" and bad["record"]["_wayline"]["points"] == "lots"
    assert any(v["pointerToViolation"] == "/_wayline/points" for v in bad["errors"])


def test_parquet_made_with_pyarrow_maps_structs_and_timestamps(client, dataset):
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "_id": ["pq1", "pq2"],
        "timestamp": pa.array([dt.datetime(2026, 11, 30, 10), dt.datetime(2026, 11, 30, 11)], pa.timestamp("us")),
        "eventType": ["commerce.purchases", "commerce.purchases"],
        "_wayline": pa.array([{"points": 5, "tier": "gold"}, {"points": 7, "tier": None}],
                             pa.struct([("points", pa.int64()), ("tier", pa.string())])),
    })
    buf = io.BytesIO()
    pq.write_table(table, buf)
    done = load(client, dataset["id"], {"events.parquet": buf.getvalue()}, "parquet")
    assert done["status"] == "success", done
    stored = {s["recordId"]: s for s in records(client, dataset["id"])}
    assert stored["pq1"]["record"]["timestamp"] == "2026-11-30T10:00:00Z"
    assert stored["pq1"]["timestamp"] == 1796032800000  # 2026-11-30T10:00:00Z
    assert stored["pq2"]["record"]["_wayline"] == {"points": 7}


# -- failures, correction, replay ----------------------------------------------------------------------

def test_a_partial_batch_keeps_every_failure_and_correction_and_replay_complete_the_dataset(client, dataset):
    big = event(5, padding="x" * 11_000)  # over the 10 KB experience event limit
    data = (jsonl([event(1), event(2), event(3, _wayline={"points": "many"})]) + b"{not json\n"
            + jsonl([big, event(4)]))
    done = load(client, dataset["id"], {"mixed.jsonl": data})
    assert done["status"] == "partial"
    assert done["counts"] == {"total": 6, "ok": 3, "duplicate": 0, "failed": 3}
    assert any(e["code"] == "records-failed" for e in done["errors"])
    failed = client.get(f"/batches/{done['id']}/failed").json()["items"]
    assert len(failed) == 3 and {f["batchId"] for f in failed} == {done["id"]}
    by_kind = {f["errors"][0]["keyword"]: f for f in failed}
    assert by_kind["format"]["raw"] == "{not json"
    assert by_kind["maxSize"]["record"]["_id"] == "evt-5"
    assert any(v["pointerToViolation"] == "/_wayline/points" for f in failed for v in f["errors"])
    fixes = {by_kind["format"]["id"]: event(10), by_kind["maxSize"]["id"]: event(5)}
    fixes[next(f["id"] for f in failed if f["id"] not in fixes)] = event(3)
    for fid, fixed in fixes.items():
        r = client.put(f"/datasets/{dataset['id']}/failures/{fid}", json=fixed)
        assert r.status_code == 200, r.text
    r = client.post(f"/datasets/{dataset['id']}/failures/replay", json={"batchId": done["id"]})
    assert r.status_code == 200 and r.json()["replayed"] == 3 and r.json()["stillFailing"] == []
    counts = client.get(f"/catalog/dataSets/{dataset['id']}").json()["counts"]
    assert counts == {"records": 6, "failedRecords": 0, "batches": 1}
    assert client.get(f"/batches/{done['id']}/failed").json()["items"] == []
    assert len(client.get(f"/batches/{done['id']}/failed", params={"status": "all"}).json()["items"]) == 3


def test_a_batch_with_only_failures_fails_and_an_empty_file_holds_no_records(client, dataset):
    done = load(client, dataset["id"], {"bad.jsonl": b"nope\nnot either\n"})
    assert done["status"] == "failed" and done["counts"]["failed"] == 2
    assert done["errors"][0]["code"] == "file-format" and "line 1" in done["errors"][0]["message"]
    empty = load(client, dataset["id"], {"empty.jsonl": b""})
    assert empty["status"] == "failed" and empty["counts"]["total"] == 0
    assert empty["errors"][0]["code"] == "no-records"


@pytest.mark.parametrize("fmt,data,says", [
    ("parquet", jsonl([event(1)]), "not a readable Parquet file"),
    ("csv", b"a,b\n\xff\xfe\x00garbage", "not UTF-8"),
    ("json", b"PAR1\x15\x04\x15\x00\x00", "is a Parquet file"),
])
def test_content_in_the_wrong_format_fails_the_batch_with_a_clear_error(client, dataset, fmt, data, says):
    done = load(client, dataset["id"], {"file": data}, fmt)
    assert done["status"] == "failed"
    assert says in done["errors"][0]["message"] and done["errors"][0]["file"] == "file"
    (kept,) = client.get(f"/batches/{done['id']}/failed").json()["items"]
    assert says in kept["errors"][0]["message"]


def test_a_record_the_database_refuses_is_kept_as_failed_text(client, runtime, dataset):
    # PostgreSQL's JSONB has no NUL character; the batch must not wedge on such a record.
    done = load(client, dataset["id"], {"nul.jsonl": jsonl([event(1, eventType="web.\u0000"), event(2)])})
    # Refused the same way on both databases, before it reaches either.
    assert done["counts"]["total"] == 2 and done["status"] == "partial"
    (kept,) = client.get(f"/batches/{done['id']}/failed").json()["items"]
    assert kept["errors"][-1]["keyword"] == "storage" and "evt-1" in kept["raw"]
    assert [s["recordId"] for s in records(client, dataset["id"])] == ["evt-2"]


# -- idempotency and resumption ------------------------------------------------------------------------

def test_completing_again_changes_nothing(client, runtime, dataset):
    done = load(client, dataset["id"], {"f.jsonl": jsonl([event(1), {"_id": "x"}])})
    for wait in (True, False):
        again = complete(client, done["id"], wait)
        assert again.status_code == 200 and again.json()["counts"] == done["counts"]
    assert len(records(client, dataset["id"])) == 1 and failed_rows(runtime, done["id"]) == 1


def _processing(client, runtime, dataset_id: str, data: bytes) -> tuple[Any, Any, Any]:
    b = new_batch(client, dataset_id)
    put(client, b["id"], dataset_id, "f.jsonl", data)
    sandbox = runtime.store.read_sync(lambda c: c.execute(sa.select(pt.batches.c.sandbox_id)).scalar_one())
    batch, mine = runtime.store.run(lambda c: batches.start_complete(c, sandbox_id=sandbox, batch_id=b["id"],
                                                                     actor="test"))
    assert mine and batch.status == "processing"
    ds = runtime.platform.dataset(sandbox, dataset_id)
    return batch, ds, runtime.platform.compiled_for(ds)


def test_an_interrupted_batch_resumes_from_its_checkpoint_without_duplicates(client, runtime, dataset):
    data = jsonl([event(i) if i % 3 else {"_id": f"bad-{i}"} for i in range(10)])
    batch, ds, compiled = _processing(client, runtime, dataset["id"], data)

    def crash(done: int, _bytes: int) -> None:
        if done >= 4:
            raise KeyboardInterrupt("the process dies after two chunks")

    with pytest.raises(KeyboardInterrupt):
        batch_processing.process_batch(runtime.store, batch, dataset=ds, compiled=compiled,
                                       limits=runtime.platform.limits, chunk=2, on_progress=crash)
    mid = client.get(f"/batches/{batch.id}").json()
    assert mid["status"] == "processing" and mid["counts"]["total"] == 4
    assert failed_rows(runtime, batch.id) == 2
    done = complete(client, batch.id).json()  # the lease was released, so this resumes at once
    assert done["status"] == "partial"
    assert done["counts"] == {"total": 10, "ok": 6, "duplicate": 0, "failed": 4}
    assert len(records(client, dataset["id"])) == 6 and failed_rows(runtime, batch.id) == 4


def test_a_batch_held_by_a_live_processor_is_left_alone_until_its_lease_ends(client, runtime, dataset):
    batch, _, _ = _processing(client, runtime, dataset["id"], jsonl([event(1)]))
    r = complete(client, batch.id)
    assert r.status_code == 202 and r.json()["status"] == "processing"
    assert records(client, dataset["id"]) == []
    runtime.store.run(lambda c: c.execute(pt.batches.update().values(lease_until_ms=1)))  # the holder died
    assert complete(client, batch.id).json()["status"] == "success"


def test_two_processors_racing_on_one_batch_store_each_record_once(client, runtime, dataset):
    data = jsonl([event(i) if i % 4 else {"_id": f"bad-{i}"} for i in range(40)])
    batch, ds, compiled = _processing(client, runtime, dataset["id"], data)
    results = []

    def run() -> None:
        results.append(batch_processing.process_batch(runtime.store, batch, dataset=ds, compiled=compiled,
                                                      limits=runtime.platform.limits, chunk=3))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    final = client.get(f"/batches/{batch.id}").json()
    assert final["status"] == "partial"
    assert final["counts"] == {"total": 40, "ok": 30, "duplicate": 0, "failed": 10}
    assert failed_rows(runtime, batch.id) == 10 and len(records(client, dataset["id"])) == 30


def test_completion_runs_in_the_background_by_default(client, dataset):
    b = new_batch(client, dataset["id"])
    put(client, b["id"], dataset["id"], "f.jsonl", jsonl([event(i) for i in range(50)]))
    r = complete(client, b["id"], wait=False)
    assert r.status_code == 202 and r.json()["status"] == "processing"
    assert r.headers["Location"] == f"/batches/{b['id']}"
    deadline = time.monotonic() + 30
    while (status := client.get(f"/batches/{b['id']}").json()["status"]) == "processing":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert status == "success" and len(records(client, dataset["id"])) == 50


# -- the lifecycle's rules --------------------------------------------------------------------------------

def test_bad_batch_requests_are_problems(client, dataset):
    r = client.post("/batches", json={"datasetId": "ds_nope", "inputFormat": {"format": "json"}})
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM
    r = client.post("/batches", json={"datasetId": dataset["id"], "inputFormat": {"format": "xml"}})
    assert r.status_code == 422
    r = client.post("/batches", json={"datasetId": dataset["id"], "inputFormat": {"format": "json"},
                                      "mapping": {"a": "b"}})
    assert r.status_code == 422 and "JSON records" in r.json()["detail"]
    r = client.post("/batches", json={"datasetId": dataset["id"], "inputFormat": {"format": "csv"},
                                      "mapping": {"a": "b..c"}})
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/mapping/a"


def test_uploads_and_completion_follow_the_lifecycle(client, dataset, event_schema):
    b = new_batch(client, dataset["id"])
    other = client.post("/catalog/dataSets", json={"name": "other", "schemaRef": {"id": event_schema}}).json()
    assert put(client, "bt_nope", dataset["id"], "f", b"{}").status_code == 404
    assert put(client, b["id"], "ds_nope", "f", b"{}").status_code == 404
    r = put(client, b["id"], other["id"], "f", b"{}")
    assert r.status_code == 400 and r.json()["type"].endswith("/wrong-dataset")
    r = complete(client, b["id"])
    assert r.status_code == 400 and r.json()["type"].endswith("/no-files")
    assert complete(client, "bt_nope").status_code == 404
    assert client.post(f"/batches/{b['id']}", params={"action": "FINISH"}).status_code == 400
    assert put(client, b["id"], dataset["id"], "f.jsonl", b"x\n").status_code == 200
    assert put(client, b["id"], dataset["id"], "f.jsonl", jsonl([event(1)])).status_code == 200  # replaces it
    assert complete(client, b["id"]).json()["counts"]["total"] == 1
    r = put(client, b["id"], dataset["id"], "g.jsonl", jsonl([event(2)]))
    assert r.status_code == 409
    r = client.post(f"/batches/{b['id']}", params={"action": "ABORT"})
    assert r.status_code == 409


def test_an_aborted_batch_is_never_processed(client, runtime, dataset):
    b = new_batch(client, dataset["id"])
    put(client, b["id"], dataset["id"], "f.jsonl", jsonl([event(1)]))
    for _ in range(2):
        r = client.post(f"/batches/{b['id']}", params={"action": "abort"})
        assert r.status_code == 200 and r.json()["status"] == "aborted"
    assert complete(client, b["id"]).status_code == 409
    assert put(client, b["id"], dataset["id"], "g.jsonl", b"{}").status_code == 409
    assert records(client, dataset["id"]) == []
    from wayline.kernel import tables as kt

    actions = runtime.store.read_sync(lambda c: c.execute(
        sa.select(kt.audit_log.c.action).where(kt.audit_log.c.resource_id == b["id"])).scalars().all())
    assert sorted(actions) == ["abort", "create"]


def test_a_file_over_the_limit_is_refused_and_leaves_nothing_behind(client, runtime, dataset, monkeypatch):
    monkeypatch.setattr(batches, "MAX_FILE_BYTES", 1000)
    monkeypatch.setattr(batches, "PART_BYTES", 300)
    b = new_batch(client, dataset["id"])
    r = put(client, b["id"], dataset["id"], "big.jsonl", b"x" * 1001)
    assert r.status_code == 413 and r.headers["content-type"] == PROBLEM

    def chunks():
        yield b"y" * 900
        yield b"y" * 900

    with pytest.raises(Exception) as exc:
        batches.upload_file(runtime.store, sandbox_id=_sandbox(runtime), batch_id=b["id"],
                            dataset_id=dataset["id"], name="streamed.jsonl", chunks=chunks(), max_bytes=1000)
    assert getattr(exc.value, "status", None) == 413
    f = pt.batch_files
    assert runtime.store.read_sync(lambda c: c.execute(sa.select(sa.func.count()).select_from(f)).scalar_one()) == 0
    assert client.get(f"/batches/{b['id']}").json()["files"] == []


def _sandbox(runtime) -> str:
    from wayline.kernel import tenancy

    return runtime.store.read_sync(tenancy.get_sandbox, "prod").id


def test_batches_are_listed_newest_first_a_page_at_a_time(client, dataset):
    ids = [new_batch(client, dataset["id"])["id"] for _ in range(3)]
    first = client.get("/batches", params={"limit": 2}).json()
    assert [x["id"] for x in first["items"]] == ids[::-1][:2] and first["next"]
    rest = client.get("/batches", params={"limit": 2, "cursor": first["next"]}).json()
    assert [x["id"] for x in rest["items"]] == [ids[0]] and rest["next"] is None
    assert client.get("/batches", params={"status": "loading"}).json()["items"]
    assert client.get("/batches", params={"status": "success"}).json()["items"] == []
    assert client.get("/batches", params={"status": "odd"}).status_code == 422


# -- who may do what ---------------------------------------------------------------------------------------

def test_roles_ingest_writes_read_reads(client, dataset, key_of):
    ingest = {"Authorization": f"Bearer {key_of('ingest')}"}
    read = {"Authorization": f"Bearer {key_of('read')}"}
    body = {"datasetId": dataset["id"], "inputFormat": {"format": "json"}}
    assert client.post("/batches", json=body, headers=read).status_code == 403
    r = client.post("/batches", json=body, headers=ingest)
    assert r.status_code == 201
    bid = r.json()["id"]
    url = f"/batches/{bid}/datasets/{dataset['id']}/files/f.jsonl"
    assert client.put(url, content=jsonl([event(1)]), headers=read).status_code == 403
    assert client.put(url, content=jsonl([event(1)]), headers=ingest).status_code == 200
    assert client.post(f"/batches/{bid}", params={"action": "COMPLETE", "wait": "true"},
                       headers=read).status_code == 403
    assert client.post(f"/batches/{bid}", params={"action": "COMPLETE", "wait": "true"},
                       headers=ingest).json()["status"] == "success"
    assert client.get(f"/batches/{bid}", headers=read).status_code == 200
    assert client.get(f"/batches/{bid}/failed", headers=read).status_code == 200
    assert client.get(f"/batches/{bid}", headers=ingest).status_code == 200  # follows what it sent


def test_another_sandbox_sees_nothing(client, dataset, other_sandbox_key):
    done = load(client, dataset["id"], {"f.jsonl": jsonl([event(1), {"_id": "bad"}])})
    open_batch = new_batch(client, dataset["id"])
    other = {"Authorization": f"Bearer {other_sandbox_key}"}
    for bid in (done["id"], open_batch["id"]):
        assert client.get(f"/batches/{bid}", headers=other).status_code == 404
        assert client.get(f"/batches/{bid}/failed", headers=other).status_code == 404
        assert client.post(f"/batches/{bid}", params={"action": "COMPLETE"}, headers=other).status_code == 404
        assert client.post(f"/batches/{bid}", params={"action": "ABORT"}, headers=other).status_code == 404
        r = client.put(f"/batches/{bid}/datasets/{dataset['id']}/files/x.jsonl", content=b"{}", headers=other)
        assert r.status_code == 404
    assert client.get("/batches", headers=other).json()["items"] == []
    r = client.post("/batches", json={"datasetId": dataset["id"], "inputFormat": {"format": "json"}}, headers=other)
    assert r.status_code == 404
    assert client.get(f"/batches/{open_batch['id']}").json()["files"] == []
