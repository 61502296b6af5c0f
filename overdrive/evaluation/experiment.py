"""An experiment end to end against the service, with simulated users whose true tastes are known.

    python -m overdrive.evaluation.experiment                       # a server of its own
    python -m overdrive.evaluation.experiment --url http://127.0.0.1:8000 --ab-users 2000 --interleaving-users 300

A synthetic world (planted topic tastes per user, `overdrive.data.synthetic`) is loaded, every
user's history included, and the models trained. Then an A/B experiment pits a control strategy
(default `freshness`, blind to taste) against a treatment (default `collaborative`); each simulated user asks for a feed without
naming a strategy, so the service assigns and serves their arm, and the user likes items the way
their planted taste says: position k of the feed is looked at with probability 1/(k+1), and a
looked-at item liked with probability `click_scale` × the user's affinity for its topic. The
results (per arm CTR with intervals, lift, p-value, sample-ratio check) are read from
`GET /experiments/{id}/results`. The A/B test is then stopped and an interleaving experiment of
the same two strategies runs on fresh users (`--interleaving-users`, fewer), whose verdict is
read the same way. Exit status 0 when both name the treatment as the winner at p < 0.05, 1
otherwise, 2 on bad options.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from overdrive.data.synthetic import WorldConfig, generate_world
from overdrive.evaluation.replay import ReplayOptions, train_models
from overdrive.evaluation.server_process import ServerProcess
from overdrive.ingest.http import post_world
from overdrive_client import Client

PROG = "python -m overdrive.evaluation.experiment"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--url", help="a running service holding no other data (default: start one)")
    p.add_argument("--world-users", type=int, default=0, help="users with a history besides the simulated ones")
    p.add_argument("--items", type=int, default=1500)
    p.add_argument("--ab-users", type=int, default=1500, help="simulated users in the A/B test")
    p.add_argument("--interleaving-users", type=int, default=250, help="simulated users in the interleaving test")
    p.add_argument("--control", default="freshness")
    p.add_argument("--treatment", default="collaborative")
    p.add_argument("--sessions", type=int, default=2, help="feeds each simulated user asks for")
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--click-scale", type=float, default=0.6)
    p.add_argument("--seed", type=int, default=0, help="world, clicks, experiment salts and request ids")
    return p


@contextlib.contextmanager
def _service(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="overdrive-experiment-") as tmp:
        env = {"OVERDRIVE_RETRAIN_INTERVAL_MINUTES": "0", "OVERDRIVE_TRAIN_ON_START": "false",
               "OVERDRIVE_CONTENT_FEATURES": os.environ.get("OVERDRIVE_CONTENT_FEATURES", "false"),
               "MODEL_CACHE_DIR": str(Path(tmp) / "models"), "OVERDRIVE_CF_TUNE": "false"}
        with ServerProcess(data_dir=Path(tmp) / "data", env=env, log_path=Path(tmp) / "server.log") as server:
            yield server.url


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if min(args.ab_users, args.interleaving_users, args.items, args.sessions, args.limit) < 1 or args.world_users < 0:
        _parser().error("counts must be >= 1")
    sys.stdout.reconfigure(line_buffering=True)
    world = generate_world(WorldConfig(n_users=args.world_users + args.ab_users + args.interleaving_users,
                                       n_items=args.items, signals_per_user=40, seed=args.seed))
    with _service(args.url) as url, Client(url, timeout=120.0) as client:
        post_world(client, world.items, world.signals)  # every simulated user has a history too
        train_models(client, ReplayOptions())
        print(f"world: {len(world.items)} items, {len(world.user_ids)} users' history "
              f"({len(world.signals):,} signals); models trained")
        simulate = _Simulation(world, client, args)
        ab_users = world.user_ids[args.world_users : args.world_users + args.ab_users]
        ab = simulate.run("ab", ab_users)
        arms = ab["arms"]
        comparison = ab["comparisons"][args.treatment]["ctr"]
        print(f"\nA/B ({len(ab_users)} users, {ab['feeds']} feeds):")
        for name, row in arms.items():
            ctr = row["ctr"]
            print(f"  {name:<14} users {row['users']:>5}  CTR {ctr['value']:.4f}  95% CI [{ctr['ci_low']:.4f}, {ctr['ci_high']:.4f}]")
        print(f"  lift {comparison['lift']:+.1%} [{comparison['lift_ci_low']:+.1%}, {comparison['lift_ci_high']:+.1%}]"
              f"  p = {comparison['p_value']:.2g}   SRM p = {ab['srm']['p_value']:.3g}"
              f" ({'ALARM' if ab['srm']['alarm'] else 'ok'})")
        il_users = world.user_ids[args.world_users + args.ab_users :]
        il = simulate.run("interleaving", il_users)["interleaving"]
        (pair,) = il["pairs"]
        print(f"\ninterleaving ({len(il_users)} users): prefer {pair['arm_a']} {pair['wins']}, "
              f"prefer {pair['arm_b']} {pair['losses']}, ties {pair['ties']}, sign test p = {pair['p_value']:.2g}")
    ab_wins = comparison["significant"] and comparison["lift"] > 0
    il_wins = pair["preferred"] == args.treatment and pair["p_value"] < 0.05
    print(f"\ntreatment {args.treatment} wins: A/B {'yes' if ab_wins else 'no'}, "
          f"interleaving {'yes' if il_wins else 'no'} (with {len(il_users) / len(ab_users):.2f}x the users)")
    return 0 if ab_wins and il_wins else 1


class _Simulation:
    def __init__(self, world, client: Client, args: argparse.Namespace) -> None:  # noqa: ANN001
        self._world, self._client, self._args = world, client, args
        self._row = {u: n for n, u in enumerate(world.user_ids)}
        self._topic = {item["id"]: int(t) for item, t in zip(world.items, world.item_topic, strict=True)}
        self._rng = np.random.default_rng(args.seed + 1)

    def run(self, kind: str, users: list[str]) -> dict:
        a = self._args
        experiment = self._client.create_experiment({
            "name": f"{a.control} vs {a.treatment} ({kind})", "kind": kind, "state": "running",
            "salt": f"simulation-{a.seed}-{kind}",
            "arms": [{"name": a.control, "strategy": a.control}, {"name": a.treatment, "strategy": a.treatment}],
        })
        for session in range(a.sessions):
            likes = []
            for user in users:
                feed = self._client.rank(user, limit=a.limit, request_id=f"{kind}-{session}-{user}")["items"]
                likes += [{"user_id": user, "signal_type": "like", "content_id": i["id"], "timestamp": time.time()}
                          for i in self._liked(user, feed)]
            if likes:
                self._client.send_signals(likes)
        results = self._client.experiment_results(experiment["id"])
        self._client.update_experiment(experiment["id"], {"state": "stopped"})
        return dict(results)

    def _liked(self, user: str, feed: list[dict]) -> list[dict]:
        taste = self._world.user_topics[self._row[user]]
        out = []
        for k, item in enumerate(feed):
            looked = self._rng.random() < 1.0 / (k + 1)
            if looked and self._rng.random() < self._args.click_scale * taste[self._topic[item["id"]]]:
                out.append(item)
        return out


if __name__ == "__main__":
    sys.exit(main())
