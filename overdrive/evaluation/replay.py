"""Replay a dataset through the running service's HTTP API and score each strategy's rankings.

The protocol, step by step:

1. **Split by time, per user.** A user's *positive items* are the distinct items they sent a
   positive-weight signal for, ordered by the first such signal. Users with at least
   `min_positives` of them hold out their last share (`holdout`, or the last `last_k`) together
   with every signal they sent from the first held-out item's time on. A held-out item is
   *relevant* when the user's held-out signals for it add up to a positive weight and the user
   did not touch it in training. Everyone else's signals replay in full.
2. **Replay.** The catalog (then, with content features on, wait until it is indexed); the first
   `phase_a` share of the training signals in time order; `POST /models/train` (so the logged
   rankings carry a collaborative score); one logged ranking (`enhanced`, limit 100,
   candidates retrieved by the service) for each user who sends signals afterwards, so the
   service records what it showed; the remaining training signals, which are the feedback that follows those rankings;
   `POST /models/train` and wait until no training job runs; wait until the signal queue is empty.
3. **Evaluate.** Every strategy the service offers (or a chosen subset) ranks every evaluated
   user, over retrieved candidates or the whole catalog. Items the user touched in training are
   dropped from the list before it is cut to `k` (the usual offline protocol; mostly a
   no-op where the service hides consumed items itself), unless `drop_seen` is off. NDCG@k and Recall@k are
   measured against the relevant held-out items; coverage is the share of the catalog that
   appears in any user's top k.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import httpx
import numpy as np
from tqdm import tqdm

from overdrive.api.schemas import MAX_CANDIDATES
from overdrive.domain.types import COMPONENTS, DEFAULT_SIGNAL_WEIGHTS
from overdrive.ingest.http import as_client, post_world
from overdrive.models.metrics import catalog_coverage, ranking_metrics
from overdrive_client import Client, Retry

log = logging.getLogger(__name__)

SIGNAL_WEIGHTS = DEFAULT_SIGNAL_WEIGHTS
MEMBER_PREFIX = "member:"  # the rows of collaborative members fitted in process (`members`)
BLENDS = ("enhanced", "learned")
MAX_LIMIT = 1000  # the API's largest `limit`


class BadInput(ValueError):
    """The dataset or the options cannot give an evaluation (no timestamps, no user with history…)."""


class ServiceError(Exception):
    """The service did not finish a step (indexing, applying signals, training) in time."""


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    holdout: float = 0.2  # share of each user's positive items held out (at least one)
    last_k: int | None = None  # hold out exactly the last k positive items instead
    min_positives: int = 5  # users with fewer positive items are not split or evaluated
    users: int | None = 200  # evaluate at most this many users, sampled with `seed`
    seed: int = 0
    phase_a: float = 0.8  # share of training signals sent before the logged rankings
    log_limit: int = 100
    max_logged_users: int = 2000
    k: int = 10
    candidates: str = "retrieve"  # or "catalog": send the whole catalog as candidates
    strategies: tuple[str, ...] | None = None  # None: every strategy the service offers
    drop_seen: bool = True
    concurrency: int = 4
    batch_size: int = 5000
    train_timeout_s: float = 600.0
    settle_timeout_s: float = 900.0  # content indexing, signal queue
    progress: bool = False
    retry: Retry = field(default_factory=Retry)

    def __post_init__(self) -> None:
        if not 0.0 < self.holdout < 1.0:
            raise BadInput("--holdout must be within (0, 1)")
        if self.last_k is not None and self.last_k < 1:
            raise BadInput("--last-k must be >= 1")
        if self.min_positives < 2:
            raise BadInput("--min-positives must be >= 2 (one to train on, one to hold out)")
        if self.users is not None and self.users < 1:
            raise BadInput("--users must be >= 1")
        if not 0.0 <= self.phase_a <= 1.0:
            raise BadInput("--phase-a must be within [0, 1]")
        if not 1 <= self.k <= MAX_LIMIT or not 1 <= self.log_limit <= MAX_LIMIT:
            raise BadInput(f"k and the logged ranking's limit must be within 1..{MAX_LIMIT}")
        if self.candidates not in ("retrieve", "catalog"):
            raise BadInput("--candidates must be retrieve or catalog")
        if not 1 <= self.concurrency <= 32:
            raise BadInput("--concurrency must be within 1..32")


# ------------------------------------------------------------------------------------ split


@dataclass(frozen=True, slots=True)
class Split:
    train: list[dict]  # in time order
    relevant: dict[str, frozenset[str]]  # evaluated user -> relevant held-out items
    seen: dict[str, frozenset[str]]  # evaluated user -> items they touched in training
    users_split: int  # users with enough history to hold something out
    heldout_signals: int


def split_by_time(signals: Sequence[dict], options: ReplayOptions) -> Split:
    """Hold out each user's last positive items (see the module docstring); sample the evaluated users."""
    for n, s in enumerate(signals):
        if not isinstance(s.get("timestamp"), int | float):
            raise BadInput(f"signal {n} has no timestamp; the evaluation splits each user's history by time")
    ordered = sorted(signals, key=lambda s: s["timestamp"])  # stable: ties keep file order
    first_positive: dict[str, dict[str, float]] = {}
    for s in ordered:
        if SIGNAL_WEIGHTS.get(s["signal_type"], 0.0) > 0.0:
            first_positive.setdefault(s["user_id"], {}).setdefault(s["content_id"], s["timestamp"])
    cutoff: dict[str, float] = {}
    for user, items in first_positive.items():
        if len(items) < options.min_positives:
            continue
        times = sorted(items.values())
        k = options.last_k if options.last_k is not None else max(1, round(options.holdout * len(times)))
        cutoff[user] = times[len(times) - min(k, len(times) - 1)]
    train: list[dict] = []
    seen: dict[str, set[str]] = {}
    held: dict[str, dict[str, float]] = {}
    for s in ordered:
        user = s["user_id"]
        if user in cutoff and s["timestamp"] >= cutoff[user]:
            weight = SIGNAL_WEIGHTS.get(s["signal_type"], 0.0) * float(s.get("intensity", 1.0))
            per_item = held.setdefault(user, {})
            per_item[s["content_id"]] = per_item.get(s["content_id"], 0.0) + weight
        else:
            train.append(s)
            if user in cutoff:
                seen.setdefault(user, set()).add(s["content_id"])
    relevant = {}
    for user, per_item in held.items():
        rel = frozenset(i for i, w in per_item.items() if w > 0.0 and i not in seen.get(user, ()))
        if rel:
            relevant[user] = rel
    if not relevant:
        raise BadInput(f"no user has {options.min_positives}+ positive items and a relevant held-out item; "
                       "nothing to evaluate (try a larger dataset or a lower --min-positives)")
    users = sorted(relevant)
    if options.users is not None and options.users < len(users):
        rng = np.random.default_rng(options.seed)
        users = sorted(rng.choice(np.array(users, dtype=object), size=options.users, replace=False).tolist())
    return Split(
        train=train,
        relevant={u: relevant[u] for u in users},
        seen={u: frozenset(seen.get(u, ())) for u in users},
        users_split=len(cutoff),
        heldout_signals=len(ordered) - len(train),
    )


# ------------------------------------------------------------------------------------- HTTP
# Through the typed client (`overdrive_client`): its retries (429/503 after Retry-After,
# connection errors) and its typed answers. The helpers also take a plain httpx client.


def strategies(client: Client | httpx.Client) -> list[str]:
    return list(as_client(client).strategies()["strategies"])


def rank_users(client: Client | httpx.Client, users: Sequence[str], *, strategy: str, limit: Callable[[str], int],
               candidates: list[dict] | None, options: ReplayOptions, desc: str) -> dict[str, list[dict]]:
    """Every user's ranked items (as answered) under `strategy`, `options.concurrency` requests at a time."""
    od = as_client(client)

    def one(user: str) -> list[dict]:
        ranked = od.rank(user, limit=limit(user), strategy=strategy, candidates=candidates)  # type: ignore[arg-type]
        return ranked["items"]  # type: ignore[return-value]

    out: dict[str, list[dict]] = {}
    with ThreadPoolExecutor(max_workers=options.concurrency, thread_name_prefix="rank") as pool, \
            tqdm(total=len(users), unit="user", desc=desc, disable=not options.progress, leave=False) as bar:
        for user, ranked in zip(users, pool.map(one, users)):
            out[user] = ranked
            bar.update()
    return out


def wait_for_content(client: Client | httpx.Client, n_items: int, options: ReplayOptions) -> bool:
    """Until the content pipeline has indexed the catalog; False when content features are off."""
    od = as_client(client)
    deadline = time.monotonic() + options.settle_timeout_s
    while True:
        content = od.ready().get("checks", {}).get("models", {}).get("content")
        if not isinstance(content, dict):
            return False
        pipeline = content.get("pipeline", {})
        if pipeline.get("backlog", 0) == 0 and content.get("indexed_items", 0) + pipeline.get("failed", 0) >= n_items:
            return True
        if time.monotonic() > deadline:
            raise ServiceError(f"content features not indexed within {options.settle_timeout_s:.0f}s "
                               f"({content.get('indexed_items')} of {n_items} items)")
        time.sleep(0.5)


def wait_for_signals(client: Client | httpx.Client, options: ReplayOptions) -> None:
    """Until every acknowledged signal is applied to live state and its hooks ran (the learned
    blend's click labels; the collaborative fold-in is handed to its own thread): neither queued
    nor in a batch in flight."""
    od = as_client(client)
    deadline = time.monotonic() + options.settle_timeout_s
    while True:
        depth = od.performance().get("gauges", {}).get("signals_unapplied")
        if not depth:
            return
        if time.monotonic() > deadline:
            raise ServiceError(f"signal queue not drained within {options.settle_timeout_s:.0f}s ({depth:.0f} queued)")
        time.sleep(0.2)


def train_models(client: Client | httpx.Client, options: ReplayOptions) -> list[str]:
    """POST /models/train, then poll /models/status until no job runs; returns one line per job."""
    od = as_client(client)
    od.train_models()
    deadline = time.monotonic() + options.train_timeout_s
    while True:
        jobs = dict(_jobs(od.model_status()))
        if not any(job.get("state") == "running" for job in jobs.values()):
            return [f"{where}: {job['state']}" + (f" ({job.get('reason') or job.get('error')})"
                                                   if job["state"] in ("skipped", "failed") else "")
                    + (f" weights {job['weights']}" if isinstance(job.get("weights"), dict) else "")
                    + (f" from {job['clicked']} clicks" if "clicked" in job else "")
                    for where, job in jobs.items()]
        if time.monotonic() > deadline:
            raise ServiceError(f"model training still running after {options.train_timeout_s:.0f}s (--train-timeout)")
        time.sleep(0.25)


def _jobs(status: object, where: str = "") -> Iterator[tuple[str, dict]]:
    """Every job state in a /models/status answer (any object with a string `state`), by its path."""
    if isinstance(status, dict):
        if isinstance(status.get("state"), str):
            yield where, status
            return
        for key, value in status.items():
            yield from _jobs(value, f"{where}.{key}" if where else str(key))


# ------------------------------------------------------------------------------------ score


@dataclass(frozen=True, slots=True)
class StrategyScore:
    name: str
    ndcg: float
    recall: float
    coverage: float
    users: int
    seconds: float
    silent: float = 0.0  # share of rankings in which no component had anything to say (candidate order)


@dataclass(slots=True)
class EvaluationReport:
    dataset: str
    items: int
    signals: int
    train_signals: int
    heldout_signals: int
    users_split: int
    users_evaluated: int
    protocol: dict
    scores: list[StrategyScore] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    content_features: bool | None = None
    training: list[str] = field(default_factory=list)
    default_strategy: str | None = None  # what a request naming no strategy gets
    blend_from_history: dict | None = None  # the service's blend fitted from history, as /models/status said
    members: dict = field(default_factory=dict)  # the members' tuning, ensemble weights, fit time

    def best(self, metric: str) -> str | None:
        return max(self.scores, key=lambda s: getattr(s, metric)).name if self.scores else None

    def verdicts(self) -> dict[str, dict]:
        """For each blend offered: does its NDCG@k beat every single component's?"""
        by_name = {s.name: s for s in self.scores}
        components = [by_name[c] for c in COMPONENTS if c in by_name]
        out = {}
        for blend in BLENDS:
            if blend in by_name and components:
                rival = max(components, key=lambda s: s.ndcg)
                out[blend] = {"beats_every_component": by_name[blend].ndcg > rival.ndcg, "ndcg": by_name[blend].ndcg,
                              "best_component": rival.name, "best_component_ndcg": rival.ndcg,
                              "components": [c.name for c in components]}
        members = [s for s in self.scores if s.name.startswith(MEMBER_PREFIX) and s.name != MEMBER_PREFIX + "ensemble"]
        if self.default_strategy in by_name and members:
            rival = max(members, key=lambda s: s.ndcg)
            ndcg = by_name[self.default_strategy].ndcg
            out["default"] = {"strategy": self.default_strategy, "at_least_best_member": ndcg >= rival.ndcg,
                              "ndcg": ndcg, "best_member": rival.name, "best_member_ndcg": rival.ndcg}
        return out

    def table(self) -> str:
        k = self.protocol["k"]
        best = {m: self.best(m) for m in ("ndcg", "recall", "coverage")}
        width = max([len("strategy"), *(len(s.name) for s in self.scores)])
        width += 10  # room for " (default)"
        lines = [f"{'strategy':<{width}}  {f'NDCG@{k}':>9}  {f'Recall@{k}':>10}  {'coverage':>9}  {'users':>6}  "
                 f"{'seconds':>8}"]
        for s in self.scores:
            cells = [f"{getattr(s, m):.4f}{'*' if best[m] == s.name else ' '}" for m in ("ndcg", "recall", "coverage")]
            name = f"{s.name} (default)" if s.name == self.default_strategy else s.name
            lines.append(f"{name:<{width}}  {cells[0]:>9}  {cells[1]:>10}  {cells[2]:>9}  {s.users:>6}  {s.seconds:>8.1f}")
        lines.append("* best in its column; seconds: ranking every user (members: fitting, tuning included, then ranking)")
        if self.members.get("tuning"):
            chosen = "; ".join(f"{m}: {', '.join(f'{k}={v}' for k, v in t.get('params', t).items())}"
                               for m, t in self.members["tuning"].items())
            lines.append(f"members tuned on a holdout of the training signals: {chosen}")
        if self.blend_from_history:
            h = self.blend_from_history
            weights = ", ".join(f"{c} {w:.2f}" for c, w in h.get("weights", {}).items())
            lines.append(f"blend fitted from history ({h.get('users')} users, {h.get('clicked')} held-out items): {weights}")
        for s in self.scores:
            if s.silent:
                lines.append(f"note: in {s.silent:.0%} of its rankings no component of {s.name} had anything to say, "
                             "so those lists are the candidates' retrieval order")
        for blend, v in self.verdicts().items():
            if blend == "default":
                lines.append(f"the default strategy ({v['strategy']}) >= the best single member on NDCG@{k}: "
                             f"{'yes' if v['at_least_best_member'] else 'NO'} ({v['ndcg']:.4f} against "
                             f"{v['best_member']}, {v['best_member_ndcg']:.4f})")
                continue
            verdict = "yes" if v["beats_every_component"] else "NO"
            which = "" if len(v["components"]) == len(COMPONENTS) else f" evaluated ({len(v['components'])} of {len(COMPONENTS)})"
            lines.append(f"{blend} beats every single component{which} on NDCG@{k}: {verdict} "
                         f"({v['ndcg']:.4f} against the best component, {v['best_component']}, {v['best_component_ndcg']:.4f})")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["scores"] = {s.name: {k: v for k, v in asdict(s).items() if k != "name"} for s in self.scores}
        out["best"] = {m: self.best(m) for m in ("ndcg", "recall", "coverage")}
        out["verdicts"] = self.verdicts()
        return out


def score_rankings(name: str, ranked: Mapping[str, list[dict]], split: Split, *, n_items: int, options: ReplayOptions,
                   seconds: float) -> StrategyScore:
    """Figures for one strategy from the service's answers (`items` of each ranking, by user)."""
    users = list(split.relevant)
    tops = []
    silent = 0
    for u in users:
        answered = ranked.get(u, [])
        silent += bool(answered) and not any(i.get("scores") for i in answered)
        ids = [i["id"] for i in answered]
        if options.drop_seen:
            ids = [i for i in ids if i not in split.seen[u]]
        tops.append(ids[: options.k])
    figures = ranking_metrics(tops, [split.relevant[u] for u in users], k=options.k)
    return StrategyScore(name=name, ndcg=figures["ndcg"], recall=figures["recall"],
                         coverage=catalog_coverage(tops, n_items), users=len(users), seconds=round(seconds, 3),
                         silent=round(silent / max(len(users), 1), 4))


# ------------------------------------------------------------------------------------ replay


def prepare(items: list[dict], signals: list[dict], options: ReplayOptions) -> Split:
    """Check the options against the dataset and split it; nothing touches the service yet."""
    if options.candidates == "catalog" and len(items) > MAX_CANDIDATES:
        raise BadInput(f"--candidates catalog needs a catalog of at most {MAX_CANDIDATES} items (this one has {len(items)})")
    if not items:
        raise BadInput("the dataset has no catalog items")
    return split_by_time(signals, options)


def replay_and_evaluate(client: Client | httpx.Client, items: list[dict], split: Split, options: ReplayOptions, *,
                        dataset: str = "dataset", say: Callable[[str], None] = lambda _: None) -> EvaluationReport:
    """The whole protocol against the service behind `client`, with `options.retry`; returns the figures."""
    client = as_client(client, options.retry)
    offered = strategies(client)
    _check_strategies(options.strategies, offered)
    users = list(split.relevant)
    report = EvaluationReport(
        dataset=dataset, items=len(items), signals=len(split.train) + split.heldout_signals,
        train_signals=len(split.train), heldout_signals=split.heldout_signals, users_split=split.users_split,
        users_evaluated=len(users),
        protocol={"k": options.k, "holdout": options.holdout, "last_k": options.last_k,
                  "min_positives": options.min_positives, "phase_a": options.phase_a, "candidates": options.candidates,
                  "drop_seen": options.drop_seen, "seed": options.seed},
    )
    say(f"split: {len(split.train):,} training and {split.heldout_signals:,} held-out signals; "
        f"{split.users_split:,} users split, {len(users):,} evaluated")

    with _timed(report.timings, "catalog"):
        post_world(client, items, [], batch_size=options.batch_size, progress=options.progress)
        report.content_features = wait_for_content(client, len(items), options)
    n_a = int(round(options.phase_a * len(split.train)))
    # Everyone who sends feedback after the logged rankings gets one (capped), evaluated or not.
    logged = list(dict.fromkeys(s["user_id"] for s in split.train[n_a:]))[: options.max_logged_users]
    with _timed(report.timings, "signals_a"):
        post_world(client, [], split.train[:n_a], batch_size=options.batch_size, progress=options.progress)
        wait_for_signals(client, options)
    with _timed(report.timings, "train_a"):  # so the logged rankings carry every component's score
        train_models(client, options)
    with _timed(report.timings, "logged_rankings"):
        rank_users(client, logged, strategy="enhanced", limit=lambda _: options.log_limit, candidates=None,
                   options=options, desc="logged rankings")
    with _timed(report.timings, "signals_b"):
        post_world(client, [], split.train[n_a:], batch_size=options.batch_size, progress=options.progress)
    t = report.timings
    say(f"replayed {len(items):,} items in {t['catalog']:.1f}s "
        f"({'content features on, indexing included' if report.content_features else 'content features off'}) and "
        f"{len(split.train):,} signals in {t['signals_a'] + t['signals_b']:.1f}s, "
        f"{len(logged):,} rankings logged after the first {n_a:,} in {t['logged_rankings']:.1f}s")
    with _timed(report.timings, "train"):  # on every signal: the blend's labels come as they apply
        wait_for_signals(client, options)
        report.training = train_models(client, options)
    say(f"models trained in {report.timings['train']:.1f}s: {'; '.join(report.training)}")

    offered = strategies(client)  # a trained model may bring a strategy of its own
    _check_strategies(options.strategies, offered)
    candidates = [{"id": i["id"]} for i in items] if options.candidates == "catalog" else None
    pool = len(candidates) if candidates is not None else MAX_LIMIT

    def limit(user: str) -> int:
        extra = len(split.seen[user]) if options.drop_seen else 0
        return max(1, min(options.k + extra, MAX_LIMIT, pool))

    with _timed(report.timings, "evaluate"):
        for name in options.strategies or offered:
            started = time.perf_counter()
            ranked = rank_users(client, users, strategy=name, limit=limit, candidates=candidates, options=options, desc=name)
            report.scores.append(score_rankings(name, ranked, split, n_items=len(items), options=options,
                                                seconds=time.perf_counter() - started))
    say(f"ranked {len(users):,} users × {len(report.scores)} strategies in {report.timings['evaluate']:.1f}s")
    report.default_strategy = client.strategies().get("default")
    report.blend_from_history = (client.model_status().get("blend") or {}).get("from_history")
    return report


def _check_strategies(wanted: Sequence[str] | None, offered: Sequence[str]) -> None:
    unknown = [s for s in wanted or () if s not in offered]
    if unknown:
        raise BadInput(f"unknown strategy {', '.join(unknown)}; the service offers {', '.join(offered)}")


@contextmanager
def _timed(into: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        into[name] = round(time.perf_counter() - started, 3)
