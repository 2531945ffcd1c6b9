"""One socket write per response: writes of one loop step leave together, in order; closing
flushes first; and a real uvicorn server with the protocol answers keep-alive requests normally."""

from __future__ import annotations

import asyncio
import json
import socket
import threading

import pytest

from bertserve.serving.coalesced_writes import CoalescingTransport, coalesced_writes
from bertserve.serving.timeouts import guarded_protocol


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.events: list[str] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.events.append("write")

    def close(self) -> None:
        self.closing = True
        self.events.append("close")

    def abort(self) -> None:
        self.events.append("abort")

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default=None):
        return ("127.0.0.1", 1) if name == "peername" else default


def test_writes_of_one_step_leave_in_one_write_in_order():
    async def scenario():
        fake = FakeTransport()
        transport = CoalescingTransport(fake, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(memoryview(b'{"predictions": [[0.1, 0.9]]}'))
        transport.write(b"")
        assert fake.writes == [] and transport.get_write_buffer_size() == 48
        await asyncio.sleep(0)
        first = list(fake.writes)
        transport.writelines([b"a", b"b"])
        transport.close()  # flushes before closing
        transport.write(b"late")
        await asyncio.sleep(0)  # after close nothing more is written
        transport.abort()
        return first, fake, transport

    first, fake, transport = asyncio.run(scenario())
    assert first == [b'HTTP/1.1 200 OK\r\n\r\n{"predictions": [[0.1, 0.9]]}']
    assert fake.writes[1:] == [b"ab"] and fake.events == ["write", "write", "close", "abort"]
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest is delegated


@pytest.fixture
def server():
    import uvicorn

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await receive()
        body = json.dumps({"path": scope["path"]}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_config=None, lifespan="off", http=coalesced_writes(guarded_protocol()))
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    while not instance.started:
        threading.Event().wait(0.01)
    yield listener.getsockname()[1]
    instance.should_exit = True
    thread.join(10)


def test_a_real_server_answers_keep_alive_requests_whole(server):
    with socket.create_connection(("127.0.0.1", server), timeout=10) as client:
        for path in ("/one", "/two"):
            client.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            data = b""
            while not data.endswith(b"}"):
                data += client.recv(65536)
            head, body = data.split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 200 OK") and json.loads(body) == {"path": path}
