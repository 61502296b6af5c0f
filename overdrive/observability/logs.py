"""Log lines that client text cannot forge: every control character of a formatted record (a
newline in a user id, an ANSI escape) is written escaped, so one record is always one line."""

from __future__ import annotations

import logging
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def _escaped(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


class EscapingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return _CONTROL.sub(_escaped, super().format(record))


def configure(level: str) -> None:
    """The process's logging: one escaped line per record on stderr, uvicorn's loggers included."""
    handler = logging.StreamHandler()
    handler.setFormatter(EscapingFormatter(FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
