"""API keys from a file: each with an id, scopes, an optional expiry and rate; only hashes stored.

The file (`OVERDRIVE_API_KEYS_FILE`, JSON) holds `{"keys": [{"id", "sha256", "scopes",
"expires_at"?, "rate"?, "burst"?}]}`. A key is `odk_` followed by 43 random URL-safe characters
(256 bits), so a plain SHA-256 of it is as hard to reverse as the key is to guess; the service
compares digests, never keys. The file is re-read when it changes (checked at most once a
second), so keys are added, rotated and revoked without a restart. `python -m overdrive.admin
keys new` makes a key and appends its entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overdrive.domain.times import epoch_seconds
from overdrive.security.principal import SCOPES, Principal

log = logging.getLogger(__name__)

KEY_PREFIX = "odk_"
_RECHECK_S = 1.0


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyEntry:
    id: str
    sha256: str
    scopes: frozenset[str]
    expires_at: float | None = None
    rate: tuple[float, float] | None = None

    def principal(self) -> Principal:
        return Principal(id=f"key:{self.id}", scopes=self.scopes, rate=self.rate)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "sha256": self.sha256, "scopes": sorted(self.scopes)}
        if self.expires_at is not None:
            out["expires_at"] = self.expires_at
        if self.rate is not None:
            out["rate"], out["burst"] = self.rate
        return out


class KeyFileError(ValueError):
    """The keys file cannot be used; the message names the entry and the field."""


def read_key_file(path: Path) -> dict[str, KeyEntry]:
    """digest -> entry. Raises `KeyFileError` naming what is wrong."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise KeyFileError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise KeyFileError(f'{path}: expected {{"keys": [...]}}')
    entries: dict[str, KeyEntry] = {}
    for n, raw in enumerate(data["keys"]):
        entry = _entry(raw, f"{path}: keys[{n}]")
        if entry.sha256 in entries:
            raise KeyFileError(f"{path}: keys[{n}]: the same key twice")
        entries[entry.sha256] = entry
    return entries


def _entry(raw: object, where: str) -> KeyEntry:
    if not isinstance(raw, dict):
        raise KeyFileError(f"{where}: expected an object")
    key_id, digest, scopes = raw.get("id"), raw.get("sha256"), raw.get("scopes")
    if not isinstance(key_id, str) or not key_id:
        raise KeyFileError(f"{where}.id: expected non-empty text")
    if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise KeyFileError(f"{where}.sha256: expected 64 lowercase hex digits (the key's SHA-256)")
    if not isinstance(scopes, list) or not scopes or any(s not in SCOPES for s in scopes):
        raise KeyFileError(f"{where}.scopes: expected a non-empty list of {sorted(SCOPES)}")
    expires = raw.get("expires_at")
    try:
        expires_at = None if expires is None else epoch_seconds(expires, now=float("inf"))
    except ValueError as exc:
        raise KeyFileError(f"{where}.expires_at: {exc}") from None
    rate = raw.get("rate")
    if rate is not None and not (isinstance(rate, (int, float)) and rate > 0):
        raise KeyFileError(f"{where}.rate: expected requests per second > 0")
    burst = raw.get("burst", rate)
    return KeyEntry(id=key_id, sha256=digest, scopes=frozenset(scopes), expires_at=expires_at,
                    rate=None if rate is None else (float(rate), float(burst)))


class KeyRing:
    """The keys of the file, re-read when it changes. A file that turns bad keeps the last good
    keys serving (and says so in the log); one that is bad at start-up stops the start."""

    def __init__(self, path: Path, *, on_reload: Callable[[dict[str, Any]], None] | None = None) -> None:
        self._path = path
        self._on_reload = on_reload
        self._stamp = self._stat()
        self._entries = read_key_file(path)
        self._checked = time.monotonic()

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, key: str) -> KeyEntry | None:
        self._maybe_reload()
        return self._entries.get(key_digest(key))

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < _RECHECK_S:
            return
        self._checked = now
        stamp = self._stat()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            entries = read_key_file(self._path)
        except KeyFileError as exc:
            log.error("API keys file changed but cannot be used; the previous keys stay in force: %s", exc)
            return
        before = {e.id for e in self._entries.values()}
        after = {e.id for e in entries.values()}
        self._entries = entries
        log.info("API keys reloaded: %d keys", len(entries))
        if self._on_reload is not None:
            self._on_reload({"keys": len(entries), "added": sorted(after - before), "removed": sorted(before - after)})


def append_key(path: Path, entry: KeyEntry) -> None:
    """Add an entry to the keys file (created with mode 0600), replaced atomically."""
    entries = list(read_key_file(path).values()) if path.exists() else []
    if any(e.id == entry.id for e in entries):
        raise KeyFileError(f"{path}: a key with id {entry.id!r} exists already (revoke it first, or pick another id)")
    _write_key_file(path, [*entries, entry])


def remove_key(path: Path, key_id: str) -> None:
    """Take the key with this id out of the file (revocation takes effect within a second)."""
    entries = list(read_key_file(path).values())
    kept = [e for e in entries if e.id != key_id]
    if len(kept) == len(entries):
        raise KeyFileError(f"{path}: no key with id {key_id!r}")
    _write_key_file(path, kept)


def _write_key_file(path: Path, entries: list[KeyEntry]) -> None:
    data = {"keys": [e.to_json() for e in entries]}
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
