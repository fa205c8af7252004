"""Governance over HTTP, on the reference's paths under `/dulepolicy`: labels, marketing actions,
policies, field labels and evaluation. Handlers parse, call the service, shape.

Custom labels, actions, policies and field labels carry an ETag (their version); PUT, PATCH and
DELETE honour If-Match.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from wayline.kernel.problems import FieldError, Problem
from wayline.kernel.tenancy import Principal
from wayline.kernel.web import json_response, principal, read_json
from wayline.platform.governance import checks
from wayline.platform.governance.service import EvalRequest, GovernanceService

router = APIRouter(prefix="/dulepolicy", tags=["governance"])
READ = ("admin", "read")


def _svc(request: Request) -> GovernanceService:
    return request.app.state.runtime.governance


async def _body(request: Request) -> Any:
    return await read_json(request, request.app.state.runtime.settings.limits.max_request_bytes)


def _if_match(request: Request) -> str | None:
    return request.headers.get("if-match")


def _tagged(body: dict[str, Any], status: int = 200, location: str | None = None) -> Response:
    headers = {"ETag": f'"{body.get("version", 0)}"'}
    if location:
        headers["Location"] = location
    return json_response(body, status, headers)


def _no_content() -> Response:
    return Response(status_code=204)


# -- labels ---------------------------------------------------------------------------------------------

@router.get("/labels/core", summary="The core data-usage labels (C1-C12, I1, I2, S1, S2)")
async def list_core_labels(request: Request, p: Principal = Depends(principal)) -> Any:
    p.require(*READ)
    return {"items": [lb.to_api() for lb in _svc(request).core_labels()]}


@router.get("/labels/core/{name}", summary="One core label")
async def get_core_label(name: str, request: Request, p: Principal = Depends(principal)) -> Any:
    p.require(*READ)
    for lb in _svc(request).core_labels():
        if lb.name == name:
            return lb.to_api()
    raise Problem(404, "not-found", "Not found", f"no core label {name!r} (label names are case-sensitive)")


@router.get("/labels/custom", summary="The sandbox's custom labels")
async def list_custom_labels(request: Request, p: Principal = Depends(principal),
                             limit: int = Query(100, ge=1, le=1000), cursor: str | None = None) -> Any:
    p.require(*READ)
    return await _svc(request).custom_labels(sandbox_id=p.sandbox_id, limit=limit, cursor=cursor)


@router.post("/labels/custom", status_code=201, summary="Create a custom label")
async def create_custom_label(request: Request, p: Principal = Depends(principal)) -> Response:
    p.require("admin")
    label = await _svc(request).create_label(sandbox_id=p.sandbox_id, body=await _body(request), actor=p.actor)
    return _tagged(label.to_api(), 201, f"/dulepolicy/labels/custom/{label.name}")


@router.get("/labels/custom/{name}", summary="One custom label")
async def get_custom_label(name: str, request: Request, p: Principal = Depends(principal)) -> Response:
    p.require(*READ)
    return _tagged((await _svc(request).custom_label(sandbox_id=p.sandbox_id, name=name)).to_api())


@router.put("/labels/custom/{name}", summary="Replace a custom label's friendly name and description")
async def put_custom_label(name: str, request: Request, p: Principal = Depends(principal)) -> Response:
    p.require("admin")
    label = await _svc(request).update_label(sandbox_id=p.sandbox_id, name=name, body=await _body(request),
                                             actor=p.actor, if_match=_if_match(request))
    return _tagged(label.to_api())


@router.delete("/labels/custom/{name}", status_code=204, response_model=None,
               summary="Delete a custom label nothing uses")
async def delete_custom_label(name: str, request: Request, p: Principal = Depends(principal)) -> Response:
    p.require("admin")
    await _svc(request).delete_label(sandbox_id=p.sandbox_id, name=name, actor=p.actor, if_match=_if_match(request))
    return _no_content()


# -- marketing actions ----------------------------------------------------------------------------------

@router.get("/marketingActions/core", summary="The core marketing actions")
async def list_core_actions(request: Request, p: Principal = Depends(principal)) -> Any:
    p.require(*READ)
    return {"items": [a.to_api() for a in _svc(request).core_actions()]}


@router.get("/marketingActions/core/{name}", summary="One core marketing action")
async def get_core_action(name: str, request: Request, p: Principal = Depends(principal)) -> Any:
    p.require(*READ)
    return (await _svc(request).action(sandbox_id=p.sandbox_id, name=name, core_action=True)).to_api()


@router.get("/marketingActions/custom", summary="The sandbox's custom marketing actions")
async def list_custom_actions(request: Request, p: Principal = Depends(principal),
                              limit: int = Query(100, ge=1, le=1000), cursor: str | None = None) -> Any:
    p.require(*READ)
    return await _svc(request).custom_actions(sandbox_id=p.sandbox_id, limit=limit, cursor=cursor)


@router.post("/marketingActions/custom", status_code=201, summary="Create a custom marketing action")
async def create_custom_action(request: Request, p: Principal = Depends(principal)) -> Response:
    p.require("admin")
    action = await _svc(request).create_action(sandbox_id=p.sandbox_id, body=await _body(request), actor=p.actor)
    return _tagged(action.to_api(), 201, action.ref)


@router.get("/marketingActions/custom/{name}", summary="One custom marketing action")
async def get_custom_action(name: str, request: Request, p: Principal = Depends(principal)) -> Response:
    p.require(*READ)
    return _tagged((await _svc(request).action(sandbox_id=p.sandbox_id, name=name, core_action=False)).to_api())


@router.put("/marketingActions/custom/{name}", summary="Replace a custom marketing action's description")
async def put_custom_action(name: str, request: Request, p: Principal = Depends(principal)) -> Response:
    p.require("admin")
    action = await _svc(request).update_action(sandbox_id=p.sandbox_id, name=name, body=await _body(request),
                                               actor=p.actor, if_match=_if_match(request))
    return _tagged(action.to_api())


@router.delete("/marketingActions/custom/{name}", status_code=204, response_model=None,
               summary="Delete a custom marketing action no policy names")
async def delete_custom_action(name: str, request: Request, p: Principal = Depends(principal)) -> Response:
    p.require("admin")
    await _svc(request).delete_action(sandbox_id=p.sandbox_id, name=name, actor=p.actor, if_match=_if_match(request))
    return _no_content()


# -- policies -------------------------------------------------------------------------------------------

@router.get("/policies/core", summary="The core policies, with this sandbox's statuses")
async def list_core_policies(request: Request, p: Principal = Depends(principal)) -> Any:
    p.require(*READ)
    return {"items": [x.to_api() for x in await _svc(request).core_policies(sandbox_id=p.sandbox_id)]}


@router.get("/policies/core/{policy_id}", summary="One core policy")
async def get_core_policy(policy_id: str, request: Request, p: Principal = Depends(principal)) -> Response:
    p.require(*READ)
    return _tagged((await _svc(request).core_policy(sandbox_id=p.sandbox_id, policy_id=policy_id)).to_api())


@router.patch("/policies/core/{policy_id}", summary="Enable or disable a core policy in this sandbox "
              '({"status": "ENABLED"} or [{"op": "replace", "path": "/status", "value": "ENABLED"}])')
async def patch_core_policy(policy_id: str, request: Request, p: Principal = Depends(principal)) -> Response:
    p.require("admin")
    out = await _svc(request).set_core_policy_status(sandbox_id=p.sandbox_id, policy_id=policy_id,
                                                     body=await _body(request), actor=p.actor,
                                                     if_match=_if_match(request))
    return _tagged(out.to_api())


@router.get("/policies/custom", summary="The sandbox's custom policies")
async def list_custom_policies(request: Request, p: Principal = Depends(principal),
                               limit: int = Query(100, ge=1, le=1000), cursor: str | None = None,
                               status: str | None = Query(None, pattern="^(DRAFT|ENABLED|DISABLED)$")) -> Any:
    p.require(*READ)
    return await _svc(request).custom_policies(sandbox_id=p.sandbox_id, limit=limit, cursor=cursor, status=status)


@router.post("/policies/custom", status_code=201, summary="Create a custom policy (it starts DISABLED, or DRAFT)")
async def create_custom_policy(request: Request, p: Principal = Depends(principal)) -> Response:
    p.require("admin")
    out = await _svc(request).create_policy(sandbox_id=p.sandbox_id, body=await _body(request), actor=p.actor)
    return _tagged(out.to_api(), 201, out.path)


@router.get("/policies/custom/{policy_id}", summary="One custom policy")
async def get_custom_policy(policy_id: str, request: Request, p: Principal = Depends(principal)) -> Response:
    p.require(*READ)
    return _tagged((await _svc(request).custom_policy(sandbox_id=p.sandbox_id, policy_id=policy_id)).to_api())


@router.put("/policies/custom/{policy_id}", summary="Replace a custom policy")
async def put_custom_policy(policy_id: str, request: Request, p: Principal = Depends(principal)) -> Response:
    p.require("admin")
    out = await _svc(request).update_policy(sandbox_id=p.sandbox_id, policy_id=policy_id, body=await _body(request),
                                            actor=p.actor, partial=False, if_match=_if_match(request))
    return _tagged(out.to_api())


@router.patch("/policies/custom/{policy_id}", summary="JSON Patch or merge patch of a custom policy "
              '(e.g. [{"op": "replace", "path": "/status", "value": "ENABLED"}])')
async def patch_custom_policy(policy_id: str, request: Request, p: Principal = Depends(principal)) -> Response:
    p.require("admin")
    out = await _svc(request).update_policy(sandbox_id=p.sandbox_id, policy_id=policy_id, body=await _body(request),
                                            actor=p.actor, partial=True, if_match=_if_match(request))
    return _tagged(out.to_api())


@router.delete("/policies/custom/{policy_id}", status_code=204, response_model=None, summary="Delete a custom policy")
async def delete_custom_policy(policy_id: str, request: Request, p: Principal = Depends(principal)) -> Response:
    p.require("admin")
    await _svc(request).delete_policy(sandbox_id=p.sandbox_id, policy_id=policy_id, actor=p.actor,
                                      if_match=_if_match(request))
    return _no_content()


# -- evaluation -----------------------------------------------------------------------------------------

def _action_path(kind: str, name: str) -> str:
    return f"/dulepolicy/marketingActions/{kind}/{name}"


async def _constraints_get(kind: str, name: str, request: Request, p: Principal, labels: str | None,
                           include_draft: bool) -> Any:
    p.require(*READ)
    svc = _svc(request)
    await svc.action(sandbox_id=p.sandbox_id, name=name, core_action=kind == "core")
    given = [x.strip() for x in labels.split(",") if x.strip()] if labels else []
    req = EvalRequest(_action_path(kind, name), tuple(given), include_draft=include_draft,
                      labels_at="query:/duleLabels")
    return (await svc.evaluate_request(sandbox_id=p.sandbox_id, request=req)).to_api()


async def _constraints_post(kind: str, name: str, request: Request, p: Principal, include_draft: bool) -> Any:
    p.require(*READ)
    svc = _svc(request)
    await svc.action(sandbox_id=p.sandbox_id, name=name, core_action=kind == "core")
    body = await _body(request)
    errors: list[FieldError] = []
    if isinstance(body, list):  # the reference's shape: the entities alone
        req = EvalRequest(_action_path(kind, name), (), tuple(checks.parse_entities(body, "", errors,
                                                                                    types=svc.entity_types)),
                          include_draft, entities_at="")
    elif isinstance(body, dict):
        req = _item(_action_path(kind, name), body, "", errors, svc.entity_types, include_draft)
    else:
        errors.append(FieldError("/", "an array of entities, or {labels, entityList}", "array"))
    if errors:
        raise checks.problem("Invalid evaluation request", errors)
    return (await svc.evaluate_request(sandbox_id=p.sandbox_id, request=req)).to_api()


def _item(action: str, body: dict[str, Any], where: str, errors: list[FieldError], types: tuple[str, ...],
          include_draft: bool = False) -> EvalRequest:
    labels = body.get("labels", [])
    if not isinstance(labels, list):
        errors.append(FieldError(f"{where}/labels", "an array of label names", "array of string"))
        labels = []
    entities = (checks.parse_entities(body["entityList"], f"{where}/entityList", errors, types=types)
                if "entityList" in body else [])
    draft = body.get("includeDraft", include_draft)
    if not isinstance(draft, bool):
        errors.append(FieldError(f"{where}/includeDraft", "true or false", "boolean"))
    return EvalRequest(action, tuple(labels), tuple(entities), draft is True, labels_at=f"{where}/labels",
                       entities_at=f"{where}/entityList")


@router.get("/marketingActions/core/{name}/constraints", summary="Evaluate a core action against labels")
async def core_constraints(name: str, request: Request, p: Principal = Depends(principal),
                           duleLabels: str | None = Query(None, description="comma-separated labels, e.g. C1,C2"),
                           includeDraft: bool = False) -> Any:
    return await _constraints_get("core", name, request, p, duleLabels, includeDraft)


@router.post("/marketingActions/core/{name}/constraints", summary="Evaluate a core action against entities")
async def core_constraints_entities(name: str, request: Request, p: Principal = Depends(principal),
                                    includeDraft: bool = False) -> Any:
    return await _constraints_post("core", name, request, p, includeDraft)


@router.get("/marketingActions/custom/{name}/constraints", summary="Evaluate a custom action against labels")
async def custom_constraints(name: str, request: Request, p: Principal = Depends(principal),
                             duleLabels: str | None = Query(None, description="comma-separated labels, e.g. C1,C2"),
                             includeDraft: bool = False) -> Any:
    return await _constraints_get("custom", name, request, p, duleLabels, includeDraft)


@router.post("/marketingActions/custom/{name}/constraints", summary="Evaluate a custom action against entities")
async def custom_constraints_entities(name: str, request: Request, p: Principal = Depends(principal),
                                      includeDraft: bool = False) -> Any:
    return await _constraints_post("custom", name, request, p, includeDraft)


@router.post("/bulk-eval", summary="Many evaluations in one call (207 when some fail)")
async def bulk_eval(request: Request, p: Principal = Depends(principal)) -> Response:
    p.require(*READ)
    svc = _svc(request)
    items = checks.parse_bulk(await _body(request))
    requests: list[EvalRequest | Problem] = []
    for i, item in enumerate(items):
        errors: list[FieldError] = []
        if not isinstance(item, dict):
            errors.append(FieldError(f"/{i}", "an evaluation request is an object", "object"))
        else:
            action = checks.action_of_item(item, f"/{i}", errors)
            req = _item(action or "", item, f"/{i}", errors, svc.entity_types)
        requests.append(checks.problem("Invalid evaluation request", errors) if errors else req)
    valid = [r for r in requests if isinstance(r, EvalRequest)]
    done = iter(await svc.evaluate_many(sandbox_id=p.sandbox_id, requests=valid))
    results: list[dict[str, Any]] = []
    for i, r in enumerate(requests):
        out = r if isinstance(r, Problem) else next(done)
        if isinstance(out, Problem):
            results.append({"index": i, "status": out.status, **out.to_dict()})
        else:
            results.append({"index": i, "status": 200, **out.to_api()})
    failed = any(r["status"] != 200 for r in results)
    return json_response({"items": results}, 207 if failed else 200)


# -- field labels ---------------------------------------------------------------------------------------

@router.get("/fieldLabels", summary="Every schema and field group of the sandbox that has field labels")
async def list_field_labels(request: Request, p: Principal = Depends(principal)) -> Any:
    p.require(*READ)
    return {"items": await _svc(request).all_field_labels(sandbox_id=p.sandbox_id)}


@router.get("/fieldLabels/{ident:path}", summary="The field labels of a schema or field group (URL-encoded $id or "
            "altId); for a schema also its field groups' and the effective labels")
async def get_field_labels(ident: str, request: Request, p: Principal = Depends(principal)) -> Response:
    p.require(*READ)
    return _tagged(await _svc(request).field_labels(sandbox_id=p.sandbox_id, resource=ident))


@router.put("/fieldLabels/{ident:path}", summary='Replace the field labels of a schema or field group: '
            '{"labels": {"/person/name": ["I1"]}}')
async def put_field_labels(ident: str, request: Request, p: Principal = Depends(principal)) -> Response:
    p.require("admin")
    out = await _svc(request).put_field_labels(sandbox_id=p.sandbox_id, resource=ident, body=await _body(request),
                                               actor=p.actor, if_match=_if_match(request))
    return _tagged(out)
