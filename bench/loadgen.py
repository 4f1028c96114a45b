"""The load generator of ``bench.intake``: ``python -m bench.loadgen CONFIG.json``.

It runs in a process of its own (so it never takes the server's interpreter lock) on one
uvloop event loop, with ``concurrency`` closed-loop clients, each on its own keep-alive
HTTP/1.1 connection, each posting an order and waiting for the answer before posting the
next. A minimal HTTP/1.1 client over asyncio streams keeps the generator's own CPU cost
small (about 0.1 ms a request, a fifth of httpx's), which matters on two cores: every
millisecond the generator spends is one the server does not get.

Only answers that arrive inside the measured window count; the warm-up before it fills
the connection pool, the thread pool and PostgreSQL's caches. Prints one JSON object.

``mode: "cart"`` measures checkouts from carts: first each client fills
``carts_per_client`` carts (``POST cart_path``, one of ``cart_bodies`` each: three lines),
untimed but reported (carts/s, latency); then, from the warm-up on, it checks them out one
after the other (``POST path`` with one of ``bodies`` and the cart's ``cart_id``), as the
body mode posts orders. A client that runs out fills one more cart on the spot (counted as
``refills``: the figure then includes fills). With ``server_pids``, the CPU those process
trees use inside the measured window is reported too (``server_cpu_window_seconds``).
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
    mode: str = "body"
    cart_path: str = "/api/v1/carts"
    cart_bodies: list[str] = field(default_factory=list)
    carts_per_client: int = 0
    server_pids: list[int] = field(default_factory=list)


@dataclass
class Tally:
    window_start: float
    window_end: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    created_total: int = 0
    errors: list[str] = field(default_factory=list)
    sample: str | None = None
    fill_latencies_ms: list[float] = field(default_factory=list)
    refills: int = 0


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


def _request(config: Config, token: str, key: str | None, body: bytes, path: str = "") -> bytes:
    return (
        f"POST {path or config.path} HTTP/1.1\r\n"
        f"Host: {config.host}:{config.port}\r\n"
        f"Authorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\n"
        "Accept: application/json\r\n"
        + (f"Idempotency-Key: {key}\r\n" if key else "")
        + f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


class Connection:
    """One keep-alive connection, reopened after an error or a ``Connection: close``."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                self.config.host, self.config.port
            )
        assert self.reader is not None
        try:
            self.writer.write(request)
            async with asyncio.timeout(self.config.timeout):
                status, answer, close = await _read_response(self.reader)
        except BaseException:
            self.close()
            raise
        if close:
            self.close()
        return status, answer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def _fill(
    number: int, config: Config, connection: Connection, tally: Tally, count: int
) -> list[str]:
    """``count`` carts filled for client ``number``; their ids."""
    token = config.tokens[number % len(config.tokens)]
    ids = []
    for sequence in range(count):
        body = config.cart_bodies[(number * 7919 + sequence) % len(config.cart_bodies)].encode()
        started = time.monotonic()
        status, answer = await connection.exchange(
            _request(config, token, None, body, config.cart_path)
        )
        tally.fill_latencies_ms.append((time.monotonic() - started) * 1000)
        if status != 201:
            raise RuntimeError(f"filling a cart: {status} {answer[:300]!r}")
        ids.append(str(json.loads(answer)["id"]))
    return ids


async def _checkouts(
    number: int,
    config: Config,
    connection: Connection,
    tally: Tally,
    stop_at: float,
    carts: list[str],
) -> None:
    """Client ``number`` checks out its carts, one after the other, until ``stop_at``."""
    token = config.tokens[number % len(config.tokens)]
    bodies = [json.loads(body) for body in config.bodies]
    sequence = 0
    while time.monotonic() < stop_at:
        if not carts:
            tally.refills += 1
            carts.extend(await _fill(number, config, connection, tally, 1))
        sequence += 1
        template = bodies[(number * 7919 + sequence) % len(bodies)]
        body = json.dumps({**template, "cart_id": carts.pop()}).encode()
        request = _request(config, token, f"{config.run}-{number}-{sequence}", body)
        await _timed(connection, request, tally)


async def _timed(connection: Connection, request: bytes, tally: Tally) -> None:
    started = time.monotonic()
    try:
        status, answer = await connection.exchange(request)
    except (OSError, asyncio.IncompleteReadError, TimeoutError) as error:
        tally.errors.append(f"{type(error).__name__}: {error}"[:200])
        return
    finished = time.monotonic()
    if status == 201:
        tally.created_total += 1
        if tally.sample is None:
            tally.sample = answer.decode(errors="replace")[:2000]
    if tally.window_start <= finished <= tally.window_end:
        tally.latencies_ms.append((finished - started) * 1000)
        tally.statuses[str(status)] = tally.statuses.get(str(status), 0) + 1


async def _client(number: int, config: Config, tally: Tally, stop_at: float) -> None:
    token = config.tokens[number % len(config.tokens)]
    bodies = [body.encode() for body in config.bodies]
    connection = Connection(config)
    sequence = 0
    while time.monotonic() < stop_at:
        sequence += 1
        body = bodies[(number * 7919 + sequence) % len(bodies)]
        request = _request(config, token, f"{config.run}-{number}-{sequence}", body)
        await _timed(connection, request, tally)
    connection.close()


def _server_cpu(pids: list[int]) -> float:
    """CPU seconds used so far by the process trees of ``pids``."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
    return total


async def _window_cpu(config: Config, tally: Tally, out: dict[str, float]) -> None:
    await asyncio.sleep(max(0.0, tally.window_start - time.monotonic()))
    first = _server_cpu(config.server_pids)
    await asyncio.sleep(max(0.0, tally.window_end - time.monotonic()))
    out["server_cpu_window_seconds"] = _server_cpu(config.server_pids) - first


async def run(config: Config) -> dict[str, Any]:
    tally = Tally(window_start=0.0, window_end=0.0)
    connections = [Connection(config) for _ in range(config.concurrency)]
    carts: list[list[str]] = [[] for _ in range(config.concurrency)]
    fill: dict[str, float] = {}
    if config.mode == "cart":
        filling = time.monotonic()
        carts = list(
            await asyncio.gather(
                *(
                    _fill(n, config, connections[n], tally, config.carts_per_client)
                    for n in range(config.concurrency)
                )
            )
        )
        fill["fill_seconds"] = time.monotonic() - filling
    elif config.mode != "body":
        raise SystemExit(f"unknown mode {config.mode!r}")
    start = time.monotonic() + config.warmup
    tally.window_start, tally.window_end = start, start + config.duration
    stop_at = tally.window_end
    cpu: dict[str, float] = {}
    meter = [_window_cpu(config, tally, cpu)] if config.server_pids else []
    if config.mode == "cart":
        clients = [
            _checkouts(n, config, connections[n], tally, stop_at, carts[n])
            for n in range(config.concurrency)
        ]
    else:
        clients = [_client(n, config, tally, stop_at) for n in range(config.concurrency)]
    await asyncio.gather(*clients, *meter)
    for connection in connections:
        connection.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        **fill,
        **cpu,
        "mode": config.mode,
        "fill_latencies_ms": tally.fill_latencies_ms,
        "refills": tally.refills,
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
