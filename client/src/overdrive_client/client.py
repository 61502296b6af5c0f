"""`Client` and `AsyncClient`: one typed method per endpoint, over one pooled httpx client each.

Both run the `Call`s of `endpoints.py` through the retry loops of `transport.py`, so they name
the same paths, bodies and answers; only their I/O differs. A client is cheap to share between
threads (sync) or tasks (async) and should be: its connection pool is what makes calls fast.
Close it (or use it as a context manager) when done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import httpx

from overdrive_client import endpoints as ep
from overdrive_client.auth import auth_from
from overdrive_client.ids import with_id, with_ids
from overdrive_client.retry import Retry
from overdrive_client.sender import AsyncSignalSender, SignalSender
from overdrive_client.transport import Options, decode, execute, execute_async, limits, user_agent
from overdrive_client.types import (AuditRecords, Assignments, Candidate, CatalogItem, Context, ErasureJob, Experiment,
                                    ExperimentChanges, ExperimentDefinition, ExperimentResults, Experiments, Insights,
                                    Item, ItemAnalytics, ItemFeatures, ItemsStored, Liveness, ModelStatus, Performance,
                                    RankRequest, RankResponse, Readiness, Signal, SignalAck, SimilarItems, Strategies,
                                    TrainingStarted, Trending, UserAnalytics, UserExport, UserRealtime)

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_S = 30.0
TokenSource = str | Callable[[], str]


def _timeout(timeout: float | httpx.Timeout) -> httpx.Timeout:
    # Connecting should fail fast (a retry may find the service back); an answer may take longer.
    return timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout, connect=min(timeout, 5.0))


def _rank_body(user_id: str, candidates: Sequence[Candidate | str] | None, limit: int | None, strategy: str | None,
               exclude_seen: bool | None, context: Context | None) -> RankRequest:
    body: RankRequest = {"user_id": user_id}
    if candidates is not None:
        body["candidate_items"] = [{"id": c} if isinstance(c, str) else c for c in candidates]
    if limit is not None:
        body["limit"] = limit
    if strategy is not None:
        body["strategy"] = strategy
    if exclude_seen is not None:
        body["exclude_seen"] = exclude_seen
    if context is not None:
        body["context"] = context
    return body


def _chunks(rows: list[Any], size: int) -> list[list[Any]]:
    return [rows[i:i + size] for i in range(0, len(rows), size)] or [[]]


def _summed(acks: Iterable[SignalAck]) -> SignalAck:
    total: SignalAck = {"status": "accepted", "accepted": 0, "duplicates": 0, "processing_time_ms": 0.0}
    for ack in acks:
        total["accepted"] += ack["accepted"]
        total["duplicates"] += ack["duplicates"]
        total["processing_time_ms"] += ack["processing_time_ms"]
    return total


class _Base:
    """What both clients hold: the resolved options and whether they own their httpx client."""

    _options: Options

    def _setup(self, *, api_key: str | None, token: TokenSource | None, retry: Retry | None,
               timeout: float | httpx.Timeout | None) -> None:
        self._options = Options(retry=retry if retry is not None else Retry(), auth=auth_from(api_key, token),
                                timeout=None if timeout is None else _timeout(timeout))


class Client(_Base):
    """The synchronous client.

        with Client("http://127.0.0.1:8000", api_key="...") as od:
            od.put_items([{"id": "v1", "type": "video", "tags": ["cats"]}])
            od.send_signal({"user_id": "u1", "signal_type": "like", "content_id": "v1"})
            feed = od.rank("u1", limit=10)

    `timeout` is seconds per request (connecting: at most 5), 30 by default. `http` lets a caller
    bring its own `httpx.Client` (custom transport or proxies); its `base_url` and, unless
    `timeout` is given, its timeout are used, and it is left open on `close`.
    """

    def __init__(self, base_url: str = DEFAULT_URL, *, api_key: str | None = None, token: TokenSource | None = None,
                 timeout: float | httpx.Timeout | None = None, retry: Retry | None = None, max_connections: int = 16,
                 verify: Any = True, headers: dict[str, str] | None = None, http: httpx.Client | None = None) -> None:
        self._owned = http is None
        self._http = http if http is not None else httpx.Client(
            base_url=base_url, timeout=_timeout(DEFAULT_TIMEOUT_S if timeout is None else timeout), limits=limits(max_connections), verify=verify,
            headers={**user_agent(), **(headers or {})})
        self._setup(api_key=api_key, token=token, retry=retry, timeout=None if self._owned else timeout)

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    def with_options(self, *, retry: Retry | None = None, timeout: float | httpx.Timeout | None = None) -> Client:
        """A view of this client (same connections, same credential) with other retries or timeout."""
        other = object.__new__(Client)
        other._http, other._owned = self._http, False
        other._options = Options(retry=retry if retry is not None else self._options.retry, auth=self._options.auth,
                                 timeout=_timeout(timeout) if timeout is not None else self._options.timeout)
        return other

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, call: ep.Call[T]) -> T:
        """Run any `Call` of `overdrive_client.endpoints` with this client's retries; its decoded answer."""
        return self.call_counted(call)[0]

    def call_counted(self, call: ep.Call[T]) -> tuple[T, int]:
        """`call`, and the number of retries it took."""
        response, retries = execute(self._http, call, self._options)
        return decode(call, response), retries

    # ------------------------------------------------------------------------------ ranking

    def rank(self, user_id: str, *, candidates: Sequence[Candidate | str] | None = None, limit: int | None = None,
             strategy: str | None = None, exclude_seen: bool | None = None, context: Context | None = None,
             request_id: str | None = None) -> RankResponse:
        """The user's feed; `candidates` (ids or items) to rank, else the service picks from the catalog."""
        body = _rank_body(user_id, candidates, limit, strategy, exclude_seen, context)
        return self.call(ep.rank(body, request_id=request_id))

    def strategies(self) -> Strategies:
        return self.call(ep.strategies())

    # ------------------------------------------------------------------------------ signals

    def send_signal(self, signal: Signal, *, request_id: str | None = None) -> SignalAck:
        """One signal; given a `signal_id` when it has none, so a retry can never count it twice."""
        return self.call(ep.send_signal(with_id(signal), request_id=request_id))

    def send_signals(self, signals: Iterable[Signal], *, request_id: str | None = None) -> SignalAck:
        """Signals in batches of up to 10,000 (each stored all-or-nothing), ids added where missing;
        the acknowledgements summed. For a steady stream, `signal_sender()` batches for you."""
        batches = _chunks(with_ids(signals), ep.MAX_BATCH)
        return _summed(self.call(ep.send_signals(b, request_id=request_id)) for b in batches)

    def signal_sender(self, *, batch_size: int = 5000, max_in_flight: int = 2, max_queued: int = 4,
                      flush_interval_s: float = 1.0, retry: Retry | None = None) -> SignalSender:
        """A buffered `SignalSender` over this client; close it, or use `with`."""
        return SignalSender(self, batch_size=batch_size, max_in_flight=max_in_flight, max_queued=max_queued,
                            flush_interval_s=flush_interval_s, retry=retry)

    # -------------------------------------------------------------------------------- items

    def put_item(self, item: Item) -> CatalogItem:
        """Add or replace one item; the answer is the item as stored."""
        return self.call(ep.put_item(item))

    def put_items(self, items: Iterable[Item], *, request_id: str | None = None) -> ItemsStored:
        """Add or replace items, in requests of up to 10,000."""
        stored = 0
        for batch in _chunks(list(items), ep.MAX_BATCH):
            stored += self.call(ep.put_items(batch, request_id=request_id))["stored"]
        return {"stored": stored}

    def get_item(self, item_id: str) -> CatalogItem:
        return self.call(ep.get_item(item_id))

    def delete_item(self, item_id: str) -> None:
        self.call(ep.delete_item(item_id))

    def similar_items(self, item_id: str, k: int = 10) -> SimilarItems:
        return self.call(ep.similar_items(item_id, k))

    def item_features(self, item_id: str) -> ItemFeatures:
        return self.call(ep.item_features(item_id))

    # ---------------------------------------------------------------------------- analytics

    def user_analytics(self, user_id: str) -> UserAnalytics:
        return self.call(ep.user_analytics(user_id))

    def user_realtime(self, user_id: str) -> UserRealtime:
        return self.call(ep.user_realtime(user_id))

    def item_analytics(self, item_id: str) -> ItemAnalytics:
        return self.call(ep.item_analytics(item_id))

    def trending(self, limit: int = 20) -> Trending:
        return self.call(ep.trending(limit))

    def insights(self, user_id: str) -> Insights:
        return self.call(ep.insights(user_id))

    def performance(self) -> Performance:
        return self.call(ep.performance())

    # ------------------------------------------------------------------------------- models

    def train_models(self) -> TrainingStarted:
        return self.call(ep.train_models())

    def model_status(self) -> ModelStatus:
        return self.call(ep.model_status())

    # ------------------------------------------------------------------------------- health

    def live(self) -> Liveness:
        return self.call(ep.live())

    def ready(self) -> Readiness:
        """Readiness with each dependency's check; `status` says `not_ready` rather than raising."""
        return self.call(ep.ready())

    # -------------------------------------------------------------------------- users, audit

    def erase_user(self, user_id: str) -> ErasureJob:
        return self.call(ep.erase_user(user_id))

    def erasure_job(self, job_id: str) -> ErasureJob:
        return self.call(ep.erasure_job(job_id))

    def export_user(self, user_id: str) -> UserExport:
        return self.call(ep.export_user(user_id))

    def audit(self, *, user: str | None = None, principal: str | None = None, action: str | None = None,
              since: float | None = None, until: float | None = None, limit: int = 100) -> AuditRecords:
        return self.call(ep.audit(user=user, principal=principal, action=action, since=since, until=until, limit=limit))

    # -------------------------------------------------------------------------- experiments

    def create_experiment(self, definition: ExperimentDefinition) -> Experiment:
        """Never retried after a lost answer: a second try could create a second experiment."""
        return self.call(ep.create_experiment(definition))

    def list_experiments(self) -> Experiments:
        return self.call(ep.list_experiments())

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self.call(ep.get_experiment(experiment_id))

    def update_experiment(self, experiment_id: str, changes: ExperimentChanges) -> Experiment:
        return self.call(ep.update_experiment(experiment_id, changes))

    def delete_experiment(self, experiment_id: str) -> None:
        self.call(ep.delete_experiment(experiment_id))

    def assignment(self, user_id: str) -> Assignments:
        return self.call(ep.assignment(user_id))

    def experiment_results(self, experiment_id: str) -> ExperimentResults:
        return self.call(ep.experiment_results(experiment_id))


class AsyncClient(_Base):
    """The asyncio client: `Client`'s methods as coroutines.

        async with AsyncClient("http://127.0.0.1:8000", token=get_jwt) as od:
            feed = await od.rank("u1", limit=10)
    """

    def __init__(self, base_url: str = DEFAULT_URL, *, api_key: str | None = None, token: TokenSource | None = None,
                 timeout: float | httpx.Timeout | None = None, retry: Retry | None = None, max_connections: int = 16,
                 verify: Any = True, headers: dict[str, str] | None = None,
                 http: httpx.AsyncClient | None = None) -> None:
        self._owned = http is None
        self._http = http if http is not None else httpx.AsyncClient(
            base_url=base_url, timeout=_timeout(DEFAULT_TIMEOUT_S if timeout is None else timeout), limits=limits(max_connections), verify=verify,
            headers={**user_agent(), **(headers or {})})
        self._setup(api_key=api_key, token=token, retry=retry, timeout=None if self._owned else timeout)

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    def with_options(self, *, retry: Retry | None = None, timeout: float | httpx.Timeout | None = None) -> AsyncClient:
        """A view of this client (same connections, same credential) with other retries or timeout."""
        other = object.__new__(AsyncClient)
        other._http, other._owned = self._http, False
        other._options = Options(retry=retry if retry is not None else self._options.retry, auth=self._options.auth,
                                 timeout=_timeout(timeout) if timeout is not None else self._options.timeout)
        return other

    async def aclose(self) -> None:
        if self._owned:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def call(self, call: ep.Call[T]) -> T:
        return (await self.call_counted(call))[0]

    async def call_counted(self, call: ep.Call[T]) -> tuple[T, int]:
        response, retries = await execute_async(self._http, call, self._options)
        return decode(call, response), retries

    async def rank(self, user_id: str, *, candidates: Sequence[Candidate | str] | None = None,
                   limit: int | None = None, strategy: str | None = None, exclude_seen: bool | None = None,
                   context: Context | None = None, request_id: str | None = None) -> RankResponse:
        body = _rank_body(user_id, candidates, limit, strategy, exclude_seen, context)
        return await self.call(ep.rank(body, request_id=request_id))

    async def strategies(self) -> Strategies:
        return await self.call(ep.strategies())

    async def send_signal(self, signal: Signal, *, request_id: str | None = None) -> SignalAck:
        return await self.call(ep.send_signal(with_id(signal), request_id=request_id))

    async def send_signals(self, signals: Iterable[Signal], *, request_id: str | None = None) -> SignalAck:
        batches = _chunks(with_ids(signals), ep.MAX_BATCH)
        return _summed([await self.call(ep.send_signals(b, request_id=request_id)) for b in batches])

    def signal_sender(self, *, batch_size: int = 5000, max_in_flight: int = 2, flush_interval_s: float = 1.0,
                      retry: Retry | None = None) -> AsyncSignalSender:
        """A buffered `AsyncSignalSender` over this client; use `async with`, or `await aclose()`."""
        return AsyncSignalSender(self, batch_size=batch_size, max_in_flight=max_in_flight,
                                 flush_interval_s=flush_interval_s, retry=retry)

    async def put_item(self, item: Item) -> CatalogItem:
        return await self.call(ep.put_item(item))

    async def put_items(self, items: Iterable[Item], *, request_id: str | None = None) -> ItemsStored:
        stored = 0
        for batch in _chunks(list(items), ep.MAX_BATCH):
            stored += (await self.call(ep.put_items(batch, request_id=request_id)))["stored"]
        return {"stored": stored}

    async def get_item(self, item_id: str) -> CatalogItem:
        return await self.call(ep.get_item(item_id))

    async def delete_item(self, item_id: str) -> None:
        await self.call(ep.delete_item(item_id))

    async def similar_items(self, item_id: str, k: int = 10) -> SimilarItems:
        return await self.call(ep.similar_items(item_id, k))

    async def item_features(self, item_id: str) -> ItemFeatures:
        return await self.call(ep.item_features(item_id))

    async def user_analytics(self, user_id: str) -> UserAnalytics:
        return await self.call(ep.user_analytics(user_id))

    async def user_realtime(self, user_id: str) -> UserRealtime:
        return await self.call(ep.user_realtime(user_id))

    async def item_analytics(self, item_id: str) -> ItemAnalytics:
        return await self.call(ep.item_analytics(item_id))

    async def trending(self, limit: int = 20) -> Trending:
        return await self.call(ep.trending(limit))

    async def insights(self, user_id: str) -> Insights:
        return await self.call(ep.insights(user_id))

    async def performance(self) -> Performance:
        return await self.call(ep.performance())

    async def train_models(self) -> TrainingStarted:
        return await self.call(ep.train_models())

    async def model_status(self) -> ModelStatus:
        return await self.call(ep.model_status())

    async def live(self) -> Liveness:
        return await self.call(ep.live())

    async def ready(self) -> Readiness:
        return await self.call(ep.ready())

    async def erase_user(self, user_id: str) -> ErasureJob:
        return await self.call(ep.erase_user(user_id))

    async def erasure_job(self, job_id: str) -> ErasureJob:
        return await self.call(ep.erasure_job(job_id))

    async def export_user(self, user_id: str) -> UserExport:
        return await self.call(ep.export_user(user_id))

    async def audit(self, *, user: str | None = None, principal: str | None = None, action: str | None = None,
                    since: float | None = None, until: float | None = None, limit: int = 100) -> AuditRecords:
        return await self.call(ep.audit(user=user, principal=principal, action=action, since=since, until=until,
                                        limit=limit))

    async def create_experiment(self, definition: ExperimentDefinition) -> Experiment:
        return await self.call(ep.create_experiment(definition))

    async def list_experiments(self) -> Experiments:
        return await self.call(ep.list_experiments())

    async def get_experiment(self, experiment_id: str) -> Experiment:
        return await self.call(ep.get_experiment(experiment_id))

    async def update_experiment(self, experiment_id: str, changes: ExperimentChanges) -> Experiment:
        return await self.call(ep.update_experiment(experiment_id, changes))

    async def delete_experiment(self, experiment_id: str) -> None:
        await self.call(ep.delete_experiment(experiment_id))

    async def assignment(self, user_id: str) -> Assignments:
        return await self.call(ep.assignment(user_id))

    async def experiment_results(self, experiment_id: str) -> ExperimentResults:
        return await self.call(ep.experiment_results(experiment_id))
