"""`python -m overdrive.models.collaborative_filtering --evaluate`: table and JSON output, the
synthetic default and the MovieLens reader, both protocols."""

from __future__ import annotations

import json
import subprocess
import sys

from overdrive.models.collaborative_filtering.__main__ import main

FAST = ["--users", "60", "--n-items", "80", "--interactions", "1500", "--methods", "popularity,item_cosine,ease",
        "--no-tune", "--no-progress"]
KEYS = {"model", "ndcg", "precision", "recall", "map", "coverage", "fit_seconds", "protocol", "protocol_description", "dataset"}


def test_json_lines_for_every_method_and_the_ensemble_under_both_protocols(capsys):
    assert main(["--evaluate", "--json", "--protocol", "all", *FAST]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["model"] for r in rows] == ["popularity", "item_cosine", "ease", "ensemble"] * 2
    assert {r["protocol"] for r in rows} == {"stratified", "leave-last-out"}
    for row in rows:
        assert KEYS <= set(row)
        assert 0.0 <= row["ndcg"] <= 1.0 and 0.0 < row["coverage"] <= 1.0
    assert "Recommenders" in rows[0]["protocol_description"]


def test_table_names_the_protocol(capsys):
    assert main(["--evaluate", *FAST]) == 0
    out = capsys.readouterr().out
    assert "per-user stratified random split 75%/25%" in out
    assert "NDCG@10" in out and "ensemble" in out and "ensemble weights" in out


def test_movielens_folder(tmp_path, capsys):
    ml = tmp_path / "ml-100k"
    ml.mkdir()
    genres = "|".join(["0"] * 19)
    (ml / "u.item").write_text("".join(f"{i}|Movie {i} (1995)|01-Jan-1995||http://x|{genres}\n" for i in range(1, 31)),
                               encoding="latin-1")
    ratings = [f"{u}\t{i}\t{1 + (u * i) % 5}\t{880000000 + u * 100 + i}\n"
               for u in range(1, 41) for i in range(1, 31) if (u + i) % 3 == 0 or (u < 20) == (i < 15)]
    (ml / "u.data").write_text("".join(ratings), encoding="latin-1")
    assert main(["--evaluate", "--data", str(ml), "--format", "movielens", "--json", "--no-progress", "--no-tune",
                 "--methods", "popularity,item_bm25,als"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["dataset"].startswith("movielens-100k")
    assert "relevance=all" in rows[0]["protocol_description"]  # every held-out rating counts, as published
    assert {r["model"] for r in rows} == {"popularity", "item_bm25", "als", "ensemble"}


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "overdrive.models.collaborative_filtering", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "--evaluate" in out and "--format" in out and "--json" in out
