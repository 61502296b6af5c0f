"""What the towers read, as fixed-size numpy arrays: item features, signal types, recency buckets.

Item side (`ItemEncoder`, fitted on the catalog at fit time and saved with the model):
- the item id → an id-embedding row; items with no training interactions get row 0 ("no id"),
  the row id dropout trains, so a cold item never carries an untrained random id vector;
- metadata tokens `tag:*`, `author:*`, `type:*` (vocabulary of the fit catalog; unseen tokens
  dropped) → mean of token embeddings;
- one dense vector per content modality (`text`, `image`, `audio`, `video`, ... whatever the fit
  content held), each of the dimension it had at fit time, with a presence mask: any subset of
  modalities per item is normal.
User side: each signal becomes (item, type row, signed strength from `SignalWeighting`, recency
bucket of its age, position bucket of its rank in the newest-first list).
"""

from __future__ import annotations

import logging
import math
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from overdrive.domain.types import Item

log = logging.getLogger(__name__)

MAX_TOKENS = 16  # metadata tokens per item (tags first, then author and type)
N_RECENCY = 41  # 0: unknown age; 1..40: half-log2 steps of the age in minutes (40 ≈ 2 years)
N_POSITION = 18  # 0: unknown rank; 1..17: half-log2 steps of the rank in the newest-first list
_WORD = re.compile(r"[a-z][a-z0-9']+")


def item_tokens(item: Item | None) -> list[str]:
    """`tag:*` (lower-cased), `author:*`, `type:*` — the metadata the item tower reads."""
    if item is None:
        return []
    tokens = [f"tag:{t.lower()}" for t in item.tags]
    if item.author_id:
        tokens.append(f"author:{item.author_id}")
    tokens.append(f"type:{item.type}")
    return tokens[-MAX_TOKENS:] if len(tokens) > MAX_TOKENS else tokens


def recency_bucket(age_seconds: np.ndarray | float) -> np.ndarray:
    """Half-log2 buckets of an age in minutes: 1 for under a minute, ~12 an hour, ~22 a day,
    ~31 a month; 0 is reserved for "unknown" (NaN)."""
    age = np.asarray(age_seconds, dtype=np.float64)
    minutes = np.maximum(np.nan_to_num(age, nan=0.0), 0.0) / 60.0
    b = 1 + np.minimum(np.floor(2.0 * np.log2(1.0 + minutes)), N_RECENCY - 2)
    return np.where(np.isnan(age), 0, b).astype(np.int64)


def position_bucket(rank: np.ndarray | int) -> np.ndarray:
    """Half-log2 buckets of a 0-based rank in the newest-first list (0 reserved for unknown)."""
    r = np.maximum(np.asarray(rank, dtype=np.float64), 0.0)
    return (1 + np.minimum(np.floor(2.0 * np.log2(1.0 + r)), N_POSITION - 2)).astype(np.int64)


_RECENCY_EDGES = [60.0 * (2.0 ** (b / 2.0) - 1.0) for b in range(1, N_RECENCY - 1)]
_POSITION_EDGES = [2.0 ** (b / 2.0) - 1.0 for b in range(1, N_POSITION - 1)]


def recency_bucket_scalar(age_seconds: float) -> int:
    """`recency_bucket` for one age, without numpy (the user-tower hot path)."""
    if math.isnan(age_seconds):
        return 0
    import bisect

    return 1 + bisect.bisect_right(_RECENCY_EDGES, age_seconds)


def position_bucket_scalar(rank: int) -> int:
    import bisect

    return 1 + bisect.bisect_right(_POSITION_EDGES, rank)


def hashed_text_vector(texts: Sequence[str | None], *, dim: int = 256) -> np.ndarray:
    """Signed feature hashing of lower-cased words into `dim` columns, log term frequency,
    L2-normalised rows (all-zero for empty text). The ensemble member's text "modality": code in
    overdrive.models may not import overdrive.content's encoders."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in _WORD.findall((text or "").lower()):
            h = zlib.crc32(word.encode())
            out[row, h % dim] += 1.0 if (h >> 31) & 1 else -1.0
    out = np.sign(out) * np.log1p(np.abs(out))
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)


class ItemEncoder:
    """Fitted vocabularies of the item tower: id rows, metadata tokens and modality dimensions."""

    def __init__(self, *, item_ids: Sequence[str] = (), token_vocab: Sequence[str] = (),
                 modalities: Mapping[str, int] | None = None) -> None:
        self.item_ids = list(item_ids)  # id-embedding rows 1..n (row 0: no id)
        self.item_row = {i: n + 1 for n, i in enumerate(self.item_ids)}
        self.token_vocab = list(token_vocab)  # token rows 1..n (row 0: padding)
        self.token_row = {t: n + 1 for n, t in enumerate(self.token_vocab)}
        self.modalities: dict[str, int] = dict(modalities or {})  # name -> dim, in tower order

    @classmethod
    def fit(cls, *, id_items: Iterable[str], catalog: Iterable[Item],
            content: Mapping[str, Mapping[str, np.ndarray]]) -> ItemEncoder:
        tokens: dict[str, None] = {}
        for item in catalog:
            tokens.update(dict.fromkeys(item_tokens(item)))
        dims: dict[str, int] = {}
        for mods in content.values():
            for name, vec in mods.items():
                if vec is not None and name not in dims:
                    dims[name] = int(np.asarray(vec).reshape(-1).shape[0])
        order = sorted(dims, key=lambda m: (("text", "image", "video", "audio").index(m)
                                             if m in ("text", "image", "video", "audio") else 4, m))
        return cls(item_ids=list(id_items), token_vocab=sorted(tokens), modalities={m: dims[m] for m in order})

    @property
    def n_id_rows(self) -> int:
        return len(self.item_ids) + 1

    @property
    def n_token_rows(self) -> int:
        return len(self.token_vocab) + 1

    def encode(self, item_ids: Sequence[str], items: Mapping[str, Item],
               content: Mapping[str, Mapping[str, np.ndarray]], *, use_ids: bool = True) -> dict[str, np.ndarray]:
        """Arrays for the item tower: `ids` (n,), `tokens`/`token_w` (n, MAX_TOKENS), one
        `m:<modality>` (n, dim) per fitted modality and `mask` (n, 1 + n_modalities): metadata,
        then each modality, 1.0 where present. A vector of the wrong size counts as missing."""
        n = len(item_ids)
        ids = np.zeros(n, dtype=np.int64)
        if use_ids:
            ids[:] = [self.item_row.get(i, 0) for i in item_ids]
        tokens = np.zeros((n, MAX_TOKENS), dtype=np.int64)
        token_w = np.zeros((n, MAX_TOKENS), dtype=np.float32)
        names = list(self.modalities)
        mask = np.zeros((n, 1 + len(names)), dtype=np.float32)
        modal = {m: np.zeros((n, d), dtype=np.float32) for m, d in self.modalities.items()}
        wrong: set[str] = set()
        for r, item_id in enumerate(item_ids):
            rows = [j for j in map(self.token_row.get, item_tokens(items.get(item_id))) if j]
            if rows:
                tokens[r, : len(rows)] = rows
                token_w[r, : len(rows)] = 1.0 / len(rows)
                mask[r, 0] = 1.0
            mods = content.get(item_id)
            if not mods:
                continue
            for k, m in enumerate(names):
                vec = mods.get(m)
                if vec is None:
                    continue
                vec = np.asarray(vec, dtype=np.float32).reshape(-1)
                if vec.shape[0] != self.modalities[m] or not np.isfinite(vec).all():
                    wrong.add(m)
                    continue
                modal[m][r] = vec
                mask[r, 1 + k] = 1.0
        if wrong:
            log.warning("two-tower: %s vectors of an unexpected size or non-finite were ignored", sorted(wrong))
        out = {"ids": ids, "tokens": tokens, "token_w": token_w, "mask": mask}
        out.update({f"m:{m}": v for m, v in modal.items()})
        return out

    def to_json(self) -> dict:
        return {"item_ids": self.item_ids, "token_vocab": self.token_vocab, "modalities": self.modalities}

    @classmethod
    def from_json(cls, data: Mapping) -> ItemEncoder:
        return cls(item_ids=data["item_ids"], token_vocab=data["token_vocab"], modalities=data["modalities"])


def strength_scale(strength: np.ndarray) -> np.ndarray:
    """log1p(|strength|): how much one signal weighs in the pooled sequence (sign kept apart)."""
    return np.log1p(np.abs(np.asarray(strength, dtype=np.float32)))


def finite_or(value: float | None, default: float) -> float:
    return default if value is None or not math.isfinite(value) else float(value)
