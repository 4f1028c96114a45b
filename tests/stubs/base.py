"""Shared machinery of the wire-level stand-ins: a real HTTP server in a thread, request
recording, fault injection (answer 5xx/429, or hang for a while) and latency.

The server speaks HTTP/1.1 with keep-alive (the SDKs reuse their connections, as they do
with the real providers) and runs every connection on a thread of its own, so a latency of
300 ms holds one request, never the others: a thousand requests in flight take 300 ms.

A subclass implements :meth:`StubServer.handle` (one parsed request in, one response out)
and :meth:`StubServer.fault_body` (the provider-shaped error body for an injected status).
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qsl, urlsplit

FaultMode = Literal["ok", "500", "502", "503", "429", "409", "hang", "hang_after"]


@dataclass(frozen=True, slots=True)
class StubRequest:
    """What the handler hands to :meth:`StubServer.handle`."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: Mapping[str, str]  # lower-cased names
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True, slots=True)
class StubResponse:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Filled in by the subclass so the recording can say what the request did.
    note: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def json(
        cls,
        status: int,
        payload: Any,
        headers: Mapping[str, str] | None = None,
        note: Mapping[str, Any] | None = None,
    ) -> StubResponse:
        return cls(
            status,
            json.dumps(payload).encode(),
            {"Content-Type": "application/json", **(headers or {})},
            note or {},
        )


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the stub saw it. Credentials are never recorded, only whether they
    were accepted (``note["authorized"]``)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int  # 0: no answer was sent (hang, then connection closed)
    fault: str | None
    at: float
    note: Mapping[str, Any]

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")

    @property
    def replayed(self) -> bool:
        return bool(self.note.get("replayed"))

    @property
    def params(self) -> dict[str, Any]:
        value = self.note.get("params")
        return dict(value) if isinstance(value, Mapping) else {}


@dataclass(slots=True)
class _Fault:
    kind: Literal["status", "hang"]
    status: int = 500
    seconds: float = 0.0
    remaining: int | None = 1  # None: until cleared
    path_prefix: str | None = None
    after_processing: bool = False
    retry_after: int | None = None

    def matches(self, path: str) -> bool:
        return self.path_prefix is None or path.startswith(self.path_prefix)

    @property
    def label(self) -> str:
        if self.kind == "status":
            return str(self.status)
        return "hang_after" if self.after_processing else "hang"


_SENSITIVE_HEADERS = frozenset({"authorization", "cookie"})


@dataclass(frozen=True, slots=True)
class Latency:
    """How long the stand-in takes to answer a request it processes: ``mean`` ± ``jitter``
    seconds, drawn uniformly for each request. The request is processed (its effect saved)
    first, then the answer waits, as a provider's own processing time would."""

    mean: float = 0.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.mean < 0 or self.jitter < 0 or self.jitter > self.mean:
            raise ValueError("a latency needs 0 <= jitter <= mean")

    def draw(self, rng: random.Random) -> float:
        return rng.uniform(self.mean - self.jitter, self.mean + self.jitter)

    @classmethod
    def parse(cls, text: str) -> Latency:
        """``"300"`` or ``"300+-100"`` / ``"300±100"`` milliseconds."""
        mean, _, jitter = text.replace("±", "+-").partition("+-")
        return cls(float(mean) / 1000, float(jitter or 0) / 1000)

    def __str__(self) -> str:
        return f"{self.mean * 1000:g}±{self.jitter * 1000:g} ms"


#: No added latency: the stand-in answers as fast as it can.
INSTANT = Latency()


class StubServer:
    """A ThreadingHTTPServer on 127.0.0.1 (port 0 by default) run in a daemon thread.

    Use as a context manager or call :meth:`start` / :meth:`stop`. ``url`` is the base
    address (``http://127.0.0.1:<port>``).
    """

    #: Name used in thread names and the ``Server`` header.
    name = "stub"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, latency: Latency = INSTANT) -> None:
        self._host = host
        self._port = port
        self.latency = latency
        self._rng = random.Random()
        self._rng_lock = threading.Lock()
        #: Open client connections, closed by ``stop`` (keep-alive would outlive it).
        self._connections: set[socket.socket] = set()
        #: Connections accepted so far: fewer than requests when clients keep them alive.
        self.connections_opened = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._faults: deque[_Fault] = deque()
        self._recorded: list[RecordedRequest] = []
        self._meta_lock = threading.Lock()  # faults and recordings
        self.lock = threading.RLock()  # the subclass's state

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self._host, self._port), _handler_class(self))
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.name}-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hung requests are released at once."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._meta_lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:  # a stopped provider answers nothing, kept-alive or not
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self.name} is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def set_latency(self, latency: Latency) -> None:
        """From the next request on, answers take ``latency`` (``INSTANT``: none)."""
        self.latency = latency

    def _delay(self) -> float:
        latency = self.latency
        if latency.mean <= 0:
            return 0.0
        with self._rng_lock:
            return latency.draw(self._rng)

    # -- fault injection ----------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        *,
        path: str | None = None,
        retry_after: int | None = 1,
    ) -> None:
        """The next ``n`` requests (to paths starting with ``path``, if given) are answered
        ``status`` with a provider-shaped error body, before any processing (no state
        change, nothing saved for idempotency). A 429 carries ``Retry-After``."""
        self._add_fault(
            _Fault("status", status=status, remaining=n, path_prefix=path, retry_after=retry_after)
        )

    def hang_next(
        self,
        n: int = 1,
        seconds: float = 3.0,
        *,
        path: str | None = None,
        after_processing: bool = False,
    ) -> None:
        """Hold the next ``n`` requests for ``seconds`` (longer than the client timeout).

        ``after_processing=False``: nothing happens, then the connection is closed without
        an answer (the request never "reached" the provider). ``after_processing=True``:
        the request is processed and saved first, then the answer is delayed, the "lost
        response" case: a retry with the same idempotency key gets the replay."""
        self._add_fault(
            _Fault(
                "hang",
                seconds=seconds,
                remaining=n,
                path_prefix=path,
                after_processing=after_processing,
            )
        )

    def set_mode(
        self,
        mode: FaultMode,
        *,
        seconds: float = 3.0,
        count: int | None = None,
        path: str | None = None,
    ) -> None:
        """Replace all faults: ``"ok"`` clears them; ``"500"``/``"502"``/``"503"``/
        ``"429"``/``"409"`` answer that status; ``"hang"`` / ``"hang_after"`` hang for
        ``seconds``. ``count=None`` keeps the mode until changed."""
        self.clear_faults()
        if mode == "ok":
            return
        if mode in ("hang", "hang_after"):
            fault = _Fault(
                "hang",
                seconds=seconds,
                remaining=count,
                path_prefix=path,
                after_processing=mode == "hang_after",
            )
        else:
            fault = _Fault("status", status=int(mode), remaining=count, path_prefix=path)
            fault.retry_after = 1
        self._add_fault(fault)

    def clear_faults(self) -> None:
        with self._meta_lock:
            self._faults.clear()

    def _add_fault(self, fault: _Fault) -> None:
        if fault.remaining is not None and fault.remaining <= 0:
            return
        with self._meta_lock:
            self._faults.append(fault)

    def _take_fault(self, path: str) -> _Fault | None:
        with self._meta_lock:
            for fault in self._faults:
                if not fault.matches(path):
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    # -- recordings ---------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, oldest first (a copy)."""
        with self._meta_lock:
            return list(self._recorded)

    def count(
        self,
        method: str | None = None,
        path_prefix: str | None = None,
        *,
        replayed: bool | None = None,
        status: int | None = None,
        faulted: bool | None = None,
    ) -> int:
        return sum(
            1
            for r in self.requests
            if (method is None or r.method == method.upper())
            and (path_prefix is None or r.path.startswith(path_prefix))
            and (replayed is None or r.replayed == replayed)
            and (status is None or r.status == status)
            and (faulted is None or (r.fault is not None) == faulted)
        )

    def reset_requests(self) -> None:
        with self._meta_lock:
            self._recorded.clear()

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least ``n`` requests were recorded (for asynchronous callers)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            recorded = self.requests
            if len(recorded) >= n:
                return recorded
            time.sleep(0.01)
        raise TimeoutError(f"{self.name}: {len(self.requests)} requests, wanted {n}")

    def _record(
        self, request: StubRequest, status: int, fault: _Fault | None, note: Mapping[str, Any]
    ) -> None:
        headers = {k: v for k, v in request.headers.items() if k not in _SENSITIVE_HEADERS}
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=headers,
            body=request.body,
            status=status,
            fault=fault.label if fault else None,
            at=time.time(),
            note=dict(note),
        )
        with self._meta_lock:
            self._recorded.append(recorded)

    # -- subclass hooks -----------------------------------------------------------------

    def handle(self, request: StubRequest) -> StubResponse:  # pragma: no cover - abstract
        raise NotImplementedError

    def fault_body(self, status: int) -> StubResponse:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- dispatch (called on the server's handler threads) ------------------------------

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        """Every request is recorded *before* its answer is sent, so a test that has its
        answer can count it."""
        request = _read_request(handler)
        fault = self._take_fault(request.path)
        if fault is not None and fault.kind == "status":
            response = self.fault_body(fault.status)
            if fault.status == 429 and fault.retry_after is not None:
                response = _with_header(response, "Retry-After", str(fault.retry_after))
            self._record(request, response.status, fault, response.note)
            self._send(handler, response)
            return
        if fault is not None and not fault.after_processing:
            # Recorded at once so tests can count it while the client is still waiting.
            self._record(request, 0, fault, {})
            self._stopping.wait(fault.seconds)
            handler.close_connection = True
            return
        response = self._safe_handle(request)
        self._record(request, response.status, fault, response.note)
        # Neither the latency nor a hang holds a lock: other requests go on meanwhile.
        self._stopping.wait((fault.seconds if fault is not None else 0.0) + self._delay())
        self._send(handler, response)

    def _safe_handle(self, request: StubRequest) -> StubResponse:
        try:
            return self.handle(request)
        except Exception as exc:  # a stub bug must show up as a 500, not a hang
            return StubResponse.json(
                500,
                {"error": {"type": "api_error", "message": f"stub bug: {exc!r}"}},
                note={"stub_error": repr(exc)},
            )

    def _send(self, handler: BaseHTTPRequestHandler, response: StubResponse) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            handler.send_response(response.status)
            for name, value in response.headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(response.body)))
            handler.end_headers()
            if response.body and handler.command != "HEAD":
                handler.wfile.write(response.body)
            handler.wfile.flush()


class _Server(ThreadingHTTPServer):
    #: socketserver's default backlog of 5 resets connections when dozens of clients
    #: (a worker's threads) connect at once.
    request_queue_size = 1024


def _with_header(response: StubResponse, name: str, value: str) -> StubResponse:
    return StubResponse(
        response.status, response.body, {**response.headers, name: value}, response.note
    )


def _read_request(handler: BaseHTTPRequestHandler) -> StubRequest:
    length = int(handler.headers.get("Content-Length") or 0)
    body = handler.rfile.read(length) if length else b""
    split = urlsplit(handler.path)
    return StubRequest(
        method=handler.command,
        path=split.path,
        query=parse_qsl(split.query, keep_blank_values=True),
        headers={k.lower(): v for k, v in handler.headers.items()},
        body=body,
    )


def _handler_class(stub: StubServer) -> type[BaseHTTPRequestHandler]:
    def run(self: BaseHTTPRequestHandler) -> None:
        stub._dispatch(self)

    def setup(self: BaseHTTPRequestHandler) -> None:
        BaseHTTPRequestHandler.setup(self)
        with stub._meta_lock:
            stub._connections.add(self.connection)
            stub.connections_opened += 1

    def finish(self: BaseHTTPRequestHandler) -> None:
        with stub._meta_lock:
            stub._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            BaseHTTPRequestHandler.finish(self)

    def quiet(self: BaseHTTPRequestHandler, format: str, *args: Any) -> None:
        return None

    methods: dict[str, Callable[..., None] | str | int] = {
        "setup": setup,
        "finish": finish,
        # Keep-alive, as the providers speak it: the SDKs' pools reuse connections.
        "protocol_version": "HTTP/1.1",
        # An idle kept-alive connection is closed after this long (its thread ends).
        "timeout": 60,
        "do_GET": run,
        "do_POST": run,
        "do_DELETE": run,
        "do_PUT": run,
        "do_PATCH": run,
        "log_message": quiet,
        "server_version": f"orderflow-{stub.name}/1",
        "sys_version": "",
    }
    return type(f"{type(stub).__name__}Handler", (BaseHTTPRequestHandler,), methods)
