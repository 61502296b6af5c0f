"""Sending a `Call` with retries: one loop for the sync client, its twin for the async one.

Both encode the body once (orjson), build the request once and resend that same request on a
retry, so a retried batch carries byte for byte the same signals and `signal_id`s. An answer in
`call.ok` is decoded; any other becomes the typed error of `errors.py`. Each returns the answer
and how many retries it took.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import orjson

from overdrive_client.endpoints import Call
from overdrive_client.errors import ConnectionFailed, OverdriveError, error_for, retry_after
from overdrive_client.retry import Retry
from overdrive_client.version import __version__

log = logging.getLogger("overdrive_client")
T = TypeVar("T")
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


@dataclass(frozen=True, slots=True)
class Options:
    """What one client (or a `with_options` copy of it) sends every call with."""

    retry: Retry
    auth: httpx.Auth | None
    timeout: httpx.Timeout | None  # None: the httpx client's own


def build(http: httpx.Client | httpx.AsyncClient, call: Call[Any], options: Options) -> httpx.Request:
    headers = {}
    content = None
    if call.body is not None:
        content = orjson.dumps(call.body, option=_JSON_OPTIONS)
        headers["content-type"] = "application/json"
    if call.request_id is not None:
        headers["x-request-id"] = call.request_id
    extra: dict[str, Any] = {} if options.timeout is None else {"timeout": options.timeout}
    return http.build_request(call.method, call.path, params=call.params, content=content, headers=headers, **extra)


def decode(call: Call[T], response: httpx.Response) -> T:
    if call.empty:
        return None  # type: ignore[return-value]
    try:
        return orjson.loads(response.content)  # type: ignore[no-any-return]
    except orjson.JSONDecodeError as exc:
        raise OverdriveError(f"{call.method} {call.path} answered {response.status_code} with a body that is "
                             f"not JSON: {response.text[:200]!r}") from exc


class _Attempts:
    """The retry bookkeeping both loops share: what the last failure was, whether to go on."""

    def __init__(self, call: Call[Any], retry: Retry) -> None:
        self.call, self.retry = call, retry
        self.n = 0
        self.maybe_applied = False  # an earlier try may have reached the service before its answer was lost

    def settle(self, response: httpx.Response) -> tuple[bool, float | None]:
        """(done, wait): done when the answer is final, else the wait before the next try.
        A final error answer raises."""
        call, status = self.call, response.status_code
        if status in call.ok or (status == 404 and call.method == "DELETE" and self.maybe_applied):
            return True, None  # a DELETE whose first answer was lost, then found gone: done
        if self.n >= self.retry.attempts or not self.retry.status_retryable(status, idempotent=call.idempotent):
            raise error_for(response, retries=self.n)
        self.maybe_applied |= status in (502, 504)
        return False, self._wait(f"HTTP {status}", retry_after(response))

    def failed(self, exc: httpx.RequestError) -> float:
        """The wait before the next try after a transport failure; raises when there is none."""
        call = self.call
        problem = f"{type(exc).__name__}: {exc}".rstrip(": ")
        retryable = isinstance(exc, httpx.TransportError) and self.retry.transport_retryable(exc, idempotent=call.idempotent)
        if self.n >= self.retry.attempts or not retryable:
            after = f" after {self.n} retries" if self.n else ""
            raise ConnectionFailed(f"{call.method} {call.path} failed{after}: {problem}", retries=self.n) from exc
        self.maybe_applied |= not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
        return self._wait(problem, None)

    def _wait(self, problem: str, hint: float | None) -> float:
        delay = self.retry.delay(self.n, hint)
        self.n += 1
        log.warning("%s %s failed (%s); retry %d of %d in %.2fs", self.call.method, self.call.path, problem, self.n,
                    self.retry.attempts, delay)
        return delay


def execute(http: httpx.Client, call: Call[T], options: Options,
            *, stream: bool = False) -> tuple[httpx.Response, int]:
    """The final answer to `call` (its body unread when `stream`), and the retries it took."""
    request = build(http, call, options)
    attempts = _Attempts(call, options.retry)
    while True:
        try:
            response = http.send(request, auth=options.auth, stream=stream)
        except httpx.RequestError as exc:
            options.retry.sleep(attempts.failed(exc))
            continue
        try:
            if stream and response.status_code not in call.ok:
                response.read()
            done, wait = attempts.settle(response)
        except BaseException:
            response.close()
            raise
        if done:
            return response, attempts.n
        response.close()
        options.retry.sleep(wait or 0.0)


async def execute_async(http: httpx.AsyncClient, call: Call[T], options: Options,
                        *, stream: bool = False) -> tuple[httpx.Response, int]:
    """`execute` for the async client."""
    request = build(http, call, options)
    attempts = _Attempts(call, options.retry)
    while True:
        try:
            response = await http.send(request, auth=options.auth, stream=stream)
        except httpx.RequestError as exc:
            await options.retry.async_sleep(attempts.failed(exc))
            continue
        try:
            if stream and response.status_code not in call.ok:
                await response.aread()
            done, wait = attempts.settle(response)
        except BaseException:
            await response.aclose()
            raise
        if done:
            return response, attempts.n
        await response.aclose()
        await options.retry.async_sleep(wait or 0.0)


def limits(max_connections: int) -> httpx.Limits:
    return httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)


def user_agent() -> dict[str, str]:
    return {"user-agent": f"overdrive-client/{__version__}"}
