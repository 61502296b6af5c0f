"""The HTTP/1.1 connection: uvicorn's httptools protocol with the limits it lacks.

uvicorn 0.54 with httptools bounds none of these (its `h11_max_incomplete_event_size` applies to
the h11 protocol only; `timeout_keep_alive` is armed only after a response; `limit_concurrency`
answers 503 but never closes a connection): an endless header grew in memory, re-joined on each
chunk, and held `/health/live` at 6 s; a connection that never sent a byte stayed open for ever,
so 1,100 of them took every file descriptor and every other client failed. Here:

- a request's line and headers are at most `max_header_bytes` (431, then closed);
- they must arrive within `header_timeout_s` of the request's first byte, its body within
  `body_timeout_s` of its headers (408, then closed);
- a connection idle `keep_alive_s` — before its first request, as after a response — is closed;
- at most `max_connections` are open: past it the longest-idle connection is closed to make room
  (as nginx reuses idle keep-alive connections), or the new one is if none is idle (503).

It also answers `GET /health/live` itself, and `GET /health/ready` from a snapshot taken every
second (`ReadinessSnapshot`), and counts rankings and signal writes into the app's
`Admission` as they are parsed, answering those past the bound with a bare 503 (see
`overdrive.api.admission`).

`limits_protocol(...)` makes the protocol class that `overdrive.app.serve` hands uvicorn.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from overdrive.api.admission import SCOPE_KEY, Admission
from overdrive.api.middleware import request_id_from

_HEADS = {
    408: b"HTTP/1.1 408 Request Timeout\r\n",
    431: b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
    503: b"HTTP/1.1 503 Service Unavailable\r\n",
}
_MESSAGES = {
    408: b'{"error":"request_timeout","message":"the request did not arrive in time"}',
    431: b'{"error":"headers_too_large","message":"request line and headers exceed the limit"}',
    503: b'{"error":"overloaded","message":"too many open connections"}',
}


LIVE_PATH = b"/health/live"
LIVE_BODY = b'{"status":"ok"}'
READY_PATH = b"/health/ready"


class ReadinessSnapshot:
    """`GET /health/ready` as the app answers it, asked in the background every `period_s`; the
    protocol answers probes with the latest answer while it is younger than `2 × period_s` (else
    the app answers, as slowly as it must). Under saturation the check itself waits behind the
    store's queue (~100–300 ms here), so a probe answered from the snapshot costs nothing and
    tells a state at most a period old; a loop that stops turning lets it go stale."""

    def __init__(self, period_s: float = 1.0) -> None:
        self.period_s = period_s
        self._latest: tuple[int, bytes] | None = None
        self._at = 0.0
        self._task: asyncio.Task | None = None

    def latest(self) -> tuple[int, bytes] | None:
        return self._latest if self._latest and time.monotonic() - self._at < 2 * self.period_s else None

    def start(self, app: Any) -> None:
        """Begin asking `app` (once; from the first connection, on the server's loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._refresh(app))

    async def _refresh(self, app: Any) -> None:
        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": "/health/ready", "raw_path": READY_PATH,
                 "query_string": b"", "root_path": "", "headers": [], "client": ("127.0.0.1", 0),
                 "server": ("127.0.0.1", 0), "state": {}}
        while True:
            answer: dict[str, Any] = {"body": b""}

            async def receive() -> dict:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message: dict) -> None:
                if message["type"] == "http.response.start":
                    answer["status"] = message["status"]
                else:
                    answer["body"] += message.get("body", b"")

            try:
                await app(dict(scope, state={}, headers=[]), receive, send)
                if answer.get("status") in (200, 503):
                    self._latest, self._at = (answer["status"], answer["body"]), time.monotonic()
            except Exception:  # noqa: BLE001 - the app answers probes itself until a check succeeds
                self._latest = None
            await asyncio.sleep(self.period_s)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_header_bytes: int = 16 * 1024
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_s: float = 5.0
    max_connections: int = 1000
    backlog: int = 2048  # the listen queue, and what asyncio accepts in one loop turn at most


def limits_protocol(limits: ConnectionLimits, admission: Admission | None = None,
                    readiness: ReadinessSnapshot | None = None) -> type[HttpToolsProtocol]:
    """The protocol class for uvicorn's `http=`, bound to `limits`, counting requests into
    `admission` (the app's, `app.state.admission`) as soon as they are parsed, and answering
    readiness probes from `readiness`."""
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,),
                {"limits": limits, "admission": admission, "readiness": readiness, "idle": OrderedDict()})


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    limits: ConnectionLimits = ConnectionLimits()
    admission: Admission | None = None
    readiness: ReadinessSnapshot | None = None
    idle: OrderedDict[LimitedHttpToolsProtocol, None] = OrderedDict()  # the server's idle connections, longest idle first

    async def admission_refusal(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": self.admission.refusal_headers})
        await send({"type": "http.response.body", "body": self.admission.refusal_body})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout_keep_alive = self.limits.keep_alive_s
        self._in_head = False
        self._answered = False  # the request under way was answered by this protocol itself
        self._head_bytes = 0
        self._read_timer: asyncio.TimerHandle | None = None  # header or body deadline

    # uvicorn's protocol interface, extended

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections and not self._close_longest_idle():
            self.connections.add(self)  # so that connection_lost's discard finds it
            self.transport = transport
            self._refuse(503)
            return
        super().connection_made(transport)
        self._idle()
        if self.readiness is not None:
            self.readiness.start(self.app)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_timer()
        self.idle.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.idle.pop(self, None)
        super().data_received(data)
        if self._in_head and self.parser is not None:
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(431)
                return
        if not self._in_head and (self.cycle is None or self.cycle.response_complete) and not self.pipeline:
            self._idle()  # between requests (stray bytes, or a request completed in this chunk)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._arm_read_timer(self.limits.header_timeout_s)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._arm_read_timer(self.limits.body_timeout_s)
        self._answered = False
        if self.parser.get_method() == b"GET" and (self.cycle is None or self.cycle.response_complete):
            if self.url == LIVE_PATH:
                self._answer(200, LIVE_BODY)
                return
            if self.url == READY_PATH and self.readiness is not None and (latest := self.readiness.latest()):
                self._answer(*latest)
                return
        verdict = None
        if self.admission is not None and (self.cycle is None or self.cycle.response_complete):  # not pipelined
            verdict = self.admission.enter(self.parser.get_method().decode("ascii"),
                                           self.url.partition(b"?")[0].decode("latin-1"))
        if verdict is None:
            super().on_headers_complete()
            return
        kind, admitted = verdict
        # Admitted: run by a wrapper that releases the slot however the request ends — refused by
        # a middleware (413, 415) before the shedder, failed, or disconnected. Shed: answered by a
        # bare 503 app, without the middleware stack — a saturated server may shed a thousand a
        # second, and each costs the loop what it costs.
        app, self.app = self.app, (_releasing(self.app, self.admission, kind) if admitted else self.admission_refusal)
        try:
            super().on_headers_complete()
        finally:
            self.app = app
        if admitted and (self.cycle is None or self.cycle.scope is not self.scope):
            self.admission.leave(kind)  # no task was made for it (an upgrade): nothing will release it

    def on_body(self, body: bytes) -> None:
        if not self._answered:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._cancel_read_timer()
        if not self._answered:
            super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # uvicorn armed its keep-alive timer: idle now
            self.idle[self] = None

    # ours

    def _answer(self, status: int, body: bytes) -> None:
        """Answered here, as the headers are parsed: no task, no middleware, in the loop turn that
        reads it — so it waits for nothing but the turn under way, which the admission bound keeps
        short. For `/health/live` what it proves is what liveness means: the loop turns."""
        self._answered = True
        request_id = request_id_from(next((v for n, v in self.headers if n == b"x-request-id"), None))
        keep_alive = self.parser.should_keep_alive() and self.parser.get_http_version() == "1.1"
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                             % (status, b"OK" if status == 200 else b"Service Unavailable", len(body))
                             + b"x-request-id: " + request_id.encode("ascii") + b"\r\n"
                             + (b"" if keep_alive else b"connection: close\r\n") + b"\r\n" + body)
        self.server_state.total_requests += 1
        if not keep_alive:
            self.transport.close()
        else:
            self._idle()

    def _idle(self) -> None:
        """Between requests: closed unless a request starts within `keep_alive_s`."""
        if self not in self.idle and not self.transport.is_closing():
            self.idle[self] = None
        if self.timeout_keep_alive_task is None and not self.transport.is_closing():
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def _close_longest_idle(self) -> bool:
        """Close the connection idle longest to make room; False if none is idle."""
        while self.idle:
            oldest, _ = self.idle.popitem(last=False)
            if not oldest.transport.is_closing():
                oldest.transport.close()
                oldest.connections.discard(oldest)  # the room is taken now; connection_lost follows
                return True
        return False

    def _arm_read_timer(self, seconds: float) -> None:
        self._cancel_read_timer()
        self._read_timer = self.loop.call_later(seconds, self._read_timed_out)

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.cycle is not None and self.cycle.response_started and not self._in_head:
            self.transport.close()  # the app answers already: nothing to say, only to stop waiting
        else:
            self._refuse(408)

    def _refuse(self, status: int) -> None:
        """Answer `status` (unless an answer is under way) and close the connection."""
        self._cancel_read_timer()
        self._in_head = False
        if self.transport.is_closing():
            return
        body = _MESSAGES[status]
        if not (self.cycle is not None and self.cycle.response_started and not self.cycle.response_complete):
            self.transport.write(_HEADS[status] + b"content-type: application/json\r\nconnection: close\r\n"
                                 + (b"retry-after: 1\r\n" if status == 503 else b"")
                                 + b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app's next receive() is a disconnect
            self.cycle.message_event.set()
        self.transport.close()
        self.parser = _Closed()  # type: ignore[assignment]  # bytes already buffered are dropped


def _releasing(app: Any, admission: Admission, kind: str) -> Any:
    async def run(scope: Any, receive: Any, send: Any) -> None:
        scope[SCOPE_KEY] = (kind, True)  # counted: the shedder lets it through
        try:
            await app(scope, receive, send)
        finally:
            admission.leave(kind)

    return run


class _Closed:
    """In place of the parser once a connection is refused: swallows what is still delivered."""

    def feed_data(self, data: bytes) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)
