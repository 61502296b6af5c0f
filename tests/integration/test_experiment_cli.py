"""`python -m overdrive.evaluation.experiment`: simulated users with planted tastes against a real
server; an A/B test and a smaller interleaving test both name the personalised arm the winner."""

from __future__ import annotations

import pytest

from overdrive.evaluation.experiment import main


def test_both_experiment_kinds_find_the_planted_winner(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--ab-users", "1500", "--interleaving-users", "300"])
    out = capsys.readouterr().out
    assert "A/B (1500 users" in out and "interleaving (300 users)" in out, out
    assert status == 0, out  # collaborative beats freshness at p < 0.05 in both, interleaving on a fifth of the users
