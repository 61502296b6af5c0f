"""The SignalBus seam: durable publication of signals, and read-your-writes for ranking."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from overdrive.domain.types import Signal


class SignalBus(Protocol):
    async def publish(self, signals: Sequence[Signal]) -> list[Signal]:
        """Make the signals durable and hand them on for processing; return those accepted.

        When this returns, the signals survive a crash of this process. Raises `Overloaded` when
        processing is too far behind (nothing is written then), `BackendUnavailable` when the
        durable medium cannot take them.
        """

    async def settled(self, user_id: str, *, timeout_s: float) -> bool:
        """Wait until every signal published for this user is reflected in the live state."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...
