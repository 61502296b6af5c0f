"""Bulk ingest into a running service over HTTP, on the typed client (`overdrive_client`).

`post_world` loads items first, then signals: items in `POST /items/batch` requests one after
another, signals through the client's buffered `SignalSender`, `concurrency` batches in flight
so the service can validate one while it commits the other. Retries are the client's: after a
connection error, a 429 or a 503 (its `Retry-After` honoured), and after a lost answer, since
every signal carries a `signal_id` (readers make deterministic ones; the client adds one where
missing), so a retried batch — or a rerun of the whole load — is acknowledged as duplicates,
never counted twice. A refused batch stops the load with the service's message, its row
numbers made absolute in the whole input.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import httpx
from tqdm import tqdm

from overdrive.data.importers import batches
from overdrive_client import Client, HTTPError, OverdriveError, Retry, SenderFailed
from overdrive_client import endpoints as ep

MAX_BATCH = ep.MAX_BATCH


class RequestFailed(OverdriveError):
    """A batch was refused (its rows named by their place in the whole input), or retries ran out."""


def as_client(client: Client | httpx.Client, retry: Retry | None = None) -> Client:
    """`client` itself, or an `overdrive_client.Client` over a plain httpx client (its base_url)."""
    if isinstance(client, Client):
        return client if retry is None else client.with_options(retry=retry)
    return Client(http=client, retry=retry)


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
    client: Client | httpx.Client,
    items: Iterable[dict],
    signals: Iterable[dict],
    *,
    batch_size: int = 5000,
    concurrency: int = 2,
    progress: bool = False,
    retry: Retry | None = None,
) -> IngestReport:
    """POST every item to /items/batch, then every signal to /signals/batch; returns the counts.

    `client` is an `overdrive_client.Client` (or an httpx client with the service as its
    `base_url`); `retry`, when given, replaces its retries. Inputs may be lists or any
    iterables; generators stream. Signal batches go up to `concurrency` at a time (signals may
    then be stored slightly out of order, which the service accepts). All items are acknowledged
    before the first signal is sent.
    """
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}")
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    od = as_client(client, retry)
    report = IngestReport()
    run = uuid.uuid4().hex[:8]
    started = time.perf_counter()
    with tqdm(total=_len(items), unit="item", desc="items", disable=not progress) as bar:
        first = 0
        for n, batch in enumerate(batches(items, batch_size)):
            try:
                _, retries = od.call_counted(ep.put_items(batch, request_id=f"ingest-{run}-i{n}"))
            except HTTPError as exc:
                raise _refused("items", exc, first, len(batch)) from None
            report.retries += retries
            report.items += len(batch)
            first += len(batch)
            bar.update(len(batch))
    report.item_seconds = time.perf_counter() - started

    started = time.perf_counter()
    sender = od.signal_sender(batch_size=batch_size, max_in_flight=concurrency, max_queued=concurrency)
    with tqdm(total=_len(signals), unit="signal", desc="signals", disable=not progress, smoothing=0.1) as bar:
        shown = 0
        try:
            with sender:
                for n, signal in enumerate(signals):
                    sender.send(signal)  # type: ignore[arg-type]
                    if progress and n % 1000 == 0:
                        shown = _advance(bar, shown, sender.stats.acknowledged)
        except SenderFailed as exc:
            if isinstance(exc.cause, HTTPError):
                raise _refused("signals", exc.cause, exc.offset, len(exc.failed)) from None
            raise RequestFailed(str(exc.cause)) from None
        _advance(bar, shown, sender.stats.acknowledged)
    stats = sender.stats
    report.signals, report.accepted, report.duplicates = stats.acknowledged, stats.accepted, stats.duplicates
    report.retries += stats.retries
    report.signal_seconds = time.perf_counter() - started
    return report


def _advance(bar: tqdm, shown: int, acknowledged: int) -> int:
    bar.update(acknowledged - shown)
    return acknowledged


def _refused(key: str, exc: HTTPError, first_row: int, rows: int) -> RequestFailed:
    """The service's refusal of one batch, with its row numbers counted in the whole input."""
    message = re.sub(rf"{key}\[(\d+)\]", lambda m: f"{key}[{first_row + int(m.group(1))}]", exc.message)
    return RequestFailed(f"POST /{key}/batch (rows {first_row}..{first_row + rows - 1}) answered "
                         f"{exc.status_code}: {message}")


def _len(rows: Iterable) -> int | None:
    return len(rows) if hasattr(rows, "__len__") else None  # type: ignore[arg-type]
