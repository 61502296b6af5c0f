"""Media loading: file paths, data URLs and http(s) from a local server, all within limits.
(What is refused — paths outside the roots, devices, private addresses — is in test_media_safety.)

The download deadline is checked without a stopwatch: the slow endpoint trickles a body far longer
than the deadline and records how much it had sent when the loader hung up."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from overdrive.domain.errors import InvalidInput
from overdrive.content.media import MediaError, MediaLoader
from tests.unit.content.mediafiles import data_url, write_png

PNG_BYTES: bytes = b""
SLOW_CHUNKS = 200  # /slow.png: 16 bytes every 0.05 s, a 10 s body
SLOW_SENT: queue.Queue[int] = queue.Queue()  # per /slow.png request: chunks sent before the client left


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/img.png":
            self._send(200, "image/png", PNG_BYTES)
        elif self.path == "/page.html":
            self._send(200, "text/html", b"<html></html>")
        elif self.path == "/big.bin":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()  # no Content-Length: the limit must hold while streaming
            for _ in range(64):
                self.wfile.write(b"x" * 1024)
        elif self.path == "/slow.png":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            sent = 0
            try:
                for _ in range(SLOW_CHUNKS):
                    self.wfile.write(b"x" * 16)
                    self.wfile.flush()
                    sent += 1
                    time.sleep(0.05)  # the trickle itself: each chunk comes well within a read timeout
            except OSError:  # the client hung up (broken pipe, reset)
                pass
            SLOW_SENT.put(sent)
        else:
            self._send(404, "text/plain", b"nope")

    def _send(self, status: int, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    global PNG_BYTES
    PNG_BYTES = write_png(tmp_path_factory.mktemp("srv") / "a.png", (10, 200, 30)).read_bytes()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_file_path_and_data_url_give_the_same_bytes(tmp_path: Path) -> None:
    png = write_png(tmp_path / "a.png", (1, 2, 3))
    loader = MediaLoader(file_roots=[tmp_path])
    from_file = loader.load(str(png), kind="image")
    from_data = loader.load(data_url(png, "image/png"), kind="image")
    assert from_file.data == from_data.data == png.read_bytes()
    assert (from_file.source, from_data.source) == ("file", "data")
    assert from_file.content_type == from_data.content_type == "image/png"


def test_size_limit_applies_to_every_source(tmp_path: Path) -> None:
    png = write_png(tmp_path / "a.png", (1, 2, 3), size=(256, 256))
    loader = MediaLoader(max_bytes=100, file_roots=[tmp_path])
    for ref in (str(png), data_url(png, "image/png")):
        with pytest.raises(MediaError, match="larger than"):
            loader.load(ref, kind="image", field="image_url")


def test_wrong_content_type_is_rejected_with_the_field(tmp_path: Path) -> None:
    png = write_png(tmp_path / "a.png", (1, 2, 3))
    with pytest.raises(InvalidInput) as err:
        MediaLoader().load(data_url(png, "text/plain"), kind="image", field="image_url")
    assert err.value.field == "image_url" and "not image" in str(err.value)
    with pytest.raises(MediaError, match="not audio"):
        MediaLoader(file_roots=[tmp_path]).load(str(png), kind="audio")


def test_file_roots_confine_paths(tmp_path: Path) -> None:
    inside = tmp_path / "media"
    inside.mkdir()
    ok = write_png(inside / "ok.png", (1, 2, 3))
    outside = write_png(tmp_path / "secret.png", (1, 2, 3))
    loader = MediaLoader(file_roots=[inside])
    assert loader.load(str(ok), kind="image").data
    with pytest.raises(MediaError, match="outside"):
        loader.load(str(outside), kind="image")


def test_missing_file_and_bad_scheme(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="cannot read"):
        MediaLoader(file_roots=[tmp_path]).load(str(tmp_path / "none.png"), kind="image")
    with pytest.raises(MediaError, match="scheme"):
        MediaLoader().load("ftp://example.org/a.png", kind="image")
    with pytest.raises(MediaError, match="malformed"):
        MediaLoader().load("data:image/png;base64", kind="image")


def test_http_fetch_checks_type_size_and_time(server: str) -> None:
    loader = MediaLoader(max_bytes=32 * 1024, timeout_s=0.5, allowed_hosts=["127.0.0.1"])  # the test server
    try:
        got = loader.load(f"{server}/img.png", kind="image")
        assert got.data == PNG_BYTES and got.source == "http" and got.content_type == "image/png"
        with pytest.raises(MediaError, match="not image"):
            loader.load(f"{server}/page.html", kind="image")
        with pytest.raises(MediaError, match="larger than"):
            loader.load(f"{server}/big.bin", kind="image")
        with pytest.raises(MediaError, match="HTTP 404"):
            loader.load(f"{server}/missing.png", kind="image")
        with pytest.raises(MediaError, match="exceeded"):
            loader.load(f"{server}/slow.png", kind="image")
        # The loader hung up mid-body: the deadline covers the whole download, not each read,
        # and is checked while streaming, not after the body has arrived.
        assert SLOW_SENT.get(timeout=30) < SLOW_CHUNKS  # (the server sees the hang-up at its next writes)
    finally:
        loader.close()
    with pytest.raises(MediaError, match="disabled"):
        MediaLoader(allow_http=False, allowed_hosts=["127.0.0.1"]).load(f"{server}/img.png", kind="image")
