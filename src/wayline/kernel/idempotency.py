"""`Idempotency-Key` on every POST: a retried request gets the first answer instead of a second effect.

The first 2xx answer to (sandbox, key) is stored with a hash of the request (method, path, body). The
same key with the same request answers the stored response again (with `Idempotent-Replayed: true`);
the same key with a different request is a 422 problem. Answers that were not 2xx are not stored, so
a corrected retry can go through. Keys are kept for `ttl_ms` (default 24 h).
"""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa

from wayline.kernel import tables as t
from wayline.kernel.problems import Problem
from wayline.kernel.store import insert_ignore, now_ms
from wayline.kernel.web import problem_response

TTL_MS = 24 * 3600 * 1000
MAX_KEY = 255


class IdempotencyMiddleware:
    def __init__(self, app: Any, runtime: Any) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        key = headers.get(b"idempotency-key")
        if key is None:
            await self.app(scope, receive, send)
            return
        from starlette.requests import Request

        from wayline.kernel.web import api_key_of

        request = Request(scope)
        try:
            if len(key) > MAX_KEY or not key:
                raise Problem(400, "bad-idempotency-key", "Invalid Idempotency-Key",
                              f"an Idempotency-Key is 1-{MAX_KEY} characters")
            api_key = api_key_of(request)
            if not api_key:
                await self.app(scope, receive, send)  # the app answers 401
                return
            principal = await self.runtime.verifier.verify(api_key)
        except Problem as p:
            await problem_response(p, scope["path"])(scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        digest = hashlib.sha256(b"POST " + scope["path"].encode() + b"?" + scope.get("query_string", b"")
                                + b"\n" + bytes(body)).hexdigest()
        store = self.runtime.store
        idem = key.decode("latin-1")
        row = await store.read(_lookup, principal.sandbox_id, idem)
        if row is not None:
            if row["request_hash"] != digest:
                p = Problem(422, "idempotency-key-reused", "Idempotency-Key reused",
                            "this Idempotency-Key was used for a different request")
                await problem_response(p, scope["path"])(scope, receive, send)
                return
            stored = row["body"]
            out_headers = [(b"content-type", stored["contentType"].encode()), (b"idempotent-replayed", b"true")]
            await send({"type": "http.response.start", "status": row["status"], "headers": out_headers})
            await send({"type": "http.response.body", "body": stored["body"].encode()})
            return

        sent = False

        async def replay_receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        status = [0]
        ctype = [b"application/json"]
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                for k, v in message.get("headers", []):
                    if k.lower() == b"content-type":
                        ctype[0] = v
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, replay_receive, capture)
        if 200 <= status[0] < 300:
            payload = {"contentType": ctype[0].decode(), "body": b"".join(chunks).decode("utf-8", "replace")}
            await store.write(_remember, principal.sandbox_id, idem, digest, status[0], payload)


def _lookup(conn: sa.Connection, sandbox_id: str, key: str) -> Any:
    return conn.execute(sa.select(t.idempotency).where(
        t.idempotency.c.sandbox_id == sandbox_id, t.idempotency.c.key == key,
        t.idempotency.c.created_ms > now_ms() - TTL_MS)).mappings().first()


def _remember(conn: sa.Connection, sandbox_id: str, key: str, digest: str, status: int, body: Any) -> None:
    conn.execute(t.idempotency.delete().where(t.idempotency.c.sandbox_id == sandbox_id,
                                              t.idempotency.c.key == key,
                                              t.idempotency.c.created_ms <= now_ms() - TTL_MS))
    insert_ignore(conn, t.idempotency, [{"sandbox_id": sandbox_id, "key": key, "request_hash": digest,
                                         "status": status, "body": body, "created_ms": now_ms()}],
                  ["sandbox_id", "key"])
