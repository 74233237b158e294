"""Fetching weights from paths and from real local http/https servers, and every refusal.

    .venv/bin/python -m pytest tests/training/test_weights.py -q

The servers are `http.server` on 127.0.0.1 in a thread; the https one has a certificate from
a throwaway CA made by trustme, which the client trusts through `ssl_context`.
"""

from __future__ import annotations

import hashlib
import re
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import trustme

from training.backbones import backbone_from_torchvision, build_resnet
from training.weights import WeightsError, fetch_weights, read_state_dict

CAP = 10_000_000  # bytes; far above the test files


@dataclass
class Server:
    url: str
    files: dict[str, bytes]
    hits: Counter = field(default_factory=Counter)


class StateServer(ThreadingHTTPServer):
    state: Server


class Handler(BaseHTTPRequestHandler):
    server: StateServer

    def do_GET(self) -> None:
        state = self.server.state
        state.hits[self.path] += 1
        name = self.path.removeprefix("/")
        body = state.files.get(name.removeprefix("nolength/"))
        if body is None:
            self.send_error(404, "no such file")
            return
        self.send_response(200)
        if not name.startswith("nolength/"):  # else the length is only known at the close
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet: pytest shows the failures that matter."""


def serve(files: dict[str, bytes], context: ssl.SSLContext | None) -> Iterator[Server]:
    httpd = StateServer(("127.0.0.1", 0), Handler)
    if context is not None:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    scheme = "https" if context else "http"
    httpd.state = Server(f"{scheme}://127.0.0.1:{httpd.server_address[1]}", files)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture(scope="module")
def weights_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real torchvision-layout resnet18 (width 4) file, as torch.save writes it."""
    path = tmp_path_factory.mktemp("w") / "resnet18.pth"
    torch.manual_seed(0)
    torch.save(build_resnet("resnet18", width=4).state_dict(), path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def http_server(weights_bytes: bytes) -> Iterator[Server]:
    yield from serve({"w.pth": weights_bytes, "junk.pth": b"not a torch file" * 10}, None)


@pytest.fixture
def https_server(weights_bytes: bytes, ca: trustme.CA) -> Iterator[Server]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    yield from serve({"w.pth": weights_bytes}, context)


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.glob(".fetch-*"))


def test_a_url_is_fetched_once_under_its_checksum(
    http_server: Server, weights_bytes: bytes, tmp_path: Path
) -> None:
    url = f"{http_server.url}/w.pth"
    path = fetch_weights(url, tmp_path, max_bytes=CAP)
    assert path == tmp_path / f"{sha(weights_bytes)}.pth"
    assert path.read_bytes() == weights_bytes and leftovers(tmp_path) == []
    assert fetch_weights(url, tmp_path, max_bytes=CAP) == path  # known URL: not fetched again
    assert fetch_weights(url, tmp_path, max_bytes=CAP, sha256=sha(weights_bytes)) == path
    assert http_server.hits["/w.pth"] == 1
    assert "conv1.weight" in read_state_dict(path)


def test_an_https_url_is_fetched_with_the_given_trust_and_refused_without_it(
    https_server: Server, weights_bytes: bytes, ca: trustme.CA, tmp_path: Path
) -> None:
    url = f"{https_server.url}/w.pth"
    with pytest.raises(WeightsError, match=re.escape(f"could not verify {url}")):
        fetch_weights(url, tmp_path, max_bytes=CAP)  # certifi's CAs do not know this one
    path = fetch_weights(url, tmp_path, max_bytes=CAP, ssl_context=client_context(ca))
    assert path.read_bytes() == weights_bytes
    backbone = backbone_from_torchvision(path, input_size=32)
    assert backbone.info()["arch"] == "resnet18" and backbone.embed_dim == 32


def test_a_file_over_the_cap_is_refused_by_its_content_length(
    http_server: Server, weights_bytes: bytes, tmp_path: Path
) -> None:
    url = f"{http_server.url}/w.pth"
    cap = len(weights_bytes) - 1
    with pytest.raises(WeightsError) as caught:
        fetch_weights(url, tmp_path, max_bytes=cap)
    message = str(caught.value)
    assert url in message and "cap (LABELLOOP_WEIGHTS_MAX_BYTES)" in message
    assert f"{len(weights_bytes) / 1e6:,.1f} MB is over" in message
    assert leftovers(tmp_path) == [] and list(tmp_path.glob("*.pth")) == []


def test_a_file_over_the_cap_is_refused_while_streaming_when_no_length_is_sent(
    http_server: Server, weights_bytes: bytes, tmp_path: Path
) -> None:
    url = f"{http_server.url}/nolength/w.pth"
    with pytest.raises(WeightsError, match=r"more than .* is over the .* cap"):
        fetch_weights(url, tmp_path, max_bytes=len(weights_bytes) - 1)
    assert leftovers(tmp_path) == [] and list(tmp_path.glob("*.pth")) == []
    # Under the cap, the same length-less answer is read to its end.
    assert fetch_weights(url, tmp_path, max_bytes=CAP).read_bytes() == weights_bytes


def test_a_checksum_mismatch_names_both_checksums_and_keeps_nothing(
    http_server: Server, weights_bytes: bytes, tmp_path: Path
) -> None:
    wrong = "0" * 64
    with pytest.raises(WeightsError, match=f"expected {wrong}, got {sha(weights_bytes)}"):
        fetch_weights(f"{http_server.url}/w.pth", tmp_path, max_bytes=CAP, sha256=wrong)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(WeightsError, match="not 64 hex digits"):
        fetch_weights(f"{http_server.url}/w.pth", tmp_path, max_bytes=CAP, sha256="abc")


def test_an_unreachable_url_says_so_and_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/w.pth"
    with pytest.raises(WeightsError, match=re.escape(f"could not reach {url}: ") + ".*Offline"):
        fetch_weights(url, tmp_path, max_bytes=CAP, timeout=5)
    assert leftovers(tmp_path) == []


def test_http_errors_and_non_torch_files_are_refused(http_server: Server, tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="answered HTTP 404"):
        fetch_weights(f"{http_server.url}/nothing.pth", tmp_path, max_bytes=CAP)
    with pytest.raises(WeightsError, match="not a torch weights file"):
        fetch_weights(f"{http_server.url}/junk.pth", tmp_path, max_bytes=CAP)
    assert list(tmp_path.glob("*.pth")) == [] and leftovers(tmp_path) == []


@pytest.mark.parametrize("source", ["ftp://example.org/w.pth", "file:///tmp/w.pth"])
def test_other_schemes_are_refused_by_name(source: str, tmp_path: Path) -> None:
    scheme = source.split(":")[0]
    with pytest.raises(WeightsError, match=f"{scheme}:// is not supported"):
        fetch_weights(source, tmp_path, max_bytes=CAP)


def test_a_local_path_is_copied_under_its_checksum_and_checked(
    weights_bytes: bytes, tmp_path: Path
) -> None:
    source = tmp_path / "incoming" / "resnet18.pth"
    source.parent.mkdir()
    source.write_bytes(weights_bytes)
    dest = tmp_path / "store"
    path = fetch_weights(str(source), dest, max_bytes=CAP, sha256=sha(weights_bytes).upper())
    assert path == dest / f"{sha(weights_bytes)}.pth" and path.read_bytes() == weights_bytes
    with pytest.raises(WeightsError, match="is over the"):
        fetch_weights(str(source), tmp_path / "other", max_bytes=100)
    with pytest.raises(WeightsError, match=r"no weights file at .*absent\.pth"):
        fetch_weights(str(tmp_path / "absent.pth"), dest, max_bytes=CAP)


def test_read_state_dict_refuses_what_is_not_a_dict_of_tensors(tmp_path: Path) -> None:
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(WeightsError, match="holds a Tensor, not a dict"):
        read_state_dict(tmp_path / "tensor.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsError, match="not a torch weights file"):
        read_state_dict(tmp_path / "junk.pt")
    with pytest.raises(WeightsError, match="no weights file"):
        read_state_dict(tmp_path / "missing.pt")
