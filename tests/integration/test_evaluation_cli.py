"""`python -m overdrive.evaluation` replays a planted synthetic world into a real server and scores
every strategy on each user's held-out items; the known answer says the blend must win."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from overdrive.domain.types import COMPONENTS
from overdrive.evaluation.__main__ import main
from overdrive.evaluation.replay import BadInput, ReplayOptions, split_by_time
from overdrive.evaluation.server_process import ServerProcess
from tests.real_servers import app_env

# 120 users, 400 items, ~4,800 signals: about 15 s end to end on a 2-core machine, most of it the
# collaborative retrain and 80 users × 7 strategies of rankings.
WORLD = ["--world-users", "120", "--world-items", "400", "--topics", "6", "--days", "7", "--signals-per-user", "40",
         "--seed", "0"]
EVALUATED = 80


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("evaluation-server")
    with ServerProcess(data_dir=tmp / "data", env=app_env(tmp)) as proc:  # content features off
        yield proc.url


def test_the_blend_beats_every_single_component_on_a_planted_world(server: str, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "figures.json"
    assert main(["--url", server, *WORLD, "--users", str(EVALUATED), "--json", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    figures = orjson.loads(out.read_bytes())
    scores = figures["scores"]
    assert {"enhanced", "learned", *COMPONENTS} <= set(scores)
    assert figures["users_evaluated"] == EVALUATED and figures["content_features"] is False
    for name, s in scores.items():
        assert s["users"] == EVALUATED, name
        for metric in ("ndcg", "recall", "coverage"):
            assert 0.0 <= s[metric] <= 1.0, (name, metric, s[metric])
        assert f"\n{name} " in printed  # one table row per strategy
    ndcg = {name: s["ndcg"] for name, s in scores.items()}
    for component in COMPONENTS:
        assert ndcg["enhanced"] > ndcg[component], f"enhanced does not beat {component}: {ndcg}"
    assert figures["verdicts"]["enhanced"]["beats_every_component"] is True
    assert "enhanced beats every single component on NDCG@10: yes" in printed
    # Personalised components find the user's held-out items; the newest items are not them.
    personal = ["collaborative", "user_interests"]
    if not scores["content_based"]["silent"]:  # content features off: content_based has nothing to say
        personal.append("content_based")
    for component in personal:
        assert ndcg[component] > ndcg["freshness"], f"{component} does not beat freshness: {ndcg}"
    # Every collaborative member alone, fitted in process on the same split, with what its tuning chose.
    assert {"member:ease", "member:als", "member:popularity", "member:ensemble"} <= set(scores)
    assert figures["members"]["tuning"]["ease"]["params"]["l2"] > 0
    assert "members tuned on a holdout of the training signals: " in printed and "ease: l2=" in printed
    assert figures["default_strategy"] == "learned" and "learned (default) " in printed
    verdict = figures["verdicts"]["default"]
    assert verdict["best_member"].startswith("member:") and verdict["best_member"] != "member:ensemble"
    assert "the default strategy (learned) >= the best single member on NDCG@10: " in printed


def test_the_learned_blend_beats_every_single_component_on_the_default_world(tmp_path: Path) -> None:
    """The default synthetic world (500 users, 2,000 items, ~30,000 signals; about 50 s): the
    weights fitted on the rankings logged part-way beat every component alone. (The spec's fixed
    weights do not here: their 0.25 on real_time costs more than the other components add.)"""
    out = tmp_path / "figures.json"
    with ServerProcess(data_dir=tmp_path / "data", env=app_env(tmp_path)) as proc:
        assert main(["--url", proc.url, "--strategies", ",".join(("learned", *COMPONENTS)),
                     "--json", str(out), "--no-progress", "--no-members"]) == 0
    figures = orjson.loads(out.read_bytes())
    assert any(line.startswith("blend.last_job: fitted") for line in figures["training"]), figures["training"]
    ndcg = {name: s["ndcg"] for name, s in figures["scores"].items()}
    for component in COMPONENTS:
        assert ndcg["learned"] > ndcg[component], f"learned does not beat {component}: {ndcg}"


def test_an_unknown_strategy_stops_before_replaying_with_one_line(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", server, *WORLD, "--strategies", "enhanced,nope", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("[") for line in err[:-1]) and not any("replayed" in line for line in err)
    assert err[-1].startswith("python -m overdrive.evaluation: error: unknown strategy nope; the service offers enhanced")


@pytest.mark.parametrize("argv, message", [
    (["--data", "/no/such/folder", "--format", "movielens"], "--data /no/such/folder: no such file or folder"),
    (["--holdout", "1.5"], "--holdout must be within (0, 1)"),
    (["--world-items", "2", "--topics", "4"], "synthetic world: need n_users >= 1"),
    (["--url", "http://127.0.0.1:9", "--start-server"], "--url and --start-server exclude each other"),
    (["--candidates", "everything"], "argument --candidates: invalid choice"),
])
def test_a_bad_option_or_dataset_is_one_line_and_exit_2(argv: list[str], message: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_a_bad_row_names_the_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "items.jsonl").write_text('{"id": "a"}\n')
    (tmp_path / "signals.jsonl").write_text('{"user_id": "u", "content_id": "a", "timestamp": 1}\n{"user_id": "u"\n')
    assert main(["--data", str(tmp_path), "--format", "jsonl"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "signals.jsonl, line 2" in err[0], err


def _sig(user: str, item: str, ts: float, kind: str = "view") -> dict:
    return {"user_id": user, "content_id": item, "signal_type": kind, "timestamp": ts}


def test_the_split_holds_out_each_users_last_positive_items() -> None:
    signals = [_sig("u", f"i{n}", float(n)) for n in range(10)]  # u: ten items viewed in turn
    signals += [_sig("u", "i8", 8.5, "dislike"),  # i8 ends net negative: held out, not relevant
                _sig("u", "i3", 9.5, "like"),  # i3 was seen in training: not relevant
                _sig("u", "x", 6.5, "skip")]  # a skip is not positive: it stays in training
    signals += [_sig("v", f"j{n}", float(n)) for n in range(3)]  # v: too little history
    split = split_by_time(signals, ReplayOptions(holdout=0.3, min_positives=5))
    assert split.relevant == {"u": frozenset({"i7", "i9"})}
    assert split.seen == {"u": frozenset({*(f"i{n}" for n in range(7)), "x"})}
    assert split.users_split == 1 and split.heldout_signals == 5
    assert [s["timestamp"] for s in split.train] == sorted(s["timestamp"] for s in split.train)
    assert len(split.train) == len(signals) - 5
    last_two = split_by_time(signals, ReplayOptions(last_k=2, min_positives=5))
    assert last_two.relevant == {"u": frozenset({"i9"})}  # i8, i9 held out; i8 net negative
    with pytest.raises(BadInput, match="no timestamp"):
        split_by_time([{"user_id": "u", "content_id": "a", "signal_type": "view"}], ReplayOptions())
