"""HTTP plumbing every product's API shares: problem+json errors, auth, rate limits, JSON bodies."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from wayline.kernel.problems import MEDIA_TYPE, FieldError, Problem, pointer
from wayline.kernel.tenancy import UNAUTHORIZED, KeyVerifier, Principal


class ORJSONResponse(JSONResponse):
    """JSON rendered by orjson. A JSONResponse, so that FastAPI documents each route's answer by its
    return annotation (for any other response class it writes `{"type": "string"}`)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json", headers=headers)


def problem_response(problem: Problem, instance: str | None = None) -> Response:
    return Response(orjson.dumps(problem.to_dict(instance)), status_code=problem.status,
                    media_type=MEDIA_TYPE, headers=problem.headers or None)


_STATUS_SLUGS = {404: ("not-found", "Not found"), 405: ("method-not-allowed", "Method not allowed"),
                 401: ("unauthorized", "Unauthorized"), 403: ("forbidden", "Forbidden"),
                 413: ("payload-too-large", "Payload too large"),
                 415: ("unsupported-media-type", "Unsupported media type")}


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return problem_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = []
        for e in exc.errors():
            loc = list(e.get("loc", ()))
            where = loc[0] if loc else "body"
            path = loc[1:] if where in ("body", "query", "path", "header") else loc
            ptr = pointer(path)
            if where != "body":
                ptr = f"{where}:{ptr or '/'}"
            errors.append(FieldError(ptr or "/", e.get("msg", "invalid"), e.get("type")))
        p = Problem(422, "validation", "Invalid request",
                    f"{len(errors)} field(s) failed validation", errors)
        return problem_response(p, request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        slug, title = _STATUS_SLUGS.get(exc.status_code, ("http-error", "HTTP error"))
        detail = exc.detail if isinstance(exc.detail, str) else ""
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no resource at {request.url.path}"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not only those of the first route matching it
            headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope)) or headers.get("Allow", "")
        p = Problem(exc.status_code, slug, title, detail, headers=headers)
        return problem_response(p, request.url.path)

    @app.exception_handler(sqlalchemy.exc.DataError)  # its own handler: one for Exception is a 500 handler,
    async def _unstorable(request: Request, exc: Exception) -> Response:  # after which Starlette re-raises
        return problem_response(unexpected(exc, request.url.path), request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        return problem_response(unexpected(exc, request.url.path), request.url.path)


def unexpected(exc: Exception, path: str) -> Problem:
    """The problem an unexpected exception answers: a value the database refused to store is the
    request's fault (422); anything else is logged and is a 500."""
    import structlog

    if isinstance(exc, sqlalchemy.exc.DataError):
        reason = str(exc.orig).splitlines()[0]
        structlog.get_logger("wayline.api").warning("value refused by the database", path=path, reason=reason)
        return Problem(422, "unstorable-value", "Value cannot be stored",
                       f"the database refused a value of the request: {reason}")
    structlog.get_logger("wayline.api").exception("unhandled error", path=path)
    return Problem(500, "internal", "Internal error", "the server failed; the error is logged")


def allowed_methods(app: FastAPI, scope: dict[str, Any]) -> list[str]:
    """The methods some route of the app serves at this request's path (RFC 9110's Allow)."""
    methods: set[str] = set()
    for route in _flat(app.router.routes):
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def _flat(routes: list[Any]) -> Iterator[Any]:
    """The routes of the app, those of included routers among them (this app includes its routers
    without a prefix: each router's own prefix is in its routes' paths)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _flat(inner.routes)
        else:
            yield route


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem", "type": "object", "required": ["type", "title", "status"],
    "description": "RFC 9457 problem details. Validation problems list each failing field in `errors`.",
    "properties": {
        "type": {"type": "string", "description": "a URI naming the kind of problem"},
        "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"},
        "instance": {"type": "string", "description": "the request path"},
        "errors": {"type": "array", "items": {
            "type": "object", "required": ["pointer", "detail"],
            "properties": {"pointer": {"type": "string", "description": "JSON pointer of the field, or "
                                       "`query:`, `path:`, `header:` and the parameter"},
                           "detail": {"type": "string"}, "expected": {"type": "string"}}}}},
    "additionalProperties": True,
}


def document_problems(app: FastAPI) -> None:
    """The OpenAPI document says what errors are: every operation answers them as problem+json
    (FastAPI documents only its own 422, as application/json of another shape)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = PROBLEM_SCHEMA
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        problem = {"content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        for ops in schema.get("paths", {}).values():
            for op in ops.values():
                responses = op.setdefault("responses", {})
                if "422" in responses:
                    responses["422"] = {"description": "Invalid request: one entry in `errors` per failing field",
                                        **problem}
                responses["default"] = {"description": "An error, as RFC 9457 problem details", **problem}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def api_key_of(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value:
            return value.strip()
    return request.headers.get("x-api-key")


async def principal(request: Request) -> Principal:
    """FastAPI dependency: the calling key, verified, checked against x-sandbox-name if sent."""
    key = api_key_of(request)
    if not key:
        raise UNAUTHORIZED
    verifier: KeyVerifier = request.app.state.runtime.verifier
    p = await verifier.verify(key)
    asked = request.headers.get("x-sandbox-name")
    if asked and asked != p.sandbox_name:
        raise Problem(403, "wrong-sandbox", "Forbidden",
                      f"this key belongs to sandbox {p.sandbox_name!r}, not {asked!r}")
    return p


async def read_json(request: Request, max_bytes: int, *, records: bool = False) -> Any:
    """The request body as JSON, with 415 / 413 / 400 problems for the wrong type, size or syntax
    (`records`: see `parse_json`)."""
    return parse_json(await read_body(request, max_bytes), records=records)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body of a JSON request, unparsed, with 415 / 413 problems for the wrong type or size."""
    ctype = request.headers.get("content-type", "")
    if ctype and "json" not in ctype.split(";", 1)[0].lower():
        raise Problem(415, "unsupported-media-type", "Unsupported media type",
                      f"send application/json, not {ctype!r}")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large(max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise too_large(max_bytes)
    return bytes(body)


def parse_json(body: bytes, *, records: bool = False) -> Any:
    """The body as JSON; a string holding U+0000 is refused (`refuse_nul`) unless the body carries
    `records`: ingestion keeps such a record as a failed record of its own (`ingestion`), so that the
    rest of the request is stored."""
    if not body:
        raise Problem(400, "malformed-json", "Malformed JSON", "the request body is empty")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, "malformed-json", "Malformed JSON",
                      f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                      extra={"line": exc.lineno, "column": exc.colno}) from None
    if not records:
        refuse_nul(body, doc)
    return doc


def refuse_nul(body: bytes, doc: Any) -> None:
    """A 422 naming the first string of a parsed JSON body that holds U+0000. PostgreSQL stores no NUL
    in text or jsonb, so such a value would be refused half-way through storing it; it is refused up
    front instead, on every database alike. Only a body whose bytes hold the escape is walked."""
    if b"\\u0000" not in body:
        return
    at = _nul_at(doc, [])
    if at is not None:
        raise Problem(422, "validation", "Invalid request", "U+0000 (NUL) cannot be stored in a string",
                      [FieldError(pointer(at) or "/", "remove the NUL character (\\u0000)", "no-nul")])


def _nul_at(doc: Any, path: list[Any]) -> list[Any] | None:
    """The path of the first string (or key) holding U+0000, depth first; a loop, not recursion, as
    JSON nests up to orjson's 1,024 levels."""
    stack: list[tuple[Any, list[Any]]] = [(doc, path)]
    while stack:
        v, at = stack.pop()
        if isinstance(v, str):
            if "\x00" in v:
                return at
        elif isinstance(v, dict):
            for k in v:
                if "\x00" in k:
                    return [*at, k]
            stack.extend((x, [*at, k]) for k, x in reversed(v.items()))
        elif isinstance(v, list):
            stack.extend((x, [*at, n]) for n, x in reversed(list(enumerate(v))))
    return None


def too_large(max_bytes: int) -> Problem:
    return Problem(413, "payload-too-large", "Payload too large",
                   f"the request body is over the limit of {max_bytes} bytes")


class RateLimiter:
    """Token buckets per name (e.g. per sandbox): `take(n)` or a 429 problem with Retry-After."""

    def __init__(self, rate_per_s: float, burst: float) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, name: str, n: float = 1.0) -> None:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(name, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= n:
                self._buckets[name] = (tokens - n, now)
                return
            self._buckets[name] = (tokens, now)
        wait = max(1, int((n - tokens) / self.rate + 0.999))
        raise Problem(429, "rate-limited", "Too many requests",
                      f"over the limit of {self.rate:g} messages/s for this sandbox; retry after {wait}s",
                      headers={"Retry-After": str(wait)})


class _Route:
    def __init__(self, path: str) -> None:
        self.path = path


class FastPath:
    """Sends hot POST routes straight to their handler, past routing and the exception layers.

    `routes` maps a path template `/prefix/{id}` (one trailing parameter) to the route's own handler
    `handler(param, request)`, so there is one implementation; FastAPI still serves the route (and
    documents it) whenever this layer steps aside: requests carrying an Idempotency-Key, other
    methods, other paths. Measured by bench/ingest.py: event-loop CPU per single-message request
    fell by about three quarters.
    """

    def __init__(self, app: Any, routes: dict[str, Any], reserved: tuple[str, ...] = ()) -> None:
        self.app = app
        self.routes = [(t.rsplit("{", 1)[0], _Route(t), h) for t, h in routes.items()]
        self.reserved = set(reserved)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] not in self.reserved:
            path: str = scope["path"]
            for prefix, route, handler in self.routes:
                if path.startswith(prefix) and "/" not in path[len(prefix):] and len(path) > len(prefix):
                    if any(k == b"idempotency-key" for k, _ in scope["headers"]):
                        break
                    from starlette.requests import Request

                    scope["route"] = route
                    try:
                        response = await handler(path[len(prefix):], Request(scope, receive))
                    except Problem as p:
                        response = problem_response(p, path)
                    except Exception as exc:  # noqa: BLE001 (answered as a problem, logged when a 500)
                        response = problem_response(unexpected(exc, path), path)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
