"""ASGI middleware: request-size limit, JSON-only bodies, request ids and per-endpoint latency.

The request id is the client's `X-Request-ID` when it is 1–128 printable ASCII characters (else a
fresh one); it is returned in the response's `X-Request-ID` and bound for the request's whole run
(`overdrive.observability.context`), so every log line written while serving it carries it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from overdrive.observability.context import bind, unbind
from overdrive.observability.performance import PerformanceMonitor


class _BodyTooLarge(Exception):
    pass


_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_MAX_REQUEST_ID = 128


def request_id_from(header: bytes | None) -> str:
    """The client's request id if it is 1–128 printable ASCII characters, else a new one."""
    if header and len(header) <= _MAX_REQUEST_ID and header.isascii() and header.decode("ascii").isprintable():
        return header.decode("ascii")
    return uuid.uuid4().hex


class RequestGuard:
    """Answers 413 for bodies over `max_body_bytes` and 415 for a body that is not JSON (a
    cross-site form cannot post to the API), tags each request with an id, times it."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, monitor: PerformanceMonitor) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.monitor = monitor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        request_id = request_id_from(headers.get(b"x-request-id"))
        scope.setdefault("state", {})["request_id"] = request_id
        tokens = bind(request_id, started)
        try:
            await self._guarded(scope, receive, send, started, headers, request_id)
        finally:
            unbind(tokens)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, started: float,
                       headers: dict[bytes, bytes], request_id: str) -> None:
        status = 500
        response_started = False
        limit = self.max_body_bytes

        def refuse_too_large() -> Awaitable[None]:
            return _refuse(send, 413, request_id, "payload_too_large", f"request body exceeds {limit} bytes")

        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await refuse_too_large()
            self._record(scope, started, 413)
            return
        if scope["method"] in _WRITES and not _json_or_empty(headers):
            await _refuse(send, 415, request_id, "unsupported_media_type",
                          "request bodies must be JSON (Content-Type: application/json)")
            self._record(scope, started, 415)
            return

        received = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal status, response_started
            if too_large:  # whatever the app made of the aborted read, the answer is 413
                if message["type"] == "http.response.start":
                    status = 413
                    response_started = True
                    await refuse_too_large()
                return
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                status = 413
                await refuse_too_large()
        finally:
            self._record(scope, started, status)

    def _record(self, scope: Scope, started: float, status: int) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        self.monitor.record(f"{scope['method']} {path}", (time.perf_counter() - started) * 1000.0, status)


def _json_or_empty(headers: dict[bytes, bytes]) -> bool:
    media = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if media:
        return media == b"application/json" or media.endswith(b"+json")
    return headers.get(b"content-length", b"0") == b"0" and b"transfer-encoding" not in headers


async def _refuse(send: Send, status: int, request_id: str, error: str, message: str) -> None:
    body = orjson.dumps({"error": error, "message": message, "field": "body"})
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", request_id.encode("latin-1"))],
    })
    await send({"type": "http.response.body", "body": body})
