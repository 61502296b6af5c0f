"""Versioned model artifacts with an atomically switched `CURRENT` pointer.

Layout under `root` (e.g. MODEL_CACHE_DIR/collaborative):
    versions/<version>/...   one complete, immutable model directory per save
    CURRENT                  the served version's name
A save writes into a temporary directory, fsyncs every file, renames the directory into
`versions/` and only then replaces `CURRENT` (write temp file, fsync, os.replace, fsync the
directory). A crash at any point leaves either the old or the new version current, never a
half-written one; a restart loads `CURRENT` without retraining.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

logger = logging.getLogger(__name__)


class Saveable(Protocol):
    version: str | None

    def save(self, path: str | os.PathLike[str]) -> None: ...


M = TypeVar("M", bound=Saveable)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            _fsync_path(Path(dirpath) / name)
        _fsync_path(Path(dirpath))


class ArtifactStore(Generic[M]):
    """Saves models as new versions and loads the current one. `loader` reads a directory."""

    def __init__(self, *, root: str | os.PathLike[str], loader: Callable[[Path], M], keep: int = 3) -> None:
        if keep < 1:
            raise ValueError("keep must be >= 1")
        self.root = Path(root)
        self._loader = loader
        self._keep = keep

    @property
    def _versions_dir(self) -> Path:
        return self.root / "versions"

    def save(self, model: M) -> str:
        """Write `model` as a new version and make it current. Returns the version name."""
        self._versions_dir.mkdir(parents=True, exist_ok=True)
        now_ns = time.time_ns()  # names sort in save order: UTC time, nanoseconds, random suffix
        version = f"v{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now_ns / 1e9))}.{now_ns % 10**9:09d}-{uuid.uuid4().hex[:6]}"
        tmp = self.root / f".tmp-{version}"
        try:
            model.save(tmp)
            _fsync_tree(tmp)
            os.replace(tmp, self._versions_dir / version)
            _fsync_path(self._versions_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._point_to(version)
        model.version = version
        self._prune(current=version)
        logger.info("model version %s saved and made current", version)
        return version

    def _point_to(self, version: str) -> None:
        tmp = self.root / f"CURRENT.{uuid.uuid4().hex[:8]}.tmp"
        with open(tmp, "w") as fh:
            fh.write(version + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.root / "CURRENT")
        _fsync_path(self.root)

    def current_version(self) -> str | None:
        try:
            version = (self.root / "CURRENT").read_text().strip()
        except FileNotFoundError:
            return None
        return version if version and (self._versions_dir / version).is_dir() else None

    def versions(self) -> list[str]:
        """Saved versions, oldest first."""
        if not self._versions_dir.is_dir():
            return []
        return sorted(p.name for p in self._versions_dir.iterdir() if p.is_dir())

    def load(self, version: str) -> M:
        model = self._loader(self._versions_dir / version)
        model.version = version
        return model

    def load_current(self) -> M | None:
        """The current version, or None when nothing has been saved yet."""
        version = self.current_version()
        return None if version is None else self.load(version)

    def activate(self, version: str) -> None:
        """Point CURRENT at an existing version (roll back or forward)."""
        if not (self._versions_dir / version).is_dir():
            raise FileNotFoundError(f"no model version {version!r} under {self._versions_dir}")
        self._point_to(version)

    def drop_others(self, current: str) -> None:
        """Delete every version but `current` (after an erasure: older ones still hold the user)."""
        for version in self.versions():
            if version != current:
                shutil.rmtree(self._versions_dir / version, ignore_errors=True)
        _fsync_path(self._versions_dir)

    def request_training(self, reason: str) -> None:
        """Leave a request for the trainer that publishes into this store (`python -m overdrive.trainer`)."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f"REQUESTED.{uuid.uuid4().hex[:8]}.tmp"
        tmp.write_text(json.dumps({"reason": reason, "at": time.time()}))
        os.replace(tmp, self.root / "REQUESTED")

    def take_training_request(self) -> dict[str, Any] | None:
        """The pending training request, removed from the store; None when there is none."""
        taken = self.root / f"REQUESTED.taken.{uuid.uuid4().hex[:8]}"
        try:
            os.replace(self.root / "REQUESTED", taken)  # one taker wins
        except FileNotFoundError:
            return None
        try:
            return json.loads(taken.read_text())
        except (OSError, ValueError):
            return {"reason": "unreadable request"}
        finally:
            taken.unlink(missing_ok=True)

    def _prune(self, *, current: str) -> None:
        for stale in self.root.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        old = [v for v in self.versions() if v != current]
        for version in old[: max(0, len(old) - (self._keep - 1))]:
            shutil.rmtree(self._versions_dir / version, ignore_errors=True)


class ModelHandle(Generic[M]):
    """The model being served. Readers call `get()`; `swap`/`refresh` replace it in one
    reference assignment, so a request sees either the old model or the new one, never a mix."""

    def __init__(self, *, store: ArtifactStore[M], model: M | None = None) -> None:
        self._store = store
        self._model = model
        self._lock = threading.Lock()

    def get(self) -> M | None:
        return self._model

    def swap(self, model: M) -> None:
        self._model = model

    def refresh(self) -> bool:
        """Load CURRENT if it differs from what is served. Returns whether the model changed."""
        with self._lock:
            version = self._store.current_version()
            served = getattr(self._model, "version", None)
            if version is None or version == served:
                return False
            self._model = self._store.load(version)
            return True

    def publish(self, model: M) -> str:
        """Save `model` as the new current version and serve it."""
        with self._lock:
            version = self._store.save(model)
            self._model = model
            return version

    def status(self) -> dict[str, Any]:
        return {"current_version": self._store.current_version(), "versions": self._store.versions(),
                "served_version": getattr(self._model, "version", None)}
