"""The keep-alive timeout never drops a request (`serving/timeouts.py`).

An idle keep-alive connection is closed by a timer on the event loop. Under load a loop step is
long, and a client may reuse the connection just as the timer fires: its request is then in the
socket's receive buffer, unread. Closing the socket then would send a TCP reset and the client
gets no answer (`httpx.ReadError`; seen once under tests/scenarios/test_overload.py's flood).

These tests make that moment happen deterministically: a callback on the server's event loop
(so the loop reads nothing meanwhile) sends the client's request, waits until it is in the
server's receive buffer, and fires the keep-alive timer's handler, as the loop does when the
timer falls due in that step. The real timer is far off (60 s), so it never fires by itself.
"""

from __future__ import annotations

import json
import shutil
import socket
import time

import pytest

from bertserve.serving.server import ServerOptions
from inprocess_server import InProcessServer

BODY = json.dumps({"instances": ["很好"]}).encode()
REQUEST = (
    "POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    f"Content-Length: {len(BODY)}\r\n\r\n"
).encode() + BODY
WAIT_SECONDS = 10.0  # bounds a wait that a working server ends at once (not an assertion on time)


@pytest.fixture(scope="module", params=["httptools", "h11", "serve"])
def server(request, tiny_export, tmp_path_factory):
    import inprocess_server
    from bertserve.serving import timeouts
    from bertserve.serving.coalesced_writes import coalesced_writes

    if request.param != "h11":
        pytest.importorskip("httptools")
    base = tmp_path_factory.mktemp(f"keep-alive-{request.param}") / "tiny"
    shutil.copytree(tiny_export, base / "1")
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "h11":  # what uvicorn runs when httptools is not installed
            from uvicorn.protocols.http.h11_impl import H11Protocol

            patch.setattr(timeouts, "_base_protocol", lambda: H11Protocol)
        if request.param == "serve":  # the protocol stack of `bertserve serve` (server.serve)
            patch.setattr(inprocess_server, "guarded_protocol", lambda *args: coalesced_writes(timeouts.guarded_protocol(*args)))
        with InProcessServer(base, server_options=ServerOptions(port=0, keep_alive_seconds=60)) as running:
            assert running.server.config.http.__name__.startswith("CoalescedWrites") == (request.param == "serve")
            yield running


def idle_keep_alive_connection(server: InProcessServer) -> socket.socket:
    """A connection that has had one answered request: the server now waits for the next one."""
    host, port = server.url.removeprefix("http://").split(":")
    client = socket.create_connection((host, int(port)), timeout=WAIT_SECONDS)
    client.sendall(REQUEST)
    assert read_response(client)[0] == 200
    return client


def read_response(client: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        assert chunk, f"connection closed without a response: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    length = int(next(line.split(":", 1)[1] for line in lines if line.lower().startswith("content-length:")))
    while len(body) < length:
        chunk = client.recv(65536)
        assert chunk, "connection closed in the middle of a response"
        body += chunk
    return int(lines[0].split()[1]), json.loads(body)


def on_the_server_loop(server: InProcessServer, action):
    """Run `action()` as one callback on the server's event loop and return its result."""

    async def run():
        return action()

    return server.call(run())


def server_protocol(server: InProcessServer, client: socket.socket):
    """The server's protocol object (one per connection) for `client`'s connection."""
    port = client.getsockname()[1]
    return next(protocol for protocol in server.server.server_state.connections if protocol.client[1] == port)


def wait_for(condition) -> bool:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def unread_bytes(protocol) -> int:
    view = socket.socket(fileno=protocol.transport.get_extra_info("socket").fileno())
    try:
        return len(view.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except BlockingIOError:
        return 0
    finally:
        view.detach()


def test_a_request_arriving_as_the_keep_alive_timer_fires_is_answered(server):
    with idle_keep_alive_connection(server) as client:

        def timer_fires_as_the_request_arrives() -> None:
            protocol = server_protocol(server, client)
            client.sendall(REQUEST)
            assert wait_for(lambda: unread_bytes(protocol) == len(REQUEST))
            protocol.timeout_keep_alive_handler()

        on_the_server_loop(server, timer_fires_as_the_request_arrives)
        status, body = read_response(client)  # before the fix: ConnectionResetError
        assert status == 200 and len(body["predictions"]) == 1


def test_an_idle_connection_is_seen_closed_before_the_loop_moves_on(server):
    """asyncio closes a socket one loop step after `transport.close()`; a request sent in that
    step would be reset. The FIN leaves at once, so a client checking before reuse (httpx and
    urllib3 do) sees the connection closed and opens another."""
    with idle_keep_alive_connection(server) as client:

        def end_of_stream_at_client() -> bool:
            client.setblocking(False)  # a peek, not a wait (the socket has a timeout)
            try:
                return client.recv(1, socket.MSG_PEEK) == b""
            except BlockingIOError:
                return False
            finally:
                client.settimeout(WAIT_SECONDS)

        def timer_fires_on_an_idle_connection() -> bool:
            server_protocol(server, client).timeout_keep_alive_handler()
            return wait_for(end_of_stream_at_client)  # still inside the loop callback

        assert on_the_server_loop(server, timer_fires_on_an_idle_connection)
        assert client.recv(65536) == b""
