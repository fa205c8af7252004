"""Identities, merge policies and merged profiles over HTTP; the handlers parse, call the service, shape."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from wayline.kernel.paging import decode_cursor, encode_cursor
from wayline.kernel.problems import FieldError, Problem
from wayline.kernel.tenancy import Principal
from wayline.kernel.web import json_response, principal, read_json
from wayline.platform.identity import Ident
from wayline.platform.ingestion import parse_time_ms

router = APIRouter(tags=["identities and profiles"])
READ = ("admin", "read")


def _svc(request: Request) -> Any:
    return request.app.state.runtime.profiles


async def _ident(request: Request, sandbox_id: str, ns: str, value: str, ns_param: str, id_param: str) -> Ident:
    svc = _svc(request)
    known = {n.code for n in await svc.namespaces(sandbox_id=sandbox_id)}
    if ns not in known:
        raise Problem(422, "validation", "Unknown namespace",
                      f"{ns!r} is not an identity namespace of this sandbox (namespace codes are case-sensitive)",
                      [FieldError(f"query:/{ns_param}", "unknown namespace code", "e.g. Email, ECID, Phone")])
    if not value:
        raise Problem(422, "validation", "Missing identity", "give the identity value",
                      [FieldError(f"query:/{id_param}", "required")])
    return svc.ident(ns, value)


# -- namespaces ------------------------------------------------------------------------------------

@router.get("/identity/namespaces", summary="Standard and custom identity namespaces")
async def list_namespaces(request: Request, p: Principal = Depends(principal)) -> Any:
    p.require(*READ)
    return {"items": [n.to_api() for n in await _svc(request).namespaces(sandbox_id=p.sandbox_id)]}


@router.post("/identity/namespaces", status_code=201, summary="Create a custom identity namespace")
async def create_namespace(request: Request, p: Principal = Depends(principal)) -> Any:
    p.require("admin")
    body = await read_json(request, 65_536)
    ns = await _svc(request).create_namespace(sandbox_id=p.sandbox_id, body=body, actor=p.actor)
    return json_response(ns.to_api(), 201)


@router.get("/identity/namespaces/{code}", summary="One identity namespace")
async def get_namespace(code: str, request: Request, p: Principal = Depends(principal)) -> Any:
    p.require(*READ)
    for n in await _svc(request).namespaces(sandbox_id=p.sandbox_id):
        if n.code == code:
            return n.to_api()
    raise Problem(404, "not-found", "Not found", f"identity namespace {code!r} does not exist in this sandbox")


# -- the identity graph ----------------------------------------------------------------------------

@router.get("/identity/graph", summary="The identity graph an identity belongs to: members, links, events")
async def get_graph(request: Request, p: Principal = Depends(principal), namespace: str = Query(..., min_length=1),
                    id: str = Query(..., min_length=1)) -> Any:
    p.require(*READ)
    ident = await _ident(request, p.sandbox_id, namespace, id, "namespace", "id")
    return await _svc(request).identity_graph(sandbox_id=p.sandbox_id, ident=ident)


@router.delete("/identity/graph", summary="Privacy delete of one identity: its data goes, its graph splits")
async def delete_identity(request: Request, p: Principal = Depends(principal),
                          namespace: str = Query(..., min_length=1), id: str = Query(..., min_length=1)) -> Any:
    p.require("admin")
    ident = await _ident(request, p.sandbox_id, namespace, id, "namespace", "id")
    return await _svc(request).delete_identity(sandbox_id=p.sandbox_id, ident=ident, actor=p.actor)


# -- merge policies --------------------------------------------------------------------------------

@router.get("/config/mergePolicies", summary="List merge policies")
async def list_policies(request: Request, p: Principal = Depends(principal)) -> Any:
    p.require(*READ)
    return {"items": await _svc(request).merge_policies(sandbox_id=p.sandbox_id)}


@router.post("/config/mergePolicies", status_code=201, summary="Create a merge policy")
async def create_policy(request: Request, p: Principal = Depends(principal)) -> Any:
    p.require("admin")
    body = await read_json(request, 65_536)
    out = await _svc(request).create_merge_policy(sandbox_id=p.sandbox_id, body=body, actor=p.actor)
    return json_response(out, 201, headers={"Location": f"/config/mergePolicies/{out['id']}"})


@router.get("/config/mergePolicies/{policy_id}", summary="One merge policy")
async def get_policy(policy_id: str, request: Request, p: Principal = Depends(principal)) -> Any:
    p.require(*READ)
    return await _svc(request).merge_policy(sandbox_id=p.sandbox_id, policy_id=policy_id)


@router.put("/config/mergePolicies/{policy_id}", summary="Replace a merge policy")
async def put_policy(policy_id: str, request: Request, p: Principal = Depends(principal)) -> Any:
    p.require("admin")
    body = await read_json(request, 65_536)
    return await _svc(request).update_merge_policy(sandbox_id=p.sandbox_id, policy_id=policy_id, body=body,
                                                   actor=p.actor, partial=False)


@router.patch("/config/mergePolicies/{policy_id}", summary="Change some fields of a merge policy")
async def patch_policy(policy_id: str, request: Request, p: Principal = Depends(principal)) -> Any:
    p.require("admin")
    body = await read_json(request, 65_536)
    return await _svc(request).update_merge_policy(sandbox_id=p.sandbox_id, policy_id=policy_id, body=body,
                                                   actor=p.actor, partial=True)


@router.delete("/config/mergePolicies/{policy_id}", status_code=204, response_model=None,
               summary="Delete a merge policy")
async def delete_policy(policy_id: str, request: Request, p: Principal = Depends(principal)) -> Any:
    p.require("admin")
    await _svc(request).delete_merge_policy(sandbox_id=p.sandbox_id, policy_id=policy_id, actor=p.actor)
    return Response(status_code=204)


# -- profiles --------------------------------------------------------------------------------------

@router.get("/profiles", summary="The merged profile of an identity, optionally explained attribute by attribute")
async def get_profile(request: Request, p: Principal = Depends(principal),
                      entityId: str = Query(..., min_length=1), entityIdNS: str = Query(..., min_length=1),
                      mergePolicyId: str | None = None, fields: str | None = None, explain: bool = False) -> Any:
    p.require(*READ)
    ident = await _ident(request, p.sandbox_id, entityIdNS, entityId, "entityIdNS", "entityId")
    wanted = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
    return await _svc(request).profile(sandbox_id=p.sandbox_id, ident=ident, merge_policy_id=mergePolicyId,
                                       explain=explain, fields=wanted)


@router.delete("/profiles", summary="Privacy delete of a profile: its fragments, events and identities")
async def delete_profile(request: Request, p: Principal = Depends(principal),
                         entityId: str = Query(..., min_length=1), entityIdNS: str = Query(..., min_length=1),
                         mergePolicyId: str | None = None) -> Any:
    p.require("admin")
    ident = await _ident(request, p.sandbox_id, entityIdNS, entityId, "entityIdNS", "entityId")
    return await _svc(request).delete_profile(sandbox_id=p.sandbox_id, ident=ident, merge_policy_id=mergePolicyId,
                                              actor=p.actor)


def _time(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if value.lstrip("-").isdigit():
        return int(value)
    ms = parse_time_ms(value)
    if ms is None:
        raise Problem(400, "bad-parameter", "Invalid time", f"{name} is epoch milliseconds or ISO 8601",
                      [FieldError(f"query:/{name}", "not a time", "1733300000000 or 2026-12-04T10:00:00Z")])
    return ms


@router.get("/profiles/events", summary="Experience events of a profile over its whole graph, oldest first")
async def profile_events(request: Request, p: Principal = Depends(principal),
                         entityId: str = Query(..., min_length=1), entityIdNS: str = Query(..., min_length=1),
                         mergePolicyId: str | None = None, start: str | None = None, end: str | None = None,
                         limit: int = Query(100, ge=1, le=1000), cursor: str | None = None) -> Any:
    p.require(*READ)
    ident = await _ident(request, p.sandbox_id, entityIdNS, entityId, "entityIdNS", "entityId")
    after = None
    if cursor:
        raw = decode_cursor(cursor)
        if not (isinstance(raw, list) and len(raw) == 3 and isinstance(raw[0], int)):
            raise Problem(400, "bad-cursor", "Invalid cursor", "the cursor is not one this API returned",
                          [FieldError("query:/cursor", "not a cursor from a previous page")])
        after = (raw[0], str(raw[1]), str(raw[2]))
    items, nxt = await _svc(request).profile_events(
        sandbox_id=p.sandbox_id, ident=ident, merge_policy_id=mergePolicyId, start_ms=_time(start, "start"),
        end_ms=_time(end, "end"), limit=limit, after=after)
    return {"items": items, "next": encode_cursor(list(nxt)) if nxt else None}
