"""Batch ingestion, as the reference shapes it: create a batch, upload files, complete it."""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from wayline.kernel.problems import FieldError, Problem
from wayline.kernel.tenancy import Principal
from wayline.kernel.web import json_response, principal, too_large
from wayline.platform import batch_processing, batches, failures

router = APIRouter(tags=["batches"])
READ = ("admin", "read", "ingest")  # an ingest key may follow the batches it sends
WRITE = ("admin", "ingest")


class InputFormatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: Literal["json", "csv", "parquet"]
    isMultiLineJson: bool = Field(False, description="json only: the file is one JSON document (an array of "
                                                     "records, or one record) instead of JSON Lines")


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    datasetId: str = Field(..., min_length=1)
    inputFormat: InputFormatIn
    mapping: dict[str, str] | None = Field(None, description="csv / parquet: column → dotted XDM field path, "
                                                             "e.g. {\"email\": \"personalEmail.address\"}")


@router.post("/batches", status_code=201, summary="Create a batch that loads files into one dataset")
async def create_batch(body: BatchIn, request: Request, p: Principal = Depends(principal)) -> Any:
    p.require(*WRITE)
    b = await request.app.state.runtime.store.write(lambda c: batches.create_batch(
        c, sandbox_id=p.sandbox_id, dataset_id=body.datasetId, format=body.inputFormat.format,
        multiline=body.inputFormat.isMultiLineJson, mapping=body.mapping, actor=p.actor))
    return json_response(b.to_api([]), 201, headers={"Location": f"/batches/{b.id}"})


@router.put("/batches/{batch_id}/datasets/{dataset_id}/files/{file_name}",
            summary="Upload one file of the batch (raw body); uploading a name again replaces the file")
async def upload_file(batch_id: str, dataset_id: str, file_name: str, request: Request,
                      p: Principal = Depends(principal)) -> Any:
    p.require(*WRITE)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > batches.MAX_FILE_BYTES:
        raise too_large(batches.MAX_FILE_BYTES)
    f = await batches.upload_async(request.app.state.runtime.store, sandbox_id=p.sandbox_id, batch_id=batch_id,
                                   dataset_id=dataset_id, name=file_name, chunks=request.stream(),
                                   max_bytes=batches.MAX_FILE_BYTES)
    return json_response({"batchId": batch_id, "datasetId": dataset_id, **f}, 200)


@router.post("/batches/{batch_id}", summary="COMPLETE (process the files) or ABORT a batch")
async def act(batch_id: str, request: Request, p: Principal = Depends(principal),
              action: str = Query(..., description="COMPLETE or ABORT"),
              wait: bool = Query(False, description="COMPLETE: answer once processing has finished")) -> Any:
    p.require(*WRITE)
    rt = request.app.state.runtime
    verb = action.upper()
    if verb == "ABORT":
        b = await rt.store.write(lambda c: batches.abort_batch(c, sandbox_id=p.sandbox_id, batch_id=batch_id,
                                                               actor=p.actor))
        return b.to_api()
    if verb != "COMPLETE":
        raise Problem(400, "bad-action", "Unknown action", f"action is COMPLETE or ABORT, not {action!r}",
                      [FieldError("query:/action", "expected COMPLETE or ABORT", "COMPLETE|ABORT")])
    svc = rt.platform
    # Resolve the dataset and its schema before taking the batch, so a missing schema cannot leave
    # the batch processing with nobody at work on it.
    current = await rt.store.read(batches.get_batch, p.sandbox_id, batch_id)
    dataset = compiled = None
    if current.status in ("loading", "processing"):
        dataset = svc.dataset(p.sandbox_id, current.dataset_id)
        compiled = svc.compiled_for(dataset)
    b, mine = await rt.store.write(lambda c: batches.start_complete(c, sandbox_id=p.sandbox_id, batch_id=batch_id,
                                                                    actor=p.actor))
    if not mine:
        return json_response(b.to_api(), 202 if b.status == "processing" else 200)
    job = functools.partial(batch_processing.process_batch, rt.store, b, dataset=dataset, compiled=compiled,
                            limits=svc.limits, views=svc.prepare_pool)
    if wait:
        return (await asyncio.to_thread(job)).to_api()
    batch_processing.in_background(job, b.id)
    return json_response(b.to_api(), 202, headers={"Location": f"/batches/{b.id}"})


@router.get("/batches", summary="List batches, newest first")
async def list_batches(request: Request, p: Principal = Depends(principal), datasetId: str | None = None,
                       status: str | None = None, limit: int = Query(50, ge=1, le=500),
                       cursor: str | None = None) -> Any:
    p.require(*READ)
    if status is not None and status not in batches.STATUSES:
        raise Problem(422, "validation", "Invalid request", "unknown status",
                      [FieldError("query:/status", f"one of {', '.join(batches.STATUSES)}", "enum")])
    return await request.app.state.runtime.store.read(lambda c: batches.list_batches(
        c, p.sandbox_id, dataset_id=datasetId, status=status, limit=limit, cursor=cursor))


@router.get("/batches/{batch_id}", summary="A batch: status, counts, errors and files")
async def get_batch(batch_id: str, request: Request, p: Principal = Depends(principal)) -> Any:
    p.require(*READ)
    return await request.app.state.runtime.store.read(batches.describe, p.sandbox_id, batch_id)


@router.get("/batches/{batch_id}/failed", summary="The batch's failed records, with every violation")
async def list_failed(batch_id: str, request: Request, p: Principal = Depends(principal),
                      status: str = Query("failed", description="failed, replayed, discarded or all"),
                      limit: int = Query(100, ge=1, le=1000), cursor: str | None = None) -> Any:
    p.require(*READ)
    if status not in (*failures.STATUSES, "all"):
        raise Problem(422, "validation", "Invalid request", "unknown status",
                      [FieldError("query:/status", f"one of {', '.join(failures.STATUSES)}, all", "enum")])

    def q(c: sa.Connection) -> dict[str, Any]:
        b = batches.get_batch(c, p.sandbox_id, batch_id)
        return failures.list_failed(c, b.dataset_id, status=None if status == "all" else status, batch_id=b.id,
                                    limit=limit, cursor=cursor)

    return await request.app.state.runtime.store.read(q)
