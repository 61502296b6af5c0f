"""Fitted blends on disk: one JSON file each, written atomically (replicas may share the folder)."""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

from overdrive.domain.types import COMPONENTS

log = logging.getLogger(__name__)


def load(path: Path) -> dict[str, Any] | None:
    """A saved fit, its `weights` over every component; None when missing, unreadable or fitted
    on components that no longer exist."""
    try:
        fitted = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable blend weights %s: %s", path, exc)
        return None
    weights = fitted.get("weights", {}) if isinstance(fitted, dict) else {}
    if not weights or not set(weights) <= set(COMPONENTS):
        log.warning("ignoring blend weights %s: components do not match", path)
        return None
    # Fitted before a component existed: it had no weight then, and has none until the next fit.
    fitted["weights"] = {c: float(weights.get(c, 0.0)) for c in COMPONENTS}
    return fitted


def save(path: Path, fitted: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w") as f:
        json.dump(fitted, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
