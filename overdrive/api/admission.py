"""Admission of heavy requests: a bounded number of rankings (and signal writes) in flight.

One event loop serves every request, so the heavy work it holds at once is what every other
request — `/health/live` among them — waits behind. `Admission` counts, per kind, the requests
received and not yet answered; past a kind's bound a request is shed: answered 503 with
`Retry-After` at once, before its body is read, instead of queueing to seconds.

"Received" means: counted by the HTTP protocol (`overdrive.api.http_protocol`) as soon as the
request's headers are parsed, before its task waits its turn on the loop — a count taken only
when the application starts would miss the queue that forms in front of it, which is where a
saturated server's seconds go. Requests it did not decide on (a pipelined one; an app served
without that protocol, as in tests) are counted by `LoadShedder` when they reach it.
"""

from __future__ import annotations

from types import SimpleNamespace

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

SCOPE_KEY = "overdrive.admission"  # (kind, admitted) once decided


class Admission:
    """`limits` maps (method, path) to (kind, bound); routes sharing a kind share one count. A
    bound of 0 means no limit (the route is not guarded)."""

    def __init__(self, limits: dict[tuple[str, str], tuple[str, int]], *, retry_after_s: int) -> None:
        self.routes = {route: (kind, bound) for route, (kind, bound) in limits.items() if bound > 0}
        self.in_flight = dict.fromkeys((kind for kind, _ in self.routes.values()), 0)
        self.shed = dict.fromkeys(self.in_flight, 0)
        self.retry_after_s = retry_after_s
        self.refusal_body = orjson.dumps({"error": "overloaded", "message": f"too many requests of this kind in flight; "
                                          f"retry after {retry_after_s} s"})
        self.refusal_headers = [(b"content-type", b"application/json"),
                                (b"content-length", str(len(self.refusal_body)).encode()),
                                (b"retry-after", str(retry_after_s).encode())]

    def enter(self, method: str, path: str) -> tuple[str, bool] | None:
        """(kind, admitted) for a guarded route — admitted ones must `leave` — else None."""
        guarded = self.routes.get((method, path))
        if guarded is None:
            return None
        kind, bound = guarded
        if self.in_flight[kind] >= bound:
            self.shed[kind] += 1
            return kind, False
        self.in_flight[kind] += 1
        return kind, True

    def leave(self, kind: str) -> None:
        self.in_flight[kind] -= 1


class LoadShedder:
    """ASGI middleware for the requests the HTTP protocol did not decide on (a pipelined one; an
    app served without that protocol, as in tests): counts them, answers those past the bound 503
    with `Retry-After`, releases the admitted ones when the application is done with them."""

    def __init__(self, app: ASGIApp, *, admission: Admission) -> None:
        self.app = app
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get(SCOPE_KEY):  # counted by the HTTP protocol, which releases it too
            await self.app(scope, receive, send)
            return
        verdict = self.admission.enter(scope["method"], scope["path"])
        if verdict is None:
            await self.app(scope, receive, send)
            return
        kind, admitted = verdict
        if not admitted:
            scope["route"] = SimpleNamespace(path=scope["path"])  # timed as its endpoint's answer
            await send({"type": "http.response.start", "status": 503, "headers": self.admission.refusal_headers})
            await send({"type": "http.response.body", "body": self.admission.refusal_body})
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.admission.leave(kind)
