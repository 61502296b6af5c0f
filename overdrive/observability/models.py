"""Training history of the served models, as this service saw it, kept across restarts.

`ModelHistory.observe(status)` is given the models' status (`GET /models/status`'s shape: the
collaborative ensemble's serving version and last training job, the learned blend's fitted
weights; a two-tower model's status when the service has one) every few seconds by the
dashboard's sampler. Each new collaborative version or blend fit becomes a record — version, fit
time, training seconds, validation NDCG per ensemble member, blend weights — appended to a JSON
lines file (the last `keep` are kept), so the dashboard's history and the exported training
metrics outlive a restart. A version published and replaced between two looks is not seen.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import deque
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class ModelHistory:
    def __init__(self, path: Path | None = None, *, keep: int = 200) -> None:
        self._path = path
        self._keep = keep
        self._lock = threading.Lock()
        self._records: deque[dict[str, Any]] = deque(maxlen=keep)
        self.latest: dict[str, Any] = {}  # the last status observed
        self._seen: set[tuple[str, str]] = set()
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("ignoring unreadable model history %s: %s", path, exc)
            return
        for line in lines[-self._keep:]:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            self._records.append(record)
            self._seen.add((record.get("model", ""), str(record.get("version"))))

    def records(self, model: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self._records if model is None or r.get("model") == model]

    def observe(self, status: dict[str, Any]) -> list[dict[str, Any]]:
        """Record what is new in `status`; returns the new records."""
        new = []
        cf = (status.get("collaborative") or {})
        serving = cf.get("serving") or None
        if serving and serving.get("version"):
            job = cf.get("last_training") or {}
            same_job = job.get("version") == serving["version"]
            new.append({
                "model": "collaborative", "version": serving["version"], "fitted_at": serving.get("fitted_at"),
                "training_seconds": job.get("seconds") if same_job else None,
                "signals": job.get("signals") if same_job else None,
                "reason": job.get("reason") if same_job else "loaded",
                "validation_ndcg@10": serving.get("validation_ndcg@10") or {},
                "fit_seconds": serving.get("fit_seconds") or {},
                "weights": serving.get("weights") or {},
                "n_users": serving.get("n_users"), "n_items": serving.get("n_items"),
                "n_interactions": serving.get("n_interactions"),
            })
        blend = status.get("blend") or {}
        fitted = blend.get("fitted") or None
        if isinstance(fitted, dict) and fitted.get("fitted_at"):
            new.append({
                "model": "blend", "version": str(fitted["fitted_at"]), "fitted_at": fitted["fitted_at"],
                "weights": fitted.get("weights") or {}, "clicked": fitted.get("clicked"),
                "rankings": fitted.get("rankings"), "fitted_share": fitted.get("fitted_share"),
            })
        added = []
        with self._lock:
            self.latest = status
            for record in new:
                key = (record["model"], str(record["version"]))
                if key not in self._seen:
                    self._seen.add(key)
                    self._records.append(record)
                    added.append(record)
        if added and self._path is not None:
            self._append(added)
        return added

    def _append(self, records: list[dict[str, Any]]) -> None:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
            lines = "".join(json.dumps(r, default=str) + "\n" for r in records)
            with open(self._path, "a") as f:  # type: ignore[arg-type]
                f.write(lines)
            if self._path.stat().st_size > 1_000_000:  # type: ignore[union-attr]
                with self._lock:
                    kept = "".join(json.dumps(r, default=str) + "\n" for r in self._records)
                tmp = self._path.with_suffix(".tmp")  # type: ignore[union-attr]
                tmp.write_text(kept)
                os.replace(tmp, self._path)  # type: ignore[arg-type]
        except OSError as exc:  # history is a convenience: the service goes on without it
            log.warning("model history not saved to %s: %s", self._path, exc)
