"""Content-hash keyed cache of extracted features, in one SQLite file, so unchanged content is free.

The key (`content_hash`) covers everything extraction reads from an item — type, text, tags and
media references (plus size and mtime for local files) — and the extractor's fingerprint (model
identities, fusion dimension and weights). Change the content or a model and the key changes;
re-ingest the same content, under any item id, and the stored features come back. Media behind
an http(s) URL is keyed on the URL: content replaced at the same URL needs a new URL (or a
`?v=` query) to be re-encoded. Items whose extraction hit an error are not cached, so a fetch
that timed out is retried on the next ingest.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from overdrive.domain.types import Item
from overdrive.content.types import ContentFeatures


def content_hash(item: Item, *, fingerprint: str) -> str:
    """Hex SHA-256 of the item's content and the extractor fingerprint."""
    media = {}
    for name in ("image_url", "video_url", "audio_url"):
        ref = getattr(item, name)
        if ref is None:
            continue
        entry: list = [ref if len(ref) < 4096 else hashlib.sha256(ref.encode()).hexdigest()]
        if not ref.startswith(("data:", "http://", "https://")):
            try:
                st = Path(ref[7:] if ref.startswith("file://") else ref).stat()
                entry += [st.st_size, st.st_mtime_ns]
            except (OSError, ValueError):  # missing, unreadable, or not a path at all (a NUL byte)
                entry.append(None)
        media[name] = entry
    payload = json.dumps(
        {"f": fingerprint, "type": item.type, "text": item.text, "tags": list(item.tags), "media": media},
        sort_keys=True, ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class ContentCache:
    """Persistent map content hash → features (without the item id). Thread-safe."""

    def __init__(self, *, path: Path | str) -> None:
        self._path = str(path)
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS features (hash TEXT PRIMARY KEY, dim INTEGER NOT NULL,"
            " embedding BLOB NOT NULL, modalities TEXT NOT NULL, degraded TEXT NOT NULL,"
            " descriptors TEXT NOT NULL, created REAL NOT NULL)"
        )
        self.hits = 0
        self.misses = 0

    def get_many(self, hashes: Sequence[str]) -> dict[str, ContentFeatures]:
        """Cached features for the hashes present (item_id left empty for the caller to set)."""
        found: dict[str, ContentFeatures] = {}
        unique = list(dict.fromkeys(hashes))
        with self._lock:
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                rows = self._db.execute(
                    f"SELECT hash, dim, embedding, modalities, degraded, descriptors FROM features"
                    f" WHERE hash IN ({','.join('?' * len(chunk))})", chunk,
                ).fetchall()
                for h, dim, blob, mods, deg, desc in rows:
                    found[h] = ContentFeatures(
                        item_id="", content_hash=h,
                        embedding=np.frombuffer(blob, dtype=np.float32, count=dim).copy(),
                        modalities=tuple(json.loads(mods)), degraded=tuple(json.loads(deg)),
                        descriptors=json.loads(desc),
                    )
            self.hits += sum(1 for h in hashes if h in found)
            self.misses += sum(1 for h in hashes if h not in found)
        return found

    def put_many(self, features: Sequence[ContentFeatures]) -> None:
        rows = [
            (f.content_hash, int(f.embedding.size), np.asarray(f.embedding, np.float32).tobytes(),
             json.dumps(list(f.modalities)), json.dumps(list(f.degraded)),
             json.dumps(f.descriptors, default=_jsonable), time.time())
            for f in features if not f.errors
        ]
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR REPLACE INTO features VALUES (?,?,?,?,?,?,?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM features").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _jsonable(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
