"""The soak with faults, short (issue 21, item 3): `benchmarks.soak` in embedded mode for ~40 s of
mixed load with one SIGKILL of the API and a restart on the same data folder.

Every acknowledged signal is counted (none lost); a signal acknowledged under one id is counted once;
no 5xx and no refused connection outside the fault window (inside it: only 503 with Retry-After).
No timing is asserted: the waits are on conditions (readiness, counts settling), so a loaded CI
machine makes it slower, not red. Embedded mode needs nothing external.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.soak import SoakConfig, render, run

pytestmark = pytest.mark.timeout(600)


def test_short_soak_with_one_api_kill_loses_and_double_counts_nothing(tmp_path: Path) -> None:
    rep = run(SoakConfig(mode="embedded", seconds=40, api_kills=1, id_users=20, noid_users=6, items=120,
                         workdir=tmp_path, verbose=False))
    text = render(rep)
    print(text)
    assert [w["kind"] for w in rep.windows] == ["api-sigkill"], text
    assert rep.windows[0]["end_s"] > rep.windows[0]["start_s"], text
    assert rep.acked_with_id > 0 and rep.acked_without_id > 0, text
    assert rep.lost == 0, text
    assert rep.double_counted_with_id == 0, text
    assert rep.double_counted_without_id == 0, text
    assert rep.http_5xx_outside == 0, text
    assert rep.http_5xx_inside_bad == 0, text
    assert rep.transport_errors_outside == 0, text
    assert rep.unexpected_4xx == 0, text
    assert rep.counted >= rep.acked_signals, text
    assert rep.retrains, text
    assert rep.rss_kib.get("api0", {}).get("restarts") == 1, text
