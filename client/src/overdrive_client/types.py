"""Typed shapes of every request body and every answer of the Overdrive HTTP API.

They are TypedDicts: the JSON itself, typed. A type checker checks every key a caller writes or
reads, while at run time a signal stays a plain dict — about 0.3 µs to build against ~7 µs for a
pydantic model, which matters to a sender meant for tens of thousands of signals a second — and
an answer is handed over as decoded, with no copy. The service validates what it is sent (a
`BadRequest` names the field), so the client does not validate twice. Answers may carry keys a
newer service added; they are kept. `tests/client/test_in_step_with_server.py` checks these
shapes against the server's OpenAPI schema and against its real answers.

Annotations are evaluated (no `from __future__ import annotations`): that is what lets
`Required`/`NotRequired` be read at run time, by that test among others.
"""

from typing import Any, Literal

from typing_extensions import NotRequired, Required, TypedDict

SignalType = Literal["view", "like", "comment", "share", "follow", "bookmark", "click", "scroll", "dwell",
                     "completion", "skip", "hide", "dislike", "report"]
ContentType = Literal["text", "image", "video", "audio", "mixed"]
Timestamp = float | str  # epoch seconds, or ISO 8601 (an offset teaches the user's time zone)


# ------------------------------------------------------------------------------------ requests


class DeviceInfo(TypedDict, total=False):
    user_agent: str | None
    device_class: Literal["mobile", "tablet", "desktop", "tv", "bot"] | None
    platform: str | None
    os: str | None
    browser: str | None
    app: bool | None


class Location(TypedDict, total=False):
    country: str | None
    region: str | None
    city: str | None


class Signal(TypedDict, total=False):
    """One user action. `metadata` may carry `device_info` and `location` (the signal's context)."""

    user_id: Required[str]
    signal_type: Required[SignalType]
    content_id: Required[str]
    duration: float | None
    intensity: float
    timestamp: Timestamp | None
    signal_id: str | None
    metadata: dict[str, Any]


class SignalBatch(TypedDict):
    signals: list[Signal]


class Item(TypedDict, total=False):
    """A catalog item to add or replace."""

    id: Required[str]
    type: ContentType
    text: str | None
    image_url: str | None
    video_url: str | None
    audio_url: str | None
    author_id: str | None
    created_at: Timestamp | None
    tags: list[str]
    metadata: dict[str, Any]


class ItemBatch(TypedDict):
    items: list[Item]


class Candidate(TypedDict, total=False):
    """A ranking candidate: a catalog `id`, or an `id` with content that overrides the catalog's."""

    id: Required[str]
    type: ContentType | None
    text: str | None
    image_url: str | None
    video_url: str | None
    audio_url: str | None
    author_id: str | None
    created_at: Timestamp | None
    tags: list[str]
    metadata: dict[str, Any]


class Context(TypedDict, total=False):
    """Where, when and on what the user is now (`local_time` in ISO 8601 with its UTC offset)."""

    device_info: DeviceInfo | None
    location: Location | None
    local_time: str | None
    timezone: str | None
    utc_offset_minutes: int | None


class RankRequest(TypedDict, total=False):
    user_id: Required[str]
    candidate_items: list[Candidate] | None
    limit: int
    strategy: str | None
    exclude_seen: bool
    context: Context | None


class ArmDefinition(TypedDict, total=False):
    """An experiment arm: a named `strategy` or its own component `weights` (one of the two)."""

    name: Required[str]
    share: float
    strategy: str | None
    weights: dict[str, float] | None


class ExperimentDefinition(TypedDict, total=False):
    name: Required[str]
    kind: Literal["ab", "interleaving"]
    arms: Required[list[ArmDefinition]]
    layer: str
    salt: str | None
    exposure: float
    state: Literal["draft", "running"]
    starts_at: Timestamp | None
    ends_at: Timestamp | None
    attribution_window_s: float


class ExperimentChanges(TypedDict, total=False):
    """What `PATCH /experiments/{id}` may change (arms, salt and layer only while a draft)."""

    name: str | None
    arms: list[ArmDefinition] | None
    salt: str | None
    layer: str | None
    exposure: float | None
    state: Literal["draft", "running", "stopped"] | None
    starts_at: Timestamp | None
    ends_at: Timestamp | None
    attribution_window_s: float | None


# ------------------------------------------------------------------------------------- answers


class FieldError(TypedDict):
    field: str
    message: str


class SignalAck(TypedDict):
    """`accepted` signals were new and are on disk; `duplicates` had been stored before."""

    status: Literal["accepted"]
    accepted: int
    duplicates: int
    processing_time_ms: float


class CatalogItem(TypedDict):
    """An item as the catalog stores it (`created_at` in epoch seconds)."""

    id: str
    type: str
    text: str | None
    image_url: str | None
    video_url: str | None
    audio_url: str | None
    author_id: str | None
    created_at: float | None
    tags: list[str]
    metadata: dict[str, Any]


class ItemsStored(TypedDict):
    stored: int


class ScoredItem(TypedDict):
    id: str
    score: float


class SimilarItems(TypedDict):
    item_id: str
    features_pending: bool
    items: list[ScoredItem]


class ItemFeatures(TypedDict):
    """What content understanding made of an item; the details once its features are computed."""

    item_id: str
    features_pending: bool
    content_hash: NotRequired[str]
    modalities: NotRequired[list[str]]
    degraded: NotRequired[list[str]]
    descriptors: NotRequired[dict[str, Any]]
    errors: NotRequired[dict[str, Any]]
    indexed: NotRequired[bool]


class RankedItem(TypedDict):
    """`scores`: each component's contribution; they add up to `score`."""

    id: str
    score: float
    rank: int
    scores: dict[str, float]


class ExperimentServed(TypedDict):
    id: str
    arm: str
    teams: NotRequired[dict[str, str] | None]


class RankResponse(TypedDict):
    user_id: str
    items: list[RankedItem]
    strategy: str
    request_id: str
    processing_time_ms: float
    experiment: NotRequired[ExperimentServed | None]


class Strategies(TypedDict):
    default: str
    strategies: dict[str, dict[str, float]]


class Interest(TypedDict):
    feature: str
    weight: float


class Window(TypedDict):
    count: int
    weight: float


class Session(TypedDict):
    started_at: float
    last_signal_at: float
    signals: int
    duration_s: float
    active: bool


class UserAnalytics(TypedDict):
    """All-time `signal_counts` per type, sessions, dwell, interests and the user's habits."""

    user_id: str
    known: bool
    total_signals: int
    signal_counts: dict[str, int]
    last_signal_at: float | None
    sessions_total: int
    recent_window: int
    distinct_items_recent: int
    avg_duration_s: float | None
    active_hours_utc: dict[str, int]
    top_interests: list[Interest]
    negative_interests: list[Interest]
    devices: dict[str, float]
    primary_device: str | None
    timezones: dict[str, float]
    timezone: str | None
    active_hours_local: dict[str, float]
    active_weekdays_local: dict[str, float]
    active_slots_local: dict[str, float]
    locations: dict[str, float]
    cities: dict[str, float]
    context_preferences: dict[str, list[Interest]]
    interest_evolution: dict[str, Any]


class UserRealtime(TypedDict):
    """Counts in the 1m/5m/15m/1h/24h windows, the current session and short-term interests."""

    user_id: str
    as_of: float
    windows: dict[str, Window]
    last_hour_by_type: dict[str, int]
    session: Session | None
    context: dict[str, Any] | None
    short_term_interests: list[Interest]


class AuthorActivity(TypedDict):
    author_id: str
    windows: dict[str, Window]


class ItemAnalytics(TypedDict):
    item_id: str
    in_catalog: bool
    engagement: float
    velocity: float
    windows: dict[str, Window]
    author: AuthorActivity | None


class TrendingItem(TypedDict):
    id: str
    velocity: float


class Trending(TypedDict):
    as_of: float
    items: list[TrendingItem]


class ComponentStrength(TypedDict):
    component: str
    mean_contribution: float


class Insights(TypedDict):
    user_id: str
    top_interests: list[Interest]
    short_term_interests: list[Interest]
    avoids: list[Interest]
    rankings_seen: int
    strongest_components: list[ComponentStrength]
    latest: dict[str, Any] | None


class PerformanceSignals(TypedDict):
    """Signals applied by type (with Kafka: every replica's, read back from the topic)."""

    total: int
    by_type: dict[str, int]


class Performance(TypedDict):
    """Per-endpoint counts and latency percentiles, signal stages, signals by type, gauges, store sizes."""

    uptime_s: float
    endpoints: dict[str, dict[str, Any]]
    signal_stages: dict[str, dict[str, Any]]
    signals: PerformanceSignals
    gauges: dict[str, float]
    store: dict[str, int]
    ranking: dict[str, Any]


class TrainingStarted(TypedDict):
    """The jobs `POST /models/train` started (or found running); poll `models.status()`."""

    collaborative: dict[str, Any]
    blend: dict[str, Any]


class ModelStatus(TypedDict):
    collaborative: dict[str, Any]
    blend: dict[str, Any]


class Liveness(TypedDict):
    status: str


class Readiness(TypedDict):
    """`status` is `ready` or `not_ready`; `checks` holds each dependency's own `ok`."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, dict[str, Any]]


class ErasureJob(TypedDict):
    job_id: str
    user_digest: str
    state: str
    requested_at: float
    finished_at: float | None
    steps: dict[str, Any]


class AuditRecord(TypedDict):
    seq: int
    at: float
    principal: str
    action: str
    target: str
    request_id: str
    outcome: str
    detail: dict[str, Any]
    prev: str
    hash: str


class AuditRecords(TypedDict):
    records: list[AuditRecord]


class Arm(TypedDict):
    name: str
    share: float
    strategy: str | None
    weights: dict[str, float] | None


class Experiment(TypedDict):
    """An experiment as stored: arms' shares normalised, its layer `buckets` as [lo, hi) ranges."""

    id: str
    name: str
    kind: Literal["ab", "interleaving"]
    arms: list[Arm]
    control: str
    layer: str
    salt: str
    exposure: float
    buckets: list[list[int]]
    state: Literal["draft", "running", "stopped"]
    starts_at: float | None
    ends_at: float | None
    attribution_window_s: float
    created_at: float


class Experiments(TypedDict):
    experiments: list[Experiment]


class Assignment(TypedDict):
    """`arm` is `interleaved` for an interleaving experiment (the user sees every arm)."""

    experiment: str
    name: str
    kind: str
    layer: str
    arm: str


class Assignments(TypedDict):
    user_id: str
    assignments: list[Assignment]


class ExperimentResults(TypedDict):
    """Common figures, then per kind: A/B `arms`/`comparisons`/`srm`/`cohorts`, or `interleaving`."""

    experiment: str
    name: str
    kind: Literal["ab", "interleaving"]
    state: str
    users: int
    feeds: int
    attribution_window_s: float
    guardrails: dict[str, Any]
    control: NotRequired[str]
    arms: NotRequired[dict[str, dict[str, Any]]]
    comparisons: NotRequired[dict[str, dict[str, Any]]]
    srm: NotRequired[dict[str, Any]]
    cohorts: NotRequired[dict[str, Any]]
    interleaving: NotRequired[dict[str, Any]]


class UserExport(TypedDict):
    """`overdrive.user-export/1`: everything the service keeps about one user."""

    schema: str
    user_id: str
    exported_at: float
    signals: list[dict[str, Any]]
    analytics: UserAnalytics
    realtime: UserRealtime
    insights: Insights
    interests: dict[str, dict[str, float]]
    experiments: dict[str, Any]
    audit: list[AuditRecord]
