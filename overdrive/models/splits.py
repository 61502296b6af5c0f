"""Train/test splits over interaction rows (one row per user-item pair), deterministic by seed.

- `stratified_split`: every user keeps round(ratio·n) of their n rows, chosen at random, for
  training — Microsoft Recommenders' `python_stratified_split`, the protocol of its published
  MovieLens tables. A user with a single row keeps it in training.
- `leave_last_out`: each user's latest row is held out (users with at least `min_rows` rows).
Both return sorted row indices (train, test), disjoint and together covering every row.
"""

from __future__ import annotations

import numpy as np


def _group_ranks(users: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows visited in `order` (grouped by user): rank within the user, and the user's count."""
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    counts = np.diff(np.r_[starts, sorted_users.size])
    rank = np.arange(sorted_users.size) - np.repeat(starts, counts)
    return rank, np.repeat(counts, counts)


def stratified_split(users: np.ndarray, *, ratio: float = 0.75, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-user random split: round(ratio·n) of each user's rows to train, the rest to test."""
    if not 0.0 < ratio < 1.0:
        raise ValueError("ratio must be within (0, 1)")
    users = np.asarray(users)
    if users.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    key = np.random.default_rng(seed).random(users.size)
    order = np.lexsort((key, users))
    rank, count = _group_ranks(users, order)
    n_train = np.floor(ratio * count + 0.5)
    in_train = np.zeros(users.size, dtype=bool)
    in_train[order] = rank < n_train
    return np.flatnonzero(in_train), np.flatnonzero(~in_train)


def leave_last_out(users: np.ndarray, timestamps: np.ndarray, *, min_rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Hold out each user's latest row (ties: the later row index), if they have ≥ min_rows rows."""
    users, timestamps = np.asarray(users), np.asarray(timestamps)
    if users.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.lexsort((np.arange(users.size), timestamps, users))
    rank, count = _group_ranks(users, order)
    last = (rank == count - 1) & (count >= min_rows)
    in_test = np.zeros(users.size, dtype=bool)
    in_test[order] = last
    return np.flatnonzero(~in_test), np.flatnonzero(in_test)
