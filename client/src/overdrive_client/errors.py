"""One exception tree for everything the client raises; httpx's own errors never escape.

    OverdriveError
    ├── ConnectionFailed        no answer: refused, reset, timed out (after any retries)
    ├── HTTPError               the service answered an error status
    │   ├── BadRequest          400, 413, 415, 422: `.errors` names each offending field
    │   ├── Unauthorized        401
    │   ├── Forbidden           403
    │   ├── NotFound            404
    │   ├── Conflict            409
    │   ├── RateLimited         429 (`.retry_after`)
    │   ├── Unavailable         503 (`.retry_after`)
    │   └── ServerError         any other 5xx
    └── SenderFailed            a buffered sender gave up on a batch (`.unsent` can be sent again)

Catching `OverdriveError` catches every failure of a call; `HTTPError.status_code`,
`.error` and `.message` carry what the service said.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from overdrive_client.types import FieldError

if TYPE_CHECKING:
    from overdrive_client.types import Signal


class OverdriveError(Exception):
    """Base of every error the client raises."""


class ConnectionFailed(OverdriveError):
    """The service could not be reached or gave no answer (connection refused or reset, timeout)."""

    def __init__(self, message: str, *, retries: int = 0) -> None:
        super().__init__(message)
        self.retries = retries


class HTTPError(OverdriveError):
    """The service answered with an error status; its JSON error body is parsed into fields."""

    def __init__(self, message: str, *, response: httpx.Response, retries: int = 0) -> None:
        super().__init__(message)
        self.response = response
        self.status_code = response.status_code
        self.retries = retries
        body = _json_body(response)
        self.error: str = str(body.get("error", "")) if body else ""
        self.message: str = str(body.get("message", "")) if body else response.text[:500]
        raw = body.get("errors") if body else None
        self.errors: list[FieldError] = [
            {"field": str(e.get("field", "body")), "message": str(e.get("message", ""))}
            for e in raw if isinstance(e, dict)] if isinstance(raw, list) else []
        self.retry_after: float | None = retry_after(response)
        self.request_id: str | None = response.headers.get("x-request-id")


class BadRequest(HTTPError):
    """The request was refused as malformed or invalid (400, 413, 415, 422); nothing was written."""


class Unauthorized(HTTPError):
    """401: no credential, or one the service refused."""


class Forbidden(HTTPError):
    """403: the credential lacks the scope (or the user) the call needs."""


class NotFound(HTTPError):
    """404: no such item, experiment, job or path."""


class Conflict(HTTPError):
    """409: the request conflicts with the current state."""


class RateLimited(HTTPError):
    """429: the signal queue is full or the credential's rate limit is spent; retry after `retry_after`."""


class Unavailable(HTTPError):
    """503: a store or broker cannot serve right now; retry after `retry_after`."""


class ServerError(HTTPError):
    """A 5xx other than 503: a fault in the service (or a proxy in front of it)."""


class SenderFailed(OverdriveError):
    """A buffered sender gave up on a batch; it sends nothing more.

    `failed` is the batch that was refused or never acknowledged, `unsent` the signals buffered
    behind it; every signal keeps its `signal_id`, so sending both again (with a new sender) can
    never count one twice. `offset` is the position of the failed batch's first signal among
    everything given to the sender, `cause` the error of its last attempt.
    """

    def __init__(self, cause: OverdriveError, *, failed: Sequence[Signal], unsent: Sequence[Signal],
                 offset: int) -> None:
        super().__init__(f"signal sender stopped: {cause}")
        self.cause = cause
        self.failed = list(failed)
        self.unsent = list(unsent)
        self.offset = offset


_BY_STATUS: dict[int, type[HTTPError]] = {
    400: BadRequest, 413: BadRequest, 415: BadRequest, 422: BadRequest,
    401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
    429: RateLimited, 503: Unavailable,
}


def error_for(response: httpx.Response, *, retries: int = 0) -> HTTPError:
    """The typed error for an error response, its message naming the call and the service's words."""
    request = response.request
    kind = _BY_STATUS.get(response.status_code) or (ServerError if response.status_code >= 500 else HTTPError)
    body = _json_body(response)
    said = str(body.get("message", "")) if body else response.text[:500]
    after = f" after {retries} retries" if retries else ""
    message = f"{request.method} {request.url.path} answered {response.status_code}{after}: {said}"
    return kind(message, response=response, retries=retries)


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the `Retry-After` header asks for (delta-seconds or an HTTP date); None without one."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _json_body(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = orjson.loads(response.content)
    except (orjson.JSONDecodeError, httpx.ResponseNotRead):
        return None
    return body if isinstance(body, dict) else None
