"""The load generator of ``bench.intake``: ``python -m bench.loadgen CONFIG.json``.

It runs in a process of its own (so it never takes the server's interpreter lock) on one
uvloop event loop, with ``concurrency`` closed-loop clients, each on its own keep-alive
HTTP/1.1 connection, each posting an order and waiting for the answer before posting the
next. A minimal HTTP/1.1 client over asyncio streams keeps the generator's own CPU cost
small (about 0.1 ms a request, a fifth of httpx's), which matters on two cores: every
millisecond the generator spends is one the server does not get.

Only answers that arrive inside the measured window count; the warm-up before it fills
the connection pool, the thread pool and PostgreSQL's caches. Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Config:
    host: str
    port: int
    path: str
    tokens: list[str]
    bodies: list[str]
    concurrency: int
    warmup: float
    duration: float
    timeout: float = 30.0
    run: str = "r"


@dataclass
class Tally:
    window_start: float
    window_end: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    created_total: int = 0
    errors: list[str] = field(default_factory=list)
    sample: str | None = None


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length: int | None = None
    chunked = close = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value:
            chunked = True
        elif name == b"connection" and value == b"close":
            close = True
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await reader.readexactly(size + 2))
            if size == 0:
                break
        return status, b"".join(part[:-2] for part in parts), close
    if length is None:
        return status, await reader.read(), True
    return status, await reader.readexactly(length), close


def _request(config: Config, token: str, key: str, body: bytes) -> bytes:
    return (
        f"POST {config.path} HTTP/1.1\r\n"
        f"Host: {config.host}:{config.port}\r\n"
        f"Authorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\n"
        "Accept: application/json\r\n"
        f"Idempotency-Key: {key}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _client(number: int, config: Config, tally: Tally, stop_at: float) -> None:
    token = config.tokens[number % len(config.tokens)]
    bodies = [body.encode() for body in config.bodies]
    sequence = 0
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while time.monotonic() < stop_at:
        if writer is None:
            reader, writer = await asyncio.open_connection(config.host, config.port)
        assert reader is not None
        sequence += 1
        body = bodies[(number * 7919 + sequence) % len(bodies)]
        request = _request(config, token, f"{config.run}-{number}-{sequence}", body)
        started = time.monotonic()
        try:
            writer.write(request)
            async with asyncio.timeout(config.timeout):
                status, answer, close = await _read_response(reader)
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as error:
            tally.errors.append(f"{type(error).__name__}: {error}"[:200])
            writer.close()
            writer = None
            continue
        finished = time.monotonic()
        if status == 201:
            tally.created_total += 1
            if tally.sample is None:
                tally.sample = answer.decode(errors="replace")[:2000]
        if tally.window_start <= finished <= tally.window_end:
            tally.latencies_ms.append((finished - started) * 1000)
            tally.statuses[str(status)] = tally.statuses.get(str(status), 0) + 1
        if close:
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def run(config: Config) -> dict[str, Any]:
    now = time.monotonic()
    start = now + config.warmup
    tally = Tally(window_start=start, window_end=start + config.duration)
    stop_at = tally.window_end
    await asyncio.gather(*(_client(n, config, tally, stop_at) for n in range(config.concurrency)))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "concurrency": config.concurrency,
        "duration": config.duration,
        "latencies_ms": tally.latencies_ms,
        "statuses": tally.statuses,
        "created_total": tally.created_total,
        "errors": tally.errors[:20],
        "error_count": len(tally.errors),
        "sample": tally.sample,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }


def main() -> None:
    with open(sys.argv[1]) as handle:
        config = Config(**json.load(handle))
    try:
        import uvloop

        result = uvloop.run(run(config))
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        result = asyncio.run(run(config))
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
