"""`UsearchIndex`: HNSW vector search over item embeddings (usearch), persistent in a folder.

Why usearch: it is the one of the three candidates that does everything the seam needs out of
the box — incremental `add`, real `remove` (and re-add under the same key), `get` of a stored
vector, save/load (or memory-mapped `view`) — and ships prebuilt wheels with SIMD kernels, so
nothing compiles at install. hnswlib has no wheels for current Pythons (it builds from source,
needing a compiler on every machine) and is no longer released; faiss's HNSW cannot remove
vectors (only flat indexes can), so deletes would mean rebuilds.

Item ids are strings; usearch keys are integers, so a id→key map is kept beside the index.
`save` writes a new generation (``index-<g>.usearch`` + ``keys-<g>.json``) and then atomically
replaces ``MANIFEST.json`` to point at it, so a crash mid-save leaves the previous generation
loadable; older generations are deleted afterwards. Vectors are L2-normalised on the way in
and the metric is cosine; scores are cosine similarities in [-1, 1]. All methods are
thread-safe (one lock; searches are sub-millisecond at catalogue sizes).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Collection, Sequence
from itertools import compress
from pathlib import Path

import numpy as np

from overdrive.domain.item_numbers import NO_NUMBER, ItemColumn, item_numbers

log = logging.getLogger(__name__)

_MANIFEST = "MANIFEST.json"
_CACHED_ROWS = 100_000  # vectors kept in memory for rows/get_many (ITEM_EMBEDDING_DIM floats each)


def _onnxruntime_first() -> None:
    """Load onnxruntime (when installed) before usearch: the other order crashes the process in
    onnxruntime's native initialisation (seen with usearch 2.26 and onnxruntime 1.32)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        pass


class UsearchIndex:
    """Persistent cosine-similarity HNSW index keyed by item id (see module docstring)."""

    def __init__(
        self,
        *,
        dim: int,
        path: Path | str | None = None,
        connectivity: int = 16,
        expansion_add: int = 128,
        expansion_search: int = 64,
        autosave_every: int | None = None,
        cached_rows: int = _CACHED_ROWS,
    ) -> None:
        _onnxruntime_first()
        from usearch.index import Index

        if dim < 1:
            raise ValueError("dim must be >= 1")
        self._dim = dim
        self._path = Path(path) if path is not None else None
        self._lock = threading.RLock()
        self._make = lambda: Index(
            ndim=dim, metric="cos", dtype="f32", connectivity=connectivity,
            expansion_add=expansion_add, expansion_search=expansion_search,
        )
        self._index = self._make()
        # Recently read vectors: every ranking reads its candidates' (usearch's get costs more).
        self._rows = _RowCache(dim, cached_rows)
        self._keys: dict[str, int] = {}
        self._ids: dict[int, str] = {}
        self._next_key = 0
        self._generation = 0
        self._dirty = 0
        self._autosave_every = autosave_every
        if self._path is not None and (self._path / _MANIFEST).is_file():
            self._load()

    @property
    def dim(self) -> int:
        return self._dim

    def upsert(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add or replace vectors; all-zero rows remove the id instead (nothing to compare)."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if vectors.shape != (len(ids), self._dim):
            raise ValueError(f"expected vectors of shape ({len(ids)}, {self._dim}), got {vectors.shape}")
        latest = {item_id: row for row, item_id in enumerate(ids)}  # a repeated id: last row wins
        norms = np.linalg.norm(vectors, axis=1)
        with self._lock:
            replaced = [self._keys[i] for i in latest if i in self._keys]
            if replaced:
                self._index.remove(np.array(replaced, dtype=np.uint64))
            add_keys, add_rows = [], []
            for item_id, row in latest.items():
                if norms[row] == 0 or not np.isfinite(norms[row]):
                    self._forget(item_id)
                    continue
                key = self._keys.get(item_id)
                if key is None:
                    key = self._next_key
                    self._next_key += 1
                    self._keys[item_id], self._ids[key] = key, item_id
                add_keys.append(key)
                add_rows.append(row)
            if add_keys:
                unit = vectors[add_rows] / norms[add_rows, None]
                self._index.add(np.array(add_keys, dtype=np.uint64), unit)
                for key in add_keys:
                    self._rows.pop(self._ids[key])
            self._touch(len(latest))

    def remove(self, item_id: str) -> bool:
        with self._lock:
            key = self._keys.get(item_id)
            if key is None:
                return False
            self._index.remove(key)
            self._forget(item_id)
            self._touch(1)
            return True

    def search(self, vector: np.ndarray, k: int, *, exclude: Collection[str] = ()) -> list[tuple[str, float]]:
        """Up to `k` (id, cosine) pairs, most similar first, none of them in `exclude`."""
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape[0] != self._dim:
            raise ValueError(f"expected a vector of {self._dim} dimensions, got {query.shape[0]}")
        if k <= 0 or not np.any(query):
            return []
        exclude = set(exclude)
        with self._lock:
            n = len(self._keys)
            if n == 0:
                return []
            want = min(n, k + len(exclude))
            # HNSW may miss a few points; when asked for a large share of a small index, scan it.
            exact = n <= 2_000 or want * 8 >= n
            matches = self._index.search(query, want, exact=exact)
            keys, dists = np.asarray(matches.keys).reshape(-1), np.asarray(matches.distances).reshape(-1)
            out = []
            for key, dist in zip(keys.tolist(), dists.tolist()):
                item_id = self._ids.get(int(key))
                if item_id is None or item_id in exclude:
                    continue
                out.append((item_id, float(1.0 - dist)))
                if len(out) == k:
                    break
            return out

    def get(self, item_id: str) -> np.ndarray | None:
        with self._lock:
            key = self._keys.get(item_id)
            if key is None:
                return None
            vec = self._index.get(key)
        return None if vec is None else np.asarray(vec, dtype=np.float32).reshape(-1)

    def get_many(self, item_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors of the known ids among `item_ids`."""
        ids = list(dict.fromkeys(item_ids))
        with self._lock:
            matrix = self.rows(ids)
            return {i: matrix[n] for n, i in enumerate(ids) if i in self._keys}

    def rows(self, item_ids: Sequence[str]) -> np.ndarray:
        """The stored vectors of `item_ids` as one (n, dim) matrix, a zero row where an id has
        none: cached rows gathered with one index, the rest read in one call to usearch."""
        with self._lock:
            cache = self._rows
            slots = cache.slots(item_ids)
            missing = [i for i in dict.fromkeys(compress(item_ids, slots < 0)) if i in self._keys]
            if missing:
                if not cache.has_room(len(missing)):
                    cache.clear()
                    missing = [i for i in dict.fromkeys(item_ids) if i in self._keys]
                keys = np.array([self._keys[i] for i in missing], dtype=np.uint64)
                cache.add(missing, np.asarray(self._index.get(keys), dtype=np.float32).reshape(len(missing), self._dim))
                slots = cache.slots(item_ids)
            return cache.gather(slots)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._keys)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def save(self) -> None:
        """Persist atomically to `path` (see module docstring); no-op without a path."""
        if self._path is None:
            return
        with self._lock:
            self._path.mkdir(parents=True, exist_ok=True)
            gen = self._generation + 1
            index_name, keys_name = f"index-{gen}.usearch", f"keys-{gen}.json"
            self._index.save(str(self._path / index_name))
            _write_atomic(self._path / keys_name, json.dumps({"ids": self._keys, "next_key": self._next_key}))
            manifest = {"dim": self._dim, "generation": gen, "index": index_name, "keys": keys_name, "count": len(self._keys)}
            _write_atomic(self._path / _MANIFEST, json.dumps(manifest))
            self._generation = gen
            self._dirty = 0
            for old in self._path.iterdir():
                if old.name.startswith(("index-", "keys-")) and old.name not in (index_name, keys_name):
                    old.unlink(missing_ok=True)
        log.debug("saved vector index (%d items, generation %d)", len(self._keys), gen)

    def _load(self) -> None:
        assert self._path is not None
        manifest = json.loads((self._path / _MANIFEST).read_text())
        if int(manifest["dim"]) != self._dim:
            raise ValueError(f"index at {self._path} has dim {manifest['dim']}, expected {self._dim}")
        keys = json.loads((self._path / manifest["keys"]).read_text())
        index = self._make()
        index.load(str(self._path / manifest["index"]))
        self._index = index
        self._rows.clear()
        self._keys = {str(k): int(v) for k, v in keys["ids"].items()}
        self._ids = {v: k for k, v in self._keys.items()}
        self._next_key = int(keys["next_key"])
        self._generation = int(manifest["generation"])
        log.info("loaded vector index from %s (%d items)", self._path, len(self._keys))

    def _forget(self, item_id: str) -> None:
        self._rows.pop(item_id)
        key = self._keys.pop(item_id, None)
        if key is not None:
            self._ids.pop(key, None)

    def _touch(self, changes: int) -> None:
        self._dirty += changes
        if self._autosave_every and self._dirty >= self._autosave_every:
            self.save()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class _RowCache:
    """Vectors in one matrix, each item's row found by its number (`item_numbers`), so a ranking
    gathers its candidates' rows with two numpy indexes. Row 0 stays zero (for ids without a
    vector); when full, the cache starts over."""

    def __init__(self, dim: int, capacity: int) -> None:
        self._dim, self._capacity = dim, capacity
        self.clear()

    def clear(self) -> None:
        self._slot = ItemColumn(-1, np.intp)  # item number -> row
        self._used = 1  # rows taken, the zero row included (a replaced id leaves its old row unused)
        self._matrix = np.zeros((1024, self._dim), dtype=np.float32)

    def slots(self, ids: Sequence[str]) -> np.ndarray:
        """Each id's row, -1 where it is not cached."""
        return self._slot.gather(item_numbers.of(ids))

    def has_room(self, n: int) -> bool:
        return self._used + n <= self._capacity + 1

    def add(self, ids: Sequence[str], rows: np.ndarray) -> None:
        start, end = self._used, self._used + len(ids)
        if end > len(self._matrix):
            grown = np.zeros((max(end, min(2 * len(self._matrix), self._capacity + 1)), self._dim), dtype=np.float32)
            grown[:start] = self._matrix[:start]
            self._matrix = grown
        self._matrix[start:end] = rows
        self._slot.set_many(np.array(item_numbers.numbers(ids), dtype=np.intp), np.arange(start, end))
        self._used = end

    def pop(self, item_id: str) -> None:
        if (number := item_numbers.get(item_id)) != NO_NUMBER:
            self._slot[number] = -1

    def gather(self, slots: np.ndarray) -> np.ndarray:
        return self._matrix[np.maximum(slots, 0)]  # a copy: later writes to the cache cannot reach it
