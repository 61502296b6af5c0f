"""The storage seams. Each has one contract suite in tests/contract run over every backend."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Protocol

from overdrive.domain.types import Item, RankingReads, Signal, UserActivity, UserModel


class SignalHistory(Protocol):
    """Every acknowledged signal, read back: what models retrain on. The `SignalLog` where the
    deployment keeps one; with Kafka, the topic (`overdrive.stream.kafka_history`)."""

    async def count(self) -> int:
        """How many signals are stored."""

    def scan(self, *, batch_size: int = 10_000, erased: Mapping[str, float] | None = None) -> Iterator[list[Signal]]:
        """Every stored signal, in batches (for replay and training), less those of users `erased`
        (an `ErasureList` snapshot) before their erasure, where the log could not delete them."""

    async def user_signals(self, user_id: str) -> list[Signal]:
        """Every stored signal of one user, oldest first (GDPR export and erasure)."""

    async def signals_of(self, user_ids: Collection[str]) -> dict[str, list[Signal]]:
        """Every stored signal of each of these users, oldest first (experiment results)."""


class SignalLog(SignalHistory, Protocol):
    """Append-only record of acknowledged signals: the source of truth everything replays from."""

    async def append(self, signals: Sequence[Signal]) -> list[Signal]:
        """Store all signals durably in one transaction; return those that were new.

        A signal whose `signal_id` is already stored (or repeats within the call) is dropped, so
        clients may retry safely. When this returns, the new signals survive a crash.
        """

    def scan(self, *, batch_size: int = 10_000, erased: Mapping[str, float] | None = None,
             after: int = 0) -> Iterator[list[Signal]]:
        """Every stored signal in append order, in batches (for replay and training), from the
        position after `after` on. Erased users' rows are deleted, so `erased` leaves nothing more out."""

    async def last_position(self) -> int:
        """The position of the newest stored signal (0 when empty); positions grow with appends."""

    async def applied_position(self) -> int | None:
        """The position up to which live state holds every signal, as last marked (None: never)."""

    async def mark_applied(self, position: int) -> None:
        """Record durably that live state holds every signal up to `position`; never moves back."""

    async def erase_user(self, user_id: str) -> int:
        """Delete every signal of the user for good (the rows, and their bytes on disk); returns
        how many there were."""

    async def ping(self) -> None:
        """Raise `BackendUnavailable` if the log cannot serve."""

    async def close(self) -> None: ...


class ItemCatalog(Protocol):
    """The items that can be ranked, keyed by id."""

    async def put(self, items: Sequence[Item]) -> None:
        """Insert or replace all items durably in one transaction."""

    async def get(self, item_ids: Sequence[str]) -> dict[str, Item]:
        """The stored items among `item_ids` (missing ids are absent from the result)."""

    async def delete(self, item_id: str) -> bool:
        """Remove one item; False if it was not there."""

    async def newest(self, limit: int) -> list[str]:
        """Ids of the most recently created items, newest first."""

    async def count(self) -> int: ...

    def scan(self, *, batch_size: int = 10_000) -> Iterator[list[Item]]:
        """Every stored item, in batches."""

    async def close(self) -> None: ...


class FeatureStore(Protocol):
    """Live state derived from signals, read by ranking and analytics.

    Decayed engagement, windowed counts (1m/5m/15m/1h/24h, see `overdrive.domain.windows`) per
    item, author and user, long- and short-term interest profiles, sessions and all-time counts.
    Embedded: in process memory, rebuilt from the SignalLog at start-up. Scaled: in Redis, shared
    by every replica and worker.
    """

    async def apply(self, signals: Sequence[Signal], items: Mapping[str, Item], *, now: float) -> list[Signal]:
        """Fold signals in; `items` holds the catalog entries they refer to. Returns those applied.

        A signal whose `signal_id` was applied before (within the store's de-duplication
        horizon) is skipped, so redelivery changes nothing.
        """

    async def forget_item(self, item_id: str) -> None:
        """Drop an item's engagement (it left the catalog)."""

    async def forget_user(self, user_id: str, signals: Sequence[Signal], items: Mapping[str, Item]) -> None:
        """GDPR erasure: drop everything kept about the user — counts, recent signals, windows,
        sessions, interest profiles, excluded items — and the de-duplication markers of
        `signals` (theirs; `items` the catalog entries they name). Item and author aggregates
        keep their anonymous totals."""

    async def item_engagement(self, item_ids: Sequence[str], *, now: float) -> dict[str, float]:
        """Time-decayed weighted engagement per item (absent: none recorded)."""

    async def top_engaged(self, limit: int, *, now: float) -> list[str]:
        """Item ids with the highest decayed engagement, best first (may lag by a second or two)."""

    async def item_velocity(self, item_ids: Sequence[str], *, now: float) -> dict[str, float]:
        """Last hour's signal rate against the item's own daily baseline (1 = as usual)."""

    async def trending(self, limit: int, *, now: float) -> list[tuple[str, float]]:
        """Items moving fastest against their own daily baseline: (id, velocity), best first."""

    async def windows(self, kind: str, entity_id: str, *, now: float) -> dict[str, dict[str, float]]:
        """Windowed counts and weights for an `item`, `author` or `user`."""

    async def user_interests(self, user_id: str, *, now: float, term: str = "long") -> dict[str, float]:
        """Decayed affinity per item feature (`tag:x`, `author:y`, `type:z`); `term` long, medium or
        short."""

    async def user_model(self, user_id: str, *, now: float) -> UserModel:
        """The user's habits (devices, time zones, local hours, places), their interests per
        `<device class>|<daypart>` context, per-week engagement (the last `timeline_weeks`) and the
        medium-term profile. Signals carry context in `metadata["context"]` (`overdrive.domain.context`)."""

    async def user_activity(self, user_id: str, *, now: float) -> UserActivity:
        """All-time counts per type, recent signals (newest first) and the latest session."""

    async def user_signal_total(self, user_id: str) -> int:
        """How many signals of the user were applied, all time: changes whenever their recent
        signals do, so caches of anything derived from them can key on it (cheaper to read)."""

    async def excluded_items(self, user_id: str, item_ids: Sequence[str]) -> set[str]:
        """Those of `item_ids` the user sent a signal of an excluding type for (consumed, hid…)."""

    async def ranking_reads(self, user_id: str, item_ids: Sequence[str], *, now: float,
                            context: str | None = None) -> RankingReads:
        """`excluded_items`, `item_engagement`, both `user_interests` and `user_signal_total` of
        one ranking, and for a `context` key (`<device class>|<daypart>`) the user's interests in
        it, as one read: a remote store answers it in one round trip."""

    async def context_prior(self, context: str, *, now: float) -> tuple[dict[str, float], dict[str, float]]:
        """Everyone's interests in a context, and in every context together (the baseline its
        lift is measured against). Population-wide and slow to change: callers cache it."""


class AuditLog(Protocol):
    """The audit trail's records, chained by hash (`overdrive.domain.audit`), oldest first.

    Embedded: a table of the SQLite database. Scaled: a Redis stream every replica appends to."""

    async def append(self, fields: dict) -> dict:
        """Seal `fields` as the record after the current last one, store it durably, return it.
        Concurrent appends (from any replica) each get their own place in the one chain."""

    async def query(self, *, target: str | None = None, principal: str | None = None, action: str | None = None,
                    since: float | None = None, until: float | None = None, limit: int = 100) -> list[dict]:
        """Matching records, newest first."""

    def scan(self, *, batch_size: int = 10_000) -> Iterator[list[dict]]:
        """Every record, oldest first (blocking: for the verifier and exports)."""


class ErasureList(Protocol):
    """Users erased (GDPR), as SHA-256 digests of their ids with the time of erasure, so that a log
    that cannot forget (a Kafka topic) is read as if it had: records of an erased user produced
    before the erasure are skipped by every replay, retrain and worker. Later ones are a new user."""

    async def add(self, user_id: str, *, at: float) -> None: ...

    async def snapshot(self) -> dict[str, float]:
        """digest -> erased at (epoch seconds)."""


class ExperimentStore(Protocol):
    """Experiment definitions (JSON of `overdrive.experiments.model.Experiment`), and what each
    served ranking in an experiment showed (exposures), shared by every replica."""

    async def put(self, experiment_id: str, definition: dict) -> None: ...

    async def all(self) -> list[dict]: ...

    async def delete(self, experiment_id: str) -> bool:
        """The definition and its exposures; False if there was none."""

    async def log_exposures(self, exposures: Sequence[dict]) -> None:
        """Append exposure records (each names its `experiment` and `user_id`)."""

    def exposures(self, experiment_id: str, *, batch_size: int = 10_000) -> Iterator[list[dict]]:
        """Every exposure of the experiment, oldest first (blocking: results run in a thread)."""

    async def user_exposures(self, user_id: str) -> list[dict]: ...

    async def forget_user(self, user_id: str) -> int:
        """GDPR erasure of the user's exposures; how many there were."""
