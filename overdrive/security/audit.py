"""The audit trail: one sealed record per access to a user's data, erasure, admin action and auth
failure, in a hash chain any process can verify (`python -m overdrive.admin audit verify`).

Targets are typed text: `user:<id>`, `item:<id>`, `models`, `keys`, `audit`. Outcomes: `ok`,
`refused` (401), `forbidden` (403), `failed`. A read of a user's data is refused (503) when its
record cannot be stored: no access goes unrecorded. An auth failure that cannot be recorded is
logged instead, so an unreachable store never turns a 401 into a 503.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from overdrive.domain.audit import first_break
from overdrive.domain.errors import BackendUnavailable
from overdrive.store.protocols import AuditLog

log = logging.getLogger(__name__)


def user_target(user_id: str) -> str:
    return f"user:{user_id}"


class AuditTrail:
    def __init__(self, log_: AuditLog) -> None:
        self._log = log_

    async def record(self, *, principal: str, action: str, target: str | None, request_id: str = "",
                     outcome: str = "ok", detail: dict[str, Any] | None = None) -> dict:
        return await self._log.append({
            "at": time.time(), "principal": principal, "action": action, "target": target,
            "request_id": request_id, "outcome": outcome, "detail": detail or {},
        })

    async def record_quietly(self, **fields: Any) -> None:
        """`record`, logging (not raising) a store that cannot take it."""
        try:
            await self.record(**fields)
        except BackendUnavailable as exc:
            log.warning("audit record %r not stored: %s", fields.get("action"), exc)

    async def query(self, **filters: Any) -> list[dict]:
        return await self._log.query(**filters)

    def records(self) -> Iterator[dict]:
        for batch in self._log.scan():
            yield from batch

    def verify(self) -> dict[str, Any]:
        """Walk the whole chain: how many records, the head's hash, and the first break if any."""
        count, head = 0, None

        def counted() -> Iterator[dict]:
            nonlocal count, head
            for record in self.records():
                count, head = count + 1, record.get("hash")
                yield record

        broken = first_break(counted())
        out: dict[str, Any] = {"records": count, "head": head, "intact": broken is None}
        if broken is not None:
            out["broken_at"], out["reason"] = broken
        return out
