"""Admission and the load shedder: past the bound a request is answered 503 with Retry-After, the
admitted ones are released when done, other routes are never counted."""

from __future__ import annotations

import asyncio

import orjson

from overdrive.api.admission import SCOPE_KEY, Admission, LoadShedder

RANK = ("POST", "/rank/for-you/enhanced")


def _admission(bound: int = 2) -> Admission:
    return Admission({RANK: ("rankings", bound), ("POST", "/signals/process"): ("signal writes", 0)}, retry_after_s=3)


def test_past_the_bound_requests_are_shed_until_one_leaves() -> None:
    admission = _admission(2)
    assert admission.enter(*RANK) == ("rankings", True)
    assert admission.enter(*RANK) == ("rankings", True)
    assert admission.enter(*RANK) == ("rankings", False)
    admission.leave("rankings")
    assert admission.enter(*RANK) == ("rankings", True)
    assert admission.shed == {"rankings": 1}


def test_unguarded_routes_and_a_zero_bound_are_not_counted() -> None:
    admission = _admission(1)
    assert admission.enter("GET", "/health/live") is None
    assert admission.enter("POST", "/signals/process") is None  # bound 0: no limit
    assert admission.enter("GET", "/rank/for-you/enhanced") is None


def _scope(method: str, path: str) -> dict:
    return {"type": "http", "method": method, "path": path, "headers": []}


async def _call(app, scope: dict) -> tuple[int, dict[bytes, bytes], bytes]:  # noqa: ANN001 - an ASGI app
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


def test_a_burst_of_concurrent_rankings_gets_503s_with_retry_after_and_no_other_errors() -> None:
    admission = _admission(3)
    release = asyncio.Event()

    async def ranker(scope, receive, send) -> None:  # noqa: ANN001 - the ASGI signature
        if scope["path"] == "/rank/for-you/enhanced":
            await release.wait()  # held in flight until the burst is in
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    shedder = LoadShedder(ranker, admission=admission)

    async def burst() -> tuple[list, tuple]:
        tasks = [asyncio.create_task(_call(shedder, _scope(*RANK))) for _ in range(20)]
        await asyncio.sleep(0.01)
        live = await _call(shedder, _scope("GET", "/health/live"))  # answered while the rankings are held
        release.set()
        return await asyncio.gather(*tasks), live

    answers, live = asyncio.run(burst())
    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [200] * 3 + [503] * 17
    for status, headers, body in answers:
        if status == 503:
            assert headers[b"retry-after"] == b"3"
            assert orjson.loads(body)["error"] == "overloaded"
    assert live[0] == 200
    assert admission.in_flight == {"rankings": 0}  # every admitted one released


def test_a_request_the_protocol_counted_passes_the_shedder_without_being_counted_again() -> None:
    admission = _admission(1)

    async def app(scope, receive, send) -> None:  # noqa: ANN001 - the ASGI signature
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    shedder = LoadShedder(app, admission=admission)
    counted = _scope(*RANK) | {SCOPE_KEY: admission.enter(*RANK)}  # the protocol took the one slot
    assert asyncio.run(_call(shedder, counted))[0] == 200
    assert admission.in_flight == {"rankings": 1}  # the protocol's wrapper releases it, not the shedder
    assert asyncio.run(_call(shedder, _scope(*RANK)))[0] == 503  # one not counted yet: past the bound
