"""Catalog content as sparse TF-IDF vectors: what makes a brand-new item scorable before anyone
has touched it.

Tokens are `tag:*`, `author:*`, `type:*` and the words of the item's text; each family has a
weight (tags and author say more than any single word). Used by the LightFM hybrid as item
features and by `AdvancedCollaborativeFiltering` to find a new item's nearest known items.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from overdrive.domain.types import Item
from overdrive.models.collaborative_filtering.matrix import normalize_rows

_WORD = re.compile(r"[a-z][a-z0-9]{2,}")
FAMILY_WEIGHTS: dict[str, float] = {"tag": 1.0, "author": 1.0, "type": 0.3, "word": 0.5}


def item_tokens(item: Item, *, max_words: int = 64) -> list[str]:
    tokens = [f"tag:{t.lower()}" for t in item.tags]
    if item.author_id:
        tokens.append(f"author:{item.author_id}")
    tokens.append(f"type:{item.type}")
    if item.text:
        tokens.extend(f"word:{w}" for w in _WORD.findall(item.text.lower())[:max_words])
    return tokens


class ItemFeaturizer:
    """TF-IDF over item tokens, L2-normalised rows. Fit on the catalog; unseen tokens are dropped."""

    def __init__(
        self, *, vocabulary: Sequence[str] = (), idf: np.ndarray | None = None, min_df: int = 2, max_words: int = 64
    ) -> None:
        self.min_df, self.max_words = min_df, max_words
        self.vocabulary = list(vocabulary)
        self._index = {t: n for n, t in enumerate(self.vocabulary)}
        self.idf = np.zeros(0, dtype=np.float32) if idf is None else np.asarray(idf, dtype=np.float32)

    @property
    def n_features(self) -> int:
        return len(self.vocabulary)

    def fit(self, items: Iterable[Item]) -> ItemFeaturizer:
        items = list(items)
        df: dict[str, int] = {}
        for item in items:
            for tok in set(item_tokens(item, max_words=self.max_words)):
                df[tok] = df.get(tok, 0) + 1
        # Tags/authors/types are kept even when rare: one shared tag is real evidence.
        keep = sorted(t for t, c in df.items() if c >= self.min_df or not t.startswith("word:"))
        n = max(len(items), 1)
        self.vocabulary = keep
        self._index = {t: i for i, t in enumerate(keep)}
        family = np.array([FAMILY_WEIGHTS.get(t.split(":", 1)[0], 1.0) for t in keep], dtype=np.float32)
        counts = np.array([df[t] for t in keep], dtype=np.float32)
        self.idf = (np.log((1.0 + n) / (1.0 + counts)) + 1.0).astype(np.float32) * family
        return self

    def transform(self, items: Sequence[Item | None]) -> sp.csr_matrix:
        """One L2-normalised row per item (an all-zero row for None or featureless items)."""
        data, indices, indptr = [], [], [0]
        for item in items:
            counts: dict[int, float] = {}
            if item is not None:
                for tok in item_tokens(item):
                    j = self._index.get(tok)
                    if j is not None:
                        counts[j] = counts.get(j, 0.0) + 1.0
            for j, c in sorted(counts.items()):
                indices.append(j)
                data.append((1.0 + np.log(c)) * self.idf[j])
            indptr.append(len(indices))
        m = sp.csr_matrix((np.array(data, dtype=np.float32), np.array(indices, dtype=np.int32), indptr),
                          shape=(len(items), self.n_features))
        return normalize_rows(m, norm="l2").astype(np.float32) if self.n_features else m

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"vocabulary": np.array(self.vocabulary, dtype=str), "idf": self.idf}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> ItemFeaturizer:
        return cls(vocabulary=[str(t) for t in arrays["vocabulary"]], idf=arrays["idf"])


def nearest_items(known: sp.csr_matrix, queries: sp.csr_matrix, *, k: int = 20) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each query row, the k known rows with the highest positive cosine: (indices, sims)."""
    sims = (queries @ known.T).tocsr()
    out = []
    for r in range(sims.shape[0]):
        s, e = sims.indptr[r], sims.indptr[r + 1]
        vals, cols = sims.data[s:e], sims.indices[s:e]
        pos = vals > 0
        vals, cols = vals[pos], cols[pos]
        if vals.size > k:
            top = np.argpartition(-vals, k - 1)[:k]
            vals, cols = vals[top], cols[top]
        out.append((cols.astype(np.int64), vals.astype(np.float32)))
    return out
