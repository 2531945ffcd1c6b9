"""Closed-loop HTTP load generator: N clients, each with one keep-alive connection, each sending
its next request as soon as the previous answer arrives, for a bounded time or request count.

    target = Target("bertserve", "http://127.0.0.1:8501", "/v1/models/chnsenticorp:predict")
    result = asyncio.run(run_level(target, texts, concurrency=32, duration=10.0))
    result.p50_ms, result.throughput, result.errors

Why raw HTTP/1.1 over asyncio streams instead of httpx: the generator shares the 2 CPU cores with
the server it measures, so every microsecond it spends is taken from the server. Request bytes
are built once per text, and a response is parsed only as far as the status line, headers and
Content-Length (or chunked) body. `client_cpu_ms` reports what the generator itself cost per
request (its process CPU time over the level / requests) so a reader can see how much of the
machine it took.

Loopback only: a benchmark must never be pointed at somebody else's server by accident.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

import numpy as np

from bertserve.errors import ConfigError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
REQUEST_TIMEOUT_SECONDS = 60.0  # one answer slower than this counts as an error, not a hang
EXPECTED_KEY = b'"predictions"'  # every REST target answers TF Serving's row format
V2_EXPECTED_KEY = b'"outputs"'  # a V2 infer answer (serving/v2/rest.py)


@dataclass(frozen=True)
class Target:
    """A server to load: a name for the table, its base URL and the predict path."""

    name: str
    url: str
    path: str
    protocol: str = "rest"  # "rest": TF Serving's {"instances": [text]}; "v2": a V2 infer request, BYTES "text"

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        if parts.scheme != "http" or not parts.hostname:
            raise ConfigError(f"--url {self.url!r}: give an http:// URL such as http://127.0.0.1:8501")
        if parts.hostname not in LOOPBACK_HOSTS:
            raise ConfigError(
                f"--url {self.url!r}: bench only loads servers on this machine (127.0.0.1/localhost); "
                "run it next to the server you measure"
            )
        return parts.hostname, parts.port or 80


@dataclass
class LevelResult:
    """What one target did at one concurrency."""

    target: str
    concurrency: int
    texts: str  # "all" or "median"
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    p50_ms: float = float("nan")
    p90_ms: float = float("nan")
    p99_ms: float = float("nan")
    mean_ms: float = float("nan")
    throughput: float = 0.0  # answered requests (= texts) per second
    client_cpu_ms: float = float("nan")  # load generator CPU per request
    server_cpu_ms: float = float("nan")  # server process CPU per request (with --server-pid)
    first_error: str = ""
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    def summarise(self) -> None:
        if self.latencies_ms:
            values = np.asarray(self.latencies_ms)
            self.p50_ms, self.p90_ms, self.p99_ms = (float(v) for v in np.percentile(values, [50, 90, 99]))
            self.mean_ms = float(values.mean())
        if self.seconds > 0:
            self.throughput = self.requests / self.seconds

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("latencies_ms")
        return data


def process_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of process `pid`, all threads (Linux /proc); None if unknown.
    CPU per request is much less disturbed by other load on the machine than latency is."""
    if pid is None:
        return None
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request_bytes(target: Target, text: str) -> bytes:
    host, port = target.host_port
    if target.protocol == "v2":
        document = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [text]}],
                    "outputs": [{"name": "probabilities"}]}
    else:
        document = {"instances": [text]}
    body = json.dumps(document, ensure_ascii=False).encode("utf-8")
    head = (
        f"POST {target.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("ascii")
    return head + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, server wants the connection closed) of one HTTP/1.1 response."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("server closed the connection")
    status = int(status_line.split(b" ", 2)[1])
    length, chunked, close = None, False, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            close = True
    if chunked:
        parts = []
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                await reader.readline()
                break
            parts.append(await reader.readexactly(size))
            await reader.readline()
        return status, b"".join(parts), close
    if length is None:
        return status, await reader.read(), True
    return status, await reader.readexactly(length), close


class _Budget:
    """Shared by the clients of one level: the next text to send and when to stop."""

    def __init__(self, requests: list[bytes], stop_at: float, max_requests: int | None):
        self.requests = requests
        self.stop_at = stop_at
        self.max_requests = max_requests
        self.started = 0

    def next_request(self) -> bytes | None:
        if time.perf_counter() >= self.stop_at:
            return None
        if self.max_requests is not None and self.started >= self.max_requests:
            return None
        request = self.requests[self.started % len(self.requests)]
        self.started += 1
        return request


async def _client(target: Target, budget: _Budget, result: LevelResult, record: bool) -> None:
    host, port = target.host_port
    reader = writer = None
    try:
        while (request := budget.next_request()) is not None:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            started = time.perf_counter()
            try:
                writer.write(request)
                status, body, close = await asyncio.wait_for(_read_response(reader), REQUEST_TIMEOUT_SECONDS)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError, IndexError) as error:
                status, body, close = 0, f"{type(error).__name__}: {error}".encode(), True
            elapsed_ms = (time.perf_counter() - started) * 1000
            if not record:
                pass
            elif status == 200 and (V2_EXPECTED_KEY if target.protocol == "v2" else EXPECTED_KEY) in body:
                result.requests += 1
                result.latencies_ms.append(elapsed_ms)
            else:
                result.errors += 1
                if not result.first_error:
                    result.first_error = f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}"
            if close:
                writer.close()
                reader = writer = None
    except OSError as error:  # cannot connect at all
        result.errors += 1
        result.first_error = result.first_error or f"cannot connect to {target.url}: {error}"
    finally:
        if writer is not None:
            writer.close()


async def run_level(
    target: Target,
    texts: list[str],
    concurrency: int,
    duration: float | None = 10.0,
    max_requests: int | None = None,
    warmup_seconds: float = 1.0,
    text_mode: str = "all",
    server_pid: int | None = None,
) -> LevelResult:
    """Load `target` with `concurrency` closed-loop clients replaying `texts` in order; stop after
    `duration` seconds or `max_requests` answers, whichever comes first. A warm-up at the same
    concurrency runs first and is not counted (first batches pay for allocations and caches)."""
    requests = [request_bytes(target, text) for text in texts]
    return await drive_closed_loop(
        lambda budget, result, record: _client(target, budget, result, record),
        requests, LevelResult(target.name, concurrency, text_mode),
        duration=duration, max_requests=max_requests, warmup_seconds=warmup_seconds, server_pid=server_pid,
    )


async def drive_closed_loop(
    client,
    requests: list[bytes],
    result: LevelResult,
    *,
    duration: float | None,
    max_requests: int | None,
    warmup_seconds: float,
    server_pid: int | None,
) -> LevelResult:
    """The closed loop shared by every protocol: `result.concurrency` copies of
    `client(budget, result, record)` send the next of `requests` as soon as their previous answer
    came back, within the bounds; then the client's and the server's CPU per answer."""
    concurrency = result.concurrency
    if concurrency < 1:
        raise ConfigError(f"concurrency must be at least 1, got {concurrency}")
    if duration is None and max_requests is None:
        raise ConfigError("give a --duration or a --requests bound")
    if warmup_seconds > 0:
        warmup = _Budget(requests, time.perf_counter() + warmup_seconds, None)
        await asyncio.gather(*(client(warmup, result, False) for _ in range(concurrency)))
    stop_at = time.perf_counter() + (duration if duration is not None else 24 * 3600)
    budget = _Budget(requests, stop_at, max_requests)
    server_cpu_started = process_cpu_seconds(server_pid)
    cpu_started, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client(budget, result, True) for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    answered = result.requests + result.errors
    if answered:
        result.client_cpu_ms = (time.process_time() - cpu_started) * 1000 / answered
        server_cpu = process_cpu_seconds(server_pid)
        if server_cpu is not None and server_cpu_started is not None:
            result.server_cpu_ms = (server_cpu - server_cpu_started) * 1000 / answered
    result.summarise()
    return result
