"""One process at a time owns an embedded data folder (an advisory `flock`, freed by the OS
when the process dies, so a crash never leaves it held)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from overdrive.domain.errors import OverdriveError


class DataDirInUse(OverdriveError):
    """Another live process (a running service, a direct load) holds the data folder."""


class DataDirLock:
    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._path = data_dir / ".lock"
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataDirInUse(f"{self._path.parent} is in use by another Overdrive process") from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
