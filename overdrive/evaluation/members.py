"""Every collaborative member alone on the evaluation's own split, the bar the blends must clear.

The ensemble the service trains (`OVERDRIVE_CF_METHODS=all`: EASE, ALS, BPR, LightFM, the
neighbourhoods, NMF, popularity), each member tuned on a holdout of the training signals as the
service tunes it, is fitted here in process on the same training signals the service was sent.
Each member then ranks the whole catalog for every evaluated user, less the items they touched in
training, and is scored like a strategy; EASE among them is the usual strong baseline (a tuned
ridge item-item model). The chosen hyperparameters are returned with the figures.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from overdrive.evaluation.replay import MEMBER_PREFIX, ReplayOptions, Split, StrategyScore
from overdrive.models.collaborative_filtering import AdvancedCollaborativeFiltering
from overdrive.models.collaborative_filtering.registry import DEFAULT_METHODS
from overdrive.models.metrics import catalog_coverage, ranking_metrics


def member_scores(items: list[dict], split: Split, options: ReplayOptions, *,
                  methods: Sequence[str] = DEFAULT_METHODS) -> tuple[list[StrategyScore], dict[str, Any]]:
    """One score per member and one for their validation-weighted ensemble (`member:ensemble`);
    and what each member's tuning chose."""
    started = time.perf_counter()
    model = AdvancedCollaborativeFiltering(methods=methods, tune=True, fit_unweighted=True)
    model.fit_signals(split.train, items=items)
    fitted = time.perf_counter() - started
    users = list(split.relevant)
    scores = []
    for name, member in [*model.members.items(), ("ensemble", None)]:
        t0 = time.perf_counter()
        tops = []
        for user in users:
            if member is None:
                ranked = [i for i, _ in model.recommend(user, options.k + len(split.seen[user]))]
            else:
                ids, values = member.score_all(user)
                order = np.argsort(-values, kind="stable")
                ranked = [ids[i] for i in order[: options.k + len(split.seen[user])]]
            tops.append([i for i in ranked if i not in split.seen[user]][: options.k])
        figures = ranking_metrics(tops, [split.relevant[u] for u in users], k=options.k)
        seconds = model.fit_seconds.get(name, fitted) + time.perf_counter() - t0
        scores.append(StrategyScore(name=MEMBER_PREFIX + name, ndcg=figures["ndcg"], recall=figures["recall"],
                                    coverage=catalog_coverage(tops, len(items)), users=len(users),
                                    seconds=round(seconds, 3)))
    status = model.status()
    return scores, {"tuning": status["tuning"], "ensemble_weights": status["weights"],
                    "validation_ndcg@10": status["validation_ndcg@10"], "fit_seconds": round(fitted, 3)}
