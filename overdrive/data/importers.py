"""Readers that turn public datasets and plain files into the API's wire format, row by row.

Every reader is a generator of JSON-ready dicts for POST /items/batch or /signals/batch, so a file
of any size streams through in constant memory. A bad row raises `ValueError` naming the file,
the line and the field. A row without a `signal_id` gets a deterministic one, so sending a file
twice (or retrying a batch) never counts a signal twice.

Generic files (CSV with a header row, or JSON Lines, one object per line):

- items: `id` (required), `text` (or `title`), `type` (text|image|video|audio|mixed, default
  text), `author_id`, `created_at` (epoch seconds or ISO 8601), `tags` (CSV: `a|b|c`; JSONL: a
  list), `image_url`, `video_url`, `audio_url`, `metadata` (CSV: a JSON object). Other columns go
  into `metadata`.
- interactions: `user_id`, `content_id` (or `item_id`) (both required), `signal_type` (default
  `view`, or mapped from a numeric `rating` like MovieLens), `timestamp`, `duration`, `intensity`,
  `signal_id`, `metadata`. Other columns go into `metadata`.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
import time
from itertools import islice
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from overdrive.domain.times import epoch_seconds
from overdrive.domain.types import CONTENT_TYPES, SIGNAL_TYPES

MAX_ID_CHARS = 256
ML_100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)
_ITEM_FIELDS = ("id", "text", "type", "author_id", "created_at", "tags", "image_url", "video_url", "audio_url", "metadata")
_SIGNAL_FIELDS = ("user_id", "content_id", "signal_type", "timestamp", "duration", "intensity", "signal_id", "metadata")
_YEAR_IN_TITLE = re.compile(r"\((\d{4})\)\s*$")


@dataclass(frozen=True, slots=True)
class Dataset:
    """A source of items and signals; each call of `items()` / `signals()` is a fresh pass."""

    name: str
    items: Callable[[], Iterator[dict]]
    signals: Callable[[], Iterator[dict]]


def batches(rows: Iterable[dict], size: int) -> Iterator[list[dict]]:
    """Rows in lists of at most `size`, streaming (one list held at a time)."""
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch


def rebased(dataset: Dataset, *, end: float | None = None) -> Dataset:
    """The dataset shifted in time so its newest signal lands at `end` (default: now).

    Historical logs (MovieLens is from the 1990s) decay to nothing under live half-lives; shifted,
    they look like recent traffic. Item creation times move by the same offset, capped at `end`.
    Costs one extra pass over the signals to find the newest timestamp.
    """
    newest = max((s["timestamp"] for s in dataset.signals() if "timestamp" in s), default=None)
    if newest is None:
        return dataset
    target = time.time() if end is None else end
    delta = target - newest

    def items() -> Iterator[dict]:
        for item in dataset.items():
            if "created_at" in item:
                item = {**item, "created_at": min(max(item["created_at"] + delta, 0.0), target)}
            yield item

    def signals() -> Iterator[dict]:
        for s in dataset.signals():
            yield {**s, "timestamp": s["timestamp"] + delta} if "timestamp" in s else s

    return Dataset(dataset.name, items, signals)


def rating_signal(rating: float) -> tuple[str, float]:
    """A 1-5 star rating as (signal_type, intensity): >= 4 like, >= 3 view, below dislike.

    Intensity is the strength of the opinion: 4★ like 0.8, 5★ like 1.0; 2★ dislike 0.8, 1★ 1.0.
    """
    if rating >= 4:
        return "like", min(rating / 5.0, 1.0)
    if rating >= 3:
        return "view", 1.0
    return "dislike", min((6.0 - rating) / 5.0, 1.0)


# ---------------------------------------------------------------- MovieLens


def load_movielens(path: str | Path) -> Dataset:
    """MovieLens in whichever layout the folder holds: 100K (`u.data`, `u.item`), 1M/10M
    (`ratings.dat`, `movies.dat`) or latest (`ratings.csv`, `movies.csv`). A folder holding just
    one such folder (as the zip unpacks) works too."""
    root = Path(path)
    for folder in (root, *sorted(p for p in root.iterdir() if p.is_dir())) if root.is_dir() else ():
        if (folder / "u.data").is_file():
            return Dataset(
                "movielens-100k",
                lambda f=folder: read_ml100k_items(f / "u.item"),
                lambda f=folder: read_ml100k_ratings(f / "u.data"),
            )
        if (folder / "ratings.dat").is_file():
            return Dataset(
                "movielens-1m",
                lambda f=folder: read_ml1m_items(f / "movies.dat"),
                lambda f=folder: read_ml1m_ratings(f / "ratings.dat"),
            )
        if (folder / "ratings.csv").is_file() and (folder / "movies.csv").is_file():
            return Dataset(
                "movielens-latest",
                lambda f=folder: read_ml_latest_items(f / "movies.csv"),
                lambda f=folder: read_ml_latest_ratings(f / "ratings.csv"),
            )
    raise ValueError(f"{root}: no MovieLens files found (u.data, ratings.dat or ratings.csv + movies.csv)")


def read_ml100k_items(path: str | Path) -> Iterator[dict]:
    """`u.item`: id|title|release date|video release date|IMDb URL|19 genre flags (latin-1)."""
    path = Path(path)
    for lineno, parts in _fields(path, "|", 5 + len(ML_100K_GENRES), last="genres"):
        flags = parts[5:]
        if any(f not in ("0", "1") for f in flags):
            raise _bad(path, lineno, "genres", "genre flags must be 0 or 1")
        item: dict[str, Any] = {
            "id": _id(parts[0], path, lineno, "movie id"),
            "type": "video",
            "text": parts[1],
            "tags": [g for g, f in zip(ML_100K_GENRES, flags) if f == "1" and g != "unknown"],
        }
        meta = {}
        if parts[2]:
            try:
                released = datetime.strptime(parts[2], "%d-%b-%Y").replace(tzinfo=timezone.utc)
            except ValueError:
                raise _bad(path, lineno, "release date", f"expected DD-Mon-YYYY, got {parts[2]!r}") from None
            item["created_at"] = released.timestamp()
            meta["release_date"] = parts[2]
        if parts[4]:
            meta["imdb_url"] = parts[4]
        if meta:
            item["metadata"] = meta
        yield item


def read_ml100k_ratings(path: str | Path) -> Iterator[dict]:
    """`u.data`: user id, item id, rating, timestamp, tab-separated."""
    path = Path(path)
    for lineno, parts in _fields(path, "\t", 4, last="timestamp"):
        yield _rating_row(path, lineno, *parts)


def read_ml1m_items(path: str | Path) -> Iterator[dict]:
    """`movies.dat`: MovieID::Title (Year)::Genre|Genre (latin-1)."""
    path = Path(path)
    for lineno, parts in _fields(path, "::", 3, last="genres"):
        yield _movie(path, lineno, *parts)


def read_ml1m_ratings(path: str | Path) -> Iterator[dict]:
    """`ratings.dat`: UserID::MovieID::Rating::Timestamp."""
    path = Path(path)
    for lineno, parts in _fields(path, "::", 4, last="timestamp"):
        yield _rating_row(path, lineno, *parts)


def read_ml_latest_items(path: str | Path) -> Iterator[dict]:
    """`movies.csv`: movieId,title,genres with a header (UTF-8)."""
    path = Path(path)
    for lineno, row in _csv_rows(path, required=("movieId", "title", "genres")):
        yield _movie(path, lineno, row["movieId"], row["title"], row["genres"])


def read_ml_latest_ratings(path: str | Path) -> Iterator[dict]:
    """`ratings.csv`: userId,movieId,rating,timestamp with a header; half-star ratings."""
    path = Path(path)
    for lineno, row in _csv_rows(path, required=("userId", "movieId", "rating", "timestamp")):
        yield _rating_row(path, lineno, row["userId"], row["movieId"], row["rating"], row["timestamp"])


def _movie(path: Path, lineno: int, movie_id: str, title: str, genres: str) -> dict:
    item: dict[str, Any] = {
        "id": _id(movie_id, path, lineno, "movie id"),
        "type": "video",
        "text": title.strip(),
        "tags": [g for g in genres.split("|") if g and g != "(no genres listed)"],
    }
    if year := _YEAR_IN_TITLE.search(title):
        released = datetime(int(year.group(1)), 1, 1, tzinfo=timezone.utc)
        item["created_at"] = max(released.timestamp(), 0.0)
        item["metadata"] = {"year": int(year.group(1))}
    return item


def _rating_row(path: Path, lineno: int, user: str, movie: str, rating: str, ts: str) -> dict:
    user, movie = _id(user, path, lineno, "user id"), _id(movie, path, lineno, "item id")
    r = _number(rating, path, lineno, "rating", low=0.0, high=5.0)
    signal_type, intensity = rating_signal(r)
    return {
        "user_id": user,
        "signal_type": signal_type,
        "content_id": movie,
        "timestamp": _timestamp(ts, path, lineno, "timestamp"),
        "intensity": intensity,
        "signal_id": f"ml-{user}-{movie}",
        "metadata": {"rating": int(r) if r.is_integer() else r},
    }


# ---------------------------------------------------------------- generic CSV / JSONL


def load_csv(items: str | Path | None = None, interactions: str | Path | None = None) -> Dataset:
    """Items and interactions from CSV files with header rows; either may be None."""
    return Dataset(
        "csv",
        lambda: read_csv_items(items) if items else iter(()),
        lambda: read_csv_interactions(interactions) if interactions else iter(()),
    )


def load_jsonl(items: str | Path | None = None, interactions: str | Path | None = None) -> Dataset:
    """Items and interactions from JSON Lines files; either may be None."""
    return Dataset(
        "jsonl",
        lambda: read_jsonl_items(items) if items else iter(()),
        lambda: read_jsonl_interactions(interactions) if interactions else iter(()),
    )


def read_csv_items(path: str | Path) -> Iterator[dict]:
    path = Path(path)
    for lineno, row in _csv_rows(path, required=("id",)):
        yield _item(path, lineno, {k: v for k, v in row.items() if v != ""}, tags_from_text=True)


def read_csv_interactions(path: str | Path) -> Iterator[dict]:
    path = Path(path)
    now = time.time()
    for lineno, row in _csv_rows(path, required=("user_id",), any_of=("content_id", "item_id")):
        yield _interaction(path, lineno, {k: v for k, v in row.items() if v != ""}, now)


def read_jsonl_items(path: str | Path) -> Iterator[dict]:
    path = Path(path)
    for lineno, obj in _jsonl_rows(path):
        yield _item(path, lineno, {k: v for k, v in obj.items() if v is not None}, tags_from_text=False)


def read_jsonl_interactions(path: str | Path) -> Iterator[dict]:
    path = Path(path)
    now = time.time()
    for lineno, obj in _jsonl_rows(path):
        yield _interaction(path, lineno, {k: v for k, v in obj.items() if v is not None}, now)


def _item(path: Path, lineno: int, row: dict[str, Any], *, tags_from_text: bool) -> dict:
    if "text" not in row and "title" in row:
        row["text"] = row.pop("title")
    out: dict[str, Any] = {"id": _id(row.get("id"), path, lineno, "id")}
    kind = row.get("type", "text")
    if kind not in CONTENT_TYPES:
        raise _bad(path, lineno, "type", f"must be one of {', '.join(CONTENT_TYPES)}, got {kind!r}")
    out["type"] = kind
    for name in ("text", "image_url", "video_url", "audio_url"):
        if name in row:
            out[name] = _str(row[name], path, lineno, name)
    if "author_id" in row:
        out["author_id"] = _id(row["author_id"], path, lineno, "author_id")
    if "created_at" in row:
        out["created_at"] = _timestamp(row["created_at"], path, lineno, "created_at")
    if "tags" in row:
        out["tags"] = _tags(row["tags"], path, lineno, split=tags_from_text)
    meta = _metadata(row, _ITEM_FIELDS + ("title",), path, lineno)
    if meta:
        out["metadata"] = meta
    return out


def _interaction(path: Path, lineno: int, row: dict[str, Any], now: float) -> dict:
    if "content_id" not in row and "item_id" in row:
        row["content_id"] = row.pop("item_id")
    out: dict[str, Any] = {
        "user_id": _id(row.get("user_id"), path, lineno, "user_id"),
        "signal_type": "view",
        "content_id": _id(row.get("content_id"), path, lineno, "content_id"),
    }
    meta = _metadata(row, _SIGNAL_FIELDS + ("rating", "item_id"), path, lineno)
    if "rating" in row:
        rating = _number(row["rating"], path, lineno, "rating", low=0.0, high=5.0)
        out["signal_type"], out["intensity"] = rating_signal(rating)
        meta["rating"] = int(rating) if rating.is_integer() else rating
    if "signal_type" in row:
        if row["signal_type"] not in SIGNAL_TYPES:
            raise _bad(path, lineno, "signal_type", f"must be one of {', '.join(SIGNAL_TYPES)}, got {row['signal_type']!r}")
        out["signal_type"] = row["signal_type"]
    if "timestamp" in row:
        out["timestamp"] = _timestamp(row["timestamp"], path, lineno, "timestamp", now)
    if "duration" in row:
        out["duration"] = _number(row["duration"], path, lineno, "duration", low=0.0, high=1e7)
    if "intensity" in row:
        out["intensity"] = _number(row["intensity"], path, lineno, "intensity", low=0.0, high=100.0)
    if "signal_id" in row:
        out["signal_id"] = _id(row["signal_id"], path, lineno, "signal_id")
    else:
        # Same user, item, type and time → same id; without a time, the line number tells rows apart.
        key = "\x1f".join((out["user_id"], out["content_id"], out["signal_type"], repr(out.get("timestamp", f"line{lineno}"))))
        out["signal_id"] = "row-" + hashlib.blake2b(key.encode(), digest_size=12).hexdigest()
    if meta:
        out["metadata"] = meta
    return out


# ---------------------------------------------------------------- field checks


def _bad(path: Path, lineno: int, field: str, problem: str) -> ValueError:
    return ValueError(f"{path}, line {lineno}, field {field!r}: {problem}")


def _fields(path: Path, sep: str, count: int, *, last: str) -> Iterator[tuple[int, list[str]]]:
    """MovieLens' latin-1 lines split on `sep`; a short or long row names its `last` field."""
    shown = "tab" if sep == "\t" else f"'{sep}'"
    for lineno, line in _lines(path, "latin-1"):
        parts = line.split(sep)
        if len(parts) != count:
            raise _bad(path, lineno, last, f"expected {count} {shown}-separated fields, got {len(parts)}")
        yield lineno, parts


def _lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    with path.open(encoding=encoding, newline="") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if line.strip():
                yield lineno, line


def _csv_rows(path: Path, *, required: tuple[str, ...], any_of: tuple[str, ...] = ()) -> Iterator[tuple[int, dict]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        for name in required:
            if name not in header:
                raise _bad(path, 1, name, f"missing column; the header has {header}")
        if any_of and not any(name in header for name in any_of):
            raise _bad(path, 1, any_of[0], f"missing column (or {' / '.join(any_of[1:])}); the header has {header}")
        for row in reader:
            if None in row:
                raise _bad(path, reader.line_num, header[-1], f"more fields than the {len(header)} columns of the header")
            yield reader.line_num, {k: (v.strip() if v is not None else "") for k, v in row.items()}


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict]]:
    with path.open("rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise _bad(path, lineno, "line", f"not valid JSON ({exc})") from None
            if not isinstance(obj, dict):
                raise _bad(path, lineno, "line", "expected a JSON object")
            yield lineno, obj


def _id(value: Any, path: Path, lineno: int, field: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise _bad(path, lineno, field, "required, as non-empty text")
    value = value.strip()
    if len(value) > MAX_ID_CHARS:
        raise _bad(path, lineno, field, f"longer than {MAX_ID_CHARS} characters")
    return value


def _str(value: Any, path: Path, lineno: int, field: str) -> str:
    if not isinstance(value, str):
        raise _bad(path, lineno, field, f"expected text, got {type(value).__name__}")
    return value


def _number(value: Any, path: Path, lineno: int, field: str, *, low: float, high: float) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        x = float(value)
    except (TypeError, ValueError):
        raise _bad(path, lineno, field, f"expected a number, got {value!r}") from None
    if not (math.isfinite(x) and low <= x <= high):
        raise _bad(path, lineno, field, f"must be between {low:g} and {high:g}, got {value!r}")
    return x


def _timestamp(value: Any, path: Path, lineno: int, field: str, now: float | None = None) -> float:
    try:
        return epoch_seconds(value, now=now)
    except ValueError as exc:
        raise _bad(path, lineno, field, f"{exc}, got {value!r}") from None


def _tags(value: Any, path: Path, lineno: int, *, split: bool) -> list[str]:
    if isinstance(value, str) and split:
        value = value.split("|")
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise _bad(path, lineno, "tags", "expected a list of text" if not split else "expected text like a|b|c")
    tags = [t.strip() for t in value if t.strip()]
    if len(tags) > 100 or any(len(t) > 128 for t in tags):
        raise _bad(path, lineno, "tags", "at most 100 tags of at most 128 characters")
    return tags


def _metadata(row: dict[str, Any], known: tuple[str, ...], path: Path, lineno: int) -> dict[str, Any]:
    """The row's `metadata` object (a JSON object in CSV) plus every column not otherwise known."""
    meta = row.get("metadata", {})
    if isinstance(meta, str):
        try:
            meta = orjson.loads(meta)
        except orjson.JSONDecodeError:
            raise _bad(path, lineno, "metadata", "expected a JSON object") from None
    if not isinstance(meta, dict):
        raise _bad(path, lineno, "metadata", "expected a JSON object")
    extra = {k: v for k, v in row.items() if k not in known}
    return {**meta, **extra} if extra else dict(meta)
