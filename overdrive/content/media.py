"""Fetch an item's media (file path, file: URL, data URL or http(s) URL) as bytes, within limits.

Item URLs come from API callers, so every source is confined before a byte is read:

* Local files are read only under `file_roots` — none by default: without roots every local path
  (and every ``file:`` URL) is refused. The path is resolved (symlinks followed) before the root
  check, so a link inside a root that points outside it is refused. The file is opened with
  ``O_NONBLOCK`` (a FIFO cannot stall the open) and ``O_NOFOLLOW``, and the opened descriptor must be
  a regular file (``fstat``; devices, pipes, sockets and folders are refused — a ``stat`` before
  opening also keeps device nodes from being opened at all). The size cap counts the bytes actually
  read — at most `max_bytes` + 1 are read — so a file whose ``stat`` size lies (``/proc``) is
  still bounded.
* Only the ``http``/``https``/``data``/``file`` schemes; anything else (``ftp:``, ``javascript:``…)
  is refused. A ``data:`` URL is size-checked before it is decoded.
* http(s) follows redirects here, never in the client (at most `max_redirects` hops), and at every
  hop checks the scheme, every address the host resolves to (``socket.getaddrinfo``) and the
  address the connection actually reached (the connection's ``server_addr``, checked before the
  body is read, which defeats DNS rebinding). Loopback, link-local, private, shared (CGNAT) and
  other non-global addresses are refused, IPv4 and IPv6 alike (IPv4-mapped, NAT64 and 6to4
  addresses are judged by the IPv4 address inside) — unless the host is in `allowed_hosts`
  (``host`` or ``host:port`` entries: an internal CDN) or `allow_private_networks` is set.
  Unspecified, multicast, broadcast and reserved addresses are refused always. The loader's own
  client uses no proxy from the environment, so the address checked is the server's.

Every source is then held to the same rules: at most `max_bytes`, a content type of the expected
kind (``image/*`` for images; ``audio/*`` or ``application/ogg`` for audio; ``video/*`` or
``application/mp4`` for video; ``application/octet-stream`` or an unknown file extension is let
through and left to the decoder to judge), and for http(s) one deadline of `timeout_s` for the
whole download, redirects included, checked while streaming so a slow or endless body cannot hold
an ingest worker. Failures raise `MediaError` (an `InvalidInput` naming the field), never a
third-party exception.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import mimetypes
import os
import re
import socket
import stat
import threading
import time
import urllib.parse
from collections.abc import Iterable, Sequence
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
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")  # RFC 3986: a reference that starts so names a scheme
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_READ_CHUNK = 64 * 1024
_OPEN_FLAGS = (os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
               | getattr(os, "O_NOCTTY", 0))
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
AddressType = ipaddress.IPv4Address | ipaddress.IPv6Address


class MediaError(InvalidInput):
    """Media could not be fetched or is not acceptable (too big, wrong type, timed out, refused…)."""


@dataclass(frozen=True, slots=True)
class Media:
    """Fetched media bytes and the content type they were served or named with."""

    data: bytes
    content_type: str
    source: str  # "file" | "data" | "http"


class MediaLoader:
    """Loads media references under the confinement, size limit, deadline and content-type check
    described in the module docstring. Thread-safe."""

    def __init__(
        self,
        *,
        max_bytes: int = 50 * 1024 * 1024,
        timeout_s: float = 10.0,
        file_roots: Sequence[Path | str] | None = None,
        allow_http: bool = True,
        allowed_hosts: Iterable[str] = (),
        allow_private_networks: bool = False,
        max_redirects: int = 3,
        client: httpx.Client | None = None,
    ) -> None:
        """`file_roots`: folders local files may be read from (None or empty: no local files).
        `allowed_hosts`: ``host`` or ``host:port`` entries (names or IP addresses, IPv6 in
        brackets with a port) that may be fetched even when they resolve to a private or loopback
        address. `allow_private_networks`: let every host resolve to such addresses."""
        if max_bytes <= 0 or timeout_s <= 0:
            raise ValueError("max_bytes and timeout_s must be > 0")
        if max_redirects < 0:
            raise ValueError("max_redirects must be >= 0")
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s
        self._roots = tuple(Path(r).expanduser().resolve() for r in (file_roots or ()))
        self._allow_http = allow_http
        self._allowed_hosts = frozenset(parse_host_entry(e) for e in allowed_hosts)
        self._allow_private = allow_private_networks
        self._max_redirects = max_redirects
        self._client = client
        self._own_client = client is None
        self._client_lock = threading.Lock()

    def load(self, ref: str, *, kind: str, field: str | None = None) -> Media:
        """The bytes behind `ref`; raises `MediaError` naming `field` when they are unusable."""
        if kind not in _KIND_TYPES:
            raise ValueError(f"unknown media kind {kind!r}")
        ref = ref.strip()
        match = _SCHEME.match(ref)
        scheme = match.group(1).lower() if match else None
        if scheme == "data":
            media = self._from_data_url(ref, field)
        elif scheme in ("http", "https"):
            media = self._from_http(ref, kind, field)
        elif scheme == "file":
            media = self._from_file(_file_url_path(ref, field), field)
        elif scheme is None:
            media = self._from_file(ref, field)
        else:
            raise MediaError(f"unsupported URL scheme {scheme + ':'!r} (http, https, data or file only)", field=field)
        _check_type(media.content_type, kind, field)
        return media

    def close(self) -> None:
        with self._client_lock:
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

    # -- local files ---------------------------------------------------------------------------

    def _from_file(self, ref: str, field: str | None) -> Media:
        if not self._roots:
            raise MediaError("local media files are disabled (no media folders configured: OVERDRIVE_MEDIA_ROOTS)",
                             field=field)
        try:
            path = Path(ref).expanduser().resolve()  # symlinks resolved before the root check
        except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, an embedded NUL, no home
            raise MediaError(f"cannot read media file: {exc}", field=field) from exc
        if not any(path.is_relative_to(root) for root in self._roots):
            raise MediaError("file path outside the allowed media folders", field=field)
        try:
            # Refuse devices, pipes and sockets before opening them (opening a device can act);
            # the check that counts is the one on the opened descriptor, in read_regular_file.
            if not stat.S_ISREG(os.stat(path).st_mode):
                raise MediaError("media path is not a regular file", field=field)
        except (OSError, ValueError) as exc:
            raise MediaError(f"cannot read media file: {getattr(exc, 'strerror', None) or exc}", field=field) from exc
        data = read_regular_file(path, self._max_bytes, field=field)
        content_type = (mimetypes.guess_type(path.name)[0] or "").lower()
        return Media(data=data, content_type=content_type, source="file")

    # -- http(s) -------------------------------------------------------------------------------

    def _http_client(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                # No proxies from the environment: the address checked must be the server's.
                self._client = httpx.Client(follow_redirects=False, trust_env=False)
            return self._client

    def _from_http(self, url: str, kind: str, field: str | None) -> Media:
        if not self._allow_http:
            raise MediaError("http(s) media URLs are disabled", field=field)
        client = self._http_client()
        deadline = time.monotonic() + self._timeout_s
        try:
            current = httpx.URL(url)
        except (httpx.InvalidURL, ValueError) as exc:
            raise MediaError(f"malformed media URL: {exc}", field=field) from exc
        try:
            for hop in range(self._max_redirects + 1):
                private_ok = self._vet_url(current, field)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise MediaError(f"media download exceeded {self._timeout_s:g} s", field=field)
                with client.stream("GET", current, timeout=left, follow_redirects=False) as resp:
                    self._vet_peer(resp, current, private_ok, field)  # before a byte of the body
                    if resp.status_code in _REDIRECT_STATUSES:
                        location = resp.headers.get("location")
                        if not location:
                            raise MediaError(f"media URL answered HTTP {resp.status_code} without a Location",
                                             field=field)
                        if hop == self._max_redirects:
                            raise MediaError(f"media URL redirected more than {self._max_redirects} times",
                                             field=field)
                        try:
                            current = current.join(location)
                        except (httpx.InvalidURL, ValueError) as exc:
                            raise MediaError(f"media URL redirected to a malformed URL: {exc}", field=field) from exc
                        continue
                    return self._read_body(resp, kind, deadline, field)
        except httpx.TimeoutException as exc:
            raise MediaError(f"media download exceeded {self._timeout_s:g} s", field=field) from exc
        except httpx.HTTPError as exc:
            raise MediaError(f"cannot fetch media: {type(exc).__name__}", field=field) from exc
        raise AssertionError("unreachable: the loop returns or raises")

    def _read_body(self, resp: httpx.Response, kind: str, deadline: float, field: str | None) -> Media:
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
        log.debug("fetched %s (%d bytes, %s)", resp.request.url, total, content_type)
        return Media(data=b"".join(chunks), content_type=content_type, source="http")

    def _vet_url(self, url: httpx.URL, field: str | None) -> bool:
        """Refuse `url` unless it is http(s) to a host whose every address may be fetched;
        returns whether private addresses are acceptable for this host (for `_vet_peer`)."""
        if url.scheme not in ("http", "https"):
            raise MediaError(f"unsupported URL scheme {url.scheme + ':'!r} (http or https only)", field=field)
        host = url.raw_host.decode("ascii")
        if not host:
            raise MediaError("media URL names no host", field=field)
        port = url.port or (443 if url.scheme == "https" else 80)
        private_ok = self._allow_private or _normal_host(host) in {
            h for h, p in self._allowed_hosts if p is None or p == port
        }
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise MediaError(f"cannot resolve media host {url.host!r}", field=field) from exc
        for info in infos:
            address = _address(info[4][0])
            reason = refusal(address, private_ok=private_ok)
            if reason:
                raise MediaError(f"media host {url.host!r} resolves to a {reason} address ({address}); refused"
                                 f"{_ALLOW_HINT if reason in _WAIVABLE else ''}", field=field)
        return private_ok

    def _vet_peer(self, resp: httpx.Response, url: httpx.URL, private_ok: bool, field: str | None) -> None:
        """Refuse the response unless the connection it came on went to an acceptable address
        (the host may have resolved differently for the connection than for `_vet_url`)."""
        stream = resp.extensions.get("network_stream")
        peer = stream.get_extra_info("server_addr") if stream is not None else None
        try:
            address = _address(str(peer[0]))  # (host, port) for IPv4, (host, port, flow, scope) for IPv6
        except (TypeError, IndexError, ValueError):  # no stream, a Unix socket, …: cannot be vetted
            raise MediaError(f"cannot tell which address media host {url.host!r} connected to; refused",
                             field=field) from None
        reason = refusal(address, private_ok=private_ok)
        if reason:
            raise MediaError(f"media host {url.host!r} connected to a {reason} address ({address}); refused",
                             field=field)


_WAIVABLE = frozenset({"loopback", "link-local", "private", "non-public"})
_ALLOW_HINT = " (OVERDRIVE_MEDIA_ALLOWED_HOSTS or OVERDRIVE_MEDIA_ALLOW_PRIVATE_NETWORKS can allow it)"


def refusal(address: AddressType, *, private_ok: bool = False) -> str | None:
    """Why `address` may not be fetched from ("loopback", "private", …), or None when it may.

    Unspecified, multicast, broadcast and reserved addresses are never fetched; loopback,
    link-local, private and other non-global ones only with `private_ok`. An IPv4-mapped or NAT64
    (64:ff9b::/96) IPv6 address is judged by the IPv4 address inside it; a 6to4 one by both."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return refusal(address.ipv4_mapped, private_ok=private_ok)
        if address in _NAT64:  # DNS64 on an IPv6-only network: the IPv4 address inside is the server
            return refusal(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), private_ok=private_ok)
        if address.sixtofour is not None and (reason := refusal(address.sixtofour, private_ok=private_ok)):
            return reason
    if address.is_unspecified or address in _THIS_NETWORK:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address == _BROADCAST:
        return "broadcast"
    if address.is_loopback:  # before is_reserved: ::1 lies in the reserved ::/8
        return None if private_ok else "loopback"
    if address.is_reserved:
        return "reserved"
    if private_ok:
        return None
    if address.is_link_local:
        return "link-local"
    if address.is_private:
        return "private"
    if not address.is_global:  # 100.64.0.0/10 (shared, CGNAT) and other special-purpose ranges
        return "non-public"
    return None


def parse_host_entry(entry: str) -> tuple[str, int | None]:
    """An allowed-hosts entry — ``cdn.internal``, ``cdn.internal:8443``, ``10.0.0.5``, ``::1``,
    ``[::1]:8080`` — as (normalised host, port or None for any port); ValueError when malformed."""
    text = entry.strip()
    if not text or any(c in text for c in "/@?#\\ \t"):
        raise ValueError(f"not a host name or address: {entry!r}")
    if text.startswith("["):
        host, close, rest = text[1:].partition("]")
        if not close or (rest and not rest.startswith(":")):
            raise ValueError(f"malformed host entry {entry!r}")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, None
    if not host or "[" in host or "]" in host or (":" in host and not _is_ip(host)):
        raise ValueError(f"not a host name or address: {entry!r}")
    port = None
    if port_text is not None:
        if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"bad port in host entry {entry!r}")
        port = int(port_text)
    return _normal_host(host), port


def read_regular_file(path: Path | str, max_bytes: int, *, field: str | None = None) -> bytes:
    """The bytes of the regular file at `path`, at most `max_bytes`; `MediaError` otherwise.

    Opened with O_NONBLOCK (opening a FIFO returns at once instead of waiting for a writer) and
    O_NOFOLLOW; the opened descriptor must be a regular file (fstat), and at most `max_bytes` + 1
    bytes are read, whatever size the file claims."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise MediaError(f"cannot read media file: {exc.strerror or exc}", field=field) from exc
    except ValueError as exc:  # a name the file system cannot take (NUL, an unpaired surrogate)
        raise MediaError(f"cannot read media file: {exc}", field=field) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise MediaError("media path is not a regular file", field=field)
        if st.st_size > max_bytes:
            raise MediaError(f"media larger than {max_bytes} bytes", field=field)
        data = read_capped(fd, max_bytes)
    except OSError as exc:
        raise MediaError(f"cannot read media file: {exc.strerror or exc}", field=field) from exc
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # the size fstat gave was not the size there is (/proc, a growing file)
        raise MediaError(f"media larger than {max_bytes} bytes", field=field)
    return data


def read_capped(fd: int, max_bytes: int) -> bytes:
    """At most `max_bytes` + 1 bytes from `fd` (one more than the cap tells that it is exceeded)."""
    chunks, left = [], max_bytes + 1
    while left > 0:
        chunk = os.read(fd, min(_READ_CHUNK, left))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _file_url_path(ref: str, field: str | None) -> str:
    parts = urllib.parse.urlsplit(ref)
    if parts.netloc not in ("", "localhost"):
        raise MediaError("file: URL names a remote host", field=field)
    return urllib.parse.unquote(parts.path)


def _normal_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _address(text: str) -> AddressType:
    return ipaddress.ip_address(text.split("%", 1)[0])  # an IPv6 scope (fe80::1%eth0) is not part of it


def _check_type(content_type: str, kind: str, field: str | None) -> None:
    if content_type in _ANY_TYPES or content_type.startswith(_KIND_TYPES[kind]):
        return
    raise MediaError(f"content type {content_type!r} is not {kind}", field=field)
