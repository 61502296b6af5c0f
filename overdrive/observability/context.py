"""What a log line knows about the request it was written in: context variables, set per request.

`RequestGuard` (the API's outermost middleware) binds the request id and the time the request
arrived for the request's whole run, so any log line written while serving it — the route, a
service, uvicorn's access line, a task the request started — carries the id without passing it
around. The Kafka bus reads the id from here to send it in a record header, and the worker binds
the header's id while it logs about that record's signals.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

request_id: ContextVar[str | None] = ContextVar("overdrive_request_id", default=None)
request_started: ContextVar[float | None] = ContextVar("overdrive_request_started", default=None)  # perf_counter()


def current_request_id() -> str | None:
    return request_id.get()


def bind(rid: str | None, started: float | None = None) -> tuple[Token, Token]:
    """Bind a request id (and its start, a `time.perf_counter()` value); undo with `unbind`."""
    return request_id.set(rid), request_started.set(started)


def unbind(tokens: tuple[Token, Token]) -> None:
    request_id.reset(tokens[0])
    request_started.reset(tokens[1])


@contextmanager
def bound(rid: str | None) -> Iterator[None]:
    """`with bound(rid):` every log line inside carries `rid`."""
    tokens = bind(rid)
    try:
        yield
    finally:
        unbind(tokens)
