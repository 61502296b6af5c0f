"""Schemathesis hooks for test_openapi_schemathesis.py (loaded through SCHEMATHESIS_HOOKS).

`filter_failure` drops one kind of finding, where OpenAPI and the server's routing read one path
differently (below). `filter_case` leaves out generated positive bodies that break a rule the
service enforces (422) but JSON Schema cannot state — rules across items of a list or across
fields, or against the clock. The OpenAPI document says these in words; without the filter
`positive_data_acceptance` would report every such body as "schema-valid request rejected".
Nothing else is left out, and every check runs on what remains.
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any

import re

import schemathesis
from schemathesis.generation import GenerationMode
from schemathesis.openapi.checks import AllowHeaderMismatch

from overdrive.domain.times import MAX_FUTURE_SKEW_S, epoch_seconds

ALLOWED_SCHEMES = ("http", "https", "data", "file")


def _ids_unique(entries: Any) -> bool:
    if not isinstance(entries, list):
        return True
    ids = [e.get("id") for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)]
    return len(set(ids)) == len(ids)


def _time_in_range(value: Any) -> bool:
    """A time no more than a day ahead: a bound that moves with the clock. (A number the service
    refuses otherwise is below the documented minimum: a negative case, kept.)"""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return True
    try:
        return epoch_seconds(value) <= time.time() + MAX_FUTURE_SKEW_S
    except (ValueError, OverflowError) as exc:
        return "future" not in str(exc)


def _media_ok(value: Any) -> bool:
    """`_media_ref`: a URL names one of the allowed schemes (a pattern cannot say this plainly)."""
    if not isinstance(value, str):
        return True
    head = value.lstrip("".join(map(chr, range(0x21))))[:4096]
    for ignored in "\t\n\r":
        head = head.replace(ignored, "")
    scheme, colon, _ = head.partition(":")
    is_scheme = bool(scheme) and scheme[0].isascii() and scheme[0].isalpha() and all(
        c.isascii() and (c.isalnum() or c in "+-.") for c in scheme)
    return not (colon and is_scheme and scheme.lower() not in ALLOWED_SCHEMES)


def _content_ok(content: Any, *, time_fields: tuple[str, ...]) -> bool:
    if not isinstance(content, dict):
        return True
    return (all(_media_ok(content.get(k)) for k in ("image_url", "video_url", "audio_url"))
            and all(_time_in_range(content.get(k)) for k in time_fields))


def _local_time_ok(context: Any) -> bool:
    """`context.local_time` must carry a UTC offset and name a real day."""
    if not isinstance(context, dict) or not isinstance(context.get("local_time"), str):
        return True
    from overdrive.api.schemas import utc_offset_of

    return utc_offset_of(context["local_time"]) is not None


def _arms_ok(arms: Any) -> bool:
    """Arm names differ; each arm has a strategy or weights, not both; weights not all 0."""
    if not isinstance(arms, list):
        return True
    names = [a.get("name") for a in arms if isinstance(a, dict)]
    if len(set(map(str, names))) < len(names):
        return False
    for arm in arms:
        if not isinstance(arm, dict):
            continue
        if (arm.get("strategy") is None) == (arm.get("weights") is None):
            return False
        weights = arm.get("weights")
        if isinstance(weights, dict) and weights and not sum(
                w for w in weights.values() if isinstance(w, (int, float))) > 0:
            return False
    return True


def _schedule_ok(body: dict[str, Any]) -> bool:
    starts, ends = body.get("starts_at"), body.get("ends_at")
    try:
        if starts is not None and ends is not None:
            return epoch_seconds(ends, now=math.inf) > epoch_seconds(starts, now=math.inf)
    except (ValueError, OverflowError):
        return True
    return True


def _storable(value: Any) -> bool:
    """No integer beyond 64 bits and no lone surrogate anywhere: the service stores JSON with
    orjson, which holds neither, and refuses them (422). JSON Schema cannot say either: it does not
    tell 100000000000000000000 from 1e20 (a float, stored), nor a lone surrogate from a character."""
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**64
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    return True


def _timezone_ok(context: Any) -> bool:
    """`context.timezone` names a zone of the tz database: ~600 names, which vary with its version."""
    if not isinstance(context, dict) or not isinstance(context.get("timezone"), str):
        return True
    from overdrive.domain.context import valid_timezone

    return valid_timezone(context["timezone"])


def _all(entries: Any, ok: Any) -> bool:
    return not isinstance(entries, list) or all(ok(e) for e in entries)


def _body_ok(method: str, path: str, body: dict[str, Any]) -> bool:
    if not _storable(body):
        return False
    content = functools.partial(_content_ok, time_fields=("created_at",))
    where = (method.upper(), path)
    if where == ("POST", "/items/batch"):
        return _ids_unique(body.get("items")) and _all(body.get("items"), content)
    if where == ("POST", "/items"):
        return content(body)
    if where == ("POST", "/rank/for-you/enhanced"):
        context = body.get("context")
        return (_ids_unique(body.get("candidate_items")) and _all(body.get("candidate_items"), content)
                and _local_time_ok(context) and _timezone_ok(context))
    if where == ("POST", "/signals/process"):
        return _time_in_range(body.get("timestamp"))
    if where == ("POST", "/signals/batch"):
        return _all(body.get("signals"), lambda s: not isinstance(s, dict) or _time_in_range(s.get("timestamp")))
    if where in (("POST", "/experiments"), ("PATCH", "/experiments/{experiment_id}")):
        return _arms_ok(body.get("arms")) and _schedule_ok(body)
    return True


@schemathesis.hook
def filter_case(context: schemathesis.HookContext, case: schemathesis.Case) -> bool:
    """Positive cases only (a negative case breaks the schema on purpose, and is never filtered):
    leave out those whose body breaks one of the rules above."""
    meta = case.meta
    if meta is not None and meta.generation.mode == GenerationMode.NEGATIVE:
        return True
    if not isinstance(case.body, dict):
        return True
    return _body_ok(case.operation.method, case.operation.path, case.body)


def _templated_methods(document: dict[str, Any], path: str) -> set[str]:
    """The methods of every templated path in `document` that `path` fills in."""
    methods: set[str] = set()
    for template, operations in document.get("paths", {}).items():
        if "{" in template and re.fullmatch(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)), path):
            methods |= {m.upper() for m in operations}
    return methods


@schemathesis.hook
def filter_failure(context: schemathesis.HookContext, failure: Any, case: schemathesis.Case, response: Any) -> bool:
    """Keep every failure but an `Allow` that lists, besides the path's own methods, those of a
    templated path the concrete one also fills in: `OPTIONS /items/batch` answers `Allow: GET,
    POST, DELETE`, for GET and DELETE /items/batch are served — they read and delete the item whose
    id is "batch" (`/items/{item_id}`). OpenAPI matches a concrete path before a templated one, so
    the document lists POST alone there; the server's `Allow` tells what it does."""
    if not isinstance(failure, AllowHeaderMismatch) or failure.missing_methods:
        return True
    also_served = _templated_methods(case.operation.schema.raw_schema, case.formatted_path)
    return not {m.upper() for m in failure.undocumented_methods} <= also_served
