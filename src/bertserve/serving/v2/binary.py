"""Triton's binary tensor data extension for REST: a JSON header, then the tensors' raw bytes.

Request: `Inference-Header-Content-Length: N` says the first N bytes of the body are the JSON
document; every input with `"parameters": {"binary_data_size": K}` takes the next K bytes, in the
order of `inputs`. Answer: an output asked for binary (`"binary_data": true` on it, or
`"binary_data_output": true` on the request) carries `"parameters": {"binary_data_size": K}`
instead of `data`, its K raw bytes follow the JSON, and the answer carries the same header.
`tritonclient.http` sends and asks for binary data by default.

    document, payload = split_body(body, request.headers.get(HEADER))
    raw = take_binary(payload, sizes)                   # one bytes per binary input
    body, header_length = join_body(document, [raw, ...])
"""

from __future__ import annotations

from typing import Sequence

from bertserve.errors import RequestError

HEADER = "inference-header-content-length"
SIZE = "binary_data_size"


def split_body(body: bytes, header: str | None) -> tuple[bytes, bytes]:
    """(JSON document, binary payload); without the header the whole body is JSON."""
    if header is None:
        return body, b""
    text = header.strip()
    if not text.isdigit() or len(text) > 19:
        raise RequestError(f"Inference-Header-Content-Length must be a non-negative integer, got {header[:40]!r}")
    length = int(text)
    if length > len(body):
        raise RequestError(
            f"Inference-Header-Content-Length is {length} but the body has only {len(body)} bytes; "
            "it must give the length of the JSON part"
        )
    return body[:length], body[length:]


def binary_size(name: str, parameters: dict) -> int | None:
    """The `binary_data_size` of an input, checked; None when the input carries JSON data."""
    size = parameters.get(SIZE)
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RequestError(f"input {name}: binary_data_size must be a non-negative integer, got {size!r}")
    return size


def take_binary(payload: bytes, sizes: Sequence[tuple[str, int]]) -> list[bytes]:
    """Cut `payload` into the inputs' binary parts, in order; the sizes must add up to the payload."""
    parts, offset = [], 0
    for name, size in sizes:
        if offset + size > len(payload):
            raise RequestError(
                f"input {name}: binary_data_size {size} runs past the end of the body "
                f"({len(payload) - offset} binary bytes remain)"
            )
        parts.append(payload[offset : offset + size])
        offset += size
    if offset != len(payload):
        raise RequestError(
            f"{len(payload) - offset} binary bytes after the JSON are claimed by no input's binary_data_size"
        )
    return parts


def join_body(document: bytes, parts: Sequence[bytes]) -> tuple[bytes, int]:
    """The answer body and the value of its Inference-Header-Content-Length."""
    return document + b"".join(parts), len(document)
