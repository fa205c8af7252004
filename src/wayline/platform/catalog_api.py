"""Datasets (`/catalog/dataSets`, as the reference names them), their records and failed records."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from wayline.kernel.paging import page
from wayline.kernel.problems import FieldError, Problem
from wayline.kernel.tenancy import Principal
from wayline.kernel.web import json_response, parse_json, principal, read_body, read_json
from wayline.platform import datasets as ds
from wayline.platform import failures, tables
from wayline.platform.ingestion import too_many_messages, violations_problem

router = APIRouter(tags=["datasets"])
ROW_ID_MAX = 2**63 - 1  # the largest id a database row has: a larger one names nothing (and overflows SQLite)
FailedId = Annotated[int, Path(ge=1, le=ROW_ID_MAX, description="the failed record's id")]
READ = ("admin", "read")


def _svc(request: Request) -> Any:
    return request.app.state.runtime.platform


class SchemaRef(BaseModel):
    id: str = Field(..., min_length=1)
    contentType: str | None = None


class DatasetIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(..., min_length=1, max_length=500)
    description: str = ""
    schemaRef: SchemaRef
    profileEnabled: bool = False
    labels: list[str] = Field(default_factory=list)
    tags: dict[str, list[str]] = Field(default_factory=dict, description="reference-style tags; "
                                       "unifiedProfile: ['enabled:true'] enables the dataset for profile")


class DatasetPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=500)
    description: str | None = None
    profileEnabled: bool | None = None
    labels: list[str] | None = None


@router.post("/catalog/dataSets", status_code=201, summary="Create a dataset bound to one schema")
async def create_dataset(body: DatasetIn, request: Request, p: Principal = Depends(principal)) -> Any:
    p.require("admin")
    enabled = body.profileEnabled or "enabled:true" in body.tags.get("unifiedProfile", [])
    labels = ds.check_labels(body.labels)
    d = await _svc(request).create_dataset(sandbox_id=p.sandbox_id, name=body.name, schema_id=body.schemaRef.id,
                                           description=body.description, profile_enabled=enabled, labels=labels,
                                           actor=p.actor)
    return json_response(d.to_api(), 201, headers={"Location": f"/catalog/dataSets/{d.id}"})


@router.get("/catalog/dataSets", summary="List datasets")
async def list_datasets(request: Request, p: Principal = Depends(principal), limit: int = Query(50, ge=1, le=500),
                        cursor: str | None = None) -> Any:
    p.require(*READ)
    return await request.app.state.runtime.store.read(lambda c: ds.list_datasets(c, p.sandbox_id, limit=limit,
                                                                                 cursor=cursor))


@router.get("/catalog/dataSets/{dataset_id}", summary="A dataset with its record, failure and batch counts")
async def get_dataset(dataset_id: str, request: Request, p: Principal = Depends(principal)) -> Any:
    p.require(*READ)

    def q(c: sa.Connection) -> dict[str, Any]:
        d = ds.get_dataset(c, p.sandbox_id, dataset_id)
        return d.to_api(ds.dataset_counts(c, d.id))

    return await request.app.state.runtime.store.read(q)


@router.patch("/catalog/dataSets/{dataset_id}", summary="Rename, relabel or enable a dataset for profile")
async def patch_dataset(dataset_id: str, body: DatasetPatch, request: Request,
                        p: Principal = Depends(principal)) -> Any:
    p.require("admin")
    changes: dict[str, Any] = {}
    if body.name is not None:
        changes["name"] = body.name
    if body.description is not None:
        changes["description"] = body.description
    if body.labels is not None:
        changes["labels"] = ds.check_labels(body.labels)
    if body.profileEnabled is not None:
        changes["profile_enabled"] = body.profileEnabled
    d = await _svc(request).update_dataset(sandbox_id=p.sandbox_id, dataset_id=dataset_id, changes=changes,
                                           actor=p.actor)
    return d.to_api()


@router.delete("/catalog/dataSets/{dataset_id}", status_code=204, response_model=None,
               summary="Delete a dataset and its data")
async def delete_dataset(dataset_id: str, request: Request, p: Principal = Depends(principal)) -> Any:
    p.require("admin")
    await _svc(request).delete_dataset(sandbox_id=p.sandbox_id, dataset_id=dataset_id, actor=p.actor)
    return _no_content()


def _no_content() -> Any:
    from fastapi.responses import Response

    return Response(status_code=204)


# -- records ---------------------------------------------------------------------------------------

@router.post("/datasets/{dataset_id}/records", summary="Ingest bare records (one object or an array)")
async def post_records(dataset_id: str, request: Request, p: Principal = Depends(principal),
                       syncValidation: bool = False) -> Any:
    p.require("admin", "ingest")
    rt = request.app.state.runtime
    svc = rt.platform
    raw = await read_body(request, svc.limits.max_request_bytes)
    cap = svc.limits.max_messages_per_request
    if svc.prepare_pool.wanted(len(raw)) and raw[:64].lstrip()[:1] == b"[":
        # a large array: parsed and decided in a prepare worker, on another core (prepare_pool)
        is_list = True
        dataset = svc.dataset(p.sandbox_id, dataset_id)
        decided = await svc.prepare_many(dataset, raw)
        if len(decided) > cap:
            raise too_many_messages(len(decided), cap)
        rt.ingest_limiter.take(p.sandbox_id, max(1, len(decided)))
    else:
        body = parse_json(raw, records=True)
        is_list = isinstance(body, list)
        records = body if is_list else [body]
        if len(records) > cap:
            raise too_many_messages(len(records), cap)
        rt.ingest_limiter.take(p.sandbox_id, max(1, len(records)))
        dataset = svc.dataset(p.sandbox_id, dataset_id)
        decided = svc.prepare_records(dataset, records)
    prepared = [d for d in decided if not isinstance(d, Problem)]
    stored = iter(await svc.store_records(p.sandbox_id, prepared))
    results = []
    for i, d in enumerate(decided):
        if isinstance(d, Problem):
            results.append({"index": i, "status": d.status, "title": d.title, "detail": d.detail})
            continue
        s = next(stored)
        item: dict[str, Any] = {"index": i, "status": 200, "xactionId": s.xaction_id, "recordId": s.record_id}
        if s.duplicate:
            item["duplicate"] = True
        if not s.ok:
            item.update(status=400 if syncValidation else 200, validation="failed",
                        failedRecordId=s.failed_record_id, violations=s.violations)
        results.append(item)
    if not is_list:
        only = results[0]
        if only["status"] == 413:
            raise Problem(413, "record-too-large", only["title"], only["detail"])
        if syncValidation and only.get("validation") == "failed":
            raise violations_problem(only["violations"], only["failedRecordId"])
        return only
    failed = sum(1 for r in results if r["status"] != 200 or r.get("validation") == "failed")
    return json_response({"datasetId": dataset.id, "accepted": len(results) - failed, "failed": failed,
                          "results": results}, 207 if failed else 200)


@router.get("/datasets/{dataset_id}/records", summary="Read a dataset's records in ingestion order")
async def list_records(dataset_id: str, request: Request, p: Principal = Depends(principal),
                       limit: int = Query(100, ge=1, le=1000), cursor: str | None = None) -> Any:
    p.require(*READ)
    r = tables.records

    def q(c: sa.Connection) -> dict[str, Any]:
        ds.get_dataset(c, p.sandbox_id, dataset_id)
        stmt = sa.select(r).where(r.c.dataset_id == dataset_id)
        return page(c, stmt, r.c.seq, limit=limit, cursor=cursor,
                    shape=lambda m: {"recordId": m["record_id"], "timestamp": m["ts_ms"], "batchId": m["batch_id"],
                                     "xactionId": m["xaction_id"], "received": m["received_ms"], "record": m["body"]})

    return await request.app.state.runtime.store.read(q)


# -- failed records --------------------------------------------------------------------------------

@router.get("/datasets/{dataset_id}/failures", summary="Failed records, with every violation")
async def list_failures(dataset_id: str, request: Request, p: Principal = Depends(principal),
                        status: str | None = Query("failed", description="failed, replayed, discarded or all"),
                        batchId: str | None = None, limit: int = Query(100, ge=1, le=1000),
                        cursor: str | None = None) -> Any:
    p.require(*READ)
    if status not in (*failures.STATUSES, "all", None):
        raise Problem(422, "validation", "Invalid request", "unknown status",
                      [FieldError("query:/status", f"one of {', '.join(failures.STATUSES)}, all", "enum")])

    def q(c: sa.Connection) -> dict[str, Any]:
        ds.get_dataset(c, p.sandbox_id, dataset_id)
        return failures.list_failed(c, dataset_id, status=None if status == "all" else status, batch_id=batchId,
                                    limit=limit, cursor=cursor)

    return await request.app.state.runtime.store.read(q)


@router.get("/datasets/{dataset_id}/failures/{failed_id:int}", summary="One failed record")
async def get_failure(dataset_id: str, failed_id: FailedId, request: Request, p: Principal = Depends(principal)) -> Any:
    p.require(*READ)

    def q(c: sa.Connection) -> dict[str, Any]:
        ds.get_dataset(c, p.sandbox_id, dataset_id)
        return failures.get_failed(c, dataset_id, failed_id)

    return await request.app.state.runtime.store.read(q)


@router.put("/datasets/{dataset_id}/failures/{failed_id:int}", summary="Correct a failed record's body")
async def correct_failure(dataset_id: str, failed_id: FailedId, request: Request,
                          p: Principal = Depends(principal)) -> Any:
    p.require("admin", "ingest")
    svc = _svc(request)
    record = await read_json(request, svc.limits.max_request_bytes)  # a correction that keeps a NUL is refused

    def unit(c: sa.Connection) -> dict[str, Any]:
        ds.get_dataset(c, p.sandbox_id, dataset_id)
        return failures.correct(c, sandbox_id=p.sandbox_id, dataset_id=dataset_id, failed_id=failed_id,
                                record=record, actor=p.actor)

    return await request.app.state.runtime.store.write(unit)


@router.delete("/datasets/{dataset_id}/failures/{failed_id:int}", summary="Discard a failed record (audited)")
async def discard_failure(dataset_id: str, failed_id: FailedId, request: Request,
                          p: Principal = Depends(principal)) -> Any:
    p.require("admin")

    def unit(c: sa.Connection) -> dict[str, Any]:
        ds.get_dataset(c, p.sandbox_id, dataset_id)
        return failures.discard(c, sandbox_id=p.sandbox_id, dataset_id=dataset_id, failed_id=failed_id,
                                actor=p.actor)

    return await request.app.state.runtime.store.write(unit)


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[Annotated[int, Field(ge=1, le=ROW_ID_MAX)]] | None = Field(
        None, description="failed record ids; all waiting ones when absent")
    batchId: str | None = None


@router.post("/datasets/{dataset_id}/failures/replay", summary="Validate failed records again and store the valid")
async def replay_failures(dataset_id: str, body: ReplayIn, request: Request,
                          p: Principal = Depends(principal)) -> Any:
    p.require("admin", "ingest")
    return await _svc(request).replay_failed(sandbox_id=p.sandbox_id, dataset_id=dataset_id, ids=body.ids,
                                             batch_id=body.batchId, actor=p.actor)
