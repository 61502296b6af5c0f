"""Talking to a running service over HTTP: one retrying JSON client, and bulk ingest on top of it.

`request` sends one request and retries it on connection errors, 429 and 5xx, after the
server's `Retry-After` or a doubling backoff; any other 4xx fails at once with the server's
message. `post_world` bulk-loads items first, then signals, in batches over keep-alive
connections, two signal batches in flight by default so the service can validate one while it
commits the other. Every signal carries a `signal_id` (readers make deterministic ones), so a
retried batch is acknowledged as duplicates, never counted twice.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import orjson
from tqdm import tqdm

from overdrive.data.importers import batches

log = logging.getLogger(__name__)

MAX_BATCH = 10_000
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_JSON = {"content-type": "application/json"}


class RequestFailed(Exception):
    """The service refused a request (a 4xx other than 429), or retries ran out."""

    def __init__(self, message: str, *, response: httpx.Response | None = None) -> None:
        super().__init__(message)
        self.response = response


@dataclass(slots=True)
class Retry:
    """How hard to try one request: `attempts` retries, backoff doubling from `base_s` to `max_s`."""

    attempts: int = 8
    base_s: float = 0.25
    max_s: float = 10.0
    sleep: Callable[[float], None] = field(default=time.sleep)


def request(client: httpx.Client, method: str, path: str, body: dict | bytes | None = None, *, retry: Retry,
            ok: Iterable[int] = (200, 201, 202), headers: dict[str, str] | None = None) -> tuple[dict, int]:
    """One JSON request (`body` a dict, or JSON already encoded); returns (the answer, retries used)."""
    content = orjson.dumps(body) if isinstance(body, dict) else body
    headers = {**(_JSON if content is not None else {}), **(headers or {})}
    problem = ""
    for attempt in range(retry.attempts + 1):
        wait = None
        try:
            response = client.request(method, path, content=content, headers=headers)
        except httpx.TransportError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code in ok:
                return response.json(), attempt
            if response.status_code not in _RETRY_STATUS:
                raise RequestFailed(f"{method} {path} answered {response.status_code}: {_message(response)}",
                                    response=response)
            problem = f"HTTP {response.status_code}"
            wait = _retry_after(response)
        if attempt < retry.attempts:
            delay = wait if wait is not None else min(retry.base_s * 2**attempt, retry.max_s)
            log.warning("%s %s failed (%s); retrying in %.2fs", method, path, problem, delay)
            retry.sleep(delay)
    raise RequestFailed(f"{method} {path} failed after {retry.attempts} retries: {problem}")


@dataclass(slots=True)
class IngestReport:
    items: int = 0
    signals: int = 0
    accepted: int = 0
    duplicates: int = 0
    item_seconds: float = 0.0
    signal_seconds: float = 0.0
    retries: int = 0

    def summary(self) -> str:
        item_rate = self.items / self.item_seconds if self.item_seconds else 0.0
        signal_rate = self.signals / self.signal_seconds if self.signal_seconds else 0.0
        return (
            f"ingested {self.items} items in {self.item_seconds:.2f}s ({item_rate:,.0f} items/s), "
            f"{self.signals} signals in {self.signal_seconds:.2f}s ({signal_rate:,.0f} signals/s; "
            f"{self.accepted} accepted, {self.duplicates} duplicates, {self.retries} retries)"
        )


def post_world(
    client: httpx.Client,
    items: Iterable[dict],
    signals: Iterable[dict],
    *,
    batch_size: int = 5000,
    concurrency: int = 2,
    progress: bool = False,
    retry: Retry | None = None,
) -> IngestReport:
    """POST every item to /items/batch, then every signal to /signals/batch; returns the counts.

    `client` should have the service as its `base_url`. Inputs may be lists or any iterables;
    generators stream, holding at most `concurrency` batches. Signal batches go up to
    `concurrency` at a time (signals may then be stored slightly out of order, which the service
    accepts). Items go one batch at a time, and all are acknowledged before the first signal is
    sent.
    """
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}")
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    retry = retry or Retry()
    report = IngestReport()
    run = uuid.uuid4().hex[:8]
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="ingest") as pool:
        started = time.perf_counter()
        with tqdm(total=_len(items), unit="item", desc="items", disable=not progress) as bar:
            for batch, _ in _send(pool, 1, client, "items", items, batch_size, f"ingest-{run}-i", retry, report):
                report.items += len(batch)
                bar.update(len(batch))
        report.item_seconds = time.perf_counter() - started
        started = time.perf_counter()
        with tqdm(total=_len(signals), unit="signal", desc="signals", disable=not progress, smoothing=0.1) as bar:
            for batch, ack in _send(pool, concurrency, client, "signals", signals, batch_size, f"ingest-{run}-s", retry, report):
                report.signals += len(batch)
                report.accepted += int(ack.get("accepted", 0))
                report.duplicates += int(ack.get("duplicates", 0))
                bar.update(len(batch))
        report.signal_seconds = time.perf_counter() - started
    return report


def _send(pool: ThreadPoolExecutor, concurrency: int, client: httpx.Client, key: str, rows: Iterable[dict],
          batch_size: int, request_prefix: str, retry: Retry, report: IngestReport) -> Iterator[tuple[list[dict], dict]]:
    """Post batches with up to `concurrency` in flight; yields (batch, ack) in submission order."""
    pending: deque[tuple[list[dict], Future]] = deque()
    try:
        for n, batch in enumerate(batches(rows, batch_size)):
            args = (client, key, batch, f"{request_prefix}{n}", n * batch_size, retry)
            pending.append((batch, pool.submit(_post_batch, *args)))
            while len(pending) >= concurrency:
                yield _settle(pending.popleft(), report)
        while pending:
            yield _settle(pending.popleft(), report)
    finally:
        for _, fut in pending:
            fut.cancel()


def _settle(entry: tuple[list[dict], Future], report: IngestReport) -> tuple[list[dict], dict]:
    batch, fut = entry
    ack, retries = fut.result()
    report.retries += retries
    return batch, ack


def _post_batch(client: httpx.Client, key: str, batch: list[dict], request_id: str, first_row: int,
                retry: Retry) -> tuple[dict, int]:
    """One batch; a refusal names the offending row by its number in the whole input."""
    path = f"/{key}/batch"
    try:
        return request(client, "POST", path, orjson.dumps({key: batch}), retry=retry,
                       headers={"x-request-id": request_id})
    except RequestFailed as exc:
        if exc.response is None:
            raise
        rows = f"rows {first_row}..{first_row + len(batch) - 1}"
        message = re.sub(rf"{key}\[(\d+)\]", lambda m: f"{key}[{first_row + int(m.group(1))}]", _message(exc.response))
        raise RequestFailed(f"POST {path} ({rows}) answered {exc.response.status_code}: {message}",
                            response=exc.response) from None


def _message(response: httpx.Response) -> str:
    """The server's error message (the `message` of its JSON error body), or the start of the body."""
    try:
        return str(response.json().get("message", response.text))
    except ValueError:
        return response.text[:500]


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return min(float(response.headers["retry-after"]), 60.0)
    except (KeyError, ValueError):
        return None


def _len(rows: Iterable) -> int | None:
    return len(rows) if hasattr(rows, "__len__") else None  # type: ignore[arg-type]
