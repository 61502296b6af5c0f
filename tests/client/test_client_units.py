"""The client's pieces on their own: waits, error mapping, ids, and which calls are repeated after
a lost answer (against a socket that reads each request and hangs up without answering)."""

from __future__ import annotations

import email.utils
import os
import random
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from overdrive_client import (BadRequest, Client, ConnectionFailed, NotFound, RateLimited, Retry, ServerError,
                              Unavailable, new_signal_id)
from overdrive_client.errors import error_for, retry_after
from overdrive_client.ids import with_id


def _response(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=body, headers=headers, request=httpx.Request("POST", "http://od/signals/batch"))


def test_waits_honour_retry_after_with_jitter_and_double_without() -> None:
    retry = Retry(base_s=0.25, max_s=4.0, rng=random.Random(1))
    for attempt in range(5):
        wait = retry.delay(attempt, retry_after=2.0)
        assert 2.0 <= wait <= 2.25  # at least what the service asked, plus up to base_s of jitter
    backoff = [retry.delay(n) for n in range(7)]
    for n, wait in enumerate(backoff):
        full = min(0.25 * 2**n, 4.0)
        assert full / 2 <= wait <= full
    assert Retry(max_retry_after_s=5.0).delay(0, retry_after=3600.0) <= 5.25  # a silly hint is capped


def test_retry_after_as_seconds_or_http_date() -> None:
    assert retry_after(_response(429, headers={"Retry-After": "3"})) == 3.0
    assert retry_after(_response(429)) is None
    in_30_s = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28.0 <= retry_after(_response(503, headers={"Retry-After": in_30_s})) <= 30.0


def test_error_statuses_map_to_their_types_with_the_service_words() -> None:
    body = b'{"error":"validation_error","message":"signals[3].signal_type: bad","errors":[{"field":"signals[3].signal_type","message":"bad","type":"enum"}]}'
    refused = error_for(_response(422, body))
    assert isinstance(refused, BadRequest) and refused.errors == [{"field": "signals[3].signal_type", "message": "bad"}]
    assert "POST /signals/batch answered 422: signals[3].signal_type: bad" in str(refused)
    assert isinstance(error_for(_response(429, b"{}", {"Retry-After": "1"})), RateLimited)
    assert error_for(_response(503, b"{}", {"Retry-After": "2"})).retry_after == 2.0
    assert isinstance(error_for(_response(503)), Unavailable)
    assert isinstance(error_for(_response(404, b'{"error":"not_found","message":"no item"}')), NotFound)
    assert isinstance(error_for(_response(500, b"<html>")), ServerError)


def test_ids_are_unique_across_threads_and_forks() -> None:
    seen: list[str] = []
    lock = threading.Lock()

    def draw() -> None:
        mine = [new_signal_id() for _ in range(10_000)]
        with lock:
            seen.extend(mine)

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 40_000
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a new prefix
        os.write(write, new_signal_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 200).decode()
    assert child.rsplit("-", 1)[0] != new_signal_id().rsplit("-", 1)[0]
    signal = {"user_id": "u", "signal_type": "view", "content_id": "c"}
    assert with_id(signal) is not signal and "signal_id" not in signal  # the caller's dict left alone
    kept = {**signal, "signal_id": "mine"}
    assert with_id(kept) is kept  # type: ignore[arg-type]


@pytest.fixture
def hangs_up() -> Iterator[tuple[str, list[int]]]:
    """A socket that reads each request and closes the connection without an answer."""
    server = socket.create_server(("127.0.0.1", 0))
    requests: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                requests.append(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", requests
    stop.set()
    thread.join()
    server.close()


def test_a_lost_answer_is_retried_only_where_repeating_is_safe(hangs_up: tuple[str, list[int]]) -> None:
    url, requests = hangs_up
    with Client(url, retry=Retry(attempts=2, base_s=0.01, max_s=0.02)) as od:
        with pytest.raises(ConnectionFailed, match="after 2 retries"):
            od.get_experiment("e1")  # a read: repeated
        assert len(requests) == 3
        requests.clear()
        with pytest.raises(ConnectionFailed) as once:
            od.create_experiment({"name": "x", "arms": [{"name": "a"}]})  # could create two: not repeated
        assert len(requests) == 1 and once.value.retries == 0
        requests.clear()
        with pytest.raises(ConnectionFailed):
            od.send_signals([{"user_id": "u", "signal_type": "view", "content_id": "c"}])  # ids make it safe
        assert len(requests) == 3
