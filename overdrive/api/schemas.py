"""Wire models: what clients send and receive. Separate from the domain types on purpose."""

from __future__ import annotations

import math
from datetime import datetime
from sys import intern
from typing import Annotated, Any, Literal

import orjson
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, StringConstraints,
                      TypeAdapter, ValidationError, WithJsonSchema, field_validator)
from typing_extensions import Required, TypedDict

from overdrive.domain.context import DEVICE_CLASSES, Context, from_fields, valid_timezone
from overdrive.domain.times import EARLIEST, epoch_seconds
from overdrive.domain.types import COMPONENTS, CONTENT_TYPES, SIGNAL_TYPES, Item, Signal

MAX_BATCH_SIGNALS = 10_000
MAX_BATCH_ITEMS = 10_000
MAX_CANDIDATES = 5_000



def _utf8(value: str) -> str:
    """JSON may escape lone surrogates (\\ud800); they cannot be stored as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid UTF-8 text (no lone surrogates)") from None
    return value


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    try:
        orjson.dumps(value)
    except TypeError as exc:  # e.g. integers beyond 64 bits, lone surrogates
        raise ValueError(f"must be storable JSON: {exc}") from None
    if (where := _non_finite(value, "")) is not None:  # orjson would store NaN and 1e400 as null
        raise ValueError(f"{where or 'value'} must be a finite number (NaN and Infinity are not JSON)")
    return value


def _non_finite(value: Any, path: str) -> str | None:
    """The path of the first NaN or infinite number inside `value`, if any."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, inner in items:
        found = _non_finite(inner, f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}".lstrip("."))
        if found is not None:
            return found
    return None


Text = Annotated[str, AfterValidator(_utf8)]
# Length-constrained strings are checked in pydantic-core, which rejects lone surrogates itself
# ("string_unicode"): no Python validator per id, of which a ranking request carries hundreds.
# No "/": an id travels as one URL path segment (GET /items/{id}), and a "/" — even sent as %2F,
# which the server receives decoded — would split it. Every other character round-trips
# percent-encoded ("?" as %3F, "#" as %23, "%" as %25).
Id = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^/]+$")]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Metadata = Annotated[dict[str, Any], AfterValidator(_json_object)]
SignalType = Literal[SIGNAL_TYPES]  # type: ignore[valid-type]
ContentType = Literal[CONTENT_TYPES]  # type: ignore[valid-type]


def _epoch_seconds(value: Any) -> float | None:
    return None if value is None else epoch_seconds(value)


def _media_ref(value: str) -> str:
    """An http(s), data: or file: URL, or a file path. Any other scheme (javascript:, ftp:, …) is
    refused. The scheme is read as a browser would read it — leading spaces and control characters
    dropped, tabs and newlines ignored — so ``" java\tscript:…"`` is refused too. A relative path
    with a colon in its first segment reads as a scheme: write it as ``./name``."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    head = value.lstrip("".join(map(chr, range(0x21))))[:4096]
    for ignored in "\t\n\r":
        head = head.replace(ignored, "")
    scheme, colon, _ = head.partition(":")
    is_scheme = bool(scheme) and scheme[0].isascii() and scheme[0].isalpha() and all(
        c.isascii() and (c.isalnum() or c in "+-.") for c in scheme)
    if colon and is_scheme and scheme.lower() not in ("http", "https", "data", "file"):
        raise ValueError(f"must be an http(s), data: or file: URL or a file path, not a {scheme.lower()}: URL")
    return value


def _any_time(value: Any) -> float | None:
    """A time that may lie in the future (an experiment's end)."""
    return None if value is None else epoch_seconds(value, now=float("inf"))


# What the OpenAPI document says of a time: epoch seconds from the year 1 on, or ISO 8601 text
# (RFC 3339 date-times are what a client should send; `fromisoformat`'s other forms are read too).
# A `Timestamp` also may not lie more than a day ahead: a bound that moves, so no JSON Schema says it.
_TIME_SCHEMA = {"anyOf": [{"type": "number", "minimum": EARLIEST}, {"type": "string", "format": "date-time"},
                          {"type": "null"}]}
Timestamp = Annotated[float | None, BeforeValidator(_epoch_seconds), WithJsonSchema(_TIME_SCHEMA)]
AnyTime = Annotated[float | None, BeforeValidator(_any_time), WithJsonSchema(_TIME_SCHEMA)]
# The document says "no NUL"; the scheme rule (`_media_ref`) is past what a pattern can say plainly.
MediaRef = Annotated[str, StringConstraints(min_length=1), AfterValidator(_media_ref),
                     WithJsonSchema({"type": "string", "minLength": 1, "pattern": "^[^\\x00]+$",
                                     "description": "an http(s), data: or file: URL, or a file path"})]


def _integral(value: Any) -> Any:
    """150.0 is the integer 150 (JSON Schema counts it one, and JSON does not tell them apart);
    150.5, true and "150" stay refused."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# An integer on the wire: strict, but a number with no fractional part is one.
WireInt = Annotated[int, BeforeValidator(_integral)]


class _Wire(BaseModel):
    # Strict: `"limit": true` or `"exclude_seen": "true"` is refused, not read as 1 or True.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_strip_whitespace=False, strict=True)


class DeviceInfoIn(TypedDict, total=False):
    """What a client says of its device; other keys (screen size…) are kept, not interpreted."""

    # Strict as `_Wire` (`"app": 0` is not `false`); open to keys of the client's own. A TypedDict,
    # not a model: it validates into the dict the context is parsed from, at a third of the cost.
    __pydantic_config__ = ConfigDict(extra="allow", allow_inf_nan=False, strict=True)  # type: ignore[misc]
    user_agent: Annotated[str, StringConstraints(max_length=1024)] | None
    device_class: Literal[DEVICE_CLASSES] | None  # type: ignore[valid-type]
    platform: Annotated[str, StringConstraints(max_length=64)] | None
    os: Annotated[str, StringConstraints(max_length=64)] | None
    browser: Annotated[str, StringConstraints(max_length=64)] | None
    app: bool | None


class LocationIn(TypedDict, total=False):
    __pydantic_config__ = ConfigDict(extra="allow", allow_inf_nan=False, strict=True)  # type: ignore[misc]
    country: Annotated[str, StringConstraints(max_length=64)] | None
    region: Annotated[str, StringConstraints(max_length=128)] | None
    city: Annotated[str, StringConstraints(max_length=128)] | None


_CONTEXT_PARTS = (("device_info", TypeAdapter(DeviceInfoIn)), ("location", TypeAdapter(LocationIn)))


def _timezone(value: str | None) -> str | None:
    if value is not None and not valid_timezone(value):
        raise ValueError("must be an IANA time zone name, e.g. Europe/Lisbon")
    return value


Timezone = Annotated[str | None, AfterValidator(_timezone)]
# The bounds before the validator: after it, pydantic writes them as "ge"/"le", which no JSON Schema reads.
UtcOffset = Annotated[int, Field(ge=-14 * 60, le=14 * 60), BeforeValidator(_integral)] | None


class ContextIn(_Wire):
    """Where and on what the user is now; missing parts come from the request's User-Agent and
    client hints, and the user's learnt time zone."""

    device_info: DeviceInfoIn | None = None
    location: LocationIn | None = None
    local_time: Annotated[str, StringConstraints(max_length=64),
                          WithJsonSchema({"type": "string", "format": "date-time", "maxLength": 64})] | None = Field(
        default=None, description="ISO 8601 with the user's UTC offset, e.g. 2026-12-06T08:30:00+01:00")
    timezone: Timezone = Field(default=None, description="an IANA time zone name, e.g. Europe/Lisbon")
    utc_offset_minutes: UtcOffset = None

    @field_validator("local_time")
    @classmethod
    def _zoned(cls, value: str | None) -> str | None:
        if value is not None and utc_offset_of(value) is None:
            raise ValueError("must be ISO 8601 with a UTC offset, e.g. 2026-12-06T08:30:00+01:00")
        return value

    def to_domain(self, fallback: Context | None) -> Context:
        """The request's context; `local_time`, when given, is the user's wall clock now (its hour
        sets the daypart, its offset the zone)."""
        clock = _iso(self.local_time) if self.local_time is not None else None
        offset = self.utc_offset_minutes
        if offset is None and clock is not None and (zone := clock.utcoffset()) is not None:
            offset = int(zone.total_seconds() // 60)
        return from_fields(self.device_info, self.location,
                           timezone=self.timezone, utc_offset_minutes=offset,
                           local_hour=clock.hour if clock is not None else None, fallback=fallback)


def utc_offset_of(value: Any) -> int | None:
    """The UTC offset (minutes) an ISO 8601 text states; None for epoch seconds or naive times."""
    if not isinstance(value, str) or value.strip().replace(".", "", 1).lstrip("-").isdigit():
        return None
    parsed = _iso(value)
    offset = parsed.utcoffset() if parsed is not None else None
    return None if offset is None else int(offset.total_seconds() // 60)


def _iso(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


class _ZonedSeconds(float):
    """Epoch seconds read from ISO text that states a UTC offset, with that offset (minutes): the
    signal's time zone, learnt into the user's habits."""

    utc_offset: int


def _signal_time(value: Any) -> float | None:
    """A `Timestamp` that keeps the offset its ISO text states (validated here in full: a plain
    validator, so the float subclass is not converted back)."""
    if value is None:
        return None
    seconds = epoch_seconds(value)
    offset = utc_offset_of(value)
    if offset is None:
        return seconds
    zoned = _ZonedSeconds(seconds)
    zoned.utc_offset = offset
    return zoned


# A signal's time: as `Timestamp`, and the offset of zoned ISO text kept with it (no private
# attribute or model-wide validator: those cost more than the rest of a signal's validation).
SignalTime = Annotated[float | None, PlainValidator(_signal_time), WithJsonSchema(_TIME_SCHEMA)]


class SignalIn(_Wire):
    user_id: Id
    signal_type: SignalType
    content_id: Id
    duration: float | None = Field(default=None, ge=0, le=1e7, description="Seconds of dwell or play.")
    intensity: float = Field(default=1.0, ge=0, le=100)
    timestamp: SignalTime = Field(default=None, description="ISO 8601 or epoch seconds, up to a day from now; default: now.")
    signal_id: Id | None = Field(default=None, description="Client id; a repeat is acknowledged, not re-counted.")
    metadata: Metadata = Field(default_factory=dict, description=(
        "Free-form JSON (integers within 64 bits); `device_info` (user_agent, device_class, platform, os, browser, app) and `location` "
        "(country, region, city) are read as the signal's context."))

    @field_validator("metadata")
    @classmethod
    def _context_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, model in _CONTEXT_PARTS:
            if key in value:
                try:
                    model.validate_python(value[key])
                except ValidationError as exc:
                    err = exc.errors()[0]
                    where = ".".join(str(p) for p in (key, *err["loc"]))
                    raise ValueError(f"{where}: {err['msg']}") from None
        return value

    def to_domain(self, now: float, fallback: Context | None = None) -> Signal:
        """The signal, its context (from metadata, the timestamp's offset, then `fallback` — the
        request's headers) parsed once into `metadata["context"]`."""
        meta = self.metadata
        offset = self.timestamp.utc_offset if isinstance(self.timestamp, _ZonedSeconds) else None
        if "device_info" in meta or "location" in meta or offset is not None:
            context = from_fields(meta.get("device_info"), meta.get("location"),
                                  utc_offset_minutes=offset, fallback=fallback)
        else:
            context = fallback
        if context is not None and (parsed := context.as_dict()):
            meta = {**meta, "context": parsed}
        return Signal(
            user_id=intern(self.user_id),
            signal_type=self.signal_type,
            content_id=intern(self.content_id),
            timestamp=now if self.timestamp is None else float(self.timestamp),
            duration=self.duration,
            intensity=self.intensity,
            signal_id=self.signal_id,
            metadata=meta,
        )


class SignalBatchIn(_Wire):
    signals: list[SignalIn] = Field(min_length=1, max_length=MAX_BATCH_SIGNALS)


class SignalAck(BaseModel):
    status: Literal["accepted"] = "accepted"
    accepted: int
    duplicates: int
    processing_time_ms: float


class _Content(_Wire):
    text: Text | None = Field(default=None, max_length=100_000)
    image_url: MediaRef | None = None
    video_url: MediaRef | None = None
    audio_url: MediaRef | None = None
    author_id: Id | None = None
    created_at: Timestamp = Field(default=None, description="ISO 8601 or epoch seconds, up to a day from now.")
    tags: list[Tag] = Field(default_factory=list, max_length=100)
    metadata: Metadata = Field(default_factory=dict, description="Free-form JSON (integers within 64 bits).")


class ItemIn(_Content):
    id: Id
    type: ContentType = "text"

    def to_domain(self, now: float) -> Item:
        return Item(
            id=self.id,
            type=self.type,
            text=self.text,
            image_url=self.image_url,
            video_url=self.video_url,
            audio_url=self.audio_url,
            author_id=self.author_id,
            created_at=now if self.created_at is None else self.created_at,
            tags=tuple(dict.fromkeys(self.tags)),
            metadata=self.metadata,
        )


class ItemBatchIn(_Wire):
    items: list[ItemIn] = Field(min_length=1, max_length=MAX_BATCH_ITEMS, description="each id once")

    @field_validator("items")
    @classmethod
    def _ids_once(cls, items: list[ItemIn]) -> list[ItemIn]:
        """One id twice in a batch would be stored once and acknowledged twice: refused."""
        first: dict[str, int] = {}
        for n, item in enumerate(items):
            if (k := first.setdefault(item.id, n)) != n:
                raise ValueError(f"items[{n}].id {item.id!r} repeats items[{k}].id; send each item once")
        return items


class ItemOut(BaseModel):
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


class CandidateIn(TypedDict, total=False):
    """A candidate: just `id` (looked up in the catalog) or `id` plus content that overrides it.

    The fields of `_Content`, as a TypedDict: a ranking validates hundreds of candidates, and a
    dict holding just the keys sent validates about three times faster than a model instance."""

    __pydantic_config__ = _Wire.model_config  # type: ignore[misc]
    id: Required[Id]
    type: ContentType | None
    text: Annotated[Text | None, Field(max_length=100_000)]
    image_url: MediaRef | None
    video_url: MediaRef | None
    audio_url: MediaRef | None
    author_id: Id | None
    created_at: Annotated[Timestamp, Field(description="ISO 8601 or epoch seconds, up to a day from now.")]
    tags: Annotated[list[Tag], Field(max_length=100)]
    metadata: Metadata


def candidate_content(candidate: CandidateIn) -> dict[str, Any]:
    """The content a candidate overrides the catalog's with (`{}` for a bare id)."""
    given: dict[str, Any] = {k: v for k, v in candidate.items() if k != "id"}
    if "tags" in given:
        given["tags"] = tuple(dict.fromkeys(given["tags"]))
    if given.get("type", "") is None:
        del given["type"]
    return given


class RankRequest(_Wire):
    user_id: Id
    candidate_items: list[CandidateIn] | None = Field(
        default=None, max_length=MAX_CANDIDATES, description="Each id once. Omit to rank candidates from the catalog."
    )
    limit: WireInt = Field(default=20, ge=1, le=1000)
    strategy: str | None = Field(
        default=None, min_length=1, max_length=64,
        description="A named blend (GET /rank/strategies). Omitted: the user's experiment arm, else the default (OVERDRIVE_DEFAULT_STRATEGY, `learned`).")
    exclude_seen: bool = Field(
        default=True, description="Leave out items the user already consumed or rejected (OVERDRIVE_EXCLUDE_SIGNAL_TYPES)."
    )
    context: ContextIn | None = Field(default=None, description="Device, location and local time of this request.")


class RankedItemOut(BaseModel):
    id: str
    score: float
    rank: int
    scores: dict[str, float]


class ExperimentServed(BaseModel):
    id: str
    arm: str
    teams: dict[str, str] | None = Field(default=None, description="interleaving: item id -> the arm that contributed it")


class RankResponse(BaseModel):
    user_id: str
    items: list[RankedItemOut]
    strategy: str
    request_id: str
    processing_time_ms: float
    experiment: ExperimentServed | None = None


Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class ArmIn(_Wire):
    name: Name
    share: float = Field(default=1.0, gt=0, description="relative share of the experiment's users (A/B)")
    strategy: Name | None = Field(default=None, description="a named strategy (GET /rank/strategies)")
    weights: Annotated[dict[str, float], WithJsonSchema({
        "type": "object", "minProperties": 1, "propertyNames": {"enum": list(COMPONENTS)},
        "additionalProperties": {"type": "number", "minimum": 0}})] | None = Field(
        default=None, description="or a blend of the ranking components (>= 0, not all 0); an arm has a strategy or weights")


class ExperimentIn(_Wire):
    name: Name
    kind: Literal["ab", "interleaving"] = "ab"
    arms: list[ArmIn] = Field(min_length=2, max_length=20, description="the first is the control; names differ")
    layer: Name = "default"
    salt: Name | None = Field(default=None, description="default: random")
    exposure: float = Field(default=1.0, gt=0, le=1, description="share of the layer's users")
    state: Literal["draft", "running"] = "draft"
    starts_at: AnyTime = None
    ends_at: AnyTime = Field(default=None, description="after starts_at")
    attribution_window_s: float = Field(default=86_400.0, gt=0, le=90 * 86_400.0)


class ExperimentPatch(_Wire):
    name: Name | None = None
    arms: list[ArmIn] | None = Field(default=None, min_length=2, max_length=20)
    salt: Name | None = None
    layer: Name | None = None
    exposure: float | None = Field(default=None, gt=0, le=1)
    state: Literal["draft", "running", "stopped"] | None = None
    starts_at: AnyTime = None
    ends_at: AnyTime = Field(default=None, description="after starts_at")
    attribution_window_s: float | None = Field(default=None, gt=0, le=90 * 86_400.0)


class FieldErrorOut(BaseModel):
    field: str = Field(description="where in the request, e.g. signals[3].signal_type")
    message: str
    type: str = Field(description="the kind of problem, e.g. missing, string_too_long, json_invalid, invalid")


class ErrorOut(BaseModel):
    """Every error answer: what went wrong, in words and as a code (`error`); a validation error
    (422) or a body that is not JSON (400) lists each field at fault in `errors`."""

    error: str = Field(description="validation_error, invalid_json, not_found, conflict, unauthenticated, forbidden, "
                                   "overloaded, unavailable, payload_too_large, unsupported_media_type, http_error")
    message: str
    errors: list[FieldErrorOut] = Field(default_factory=list, description="400 and 422: each field at fault")
    field: str = Field(default="body", description="413 and 415: the part of the request refused")


class ReadinessOut(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, dict[str, Any]] = Field(description="each dependency's own answer, with `ok`")
