"""HTTP API of the schema registry, on the reference's paths (`/schemaregistry/global|tenant/…`).

Ids in paths are URL-encoded `$id`s or altIds. `?full=true` (or `Accept:
application/vnd.adobe.xed-full+json`) answers composed schemas. GET answers carry an ETag (the
version); PUT, PATCH and DELETE honour If-Match.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from wayline.kernel.tenancy import Principal
from wayline.kernel.web import json_response, principal, read_json
from wayline.platform.schemas.model import KINDS, kind_of_plural

router = APIRouter(prefix="/schemaregistry", tags=["schemas"])
GLOBAL_KINDS = ("class", "fieldgroup", "datatype", "behavior")


def _rt(request: Request) -> Any:
    return request.app.state.runtime


def _full(request: Request, full: bool) -> bool:
    return full or "xed-full" in request.headers.get("accept", "")


def _etag(body: dict[str, Any]) -> dict[str, str]:
    return {"ETag": f'"{body["version"]}"'}


async def _write(request: Request, p: Principal, fn: Any) -> Any:
    """Run a registry unit of work, then drop the sandbox's compiled schemas (after the commit)."""
    rt = _rt(request)
    try:
        return await rt.store.write(fn)
    finally:
        rt.platform.schemas.invalidate(p.sandbox_id)


async def _body(request: Request) -> Any:
    return await read_json(request, _rt(request).settings.limits.max_request_bytes)


# -- descriptors (declared before /tenant/{kind} so 'descriptors' is not taken for a kind) -------------

@router.get("/tenant/descriptors", summary="List the sandbox's descriptors")
async def list_descriptors(request: Request, p: Principal = Depends(principal), limit: int = Query(100, ge=1, le=1000),
                           cursor: str | None = None, schema: str | None = None,
                           type: str | None = Query(None, alias="@type")) -> Response:
    p.require("admin", "read")
    reg = _rt(request).platform.schemas
    out = await _rt(request).store.read(lambda c: reg.list_descriptors(
        c, sandbox_id=p.sandbox_id, schema=schema, type_=type, limit=limit, cursor=cursor))
    return json_response(out)


@router.post("/tenant/descriptors", status_code=201, summary="Create an identity or relationship descriptor")
async def create_descriptor(request: Request, p: Principal = Depends(principal)) -> Response:
    p.require("admin")
    body = await _body(request)
    reg = _rt(request).platform.schemas
    desc, created = await _write(request, p, lambda c: reg.create_descriptor(
        c, sandbox_id=p.sandbox_id, actor=p.actor, body=body))
    return json_response(desc, 201 if created else 200,
                         {"Location": f"/schemaregistry/tenant/descriptors/{desc['@id']}"})


@router.get("/tenant/descriptors/{descriptor_id}", summary="One descriptor")
async def get_descriptor(descriptor_id: str, request: Request, p: Principal = Depends(principal)) -> Response:
    p.require("admin", "read")
    reg = _rt(request).platform.schemas
    return json_response(await _rt(request).store.read(lambda c: reg.get_descriptor(
        c, sandbox_id=p.sandbox_id, descriptor_id=descriptor_id)))


@router.delete("/tenant/descriptors/{descriptor_id}", status_code=204, response_model=None, summary="Delete a descriptor")
async def delete_descriptor(descriptor_id: str, request: Request, p: Principal = Depends(principal)) -> Response:
    p.require("admin")
    reg = _rt(request).platform.schemas
    await _write(request, p, lambda c: reg.delete_descriptor(c, sandbox_id=p.sandbox_id, actor=p.actor,
                                                             descriptor_id=descriptor_id))
    return Response(status_code=204)


# -- standard pieces -------------------------------------------------------------------------------------

@router.get("/global/{kinds}", summary="List standard classes, field groups, data types or behaviors")
async def list_global(kinds: str, request: Request, p: Principal = Depends(principal),
                      limit: int = Query(100, ge=1, le=1000), cursor: str | None = None,
                      full: bool = False) -> Response:
    p.require("admin", "read")
    kind = kind_of_plural(kinds, allowed=GLOBAL_KINDS)
    return json_response(_rt(request).platform.schemas.list_global(kind, limit=limit, cursor=cursor,
                                                                   full=_full(request, full)))


@router.get("/global/{kinds}/{ident:path}", summary="One standard piece by $id or altId")
async def get_global(kinds: str, ident: str, request: Request, p: Principal = Depends(principal),
                     full: bool = False) -> Response:
    p.require("admin", "read")
    kind = kind_of_plural(kinds, allowed=GLOBAL_KINDS)
    body = _rt(request).platform.schemas.get_global(kind, ident, full=_full(request, full))
    return json_response(body, headers=_etag(body))


# -- the sandbox's pieces -----------------------------------------------------------------------------------

@router.get("/tenant/{kinds}", summary="List the sandbox's classes, field groups, data types or schemas")
async def list_tenant(kinds: str, request: Request, p: Principal = Depends(principal),
                      limit: int = Query(100, ge=1, le=1000), cursor: str | None = None,
                      full: bool = False) -> Response:
    p.require("admin", "read")
    kind = kind_of_plural(kinds, allowed=KINDS)
    reg = _rt(request).platform.schemas
    out = await _rt(request).store.read(lambda c: reg.list_resources(
        c, sandbox_id=p.sandbox_id, kind=kind, limit=limit, cursor=cursor, full=_full(request, full)))
    return json_response(out)


@router.post("/tenant/{kinds}", status_code=201, summary="Create (import) a class, field group, data type or schema")
async def create_tenant(kinds: str, request: Request, p: Principal = Depends(principal)) -> Response:
    p.require("admin")
    kind = kind_of_plural(kinds, allowed=KINDS)
    body = await _body(request)
    reg = _rt(request).platform.schemas
    out, created = await _write(request, p, lambda c: reg.create(
        c, sandbox_id=p.sandbox_id, tenant_id=p.tenant_id, actor=p.actor, kind=kind, body=body))
    headers = {**_etag(out), "Location": f"/schemaregistry/tenant/{kinds}/{quote(out['$id'], safe='')}"}
    return json_response(out, 201 if created else 200, headers)


@router.get("/tenant/{kinds}/{ident:path}", summary="One of the sandbox's pieces by URL-encoded $id or altId")
async def get_tenant(kinds: str, ident: str, request: Request, p: Principal = Depends(principal),
                     full: bool = False) -> Response:
    p.require("admin", "read")
    kind = kind_of_plural(kinds, allowed=KINDS)
    reg = _rt(request).platform.schemas
    out = await _rt(request).store.read(lambda c: reg.get(c, sandbox_id=p.sandbox_id, kind=kind, ident=ident,
                                                          full=_full(request, full)))
    return json_response(out, headers=_etag(out))


@router.put("/tenant/{kinds}/{ident:path}", summary="Replace a definition (If-Match: the ETag)")
async def put_tenant(kinds: str, ident: str, request: Request, p: Principal = Depends(principal)) -> Response:
    p.require("admin")
    kind = kind_of_plural(kinds, allowed=KINDS)
    body = await _body(request)
    reg = _rt(request).platform.schemas
    out = await _write(request, p, lambda c: reg.update(
        c, sandbox_id=p.sandbox_id, tenant_id=p.tenant_id, actor=p.actor, kind=kind, ident=ident, body=body,
        if_match=request.headers.get("if-match")))
    return json_response(out, headers=_etag(out))


@router.patch("/tenant/{kinds}/{ident:path}", summary="JSON Patch or merge patch; add 'union' to "
              "meta:immutableTags to enable a schema for profile")
async def patch_tenant(kinds: str, ident: str, request: Request, p: Principal = Depends(principal)) -> Response:
    p.require("admin")
    kind = kind_of_plural(kinds, allowed=KINDS)
    body = await _body(request)
    reg = _rt(request).platform.schemas
    out = await _write(request, p, lambda c: reg.patch(
        c, sandbox_id=p.sandbox_id, tenant_id=p.tenant_id, actor=p.actor, kind=kind, ident=ident, body=body,
        if_match=request.headers.get("if-match")))
    return json_response(out, headers=_etag(out))


@router.delete("/tenant/{kinds}/{ident:path}", status_code=204, response_model=None, summary="Delete a piece nothing uses")
async def delete_tenant(kinds: str, ident: str, request: Request, p: Principal = Depends(principal)) -> Response:
    p.require("admin")
    kind = kind_of_plural(kinds, allowed=KINDS)
    reg = _rt(request).platform.schemas
    await _write(request, p, lambda c: reg.delete(c, sandbox_id=p.sandbox_id, actor=p.actor, kind=kind,
                                                  ident=ident, if_match=request.headers.get("if-match")))
    return Response(status_code=204)
