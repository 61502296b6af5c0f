"""Signal ingest: a 2xx means the signals are on disk."""

from __future__ import annotations

import time

from fastapi import APIRouter

from overdrive.api.deps import HeaderContextDep, ServicesDep
from overdrive.api.security import Allowed
from overdrive.api.schemas import SignalAck, SignalBatchIn, SignalIn

router = APIRouter(prefix="/signals", tags=["signals"])


@router.post("/process", response_model=SignalAck, dependencies=[Allowed("signals:write")])
async def process_signal(signal: SignalIn, services: ServicesDep, device: HeaderContextDep) -> SignalAck:
    """One signal from the user's device: its context is the body's, completed from the request's
    User-Agent and client hints."""
    started = time.perf_counter()
    result = await services.signals.ingest([signal.to_domain(time.time(), device)])
    return SignalAck(accepted=result.accepted, duplicates=result.duplicates, processing_time_ms=(time.perf_counter() - started) * 1000)


@router.post("/batch", response_model=SignalAck, dependencies=[Allowed("signals:write")])
async def process_batch(batch: SignalBatchIn, services: ServicesDep) -> SignalAck:
    """Up to 10,000 signals, stored all-or-nothing. A batch comes from a backend, not the users'
    devices: each signal's context is its body's alone."""
    started = time.perf_counter()
    now = time.time()
    result = await services.signals.ingest([s.to_domain(now) for s in batch.signals])
    return SignalAck(accepted=result.accepted, duplicates=result.duplicates, processing_time_ms=(time.perf_counter() - started) * 1000)
