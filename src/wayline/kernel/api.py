"""Installation-level endpoints: health, metrics, the caller's sandbox, API keys, the audit log."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, Field

from wayline.kernel import metrics, tenancy
from wayline.kernel import tables as t
from wayline.kernel.paging import page
from wayline.kernel.tenancy import Principal
from wayline.kernel.web import json_response, principal

router = APIRouter()


@router.get("/healthz", tags=["operations"], summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", tags=["operations"], summary="The database answers")
async def readyz(request: Request) -> Response:
    store = request.app.state.runtime.store
    try:
        await store.read(lambda c: c.execute(sa.text("SELECT 1")).scalar())
    except Exception as exc:  # report, don't raise: this is a probe
        return json_response({"status": "unavailable", "detail": str(exc)[:200]}, 503)
    return json_response({"status": "ready"})


@router.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=PlainTextResponse)
async def prometheus(request: Request) -> Response:
    import asyncio

    await asyncio.to_thread(request.app.state.runtime.backbone.status)  # refreshes the backbone's gauges
    body, ctype = metrics.render()
    return Response(body, media_type=ctype)


@router.get("/sandbox", tags=["access"], summary="The sandbox and role of the calling key")
async def whoami(p: Principal = Depends(principal)) -> dict[str, Any]:
    return {"sandbox": {"id": p.sandbox_id, "name": p.sandbox_name}, "role": p.role, "keyId": p.key_id,
            "tenantId": p.tenant_id}


MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


class KeyIn(BaseModel):
    role: Literal["admin", "ingest", "read"]
    name: str = Field("", max_length=200)
    expiresMs: int | None = Field(None, ge=0, le=MAX_EPOCH_MS,
                                  description="epoch milliseconds after which the key stops working")


@router.post("/keys", tags=["access"], status_code=201, summary="Create an API key in the caller's sandbox")
async def create_key(body: KeyIn, request: Request, p: Principal = Depends(principal)) -> dict[str, Any]:
    p.require("admin")
    store = request.app.state.runtime.store
    key, desc = await store.write(lambda c: tenancy.create_key(
        c, sandbox_id=p.sandbox_id, role=body.role, name=body.name, expires_ms=body.expiresMs, actor=p.actor))
    return {**desc, "key": key}


@router.get("/keys", tags=["access"], summary="List the sandbox's API keys (never the keys themselves)")
async def list_keys(request: Request, p: Principal = Depends(principal)) -> dict[str, Any]:
    p.require("admin")
    items = await request.app.state.runtime.store.read(tenancy.list_keys, p.sandbox_id)
    return {"items": items, "next": None}


@router.delete("/keys/{key_id}", tags=["access"], summary="Revoke an API key")
async def revoke_key(key_id: str, request: Request, p: Principal = Depends(principal)) -> dict[str, Any]:
    p.require("admin")
    rt = request.app.state.runtime
    out = await rt.store.write(lambda c: tenancy.revoke_key(c, sandbox_id=p.sandbox_id, key_id=key_id,
                                                            actor=p.actor))
    rt.verifier.forget(key_id)
    return out


@router.get("/audit", tags=["access"], summary="Configuration changes in this sandbox, newest first")
async def audit_log(request: Request, p: Principal = Depends(principal),
                    limit: int = Query(50, ge=1, le=1000), cursor: str | None = None,
                    resourceType: str | None = None) -> dict[str, Any]:
    p.require("admin", "read")

    def q(conn: sa.Connection) -> dict[str, Any]:
        stmt = sa.select(t.audit_log).where(t.audit_log.c.sandbox_id == p.sandbox_id)
        if resourceType:
            stmt = stmt.where(t.audit_log.c.resource_type == resourceType)
        return page(conn, stmt, t.audit_log.c.id, limit=limit, cursor=cursor, descending=True,
                    shape=lambda r: {"id": r["id"], "actor": r["actor"], "action": r["action"],
                                     "resourceType": r["resource_type"], "resourceId": r["resource_id"],
                                     "before": r["before"], "after": r["after"], "atMs": r["at_ms"]})

    return await request.app.state.runtime.store.read(q)


@router.get("/backbone/status", tags=["operations"], summary="Backbone lag, parked keys, redeliveries, timers")
async def backbone_status(request: Request, p: Principal = Depends(principal)) -> dict[str, Any]:
    p.require("admin")
    import asyncio

    return await asyncio.to_thread(request.app.state.runtime.backbone.status)


@router.get("/backbone/parked", tags=["operations"], summary="This sandbox's parked keys")
async def backbone_parked(request: Request, p: Principal = Depends(principal)) -> dict[str, Any]:
    p.require("admin")
    from wayline.kernel.consumers import parked_keys

    rows = await request.app.state.runtime.store.read(lambda c: parked_keys(c, limit=1000))
    return {"items": [r for r in rows if r["key"].startswith(p.sandbox_id + "|")], "next": None}


class ReplayIn(BaseModel):
    consumer: str
    key: str


@router.post("/backbone/parked/replay", tags=["operations"], summary="Unpark a key and apply what waited")
async def backbone_replay(body: ReplayIn, request: Request, p: Principal = Depends(principal)) -> dict[str, Any]:
    p.require("admin")
    import asyncio

    from wayline.kernel.problems import not_found

    if not body.key.startswith(p.sandbox_id + "|"):
        raise not_found("parked key", body.key)
    out = await asyncio.to_thread(request.app.state.runtime.backbone.replay, body.consumer, body.key)
    if not out["found"]:
        raise not_found("parked key", body.key)
    return out
