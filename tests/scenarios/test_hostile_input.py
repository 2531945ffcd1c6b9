"""Hand-picked hostile requests against a real server, with the exact answers they must get.

The fuzzers (`test_fuzz.py`) prove "never a 5xx"; these pin down the answers and the resource
bounds: huge numbers, lone surrogates, gzip bombs, bodies over the limit (refused before they are
read whole, with or without Content-Length) and a 1 MB text (refused without a memory spike).
"""

from __future__ import annotations

import gzip
import shutil
import socket
import time
import tracemalloc
from pathlib import Path

import httpx
import pytest

from bertserve.serving.app import AppOptions
from inprocess_server import InProcessServer

MAX_BODY_BYTES = 256 * 1024
PREDICT = "/v1/models/tiny:predict"


@pytest.fixture(scope="module")
def server(tiny_export, tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile") / "tiny"
    shutil.copytree(tiny_export, base / "1")
    with InProcessServer(base, app_options=AppOptions(max_body_bytes=MAX_BODY_BYTES)) as running:
        yield running


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "application/json"
    return response.json()["error"]


@pytest.mark.parametrize(
    "body, message",
    [
        (b'{"inputs": {"input_ids": [[1' + b"0" * 5000 + b"]]}}", "JSON Parse error: Number too big to be stored in double."),
        (b'{"instances": ["\\ud800"]}', "JSON Parse error: The surrogate pair in string is invalid."),
        (b'{"instances": 5, "\\udfff": 1}', "JSON Parse error: The surrogate pair in string is invalid."),
        (b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "JSON Parse error: the document is nested too deeply"),
        (b'{"inputs": {"input_ids": [[NaN]]}}', "JSON Value: NaN Type: Number is not of expected type: int64"),
        (b'{"instances": ["\xff\xfe"]}', "JSON Parse error: Invalid encoding in string. at offset: 16"),
        (b'{"instances": ["ok"], "signature_name": 7}',
         'JSON Value: {\n    "instances": [\n        "ok"\n    ],\n    "signature_name": 7\n} not formatted correctly. '
         "'signature_name' key must be a string value."),
    ],
    ids=["huge-int", "lone-surrogate", "surrogate-key", "deep-nesting", "nan-id", "invalid-utf8", "signature-type"],
)
def test_hostile_bodies_get_exact_400s(http, body, message):
    assert error(http.post(PREDICT, content=body), 400) == message


def test_valid_surrogate_pairs_are_still_text(http):
    response = http.post(PREDICT, content=b'{"instances": ["\\ud83d\\ude00 \xe5\xa5\xbd"]}')
    assert response.status_code == 200 and len(response.json()["predictions"]) == 1


def test_gzip_bomb_is_refused_after_the_limit_not_inflated(http):
    bomb = gzip.compress(b" " * (200 * 1024 * 1024), compresslevel=9)  # 200 MB of spaces in ~200 KB
    started = time.perf_counter()
    message = error(http.post(PREDICT, content=bomb, headers={"content-encoding": "gzip"}), 413)
    assert message.startswith(f"Request body is larger than the limit of {MAX_BODY_BYTES} bytes")
    assert time.perf_counter() - started < 5  # inflating 200 MB would take far longer on these cores


def _raw_exchange(url: str, head: bytes, body_chunks, read_timeout: float = 10) -> tuple[bytes, int]:
    """Send `head`, then body chunks until the server answers; (answer, body bytes sent)."""
    host, port = url.removeprefix("http://").split(":")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=read_timeout) as connection:
        connection.sendall(head)
        connection.setblocking(False)
        answer = b""
        for chunk in body_chunks:
            try:
                answer += connection.recv(65536)
            except BlockingIOError:
                pass
            if answer:
                break
            try:
                connection.sendall(chunk)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        connection.setblocking(True)
        deadline = time.monotonic() + read_timeout
        while not _complete(answer) and time.monotonic() < deadline:
            data = connection.recv(65536)
            if not data:
                break
            answer += data
        return answer, sent


def _complete(answer: bytes) -> bool:
    head, separator, body = answer.partition(b"\r\n\r\n")
    if not separator:
        return False
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True


def test_declared_oversize_is_refused_without_reading_the_body(server):
    head = (f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {10**12}\r\n\r\n").encode()
    started = time.perf_counter()
    answer, sent = _raw_exchange(server.url, head, [])
    assert answer.startswith(b"HTTP/1.1 413 ") and b'"error"' in answer
    assert sent == 0 and time.perf_counter() - started < 5


def test_chunked_oversize_is_refused_while_still_streaming(server):
    head = f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    piece = b"[" * 16384
    chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
    # Offer 64 MB; the server must answer 413 after about MAX_BODY_BYTES, not wait for the rest.
    offered = 4096 * len(chunk)
    answer, sent = _raw_exchange(server.url, head, (chunk for _ in range(4096)))
    # The client stops writing once the kernel's buffers are full: a 413 then can only come from a
    # server that refused mid-stream (one waiting for the rest would never answer).
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    # What was sent is what the server read (about the limit) plus what the two socket buffers
    # held; how much they hold depends on the kernel and on how busy the server was (4.4 MB once
    # on 2 loaded cores), so the bound is the kernel's own buffer maxima, not a guess.
    assert sent < offered
    assert sent <= MAX_BODY_BYTES + _tcp_buffer_maxima() + 1024 * 1024


def _tcp_buffer_maxima() -> int:
    """The most a TCP sender's and a receiver's buffers can hold on this machine (Linux's tcp_wmem
    and tcp_rmem maxima; 4 MiB each where /proc does not say)."""
    total = 0
    for name in ("tcp_wmem", "tcp_rmem"):
        try:
            total += int(Path(f"/proc/sys/net/ipv4/{name}").read_text().split()[2])
        except (OSError, ValueError, IndexError):
            total += 4 * 1024 * 1024
    return total


def test_one_megabyte_text_is_refused_without_a_memory_spike(server):
    # The default limits (10 MiB body) let the 3 MB body in: the text limit must refuse it.
    text = "好" * 1_000_000  # 1 M characters, 3 MB of UTF-8
    with InProcessServer(server.base_path) as default_server, httpx.Client(base_url=default_server.url, timeout=30) as http:
        tracemalloc.start()
        try:
            message = error(http.post(PREDICT, json={"instances": [text]}), 400)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert message == "Text 0 has 1000000 characters; the limit is 10000 (shorten it or raise --max_text_chars)"
    # Client and server share this process: the body, its JSON text and one parsed copy each
    # way is ~20 MB; tokenizing it (what the limit prevents) would allocate far more.
    assert peak < 48 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"
