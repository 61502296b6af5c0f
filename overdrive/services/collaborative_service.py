"""Serving the collaborative-filtering ensemble: load, retrain in the background, fold in, report.

The served model lives behind a `ModelHandle`: a request sees the old version or the new one,
never a mix. At start-up the current artifact version in `MODEL_CACHE_DIR/collaborative` is loaded
(no retraining after a restart). Full retrains read the whole signal history (the signal log;
with Kafka, the topic) and the catalog in a worker thread, on a schedule and on
`POST /models/train`; signals applied while a retrain runs are replayed into the new model
before it is published (those its snapshot lacks). Every applied signal is also handed to the
served model, which folds the touched users in every `fold_in_every` interactions, or each user
when it next scores them (`fold_in_on_demand`, the default with Kafka).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from overdrive.domain.context import humans
from overdrive.domain.errors import BackendUnavailable, Conflict
from overdrive.domain.privacy import user_digest
from overdrive.domain.types import Item, Signal
from overdrive.models.collaborative_filtering import AdvancedCollaborativeFiltering, ArtifactStore, ModelHandle
from overdrive.observability.process_memory import release_free_memory
from overdrive.services.model_updates import ModelUpdates
from overdrive.services.retrain_apart import Fitted
from overdrive.store.protocols import ErasureList, ItemCatalog, SignalHistory

log = logging.getLogger(__name__)

ERASURE_REQUEST = "erasure"  # a trainer answering it deletes every older version after publishing


AfterApart = Callable[[dict[str, Any]], None]


class RetrainElsewhere(Protocol):
    """A retrain run outside this process (`retrain_apart.ChildProcessRetrain`)."""

    def fit(self, erased: dict[str, float]) -> Fitted:
        """Read the log up to a position, fit, save a version into the model folder; wait for it."""

    def logged(self, signals: Sequence[Signal], position: int) -> list[Signal]:
        """Those of the log's signals up to `position` (what the snapshot read) that may be among
        `signals`: at least every one of them the snapshot held."""


class CollaborativeModelService:
    def __init__(
        self,
        *,
        model_dir: Path,
        factory: Callable[[], AdvancedCollaborativeFiltering],
        history: SignalHistory,
        erasures: ErasureList,
        catalog: ItemCatalog,
        retrain_interval_s: float | None,
        train_on_start: bool,
        trains: bool = True,
        follow_every_s: float = 5.0,
        after_fit: Sequence[Callable[[list[Signal], dict[str, Item], AdvancedCollaborativeFiltering], None]] = (),
        apart: RetrainElsewhere | None = None,
        after_apart: Sequence[AfterApart] = (),
    ) -> None:
        """`trains=False`: a trainer elsewhere (`python -m overdrive.trainer`) publishes into the
        shared `model_dir`; this process serves each new version within `follow_every_s`, leaves a
        request there on `train()`, and never fits a model itself. `after_fit`: told, on the
        trainer's thread, of each retrain's snapshot (signals, catalog) and model once it serves;
        the retrain's job reports done after them. `apart`: each retrain is read, fitted and saved
        there, with its own after-fit steps, and served from here; `after_apart` are told what
        those reported (`Fitted.after_fit`) once it serves."""
        if apart is not None and after_fit:
            raise ValueError("a retrain done apart runs its own after-fit steps")
        self._store = ArtifactStore(root=model_dir, loader=AdvancedCollaborativeFiltering.load)
        self._handle: ModelHandle[AdvancedCollaborativeFiltering] = ModelHandle(store=self._store)
        self._factory = factory
        self._log = history
        self._erasures = erasures
        self._catalog = catalog
        self._interval = retrain_interval_s
        self._train_on_start = train_on_start
        self._trainer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cf-train")
        self._updates = ModelUpdates(self._handle.get, name="cf-update")  # fold-ins, items, erasures: in order
        self._scorer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cf-score")
        self._training: asyncio.Task | None = None
        self._schedule: asyncio.Task | None = None
        self._during_training: list[Signal] | None = None  # collecting while a retrain runs
        self._items_during_training: list[Item] = []  # catalog writes while a retrain runs
        self._erased_during_training: set[str] = set()  # users its snapshot may still hold
        self._swap_lock = threading.Lock()
        self._last_job: dict[str, Any] = {"state": "never run"}
        self._trains = trains
        self._had_signals = False
        self._follow_every_s = follow_every_s
        self._after_fit = list(after_fit)
        self._apart, self._after_apart = apart, list(after_apart)

    def model(self) -> AdvancedCollaborativeFiltering | None:
        return self._handle.get()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        loaded = await loop.run_in_executor(self._trainer, self._handle.refresh)
        if loaded:
            log.info("serving collaborative model version %s", self._handle.get().version)  # type: ignore[union-attr]
        if not self._trains:
            self._schedule = asyncio.create_task(self._follow())
            return
        if not loaded and self._train_on_start and await self._has_signals():
            self.train(reason="start-up: no saved model")
        if self._interval:
            self._schedule = asyncio.create_task(self._retrain_every(self._interval))

    async def _follow(self) -> None:
        """Serve each version the trainer publishes, as soon as it is seen."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._follow_every_s)
            try:
                version = await loop.run_in_executor(self._trainer, self._store.current_version)  # a shared volume may be slow
                if version is None or version == getattr(self._handle.get(), "version", None):
                    continue
                model = await loop.run_in_executor(self._trainer, self._store.load, version)
                # Users erased about when the trainer published may be in it: masked before it serves.
                since = (model.fitted_at or 0.0) - _ERASED_MARGIN_S
                erased = {d for d, at in (await self._erasures.snapshot()).items() if at >= since}
                await loop.run_in_executor(self._trainer, _forget_erased, model, erased)
                self._handle.swap(model)
                self._last_job = {"state": "loaded", "version": model.version, "loaded_at": time.time()}
                log.info("serving collaborative model version %s, published by the trainer", model.version)
                # The version it replaced and what loading this one used: handed back, not kept.
                await loop.run_in_executor(self._trainer, release_free_memory)
            except Exception:  # a half-written or pruned version: the next look tries again
                log.exception("loading the trainer's collaborative model failed")

    async def has_signals(self) -> bool:
        """Whether the signal log holds anything to train on (BackendUnavailable when unreachable).
        Once it has, that is remembered: with Kafka a count asks the broker for every partition."""
        if not self._had_signals:
            self._had_signals = await self._log.count() > 0
        return self._had_signals

    async def _has_signals(self) -> bool:
        try:
            return await self.has_signals()
        except BackendUnavailable as exc:  # the Kafka topic, not reachable yet: the schedule retrains later
            log.warning("no start-up training: %s", exc)
            return False

    def train(self, *, reason: str) -> dict[str, Any]:
        """Start a full retrain in the background unless one is running; returns the job state.
        With a trainer elsewhere, leave it a request instead."""
        if not self._trains:
            self._store.request_training(reason)
            return {"state": "requested", "reason": reason, "trainer": "external", "requested_at": time.time()}
        if self._training is None or self._training.done():
            self._last_job = {"state": "running", "reason": reason, "started_at": time.time()}
            with self._swap_lock:
                self._during_training, self._items_during_training = [], []
            self._training = asyncio.create_task(self._train())
        return dict(self._last_job)

    async def train_now(self, *, reason: str, drop_older: bool = False) -> dict[str, Any]:
        """Retrain from a snapshot read from now on and wait for it (a retrain already running
        started from an older snapshot: it finishes first). `drop_older`: once the new version is
        published, delete every other (an erasure: they may still hold the user)."""
        if self._training is not None and not self._training.done():
            await asyncio.wait([self._training])
        self.train(reason=reason)
        await asyncio.wait([self._training])  # type: ignore[list-item]
        job = dict(self._last_job)
        if drop_older and job.get("state") == "done":
            await asyncio.get_running_loop().run_in_executor(self._trainer, self._store.drop_others, job["version"])
        return job

    async def answer_requests(self, stop: asyncio.Event) -> None:
        """The trainer's loop: a retrain for each request replicas leave in the store, until `stop`."""
        while not stop.is_set():
            request = self._store.take_training_request()
            if request is not None:
                reason = str(request.get("reason"))
                await self.train_now(reason=f"requested: {reason}", drop_older=reason == ERASURE_REQUEST)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._follow_every_s)

    async def _train(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            erased = await self._erasures.snapshot()
            version, stats = await loop.run_in_executor(self._trainer, self._fit_and_publish, erased)
            # Erased meanwhile through another process (a replica, with a trainer here): masked,
            # saved again, and the version that held them deleted.
            if late := set(await self._erasures.snapshot()) - set(erased):
                model = self._handle.get()
                masked = await asyncio.wrap_future(self._updates.run(_forget_erased, model, late))
                version = await loop.run_in_executor(self._trainer, self._store.save, model)
                await loop.run_in_executor(self._trainer, self._store.drop_others, version)
                stats["masked_after_fit"] = masked
            self._last_job.update(state="done", version=version, finished_at=time.time(), **stats)
            log.info("collaborative model %s published (%s)", version, stats)
        except Conflict as exc:  # nothing to train on (every signal erased or a bot's): not a failure
            log.info("collaborative retrain skipped: %s", exc)
            self._last_job.update(state="skipped", detail=str(exc), finished_at=time.time())
        except Exception as exc:  # reported in /models/status; the served model stays as it was
            log.exception("collaborative retrain failed")
            self._last_job.update(state="failed", error=str(exc), finished_at=time.time())
        # The snapshot and the fit's working memory, handed back rather than kept by the allocator.
        await loop.run_in_executor(self._trainer, release_free_memory)

    def _fit_and_publish(self, erased: dict[str, float]) -> tuple[str, dict[str, Any]]:
        started = time.perf_counter()
        try:
            if self._apart is None:
                model, version, signals, items = fit_and_save(
                    self._factory, self._store, self._log.scan(erased=erased), self._catalog.scan())
                stats: dict[str, Any] = {"signals": len(signals), "items": len(items)}
                snapshot: Callable[[list[Signal]], list[Signal]] = lambda late: signals  # noqa: E731
            else:  # read, fitted and saved by a child process; what it read is asked of the log
                fitted = self._apart.fit(erased)
                told = fitted.after_fit
                version, stats, position = fitted.version, dict(fitted.stats), fitted.position
                model = self._store.load(version)
                items = {}  # the child's catalog: items written meanwhile all go to `add_items`, which skips known ones
                snapshot = lambda late: self._apart.logged(late, position)  # type: ignore[union-attr]  # noqa: E731
        except BaseException:
            with self._swap_lock:
                self._during_training, self._items_during_training = None, []
            raise
        # Signals applied while fitting and missing from the log snapshot: fold them in, then serve.
        # Matched outside the lock (it scans the snapshot), which `observe` takes on the event loop;
        # the few applied meanwhile are matched under it.
        with self._swap_lock:
            taken = list(self._during_training or [])
        early = _missing_from(snapshot(taken), taken)
        with self._swap_lock:
            rest = (self._during_training or [])[len(taken):]
            late = early + _missing_from(snapshot(rest), rest)
            self._during_training = None
            erased, self._erased_during_training = self._erased_during_training, set()
            written, self._items_during_training = self._items_during_training, []
            model.add_items([i for i in written if i.id not in items])  # put after the catalog was read
            model.observe([s for s in late if s.user_id not in erased])
            for user_id in erased:
                model.forget_user(user_id)
            self._handle.swap(model)
        if erased:  # the version just saved was fitted before they were masked: save it again
            version = self._store.save(model)
            self._store.drop_others(version)
        stats.update(replayed_after_fit=len(late), seconds=round(time.perf_counter() - started, 3))
        if self._after_fit:
            # What serves is known now: the job says so while the hooks run (it reports done after them).
            self._last_job.update(version=version, **stats)
            for hook in self._after_fit:
                hook(signals, items, model)
        if self._apart is not None:
            self._last_job.update(version=version, **stats)
            for tell in self._after_apart:
                tell(told)
        return version, stats

    async def _retrain_every(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.train(reason="schedule")

    def observe(self, signals: Sequence[Signal]) -> None:
        """Hand applied signals to the served model (folded in on its own thread, in order)."""
        with self._swap_lock:
            if self._during_training is not None:
                self._during_training.extend(signals)
            model = self._handle.get()
        if model is not None:
            self._updates.observe(model, signals)

    def add_items(self, items: Sequence[Item]) -> None:
        """Catalog items written: the served model scores those it was not fitted on from their
        content at once (every member through content anchors; the two-tower member through its
        item tower), on its own thread, in order with the signals."""
        with self._swap_lock:
            if self._during_training is not None:
                self._items_during_training.extend(items)
            model = self._handle.get()
        if model is not None and items:
            self._updates.run(model.add_items, list(items))

    async def forget_user(self, user_id: str) -> dict[str, Any]:
        """GDPR erasure: the user leaves the served model (after the fold-ins queued before), a
        version without them is saved, and every older version is deleted. A retrain running now
        may have read them: its model is masked the same way before it is served."""
        with self._swap_lock:
            if self._during_training is not None:
                self._erased_during_training.add(user_id)
                self._during_training = [s for s in self._during_training if s.user_id != user_id]
            model = self._handle.get()
        if model is None:
            return {"served_model": None}
        loop = asyncio.get_running_loop()
        await asyncio.wrap_future(self._updates.run(model.forget_user, user_id))
        if not self._trains:  # the store is the trainer's: it publishes a version without them
            self._store.request_training(ERASURE_REQUEST)
            return {"served_model": model.version, "older_versions": "replaced by the trainer's next version"}
        version = await loop.run_in_executor(self._trainer, self._store.save, model)
        await loop.run_in_executor(self._trainer, self._store.drop_others, version)
        return {"served_model": version, "older_versions": "deleted"}

    async def score(self, user_id: str, item_ids: Sequence[str]) -> np.ndarray | None:
        model = self._handle.get()
        if model is None:
            return None
        return model.score(user_id, list(item_ids))  # ~1 ms for 100 candidates: a thread hop costs more

    async def recommend(self, user_id: str, limit: int, now: float) -> list[str]:
        """The ensemble's top items for the user (unseen ones), for candidate retrieval."""
        model = self._handle.get()
        if model is None:
            return []
        loop = asyncio.get_running_loop()
        ranked = await loop.run_in_executor(self._scorer, model.recommend, user_id, limit)
        return [item_id for item_id, _ in ranked]

    def status(self) -> dict[str, Any]:
        model = self._handle.get()
        return {
            "collaborative": {
                "serving": model.status() if model is not None else None,
                "artifacts": self._handle.status(),
                "last_training": dict(self._last_job),
                "retrain_interval_s": self._interval,
                "trainer": "here" if self._trains else "external",
                "update_backlog": self._updates.backlog,  # signals waiting to be folded in
            }
        }

    async def close(self) -> None:
        for task in (self._schedule, self._training):
            if task is not None:
                task.cancel()
        for pool in (self._trainer, self._scorer):
            pool.shutdown(wait=False, cancel_futures=True)
        self._updates.close()


class FittedEnsemble:
    """One fitted ensemble behind the scorer and retriever seams, with none of the serving
    machinery: a replay of history (`history_blend`) ranks with one."""

    def __init__(self, model: AdvancedCollaborativeFiltering) -> None:
        self._model = model

    def model(self) -> AdvancedCollaborativeFiltering:
        return self._model

    async def score(self, user_id: str, item_ids: Sequence[str]) -> np.ndarray:
        return self._model.score(user_id, list(item_ids))

    async def recommend(self, user_id: str, limit: int, now: float) -> list[str]:
        return [item_id for item_id, _ in self._model.recommend(user_id, limit)]


_ERASED_MARGIN_S = 3600.0  # a loaded version may hold users erased up to this long before it was fitted


def _forget_erased(model: AdvancedCollaborativeFiltering, digests: set[str]) -> int:
    """Forget every user of the model whose digest is in the erasure list's `digests`."""
    if not digests:
        return 0
    users = [u for u in model.users() if user_digest(u) in digests]
    for user_id in users:
        model.forget_user(user_id)
    return len(users)


def fit_and_save(factory: Callable[[], AdvancedCollaborativeFiltering], store: ArtifactStore,
                 signals: Iterable[list[Signal]], catalog: Iterable[list[Item]],
                 ) -> tuple[AdvancedCollaborativeFiltering, str, list[Signal], dict[str, Item]]:
    """A retrain's read, fit and publish (in the serving process, or in a child of it): the model,
    its version, and the snapshot it was fitted on (people's signals, the catalog)."""
    snapshot = [s for batch in signals for s in humans(batch)]
    items = {i.id: i for batch in catalog for i in batch}
    if not snapshot:
        raise Conflict("no signals to train on (the log holds none from people)")
    model = factory()
    model.fit_signals(snapshot, items=items)
    return model, store.save(model), snapshot, items


def _missing_from(snapshot: list[Signal], late: list[Signal]) -> list[Signal]:
    """Those of `late` (applied while a retrain ran) that its log `snapshot` lacks.

    A signal is logged when it is acknowledged and applied a moment later, so one acknowledged
    just before the snapshot was read can be applied after: replaying it would count it twice.
    The log keeps no sequence number to compare, so signals are matched on their id, and those
    without one on everything they carry (identical to a logged one, timestamp included, is taken
    to be that one).
    """
    if not late:
        return []
    users = {s.user_id for s in late}
    logged = Counter(_identity(s) for s in snapshot if s.user_id in users)
    unseen = []
    for s in late:
        key = _identity(s)
        if logged[key]:
            logged[key] -= 1
        else:
            unseen.append(s)
    return unseen


def _identity(s: Signal) -> tuple:
    if s.signal_id is not None:  # the logs keep one signal per id (a retry may carry a new timestamp)
        return (s.signal_id,)
    return (s.user_id, s.content_id, s.signal_type, s.timestamp, s.duration, s.intensity)
