"""Times as the service takes them: epoch seconds (a number or numeric text) or ISO 8601 text.

Any real date is accepted, before 1970 too (an archive of old films or books is a real catalog);
only the absurd is refused: before the year 1, or more than a day in the future (clock skew).
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from typing import Any

EARLIEST = datetime(1, 1, 1, tzinfo=timezone.utc).timestamp()
MAX_FUTURE_SKEW_S = 86_400.0


def epoch_seconds(value: Any, *, now: float | None = None) -> float:
    """`value` as epoch seconds (naive ISO datetimes are UTC); `ValueError` saying what is wrong."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("must be ISO 8601 text or epoch seconds")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                raise ValueError("must be ISO 8601 text or epoch seconds") from None
            value = (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()
    ts = float(value)
    if not math.isfinite(ts) or ts < EARLIEST:
        raise ValueError("must be a finite time from the year 1 on")
    if ts > (time.time() if now is None else now) + MAX_FUTURE_SKEW_S:
        raise ValueError("must not be more than a day in the future")
    return ts
