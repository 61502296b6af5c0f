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
