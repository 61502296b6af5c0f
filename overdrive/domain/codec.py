"""How signals and items are written down: one codec for every store, stream and dataset reader.

Two shapes: a JSON object with the dataclasses' field names (Redis values, Kafka records, the
wire rows importers and synthetic worlds produce), and a column tuple for SQLite. Readers
accept what the API's wire format allows (missing optional fields, numbers as text), so a row
that passed validation once always decodes. User, item and signal-type names are interned (as the
API interns them): what a model or live state keeps of a signal read back is then the one string
held already, not a copy scattered among a full log scan's garbage, which would keep that
garbage's memory from going back when the scan is done.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from sys import intern
from typing import Any, TypeVar

import orjson

from overdrive.domain.types import Item, Signal

T = TypeVar("T")

# SQLite column order of a signal and of an item.
SIGNAL_COLUMNS = ("signal_id", "user_id", "content_id", "signal_type", "ts", "duration", "intensity", "metadata")
ITEM_COLUMNS = ("id", "type", "text", "image_url", "video_url", "audio_url", "author_id", "created_at", "tags", "metadata")


def signal_to_dict(s: Signal) -> dict[str, Any]:
    return {
        "user_id": s.user_id, "signal_type": s.signal_type, "content_id": s.content_id,
        "timestamp": s.timestamp, "duration": s.duration, "intensity": s.intensity,
        "signal_id": s.signal_id, "metadata": s.metadata,
    }


def signal_from_dict(d: Mapping[str, Any] | Signal) -> Signal:
    if isinstance(d, Signal):
        return d
    return Signal(
        user_id=intern(str(d["user_id"])),
        signal_type=intern(str(d["signal_type"])),
        content_id=intern(str(d["content_id"])),
        timestamp=float(d["timestamp"]),
        duration=None if d.get("duration") is None else float(d["duration"]),
        intensity=1.0 if d.get("intensity") is None else float(d["intensity"]),
        signal_id=None if d.get("signal_id") is None else str(d["signal_id"]),
        metadata=dict(d.get("metadata") or {}),
    )


def encode_signal(s: Signal) -> bytes:
    return orjson.dumps(signal_to_dict(s))


def decode_signal(raw: bytes | str) -> Signal:
    """Raises `ValueError` for anything that is not an encoded signal."""
    return _decoded(raw, signal_from_dict)


def signal_to_row(s: Signal) -> tuple:
    meta = orjson.dumps(s.metadata) if s.metadata else None
    return (s.signal_id, s.user_id, s.content_id, s.signal_type, s.timestamp, s.duration, s.intensity, meta)


def signal_from_row(row: tuple) -> Signal:
    sid, user, content, stype, ts, duration, intensity, meta = row
    return Signal(user_id=intern(user), signal_type=intern(stype), content_id=intern(content), timestamp=ts, duration=duration,
                  intensity=intensity, signal_id=sid, metadata=orjson.loads(meta) if meta else {})


def item_to_dict(i: Item) -> dict[str, Any]:
    return {
        "id": i.id, "type": i.type, "text": i.text, "image_url": i.image_url, "video_url": i.video_url,
        "audio_url": i.audio_url, "author_id": i.author_id, "created_at": i.created_at,
        "tags": list(i.tags), "metadata": i.metadata,
    }


def item_from_dict(d: Mapping[str, Any] | Item) -> Item:
    """Unknown keys are ignored."""
    if isinstance(d, Item):
        return d

    def text(key: str) -> str | None:
        return None if d.get(key) is None else str(d[key])

    return Item(
        id=str(d["id"]),
        type=str(d.get("type") or "text"),
        text=text("text"),
        image_url=text("image_url"),
        video_url=text("video_url"),
        audio_url=text("audio_url"),
        author_id=text("author_id"),
        created_at=None if d.get("created_at") is None else float(d["created_at"]),
        tags=tuple(str(t) for t in d.get("tags") or ()),
        metadata=dict(d.get("metadata") or {}),
    )


def encode_item(i: Item) -> bytes:
    return orjson.dumps(item_to_dict(i))


def decode_item(raw: bytes | str) -> Item:
    """Raises `ValueError` for anything that is not an encoded item."""
    return _decoded(raw, item_from_dict)


def item_to_row(i: Item) -> tuple:
    meta = orjson.dumps(i.metadata) if i.metadata else None
    return (i.id, i.type, i.text, i.image_url, i.video_url, i.audio_url, i.author_id, i.created_at,
            orjson.dumps(list(i.tags)), meta)


def item_from_row(row: tuple) -> Item:
    iid, itype, text, image, video, audio, author, created, tags, meta = row
    return Item(id=iid, type=itype, text=text, image_url=image, video_url=video, audio_url=audio,
                author_id=author, created_at=created, tags=tuple(orjson.loads(tags)),
                metadata=orjson.loads(meta) if meta else {})


def _decoded(raw: bytes | str, build: Callable[[Mapping[str, Any]], T]) -> T:
    try:
        d = orjson.loads(raw)
        if not isinstance(d, dict):
            raise ValueError("not a JSON object")
        return build(d)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"undecodable record: {exc!r}") from None
