"""Connection guards for uvicorn: slow or half-open clients cannot hold the server's connections.

uvicorn times out only an idle keep-alive connection *after* a response (`timeout_keep_alive`).
A client that connects and then sends its request line and headers one byte every few seconds
(slowloris), or never sends anything, keeps its connection, its buffers and a file descriptor
for ever, and with the httptools parser a never-ending header block is buffered without limit.
`guarded_protocol` wraps uvicorn's HTTP protocol class so that, on every connection:

* the request head (request line + headers) must arrive within `head_timeout_seconds` of the
  connection opening or of the previous response; otherwise the connection is closed;
* the head may be at most `max_head_bytes` long; otherwise the client gets 431 and is closed.

Request bodies are bounded by the REST layer (`app.read_body`: size -> 413, time -> 408). When
the app answers before the body has fully arrived (a 413 on Content-Length), the rest of the body
is read and discarded, for up to `linger_seconds` and `linger_bytes` (nginx's lingering close):
closing a socket with unread data sends a TCP reset, and a client still sending its body would
see "connection reset" instead of the 413.

The keep-alive timeout (uvicorn's `timeout_keep_alive`) never drops a request: when it fires
with a request already received but not yet read by the event loop (it arrived in the same loop
step; a busy loop makes that step long), the connection stays open and the request is served.
Otherwise the server sends its FIN at once (`write_eof`), not one loop step later when asyncio
really closes the socket: a client about to reuse the connection sees it closed instead of
sending a request that the close would then answer with a TCP reset (found as an
`httpx.ReadError` under overload, tests/scenarios/test_overload.py).

    config = uvicorn.Config(app, http=guarded_protocol(head_timeout_seconds=10.0))
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any

logger = logging.getLogger(__name__)

HEAD_TIMEOUT_SECONDS = 10.0  # a real client sends its headers in one packet; 10 s is generous
MAX_HEAD_BYTES = 64 * 1024  # request line + headers; h11's own default limit is 16 KiB
LINGER_SECONDS = 30.0  # nginx's lingering_time: how long an unread body may still be discarded
LINGER_BYTES = 1024**3  # ... and how much of it; past either bound the connection is closed


def _base_protocol() -> type:
    """The class uvicorn's `http="auto"` would pick: httptools when installed, else h11."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return HttpToolsProtocol
    except ImportError:  # httptools is an optional extra of uvicorn
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol


def _too_large_response(max_head_bytes: int) -> bytes:
    body = json.dumps({"error": f"Request line and headers exceed {max_head_bytes} bytes; send fewer or shorter headers"})
    return (
        "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n{body}"
    ).encode("latin-1")


class _ConnectionGuards:
    """The guards, mixed in before uvicorn's protocol class (`guarded_protocol` sets the limits)."""

    head_timeout_seconds: float = HEAD_TIMEOUT_SECONDS
    max_head_bytes: int = MAX_HEAD_BYTES
    linger_seconds: float = LINGER_SECONDS
    linger_bytes: int = LINGER_BYTES
    _head_timer: asyncio.TimerHandle | None = None
    _head_bytes = 0
    _body_pending = False  # between a request's head and the end of its body (httptools callbacks)
    _linger_timer: asyncio.TimerHandle | None = None
    _discarded = 0

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        lingering = self._linger_timer is not None
        super().data_received(data)
        if lingering:  # these bytes were body (at most the start of a next head follows them)
            self._discarded += len(data)
            if not self._reading_body():  # the unread body is discarded; back to keep-alive
                self._cancel_linger_timer()
                self._arm_head_timer()
            elif self._discarded > self.linger_bytes:
                logger.info("closing a connection whose unread request body exceeded %d bytes", self.linger_bytes)
                self._close_lingering()
        elif self._waiting_for_head():
            # Bytes that did not complete a request head: count them. A chunk that did
            # complete one (even with a large body behind it) resets the count.
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
                logger.warning("closing a connection whose request head exceeded %d bytes", self.max_head_bytes)
                self.transport.write(_too_large_response(self.max_head_bytes))
                self.transport.close()
        else:
            self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._body_pending = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._body_pending = False
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._head_bytes = 0
        if self._reading_body() and not self.transport.is_closing():
            # Answered before the body arrived (e.g. 413): uvicorn's parser discards the rest;
            # bound that, then carry on with the connection as usual.
            self._discarded = 0
            self._linger_timer = self.loop.call_later(self.linger_seconds, self._close_lingering)
        else:
            self._arm_head_timer()

    def timeout_keep_alive_handler(self) -> None:
        if self.transport.is_closing():
            return
        if _has_unread_bytes(self.transport):
            # A request arrived as the timer fired: the loop reads it next (data_received), and
            # the head timer still bounds a client that sends only part of a head.
            return
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the FIN now; close() shuts the socket a loop step later
        super().timeout_keep_alive_handler()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._cancel_linger_timer()
        super().connection_lost(exc)

    def _cancel_linger_timer(self) -> None:
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None

    def _close_lingering(self) -> None:
        self._cancel_linger_timer()
        if not self.transport.is_closing():
            self.transport.close()

    def _reading_body(self) -> bool:
        """Between a request's head and the end of its body (h11 tracks it; httptools calls back)."""
        connection = getattr(self, "conn", None)
        if connection is not None:  # h11
            import h11

            return connection.their_state is h11.SEND_BODY
        return self._body_pending

    def _waiting_for_head(self) -> bool:
        return (self.cycle is None or self.cycle.response_complete) and not self._reading_body()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout_seconds, self._head_timeout)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self._waiting_for_head() and not self.transport.is_closing():
            logger.info("closing a connection that sent no complete request head within %.1f s", self.head_timeout_seconds)
            self.transport.close()


def _has_unread_bytes(transport: Any) -> bool:
    """Whether bytes wait in the socket's receive buffer (peeked: they stay for the loop to read).
    False at end of stream and where the socket cannot be peeked."""
    transport_socket = transport.get_extra_info("socket")
    if transport_socket is None:
        return False
    try:
        # A view on the transport's file descriptor (detached below, so never closed here);
        # the descriptor is non-blocking, as asyncio set it.
        view = socket.socket(fileno=transport_socket.fileno())
    except OSError:
        return False
    try:
        return bool(view.recv(1, socket.MSG_PEEK | getattr(socket, "MSG_DONTWAIT", 0)))
    except OSError:  # BlockingIOError: nothing waiting; or the connection is already gone
        return False
    finally:
        view.detach()


def guarded_protocol(
    head_timeout_seconds: float = HEAD_TIMEOUT_SECONDS, max_head_bytes: int = MAX_HEAD_BYTES, base: type | None = None,
    linger_seconds: float = LINGER_SECONDS, linger_bytes: int = LINGER_BYTES,
) -> type:
    """A subclass of uvicorn's HTTP protocol (`base`, default: what uvicorn would pick) with the
    head deadline and size limit of the module docstring; pass it as `uvicorn.Config(http=...)`."""
    base = base or _base_protocol()
    limits = {"head_timeout_seconds": head_timeout_seconds, "max_head_bytes": max_head_bytes,
              "linger_seconds": linger_seconds, "linger_bytes": linger_bytes}
    return type(f"Guarded{base.__name__}", (_ConnectionGuards, base), limits)
