"""What an experiment is: arms with traffic shares, an exposure share of its layer, a schedule.

An arm runs a named strategy (`enhanced`, `learned`, a component) or its own weight set over the
ranking components. An A/B experiment shows each exposed user their arm's feed; an interleaving
experiment shows every exposed user one feed drafted from all arms' rankings. The first arm is
the control. Definitions are validated here, so every store and replica holds only valid ones.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

from overdrive.domain.errors import InvalidInput

KINDS = ("ab", "interleaving")
STATES = ("draft", "running", "stopped")
BUCKETS = 10_000  # a layer's users fall into this many buckets; an experiment owns some of them


@dataclass(frozen=True, slots=True)
class Arm:
    name: str
    share: float  # of the experiment's exposed users (A/B); ignored by interleaving
    strategy: str | None = None
    weights: dict[str, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "share": self.share, "strategy": self.strategy, "weights": self.weights}


@dataclass(frozen=True, slots=True)
class Experiment:
    id: str
    name: str
    kind: str
    arms: tuple[Arm, ...]
    layer: str = "default"
    salt: str = ""
    exposure: float = 1.0  # share of the layer's users in the experiment
    buckets: tuple[tuple[int, int], ...] = ()  # the layer buckets it owns, [lo, hi) ranges
    state: str = "draft"
    starts_at: float | None = None
    ends_at: float | None = None
    attribution_window_s: float = 86_400.0
    created_at: float = field(default_factory=time.time)

    @property
    def control(self) -> Arm:
        return self.arms[0]

    def arm(self, name: str) -> Arm:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise KeyError(name)

    def live(self, now: float) -> bool:
        """Running, and within its schedule."""
        return (self.state == "running" and (self.starts_at is None or now >= self.starts_at)
                and (self.ends_at is None or now < self.ends_at))

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "kind": self.kind, "arms": [a.as_dict() for a in self.arms],
                "control": self.control.name, "layer": self.layer, "salt": self.salt, "exposure": self.exposure,
                "buckets": [list(b) for b in self.buckets], "state": self.state, "starts_at": self.starts_at,
                "ends_at": self.ends_at, "attribution_window_s": self.attribution_window_s,
                "created_at": self.created_at}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Experiment:
        return cls(id=d["id"], name=d["name"], kind=d["kind"], layer=d["layer"], salt=d["salt"],
                   exposure=d["exposure"], buckets=tuple(tuple(b) for b in d["buckets"]), state=d["state"],
                   starts_at=d["starts_at"], ends_at=d["ends_at"], attribution_window_s=d["attribution_window_s"],
                   created_at=d["created_at"],
                   arms=tuple(Arm(name=a["name"], share=a["share"], strategy=a["strategy"], weights=a["weights"])
                              for a in d["arms"]))


def validate(experiment: Experiment, *, strategies: set[str], components: set[str]) -> Experiment:
    """The experiment if valid; `InvalidInput` naming the field otherwise."""
    if experiment.kind not in KINDS:
        raise InvalidInput(f"kind must be one of {list(KINDS)}", field="kind")
    if len(experiment.arms) < 2:
        raise InvalidInput("an experiment needs at least two arms", field="arms")
    names = [a.name for a in experiment.arms]
    if len(set(names)) < len(names):
        raise InvalidInput("arm names must differ", field="arms")
    for n, arm in enumerate(experiment.arms):
        where = f"arms[{n}]"
        if (arm.strategy is None) == (arm.weights is None):
            raise InvalidInput("give an arm either a strategy or weights", field=where)
        if arm.strategy is not None and arm.strategy not in strategies:
            raise InvalidInput(f"unknown strategy {arm.strategy!r}; valid: {sorted(strategies)}", field=f"{where}.strategy")
        if arm.weights is not None:
            unknown = sorted(set(arm.weights) - components)
            if unknown or not arm.weights:
                raise InvalidInput(f"weights over the components {sorted(components)} (unknown: {unknown})",
                                   field=f"{where}.weights")
            if any(not math.isfinite(w) or w < 0 for w in arm.weights.values()) or sum(arm.weights.values()) <= 0:
                raise InvalidInput("weights must be finite, >= 0, and not all 0", field=f"{where}.weights")
        if not (math.isfinite(arm.share) and arm.share > 0):
            raise InvalidInput("share must be > 0", field=f"{where}.share")
    if not 0 < experiment.exposure <= 1:
        raise InvalidInput("exposure must be within (0, 1]", field="exposure")
    if experiment.starts_at is not None and experiment.ends_at is not None and experiment.ends_at <= experiment.starts_at:
        raise InvalidInput("ends_at must be after starts_at", field="ends_at")
    if not experiment.attribution_window_s > 0:
        raise InvalidInput("attribution_window_s must be > 0", field="attribution_window_s")
    total = sum(a.share for a in experiment.arms)
    return replace(experiment, arms=tuple(replace(a, share=a.share / total) for a in experiment.arms))
