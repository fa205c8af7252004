"""Segment definitions, membership, evaluation jobs, previews and exports over HTTP."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from wayline.kernel.paging import decode_cursor, encode_cursor
from wayline.kernel.problems import FieldError, Problem
from wayline.kernel.tenancy import Principal
from wayline.kernel.web import json_response, principal, read_json

router = APIRouter(tags=["segments"])
READ = ("admin", "read")
STATUSES = ("realized", "existing", "exited")


def _svc(request: Request) -> Any:
    return request.app.state.runtime.segments


@router.get("/segment/definitions", summary="List segment definitions")
async def list_definitions(request: Request, p: Principal = Depends(principal)) -> Any:
    p.require(*READ)
    return {"items": await _svc(request).definitions(sandbox_id=p.sandbox_id)}


@router.post("/segment/definitions", status_code=201, summary="Create a segment definition (PQL)")
async def create_definition(request: Request, p: Principal = Depends(principal)) -> Any:
    p.require("admin")
    body = await read_json(request, 262_144)
    out = await _svc(request).create(sandbox_id=p.sandbox_id, body=body, actor=p.actor)
    return json_response(out, 201, headers={"Location": f"/segment/definitions/{out['id']}"})


@router.get("/segment/definitions/{segment_id}", summary="One segment definition")
async def get_definition(segment_id: str, request: Request, p: Principal = Depends(principal)) -> Any:
    p.require(*READ)
    return await _svc(request).definition(sandbox_id=p.sandbox_id, segment_id=segment_id)


@router.put("/segment/definitions/{segment_id}", summary="Replace a segment definition")
async def put_definition(segment_id: str, request: Request, p: Principal = Depends(principal)) -> Any:
    p.require("admin")
    body = await read_json(request, 262_144)
    return await _svc(request).update(sandbox_id=p.sandbox_id, segment_id=segment_id, body=body, actor=p.actor,
                                      partial=False)


@router.patch("/segment/definitions/{segment_id}", summary="Change some fields of a segment definition")
async def patch_definition(segment_id: str, request: Request, p: Principal = Depends(principal)) -> Any:
    p.require("admin")
    body = await read_json(request, 262_144)
    return await _svc(request).update(sandbox_id=p.sandbox_id, segment_id=segment_id, body=body, actor=p.actor,
                                      partial=True)


@router.delete("/segment/definitions/{segment_id}", status_code=204, response_model=None,
               summary="Delete a segment definition and its membership")
async def delete_definition(segment_id: str, request: Request, p: Principal = Depends(principal)) -> Any:
    p.require("admin")
    await _svc(request).delete(sandbox_id=p.sandbox_id, segment_id=segment_id, actor=p.actor)
    return Response(status_code=204)


@router.get("/segment/definitions/{segment_id}/members",
            summary="Profiles of a segment (default: realized and existing), paged")
async def members(segment_id: str, request: Request, p: Principal = Depends(principal),
                  status: str = "realized,existing", limit: int = Query(100, ge=1, le=1000),
                  cursor: str | None = None) -> Any:
    p.require(*READ)
    wanted = [s.strip() for s in status.split(",") if s.strip()]
    bad = [s for s in wanted if s not in STATUSES]
    if bad or not wanted:
        raise Problem(400, "bad-parameter", "Invalid status", f"status is a comma-separated list of {STATUSES}",
                      [FieldError("query:/status", f"unknown status {bad[0] if bad else ''!r}", ",".join(STATUSES))])
    after = None
    if cursor:
        after = decode_cursor(cursor)
        if not isinstance(after, int):
            raise Problem(400, "bad-cursor", "Invalid cursor", "the cursor is not one this API returned",
                          [FieldError("query:/cursor", "not a cursor from a previous page")])
    items, nxt = await _svc(request).members(sandbox_id=p.sandbox_id, segment_id=segment_id, statuses=wanted,
                                             limit=limit, after=after)
    return {"items": items, "next": encode_cursor(nxt) if nxt is not None else None}


@router.post("/segment/jobs", status_code=201, summary="Start a batch evaluation job")
async def create_job(request: Request, p: Principal = Depends(principal), wait: bool = False) -> Any:
    p.require("admin")
    body = await read_json(request, 65_536)
    segs = body.get("segments") if isinstance(body, dict) else None
    if not isinstance(segs, list) or not segs or not all(isinstance(s, dict) and isinstance(s.get("segmentId"), str)
                                                         for s in segs):
        raise Problem(422, "validation", "Invalid job", 'give {"segments": [{"segmentId": "<id>" | "*"}]}',
                      [FieldError("/segments", "a non-empty list of {segmentId}", "array")])
    ids = [s["segmentId"] for s in segs]
    out = await _svc(request).start_job(sandbox_id=p.sandbox_id, segment_ids=None if "*" in ids else ids, wait=wait)
    return json_response(out, 201, headers={"Location": f"/segment/jobs/{out['id']}"})


@router.get("/segment/jobs/{job_id}", summary="A segment job: status, counts per segment, duration")
async def get_job(job_id: str, request: Request, p: Principal = Depends(principal)) -> Any:
    p.require(*READ)
    return await _svc(request).job(sandbox_id=p.sandbox_id, job_id=job_id)


@router.post("/segment/preview", summary="Count and sample the profiles an unsaved definition selects")
async def preview(request: Request, p: Principal = Depends(principal), sample: int = Query(20, ge=0, le=100)) -> Any:
    p.require(*READ)
    body = await read_json(request, 262_144)
    return await _svc(request).preview(sandbox_id=p.sandbox_id, body=body, sample=sample)


@router.post("/segment/exports", status_code=201, summary="Export a segment's members (JSON Lines or CSV)")
async def create_export(request: Request, p: Principal = Depends(principal)) -> Any:
    p.require("admin")
    body = await read_json(request, 65_536)
    if not isinstance(body, dict) or not isinstance(body.get("segmentId"), str):
        raise Problem(422, "validation", "Invalid export", "give segmentId",
                      [FieldError("/segmentId", "required", "string")])
    fmt = body.get("format", "jsonl")
    if fmt not in ("jsonl", "csv"):
        raise Problem(422, "validation", "Invalid export", "format is jsonl or csv",
                      [FieldError("/format", "jsonl or csv", "jsonl|csv")])
    fields = body.get("fields")
    if fields is not None and not (isinstance(fields, list) and all(isinstance(f, str) for f in fields)):
        raise Problem(422, "validation", "Invalid export", "fields is a list of dotted paths",
                      [FieldError("/fields", "a list of strings", "array")])
    action = body.get("marketingAction", "exportToThirdParty")
    out = await _svc(request).export(sandbox_id=p.sandbox_id, segment_id=body["segmentId"], fmt=fmt, fields=fields,
                                     marketing_action=action)
    return json_response(out, 201, headers={"Location": f"/segment/exports/{out['id']}"})


@router.get("/segment/exports/{job_id}", summary="An export job")
async def get_export(job_id: str, request: Request, p: Principal = Depends(principal)) -> Any:
    p.require(*READ)
    return await _svc(request).job(sandbox_id=p.sandbox_id, job_id=job_id, kind="export")


@router.get("/segment/exports/{job_id}/file", summary="The exported file")
async def export_file(job_id: str, request: Request, p: Principal = Depends(principal)) -> Any:
    p.require(*READ)
    data, fmt = await _svc(request).export_file(sandbox_id=p.sandbox_id, job_id=job_id)
    media = "text/csv" if fmt == "csv" else "application/x-ndjson"
    return Response(data, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{job_id}.{fmt}"'})
