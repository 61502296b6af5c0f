"""What the media loader refuses: hostile item URLs from API callers (found by a hostile-input probe).

Real files, devices, a FIFO and real local HTTP servers that count the requests they get; nothing
here stands in for the loader. Local files are read only under the configured roots, and only
regular files, at most the cap; http(s) never reaches loopback, private or link-local addresses
(checked on resolution, on the connection, and at every redirect) unless a host is allowed.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from overdrive.config import Settings, describe_error
from overdrive.content.media import MediaError, MediaLoader, read_capped, read_regular_file
from tests.unit.content.mediafiles import data_url, write_png

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="devices, FIFOs and /proc are POSIX")


# -- a real HTTP server that counts its requests ------------------------------------------------


@dataclass
class Server:
    port: int
    requests: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _serve(png: bytes) -> tuple[ThreadingHTTPServer, Server]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            server.requests.append(self.path)
            parts = urlsplit(self.path)
            if parts.path == "/img.png":
                self._reply(200, {"Content-Type": "image/png"}, png)
            elif parts.path == "/redirect":  # /redirect?to=<Location>
                self._reply(302, {"Location": parse_qs(parts.query)["to"][0]}, b"")
            elif parts.path.startswith("/hops/"):  # /hops/N: N redirects, then the image
                n = int(parts.path.rsplit("/", 1)[1])
                self._reply(302, {"Location": f"/hops/{n - 1}" if n > 1 else "/img.png"}, b"")
            else:
                self._reply(404, {"Content-Type": "text/plain"}, b"nope")

        def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server = Server(port=httpd.server_address[1])
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, server


@pytest.fixture
def png(tmp_path: Path) -> bytes:
    return write_png(tmp_path / "served.png", (10, 200, 30)).read_bytes()


@pytest.fixture
def srv(png: bytes) -> Iterator[Server]:
    httpd, server = _serve(png)
    yield server
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def other(png: bytes) -> Iterator[Server]:
    """A second server on another port of 127.0.0.1: never allowed in these tests."""
    httpd, server = _serve(png)
    yield server
    httpd.shutdown()
    httpd.server_close()


def refused(loader: MediaLoader, ref: str, match: str, kind: str = "image") -> MediaError:
    with pytest.raises(MediaError, match=match) as err:
        loader.load(ref, kind=kind, field="image_url")
    assert err.value.field == "image_url"
    return err.value


# -- local files --------------------------------------------------------------------------------


def test_no_roots_configured_means_no_local_files(tmp_path: Path) -> None:
    png = write_png(tmp_path / "a.png", (1, 2, 3))
    for loader in (MediaLoader(), MediaLoader(file_roots=[])):
        for ref in (str(png), f"file://{png}", "relative.png", "/etc/passwd", str(tmp_path / "missing.png")):
            refused(loader, ref, "local media files are disabled")
    # data: URLs are not local files
    assert MediaLoader().load(data_url(png, "image/png"), kind="image").data == png.read_bytes()


@posix_only
def test_dev_zero_is_refused_as_not_a_regular_file() -> None:
    """/dev/zero says size 0 and never ends: it used to pass the size cap and be read until memory ran out."""
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    loader = MediaLoader(file_roots=["/dev"], max_bytes=1024)
    refused(loader, "/dev/zero", "not a regular file")
    refused(loader, "file:///dev/zero", "not a regular file")
    with pytest.raises(MediaError, match="not a regular file"):  # the check on the opened descriptor
        read_regular_file("/dev/zero", 1024)


@posix_only
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """A FIFO with no writer used to stall the pipeline in open(). A thread is the safety net:
    a regression fails the test instead of hanging it."""
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    outcome: list[BaseException | str] = []

    def attempt(fn: Callable[[], object]) -> None:
        try:
            fn()
            outcome.append("read")
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    loader = MediaLoader(file_roots=[tmp_path])
    for fn in (lambda: loader.load(str(fifo), kind="image", field="image_url"),
               lambda: read_regular_file(fifo, 1024, field="image_url")):  # open(O_NONBLOCK) + fstat
        outcome.clear()
        worker = threading.Thread(target=attempt, args=(fn,), daemon=True)
        worker.start()
        worker.join(timeout=10)
        if worker.is_alive():
            with open(fifo, "wb"):  # a writer unblocks the reader, so the thread can end
                pass
            pytest.fail("loading a FIFO blocked")
        assert isinstance(outcome[0], MediaError) and "not a regular file" in str(outcome[0])


def test_files_outside_the_roots_and_links_out_of_them_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "media"
    (root / "sub").mkdir(parents=True)
    inside = write_png(root / "sub" / "ok.png", (1, 2, 3))
    secret = write_png(tmp_path / "secret.png", (9, 9, 9))
    (root / "out.png").symlink_to(secret)  # a link inside the root to a file outside it
    (root / "escape").symlink_to(tmp_path)  # a link to a folder above the root
    (root / "in.png").symlink_to(inside)  # a link that stays inside: fine
    loader = MediaLoader(file_roots=[root])
    assert loader.load(str(inside), kind="image").data == inside.read_bytes()
    assert loader.load(str(root / "in.png"), kind="image").data == inside.read_bytes()
    assert loader.load(f"file://{inside}", kind="image").data == inside.read_bytes()
    for ref in (str(secret), str(root / "out.png"), str(root / "escape" / "secret.png"),
                str(root / ".." / "secret.png"), f"file://{secret}"):
        refused(loader, ref, "outside the allowed media folders")
    refused(loader, str(root), "not a regular file")  # the root folder itself
    refused(loader, "file://otherhost/x.png", "remote host")


def test_roots_given_through_a_symlink_still_work(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    png = write_png(real / "a.png", (1, 2, 3))
    (tmp_path / "alias").symlink_to(real)
    loader = MediaLoader(file_roots=[tmp_path / "alias"])
    assert loader.load(str(tmp_path / "alias" / "a.png"), kind="image").data == png.read_bytes()
    assert loader.load(str(png), kind="image").data == png.read_bytes()


def test_a_file_over_the_cap_is_refused_reading_at_most_cap_plus_one_bytes(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + os.urandom(10_000))
    refused(MediaLoader(file_roots=[tmp_path], max_bytes=1000), str(big), "larger than 1000 bytes")
    # The read itself stops one byte past the cap, whatever is behind the descriptor.
    fd = os.open(big, os.O_RDONLY)
    try:
        assert len(read_capped(fd, 1000)) == 1001
        assert os.lseek(fd, 0, os.SEEK_CUR) == 1001  # nothing more was read
    finally:
        os.close(fd)
    exact = tmp_path / "exact.png"
    exact.write_bytes(b"x" * 1000)
    assert len(MediaLoader(file_roots=[tmp_path], max_bytes=1000).load(str(exact), kind="image").data) == 1000


@posix_only
def test_the_cap_counts_bytes_read_not_the_size_stat_reports() -> None:
    """Files under /proc are regular files of size 0 by stat: only counting what is read bounds them."""
    maps = Path("/proc/self/maps")
    if not maps.exists() or maps.stat().st_size != 0:
        pytest.skip("no /proc with size-0 files here")
    refused(MediaLoader(file_roots=["/proc"], max_bytes=64), str(maps), "larger than 64 bytes")


# -- schemes ------------------------------------------------------------------------------------


def test_schemes_other_than_http_https_data_file_are_refused(srv: Server) -> None:
    loader = MediaLoader(allow_private_networks=True, file_roots=["/"])
    for ref in ("ftp://example.org/a.png", "javascript:alert(1)", " JavaScript:alert(1)", "gopher://127.0.0.1:6379/_x",
                "dict://127.0.0.1:6379/info", "vbscript:x", "jar:http://x/a!/b.png"):
        refused(loader, ref, "unsupported URL scheme")
    assert srv.requests == []


# -- http(s): private addresses, redirects ------------------------------------------------------


def test_loopback_url_is_refused_and_the_server_never_contacted(srv: Server) -> None:
    loader = MediaLoader()
    try:
        error = refused(loader, f"{srv.url}/img.png", "loopback address")
        assert "127.0.0.1" in str(error)
        refused(loader, f"http://localhost:{srv.port}/img.png", "loopback address")  # a name for loopback
        refused(loader, f"http://[::1]:{srv.port}/img.png", "loopback address")  # IPv6 loopback
        refused(loader, f"http://[::ffff:127.0.0.1]:{srv.port}/img.png", "loopback address")  # IPv4-mapped
        refused(loader, f"http://2130706433:{srv.port}/img.png", "loopback address")  # 127.0.0.1 as one number
        refused(loader, f"http://0.0.0.0:{srv.port}/img.png", "unspecified address")
        refused(loader, "http://169.254.169.254/latest/meta-data/", "link-local address")  # cloud metadata
        refused(loader, "http://10.0.0.1/a.png", "private address")
        refused(loader, "http://[fd00::1]/a.png", "private address")
        refused(loader, "http://100.64.0.1/a.png", "non-public address")
        refused(loader, "http://224.0.0.1/a.png", "multicast address")
    finally:
        loader.close()
    assert srv.requests == []


def test_private_networks_option_allows_loopback_but_never_unspecified(srv: Server, png: bytes) -> None:
    loader = MediaLoader(allow_private_networks=True)
    try:
        assert loader.load(f"{srv.url}/img.png", kind="image").data == png
        refused(loader, f"http://0.0.0.0:{srv.port}/img.png", "unspecified address")
    finally:
        loader.close()
    assert srv.requests == ["/img.png"]


def test_an_allowed_host_is_fetched(srv: Server, other: Server, png: bytes) -> None:
    for entry in (f"127.0.0.1:{srv.port}", "127.0.0.1"):
        loader = MediaLoader(allowed_hosts=[entry])
        try:
            got = loader.load(f"{srv.url}/img.png", kind="image")
            assert got.data == png and got.source == "http" and got.content_type == "image/png"
        finally:
            loader.close()
    assert srv.requests == ["/img.png", "/img.png"]
    # host:port allows that port only
    refused(MediaLoader(allowed_hosts=[f"127.0.0.1:{srv.port}"]), f"{other.url}/img.png", "loopback address")
    assert other.requests == []


def test_a_redirect_from_an_allowed_host_to_a_private_address_is_refused(srv: Server, other: Server) -> None:
    loader = MediaLoader(allowed_hosts=[f"127.0.0.1:{srv.port}"])
    try:
        for target in (f"{other.url}/img.png", f"http://127.0.0.2:{other.port}/img.png",
                       f"http://localhost:{other.port}/img.png", "http://169.254.169.254/latest/meta-data/"):
            refused(loader, f"{srv.url}/redirect?to={target}", "address")
        refused(loader, f"{srv.url}/redirect?to=file:///etc/passwd", "unsupported URL scheme")
        refused(loader, f"{srv.url}/redirect?to=ftp://example.org/a.png", "unsupported URL scheme")
    finally:
        loader.close()
    assert other.requests == []  # the target was never contacted
    assert len(srv.requests) == 6


def test_redirects_are_followed_here_at_most_three_hops(srv: Server, png: bytes) -> None:
    loader = MediaLoader(allowed_hosts=[f"127.0.0.1:{srv.port}"])
    try:
        assert loader.load(f"{srv.url}/redirect?to=/img.png", kind="image").data == png  # a relative Location
        assert loader.load(f"{srv.url}/hops/3", kind="image").data == png
        srv.requests.clear()
        refused(loader, f"{srv.url}/hops/4", "redirected more than 3 times")
        assert srv.requests == ["/hops/4", "/hops/3", "/hops/2", "/hops/1"]  # the 4th Location not fetched
    finally:
        loader.close()


def test_the_address_actually_connected_to_is_checked(srv: Server) -> None:
    """Resolution can differ from the connection (DNS rebinding): the connection's own peer
    address is vetted before the body is read. A client sent through a proxy on loopback shows it:
    the URL names a public address, the connection goes to 127.0.0.1."""
    client = httpx.Client(proxy=srv.url, trust_env=False)
    loader = MediaLoader(client=client)
    try:
        refused(loader, "http://93.184.216.34/img.png", "connected to a loopback address")
    finally:
        client.close()


# -- settings and the API -----------------------------------------------------------------------


def test_media_settings_default_off_and_parse(tmp_path: Path) -> None:
    default = Settings.load({})
    assert default.media_root_list == () and default.media_allowed_host_list == ()
    assert default.media_allow_private_networks is False
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    s = Settings.load({
        "OVERDRIVE_MEDIA_ROOTS": f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}",
        "OVERDRIVE_MEDIA_ALLOWED_HOSTS": "cdn.internal, 10.0.0.5:8080,[::1]:9000",
        "OVERDRIVE_MEDIA_ALLOW_PRIVATE_NETWORKS": "true",
    })
    assert s.media_root_list == (tmp_path / "a", tmp_path / "b")
    assert s.media_allowed_host_list == ("cdn.internal", "10.0.0.5:8080", "[::1]:9000")
    assert s.media_allow_private_networks is True
    config = tmp_path / "overdrive.toml"
    config.write_text(f'media_roots = ["{tmp_path / "a"}"]\nmedia_allowed_hosts = ["cdn.internal"]\n')
    from_file = Settings.load({"OVERDRIVE_CONFIG": str(config)})
    assert from_file.media_root_list == (tmp_path / "a",) and from_file.media_allowed_host_list == ("cdn.internal",)
    for env, named in (({"OVERDRIVE_MEDIA_ROOTS": str(tmp_path / "none")}, "OVERDRIVE_MEDIA_ROOTS"),
                       ({"OVERDRIVE_MEDIA_ALLOWED_HOSTS": "http://cdn.internal/"}, "OVERDRIVE_MEDIA_ALLOWED_HOSTS"),
                       ({"OVERDRIVE_MEDIA_ALLOWED_HOSTS": "cdn:99999"}, "OVERDRIVE_MEDIA_ALLOWED_HOSTS")):
        with pytest.raises(ValidationError) as err:
            Settings.load(env)
        assert describe_error(err.value).startswith(f"invalid setting {named}:")


@pytest.mark.parametrize("ref", ["javascript:alert(1)", " JavaScript:alert(1)", "java\tscript:alert(1)",
                                 "vbscript:msgbox(1)", "ftp://example.org/a.png", "a\u0000b.png"])
@pytest.mark.parametrize("name", ["image_url", "video_url", "audio_url"])
def test_api_refuses_other_schemes_naming_the_field(client: TestClient, name: str, ref: str) -> None:
    r = client.post("/items", json={"id": "x", name: ref})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == name


def test_api_still_takes_urls_and_local_paths(client: TestClient) -> None:
    """Local paths may be written; without configured roots they are refused when loaded."""
    for n, ref in enumerate(["https://cdn.example/a.png", "http://cdn.example/a.png", "data:image/png;base64,AAAA",
                             "file:///srv/media/a.png", "/srv/media/a.png", "media/a.png", "./a:b.png"]):
        r = client.post("/items", json={"id": f"ok{n}", "image_url": ref})
        assert r.status_code == 201, (ref, r.text)
