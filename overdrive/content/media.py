"""Fetch an item's media (file path, data URL or http(s) URL) as bytes, within limits.

Every source is held to the same rules: at most `max_bytes`, a content type of the expected kind
(``image/*`` for images; ``audio/*`` or ``application/ogg`` for audio; ``video/*`` or
``application/mp4`` for video; ``application/octet-stream`` or an unknown file extension is let
through and left to the decoder to judge), and for http(s) one deadline of `timeout_s` for the
whole download, checked while streaming so a slow or endless body cannot hold an ingest worker.
File paths can be confined to `file_roots`, since item URLs come from API callers.
Failures raise `MediaError` (an `InvalidInput` naming the field), never a third-party exception.
"""

from __future__ import annotations

import base64
import binascii
import logging
import mimetypes
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from overdrive.domain.errors import InvalidInput

log = logging.getLogger(__name__)

_KIND_TYPES: dict[str, tuple[str, ...]] = {
    "image": ("image/",),
    "audio": ("audio/", "application/ogg"),
    "video": ("video/", "application/mp4"),
}
_ANY_TYPES = ("application/octet-stream", "")


class MediaError(InvalidInput):
    """Media could not be fetched or is not acceptable (too big, wrong type, timed out, …)."""


@dataclass(frozen=True, slots=True)
class Media:
    """Fetched media bytes and the content type they were served or named with."""

    data: bytes
    content_type: str
    source: str  # "file" | "data" | "http"


class MediaLoader:
    """Loads media references under a size limit, a deadline and a content-type check."""

    def __init__(
        self,
        *,
        max_bytes: int = 50 * 1024 * 1024,
        timeout_s: float = 10.0,
        file_roots: Sequence[Path] | None = None,
        allow_http: bool = True,
        client: httpx.Client | None = None,
    ) -> None:
        if max_bytes <= 0 or timeout_s <= 0:
            raise ValueError("max_bytes and timeout_s must be > 0")
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s
        self._roots = None if file_roots is None else tuple(Path(r).resolve() for r in file_roots)
        self._allow_http = allow_http
        self._client = client
        self._own_client = client is None

    def load(self, ref: str, *, kind: str, field: str | None = None) -> Media:
        """The bytes behind `ref`; raises `MediaError` naming `field` when they are unusable."""
        if kind not in _KIND_TYPES:
            raise ValueError(f"unknown media kind {kind!r}")
        ref = ref.strip()
        if ref.startswith("data:"):
            media = self._from_data_url(ref, field)
        elif ref.startswith(("http://", "https://")):
            media = self._from_http(ref, kind, field)
        elif "://" in ref[:16]:
            raise MediaError(f"unsupported URL scheme in {ref[:32]!r}", field=field)
        else:
            media = self._from_file(ref, field)
        _check_type(media.content_type, kind, field)
        return media

    def close(self) -> None:
        if self._client is not None and self._own_client:
            self._client.close()
            self._client = None

    def _from_data_url(self, ref: str, field: str | None) -> Media:
        header, sep, payload = ref[5:].partition(",")
        if not sep:
            raise MediaError("malformed data URL (no comma)", field=field)
        parts = header.split(";")
        content_type = parts[0].strip().lower()
        is_b64 = "base64" in (p.strip().lower() for p in parts[1:])
        # Reject before decoding: base64 inflates by 4/3, so this bounds the work too.
        if len(payload) * (3 / 4 if is_b64 else 1 / 3) > self._max_bytes:
            raise MediaError(f"media larger than {self._max_bytes} bytes", field=field)
        try:
            data = base64.b64decode(payload, validate=False) if is_b64 else urllib.parse.unquote_to_bytes(payload)
        except (binascii.Error, ValueError) as exc:
            raise MediaError(f"malformed data URL: {exc}", field=field) from exc
        if len(data) > self._max_bytes:
            raise MediaError(f"media larger than {self._max_bytes} bytes", field=field)
        return Media(data=data, content_type=content_type, source="data")

    def _from_file(self, ref: str, field: str | None) -> Media:
        path = Path(ref[7:] if ref.startswith("file://") else ref).expanduser().resolve()
        if self._roots is not None and not any(path.is_relative_to(root) for root in self._roots):
            raise MediaError("file path outside the allowed media folders", field=field)
        try:
            size = path.stat().st_size
            if size > self._max_bytes:
                raise MediaError(f"media larger than {self._max_bytes} bytes", field=field)
            data = path.read_bytes()
        except OSError as exc:
            raise MediaError(f"cannot read media file: {exc.strerror or exc}", field=field) from exc
        content_type = (mimetypes.guess_type(path.name)[0] or "").lower()
        return Media(data=data, content_type=content_type, source="file")

    def _from_http(self, url: str, kind: str, field: str | None) -> Media:
        if not self._allow_http:
            raise MediaError("http(s) media URLs are disabled", field=field)
        if self._client is None:
            self._client = httpx.Client(follow_redirects=True, max_redirects=3)
        deadline = time.monotonic() + self._timeout_s
        try:
            with self._client.stream("GET", url, timeout=self._timeout_s) as resp:
                if resp.status_code != 200:
                    raise MediaError(f"media URL answered HTTP {resp.status_code}", field=field)
                content_type = resp.headers.get("content-type", "").split(";")[0].strip().lower()
                _check_type(content_type, kind, field)  # before reading a byte of the body
                declared = resp.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > self._max_bytes:
                    raise MediaError(f"media larger than {self._max_bytes} bytes", field=field)
                chunks, total = [], 0
                for chunk in resp.iter_bytes():
                    total += len(chunk)
                    if total > self._max_bytes:
                        raise MediaError(f"media larger than {self._max_bytes} bytes", field=field)
                    if time.monotonic() > deadline:
                        raise MediaError(f"media download exceeded {self._timeout_s:g} s", field=field)
                    chunks.append(chunk)
        except httpx.TimeoutException as exc:
            raise MediaError(f"media download exceeded {self._timeout_s:g} s", field=field) from exc
        except httpx.HTTPError as exc:
            raise MediaError(f"cannot fetch media: {type(exc).__name__}", field=field) from exc
        log.debug("fetched %s (%d bytes, %s)", url, total, content_type)
        return Media(data=b"".join(chunks), content_type=content_type, source="http")


def _check_type(content_type: str, kind: str, field: str | None) -> None:
    if content_type in _ANY_TYPES or content_type.startswith(_KIND_TYPES[kind]):
        return
    raise MediaError(f"content type {content_type!r} is not {kind}", field=field)
