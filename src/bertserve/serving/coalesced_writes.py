"""One socket write per response instead of two: uvicorn writes a response's head and its body
with two `transport.write` calls, so every answer costs two `send` system calls and, with
TCP_NODELAY (server.bind), two TCP segments that wake the client twice. Profiled on a served
request at 1 client (docs/benchmarks.md, issue 10), those sends were the largest cost of the
request path after the engine and the tokenizer.

`coalesced_writes(protocol_class)` returns a subclass whose transport gathers the writes made
during one event-loop step and sends them together at the end of that step (`loop.call_soon`):
a handler sends head and body in one step, so they leave in one `send`. Closing flushes first;
nothing is reordered or held longer than the current step.

    config = uvicorn.Config(app, http=coalesced_writes(guarded_protocol()))
"""

from __future__ import annotations

import asyncio
from typing import Any


class CoalescingTransport:
    """A transport proxy: `write` buffers until the end of the loop step, the rest delegates."""

    def __init__(self, transport: Any, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(chunk) for chunk in self._pending)

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, pause_reading, ...
        return getattr(self._transport, name)


def coalesced_writes(base: type) -> type:
    """A subclass of uvicorn protocol class `base` whose writes leave once per loop step."""

    class CoalescedWritesProtocol(base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(CoalescingTransport(transport, asyncio.get_running_loop()))

    CoalescedWritesProtocol.__name__ = f"CoalescedWrites{base.__name__}"
    return CoalescedWritesProtocol
