"""Replay a dataset through the service's HTTP API and score each ranking strategy on held-out data.

    python -m overdrive.evaluation                                   # synthetic world, own server
    python -m overdrive.evaluation --world-users 1000 --users 300 --json figures.json
    python -m overdrive.evaluation --url http://127.0.0.1:8000 --strategies enhanced,collaborative
    python -m overdrive.evaluation --data ./ml-100k --format movielens --candidates catalog
    python -m overdrive.evaluation --data ./world --format jsonl      # items.jsonl + signals.jsonl

Each user's last positive items are held out; the rest replays in time order (catalog, signals,
one logged ranking per later-active user part-way, the remaining signals, a model retrain), then
every strategy ranks every evaluated user and NDCG@10, Recall@10 and catalog coverage are
printed, one row per strategy (the default one marked). Then every collaborative member (EASE,
ALS, BPR, LightFM, the neighbourhoods…), tuned as the service tunes it, is fitted in this process
on the same training signals and scored alone (`member:` rows, `--no-members` to skip), with the
values its tuning chose, and the verdict: is the default strategy at least as good as the best
single member? The protocol is described in `overdrive/evaluation/replay.py`.
Exit status: 0 done, 1 the service failed, 2 a bad option or dataset.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

from overdrive.data.importers import Dataset, load_csv, load_jsonl, load_movielens, rebased
from overdrive.evaluation.members import member_scores
from overdrive.evaluation.replay import BadInput, ReplayOptions, ServiceError, prepare, replay_and_evaluate
from overdrive.evaluation.server_process import ServerProcess
from overdrive.data.synthetic import WorldConfig, generate_world
from overdrive_client import Client, OverdriveError, Retry

PROG = "python -m overdrive.evaluation"
# A server started here trains only when asked (the protocol's POST /models/train).
_SERVER_DEFAULTS = {"OVERDRIVE_RETRAIN_INTERVAL_MINUTES": "0", "OVERDRIVE_TRAIN_ON_START": "false"}


class _UsageError(Exception):
    """A bad option or dataset: one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("dataset (default: a synthetic world)")
    src.add_argument("--synthetic", action="store_true", help="a synthetic world with planted structure (the default)")
    src.add_argument("--data", type=Path, help="movielens: the dataset folder; csv/jsonl: a folder holding items.* and "
                                               "signals.* or interactions.*")
    src.add_argument("--format", choices=("movielens", "csv", "jsonl"), help="the format of --data / --items / --interactions")
    src.add_argument("--items", type=Path, help="csv/jsonl: the items file")
    src.add_argument("--interactions", type=Path, help="csv/jsonl: the interactions file")
    src.add_argument("--no-rebase-time", action="store_true",
                     help="keep a file dataset's times (default: shift them so the newest signal is now)")
    w = p.add_argument_group("synthetic world")
    w.add_argument("--seed", type=int, default=0, help="world and user sampling seed (default %(default)s)")
    w.add_argument("--world-users", type=int, default=500)
    w.add_argument("--world-items", type=int, default=2000)
    w.add_argument("--topics", type=int, default=8)
    w.add_argument("--days", type=float, default=30.0)
    w.add_argument("--signals-per-user", type=float, default=60.0)
    t = p.add_argument_group("service (default: --start-server)")
    t.add_argument("--url", help="a running service to replay into (it should hold no other data)")
    t.add_argument("--start-server", action="store_true", help="start the service on a free port in a temporary data folder")
    t.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                   help="a setting for the started server, e.g. OVERDRIVE_CONTENT_FEATURES=false (repeatable)")
    e = p.add_argument_group("protocol")
    e.add_argument("--users", type=int, default=200, help="evaluate at most N users, sampled with --seed (default %(default)s)")
    e.add_argument("--holdout", type=float, default=0.2, help="share of each user's positive items held out (default %(default)s)")
    e.add_argument("--last-k", type=int, help="hold out each user's last K positive items instead of a share")
    e.add_argument("--min-positives", type=int, default=5, help="users with fewer positive items are not evaluated (default %(default)s)")
    e.add_argument("--phase-a", type=float, default=0.8,
                   help="share of training signals sent before the logged rankings (default %(default)s)")
    e.add_argument("--strategies", help="comma-separated subset of GET /rank/strategies (default: all)")
    e.add_argument("--candidates", choices=("retrieve", "catalog"), default="retrieve",
                   help="retrieve: the service picks candidates; catalog: send the whole catalog (default %(default)s)")
    e.add_argument("--k", type=int, default=10, help="list length scored (default %(default)s)")
    e.add_argument("--keep-seen", action="store_true", help="score lists as served, items touched in training included")
    e.add_argument("--no-members", action="store_true",
                   help="skip fitting every collaborative member in this process and scoring each alone")
    r = p.add_argument_group("running")
    r.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    r.add_argument("--concurrency", type=int, default=4, help="rank requests in flight (default %(default)s)")
    r.add_argument("--batch-size", type=int, default=5000, help="rows per batch request (default %(default)s)")
    r.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default %(default)s)")
    r.add_argument("--retries", type=int, default=8, help="retries per request on 429/503/connection errors (default %(default)s)")
    r.add_argument("--train-timeout", type=float, default=600.0, help="seconds to wait for training (default %(default)s)")
    r.add_argument("--settle-timeout", type=float, default=900.0,
                   help="seconds to wait for content indexing and the signal queue (default %(default)s)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _dataset(args: argparse.Namespace) -> tuple[str, list[dict], list[dict]]:
    """(name, items, signals), fully read, so a bad row stops the run before any service is touched."""
    if args.format is None:
        try:
            cfg = WorldConfig(n_users=args.world_users, n_items=args.world_items, n_topics=args.topics, n_days=args.days,
                              signals_per_user=args.signals_per_user, seed=args.seed)
        except ValueError as exc:
            raise BadInput(f"synthetic world: {exc}") from None
        world = generate_world(cfg)
        return (f"synthetic(users={cfg.n_users}, items={cfg.n_items}, topics={cfg.n_topics}, days={cfg.n_days:g}, "
                f"signals_per_user={cfg.signals_per_user:g}, seed={cfg.seed})", world.items, world.signals)
    if args.data and not args.data.exists():
        raise BadInput(f"--data {args.data}: no such file or folder")
    if args.format == "movielens":
        if not args.data:
            raise BadInput("--format movielens needs --data FOLDER")
        dataset: Dataset = load_movielens(args.data)
    else:
        items, interactions = args.items, args.interactions
        if args.data:
            items = items or _first(args.data, ("items",), args.format)
            interactions = interactions or _first(args.data, ("signals", "interactions"), args.format)
        if not (items and interactions):
            raise BadInput(f"--format {args.format} needs --items FILE and --interactions FILE (or --data FOLDER holding them)")
        dataset = (load_csv if args.format == "csv" else load_jsonl)(items, interactions)
    if not args.no_rebase_time:
        dataset = rebased(dataset)
    return dataset.name, list(dataset.items()), list(dataset.signals())


def _first(folder: Path, stems: tuple[str, ...], ext: str) -> Path | None:
    return next((folder / f"{s}.{ext}" for s in stems if (folder / f"{s}.{ext}").is_file()), None)


def _options(args: argparse.Namespace) -> ReplayOptions:
    return ReplayOptions(
        holdout=args.holdout, last_k=args.last_k, min_positives=args.min_positives, users=args.users, seed=args.seed,
        phase_a=args.phase_a, k=args.k, candidates=args.candidates, drop_seen=not args.keep_seen,
        strategies=tuple(s.strip() for s in args.strategies.split(",") if s.strip()) if args.strategies else None,
        concurrency=args.concurrency, batch_size=args.batch_size, train_timeout_s=args.train_timeout,
        settle_timeout_s=args.settle_timeout, progress=not args.no_progress, retry=Retry(attempts=args.retries),
    )


@contextlib.contextmanager
def _service(args: argparse.Namespace, env: dict[str, str]) -> Iterator[str]:
    """The service's URL: --url as given, or a server started for this run and stopped after it."""
    if args.url:
        yield args.url.rstrip("/")
        return
    with tempfile.TemporaryDirectory(prefix="overdrive-eval-") as tmp:
        log_path = Path(tmp) / "server.log"
        server = ServerProcess(data_dir=Path(tmp) / "data", env={**_server_env(Path(tmp)), **env}, log_path=log_path)
        try:
            server.start(timeout_s=120.0)
        except RuntimeError as exc:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] if log_path.exists() else []
            raise ServiceError(f"{exc.args[0].split('; log:')[0]}: {''.join(tail) or 'no log'}") from None
        try:
            yield server.url
        finally:
            server.stop()


def _server_env(tmp: Path) -> dict[str, str]:
    """A started server's own model folder, so no model or blend weights of an earlier run are loaded;
    the text model's compilation stays where it would have been kept, so it is not redone each run."""
    usual = Path(os.environ.get("MODEL_CACHE_DIR", "model_cache")).resolve()
    compiled = os.environ.get("OVERDRIVE_COMPILED_MODELS_DIR") or str(usual / "compiled")
    return {**_SERVER_DEFAULTS, "MODEL_CACHE_DIR": str(tmp / "models"), "OVERDRIVE_COMPILED_MODELS_DIR": compiled}


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except _UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.url and args.start_server:
        raise _UsageError("--url and --start-server exclude each other")
    if args.synthetic and (args.format or args.data):
        raise _UsageError("--synthetic and --data/--format exclude each other")
    if (args.data or args.items or args.interactions) and not args.format:
        raise _UsageError("--data/--items/--interactions need --format movielens|csv|jsonl")
    if args.server_env and args.url:
        raise _UsageError("--server-env applies only to a server started here (not with --url)")
    if args.json and not args.json.parent.is_dir():
        raise _UsageError(f"--json: no folder {args.json.parent}")
    env = {}
    for pair in args.server_env:
        name, eq, value = pair.partition("=")
        if not eq or not name:
            raise _UsageError(f"--server-env takes NAME=VALUE, not {pair!r}")
        env[name] = value
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    started = time.perf_counter()

    def say(line: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {line}", file=sys.stderr, flush=True)

    try:
        options = _options(args)
        name, items, signals = _dataset(args)
        split = prepare(items, signals, options)
    except (ValueError, OSError) as exc:  # BadInput, and the importers' bad rows and missing files
        raise _UsageError(str(exc)) from None
    say(f"{name}: {len(items):,} items, {len(signals):,} signals")
    try:
        with _service(args, env) as url:
            say(f"service at {url}")
            with Client(url, timeout=args.timeout, max_connections=options.concurrency + 2, retry=options.retry) as client:
                report = replay_and_evaluate(client, items, split, options, dataset=name, say=say)
        if not args.no_members:
            started_members = time.perf_counter()
            scores, report.members = member_scores(items, split, options)
            report.scores.extend(scores)
            report.timings["members"] = round(time.perf_counter() - started_members, 3)
            say(f"fitted and ranked {len(scores) - 1} members and their ensemble in process "
                f"in {report.timings['members']:.1f}s")
    except BadInput as exc:
        raise _UsageError(str(exc)) from None
    except (ServiceError, OverdriveError, ValueError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    report.timings["total"] = round(time.perf_counter() - started, 3)
    print(f"{name}; {report.users_evaluated} users evaluated "
          f"({'items touched in training dropped' if options.drop_seen else 'lists as served'}, "
          f"candidates: {options.candidates}, content features: {_on_off(report.content_features)})")
    print(report.table())
    if args.json:
        args.json.write_bytes(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
    say(f"done in {report.timings['total']:.1f}s")
    return 0


def _on_off(flag: bool | None) -> str:
    return "unknown" if flag is None else ("on" if flag else "off")


if __name__ == "__main__":
    sys.exit(main())
