"""A real HTTP receiver of outgoing webhooks, in a thread of the test process: it verifies
every delivery with the Standard Webhooks library and answers as each test scripts it."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    verified_with: list[str]
    at: float


@dataclass
class Script:
    """What the receiver answers: ``statuses`` in turn (the last one sticks), after
    ``delay`` seconds, with ``headers``."""

    statuses: list[int] = field(default_factory=lambda: [200])
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    def __init__(self, port: int = 0) -> None:
        self.received: list[Received] = []
        self.unverified: list[dict[str, str]] = []
        self.secrets: list[str] = []
        self.scripts: dict[str, Script] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def script(self, path: str, *statuses: int, delay: float = 0.0, **headers: str) -> None:
        self.scripts[path] = Script(list(statuses) or [200], delay, headers)

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        raw = request.rfile.read(int(request.headers.get("content-length", 0)))
        headers = {name.lower(): value for name, value in request.headers.items()}
        verified_with = []
        for secret in list(self.secrets):
            try:
                Webhook(secret).verify(raw, headers)
                verified_with.append(secret)
            except WebhookVerificationError:
                pass
        script = self.scripts.get(request.path, Script())
        with self.lock:
            if verified_with:
                self.received.append(
                    Received(request.path, headers, json.loads(raw), verified_with, time.time())
                )
            else:
                self.unverified.append(headers)
            status = script.statuses[0]
            if len(script.statuses) > 1:
                script.statuses.pop(0)
        if script.delay:
            time.sleep(script.delay)
        try:
            request.send_response(status)
            for name, value in script.headers.items():
                request.send_header(name.replace("_", "-"), value)
            request.send_header("content-length", "2")
            request.end_headers()
            request.wfile.write(b"ok")
        except OSError:
            pass  # the sender gave up (timeout)

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [item for item in self.received if item.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
