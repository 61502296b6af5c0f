"""GDPR erasure and export of one user, across everything the service keeps about them.

Erasure runs as a job (`erase` starts it, `job` reports it) because its parts take time: the
user joins the erasure list (by digest: replays of a Kafka topic, which cannot forget, skip
their earlier records); their live state is dropped once every signal acknowledged before is
applied, and so are their impressions and click labels, cached profiles and rankings, experiment
exposures; the collaborative model forgets them and is saved again, older versions deleted; last,
their signal rows are deleted and the database compacted. Signals that arrive for the same id
afterwards are a new user. The audit trail keeps its records about the user (the record of what
was done to their data, the erasure included); exports include them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from overdrive.domain.codec import signal_to_dict
from overdrive.domain.errors import NotFound
from overdrive.domain.privacy import user_digest
from overdrive.security.audit import AuditTrail, user_target
from overdrive.services.user_analytics import UserAnalytics
from overdrive.store.protocols import ErasureList, FeatureStore, ItemCatalog, SignalHistory, SignalLog
from overdrive.stream.protocols import SignalBus

log = logging.getLogger(__name__)

EXPORT_SCHEMA = "overdrive.user-export/1"
_SETTLE_TIMEOUT_S = 30.0
_JOBS_KEPT = 1000

Forget = Callable[[str], Any]  # a learner's or cache's `forget_user` (sync or async)


@dataclass(slots=True)
class ErasureJob:
    id: str
    user_digest: str
    requested_at: float
    state: str = "running"
    steps: dict[str, Any] = field(default_factory=dict)
    finished_at: float | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"job_id": self.id, "user_digest": self.user_digest, "state": self.state,
                "requested_at": self.requested_at, "finished_at": self.finished_at, "steps": dict(self.steps),
                **({"error": self.error} if self.error else {})}


class PrivacyService:
    def __init__(
        self,
        *,
        history: SignalHistory,
        signal_log: SignalLog | None,
        erasures: ErasureList,
        features: FeatureStore,
        catalog: ItemCatalog,
        bus: SignalBus,
        analytics: UserAnalytics,
        audit: AuditTrail,
        forgetters: dict[str, Forget],
        experiments: Callable[[str], Awaitable[dict[str, Any]]] | None = None,
    ) -> None:
        """`forgetters`: what else keeps per-user state (learners, caches), by name, in the order
        their erasure is to run."""
        self._history = history
        self._log = signal_log
        self._erasures = erasures
        self._features = features
        self._catalog = catalog
        self._bus = bus
        self._analytics = analytics
        self._audit = audit
        self._forgetters = forgetters
        self._experiments = experiments  # the user's experiment assignments and exposures, for exports
        self._jobs: dict[str, ErasureJob] = {}
        self._running: dict[str, tuple[ErasureJob, asyncio.Task]] = {}

    # ------------------------------------------------------------------------------ erasure

    async def erase(self, user_id: str, *, principal: str, request_id: str) -> dict[str, Any]:
        """Start erasing the user (or answer the erasure of them already running)."""
        digest = user_digest(user_id)
        if digest in self._running:
            return self._running[digest][0].as_dict()
        job = ErasureJob(id=uuid.uuid4().hex, user_digest=digest, requested_at=time.time())
        await self._audit.record(principal=principal, action="user.erase", target=user_target(user_id),
                                 request_id=request_id, outcome="started", detail={"job_id": job.id})
        self._jobs[job.id] = job
        while len(self._jobs) > _JOBS_KEPT:
            self._jobs.pop(next(iter(self._jobs)))
        task = asyncio.create_task(self._run(job, user_id, principal, request_id))
        self._running[digest] = (job, task)
        task.add_done_callback(lambda _: self._running.pop(digest, None))
        return job.as_dict()

    def job(self, job_id: str) -> dict[str, Any]:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no erasure job {job_id!r} on this replica")
        return job.as_dict()

    async def _run(self, job: ErasureJob, user_id: str, principal: str, request_id: str) -> None:
        steps = job.steps
        try:
            await self._erasures.add(user_id, at=job.requested_at)
            steps["erasure_list"] = "digest recorded"
            signals = await self._history.user_signals(user_id)
            steps["settled"] = await self._bus.settled(user_id, timeout_s=_SETTLE_TIMEOUT_S)
            items = await self._catalog.get(list({s.content_id for s in signals}))
            await self._features.forget_user(user_id, signals, items)
            steps["live_state"] = "dropped"
            for name, forget in self._forgetters.items():
                outcome = forget(user_id)
                if isinstance(outcome, Awaitable):
                    outcome = await outcome
                steps[name] = outcome if outcome is not None else "dropped"
            # Last: the log's compaction also reclaims what the steps before deleted from its database.
            if self._log is not None:
                steps["signal_log"] = {"deleted": await self._log.erase_user(user_id), "compacted": True}
            else:
                steps["signal_log"] = {"kept_by": "the Kafka topic", "skipped_on_replay": len(signals)}
            job.state = "done"
        except Exception as exc:  # reported on the job and in the audit trail; a retry is safe
            log.exception("erasure job %s failed", job.id)
            job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
        job.finished_at = time.time()
        await self._audit.record_quietly(principal=principal, action="user.erased", target=user_target(user_id),
                                         request_id=request_id, outcome="ok" if job.state == "done" else "failed",
                                         detail={"job_id": job.id, "steps": _plain(steps)})

    # ------------------------------------------------------------------------------- export

    async def export(self, user_id: str) -> dict[str, Any]:
        """Everything kept about the user, in the documented schema (docs/privacy.md)."""
        export: dict[str, Any] = {"signals": [], "audit": []}
        async for kind, value in self.export_parts(user_id):
            if kind == "header":
                export.update(value)
            else:
                export["signals" if kind == "signal" else "audit"].append(value)
        return export

    async def export_parts(self, user_id: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The export as a stream: the header (profile, windows, session, interests, insights),
        then each signal, then each audit record about the user (for NDJSON)."""
        now = time.time()
        long = await self._features.user_interests(user_id, now=now)
        short = await self._features.user_interests(user_id, now=now, term="short")
        yield "header", {
            "schema": EXPORT_SCHEMA, "user_id": user_id, "exported_at": now,
            "analytics": await self._analytics.profile(user_id),
            "realtime": await self._analytics.realtime(user_id),
            "insights": await self._analytics.insights(user_id),
            "interests": {"long_term": long, "short_term": short},
            "experiments": await self._experiments(user_id) if self._experiments is not None else None,
        }
        for s in await self._history.user_signals(user_id):
            yield "signal", signal_to_dict(s)
        for record in reversed(await self._audit.query(target=user_target(user_id), limit=1_000_000)):
            yield "audit", record


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None), dict, list)) else str(value)
