"""Client text cannot forge log lines: control characters are written escaped."""

from __future__ import annotations

import logging

from overdrive.observability.logs import EscapingFormatter


def test_a_record_is_one_line_whatever_the_client_sent() -> None:
    record = logging.LogRecord("overdrive.api", logging.WARNING, __file__, 1, "unknown user %s",
                               ("eve\n2026-12-06 INFO overdrive granted admin\x1b[31m\u2028",), None)
    line = EscapingFormatter("%(levelname)s %(message)s").format(record)
    assert "\n" not in line and "\x1b" not in line and "\u2028" not in line
    assert line == "WARNING unknown user eve\\n2026-12-06 INFO overdrive granted admin\\x1b[31m\\u2028"


def test_errors_logged_while_the_writer_thread_writes_never_deadlock() -> None:
    """An ERROR is written at once from the logging thread while the batch thread writes too; the
    two once took two locks in opposite orders and hung a server for good."""
    import io
    import threading
    import time

    from overdrive.observability.logs import BatchingHandler

    handler = BatchingHandler(io.StringIO(), interval_s=0.0001)
    logger = logging.getLogger("overdrive.test.deadlock")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        def hammer() -> None:
            until = time.monotonic() + 1.0
            while time.monotonic() < until:
                logger.info("queued")
                logger.error("written at once")

        threads = [threading.Thread(target=hammer, daemon=True) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in threads), "logging deadlocked"
    finally:
        logger.removeHandler(handler)
        handler.close()
