"""Where, when and on what a user acts: parsed once, at the API, into one `Context`.

A signal or a rank request may carry `device_info` (a `user_agent`, or `platform`/`os`/`browser`/
`device_class`/`app`), a `location` ({country, region, city}) and a local time (a timestamp with
its UTC offset, `local_time`, `timezone` or `utc_offset_minutes`); what the body lacks comes from
the HTTP `User-Agent` and `Sec-CH-UA-*` client hints. User agents are parsed with `ua-parser`
(cached): device class (mobile, tablet, desktop, tv, bot), OS, browser, app or web. Crawlers are
flagged as bots. The parsed context travels with a signal as `metadata["context"]`.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from overdrive.domain.types import Signal

DEVICE_CLASSES = ("mobile", "tablet", "desktop", "tv", "bot")
DAYPARTS = ("night", "morning", "afternoon", "evening")  # 22–5, 5–11, 11–17, 17–22 local time
_BOT = re.compile(r"bot\b|bot/|crawler|spider|slurp|facebookexternalhit|headlesschrome|preview", re.IGNORECASE)
_TV = re.compile(r"smart-?tv|\btv\b|tizen|web0s|webos|roku|bravia|aft[a-z]|crkey|appletv|hbbtv", re.IGNORECASE)
_TABLET = re.compile(r"ipad|tablet|kindle|silk/|playbook|sm-[tx]\d", re.IGNORECASE)
_MOBILE = re.compile(r"mobi|iphone|ipod|android.*mobile|windows phone", re.IGNORECASE)
_DESKTOP_OS = ("Windows", "Mac OS X", "Linux", "Chrome OS", "Ubuntu", "Fedora", "FreeBSD")


@dataclass(frozen=True, slots=True)
class Context:
    device_class: str | None = None
    os: str | None = None
    browser: str | None = None
    app: bool | None = None
    country: str | None = None
    region: str | None = None
    city: str | None = None
    timezone: str | None = None
    utc_offset_minutes: int | None = None
    local_hour: int | None = None  # a request's own wall clock, when it states one (`local_time`)

    @property
    def bot(self) -> bool:
        return self.device_class == "bot"

    def local(self, at: float) -> datetime.datetime | None:
        """The wall-clock time at `at` where the user is (None without a zone or offset)."""
        if self.timezone is not None:
            with_zone = _zone(self.timezone)
            if with_zone is not None:
                return datetime.datetime.fromtimestamp(at, with_zone)
        if self.utc_offset_minutes is not None:
            return datetime.datetime.fromtimestamp(at, _offset(self.utc_offset_minutes))
        return None

    def daypart(self, at: float) -> str | None:
        if self.local_hour is not None:
            return daypart(self.local_hour)
        local = self.local(at)
        return None if local is None else daypart(local.hour)

    def merged(self, fallback: Context | None) -> Context:
        """This context, each missing field taken from `fallback` (e.g. the request's headers)."""
        if fallback is None:
            return self
        missing = {k: v for k in _FIELDS if getattr(self, k) is None and (v := getattr(fallback, k)) is not None}
        return replace(self, **missing) if missing else self

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k in _FIELDS if (v := getattr(self, k)) is not None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Context | None:
        if not d:
            return None
        return cls(**{k: d[k] for k in _FIELDS if k in d})


_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Context))


def daypart(hour: int) -> str:
    if 5 <= hour < 11:
        return "morning"
    if 11 <= hour < 17:
        return "afternoon"
    if 17 <= hour < 22:
        return "evening"
    return "night"


@functools.lru_cache(maxsize=64)
def _offset(minutes: int) -> datetime.timezone:
    return datetime.timezone(datetime.timedelta(minutes=minutes))


@functools.lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def valid_timezone(name: str) -> bool:
    return _zone(name) is not None


@functools.lru_cache(maxsize=65_536)
def parse_user_agent(user_agent: str) -> Context:
    """Device class, OS, browser and app-or-web of a `User-Agent` (cached: clients repeat them)."""
    from ua_parser import parse  # the parser's rules load on first use, not at import

    parsed = parse(user_agent[:1024])
    os_name = parsed.os.family if parsed.os is not None else None
    browser = parsed.user_agent.family if parsed.user_agent is not None else None
    device = parsed.device.family if parsed.device is not None else ""
    if device == "Spider" or _BOT.search(user_agent):
        device_class = "bot"
    elif _TV.search(user_agent) or "tv" in device.lower():
        device_class = "tv"
    elif _TABLET.search(user_agent) or "tablet" in device.lower() or (os_name == "Android" and "mobile" not in user_agent.lower()):
        device_class = "tablet"
    elif _MOBILE.search(user_agent) or os_name in ("iOS", "Android"):
        device_class = "mobile"
    elif os_name in _DESKTOP_OS:
        device_class = "desktop"
    else:
        device_class = None
    app = not user_agent.startswith("Mozilla/") or "wkwebview" in (browser or "").lower() or "; wv)" in user_agent
    return Context(device_class=device_class, os=os_name, browser=browser, app=app if device_class else None)


def from_client_hints(headers: Mapping[str, str]) -> Context | None:
    """What `Sec-CH-UA-Mobile` and `Sec-CH-UA-Platform` say, and the `User-Agent` for the rest."""
    return _from_hints(headers.get("user-agent"), headers.get("sec-ch-ua-platform", "").strip('" '),
                       headers.get("sec-ch-ua-mobile", "").strip())


@functools.lru_cache(maxsize=4096)
def _from_hints(ua: str | None, platform: str, mobile: str) -> Context | None:
    """`from_client_hints`, cached: a client sends the same headers with every request."""
    context = parse_user_agent(ua) if ua else Context()
    if platform:
        context = replace(context, os=platform)
    if mobile in ("?1", "?0") and not context.bot:
        context = replace(context, device_class="mobile" if mobile == "?1" else context.device_class or "desktop")
    return context if context.as_dict() else None


def from_fields(device_info: Mapping[str, Any] | None, location: Mapping[str, Any] | None, *,
                timezone: str | None = None, utc_offset_minutes: int | None = None,
                local_hour: int | None = None, fallback: Context | None = None) -> Context:
    """A context from a body's `device_info` and `location` objects and a zone or offset, each
    missing field taken from `fallback` (e.g. the request's headers). Cached: a client repeats
    its context with every request."""
    info = device_info or {}
    where = location or {}
    app = info.get("app")
    fields_ = (info.get("user_agent"), info.get("device_class"), info.get("os") or info.get("platform"),
               info.get("browser"), app, type(app), where.get("country"), where.get("region"), where.get("city"),
               timezone, utc_offset_minutes, local_hour, fallback)
    try:
        return _context_of(*fields_)
    except TypeError:  # a value that cannot be hashed (a list where a name belongs): not cached
        return _context_of.__wrapped__(*fields_)


@functools.lru_cache(maxsize=4096)
def _context_of(user_agent: Any, device_class: Any, os: Any, browser: Any, app: Any, _app_type: type,
                country: Any, region: Any, city: Any, timezone: str | None, utc_offset_minutes: int | None,
                local_hour: int | None, fallback: Context | None) -> Context:
    agent = parse_user_agent(user_agent) if isinstance(user_agent, str) else _NOBODY
    return Context(
        device_class=_given(device_class, agent.device_class),
        os=_given(os, agent.os),
        browser=_given(browser, agent.browser),
        app=_given(app, agent.app),
        country=_upper(country), region=_text(region), city=_text(city),
        timezone=timezone, utc_offset_minutes=utc_offset_minutes, local_hour=local_hour,
    ).merged(fallback)


_NOBODY = Context()


def _given(explicit: Any, parsed: Any) -> Any:
    return parsed if explicit is None else explicit


def _text(value: Any) -> str | None:
    return value.strip()[:128] if isinstance(value, str) and value.strip() else None


def _upper(value: Any) -> str | None:
    text = _text(value)
    return text.upper() if text else None


NO_CONTEXT = "-|-"
ALL_CONTEXTS = "*"  # everyone's profile over every context: the baseline a context's lift is measured against


def context_key(device_class: str | None, part: str | None) -> str:
    """The profile a signal in this context teaches: `<device class>|<daypart>` ("-" unknown)."""
    return f"{device_class or '-'}|{part or '-'}"


def _profile_keys() -> tuple[str, ...]:
    per_context = (context_key(d, p) for d in (*DEVICE_CLASSES, None) for p in (*DAYPARTS, None))
    return (*per_context, *(f"{d}|*" for d in DEVICE_CLASSES))


def device_key(key: str) -> str | None:
    """The all-day profile of a context's device (`mobile|morning` -> `mobile|*`); None without one."""
    device = key.split("|", 1)[0]
    return None if device == "-" else f"{device}|*"


PROFILE_KEYS = _profile_keys()  # every context profile a user may have: per context, and per device all day


def of_signal(metadata: Mapping[str, Any]) -> Context | None:
    """The context the API parsed into a signal's metadata, if any. Cached by value: a user's
    signals repeat one context, and building the frozen dataclass costs more than finding it."""
    stored = metadata.get("context")
    if not stored:
        return None
    try:
        return _context_of_values(tuple(map(stored.get, _FIELDS)))
    except (TypeError, AttributeError):  # a value that cannot be hashed (or no mapping): not cached
        return Context.from_dict(stored)


@functools.lru_cache(maxsize=4096)
def _context_of_values(values: tuple[Any, ...]) -> Context:
    return Context(*values)


def humans(signals: Iterable[Signal]) -> list[Signal]:
    """The signals not sent by a bot: bots' signals are logged but teach no model or analytics."""
    return [s for s in signals if not _from_bot(s)]


def _from_bot(signal: Signal) -> bool:
    context = signal.metadata.get("context") if signal.metadata else None
    return isinstance(context, dict) and context.get("device_class") == "bot"


def signal_keys(context: Context, at: float) -> tuple[list[str], str]:
    """What one signal at `at` teaches: the user's habit keys (each counts 1, decayed) — device
    class, time zone, local hour by weekday, country and city — and the context profile key its
    item's features go to (`context_key`). The local time is worked out once for both."""
    keys = []
    if context.device_class:
        keys.append(f"dev:{context.device_class}")
    if context.timezone:
        keys.append(f"tz:{context.timezone}")
    elif context.utc_offset_minutes is not None:
        keys.append(f"tz:{context.utc_offset_minutes:+d}")
    local = context.local(at)
    if local is not None:
        keys.append(f"hr:{local.weekday()}:{local.hour}")
    if context.country:
        keys.append(f"loc:{context.country}")
        if context.city:
            keys.append(f"city:{context.country}/{context.city}")
    hour = context.local_hour if context.local_hour is not None else local.hour if local is not None else None
    return keys, context_key(context.device_class, None if hour is None else daypart(hour))


def zone_context(key: str) -> Context:
    """A context in the time zone a user model names: an IANA name or a UTC offset ("+60")."""
    if key[:1] in "+-" and key[1:].isdigit():
        return Context(utc_offset_minutes=int(key))
    return Context(timezone=key)


def week_of(at: float) -> str:
    """The ISO week (UTC) of an instant, e.g. "2026-W49"."""
    return _week_of_day(int(at // 86_400))


@functools.lru_cache(maxsize=4096)
def _week_of_day(day: int) -> str:
    """`week_of` a day since the epoch, cached: every signal folds into its week's interests."""
    year, week, _ = (_EPOCH + datetime.timedelta(days=day)).isocalendar()
    return f"{year}-W{week:02d}"


_EPOCH = datetime.date(1970, 1, 1)


def timeline(now: float, weeks: int) -> list[str]:
    """The last `weeks` ISO weeks up to `now`'s, oldest first."""
    return sorted({week_of(now - 7 * 86_400 * n) for n in range(weeks)})
