"""Methods registered by name and imported lazily, so `implicit`/`lightfm` load only when used."""

from __future__ import annotations

import importlib
import inspect
import os
from pathlib import Path
from typing import Any

from overdrive.models.collaborative_filtering.base import BaseRecommender, saved_meta

_PKG = "overdrive.models.collaborative_filtering"
# name → (module, class, default keyword arguments)
METHODS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "popularity": ("popularity", "PopularityRecommender", {}),
    "nmf": ("nmf", "NMFRecommender", {}),
    "item_cosine": ("neighbourhood", "NeighbourhoodRecommender", {"kind": "item", "weighting": "cosine"}),
    "item_bm25": ("neighbourhood", "NeighbourhoodRecommender", {"kind": "item", "weighting": "bm25"}),
    "user_cosine": ("neighbourhood", "NeighbourhoodRecommender", {"kind": "user", "weighting": "cosine"}),
    "user_bm25": ("neighbourhood", "NeighbourhoodRecommender", {"kind": "user", "weighting": "bm25"}),
    "als": ("implicit_models", "ALSRecommender", {}),
    "bpr": ("implicit_models", "BPRRecommender", {}),
    "lightfm": ("lightfm_hybrid", "LightFMRecommender", {}),
    "ease": ("ease", "EASERecommender", {}),
    # A module path starting with "overdrive." is absolute: the two-tower member lives in its own package.
    "two_tower": ("overdrive.models.two_tower.recommender", "TwoTowerRecommender", {}),
}
DEFAULT_METHODS: tuple[str, ...] = tuple(m for m in METHODS if m != "two_tower")


def _module(module: str) -> str:
    return module if module.startswith("overdrive.") else f"{_PKG}.{module}"


def recommender_class(class_name: str) -> type[BaseRecommender]:
    """The class whose `name` (the saved `class` field) is `class_name`."""
    for module, cls_name, _ in METHODS.values():
        cls = getattr(importlib.import_module(_module(module)), cls_name)
        if cls.name == class_name:
            return cls
    raise KeyError(f"unknown recommender class {class_name!r}")


def create(method: str, **params: Any) -> BaseRecommender:
    """A fresh, unfitted recommender for `method` (a key of METHODS). Shared settings such as
    n_factors, seed, tune and show_progress are passed only to methods that take them."""
    if method not in METHODS:
        raise KeyError(f"unknown method {method!r}; known: {sorted(METHODS)}")
    module, cls_name, defaults = METHODS[method]
    cls = getattr(importlib.import_module(_module(module)), cls_name)
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {**defaults, **{k: v for k, v in params.items() if k in accepted}}
    return cls(**kwargs)


def load_recommender(path: str | os.PathLike[str]) -> BaseRecommender:
    """A saved model of any registered class (the class its `meta.json` names)."""
    return recommender_class(saved_meta(Path(path))["class"]).load(path)
