"""Slow and half-open clients against a real server (`serving/timeouts.py`, `app.read_body`).

A connection that never finishes its request head is closed after the head deadline, however
slowly it trickles bytes; an endless header block gets 431; a body that stops arriving gets 408;
an idle keep-alive connection is closed; a body answered early (413) is discarded, within bounds,
so its client reads the 413 instead of a reset; and none of them delays a normal client meanwhile.
Both of uvicorn's HTTP parsers (httptools, h11) get the same guard.
"""

from __future__ import annotations

import shutil
import socket
import time

import httpx
import pytest

from bertserve.serving.app import AppOptions
from bertserve.serving.server import ServerOptions
from inprocess_server import InProcessServer

HEAD_TIMEOUT = 1.0
PREDICT = "/v1/models/tiny:predict"


@pytest.fixture(scope="module", params=["httptools", "h11"])
def server(request, tiny_export, tmp_path_factory):
    from bertserve.serving import timeouts

    if request.param == "httptools":
        pytest.importorskip("httptools")
    base = tmp_path_factory.mktemp(f"timeouts-{request.param}") / "tiny"
    shutil.copytree(tiny_export, base / "1")
    options = ServerOptions(port=0, head_timeout_seconds=HEAD_TIMEOUT, keep_alive_seconds=1)
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "h11":
            # What uvicorn runs when httptools is not installed.
            from uvicorn.protocols.http.h11_impl import H11Protocol

            patch.setattr(timeouts, "_base_protocol", lambda: H11Protocol)
        with InProcessServer(base, server_options=options, app_options=AppOptions(request_timeout_seconds=1.5)) as running:
            assert running.server.config.http.__name__ == f"Guarded{'H11Protocol' if request.param == 'h11' else 'HttpToolsProtocol'}"
            yield running


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)), timeout=10)
    return connection


def closed_within(connection: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed `connection` (reading whatever it sent), None if it did not."""
    started = time.monotonic()
    connection.settimeout(seconds)
    try:
        while connection.recv(65536):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def test_half_open_connections_are_closed_and_do_not_block_others(server):
    idle = [connect(server.url) for _ in range(50)]  # connect, send nothing
    partial = [connect(server.url) for _ in range(50)]
    for connection in partial:
        connection.sendall(f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\n".encode())  # head never finished
    started = time.monotonic()
    response = httpx.post(f"{server.url}{PREDICT}", json={"instances": ["很好"]}, timeout=10)
    assert response.status_code == 200 and time.monotonic() - started < HEAD_TIMEOUT
    for connection in idle + partial:
        assert closed_within(connection, HEAD_TIMEOUT + 3) is not None
        connection.close()


def test_slowloris_trickle_is_cut_at_the_head_deadline(server):
    connection = connect(server.url)
    head = f"GET /v1/models/tiny HTTP/1.1\r\nHost: x\r\nX-Slow: {'a' * 100}\r\n\r\n".encode()
    started = time.monotonic()
    try:
        for byte in head:  # one byte every 50 ms: each byte alone would reset an idle timer
            connection.sendall(bytes([byte]))
            time.sleep(0.05)
            if time.monotonic() - started > HEAD_TIMEOUT + 3:
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert closed_within(connection, 3) is not None
    assert time.monotonic() - started < HEAD_TIMEOUT + 3
    connection.close()


def test_endless_headers_get_431(server):
    connection = connect(server.url)
    connection.sendall(f"GET /v1/models/tiny HTTP/1.1\r\nHost: x\r\n".encode())
    answer = b""
    try:
        for index in range(2000):  # up to ~2 MB of headers
            connection.sendall(f"X-Filler-{index}: {'b' * 1000}\r\n".encode())
    except (BrokenPipeError, ConnectionResetError):
        pass
    connection.settimeout(5)
    try:
        while chunk := connection.recv(65536):
            answer += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    connection.close()
    # httptools: our guard answers 431; h11 refuses past its own 16 KiB limit with 400 first.
    assert answer.startswith((b"HTTP/1.1 431 ", b"HTTP/1.1 400 ")), answer[:100]


def test_a_body_that_stops_arriving_gets_408(server):
    connection = connect(server.url)
    connection.sendall(
        f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        '{"instances": '.encode()
    )
    connection.settimeout(10)
    answer = b""
    while not answer.endswith(b"}") and (chunk := connection.recv(65536)):  # head and body may come apart
        answer += chunk
    connection.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b'{"error":"Request body not received within 1.5 s; send the whole body at once"}' in answer


def test_idle_keep_alive_connection_is_closed(server):
    connection = connect(server.url)
    connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    connection.settimeout(5)
    assert connection.recv(65536).startswith(b"HTTP/1.1 200 ")
    assert closed_within(connection, 4) is not None
    connection.close()


def test_keep_alive_requests_on_one_connection_still_work(server):
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(5):
            assert client.post(PREDICT, json={"instances": ["很好"]}).status_code == 200
            time.sleep(0.3)  # well inside the head deadline and keep-alive


def test_a_413_reaches_a_client_still_sending_its_body(server):
    """Answered at the head (Content-Length over the limit), the rest of the body is read and
    discarded: no reset while the client sends it, the 413 is readable, the connection goes on."""
    size = 20 * 1024 * 1024  # twice the default 10 MiB limit
    with connect(server.url) as connection:
        connection.sendall(f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode())
        chunk = b"a" * 65536
        for _ in range(size // len(chunk)):
            connection.sendall(chunk)
        answer = b""
        while b"send fewer instances" not in answer:
            answer += connection.recv(65536)
        assert answer.startswith(b"HTTP/1.1 413 ")
        connection.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while b'{"live":true}' not in answer:
            part = connection.recv(65536)
            assert part, "the connection was closed after the 413"
            answer += part


def test_an_endless_body_after_a_413_is_cut_at_the_linger_bound(tiny_export, tmp_path):
    from bertserve.serving import timeouts

    shutil.copytree(tiny_export, tmp_path / "tiny" / "1")
    with pytest.MonkeyPatch.context() as patch:
        original = timeouts.guarded_protocol
        patch.setattr("inprocess_server.guarded_protocol", lambda head: original(head, linger_seconds=30, linger_bytes=1024 * 1024))
        with InProcessServer(tmp_path / "tiny", app_options=AppOptions(max_body_bytes=1024)) as running:
            with connect(running.url) as connection:
                connection.sendall(f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: {10**12}\r\n\r\n".encode())
                sent = 0
                with pytest.raises(OSError):  # reset or broken pipe once the server stops discarding
                    while sent < 64 * 1024 * 1024:
                        connection.sendall(b"a" * 65536)
                        sent += 65536
                assert 1024 * 1024 <= sent < 64 * 1024 * 1024
