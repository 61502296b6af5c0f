"""Hyperparameters a method chose on validation, remembered with the size of the data it chose
them on: a retrain on data of much the same size (users, items and interactions each within a
quarter) adopts them instead of searching again — the search fits each member once per grid
entry, most of a retrain's time. Data that grew or shrank past that is searched afresh.

Kept as one JSON file (written atomically) next to the model's artifacts.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from overdrive.models.collaborative_filtering.matrix import InteractionMatrix

log = logging.getLogger(__name__)
_SIMILAR = 1.25  # the largest ratio between two sizes that still counts as the same data size


@dataclass(frozen=True, slots=True)
class DataSize:
    users: int
    items: int
    interactions: int

    @classmethod
    def of(cls, matrix: InteractionMatrix) -> DataSize:
        users, items = matrix.shape
        return cls(users=int(users), items=int(items), interactions=int(matrix.nnz))

    def similar(self, other: DataSize) -> bool:
        return all(min(a, b) > 0 and max(a, b) / min(a, b) <= _SIMILAR
                   for a, b in ((self.users, other.users), (self.items, other.items),
                                (self.interactions, other.interactions)))


@dataclass(frozen=True, slots=True)
class Remembered:
    class_name: str  # the recommender class (`recommender_class`)
    config: dict[str, Any]  # its constructor arguments, tuning off (`frozen_config`)
    tuning: dict[str, Any]  # what the search reported (chosen params, holdout NDCG)
    size: DataSize  # the data it searched on


class TuningMemo:
    def __init__(self, path: Path) -> None:
        self._path = path

    def recall(self, method: str, size: DataSize) -> Remembered | None:
        """What `method` chose on data of a similar size, if it was remembered."""
        entry = self._read().get(method)
        if not isinstance(entry, dict):
            return None
        try:
            remembered = Remembered(class_name=entry["class"], config=dict(entry["config"]),
                                    tuning=dict(entry["tuning"]), size=DataSize(**entry["size"]))
        except (KeyError, TypeError, ValueError):
            log.warning("ignoring an unreadable tuning memo entry for %s in %s", method, self._path)
            return None
        return remembered if remembered.size.similar(size) else None

    def remember(self, method: str, remembered: Remembered) -> None:
        entries = self._read()
        entries[method] = {"class": remembered.class_name, "config": remembered.config,
                           "tuning": remembered.tuning, "size": asdict(remembered.size)}
        try:
            text = json.dumps(entries, indent=1, sort_keys=True)
        except (TypeError, ValueError):  # a configuration JSON cannot hold: searched again next time
            log.info("not remembering %s's tuning: its configuration is not JSON", method)
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_name(self._path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self._path)

    def _read(self) -> dict[str, Any]:
        try:
            entries = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            log.warning("ignoring an unreadable tuning memo at %s", self._path)
            return {}
        return entries if isinstance(entries, dict) else {}
