"""The process's log lines: JSON lines (one object a record) or human text, never forgeable.

Every record carries `timestamp` (UTC, ISO 8601, milliseconds), `level`, `logger` and `message`,
then its context: `request_id` (from the record, or else from the request being served — see
`overdrive.observability.context`) and whatever the call passed in `extra=` (`user_id`,
`ranking_method`, `processing_time_ms`, …). Uvicorn's access records become fields too (`client`,
`method`, `path`, `status`, `processing_time_ms`).

Client text cannot forge a line in either format: JSON escapes every control character (and this
formatter escapes the C1 controls and U+2028/U+2029 that JSON itself allows raw), and the text
format writes every control character escaped, so one record is always one line.

`configure(level, fmt)`: `fmt` is `json`, `text`, or `auto` — text on a terminal, JSON otherwise.
Lines are written in batches by a thread of their own (`BatchingHandler`), at most 0.1 s late.
"""

from __future__ import annotations

import atexit
import logging
import re
import sys
import threading
import time
from collections import deque
from typing import Any, TextIO

import orjson

from overdrive.observability.context import request_id as _request_id
from overdrive.observability.context import request_started as _request_started

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_JSON_RAW = re.compile(r"[\x7f-\x9f\u2028\u2029]")  # what JSON leaves unescaped but a terminal or a log viewer may not
FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
FORMATS = ("auto", "json", "text")

# Attributes every LogRecord has: anything else on a record came from `extra=`.
# (uvicorn passes `color_message`, its own message with ANSI colours: left out.)
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName",
                                                                              "color_message"}
_ACCESS_LOGGER = "uvicorn.access"


def _escaped(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def _json_escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def context_of(record: logging.LogRecord) -> dict[str, Any]:
    """The record's context fields: request id first, then `extra=` ones, then an access record's."""
    fields = record.__dict__
    context: dict[str, Any] = {}
    rid = fields.get("request_id") or _request_id.get()
    if rid:
        context["request_id"] = rid
    extra = fields.keys() - _STANDARD  # a set difference in C: most records have no extras
    if extra:
        extra.discard("request_id")
        for key in fields:  # in the order the call gave them
            if key in extra:
                context[key] = fields[key]
    if record.name == _ACCESS_LOGGER and isinstance(record.args, tuple) and len(record.args) == 5:
        client, method, path, http_version, status = record.args
        context.update(client=client, method=method, path=path, http_version=http_version, status=status)
        started = _request_started.get()
        if started is not None:
            context["processing_time_ms"] = round((time.perf_counter() - started) * 1000.0, 3)
    return context


class EscapingFormatter(logging.Formatter):
    """Text: `FORMAT`, then ` key=value` for each context field; control characters escaped."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = context_of(record)
        if context:
            line += "".join(f" {k}={v}" for k, v in context.items())
        return _CONTROL.sub(_escaped, line)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._prefix = ""

    def _timestamp(self, created: float) -> str:
        second = int(created)
        if second != self._second:  # one strftime per second, not per record
            self._second, self._prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "timestamp": self._timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(context_of(record))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        line = orjson.dumps(out, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        return _JSON_RAW.sub(_json_escaped, line) if _JSON_RAW.search(line) else line


_deferred: deque[tuple[logging.Logger, int, str, dict[str, Any], float]] = deque()
_deferring = False  # a BatchingHandler is configured: its thread makes the deferred records


class DeferredLogger:
    """A logger for a hot path: `log` keeps the call's level, message and extra fields, with the
    time, and the log writer's thread makes and handles the record (the same record, handlers and
    format as `logger.log`, made a little later). Without a `BatchingHandler` configured (tests, a
    host application's own logging) it logs at once."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - the logging API's spelling
        return self.logger.isEnabledFor(level)

    def log(self, level: int, msg: str, extra: dict[str, Any]) -> None:
        if _deferring:
            _deferred.append((self.logger, level, msg, extra, time.time()))
        else:
            self.logger.log(level, msg, extra=extra)


def _make_deferred() -> None:
    """Turn the deferred calls into records, as if logged when they were called."""
    while True:
        try:
            logger, level, msg, extra, created = _deferred.popleft()
        except IndexError:
            return
        record = logger.makeRecord(logger.name, level, "(deferred)", 0, msg, (), None, extra=extra)
        record.created, record.msecs = created, (created - int(created)) * 1000.0
        logger.handle(record)


class BatchingHandler(logging.Handler):
    """Writes records in batches, off the caller's path: `emit` only notes the request's context on
    the record and queues it; a thread formats and writes what is queued every `interval_s` (one
    write for the batch), at once for a record at `flush_level` or above, and at exit.

    Formatting a record where it is logged — between two rankings, with caches full of their
    data — costs several times what it costs in a batch, and a request would pay for it. A record
    is written at most `interval_s` after it is logged (its timestamp is when it was logged; lines
    logged by the batch thread of another handler may interleave out of order), and a killed
    process loses at most that much. Arguments are formatted late: log values, not objects that
    change afterwards.
    """

    def __init__(self, stream: TextIO, *, interval_s: float = 0.1, flush_level: int = logging.ERROR,
                 capacity: int = 10_000) -> None:
        super().__init__()
        self.stream = stream
        self._interval_s = interval_s
        self._flush_level = flush_level
        self._capacity = capacity
        self._queued: list[logging.LogRecord] = []
        # Lock order, everywhere: the handler's own lock (held by Handler.handle around emit, and by
        # logging.shutdown) → _write_lock → _queue_lock. Swapping the queue under the handler's lock
        # inside _write_lock deadlocked a server: the writer thread held _write_lock and waited for
        # the handler's lock, which the loop held while an ERROR record (asyncio's "accept() out of
        # system resource") waited for _write_lock.
        self._write_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def emit(self, record: logging.LogRecord) -> None:
        fields = record.__dict__
        if "request_id" not in fields:  # the context is this thread's, now: note it on the record
            record.request_id = _request_id.get()
        if record.name == _ACCESS_LOGGER and "processing_time_ms" not in fields:
            started = _request_started.get()
            if started is not None:
                record.processing_time_ms = round((time.perf_counter() - started) * 1000.0, 3)
        with self._queue_lock:
            self._queued.append(record)
            queued = len(self._queued)
        if record.levelno >= self._flush_level or queued >= self._capacity:
            self._write()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            _make_deferred()
            self._write()

    def _write(self) -> None:
        with self._write_lock:
            with self._queue_lock:
                batch, self._queued = self._queued, []
            if not batch:
                return
            lines = []
            for record in batch:
                try:
                    lines.append(self.format(record))
                except Exception:  # a record that cannot be formatted is reported, the rest written
                    self.handleError(record)
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # the stream is gone (closed at exit): nothing to write to
                pass

    def flush(self) -> None:
        self._write()

    def close(self) -> None:
        global _deferring
        self._stop.set()
        _make_deferred()
        self._write()
        _deferring = False
        super().close()


def chosen_format(fmt: str, stream: TextIO) -> str:
    """`auto` is text on a terminal and JSON anywhere else."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {FORMATS}, not {fmt!r}")
    if fmt != "auto":
        return fmt
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):
        return "json"


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else EscapingFormatter(FORMAT)


def configure(level: str, fmt: str = "auto", *, stream: TextIO | None = None) -> str:
    """The process's logging: one line per record on stderr (JSON or text, see `chosen_format`),
    uvicorn's loggers included. Returns the format chosen."""
    stream = stream if stream is not None else sys.stderr
    chosen = chosen_format(fmt, stream)
    for old in logging.getLogger().handlers:
        if isinstance(old, BatchingHandler):
            old.close()
    handler = BatchingHandler(stream)
    handler.setFormatter(formatter(chosen))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    global _deferring
    _deferring = True
    # No formatter here prints where a call was made from, nor the thread or process: skip
    # finding them for every record (the logging HOWTO's "Optimization" section).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    return chosen
